//! The logical core on the active node: from an API request to a backend and back.
//!
//! The path of one request, in order: classify the operation, find the mount, check
//! the token, ask the ACL (telling `create` from `update` by asking the backend whether
//! the target exists), audit the request, dispatch to the backend under the lock for
//! its storage key, use up one of the token's uses, wrap the response if asked, audit
//! the response, and put it in Vault's envelope.

use std::sync::{Arc, RwLock, Weak};

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::cache_watch::{PolicyReloads, Reloads};
use super::mounts::{self, MOUNTS_MAX, MountEntry, MountTable, TableKind};
use super::{Core, body_object, error_response};
use crate::acl::Acl;
use crate::audit::{AuditBroker, AuditInput};
use crate::auth::userpass::{PasswordCost, UserpassBackend, UserpassMount};
use crate::barrier::{Barrier, BarrierError, View};
use crate::engines;
use crate::env::{Env, LogFiles};
use crate::expiration::ExpirationManager;
use crate::http::envelope;
use crate::http::{ApiRequest, ApiResponse, request_token};
use crate::identity::IdentityStore;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::policy::PolicyStore;
use crate::storage::{Store, key_space};
use crate::token::handlers::{PolicyLookup, TokenBackend};
use crate::token::role::RoleStore;
use crate::token::store::{RevocationHook, RevokedToken};
use crate::token::{TokenEntry, TokenStore};
use crate::wrapping::{WrapFormat, WrappingStore};

/// Expiration ticks between two sweeps for leases no mount serves (see
/// `LogicalCore::revoke_leases_without_mount`); a change of the mount tables or a new
/// term sweeps at the next tick.
pub const LEASE_SWEEP_TICKS: u32 = 60;

/// Write locks are striped by storage target: two writes to the same secret are
/// serialized (so check-and-set and read-modify-write are atomic), writes to different
/// secrets proceed in parallel.
pub const WRITE_LOCK_STRIPES: usize = 256;

/// Which stripe of the router's write lock a request holds until its writes commit;
/// `None` for one that holds none.
///
/// - Reads and lists hold none.
/// - KV writes hold their secret's stripe: two writes to one secret are serialized (a
///   CAS, a version number), writes to different secrets run side by side.
/// - Token creations and logins hold none: they only add records under fresh random
///   names (a token, its accessor and lease), and what they check before adding (a
///   parent still valid, an alias not yet bound) is guarded by the token and identity
///   stores' own locks, held until the request commits. Behind one stripe, every login
///   waited for the previous one's Raft commit.
/// - Every other write shares stripe 0: token trees, mount tables, policies and users
///   are read, changed and written back across many keys.
fn write_lock_stripe(route: &Route, operation: Operation) -> Option<usize> {
    if operation == Operation::Read || operation == Operation::List {
        return None;
    }
    let target = match (
        route.kind,
        route.entry.engine_type(),
        route.entry.kv_version(),
    ) {
        (TableKind::Auth, "token", _)
            if route.rest == "create"
                || route.rest == "create-orphan"
                || route.rest.starts_with("create/") =>
        {
            return None;
        }
        (TableKind::Auth, "userpass", _) if route.rest.starts_with("login/") => return None,
        (TableKind::Secrets, "kv", Some(2)) => {
            let secret = route
                .rest
                .split_once('/')
                .map(|(_, secret)| secret)
                .unwrap_or("");
            format!("{}{secret}", route.entry.uuid)
        }
        (TableKind::Secrets, "kv" | "cubbyhole", _) => {
            format!("{}{}", route.entry.uuid, route.rest)
        }
        _ => return Some(0),
    };
    Some((crc32fast::hash(target.as_bytes()) as usize % (WRITE_LOCK_STRIPES - 1)) + 1)
}

/// Both mount tables, as loaded on the active node.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub secrets: MountTable,
    pub auth: MountTable,
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub kind: TableKind,
    pub entry: MountEntry,
    /// The path below the mount.
    pub rest: String,
    /// The mount point as clients see it (`secret/`, `auth/userpass/`).
    pub mount_point: String,
}

/// Who is calling, once the token checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: String,
    pub entry: TokenEntry,
    pub acl: Arc<Acl>,
}

pub struct LogicalCore {
    core: Weak<Core>,
    env: Env,
    barrier: Barrier,
    tables: RwLock<Option<Arc<Tables>>>,
    pub(crate) tokens: TokenStore,
    pub(crate) policies: PolicyStore,
    pub(crate) wrapping: WrappingStore,
    pub(crate) expiration: ExpirationManager,
    token_backend: TokenBackend,
    identity: IdentityStore,
    /// Loaded by the cache watcher after unseal and whenever the audit table changes.
    audit: RwLock<Option<Arc<AuditBroker>>>,
    log_files: Arc<dyn LogFiles>,
    /// One userpass backend per mount, by mount uuid (each holds a dummy hash that is
    /// costly to compute).
    userpass: std::sync::Mutex<std::collections::BTreeMap<String, UserpassBackend>>,
    password_cost: PasswordCost,
    /// Where cubbyhole data lives, for cleaning up after revoked tokens.
    cubbyhole_prefix: Arc<RwLock<Option<String>>>,
    write_locks: Vec<tokio::sync::Mutex<()>>,
    /// Serializes changes to the mount tables themselves.
    table_lock: tokio::sync::Mutex<()>,
    /// Serializes keyring rotations, so their commits land in the order of their terms.
    pub(crate) rotation_lock: tokio::sync::Mutex<()>,
    /// Recent `sys/remount` moves, for `sys/remount/status`.
    pub(crate) migrations: super::remount::Migrations,
    /// The mounts (by uuid) whose disable a request is running on this node, so the
    /// expiration tick does not run the same disable beside it.
    pub(crate) unmounts_running: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Expiration ticks until the next sweep for leases no mount serves; 0 sweeps at
    /// the next tick (a mount table changed, or this node became active).
    lease_sweep_in_ticks: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for LogicalCore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LogicalCore")
    }
}

