//! The state machine: the shell around the apply core ([`AppliedState`]). It applies
//! committed entries one at a time, publishes what each changed on the [`ChangeFeed`],
//! and writes and installs snapshots.
//!
//! Snapshots are the whole state (the map and the WAL buffer), written atomically under
//! `raft/snapshot/` (only the latest is kept). On start the machine is the latest
//! snapshot; openraft then re-applies the log entries after it as they are known
//! committed, which re-derives the same WAL entries, since applying is deterministic.
//! The latest snapshot's body is not kept in memory (at 100,000 secrets it is ~60 MB):
//! only its metadata and size are, and openraft's `get_current_snapshot` (a snapshot
//! sent to a lagging follower, and twice at start) reads the file back.
//!
//! Invariants: an entry is applied under one short lock, so readers see all of it or
//! none of it; building or installing a snapshot never holds that lock while encoding,
//! decoding or writing (it takes an O(1) point-in-time view, or swaps in a decoded
//! state); reports are published in apply order, after the state they describe is
//! visible to readers.

use std::fmt::Debug;
use std::io;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::{Stream, StreamExt};
use openraft::OptionalSend;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use serde::Deserialize;

use super::applied_state::AppliedState;
/// The largest snapshot body this node writes or accepts (re-exported for the network).
pub use super::applied_state::SNAPSHOT_BYTES_MAX;
use super::change_feed::{ChangeFeed, Subscription};
use super::record::{self, RecordError, RecordRead};
use super::snapshot_cadence::{SnapshotCadence, entry_state_bytes};
use super::types::{CommandResponse, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use crate::env::disk::write_atomic_from_parts;
use crate::env::runtime::blocking;
use crate::env::{Disk, DiskError};

/// The directory of snapshot files.
pub const SNAPSHOT_DIR: &str = "raft/snapshot";

const SNAPSHOT_SUFFIX: &str = ".snap";
/// Room in a snapshot file's record for the metadata around the body.
const SNAPSHOT_META_BYTES_MAX: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("snapshot {path} is invalid: {reason}")]
    InvalidSnapshot { path: String, reason: String },
}

/// A snapshot file as read: its metadata, borrowing the encoded state from the file's
/// bytes (so a 60 MB body is not copied to be parsed).
#[derive(Deserialize)]
struct SnapshotFile<'a> {
    meta: SnapshotMeta,
    #[serde(borrow)]
    data: &'a [u8],
}

/// The latest snapshot (built, installed or loaded): its metadata and the size of its
/// body. The body is in its file, [`snapshot_path`] of its last index.
#[derive(Debug, Clone)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    body_bytes: u64,
}

impl CurrentSnapshot {
    fn last_index(&self) -> u64 {
        last_index(&self.meta)
    }
}

/// How many times [`StateMachine::get_current_snapshot`] reads the snapshot file before
/// it reports the read as failed. See there for why it retries at all.
const SNAPSHOT_READ_ATTEMPTS: usize = 8;

struct Shared {
    disk: Arc<dyn Disk>,
    wal_entries_max: usize,
    /// Read by every request (gets, lists, views), written by the apply loop: a
    /// read-write lock, so readers on different workers do not queue behind each other.
    state: RwLock<AppliedState>,
    current_snapshot: Mutex<Option<CurrentSnapshot>>,
    /// When to ask for the next snapshot; locked after `state`, never before.
    cadence: Mutex<SnapshotCadence>,
    /// Bumped each time a snapshot is due (see [`StateMachine::snapshots_wanted`]).
    snapshot_wanted: tokio::sync::watch::Sender<u64>,
    feed: ChangeFeed,
}

/// The state machine; clones share the same state.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl Debug for StateMachine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("StateMachine")
    }
}

fn snapshot_path(last_index: u64) -> String {
    format!("{SNAPSHOT_DIR}/{last_index:020}{SNAPSHOT_SUFFIX}")
}

fn last_index(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.as_ref().map_or(0, |log_id| log_id.index)
}

