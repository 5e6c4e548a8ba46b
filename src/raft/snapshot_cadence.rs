//! When a node builds its next snapshot: a pure rule over what was applied since the
//! last one.
//!
//! Vault's `snapshot_threshold` alone (a snapshot every 8,192 entries) makes the cost of
//! snapshots grow with the data: every build encodes and writes the whole key space, so
//! at 100,000 secrets (an 88 MB body) a node writing 7,000 entries a second wrote a
//! snapshot every 1.2 s, 70 MB/s of snapshot beside the log's small fsyncs, and its write
//! rate fell to 0.81–0.83 of the same node empty. Vault itself paces its checks by
//! `snapshot_interval` (120 s), which lets the log grow without bound between them; Arca
//! keeps the log's entries in memory, so it paces by bytes instead: a snapshot is due once
//! `snapshot_threshold` entries were applied since the last one AND the state they wrote
//! is at least [`SNAPSHOT_BYTES_PER_APPLIED_BYTE_MAX`]-th of the last snapshot's body.
//! A snapshot then costs at most that many bytes of snapshot per byte written, whatever
//! the size of the data; a small key space snapshots exactly as before (the entry count
//! decides). What a restart replays is what was written since the last snapshot: about
//! half its size or `snapshot_threshold` entries, whichever is more, plus what was
//! applied while the next build ran.

use crate::raft::Command;
use crate::raft::types::Entry;
use crate::storage::Op;
use openraft::EntryPayload;

/// The most snapshot bytes written per byte of state applied since the last snapshot.
/// Higher snapshots more often (less log kept in memory and replayed at restart), lower
/// spends less of the disk and the CPU on snapshots.
///
/// It was 4 until the log's entries shared their values with the applied map (`Op`'s
/// value is a `Bytes`): the log kept twice as long now holds mostly values the map holds
/// anyway. At 100,000 secrets a profile had snapshots at ~15 µs of a write's ~186; with
/// 2, writes there ran at 0.92–0.98 of the same node empty against 0.87–0.91 with 4, in
/// three interleaved pairs (`benches/README.md`, stop 30).
pub const SNAPSHOT_BYTES_PER_APPLIED_BYTE_MAX: u64 = 2;

/// What was applied since the last snapshot (or since start, before any).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedSinceSnapshot {
    pub entries: u64,
    /// The bytes of the keys and values the entries wrote ([`entry_state_bytes`]).
    pub bytes: u64,
}

impl AppliedSinceSnapshot {
    pub fn add(&mut self, entry_bytes: u64) {
        self.entries = self.entries.saturating_add(1);
        self.bytes = self.bytes.saturating_add(entry_bytes);
    }
}

impl std::ops::Sub for AppliedSinceSnapshot {
    type Output = AppliedSinceSnapshot;