impl LogicalCore {
    pub fn new(
        core: &Arc<Core>,
        log_files: Arc<dyn LogFiles>,
        password_cost: PasswordCost,
    ) -> Arc<Self> {
        let env = core.env().clone();
        let barrier = core.barrier().clone();
        let tokens = TokenStore::new(barrier.view(Store::Tokens.prefix()), env.rng.clone());
        let policies = PolicyStore::from_barrier(&barrier);
        let wrapping = WrappingStore::new(barrier.view(Store::Wrapping.prefix()), env.rng.clone());
        let expiration = ExpirationManager::new(
            barrier.view(Store::Leases.prefix()),
            tokens.clone(),
            env.rng.clone(),
        );
        let token_backend = TokenBackend::new(
            expiration.clone(),
            RoleStore::new(barrier.view(Store::TokenRoles.prefix())),
            Arc::new(PolicyAdapter {
                store: policies.clone(),
            }),
        );
        let identity = IdentityStore::new(barrier.view(Store::Identity.prefix()), env.rng.clone());
        let cubbyhole_prefix = Arc::new(RwLock::new(None));
        tokens.add_revocation_hook(Arc::new(CubbyholeCleanup {
            barrier: barrier.clone(),
            prefix: cubbyhole_prefix.clone(),
        }));
        Arc::new(Self {
            core: Arc::downgrade(core),
            env,
            barrier,
            tables: RwLock::new(None),
            tokens,
            policies,
            wrapping,
            expiration,
            token_backend,
            identity,
            audit: RwLock::new(None),
            log_files,
            userpass: std::sync::Mutex::new(Default::default()),
            password_cost,
            cubbyhole_prefix,
            write_locks: (0..WRITE_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            table_lock: tokio::sync::Mutex::new(()),
            rotation_lock: tokio::sync::Mutex::new(()),
            migrations: Default::default(),
            unmounts_running: Default::default(),
            lease_sweep_in_ticks: std::sync::atomic::AtomicU32::new(0),
        })
    }

    pub(crate) fn audit(&self) -> Result<Arc<AuditBroker>, LogicalError> {
        self.audit
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or_else(|| LogicalError::Unavailable("audit devices are not loaded".into()))
    }

    /// Revoke expired tokens and leases (the active node calls this every tick).
    pub async fn tick_expiration(&self) -> Result<(), LogicalError> {
        let now = self.env.clock.unix_seconds();
        // A disable that cannot finish now is tried again next tick; it must not hold
        // up the expirations.
        if let Err(error) = self.finish_tainted_unmounts().await {
            tracing::warn!(%error, "could not finish an interrupted disable");
        }
        let due = self
            .lease_sweep_in_ticks
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |ticks| Some(ticks.checked_sub(1).unwrap_or(LEASE_SWEEP_TICKS)),
            )
            .is_ok_and(|ticks| ticks == 0);
        if due && let Err(error) = self.revoke_leases_without_mount().await {
            self.sweep_leases_at_next_tick();
            tracing::warn!(%error, "could not revoke the leases no mount serves");
        }
        self.expiration.tick(now).await?;
        self.wrapping.tidy(now).await?;
        Ok(())
    }

    fn userpass_backend(&self, route: &Route) -> Result<UserpassBackend, LogicalError> {
        let mut backends = self
            .userpass
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(backend) = backends.get(&route.entry.uuid) {
            return Ok(backend.clone());
        }
        let backend = UserpassBackend::new(
            self.view_for(route),
            UserpassMount {
                path: route.entry.path.clone(),
                accessor: route.entry.accessor.clone(),
            },
            self.env.rng.clone(),
            self.expiration.clone(),
            self.identity.clone(),
            self.password_cost,
        )?;
        backends.insert(route.entry.uuid.clone(), backend.clone());
        Ok(backend)
    }

    /// The identity store (a performance secondary installs where it creates entities).
    pub fn identity(&self) -> &IdentityStore {
        &self.identity
    }

    pub(crate) fn core(&self) -> Result<Arc<Core>, LogicalError> {
        self.core
            .upgrade()
            .ok_or_else(|| LogicalError::Unavailable("the node is shutting down".into()))
    }

    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    pub(crate) fn barrier(&self) -> &Barrier {
        &self.barrier
    }

    pub(crate) fn tables(&self) -> Result<Arc<Tables>, LogicalError> {
        self.tables
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or_else(|| LogicalError::Unavailable("mount tables are not loaded".into()))
    }

