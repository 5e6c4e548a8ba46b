//! The audit broker: the enabled audit devices and Vault's blocking rule.
//!
//! Devices live in two tables, like mounts: `core/audit/<uuid>` (replicated) and
//! `core/local-audit/<uuid>` (local), one key per device, each carrying its own salt,
//! so hashes stay the same across restarts and a re-enabled device gets a fresh salt. Every request and
//! response is written to every device. Vault's rule: if at least one device is
//! enabled and none could record the entry, the request fails (the router answers
//! 500 "internal error"); one failing device is fine while another records.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::entry::{AuditEntry, AuditInput, HashSettings, request_entry, response_entry};
use super::hash::audit_hash;
use crate::barrier::{BarrierError, View, Write};
use crate::core::mounts::validate_mount_path;
use crate::env::SharedRng;
use crate::env::log_file::{LOG_FILE_MODE_DEFAULT, LogFiles, LogSink, STDOUT_PATH};
use crate::logical::{LogicalError, Operation};
use crate::storage::key_space;

/// The most audit devices enabled at once (both tables together).
pub const DEVICES_MAX: usize = 64;
/// The longest line one entry may take. An entry beyond it is not written, which
/// counts as that device failing (so the request is refused rather than unaudited).
pub const LINE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The most options one device may have, and the longest option name or value.
pub const OPTIONS_MAX: usize = 64;
pub const OPTION_BYTES_MAX: usize = 4096;
/// The longest description.
pub const DESCRIPTION_BYTES_MAX: usize = 4096;

/// The file path that drops every line (Vault's `discard`).
pub const DISCARD_PATH: &str = "discard";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// Bad options or body of an enable request (400).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("path already in use")]
    PathInUse,
    #[error("unknown backend type: {0:?}")]
    UnknownType(String),
    #[error("too many audit devices (the limit is {DEVICES_MAX})")]
    TooManyDevices,
    #[error("unknown audit backend {0}")]
    UnknownDevice(String),
    /// The device could not write its test line at enable time (400, as Vault).
    #[error("audit backend failed test message: {0}")]
    TestFailed(String),
    /// Vault's blocking rule: devices are enabled and none recorded the entry.
    #[error("no audit backend succeeded in logging the {0}")]
    NotRecorded(&'static str),
    #[error(transparent)]
    Storage(#[from] BarrierError),
}

impl From<AuditError> for LogicalError {
    fn from(error: AuditError) -> Self {
        match error {
            // Vault answers an unaudited request with a bare 500 "internal error".
            AuditError::NotRecorded(_) => LogicalError::Internal("internal error".into()),
            AuditError::Storage(storage) => storage.into(),
            other => LogicalError::BadRequest(other.to_string()),
        }
    }
}

/// One row of an audit table, as stored (the salt never leaves storage and the
/// broker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDevice {
    /// With its trailing slash: `file/`.
    pub path: String,
    #[serde(rename = "type")]
    pub device_type: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    pub accessor: String,
    /// Names the device's storage key; unlike the path, it never repeats.
    pub uuid: String,
    pub salt: String,
}

impl AuditDevice {
    /// The entry as `GET sys/audit` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "type": self.device_type,
            "description": self.description,
            "options": self.options,
            "local": self.local,
            "path": self.path,
        })
    }
}

/// The parsed options of a file device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    /// An absolute path, `stdout` or `discard`.
    pub file_path: String,
    pub hmac_accessor: bool,
    pub log_raw: bool,
    pub elide_list_responses: bool,
    pub prefix: String,
    /// Unix permission bits; 0 keeps an existing file's mode.
    pub mode: u32,
    /// Skip the test line written at enable time (Vault's `skip_test`).
    pub skip_test: bool,
}

