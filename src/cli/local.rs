//! The CLI's local side effects: files named on the command line, standard input,
//! hidden prompts, and the token helper file. The CLI is a client process that never
//! runs inside the simulator, so it uses `std::fs` directly rather than the disk seam.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // seam-ok: client process, never simulated

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use super::data_args::DataSource;

/// The most a file or standard input may hold when read as request data: far above any
/// policy or secret, and a clear error instead of exhausting memory on a mistaken
/// `k=@/dev/zero`.
const INPUT_BYTES_MAX: u64 = 32 * 1024 * 1024;

fn read_bounded(reader: impl Read, origin: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(INPUT_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("error reading {origin}: {error}"))?;
    if bytes.len() as u64 > INPUT_BYTES_MAX {
        return Err(format!(
            "error reading {origin}: larger than {INPUT_BYTES_MAX} bytes"
        ));
    }
    Ok(bytes)
}

fn into_text(bytes: Vec<u8>, origin: &str) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|_| format!("error reading {origin}: not valid UTF-8"))
}

/// Reads files and standard input for `k=@file`, `k=-` and `-`.
pub struct LocalData;

impl DataSource for LocalData {
    fn read_file(&mut self, path: &str) -> Result<String, String> {
        read_file(path)
    }

    fn read_stdin(&mut self) -> Result<String, String> {
        read_stdin()
    }
}

pub fn read_file(path: &str) -> Result<String, String> {
    into_text(read_file_bytes(path)?, &format!("file {path}"))
}

pub fn read_file_bytes(path: &str) -> Result<Vec<u8>, String> {
    let origin = format!("file {path}");
    let file =
        std::fs::File::open(path).map_err(|error| format!("error reading {origin}: {error}"))?;
    read_bounded(file, &origin)
}

/// The most files a `-ca-path`/`VAULT_CAPATH` tree may hold: far above any CA
/// directory (a system store holds a few hundred), and a clear error instead of a
/// minutes-long walk when the path names `/` or a home directory by mistake.
pub const CA_PATH_FILES_MAX: usize = 4096;

/// Every file under `dir` (`-ca-path`/`VAULT_CAPATH`), walked recursively as Vault's
/// loader (go-rootcerts `LoadCAPath`, `filepath.Walk`) does: entries of a directory
/// in name order, subdirectories descended into, symbolic links to directories not
/// followed. As in Vault, a file that holds no certificate is an error naming it (a
/// stray key or README in the directory is refused, not silently trusted around).
pub fn read_pem_directory(dir: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut files = Vec::new();
    collect_files(std::path::Path::new(dir), &mut files)
        .map_err(|error| format!("Error loading CA path {dir}: {error}"))?;
    let mut pems = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let bytes = read_file_bytes(&name)
            .map_err(|error| format!("Error loading file from CAPath: {error}"))?;
        if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "Error loading CA Path: Couldn't parse PEM in: {name}"
            ));
        }
        pems.push(bytes);
    }
    if pems.is_empty() {
        return Err(format!(
            "Error loading CA path {dir}: no certificate files in it"
        ));
    }
    Ok(pems)
}

/// Appends the files under `path` to `files` (depth first, names sorted), refusing
/// more than [`CA_PATH_FILES_MAX`].
fn collect_files(path: &std::path::Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let metadata =
        std::fs::symlink_metadata(path).map_err(|error| format!("{}: {error}", path.display()))?;
    if !metadata.is_dir() {
        if files.len() == CA_PATH_FILES_MAX {
            return Err(format!(
                "more than {CA_PATH_FILES_MAX} files in it; name a directory holding only CA certificates"
            ));
        }
        files.push(path.to_path_buf());
        return Ok(());
    }
    let entries =
        std::fs::read_dir(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| format!("{}: {error}", path.display()))?;
        children.push(entry.path());
        // A directory of millions of entries is refused before it is all listed.
        if children.len() > CA_PATH_FILES_MAX {
            return Err(format!(
                "more than {CA_PATH_FILES_MAX} files in it; name a directory holding only CA certificates"
            ));
        }
    }
    children.sort();
    for child in children {
        collect_files(&child, files)?;
    }
    Ok(())
}

