//! The replicated key space: an in-memory `BTreeMap` of storage keys to ciphertext (the
//! barrier encrypts before anything reaches Raft; nothing here decrypts), the last
//! applied log id and the last membership.
//!
//! Snapshots are the whole map, written atomically under `raft/snapshot/` (only the
//! latest is kept). On start the machine is the latest snapshot; openraft then re-applies
//! the log entries after it as they are known committed.
//!
//! Invariant: a `Command::Apply` batch is applied under one lock, so readers see all of
//! it or none of it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use super::record::{self, RecordRead};
use super::types::{
    Command, CommandResponse, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
};
use crate::env::disk::write_atomic;
use crate::env::runtime::blocking;
use crate::env::{Disk, DiskError};
use crate::storage::{Op, list_children};

/// The directory of snapshot files.
pub const SNAPSHOT_DIR: &str = "raft/snapshot";
/// The largest snapshot this node writes or accepts.
pub const SNAPSHOT_BYTES_MAX: usize = 1024 * 1024 * 1024;

const SNAPSHOT_SUFFIX: &str = ".snap";

#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("snapshot {path} is invalid: {reason}")]
    InvalidSnapshot { path: String, reason: String },
}

/// A snapshot file: its metadata and the encoded map.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Data {
    map: BTreeMap<String, Vec<u8>>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    current_snapshot: Option<(SnapshotMeta, Arc<Vec<u8>>)>,
}

/// The state machine; clones share the same map.
#[derive(Clone)]
pub struct StateMachine {
    disk: Arc<dyn Disk>,
    data: Arc<Mutex<Data>>,
}

impl Debug for StateMachine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("StateMachine")
    }
}

fn snapshot_path(last_index: u64) -> String {
    format!("{SNAPSHOT_DIR}/{last_index:020}{SNAPSHOT_SUFFIX}")
}

fn io_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

fn encode_map(map: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, io::Error> {
    bincode::serde::encode_to_vec(map, bincode::config::standard()).map_err(io_error)
}

fn decode_map(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    if bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(format!(
            "snapshot of {} bytes exceeds the limit",
            bytes.len()
        ));
    }
    record::decode_body(bytes)
}

impl StateMachine {
    /// Load the latest snapshot on `disk`, if any.
    pub async fn open(disk: Arc<dyn Disk>) -> Result<Self, StateMachineError> {
        let loading = disk.clone();
        let data = blocking(move || load_latest(loading.as_ref())).await?;
        Ok(Self {
            disk,
            data: Arc::new(Mutex::new(data)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value of `key` in the applied state.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().map.get(key).cloned()
    }

    /// Vault's list semantics over the applied state.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let data = self.lock();
        list_children(
            data.map
                .range(prefix.to_string()..)
                .map(|(key, _)| key.as_str())
                .take_while(|key| key.starts_with(prefix)),
            prefix,
        )
    }

    /// The index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.lock()
            .last_applied
            .as_ref()
            .map_or(0, |log_id| log_id.index)
    }

    /// Every key and value, in key order (tests and convergence checks).
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .map
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// Write a snapshot file atomically, then drop older ones.
    async fn persist(&self, meta: &SnapshotMeta, data: Arc<Vec<u8>>) -> Result<(), io::Error> {
        let last_index = meta.last_log_id.as_ref().map_or(0, |log_id| log_id.index);
        let file = SnapshotFile {
            meta: meta.clone(),
            data: data.as_ref().clone(),
        };
        let bytes = record::encode(&file, SNAPSHOT_BYTES_MAX).map_err(io_error)?;
        let disk = self.disk.clone();
        blocking(move || -> Result<(), DiskError> {
            let path = snapshot_path(last_index);
            write_atomic(disk.as_ref(), &path, &bytes)?;
            let mut removed = false;
            for name in disk.list(SNAPSHOT_DIR)? {
                let other = format!("{SNAPSHOT_DIR}/{name}");
                if other != path {
                    disk.remove(&other)?;
                    removed = true;
                }
            }
            if removed {
                disk.sync_dir(SNAPSHOT_DIR)?;
            }
            Ok(())
        })
        .await
        .map_err(io_error)
    }
}

fn load_latest(disk: &dyn Disk) -> Result<Data, StateMachineError> {
    let mut data = load_latest_snapshot(disk)?;
    if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::SkipReapplyOnRestart)
        && let Ok(Some(bytes)) = disk.read(crate::raft::log_store::COMMITTED_PATH)
        && let RecordRead::Complete { body, .. } = record::read(&bytes, 0, bytes.len())
        && let Ok(committed) = record::decode_body::<LogId>(body)
        && data
            .last_applied
            .as_ref()
            .is_none_or(|applied| applied.index < committed.index)
    {
        data.last_applied = Some(committed);
    }
    Ok(data)
}

