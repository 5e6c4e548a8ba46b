//! Append-only log files, the seam the audit devices write through.
//!
//! Audit devices name files by absolute path (`file_path=/var/log/vault_audit.log`) or
//! by the word `stdout`. Production opens real files in append mode, created with the
//! device's mode (0600 by default) and reopened once after a failed write, as Vault's
//! file sink does. Tests and the simulator use [`MemoryLogFiles`], whose files live
//! outside the node (they survive restarts) and can be told to fail.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // seam-ok: this is the seam

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// The name that sends lines to the process's standard output instead of a file.
pub const STDOUT_PATH: &str = "stdout";
/// The file mode audit logs are created with unless the device names another.
pub const LOG_FILE_MODE_DEFAULT: u32 = 0o600;
/// How many lines one in-memory file keeps; older lines are dropped (the count of all
/// lines ever appended is kept), so a long simulation cannot grow without bound.
pub const MEMORY_LINES_KEPT_MAX: usize = 100_000;

/// One append-only log. A line is written whole, followed by a newline, or not at all
/// as far as the caller can tell: a failure is returned, never swallowed.
pub trait LogSink: Send + Sync {
    fn append_line(&self, line: &[u8]) -> Result<(), io::Error>;

    /// Close and reopen the underlying file (log rotation, Vault's SIGHUP reload).
    fn reopen(&self) -> Result<(), io::Error> {
        Ok(())
    }
}

/// Opens log sinks; the server injects one implementation.
pub trait LogFiles: Send + Sync {
    /// `path` is absolute or [`STDOUT_PATH`]. `mode` is the Unix permission bits the file
    /// is created (and chmod-ed) with; `0` keeps an existing file's mode, as Vault does.
    /// Opening does not write; the first append (or an explicit test line) shows whether
    /// the file is writable.
    fn open(&self, path: &str, mode: u32) -> Result<Arc<dyn LogSink>, io::Error>;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Production: real files and the real standard output.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsLogFiles;

impl LogFiles for OsLogFiles {
    fn open(&self, path: &str, mode: u32) -> Result<Arc<dyn LogSink>, io::Error> {
        if path == STDOUT_PATH {
            return Ok(Arc::new(StdoutSink));
        }
        if !Path::new(path).is_absolute() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("audit log path {path:?} must be absolute"),
            ));
        }
        Ok(Arc::new(FileLogSink {
            path: path.to_string(),
            mode,
            file: Mutex::new(None),
        }))
    }
}

struct StdoutSink;

impl LogSink for StdoutSink {
    fn append_line(&self, line: &[u8]) -> Result<(), io::Error> {
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line);
        buffer.push(b'\n');
        let mut stdout = io::stdout().lock();
        stdout.write_all(&buffer)?;
        stdout.flush()
    }
}

/// A file opened lazily in append mode and kept open between lines.
struct FileLogSink {
    path: String,
    mode: u32,
    file: Mutex<Option<File>>,
}

impl FileLogSink {
    fn open_file(&self) -> Result<File, io::Error> {
        let path = Path::new(&self.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let create_mode = if self.mode == 0 {
                LOG_FILE_MODE_DEFAULT
            } else {
                self.mode
            };
            options.mode(create_mode);
        }
        let file = options.open(path)?;
        // An existing file keeps its old mode on open; set it as Vault does, except for
        // mode 0 ("keep the existing mode") and /dev/null, which cannot be changed.
        #[cfg(unix)]
        if self.mode != 0 && self.path != "/dev/null" {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        }
        Ok(file)
    }

    fn write_once(&self, slot: &mut Option<File>, buffer: &[u8]) -> Result<(), io::Error> {
        if slot.is_none() {
            *slot = Some(self.open_file()?);
        }
        match slot.as_mut() {
            Some(file) => file.write_all(buffer),
            None => Err(io::Error::other("audit log file is not open")),
        }
    }
}

impl LogSink for FileLogSink {
    fn append_line(&self, line: &[u8]) -> Result<(), io::Error> {
        // One write of line and newline, so O_APPEND keeps concurrent lines whole.
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line);
        buffer.push(b'\n');
        let mut slot = lock(&self.file);
        if self.write_once(&mut slot, &buffer).is_ok() {
            return Ok(());
        }
        // The file may have been rotated away or its descriptor broken: reopen once.
        *slot = None;
        let result = self.write_once(&mut slot, &buffer);
        if result.is_err() {
            *slot = None;
        }
        result
    }

    fn reopen(&self) -> Result<(), io::Error> {
        let mut slot = lock(&self.file);
        *slot = None;
        *slot = Some(self.open_file()?);
        Ok(())
    }
}

/// In-memory log files for tests and the simulator. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemoryLogFiles {
    files: Arc<Mutex<BTreeMap<String, Arc<MemoryLogSink>>>>,
}

impl MemoryLogFiles {
    pub fn new() -> Self {
        Self::default()
    }

    fn file(&self, path: &str) -> Arc<MemoryLogSink> {
        lock(&self.files)
            .entry(path.to_string())
            .or_insert_with(|| Arc::new(MemoryLogSink::default()))
            .clone()
    }

    /// The lines kept for `path` (most recent last), as text.
    pub fn lines(&self, path: &str) -> Vec<String> {
        let file = self.file(path);
        let lines = lock(&file.lines);
        lines
            .iter()
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect()
    }

    /// Make every append to `path` fail (an unwritable or full disk) or succeed again.
    pub fn set_failing(&self, path: &str, failing: bool) {
        *lock(&self.file(path).failing) = failing;
    }
}

impl LogFiles for MemoryLogFiles {
    fn open(&self, path: &str, _mode: u32) -> Result<Arc<dyn LogSink>, io::Error> {
        if path != STDOUT_PATH && !path.starts_with('/') {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("audit log path {path:?} must be absolute"),
            ));
        }
        Ok(self.file(path))
    }
}

/// One in-memory file.
#[derive(Debug, Default)]
pub struct MemoryLogSink {
    lines: Mutex<VecDeque<Vec<u8>>>,
    failing: Mutex<bool>,
}

impl LogSink for MemoryLogSink {
    fn append_line(&self, line: &[u8]) -> Result<(), io::Error> {
        if *lock(&self.failing) {
            return Err(io::Error::new(
                ErrorKind::PermissionDenied,
                "permission denied",
            ));
        }
        let mut lines = lock(&self.lines);
        while lines.len() >= MEMORY_LINES_KEPT_MAX {
            lines.pop_front();
        }
        lines.push_back(line.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_keep_lines_and_fail_on_request() {
        let files = MemoryLogFiles::new();
        let sink = files.open("/var/log/audit.log", 0o600).unwrap();
        sink.append_line(b"one").unwrap();
        files.set_failing("/var/log/audit.log", true);
        assert!(sink.append_line(b"two").is_err());
        files.set_failing("/var/log/audit.log", false);
        sink.append_line(b"three").unwrap();
        assert_eq!(files.lines("/var/log/audit.log"), vec!["one", "three"]);
        assert!(files.open("relative.log", 0o600).is_err());
    }

    #[test]
    fn real_files_are_appended_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/audit.log");
        let path_text = path.to_str().unwrap();
        let sink = OsLogFiles.open(path_text, 0o600).unwrap();
        sink.append_line(b"{\"a\":1}").unwrap();
        sink.reopen().unwrap();
        sink.append_line(b"{\"b\":2}").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(OsLogFiles.open("relative.log", 0o600).is_err());
    }
}
