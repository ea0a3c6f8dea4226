//! The FIFO chat hub of seed 001 (protocols.md §3) and its terminal client.
//!
//! Clients and hub talk through named pipes only: every client writes into the hub's FIFO
//! (registrations `¶path` and messages `path¶text`), and the hub writes into each client's own
//! FIFO. The modules follow the data:
//! - [`framing`]: the hub's input byte stream → registrations, texts, disconnects;
//! - [`fifo`]: creating, removing and opening FIFOs without ever blocking;
//! - [`clients`]: the table client → its FIFO, one bounded output queue per client;
//! - [`hub`]: the server loop and its modes (`single`, `echo`, `broadcast`);
//! - [`chat`]: the client that reads the keyboard and its FIFO at once.
#![deny(unsafe_code)]

pub mod chat;
pub mod client_id;
pub mod clients;
pub mod fifo;
pub mod framing;
pub mod hub;

pub use client_id::ClientId;
pub use framing::{Frame, Framer, SEPARATOR};
pub use hub::{Bridge, Hub, HubConfig, HubError, HubEvent, Mode};
