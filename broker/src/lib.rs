//! A RocketMQ-style message broker: the same code runs for real over TCP and
//! under the madsim simulator.
//!
//! # Layout
//! Three layers, each depending only on the ones above it:
//! - Core, synchronous and deterministic: [`model`] (messages, topics, ids),
//!   [`store`] (commit log, consume queues, index, recovery, behind the
//!   [`store::Disk`] trait), and the pure parts of [`server`] (offsets,
//!   rebalance allocation, filters).
//! - Services, async on tokio (madsim-tokio): [`namesrv`], [`server`] (the
//!   broker node), [`client`] (producer, push consumer, admin), all reading
//!   time from [`clock::Clock`].
//! - Commands, free of any protocol: [`command`], one module per family
//!   (send, pull, offsets, groups, locks, send-back, transaction, query,
//!   admin, replication, route, controller), each request with its own
//!   reply type, and the protocol-free [`command::Refusal`]. The handlers
//!   are public methods of [`server::Broker`] (one file per family under
//!   `server/`), [`namesrv::NameServer`] and [`controller::Controller`].
//! - Edges: [`protocol`] and [`net`] (the house front: frames carrying a
//!   command, responses with codes, connections, the accept loop; the
//!   broker's side is `server/front.rs`, a thin match), [`conf`] (the
//!   `broker.conf` file), and the binaries in `src/bin` (`namesrv`,
//!   `broker`, `mqadmin`, `bench`). A second front calls the same handlers
//!   and implements [`server::Peer`] for the broker's calls back.
//!
//! [`bugs`] holds the planted defects the testbed must find (feature
//! `planted-bugs`, never in a default build); [`marks`] the "sometimes"
//! states a simulation sweep counts (nothing in the real build).

pub mod bugs;
pub mod client;
pub mod clock;
pub mod command;
pub mod conf;
pub mod controller;
pub mod error;
pub mod marks;
pub mod model;
pub mod namesrv;
pub mod net;
pub mod protocol;
pub mod server;
pub mod store;

pub use error::{Error, Result};
