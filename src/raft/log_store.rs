//! The Raft log on the [`Disk`] seam: checksummed records in segment files under
//! `raft/log/`, each named by the index of its first entry (zero-padded, so names sort
//! by index), rolled at a size limit.
//!
//! Owns: the segments, the vote (`raft/vote`) and the last purged log id
//! (`raft/purged`), both written atomically.
//!
//! Events in: openraft's `append`, `truncate_after`, `purge`, `save_vote` and reads.
//! Appends become visible to readers at once (openraft replicates entries it has
//! submitted) and are queued to one writer task. The writer takes everything queued,
//! writes it, does ONE `sync` per touched file, and only then fires every waiting
//! `IOFlushed` callback: group commit, many appends per fsync. Truncation and purge go
//! through the same queue, so disk operations happen in the order openraft issued them.
//!
//! A full disk (`ENOSPC`) is not a failure: the writer cuts the partial record off,
//! answers what is already durable, and retries the rest every
//! [`FULL_RETRY_DELAY`](super::disk_alarm::FULL_RETRY_DELAY) until space returns, so
//! openraft never sees a fatal storage error for it. Any other error (`EIO` on an append
//! or an fsync) is fatal: the waiting appends are answered with the error, never as
//! durable, every later request fails too, and openraft stops the node (fail-stop; the
//! node stops serving until restarted, see `server::node`). An fsync is never retried:
//! after a failed one the kernel may already have dropped the unsynced pages, so a retry
//! that succeeds proves nothing.
//!
//! Segments are written in place: the writer keeps up to [`PREALLOCATE_BYTES`] of zeros
//! written ahead of the records and writes each batch over them, so most fsyncs flush
//! data without a change of file size (see [`PREALLOCATE_BYTES`]). A reader takes a
//! zero header followed by nothing but zeros for the end of a segment.
//!
//! Invariants: a callback fires only after its entries are durable; only the last
//! segment holds unsynced bytes (a segment is synced before the next one starts); the
//! entries kept after the last purged id are contiguous; a damaged record is either a torn tail of the
//! last segment (followed by nothing or by zeros only: cut away on open, it was never
//! acknowledged) or an error naming the file and offset — never silently skipped; a cut
//! (on open, or openraft's truncation) shortens the file, so no record of a discarded
//! term lies past the new end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use tokio::sync::{mpsc, oneshot};

use super::record::{self, RecordRead};
use super::types::{Entry, LogId, TypeConfig, Vote};
use crate::env::disk::write_atomic;
use crate::env::runtime::blocking;
use crate::env::{Disk, DiskError};

/// The directory of the log segments.
pub const LOG_DIR: &str = "raft/log";
/// The persisted vote.
pub const VOTE_PATH: &str = "raft/vote";
/// The persisted last purged log id.
pub const PURGED_PATH: &str = "raft/purged";
/// Where the last known committed log id is kept. It is advisory: after a restart it
/// lets the node apply its own committed entries at once, so `sys/init` and the seal
/// keys are readable before a leader is heard from, even after a whole-cluster power
/// loss: it is written durably at most every [`COMMITTED_SYNC_INTERVAL`] (the first
/// time at once), and without fsync in between. A lost or stale value is safe: it is
/// only ever a lower bound of what is committed.
pub const COMMITTED_PATH: &str = "raft/committed";
/// The longest time between two durable writes of the committed log id.
pub const COMMITTED_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// The shortest time between two writes of the committed log id; the commits in
/// between are folded into the next write (it takes the latest). Written on every
/// commit, the file cost a task wake-up, a blocking-pool hand-off and five system calls
/// (open, mkdir of the parent, statx, write, close) per write: a node that restarts
/// knows at most this much less of what was committed, which it learns again from the
/// leader (an unseal waits for that: see `Core::catch_up_before_judging_shares`).
pub const COMMITTED_WRITE_INTERVAL_MIN: std::time::Duration = std::time::Duration::from_millis(20);
/// A segment is rolled once appending would take it past this size.
pub const SEGMENT_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// The largest encoded entry (a batch of `storage::BATCH_OPS_MAX` small operations fits).
pub const ENTRY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How much of a segment is filled with zeros at a time, ahead of its records.
/// `fdatasync` after a write that grows a file must also commit the file's new size
/// through the file system's journal; after a write over blocks already written, it
/// flushes the data alone (this box: p50 0.165 against 0.110 ms for 600 B writes, one
/// writer). So the writer keeps zeros written and synced ahead of its records, a chunk
/// at a time, and writes its records over them: one growing write per chunk instead of
/// one per group commit.
pub const PREALLOCATE_BYTES: u64 = 1024 * 1024;
/// A new chunk of zeros is written once the records come this close to the end of the
/// last one.
const PREALLOCATE_AHEAD_MIN: u64 = 256 * 1024;
/// The largest vote or purged-id record.
const SMALL_RECORD_BYTES_MAX: usize = 4096;
/// How many requests may wait for the writer before `append` waits in turn.
pub const WRITE_QUEUE_DEPTH_MAX: usize = 1024;
/// The most requests the writer takes into one batch (one fsync).
pub const WRITE_BATCH_REQUESTS_MAX: usize = 1024;

