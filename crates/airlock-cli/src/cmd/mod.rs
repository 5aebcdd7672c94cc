//! One module per subcommand group.

pub mod audit;
pub mod identity;
pub mod init;
pub mod secret;
pub mod token;
