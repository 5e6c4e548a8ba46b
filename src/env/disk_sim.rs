//! The simulated disk: in-memory files held *outside* the node (the supervisor keeps a
//! clone), so they survive a kill and restart the way a real disk does.
//!
//! It models what a crash does to a real disk: file contents written since the last
//! `sync` are *pending* and vanish, except that the last unsynced append may survive as
//! a torn prefix; names created, renamed or removed since the last `sync_dir` of their
//! directory revert. Fault knobs let the simulator also lose fsyncs outright (the call
//! says yes, the data is not durable), as some disks and virtual machines do.
//!
//! A disk may also be given a capacity: a write of new data that would pass it keeps
//! what fits and answers `ENOSPC` (`StorageFull`), as a real file system does on a short
//! write, so the simulator can fill a node's disk and free it again.
//!
//! And it may fail operations with `EIO` ([`IoErrorRates`]), drawn per call from its own
//! seeded RNG: a failed read, list, append, write, truncate, rename or remove changes
//! nothing; a failed `sync` of a file also drops its unsynced bytes, as Linux does when
//! writeback fails (the dirty pages are marked clean and the file reads as what reached
//! the device; a later fsync answers success without bringing them back), so a caller
//! that shrugs off a failed fsync loses what it had written.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

use super::disk::{Disk, DiskError, check_path, parent_dir};

/// Linux's `EIO` (the seam does not link libc for one constant).
const EIO: i32 = 5;

type FileId = u64;

/// How often a disk with errors switched on fails its operations with `EIO`, in parts
/// per million of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoErrorRates {
    /// `read` and `list`.
    pub read_per_million: u32,
    /// `append`, `write`, `truncate`, `rename`, `remove`, `sync` and `sync_dir`.
    pub write_per_million: u32,
}

/// What kind of operation a fault draw is for.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Read,
    Write,
}

#[derive(Debug, Default, Clone)]
struct FileData {
    current: Vec<u8>,
    synced: Vec<u8>,
    /// Set when the file was rewritten (not only appended to) since the last sync, so a
    /// sync must copy it whole; otherwise a sync copies only `dirty_from..dirty_to` (a
    /// Raft segment grows to 16 MiB, and copying it on every fsync made long runs slow).
    rewritten: bool,
    /// The lowest offset an append or `write_at` changed since the last sync.
    dirty_from: Option<usize>,
    /// The end of the highest change since the last sync: a record written over zeros
    /// written ahead leaves those zeros (up to 1 MiB) as they were, and copying them again
    /// on every sync took a fifth of a simulator run.
    dirty_to: usize,
}

impl FileData {
    fn mark_dirty(&mut self, from: usize, to: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(from, |dirty| dirty.min(from)));
        self.dirty_to = self.dirty_to.max(to);
    }

    fn mark_clean(&mut self) {
        self.rewritten = false;
        self.dirty_from = None;
        self.dirty_to = 0;
    }
}

#[derive(Debug)]
struct Inner {
    next_id: FileId,
    data: BTreeMap<FileId, FileData>,
    live_names: BTreeMap<String, FileId>,
    durable_names: BTreeMap<String, FileId>,
    lose_fsyncs: bool,
    /// `None`: unbounded.
    capacity_bytes: Option<u64>,
    /// `None`: no `EIO`. Draws happen only while set, so a disk that never has errors
    /// draws the same crash tears as before they existed.
    io_errors: Option<IoErrorRates>,
    fsyncs: u64,
    fsyncs_lost: u64,
    appends: u64,
    io_errors_injected: u64,
    // The disk's own fault RNG, seeded by the supervisor, so a crash tears the same way
    // for the same seed.
    rng: ChaCha20Rng,
}

/// Counters the simulator reports (and benchmarks read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    /// Calls to `append` (one per write call a real disk would take).
    pub appends: u64,
    pub fsyncs: u64,
    pub fsyncs_lost: u64,
    pub files: usize,
    pub io_errors_injected: u64,
}

#[derive(Debug, Clone)]
pub struct SimDisk {
    inner: Arc<Mutex<Inner>>,
}

