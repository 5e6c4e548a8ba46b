//! The apply core: the replicated key space as a persistent (structurally shared) ordered
//! map, with the WAL of replicated changes, the last applied log id and the last
//! membership.
//!
//! Events in: a committed Raft entry. Out: the next state and an [`Applied`] report of
//! what changed. [`AppliedState::apply`] is a pure function of the state and the entry,
//! so every node that applies the same log holds the same map and the same WAL.
//!
//! Invariants: the reported changes are exactly the difference between the map before
//! and after the entry (a put of the value already there, or a delete of an absent key,
//! is no change); changes are reported in key order; each change to a replicated key
//! gets the next WAL index, so the range an entry reports is contiguous with the one
//! before it. Cloning a state is O(1): it is how readers and the snapshot builder get a
//! point-in-time view without holding a lock while they work.
//!
//! While the cluster stores a replication state (`REPLICATION_STATE_KEY`, written when
//! it becomes a primary or a secondary), the WAL buffer keeps the newest replicated
//! changes, and the state also holds the [`MerkleIndex`] of its replicated keys, kept
//! equal to the index of the map: built from the map by the entry that first stores the
//! replication state, updated with each change after it, rebuilt when a snapshot is
//! decoded (the snapshot body does not carry it), and dropped with the replication
//! state. Without one, the WAL only counts (its buffer stays empty) and there is no
//! index: a cluster that never replicates does not pay for either.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;
use openraft::EntryPayload;
use openraft::entry::RaftEntry;
use serde::{Deserialize, Serialize};

use super::record;
use super::types::{Command, Entry, LogId, SnapshotMeta, StoredMembership};
use super::wal::{WalBuffer, WalRecord};
use crate::replication::merkle::{MerkleIndex, replicated_group};
use crate::storage::byte_string::{ByteBuf, RawBytes};
use crate::storage::key_space::{
    LAST_REMOTE_WAL_KEY, REPLICATION_STATE_KEY, RESTORE_STAGING, restore_staging_prefix,
};
use crate::storage::restore_staging;
use crate::storage::{KeyClass, Op, list_children};

/// The version byte that starts every snapshot body this code writes. Version 1 is the
/// map and the WAL buffer; a node refuses any other version rather than guess.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 1;
/// The largest snapshot body this node writes or accepts.
pub const SNAPSHOT_BYTES_MAX: usize = 1024 * 1024 * 1024;

/// The Merkle index of every replicated key in `map` (sharing the map's keys).
fn index_of(map: &OrdMap<Arc<str>, Bytes>) -> MerkleIndex {
    MerkleIndex::from_entries(map.iter().filter_map(|(key, value)| {
        replicated_group(key).map(|group| (key.clone(), group, &value[..]))
    }))
}

/// The class of a stored key. The one place the apply core asks, so the key-space
/// registry can take over by changing this function alone.
fn class_of(key: &str) -> KeyClass {
    crate::storage::key_class(key)
}

/// One key whose value an entry changed: the new value, or `None` when it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Arc<str>,
    pub class: KeyClass,
    pub value: Option<Bytes>,
}

/// What an applied entry changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// These keys, in key order.
    Keys(Vec<Change>),
    /// A snapshot replaced the whole map: any key may have changed, so a cache must
    /// reload everything it holds.
    Everything,
}

/// The report of one applied Raft entry (or one installed snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub log_index: u64,
    /// Why the entry changed nothing, when its command was refused.
    pub refused: Option<String>,
    /// The WAL indexes given to this entry's replicated changes, in the order of those
    /// changes in [`Applied::changes`]; empty (starting after the last index) when the
    /// entry changed no replicated key.
    pub wal_indexes: Range<u64>,
    pub changes: Changes,
}

/// The state machine's state: a value, cheap to clone and never mutated in place once
/// shared (the map and the WAL buffer are persistent structures).
#[derive(Debug, Clone)]
pub struct AppliedState {
    map: OrdMap<Arc<str>, Bytes>,
    wal: WalBuffer,
    /// The Merkle index of the replicated keys, kept only while the cluster stores a
    /// replication state ([`REPLICATION_STATE_KEY`]): only replication asks for it, and
    /// keeping it was a tenth of a write's CPU at 100,000 secrets. Whether it is kept
    /// is a function of the map, so every node of a cluster agrees on it at each index.
    merkle: Option<MerkleIndex>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotFormatError {
    #[error("snapshot body is empty")]
    Empty,
    #[error(
        "snapshot format version {found} is not supported (this build reads version {SNAPSHOT_FORMAT_VERSION})"
    )]
    UnknownVersion { found: u8 },
    #[error("snapshot body of {bytes} bytes exceeds the limit of {SNAPSHOT_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("snapshot body is invalid: {0}")]
    Invalid(String),
    #[error("cannot encode snapshot: {0}")]
    Encode(String),
}

