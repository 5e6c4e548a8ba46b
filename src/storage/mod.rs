//! The logical key space below the barrier: keys are strings, values are ciphertext.
//!
//! A [`Backend`] reads from the node's local copy (the Raft state machine) and commits
//! batches of [`Op`]s through consensus. Every key belongs to exactly one
//! [`KeyClass`] and one [`KeyGroup`], decided by its prefix alone in the registry of
//! [`key_space`], which is what replication relies on; a batch holding a key the
//! registry does not cover is refused.

pub mod byte_string;
pub mod commit_count;
pub mod key_space;
pub mod memory;
pub mod restore_staging;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use key_space::{
    CoreGroup, KeyClass, KeyGroup, Store, TableKind, UnregisteredKey, classify, key_class,
};
pub use memory::MemoryBackend;

/// The longest storage key accepted (Vault's limit is of the same order).
pub const KEY_BYTES_MAX: usize = 4096;
/// The most operations one committed batch may hold.
pub const BATCH_OPS_MAX: usize = 16_384;

/// One change to the key space. Values are already encrypted by the barrier.
///
/// A value is shared, not copied, between the Raft log entry that carries it, the
/// entries openraft reads back to apply, and the applied map that keeps it: the log holds
/// what was written since the last snapshot, and with its own copies that was a second
/// copy of every value still current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: String,
        #[serde(with = "byte_string::bytes_field")]
        value: Bytes,
    },
    Delete {
        key: String,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// This node cannot commit: another node leads (its API address, when known).
    #[error("node is not the active node")]
    NotLeader { leader_api_addr: Option<String> },
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The disk-full alarm is on: the write was refused before it reached Raft, so it
    /// never takes effect (etcd's NOSPACE alarm).
    #[error("storage is full: {0}")]
    Full(String),
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    #[error("batch of {0} operations exceeds the limit")]
    BatchTooLarge(usize),
    /// A write to a key no registered prefix covers: its class (and so whether it may
    /// leave the cluster) is unknown, so it is never stored.
    #[error(transparent)]
    UnregisteredKey(#[from] UnregisteredKey),
    /// A write to a replicated key on a performance secondary: only the primary writes
    /// those (Vault's `ErrReadOnly`).
    #[error("cannot write to readonly storage")]
    ReadOnly,
}

/// The physical store under the barrier.
pub trait Backend: Send + Sync + 'static {
    /// The value of `key` in this node's applied state.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Whether `key` holds a value in this node's applied state; a backend that can
    /// answer without copying the value out says so here.
    fn contains(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.get(key)?.is_some())
    }
    /// Vault's list semantics: the immediate children of `prefix` (which ends in `/` or
    /// is empty), sorted; a child with descendants is named once, ending in `/`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Commit a batch atomically; resolves once it is applied on this node, with the
    /// log index it was committed at.
    fn commit(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<u64, StorageError>>;

    /// Performance secondary: apply a batch from the primary, continuing from WAL index
    /// `after` (`None`: a sync chunk), and record `last_remote_wal` in the same step.
    /// Resolves to the log index, or to why the batch was refused (it does not continue
    /// this cluster's position; nothing changed).
    fn apply_remote(
        &self,
        after: Option<u64>,
        last_remote_wal: u64,
        ops: Vec<Op>,
    ) -> BoxFuture<'static, Result<Result<u64, String>, StorageError>> {
        let _ = (after, last_remote_wal, ops);
        Box::pin(async { Err(StorageError::Unavailable(REPLICATION_UNSUPPORTED.into())) })
    }

    /// Replace the whole key space with `ops` in one atomic step (secondary activation).
    fn replace_all(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<u64, StorageError>> {
        let _ = ops;
        Box::pin(async { Err(StorageError::Unavailable(REPLICATION_UNSUPPORTED.into())) })
    }

    /// Replace the whole key space, in one atomic step, with the entries a snapshot
    /// restore staged under `restore_id` plus `ops` (the restore's record), removing all
    /// staging. Resolves to the log index, or to why it was refused (the staged entries
    /// are not the `entries` expected; nothing changed).
    fn replace_all_from_staging(
        &self,
        restore_id: String,
        entries: u64,
        ops: Vec<Op>,
    ) -> BoxFuture<'static, Result<Result<u64, String>, StorageError>> {
        let _ = (restore_id, entries, ops);
        Box::pin(async { Err(StorageError::Unavailable(SNAPSHOTS_UNSUPPORTED.into())) })
    }

    /// Remove every staged restore entry (an abandoned or failed restore's).
    fn clear_restore_staging(&self) -> BoxFuture<'static, Result<u64, StorageError>> {
        Box::pin(async { Err(StorageError::Unavailable(SNAPSHOTS_UNSUPPORTED.into())) })
    }

    /// A point-in-time view of the applied state (with its WAL and replication
    /// position), when the backend keeps one.
    fn applied_view(&self) -> Option<crate::raft::applied_state::AppliedState> {
        None
    }

    /// Every entry applied from now on, when the backend publishes them (a waiter for
    /// new state subscribes before it reads the state, then sleeps until something
    /// changes instead of polling).
    fn changes(&self) -> Option<crate::raft::change_feed::Subscription> {
        None
    }
}

const SNAPSHOTS_UNSUPPORTED: &str = "snapshots need integrated storage (raft)";

const REPLICATION_UNSUPPORTED: &str =
    "this storage backend does not support performance replication (use integrated storage)";

/// Check a batch received from a performance primary: besides the usual bounds, every
/// key must be of the replicated class, so a primary (or anything posing as one) can
/// never write this cluster's tokens, leases or local mounts. (The seal is replicated:
/// a secondary's nodes unseal with its primary's keys, as the keyring is the primary's.)
pub fn validate_remote_batch(ops: &[Op]) -> Result<(), StorageError> {
    validate_batch(ops)?;
    for op in ops {
        if key_class(op.key()) != KeyClass::Replicated {
            return Err(StorageError::InvalidKey(format!(
                "{} is not a replicated key",
                op.key()
            )));
        }
    }
    Ok(())
}

pub type SharedBackend = Arc<dyn Backend>;

/// Check a batch at the boundary: bounded size, valid keys, each under a registered
/// prefix of the key space.
pub fn validate_batch(ops: &[Op]) -> Result<(), StorageError> {
    if ops.len() > BATCH_OPS_MAX {
        return Err(StorageError::BatchTooLarge(ops.len()));
    }
    for op in ops {
        validate_write_key(op.key())?;
    }
    Ok(())
}

/// What every written key must be: well formed and under a registered prefix. Checked
/// for each key of a batch, and when a request stages a write (so it fails there, not
/// at the commit after the handler's side effects).
pub fn validate_write_key(key: &str) -> Result<(), StorageError> {
    validate_key(key)?;
    classify(key)?;
    Ok(())
}

pub fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX || key.starts_with('/') || key.contains('\0') {
        return Err(StorageError::InvalidKey(key.to_string()));
    }
    Ok(())
}

/// Vault's list over a sorted set of keys: immediate children of `prefix`.
pub fn list_children<'a>(keys: impl Iterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    let mut children: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        let child = match rest.find('/') {
            Some(slash) => &rest[..=slash],
            None => rest,
        };
        if !child.is_empty() && children.last().map(String::as_str) != Some(child) {
            children.push(child.to_string());
        }
    }
    children.sort();
    children.dedup();
    children
}
