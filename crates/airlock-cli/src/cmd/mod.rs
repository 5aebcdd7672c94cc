//! One module per subcommand group.

pub mod approvals;
pub mod audit;
pub mod blast_radius;
pub mod demo;
pub mod identity;
pub mod init;
pub mod inventory;
pub mod policy;
pub mod report;
pub mod resource;
pub mod secret;
pub mod serve;
pub mod token;
