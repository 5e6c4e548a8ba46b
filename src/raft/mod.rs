//! Integrated Raft storage: openraft over Arca's own [`Disk`](crate::env::Disk) seam.
//!
//! - [`types`]: the openraft type configuration (string node ids, [`NodeInfo`], [`Command`]).
//! - [`record`]: the checksummed record format shared by log segments and snapshots.
//! - [`log_store`]: the segmented, group-committed Raft log (and the vote).
//! - [`state_machine`]: the in-memory key space, snapshots on disk.
//! - [`network`]: Raft RPCs over plain TCP on the cluster address.
//! - [`node`]: [`RaftNode`], the handle the rest of the server uses.

pub mod log_store;
pub mod network;
pub mod node;
pub mod record;
pub mod state_machine;
pub mod types;

pub use log_store::{LogStore, LogStoreError, LogStoreOptions};
pub use node::{Peer, RaftError, RaftNode, RaftOptions, RaftStatus};
pub use state_machine::StateMachine;
pub use types::{Command, CommandResponse, NodeInfo, TypeConfig};
