//! One module per subcommand.

pub mod client;
pub mod cluster;
pub mod fifo_chat;
pub mod files;
pub mod ftp;
pub mod ftp_passwd;
pub mod get;
pub mod group;
pub mod group_chat;
pub mod hub;
pub mod id;
pub mod mount;
pub mod mqtt;
pub mod node;
pub mod node_tls;
pub mod offer;
pub mod peers;
pub mod registry;
pub mod retain;
pub mod shell;
pub mod target;
pub mod trust;
pub mod watch;
pub mod web;
