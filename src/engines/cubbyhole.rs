//! The cubbyhole: KV version 1 semantics, but every token sees only its own entries.
//!
//! Entries of a token live below `<hex SHA-256 of the token>/` in the mount's view, so
//! the token itself never appears in a storage key. When the token is revoked the token
//! store calls [`destroy_for_token`], which removes that whole sub-tree.

use sha2::{Digest, Sha256};

use crate::barrier::{View, Write};
use crate::engines::input::entry_path;
use crate::engines::kv_v1::{list_folder, read_entry, write_entry};
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::storage::BATCH_OPS_MAX;

/// The storage prefix of one token's cubbyhole.
fn token_prefix(token: &str) -> String {
    format!("{}/", hex::encode(Sha256::digest(token.as_bytes())))
}

/// A request without a token never gets this far in Vault (the router answers 403);
/// refuse it the same way rather than share one anonymous cubbyhole.
fn prefix_of(request: &Request) -> Result<String, LogicalError> {
    match request.client_token.as_deref() {
        Some(token) if !token.is_empty() => Ok(token_prefix(token)),
        _ => Err(LogicalError::PermissionDenied),
    }
}

pub async fn handle(view: &View, request: &Request) -> Result<Option<Response>, LogicalError> {
    let prefix = prefix_of(request)?;
    match request.operation {
        Operation::Read => {
            let key = entry_path(&request.path)?;
            match read_entry(view, &format!("{prefix}{key}"))? {
                Some(data) => Ok(Some(Response::data(data))),
                None => Err(LogicalError::NotFound),
            }
        }
        Operation::List => Response::list(list_folder(view, &prefix, &request.path)?).map(Some),
        Operation::Create | Operation::Update => {
            let key = entry_path(&request.path)?;
            let write = write_entry(format!("{prefix}{key}"), &request.data)?;
            view.commit(vec![write]).await?;
            Ok(None)
        }
        Operation::Delete => {
            let key = entry_path(&request.path)?;
            view.commit(vec![Write::Delete {
                key: format!("{prefix}{key}"),
            }])
            .await?;
            Ok(None)
        }
        Operation::Patch => Err(LogicalError::UnsupportedOperation),
    }
}

pub fn exists(view: &View, request: &Request) -> Result<bool, LogicalError> {
    let prefix = prefix_of(request)?;
    let key = entry_path(&request.path)?;
    Ok(view.contains(&format!("{prefix}{key}"))?)
}

/// Remove every entry of `token`'s cubbyhole (token revocation). Idempotent: a cubbyhole
/// larger than one storage batch is removed in several batches, and a retry after a
/// failure finishes the job.
pub async fn destroy_for_token(view: &View, token: &str) -> Result<(), LogicalError> {
    if token.is_empty() {
        return Err(LogicalError::Internal(
            "cubbyhole: client token empty during revocation".to_string(),
        ));
    }
    let keys = view.list_recursive(&token_prefix(token))?;
    for chunk in keys.chunks(BATCH_OPS_MAX) {
        let deletes = chunk
            .iter()
            .map(|key| Write::Delete { key: key.clone() })
            .collect();
        view.commit_now(deletes).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::test_support::{fixture, request};
    use serde_json::json;

    fn as_token(mut request: Request, token: &str) -> Request {
        request.client_token = Some(token.to_string());
        request
    }

    #[tokio::test]
    async fn each_token_sees_only_its_own_cubbyhole() {
        let fixture = fixture();
        let view = &fixture.view;
        let alice = "hvs.alice-token";
        let bob = "hvs.bob-token";

        // Alice stores two entries; Bob stores one at the same path.
        for (token, path, secret) in [
            (alice, "notes/a", "alice-secret"),
            (alice, "b", "x"),
            (bob, "notes/a", "bob-secret"),
        ] {
            let put = as_token(
                request(Operation::Update, path, json!({"value": secret}), 1),
                token,
            );
            assert!(!exists(view, &put).unwrap());
            assert_eq!(handle(view, &put).await.unwrap(), None);
            assert!(exists(view, &put).unwrap());
        }

        // Each reads back their own value at the shared path, with no lease.
        for (token, expected) in [(alice, "alice-secret"), (bob, "bob-secret")] {
            let read = handle(
                view,
                &as_token(request(Operation::Read, "notes/a", json!({}), 2), token),
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(read.data.unwrap()["value"], expected);
            assert_eq!(read.lease, None);
        }

        // Lists are per token too.
        let alice_root = handle(
            view,
            &as_token(request(Operation::List, "", json!({}), 3), alice),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(alice_root.data.unwrap()["keys"], json!(["b", "notes/"]));
        let bob_root = handle(
            view,
            &as_token(request(Operation::List, "", json!({}), 3), bob),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(bob_root.data.unwrap()["keys"], json!(["notes/"]));

        // Neither the tokens nor the values appear in storage.
        for needle in [alice, bob, "alice-secret", "bob-secret"] {
            assert!(
                !fixture.storage_contains(needle),
                "{needle} leaked to storage"
            );
        }

        // Revoking Alice removes her cubbyhole and leaves Bob's alone.
        destroy_for_token(view, alice).await.unwrap();
        let gone = handle(
            view,
            &as_token(request(Operation::Read, "notes/a", json!({}), 4), alice),
        )
        .await;
        assert_eq!(gone, Err(LogicalError::NotFound));
        let empty = handle(
            view,
            &as_token(request(Operation::List, "", json!({}), 4), alice),
        )
        .await;
        assert_eq!(empty, Err(LogicalError::NotFound));
        let kept = handle(
            view,
            &as_token(request(Operation::Read, "notes/a", json!({}), 4), bob),
        )
        .await
        .unwrap();
        assert!(kept.is_some());
        // Revoking again is harmless.
        destroy_for_token(view, alice).await.unwrap();
    }

    #[tokio::test]
    async fn no_token_no_data_and_traversal_are_refused() {
        let fixture = fixture();
        let view = &fixture.view;
        let anonymous = request(Operation::Update, "a", json!({"v": 1}), 1);
        assert_eq!(
            handle(view, &anonymous).await,
            Err(LogicalError::PermissionDenied)
        );
        assert_eq!(
            exists(view, &anonymous),
            Err(LogicalError::PermissionDenied)
        );
        let empty = as_token(request(Operation::Update, "a", json!({}), 1), "t");
        assert_eq!(
            handle(view, &empty).await,
            Err(LogicalError::BadRequest("missing data fields".to_string()))
        );
        let escape = as_token(request(Operation::Update, "../a", json!({"v": 1}), 1), "t");
        assert!(matches!(
            handle(view, &escape).await,
            Err(LogicalError::BadRequest(_))
        ));
        let escape_list = as_token(request(Operation::List, "../", json!({}), 1), "t");
        assert!(matches!(
            handle(view, &escape_list).await,
            Err(LogicalError::BadRequest(_))
        ));
        assert!(fixture.backend.dump().is_empty());
    }
}