fn load_latest_snapshot(disk: &dyn Disk) -> Result<Data, StateMachineError> {
    let latest = disk
        .list(SNAPSHOT_DIR)?
        .into_iter()
        .filter(|name| name.ends_with(SNAPSHOT_SUFFIX))
        .max();
    let Some(name) = latest else {
        return Ok(Data::default());
    };
    let path = format!("{SNAPSHOT_DIR}/{name}");
    let invalid = |reason: String| StateMachineError::InvalidSnapshot {
        path: path.clone(),
        reason,
    };
    let bytes = disk
        .read(&path)?
        .ok_or_else(|| invalid("vanished while opening".to_string()))?;
    let file: SnapshotFile = match record::read(&bytes, 0, SNAPSHOT_BYTES_MAX) {
        RecordRead::Complete { body, end } if end == bytes.len() => {
            record::decode_body(body).map_err(invalid)?
        }
        RecordRead::Complete { .. } => return Err(invalid("trailing bytes".to_string())),
        RecordRead::Incomplete => return Err(invalid("truncated".to_string())),
        RecordRead::Corrupt { reason, .. } => return Err(invalid(reason)),
    };
    let map = decode_map(&file.data).map_err(invalid)?;
    Ok(Data {
        map,
        last_applied: file.meta.last_log_id.clone(),
        last_membership: file.meta.last_membership.clone(),
        current_snapshot: Some((file.meta, Arc::new(file.data))),
    })
}

