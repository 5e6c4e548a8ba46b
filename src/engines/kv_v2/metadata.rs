//! `metadata/:path`: a key's version history and settings, and the stored record that
//! every other route reads and updates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::barrier::{View, Write};
use crate::engines::input::{field_bool, field_duration, field_map, folder_path, has_field};
use crate::engines::kv_v2::config::{self, Config, DEFAULT_MAX_VERSIONS, max_versions_field};
use crate::engines::merge_patch;
use crate::engines::time_format::{go_duration, rfc3339};
use crate::logical::{LogicalError, Request, Response};

/// The most versions one key may keep (`max_versions` above this is refused), so that
/// deleting a key, or trimming it after `max_versions` shrinks, fits one storage batch
/// (`storage::BATCH_OPS_MAX`).
pub const KEY_VERSIONS_MAX: u32 = 10_000;

/// Vault's bounds on `custom_metadata`.
pub const CUSTOM_METADATA_KEYS_MAX: usize = 64;
pub const CUSTOM_METADATA_KEY_BYTES_MAX: usize = 128;
pub const CUSTOM_METADATA_VALUE_BYTES_MAX: usize = 512;

const CUSTOM_METADATA_ERROR_PREFIX: &str = "custom_metadata validation failed";

const CAS_REQUIRED_IGNORED_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

/// One version's bookkeeping. Its data lives at [`version_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMetadata {
    pub created_time_unix: i64,
    /// Set by a soft delete, or in advance by `delete_version_after`. The version reads
    /// as deleted once this moment has come.
    pub deletion_time_unix: Option<i64>,
    /// Set by an explicit delete (cleared by undelete): the version is deleted from then
    /// on whatever the reader's clock says. Vault decides by `deletion_time < now` alone,
    /// so a node whose clock is behind the deleting node's (a secondary, a promoted
    /// cluster) would serve a deleted version until its clock passed the deletion time.
    /// `deletion_time` stays the schedule of `delete_version_after`.
    #[serde(default)]
    pub deleted: bool,
    pub destroyed: bool,
}

impl VersionMetadata {
    /// Vault compares `deletion_time < now` with nanoseconds; with whole seconds a delete
    /// at `now` must already count, hence `<=`.
    pub fn is_deleted(&self, now_unix: i64) -> bool {
        self.deleted
            || self
                .deletion_time_unix
                .is_some_and(|deletion| deletion <= now_unix)
    }

    /// Soft-delete now (`DELETE data/…`, `delete/…`).
    pub fn delete_now(&mut self, now_unix: i64) {
        self.deletion_time_unix = Some(now_unix);
        self.deleted = true;
    }

    /// Neither deleted nor destroyed: its data may be returned.
    pub fn is_live(&self, now_unix: i64) -> bool {
        !self.destroyed && !self.is_deleted(now_unix)
    }

    /// Vault's per-version fields, as in data writes and metadata reads.
    pub fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert(
            "created_time".to_string(),
            Value::from(rfc3339(self.created_time_unix)),
        );
        fields.insert(
            "deletion_time".to_string(),
            Value::from(self.deletion_time_unix.map(rfc3339).unwrap_or_default()),
        );
        fields.insert("destroyed".to_string(), Value::from(self.destroyed));
        fields
    }
}

/// Everything known about one key. Versions below `oldest_version` have been trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMetadata {
    pub versions: BTreeMap<u64, VersionMetadata>,
    pub current_version: u64,
    pub oldest_version: u64,
    pub created_time_unix: i64,
    pub updated_time_unix: i64,
    /// Zero: use the engine's setting.
    pub max_versions: u32,
    pub cas_required: bool,
    /// Zero: use the engine's setting.
    pub delete_version_after_seconds: i64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

impl KeyMetadata {
    /// The response fields shared by data writes, patches and their 404s.
    pub fn version_fields(
        &self,
        version: u64,
        version_metadata: &VersionMetadata,
    ) -> Map<String, Value> {
        let mut fields = version_metadata.fields();
        fields.insert("version".to_string(), Value::from(version));
        fields.insert("custom_metadata".to_string(), self.custom_metadata_value());
        fields
    }