/// The map in key order, serialized without copying it first.
struct MapEntries<'a>(&'a OrdMap<Arc<str>, Bytes>);

impl Serialize for MapEntries<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, value)| (&**key, RawBytes(value))))
    }
}

/// A snapshot body as written (borrowing the state) ...
#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    entries: MapEntries<'a>,
    last_wal_index: u64,
    wal: Vec<super::wal::WalRecordRef<'a>>,
}

/// ... and as read back: the same layout, owned.
#[derive(Deserialize)]
struct SnapshotBody {
    entries: Vec<(String, ByteBuf)>,
    last_wal_index: u64,
    wal: Vec<WalRecord>,
}

impl AppliedState {
    /// Seeded bug `SkipReapplyOnRestart`: claim entries up to `committed` as applied
    /// without applying them (the simulator's proof that restarts are checked).
    pub(super) fn seeded_bug_claim_applied(&mut self, committed: LogId) {
        if self
            .last_applied
            .as_ref()
            .is_none_or(|applied| applied.index < committed.index)
        {
            self.last_applied = Some(committed);
        }
    }

    /// Seeded bug `InstallMergesSnapshot`: keep keys the snapshot does not have.
    pub(super) fn seeded_bug_merged_with(&self, installed: AppliedState) -> AppliedState {
        let mut merged = installed;
        for (key, value) in self.map.iter() {
            if !merged.map.contains_key(key) {
                merged.map.insert(key.clone(), value.clone());
                if let (Some(group), Some(merkle)) = (replicated_group(key), merged.merkle.as_mut())
                {
                    merkle.apply(key.clone(), &group, Some(value));
                }
            }
        }
        merged
    }

    /// The empty state of a new node, keeping `wal_entries_max` WAL entries.
    pub fn new(wal_entries_max: usize) -> Self {
        Self {
            map: OrdMap::new(),
            wal: WalBuffer::new(wal_entries_max),
            merkle: None,
            last_applied: None,
            last_membership: StoredMembership::default(),
        }
    }

    /// Apply one committed entry: the next state, and what changed.
    pub fn apply(mut self, entry: Entry) -> (Self, Applied) {
        let log_id = entry.log_id();
        let log_index = log_id.index;
        assert!(
            self.last_applied
                .as_ref()
                .is_none_or(|last| last.index < log_index),
            "entries are applied in log order, each once"
        );
        let first_wal_index = self.wal.last_wal_index() + 1;
        let mut refused = None;
        let changes = match entry.payload {
            EntryPayload::Blank => Vec::new(),
            EntryPayload::Normal(Command::Apply { ops }) => self.apply_ops(log_index, ops),
            EntryPayload::Normal(Command::ApplyRemote {
                after,
                last_remote_wal,
                mut ops,
            }) => {
                let position = self.last_remote_wal();
                match after {
                    Some(after) if after != position => {
                        refused = Some(format!(
                            "batch continues from WAL index {after}, this cluster is at {position}"
                        ));
                        Vec::new()
                    }
                    _ => {
                        ops.push(Op::Put {
                            key: LAST_REMOTE_WAL_KEY.to_string(),
                            value: last_remote_wal.to_string().into_bytes().into(),
                        });
                        self.apply_ops(log_index, ops)
                    }
                }
            }
            EntryPayload::Normal(Command::ReplaceAll { ops }) => {
                let replacing: Vec<Op> = self.deleting_everything().chain(ops).collect();
                self.apply_ops(log_index, replacing)
            }
            EntryPayload::Normal(Command::ReplaceAllFromStaging {
                restore_id,
                entries,
                ops,
            }) => match self.staged_entries(&restore_id, entries) {
                Ok(staged) => {
                    let replacing: Vec<Op> = self
                        .deleting_everything()
                        .chain(staged)
                        .chain(ops)
                        .collect();
                    self.apply_ops(log_index, replacing)
                }
                Err(why) => {
                    refused = Some(why);
                    Vec::new()
                }
            },
            EntryPayload::Normal(Command::ClearRestoreStaging) => {
                let staging: Vec<Op> = self
                    .map
                    .range::<_, str>((
                        std::ops::Bound::Included(RESTORE_STAGING),
                        std::ops::Bound::Unbounded,
                    ))
                    .map(|(key, _)| key)
                    .take_while(|key| key.starts_with(RESTORE_STAGING))
                    .map(|key| Op::Delete {
                        key: key.to_string(),
                    })
                    .collect();
                self.apply_ops(log_index, staging)
            }
            EntryPayload::Membership(membership) => {
                self.last_membership = StoredMembership::new(Some(log_id.clone()), membership);
                Vec::new()
            }
        };
        self.last_applied = Some(log_id);
        let applied = Applied {
            log_index,
            refused,
            wal_indexes: first_wal_index..self.wal.last_wal_index() + 1,
            changes: Changes::Keys(changes),
        };
        (self, applied)
    }

