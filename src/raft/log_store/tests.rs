//! The log store on the simulated disk: reads and rewrites, group commit, recovery from
//! torn tails, refusal of real corruption, and no acknowledged entry lost to a crash.

use std::sync::Mutex;

use openraft::alias::{LeaderIdOf, OneshotReceiverOf};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;

use super::*;
use crate::env::SimDisk;
use crate::raft::types::Command;
use crate::storage::Op;

type Flushed = OneshotReceiverOf<TypeConfig, Result<(), io::Error>>;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        LeaderIdOf::<TypeConfig>::new_committed(term, "n1".to_string()),
        index,
    )
}

fn entry(term: u64, index: u64) -> Entry {
    Entry::new_normal(
        log_id(term, index),
        Command::Apply {
            ops: vec![Op::Put {
                key: format!("key/{index}"),
                value: vec![index as u8; 40].into(),
            }],
        },
    )
}

fn small_segments() -> LogStoreOptions {
    LogStoreOptions {
        segment_bytes_max: 400,
        preallocate_bytes: 150,
    }
}

/// Where a segment's records end (zeros written ahead of them may follow).
fn records_end(bytes: &[u8]) -> usize {
    let mut offset = 0;
    while let RecordRead::Complete { end, .. } = record::read(bytes, offset, ENTRY_BYTES_MAX) {
        offset = end;
    }
    offset
}

async fn append(store: &mut LogStore, entries: Vec<Entry>) -> Flushed {
    let (sender, receiver) = TypeConfig::oneshot();
    store
        .append(entries, IOFlushed::signal(sender))
        .await
        .unwrap();
    receiver
}

async fn flushed(receiver: Flushed) -> Result<(), io::Error> {
    receiver
        .await
        .unwrap_or_else(|_| Err(io_error("callback dropped")))
}

async fn indexes(store: &mut LogStore) -> Vec<(u64, u64)> {
    store
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|entry| (entry.log_id.leader_id.term, entry.index()))
        .collect()
}

fn segments(disk: &SimDisk) -> Vec<String> {
    disk.list(LOG_DIR).unwrap()
}

#[tokio::test]
async fn entries_survive_truncate_purge_and_reopen() {
    let disk = SimDisk::new(1);
    let mut store = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();

    // Twenty entries roll over several small segments.
    let receiver = append(&mut store, (1..=20).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    assert!(segments(&disk).len() > 2, "{:?}", segments(&disk));
    let middle = store.try_get_log_entries(5..8).await.unwrap();
    assert_eq!(
        middle.iter().map(|entry| entry.index()).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );

    // A new leader overwrites the suffix after 15 with term-2 entries.
    store.truncate_after(Some(log_id(1, 15))).await.unwrap();
    let receiver = append(&mut store, (16..=18).map(|index| entry(2, index)).collect()).await;
    flushed(receiver).await.unwrap();

    // A snapshot covered everything up to 7: whole segments below it go.
    let segments_before_purge = segments(&disk).len();
    store.purge(log_id(1, 7)).await.unwrap();
    assert!(segments(&disk).len() < segments_before_purge);
    store
        .save_vote(&Vote::new(2, "n1".to_string()))
        .await
        .unwrap();

    // Truncating exactly at a segment boundary removes that whole segment.
    let boundary = segments(&disk)
        .iter()
        .filter_map(|name| name.strip_suffix(SEGMENT_SUFFIX)?.parse::<u64>().ok())
        .find(|first| *first > 8)
        .unwrap();
    store
        .truncate_after(Some(log_id(1, boundary - 1)))
        .await
        .unwrap();
    assert!(!segments(&disk).contains(&format!("{boundary:020}{SEGMENT_SUFFIX}")));
    let receiver = append(
        &mut store,
        (boundary..=15).map(|index| entry(1, index)).collect(),
    )
    .await;
    flushed(receiver).await.unwrap();
    let receiver = append(&mut store, (16..=18).map(|index| entry(2, index)).collect()).await;
    flushed(receiver).await.unwrap();

    let expected: Vec<(u64, u64)> = (8..=15)
        .map(|index| (1, index))
        .chain((16..=18).map(|index| (2, index)))
        .collect();
    assert_eq!(indexes(&mut store).await, expected);

    // Power loss: everything acknowledged is there after reopening.
    drop(store);
    disk.crash(false);
    let mut reopened = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    assert_eq!(indexes(&mut reopened).await, expected);
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 7)));
    assert_eq!(state.last_log_id, Some(log_id(2, 18)));
    assert_eq!(
        reopened.read_vote().await.unwrap(),
        Some(Vote::new(2, "n1".to_string()))
    );

    // Truncating everything and purging past the end both leave a usable log.
    reopened.truncate_after(None).await.unwrap();
    reopened.purge(log_id(3, 30)).await.unwrap();
    let receiver = append(&mut reopened, vec![entry(3, 31)]).await;
    flushed(receiver).await.unwrap();
    drop(reopened);
    disk.crash(false);
    let mut again = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    assert_eq!(indexes(&mut again).await, vec![(3, 31)]);
}