/// Replace a file's contents (its permissions are kept, as `policy fmt` needs).
pub fn write_file(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|error| format!("error writing file {path}: {error}"))
}

pub fn read_stdin() -> Result<String, String> {
    into_text(read_bounded(std::io::stdin().lock(), "stdin")?, "stdin")
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Vault's `AskSecret`: the prompt on stdout; on a terminal the answer is read without
/// echo, otherwise one line is read from standard input (so `echo secret | arca ...`
/// works). Either way the prompt's line ends before anything else is printed, as in
/// Vault (`fmt.Println()` after the read): on a terminal the newline the user typed is
/// echoed, otherwise it is printed here.
pub fn ask_secret(prompt: &str) -> Result<String, String> {
    ask_secret_on(&mut std::io::stdout(), prompt)
}

/// [`ask_secret`] with the prompt on standard error, as Vault's token login asks.
pub fn ask_secret_on_stderr(prompt: &str) -> Result<String, String> {
    ask_secret_on(&mut std::io::stderr(), prompt)
}

fn ask_secret_on(stream: &mut dyn Write, prompt: &str) -> Result<String, String> {
    let _ = write!(stream, "{prompt}");
    let _ = stream.flush();
    if std::io::stdin().is_terminal() {
        rpassword::read_password().map_err(|error| format!("error reading input: {error}"))
    } else {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        let _ = writeln!(stream);
        read.map_err(|error| format!("error reading input: {error}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// The token helper file: `$HOME/.arca-token` (Arca's own, so a real Vault's
/// `~/.vault-token` is never overwritten).
pub fn token_helper_path(home: Option<&str>) -> Option<PathBuf> {
    home.filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".arca-token"))
}

/// The stored token, if any (a missing file is simply no token).
pub fn read_token_helper(home: Option<&str>) -> Option<String> {
    let path = token_helper_path(home)?;
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim().to_string();
    (!token.is_empty()).then_some(token)
}

pub fn write_token_helper(home: Option<&str>, token: &str) -> Result<(), String> {
    let Some(path) = token_helper_path(home) else {
        return Err("error storing token: HOME is not set".to_string());
    };
    write_file_with_mode(&path, token.as_bytes(), 0o600)
        .map_err(|error| format!("error storing token in {}: {error}", path.display()))
}

/// Write `bytes` to a file created with `mode` from the start (on Unix), so a key or a
/// token is never readable by others even for a moment.
pub fn write_file_with_mode(
    path: &std::path::Path,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)?.write_all(bytes)
}

/// Create `dir` and its parents (a directory the user named for files we write).
pub fn create_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Create `dir`, failing with `AlreadyExists` rather than reusing someone's directory.
pub fn create_new_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir(dir)
}

/// Remove a directory this process created, with everything in it.
pub fn remove_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(dir)
}

/// Transfers at least this large show progress: smaller ones finish before a reader
/// could look.
pub const PROGRESS_BYTES_MIN: u64 = 1024 * 1024;
/// How often progress is redrawn, in bytes moved.
const PROGRESS_STEP_BYTES: u64 = 1024 * 1024;

/// Progress of a large transfer (a snapshot save or restore), on standard error so it
/// never mixes with what a command prints or writes.
pub struct ProgressMeter {
    label: &'static str,
    total: Option<u64>,
    done: u64,
    shown: u64,
}

