//! Raft snapshots for backup and restore: `sys/storage/raft/snapshot` (save and
//! restore) and `sys/storage/raft/snapshot-force` (restore another cluster's).
//!
//! A save is a point-in-time view of this node's applied key space (the active node's,
//! so everything committed before the request), encoded as a
//! [`saved_snapshot`](crate::raft::saved_snapshot) file. Values stay the barrier's
//! ciphertext; the only thing the barrier adds is the sealed content hash.
//!
//! A restore is staged, then swapped in. The snapshot's entries are written under the
//! restore-staging prefix ([`RESTORE_STAGING`], class ignored: never replicated, never
//! saved) in ordinary Raft batches of at most [`RESTORE_STAGING_BATCH_BYTES_MAX`]; then
//! one small entry ([`Command::ReplaceAllFromStaging`](crate::raft::Command)) replaces
//! the key space with the staged entries on every node at the same log index,
//! atomically, and drops the staging. A crash or a failed batch leaves the old key
//! space (the swap is refused unless exactly the snapshot's entries are staged), and
//! the staging is cleared: at once when the restore fails, by the next restore, or by
//! the next node to become active. So a snapshot is bounded by
//! [`saved_snapshot::SAVED_SNAPSHOT_BYTES_MAX`], not by the size of one Raft entry. The swap also
//! writes [`SNAPSHOT_RESTORE_KEY`]; each node
//! watches for that key to change and then reloads what it holds above the barrier
//! (the keyring, and on becoming active the mounts, policies and token caches). A
//! keyring the node cannot open (a forced restore of a cluster with other keys) seals
//! the node, as Vault seals a Shamir cluster whose keys a restore replaced: it is then
//! unsealed with the snapshot's unseal keys.
//!
//! Refused before anything is written: damaged, truncated or unknown-version files,
//! another cluster's snapshot without `-force`, anything beyond the named limits, and a
//! restore on a performance secondary (its replicated data is its primary's; restoring
//! it would fork the two, and its WAL position would move backwards).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Core;
use crate::barrier::BarrierError;
use crate::logical::LogicalError;
use crate::raft::Subscription;
use crate::raft::saved_snapshot::{self, SEALED_SHA256_LABEL, SavedSnapshot, SavedSnapshotHeader};
use crate::storage::key_space::{RESTORE_STAGING, SNAPSHOT_RESTORE_KEY, restore_staging_key};
use crate::storage::{Op, SharedBackend, StorageError, restore_staging};

/// Vault's words for a snapshot taken under other keys, restored without force.
pub const FOREIGN_SNAPSHOT_MESSAGE: &str = "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the snapshot-force API to bypass this check";

/// What [`SNAPSHOT_RESTORE_KEY`] records: the last restore (plaintext below the
/// barrier, like the seal configuration: no secret, and readable by a node whose
/// keyring the restore replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// Unique per restore, so restoring the same file twice still changes the key.
    pub restore_id: String,
    pub restored_unix: i64,
    pub forced: bool,
    pub snapshot_cluster_id: String,
    pub snapshot_raft_index: u64,
}