    /// Read both tables from storage and publish them whole, so a request routes by the
    /// old tables or the new ones, never a half-read pair. A table that fails to read,
    /// or that storage holds empty on a cluster that is not a performance secondary (its
    /// defaults are not written yet, or a secondary's activation wiped it a moment before
    /// the role changed), leaves the published tables as they were: an error, retried by
    /// the cache watcher, never an empty table that answers "no handler for route".
    ///
    /// Returns whether a performance secondary's table lacks a local default mount (its
    /// cubbyhole), which only its active node may write.
    pub(crate) async fn reload_tables(&self) -> Result<bool, LogicalError> {
        let _guard = self.table_lock.lock().await;
        let secondary = self.barrier.is_replicated_read_only();
        let mut loaded = Vec::new();
        let mut local_defaults_missing = false;
        for kind in [TableKind::Secrets, TableKind::Auth] {
            let entries = self.read_table(kind)?;
            // Every table holds a mount that cannot be disabled (`sys/`, `token/`), so
            // an empty one is a fresh cluster's, or a performance secondary's before its
            // first sync: that one serves the defaults from memory (its `sys/` answers
            // status while it bootstraps).
            let table = if entries.is_empty() && secondary {
                MountTable::defaults(kind, &self.env.rng)
            } else if entries.is_empty() {
                return Err(LogicalError::Unavailable(format!(
                    "the {kind:?} mount table is empty in storage; keeping the loaded one"
                )));
            } else {
                local_defaults_missing |=
                    secondary && !self.missing_local_defaults(kind, &entries).is_empty();
                MountTable::new(kind, entries)
            };
            loaded.push(table);
        }
        let auth = loaded.pop().expect("two tables were loaded");
        let secrets = loaded.pop().expect("two tables were loaded");
        let tables = Arc::new(Tables { secrets, auth });
        self.publish_cubbyhole_prefix(&tables);
        let previous = self
            .tables
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(tables.clone());
        if previous.as_deref() != Some(&*tables) {
            self.sweep_leases_at_next_tick();
        }
        // A userpass backend knows its mount's path and accessor: drop those whose auth
        // entry changed or went away (each costs a dummy hash to rebuild, so keep the rest).
        let unchanged = |uuid: &String| {
            let find = |tables: &Tables| {
                tables
                    .auth
                    .entries()
                    .iter()
                    .find(|entry| &entry.uuid == uuid)
                    .cloned()
            };
            previous
                .as_deref()
                .is_some_and(|previous| find(previous).is_some() && find(previous) == find(&tables))
        };
        self.userpass
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|uuid, _| unchanged(uuid));
        Ok(local_defaults_missing)
    }

    /// Sweep for leases no mount serves at the next expiration tick.
    fn sweep_leases_at_next_tick(&self) {
        self.lease_sweep_in_ticks
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Revoke the leases (with their tokens) whose path no mount serves, and return how
    /// many folders and ids were revoked. They are left by a mount that went without
    /// revoking what was issued here: on a performance secondary, a replicated mount
    /// the primary disabled, moved or filtered out, whose leases and tokens are the
    /// secondary's own; anywhere, a login that committed while its auth method was
    /// being disabled, or a disable interrupted by a version that removed the entry
    /// first. A tainted mount still serves its leases here (its disable revokes them).
    ///
    /// A walk down the lease ids' folders, as far as a mount's path reaches: a folder
    /// that is a mount's path or lies below one is served; one no mount's path starts
    /// with is revoked whole.
    pub(crate) async fn revoke_leases_without_mount(&self) -> Result<usize, LogicalError> {
        let tables = self.tables()?;
        let mount_points: Vec<String> = [
            (TableKind::Secrets, &tables.secrets),
            (TableKind::Auth, &tables.auth),
        ]
        .into_iter()
        .flat_map(|(kind, table)| {
            table
                .entries()
                .iter()
                .map(move |entry| mounts::client_path(kind, &entry.path))
        })
        .collect();
        let mut folders = vec![String::new()];
        let mut unserved = Vec::new();
        while let Some(folder) = folders.pop() {
            for child in self.expiration.list(&folder)? {
                let path = format!("{folder}{child}");
                if mount_points
                    .iter()
                    .any(|mount| path.starts_with(mount.as_str()))
                {
                    continue;
                }
                if path.ends_with('/') && mount_points.iter().any(|mount| mount.starts_with(&path))
                {
                    folders.push(path);
                } else {
                    unserved.push(path);
                }
            }
        }
        for prefix in &unserved {
            let revoked = self.expiration.revoke_prefix(prefix).await?;
            tracing::info!(
                %prefix,
                leases = revoked.len(),
                "revoked leases no mount serves"
            );
        }
        Ok(unserved.len())
    }

    /// Write the default mounts storage lacks: a fresh cluster's whole tables, or a
    /// performance secondary's own local defaults (its cubbyhole never crosses from the
    /// primary). Only the active node writes; the cache watcher publishes what it wrote.
    pub(crate) async fn ensure_default_mounts(&self) -> Result<(), LogicalError> {
        let _guard = self.table_lock.lock().await;
        let secondary = self.barrier.is_replicated_read_only();
        for kind in [TableKind::Secrets, TableKind::Auth] {
            let entries = self.read_table(kind)?;
            let missing = if entries.is_empty() && !secondary {
                MountTable::defaults(kind, &self.env.rng)
            } else if secondary && !entries.is_empty() {
                MountTable::new(kind, self.missing_local_defaults(kind, &entries))
            } else {
                // A secondary before its first sync writes nothing only its primary may.
                continue;
            };
            let writes = missing.writes_since(None);
            if !writes.is_empty() {
                self.barrier.commit_now(writes).await?;
            }
        }
        Ok(())
    }

    /// Both classes of one stored table.
    fn read_table(&self, kind: TableKind) -> Result<Vec<MountEntry>, LogicalError> {
        let mut entries = self.read_table_class(kind, false)?;
        entries.extend(self.read_table_class(kind, true)?);
        Ok(entries)
    }

    /// The local default mounts (cubbyhole) a performance secondary's `entries` lack.
    fn missing_local_defaults(&self, kind: TableKind, entries: &[MountEntry]) -> Vec<MountEntry> {
        MountTable::defaults(kind, &self.env.rng)
            .entries()
            .iter()
            .filter(|default| {
                default.local
                    && !entries
                        .iter()
                        .any(|entry| entry.mount_type == default.mount_type)
            })
            .cloned()
            .collect()
    }

    /// The stored entries of one class of one table, each checked against its key.
    fn read_table_class(
        &self,
        kind: TableKind,
        local: bool,
    ) -> Result<Vec<MountEntry>, LogicalError> {
        let prefix = key_space::mount_table_prefix(kind, local);
        let uuids = self.barrier.list(prefix)?;
        if uuids.len() > MOUNTS_MAX {
            return Err(LogicalError::Internal(format!(
                "mount table {prefix} holds {} entries, more than {MOUNTS_MAX}",
                uuids.len()
            )));
        }
        let mut entries = Vec::with_capacity(uuids.len());
        for uuid in uuids {
            let key = key_space::mount_entry(kind, local, &uuid);
            let Some(bytes) = self.barrier.get(&key)? else {
                continue;
            };
            let mut entry: MountEntry = serde_json::from_slice(&bytes).map_err(|error| {
                LogicalError::Internal(format!("mount entry {key} is corrupt: {error}"))
            })?;
            if entry.uuid != uuid {
                return Err(LogicalError::Internal(format!(
                    "mount entry {key} names another mount ({})",
                    entry.uuid
                )));
            }
            // The key decides the class, whatever the entry claims.
            entry.local = local;
            entries.push(entry);
        }
        Ok(entries)
    }

    fn publish_cubbyhole_prefix(&self, tables: &Tables) {
        let prefix = tables
            .secrets
            .entries()
            .iter()
            .find(|entry| entry.mount_type == "cubbyhole")
            .map(|entry| entry.storage_prefix(TableKind::Secrets));
        *self
            .cubbyhole_prefix
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = prefix;
    }

    /// Change one table under the table lock: read, change, persist, publish.
    pub(crate) async fn update_table<T>(
        &self,
        kind: TableKind,
        change: impl FnOnce(&mut MountTable) -> Result<T, LogicalError>,
    ) -> Result<T, LogicalError> {
        let _guard = self.table_lock.lock().await;
        let current = self.tables()?;
        let mut table = match kind {
            TableKind::Secrets => current.secrets.clone(),
            TableKind::Auth => current.auth.clone(),
        };
        let before = table.clone();
        let result = change(&mut table)?;
        let writes = table.writes_since(Some(&before));
        // At once, not staged: the table is published in memory below, under the table
        // lock, and must never show a mount that did not commit.
        if !writes.is_empty() {
            self.barrier.commit_now(writes).await?;
        }
        let mut updated = (*current).clone();
        match kind {
            TableKind::Secrets => updated.secrets = table,
            TableKind::Auth => updated.auth = table,
        }
        *self
            .tables
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(updated));
        Ok(result)
    }

    /// Find the mount serving `path`.
    pub(crate) fn route(&self, path: &str) -> Result<Route, LogicalError> {
        let tables = self.tables()?;
        let not_found = || {
            LogicalError::UnsupportedPath(format!(
                "no handler for route \"{path}\". route entry not found."
            ))
        };
        if let Some(auth_path) = path.strip_prefix("auth/") {
            let (entry, rest) = tables.auth.route(auth_path).ok_or_else(not_found)?;
            return Ok(Route {
                kind: TableKind::Auth,
                mount_point: mounts::client_path(TableKind::Auth, &entry.path),
                entry: entry.clone(),
                rest: rest.to_string(),
            });
        }
        let (entry, rest) = tables.secrets.route(path).ok_or_else(not_found)?;
        Ok(Route {
            kind: TableKind::Secrets,
            mount_point: entry.path.clone(),
            entry: entry.clone(),
            rest: rest.to_string(),
        })
    }

    pub(crate) fn view_for(&self, route: &Route) -> View {
        self.barrier.view(route.entry.storage_prefix(route.kind))
    }

    /// The caller of a request a verified secondary forwarded: the token entry it
    /// authenticated there, with this cluster's (replicated) policies. Its uses were
    /// counted on the secondary, so none are spent here.
    fn delegated(&self, entry: Option<&crate::token::TokenEntry>) -> Result<Caller, LogicalError> {
        let mut entry = entry.cloned().ok_or(LogicalError::PermissionDenied)?;
        entry.num_uses = 0;
        let acl = self
            .policies
            .acl_for(&entry.policies)
            .map_err(|error| LogicalError::Internal(error.to_string()))?;
        Ok(Caller {
            token: String::new(),
            entry,
            acl: Arc::new(acl),
        })
    }

    /// Look up a token and compile its ACL.
    pub(crate) fn authenticate(&self, token: &str, now_unix: i64) -> Result<Caller, LogicalError> {
        let entry = self
            .tokens
            .lookup(token, now_unix)
            .map_err(|error| LogicalError::Internal(error.to_string()))?
            .filter(|entry| entry.num_uses != crate::token::store::REVOCATION_PENDING)
            .ok_or(LogicalError::PermissionDenied)?;
        let acl = self
            .policies
            .acl_for(&entry.policies)
            .map_err(|error| LogicalError::Internal(error.to_string()))?;
        Ok(Caller {
            token: token.to_string(),
            entry,
            acl: Arc::new(acl),
        })
    }

    async fn handle_request(&self, api: ApiRequest) -> ApiResponse {
        let now_unix = self.env.clock.unix_seconds();
        let request_id = self.env.rng.uuid();
        match self.process(&api, &request_id, now_unix).await {
            Ok(response) => response,
            Err(error) => error_response(&error),
        }
    }

    async fn process(
        &self,
        api: &ApiRequest,
        request_id: &str,
        now_unix: i64,
    ) -> Result<ApiResponse, LogicalError> {
        // Vault answers help for any non-empty `help`, whatever the method, before it
        // reads anything else of the request. Help is allowed to every valid token.
        if api.query.get("help").is_some_and(|value| !value.is_empty()) {
            let route = self.route(&api.path)?;
            let token = request_token(&api.headers).ok_or(LogicalError::PermissionDenied)?;
            self.authenticate(&token, now_unix)?;
            return Ok(ApiResponse::json(200, &super::help::help_body(&route)));
        }
        let (operation, data) = classify(api)?;
        let mut path = api.path.clone();
        if operation == Operation::List && !path.ends_with('/') {
            path.push('/');
        }
        let route = match self.route(&path) {
            Ok(route) => route,
            // As Vault, which checks the token and its policies before it routes: a path
            // no mount serves is a 404 only for a caller allowed to ask for it; without a
            // valid token, or without a policy granting the path, it is a 403, so unknown
            // paths tell nothing to a caller who may not use them.
            Err(error @ LogicalError::UnsupportedPath(_)) if api.delegated_caller.is_none() => {
                let allowed = request_token(&api.headers)
                    .and_then(|token| self.authenticate(&token, now_unix).ok())
                    .is_some_and(|caller| caller.acl.allowed(operation, &path, &data).allowed);
                return Err(if allowed {
                    error
                } else {
                    LogicalError::PermissionDenied
                });
            }
            Err(error) => return Err(error),
        };
        let wrap_ttl = match api
            .headers
            .get("x-vault-wrap-ttl")
            .and_then(|value| value.to_str().ok())
        {
            Some(text) => Some(crate::wrapping::handlers::parse_wrap_ttl(text)?),
            None => None,
        };
        let token = request_token(&api.headers);
        let unauthenticated = is_unauthenticated(&route, operation);
        let caller = match (&token, unauthenticated) {
            _ if api.delegated_caller.is_some() => {
                Some(self.delegated(api.delegated_caller.as_deref())?)
            }
            (Some(token), false) => Some(self.authenticate(token, now_unix)?),
            (Some(token), true) => self.authenticate(token, now_unix).ok(),
            (None, false) => return Err(LogicalError::PermissionDenied),
            (None, true) => None,
        };
        let mut request = Request::new(operation, route.rest.clone(), data, now_unix);
        request.mount_point = route.mount_point.clone();
        request.client_token = token.clone();
        request.client_token_accessor = caller.as_ref().map(|caller| caller.entry.accessor.clone());
        request.entity_id = caller
            .as_ref()
            .map(|caller| caller.entry.entity_id.clone())
            .filter(|id| !id.is_empty());

        let mut granting_policies = Vec::new();
        if !unauthenticated {
            let caller = caller.as_ref().expect("authenticated paths have a caller");
            if matches!(operation, Operation::Create | Operation::Update) {
                request.operation = if self.exists(&route, &request)? {
                    Operation::Update
                } else {
                    Operation::Create
                };
            }
            let result =
                caller
                    .acl
                    .allowed_wrapped(request.operation, &path, &request.data, wrap_ttl);
            if !result.allowed {
                return Err(LogicalError::PermissionDenied);
            }
            if requires_sudo(&route, &path) && !(result.root_privs || result.is_root) {
                return Err(LogicalError::PermissionDenied);
            }
            granting_policies = result.granting_policies.clone();
        }

        // Vault's per-route timing, recorded when this request is done however it ends.
        let _route_timer = RouteTimer::start(
            self.env.telemetry(),
            format!(
                "vault.route.{}.{}",
                request.operation.name(),
                route.mount_point.replace('/', "-")
            ),
        );

        // One use of the token per admitted request; the last use revokes it once the
        // request is done, so the request's own handler still sees its token.
        let mut revoke_after_request = None;
        if let Some(caller) = &caller
            && !unauthenticated
            && caller.entry.num_uses > 0
        {
            // Unlimited tokens (the common case) skip the store's write lock.
            let admitted = self
                .tokens
                .use_token(&caller.token, now_unix)
                .await
                .map_err(|error| LogicalError::Internal(error.to_string()))?
                .ok_or(LogicalError::PermissionDenied)?;
            if admitted.num_uses == 1 {
                revoke_after_request = Some(caller.token.clone());
            }
        }
        let audit_input = self.audit_input(
            request_id,
            &path,
            &request,
            &route,
            caller.as_ref(),
            granting_policies,
            wrap_ttl,
        );
        let logged = self.audit().and_then(|audit| {
            audit
                .log_request(&audit_input)
                .map(|()| audit)
                .map_err(LogicalError::from)
        });
        if logged.is_err()
            && let Some(token) = &revoke_after_request
        {
            // The last use is spent even when the request goes no further; a token
            // left revocation-pending would never be revoked.
            self.tokens
                .revoke_tree(token)
                .await
                .map_err(|error| LogicalError::Internal(error.to_string()))?;
        }
        let audit = logged?;
        let mut audit_input = audit_input;

        // The request's writes are staged while it runs (its handler and the wrapping of
        // its answer) and committed once, as one Raft entry, before it is answered; a
        // write request keeps its stripe of the write lock until then, so a read-then-
        // write (a CAS, a version number) stays atomic.
        let _stripe = match write_lock_stripe(&route, request.operation) {
            Some(stripe) => Some(self.write_locks[stripe].lock().await),
            None => None,
        };
        let (staged, write_set) = crate::barrier::write_set::staging(async {
            let outcome = self
                .dispatch(&route, &request, caller.as_ref(), wrap_ttl, api)
                .await;
            // A write to replicated state on a performance secondary: refused when it
            // was staged, before anything of the request took effect here. The
            // primary makes it (as the caller authorized here), and this cluster waits
            // to see it arrive.
            if matches!(outcome, Err(LogicalError::ReadOnly))
                && api.delegated_caller.is_none()
                && let Some(replication) = self.core().ok().and_then(|core| core.replication())
            {
                return Staged::ToPrimary(replication);
            }
            let mount_type = if route.kind == TableKind::Auth {
                ""
            } else {
                route.entry.mount_type.as_str()
            };
            let is_sys = route.entry.mount_type == "system";
            let unrecognized = super::known_fields::unrecognized_warning(
                route.kind,
                route.entry.engine_type(),
                route.entry.kv_version(),
                &route.rest,
                request.operation,
                &request.data,
            );
            let outcome = match (outcome, unrecognized) {
                (Ok(Some(response)), Some(warning)) => Ok(Some(response.with_warning(warning))),
                (Ok(None), Some(warning)) => Ok(Some(Response::default().with_warning(warning))),
                (outcome, _) => outcome,
            };
            Staged::Answered(match outcome {
                Ok(Some(response)) => self
                    .finish(
                        request_id, &route, &request, &response, wrap_ttl, mount_type, is_sys,
                    )
                    .await
                    .map(|api_response| (api_response, Some(response))),
                Ok(None) => Ok((ApiResponse::no_content(), None)),
                Err(error) => Err(error),
            })
        })
        .await;
        // All of it or none of it: a request that failed (or goes to the primary) drops
        // what it staged.
        let (result, to_primary) = match staged {
            Staged::Answered(Ok(answer)) => match self.barrier.commit_write_set(write_set).await {
                Ok(_) => (Ok(answer), None),
                Err(error) => (Err(LogicalError::from(error)), None),
            },
            // Dropped at once: the set's held locks go with it.
            Staged::Answered(Err(error)) => {
                drop(write_set);
                (Err(error), None)
            }
            Staged::ToPrimary(replication) => {
                drop(write_set);
                (Err(LogicalError::ReadOnly), Some(replication))
            }
        };
        drop(_stripe);
        if let Some(token) = revoke_after_request {
            self.tokens
                .revoke_tree(&token)
                .await
                .map_err(|error| LogicalError::Internal(error.to_string()))?;
        }
        if let Some(replication) = to_primary {
            return replication
                .forward_to_primary(api, caller.as_ref().map(|caller| caller.entry.clone()))
                .await;
        }
        match &result {
            Ok((_, Some(response))) => {
                audit_input.response = Some(crate::audit::AuditResponse::from(response))
            }
            Ok((_, None)) => {}
            Err(error) => audit_input.error = error.to_string(),
        }
        audit_input.now_unix_nanos = self.env.clock.unix_nanos();
        audit.log_response(&audit_input)?;
        result.map(|(api_response, _)| api_response)
    }

    /// Wrap if asked, then envelope.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        request_id: &str,
        route: &Route,
        request: &Request,
        response: &Response,
        wrap_ttl: Option<i64>,
        mount_type: &str,
        is_sys: bool,
    ) -> Result<ApiResponse, LogicalError> {
        if let Some(stream) = &response.stream {
            return Ok(ApiResponse {
                status: 200,
                body: bytes::Bytes::new(),
                headers: vec![(
                    "Content-Type".to_string(),
                    response
                        .content_type
                        .unwrap_or("text/plain; charset=utf-8")
                        .to_string(),
                )],
                stream: Some(stream.clone()),
            });
        }
        if let Some(binary) = &response.binary {
            return Ok(ApiResponse {
                status: 200,
                body: binary.clone(),
                headers: vec![(
                    "Content-Type".to_string(),
                    response
                        .content_type
                        .unwrap_or("application/octet-stream")
                        .to_string(),
                )],
                stream: None,
            });
        }
        if let Some(raw) = &response.raw {
            return Ok(ApiResponse::json(response.status.unwrap_or(200), raw));
        }
        let body = envelope::envelope(request_id, response, Some(mount_type), is_sys);
        let wrap_eligible =
            !(route.entry.mount_type == "system" && request.path.starts_with("wrapping/"));
        if let Some(ttl) = wrap_ttl.filter(|_| wrap_eligible) {
            let creation_path = format!("{}{}", route.mount_point, request.path);
            let wrapped_accessor = response.auth.as_ref().map(|auth| auth.accessor.as_str());
            let info = self
                .wrapping
                .wrap(
                    &body,
                    ttl,
                    &creation_path,
                    wrapped_accessor,
                    request.now_unix,
                    WrapFormat::Token,
                )
                .await?;
            let mut wrapped =
                envelope::envelope(request_id, &Response::default(), Some(mount_type), false);
            wrapped["wrap_info"] = info.to_value();
            return Ok(ApiResponse::json(200, &wrapped));
        }
        let status = response.status.unwrap_or(200);
        let empty = response.data.is_none()
            && response.auth.is_none()
            && response.warnings.is_empty()
            && response.lease.is_none();
        if empty && status == 200 {
            return Ok(ApiResponse::no_content());
        }
        Ok(ApiResponse::json(status, &body))
    }

    /// Whether the target of a write exists (ACL `create` versus `update`).
    fn exists(&self, route: &Route, request: &Request) -> Result<bool, LogicalError> {
        let view = self.view_for(route);
        match (
            route.kind,
            route.entry.engine_type(),
            route.entry.kv_version(),
        ) {
            (TableKind::Secrets, "kv", Some(2)) => engines::kv_v2::exists(&view, request),
            (TableKind::Secrets, "kv", _) => engines::kv_v1::exists(&view, request),
            (TableKind::Secrets, "cubbyhole", _) => engines::cubbyhole::exists(&view, request),
            (TableKind::Auth, "userpass", _) => self.userpass_backend(route)?.exists(&request.path),
            _ => Ok(true),
        }
    }

    async fn dispatch(
        &self,
        route: &Route,
        request: &Request,
        caller: Option<&Caller>,
        wrap_ttl: Option<i64>,
        api: &ApiRequest,
    ) -> Result<Option<Response>, LogicalError> {
        let view = self.view_for(route);
        match (
            route.kind,
            route.entry.engine_type(),
            route.entry.kv_version(),
        ) {
            (TableKind::Secrets, "kv", Some(2)) => engines::kv_v2::handle(&view, request).await,
            (TableKind::Secrets, "kv", _) => engines::kv_v1::handle(&view, request).await,
            (TableKind::Secrets, "cubbyhole", _) => {
                // The cubbyhole is keyed by the token's salted id, never the token, so a
                // revocation (which only knows the salted id) can empty it.
                let mut scoped = request.clone();
                scoped.client_token = match &request.client_token {
                    Some(token) => self
                        .tokens
                        .salted_id_of(token)
                        .map_err(|error| LogicalError::Internal(error.to_string()))?,
                    None => None,
                };
                engines::cubbyhole::handle(&view, &scoped).await
            }
            (TableKind::Secrets, "system", _) => {
                self.handle_system(request, caller, wrap_ttl, api).await
            }
            (TableKind::Secrets, "identity", _) => self.identity.handle(request).await.map(Some),
            (TableKind::Auth, "token", _) => self.token_backend.handle(request).await.map(Some),
            (TableKind::Auth, "userpass", _) => self
                .userpass_backend(route)?
                .handle(request)
                .await
                .map(Some),
            _ => Err(LogicalError::UnsupportedPath(format!(
                "no handler for route \"{}{}\"",
                route.mount_point, request.path
            ))),
        }
    }
}