const SEGMENT_SUFFIX: &str = ".seg";

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// A damaged record that is not a torn tail: the node must not start on this log.
    #[error("raft log corrupt in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("raft storage file {path} is invalid: {reason}")]
    Invalid { path: String, reason: String },
}

/// Tunables; production uses [`LogStoreOptions::default`], tests roll segments sooner.
#[derive(Debug, Clone, Copy)]
pub struct LogStoreOptions {
    pub segment_bytes_max: u64,
    /// How far ahead of its records a segment is filled with zeros (0: never).
    pub preallocate_bytes: u64,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self {
            segment_bytes_max: SEGMENT_BYTES_MAX,
            preallocate_bytes: PREALLOCATE_BYTES,
        }
    }
}

/// What readers see: every submitted entry, the vote, the last purged id.
#[derive(Debug, Default)]
struct Shared {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    last_purged: Option<LogId>,
}

enum WriteRequest {
    Append {
        records: Vec<(u64, Vec<u8>)>,
        callback: IOFlushed<TypeConfig>,
        /// The stage from the append's call to its entries being durable; it closes
        /// when the callback is answered (disabled unless stage timings are on).
        stage: tracing::Span,
    },
    /// Remove every entry with an index of `from` or more.
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// The segmented log; cheap to clone (the clones share state and the writer).
#[derive(Clone)]
pub struct LogStore {
    disk: Arc<dyn Disk>,
    shared: Arc<Mutex<Shared>>,
    writer: mpsc::Sender<WriteRequest>,
    /// The clock the committed id's durable writes are paced by, and when the last one
    /// was made (none: the next write is durable).
    committed_sync: Arc<Mutex<(Option<crate::env::Clock>, Option<std::time::Instant>)>>,
    /// The latest committed id not yet written, for the committed writer.
    committed_latest: Arc<Mutex<Option<LogId>>>,
    /// Wakes the committed writer; it stops once every clone of the store is dropped.
    committed_wake: mpsc::Sender<()>,
}

impl Debug for LogStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LogStore")
    }
}

fn segment_path(first_index: u64) -> String {
    format!("{LOG_DIR}/{first_index:020}{SEGMENT_SUFFIX}")
}

fn io_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl LogStore {
    /// Open the log on `disk`: read the vote and purge point, scan every segment, cut a
    /// torn tail off the last one, and start the writer task.
    pub async fn open(
        disk: Arc<dyn Disk>,
        options: LogStoreOptions,
    ) -> Result<Self, LogStoreError> {
        Self::open_measured(disk, options, None).await
    }

    /// [`LogStore::open`], timing each batch's fsyncs (`vault.raft_storage.fsync`).
    pub async fn open_measured(
        disk: Arc<dyn Disk>,
        options: LogStoreOptions,
        telemetry: Option<crate::metrics::Telemetry>,
    ) -> Result<Self, LogStoreError> {
        let recovering = disk.clone();
        let (mut writer, shared) = blocking(move || recover(recovering, options)).await?;
        writer.telemetry = telemetry;
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE_DEPTH_MAX);
        tokio::spawn(run_writer(writer, receiver));
        let committed_sync: Arc<Mutex<_>> = Arc::default();
        let committed_latest: Arc<Mutex<_>> = Arc::default();
        // One pending wake-up is enough: the writer always takes the latest id.
        let (committed_wake, woken) = mpsc::channel(1);
        tokio::spawn(run_committed_writer(
            disk.clone(),
            committed_latest.clone(),
            committed_sync.clone(),
            woken,
        ));
        Ok(Self {
            disk,
            shared: Arc::new(Mutex::new(shared)),
            writer: sender,
            committed_sync,
            committed_latest,
            committed_wake,
        })
    }

    /// Write the committed log id durably at most every [`COMMITTED_SYNC_INTERVAL`] of
    /// `clock` (without a clock it is never synced).
    pub fn with_committed_sync(self, clock: crate::env::Clock) -> Self {
        lock_sync(&self.committed_sync).0 = Some(clock);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The index of the last entry (or of the last purged one), if any.
    pub fn last_index(&self) -> Option<u64> {
        let shared = self.lock();
        shared
            .entries
            .keys()
            .next_back()
            .copied()
            .or(shared.last_purged.as_ref().map(|log_id| log_id.index))
    }

    async fn request(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> WriteRequest,
    ) -> Result<(), io::Error> {
        let (done, wait) = oneshot::channel();
        self.writer
            .send(make(done))
            .await
            .map_err(|_| io_error("raft log writer stopped"))?;
        wait.await
            .map_err(|_| io_error("raft log writer stopped"))?
            .map_err(io_error)
    }
}

