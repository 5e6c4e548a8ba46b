//! Vault's policy endpoints, relative to `sys/`:
//!
//! | path | operations | answer |
//! |---|---|---|
//! | `policy` | read, list | `{"policies": [...], "keys": [...]}` |
//! | `policy/<name>` | read / create, update / delete | `{"name", "rules"}` / 204 / 204 |
//! | `policies/acl` | list | `{"keys": [...]}` |
//! | `policies/acl/<name>` | read / create, update / delete | `{"name", "policy"}` / 204 / 204 |
//!
//! plus [`capabilities_response`] for `sys/capabilities` and `sys/capabilities-self`,
//! which the router calls with the ACL of the token in question.

use serde_json::{Map, Value};

use super::store::{PolicyStore, PolicyStoreError};
use crate::acl::{Acl, ROOT_POLICY_NAME};
use crate::logical::{LogicalError, Operation, Request, Response, field_str};

/// The most paths one `sys/capabilities` request may ask about.
pub const CAPABILITY_PATHS_MAX: usize = 1024;

impl From<PolicyStoreError> for LogicalError {
    fn from(error: PolicyStoreError) -> Self {
        match error {
            PolicyStoreError::Parse(_)
            | PolicyStoreError::CannotUpdate(_)
            | PolicyStoreError::CannotDelete(_)
            | PolicyStoreError::InvalidName(_)
            | PolicyStoreError::TooManyPolicies(_) => LogicalError::BadRequest(error.to_string()),
            PolicyStoreError::Corrupt { .. } => LogicalError::Internal(error.to_string()),
            PolicyStoreError::Barrier(error) => error.into(),
        }
    }
}

/// Which API a request came through; they differ only in field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `sys/policy`: the old API, which answers with `rules` and also takes it.
    Legacy,
    /// `sys/policies/acl`.
    Acl,
}

/// Handle a request whose path (relative to `sys/`) is a policy path. `Ok(None)` means
/// the path is not one of ours, so the `sys/` router can try its other handlers.
pub async fn handle(
    store: &PolicyStore,
    request: &Request,
) -> Result<Option<Response>, LogicalError> {
    let path = request.path.as_str();
    let (api, name) = if let Some(rest) = path.strip_prefix("policies/acl") {
        (Api::Acl, rest)
    } else if let Some(rest) = path.strip_prefix("policy") {
        (Api::Legacy, rest)
    } else {
        return Ok(None);
    };
    let response = match name {
        "" | "/" => list(store, api, request.operation)?,
        _ => match name.strip_prefix('/') {
            Some(name) => one(store, api, name, request).await?,
            // `policyfoo`, `policies/aclx`: not ours.
            None => return Ok(None),
        },
    };
    Ok(Some(response))
}

fn list(store: &PolicyStore, api: Api, operation: Operation) -> Result<Response, LogicalError> {
    let allowed = match api {
        Api::Legacy => matches!(operation, Operation::Read | Operation::List),
        Api::Acl => operation == Operation::List,
    };
    if !allowed {
        return Err(LogicalError::UnsupportedOperation);
    }
    let mut names = store.list()?;
    names.push(ROOT_POLICY_NAME.to_string());
    names.sort();
    names.dedup();
    let keys = Value::from(names);
    let mut data = Map::new();
    if api == Api::Legacy {
        data.insert("policies".to_string(), keys.clone());
    }
    data.insert("keys".to_string(), keys);
    Ok(Response::data(data))
}

async fn one(
    store: &PolicyStore,
    api: Api,
    name: &str,
    request: &Request,
) -> Result<Response, LogicalError> {
    match request.operation {
        Operation::Read => {
            let Some(policy) = store.get(name)? else {
                return Err(LogicalError::NotFound);
            };
            let text_field = match api {
                Api::Legacy => "rules",
                Api::Acl => "policy",
            };
            let mut data = Map::new();
            data.insert("name".to_string(), Value::from(policy.name.clone()));
            data.insert(text_field.to_string(), Value::from(policy.raw.clone()));
            Ok(Response::data(data))
        }
        Operation::Create | Operation::Update => {
            let mut warnings = Vec::new();
            let mut text = field_str(&request.data, "policy")?.unwrap_or_default();
            if text.is_empty() && api == Api::Legacy {
                text = field_str(&request.data, "rules")?.unwrap_or_default();
                if !text.is_empty() {
                    warnings.push("'rules' is deprecated, please use 'policy' instead".to_string());
                }
            }
            if name.trim().is_empty() {
                return Err(LogicalError::BadRequest(
                    "policy name must be provided in the URL".to_string(),
                ));
            }
            if text.is_empty() {
                return Err(LogicalError::BadRequest(
                    "'policy' parameter not supplied or empty".to_string(),
                ));
            }
            store.set(name, text).await?;
            Ok(Response {
                warnings,
                ..Response::default()
            })
        }
        Operation::Delete => {
            store.delete(name).await?;
            Ok(Response::default())
        }
        Operation::List | Operation::Patch => Err(LogicalError::UnsupportedOperation),
    }
}