fn mebibytes(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl ProgressMeter {
    pub fn new(label: &'static str, total: Option<u64>) -> Self {
        Self {
            label,
            total,
            done: 0,
            shown: 0,
        }
    }

    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    fn large(&self) -> bool {
        self.total.unwrap_or(self.done) >= PROGRESS_BYTES_MIN
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.large() && self.done - self.shown >= PROGRESS_STEP_BYTES {
            self.shown = self.done;
            self.draw();
        }
    }

    pub fn finish(&mut self) {
        if self.large() {
            self.draw();
            eprintln!();
        }
    }

    fn draw(&self) {
        let line = match self.total {
            Some(total) => format!(
                "{}: {:.1} of {:.1} MiB",
                self.label,
                mebibytes(self.done),
                mebibytes(total)
            ),
            None => format!("{}: {:.1} MiB", self.label, mebibytes(self.done)),
        };
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\r{line}");
        let _ = stderr.flush();
    }
}

/// A reader that tells a [`ProgressMeter`] what it hands out (an upload's body).
pub struct ProgressReader<R> {
    inner: R,
    progress: ProgressMeter,
    remaining: u64,
}

impl<R: Read> ProgressReader<R> {
    pub fn new(inner: R, progress: ProgressMeter, length: u64) -> Self {
        let mut progress = progress;
        progress.set_total(Some(length));
        Self {
            inner,
            progress,
            remaining: length,
        }
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.progress.advance(read as u64);
        self.remaining = self.remaining.saturating_sub(read as u64);
        if read > 0 && self.remaining == 0 {
            self.progress.finish();
        }
        Ok(read)
    }
}

/// Write a binary file (a saved snapshot) whole: to a temporary name beside it, then
/// renamed, so an interrupted save never leaves a truncated file under the name given.
pub fn write_file_bytes(path: &str, bytes: &[u8]) -> Result<(), String> {
    let temporary = format!("{path}.partial");
    let error = |error: std::io::Error| format!("error writing file {path}: {error}");
    let mut file = std::fs::File::create(&temporary).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(error)
}

/// Read a binary file of at most `bytes_max` bytes (a snapshot to restore).
pub fn read_file_bytes_max(path: &str, bytes_max: u64) -> Result<Vec<u8>, String> {
    let origin = format!("file {path}");
    let file =
        std::fs::File::open(path).map_err(|error| format!("error reading {origin}: {error}"))?;
    let mut bytes = Vec::new();
    file.take(bytes_max + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("error reading {origin}: {error}"))?;
    if bytes.len() as u64 > bytes_max {
        return Err(format!(
            "error reading {origin}: larger than the {bytes_max}-byte limit of a snapshot"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn write(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_ca_path_is_walked_recursively_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("b.pem"), &format!("b\n{CERTIFICATE}"));
        write(
            &dir.path().join("a/nested/c.pem"),
            &format!("c\n{CERTIFICATE}"),
        );
        write(&dir.path().join("a/a.pem"), &format!("a\n{CERTIFICATE}"));
        let pems = read_pem_directory(dir.path().to_str().unwrap()).unwrap();
        let first_lines: Vec<String> = pems
            .iter()
            .map(|pem| {
                String::from_utf8_lossy(pem)
                    .lines()
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(first_lines, vec!["a", "c", "b"]);
    }

    #[test]
    fn a_file_without_a_certificate_is_named_as_vault_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("ca.pem"), CERTIFICATE);
        let stray = dir.path().join("sub/README");
        write(&stray, "not a certificate");
        let error = read_pem_directory(dir.path().to_str().unwrap()).unwrap_err();
        assert_eq!(
            error,
            format!(
                "Error loading CA Path: Couldn't parse PEM in: {}",
                stray.display()
            )
        );
    }

    #[test]
    fn more_files_than_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..CA_PATH_FILES_MAX {
            write(
                &dir.path().join(format!("d{}/{index}.pem", index % 8)),
                CERTIFICATE,
            );
        }
        assert_eq!(
            read_pem_directory(dir.path().to_str().unwrap())
                .unwrap()
                .len(),
            CA_PATH_FILES_MAX
        );
        write(&dir.path().join("d0/one-too-many.pem"), CERTIFICATE);
        let error = read_pem_directory(dir.path().to_str().unwrap()).unwrap_err();
        assert!(
            error.contains(&format!("more than {CA_PATH_FILES_MAX} files")),
            "{error}"
        );
    }

    #[test]
    fn an_empty_or_missing_ca_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = read_pem_directory(dir.path().to_str().unwrap()).unwrap_err();
        assert!(error.contains("no certificate files"), "{error}");
        let missing = dir.path().join("missing");
        let error = read_pem_directory(missing.to_str().unwrap()).unwrap_err();
        assert!(error.starts_with("Error loading CA path"), "{error}");
    }
}
