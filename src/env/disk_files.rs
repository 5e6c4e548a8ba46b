//! The production disk: real files below a data directory, with explicit `sync_data`
//! and directory fsyncs so that a power loss keeps exactly what was synced.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // seam-ok: this is the seam

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::disk::{Disk, DiskError, check_path};

/// How many append handles stay open at once; older ones are closed (segments are
/// appended one at a time, so a handful is plenty).
const OPEN_HANDLES_MAX: usize = 16;

#[derive(Debug)]
pub struct FileDisk {
    root: PathBuf,
    // Keyed lookups only; iteration order never decides anything. Shared so that an
    // fsync runs with the map unlocked: one file's slow fsync (a snapshot) must not hold
    // up appends to another (the Raft log).
    append_handles: Mutex<HashMap<String, Arc<File>>>,
    /// Handles for `write_at`, opened without `O_APPEND` (under which Linux's `pwrite`
    /// appends whatever the offset). Same rules as `append_handles`.
    positional_handles: Mutex<HashMap<String, Arc<File>>>,
}

impl FileDisk {
    pub fn open(root: &Path) -> Result<Self, DiskError> {
        private_dirs(root).map_err(|source| DiskError::Io {
            path: root.display().to_string(),
            source,
        })?;
        Ok(Self {
            root: root.to_path_buf(),
            append_handles: Mutex::new(HashMap::new()),
            positional_handles: Mutex::new(HashMap::new()),
        })
    }

    fn full_path(&self, path: &str) -> Result<PathBuf, DiskError> {
        check_path(path)?;
        Ok(self.root.join(path))
    }

    fn io_error(path: &str) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
        move |source| DiskError::Io {
            path: path.to_string(),
            source,
        }
    }

    fn ensure_parent(&self, full: &Path, path: &str) -> Result<(), DiskError> {
        if let Some(parent) = full.parent() {
            private_dirs(parent).map_err(Self::io_error(path))?;
        }
        Ok(())
    }

    /// The open handle for `path` in `handles`, opened with `options` when missing (the
    /// map keeps at most [`OPEN_HANDLES_MAX`]).
    fn handle<'a>(
        &self,
        handles: &'a mut HashMap<String, Arc<File>>,
        path: &str,
        options: &OpenOptions,
    ) -> Result<&'a File, DiskError> {
        let full = self.full_path(path)?;
        if !handles.contains_key(path) {
            if handles.len() >= OPEN_HANDLES_MAX {
                handles.clear();
            }
            self.ensure_parent(&full, path)?;
            let file = options.open(&full).map_err(Self::io_error(path))?;
            handles.insert(path.to_string(), Arc::new(file));
        }
        Ok(handles.get(path).expect("inserted above"))
    }

    fn forget_handle(&self, path: &str) {
        for handles in [&self.append_handles, &self.positional_handles] {
            handles
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(path);
        }
    }
}