#[tokio::test]
async fn group_commit_makes_many_appends_durable_with_few_fsyncs() {
    const APPENDS: u64 = 200;
    let disk = SimDisk::new(2);
    let mut store = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    let fsyncs_before = disk.stats().fsyncs;
    let appends_before = disk.stats().appends;

    // Openraft submits appends without waiting for each flush; they queue up while the
    // writer is busy and go to disk together.
    let mut receivers = Vec::new();
    for index in 1..=APPENDS {
        receivers.push(append(&mut store, vec![entry(1, index)]).await);
    }
    for receiver in receivers {
        flushed(receiver).await.unwrap();
    }
    let fsyncs = disk.stats().fsyncs - fsyncs_before;
    println!("group commit: {APPENDS} appends, {fsyncs} fsyncs (segment + directory)");
    // A handful of batches, each one fsync of the segment (plus one of the directory
    // that gained it), instead of one fsync per append.
    assert!(
        fsyncs * 20 <= APPENDS,
        "{fsyncs} fsyncs for {APPENDS} appends"
    );
    // And the appends of a batch reach the disk in one write, not one write each.
    let disk_appends = disk.stats().appends - appends_before;
    assert!(
        disk_appends * 20 <= APPENDS,
        "{disk_appends} disk appends for {APPENDS} appends"
    );

    // Every callback fired only once its entry was durable: a crash keeps them all.
    drop(store);
    disk.crash(true);
    let reopened = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    assert_eq!(reopened.last_index(), Some(APPENDS));
}

#[tokio::test]
async fn a_torn_tail_is_cut_away_and_the_node_starts() {
    for seed in 0..32 {
        let disk = SimDisk::new(seed);
        let mut store = LogStore::open(Arc::new(disk.clone()), small_segments())
            .await
            .unwrap();
        let receiver = append(&mut store, (1..=10).map(|index| entry(1, index)).collect()).await;
        flushed(receiver).await.unwrap();
        drop(store);

        // A writer that died mid-write: bytes of two more records, never synced, where
        // the writer puts them (over the zeros ahead of the records, and past them).
        let last_segment = format!("{LOG_DIR}/{}", segments(&disk).last().unwrap());
        let end = records_end(&disk.read(&last_segment).unwrap().unwrap());
        let mut pending = record::encode(&entry(1, 11), ENTRY_BYTES_MAX).unwrap();
        pending.extend(record::encode(&entry(1, 12), ENTRY_BYTES_MAX).unwrap());
        disk.write_at(&last_segment, end as u64, &pending).unwrap();
        disk.crash(true);

        let mut reopened = LogStore::open(Arc::new(disk.clone()), small_segments())
            .await
            .unwrap();
        let kept = indexes(&mut reopened).await;
        let last = kept.last().unwrap().1;
        assert!((10..=12).contains(&last), "seed {seed}: last index {last}");
        assert_eq!(kept, (1..=last).map(|index| (1, index)).collect::<Vec<_>>());
        // The log keeps working after the cut.
        let receiver = append(&mut reopened, vec![entry(1, last + 1)]).await;
        flushed(receiver).await.unwrap();
    }
}