impl super::LogicalService for LogicalCore {
    fn handle(&self, request: ApiRequest) -> BoxFuture<'_, ApiResponse> {
        Box::pin(self.handle_request(request))
    }

    fn on_active(&self) -> BoxFuture<'_, Result<(), LogicalError>> {
        Box::pin(async move {
            // What caches hold (tables, policies, audit devices, token keys) is the
            // cache watcher's, fed by every applied change on every node; what is left
            // here is what only an active node does, once per term.
            self.expiration.forget_schedule();
            self.sweep_leases_at_next_tick();
            // A performance secondary's policies come from its primary.
            if !self.barrier.is_replicated_read_only() {
                self.policies
                    .ensure_builtin_policies()
                    .await
                    .map_err(|error| LogicalError::Internal(error.to_string()))?;
            }
            self.ensure_default_mounts().await?;
            // Vault records a version the first time an active node serves with it. A
            // failure to record is logged, never a reason not to serve.
            match super::version_history::record(
                &self.barrier,
                super::VERSION,
                super::node_endpoints::BUILD_DATE,
                self.env.clock.unix_seconds(),
            )
            .await
            {
                Ok(true) => tracing::info!(
                    version = super::VERSION,
                    "recorded a new version in the version history"
                ),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not record this version in the version history")
                }
            }
            Ok(())
        })
    }

    fn persist_alias(
        &self,
        alias: crate::identity::OwnedLoginAlias,
        now_unix: i64,
    ) -> BoxFuture<'_, Result<crate::identity::Entity, LogicalError>> {
        Box::pin(async move {
            Ok(self
                .identity
                .entity_for_login(alias.borrowed(), now_unix)
                .await?)
        })
    }

    fn reload_caches<'a>(
        &'a self,
        reloads: &'a Reloads,
    ) -> BoxFuture<'a, Result<(), LogicalError>> {
        Box::pin(async move {
            match reloads.policies() {
                PolicyReloads::None => {}
                PolicyReloads::Named(names) => {
                    for name in names {
                        self.policies.invalidate(name);
                    }
                }
                PolicyReloads::All => self.policies.invalidate_all(),
            }
            if reloads.token_keys() {
                self.tokens.forget_cached_keys();
            }
            if reloads.mount_tables() {
                let local_defaults_missing = self.reload_tables().await?;
                if local_defaults_missing && self.core()?.is_active() {
                    self.ensure_default_mounts().await?;
                    self.reload_tables().await?;
                }
            }
            if reloads.audit_devices() {
                // Built whole, then swapped in: a request logs to the old devices or the
                // new ones. On an error the old broker stays.
                let audit = AuditBroker::load(
                    self.barrier.view(""),
                    self.log_files.clone(),
                    self.env.rng.clone(),
                )?;
                *self
                    .audit
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(audit));
            }
            Ok(())
        })
    }

    fn on_initialize(
        &self,
        root_token_id: Option<String>,
    ) -> BoxFuture<'_, Result<String, LogicalError>> {
        Box::pin(async move {
            self.policies
                .ensure_builtin_policies()
                .await
                .map_err(|error| LogicalError::Internal(error.to_string()))?;
            self.ensure_default_mounts().await?;
            let now = self.env.clock.unix_seconds();
            let (token, _entry) = self
                .tokens
                .create_root(now, root_token_id.as_deref())
                .await
                .map_err(|error| LogicalError::BadRequest(error.to_string()))?;
            Ok(token)
        })
    }

    fn audit_non_logical(&self, input: &AuditInput) -> Result<(), LogicalError> {
        let audit = self.audit()?;
        let logged = match input.response {
            Some(_) => audit.log_response(input),
            None => audit.log_request(input),
        };
        logged.map_err(LogicalError::from)
    }

    fn usage_gauges(&self) -> Vec<(&'static str, f64)> {
        let mut gauges = Vec::new();
        match self.tokens.count() {
            Ok(count) => gauges.push(("vault.token.count", count as f64)),
            Err(error) => tracing::warn!(%error, "could not count tokens for the metrics"),
        }
        match self.expiration.count() {
            Ok(count) => gauges.push(("vault.expire.num_leases", count as f64)),
            Err(error) => tracing::warn!(%error, "could not count leases for the metrics"),
        }
        gauges
    }

    fn reopen_audit_files(&self) -> Vec<String> {
        self.audit()
            .map(|audit| audit.reopen_files())
            .unwrap_or_default()
    }

    fn create_root_token(&self) -> BoxFuture<'_, Result<String, LogicalError>> {
        Box::pin(async move {
            let now = self.env.clock.unix_seconds();
            let (token, _entry) = self
                .tokens
                .create_root(now, None)
                .await
                .map_err(|error| LogicalError::Internal(error.to_string()))?;
            Ok(token)
        })
    }
}