/// The most key and value bytes one staging batch carries: small enough that each
/// entry crosses the cluster channel and reaches a follower's disk well within the
/// AppendEntries allowance on a loaded machine (2 MiB entries did not, in the debug
/// build on two busy cores), large enough that a 256 MiB snapshot takes about a
/// thousand Raft entries. One entry larger than this goes in a batch of its own.
pub const RESTORE_STAGING_BATCH_BYTES_MAX: usize = 256 * 1024;
/// How long a restore waits for a lagging voter that shows no progress (its matched
/// index does not move) before it answers: long enough for a Raft snapshot of a large
/// store to reach a follower, during which the matched index stands still.
const RESTORE_REPLICATED_STALL: std::time::Duration = std::time::Duration::from_secs(30);
/// The most a restore waits in all, however steadily the lagging voters advance. A fixed
/// 30 s bound was too short on two loaded cores: a follower still catching up on a
/// 42 MiB restore was left behind, the leader was unsealed under the snapshot's CA,
/// and the follower could never catch up (a flaky `raft_snapshot` test showed it).
const RESTORE_REPLICATED_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(300);
const RESTORE_REPLICATED_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// The entries a restore writes: the snapshot's, less the record of an earlier restore
/// it may carry (this restore writes its own). Refuses, before anything is written, an
/// entry that could not be staged or stored: a key outside the key-space registry or
/// under the staging prefix itself, or one entry larger than a Raft commit carries.
pub fn restore_entries(snapshot: SavedSnapshot) -> Result<Vec<(String, Vec<u8>)>, LogicalError> {
    let invalid = |why: String| LogicalError::BadRequest(format!("invalid snapshot: {why}"));
    let entries: Vec<(String, Vec<u8>)> = snapshot
        .entries
        .into_iter()
        .filter(|(key, _)| key != SNAPSHOT_RESTORE_KEY)
        .collect();
    for (key, value) in &entries {
        crate::storage::validate_key(key).map_err(|error| invalid(error.to_string()))?;
        crate::storage::classify(key).map_err(|error| invalid(error.to_string()))?;
        if key.starts_with(RESTORE_STAGING) {
            return Err(invalid(format!(
                "key {key:?} is under the restore-staging prefix"
            )));
        }
        let staged_bytes = staged_entry_bytes(key, value);
        if staged_bytes > crate::raft::node::COMMIT_BYTES_MAX {
            return Err(invalid(format!(
                "entry {key:?} of {staged_bytes} bytes exceeds the limit of {} for one commit",
                crate::raft::node::COMMIT_BYTES_MAX
            )));
        }
    }
    Ok(entries)
}

/// What one entry weighs in a staging batch: its staging key and encoded value.
fn staged_entry_bytes(key: &str, value: &[u8]) -> usize {
    // The staging key: the prefix, a 36-character uuid, a slash, 20 digits.
    const STAGING_KEY_BYTES: usize = RESTORE_STAGING.len() + 36 + 1 + 20;
    const STAGED_HEADER_BYTES: usize = 5;
    STAGING_KEY_BYTES + STAGED_HEADER_BYTES + key.len() + value.len()
}

/// The staging batches of `entries`, in order: puts under `restore_id`'s staging prefix,
/// each batch at most [`RESTORE_STAGING_BATCH_BYTES_MAX`] bytes (or one larger entry
/// alone) and [`crate::storage::BATCH_OPS_MAX`] operations. Built lazily, so the
/// entries are encoded one batch at a time.
pub fn staging_batches(
    restore_id: &str,
    entries: Vec<(String, Vec<u8>)>,
) -> impl Iterator<Item = Vec<Op>> + Send + use<> {
    let restore_id = restore_id.to_string();
    let mut entries = entries.into_iter().enumerate().peekable();
    std::iter::from_fn(move || {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some((_, (key, value))) = entries.peek() {
            let entry_bytes = staged_entry_bytes(key, value);
            let full = batch.len() == crate::storage::BATCH_OPS_MAX
                || (!batch.is_empty() && bytes + entry_bytes > RESTORE_STAGING_BATCH_BYTES_MAX);
            if full {
                break;
            }
            let (ordinal, (key, value)) = entries.next().expect("peeked");
            bytes += entry_bytes;
            batch.push(Op::Put {
                key: restore_staging_key(&restore_id, ordinal as u64),
                value: restore_staging::encode(&key, &value).into(),
            });
        }
        (!batch.is_empty()).then_some(batch)
    })
}

/// Stage `entries` and swap them in with `record_ops`; the log index of the swap. On
/// any failure the staging is cleared (best effort: else the next active node clears
/// it) and the key space is as it was.
async fn stage_and_swap(
    backend: SharedBackend,
    restore_id: String,
    entries: Vec<(String, Vec<u8>)>,
    record_ops: Vec<Op>,
) -> Result<u64, LogicalError> {
    // Leftovers of an abandoned restore would only cost memory; clearing them first
    // keeps at most one restore's staging at a time.
    backend
        .clear_restore_staging()
        .await
        .map_err(|error| LogicalError::Unavailable(error.to_string()))?;
    let count = entries.len() as u64;
    let staged = async {
        for batch in staging_batches(&restore_id, entries) {
            backend.commit(batch).await?;
        }
        backend
            .replace_all_from_staging(restore_id.clone(), count, record_ops)
            .await?
            .map_err(|why| {
                StorageError::Unavailable(format!("the staged restore was refused: {why}"))
            })
    }
    .await;
    match staged {
        Ok(index) => Ok(index),
        Err(error) => {
            if let Err(clear_error) = backend.clear_restore_staging().await {
                tracing::warn!(
                    %restore_id,
                    error = %clear_error,
                    "a failed restore's staging could not be cleared now; the next active node clears it"
                );
            }
            Err(LogicalError::Unavailable(format!(
                "the snapshot restore failed and changed nothing: {error}"
            )))
        }
    }
}