/// Check a snapshot file's record and parse it: its metadata and where its body lies in
/// `bytes`.
fn parse_snapshot_file(bytes: &[u8]) -> Result<(SnapshotMeta, std::ops::Range<usize>), String> {
    let body = match record::read(bytes, 0, SNAPSHOT_BYTES_MAX + SNAPSHOT_META_BYTES_MAX) {
        RecordRead::Complete { body, end } if end == bytes.len() => body,
        RecordRead::Complete { .. } => return Err("trailing bytes".to_string()),
        RecordRead::Incomplete => return Err("truncated".to_string()),
        RecordRead::Corrupt { reason, .. } => return Err(reason),
    };
    let config = bincode::config::standard()
        .with_limit::<{ SNAPSHOT_BYTES_MAX + SNAPSHOT_META_BYTES_MAX }>();
    let (file, used): (SnapshotFile<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(body, config)
            .map_err(|error| error.to_string())?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the body",
            body.len() - used
        ));
    }
    // The body borrows from `bytes`: its place there is its distance from the start.
    let start = file.data.as_ptr() as usize - bytes.as_ptr() as usize;
    Ok((file.meta, start..start + file.data.len()))
}

fn io_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StateMachine {
    /// Load the latest snapshot on `disk`, if any; keep at most `wal_entries_max`
    /// recent WAL entries.
    pub async fn open(
        disk: Arc<dyn Disk>,
        wal_entries_max: usize,
    ) -> Result<Self, StateMachineError> {
        let loading = disk.clone();
        let (state, current_snapshot) =
            blocking(move || load_latest(loading.as_ref(), wal_entries_max)).await?;
        let cadence = SnapshotCadence::new(
            current_snapshot
                .as_ref()
                .map_or(0, |current| current.body_bytes),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                disk,
                wal_entries_max,
                state: RwLock::new(state),
                current_snapshot: Mutex::new(current_snapshot),
                cadence: Mutex::new(cadence),
                snapshot_wanted: tokio::sync::watch::Sender::new(0),
                feed: ChangeFeed::default(),
            }),
        })
    }

    /// A point-in-time view of the applied state: an O(1) clone that later applies do
    /// not change.
    pub fn view(&self) -> AppliedState {
        read(&self.shared.state).clone()
    }

    /// The size of the latest snapshot (built, installed or loaded), 0 before any: the
    /// disk alarm keeps as much in reserve for the next one.
    pub fn snapshot_bytes_latest(&self) -> u64 {
        lock(&self.shared.current_snapshot)
            .as_ref()
            .map_or(0, |current| current.body_bytes)
    }

    /// Ask for a snapshot once `threshold_entries` entries were applied since the last
    /// one and they wrote half its size (see [`super::snapshot_cadence`]): the
    /// receiver changes each time one is due, and whoever holds it triggers the build
    /// (openraft's own policy is off then). It reports the end (an error) once the
    /// state machine is gone.
    pub fn snapshots_wanted(&self, threshold_entries: u64) -> tokio::sync::watch::Receiver<u64> {
        lock(&self.shared.cadence).set_threshold(threshold_entries);
        self.shared.snapshot_wanted.subscribe()
    }

    /// Every report from now on, in apply order.
    pub fn subscribe(&self) -> Subscription {
        self.shared.feed.subscribe()
    }

    /// The value of `key` in the applied state.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        read(&self.shared.state)
            .get(key)
            .map(|value| value.to_vec())
    }

    /// Whether `key` holds a value in the applied state (nothing is copied).
    pub fn contains(&self, key: &str) -> bool {
        read(&self.shared.state).get(key).is_some()
    }

    /// Vault's list semantics over the applied state.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.view().list(prefix)
    }

    /// The index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        read(&self.shared.state)
            .last_applied()
            .map_or(0, |log_id| log_id.index)
    }

    /// Every key and value, in key order (tests and convergence checks).
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        self.view()
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_vec()))
            .collect()
    }

    /// Write a snapshot file atomically, make it the current one (unless a newer one
    /// already is), then drop older files. A full disk is waited out (a failed write
    /// leaves no partial file), never a fatal error for openraft.
    ///
    /// The current snapshot only moves forward, and only files older than the one
    /// written here are removed, after it is current: a reader of the current file
    /// ([`read_current_snapshot`]) that finds it gone finds a newer one current, and a
    /// build and an install finishing together leave the newer one, file and all.
    async fn persist(&self, meta: &SnapshotMeta, data: Arc<Vec<u8>>) -> Result<(), io::Error> {
        let last_index = last_index(meta);
        let body_bytes = data.len() as u64;
        let file_meta = meta.clone();
        // The file is written from a small head (the record's header, the metadata and
        // the body's length) and the body where it lies: encoding the whole file into one
        // buffer held a second copy of the body (85 MiB at 100,000 secrets) while the
        // file was written.
        let head = Arc::new(
            blocking({
                let data = data.clone();
                move || snapshot_file_head(&file_meta, &data)
            })
            .await
            .map_err(io_error)?,
        );
        let path = snapshot_path(last_index);
        crate::raft::log_store::retry_while_full("writing a snapshot", || {
            let disk = self.shared.disk.clone();
            let (path, head, data) = (path.clone(), head.clone(), data.clone());
            blocking(move || write_atomic_from_parts(disk.as_ref(), &path, &[&head, &data]))
        })
        .await
        .map_err(io_error)?;
        {
            let mut current = lock(&self.shared.current_snapshot);
            if current
                .as_ref()
                .is_none_or(|current| current.last_index() <= last_index)
            {
                *current = Some(CurrentSnapshot {
                    meta: meta.clone(),
                    body_bytes,
                });
            }
        }
        let disk = self.shared.disk.clone();
        blocking(move || -> Result<(), io::Error> {
            let mut removed = false;
            for name in disk.list(SNAPSHOT_DIR).map_err(io_error)? {
                // Names start with the zero-padded last index (`.snap`, or `.snap.tmp`
                // while written); anything else is no snapshot and goes too.
                let older = name
                    .get(..20)
                    .and_then(|index| index.parse::<u64>().ok())
                    .is_none_or(|index| index < last_index);
                if older {
                    disk.remove(&format!("{SNAPSHOT_DIR}/{name}"))
                        .map_err(io_error)?;
                    removed = true;
                }
            }
            if removed {
                disk.sync_dir(SNAPSHOT_DIR).map_err(io_error)?;
            }
            Ok(())
        })
        .await
    }
}

