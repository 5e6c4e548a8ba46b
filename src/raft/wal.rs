//! The write-ahead log of replicated changes: every applied change to a replicated key
//! gets the next WAL index, and the most recent ones are kept in a bounded buffer for a
//! log shipper (Vault's `logshipper_buffer_length`).
//!
//! Owns the WAL index counter and the buffer. Events in: a replicated change at a log
//! index. Out: its WAL index. Invariants: indexes are dense (each one is the previous
//! plus one, starting at 1), the buffer holds a contiguous run of the newest indexes,
//! and it never holds more than `entries_max` entries.
//!
//! The buffer is a persistent vector, so a point-in-time view of the state machine
//! (which contains this buffer) is still an O(1) clone. It is part of every snapshot,
//! which is how it survives Raft log compaction and restarts: the log before a snapshot
//! is gone, but the WAL entries it produced are in the snapshot.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::storage::byte_string::{ByteBuf, RawBytes};

/// The default number of WAL entries kept (Vault's `logshipper_buffer_length`).
pub const WAL_BUFFER_ENTRIES_DEFAULT: usize = 16_384;
/// The most WAL entries a buffer may be configured to keep: each entry holds a key and
/// a value (up to the commit limit), so the bound keeps memory proportional to what an
/// operator can reason about.
pub const WAL_BUFFER_ENTRIES_MAX: usize = 1 << 20;

/// One replicated change: the key's new value, or `None` for a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    pub wal_index: u64,
    /// The Raft log index of the entry that made the change.
    pub log_index: u64,
    pub key: Arc<str>,
    pub value: Option<Bytes>,
}

/// The WAL counter and the newest entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalBuffer {
    /// The index of the newest WAL entry, 0 before any.
    last_wal_index: u64,
    recent: imbl::Vector<WalEntry>,
    entries_max: usize,
}

/// How a WAL entry is written in a snapshot.
#[derive(Serialize)]
pub(super) struct WalRecordRef<'a> {
    wal_index: u64,
    log_index: u64,
    key: &'a str,
    value: Option<RawBytes<'a>>,
}

/// How a WAL entry is read from a snapshot (the same layout as [`WalRecordRef`]).
#[derive(Deserialize)]
pub(super) struct WalRecord {
    wal_index: u64,
    log_index: u64,
    key: String,
    value: Option<ByteBuf>,
}

impl WalBuffer {
    /// An empty WAL keeping at most `entries_max` entries (clamped to 1 ..= the maximum).
    pub fn new(entries_max: usize) -> Self {
        Self {
            last_wal_index: 0,
            recent: imbl::Vector::new(),
            entries_max: entries_max.clamp(1, WAL_BUFFER_ENTRIES_MAX),
        }
    }

    /// The index of the newest WAL entry, 0 before any.
    pub fn last_wal_index(&self) -> u64 {
        self.last_wal_index
    }

    /// The oldest WAL index still in the buffer, if any.
    pub fn first_buffered_wal_index(&self) -> Option<u64> {
        self.recent.front().map(|entry| entry.wal_index)
    }

    pub fn entries_max(&self) -> usize {
        self.entries_max
    }