impl FileOptions {
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Self, AuditError> {
        let invalid = |message: String| AuditError::InvalidRequest(message);
        let file_path = options
            .get("file_path")
            .or_else(|| options.get("path"))
            .map(|path| path.trim().to_string())
            .ok_or_else(|| invalid("\"file_path\" is required".into()))?;
        let file_path = if file_path.eq_ignore_ascii_case(STDOUT_PATH) {
            STDOUT_PATH.to_string()
        } else if file_path.eq_ignore_ascii_case(DISCARD_PATH) {
            DISCARD_PATH.to_string()
        } else if file_path.is_empty() {
            return Err(invalid("file path is required".into()));
        } else if !file_path.starts_with('/') {
            return Err(invalid(format!(
                "file path {file_path:?} must be absolute, \"stdout\" or \"discard\""
            )));
        } else {
            file_path
        };
        match options.get("format").map(String::as_str) {
            None | Some("") | Some("json") => {}
            Some("jsonx") => {
                return Err(invalid(
                    "format \"jsonx\" is not supported by this server; use \"json\"".into(),
                ));
            }
            Some(other) => return Err(invalid(format!("invalid format {other:?}"))),
        }
        let mode = match options.get("mode") {
            None => LOG_FILE_MODE_DEFAULT,
            Some(text) => u32::from_str_radix(text.trim(), 8)
                .ok()
                .filter(|mode| *mode <= 0o777)
                .ok_or_else(|| invalid(format!("unable to parse 'mode': {text:?}")))?,
        };
        // An executable audit log is a way to plant a program on the host; Vault
        // refuses such modes since 1.20.
        if mode & 0o111 != 0 {
            return Err(invalid(format!(
                "file mode {mode:04o} must not be executable"
            )));
        }
        Ok(Self {
            file_path,
            hmac_accessor: parse_bool(options, "hmac_accessor", true)?,
            log_raw: parse_bool(options, "log_raw", false)?,
            elide_list_responses: parse_bool(options, "elide_list_responses", false)?,
            prefix: options.get("prefix").cloned().unwrap_or_default(),
            mode,
            skip_test: parse_bool(options, "skip_test", false)?,
        })
    }
}

/// Go's `strconv.ParseBool`, which Vault uses for these options.
fn parse_bool(
    options: &BTreeMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool, AuditError> {
    let Some(text) = options.get(name) else {
        return Ok(default);
    };
    crate::util::parse_go_bool(text).ok_or_else(|| {
        AuditError::InvalidRequest(format!(
            "unable to parse '{name}': {text:?} is not a boolean"
        ))
    })
}

/// What `PUT sys/audit/:path` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnableRequest {
    pub path: String,
    pub device_type: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub local: bool,
}

/// The sink for `file_path=discard`.
struct DiscardSink;

impl LogSink for DiscardSink {
    fn append_line(&self, _line: &[u8]) -> Result<(), io::Error> {
        Ok(())
    }
}

/// An enabled device: its table row, parsed options and where it writes.
struct Device {
    entry: AuditDevice,
    options: FileOptions,
    /// `None` when the sink could not be set up at load; every write then fails.
    sink: Option<Arc<dyn LogSink>>,
}

impl Device {
    fn hashing(&self) -> HashSettings<'_> {
        HashSettings {
            salt: &self.entry.salt,
            hmac_accessor: self.options.hmac_accessor,
            log_raw: self.options.log_raw,
            elide_list_responses: self.options.elide_list_responses,
        }
    }

    fn write(&self, entry: &AuditEntry) -> Result<(), io::Error> {
        let sink = self
            .sink
            .as_ref()
            .ok_or_else(|| io::Error::other("audit device could not be opened"))?;
        let mut line = BoundedBuffer::new(LINE_BYTES_MAX);
        line.write_all(self.options.prefix.as_bytes())?;
        serde_json::to_writer(&mut line, entry).map_err(io::Error::other)?;
        sink.append_line(&line.bytes)
    }
}

/// A buffer that refuses to grow beyond its limit, so one huge entry cannot take
/// unbounded memory while it is serialized.
struct BoundedBuffer {
    bytes: Vec<u8>,
    limit: usize,
}

impl BoundedBuffer {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
        }
    }
}

impl io::Write for BoundedBuffer {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buffer.len()) > self.limit {
            return Err(io::Error::other(format!(
                "audit entry exceeds {} bytes",
                self.limit
            )));
        }
        self.bytes.extend_from_slice(buffer);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The enabled devices of this node.
pub struct AuditBroker {
    view: View,
    log_files: Arc<dyn LogFiles>,
    rng: SharedRng,
    devices: RwLock<BTreeMap<String, Device>>,
    /// Serializes enable and disable across their storage writes, so two concurrent
    /// changes cannot both pass the path check or overwrite each other's table.
    table_writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AuditBroker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuditBroker")
            .field("devices", &self.devices().len())
            .finish()
    }
}