/// The start of a snapshot file's record, up to the body's own bytes: the record's
/// header, the metadata and the body's length. Followed by the body, it is byte for byte
/// the record of a [`SnapshotFile`] ([`parse_snapshot_file`] reads it).
fn snapshot_file_head(meta: &SnapshotMeta, body: &[u8]) -> Result<Vec<u8>, RecordError> {
    let config = bincode::config::standard();
    let encode_error = |error: bincode::error::EncodeError| RecordError::Encode(error.to_string());
    // `SnapshotFile`'s fields in order: the metadata, then the body as a byte string,
    // which bincode writes as its length and then its bytes.
    let mut fields = bincode::serde::encode_to_vec(meta, config).map_err(encode_error)?;
    bincode::serde::encode_into_std_write(body.len() as u64, &mut fields, config)
        .map_err(encode_error)?;
    let header = record::header_for_pieces(
        &[&fields, body],
        SNAPSHOT_BYTES_MAX + SNAPSHOT_META_BYTES_MAX,
    )?;
    let mut head = Vec::with_capacity(header.len() + fields.len());
    head.extend_from_slice(&header);
    head.extend_from_slice(&fields);
    Ok(head)
}

/// The current snapshot, read back from its file; `None` before any.
///
/// Reading it can fail where keeping it in memory could not: an `EIO` from the disk.
/// openraft treats an error here as a storage failure and stops the node, so a leader
/// with a flaky disk would stop when a follower needed a snapshot. A failed or damaged
/// read changes nothing on disk, so it is retried, up to [`SNAPSHOT_READ_ATTEMPTS`]
/// times; a disk that fails every one of them is reported (openraft then stops the
/// node, as for any other storage error: fail-stop, never a wrong snapshot). The
/// simulator's failing disks draw each read's fate afresh (at most 30% fail), so the
/// retries make such a stop rare there; a real disk that fails a read eight times in a
/// row has lost the file. Keeping the bytes in memory as well, for when the read
/// fails, would keep the ~60 MB this avoids. A file found gone (a newer snapshot
/// replaced it meanwhile) is retried with the newer one.
fn read_current_snapshot(shared: &Shared) -> Result<Option<Snapshot>, io::Error> {
    let mut failure = None;
    for _ in 0..SNAPSHOT_READ_ATTEMPTS {
        let Some(current) = lock(&shared.current_snapshot).clone() else {
            return Ok(None);
        };
        let path = snapshot_path(current.last_index());
        let bytes = match shared.disk.read(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                let moved = lock(&shared.current_snapshot)
                    .as_ref()
                    .is_some_and(|now| now.last_index() != current.last_index());
                if !moved {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("the current snapshot's file {path} is missing"),
                    ));
                }
                continue;
            }
            Err(error) => {
                failure = Some(io_error(error));
                continue;
            }
        };
        match parse_snapshot_file(&bytes) {
            Ok((meta, body)) if meta == current.meta => {
                let mut bytes = bytes;
                bytes.truncate(body.end);
                bytes.drain(..body.start);
                return Ok(Some(Snapshot {
                    meta,
                    snapshot: bytes,
                }));
            }
            Ok(_) => {
                failure = Some(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot {path} holds other metadata than the current snapshot"),
                ));
            }
            Err(reason) => {
                failure = Some(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot {path} is invalid: {reason}"),
                ));
            }
        }
    }
    Err(failure.unwrap_or_else(|| io::Error::other("the current snapshot kept moving")))
}