    /// Every buffered entry, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &WalEntry> {
        self.recent.iter()
    }

    /// The entries after `wal_index`, oldest first; `None` when some of them have
    /// already left the buffer (the caller must then start from a full copy).
    pub fn entries_after(&self, wal_index: u64) -> Option<impl Iterator<Item = &WalEntry>> {
        let first = self
            .first_buffered_wal_index()
            .unwrap_or(self.last_wal_index + 1);
        if wal_index + 1 < first || wal_index > self.last_wal_index {
            return None;
        }
        let skip = (wal_index + 1 - first) as usize;
        Some(self.recent.iter().skip(skip))
    }

    /// Count a replicated change without keeping it: on a cluster that stores no
    /// replication state nobody streams the buffer, so the apply core empties it
    /// ([`WalBuffer::forget_entries`]) and only the counter moves (it still orders
    /// reads, `X-Vault-Index`).
    pub fn advance(&mut self) {
        debug_assert!(
            self.recent.is_empty(),
            "forget the entries before advancing"
        );
        self.last_wal_index += 1;
    }

    /// Drop every buffered entry (an empty buffer is a contiguous run too); the
    /// counter stays.
    pub fn forget_entries(&mut self) {
        if !self.recent.is_empty() {
            self.recent = imbl::Vector::new();
        }
    }

    /// Record a replicated change and return its WAL index.
    pub fn append(&mut self, log_index: u64, key: Arc<str>, value: Option<Bytes>) -> u64 {
        let wal_index = self.last_wal_index + 1;
        self.recent.push_back(WalEntry {
            wal_index,
            log_index,
            key,
            value,
        });
        while self.recent.len() > self.entries_max {
            self.recent.pop_front();
        }
        self.last_wal_index = wal_index;
        assert!(
            self.recent
                .front()
                .is_none_or(|front| front.wal_index + self.recent.len() as u64 - 1 == wal_index),
            "the WAL buffer must hold a contiguous run ending at the newest index"
        );
        wal_index
    }

    /// The buffer as a snapshot writes it.
    pub(super) fn records(&self) -> (u64, Vec<WalRecordRef<'_>>) {
        let records = self
            .recent
            .iter()
            .map(|entry| WalRecordRef {
                wal_index: entry.wal_index,
                log_index: entry.log_index,
                key: &entry.key,
                value: entry.value.as_deref().map(RawBytes),
            })
            .collect();
        (self.last_wal_index, records)
    }

    /// Rebuild a buffer from a snapshot, keeping the newest `entries_max` entries (the
    /// node that wrote the snapshot may have kept more). Refuses a buffer whose indexes
    /// are not a contiguous run ending at `last_wal_index`.
    pub(super) fn from_records(
        last_wal_index: u64,
        records: Vec<WalRecord>,
        entries_max: usize,
    ) -> Result<Self, String> {
        let mut buffer = Self::new(entries_max);
        buffer.last_wal_index = last_wal_index;
        let count = records.len() as u64;
        if count > last_wal_index {
            return Err(format!(
                "{count} WAL entries cannot end at WAL index {last_wal_index}"
            ));
        }
        let first = last_wal_index + 1 - count;
        for (offset, record) in records.into_iter().enumerate() {
            let expected = first + offset as u64;
            if record.wal_index != expected {
                return Err(format!(
                    "WAL entry {} found where {expected} was expected",
                    record.wal_index
                ));
            }
            buffer.recent.push_back(WalEntry {
                wal_index: record.wal_index,
                log_index: record.log_index,
                key: Arc::from(record.key),
                value: record.value.map(|value| Bytes::from(value.0)),
            });
            if buffer.recent.len() > buffer.entries_max {
                buffer.recent.pop_front();
            }
        }
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Arc<str> {
        Arc::from(text)
    }

    #[test]
    fn indexes_are_dense_and_the_buffer_keeps_the_newest() {
        let mut wal = WalBuffer::new(3);
        for log_index in 1..=5 {
            assert_eq!(wal.append(log_index, key("k"), None), log_index);
        }
        assert_eq!(wal.last_wal_index(), 5);
        let kept: Vec<u64> = wal.iter().map(|entry| entry.wal_index).collect();
        assert_eq!(kept, vec![3, 4, 5]);

        // A reader that has seen index 2 can continue; one that has seen only 1 cannot.
        let after_two: Vec<u64> = wal
            .entries_after(2)
            .unwrap()
            .map(|entry| entry.wal_index)
            .collect();
        assert_eq!(after_two, vec![3, 4, 5]);
        assert!(wal.entries_after(1).is_none());
        assert_eq!(wal.entries_after(5).unwrap().count(), 0);
        assert!(wal.entries_after(6).is_none(), "a reader ahead of the WAL");
    }

    #[test]
    fn a_snapshot_buffer_must_be_contiguous() {
        let record = |wal_index| WalRecord {
            wal_index,
            log_index: 1,
            key: "k".to_string(),
            value: None,
        };
        let buffer = WalBuffer::from_records(7, vec![record(6), record(7)], 1).unwrap();
        assert_eq!(buffer.first_buffered_wal_index(), Some(7));
        assert!(WalBuffer::from_records(7, vec![record(5), record(7)], 4).is_err());
        assert!(WalBuffer::from_records(1, vec![record(1), record(2)], 4).is_err());
    }
}