    pub fn custom_metadata_value(&self) -> Value {
        match &self.custom_metadata {
            None => Value::Null,
            Some(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::from(value.clone())))
                    .collect(),
            ),
        }
    }

    /// When a version written (or undeleted) at `now_unix` becomes deleted: the smaller
    /// non-zero `delete_version_after` of the engine and the key, unless the engine
    /// disabled it.
    pub fn deletion_deadline(&self, config: &Config, now_unix: i64) -> Option<i64> {
        if config.delete_version_after_disabled() {
            return None;
        }
        let after = [
            config.delete_version_after_seconds,
            self.delete_version_after_seconds,
        ]
        .into_iter()
        .filter(|seconds| *seconds > 0)
        .min()?;
        Some(now_unix.saturating_add(after))
    }

    /// Metadata for a key first written (or configured) at `now_unix`.
    pub fn new(now_unix: i64) -> Self {
        Self {
            created_time_unix: now_unix,
            updated_time_unix: now_unix,
            ..Self::default()
        }
    }

    /// Append a version created at `now_unix` and trim the oldest ones past the limit
    /// (the larger of the key's and the engine's `max_versions`, else 10), as Vault's
    /// `AddVersion` does. Returns the new version's number and metadata, and the
    /// trimmed numbers.
    pub fn add_version(
        &mut self,
        config: &Config,
        now_unix: i64,
    ) -> (u64, VersionMetadata, Vec<u64>) {
        let version = VersionMetadata {
            created_time_unix: now_unix,
            deletion_time_unix: self.deletion_deadline(config, now_unix),
            deleted: false,
            destroyed: false,
        };
        self.current_version += 1;
        self.versions.insert(self.current_version, version.clone());
        self.updated_time_unix = now_unix;
        let max_versions = match self.max_versions.max(config.max_versions) {
            0 => DEFAULT_MAX_VERSIONS,
            configured => configured,
        };
        let mut trimmed = Vec::new();
        // Saturating: a record is ours, but a damaged one must not panic the server.
        if self.current_version.saturating_sub(self.oldest_version) >= u64::from(max_versions) {
            let last_to_trim = self.current_version - u64::from(max_versions);
            for number in self.oldest_version..=last_to_trim {
                if self.versions.remove(&number).is_some() {
                    trimmed.push(number);
                }
            }
            self.oldest_version = last_to_trim + 1;
        }
        (self.current_version, version, trimmed)
    }
}

pub fn metadata_key(path: &str) -> String {
    format!("metadata/{path}")
}

/// Where version `number` of the key at `path` keeps its data.
pub fn version_key(path: &str, number: u64) -> String {
    let digest = hex::encode(Sha256::digest(path.as_bytes()));
    format!("versions/{digest}/{number}")
}

pub fn load(view: &View, path: &str) -> Result<Option<KeyMetadata>, LogicalError> {
    Ok(view.get_json(&metadata_key(path))?)
}

/// Whether `path` has metadata, without opening it (the existence check every write
/// pays to tell a create from an update).
pub fn exists(view: &View, path: &str) -> Result<bool, LogicalError> {
    Ok(view.contains(&metadata_key(path))?)
}

/// The write that stores `metadata` for `path`.
pub fn save(path: &str, metadata: &KeyMetadata) -> Write {
    Write::Put {
        key: metadata_key(path),
        value: serde_json::to_vec(metadata).expect("metadata always serializes"),
    }
}

pub fn list(view: &View, path: &str) -> Result<Option<Response>, LogicalError> {
    let folder = folder_path(path)?;
    Response::list(view.list(&metadata_key(&folder))?).map(Some)
}

