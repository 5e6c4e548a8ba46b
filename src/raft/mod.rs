//! Integrated Raft storage: openraft over Arca's own [`Disk`](crate::env::Disk) seam.
//!
//! - [`types`]: the openraft type configuration (string node ids, [`NodeInfo`], [`Command`]).
//! - [`record`]: the checksummed record format shared by log segments and snapshots.
//! - [`log_store`]: the segmented, group-committed Raft log (and the vote).
//! - [`disk_alarm`]: the disk-full alarm that refuses writes before they reach Raft.
//! - [`applied_state`]: the apply core: a pure function from a state and a committed
//!   entry to the next state and a report of what changed.
//! - [`wal`]: the dense WAL of replicated changes and its bounded buffer.
//! - [`change_feed`]: the reports of applied entries, in apply order, to subscribers.
//! - [`saved_snapshot`]: the file `operator raft snapshot save` writes and `restore` reads.
//! - [`snapshot_cadence`]: when a node builds its next snapshot (entries and bytes since the last).
//! - [`state_machine`]: the shell around the apply core: applies, snapshots on disk.
//! - [`network`]: Raft RPCs over plain TCP on the cluster address.
//! - [`node`]: [`RaftNode`], the handle the rest of the server uses.

pub mod applied_state;
pub mod change_feed;
pub mod disk_alarm;
pub mod log_store;
pub mod network;
pub mod node;
pub mod record;
pub mod saved_snapshot;
pub mod snapshot_cadence;
pub mod state_machine;
pub mod types;
pub mod wal;

pub use applied_state::{Applied, AppliedState, Change, Changes};
pub use change_feed::{ChangeFeed, FeedEvent, Subscription};
pub use log_store::{LogStore, LogStoreError, LogStoreOptions};
pub use node::{Peer, RaftError, RaftFailure, RaftNode, RaftOptions, RaftStatus, RaftTimers};
pub use state_machine::StateMachine;
pub use types::{Command, CommandResponse, NodeInfo, TypeConfig};
