//! [`IdentityStore`]: entities created at login, and the `identity/entity/id` reads.

use serde::{Deserialize, Serialize};

use super::entity::{Entity, EntityAlias};
use crate::barrier::{BarrierError, View, Write};
use crate::env::SharedRng;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::storage::StorageError;
use futures::future::BoxFuture;

/// The longest alias name (a login name) and mount accessor accepted.
pub const ALIAS_NAME_BYTES_MAX: usize = 512;
pub const MOUNT_ACCESSOR_BYTES_MAX: usize = 128;

const ENTITY_PREFIX: &str = "entity/id/";
const ALIAS_LOOKUP_PREFIX: &str = "alias/lookup/";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] BarrierError),
}

impl From<IdentityError> for LogicalError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Invalid(message) => LogicalError::BadRequest(message),
            IdentityError::Storage(barrier) => barrier.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct AliasLookup {
    entity_id: String,
    alias_id: String,
}

/// Where a login came from: the auth mount and the name it authenticated.
#[derive(Debug, Clone, Copy)]
pub struct LoginAlias<'a> {
    pub mount_accessor: &'a str,
    pub mount_path: &'a str,
    pub mount_type: &'a str,
    pub name: &'a str,
}

/// A login alias that travels: what a performance secondary sends its primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedLoginAlias {
    pub mount_accessor: String,
    pub mount_path: String,
    pub mount_type: String,
    pub name: String,
}

impl OwnedLoginAlias {
    pub fn borrowed(&self) -> LoginAlias<'_> {
        LoginAlias {
            mount_accessor: &self.mount_accessor,
            mount_path: &self.mount_path,
            mount_type: &self.mount_type,
            name: &self.name,
        }
    }
}

/// Where a cluster that may not write identity (a performance secondary) has the
/// entity of a first login created: its primary (Vault's `persist_alias` RPC). The
/// entity then reaches this cluster through replication.
pub trait RemoteIdentity: Send + Sync + 'static {
    fn persist_alias(
        &self,
        alias: OwnedLoginAlias,
        now_unix: i64,
    ) -> BoxFuture<'_, Result<Entity, String>>;
}

/// How long a login on a secondary waits for the entity its primary created to arrive
/// by replication (Vault's `best_effort_wal_wait_duration`); the login goes on with
/// the primary's answer either way.
pub const REMOTE_ENTITY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const REMOTE_ENTITY_POLL: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Clone)]
pub struct IdentityStore {
    view: View,
    rng: SharedRng,
    /// Two first logins of one user must not create two entities.
    create_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    remote: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<dyn RemoteIdentity>>>>,
}

impl std::fmt::Debug for IdentityStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("IdentityStore")
    }
}

impl IdentityStore {
    /// `view` is a replicated view (Arca: `identity/`).
    pub fn new(view: View, rng: SharedRng) -> Self {
        Self {
            view,
            rng,
            create_lock: Default::default(),
            remote: Default::default(),
        }
    }

    /// Install where entities are created when this cluster may not write them.
    pub fn set_remote(&self, remote: std::sync::Arc<dyn RemoteIdentity>) {
        *self
            .remote
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(remote);
    }