fn lock_sync<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) =
            (start, end)
            && s > e
        {
            return Ok(Vec::new());
        }
        let shared = self.lock();
        Ok(shared
            .entries
            .range((start, end))
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().vote.clone())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let shared = self.lock();
        let last_log_id = shared
            .entries
            .values()
            .next_back()
            .map(|entry| entry.log_id())
            .or(shared.last_purged.clone());
        Ok(LogState {
            last_purged_log_id: shared.last_purged.clone(),
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = Arc::new(record::encode(vote, SMALL_RECORD_BYTES_MAX).map_err(io_error)?);
        retry_while_full("saving the vote", || {
            let disk = self.disk.clone();
            let bytes = bytes.clone();
            blocking(move || write_atomic(disk.as_ref(), VOTE_PATH, &bytes))
        })
        .await
        .map_err(io_error)?;
        self.lock().vote = Some(vote.clone());
        Ok(())
    }

    /// Hand the committed id to the committed writer and return at once. openraft
    /// awaits this before every apply, in its core loop: writing the file here put a
    /// blocking-pool round trip and a file write (and once a second two fsyncs) between
    /// every commit and its apply, on every node. The file is advisory and a stale
    /// value is safe (see [`COMMITTED_PATH`]), so it may trail by one write.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let Some(committed) = committed else {
            return Ok(());
        };
        *lock_sync(&self.committed_latest) = Some(committed);
        // Full: a wake-up is already pending and will take this id.
        let _ = self.committed_wake.try_send(());
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let disk = self.disk.clone();
        let committed: Option<LogId> =
            match blocking(move || read_small_record::<LogId>(disk.as_ref(), COMMITTED_PATH)).await
            {
                Ok(committed) => committed,
                Err(error) => {
                    tracing::warn!(%error, "ignoring an unreadable committed index");
                    None
                }
            };
        // Never claim more than this log holds (the file is written without fsync).
        Ok(committed.filter(|committed| {
            self.last_index()
                .is_some_and(|last| committed.index() <= last)
        }))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let stage = tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.raft.append_durable");
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            let bytes = record::encode(entry, ENTRY_BYTES_MAX).map_err(io_error)?;
            records.push((entry.index(), bytes));
        }
        {
            let mut shared = self.lock();
            for entry in entries {
                shared.entries.insert(entry.index(), entry);
            }
        }
        self.writer
            .send(WriteRequest::Append {
                records,
                callback,
                stage,
            })
            .await
            .map_err(|_| io_error("raft log writer stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let mut from = last_log_id.map_or(0, |log_id| log_id.index + 1);
        if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::TruncateOneTooMany) {
            from = from.saturating_sub(1);
        }
        if !self.lock().entries.split_off(&from).is_empty() {
            crate::coverage::mark("raft-log-conflict-truncated");
        }
        self.request(|done| WriteRequest::Truncate { from, done })
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut shared = self.lock();
            let mut first_kept = log_id.index + 1;
            if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::PurgeOneTooMany) {
                first_kept += 1;
            }
            let kept = shared.entries.split_off(&first_kept);
            shared.entries = kept;
            shared.last_purged = Some(log_id.clone());
        }
        crate::coverage::mark("raft-log-purged");
        self.request(|done| WriteRequest::Purge { upto: log_id, done })
            .await
    }
}

/// One segment file as the writer knows it.
#[derive(Debug, Clone)]
struct Segment {
    /// Where its records end (and the next one goes).
    bytes: u64,
    last_index: Option<u64>,
    /// The file's length: its records, then zeros written ahead of them.
    allocated: u64,
    /// A chunk of zeros could not be written (a full disk, an error): the segment
    /// grows with its records from then on.
    preallocation_stopped: bool,
}

/// The writer task's view of the files. Only the writer touches segments after open.
struct SegmentWriter {
    disk: Arc<dyn Disk>,
    options: LogStoreOptions,
    /// Keyed by first index.
    segments: BTreeMap<u64, Segment>,
    /// Entry index to (segment first index, byte offset).
    locations: BTreeMap<u64, (u64, u64)>,
    /// Set after a failed disk operation: memory and disk may disagree, so every later
    /// request fails too and openraft stops the node.
    failed: Option<String>,
    /// Set while requests wait for disk space (logged once on each change).
    waiting_for_space: bool,
    telemetry: Option<crate::metrics::Telemetry>,
}

/// Why a purge did not happen: a full disk (retried) or anything else (fatal).
enum PurgeError {
    Full(DiskError),
    Failed(String),
}

/// Work done but not yet durable within one batch.
#[derive(Default)]
struct Pending {
    files: BTreeSet<String>,
    directory: bool,
    /// Each with its append's stage span, closed once the callback is answered.
    callbacks: Vec<(IOFlushed<TypeConfig>, tracing::Span)>,
    /// Entries written since the last fsync: what the next one makes durable.
    entries: usize,
}