fn internal(error: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(error.to_string())
}

impl Core {
    /// `GET sys/storage/raft/snapshot` on the active node: the whole key space.
    pub async fn save_snapshot(&self) -> Result<Vec<u8>, LogicalError> {
        let view = self.cluster.backend().applied_view().ok_or_else(|| {
            LogicalError::BadRequest("snapshots need integrated storage (raft)".into())
        })?;
        let raft_index = view.last_applied().map_or(0, |log_id| log_id.index);
        let raft_term = self.cluster.indexes().term;
        let cluster_id = self
            .cluster_info()
            .map(|info| info.cluster_id)
            .unwrap_or_default();
        let created_unix = self.env.clock.unix_seconds();
        let barrier = self.barrier.clone();
        // Encoding walks every key (seconds at the limit): off the async workers.
        let file = crate::env::runtime::blocking(move || -> Result<Vec<u8>, LogicalError> {
            // A restore's staging is not data: it would be restored as plain keys.
            let entries = view
                .iter()
                .filter(|(key, _)| !key.starts_with(RESTORE_STAGING))
                .map(|(key, value)| (key, &value[..]));
            let content = saved_snapshot::encode_content(entries)
                .map_err(|error| internal(format!("cannot save a snapshot: {error}")))?;
            let sealed = barrier.seal_detached(SEALED_SHA256_LABEL, &content.sha256)?;
            let header = SavedSnapshotHeader {
                cluster_id,
                raft_index,
                raft_term,
                created_unix,
                entries: content.entries,
                content_bytes: content.bytes.len() as u64,
                content_sha256: hex::encode(content.sha256),
                sealed_sha256: hex::encode(sealed),
            };
            saved_snapshot::assemble(&header, &content)
                .map_err(|error| internal(format!("cannot save a snapshot: {error}")))
        })
        .await?;
        tracing::info!(raft_index, bytes = file.len(), "saved a Raft snapshot");
        Ok(file)
    }

    /// `POST sys/storage/raft/snapshot[-force]` on the active node.
    pub async fn restore_snapshot(
        self: &Arc<Self>,
        bytes: &[u8],
        force: bool,
    ) -> Result<(), LogicalError> {
        if self.barrier.is_replicated_read_only() {
            return Err(LogicalError::BadRequest(
                "cannot restore a snapshot on a performance secondary: its replicated data is its primary's; restore the primary, or disable replication on this cluster first".into(),
            ));
        }
        let snapshot = saved_snapshot::decode(bytes)
            .map_err(|error| LogicalError::BadRequest(format!("invalid snapshot: {error}")))?;
        if !force && !self.sealed_hash_matches(&snapshot.header) {
            return Err(LogicalError::BadRequest(FOREIGN_SNAPSHOT_MESSAGE.into()));
        }
        let record = RestoreRecord {
            restore_id: self.env.rng.uuid(),
            restored_unix: self.env.clock.unix_seconds(),
            forced: force,
            snapshot_cluster_id: snapshot.header.cluster_id.clone(),
            snapshot_raft_index: snapshot.header.raft_index,
        };
        let header = snapshot.header.clone();
        let entries = restore_entries(snapshot)?;
        let record_ops = vec![Op::Put {
            key: SNAPSHOT_RESTORE_KEY.to_string(),
            value: serde_json::to_vec(&record)
                .expect("a restore record serializes")
                .into(),
        }];
        // Its own task, the wait and the hand-over included: a client that hangs up
        // mid-restore must not leave it half-staged with nobody to finish or clear it,
        // nor this node leading with a closed barrier.
        let core = self.clone();
        let restore = tokio::spawn(async move {
            let running = RestoreRunning::enter(&core);
            let index = stage_and_swap(
                core.cluster.backend(),
                record.restore_id.clone(),
                entries,
                record_ops,
            )
            .await?;
            tracing::warn!(
                index,
                forced = force,
                snapshot_cluster_id = %header.cluster_id,
                snapshot_raft_index = header.raft_index,
                "restored a Raft snapshot: the whole key space was replaced"
            );
            core.await_voters_holding(index).await;
            core.finish_restore(running).await;
            Ok::<u64, LogicalError>(index)
        });
        let index = restore.await.map_err(internal)??;
        // The commits were made in the spawned task, which the request's commit count
        // does not see; without this, a restore that completed is answered as a request
        // that wrote nothing, and refused with a 503 if the lead moved meanwhile.
        crate::storage::commit_count::note_commit(index);
        Ok(())
    }