impl SimDisk {
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                next_id: 1,
                data: BTreeMap::new(),
                live_names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                lose_fsyncs: false,
                capacity_bytes: None,
                io_errors: None,
                fsyncs: 0,
                appends: 0,
                fsyncs_lost: 0,
                io_errors_injected: 0,
                rng: ChaCha20Rng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// While set, `sync` and `sync_dir` answer success but make nothing durable.
    pub fn set_lose_fsyncs(&self, lose: bool) {
        self.lock().lose_fsyncs = lose;
    }

    /// Bound the bytes the files may take (`None`: unbounded). Lowering it below what the
    /// files hold keeps them; only new data is refused.
    pub fn set_capacity_bytes(&self, capacity: Option<u64>) {
        self.lock().capacity_bytes = capacity;
    }

    /// Fail a share of operations with `EIO` from now on (`None`: never again).
    pub fn set_io_errors(&self, rates: Option<IoErrorRates>) {
        self.lock().io_errors = rates;
    }

    /// Whether `EIO` errors are switched on.
    pub fn io_errors(&self) -> Option<IoErrorRates> {
        self.lock().io_errors
    }

    /// Bytes the files take now: each file counts the larger of its pending and durable
    /// content, and a removed name's data counts until nothing can bring it back.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    pub fn stats(&self) -> SimDiskStats {
        let inner = self.lock();
        SimDiskStats {
            appends: inner.appends,
            fsyncs: inner.fsyncs,
            fsyncs_lost: inner.fsyncs_lost,
            files: inner.live_names.len(),
            io_errors_injected: inner.io_errors_injected,
        }
    }

    /// A power loss: every name and byte not made durable is gone, except that a file
    /// whose pending bytes extend its durable content keeps a random prefix of them
    /// (a torn write) when `tear` is set.
    pub fn crash(&self, tear: bool) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.live_names = inner.durable_names.clone();
        let referenced: Vec<FileId> = inner.live_names.values().copied().collect();
        inner.data.retain(|id, _| referenced.contains(id));
        for file in inner.data.values_mut() {
            // What appends and positional writes changed since the last sync: a random
            // prefix of it may have reached the device (a torn write) over what was
            // synced. A whole-file rewrite tears the same way only where it extends
            // what was synced.
            let from = if file.rewritten {
                file.current
                    .starts_with(&file.synced)
                    .then_some(file.synced.len())
            } else {
                file.dirty_from.map(|from| from.min(file.synced.len()))
            };
            if let Some(from) = from
                && tear
                && file.current.len() > from
                && file.current[..from] == file.synced[..from]
            {
                let pending = &file.current[from..];
                // The tear falls within what ends in data: zeros written ahead (a log
                // segment's) would otherwise make up most of the length drawn from, and
                // nearly every tear would keep every record.
                let data_length = pending
                    .iter()
                    .rposition(|byte| *byte != 0)
                    .map_or(0, |last| last + 1);
                let torn_length = (inner.rng.next_u64() % (data_length as u64 + 1)) as usize;
                let end = from + torn_length;
                if file.synced.len() < end {
                    file.synced.resize(end, 0);
                }
                file.synced[from..end].copy_from_slice(&pending[..torn_length]);
            }
            // What is on the device now is durable: a later crash keeps it (with
            // changes tracked by offset, a torn prefix left out of `synced` would
            // vanish at the next crash, though no later sync covered it).
            file.current.clone_from(&file.synced);
            file.mark_clean();
        }
    }

    /// Flip one byte of a file's durable and current content (corruption injection).
    pub fn corrupt_byte(&self, path: &str, offset: usize) -> Result<(), DiskError> {
        let mut inner = self.lock();
        let id = *inner
            .live_names
            .get(path)
            .ok_or_else(|| DiskError::NotFound(path.to_string()))?;
        let file = inner.data.get_mut(&id).expect("live names point at data");
        if offset >= file.current.len() {
            return Err(DiskError::InvalidPath(format!("{path}@{offset}")));
        }
        file.current[offset] ^= 0xff;
        if offset < file.synced.len() {
            file.synced[offset] ^= 0xff;
        }
        Ok(())
    }

    fn with_file<T>(
        &self,
        path: &str,
        create: bool,
        change: impl FnOnce(&mut FileData) -> T,
    ) -> Result<T, DiskError> {
        check_path(path)?;
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.inject(Operation::Write, path)?;
        let id = match inner.live_names.get(path) {
            Some(id) => *id,
            None if create => {
                let id = inner.next_id;
                inner.next_id += 1;
                inner.data.insert(id, FileData::default());
                inner.live_names.insert(path.to_string(), id);
                id
            }
            None => return Err(DiskError::NotFound(path.to_string())),
        };
        Ok(change(
            inner.data.get_mut(&id).expect("live names point at data"),
        ))
    }

    /// An append (`offset` None) or a positional write, made where the file's content
    /// lies: copying it for every write (a 16 MiB segment, and its zeros written ahead)
    /// made long runs slow. Like `grow`, it keeps what fits the capacity and answers
    /// `StorageFull` for the rest.
    fn write_in_place(
        &self,
        path: &str,
        offset: Option<u64>,
        bytes: &[u8],
    ) -> Result<(), DiskError> {
        check_path(path)?;
        let (used, capacity) = {
            let inner = self.lock();
            (inner.used_bytes(), inner.capacity_bytes)
        };
        let full = self.with_file(path, true, |file| {
            let length = file.current.len();
            let offset = offset.map_or(length, |offset| offset as usize);
            let mut end = offset + bytes.len();
            let mut full = false;
            if let Some(capacity) = capacity {
                // Bytes up to the durable length cost nothing new; a write never
                // shortens what is there, even on a disk shrunk below its content.
                let before = length.max(file.synced.len()) as u64;
                let room = capacity.saturating_sub(used - before) as usize;
                let allowed = room.max(file.synced.len()).max(length);
                if end > allowed {
                    end = allowed;
                    full = true;
                }
            }
            if end > length {
                file.current.resize(end, 0);
            }
            if end > offset {
                file.current[offset..end].copy_from_slice(&bytes[..end - offset]);
            }
            file.mark_dirty(offset.min(length), end);
            full
        })?;
        if full {
            Err(DiskError::storage_full(path))
        } else {
            Ok(())
        }
    }

    /// Change a file's content to `new_content(old)`, refusing what passes the capacity:
    /// the part that fits is kept (a short write) and the answer is `StorageFull`.
    /// `new_content` answers the new content and the lowest offset it changed (`None`:
    /// the file was rewritten whole).
    fn grow(
        &self,
        path: &str,
        new_content: impl FnOnce(&[u8]) -> (Vec<u8>, Option<usize>),
    ) -> Result<(), DiskError> {
        check_path(path)?;
        let (used, capacity) = {
            let inner = self.lock();
            (inner.used_bytes(), inner.capacity_bytes)
        };
        self.with_file(path, true, |file| {
            let before = file.current.len().max(file.synced.len()) as u64;
            let (mut content, changed_from) = new_content(&file.current);
            let rewritten = changed_from.is_none();
            let mut full = false;
            if let Some(capacity) = capacity {
                // Bytes up to the durable length cost nothing new; an append never
                // shortens what is there, even on a disk shrunk below its content.
                let room = capacity.saturating_sub(used - before) as usize;
                let kept = if rewritten { 0 } else { file.current.len() };
                let allowed = room.max(file.synced.len()).max(kept);
                if content.len() > allowed {
                    content.truncate(allowed);
                    full = true;
                }
            }
            file.current = content;
            file.rewritten |= rewritten;
            if let Some(from) = changed_from {
                file.mark_dirty(from, file.current.len());
            }
            full
        })
        .and_then(|full| {
            if full {
                Err(DiskError::storage_full(path))
            } else {
                Ok(())
            }
        })
    }
}