/// The devices stored in the table of one class, each checked against its key. The
/// key decides the class, whatever a device claims.
fn stored_devices(view: &View, local: bool) -> Result<Vec<AuditDevice>, AuditError> {
    let prefix = key_space::audit_table_prefix(local);
    let mut devices = Vec::new();
    for uuid in view.list(prefix)? {
        let key = key_space::audit_entry(local, &uuid);
        let Some(mut device) = view.get_json::<AuditDevice>(&key)? else {
            continue;
        };
        if device.uuid != uuid {
            return Err(AuditError::Storage(BarrierError::Corrupt {
                key,
                reason: format!("the device names another key ({})", device.uuid),
            }));
        }
        device.local = local;
        devices.push(device);
    }
    Ok(devices)
}

impl AuditBroker {
    /// Rebuild the devices from both stored tables (on unseal, or when this node
    /// becomes active). `view` is the barrier's root view. A device whose sink cannot
    /// be set up stays listed and fails every write, so the blocking rule sees it.
    pub fn load(
        view: View,
        log_files: Arc<dyn LogFiles>,
        rng: SharedRng,
    ) -> Result<Self, AuditError> {
        let mut devices = BTreeMap::new();
        for local in [false, true] {
            for entry in stored_devices(&view, local)? {
                if devices.len() >= DEVICES_MAX {
                    break;
                }
                let device = match FileOptions::parse(&entry.options) {
                    Ok(options) => {
                        let sink = open_sink(log_files.as_ref(), &options).ok();
                        Device {
                            entry,
                            options,
                            sink,
                        }
                    }
                    Err(_) => Device {
                        options: FileOptions {
                            file_path: DISCARD_PATH.into(),
                            hmac_accessor: true,
                            log_raw: false,
                            elide_list_responses: false,
                            prefix: String::new(),
                            mode: LOG_FILE_MODE_DEFAULT,
                            skip_test: true,
                        },
                        entry,
                        sink: None,
                    },
                };
                devices.insert(device.entry.path.clone(), device);
            }
        }
        Ok(Self {
            view,
            log_files,
            rng,
            devices: RwLock::new(devices),
            table_writes: tokio::sync::Mutex::new(()),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Device>> {
        self.devices
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Device>> {
        self.devices
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The enabled devices, sorted by path.
    pub fn devices(&self) -> Vec<AuditDevice> {
        self.read()
            .values()
            .map(|device| device.entry.clone())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Enable a device: validate, open its file, write Vault's test line, persist
    /// the table of its class, then start logging to it.
    pub async fn enable(
        &self,
        request: EnableRequest,
        now_unix_nanos: i128,
    ) -> Result<(), AuditError> {
        let path = validate_mount_path(&request.path)
            .map_err(|error| AuditError::InvalidRequest(error.to_string()))?;
        if request.device_type != "file" {
            return Err(AuditError::UnknownType(request.device_type));
        }
        if request.description.len() > DESCRIPTION_BYTES_MAX {
            return Err(AuditError::InvalidRequest(format!(
                "description is longer than {DESCRIPTION_BYTES_MAX} bytes"
            )));
        }
        if request.options.len() > OPTIONS_MAX
            || request.options.iter().any(|(name, value)| {
                name.len() > OPTION_BYTES_MAX || value.len() > OPTION_BYTES_MAX
            })
        {
            return Err(AuditError::InvalidRequest(format!(
                "at most {OPTIONS_MAX} options of at most {OPTION_BYTES_MAX} bytes each"
            )));
        }
        let options = FileOptions::parse(&request.options)?;

        let _table_writes = self.table_writes.lock().await;
        {
            let devices = self.read();
            if devices
                .keys()
                .any(|existing| existing.starts_with(&path) || path.starts_with(existing.as_str()))
            {
                return Err(AuditError::PathInUse);
            }
            if devices.len() >= DEVICES_MAX {
                return Err(AuditError::TooManyDevices);
            }
        }

        let entry = AuditDevice {
            path: path.clone(),
            device_type: request.device_type,
            description: request.description,
            options: request.options,
            local: request.local,
            accessor: format!("audit_file_{}", hex::encode(self.rng.bytes::<4>())),
            uuid: self.rng.uuid(),
            salt: self.rng.uuid(),
        };
        let sink = open_sink(self.log_files.as_ref(), &options)
            .map_err(|error| AuditError::TestFailed(sink_error(&options.file_path, &error)))?;
        let device = Device {
            entry,
            options,
            sink: Some(sink),
        };
        if !device.options.skip_test {
            // Vault proves a new device writable by logging a probe request.
            let mut probe = AuditInput::new(Operation::Update, "sys/audit/test", now_unix_nanos);
            probe.request_id = self.rng.uuid();
            device
                .write(&request_entry(&probe, &device.hashing()))
                .map_err(|error| {
                    AuditError::TestFailed(sink_error(&device.options.file_path, &error))
                })?;
        }

        let value = serde_json::to_vec(&device.entry).map_err(|error| {
            AuditError::InvalidRequest(format!("audit device cannot be encoded: {error}"))
        })?;
        // At once, not staged: the device is published in memory right after.
        self.view
            .commit_now(vec![Write::Put {
                key: key_space::audit_entry(device.entry.local, &device.entry.uuid),
                value,
            }])
            .await?;
        self.write_lock().insert(path, device);
        Ok(())
    }

    /// Disable the device at `path`; `false` when there was none (Vault answers 204
    /// either way).
    pub async fn disable(&self, path: &str) -> Result<bool, AuditError> {
        let path = validate_mount_path(path)
            .map_err(|error| AuditError::InvalidRequest(error.to_string()))?;
        let _table_writes = self.table_writes.lock().await;
        let Some(key) = self
            .read()
            .get(&path)
            .map(|device| key_space::audit_entry(device.entry.local, &device.entry.uuid))
        else {
            return Ok(false);
        };
        self.view.commit_now(vec![Write::Delete { key }]).await?;
        self.write_lock().remove(&path);
        Ok(true)
    }

    /// `sys/audit-hash/:path`: `input` hashed with that device's salt.
    pub fn hash(&self, path: &str, input: &str) -> Result<String, AuditError> {
        let path = validate_mount_path(path)
            .map_err(|error| AuditError::InvalidRequest(error.to_string()))?;
        self.read()
            .get(&path)
            .map(|device| audit_hash(&device.entry.salt, input))
            .ok_or(AuditError::UnknownDevice(path))
    }

    /// Record the request on every device, before the backend runs.
    pub fn log_request(&self, input: &AuditInput) -> Result<(), AuditError> {
        let _stage = tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.audit.request").entered();
        self.log(input, "request", request_entry)
    }

    /// Record the response (with its request and error) on every device.
    pub fn log_response(&self, input: &AuditInput) -> Result<(), AuditError> {
        let _stage = tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.audit.response").entered();
        self.log(input, "response", response_entry)
    }

    fn log(
        &self,
        input: &AuditInput,
        entry_type: &'static str,
        build: fn(&AuditInput, &HashSettings<'_>) -> AuditEntry,
    ) -> Result<(), AuditError> {
        let devices = self.read();
        if devices.is_empty() {
            return Ok(());
        }
        let mut recorded = 0usize;
        for device in devices.values() {
            let entry = build(input, &device.hashing());
            match device.write(&entry) {
                Ok(()) => recorded += 1,
                Err(error) => tracing::error!(
                    device = %device.entry.path,
                    %error,
                    "audit device failed to log the {entry_type}"
                ),
            }
        }
        if recorded == 0 {
            return Err(AuditError::NotRecorded(entry_type));
        }
        Ok(())
    }

    /// Reopen every device's file (log rotation); returns the paths that failed.
    pub fn reopen_files(&self) -> Vec<String> {
        self.read()
            .values()
            .filter(|device| {
                device
                    .sink
                    .as_ref()
                    .is_some_and(|sink| sink.reopen().is_err())
            })
            .map(|device| device.entry.path.clone())
            .collect()
    }

    /// `GET sys/audit`: path → entry.
    pub fn table_json(&self) -> Map<String, Value> {
        self.read()
            .values()
            .map(|device| (device.entry.path.clone(), device.entry.to_json()))
            .collect()
    }
}

fn open_sink(
    log_files: &dyn LogFiles,
    options: &FileOptions,
) -> Result<Arc<dyn LogSink>, io::Error> {
    if options.file_path == DISCARD_PATH {
        return Ok(Arc::new(DiscardSink));
    }
    log_files.open(&options.file_path, options.mode)
}

fn sink_error(file_path: &str, error: &io::Error) -> String {
    format!("unable to open file for sink: open {file_path}: {error}")
}