type Loaded = (AppliedState, Option<CurrentSnapshot>);

fn load_latest(disk: &dyn Disk, wal_entries_max: usize) -> Result<Loaded, StateMachineError> {
    let (mut state, snapshot) = load_latest_snapshot(disk, wal_entries_max)?;
    if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::SkipReapplyOnRestart)
        && let Ok(Some(bytes)) = disk.read(crate::raft::log_store::COMMITTED_PATH)
        && let RecordRead::Complete { body, .. } = record::read(&bytes, 0, bytes.len())
        && let Ok(committed) = record::decode_body::<LogId>(body)
    {
        state.seeded_bug_claim_applied(committed);
    }
    Ok((state, snapshot))
}

fn load_latest_snapshot(
    disk: &dyn Disk,
    wal_entries_max: usize,
) -> Result<Loaded, StateMachineError> {
    let latest = disk
        .list(SNAPSHOT_DIR)?
        .into_iter()
        .filter(|name| name.ends_with(SNAPSHOT_SUFFIX))
        .max();
    let Some(name) = latest else {
        return Ok((AppliedState::new(wal_entries_max), None));
    };
    let path = format!("{SNAPSHOT_DIR}/{name}");
    let invalid = |reason: String| StateMachineError::InvalidSnapshot {
        path: path.clone(),
        reason,
    };
    let bytes = disk
        .read(&path)?
        .ok_or_else(|| invalid("vanished while opening".to_string()))?;
    let (meta, body) = parse_snapshot_file(&bytes).map_err(invalid)?;
    let state = AppliedState::decode_snapshot(&meta, &bytes[body.clone()], wal_entries_max)
        .map_err(|error| invalid(error.to_string()))?;
    Ok((
        state,
        Some(CurrentSnapshot {
            meta,
            body_bytes: body.len() as u64,
        }),
    ))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let stage = tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.raft.snapshot_build");
        tracing::Instrument::instrument(self.build_snapshot_unmeasured(), stage).await
    }
}