impl Inner {
    /// `EIO` for an operation on `path`, when errors are on and the draw says so.
    fn inject(&mut self, operation: Operation, path: &str) -> Result<(), DiskError> {
        let Some(rates) = self.io_errors else {
            return Ok(());
        };
        let per_million = match operation {
            Operation::Read => rates.read_per_million,
            Operation::Write => rates.write_per_million,
        };
        if self.rng.next_u64() % 1_000_000 < u64::from(per_million) {
            self.io_errors_injected += 1;
            return Err(DiskError::Io {
                path: path.to_string(),
                source: std::io::Error::from_raw_os_error(EIO),
            });
        }
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        self.data
            .values()
            .map(|file| file.current.len().max(file.synced.len()) as u64)
            .sum()
    }

    /// Drop the data of files no name (live or durable) points at any more.
    fn collect_garbage(&mut self) {
        let referenced: std::collections::BTreeSet<FileId> = self
            .live_names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.data.retain(|id, _| referenced.contains(id));
    }
}

impl Disk for SimDisk {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, DiskError> {
        check_path(path)?;
        let mut inner = self.lock();
        inner.inject(Operation::Read, path)?;
        Ok(inner
            .live_names
            .get(path)
            .map(|id| inner.data[id].current.clone()))
    }

    fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.lock().appends += 1;
        self.write_in_place(path, None, bytes)
    }

    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        self.lock().appends += 1;
        self.write_in_place(path, Some(offset), bytes)
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.grow(path, |_| (bytes.to_vec(), None))
    }

    fn truncate(&self, path: &str, length: u64) -> Result<(), DiskError> {
        // Like the file disk, truncation is made durable at once: it only ever removes a
        // torn tail during recovery, which must not come back.
        self.with_file(path, false, |file| {
            file.current.truncate(length as usize);
            file.synced = file.current.clone();
            file.mark_clean();
        })
    }

    fn sync(&self, path: &str) -> Result<(), DiskError> {
        check_path(path)?;
        let mut inner = self.lock();
        inner.fsyncs += 1;
        let failed = inner.inject(Operation::Write, path);
        if inner.lose_fsyncs && failed.is_ok() {
            inner.fsyncs_lost += 1;
            return Ok(());
        }
        let id = *inner
            .live_names
            .get(path)
            .ok_or_else(|| DiskError::NotFound(path.to_string()))?;
        let file = inner.data.get_mut(&id).expect("live names point at data");
        if failed.is_err() {
            // Writeback failed: the unsynced bytes never reach the device, and the page
            // cache forgets them too.
            file.current = file.synced.clone();
            file.mark_clean();
            return failed;
        }
        if file.rewritten || file.current.len() < file.synced.len() {
            file.synced = file.current.clone();
        } else if let Some(from) = file.dirty_from {
            // Outside `from..to` the file is as it was at the last sync, and everything
            // past the synced length lies within it (every write marks what it grew).
            let from = from.min(file.synced.len());
            let to = file.dirty_to.min(file.current.len());
            file.synced.resize(file.current.len(), 0);
            if to > from {
                file.synced[from..to].copy_from_slice(&file.current[from..to]);
            }
        }
        file.mark_clean();
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        check_path(from)?;
        check_path(to)?;
        let mut inner = self.lock();
        inner.inject(Operation::Write, from)?;
        let id = inner
            .live_names
            .remove(from)
            .ok_or_else(|| DiskError::NotFound(from.to_string()))?;
        inner.live_names.insert(to.to_string(), id);
        inner.collect_garbage();
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<(), DiskError> {
        check_path(path)?;
        let mut inner = self.lock();
        inner.inject(Operation::Write, path)?;
        inner.live_names.remove(path);
        inner.collect_garbage();
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, DiskError> {
        let mut inner = self.lock();
        inner.inject(Operation::Read, dir)?;
        Ok(inner
            .live_names
            .keys()
            .filter(|path| parent_dir(path) == dir)
            .map(|path| path.rsplit('/').next().unwrap_or(path).to_string())
            .collect())
    }

    fn sync_dir(&self, dir: &str) -> Result<(), DiskError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.fsyncs += 1;
        // A failed directory fsync leaves the names as they were on the device.
        inner.inject(Operation::Write, dir)?;
        if inner.lose_fsyncs {
            inner.fsyncs_lost += 1;
            return Ok(());
        }
        inner
            .durable_names
            .retain(|path, _| parent_dir(path) != dir);
        for (path, id) in &inner.live_names {
            if parent_dir(path) == dir {
                inner.durable_names.insert(path.clone(), *id);
            }
        }
        inner.collect_garbage();
        Ok(())
    }

    fn free_bytes(&self) -> Result<u64, DiskError> {
        let inner = self.lock();
        Ok(match inner.capacity_bytes {
            Some(capacity) => capacity.saturating_sub(inner.used_bytes()),
            None => u64::MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_only_what_was_synced() {
        let disk = SimDisk::new(1);
        disk.append("log/a", b"durable").unwrap();
        disk.sync("log/a").unwrap();
        disk.sync_dir("log").unwrap();
        disk.append("log/a", b" pending").unwrap();
        disk.append("log/b", b"never named durably").unwrap();
        disk.sync("log/b").unwrap();
        disk.crash(false);
        assert_eq!(disk.read("log/a").unwrap().unwrap(), b"durable");
        assert_eq!(disk.read("log/b").unwrap(), None);
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_the_pending_append() {
        for seed in 0..32 {
            let disk = SimDisk::new(seed);
            disk.append("a", b"123").unwrap();
            disk.sync("a").unwrap();
            disk.sync_dir("").unwrap();
            disk.append("a", b"456789").unwrap();
            disk.crash(true);
            let after = disk.read("a").unwrap().unwrap();
            assert!(after.starts_with(b"123") && b"123456789".starts_with(&after));
        }
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_a_pending_write_over_synced_zeros() {
        let mut torn = 0;
        for seed in 0..32 {
            let disk = SimDisk::new(seed);
            disk.write_at("a", 0, b"12\0\0\0\0\0\0").unwrap();
            disk.sync("a").unwrap();
            disk.sync_dir("").unwrap();
            disk.write_at("a", 2, b"3456789").unwrap();
            assert_eq!(disk.read("a").unwrap().unwrap(), b"123456789");
            disk.crash(true);
            let after = disk.read("a").unwrap().unwrap();
            // Some prefix of "3456789" landed at offset 2; the rest is what was synced.
            let landed = after[2..].iter().take_while(|byte| **byte != 0).count();
            assert_eq!(
                &after[..2 + landed],
                &b"123456789"[..2 + landed],
                "seed {seed}"
            );
            assert!(
                after[2 + landed..].iter().all(|byte| *byte == 0),
                "seed {seed}"
            );
            assert!(after.len() >= 8, "seed {seed}: synced zeros stay");
            // What reached the device stays there through the next power loss.
            disk.crash(true);
            assert_eq!(disk.read("a").unwrap().unwrap(), after, "seed {seed}");
            torn += usize::from(landed > 0 && landed < 7);
        }
        assert!(torn > 0, "some crash tears part way");
    }

    #[test]
    fn a_sync_after_positional_writes_keeps_exactly_the_current_bytes() {
        let disk = SimDisk::new(1);
        disk.write_at("a", 0, &[0; 16]).unwrap();
        disk.sync("a").unwrap();
        disk.sync_dir("").unwrap();
        disk.write_at("a", 4, b"abc").unwrap();
        disk.write_at("a", 2, b"z").unwrap();
        disk.write_at("a", 20, b"end").unwrap();
        disk.sync("a").unwrap();
        let expected = disk.read("a").unwrap().unwrap();
        disk.crash(true);
        assert_eq!(disk.read("a").unwrap().unwrap(), expected);
    }

    #[test]
    fn a_crash_without_a_tear_keeps_exactly_the_bytes_of_the_last_sync() {
        // Random positional writes and appends, synced now and then: after a crash the
        // file is what it was at its last sync, whatever ranges were copied.
        let mut draws = ChaCha20Rng::seed_from_u64(11);
        for round in 0..64 {
            let disk = SimDisk::new(round);
            disk.write_at("a", 0, &[0; 64]).unwrap();
            disk.sync("a").unwrap();
            disk.sync_dir("").unwrap();
            let mut at_last_sync = disk.read("a").unwrap().unwrap();
            for step in 0..40u8 {
                let length = disk.read("a").unwrap().unwrap().len() as u64;
                let bytes = vec![step.wrapping_add(1); 1 + (draws.next_u64() % 9) as usize];
                match draws.next_u64() % 4 {
                    0 => disk.append("a", &bytes).unwrap(),
                    1 => {
                        disk.sync("a").unwrap();
                        at_last_sync = disk.read("a").unwrap().unwrap();
                    }
                    _ => {
                        let offset = draws.next_u64() % (length + 8);
                        disk.write_at("a", offset, &bytes).unwrap();
                    }
                }
            }
            disk.crash(false);
            assert_eq!(
                disk.read("a").unwrap().unwrap(),
                at_last_sync,
                "round {round}"
            );
        }
    }

    #[test]
    fn lost_fsyncs_lose_data_on_crash() {
        let disk = SimDisk::new(3);
        disk.append("a", b"x").unwrap();
        disk.sync("a").unwrap();
        disk.sync_dir("").unwrap();
        disk.set_lose_fsyncs(true);
        disk.append("a", b"y").unwrap();
        disk.sync("a").unwrap();
        disk.crash(false);
        assert_eq!(disk.read("a").unwrap().unwrap(), b"x");
        assert_eq!(disk.stats().fsyncs_lost, 1);
    }

    #[test]
    fn syncs_after_rewrites_and_appends_keep_exactly_the_current_bytes() {
        let disk = SimDisk::new(5);
        disk.write("f", b"first").unwrap();
        disk.sync("f").unwrap();
        disk.write("f", b"second").unwrap();
        disk.append("f", b"+tail").unwrap();
        disk.sync("f").unwrap();
        disk.append("f", b"+more").unwrap();
        disk.sync("f").unwrap();
        disk.sync_dir("").unwrap();
        disk.append("f", b"+lost").unwrap();
        disk.crash(false);
        assert_eq!(disk.read("f").unwrap().unwrap(), b"second+tail+more");
    }

    #[test]
    fn an_unsynced_rename_reverts() {
        let disk = SimDisk::new(4);
        disk.write("snap.tmp", b"new").unwrap();
        disk.sync("snap.tmp").unwrap();
        disk.sync_dir("").unwrap();
        disk.rename("snap.tmp", "snap").unwrap();
        disk.crash(false);
        assert_eq!(disk.read("snap").unwrap(), None);
        assert_eq!(disk.read("snap.tmp").unwrap().unwrap(), b"new");
    }

    #[test]
    fn a_full_disk_keeps_what_fits_and_refuses_the_rest_until_space_is_freed() {
        let disk = SimDisk::new(6);
        disk.set_capacity_bytes(Some(10));
        disk.append("log/a", b"123456").unwrap();
        assert_eq!(disk.free_bytes().unwrap(), 4);
        let error = disk.append("log/a", b"789abc").unwrap_err();
        assert!(error.is_storage_full(), "{error}");
        assert_eq!(disk.read("log/a").unwrap().unwrap(), b"123456789a");
        assert!(disk.write("b", b"x").unwrap_err().is_storage_full());
        // A removed file gives its space back; so does a larger capacity.
        disk.truncate("log/a", 6).unwrap();
        disk.write("b", b"xy").unwrap();
        disk.remove("b").unwrap();
        assert_eq!(disk.free_bytes().unwrap(), 4);
        disk.set_capacity_bytes(None);
        disk.append("log/a", b"789abc").unwrap();
        assert_eq!(disk.used_bytes(), 12);
    }

    #[test]
    fn io_errors_change_nothing_and_a_failed_fsync_drops_the_unsynced_bytes() {
        let disk = SimDisk::new(7);
        disk.append("log/a", b"durable").unwrap();
        disk.sync("log/a").unwrap();
        disk.sync_dir("log").unwrap();
        disk.append("log/a", b"+pending").unwrap();
        disk.set_io_errors(Some(IoErrorRates {
            read_per_million: 1_000_000,
            write_per_million: 1_000_000,
        }));
        for error in [
            disk.read("log/a").unwrap_err(),
            disk.list("log").unwrap_err(),
            disk.append("log/a", b"+more").unwrap_err(),
            disk.write("log/b", b"new").unwrap_err(),
            disk.rename("log/a", "log/c").unwrap_err(),
            disk.remove("log/a").unwrap_err(),
            disk.sync_dir("log").unwrap_err(),
            disk.sync("log/a").unwrap_err(),
        ] {
            assert!(
                matches!(&error, DiskError::Io { source, .. } if source.raw_os_error() == Some(EIO)),
                "{error}"
            );
        }
        assert_eq!(disk.stats().io_errors_injected, 8);
        disk.set_io_errors(None);
        // The failed fsync forgot "+pending"; a later fsync does not bring it back.
        assert_eq!(disk.read("log/a").unwrap().unwrap(), b"durable");
        disk.sync("log/a").unwrap();
        assert_eq!(disk.list("log").unwrap(), vec!["a".to_string()]);
    }

    #[test]
    fn io_errors_are_drawn_per_call_from_the_seed() {
        let failures = |seed| {
            let disk = SimDisk::new(seed);
            disk.set_io_errors(Some(IoErrorRates {
                read_per_million: 250_000,
                write_per_million: 0,
            }));
            (0..64)
                .map(|_| disk.read("a").is_err())
                .collect::<Vec<bool>>()
        };
        assert_eq!(failures(9), failures(9));
        let count = failures(9).iter().filter(|failed| **failed).count();
        assert!((4..40).contains(&count), "{count} of 64");
    }
}