#[tokio::test]
async fn records_go_over_zeros_written_ahead_and_a_reopened_log_continues_after_them() {
    let disk = SimDisk::new(9);
    let options = LogStoreOptions::default();
    let mut store = LogStore::open(Arc::new(disk.clone()), options)
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=5).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    let segment = format!("{LOG_DIR}/{}", segments(&disk)[0]);
    let bytes = disk.read(&segment).unwrap().unwrap();
    let end = records_end(&bytes);
    assert_eq!(
        bytes.len() - end,
        PREALLOCATE_BYTES as usize,
        "one chunk of zeros ahead"
    );
    assert!(bytes[end..].iter().all(|byte| *byte == 0));
    // The zeros were synced with the records: a crash keeps them.
    disk.crash(true);
    assert_eq!(disk.read(&segment).unwrap().unwrap(), bytes);
    drop(store);

    for round in 0..3_u64 {
        let mut store = LogStore::open(Arc::new(disk.clone()), options)
            .await
            .unwrap();
        let first = 6 + round * 5;
        let receiver = append(
            &mut store,
            (first..first + 5).map(|index| entry(1, index)).collect(),
        )
        .await;
        flushed(receiver).await.unwrap();
        drop(store);
        disk.crash(true);
        let mut reopened = LogStore::open(Arc::new(disk.clone()), options)
            .await
            .unwrap();
        assert_eq!(
            indexes(&mut reopened).await,
            (1..first + 5).map(|index| (1, index)).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        disk.read(&segment).unwrap().unwrap().len(),
        bytes.len(),
        "later records went over the zeros; the file did not grow"
    );
}

#[tokio::test]
async fn a_record_after_a_gap_of_zeros_stops_the_node() {
    let disk = SimDisk::new(10);
    let mut store = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=5).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    drop(store);

    // A record this code would never write there: past a gap in the zeros.
    let segment = format!("{LOG_DIR}/{}", segments(&disk)[0]);
    let end = records_end(&disk.read(&segment).unwrap().unwrap());
    let stray = record::encode(&entry(1, 6), ENTRY_BYTES_MAX).unwrap();
    disk.write_at(&segment, end as u64 + 512, &stray).unwrap();
    disk.sync(&segment).unwrap();
    let error = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap_err();
    match &error {
        LogStoreError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &segment);
            assert_eq!(*offset, end as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[tokio::test]
async fn a_bad_checksum_on_the_final_record_is_a_torn_tail() {
    let disk = SimDisk::new(3);
    let mut store = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=5).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    drop(store);

    let segment = format!("{LOG_DIR}/{}", segments(&disk)[0]);
    let bytes = disk.read(&segment).unwrap().unwrap();
    assert!(bytes.len() > records_end(&bytes), "zeros are written ahead");
    disk.corrupt_byte(&segment, records_end(&bytes) - 1)
        .unwrap();
    let reopened = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    assert_eq!(reopened.last_index(), Some(4));
}

#[tokio::test]
async fn a_bad_record_with_data_after_it_stops_the_node() {
    let disk = SimDisk::new(4);
    let mut store = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=5).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    drop(store);

    // Flip a byte inside the second record of the only (last) segment.
    let segment = format!("{LOG_DIR}/{}", segments(&disk)[0]);
    let bytes = disk.read(&segment).unwrap().unwrap();
    let RecordRead::Complete { end: second, .. } = record::read(&bytes, 0, ENTRY_BYTES_MAX) else {
        panic!("the first record is intact");
    };
    disk.corrupt_byte(&segment, second + 12).unwrap();
    let error = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap_err();
    match &error {
        LogStoreError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &segment);
            assert_eq!(*offset, second as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    println!("refused: {error}");
}

#[tokio::test]
async fn damage_in_a_segment_that_is_not_the_last_stops_the_node() {
    let disk = SimDisk::new(5);
    let mut store = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=20).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    drop(store);

    // Even the final record of an earlier segment is not a torn tail: later segments
    // prove it was written and synced before them.
    let first_segment = format!("{LOG_DIR}/{}", segments(&disk)[0]);
    let end = records_end(&disk.read(&first_segment).unwrap().unwrap());
    disk.corrupt_byte(&first_segment, end - 1).unwrap();
    let error = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LogStoreError::Corrupt { path, .. } if path == &first_segment),
        "{error}"
    );

    // A shortened earlier segment is refused too.
    let disk = SimDisk::new(6);
    let mut store = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=20).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    drop(store);
    let first_segment = format!("{LOG_DIR}/{}", segments(&disk)[0]);
    let end = records_end(&disk.read(&first_segment).unwrap().unwrap());
    disk.truncate(&first_segment, end as u64 - 3).unwrap();
    let error = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap_err();
    assert!(matches!(error, LogStoreError::Corrupt { .. }), "{error}");
}

/// A disk that loses power just before its `crash_at`-th operation: the simulated disk
/// crashes (tearing pending writes) and every later operation fails, as if the process
/// died with it.
#[derive(Debug)]
struct PowerCutDisk {
    inner: SimDisk,
    operations: Mutex<(u64, u64)>,
}

