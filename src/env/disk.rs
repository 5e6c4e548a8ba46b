//! The disk seam. Raft log segments, the vote and snapshots reach storage only through
//! [`Disk`], so the simulator can model what a real disk does on a crash: writes that
//! were never fsynced vanish, and the last one may be torn.
//!
//! Paths are relative, `/`-separated names below the node's data directory.

use std::fmt::Debug;

/// The longest relative path the disk accepts; longer names are a programming error
/// upstream, never user input.
pub const PATH_BYTES_MAX: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("disk i/o on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid disk path {0:?}")]
    InvalidPath(String),
    #[error("{0} does not exist")]
    NotFound(String),
}

impl DiskError {
    /// Whether the disk refused the operation for lack of space (`ENOSPC`): an operating
    /// condition that passes once space is freed, unlike other i/o errors.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, DiskError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
    }

    /// The error a disk returns when writing `path` would need more space than it has.
    pub fn storage_full(path: &str) -> Self {
        DiskError::Io {
            path: path.to_string(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        }
    }
}

/// A small file API with explicit durability. Nothing is durable until `sync` (file
/// contents) or `sync_dir` (creation, rename and removal of names in a directory).
pub trait Disk: Send + Sync + Debug + 'static {
    /// The whole content of a file, or `None` when it does not exist.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, DiskError>;
    /// Append to a file, creating it when missing.
    fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError>;
    /// Write `bytes` at `offset`, over what is there and past the end as needed (a gap
    /// before `offset` reads as zeros), creating the file when missing. The Raft log
    /// writes its segments this way, into space it filled with zeros ahead of time.
    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> Result<(), DiskError>;
    /// Replace a file's whole content (creating it when missing). Not atomic: use
    /// `write` to a temporary name, `sync`, `rename`, `sync_dir` for that.
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError>;
    /// Shorten a file to `length` bytes.
    fn truncate(&self, path: &str, length: u64) -> Result<(), DiskError>;
    /// Make the file's content durable.
    fn sync(&self, path: &str) -> Result<(), DiskError>;
    fn rename(&self, from: &str, to: &str) -> Result<(), DiskError>;
    fn remove(&self, path: &str) -> Result<(), DiskError>;
    /// Names (not paths) of the files directly inside `dir`, sorted.
    fn list(&self, dir: &str) -> Result<Vec<String>, DiskError>;
    /// Make creations, renames and removals inside `dir` durable.
    fn sync_dir(&self, dir: &str) -> Result<(), DiskError>;
    /// Bytes still free for this disk's files (what an unprivileged writer may use).
    fn free_bytes(&self) -> Result<u64, DiskError>;
}

/// Reject absolute paths, `..` and empty segments: the disk never leaves its root.
pub fn check_path(path: &str) -> Result<(), DiskError> {
    let valid = !path.is_empty()
        && path.len() <= PATH_BYTES_MAX
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if valid {
        Ok(())
    } else {
        Err(DiskError::InvalidPath(path.to_string()))
    }
}

/// A file larger than this is written and synced in pieces of this size. One fsync of
/// a whole large file (a snapshot of 100,000 secrets) stalls every small fsync on the
/// same file system meanwhile (ext4's ordered mode writes out the data of a commit's
/// newly allocated blocks before the commit, whichever file asked for it): the Raft
/// log's appends waited for the snapshot. In pieces, each of its syncs carries little.
/// At 4 MiB a piece's sync still held the log's fdatasync up for milliseconds: three
/// nodes at 64 writing clients, each building a snapshot every 8,192 entries, had a
/// write p99 of 29-40 ms; with 512 KiB pieces 22-26 ms (four interleaved pairs; 128 KiB
/// did no better).
pub const ATOMIC_WRITE_PIECE_BYTES: usize = 512 * 1024;

/// Write `bytes` to `path` atomically: a temporary file, fsync, rename, directory fsync.
/// Large files are written and synced in pieces ([`ATOMIC_WRITE_PIECE_BYTES`]); the
/// rename still comes only after the last piece is durable.
///
/// When the temporary file cannot be written or synced (a full disk), it is removed
/// again, so a failed write leaves no partial file behind and frees what it took.
pub fn write_atomic(disk: &dyn Disk, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
    write_atomic_from_parts(disk, path, &[bytes])
}

/// [`write_atomic`] of `parts` one after another, without joining them into one buffer
/// first (a snapshot file: a small header, then a body of tens of megabytes).
pub fn write_atomic_from_parts(
    disk: &dyn Disk,
    path: &str,
    parts: &[&[u8]],
) -> Result<(), DiskError> {
    let temporary = format!("{path}.tmp");
    let write_pieces = || -> Result<(), DiskError> {
        let mut pieces = parts
            .iter()
            .flat_map(|part| part.chunks(ATOMIC_WRITE_PIECE_BYTES));
        disk.write(&temporary, pieces.next().unwrap_or_default())?;
        disk.sync(&temporary)?;
        for piece in pieces {
            disk.append(&temporary, piece)?;
            disk.sync(&temporary)?;
        }
        Ok(())
    };
    if let Err(error) = write_pieces() {
        // Best effort: the write's own error is the one worth reporting.
        disk.remove(&temporary).ok();
        return Err(error);
    }
    disk.rename(&temporary, path)?;
    disk.sync_dir(parent_dir(path))
}

/// The directory part of a relative path (`""` for the root).
pub fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        assert!(check_path("raft/log/00000001.seg").is_ok());
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/."] {
            assert!(check_path(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temporary_file() {
        let disk = crate::env::SimDisk::new(1);
        disk.set_capacity_bytes(Some(100));
        write_atomic(&disk, "snapshots/a", &[7; 60]).unwrap();
        let error = write_atomic(&disk, "snapshots/b", &[8; 60]).unwrap_err();
        assert!(error.is_storage_full(), "{error}");
        assert_eq!(disk.list("snapshots").unwrap(), vec!["a".to_string()]);
        assert_eq!(disk.free_bytes().unwrap(), 40);
    }

    #[test]
    fn a_large_atomic_write_goes_in_pieces_and_fails_whole() {
        let piece = ATOMIC_WRITE_PIECE_BYTES;
        let bytes: Vec<u8> = (0..2 * piece + 5).map(|at| (at % 251) as u8).collect();
        let disk = crate::env::SimDisk::new(1);
        write_atomic(&disk, "snapshots/a", &bytes).unwrap();
        assert_eq!(
            disk.read("snapshots/a").unwrap().as_deref(),
            Some(&bytes[..])
        );

        // Room for one piece and a half: the second piece fails, nothing is left behind.
        let disk = crate::env::SimDisk::new(1);
        disk.set_capacity_bytes(Some((piece + piece / 2) as u64));
        let error = write_atomic(&disk, "snapshots/b", &bytes).unwrap_err();
        assert!(error.is_storage_full(), "{error}");
        assert!(disk.list("snapshots").unwrap().is_empty());
        assert_eq!(disk.free_bytes().unwrap(), (piece + piece / 2) as u64);
    }
}
