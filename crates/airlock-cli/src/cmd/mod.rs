//! One module per subcommand group.

pub mod approvals;
pub mod audit;
pub mod demo;
pub mod identity;
pub mod init;
pub mod inventory;
pub mod policy;
pub mod resource;
pub mod secret;
pub mod serve;
pub mod token;
