//! Connections: a client side that multiplexes requests over one TCP
//! connection, a pool of them, and the server's accept loop.
//!
//! Every request has a timeout: madsim delays rather than breaks a clogged
//! link, and so may a real network.

mod connection;
mod server;

pub use connection::{requests_read, Connection, ConnectionPool, Inbound};
pub use server::{serve, Service};