    /// After this node's own restore and the wait: a barrier the restore closed (the
    /// snapshot's keys are not this node's) is sealed in full now (the lead handed over,
    /// the cluster identity dropped); otherwise the keyring is reloaded as on every node.
    ///
    /// The restore counts as running until the seal is over: an unseal share accepted
    /// between the wait and the seal was undone by it (the node sealed again right after
    /// it answered `sealed: false`).
    async fn finish_restore(&self, running: RestoreRunning<'_>) {
        if self.is_sealed() {
            self.seal().await;
            drop(running);
        } else {
            drop(running);
            self.after_snapshot_restore().await;
        }
    }

    /// Wait (while some voter advances, see [`CatchUpProgress`]) until every voter holds
    /// the restore's last entry and knows it is committed. A forced restore of another cluster's
    /// snapshot brings that cluster's CA: the nodes that apply it seal, are unsealed with
    /// the snapshot's keys and then prove themselves under the new CA, which a voter that
    /// never applied the entry does not trust, so it could never catch up. Sealed nodes
    /// keep their follower certificates under the old CA, so the entry still reaches it
    /// while this node waits; past the bound (a voter is down), the operator hears which
    /// one lags.
    ///
    /// Holding the entry is not enough: a follower applies it only once a later request
    /// tells it the commit index, and a leader unsealed under the new CA at once (a
    /// script unseals as soon as it sees `sealed`) may never send one. So a voter counts
    /// only once it also acknowledged a heartbeat or an append *sent* after the commit
    /// (openraft records the sending time of what was acknowledged), which carried the
    /// commit index.
    ///
    /// This node keeps the lead through the wait even if the restore sealed it (see
    /// `after_snapshot_restore`). Not covered: an election between the swap's commit and
    /// the wait (a follower timed out during a long staging) ends the wait at once; the
    /// new leader replicates the restore sealed, under the old CA, but an operator who
    /// unseals it before every node has sealed strands a voter still catching up.
    async fn await_voters_holding(&self, index: u64) {
        // The restore's last entry is committed and applied here already.
        let started = self.env.clock.now();
        let mut progress = CatchUpProgress::new(started);
        // Only the leader knows what its peers hold; one that lost the lead stops asking.
        while self.cluster.is_leader() {
            let peers = self.cluster.configuration();
            let lagging = voters_yet_to_apply(&peers, index, started);
            if lagging.is_empty() {
                return;
            }
            let now = self.env.clock.now();
            progress.observe(&peers, now);
            if progress.gave_up(started, now) {
                tracing::warn!(
                    ?lagging,
                    index,
                    "voters lack the restored snapshot's last entry; if the snapshot brought another cluster's CA, remove and re-join them once the others are unsealed"
                );
                return;
            }
            tokio::time::sleep(RESTORE_REPLICATED_POLL).await;
        }
    }

    /// On becoming active: clear what an abandoned restore staged (its active node
    /// crashed or lost the lead mid-way). No restore runs on a node that has only now
    /// become active, so any staging is abandoned.
    pub(super) async fn clear_abandoned_restore_staging(&self) {
        let backend = self.cluster.backend();
        if backend
            .list(RESTORE_STAGING)
            .map_or(true, |children| children.is_empty())
        {
            return;
        }
        match backend.clear_restore_staging().await {
            Ok(_) => tracing::info!("cleared the staging of an abandoned snapshot restore"),
            Err(error) => {
                tracing::warn!(%error, "clearing an abandoned snapshot restore's staging failed")
            }
        }
    }