/// Write the latest committed id handed over by `save_committed`, one write at a time
/// (so the file only moves forward), at most every [`COMMITTED_WRITE_INTERVAL_MIN`] and
/// durably at most every [`COMMITTED_SYNC_INTERVAL`] of the store's clock. Ends once
/// every clone of the store is dropped.
async fn run_committed_writer(
    disk: Arc<dyn Disk>,
    latest: Arc<Mutex<Option<LogId>>>,
    sync: Arc<Mutex<(Option<crate::env::Clock>, Option<std::time::Instant>)>>,
    mut woken: mpsc::Receiver<()>,
) {
    while woken.recv().await.is_some() {
        let Some(committed) = lock_sync(&latest).take() else {
            continue;
        };
        let bytes = match record::encode(&committed, SMALL_RECORD_BYTES_MAX) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, "raft log: cannot encode the committed id");
                continue;
            }
        };
        let durable = {
            let mut sync = lock_sync(&sync);
            match sync.0.as_ref().map(crate::env::Clock::now) {
                Some(now)
                    if sync
                        .1
                        .is_none_or(|last| now.duration_since(last) >= COMMITTED_SYNC_INTERVAL) =>
                {
                    sync.1 = Some(now);
                    true
                }
                _ => false,
            }
        };
        let disk = disk.clone();
        let written = blocking(move || {
            if durable {
                write_atomic(disk.as_ref(), COMMITTED_PATH, &bytes)
            } else {
                disk.write(COMMITTED_PATH, &bytes)
            }
        })
        .await;
        match written {
            Ok(()) => {}
            // Advisory (see COMMITTED_PATH): a full disk only makes it stale, and a
            // torn copy is ignored on open.
            Err(error) if error.is_storage_full() => {}
            // A failing disk fails the log's own writes too, and those stop the node;
            // this file only goes stale.
            Err(error) => tracing::warn!(%error, "raft log: cannot write the committed id"),
        }
        tokio::time::sleep(COMMITTED_WRITE_INTERVAL_MIN).await;
    }
}

async fn run_writer(mut writer: SegmentWriter, mut requests: mpsc::Receiver<WriteRequest>) {
    // Requests a full disk held back, oldest first; they go before anything newer.
    let mut waiting: Vec<WriteRequest> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut waiting);
        if batch.is_empty() {
            match requests.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
        }
        while batch.len() < WRITE_BATCH_REQUESTS_MAX {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        // A fault point: a slow fsync (a busy or failing device). The batch's appends wait
        // for it like for a real one; a crash meanwhile loses them, unacknowledged.
        if crate::buggify::buggify("raft-log-fsync-slow") {
            tokio::time::sleep(crate::buggify::delay_ms(500)).await;
        }
        let held_back;
        (writer, held_back) = blocking(move || {
            let held_back = writer.process(batch);
            (writer, held_back)
        })
        .await;
        if !held_back.is_empty() {
            waiting = held_back;
            tokio::time::sleep(super::disk_alarm::FULL_RETRY_DELAY).await;
        }
    }
}

impl SegmentWriter {
    /// Carry out `batch` in order; answer with the requests a full disk held back (the
    /// first of them possibly shortened to what is not yet written), to retry later.
    fn process(&mut self, batch: Vec<WriteRequest>) -> Vec<WriteRequest> {
        let mut pending = Pending::default();
        let mut batch = batch.into_iter().peekable();
        while let Some(request) = batch.next() {
            match request {
                WriteRequest::Append {
                    records,
                    callback,
                    stage,
                } => {
                    // This append and the appends queued right behind it go to the disk
                    // together: one write per segment for the whole group commit.
                    let mut run = vec![(records, callback, stage)];
                    while let Some(WriteRequest::Append {
                        records,
                        callback,
                        stage,
                    }) = batch.next_if(|next| matches!(next, WriteRequest::Append { .. }))
                    {
                        run.push((records, callback, stage));
                    }
                    if let Err(reason) = self.check_healthy() {
                        for (_, callback, stage) in run {
                            pending.callbacks.push((callback, stage));
                        }
                        self.note(Err(reason));
                        continue;
                    }
                    let written = {
                        let _write = tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.raft.log_write")
                            .entered();
                        let all: Vec<(u64, &[u8])> = run
                            .iter()
                            .flat_map(|(records, _, _)| {
                                records
                                    .iter()
                                    .map(|(index, bytes)| (*index, bytes.as_slice()))
                            })
                            .collect();
                        self.write(&all, &mut pending)
                    };
                    match written {
                        Ok(()) => {
                            for (_, callback, stage) in run {
                                pending.callbacks.push((callback, stage));
                            }
                        }
                        Err((written, error)) if error.is_storage_full() => {
                            // The appends wholly written are answered once the hold-back
                            // makes them durable; the one cut short waits for space with
                            // what it has left, and every append after it waits whole.
                            let mut left = written;
                            let mut held_back = Vec::new();
                            for (records, callback, stage) in run {
                                if held_back.is_empty() && left >= records.len() {
                                    left -= records.len();
                                    pending.callbacks.push((callback, stage));
                                } else {
                                    held_back.push(WriteRequest::Append {
                                        records: records[left..].to_vec(),
                                        callback,
                                        stage,
                                    });
                                    left = 0;
                                }
                            }
                            let mut held_back = held_back.into_iter();
                            let first = held_back
                                .next()
                                .expect("a write that stopped short left an append unwritten");
                            return self.hold_back(
                                first,
                                held_back.chain(batch),
                                &mut pending,
                                &error,
                            );
                        }
                        Err((_, error)) => {
                            for (_, callback, stage) in run {
                                pending.callbacks.push((callback, stage));
                            }
                            self.note(Err(error.to_string()));
                        }
                    }
                }
                WriteRequest::Truncate { from, done } => {
                    self.flush(&mut pending);
                    let result = self.check_healthy().and_then(|()| self.truncate(from));
                    self.note(result.clone());
                    done.send(result).ok();
                }
                WriteRequest::Purge { upto, done } => {
                    self.flush(&mut pending);
                    let result = match self.check_healthy() {
                        Ok(()) => self.purge(&upto),
                        Err(reason) => Err(PurgeError::Failed(reason)),
                    };
                    let result = match result {
                        Err(PurgeError::Full(error)) => {
                            let rest = WriteRequest::Purge { upto, done };
                            return self.hold_back(rest, batch, &mut pending, &error);
                        }
                        Err(PurgeError::Failed(reason)) => Err(reason),
                        Ok(()) => Ok(()),
                    };
                    self.note(result.clone());
                    done.send(result).ok();
                }
            }
            if self.waiting_for_space && self.failed.is_none() {
                self.waiting_for_space = false;
                tracing::warn!("raft log: disk space is back, writes go on");
            }
        }
        self.flush(&mut pending);
        Vec::new()
    }

