//! `config`: engine-wide settings every key falls back to.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::barrier::{View, Write};
use crate::engines::input::{field_bool, field_int, field_signed_duration, has_field};
use crate::engines::kv_v2::metadata::KEY_VERSIONS_MAX;
use crate::engines::time_format::go_duration;
use crate::logical::{LogicalError, Request, Response};

const CONFIG_KEY: &str = "config";

/// Versions kept per key when neither the key nor the engine says otherwise.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// The stored engine configuration. Zero values mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub max_versions: u32,
    pub cas_required: bool,
    /// Zero: not set. Negative: `delete_version_after` is disabled for every key (Vault
    /// stores `-1s`). Positive: versions are deleted this long after they are written.
    pub delete_version_after_seconds: i64,
}

impl Config {
    pub fn delete_version_after_disabled(&self) -> bool {
        self.delete_version_after_seconds < 0
    }
}

pub fn load(view: &View) -> Result<Config, LogicalError> {
    Ok(view.get_json(CONFIG_KEY)?.unwrap_or_default())
}

pub fn read(view: &View) -> Result<Option<Response>, LogicalError> {
    let config = load(view)?;
    let mut data = Map::new();
    data.insert("max_versions".to_string(), Value::from(config.max_versions));
    data.insert("cas_required".to_string(), Value::from(config.cas_required));
    data.insert(
        "delete_version_after".to_string(),
        Value::from(go_duration(config.delete_version_after_seconds)),
    );
    Ok(Some(Response::data(data)))
}

/// Decode a `max_versions` field, bounded so a key's history stays one storage batch.
pub fn max_versions_field(data: &Map<String, Value>) -> Result<Option<u32>, LogicalError> {
    match field_int(data, "max_versions")? {
        None => Ok(None),
        Some(count) if (0..=i64::from(KEY_VERSIONS_MAX)).contains(&count) => Ok(Some(count as u32)),
        Some(count) => Err(LogicalError::BadRequest(format!(
            "max_versions must be between 0 and {KEY_VERSIONS_MAX}, got {count}"
        ))),
    }
}

pub async fn write(view: &View, request: &Request) -> Result<Option<Response>, LogicalError> {
    let data = &request.data;
    if !["max_versions", "cas_required", "delete_version_after"]
        .iter()
        .any(|field| has_field(data, field))
    {
        return Ok(None);
    }
    let max_versions = max_versions_field(data)?;
    let cas_required = field_bool(data, "cas_required")?;
    let delete_version_after = field_signed_duration(data, "delete_version_after")?;

    let mut config = load(view)?;
    if let Some(max_versions) = max_versions {
        config.max_versions = max_versions;
    }
    if let Some(cas_required) = cas_required {
        config.cas_required = cas_required;
    }
    if let Some(seconds) = delete_version_after {
        // Any negative duration disables; Vault records it as exactly -1s.
        config.delete_version_after_seconds = seconds.max(-1);
    }
    let value = serde_json::to_vec(&config).expect("config always serializes");
    view.commit(vec![Write::Put {
        key: CONFIG_KEY.to_string(),
        value,
    }])
    .await?;
    Ok(None)
}