impl PowerCutDisk {
    fn new(inner: SimDisk, crash_at: u64) -> Self {
        Self {
            inner,
            operations: Mutex::new((0, crash_at)),
        }
    }

    fn step<T>(
        &self,
        operation: impl FnOnce(&SimDisk) -> Result<T, DiskError>,
    ) -> Result<T, DiskError> {
        let mut operations = self.operations.lock().unwrap();
        operations.0 += 1;
        if operations.0 == operations.1 {
            self.inner.crash(true);
        }
        if operations.0 >= operations.1 {
            return Err(DiskError::Io {
                path: String::new(),
                source: io::Error::other("power cut"),
            });
        }
        operation(&self.inner)
    }
}

impl Disk for PowerCutDisk {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, DiskError> {
        self.step(|disk| disk.read(path))
    }
    fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.step(|disk| disk.append(path, bytes))
    }
    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        self.step(|disk| disk.write_at(path, offset, bytes))
    }
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.step(|disk| disk.write(path, bytes))
    }
    fn truncate(&self, path: &str, length: u64) -> Result<(), DiskError> {
        self.step(|disk| disk.truncate(path, length))
    }
    fn sync(&self, path: &str) -> Result<(), DiskError> {
        self.step(|disk| disk.sync(path))
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        self.step(|disk| disk.rename(from, to))
    }
    fn remove(&self, path: &str) -> Result<(), DiskError> {
        self.step(|disk| disk.remove(path))
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, DiskError> {
        self.step(|disk| disk.list(dir))
    }
    fn sync_dir(&self, dir: &str) -> Result<(), DiskError> {
        self.step(|disk| disk.sync_dir(dir))
    }
    fn free_bytes(&self) -> Result<u64, DiskError> {
        self.inner.free_bytes()
    }
}