fn apply_ops(map: &mut BTreeMap<String, Vec<u8>>, ops: Vec<Op>) {
    for op in ops {
        match op {
            Op::Put { key, value } => {
                map.insert(key, value);
            }
            Op::Delete { key } => {
                if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::DropDeletes) {
                    continue;
                }
                map.remove(&key);
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, encoded) = {
            let data = self.lock();
            let meta = SnapshotMeta {
                last_log_id: data.last_applied.clone(),
                last_membership: data.last_membership.clone(),
            };
            (meta, encode_map(&data.map)?)
        };
        let encoded = Arc::new(encoded);
        self.persist(&meta, encoded.clone()).await?;
        self.lock().current_snapshot = Some((meta.clone(), encoded.clone()));
        Ok(Snapshot {
            meta,
            snapshot: encoded.as_ref().clone(),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let data = self.lock();
        Ok((data.last_applied.clone(), data.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id();
            let index = log_id.index;
            {
                let mut data = self.lock();
                data.last_applied = Some(log_id.clone());
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(Command::Apply { ops }) => apply_ops(&mut data.map, ops),
                    EntryPayload::Membership(membership) => {
                        data.last_membership = StoredMembership::new(Some(log_id), membership);
                    }
                }
            }
            if let Some(responder) = responder {
                responder.send(CommandResponse { index });
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let map = decode_map(&snapshot).map_err(io_error)?;
        let encoded = Arc::new(snapshot);
        self.persist(meta, encoded.clone()).await?;
        let mut data = self.lock();
        if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::InstallMergesSnapshot) {
            data.map.extend(map);
        } else {
            data.map = map;
        }
        data.last_applied = meta.last_log_id.clone();
        data.last_membership = meta.last_membership.clone();
        data.current_snapshot = Some((meta.clone(), encoded));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self
            .lock()
            .current_snapshot
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: data.as_ref().clone(),
            }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::Membership;
    use openraft::alias::LeaderIdOf;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::env::SimDisk;
    use crate::raft::types::Entry;

    fn log_id(index: u64) -> LogId {
        LogId::new(
            LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
            index,
        )
    }

    fn put(key: &str, value: &[u8]) -> Op {
        Op::Put {
            key: key.to_string(),
            value: value.to_vec(),
        }
    }

    async fn apply(machine: &mut StateMachine, entries: Vec<Entry>) {
        let items = entries.into_iter().map(|entry| Ok((entry, None)));
        machine.apply(futures::stream::iter(items)).await.unwrap();
    }

    #[tokio::test]
    async fn batches_apply_atomically_and_snapshots_rebuild_the_machine() {
        let disk = SimDisk::new(1);
        let mut machine = StateMachine::open(Arc::new(disk.clone())).await.unwrap();
        let membership =
            Membership::new_with_defaults(vec![BTreeSet::from(["n1".to_string()])], []);
        apply(
            &mut machine,
            vec![
                Entry::new_membership(log_id(1), membership),
                Entry::new_normal(
                    log_id(2),
                    Command::Apply {
                        ops: vec![
                            put("sys/a", b"1"),
                            put("sys/b/c", b"2"),
                            put("logical/x", b"3"),
                        ],
                    },
                ),
                Entry::new_normal(
                    log_id(3),
                    Command::Apply {
                        ops: vec![Op::Delete {
                            key: "logical/x".to_string(),
                        }],
                    },
                ),
                Entry::new_blank(log_id(4)),
            ],
        )
        .await;
        assert_eq!(machine.applied_index(), 4);
        assert_eq!(machine.get("sys/a"), Some(b"1".to_vec()));
        assert_eq!(machine.get("logical/x"), None);
        assert_eq!(
            machine.list("sys/"),
            vec!["a".to_string(), "b/".to_string()]
        );
        assert_eq!(machine.list(""), vec!["sys/".to_string()]);

        // Two snapshots: only the newer file is kept, and a restart loads it.
        machine.build_snapshot().await.unwrap();
        apply(
            &mut machine,
            vec![Entry::new_normal(
                log_id(5),
                Command::Apply {
                    ops: vec![put("sys/d", b"4")],
                },
            )],
        )
        .await;
        let snapshot = machine.build_snapshot().await.unwrap();
        assert_eq!(
            disk.list(SNAPSHOT_DIR).unwrap(),
            vec![format!("{:020}{SNAPSHOT_SUFFIX}", 5)]
        );
        disk.crash(true);
        let mut reopened = StateMachine::open(Arc::new(disk.clone())).await.unwrap();
        assert_eq!(reopened.dump(), machine.dump());
        let (applied, stored_membership) = reopened.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(5)));
        assert_eq!(stored_membership.log_id(), &Some(log_id(1)));
        assert!(reopened.get_current_snapshot().await.unwrap().is_some());

        // A follower installs the leader's snapshot wholesale.
        let other_disk = SimDisk::new(2);
        let mut follower = StateMachine::open(Arc::new(other_disk.clone()))
            .await
            .unwrap();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.dump(), machine.dump());
        assert_eq!(follower.applied_index(), 5);

        // A damaged snapshot file stops the node instead of starting it empty.
        let path = format!("{SNAPSHOT_DIR}/{:020}{SNAPSHOT_SUFFIX}", 5);
        other_disk.corrupt_byte(&path, 20).unwrap();
        let error = StateMachine::open(Arc::new(other_disk)).await.unwrap_err();
        assert!(
            matches!(error, StateMachineError::InvalidSnapshot { .. }),
            "{error}"
        );
    }
}