    /// The disk is full: make what was written durable (and answer it), and hand back
    /// `first` and the rest of the batch to retry once space may be back.
    fn hold_back(
        &mut self,
        first: WriteRequest,
        rest: impl Iterator<Item = WriteRequest>,
        pending: &mut Pending,
        error: &DiskError,
    ) -> Vec<WriteRequest> {
        crate::coverage::mark("raft-disk-full-waited");
        if !self.waiting_for_space {
            self.waiting_for_space = true;
            tracing::error!(%error, "raft log: the disk is full, waiting for space");
        }
        self.flush(pending);
        let mut held_back = vec![first];
        held_back.extend(rest);
        held_back
    }

    fn check_healthy(&self) -> Result<(), String> {
        match &self.failed {
            Some(reason) => Err(format!("raft log failed earlier: {reason}")),
            None => Ok(()),
        }
    }

    fn note(&mut self, result: Result<(), String>) {
        if let Err(reason) = result
            && self.failed.is_none()
        {
            tracing::error!(%reason, "raft log write failed");
            self.failed = Some(reason);
        }
    }

    /// Make everything written so far durable, then answer the waiting appends.
    fn flush(&mut self, pending: &mut Pending) {
        let _fsync = (!pending.files.is_empty() || pending.directory)
            .then(|| tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.raft.fsync").entered());
        let mut result = self.check_healthy();
        let started = self.telemetry.as_ref().map(|telemetry| telemetry.now());
        if result.is_ok() {
            for path in &pending.files {
                if let Err(error) = self.sync_segment(path) {
                    result = Err(error.to_string());
                    break;
                }
            }
        }
        if result.is_ok() && pending.directory {
            result = self
                .disk
                .sync_dir(LOG_DIR)
                .map_err(|error| error.to_string());
        }
        if let (Some(telemetry), Some(started)) = (&self.telemetry, started)
            && (!pending.files.is_empty() || pending.directory)
        {
            // Not a Vault name (Vault's BoltDB series differ); the fsync is what a write
            // waits on, so it gets its own series.
            telemetry.measure_since("vault.raft_storage.fsync", started);
            // How well the group commit works: entries made durable per flush (again
            // not a Vault name; the target for it is in benches/README.md).
            telemetry.observe(
                "vault.raft_storage.entries_per_fsync",
                pending.entries as f64,
            );
        }
        self.note(result.clone());
        for (callback, stage) in pending.callbacks.drain(..) {
            callback.io_completed(result.clone().map_err(io_error));
            drop(stage);
        }
        pending.files.clear();
        pending.directory = false;
        pending.entries = 0;
    }

    /// fsync one segment. (The seeded bugs skip it, or shrug off its failure.)
    fn sync_segment(&self, path: &str) -> Result<(), DiskError> {
        if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::SkipLogFsync) {
            return Ok(());
        }
        match self.disk.sync(path) {
            Err(error)
                if crate::seeded_bugs::enabled(
                    crate::seeded_bugs::SeededBug::IgnoreLogWriteError,
                ) =>
            {
                tracing::warn!(%error, "ignoring a failed fsync of the raft log");
                Ok(())
            }
            other => other,
        }
    }