#[tokio::test]
async fn a_crash_never_loses_an_entry_whose_flush_was_acknowledged() {
    let mut cuts = 0;
    for seed in 0..8u64 {
        for crash_at in 1..120u64 {
            let disk = SimDisk::new(seed * 1000 + crash_at);
            let cut = Arc::new(PowerCutDisk::new(disk.clone(), u64::MAX));
            let Ok(mut store) = LogStore::open(cut.clone(), small_segments()).await else {
                continue;
            };
            // Arm the power cut only once the log is open.
            {
                let mut operations = cut.operations.lock().unwrap();
                operations.1 = operations.0 + crash_at;
            }

            let mut acknowledged = 0;
            let mut index = 1;
            let mut waiting = Vec::new();
            'appending: for round in 0..12u64 {
                let count = 1 + (seed + round) % 3;
                let batch: Vec<Entry> = (index..index + count)
                    .map(|index| entry(1, index))
                    .collect();
                index += count;
                waiting.push((index - 1, append(&mut store, batch).await));
                if round % 2 == 1 {
                    for (last, receiver) in waiting.drain(..) {
                        match flushed(receiver).await {
                            Ok(()) => acknowledged = last,
                            Err(_) => break 'appending,
                        }
                    }
                }
                if round == 6 {
                    // A purge in the middle, as after a snapshot.
                    if store.purge(log_id(1, 2)).await.is_err() {
                        break 'appending;
                    }
                }
            }
            for (last, receiver) in waiting.drain(..) {
                if flushed(receiver).await.is_ok() {
                    acknowledged = acknowledged.max(last);
                }
            }
            drop(store);
            {
                // Fence the disk: the old writer may still be finishing a batch, and a
                // dead process writes nothing.
                let mut operations = cut.operations.lock().unwrap();
                if operations.0 >= operations.1 {
                    cuts += 1;
                }
                operations.1 = 0;
            }
            disk.crash(true);

            let mut reopened = LogStore::open(Arc::new(disk.clone()), small_segments())
                .await
                .unwrap_or_else(|error| panic!("seed {seed} crash_at {crash_at}: {error}"));
            let last = reopened.last_index().unwrap_or(0);
            assert!(
                last >= acknowledged,
                "seed {seed} crash_at {crash_at}: acknowledged {acknowledged}, recovered {last}"
            );
            let kept = indexes(&mut reopened).await;
            if let (Some(first), Some(end)) = (kept.first(), kept.last()) {
                assert_eq!(
                    kept,
                    (first.1..=end.1)
                        .map(|index| (1, index))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    assert!(cuts > 100, "only {cuts} runs actually lost power");
}

#[tokio::test]
async fn appends_queued_together_on_a_full_disk_wait_and_complete_in_order() {
    // Room for about one more entry, then four appends queued behind each other: the
    // writer takes them as one run, the disk stops it partway, and the rest must wait
    // (the append cut short with what it has left) rather than fail or reorder.
    let (disk, mut store) = five_entries_and_room_for_one_more(10).await;
    let mut receivers = Vec::new();
    for first in [6, 8, 10, 12] {
        receivers.push(append(&mut store, vec![entry(1, first), entry(1, first + 1)]).await);
    }
    let wait = std::time::Duration::from_millis(1200);
    let last = receivers.last_mut().unwrap();
    assert!(
        tokio::time::timeout(wait, last).await.is_err(),
        "an append on a full disk was answered"
    );

    disk.set_capacity_bytes(None);
    for receiver in receivers {
        flushed(receiver).await.unwrap();
    }
    disk.crash(true);
    let mut reopened = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    let expected: Vec<(u64, u64)> = (1..=13).map(|index| (1, index)).collect();
    assert_eq!(indexes(&mut reopened).await, expected);
}

/// A store holding entries 1 to 5 on a disk with room for about one more entry.
async fn five_entries_and_room_for_one_more(seed: u64) -> (SimDisk, LogStore) {
    let disk = SimDisk::new(seed);
    let mut store = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=5).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    disk.set_capacity_bytes(Some(disk.used_bytes() + 150));
    (disk, store)
}

#[tokio::test]
async fn a_full_disk_holds_appends_and_votes_until_space_returns_and_loses_nothing() {
    // Room for about one more entry: the next five wait, part-written, without failing.
    let (disk, mut store) = five_entries_and_room_for_one_more(9).await;
    let mut receiver = append(&mut store, (6..=10).map(|index| entry(1, index)).collect()).await;
    let wait = std::time::Duration::from_millis(1200);
    assert!(
        tokio::time::timeout(wait, &mut receiver).await.is_err(),
        "an append on a full disk was answered"
    );
    // Not a byte left: a vote waits too.
    disk.set_capacity_bytes(Some(disk.used_bytes()));
    let mut voting = store.clone();
    let vote = tokio::spawn(async move { voting.save_vote(&Vote::new(3, "n1".to_string())).await });
    tokio::time::sleep(wait).await;
    assert!(!vote.is_finished(), "a vote was saved on a full disk");

    // Space is back: everything completes by itself and survives a power loss whole.
    disk.set_capacity_bytes(None);
    flushed(receiver).await.unwrap();
    vote.await.unwrap().unwrap();
    disk.crash(true);
    let mut reopened = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    let expected: Vec<(u64, u64)> = (1..=10).map(|index| (1, index)).collect();
    assert_eq!(indexes(&mut reopened).await, expected);
    assert_eq!(
        reopened.read_vote().await.unwrap(),
        Some(Vote::new(3, "n1".to_string()))
    );
}

#[tokio::test]
async fn a_disk_error_is_never_acknowledged_and_an_unreadable_log_refuses_to_open() {
    use crate::env::IoErrorRates;
    let disk = SimDisk::new(8);
    let mut store = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=5).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();

    // Phase 1: every write fails. The appends are answered with the error, and so is
    // everything after, even once the disk works again: the writer does not retry an
    // fsync whose pages the kernel may have dropped.
    let failing = IoErrorRates {
        read_per_million: 0,
        write_per_million: 1_000_000,
    };
    disk.set_io_errors(Some(failing));
    let receiver = append(&mut store, vec![entry(1, 6)]).await;
    assert!(flushed(receiver).await.is_err());
    disk.set_io_errors(None);
    let receiver = append(&mut store, vec![entry(1, 7)]).await;
    assert!(flushed(receiver).await.is_err());
    drop(store);

    // Phase 2: nothing unacknowledged came back, and what was acknowledged did.
    disk.crash(false);
    let mut reopened = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        indexes(&mut reopened).await,
        (1..=5).map(|index| (1, index)).collect::<Vec<_>>()
    );
    drop(reopened);

    // Phase 3: a read error while opening refuses the log, naming the file.
    disk.set_io_errors(Some(IoErrorRates {
        read_per_million: 1_000_000,
        write_per_million: 0,
    }));
    let error = LogStore::open(Arc::new(disk.clone()), LogStoreOptions::default())
        .await
        .expect_err("an unreadable log must not open");
    assert!(error.to_string().contains("raft/"), "{error}");
}

