//! The secondary's decisions, as pure functions: the operations a streamed batch or a
//! sync page becomes, and what a finished sync must delete. The pull loop in
//! `manager.rs` calls these and does the waiting.

use std::collections::BTreeSet;

use super::merkle::{
    Hash, MerkleDiff, MerkleDiffError, MerkleIndex, MerkleRequest, MerkleResponse, SyncPlan,
};
use super::protocol::WireEntry;
use crate::storage::KeyGroup;
use crate::storage::Op;

/// Whether a secondary's syncs keep up with its primary's writes. After a sync, the
/// first answer either streams (the sync kept up) or asks for another sync: the
/// primary's writes overtook it, and its position had already left the primary's
/// log-shipper buffer. Overtaken twice in a row is reported (once can be a burst).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncPace {
    just_synced: bool,
    overtaken_in_a_row: u32,
}

impl SyncPace {
    /// Syncs overtaken in a row before the secondary says it cannot keep up.
    pub const REPORTED_AFTER: u32 = 2;

    pub fn synced(&mut self) {
        self.just_synced = true;
    }

    /// The primary streamed: whatever came before, the secondary keeps up now.
    pub fn streamed(&mut self) {
        *self = Self::default();
    }

    /// The primary asked for a sync. `Some(n)`: this ended the `n`th sync in a row to be
    /// overtaken, enough to report.
    pub fn asked_to_sync(&mut self) -> Option<u32> {
        if !std::mem::take(&mut self.just_synced) {
            return None;
        }
        self.overtaken_in_a_row += 1;
        self.is_behind().then_some(self.overtaken_in_a_row)
    }

    /// Reported as behind, until it streams again.
    pub fn is_behind(&self) -> bool {
        self.overtaken_in_a_row >= Self::REPORTED_AFTER
    }
}

/// The storage operations of streamed entries, in WAL order.
pub fn batch_ops(entries: Vec<WireEntry>) -> Vec<Op> {
    entries
        .into_iter()
        .map(|entry| match entry.value {
            Some(value) => Op::Put {
                key: entry.key,
                value: value.into(),
            },
            None => Op::Delete { key: entry.key },
        })
        .collect()
}

/// One Merkle sync as the secondary runs it, without IO: first the diff (Merkle
/// requests answered by the primary's pinned view), then the fetch of the keys that
/// differ (in chunks), then the deletes, applied in the step that records the sync
/// point. The pull loop moves the calls; the model and the fuzz target drive the same
/// code with the primary's view in hand.
pub struct MerkleSync {
    diff: Option<MerkleDiff>,
    fetch: std::collections::VecDeque<String>,
    delete: Vec<String>,
    /// The primary's WAL index the pinned view reflects.
    pub wal_index: u64,
    /// The root the secondary's view must have once the sync is done.
    pub expected_root: Hash,
    fetched: usize,
}

/// What the sync needs from the primary next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncCall {
    /// Answer these Merkle requests from the pinned view.
    Merkle(Vec<MerkleRequest>),
    /// The values of these keys in the pinned view.
    Fetch(Vec<String>),
    /// Nothing: apply [`MerkleSync::final_ops`] and record the sync point.
    Done,
}

impl MerkleSync {
    /// Start from this cluster's index and the primary's group roots for its view.
    pub fn new(
        local: &MerkleIndex,
        remote_group_roots: Vec<(KeyGroup, Hash)>,
        wal_index: u64,
        expected_root: Hash,
    ) -> Result<Self, MerkleDiffError> {
        Ok(Self {
            diff: Some(MerkleDiff::new(local, remote_group_roots)?),
            fetch: Default::default(),
            delete: Vec::new(),
            wal_index,
            expected_root,
            fetched: 0,
        })
    }

    pub fn next_call(&mut self, fetch_max: usize) -> SyncCall {
        if let Some(diff) = &mut self.diff {
            let mut requests = Vec::new();
            while let Some(request) = diff.next_request() {
                requests.push(request);
            }
            if !requests.is_empty() {
                return SyncCall::Merkle(requests);
            }
            let diff = self.diff.take().expect("checked above");
            let plan = diff.into_plan().unwrap_or(SyncPlan {
                fetch: Vec::new(),
                delete: Vec::new(),
            });
            self.fetch = plan.fetch.iter().map(|key| key.to_string()).collect();
            self.delete = plan.delete.iter().map(|key| key.to_string()).collect();
        }
        if self.fetch.is_empty() {
            return SyncCall::Done;
        }
        let count = fetch_max.clamp(1, self.fetch.len());
        SyncCall::Fetch(self.fetch.iter().take(count).cloned().collect())
    }

    pub fn on_merkle(&mut self, responses: Vec<MerkleResponse>) -> Result<(), MerkleDiffError> {
        for response in responses {
            let Some(diff) = self.diff.as_mut() else {
                return Err(MerkleDiffError::Unexpected {
                    request: response.request(),
                });
            };
            diff.on_response(response)?;
        }
        Ok(())
    }

    /// The primary's values for fetched keys: the puts to apply now (a key the pinned
    /// view no longer has is deleted). Keys not answered stay queued.
    pub fn on_fetched(&mut self, entries: super::protocol::FetchedKeys) -> Vec<Op> {
        let answered: BTreeSet<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
        self.fetch.retain(|key| !answered.contains(key.as_str()));
        self.fetched += entries.len();
        entries
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => Op::Put {
                    key,
                    value: value.into(),
                },
                None => Op::Delete { key },
            })
            .collect()
    }

    /// The deletes that finish the sync, to apply with the sync point.
    pub fn final_ops(&self) -> Vec<Op> {
        if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::SyncKeepsExtraKeys) {
            return Vec::new();
        }
        self.delete
            .iter()
            .map(|key| Op::Delete { key: key.clone() })
            .collect()
    }

    /// Keys fetched and deleted, for the log line.
    pub fn counts(&self) -> (usize, usize) {
        (self.fetched, self.delete.len())
    }
}

#[cfg(test)]
mod sync_pace_tests {
    use super::SyncPace;

    #[test]
    fn a_secondary_is_behind_when_two_syncs_in_a_row_are_overtaken_until_it_streams() {
        let mut pace = SyncPace::default();
        // Asked to sync while streaming (an outage): no sync was overtaken.
        assert_eq!(pace.asked_to_sync(), None);
        pace.synced();
        assert_eq!(pace.asked_to_sync(), None, "once can be a burst");
        assert!(!pace.is_behind());
        pace.synced();
        assert_eq!(pace.asked_to_sync(), Some(2));
        assert!(pace.is_behind());
        // Asked again without a sync in between: nothing new to report, still behind.
        assert_eq!(pace.asked_to_sync(), None);
        assert!(pace.is_behind());
        pace.synced();
        assert_eq!(pace.asked_to_sync(), Some(3));
        // A sync that keeps up clears it.
        pace.synced();
        pace.streamed();
        assert!(!pace.is_behind());
        pace.synced();
        assert_eq!(pace.asked_to_sync(), None);
    }
}