pub fn read(view: &View, path: &str) -> Result<Option<Response>, LogicalError> {
    let Some(metadata) = load(view, path)? else {
        return Err(LogicalError::NotFound);
    };
    let versions: Map<String, Value> = metadata
        .versions
        .iter()
        .map(|(number, version)| (number.to_string(), Value::Object(version.fields())))
        .collect();
    let mut data = Map::new();
    data.insert("versions".to_string(), Value::Object(versions));
    data.insert(
        "current_version".to_string(),
        Value::from(metadata.current_version),
    );
    data.insert(
        "oldest_version".to_string(),
        Value::from(metadata.oldest_version),
    );
    data.insert(
        "created_time".to_string(),
        Value::from(rfc3339(metadata.created_time_unix)),
    );
    data.insert(
        "updated_time".to_string(),
        Value::from(rfc3339(metadata.updated_time_unix)),
    );
    data.insert(
        "max_versions".to_string(),
        Value::from(metadata.max_versions),
    );
    data.insert(
        "cas_required".to_string(),
        Value::from(metadata.cas_required),
    );
    data.insert(
        "delete_version_after".to_string(),
        Value::from(go_duration(metadata.delete_version_after_seconds)),
    );
    data.insert(
        "custom_metadata".to_string(),
        metadata.custom_metadata_value(),
    );
    Ok(Some(Response::data(data)))
}

/// The settings a metadata write or patch may carry, decoded and checked.
#[derive(Debug, Default)]
struct Settings {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    delete_version_after_seconds: Option<i64>,
    /// For a patch, `None` values remove a pair.
    custom_metadata: Option<BTreeMap<String, Option<String>>>,
}

impl Settings {
    fn decode(data: &Map<String, Value>, keep_nulls: bool) -> Result<Self, LogicalError> {
        let custom_metadata = match field_map(data, "custom_metadata")? {
            None => None,
            Some(raw) => Some(decode_custom_metadata(raw, keep_nulls)?),
        };
        Ok(Self {
            max_versions: max_versions_field(data)?,
            cas_required: field_bool(data, "cas_required")?,
            delete_version_after_seconds: field_duration(data, "delete_version_after")?,
            custom_metadata,
        })
    }

    fn cas_warning(&self, config: &Config) -> Option<&'static str> {
        (self.cas_required == Some(false) && config.cas_required)
            .then_some(CAS_REQUIRED_IGNORED_WARNING)
    }
}

/// Vault decodes each value weakly to a string; `null` means "remove" in a patch and an
/// empty (hence invalid) value in a write.
fn decode_custom_metadata(
    raw: &Map<String, Value>,
    keep_nulls: bool,
) -> Result<BTreeMap<String, Option<String>>, LogicalError> {
    let mut pairs = BTreeMap::new();
    for (key, value) in raw {
        let text = match value {
            Value::Null if keep_nulls => None,
            Value::Null => Some(String::new()),
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(if *flag { "1" } else { "0" }.to_string()),
            Value::Array(_) | Value::Object(_) => {
                return Err(LogicalError::BadRequest(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: value for key {key:?} must be a string"
                )));
            }
        };
        pairs.insert(key.clone(), text);
    }
    Ok(pairs)
}

/// Vault's checks, reported all at once in go-multierror's format.
fn validate_custom_metadata(pairs: &BTreeMap<String, String>) -> Result<(), LogicalError> {
    let mut errors = Vec::new();
    if pairs.len() > CUSTOM_METADATA_KEYS_MAX {
        errors.push(format!(
            "{CUSTOM_METADATA_ERROR_PREFIX}: payload must contain at most \
             {CUSTOM_METADATA_KEYS_MAX} keys, provided {}",
            pairs.len()
        ));
    } else {
        for (key, value) in pairs {
            if key.is_empty() || key.len() > CUSTOM_METADATA_KEY_BYTES_MAX {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: length of key {key:?} is {} but must be \
                     0 < len(key) <= {CUSTOM_METADATA_KEY_BYTES_MAX}",
                    key.len()
                ));
            }
            if value.is_empty() || value.len() > CUSTOM_METADATA_VALUE_BYTES_MAX {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: length of value for key {key:?} is {} but \
                     must be 0 < len(value) <= {CUSTOM_METADATA_VALUE_BYTES_MAX}",
                    value.len()
                ));
            }
            if key.chars().any(char::is_control) {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: key {key:?} ({key}) contains unprintable characters"
                ));
            }
            if value.chars().any(char::is_control) {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: value for key {key:?} contains unprintable characters"
                ));
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let noun = if errors.len() == 1 {
        "error occurred"
    } else {
        "errors occurred"
    };
    let listed: String = errors
        .iter()
        .map(|error| format!("\t* {error}\n"))
        .collect();
    Err(LogicalError::BadRequest(format!(
        "{} {noun}:\n{listed}\n",
        errors.len()
    )))
}

