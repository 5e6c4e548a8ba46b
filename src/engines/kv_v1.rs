//! KV version 1 (Vault's "passthrough" backend): each path holds one JSON object,
//! stored whole and unversioned at the same relative key below the mount's view.
//!
//! A `ttl` (or `lease`) member of the stored object is a hint to readers: it becomes
//! the response's `lease_duration`, with no lease id and nothing to revoke.

use serde_json::{Map, Value};

use crate::barrier::{View, Write};
use crate::engines::input::{entry_path, folder_path};
use crate::logical::{Lease, LogicalError, Operation, Request, Response, parse_duration_seconds};

/// Vault's system default lease TTL (768h), returned as `lease_duration` when an entry
/// carries no usable `ttl`. A mount tuned to another default is the router's to apply.
pub const DEFAULT_LEASE_TTL_SECONDS: i64 = 768 * 3600;

pub async fn handle(view: &View, request: &Request) -> Result<Option<Response>, LogicalError> {
    match request.operation {
        Operation::Read => read(view, &request.path),
        Operation::List => list(view, &request.path),
        Operation::Create | Operation::Update => {
            write(view, &request.path, &request.data).await?;
            Ok(None)
        }
        Operation::Delete => {
            let key = entry_path(&request.path)?;
            view.commit(vec![Write::Delete {
                key: key.to_string(),
            }])
            .await?;
            Ok(None)
        }
        Operation::Patch => Err(LogicalError::UnsupportedOperation),
    }
}

pub fn exists(view: &View, request: &Request) -> Result<bool, LogicalError> {
    let key = entry_path(&request.path)?;
    Ok(view.contains(key)?)
}

/// Read the object stored at `key` and add the TTL hint; shared with the cubbyhole.
pub(crate) fn read_entry(
    view: &View,
    key: &str,
) -> Result<Option<Map<String, Value>>, LogicalError> {
    let Some(bytes) = view.get(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|_| {
        LogicalError::Internal(format!("stored entry at {key:?} is not a JSON object"))
    })
}

fn read(view: &View, path: &str) -> Result<Option<Response>, LogicalError> {
    let key = entry_path(path)?;
    let Some(data) = read_entry(view, key)? else {
        return Err(LogicalError::NotFound);
    };
    // Vault looks for `ttl` first, then `lease`; an unparsable hint falls back to the
    // default rather than failing the read.
    let hint = data.get("ttl").or_else(|| data.get("lease"));
    let lease_duration = hint
        .and_then(|value| parse_duration_seconds(value).ok())
        .unwrap_or(DEFAULT_LEASE_TTL_SECONDS);
    let mut response = Response::data(data);
    response.lease = Some(Lease {
        lease_id: String::new(),
        lease_duration,
        renewable: false,
    });
    Ok(Some(response))
}

/// List the immediate children below a folder; shared with the cubbyhole.
pub(crate) fn list_folder(
    view: &View,
    base: &str,
    path: &str,
) -> Result<Vec<String>, LogicalError> {
    let folder = folder_path(path)?;
    Ok(view.list(&format!("{base}{folder}"))?)
}

fn list(view: &View, path: &str) -> Result<Option<Response>, LogicalError> {
    Response::list(list_folder(view, "", path)?).map(Some)
}

/// Store the request body whole at `key`; shared with the cubbyhole.
pub(crate) fn write_entry(key: String, data: &Map<String, Value>) -> Result<Write, LogicalError> {
    if data.is_empty() {
        return Err(LogicalError::BadRequest("missing data fields".to_string()));
    }
    let value = serde_json::to_vec(data)
        .map_err(|error| LogicalError::Internal(format!("json encoding failed: {error}")))?;
    Ok(Write::Put { key, value })
}