impl StateMachine {
    async fn build_snapshot_unmeasured(&mut self) -> Result<Snapshot, io::Error> {
        // The view is taken under the lock in O(1); encoding it (seconds at millions of
        // keys) happens with the lock released, while reads and applies go on.
        let (view, covering) = {
            let state = read(&self.shared.state);
            let covering = lock(&self.shared.cadence).applied_total();
            (state.clone(), covering)
        };
        let meta = view.snapshot_meta();
        // A fault point: a slow snapshot build, while applies and reads go on.
        if crate::buggify::buggify("raft-snapshot-build-slow") {
            tokio::time::sleep(crate::buggify::delay_ms(2_000)).await;
        }
        // Room for the last snapshot's size and an eighth more (the state grew since).
        let latest = usize::try_from(self.snapshot_bytes_latest()).unwrap_or(usize::MAX);
        let capacity = latest.saturating_add(latest / 8);
        let encoded = blocking(move || view.encode_snapshot_with_capacity(capacity))
            .await
            .map_err(io_error)?;
        let encoded = Arc::new(encoded);
        self.persist(&meta, encoded.clone()).await?;
        lock(&self.shared.cadence).snapshot_taken(covering, encoded.len() as u64);
        crate::coverage::mark("raft-snapshot-built");
        // `persist` has let go of its share by now, so this takes the bytes back
        // without copying them (openraft keeps only the metadata of what it is given).
        let snapshot = Arc::try_unwrap(encoded).unwrap_or_else(|shared| shared.as_ref().clone());
        Ok(Snapshot { meta, snapshot })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = read(&self.shared.state);
        Ok((
            state.last_applied().cloned(),
            state.last_membership().clone(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            // A fault point: applying lags committing (a slow state machine).
            if crate::buggify::buggify("raft-apply-slow") {
                tokio::time::sleep(crate::buggify::delay_ms(200)).await;
            }
            let _apply = tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.raft.apply").entered();
            let entry_bytes = entry_state_bytes(&entry);
            let (applied, snapshot_due) = {
                let mut state = write(&self.shared.state);
                // Taking the state out leaves it the only owner of its map, so the
                // apply mutates in place unless a view is alive (then it copies only
                // the paths it changes).
                let current =
                    std::mem::replace(&mut *state, AppliedState::new(self.shared.wal_entries_max));
                let (next, applied) = current.apply(entry);
                *state = next;
                let snapshot_due = lock(&self.shared.cadence).entry_applied(entry_bytes);
                (applied, snapshot_due)
            };
            if snapshot_due {
                self.shared
                    .snapshot_wanted
                    .send_modify(|asked| *asked = asked.wrapping_add(1));
            }
            let index = applied.log_index;
            let refused = applied.refused.clone();
            self.shared.feed.publish(applied);
            if let Some(responder) = responder {
                responder.send(CommandResponse { index, refused });
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
        crate::coverage::mark("raft-snapshot-installed");
        let encoded = Arc::new(snapshot);
        let decoding = encoded.clone();
        let decoded_meta = meta.clone();
        let wal_entries_max = self.shared.wal_entries_max;
        let installed = blocking(move || {
            AppliedState::decode_snapshot(&decoded_meta, &decoding, wal_entries_max)
        })
        .await
        .map_err(io_error)?;
        let body_bytes = encoded.len() as u64;
        self.persist(meta, encoded).await?;
        let report = installed.installed_report();
        {
            let mut state = write(&self.shared.state);
            // The installed snapshot covers everything: the count starts again from here.
            let mut cadence = lock(&self.shared.cadence);
            let covering = cadence.applied_total();
            cadence.snapshot_taken(covering, body_bytes);
            drop(cadence);
            *state = if crate::seeded_bugs::enabled(
                crate::seeded_bugs::SeededBug::InstallMergesSnapshot,
            ) {
                state.seeded_bug_merged_with(installed)
            } else {
                installed
            };
        }
        self.shared.feed.publish(report);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let shared = self.shared.clone();
        blocking(move || read_current_snapshot(&shared)).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::Membership;
    use openraft::alias::LeaderIdOf;
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::env::SimDisk;
    use crate::raft::applied_state::Changes;
    use crate::raft::change_feed::FeedEvent;
    use crate::raft::snapshot_cadence::SNAPSHOT_BYTES_PER_APPLIED_BYTE_MAX;
    use crate::raft::types::{Command, Entry};
    use crate::storage::Op;
    use crate::storage::byte_string::RawBytes;

    /// A small WAL buffer, so the tests see it wrap.
    const WAL_ENTRIES: usize = 4;

    fn log_id(index: u64) -> LogId {
        LogId::new(
            LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
            index,
        )
    }

    fn put(key: &str, value: &[u8]) -> Op {
        Op::Put {
            key: key.to_string(),
            value: value.to_vec().into(),
        }
    }

    async fn apply(machine: &mut StateMachine, entries: Vec<Entry>) {
        let items = entries.into_iter().map(|entry| Ok((entry, None)));
        machine.apply(futures::stream::iter(items)).await.unwrap();
    }

    /// A snapshot is asked for after the threshold's entries while the state is small,
    /// and only after half the last snapshot's size was written once it is large;
    /// a snapshot built or installed starts the count again.
    #[tokio::test]
    async fn snapshots_are_asked_for_by_entries_then_by_bytes_against_the_last_snapshot() {
        let disk = SimDisk::new(1);
        let mut machine = StateMachine::open(Arc::new(disk.clone()), WAL_ENTRIES)
            .await
            .unwrap();
        let mut wanted = machine.snapshots_wanted(4);
        let value = vec![7u8; 1_000];
        let write = |index: u64| normal(index, vec![put(&format!("logical/k{index}"), &value)]);
        apply(&mut machine, (1..=3).map(write).collect()).await;
        assert!(!wanted.has_changed().unwrap());
        apply(&mut machine, vec![write(4)]).await;
        assert!(wanted.has_changed().unwrap());
        wanted.borrow_and_update();

        // Forty values of a kilobyte: the snapshot holds ~40 KB, so the next is due
        // after ~20 KB more (twenty entries), not after four.
        apply(&mut machine, (5..=40).map(write).collect()).await;
        let built = machine.build_snapshot().await.unwrap();
        let snapshot_bytes = built.snapshot.len() as u64;
        assert!(snapshot_bytes > 40_000);
        wanted.borrow_and_update();
        let entry_bytes = entry_state_bytes(&write(41));
        let due_after = snapshot_bytes.div_ceil(SNAPSHOT_BYTES_PER_APPLIED_BYTE_MAX * entry_bytes);
        assert!(due_after > 4);
        for index in 41..41 + due_after - 1 {
            apply(&mut machine, vec![write(index)]).await;
            assert!(
                !wanted.has_changed().unwrap(),
                "asked early, at entry {index}"
            );
        }
        apply(&mut machine, vec![write(41 + due_after - 1)]).await;
        assert!(wanted.has_changed().unwrap());
    }

    #[tokio::test]
    async fn batches_apply_atomically_and_snapshots_rebuild_the_machine() {
        let disk = SimDisk::new(1);
        let mut machine = StateMachine::open(Arc::new(disk.clone()), WAL_ENTRIES)
            .await
            .unwrap();
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
        let mut reopened = StateMachine::open(Arc::new(disk.clone()), WAL_ENTRIES)
            .await
            .unwrap();
        assert_eq!(reopened.dump(), machine.dump());
        let (applied, stored_membership) = reopened.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(5)));
        assert_eq!(stored_membership.log_id(), &Some(log_id(1)));
        let current = reopened.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(
            (&current.meta, &current.snapshot),
            (&snapshot.meta, &snapshot.snapshot),
            "the current snapshot is read back from its file as it was built"
        );
        assert_eq!(
            reopened.snapshot_bytes_latest(),
            snapshot.snapshot.len() as u64
        );

        // A follower installs the leader's snapshot wholesale.
        let other_disk = SimDisk::new(2);
        let mut follower = StateMachine::open(Arc::new(other_disk.clone()), WAL_ENTRIES)
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
        let error = StateMachine::open(Arc::new(other_disk), WAL_ENTRIES)
            .await
            .unwrap_err();
        assert!(
            matches!(error, StateMachineError::InvalidSnapshot { .. }),
            "{error}"
        );
    }

    /// A snapshot file encoded as one record, as it was written before the head and the
    /// body were written apart.
    #[derive(serde::Serialize)]
    struct SnapshotFileRef<'a> {
        meta: &'a SnapshotMeta,
        data: RawBytes<'a>,
    }

    #[test]
    fn a_snapshot_file_written_from_its_head_and_body_is_the_record_of_the_file() {
        let membership =
            Membership::new_with_defaults(vec![BTreeSet::from(["n1".to_string()])], []);
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(7)),
            last_membership: StoredMembership::new(Some(log_id(1)), membership),
        };
        // Bodies whose length prefix takes one, three and five bytes.
        for body_bytes in [0, 300, 70_000] {
            let body: Vec<u8> = (0..=255u8).cycle().take(body_bytes).collect();
            let whole = record::encode(
                &SnapshotFileRef {
                    meta: &meta,
                    data: RawBytes(&body),
                },
                SNAPSHOT_BYTES_MAX + SNAPSHOT_META_BYTES_MAX,
            )
            .unwrap();
            let mut written = snapshot_file_head(&meta, &body).unwrap();
            written.extend_from_slice(&body);
            assert_eq!(written, whole, "a body of {body_bytes} bytes");
            let (read_meta, read_body) = parse_snapshot_file(&written).unwrap();
            assert_eq!((read_meta, &written[read_body]), (meta.clone(), &body[..]));
        }
    }