/// The operation and data of a request, from its method, query and body.
fn classify(api: &ApiRequest) -> Result<(Operation, Map<String, Value>), LogicalError> {
    let query_data = || -> Map<String, Value> {
        api.query
            .iter()
            // `help` is reserved for help, as in Vault.
            .filter(|(key, _)| key.as_str() != "list" && key.as_str() != "help")
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect()
    };
    let operation = match api.method.as_str() {
        "LIST" => Operation::List,
        // Only a GET reads `list`, as in Vault; `?list=yes` is a 400, not a read.
        "GET" | "HEAD" if api.query_flag("list")?.unwrap_or(false) => Operation::List,
        "GET" | "HEAD" => Operation::Read,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        _ => return Err(LogicalError::UnsupportedOperation),
    };
    if operation == Operation::Patch {
        check_patch_content_type(&api.headers)?;
    }
    let data = match operation {
        Operation::Read | Operation::List => query_data(),
        // A snapshot restore's body is the snapshot file itself, not JSON.
        Operation::Update if takes_binary_body(&api.path) => Map::new(),
        Operation::Delete => {
            let mut data = query_data();
            data.extend(body_object(&api.body)?);
            data
        }
        _ => body_object(&api.body)?,
    };
    Ok((operation, data))
}

/// The paths whose request body is binary (a saved snapshot), read by their handler.
fn takes_binary_body(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "sys/storage/raft/snapshot" | "sys/storage/raft/snapshot-force"
    )
}

