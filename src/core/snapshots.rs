//! Raft snapshots for backup and restore: `sys/storage/raft/snapshot` (save and
//! restore) and `sys/storage/raft/snapshot-force` (restore another cluster's).
//!
//! A save is a point-in-time view of this node's applied key space (the active node's,
//! so everything committed before the request), encoded as a
//! [`saved_snapshot`](crate::raft::saved_snapshot) file. Values stay the barrier's
//! ciphertext; the only thing the barrier adds is the sealed content hash.
//!
//! A restore is one Raft entry ([`Command::ReplaceAll`](crate::raft::Command)), so every
//! node applies it at the same log index, atomically, and a crash leaves the old key
//! space or the restored one. The entry also writes [`SNAPSHOT_RESTORE_KEY`]; each node
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
use crate::raft::saved_snapshot::{self, SEALED_SHA256_LABEL, SavedSnapshot, SavedSnapshotHeader};
use crate::raft::{FeedEvent, Subscription};
use crate::storage::Op;
use crate::storage::key_space::SNAPSHOT_RESTORE_KEY;

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

/// The operations of a restore: every entry of the snapshot (a record of an earlier
/// restore it carries is replaced by this one), then the restore record. Refuses
/// anything one Raft entry cannot carry.
pub fn restore_ops(
    snapshot: SavedSnapshot,
    record: &RestoreRecord,
) -> Result<Vec<Op>, LogicalError> {
    let mut ops: Vec<Op> = snapshot
        .entries
        .into_iter()
        .filter(|(key, _)| key != SNAPSHOT_RESTORE_KEY)
        .map(|(key, value)| Op::Put { key, value })
        .collect();
    ops.push(Op::Put {
        key: SNAPSHOT_RESTORE_KEY.to_string(),
        value: serde_json::to_vec(record).expect("a restore record serializes"),
    });
    crate::storage::validate_batch(&ops)
        .map_err(|error| LogicalError::BadRequest(format!("invalid snapshot: {error}")))?;
    let bytes: usize = ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        })
        .sum();
    if bytes > crate::raft::node::COMMIT_BYTES_MAX {
        return Err(LogicalError::BadRequest(format!(
            "invalid snapshot: {bytes} bytes of keys and values exceed the limit of {} for one restore",
            crate::raft::node::COMMIT_BYTES_MAX
        )));
    }
    Ok(ops)
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
            let content =
                saved_snapshot::encode_content(view.iter().map(|(key, value)| (key, &value[..])))
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
    pub async fn restore_snapshot(&self, bytes: &[u8], force: bool) -> Result<(), LogicalError> {
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
        let ops = restore_ops(snapshot, &record)?;
        let index = self
            .cluster
            .backend()
            .replace_all(ops)
            .await
            .map_err(|error| LogicalError::Unavailable(error.to_string()))?;
        tracing::warn!(
            index,
            forced = force,
            snapshot_cluster_id = %header.cluster_id,
            snapshot_raft_index = header.raft_index,
            "restored a Raft snapshot: the whole key space was replaced"
        );
        self.after_snapshot_restore().await;
        Ok(())
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
                self.seal().await;
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
            let may_have_changed = match event {
                None => return,
                Some(FeedEvent::Lagged { .. }) => true,
                Some(FeedEvent::Applied(applied)) => match &applied.changes {
                    crate::raft::Changes::Everything => true,
                    crate::raft::Changes::Keys(changes) => changes
                        .iter()
                        .any(|change| &*change.key == SNAPSHOT_RESTORE_KEY),
                },
            };
            if !may_have_changed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::key_space::KEYRING_KEY;

    fn record() -> RestoreRecord {
        RestoreRecord {
            restore_id: "r1".into(),
            restored_unix: 1,
            forced: false,
            snapshot_cluster_id: "c".into(),
            snapshot_raft_index: 7,
        }
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
    fn a_restore_writes_every_entry_and_one_fresh_record() {
        let ops = restore_ops(
            snapshot(vec![
                (KEYRING_KEY, vec![1]),
                (SNAPSHOT_RESTORE_KEY, b"an older restore".to_vec()),
                ("sys/token/id/abc", vec![2]),
            ]),
            &record(),
        )
        .unwrap();
        let keys: Vec<&str> = ops.iter().map(Op::key).collect();
        assert_eq!(
            keys,
            vec![KEYRING_KEY, "sys/token/id/abc", SNAPSHOT_RESTORE_KEY]
        );
        let Op::Put { value, .. } = &ops[2] else {
            panic!("the record is a put");
        };
        assert_eq!(
            serde_json::from_slice::<RestoreRecord>(value).unwrap(),
            record()
        );
    }

    #[test]
    fn keys_outside_the_key_space_registry_are_refused() {
        let error =
            restore_ops(snapshot(vec![("not/registered", vec![1])]), &record()).unwrap_err();
        assert!(
            matches!(&error, LogicalError::BadRequest(message) if message.starts_with("invalid snapshot")),
            "{error:?}"
        );
    }
}
