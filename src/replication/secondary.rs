//! The secondary's decisions, as pure functions: the operations a streamed batch or a
//! sync page becomes, and what a finished sync must delete. The pull loop in
//! `manager.rs` calls these and does the waiting.

use std::collections::BTreeSet;

use super::protocol::WireEntry;
use crate::raft::applied_state::AppliedState;
use crate::storage::{KeyClass, Op, key_class};

/// The storage operations of streamed entries, in WAL order.
pub fn batch_ops(entries: Vec<WireEntry>) -> Vec<Op> {
    entries
        .into_iter()
        .map(|entry| match entry.value {
            Some(value) => Op::Put {
                key: entry.key,
                value,
            },
            None => Op::Delete { key: entry.key },
        })
        .collect()
}

/// After a sync that received exactly `received`: the replicated keys this cluster holds
/// that its primary's view does not (deleted there, or newly denied by the filter).
/// Local keys (this cluster's tokens, leases, local mounts, seal) are never touched.
pub fn stale_after_sync(view: &AppliedState, received: &BTreeSet<String>) -> Vec<Op> {
    view.iter()
        .filter(|(key, _)| key_class(key) == KeyClass::Replicated && !received.contains(*key))
        .map(|(key, _)| Op::Delete {
            key: key.to_string(),
        })
        .collect()
}

/// Whether a replicated change may make a cache above the barrier stale (mount and
/// auth tables, policies, audit devices, the keyring).
pub fn touches_caches(key: &str) -> bool {
    key.starts_with("core/") || key.starts_with("sys/policy/")
}