/// Vault takes a PATCH body only as a JSON merge patch: a missing or unparsable
/// `Content-Type` is 400, any other media type 415, before the body is read.
fn check_patch_content_type(headers: &http::HeaderMap) -> Result<(), LogicalError> {
    let header = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = header
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type.is_empty() {
        return Err(LogicalError::BadRequest("mime: no media type".to_string()));
    }
    if media_type != "application/merge-patch+json" {
        return Err(LogicalError::UnsupportedMediaType(format!(
            "PATCH requires Content-Type application/merge-patch+json, got {media_type:?}"
        )));
    }
    Ok(())
}

/// Paths that need no token, as in Vault. `sys/rekey/{init,update,verify}` and
/// `sys/generate-root/{attempt,update}` need none either, but never reach the router:
/// the core answers them before it (`core::key_operations`), as Vault's HTTP layer does.
fn is_unauthenticated(route: &Route, operation: Operation) -> bool {
    let rest = route.rest.as_str();
    match (route.kind, route.entry.mount_type.as_str()) {
        (TableKind::Auth, "userpass") => rest.starts_with("login/") && operation != Operation::List,
        (TableKind::Secrets, "system") => matches!(
            rest.trim_end_matches('/'),
            "wrapping/lookup"
                | "wrapping/unwrap"
                | "wrapping/pubkey"
                | "replication/status"
                | "replication/performance/status"
                | "replication/dr/status"
        ),
        _ => false,
    }
}

