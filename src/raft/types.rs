//! The openraft type configuration: Vault-style string node ids, nodes that carry their
//! API and cluster addresses, and [`Command`] as the replicated application data.

use serde::{Deserialize, Serialize};

use crate::storage::Op;

/// Where a node answers clients (`api_addr`) and its peers (`cluster_addr`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    pub api_addr: String,
    pub cluster_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "api={} cluster={}",
            self.api_addr, self.cluster_addr
        )
    }
}

/// One replicated state change. New variants are appended at the end only: the log and
/// snapshots on disk name variants by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Apply a batch of key-space operations atomically.
    Apply { ops: Vec<Op> },
    /// On a performance secondary: apply a batch received from the primary and record
    /// the primary's WAL index it brings this cluster to, in the same step. `after` is
    /// the WAL index the batch continues from; when it is not this cluster's recorded
    /// position the batch is refused whole (a resync follows), so a leader change or a
    /// crash on either side never skips or repeats a WAL entry. `after: None` is a sync
    /// chunk, applied whatever the position.
    ApplyRemote {
        after: Option<u64>,
        last_remote_wal: u64,
        ops: Vec<Op>,
    },
    /// Replace the whole key space with `ops` atomically: a secondary's activation wipes
    /// everything it held (local mounts and its root token included) and installs the
    /// primary's seal and keyring in one step, so a crash leaves either the old
    /// cluster or the new secondary, never a mix.
    ReplaceAll { ops: Vec<Op> },
    /// Replace the whole key space atomically with the entries a snapshot restore staged
    /// under `restore_id` (see `storage::key_space::RESTORE_STAGING`) plus `ops`, and
    /// drop all staging. Refused whole, changing nothing, when the staged entries are not
    /// exactly `entries` well-formed ones: a restore whose staging was cleared or cut
    /// short never swaps in a partial key space.
    ReplaceAllFromStaging {
        restore_id: String,
        entries: u64,
        ops: Vec<Op>,
    },
    /// Remove every staged restore entry, of any restore.
    ClearRestoreStaging,
}

impl std::fmt::Display for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Apply { ops } => write!(formatter, "Apply({} ops)", ops.len()),
            Command::ApplyRemote {
                after,
                last_remote_wal,
                ops,
            } => write!(
                formatter,
                "ApplyRemote(after {after:?} to {last_remote_wal}, {} ops)",
                ops.len()
            ),
            Command::ReplaceAll { ops } => write!(formatter, "ReplaceAll({} ops)", ops.len()),
            Command::ReplaceAllFromStaging {
                restore_id,
                entries,
                ops,
            } => write!(
                formatter,
                "ReplaceAllFromStaging({restore_id}, {entries} entries, {} ops)",
                ops.len()
            ),
            Command::ClearRestoreStaging => write!(formatter, "ClearRestoreStaging"),
        }
    }
}

/// What applying a [`Command`] answers: the log index it was applied at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub index: u64,
    /// Why the command changed nothing, when it was refused (an `ApplyRemote` that does
    /// not continue from this cluster's position).
    #[serde(default)]
    pub refused: Option<String>,
}

openraft::declare_raft_types!(
    /// Arca's Raft: string node ids, [`NodeInfo`] nodes, [`Command`] entries, on the seam's
    /// runtime (real Tokio, or madsim under `cfg(madsim)`).
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = String,
        Node = NodeInfo,
        AsyncRuntime = crate::env::runtime::ArcaRuntime,
);

pub type Raft = openraft::Raft<TypeConfig, crate::raft::state_machine::StateMachine>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