    fn sub(self, earlier: AppliedSinceSnapshot) -> AppliedSinceSnapshot {
        AppliedSinceSnapshot {
            entries: self.entries.saturating_sub(earlier.entries),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// A node's running account for [`snapshot_due`]: what it applied since it opened, what
/// its latest snapshot covers, and when it last asked for one.
#[derive(Debug, Clone, Default)]
pub struct SnapshotCadence {
    /// `snapshot_threshold`; `None` asks for nothing (openraft's own policy decides,
    /// or nothing does: the state machine's unit tests).
    threshold_entries: Option<u64>,
    /// Everything applied since the state machine opened.
    applied: AppliedSinceSnapshot,
    /// The part of `applied` the latest snapshot covers.
    at_snapshot: AppliedSinceSnapshot,
    /// The part of `applied` there was when a snapshot was last asked for: a request
    /// that is not answered (a build already running) is asked again only after
    /// another threshold's worth, as openraft's own policy does.
    at_request: AppliedSinceSnapshot,
    snapshot_bytes: u64,
}

impl SnapshotCadence {
    /// The account of a state machine that opened with a snapshot of `snapshot_bytes`.
    pub fn new(snapshot_bytes: u64) -> Self {
        Self {
            snapshot_bytes,
            ..Self::default()
        }
    }

    pub fn set_threshold(&mut self, threshold_entries: u64) {
        self.threshold_entries = Some(threshold_entries);
    }

    /// What has been applied since opening (a snapshot build notes it with its view).
    pub fn applied_total(&self) -> AppliedSinceSnapshot {
        self.applied
    }

    /// Count one applied entry; true when a snapshot should be asked for now.
    pub fn entry_applied(&mut self, entry_bytes: u64) -> bool {
        self.applied.add(entry_bytes);
        let Some(threshold) = self.threshold_entries else {
            return false;
        };
        let base = if self.at_request.entries > self.at_snapshot.entries {
            self.at_request
        } else {
            self.at_snapshot
        };
        if snapshot_due(threshold, self.applied - base, self.snapshot_bytes) {
            self.at_request = self.applied;
            return true;
        }
        false
    }

    /// A snapshot of `bytes` covering `covering` (a total from [`Self::applied_total`])
    /// became current. Only a newer one moves the account.
    pub fn snapshot_taken(&mut self, covering: AppliedSinceSnapshot, bytes: u64) {
        if covering.entries >= self.at_snapshot.entries {
            self.at_snapshot = covering;
            self.snapshot_bytes = bytes;
        }
    }
}

/// Whether a snapshot is due after `since`, with `threshold_entries` the configured
/// `snapshot_threshold` and `last_snapshot_bytes` the body of the latest snapshot (0
/// before any).
pub fn snapshot_due(
    threshold_entries: u64,
    since: AppliedSinceSnapshot,
    last_snapshot_bytes: u64,
) -> bool {
    since.entries >= threshold_entries
        && since
            .bytes
            .saturating_mul(SNAPSHOT_BYTES_PER_APPLIED_BYTE_MAX)
            >= last_snapshot_bytes
}

/// The bytes of state an entry writes: its keys and values. A deletion counts its key
/// (the snapshot shrinks by about that much). Entries that replace the whole key space
/// count like any other: a snapshot soon after them is what a restart wants.
pub fn entry_state_bytes(entry: &Entry) -> u64 {
    let ops: &[Op] = match &entry.payload {
        EntryPayload::Normal(Command::Apply { ops })
        | EntryPayload::Normal(Command::ApplyRemote { ops, .. })
        | EntryPayload::Normal(Command::ReplaceAll { ops })
        | EntryPayload::Normal(Command::ReplaceAllFromStaging { ops, .. }) => ops,
        _ => &[],
    };
    ops.iter()
        .map(|op| match op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        } as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(entries: u64, bytes: u64) -> AppliedSinceSnapshot {
        AppliedSinceSnapshot { entries, bytes }
    }

    #[test]
    fn a_small_key_space_snapshots_by_entry_count_alone() {
        // 8,192 entries of 100 bytes against a 200 KB snapshot: due at the threshold.
        assert!(!snapshot_due(8192, since(8191, 819_100), 200_000));
        assert!(snapshot_due(8192, since(8192, 819_200), 200_000));
        // Before any snapshot the body counts as empty.
        assert!(snapshot_due(8192, since(8192, 0), 0));
    }

    #[test]
    fn a_large_key_space_waits_for_half_its_snapshot_in_applied_bytes() {
        let snapshot = 88_000_000;
        assert!(!snapshot_due(8192, since(8192, 5_000_000), snapshot));
        assert!(!snapshot_due(8192, since(50_000, 43_999_999), snapshot));
        assert!(snapshot_due(8192, since(50_000, 44_000_000), snapshot));
        // Bytes alone never make it due before the entry threshold.
        assert!(!snapshot_due(8192, since(100, u64::MAX), snapshot));
    }

    #[test]
    fn snapshot_writes_stay_within_the_bound_per_applied_byte() {
        // Whatever the size, the bytes applied between two snapshots are at least half
        // the snapshot written at the end of them.
        for snapshot in [0u64, 1, 1_000, 1_000_000, 88_000_000, u64::MAX / 2] {
            for applied in [0u64, 10, 999_999, 22_000_000, u64::MAX / 8] {
                if snapshot_due(1, since(1, applied), snapshot) {
                    assert!(
                        applied.saturating_mul(SNAPSHOT_BYTES_PER_APPLIED_BYTE_MAX) >= snapshot
                    );
                }
            }
        }
    }

    #[test]
    fn the_account_asks_once_per_due_point_and_restarts_from_the_snapshot_taken() {
        let mut cadence = SnapshotCadence::new(2_000);
        // Without a threshold nothing is ever asked for.
        assert!(!(0..100).any(|_| cadence.entry_applied(1_000)));
        cadence = SnapshotCadence::new(2_000);
        cadence.set_threshold(10);
        let asked: Vec<u64> = (1..=25).filter(|_| cadence.entry_applied(100)).collect();
        // Ten entries of 100 bytes are half of 2,000: asked at 10, then (the request
        // unanswered) at 20.
        assert_eq!(asked, vec![10, 20]);
        // The snapshot asked for at 20 lands, larger: the next is due after half of
        // it, 80 entries of 100 bytes, not after 10.
        let covering = AppliedSinceSnapshot {
            entries: 20,
            bytes: 2_000,
        };
        cadence.snapshot_taken(covering, 16_000);
        let next = (26..=200).find(|_| cadence.entry_applied(100));
        assert_eq!(next, Some(100));
        // An older snapshot finishing late changes nothing: with its size (1 byte) the
        // next would be due after 10 entries, with the current one's after 80.
        cadence.snapshot_taken(
            AppliedSinceSnapshot {
                entries: 100,
                bytes: 10_000,
            },
            16_000,
        );
        cadence.snapshot_taken(covering, 1);
        assert!(!(0..79).any(|_| cadence.entry_applied(100)));
        assert!(cadence.entry_applied(100));
    }

    #[test]
    fn an_entry_counts_the_keys_and_values_it_writes() {
        use crate::raft::types::{LogId, TypeConfig};
        use openraft::alias::LeaderIdOf;
        use openraft::entry::RaftEntry;
        use openraft::vote::RaftLeaderIdExt;
        let log_id = LogId::new(LeaderIdOf::<TypeConfig>::new_committed(1, "n1".into()), 7);
        let ops = vec![
            Op::Put {
                key: "logical/a".into(),
                value: vec![0; 256].into(),
            },
            Op::Delete { key: "x".into() },
        ];
        let entry = Entry::new_normal(log_id.clone(), Command::Apply { ops });
        assert_eq!(entry_state_bytes(&entry), 9 + 256 + 1);
        assert_eq!(entry_state_bytes(&Entry::new_blank(log_id)), 0);
    }
}