/// Vault's root-protected paths: they need `sudo` in addition to the capability.
fn requires_sudo(route: &Route, path: &str) -> bool {
    let rest = route.rest.trim_end_matches('/');
    match (route.kind, route.entry.mount_type.as_str()) {
        (TableKind::Secrets, "system") => {
            rest.starts_with("auth/")
                || rest == "audit"
                || rest.starts_with("audit/")
                || rest == "rotate"
                || rest == "remount"
                || rest == "rekey/backup"
                || rest == "seal"
                || rest == "step-down"
                || rest == "monitor"
                || rest.starts_with("raw")
                || rest.starts_with("leases/revoke-prefix/")
                || rest.starts_with("leases/revoke-force/")
                || rest.starts_with("revoke-prefix/")
                || rest.starts_with("storage/raft/remove-peer")
                || rest == "storage/raft/snapshot"
                || rest == "storage/raft/snapshot-force"
                || rest.ends_with("primary/secondary-token")
                || rest == "replication/reindex"
                || rest == "replication/performance/reindex"
                || rest.starts_with("config/")
        }
        (TableKind::Auth, "token") => {
            rest.starts_with("revoke-orphan") || rest.starts_with("accessors")
        }
        _ => {
            let _ = path;
            false
        }
    }
}

/// The token backend's view of the policy store.
struct PolicyAdapter {
    store: PolicyStore,
}

impl PolicyLookup for PolicyAdapter {
    fn policy_exists(&self, name: &str) -> bool {
        matches!(self.store.get(name), Ok(Some(_)))
    }

    fn has_sudo(&self, policies: &[String], path: &str) -> bool {
        self.store
            .acl_for(policies)
            .map(|acl| {
                acl.is_root()
                    || acl
                        .capabilities(path)
                        .iter()
                        .any(|capability| capability == "sudo")
            })
            .unwrap_or(false)
    }
}

/// Empties a revoked token's cubbyhole.
struct CubbyholeCleanup {
    barrier: Barrier,
    prefix: Arc<RwLock<Option<String>>>,
}