    #[tokio::test]
    async fn the_current_snapshot_is_read_from_its_file_retrying_failed_reads() {
        let disk = SimDisk::new(3);
        let mut machine = StateMachine::open(Arc::new(disk.clone()), WAL_ENTRIES)
            .await
            .unwrap();
        assert!(machine.get_current_snapshot().await.unwrap().is_none());
        apply(&mut machine, sample_log(6)).await;
        let built = machine.build_snapshot().await.unwrap();
        assert_eq!(machine.snapshot_bytes_latest(), built.snapshot.len() as u64);

        // Reads that fail now and then are retried: the snapshot comes back whole.
        disk.set_io_errors(Some(crate::env::IoErrorRates {
            read_per_million: 300_000,
            write_per_million: 0,
        }));
        for _ in 0..20 {
            let current = machine.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(
                (current.meta, current.snapshot),
                (built.meta.clone(), built.snapshot.clone())
            );
        }
        // A disk that fails every read is reported, not answered with no snapshot.
        disk.set_io_errors(Some(crate::env::IoErrorRates {
            read_per_million: 1_000_000,
            write_per_million: 0,
        }));
        assert!(machine.get_current_snapshot().await.is_err());
        disk.set_io_errors(None);

        // A newer snapshot replaces the file; the older one is gone and the newer is
        // current.
        apply(&mut machine, sample_log(9)[6..].to_vec()).await;
        let newer = machine.build_snapshot().await.unwrap();
        assert_eq!(
            disk.list(SNAPSHOT_DIR).unwrap(),
            vec![format!("{:020}{SNAPSHOT_SUFFIX}", 9)]
        );
        let current = machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, newer.meta);

