//! The round-robin cluster of seed 002: a master that hands each client the next healthy
//! worker, in the file-server protocol (see `docs/protocols.md` §6).
//!
//! - [`workers`]: the worker list, round-robin choice and health checks (`hello` on a timer);
//! - [`master`]: the master's listener (`hello`, `assign`, `help`, `quit`);
//! - [`assignment`]: the client side: given any node URL, follow a master's assignment;
//! - [`in_step`]: the local file versions known in step with a peer (bounded);
//! - [`replicate`]: on each worker, pull its peers' changes so the workers converge;
//! - [`retired`]: what a worker's own retention removed, so replication never fetches it back.
#![forbid(unsafe_code)]

pub mod assignment;
pub mod in_step;
pub mod master;
pub mod replicate;
pub mod retired;
pub mod workers;

pub use assignment::{AssignError, follow};
pub use master::Master;
pub use replicate::Replicator;
pub use retired::Retired;
pub use workers::Workers;

/// What a master's `hello` says after the usual fields, so clients know to ask for `assign`.
pub const ROLE_CLUSTER: &str = "role=cluster";
