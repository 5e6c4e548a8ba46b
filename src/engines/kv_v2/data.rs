//! `data/:path`: read a version, write a new one (with check-and-set), merge-patch the
//! latest, or soft-delete the latest.

use serde_json::{Map, Value};

use crate::barrier::{View, Write};
use crate::engines::input::{field_int, field_map, weak_int};
use crate::engines::kv_v2::config::{self, Config};
use crate::engines::kv_v2::metadata::{self, KeyMetadata, version_key};
use crate::engines::merge_patch;
use crate::logical::{LogicalError, Request, Response};

const NO_DATA_PROVIDED: &str = "no data provided";

/// A 404 that still carries a body, as Vault sends for deleted or destroyed versions.
pub(crate) fn not_found_with(data: Map<String, Value>) -> Response {
    Response {
        data: Some(data),
        status: Some(404),
        ..Response::default()
    }
}

/// The `?version=` a read names, decoded before anything is loaded (Vault checks field
/// types first).
pub(crate) fn version_parameter(request: &Request) -> Result<Option<i64>, LogicalError> {
    field_int(&request.data, "version")
}

/// The version a read names: `?version=N` when positive, else the current one.
pub(crate) fn requested_version(parameter: Option<i64>, metadata: &KeyMetadata) -> u64 {
    match parameter {
        Some(number) if number > 0 => number as u64,
        _ => metadata.current_version,
    }
}

/// Load the stored data object of one version.
pub(crate) fn load_version(
    view: &View,
    path: &str,
    number: u64,
) -> Result<Map<String, Value>, LogicalError> {
    view.get_json(&version_key(path, number))?
        .ok_or_else(|| LogicalError::Internal("could not find version data".to_string()))
}

/// The requested version of a secret, as `data/` and `subkeys/` reads see it.
pub enum VersionRead {
    /// A live version: the response body so far (its `metadata` block) and its data.
    Live {
        body: Map<String, Value>,
        data: Map<String, Value>,
    },
    /// A deleted or destroyed version: Vault's 404 with the metadata and `field: null`.
    Gone(Box<Response>),
}

/// Resolve `?version=` on `path` for a read whose payload goes in `field`.
pub fn read_requested_version(
    view: &View,
    path: &str,
    request: &Request,
    field: &str,
) -> Result<VersionRead, LogicalError> {
    let parameter = version_parameter(request)?;
    let Some(metadata) = metadata::load(view, path)? else {
        return Err(LogicalError::NotFound);
    };
    let number = requested_version(parameter, &metadata);
    let Some(version) = metadata.versions.get(&number) else {
        return Err(LogicalError::NotFound);
    };
    let mut version_metadata = version.fields();
    version_metadata.insert("version".to_string(), Value::from(number));
    version_metadata.insert(
        "custom_metadata".to_string(),
        metadata.custom_metadata_value(),
    );
    let mut body = Map::new();
    body.insert("metadata".to_string(), Value::Object(version_metadata));
    if !version.is_live(request.now_unix) {
        body.insert(field.to_string(), Value::Null);
        return Ok(VersionRead::Gone(Box::new(not_found_with(body))));
    }
    let data = load_version(view, path, number)?;
    Ok(VersionRead::Live { body, data })
}

pub fn read(view: &View, path: &str, request: &Request) -> Result<Option<Response>, LogicalError> {
    match read_requested_version(view, path, request, "data")? {
        VersionRead::Gone(response) => Ok(Some(*response)),
        VersionRead::Live { mut body, data } => {
            body.insert("data".to_string(), Value::Object(data));
            Ok(Some(Response::data(body)))
        }
    }
}