/// The body of `sys/capabilities-self` and `sys/capabilities`: the `paths` field (a list
/// or a comma-separated string; the deprecated `path` also works) answered with `acl`.
pub fn capabilities_response(
    acl: &Acl,
    data: &Map<String, Value>,
) -> Result<Response, LogicalError> {
    let mut paths = string_list(data, "paths")?;
    if paths.is_empty() {
        paths = string_list(data, "path")?;
    }
    if paths.is_empty() {
        return Err(LogicalError::BadRequest(
            "paths must be supplied".to_string(),
        ));
    }
    if paths.len() > CAPABILITY_PATHS_MAX {
        return Err(LogicalError::BadRequest(format!(
            "at most {CAPABILITY_PATHS_MAX} paths may be checked at once"
        )));
    }
    Ok(Response::data(capabilities_for_paths(acl, &paths)))
}

/// `{"<path>": [capabilities], ...}`, plus `"capabilities"` when exactly one path was
/// asked about (Vault keeps that key for old clients).
pub fn capabilities_for_paths(acl: &Acl, paths: &[String]) -> Map<String, Value> {
    let mut data = Map::new();
    for path in paths {
        data.insert(path.clone(), Value::from(acl.capabilities(path)));
    }
    if let [only] = paths {
        data.insert(
            "capabilities".to_string(),
            Value::from(acl.capabilities(only)),
        );
    }
    data
}

