//! The cluster channel: the one listener on a node's `cluster_address` and the
//! long-lived connections between nodes that carry Raft RPC (`arca-raft/1`), standby
//! forwarding (`arca-fwd/1`) and performance replication (`arca-repl/1`).
//!
//! - [`frame`]: versioned, length-prefixed frames with a size bound checked before
//!   allocation (small until the handshake completes).
//! - [`protocol`]: the protocols a connection can speak, by their ALPN names.
//! - [`server`]: [`ChannelServer`], which owns the listener and dispatches each
//!   connection to the handler of its protocol.
//! - [`connection`]: one client connection, multiplexing requests by id, with heartbeats.
//! - [`client`]: [`ChannelClient`], a pool of connections per peer and protocol, with
//!   reconnection under a bounded backoff.
//! - [`forward`]: the request and response of `arca-fwd/1`.
//! - [`tls`] and [`identity`]: TLS 1.3 with certificates under a per-cluster CA, held
//!   only by unsealed nodes, deterministic under the simulator.
//!
//! A connection starts with TLS (ALPN names the protocol), then the client's
//! `Hello { protocol }` and the server's
//! `Welcome`; the server reads that first frame under [`frame::HANDSHAKE_FRAME_BYTES_MAX`]
//! and only then accepts frames up to [`frame::FRAME_BYTES_MAX`].

pub mod client;
pub mod connection;
pub mod forward;
pub mod frame;
pub mod identity;
pub mod protocol;
pub mod server;
pub mod tls;

pub use client::{CallError, ChannelClient, Trust};
pub use forward::{ForwardRequest, ForwardResponse};
pub use identity::{ChannelIdentity, ClusterCa, NodeCertificate};
pub use protocol::{Lane, Protocol};
pub use server::{ChannelServer, ProtocolHandler};

#[cfg(test)]
mod tests;