impl RevocationHook for CubbyholeCleanup {
    fn token_revoked<'a>(
        &'a self,
        revoked: &'a RevokedToken,
    ) -> BoxFuture<'a, Result<(), BarrierError>> {
        Box::pin(async move {
            let prefix = self
                .prefix
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            let Some(prefix) = prefix else { return Ok(()) };
            let view = self.barrier.view(prefix);
            engines::cubbyhole::destroy_for_token(&view, &revoked.salted_id)
                .await
                .map_err(|error| BarrierError::Corrupt {
                    key: "cubbyhole".into(),
                    reason: error.to_string(),
                })
        })
    }
}

impl LogicalCore {
    #[allow(clippy::too_many_arguments)]
    fn audit_input(
        &self,
        request_id: &str,
        path: &str,
        request: &Request,
        route: &Route,
        caller: Option<&Caller>,
        granting_policies: Vec<String>,
        wrap_ttl: Option<i64>,
    ) -> AuditInput {
        let mut input = AuditInput::new(request.operation, path, self.env.clock.unix_nanos());
        input.request_id = request_id.to_string();
        input.mount_point = route.mount_point.clone();
        input.mount_type = route.entry.mount_type.clone();
        input.mount_accessor = route.entry.accessor.clone();
        input.request_data = request.data.clone();
        input.wrap_ttl_seconds = wrap_ttl.unwrap_or(0);
        input.non_hmac_request_keys = route.entry.config.audit_non_hmac_request_keys.clone();
        input.non_hmac_response_keys = route.entry.config.audit_non_hmac_response_keys.clone();
        if let Some(caller) = caller {
            let entry = &caller.entry;
            input.client_token = caller.token.clone();
            input.client_token_accessor = entry.accessor.clone();
            input.auth = Some(crate::audit::AuditAuth {
                client_token: caller.token.clone(),
                accessor: entry.accessor.clone(),
                display_name: entry.display_name.clone(),
                policies: entry.policies.clone(),
                token_policies: entry.policies.clone(),
                identity_policies: Vec::new(),
                metadata: entry.meta_json().unwrap_or_default(),
                entity_id: entry.entity_id.clone(),
                token_type: entry.token_type.as_str().to_string(),
                token_ttl_seconds: entry.ttl,
                token_issue_time_unix: Some(entry.creation_time),
                num_uses: entry.num_uses,
                remaining_uses: entry.num_uses,
                policy_results: Some(crate::audit::PolicyResults {
                    allowed: true,
                    granting_policies: granting_policies
                        .into_iter()
                        .map(|name| crate::audit::PolicyInfo {
                            name,
                            namespace_id: "root".into(),
                            policy_type: "acl".into(),
                            ..Default::default()
                        })
                        .collect(),
                }),
            });
        } else if let Some(token) = &request.client_token {
            input.client_token = token.clone();
        }
        input
    }
}

/// Records `vault.route.<operation>.<mount>` when dropped.
struct RouteTimer {
    telemetry: crate::metrics::Telemetry,
    name: String,
    started: std::time::Instant,
}

impl RouteTimer {
    fn start(telemetry: crate::metrics::Telemetry, name: String) -> Self {
        let started = telemetry.now();
        Self {
            telemetry,
            name,
            started,
        }
    }
}

impl Drop for RouteTimer {
    fn drop(&mut self) {
        let key = crate::metrics::SeriesKey {
            name: std::borrow::Cow::Owned(std::mem::take(&mut self.name)),
            labels: Vec::new(),
        };
        self.telemetry
            .metrics
            .measure_since(key, self.started, self.telemetry.now());
    }
}

/// How a request's staged run ended.
// Built once per request and matched at once: boxing the answer would cost an
// allocation on every request to save a move.
#[allow(clippy::large_enum_variant)]
enum Staged {
    /// Answered here: its writes commit (on success) or are dropped.
    Answered(Result<(ApiResponse, Option<Response>), LogicalError>),
    /// It writes replicated state on a performance secondary: its writes are dropped
    /// and it goes to the primary.
    ToPrimary(Arc<crate::replication::Replication>),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::mounts::MountConfig;

    fn route(kind: TableKind, mount_type: &str, version: Option<&str>, rest: &str) -> Route {
        let mut options = BTreeMap::new();
        if let Some(version) = version {
            options.insert("version".to_string(), version.to_string());
        }
        Route {
            kind,
            entry: MountEntry {
                path: format!("{mount_type}/"),
                mount_type: mount_type.to_string(),
                description: String::new(),
                accessor: format!("{mount_type}_1234"),
                uuid: format!("uuid-{mount_type}"),
                local: false,
                seal_wrap: false,
                external_entropy_access: false,
                options,
                config: MountConfig::default(),
                tainted: false,
            },
            rest: rest.to_string(),
            mount_point: format!("{mount_type}/"),
        }
    }

    #[test]
    fn creations_and_logins_hold_no_stripe_other_non_kv_writes_share_one() {
        let token = |rest| route(TableKind::Auth, "token", None, rest);
        for rest in ["create", "create-orphan", "create/web"] {
            assert_eq!(write_lock_stripe(&token(rest), Operation::Update), None);
        }
        let login = route(TableKind::Auth, "userpass", None, "login/alice");
        assert_eq!(write_lock_stripe(&login, Operation::Update), None);
        // Revocations, renewals, roles and users read and change what others hold.
        for rest in ["revoke", "renew-self", "roles/web", "create-web"] {
            assert_eq!(write_lock_stripe(&token(rest), Operation::Update), Some(0));
        }
        let user = route(TableKind::Auth, "userpass", None, "users/alice");
        assert_eq!(write_lock_stripe(&user, Operation::Update), Some(0));
        let policy = route(TableKind::Secrets, "system", None, "policy/web");
        assert_eq!(write_lock_stripe(&policy, Operation::Update), Some(0));
        // Reads hold none.
        assert_eq!(write_lock_stripe(&user, Operation::Read), None);
    }

    #[test]
    fn kv_writes_hold_their_secrets_stripe() {
        let data = route(TableKind::Secrets, "kv", Some("2"), "data/app/db");
        let metadata = route(TableKind::Secrets, "kv", Some("2"), "metadata/app/db");
        let other = route(TableKind::Secrets, "kv", Some("2"), "data/app/web");
        let stripe = write_lock_stripe(&data, Operation::Update).unwrap();
        assert_ne!(stripe, 0);
        // A secret's data and metadata are one secret.
        assert_eq!(
            write_lock_stripe(&metadata, Operation::Delete),
            Some(stripe)
        );
        assert_ne!(write_lock_stripe(&other, Operation::Update), Some(stripe));
        let v1 = route(TableKind::Secrets, "kv", None, "app/db");
        assert_ne!(write_lock_stripe(&v1, Operation::Update), Some(0));
    }
}