    /// Append `records`; on failure, how many were written and why. A record the disk
    /// took only part of is cut off again, so the segment ends on a whole record.
    ///
    /// The records bound for one segment go to the disk in one append (one `write`
    /// call for a whole group commit, not one per record); a failed append leaves none
    /// of its records counted as written.
    fn write(
        &mut self,
        records: &[(u64, &[u8])],
        pending: &mut Pending,
    ) -> Result<(), (usize, DiskError)> {
        let mut written = 0;
        while written < records.len() {
            let first = self
                .segment_for(records[written].0, records[written].1.len(), pending)
                .map_err(|error| (written, error))?;
            let segment = &self.segments[&first];
            let length = segment.bytes;
            // The run: the next record, then every one after it that continues the
            // index and still fits the segment.
            let mut end = written + 1;
            let mut run_bytes = records[written].1.len() as u64;
            while let Some((index, bytes)) = records.get(end)
                && *index == records[end - 1].0 + 1
                && length + run_bytes + bytes.len() as u64 <= self.options.segment_bytes_max
            {
                run_bytes += bytes.len() as u64;
                end += 1;
            }
            let path = segment_path(first);
            let appended = match &records[written..end] {
                [(_, bytes)] => self.disk.write_at(&path, length, bytes),
                run => {
                    let mut joined = Vec::with_capacity(run_bytes as usize);
                    for (_, bytes) in run {
                        joined.extend_from_slice(bytes);
                    }
                    self.disk.write_at(&path, length, &joined)
                }
            };
            if let Err(error) = appended {
                // A short write leaves part of the run: cut it (with any zeros after
                // it), or the next write would follow garbage. Cutting frees space, so
                // it does not meet ENOSPC.
                if let Err(cut) = self.disk.truncate(&path, length)
                    && !matches!(cut, DiskError::NotFound(_))
                {
                    return Err((written, cut));
                }
                if let Some(segment) = self.segments.get_mut(&first) {
                    segment.allocated = length;
                }
                pending.files.insert(path);
                return Err((written, error));
            }
            let segment = self
                .segments
                .get_mut(&first)
                .expect("the current segment exists");
            for (index, bytes) in &records[written..end] {
                self.locations.insert(*index, (first, segment.bytes));
                segment.bytes += bytes.len() as u64;
                segment.last_index = Some(*index);
            }
            segment.allocated = segment.allocated.max(segment.bytes);
            self.preallocate(first);
            pending.files.insert(path);
            pending.entries += end - written;
            written = end;
        }
        Ok(())
    }

    /// Write the next chunk of zeros after segment `first`'s records once they come
    /// within [`PREALLOCATE_AHEAD_MIN`] of the end of the last one (never past the
    /// segment's size limit). The zeros go out with the records' fsync. Best effort: if
    /// the disk refuses, what it took is zeros after the records (which a reader takes
    /// for the end) and the segment grows with its records from then on.
    fn preallocate(&mut self, first: u64) {
        let chunk = self.options.preallocate_bytes;
        let limit = self.options.segment_bytes_max;
        let Some(segment) = self.segments.get_mut(&first) else {
            return;
        };
        if chunk == 0
            || segment.preallocation_stopped
            || segment.allocated >= limit
            || segment.bytes + PREALLOCATE_AHEAD_MIN.min(chunk) <= segment.allocated
        {
            return;
        }
        let from = segment.allocated;
        let to = (from + chunk).min(limit);
        let zeros = vec![0_u8; (to - from) as usize];
        match self.disk.write_at(&segment_path(first), from, &zeros) {
            Ok(()) => segment.allocated = to,
            Err(error) => {
                tracing::debug!(%error, first, "stopped filling a raft log segment ahead with zeros");
                segment.preallocation_stopped = true;
            }
        }
    }

    /// The first index of the segment the record `index` (of `bytes` bytes) goes to:
    /// the current one if it continues it and fits, else a new one.
    fn segment_for(
        &mut self,
        index: u64,
        bytes: usize,
        pending: &mut Pending,
    ) -> Result<u64, DiskError> {
        let current = self
            .segments
            .iter()
            .next_back()
            .map(|(first, segment)| (*first, segment.clone()));
        match current {
            Some((first, segment))
                if segment.last_index.map(|last| last + 1) == Some(index)
                    && (segment.bytes == 0
                        || segment.bytes + bytes as u64 <= self.options.segment_bytes_max) =>
            {
                Ok(first)
            }
            _ => {
                // A full segment, or a jump in index after a purge past the log
                // (a snapshot installed from the leader): start a new segment.
                // The segment left behind is made durable first, so only the last
                // segment ever holds unsynced bytes: a failed fsync (whose bytes the
                // kernel drops) or a crash can then cost only the log's tail, never
                // leave a hole with later entries after it (the disk-errors
                // scenario found such a hole, seed 300145855).
                if let Some((previous, _)) = &current {
                    let previous_path = segment_path(*previous);
                    if pending.files.contains(&previous_path) {
                        self.sync_segment(&previous_path)?;
                        pending.files.remove(&previous_path);
                    }
                }
                self.segments.insert(
                    index,
                    Segment {
                        bytes: 0,
                        last_index: None,
                        allocated: 0,
                        preallocation_stopped: false,
                    },
                );
                pending.directory = true;
                Ok(index)
            }
        }
    }