        // A damaged file is an error, never a snapshot of other bytes.
        disk.corrupt_byte(&snapshot_path(9), 30).unwrap();
        assert!(machine.get_current_snapshot().await.is_err());
    }

    fn normal(index: u64, ops: Vec<Op>) -> Entry {
        Entry::new_normal(log_id(index), Command::Apply { ops })
    }

    /// A primary's log (its first entry stores the replication state, so the WAL buffer
    /// keeps entries) of replicated writes (`logical/`), local ones (`sys/token/`) and
    /// deletes.
    fn sample_log(entries: u64) -> Vec<Entry> {
        (1..=entries)
            .map(|index| {
                let mut ops = vec![
                    put(&format!("logical/m/{}", index % 5), &index.to_le_bytes()),
                    put(&format!("sys/token/id/{index}"), b"t"),
                ];
                if index == 1 {
                    ops.push(put(
                        crate::storage::key_space::REPLICATION_STATE_KEY,
                        b"primary",
                    ));
                }
                if index % 3 == 0 {
                    ops.push(Op::Delete {
                        key: format!("logical/m/{}", (index + 1) % 5),
                    });
                }
                normal(index, ops)
            })
            .collect()
    }

    fn wal_of(machine: &StateMachine) -> Vec<(u64, u64, String, Option<Vec<u8>>)> {
        machine
            .view()
            .wal()
            .iter()
            .map(|entry| {
                (
                    entry.wal_index,
                    entry.log_index,
                    entry.key.to_string(),
                    entry.value.as_ref().map(|value| value.to_vec()),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn two_machines_fed_the_same_log_derive_the_same_wal_even_across_a_restart() {
        let log = sample_log(30);

        // One machine applies the whole log straight through.
        let mut straight = StateMachine::open(Arc::new(SimDisk::new(1)), WAL_ENTRIES)
            .await
            .unwrap();
        apply(&mut straight, log.clone()).await;

        // The other snapshots half way, restarts from its disk (the log before the
        // snapshot is gone), and applies the rest.
        let disk = SimDisk::new(2);
        let mut restarted = StateMachine::open(Arc::new(disk.clone()), WAL_ENTRIES)
            .await
            .unwrap();
        apply(&mut restarted, log[..15].to_vec()).await;
        restarted.build_snapshot().await.unwrap();
        disk.crash(true);
        let mut restarted = StateMachine::open(Arc::new(disk.clone()), WAL_ENTRIES)
            .await
            .unwrap();
        assert_eq!(restarted.applied_index(), 15);
        apply(&mut restarted, log[15..].to_vec()).await;

        assert_eq!(restarted.dump(), straight.dump());
        let wal = wal_of(&straight);
        assert_eq!(wal_of(&restarted), wal);
        assert_eq!(wal.len(), WAL_ENTRIES, "the buffer is full and bounded");
        let last = straight.view().wal().last_wal_index();
        assert_eq!(restarted.view().wal().last_wal_index(), last);
        let indexes: Vec<u64> = wal.iter().map(|entry| entry.0).collect();
        let expected: Vec<u64> = (last + 1 - WAL_ENTRIES as u64..=last).collect();
        assert_eq!(indexes, expected, "the newest WAL indexes, dense");
        assert!(
            wal.iter().all(|entry| entry.2.starts_with("logical/")),
            "only replicated keys get WAL indexes"
        );
    }

    #[tokio::test]
    async fn the_change_feed_reports_applies_in_order_and_a_snapshot_install_as_everything() {
        let mut leader = StateMachine::open(Arc::new(SimDisk::new(1)), WAL_ENTRIES)
            .await
            .unwrap();
        let mut subscription = leader.subscribe();
        apply(&mut leader, sample_log(3)).await;
        let mut next_wal_index = 1;
        for log_index in 1..=3 {
            let Some(FeedEvent::Applied(applied)) = subscription.try_next() else {
                panic!("a report for entry {log_index}");
            };
            assert_eq!(applied.log_index, log_index);
            assert_eq!(
                applied.wal_indexes.start, next_wal_index,
                "contiguous WAL ranges"
            );
            next_wal_index = applied.wal_indexes.end;
            let Changes::Keys(changes) = &applied.changes else {
                panic!("an applied entry reports its keys");
            };
            let replicated = changes
                .iter()
                .filter(|change| change.class == crate::storage::KeyClass::Replicated)
                .count() as u64;
            assert_eq!(
                applied.wal_indexes.end - applied.wal_indexes.start,
                replicated
            );
        }
        assert_eq!(subscription.try_next(), None);

        // A follower that installs the leader's snapshot reports that everything may
        // have changed.
        let snapshot = leader.build_snapshot().await.unwrap();
        let mut follower = StateMachine::open(Arc::new(SimDisk::new(2)), WAL_ENTRIES)
            .await
            .unwrap();
        let mut follower_subscription = follower.subscribe();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        let Some(FeedEvent::Applied(installed)) = follower_subscription.try_next() else {
            panic!("a report for the install");
        };
        assert_eq!(installed.changes, Changes::Everything);
        assert_eq!(installed.log_index, 3);
        assert_eq!(installed.wal_indexes, next_wal_index..next_wal_index);
        assert_eq!(wal_of(&follower), wal_of(&leader));
    }

    #[tokio::test]
    async fn a_view_is_a_point_in_time_that_later_applies_do_not_change() {
        let mut machine = StateMachine::open(Arc::new(SimDisk::new(1)), WAL_ENTRIES)
            .await
            .unwrap();
        apply(&mut machine, vec![normal(1, vec![put("logical/a", b"1")])]).await;
        let view = machine.view();
        apply(&mut machine, vec![normal(2, vec![put("logical/a", b"2")])]).await;
        assert_eq!(
            view.get("logical/a").map(|value| value.to_vec()),
            Some(b"1".to_vec())
        );
        assert_eq!(machine.get("logical/a"), Some(b"2".to_vec()));
    }
}