impl Disk for FileDisk {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, DiskError> {
        let full = self.full_path(path)?;
        match File::open(&full) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(Self::io_error(path))?;
                Ok(Some(bytes))
            }
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Self::io_error(path)(error)),
        }
    }

    fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        let mut handles = self
            .append_handles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        let mut file: &File = self.handle(&mut handles, path, &options)?;
        file.write_all(bytes).map_err(Self::io_error(path))
    }

    fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        use std::io::{Seek, SeekFrom};
        let mut handles = self
            .positional_handles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut options = OpenOptions::new();
        options.create(true).write(true).truncate(false);
        // Seek and write under the map's lock: no other write moves the handle's
        // position in between.
        let mut file: &File = self.handle(&mut handles, path, &options)?;
        file.seek(SeekFrom::Start(offset))
            .map_err(Self::io_error(path))?;
        file.write_all(bytes).map_err(Self::io_error(path))
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        let full = self.full_path(path)?;
        self.forget_handle(path);
        self.ensure_parent(&full, path)?;
        fs::write(&full, bytes).map_err(Self::io_error(path))
    }

    fn truncate(&self, path: &str, length: u64) -> Result<(), DiskError> {
        let full = self.full_path(path)?;
        self.forget_handle(path);
        let file = OpenOptions::new()
            .write(true)
            .open(&full)
            .map_err(Self::io_error(path))?;
        file.set_len(length).map_err(Self::io_error(path))?;
        file.sync_data().map_err(Self::io_error(path))
    }

    fn sync(&self, path: &str) -> Result<(), DiskError> {
        let full = self.full_path(path)?;
        let handles = self
            .append_handles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let handle = handles.get(path).cloned();
        drop(handles);
        let handle = handle.or_else(|| {
            self.positional_handles
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(path)
                .cloned()
        });
        if let Some(file) = handle {
            return file.sync_data().map_err(Self::io_error(path));
        }
        let file = File::open(&full).map_err(Self::io_error(path))?;
        file.sync_data().map_err(Self::io_error(path))
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        let full_from = self.full_path(from)?;
        let full_to = self.full_path(to)?;
        self.forget_handle(from);
        self.forget_handle(to);
        self.ensure_parent(&full_to, to)?;
        fs::rename(full_from, full_to).map_err(Self::io_error(from))
    }

    fn remove(&self, path: &str) -> Result<(), DiskError> {
        let full = self.full_path(path)?;
        self.forget_handle(path);
        match fs::remove_file(full) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(Self::io_error(path)(error)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, DiskError> {
        let full = if dir.is_empty() {
            self.root.clone()
        } else {
            self.full_path(dir)?
        };
        let entries = match fs::read_dir(&full) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(Self::io_error(dir)(error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Self::io_error(dir))?;
            if entry.file_type().map_err(Self::io_error(dir))?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &str) -> Result<(), DiskError> {
        let full = if dir.is_empty() {
            self.root.clone()
        } else {
            self.full_path(dir)?
        };
        private_dirs(&full).map_err(Self::io_error(dir))?;
        File::open(&full)
            .and_then(|directory| directory.sync_all())
            .map_err(Self::io_error(dir))
    }

    fn free_bytes(&self) -> Result<u64, DiskError> {
        free_bytes_below(&self.root).map_err(Self::io_error(""))
    }
}

/// The bytes an unprivileged writer may still use on the file system holding `path`
/// (`statvfs`: available blocks times the fragment size).
fn free_bytes_below(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `name` is a NUL-terminated path and `stats` is a buffer of the right type
    // that statvfs fills in whole when it answers 0.
    let answer = unsafe { libc::statvfs(name.as_ptr(), stats.as_mut_ptr()) };
    if answer != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs answered 0, so it wrote the structure.
    let stats = unsafe { stats.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Create `path` and its missing parents readable by this user only: the data directory
/// holds the node's follower key (`channel::identity`) beside the Raft log.
fn private_dirs(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_through_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FileDisk::open(dir.path()).unwrap();
        disk.append("raft/log/a", b"hello ").unwrap();
        disk.append("raft/log/a", b"world").unwrap();
        disk.sync("raft/log/a").unwrap();
        assert_eq!(disk.read("raft/log/a").unwrap().unwrap(), b"hello world");
        disk.truncate("raft/log/a", 5).unwrap();
        assert_eq!(disk.read("raft/log/a").unwrap().unwrap(), b"hello");
        // Positional writes: over what is there, past the end (the gap reads as zeros).
        disk.write_at("raft/log/a", 1, b"EL").unwrap();
        disk.write_at("raft/log/a", 7, b"!").unwrap();
        disk.sync("raft/log/a").unwrap();
        assert_eq!(disk.read("raft/log/a").unwrap().unwrap(), b"hELlo\0\0!");
        disk.write_at("raft/log/b", 2, b"x").unwrap();
        assert_eq!(disk.read("raft/log/b").unwrap().unwrap(), b"\0\0x");
        crate::env::disk::write_atomic(&disk, "raft/vote", b"v").unwrap();
        assert_eq!(disk.list("raft").unwrap(), vec!["vote".to_string()]);
        disk.remove("raft/vote").unwrap();
        assert_eq!(disk.read("raft/vote").unwrap(), None);
        assert!(disk.read("../escape").is_err());
        let free = disk.free_bytes().unwrap();
        assert!(free > 0 && free < u64::MAX, "{free}");
    }
}