    /// Whether this cluster's barrier opens the snapshot's sealed hash to its content
    /// hash: the proof that it was saved under the keys this cluster holds.
    fn sealed_hash_matches(&self, header: &SavedSnapshotHeader) -> bool {
        let Ok(sealed) = hex::decode(&header.sealed_sha256) else {
            return false;
        };
        self.barrier
            .open(SEALED_SHA256_LABEL, &sealed)
            .is_ok_and(|hash| hex::encode(hash) == header.content_sha256)
    }

    /// After a restore reached this node: take the restored keyring, follow the restored
    /// replication role, and have the logical side reload as if newly active. A keyring
    /// this node cannot open seals it (it needs the snapshot's unseal keys).
    pub async fn after_snapshot_restore(&self) {
        if self.is_sealed() {
            return;
        }
        match self.barrier.replace_keyring_from_storage() {
            Ok(()) => {
                if let Some(replication) = self.replication() {
                    replication.apply_role();
                }
                *self.active_term.lock().await = None;
            }
            Err(BarrierError::Corrupt { reason, .. }) => {
                tracing::warn!(
                    %reason,
                    "a restored snapshot holds keys this node cannot open; sealing: unseal with the snapshot's unseal keys"
                );
                if self.restore_running() {
                    // This node runs the restore and leads: its keyring no longer opens
                    // the data, so the barrier closes now, but the lead stays until every
                    // voter holds the restore (`finish_restore` seals in full). A sealed
                    // leader hands over at once, which ended the restore's wait before a
                    // lagging voter knew the entry was committed; once the others were
                    // unsealed under the snapshot's CA it could never catch up.
                    self.barrier.seal();
                } else {
                    self.seal().await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reloading the keyring after a snapshot restore failed");
            }
        }
    }

    /// Every node runs this: when a restore's record changes in this node's applied
    /// state (whichever path brought it: the log, or a Raft snapshot install), reload.
    pub async fn watch_snapshot_restores(
        self: Arc<Self>,
        mut feed: Subscription,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let backend = self.cluster.backend();
        let read_record = || backend.get(SNAPSHOT_RESTORE_KEY).ok().flatten();
        let mut last_seen = read_record();
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                event = feed.next() => event,
            };
            let Some(event) = event else { return };
            if !event.may_touch(&[SNAPSHOT_RESTORE_KEY]) {
                continue;
            }
            let current = read_record();
            // Only a new record is a restore. A record that vanished was wiped by a
            // secondary's activation, which installs and opens its keyring itself.
            let restored = current.is_some() && current != last_seen;
            last_seen = current;
            if restored {
                self.after_snapshot_restore().await;
            }
        }
    }
}

/// Marks a node as running its own restore while alive (cleared on every exit, a panic
/// included).
struct RestoreRunning<'a>(&'a Core);

impl<'a> RestoreRunning<'a> {
    fn enter(core: &'a Core) -> Self {
        core.restore_running
            .store(true, std::sync::atomic::Ordering::SeqCst);
        RestoreRunning(core)
    }
}

