//! One module per subcommand.

pub mod files;
pub mod get;
pub mod mount;
pub mod hub;
pub mod fifo_chat;
pub mod node;
pub mod registry;
pub mod shell;
