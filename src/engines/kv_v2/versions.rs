//! `delete/:path`, `undelete/:path`, `destroy/:path`: act on listed versions of a key.
//! Versions that do not exist (or are already destroyed) are skipped, as in Vault.

use crate::barrier::{View, Write};
use crate::engines::input::field_versions;
use crate::engines::kv_v2::config;
use crate::engines::kv_v2::metadata::{self, version_key};
use crate::logical::{LogicalError, Request, Response};

/// The positive version numbers named by the request, or Vault's error when none are.
fn requested_versions(request: &Request, missing_message: &str) -> Result<Vec<u64>, LogicalError> {
    let versions = field_versions(&request.data, "versions")?;
    if versions.is_empty() {
        return Err(LogicalError::BadRequest(missing_message.to_string()));
    }
    // Non-positive numbers can name no version (Vault's unsigned cast misses too).
    Ok(versions
        .into_iter()
        .filter_map(|number| u64::try_from(number).ok())
        .filter(|number| *number > 0)
        .collect())
}

/// Soft-delete the listed versions.
pub async fn delete(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let numbers = requested_versions(request, "No version number provided")?;
    let Some(mut metadata) = metadata::load(view, path)? else {
        return Ok(None);
    };
    for number in numbers {
        if let Some(version) = metadata.versions.get_mut(&number)
            && version.is_live(request.now_unix)
        {
            version.delete_now(request.now_unix);
        }
    }
    view.commit(vec![metadata::save(path, &metadata)]).await?;
    Ok(None)
}

/// Restore the listed soft-deleted versions (destroyed ones stay destroyed). A restored
/// version gets a fresh `delete_version_after` deadline, if one applies.
pub async fn undelete(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let numbers = requested_versions(request, "No version number provided")?;
    let config = config::load(view)?;
    let Some(mut metadata) = metadata::load(view, path)? else {
        return Ok(None);
    };
    let deadline = metadata.deletion_deadline(&config, request.now_unix);
    for number in numbers {
        if let Some(version) = metadata.versions.get_mut(&number)
            && !version.destroyed
        {
            version.deletion_time_unix = deadline;
            version.deleted = false;
        }
    }
    view.commit(vec![metadata::save(path, &metadata)]).await?;
    Ok(None)
}

/// Permanently remove the listed versions' data; their metadata stays, marked destroyed.
pub async fn destroy(
    view: &View,
    path: &str,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let numbers = requested_versions(request, "no version number provided")?;
    let Some(mut metadata) = metadata::load(view, path)? else {
        return Ok(None);
    };
    let mut writes = Vec::new();
    for number in numbers {
        if let Some(version) = metadata.versions.get_mut(&number)
            && !version.destroyed
        {
            version.destroyed = true;
            writes.push(Write::Delete {
                key: version_key(path, number),
            });
        }
    }
    writes.push(metadata::save(path, &metadata));
    view.commit(writes).await?;
    Ok(None)
}