    /// The entries a restore staged under `restore_id`, in staging order, as puts; an
    /// error when they are not exactly `expected` well-formed entries.
    /// A delete of every key held: the first half of replacing the whole state.
    fn deleting_everything(&self) -> impl Iterator<Item = Op> + '_ {
        self.map.keys().map(|key| Op::Delete {
            key: key.to_string(),
        })
    }

    fn staged_entries(&self, restore_id: &str, expected: u64) -> Result<Vec<Op>, String> {
        let prefix = restore_staging_prefix(restore_id);
        let mut puts = Vec::new();
        for (key, value) in self
            .map
            .range::<_, str>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(&prefix))
        {
            let (key, value) = restore_staging::decode(value)
                .map_err(|why| format!("staged entry {key}: {why}"))?;
            puts.push(Op::Put {
                key,
                value: value.into(),
            });
        }
        if puts.len() as u64 != expected {
            return Err(format!(
                "restore {restore_id}: {} entries are staged, {expected} were expected",
                puts.len()
            ));
        }
        Ok(puts)
    }

    /// Apply a batch of operations and return the difference it made, in key order.
    fn apply_ops(&mut self, log_index: u64, ops: Vec<Op>) -> Vec<Change> {
        // Each touched key's value before the batch and after it, so a batch that puts
        // and then deletes the same key reports what the batch did as a whole. The value
        // after is kept here rather than looked up again: one walk of the map per op.
        // A std map: a batch is small, and only its key order matters.
        let mut touched: BTreeMap<Arc<str>, (Option<Bytes>, Option<Bytes>)> = BTreeMap::new();
        for op in ops {
            let (key, value) = match op {
                Op::Put { key, value } => (Arc::<str>::from(key), Some(value)),
                Op::Delete { key }
                    if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::DropDeletes) =>
                {
                    let _ = key;
                    continue;
                }
                Op::Delete { key } => (Arc::<str>::from(key), None),
            };
            let previous = match &value {
                Some(value) => self.map.insert(key.clone(), value.clone()),
                None => self.map.remove(&key),
            };
            match touched.entry(key) {
                std::collections::btree_map::Entry::Occupied(mut seen) => seen.get_mut().1 = value,
                std::collections::btree_map::Entry::Vacant(first) => {
                    first.insert((previous, value));
                }
            }
        }
        // Whether a replication state is stored after this batch. While it is, the
        // WAL buffer keeps each replicated change and the Merkle index follows them
        // (built from the whole map once, when the state is first stored). While it
        // is not, nobody streams or syncs from this state: the WAL only counts, and
        // there is no index.
        let replicating = touched
            .get(REPLICATION_STATE_KEY)
            .map_or(self.merkle.is_some(), |(_, current)| current.is_some());
        let build_index = replicating && self.merkle.is_none();
        if !replicating {
            self.merkle = None;
            self.wal.forget_entries();
        }
        let mut changes = Vec::with_capacity(touched.len());
        for (key, (previous, current)) in touched {
            if current == previous {
                continue;
            }
            let class = class_of(&key);
            if class == KeyClass::Replicated {
                if replicating {
                    self.wal.append(log_index, key.clone(), current.clone());
                } else {
                    self.wal.advance();
                }
                if let Some(merkle) = self.merkle.as_mut() {
                    let group = replicated_group(&key).expect("a replicated key has a group");
                    merkle.apply(key.clone(), &group, current.as_deref());
                }
            }
            changes.push(Change {
                key,
                class,
                value: current,
            });
        }
        if build_index {
            self.merkle = Some(index_of(&self.map));
        }
        changes
    }

    /// On a performance secondary, the primary's WAL index this state reflects (0 before
    /// any, and on a cluster that is not a secondary).
    pub fn last_remote_wal(&self) -> u64 {
        self.map
            .get(LAST_REMOTE_WAL_KEY)
            .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok())
            .unwrap_or(0)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// Vault's list semantics: the immediate children of `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        list_children(
            self.map
                .range::<_, str>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .map(|(key, _)| &**key)
                .take_while(|key| key.starts_with(prefix)),
            prefix,
        )
    }

    /// The keys and values from `start` on, in key order.
    pub fn range_from<'a>(
        &'a self,
        start: std::ops::Bound<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a Bytes)> {
        self.map
            .range::<_, str>((start, std::ops::Bound::Unbounded))
            .map(|(key, value)| (&**key, value))
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.map.iter().map(|(key, value)| (&**key, value))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn wal(&self) -> &WalBuffer {
        &self.wal
    }

    /// The Merkle index of the replicated keys of this state, kept while a replication
    /// state is stored (`None` on a cluster that never enabled replication).
    pub fn merkle(&self) -> Option<&MerkleIndex> {
        self.merkle.as_ref()
    }

    /// The Merkle index built afresh from the stored keys: what the incremental one
    /// must equal (`sys/replication/merkle-check` compares them).
    pub fn merkle_rebuilt(&self) -> MerkleIndex {
        index_of(&self.map)
    }

    pub fn last_applied(&self) -> Option<&LogId> {
        self.last_applied.as_ref()
    }

    pub fn last_membership(&self) -> &StoredMembership {
        &self.last_membership
    }

    /// The metadata a snapshot of this state carries.
    pub fn snapshot_meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.last_applied.clone(),
            last_membership: self.last_membership.clone(),
        }
    }

    /// The snapshot body: the version byte, then the map and the WAL buffer.
    pub fn encode_snapshot(&self) -> Result<Vec<u8>, SnapshotFormatError> {
        self.encode_snapshot_with_capacity(0)
    }

    /// [`AppliedState::encode_snapshot`] into a buffer of `capacity` bytes to start
    /// with (the state machine passes the last snapshot's size and some): a buffer
    /// grown by doubling from empty left its smaller steps (up to 32 MiB, below glibc's
    /// largest mmap threshold) as free space in the heap, which the process kept.
    pub fn encode_snapshot_with_capacity(
        &self,
        capacity: usize,
    ) -> Result<Vec<u8>, SnapshotFormatError> {
        let (last_wal_index, wal) = self.wal.records();
        let body = SnapshotBodyRef {
            entries: MapEntries(&self.map),
            last_wal_index,
            wal,
        };
        let mut bytes = Vec::with_capacity(capacity.clamp(1, SNAPSHOT_BYTES_MAX));
        bytes.push(SNAPSHOT_FORMAT_VERSION);
        bincode::serde::encode_into_std_write(&body, &mut bytes, bincode::config::standard())
            .map_err(|error| SnapshotFormatError::Encode(error.to_string()))?;
        if bytes.len() > SNAPSHOT_BYTES_MAX {
            return Err(SnapshotFormatError::TooLarge { bytes: bytes.len() });
        }
        Ok(bytes)
    }

    /// The state a snapshot describes: `meta` from Raft, `bytes` from
    /// [`AppliedState::encode_snapshot`] on this or another node.
    pub fn decode_snapshot(
        meta: &SnapshotMeta,
        bytes: &[u8],
        wal_entries_max: usize,
    ) -> Result<Self, SnapshotFormatError> {
        if bytes.len() > SNAPSHOT_BYTES_MAX {
            return Err(SnapshotFormatError::TooLarge { bytes: bytes.len() });
        }
        let (&version, body) = bytes.split_first().ok_or(SnapshotFormatError::Empty)?;
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotFormatError::UnknownVersion { found: version });
        }
        let body: SnapshotBody = record::decode_body(body).map_err(SnapshotFormatError::Invalid)?;
        let mut map = OrdMap::new();
        let mut previous: Option<Arc<str>> = None;
        for (key, value) in body.entries {
            let key = Arc::<str>::from(key);
            if previous.as_ref().is_some_and(|previous| *previous >= key) {
                return Err(SnapshotFormatError::Invalid(format!(
                    "key {key:?} is out of order"
                )));
            }
            map.insert(key.clone(), Bytes::from(value.0));
            previous = Some(key);
        }
        let mut wal = WalBuffer::from_records(body.last_wal_index, body.wal, wal_entries_max)
            .map_err(SnapshotFormatError::Invalid)?;
        let replicating = map.contains_key(REPLICATION_STATE_KEY);
        if !replicating {
            // A snapshot written before the buffer followed the replication state may
            // carry entries; this node keeps none, as one that applied the log does.
            wal.forget_entries();
        }
        let merkle = replicating.then(|| index_of(&map));
        Ok(Self {
            map,
            wal,
            merkle,
            last_applied: meta.last_log_id.clone(),
            last_membership: meta.last_membership.clone(),
        })
    }

    /// The report for installing this state from a snapshot: everything may have
    /// changed; no WAL index is given (the snapshot carries the WAL as it was).
    pub fn installed_report(&self) -> Applied {
        let next_wal_index = self.wal.last_wal_index() + 1;
        Applied {
            refused: None,
            log_index: self.last_applied.as_ref().map_or(0, |log_id| log_id.index),
            wal_indexes: next_wal_index..next_wal_index,
            changes: Changes::Everything,
        }
    }
}

#[cfg(test)]
mod tests;