    fn truncate(&mut self, from: u64) -> Result<(), String> {
        // Whole segments first, newest first, made durable before cutting into the one
        // that straddles `from`: after a crash midway the log is still a prefix.
        let doomed: Vec<u64> = self
            .segments
            .range(from..)
            .map(|(first, _)| *first)
            .collect();
        for first in doomed.iter().rev() {
            self.disk
                .remove(&segment_path(*first))
                .map_err(|error| error.to_string())?;
            self.segments.remove(first);
        }
        if !doomed.is_empty() {
            self.disk
                .sync_dir(LOG_DIR)
                .map_err(|error| error.to_string())?;
        }
        // The segment that straddles `from`, if any: one starting at `from` is gone above.
        if let Some((segment_first, offset)) = self.locations.get(&from).copied()
            && segment_first < from
        {
            let path = segment_path(segment_first);
            self.disk
                .truncate(&path, offset)
                .map_err(|error| error.to_string())?;
            let segment = self
                .segments
                .get_mut(&segment_first)
                .expect("located segments exist");
            // The file is cut, zeros and all: entries of the old term after the cut
            // must not be found again past the new ones.
            segment.bytes = offset;
            segment.allocated = offset;
            segment.last_index = from.checked_sub(1);
        }
        self.locations.split_off(&from);
        Ok(())
    }

    fn purge(&mut self, upto: &LogId) -> Result<(), PurgeError> {
        // The purge point is durable before any segment goes: on open, entries at or
        // below it are ignored even if a removed segment comes back.
        let bytes = record::encode(upto, SMALL_RECORD_BYTES_MAX)
            .map_err(|error| PurgeError::Failed(error.to_string()))?;
        write_atomic(self.disk.as_ref(), PURGED_PATH, &bytes).map_err(|error| {
            if error.is_storage_full() {
                PurgeError::Full(error)
            } else {
                PurgeError::Failed(error.to_string())
            }
        })?;
        self.remove_purged(upto).map_err(PurgeError::Failed)
    }

    fn remove_purged(&mut self, upto: &LogId) -> Result<(), String> {
        let purge_one_too_many =
            crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::PurgeOneTooMany);
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .filter(|(first, segment)| {
                segment.last_index.is_none_or(|last| last <= upto.index)
                    || (purge_one_too_many && **first <= upto.index + 1)
            })
            .map(|(first, _)| *first)
            .collect();
        for first in &doomed {
            self.disk
                .remove(&segment_path(*first))
                .map_err(|error| error.to_string())?;
            self.segments.remove(first);
        }
        if !doomed.is_empty() {
            self.disk
                .sync_dir(LOG_DIR)
                .map_err(|error| error.to_string())?;
        }
        self.locations = self.locations.split_off(&(upto.index + 1));
        Ok(())
    }
}

/// Run `attempt` until it succeeds or fails for another reason than a full disk,
/// waiting [`FULL_RETRY_DELAY`](super::disk_alarm::FULL_RETRY_DELAY) between tries and
/// logging once when it starts to wait and once when it is through.
pub(crate) async fn retry_while_full<F, Fut>(what: &str, mut attempt: F) -> Result<(), DiskError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), DiskError>>,
{
    let mut waited = false;
    loop {
        match attempt().await {
            Err(error) if error.is_storage_full() => {
                crate::coverage::mark("raft-disk-full-waited");
                if !waited {
                    tracing::error!(%error, "{what}: the disk is full, waiting for space");
                    waited = true;
                }
                tokio::time::sleep(super::disk_alarm::FULL_RETRY_DELAY).await;
            }
            other => {
                if waited && other.is_ok() {
                    tracing::warn!("{what}: disk space is back, done");
                }
                return other;
            }
        }
    }
}

fn read_small_record<T: serde::de::DeserializeOwned>(
    disk: &dyn Disk,
    path: &str,
) -> Result<Option<T>, LogStoreError> {
    let Some(bytes) = disk.read(path)? else {
        return Ok(None);
    };
    let invalid = |reason: String| LogStoreError::Invalid {
        path: path.to_string(),
        reason,
    };
    match record::read(&bytes, 0, SMALL_RECORD_BYTES_MAX) {
        RecordRead::Complete { body, end } if end == bytes.len() => {
            record::decode_body(body).map(Some).map_err(invalid)
        }
        RecordRead::Complete { .. } => Err(invalid("trailing bytes".to_string())),
        RecordRead::Incomplete => Err(invalid("truncated record".to_string())),
        RecordRead::Corrupt { reason, .. } => Err(invalid(reason)),
    }
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|byte| *byte == 0)
}