impl Drop for RestoreRunning<'_> {
    fn drop(&mut self) {
        self.0
            .restore_running
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a restore's wait for lagging voters has seen: each voter's highest matched
/// index, and when any of them last advanced. The wait ends once no voter advanced for
/// [`RESTORE_REPLICATED_STALL`] (one is down or cut off) or after
/// [`RESTORE_REPLICATED_WAIT_MAX`] in all.
struct CatchUpProgress {
    matched: std::collections::BTreeMap<String, u64>,
    last_advanced: std::time::Instant,
}

impl CatchUpProgress {
    fn new(started: std::time::Instant) -> Self {
        CatchUpProgress {
            matched: std::collections::BTreeMap::new(),
            last_advanced: started,
        }
    }

    /// Record what the peers hold now; a voter whose matched index rose counts as progress.
    fn observe(&mut self, peers: &[super::cluster::Peer], now: std::time::Instant) {
        for peer in peers.iter().filter(|peer| peer.voter && !peer.leader) {
            let Some(matched) = peer.matched_index else {
                continue;
            };
            let seen = self.matched.entry(peer.node_id.clone()).or_insert(0);
            if matched > *seen {
                *seen = matched;
                self.last_advanced = now;
            }
        }
    }

    fn gave_up(&self, started: std::time::Instant, now: std::time::Instant) -> bool {
        now.saturating_duration_since(self.last_advanced) >= RESTORE_REPLICATED_STALL
            || now.saturating_duration_since(started) >= RESTORE_REPLICATED_WAIT_MAX
    }
}

/// The voters (besides the leader) that may not have applied entry `index` yet: those not
/// known to hold it, and those whose newest acknowledged request was sent no later than
/// `committed_at` (so none of them told the voter the entry is committed).
fn voters_yet_to_apply(
    peers: &[super::cluster::Peer],
    index: u64,
    committed_at: std::time::Instant,
) -> Vec<String> {
    peers
        .iter()
        .filter(|peer| {
            peer.voter
                && !peer.leader
                && (peer.matched_index.is_none_or(|at| at < index)
                    || peer
                        .last_acknowledged
                        .is_none_or(|sent| sent <= committed_at))
        })
        .map(|peer| peer.node_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::key_space::KEYRING_KEY;

    fn voter(
        node_id: &str,
        matched_index: Option<u64>,
        last_acknowledged: Option<std::time::Instant>,
    ) -> crate::core::Peer {
        crate::core::Peer {
            node_id: node_id.into(),
            address: String::new(),
            api_address: String::new(),
            leader: false,
            voter: true,
            last_acknowledged,
            matched_index,
        }
    }

    #[test]
    fn a_voter_counts_as_applied_only_once_it_acknowledged_a_request_sent_after_the_commit() {
        let committed_at = crate::env::Clock::system().now();
        let before = committed_at - std::time::Duration::from_millis(5);
        let after = committed_at + std::time::Duration::from_millis(5);
        let mut leader = voter("leader", Some(10), None);
        leader.leader = true;
        let mut learner = voter("learner", Some(1), None);
        learner.voter = false;
        let peers = vec![
            leader,
            learner,
            // Holds the entry and heard of the commit: done.
            voter("caught-up", Some(10), Some(after)),
            // Holds the entry, but every request it acknowledged predates the commit:
            // it may not know the entry is committed, so it has not applied it.
            voter("holds-but-not-told", Some(12), Some(before)),
            voter("acknowledged-at-the-commit", Some(10), Some(committed_at)),
            voter("behind", Some(9), Some(after)),
            voter("never-heard-from", None, None),
        ];
        assert_eq!(
            voters_yet_to_apply(&peers, 10, committed_at),
            vec![
                "holds-but-not-told",
                "acknowledged-at-the-commit",
                "behind",
                "never-heard-from"
            ]
        );
    }

    #[test]
    fn the_wait_for_lagging_voters_lasts_while_they_advance_and_ends_when_they_stall() {
        let started = crate::env::Clock::system().now();
        let at = |seconds: u64| started + std::time::Duration::from_secs(seconds);
        let mut progress = CatchUpProgress::new(started);
        // A voter advancing every 20 s keeps the wait going past the stall bound.
        for (step, matched) in [(0, 5), (20, 9), (40, 14), (60, 20)] {
            progress.observe(&[voter("slow", Some(matched), None)], at(step));
            assert!(!progress.gave_up(started, at(step + 29)), "step {step}");
        }
        // Standing still (or a lower number from a restarted replication stream) for
        // the stall bound ends it.
        progress.observe(&[voter("slow", Some(20), None)], at(85));
        progress.observe(&[voter("slow", Some(3), None)], at(89));
        assert!(progress.gave_up(started, at(90)));
        // Learners and the leader's own progress do not count.
        let mut progress = CatchUpProgress::new(started);
        let mut leader = voter("leader", Some(100), None);
        leader.leader = true;
        let mut learner = voter("learner", Some(100), None);
        learner.voter = false;
        progress.observe(&[leader, learner, voter("down", None, None)], at(10));
        assert!(progress.gave_up(started, at(30)));
        // However steady the progress, the overall bound holds.
        let mut progress = CatchUpProgress::new(started);
        for step in 0..=300 {
            progress.observe(&[voter("steady", Some(step + 1), None)], at(step));
        }
        assert!(progress.gave_up(started, at(300)));
        assert!(!CatchUpProgress::new(started).gave_up(started, at(29)));
    }

    fn snapshot(entries: Vec<(&str, Vec<u8>)>) -> SavedSnapshot {
        SavedSnapshot {
            header: SavedSnapshotHeader {
                cluster_id: "c".into(),
                raft_index: 7,
                raft_term: 1,
                created_unix: 1,
                entries: entries.len() as u64,
                content_bytes: 0,
                content_sha256: String::new(),
                sealed_sha256: String::new(),
            },
            entries: entries
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect(),
        }
    }

    #[test]
    fn a_restore_stages_every_entry_but_an_older_record() {
        let entries = restore_entries(snapshot(vec![
            (KEYRING_KEY, vec![1]),
            (SNAPSHOT_RESTORE_KEY, b"an older restore".to_vec()),
            ("sys/token/id/abc", vec![2]),
        ]))
        .unwrap();
        let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, vec![KEYRING_KEY, "sys/token/id/abc"]);
        let batches: Vec<Vec<Op>> = staging_batches("r1", entries).collect();
        assert_eq!(batches.len(), 1);
        let staged: Vec<(String, Vec<u8>)> = batches[0]
            .iter()
            .map(|op| {
                let Op::Put { key, value } = op else {
                    panic!("staging only puts");
                };
                assert!(key.starts_with("core/restore-staging/r1/"), "{key}");
                restore_staging::decode(value).unwrap()
            })
            .collect();
        assert_eq!(
            staged,
            vec![
                (KEYRING_KEY.to_string(), vec![1]),
                ("sys/token/id/abc".to_string(), vec![2])
            ]
        );
    }

    #[test]
    fn staging_batches_are_bounded_and_keep_the_order() {
        let value = vec![7u8; 100 * 1024];
        let mut entries: Vec<(&str, Vec<u8>)> = Vec::new();
        let keys: Vec<String> = (0..10)
            .map(|index| format!("logical/m/k{index:02}"))
            .collect();
        for key in &keys {
            entries.push((key, value.clone()));
        }
        // One entry above the batch size goes alone.
        entries.push((
            "logical/m/large",
            vec![1u8; RESTORE_STAGING_BATCH_BYTES_MAX + 1],
        ));
        entries.push(("logical/m/small", vec![2u8; 10]));
        let batches: Vec<Vec<Op>> =
            staging_batches("r1", restore_entries(snapshot(entries)).unwrap()).collect();
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2, 2, 2, 2, 1, 1]);
        for batch in &batches[..5] {
            let bytes: usize = batch
                .iter()
                .map(|op| match op {
                    Op::Put { key, value } => key.len() + value.len(),
                    Op::Delete { key } => key.len(),
                })
                .sum();
            assert!(bytes <= RESTORE_STAGING_BATCH_BYTES_MAX, "{bytes}");
        }
        let staged_keys: Vec<&str> = batches.iter().flatten().map(Op::key).collect();
        let mut sorted = staged_keys.clone();
        sorted.sort();
        assert_eq!(staged_keys, sorted, "staging keys sort in entry order");
    }

    #[test]
    fn keys_outside_the_key_space_registry_are_refused() {
        for key in [
            "not/registered",
            "core/restore-staging/x/00000000000000000000",
        ] {
            let error = restore_entries(snapshot(vec![(key, vec![1])])).unwrap_err();
            assert!(
                matches!(&error, LogicalError::BadRequest(message) if message.starts_with("invalid snapshot")),
                "{error:?}"
            );
        }
        let huge = vec![0u8; crate::raft::node::COMMIT_BYTES_MAX];
        let error = restore_entries(snapshot(vec![("logical/m/huge", huge)])).unwrap_err();
        assert!(
            matches!(&error, LogicalError::BadRequest(message) if message.contains("for one commit")),
            "{error:?}"
        );
    }
}