/// A disk whose next `sync` of one named file fails with `EIO` (the simulated disk then
/// drops that file's unsynced bytes); everything else passes through.
#[derive(Debug)]
struct FailOneSyncDisk {
    inner: SimDisk,
    fail_sync_of: Mutex<Option<String>>,
}

impl Disk for FailOneSyncDisk {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, DiskError> {
        self.inner.read(path)
    }
    fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.inner.append(path, bytes)
    }
    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        self.inner.write_at(path, offset, bytes)
    }
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.inner.write(path, bytes)
    }
    fn truncate(&self, path: &str, length: u64) -> Result<(), DiskError> {
        self.inner.truncate(path, length)
    }
    fn sync(&self, path: &str) -> Result<(), DiskError> {
        let mut fail = self.fail_sync_of.lock().unwrap();
        if fail.as_deref() == Some(path) {
            *fail = None;
            self.inner.set_io_errors(Some(crate::env::IoErrorRates {
                read_per_million: 0,
                write_per_million: 1_000_000,
            }));
            let result = self.inner.sync(path);
            self.inner.set_io_errors(None);
            return result;
        }
        self.inner.sync(path)
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &str) -> Result<(), DiskError> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &str) -> Result<Vec<String>, DiskError> {
        self.inner.list(dir)
    }
    fn sync_dir(&self, dir: &str) -> Result<(), DiskError> {
        self.inner.sync_dir(dir)
    }
    fn free_bytes(&self) -> Result<u64, DiskError> {
        self.inner.free_bytes()
    }
}

#[tokio::test]
async fn a_failed_fsync_in_a_batch_that_rolls_segments_leaves_no_hole() {
    let disk = SimDisk::new(9);
    let failing = Arc::new(FailOneSyncDisk {
        inner: disk.clone(),
        fail_sync_of: Mutex::new(None),
    });
    let mut store = LogStore::open(failing.clone(), small_segments())
        .await
        .unwrap();
    let receiver = append(&mut store, vec![entry(1, 1)]).await;
    flushed(receiver).await.unwrap();

    // One batch that fills the current segment and rolls into new ones; the fsync of
    // the segment it started in fails. Nothing of the batch is acknowledged.
    let first = format!("{LOG_DIR}/{}", segments(&disk).last().unwrap());
    *failing.fail_sync_of.lock().unwrap() = Some(first);
    let receiver = append(&mut store, (2..=12).map(|index| entry(1, index)).collect()).await;
    assert!(flushed(receiver).await.is_err());
    drop(store);

    // A process restart (the page cache survives): the log is a prefix, with no hole
    // left by the dropped bytes before later segments.
    let mut reopened = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    let kept = indexes(&mut reopened).await;
    let last = kept.last().unwrap().1;
    assert_eq!(kept, (1..=last).map(|index| (1, index)).collect::<Vec<_>>());
}

#[tokio::test]
async fn saving_the_committed_id_returns_at_once_and_the_file_follows_forward() {
    let disk = SimDisk::new(7);
    let mut store = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    let receiver = append(&mut store, (1..=50).map(|index| entry(1, index)).collect()).await;
    flushed(receiver).await.unwrap();
    let on_disk = || async {
        let disk = Arc::new(disk.clone());
        blocking(move || read_small_record::<LogId>(disk.as_ref(), COMMITTED_PATH))
            .await
            .unwrap()
    };
    // Many saves in a row: each returns without waiting for the file, and the writer
    // ends on the latest, never an older one after a newer.
    let mut seen = Vec::new();
    for index in 1..=50 {
        store.save_committed(Some(log_id(1, index))).await.unwrap();
        if let Some(committed) = on_disk().await {
            seen.push(committed.index);
        }
    }
    // The writer folds the saves of each COMMITTED_WRITE_INTERVAL_MIN into one write.
    let mut waited = 0;
    while on_disk().await != Some(log_id(1, 50)) {
        assert!(
            waited < 1000,
            "the committed writer never wrote the latest id"
        );
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    assert!(seen.windows(2).all(|pair| pair[0] <= pair[1]), "{seen:?}");
    // Reopened, the node finds it.
    drop(store);
    let mut reopened = LogStore::open(Arc::new(disk.clone()), small_segments())
        .await
        .unwrap();
    assert_eq!(
        reopened.read_committed().await.unwrap(),
        Some(log_id(1, 50))
    );
}