/// Vault's comma-string-slice fields: a JSON list of strings or `"a,b"`.
fn string_list(data: &Map<String, Value>, field: &str) -> Result<Vec<String>, LogicalError> {
    let invalid = || {
        LogicalError::BadRequest(format!(
            "error converting input for field \"{field}\": expected a list of strings"
        ))
    };
    match data.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::{Barrier, Keyring};
    use crate::env::SharedRng;
    use crate::storage::MemoryBackend;
    use serde_json::json;
    use std::sync::Arc;

    async fn store() -> PolicyStore {
        let rng = SharedRng::from_u64(1);
        let barrier = Barrier::new(Arc::new(MemoryBackend::new()), rng.clone());
        barrier.unseal_with(Keyring::generate(&rng, 0));
        let store = PolicyStore::from_barrier(&barrier);
        store.ensure_builtin_policies().await.unwrap();
        store
    }

    async fn call(
        store: &PolicyStore,
        operation: Operation,
        path: &str,
        body: Value,
    ) -> Result<Option<Response>, LogicalError> {
        let data = body.as_object().cloned().unwrap_or_default();
        handle(store, &Request::new(operation, path, data, 0)).await
    }

    fn data_of(response: Option<Response>) -> Value {
        Value::Object(response.unwrap().data.unwrap())
    }

    const SUPERUSER: &str = "path \"*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"]\n}\n";

    #[tokio::test]
    async fn the_tutorial_policy_lifecycle() {
        let store = store().await;

        // Phase 1: a fresh cluster lists default and root.
        let listed = call(&store, Operation::Read, "policy", json!({}))
            .await
            .unwrap();
        assert_eq!(
            data_of(listed),
            json!({"policies": ["default", "root"], "keys": ["default", "root"]})
        );

        // Phase 2: `vault policy write superuser` (the ACL API), then reads on both APIs.
        let written = call(
            &store,
            Operation::Update,
            "policies/acl/superuser",
            json!({"policy": SUPERUSER}),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(written, Response::default(), "204");
        let acl_read = call(&store, Operation::Read, "policies/acl/superuser", json!({}))
            .await
            .unwrap();
        assert_eq!(
            data_of(acl_read),
            json!({"name": "superuser", "policy": SUPERUSER})
        );
        let legacy_read = call(&store, Operation::Read, "policy/superuser", json!({}))
            .await
            .unwrap();
        assert_eq!(
            data_of(legacy_read),
            json!({"name": "superuser", "rules": SUPERUSER})
        );
        let listed = call(&store, Operation::List, "policies/acl", json!({}))
            .await
            .unwrap();
        assert_eq!(
            data_of(listed),
            json!({"keys": ["default", "root", "superuser"]})
        );

        // Phase 3: the legacy API still takes `rules`, with Vault's warning.
        let response = call(
            &store,
            Operation::Update,
            "policy/legacy",
            json!({"rules": SUPERUSER}),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            response.warnings,
            vec!["'rules' is deprecated, please use 'policy' instead"]
        );

        // Phase 4: delete, then the read is a 404.
        let deleted = call(
            &store,
            Operation::Delete,
            "policies/acl/superuser",
            json!({}),
        )
        .await;
        assert_eq!(deleted, Ok(Some(Response::default())));
        let missing = call(&store, Operation::Read, "policies/acl/superuser", json!({})).await;
        assert_eq!(missing, Err(LogicalError::NotFound));
    }

    #[tokio::test]
    async fn refusals_match_vault() {
        let store = store().await;
        let refusal = |result: Result<Option<Response>, LogicalError>| {
            let error = result.unwrap_err();
            (error.status(), error.to_string())
        };
        assert_eq!(
            refusal(
                call(
                    &store,
                    Operation::Update,
                    "policy/root",
                    json!({"policy": SUPERUSER})
                )
                .await
            ),
            (400, "cannot update \"root\" policy".to_string())
        );
        assert_eq!(
            refusal(call(&store, Operation::Delete, "policies/acl/default", json!({})).await),
            (400, "cannot delete default policy".to_string())
        );
        assert_eq!(
            refusal(call(&store, Operation::Delete, "policy/root", json!({})).await),
            (400, "cannot delete \"root\" policy".to_string())
        );
        assert_eq!(
            refusal(
                call(
                    &store,
                    Operation::Update,
                    "policies/acl/x",
                    json!({"policy": "path \"a\" {\n capabilities = [\"raed\"]\n}"})
                )
                .await
            ),
            (
                400,
                "failed to parse policy: line 2: invalid capability \"raed\" in path \"a\""
                    .to_string()
            )
        );
        assert_eq!(
            refusal(call(&store, Operation::Update, "policies/acl/x", json!({})).await),
            (400, "'policy' parameter not supplied or empty".to_string())
        );
        assert_eq!(
            refusal(call(&store, Operation::Read, "policies/acl", json!({})).await).0,
            405
        );
        assert_eq!(
            call(&store, Operation::Read, "mounts", json!({})).await,
            Ok(None)
        );
        assert_eq!(
            call(&store, Operation::Read, "policyx", json!({})).await,
            Ok(None)
        );

        // Root reads as an empty policy, as in Vault (the CLI prints "No policy named").
        let root = call(&store, Operation::Read, "policies/acl/root", json!({}))
            .await
            .unwrap();
        assert_eq!(data_of(root), json!({"name": "root", "policy": ""}));
    }

    #[tokio::test]
    async fn base64_policies_are_stored_decoded() {
        use base64::Engine;
        let store = store().await;
        let encoded = base64::engine::general_purpose::STANDARD.encode(SUPERUSER);
        call(
            &store,
            Operation::Create,
            "policies/acl/b64",
            json!({"policy": encoded}),
        )
        .await
        .unwrap();
        let read = call(&store, Operation::Read, "policies/acl/b64", json!({}))
            .await
            .unwrap();
        assert_eq!(data_of(read)["policy"], SUPERUSER);
    }

    #[test]
    fn capabilities_answer_in_vaults_shape() {
        let acl = Acl::new(&[crate::acl::Policy::parse(
            "p",
            "path \"secret/*\" { capabilities = [\"read\", \"list\"] }",
        )
        .unwrap()]);
        let one = capabilities_response(&acl, json!({"paths": ["secret/a"]}).as_object().unwrap())
            .unwrap();
        assert_eq!(
            Value::Object(one.data.unwrap()),
            json!({"secret/a": ["list", "read"], "capabilities": ["list", "read"]})
        );
        let two = capabilities_response(
            &acl,
            json!({"paths": "secret/a, sys/mounts"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            Value::Object(two.data.unwrap()),
            json!({"secret/a": ["list", "read"], "sys/mounts": ["deny"]})
        );
        let legacy =
            capabilities_response(&Acl::root(), json!({"path": "x"}).as_object().unwrap()).unwrap();
        assert_eq!(legacy.data.unwrap()["capabilities"], json!(["root"]));
        assert_eq!(
            capabilities_response(&acl, &Map::new()).unwrap_err(),
            LogicalError::BadRequest("paths must be supplied".to_string())
        );
    }
}