/// Rebuild the in-memory log from the files (see the module docs for what is repaired
/// and what is refused).
fn recover(
    disk: Arc<dyn Disk>,
    options: LogStoreOptions,
) -> Result<(SegmentWriter, Shared), LogStoreError> {
    let vote: Option<Vote> = read_small_record(disk.as_ref(), VOTE_PATH)?;
    let last_purged: Option<LogId> = read_small_record(disk.as_ref(), PURGED_PATH)?;

    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    for name in disk.list(LOG_DIR)? {
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(first) if segment_path(first) == format!("{LOG_DIR}/{name}") => {
                names.insert(first, name);
            }
            _ => tracing::warn!(%name, "ignoring a file that is not a log segment"),
        }
    }

    let mut shared = Shared {
        entries: BTreeMap::new(),
        vote,
        last_purged,
    };
    let mut writer = SegmentWriter {
        disk: disk.clone(),
        options,
        segments: BTreeMap::new(),
        locations: BTreeMap::new(),
        failed: None,
        waiting_for_space: false,
        telemetry: None,
    };
    let segment_count = names.len();
    let mut directory_changed = false;
    for (position, first) in names.keys().copied().enumerate() {
        let is_last = position + 1 == segment_count;
        let path = segment_path(first);
        let bytes = disk.read(&path)?.unwrap_or_default();
        let corrupt = |offset: usize, reason: String| LogStoreError::Corrupt {
            path: path.clone(),
            offset: offset as u64,
            reason,
        };
        let mut offset = 0usize;
        let mut expected_index = first;
        let mut last_index = None;
        let mut allocated = bytes.len() as u64;
        while offset < bytes.len() {
            // Zeros written ahead of the records: the end, if nothing but zeros follows
            // (a record never starts with a zero header: its version byte is not 0).
            if bytes[offset..]
                .iter()
                .take(record::RECORD_HEADER_BYTES)
                .all(|byte| *byte == 0)
            {
                if all_zero(&bytes[offset..]) {
                    break;
                }
                // Never written so by this code: damage, or (in the last segment) a
                // batch whose pages reached the disk out of order before a power loss.
                // As for a damaged record with data after it, the node does not start.
                return Err(corrupt(
                    offset,
                    "zeros where a record should start, with data after them".to_string(),
                ));
            }
            match record::read(&bytes, offset, ENTRY_BYTES_MAX) {
                RecordRead::Complete { body, end } => {
                    let entry: Entry =
                        record::decode_body(body).map_err(|reason| corrupt(offset, reason))?;
                    if entry.index() != expected_index {
                        return Err(corrupt(
                            offset,
                            format!(
                                "entry index {} where {expected_index} was expected",
                                entry.index()
                            ),
                        ));
                    }
                    writer
                        .locations
                        .insert(entry.index(), (first, offset as u64));
                    shared.entries.insert(entry.index(), entry);
                    last_index = Some(expected_index);
                    expected_index += 1;
                    offset = end;
                }
                RecordRead::Incomplete if is_last => {
                    tracing::warn!(%path, offset, "cutting a torn record off the end of the raft log");
                    crate::coverage::mark("raft-torn-tail-cut");
                    disk.truncate(&path, offset as u64)?;
                    allocated = offset as u64;
                    break;
                }
                // The final record, or the final record before the zeros written ahead
                // of it: a write torn part way (never acknowledged).
                RecordRead::Corrupt { reason, end } if is_last && all_zero(&bytes[end..]) => {
                    tracing::warn!(%path, offset, %reason, "cutting a damaged final record off the raft log");
                    crate::coverage::mark("raft-torn-tail-cut");
                    disk.truncate(&path, offset as u64)?;
                    allocated = offset as u64;
                    break;
                }
                RecordRead::Incomplete => {
                    return Err(corrupt(
                        offset,
                        "record runs past the end of a segment that is not the last".to_string(),
                    ));
                }
                RecordRead::Corrupt { reason, .. } => {
                    return Err(corrupt(offset, format!("{reason}, with data after it")));
                }
            }
        }
        if last_index.is_none() {
            if !is_last {
                return Err(corrupt(0, "empty segment that is not the last".to_string()));
            }
            // A segment whose first record was torn: nothing in it was acknowledged.
            disk.remove(&path)?;
            directory_changed = true;
            continue;
        }
        writer.segments.insert(
            first,
            Segment {
                bytes: offset as u64,
                last_index,
                allocated,
                preallocation_stopped: false,
            },
        );
    }

    if let Some(purged) = &shared.last_purged {
        // Segments wholly at or below the purge point may come back after a crash
        // between recording the purge and removing them; finish the job.
        let doomed: Vec<u64> = writer
            .segments
            .iter()
            .filter(|(_, segment)| segment.last_index.is_none_or(|last| last <= purged.index))
            .map(|(first, _)| *first)
            .collect();
        for first in doomed {
            disk.remove(&segment_path(first))?;
            writer.segments.remove(&first);
            directory_changed = true;
        }
        shared.entries = shared.entries.split_off(&(purged.index + 1));
        writer.locations = writer.locations.split_off(&(purged.index + 1));
        if let Some(first_kept) = shared.entries.keys().next()
            && *first_kept > purged.index + 1
        {
            return Err(LogStoreError::Invalid {
                path: LOG_DIR.to_string(),
                reason: format!(
                    "log resumes at {first_kept} after purging up to {}",
                    purged.index
                ),
            });
        }
    }
    // Kept entries must be contiguous across segments.
    let mut previous: Option<u64> = None;
    for index in shared.entries.keys() {
        if let Some(previous) = previous
            && *index != previous + 1
        {
            return Err(LogStoreError::Invalid {
                path: LOG_DIR.to_string(),
                reason: format!("gap in the log between {previous} and {index}"),
            });
        }
        previous = Some(*index);
    }
    if directory_changed {
        disk.sync_dir(LOG_DIR)?;
    }
    Ok((writer, shared))
}

#[cfg(test)]
mod tests;