    fn remote(&self) -> Option<std::sync::Arc<dyn RemoteIdentity>> {
        self.remote
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The entity behind a login alias, created (with its alias) on first sight.
    pub async fn entity_for_login(
        &self,
        alias: LoginAlias<'_>,
        now_unix: i64,
    ) -> Result<Entity, IdentityError> {
        if alias.name.is_empty() || alias.name.len() > ALIAS_NAME_BYTES_MAX {
            return Err(IdentityError::Invalid("invalid alias name".to_string()));
        }
        if alias.mount_accessor.is_empty()
            || alias.mount_accessor.len() > MOUNT_ACCESSOR_BYTES_MAX
            || alias.mount_accessor.contains('/')
        {
            return Err(IdentityError::Invalid("invalid mount accessor".to_string()));
        }
        let lookup_key = format!(
            "{ALIAS_LOOKUP_PREFIX}{}/{}",
            alias.mount_accessor,
            hex::encode(alias.name.as_bytes())
        );
        if let Some(entity) = self.entity_by_lookup(&lookup_key)? {
            return Ok(entity);
        }
        // Kept until the request's writes commit: a second login of the same alias
        // must find this entity, not make another.
        let _guard = crate::barrier::write_set::hold(&self.create_lock).await;
        if let Some(entity) = self.entity_by_lookup(&lookup_key)? {
            return Ok(entity);
        }
        let entity_id = self.rng.uuid();
        let alias_id = self.rng.uuid();
        let entity = Entity {
            name: format!("entity_{}", &entity_id[..8]),
            id: entity_id.clone(),
            aliases: vec![EntityAlias {
                id: alias_id.clone(),
                canonical_id: entity_id.clone(),
                mount_accessor: alias.mount_accessor.to_string(),
                mount_path: alias.mount_path.to_string(),
                mount_type: alias.mount_type.to_string(),
                name: alias.name.to_string(),
                creation_time: now_unix,
                last_update_time: now_unix,
            }],
            policies: Vec::new(),
            metadata: Default::default(),
            disabled: false,
            creation_time: now_unix,
            last_update_time: now_unix,
        };
        let committed = self
            .view
            .commit(vec![
                Write::Put {
                    key: format!("{ENTITY_PREFIX}{entity_id}"),
                    value: serde_json::to_vec(&entity).expect("records always serialize"),
                },
                Write::Put {
                    key: lookup_key.clone(),
                    value: serde_json::to_vec(&AliasLookup {
                        entity_id,
                        alias_id,
                    })
                    .expect("records always serialize"),
                },
            ])
            .await;
        match committed {
            Ok(_) => Ok(entity),
            Err(BarrierError::Storage(StorageError::ReadOnly)) => {
                let remote = self
                    .remote()
                    .ok_or(IdentityError::Storage(BarrierError::Storage(
                        StorageError::ReadOnly,
                    )))?;
                let owned = OwnedLoginAlias {
                    mount_accessor: alias.mount_accessor.to_string(),
                    mount_path: alias.mount_path.to_string(),
                    mount_type: alias.mount_type.to_string(),
                    name: alias.name.to_string(),
                };
                let entity = remote
                    .persist_alias(owned, now_unix)
                    .await
                    .map_err(|error| {
                        IdentityError::Storage(BarrierError::Storage(StorageError::Unavailable(
                            format!("creating the entity on the primary: {error}"),
                        )))
                    })?;
                // Best effort: let the entity arrive here, so what the login returns
                // can be read back on this cluster at once.
                // Counted sleeps rather than a deadline: the store holds no clock.
                for _ in 0..REMOTE_ENTITY_WAIT.as_millis() / REMOTE_ENTITY_POLL.as_millis() {
                    if self.entity_by_lookup(&lookup_key)?.is_some() {
                        break;
                    }
                    tokio::time::sleep(REMOTE_ENTITY_POLL).await;
                }
                Ok(entity)
            }
            Err(error) => Err(error.into()),
        }
    }

    pub fn entity(&self, id: &str) -> Result<Option<Entity>, IdentityError> {
        if id.is_empty() || id.contains('/') || id.len() > 64 {
            return Ok(None);
        }
        Ok(self.view.get_json(&format!("{ENTITY_PREFIX}{id}"))?)
    }

    /// Requests below `identity/`: `entity/id/:id` (read) and `LIST entity/id`.
    pub async fn handle(&self, request: &Request) -> Result<Response, LogicalError> {
        let path = request.path.trim_end_matches('/');
        match (request.operation, path) {
            (Operation::List, "entity/id") => Response::list(self.view.list(ENTITY_PREFIX)?),
            (Operation::Read, _) if path.starts_with(ENTITY_PREFIX) => {
                let entity = self
                    .entity(&path[ENTITY_PREFIX.len()..])?
                    .ok_or(LogicalError::NotFound)?;
                Ok(Response::data(entity.to_data()))
            }
            _ => Err(LogicalError::UnsupportedPath(format!(
                "no handler for route \"identity/{path}\". route entry not found."
            ))),
        }
    }

    fn entity_by_lookup(&self, lookup_key: &str) -> Result<Option<Entity>, IdentityError> {
        match self.view.get_json::<AliasLookup>(lookup_key)? {
            Some(lookup) => self.entity(&lookup.entity_id),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::barrier::{Barrier, Keyring};
    use crate::storage::{KeyClass, MemoryBackend, key_class};

    #[tokio::test]
    async fn first_login_creates_one_entity_that_later_logins_reuse() {
        let backend = Arc::new(MemoryBackend::new());
        let rng = SharedRng::from_u64(11);
        let barrier = Barrier::new(backend.clone(), rng.clone());
        barrier.unseal_with(Keyring::generate(&rng, 0));
        let identity =
            IdentityStore::new(barrier.view(crate::storage::Store::Identity.prefix()), rng);
        let alias = LoginAlias {
            mount_accessor: "auth_userpass_1a2b3c4d",
            mount_path: "auth/userpass/",
            mount_type: "userpass",
            name: "bob",
        };

        let first = identity.entity_for_login(alias, 100).await.unwrap();
        let again = identity.entity_for_login(alias, 200).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(first.name, format!("entity_{}", &first.id[..8]));

        // The same name on another mount is another entity.
        let other_mount = LoginAlias {
            mount_accessor: "auth_userpass_99999999",
            ..alias
        };
        let other = identity.entity_for_login(other_mount, 300).await.unwrap();
        assert_ne!(other.id, first.id);

        // Reads have Vault's shape; entities replicate.
        let mut request = Request::new(
            Operation::Read,
            format!("entity/id/{}", first.id),
            Default::default(),
            400,
        );
        let data = identity.handle(&request).await.unwrap().data.unwrap();
        assert_eq!(data["id"], first.id.as_str());
        assert_eq!(data["aliases"][0]["name"], "bob");
        assert_eq!(
            data["aliases"][0]["mount_accessor"],
            "auth_userpass_1a2b3c4d"
        );
        request.path = "entity/id/nope".into();
        assert_eq!(identity.handle(&request).await, Err(LogicalError::NotFound));
        for (key, _) in backend.dump() {
            assert_eq!(key_class(&key), KeyClass::Replicated, "{key}");
        }
    }
}