/// Vault stores custom metadata as a protobuf map, so an empty map reads back as `null`.
fn non_empty(pairs: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty()).then_some(pairs)
}

fn warning_response(warning: Option<&'static str>) -> Option<Response> {
    warning.map(|warning| Response::default().with_warning(warning))
}

/// POST: set the given settings, creating the key's metadata (with no versions) if
/// needed. A body with none of the settings changes nothing.
pub async fn write(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let data = &request.data;
    if ![
        "max_versions",
        "cas_required",
        "delete_version_after",
        "custom_metadata",
    ]
    .iter()
    .any(|field| has_field(data, field))
    {
        return Ok(None);
    }
    let settings = Settings::decode(data, false)?;
    let custom_metadata = settings.custom_metadata.as_ref().map(|pairs| {
        pairs
            .iter()
            .map(|(key, value)| (key.clone(), value.clone().unwrap_or_default()))
            .collect::<BTreeMap<_, _>>()
    });
    if let Some(pairs) = &custom_metadata {
        validate_custom_metadata(pairs)?;
    }
    let config = config::load(view)?;
    let warning = settings.cas_warning(&config);

    let mut metadata = load(view, path)?.unwrap_or_else(|| KeyMetadata::new(request.now_unix));
    if let Some(max_versions) = settings.max_versions {
        metadata.max_versions = max_versions;
    }
    if let Some(cas_required) = settings.cas_required {
        metadata.cas_required = cas_required;
    }
    if let Some(seconds) = settings.delete_version_after_seconds {
        metadata.delete_version_after_seconds = seconds;
    }
    if let Some(pairs) = custom_metadata {
        metadata.custom_metadata = non_empty(pairs);
    }
    view.commit(vec![save(path, &metadata)]).await?;
    Ok(warning_response(warning))
}

/// PATCH: merge the given settings into existing metadata; `custom_metadata` merges
/// pair by pair, a `null` value removing its pair.
pub async fn patch(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let settings = Settings::decode(&request.data, true)?;
    if let Some(pairs) = &settings.custom_metadata {
        let present = pairs
            .iter()
            .filter_map(|(key, value)| value.clone().map(|value| (key.clone(), value)))
            .collect();
        validate_custom_metadata(&present)?;
    }
    let config = config::load(view)?;
    let Some(mut metadata) = load(view, path)? else {
        return Err(LogicalError::NotFound);
    };
    let warning = settings.cas_warning(&config);
    if let Some(max_versions) = settings.max_versions {
        metadata.max_versions = max_versions;
    }
    if let Some(cas_required) = settings.cas_required {
        metadata.cas_required = cas_required;
    }
    if let Some(seconds) = settings.delete_version_after_seconds {
        metadata.delete_version_after_seconds = seconds;
    }
    if let Some(pairs) = settings.custom_metadata {
        let patch = Value::Object(
            pairs
                .into_iter()
                .map(|(key, value)| (key, value.map(Value::from).unwrap_or(Value::Null)))
                .collect(),
        );
        let mut merged = metadata.custom_metadata_value();
        merge_patch::apply(&mut merged, &patch);
        let merged: BTreeMap<String, String> = merged
            .as_object()
            .map(|members| {
                members
                    .iter()
                    .filter_map(|(key, value)| {
                        value.as_str().map(|text| (key.clone(), text.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The merged result must respect the same bounds as a fresh write.
        validate_custom_metadata(&merged)?;
        metadata.custom_metadata = non_empty(merged);
    }
    view.commit(vec![save(path, &metadata)]).await?;
    Ok(warning_response(warning))
}

/// DELETE: remove the key's metadata and every version's data, in one batch.
pub async fn delete(view: &View, path: &str) -> Result<Option<Response>, LogicalError> {
    let Some(metadata) = load(view, path)? else {
        return Ok(None);
    };
    let mut writes: Vec<Write> = metadata
        .versions
        .keys()
        .map(|number| Write::Delete {
            key: version_key(path, *number),
        })
        .collect();
    writes.push(Write::Delete {
        key: metadata_key(path),
    });
    view.commit(writes).await?;
    Ok(None)
}