async fn write(view: &View, path: &str, data: &Map<String, Value>) -> Result<(), LogicalError> {
    let key = entry_path(path)?;
    view.commit(vec![write_entry(key.to_string(), data)?])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::test_support::{fixture, request};
    use serde_json::json;

    #[tokio::test]
    async fn write_read_list_delete_story() {
        let fixture = fixture();
        let view = &fixture.view;

        // A write stores the whole body; the create/update question sees it afterwards.
        let put = request(
            Operation::Create,
            "team/db",
            json!({"password": "hunter2", "ttl": "1h"}),
            100,
        );
        assert!(!exists(view, &put).unwrap());
        assert_eq!(handle(view, &put).await.unwrap(), None);
        assert!(exists(view, &put).unwrap());

        // A read returns it with the `ttl` hint as the lease duration and no lease id.
        let read = handle(view, &request(Operation::Read, "team/db", json!({}), 101))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.data.unwrap()["password"], "hunter2");
        let lease = read.lease.unwrap();
        assert_eq!(
            (
                lease.lease_id.as_str(),
                lease.lease_duration,
                lease.renewable
            ),
            ("", 3600, false)
        );

        // Without a hint the system default applies; `lease` is honoured like `ttl`.
        for (path, body, expected) in [
            ("plain", json!({"a": 1}), DEFAULT_LEASE_TTL_SECONDS),
            ("leased", json!({"lease": 30}), 30),
            ("garbled", json!({"ttl": "soon"}), DEFAULT_LEASE_TTL_SECONDS),
        ] {
            handle(view, &request(Operation::Update, path, body, 102))
                .await
                .unwrap();
            let read = handle(view, &request(Operation::Read, path, json!({}), 103))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(read.lease.unwrap().lease_duration, expected, "{path}");
        }

        // Lists show immediate children, folders with a trailing slash.
        handle(
            view,
            &request(Operation::Update, "team/app/key", json!({"k": "v"}), 104),
        )
        .await
        .unwrap();
        let root = handle(view, &request(Operation::List, "", json!({}), 105))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            root.data.unwrap()["keys"],
            json!(["garbled", "leased", "plain", "team/"])
        );
        for folder in ["team", "team/"] {
            let listed = handle(view, &request(Operation::List, folder, json!({}), 105))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(listed.data.unwrap()["keys"], json!(["app/", "db"]));
        }

        // Delete removes the entry; reads and an empty folder's list are then 404.
        handle(view, &request(Operation::Delete, "team/db", json!({}), 106))
            .await
            .unwrap();
        handle(
            view,
            &request(Operation::Delete, "team/app/key", json!({}), 106),
        )
        .await
        .unwrap();
        let gone = handle(view, &request(Operation::Read, "team/db", json!({}), 107)).await;
        assert_eq!(gone, Err(LogicalError::NotFound));
        let empty = handle(view, &request(Operation::List, "team/", json!({}), 107)).await;
        assert_eq!(empty, Err(LogicalError::NotFound));
        // Deleting what is not there is still a 204.
        assert_eq!(
            handle(view, &request(Operation::Delete, "nope", json!({}), 108)).await,
            Ok(None)
        );

        // Nothing was stored in plaintext.
        assert!(!fixture.storage_contains("hunter2"));
    }

    #[tokio::test]
    async fn bad_input_is_refused_with_vaults_messages() {
        let fixture = fixture();
        let view = &fixture.view;
        let empty = handle(view, &request(Operation::Update, "x", json!({}), 1)).await;
        assert_eq!(
            empty,
            Err(LogicalError::BadRequest("missing data fields".to_string()))
        );
        let no_path = handle(view, &request(Operation::Update, "", json!({"a": 1}), 1)).await;
        assert_eq!(
            no_path,
            Err(LogicalError::BadRequest("missing path".to_string()))
        );
        for traversal in ["../other-mount/x", "a/../../b", "a//b", "a/"] {
            let refused = handle(
                view,
                &request(Operation::Update, traversal, json!({"a": 1}), 1),
            )
            .await;
            assert!(
                matches!(refused, Err(LogicalError::BadRequest(_))),
                "{traversal}"
            );
        }
        let patch = handle(view, &request(Operation::Patch, "x", json!({"a": 1}), 1)).await;
        assert_eq!(patch, Err(LogicalError::UnsupportedOperation));
        assert!(fixture.backend.dump().is_empty());
    }
}