fn check_and_set(
    request: &Request,
    config: &Config,
    metadata: &KeyMetadata,
) -> Result<(), LogicalError> {
    let cas = match field_map(&request.data, "options") {
        Ok(Some(options)) => options.get("cas"),
        Ok(None) => None,
        Err(_) => {
            return Err(LogicalError::BadRequest(
                "error converting input for field \"options\": expected a map".to_string(),
            ));
        }
    };
    match cas {
        Some(raw) => {
            let cas = weak_int(raw).ok_or_else(|| {
                LogicalError::BadRequest("error parsing check-and-set parameter".to_string())
            })?;
            if u64::try_from(cas).ok() != Some(metadata.current_version) {
                return Err(LogicalError::BadRequest(
                    "check-and-set parameter did not match the current version".to_string(),
                ));
            }
        }
        None if config.cas_required || metadata.cas_required => {
            return Err(LogicalError::BadRequest(
                "check-and-set parameter required for this call".to_string(),
            ));
        }
        None => {}
    }
    Ok(())
}

/// The `data` member a write or patch must carry.
fn data_field(request: &Request) -> Result<&Map<String, Value>, LogicalError> {
    match field_map(&request.data, "data")? {
        Some(data) => Ok(data),
        None => Err(LogicalError::BadRequest(NO_DATA_PROVIDED.to_string())),
    }
}

/// Store `data` as the key's next version, trimming past `max_versions`, in one batch,
/// and answer with the new version's fields.
async fn store_new_version(
    view: &View,
    path: &str,
    mut metadata: KeyMetadata,
    config: &Config,
    data: &Map<String, Value>,
    now_unix: i64,
) -> Result<Option<Response>, LogicalError> {
    let (number, version, trimmed) = metadata.add_version(config, now_unix);
    let value = serde_json::to_vec(data)
        .map_err(|error| LogicalError::Internal(format!("json encoding failed: {error}")))?;
    let mut writes = vec![
        Write::Put {
            key: version_key(path, number),
            value,
        },
        metadata::save(path, &metadata),
    ];
    writes.extend(trimmed.into_iter().map(|old| Write::Delete {
        key: version_key(path, old),
    }));
    view.commit(writes).await?;
    Ok(Some(Response::data(
        metadata.version_fields(number, &version),
    )))
}

pub async fn write(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let data = data_field(request)?;
    let config = config::load(view)?;
    let metadata =
        metadata::load(view, path)?.unwrap_or_else(|| KeyMetadata::new(request.now_unix));
    check_and_set(request, &config, &metadata)?;
    store_new_version(view, path, metadata, &config, data, request.now_unix).await
}

/// PATCH: a JSON merge patch of `data` onto the latest version, which must be live.
pub async fn patch(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let patch = data_field(request)?;
    let Some(metadata) = metadata::load(view, path)? else {
        return Err(LogicalError::NotFound);
    };
    let config = config::load(view)?;
    check_and_set(request, &config, &metadata)?;
    let current = metadata.current_version;
    let Some(version) = metadata.versions.get(&current) else {
        return Err(LogicalError::NotFound);
    };
    if !version.is_live(request.now_unix) {
        return Ok(Some(not_found_with(
            metadata.version_fields(current, version),
        )));
    }
    let mut merged = Value::Object(load_version(view, path, current)?);
    merge_patch::apply(&mut merged, &Value::Object(patch.clone()));
    let Value::Object(merged) = merged else {
        return Err(LogicalError::Internal(
            "merge patch of an object must stay an object".to_string(),
        ));
    };
    store_new_version(view, path, metadata, &config, &merged, request.now_unix).await
}

/// DELETE: soft-delete the latest version (a no-op if it is already gone).
pub async fn delete_latest(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    // Decided where writes are made: a secondary (or a demoted primary) that does not
    // yet hold the version to delete would otherwise answer 204 and delete nothing,
    // losing an acknowledged delete (found by repl-failover, seed 359856420).
    view.ensure_writable(&metadata::metadata_key(path))?;
    let Some(mut metadata) = metadata::load(view, path)? else {
        return Ok(None);
    };
    let current = metadata.current_version;
    let Some(version) = metadata.versions.get_mut(&current) else {
        return Ok(None);
    };
    if !version.is_live(request.now_unix) {
        return Ok(None);
    }
    version.delete_now(request.now_unix);
    view.commit(vec![metadata::save(path, &metadata)]).await?;
    Ok(None)
}
