//! [`TokenStore`]: creation, lookup, use counting, renewal and revocation of tokens.
//!
//! Storage layout, relative to the view the caller gives (`sys/token/`, local):
//!
//! | key | value |
//! |---|---|
//! | `salt` | the cluster's token salt and long-form signing key (random, created once) |
//! | `id/<salted id>` | [`TokenEntry`] |
//! | `accessor/<salted accessor>` | the accessor and the salted id it belongs to |
//! | `parent/<parent salted id>/<child salted id>` | empty: the child index |
//!
//! A salted id is hex HMAC-SHA256(salt, short token); a salted accessor likewise.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::entry::{TokenEntry, TokenType};
use super::format;
use super::{DEFAULT_LEASE_TTL_SECONDS, MAX_LEASE_TTL_SECONDS};
use crate::barrier::write_set::{self, Access};
use crate::barrier::{BarrierError, View, Write};
use crate::env::SharedRng;
use crate::logical::{Auth, LogicalError};

/// The most policies one token may carry.
pub const POLICIES_PER_TOKEN_MAX: usize = 64;
/// The longest policy name accepted on a token.
pub const POLICY_NAME_BYTES_MAX: usize = 128;
/// The most `meta` entries, and the longest key and value.
pub const META_ENTRIES_MAX: usize = 64;
pub const META_KEY_BYTES_MAX: usize = 128;
pub const META_VALUE_BYTES_MAX: usize = 512;
/// `num_uses` of a token whose last use has been admitted and which is revoked once
/// that request finishes (Vault's `tokenRevocationPending`).
pub const REVOCATION_PENDING: i64 = -1;

/// The largest `num_uses` a token may be given.
pub const NUM_USES_MAX: i64 = 1_000_000;
/// The longest display name (Vault truncates; we refuse).
pub const DISPLAY_NAME_BYTES_MAX: usize = 256;
/// Writes per storage batch while revoking a tree; far below the storage batch limit
/// so one revocation never hogs the log.
pub const REVOKE_BATCH_WRITES_MAX: usize = 1024;

/// The salt and signing key of every token, below the token store's prefix: the one key of
/// the store a node caches (the cache watcher drops the copy when it changes).
pub const SALT_KEY: &str = "salt";
const ID_PREFIX: &str = "id/";
const ACCESSOR_PREFIX: &str = "accessor/";
const PARENT_PREFIX: &str = "parent/";

type HmacSha256 = Hmac<Sha256>;

/// What the token store refuses, or a storage failure underneath.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("token not found")]
    NotFound,
    #[error(transparent)]
    Storage(#[from] BarrierError),
    #[error(transparent)]
    LockOrder(#[from] write_set::UpgradeRefused),
}

impl From<TokenError> for LogicalError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid(message) => LogicalError::BadRequest(message),
            TokenError::NotFound => LogicalError::BadRequest(error.to_string()),
            TokenError::Storage(barrier) => barrier.into(),
            TokenError::LockOrder(refused) => LogicalError::Internal(refused.to_string()),
        }
    }
}

/// A revoked token, as hooks see it (never the token text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub salted_id: String,
    pub accessor: String,
    /// The path the token was created on, which names its own lease.
    pub path: String,
}

/// Told about every revoked token after its entry is gone, so data keyed by the token
/// (cubbyhole, leases) is removed too. Hooks run in revocation order, children first,
/// while the store's write lock is held: a hook must not call back into the store's
/// writing methods.
pub trait RevocationHook: Send + Sync {
    fn token_revoked<'a>(
        &'a self,
        revoked: &'a RevokedToken,
    ) -> BoxFuture<'a, Result<(), BarrierError>>;
}

/// What a new token should be. Validation of the caller's authority (policy subsets,
/// `id`, orphans) is the handler's job; the store checks shapes and bounds.
#[derive(Clone, Default)]
pub struct TokenParams {
    /// A caller-chosen token (root callers only); printed as is, never in long form.
    pub id: Option<String>,
    /// `None` inherits the parent's policies.
    pub policies: Option<Vec<String>>,
    /// Do not add `default` to `policies` (callers that settle the full set, like the
    /// token handlers, set this).
    pub no_default_policy: bool,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    pub num_uses: i64,
    pub ttl: i64,
    pub explicit_max_ttl: i64,
    pub max_ttl: i64,
    pub period: i64,
    pub renewable: bool,
    /// The creation path, e.g. `auth/token/create` or `auth/userpass/login/bob`.
    pub path: String,
    pub entity_id: String,
    pub role: String,
    pub token_type: TokenType,
}

impl std::fmt::Debug for TokenParams {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenParams")
            .field("id", &self.id.as_ref().map(|_| "<redacted>"))
            .field("policies", &self.policies)
            .field("ttl", &self.ttl)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The cluster's token secrets, created at first use.
#[derive(Clone, Serialize, Deserialize)]
struct ClusterKeys {
    /// base64 of 32 random bytes keying the salted ids.
    salt: String,
    /// base64 of 32 random bytes keying the long-form HMAC.
    signing_key: String,
}

#[derive(Clone)]
struct Keys {
    salt: [u8; 32],
    signing_key: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct AccessorRecord {
    accessor: String,
    salted_id: String,
}

/// The token store. Cheap to clone; clones share the cache, lock and hooks.
#[derive(Clone)]
pub struct TokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    view: View,
    rng: SharedRng,
    keys: Mutex<Option<Keys>>,
    /// Guards read-then-write changes (a parent still valid, a use not yet spent, an
    /// id not yet taken). Creating a token with a fresh random id only adds records and
    /// checks that its parent lives, so creations hold it shared and run side by side
    /// (every login pays one); whatever reads an entry and changes or removes it (uses,
    /// renewals, revocations, a caller-chosen id) holds it exclusive, so a parent is
    /// never revoked between a creation's check and its commit. Taken through
    /// [`write_set::hold_rw`], so inside a request it is kept until the request's
    /// writes commit.
    tree_lock: Arc<tokio::sync::RwLock<()>>,
    hooks: Mutex<Vec<Arc<dyn RevocationHook>>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TokenStore")
    }
}

impl TokenStore {
    /// `view` is the local `sys/token/` view.
    /// How many tokens are stored (`vault.token.count`; a listing, so scrape-time only).
    pub fn count(&self) -> Result<usize, BarrierError> {
        Ok(self.inner.view.list(ID_PREFIX)?.len())
    }

    pub fn new(view: View, rng: SharedRng) -> Self {
        Self {
            inner: Arc::new(Inner {
                view,
                rng,
                keys: Mutex::new(None),
                tree_lock: Arc::new(tokio::sync::RwLock::new(())),
                hooks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Take the tree lock `access`-wise for the rest of the request.
    async fn lock(&self, access: Access) -> Result<Option<write_set::RwGuard>, TokenError> {
        Ok(write_set::hold_rw(&self.inner.tree_lock, access).await?)
    }

    pub fn add_revocation_hook(&self, hook: Arc<dyn RevocationHook>) {
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(hook);
    }

    /// A root token: policies `["root"]`, no expiry, display name `root`. `id` is the
    /// dev server's `-dev-root-token-id`; otherwise a fresh short token.
    pub async fn create_root(
        &self,
        now_unix: i64,
        id: Option<&str>,
    ) -> Result<(String, TokenEntry), TokenError> {
        let params = TokenParams {
            id: Some(id.map_or_else(|| format::new_short_token(&self.inner.rng), str::to_string)),
            policies: Some(vec!["root".to_string()]),
            display_name: "root".to_string(),
            path: "auth/token/root".to_string(),
            ..TokenParams::default()
        };
        let (auth, entry) = self.create(None, params, now_unix).await?;
        Ok((auth.client_token, entry))
    }

    /// Create a token below `parent` (or an orphan), applying Vault's TTL rules.
    pub async fn create(
        &self,
        parent: Option<&TokenEntry>,
        params: TokenParams,
        now_unix: i64,
    ) -> Result<(Auth, TokenEntry), TokenError> {
        if params.token_type == TokenType::Batch {
            return Err(TokenError::Invalid(
                "batch tokens are not supported by this server".to_string(),
            ));
        }
        check_bounds(&params)?;
        let policies = match &params.policies {
            Some(policies) => sanitize_policies(policies, !params.no_default_policy),
            None => parent.map_or_else(
                || sanitize_policies(&[], !params.no_default_policy),
                |parent| parent.policies.clone(),
            ),
        };
        if policies.len() > POLICIES_PER_TOKEN_MAX {
            return Err(TokenError::Invalid(format!(
                "a token may carry at most {POLICIES_PER_TOKEN_MAX} policies"
            )));
        }
        let is_root = policies.iter().any(|policy| policy == "root");
        let (ttl, renewable) = creation_ttl(&params, is_root, parent)?;

        let keys = self.keys().await?;
        let (short, client_token) = match &params.id {
            Some(id) => (id.clone(), id.clone()),
            None => {
                let short = format::new_short_token(&self.inner.rng);
                let long = format::encode_long_form(&short, &keys.signing_key);
                (short, long)
            }
        };
        let salted_id = salt(&keys.salt, &short);
        let accessor = format::new_accessor(&self.inner.rng);
        let entry = TokenEntry {
            id: client_token.clone(),
            salted_id: salted_id.clone(),
            accessor: accessor.clone(),
            parent: parent.map(|parent| parent.salted_id.clone()),
            policies,
            meta: params.meta,
            display_name: params.display_name,
            num_uses: params.num_uses,
            creation_time: now_unix,
            ttl,
            explicit_max_ttl: params.explicit_max_ttl,
            max_ttl: params.max_ttl,
            period: params.period,
            path: params.path,
            entity_id: params.entity_id,
            renewable,
            role: params.role,
            token_type: params.token_type,
            expire_time: (ttl > 0).then(|| now_unix.saturating_add(ttl)),
            last_renewal_time: None,
        };

        // A fresh random id cannot be taken; a caller-chosen one may be, by a creation
        // running beside this one, so that check needs the lock alone.
        let access = if params.id.is_some() {
            Access::Exclusive
        } else {
            Access::Shared
        };
        let _guard = self.lock(access).await?;
        if self.exists_by_salted(&salted_id)? {
            return Err(TokenError::Invalid(
                "cannot create a token with a duplicate ID".to_string(),
            ));
        }
        if let Some(parent) = parent
            && !self.exists_by_salted(&parent.salted_id)?
        {
            return Err(TokenError::Invalid(
                "parent token is no longer valid".to_string(),
            ));
        }
        let mut writes = vec![
            put_json(format!("{ID_PREFIX}{salted_id}"), &entry),
            put_json(
                format!("{ACCESSOR_PREFIX}{}", salt(&keys.salt, &accessor)),
                &AccessorRecord {
                    accessor: accessor.clone(),
                    salted_id: salted_id.clone(),
                },
            ),
        ];
        if let Some(parent) = &entry.parent {
            writes.push(Write::Put {
                key: format!("{PARENT_PREFIX}{parent}/{salted_id}"),
                value: Vec::new(),
            });
        }
        self.inner.view.commit(writes).await?;
        Ok((auth_for(&entry), entry))
    }

    /// The live entry of a presented token; expired, revoked, malformed or forged
    /// tokens are all simply absent.
    pub fn lookup(&self, token: &str, now_unix: i64) -> Result<Option<TokenEntry>, TokenError> {
        let _stage =
            tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.token.lookup")
                .entered();
        let Some(salted_id) = self.salted_id_of(token)? else {
            return Ok(None);
        };
        Ok(self
            .entry_by_salted(&salted_id)?
            .filter(|entry| !entry.is_expired(now_unix))
            .map(|mut entry| {
                entry.id = token.to_string();
                entry
            }))
    }

    /// The live entry of an accessor (its `id` left empty).
    pub fn lookup_accessor(
        &self,
        accessor: &str,
        now_unix: i64,
    ) -> Result<Option<TokenEntry>, TokenError> {
        let Some(salted_id) = self.salted_id_of_accessor(accessor)? else {
            return Ok(None);
        };
        Ok(self
            .entry_by_salted(&salted_id)?
            .filter(|entry| !entry.is_expired(now_unix)))
    }

    /// Every accessor (Vault's `LIST auth/token/accessors`), sorted.
    pub fn list_accessors(&self) -> Result<Vec<String>, TokenError> {
        let mut accessors = Vec::new();
        for salted in self.inner.view.list(ACCESSOR_PREFIX)? {
            if let Some(record) = self
                .inner
                .view
                .get_json::<AccessorRecord>(&format!("{ACCESSOR_PREFIX}{salted}"))?
            {
                accessors.push(record.accessor);
            }
        }
        accessors.sort();
        Ok(accessors)
    }

    /// Count one use of a token for a request. Returns the entry as the request may
    /// use it. When that was the last allowed use (the returned `num_uses` is 1), the
    /// stored token is left revocation-pending, as Vault does: no later request is
    /// admitted, but the admitted request's own handler can still see its token (a
    /// `lookup-self` or an unwrap on the last use works). The caller revokes the token
    /// once that request is done.
    pub async fn use_token(
        &self,
        token: &str,
        now_unix: i64,
    ) -> Result<Option<TokenEntry>, TokenError> {
        let _guard = self.lock(Access::Exclusive).await?;
        let Some(mut entry) = self.lookup(token, now_unix)? else {
            return Ok(None);
        };
        if entry.num_uses == REVOCATION_PENDING {
            return Ok(None);
        }
        if entry.num_uses == 0 {
            return Ok(Some(entry));
        }
        let admitted = entry.clone();
        // Still under the lock: no concurrent use can see the last use as unspent.
        entry.num_uses = if entry.num_uses == 1 {
            REVOCATION_PENDING
        } else {
            entry.num_uses - 1
        };
        self.inner
            .view
            .put_json(&format!("{ID_PREFIX}{}", entry.salted_id), &entry)
            .await?;
        Ok(Some(admitted))
    }

    /// Renew a token by `increment` seconds (0 asks for its original TTL), within its
    /// max TTL; periodic tokens get their period again. Returns the updated entry and
    /// warnings (a capped TTL).
    pub async fn renew(
        &self,
        token: &str,
        increment: i64,
        now_unix: i64,
    ) -> Result<(TokenEntry, Vec<String>), TokenError> {
        let salted_id = self.salted_id_of(token)?.ok_or(TokenError::NotFound)?;
        let (mut entry, warnings) = self.renew_salted(&salted_id, increment, now_unix).await?;
        entry.id = token.to_string();
        Ok((entry, warnings))
    }

    pub async fn renew_accessor(
        &self,
        accessor: &str,
        increment: i64,
        now_unix: i64,
    ) -> Result<(TokenEntry, Vec<String>), TokenError> {
        let salted_id = self
            .salted_id_of_accessor(accessor)?
            .ok_or(TokenError::NotFound)?;
        self.renew_salted(&salted_id, increment, now_unix).await
    }

    async fn renew_salted(
        &self,
        salted_id: &str,
        increment: i64,
        now_unix: i64,
    ) -> Result<(TokenEntry, Vec<String>), TokenError> {
        let _guard = self.lock(Access::Exclusive).await?;
        let mut entry = self
            .entry_by_salted(salted_id)?
            .filter(|entry| !entry.is_expired(now_unix))
            .ok_or(TokenError::NotFound)?;
        if !entry.renewable || entry.expire_time.is_none() {
            return Err(TokenError::Invalid("lease is not renewable".to_string()));
        }
        let (ttl, warnings) = renewal_ttl(&entry, increment, now_unix)?;
        entry.expire_time = Some(now_unix.saturating_add(ttl));
        entry.last_renewal_time = Some(now_unix);
        self.inner
            .view
            .put_json(&format!("{ID_PREFIX}{salted_id}"), &entry)
            .await?;
        Ok((entry, warnings))
    }

    /// Revoke a token and all its descendants (orphans created below it survive).
    pub async fn revoke_tree(&self, token: &str) -> Result<Vec<RevokedToken>, TokenError> {
        match self.salted_id_of(token)? {
            Some(salted_id) => self.revoke_tree_salted(&salted_id).await,
            None => Ok(Vec::new()),
        }
    }

    pub async fn revoke_accessor(&self, accessor: &str) -> Result<Vec<RevokedToken>, TokenError> {
        match self.salted_id_of_accessor(accessor)? {
            Some(salted_id) => self.revoke_tree_salted(&salted_id).await,
            None => Ok(Vec::new()),
        }
    }

    /// Revoke the token whose salted id is given, with its tree. The expiration
    /// manager knows tokens only by salted id.
    pub async fn revoke_tree_salted(
        &self,
        salted_id: &str,
    ) -> Result<Vec<RevokedToken>, TokenError> {
        let _guard = self.lock(Access::Exclusive).await?;
        self.revoke_tree_locked(salted_id).await
    }

    /// [`Self::revoke_tree_salted`] for callers already holding the write lock.
    async fn revoke_tree_locked(&self, salted_id: &str) -> Result<Vec<RevokedToken>, TokenError> {
        // Depth-first preorder; revoked in reverse so children go before parents and
        // a crash midway never leaves a child whose parent is already gone.
        let mut order = Vec::new();
        let mut pending = vec![salted_id.to_string()];
        while let Some(current) = pending.pop() {
            for child in self
                .inner
                .view
                .list(&format!("{PARENT_PREFIX}{current}/"))?
            {
                pending.push(child);
            }
            order.push(current);
        }
        order.reverse();
        let mut revoked = Vec::new();
        for chunk in order.chunks(REVOKE_BATCH_WRITES_MAX / 4) {
            let mut writes = Vec::new();
            let mut chunk_revoked = Vec::new();
            for salted in chunk {
                let entry = self.entry_by_salted(salted)?;
                writes.extend(self.deletion_writes(salted, entry.as_ref()).await?);
                if let Some(entry) = entry {
                    chunk_revoked.push(RevokedToken {
                        salted_id: salted.clone(),
                        accessor: entry.accessor,
                        path: entry.path,
                    });
                }
            }
            // Bulk: each batch commits at once (a tree may outgrow one entry), and its
            // hooks run on what is gone.
            self.inner.view.commit_now(writes).await?;
            self.run_hooks(&chunk_revoked).await?;
            revoked.extend(chunk_revoked);
        }
        Ok(revoked)
    }

    /// Revoke only this token; its children become orphans (Vault's `revoke-orphan`).
    pub async fn revoke_orphan(&self, token: &str) -> Result<Vec<RevokedToken>, TokenError> {
        let Some(salted_id) = self.salted_id_of(token)? else {
            return Ok(Vec::new());
        };
        let _guard = self.lock(Access::Exclusive).await?;
        let Some(entry) = self.entry_by_salted(&salted_id)? else {
            return Ok(Vec::new());
        };
        let children = self
            .inner
            .view
            .list(&format!("{PARENT_PREFIX}{salted_id}/"))?;
        for chunk in children.chunks(REVOKE_BATCH_WRITES_MAX / 2) {
            let mut writes = Vec::new();
            for child in chunk {
                if let Some(mut child_entry) = self.entry_by_salted(child)? {
                    child_entry.parent = None;
                    writes.push(put_json(format!("{ID_PREFIX}{child}"), &child_entry));
                }
                writes.push(Write::Delete {
                    key: format!("{PARENT_PREFIX}{salted_id}/{child}"),
                });
            }
            self.inner.view.commit_now(writes).await?;
        }
        let writes = self.deletion_writes(&salted_id, Some(&entry)).await?;
        self.inner.view.commit_now(writes).await?;
        let revoked = vec![RevokedToken {
            salted_id,
            accessor: entry.accessor,
            path: entry.path,
        }];
        self.run_hooks(&revoked).await?;
        Ok(revoked)
    }

    /// The salted id a presented token maps to: long forms are verified and unwrapped,
    /// anything else (roots, custom ids) is salted as is.
    pub fn salted_id_of(&self, token: &str) -> Result<Option<String>, TokenError> {
        if !format::is_acceptable_text(token) {
            return Ok(None);
        }
        let Some(keys) = self.stored_keys()? else {
            return Ok(None);
        };
        let short = if token.starts_with(format::SERVICE_PREFIX) && !format::is_short_token(token) {
            match format::decode_long_form(token, &keys.signing_key) {
                Some(short) => short,
                None => return Ok(None),
            }
        } else {
            token.to_string()
        };
        Ok(Some(salt(&keys.salt, &short)))
    }

    fn salted_id_of_accessor(&self, accessor: &str) -> Result<Option<String>, TokenError> {
        if !format::is_acceptable_text(accessor) {
            return Ok(None);
        }
        let Some(keys) = self.stored_keys()? else {
            return Ok(None);
        };
        let record = self.inner.view.get_json::<AccessorRecord>(&format!(
            "{ACCESSOR_PREFIX}{}",
            salt(&keys.salt, accessor)
        ))?;
        Ok(record.map(|record| record.salted_id))
    }

    /// The entry stored under a salted id, whatever its expiry.
    /// Whether a token entry is stored under `salted_id`, without opening it (what the
    /// duplicate and parent checks of every creation need).
    fn exists_by_salted(&self, salted_id: &str) -> Result<bool, TokenError> {
        let Some(key) = entry_key(salted_id) else {
            return Ok(false);
        };
        Ok(self.inner.view.contains(&key)?)
    }

    pub fn entry_by_salted(&self, salted_id: &str) -> Result<Option<TokenEntry>, TokenError> {
        let Some(key) = entry_key(salted_id) else {
            return Ok(None);
        };
        Ok(self.inner.view.get_json::<TokenEntry>(&key)?)
    }

    async fn deletion_writes(
        &self,
        salted_id: &str,
        entry: Option<&TokenEntry>,
    ) -> Result<Vec<Write>, TokenError> {
        let mut writes = vec![Write::Delete {
            key: format!("{ID_PREFIX}{salted_id}"),
        }];
        if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::RevokeKeepsTokenEntry) {
            writes.clear();
        }
        if let Some(entry) = entry {
            let keys = self.keys().await?;
            writes.push(Write::Delete {
                key: format!("{ACCESSOR_PREFIX}{}", salt(&keys.salt, &entry.accessor)),
            });
            if let Some(parent) = &entry.parent {
                writes.push(Write::Delete {
                    key: format!("{PARENT_PREFIX}{parent}/{salted_id}"),
                });
            }
        }
        Ok(writes)
    }

    async fn run_hooks(&self, revoked: &[RevokedToken]) -> Result<(), TokenError> {
        let hooks = self
            .inner
            .hooks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for token in revoked {
            for hook in &hooks {
                hook.token_revoked(token).await?;
            }
        }
        Ok(())
    }

    /// The keys if they exist already (reads never create them).
    fn stored_keys(&self) -> Result<Option<Keys>, TokenError> {
        if let Some(keys) = self
            .inner
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
        {
            return Ok(Some(keys));
        }
        let Some(stored) = self.inner.view.get_json::<ClusterKeys>(SALT_KEY)? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| {
            TokenError::Storage(BarrierError::Corrupt {
                key: self.inner.view.full_key(SALT_KEY),
                reason: reason.to_string(),
            })
        };
        let decode = |text: &str| -> Result<[u8; 32], TokenError> {
            STANDARD
                .decode(text)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| corrupt("token salt is not 32 bytes of base64"))
        };
        let keys = Keys {
            salt: decode(&stored.salt)?,
            signing_key: decode(&stored.signing_key)?,
        };
        *self
            .inner
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(keys.clone());
        Ok(Some(keys))
    }

    /// Drop the cached salt and signing key, so the next use reads them from storage
    /// (or creates them): after storage was replaced under this store (a performance
    /// secondary's activation wipes the token store with everything else).
    pub fn forget_cached_keys(&self) {
        *self
            .inner
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    async fn keys(&self) -> Result<Keys, TokenError> {
        if let Some(keys) = self.stored_keys()? {
            return Ok(keys);
        }
        let keys = Keys {
            salt: self.inner.rng.bytes(),
            signing_key: self.inner.rng.bytes(),
        };
        // At once, not staged with the request: the keys are cached in memory below and
        // every later token is salted with them.
        let record = ClusterKeys {
            salt: STANDARD.encode(keys.salt),
            signing_key: STANDARD.encode(keys.signing_key),
        };
        self.inner
            .view
            .commit_now(vec![Write::Put {
                key: SALT_KEY.to_string(),
                value: serde_json::to_vec(&record).expect("records always serialize"),
            }])
            .await?;
        *self
            .inner
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(keys.clone());
        Ok(keys)
    }
}

/// Vault's `auth` block for a freshly created or renewed entry.
pub fn auth_for(entry: &TokenEntry) -> Auth {
    Auth {
        client_token: entry.id.clone(),
        accessor: entry.accessor.clone(),
        policies: entry.policies.clone(),
        token_policies: entry.policies.clone(),
        identity_policies: Vec::new(),
        metadata: entry.meta_json(),
        lease_duration: entry.ttl,
        renewable: entry.renewable,
        entity_id: entry.entity_id.clone(),
        token_type: entry.token_type.as_str().to_string(),
        orphan: entry.orphan(),
        mfa_requirement: None,
        num_uses: entry.num_uses,
    }
}

/// Vault's `policyutil.SanitizePolicies`: trimmed, lowercase, deduplicated, sorted,
/// `default` added when asked, and `root` alone when present.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|policy| policy.trim().to_lowercase())
        .filter(|policy| !policy.is_empty())
        .collect();
    if out.iter().any(|policy| policy == "root") {
        return vec!["root".to_string()];
    }
    if add_default {
        out.push("default".to_string());
    }
    out.sort();
    out.dedup();
    out
}

fn check_bounds(params: &TokenParams) -> Result<(), TokenError> {
    let invalid = |message: String| Err(TokenError::Invalid(message));
    if let Some(id) = &params.id
        && !format::is_acceptable_text(id)
    {
        return invalid(format!(
            "token IDs must be 1 to {} printable characters",
            format::TOKEN_BYTES_MAX
        ));
    }
    if let Some(policies) = &params.policies {
        if policies.len() > POLICIES_PER_TOKEN_MAX {
            return invalid(format!(
                "a token may carry at most {POLICIES_PER_TOKEN_MAX} policies"
            ));
        }
        if policies
            .iter()
            .any(|policy| policy.len() > POLICY_NAME_BYTES_MAX)
        {
            return invalid(format!(
                "policy names are at most {POLICY_NAME_BYTES_MAX} bytes"
            ));
        }
    }
    if params.meta.len() > META_ENTRIES_MAX {
        return invalid(format!("at most {META_ENTRIES_MAX} metadata entries"));
    }
    if params
        .meta
        .iter()
        .any(|(key, value)| key.len() > META_KEY_BYTES_MAX || value.len() > META_VALUE_BYTES_MAX)
    {
        return invalid(format!(
            "metadata keys are at most {META_KEY_BYTES_MAX} bytes and values {META_VALUE_BYTES_MAX}"
        ));
    }
    if params.num_uses < 0 {
        return invalid("number of uses cannot be negative".to_string());
    }
    if params.num_uses > NUM_USES_MAX {
        return invalid(format!("number of uses cannot exceed {NUM_USES_MAX}"));
    }
    if params.display_name.len() > DISPLAY_NAME_BYTES_MAX {
        return invalid(format!(
            "display names are at most {DISPLAY_NAME_BYTES_MAX} bytes"
        ));
    }
    for (name, value) in [
        ("ttl", params.ttl),
        ("explicit_max_ttl", params.explicit_max_ttl),
        ("max_ttl", params.max_ttl),
        ("period", params.period),
    ] {
        if value < 0 {
            return invalid(format!("{name} cannot be negative"));
        }
    }
    Ok(())
}

/// Vault's creation TTL (`handleCreateCommon`): a period wins (capped by the explicit
/// max); otherwise the requested TTL or the default, capped by the max TTLs. A TTL of
/// 0 (non-expiring) is only possible for root tokens of non-expiring parents.
fn creation_ttl(
    params: &TokenParams,
    is_root: bool,
    parent: Option<&TokenEntry>,
) -> Result<(i64, bool), TokenError> {
    let mut ttl = if params.period > 0 {
        params.period
    } else {
        let mut ttl = params.ttl;
        if ttl == 0 && !is_root {
            ttl = DEFAULT_LEASE_TTL_SECONDS;
        }
        let mut max = MAX_LEASE_TTL_SECONDS;
        if params.max_ttl > 0 {
            max = max.min(params.max_ttl);
        }
        if ttl > max {
            ttl = max;
        }
        ttl
    };
    if params.explicit_max_ttl > 0 && (ttl == 0 || ttl > params.explicit_max_ttl) {
        ttl = params.explicit_max_ttl;
    }
    let mut renewable = params.renewable;
    if ttl == 0 {
        if parent.is_some_and(|parent| parent.expire_time.is_some()) {
            return Err(TokenError::Invalid(
                "expiring root tokens cannot create non-expiring root tokens".to_string(),
            ));
        }
        // A non-expiring token cannot be renewed; Vault does not advertise it as such.
        renewable = false;
    }
    Ok((ttl, renewable))
}

/// Vault's `calculateTTL` for a token renewal.
fn renewal_ttl(
    entry: &TokenEntry,
    increment: i64,
    now_unix: i64,
) -> Result<(i64, Vec<String>), TokenError> {
    let mut warnings = Vec::new();
    let start = entry.creation_time;
    if entry.period > 0 {
        let mut ttl = entry.period;
        if entry.explicit_max_ttl > 0 {
            let left = start.saturating_add(entry.explicit_max_ttl) - now_unix;
            if left <= 0 {
                return Err(TokenError::Invalid(
                    "past the explicit max TTL, cannot renew".to_string(),
                ));
            }
            if left < ttl {
                warnings.push(capped_warning(ttl, left));
                ttl = left;
            }
        }
        return Ok((ttl, warnings));
    }
    let mut max = MAX_LEASE_TTL_SECONDS;
    if entry.max_ttl > 0 {
        max = max.min(entry.max_ttl);
    }
    if entry.explicit_max_ttl > 0 {
        max = max.min(entry.explicit_max_ttl);
    }
    let mut ttl = if increment > 0 { increment } else { entry.ttl };
    if ttl <= 0 {
        ttl = DEFAULT_LEASE_TTL_SECONDS;
    }
    let left = start.saturating_add(max) - now_unix;
    if left <= 0 {
        return Err(TokenError::Invalid(
            "past the max TTL, cannot renew".to_string(),
        ));
    }
    if left < ttl {
        warnings.push(capped_warning(ttl, left));
        ttl = left;
    }
    Ok((ttl, warnings))
}

fn capped_warning(requested: i64, capped: i64) -> String {
    format!(
        "TTL of \"{requested}s\" exceeded the effective max_ttl of \"{capped}s\"; TTL value is capped accordingly"
    )
}

/// The storage key of the token entry `salted_id` names; `None` for an id no token can
/// have (empty, or one that would reach outside the entry prefix).
fn entry_key(salted_id: &str) -> Option<String> {
    (!salted_id.is_empty() && !salted_id.contains('/')).then(|| format!("{ID_PREFIX}{salted_id}"))
}
fn salt(key: &[u8; 32], value: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn put_json<T: Serialize>(key: String, value: &T) -> Write {
    Write::Put {
        key,
        value: serde_json::to_vec(value).expect("records always serialize"),
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::storage::{KeyClass, key_class};
    use crate::token::testing::fixture;

    const NOW: i64 = 1_800_000_000;

    fn child_params(policies: &[&str], ttl: i64) -> TokenParams {
        TokenParams {
            policies: Some(policies.iter().map(|p| p.to_string()).collect()),
            ttl,
            renewable: true,
            display_name: "token".to_string(),
            path: "auth/token/create".to_string(),
            ..TokenParams::default()
        }
    }

    #[tokio::test]
    async fn root_token_is_short_never_expires_and_is_stored_only_as_an_hmac() {
        let f = fixture(1);
        let (root, entry) = f.tokens.create_root(NOW, None).await.unwrap();

        // Shape: hvs. + 24 base62, root policy, no TTL, not renewable.
        assert!(format::is_short_token(&root), "{root}");
        assert_eq!(entry.policies, vec!["root"]);
        assert_eq!(
            (entry.ttl, entry.expire_time, entry.renewable),
            (0, None, false)
        );
        assert_eq!(entry.path, "auth/token/root");
        assert_eq!(entry.accessor.len(), 24);

        // It is found years later, and by its accessor (without its id).
        let found = f
            .tokens
            .lookup(&root, NOW + 10 * 365 * 86_400)
            .unwrap()
            .unwrap();
        assert_eq!(found.id, root);
        let by_accessor = f
            .tokens
            .lookup_accessor(&entry.accessor, NOW)
            .unwrap()
            .unwrap();
        assert_eq!(by_accessor.id, "");
        assert_eq!(by_accessor.salted_id, entry.salted_id);

        // Storage never holds the token text, and every key is local.
        assert!(!f.storage_contains(&root));
        assert!(!f.storage_contains(&root["hvs.".len()..]));
        for (key, _) in f.backend.dump() {
            assert_eq!(key_class(&key), KeyClass::Local, "{key}");
        }
        // Debug output redacts the id.
        assert!(!format!("{found:?}").contains(&root));
    }

    #[tokio::test]
    async fn dev_root_token_id_is_used_as_given() {
        let f = fixture(2);
        let (root, _) = f.tokens.create_root(NOW, Some("root")).await.unwrap();
        assert_eq!(root, "root");
        assert!(f.tokens.lookup("root", NOW).unwrap().is_some());
        assert!(f.tokens.lookup("Root", NOW).unwrap().is_none());
        assert!(
            !f.storage_contains("root"),
            "neither in keys nor in plaintext values"
        );
    }

    #[tokio::test]
    async fn child_service_tokens_are_long_form_and_forgeries_are_absent() {
        let f = fixture(3);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (auth, entry) = f
            .tokens
            .create(Some(&root), child_params(&["dev"], 3600), NOW)
            .await
            .unwrap();
        assert_eq!(auth.client_token.len(), 95);
        assert_eq!(auth.policies, vec!["default", "dev"]);
        assert_eq!(
            (auth.lease_duration, auth.renewable, auth.orphan),
            (3600, true, false)
        );
        assert_eq!(entry.parent.as_deref(), Some(root.salted_id.as_str()));
        assert!(f.tokens.lookup(&auth.client_token, NOW).unwrap().is_some());
        assert!(!f.storage_contains(&auth.client_token));
        assert!(!f.storage_contains(&auth.client_token[40..80]));

        // One flipped character in the body breaks the HMAC: the token is absent.
        let mut forged = auth.client_token.clone().into_bytes();
        forged[50] = if forged[50] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(f.tokens.lookup(&forged, NOW).unwrap().is_none());
        // Garbage of every kind is simply absent.
        for garbage in ["", " ", "hvs.", "x".repeat(300).as_str(), "hvs.\u{0}"] {
            assert!(f.tokens.lookup(garbage, NOW).unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn revoking_a_parent_revokes_children_but_not_orphans() {
        let f = fixture(4);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (parent_auth, parent) = f
            .tokens
            .create(Some(&root), child_params(&["dev"], 0), NOW)
            .await
            .unwrap();
        let (child_auth, child) = f
            .tokens
            .create(Some(&parent), child_params(&["dev"], 0), NOW)
            .await
            .unwrap();
        let (grandchild_auth, _) = f
            .tokens
            .create(Some(&child), child_params(&["dev"], 0), NOW)
            .await
            .unwrap();
        let (orphan_auth, _) = f
            .tokens
            .create(None, child_params(&["dev"], 0), NOW)
            .await
            .unwrap();
        assert!(orphan_auth.orphan);

        // Revoking the parent takes the child and grandchild, children first.
        let revoked = f
            .tokens
            .revoke_tree(&parent_auth.client_token)
            .await
            .unwrap();
        assert_eq!(revoked.len(), 3);
        assert_eq!(revoked.last().unwrap().salted_id, parent.salted_id);
        for token in [&parent_auth, &child_auth, &grandchild_auth] {
            assert!(f.tokens.lookup(&token.client_token, NOW).unwrap().is_none());
            assert!(
                f.tokens
                    .lookup_accessor(&token.accessor, NOW)
                    .unwrap()
                    .is_none()
            );
        }
        assert!(
            f.tokens
                .lookup(&orphan_auth.client_token, NOW)
                .unwrap()
                .is_some()
        );
        // No index entries are left behind for revoked tokens.
        assert!(
            f.barrier
                .view(crate::storage::Store::Tokens.prefix())
                .list("parent/")
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn revoke_orphan_keeps_the_children_as_orphans() {
        let f = fixture(5);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (parent_auth, parent) = f
            .tokens
            .create(Some(&root), child_params(&[], 0), NOW)
            .await
            .unwrap();
        let (child_auth, _) = f
            .tokens
            .create(Some(&parent), child_params(&[], 0), NOW)
            .await
            .unwrap();
        f.tokens
            .revoke_orphan(&parent_auth.client_token)
            .await
            .unwrap();
        assert!(
            f.tokens
                .lookup(&parent_auth.client_token, NOW)
                .unwrap()
                .is_none()
        );
        let child = f
            .tokens
            .lookup(&child_auth.client_token, NOW)
            .unwrap()
            .unwrap();
        assert!(child.orphan());
    }

    #[tokio::test]
    async fn num_uses_runs_out_and_the_last_use_revokes() {
        let f = fixture(6);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let mut params = child_params(&["dev"], 0);
        params.num_uses = 2;
        let (auth, _) = f.tokens.create(Some(&root), params, NOW).await.unwrap();

        let first = f
            .tokens
            .use_token(&auth.client_token, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.num_uses, 2);
        assert_eq!(
            f.tokens
                .lookup(&auth.client_token, NOW)
                .unwrap()
                .unwrap()
                .num_uses,
            1
        );
        // The second use is admitted, and is the last.
        assert!(
            f.tokens
                .use_token(&auth.client_token, NOW)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            f.tokens
                .use_token(&auth.client_token, NOW)
                .await
                .unwrap()
                .is_none()
        );
        // The last use leaves it revocation-pending until its request revokes it.
        assert_eq!(
            f.tokens
                .lookup(&auth.client_token, NOW)
                .unwrap()
                .unwrap()
                .num_uses,
            REVOCATION_PENDING
        );
        f.tokens.revoke_tree(&auth.client_token).await.unwrap();
        assert!(f.tokens.lookup(&auth.client_token, NOW).unwrap().is_none());

        // Bounds are checked at creation.
        let mut negative = child_params(&[], 0);
        negative.num_uses = -1;
        assert!(f.tokens.create(Some(&root), negative, NOW).await.is_err());
        let mut huge = child_params(&[], 0);
        huge.num_uses = NUM_USES_MAX + 1;
        assert!(f.tokens.create(Some(&root), huge, NOW).await.is_err());
    }

    #[tokio::test]
    async fn concurrent_uses_of_a_single_use_token_admit_exactly_one() {
        let f = fixture(10);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let mut params = child_params(&["dev"], 0);
        params.num_uses = 1;
        let (auth, _) = f.tokens.create(Some(&root), params, NOW).await.unwrap();
        let uses = (0..8).map(|_| f.tokens.use_token(&auth.client_token, NOW));
        let admitted = futures::future::join_all(uses)
            .await
            .into_iter()
            .filter(|result| matches!(result, Ok(Some(_))))
            .count();
        assert_eq!(admitted, 1);
    }

    #[tokio::test]
    async fn creations_stage_side_by_side_and_a_revocation_waits_until_they_commit() {
        use crate::barrier::write_set::staging;
        let f = fixture(12);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (_, parent) = f
            .tokens
            .create(Some(&root), child_params(&["dev"], 0), NOW)
            .await
            .unwrap();
        // Two requests each stage a child of `parent`; neither has committed, and the
        // second did not wait for the first.
        let (first, first_set) = staging(f.tokens.create(
            Some(&parent),
            child_params(&["dev"], 0),
            NOW,
        ))
        .await;
        let (second, second_set) = staging(f.tokens.create(
            Some(&parent),
            child_params(&["dev"], 0),
            NOW,
        ))
        .now_or_never()
        .expect("a creation does not wait for another one to commit");
        let children = [first.unwrap().0, second.unwrap().0];

        // Revoking the parent now would miss the staged children: it waits for them.
        let revocation = f.tokens.revoke_tree_salted(&parent.salted_id);
        futures::pin_mut!(revocation);
        assert!(futures::poll!(revocation.as_mut()).is_pending());
        f.barrier.commit_write_set(first_set).await.unwrap();
        assert!(futures::poll!(revocation.as_mut()).is_pending());
        f.barrier.commit_write_set(second_set).await.unwrap();
        assert_eq!(revocation.await.unwrap().len(), 3);
        for child in children {
            assert!(f.tokens.lookup(&child.client_token, NOW).unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_caller_chosen_id_is_created_once_even_by_concurrent_requests() {
        use crate::barrier::write_set::staging;
        let f = fixture(13);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let with_id = || {
            let mut params = child_params(&["dev"], 0);
            params.id = Some("chosen-id".to_string());
            params
        };
        let (first, first_set) = staging(f.tokens.create(Some(&root), with_id(), NOW)).await;
        first.unwrap();
        // The second waits for the first to commit, then finds the id taken.
        let second = staging(f.tokens.create(Some(&root), with_id(), NOW));
        futures::pin_mut!(second);
        assert!(futures::poll!(second.as_mut()).is_pending());
        f.barrier.commit_write_set(first_set).await.unwrap();
        let (second, _) = second.await;
        assert!(second.unwrap_err().to_string().contains("duplicate"));
    }

    #[tokio::test]
    async fn ttls_default_to_768h_cap_at_the_max_and_expired_tokens_are_absent() {
        let f = fixture(7);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (auth, _) = f
            .tokens
            .create(Some(&root), child_params(&["dev"], 0), NOW)
            .await
            .unwrap();
        assert_eq!(auth.lease_duration, 2_764_800);
        let (capped, _) = f
            .tokens
            .create(Some(&root), child_params(&["dev"], 10 * 2_764_800), NOW)
            .await
            .unwrap();
        assert_eq!(capped.lease_duration, 2_764_800);

        let (short, _) = f
            .tokens
            .create(Some(&root), child_params(&["dev"], 60), NOW)
            .await
            .unwrap();
        assert!(
            f.tokens
                .lookup(&short.client_token, NOW + 59)
                .unwrap()
                .is_some()
        );
        assert!(
            f.tokens
                .lookup(&short.client_token, NOW + 60)
                .unwrap()
                .is_none()
        );

        // An expiring parent cannot mint a never-expiring root token.
        let (_, expiring_root) = {
            let mut params = child_params(&["root"], 600);
            params.policies = Some(vec!["root".to_string()]);
            f.tokens.create(Some(&root), params, NOW).await.unwrap()
        };
        let error = f
            .tokens
            .create(Some(&expiring_root), child_params(&["root"], 0), NOW)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("non-expiring"), "{error}");
    }

    #[tokio::test]
    async fn renewals_stay_within_the_max_ttl_and_periods_reset() {
        let f = fixture(8);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();

        // Explicit max 1000s: renewals are capped by creation + 1000, then refused.
        let mut params = child_params(&["dev"], 300);
        params.explicit_max_ttl = 1000;
        let (auth, _) = f.tokens.create(Some(&root), params, NOW).await.unwrap();
        let (entry, warnings) = f
            .tokens
            .renew(&auth.client_token, 600, NOW + 200)
            .await
            .unwrap();
        assert_eq!(entry.expire_time, Some(NOW + 800));
        assert!(warnings.is_empty());
        let (entry, warnings) = f
            .tokens
            .renew(&auth.client_token, 600, NOW + 700)
            .await
            .unwrap();
        assert_eq!(entry.expire_time, Some(NOW + 1000));
        assert_eq!(warnings.len(), 1);
        assert!(
            f.tokens
                .renew(&auth.client_token, 600, NOW + 1000)
                .await
                .is_err()
        );

        // Increment 0 asks for the original TTL.
        let (plain, _) = f
            .tokens
            .create(Some(&root), child_params(&["dev"], 300), NOW)
            .await
            .unwrap();
        let (entry, _) = f
            .tokens
            .renew(&plain.client_token, 0, NOW + 100)
            .await
            .unwrap();
        assert_eq!(entry.expire_time, Some(NOW + 400));
        assert_eq!(entry.last_renewal_time, Some(NOW + 100));

        // A periodic token lives for its period after each renewal, past 768h.
        let mut periodic = child_params(&["dev"], 0);
        periodic.period = 3600;
        let (periodic, _) = f.tokens.create(Some(&root), periodic, NOW).await.unwrap();
        assert_eq!(periodic.lease_duration, 3600);
        let mut at = NOW;
        for _ in 0..800 {
            at += 3500;
            let (entry, _) = f
                .tokens
                .renew(&periodic.client_token, 99_999, at)
                .await
                .unwrap();
            assert_eq!(entry.expire_time, Some(at + 3600));
        }
        assert!(at - NOW > MAX_LEASE_TTL_SECONDS);

        // Non-renewable tokens and roots refuse renewal.
        let mut fixed = child_params(&["dev"], 300);
        fixed.renewable = false;
        let (fixed, _) = f.tokens.create(Some(&root), fixed, NOW).await.unwrap();
        assert!(f.tokens.renew(&fixed.client_token, 0, NOW).await.is_err());
    }

    #[tokio::test]
    async fn bounds_on_policies_and_meta_are_enforced() {
        let f = fixture(9);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let many: Vec<String> = (0..=POLICIES_PER_TOKEN_MAX)
            .map(|i| format!("p{i}"))
            .collect();
        let mut params = child_params(&[], 0);
        params.policies = Some(many);
        assert!(f.tokens.create(Some(&root), params, NOW).await.is_err());
        let mut params = child_params(&[], 0);
        params.meta = (0..=META_ENTRIES_MAX)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert!(f.tokens.create(Some(&root), params, NOW).await.is_err());
        let mut params = child_params(&[], 0);
        params.id = Some("x".repeat(format::TOKEN_BYTES_MAX + 1));
        assert!(f.tokens.create(Some(&root), params, NOW).await.is_err());
        let mut params = child_params(&[], 0);
        params.token_type = TokenType::Batch;
        assert!(f.tokens.create(Some(&root), params, NOW).await.is_err());
    }

    #[test]
    fn policies_are_sanitized_like_vault() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sanitize_policies(&list(&["Dev", " admin", "dev", ""]), true),
            list(&["admin", "default", "dev"])
        );
        assert_eq!(
            sanitize_policies(&list(&["root", "dev"]), true),
            list(&["root"])
        );
        assert_eq!(sanitize_policies(&[], false), Vec::<String>::new());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::token::testing::fixture;

    const NOW: i64 = 1_800_000_000;

    #[derive(Debug, Clone)]
    enum Step {
        /// Create a child of the nth live token, or an orphan.
        Create {
            parent: Option<usize>,
            num_uses: i64,
        },
        Revoke(usize),
        RevokeOrphan(usize),
        Use(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (proptest::option::of(0usize..16), 0i64..3)
                .prop_map(|(parent, num_uses)| Step::Create { parent, num_uses }),
            1 => (0usize..16).prop_map(Step::Revoke),
            1 => (0usize..16).prop_map(Step::RevokeOrphan),
            1 => (0usize..16).prop_map(Step::Use),
        ]
    }

    /// Every entry has its accessor record, every parent link its index entry and a
    /// live parent, and no index entry or accessor record points at nothing.
    fn check_invariants(store: &TokenStore) {
        let view = &store.inner.view;
        let entries: Vec<TokenEntry> = view
            .list(ID_PREFIX)
            .unwrap()
            .iter()
            .map(|salted| store.entry_by_salted(salted).unwrap().unwrap())
            .collect();
        let mut accessor_targets = Vec::new();
        for salted in view.list(ACCESSOR_PREFIX).unwrap() {
            let record: AccessorRecord = view
                .get_json(&format!("{ACCESSOR_PREFIX}{salted}"))
                .unwrap()
                .unwrap();
            assert!(store.entry_by_salted(&record.salted_id).unwrap().is_some());
            accessor_targets.push(record.salted_id);
        }
        assert_eq!(accessor_targets.len(), entries.len());
        for entry in &entries {
            assert!(accessor_targets.contains(&entry.salted_id));
            if let Some(parent) = &entry.parent {
                assert!(
                    store.entry_by_salted(parent).unwrap().is_some(),
                    "dangling parent"
                );
                let children = view.list(&format!("{PARENT_PREFIX}{parent}/")).unwrap();
                assert!(children.contains(&entry.salted_id), "missing child index");
            }
        }
        for parent in view.list(PARENT_PREFIX).unwrap() {
            let parent = parent.trim_end_matches('/');
            assert!(
                store.entry_by_salted(parent).unwrap().is_some(),
                "index of a gone parent"
            );
            for child in view.list(&format!("{PARENT_PREFIX}{parent}/")).unwrap() {
                let child = store
                    .entry_by_salted(&child)
                    .unwrap()
                    .expect("index of a gone child");
                assert_eq!(child.parent.as_deref(), Some(parent));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_token_tree_stays_consistent(steps in proptest::collection::vec(step(), 1..40)) {
            futures::executor::block_on(async {
                let f = fixture(99);
                let (root, _) = f.tokens.create_root(NOW, None).await.unwrap();
                let mut live = vec![root];
                for step in steps {
                    let pick = |index: usize, live: &Vec<String>| live[index % live.len()].clone();
                    match step {
                        Step::Create { parent, num_uses } if !live.is_empty() => {
                            let parent_entry = match parent {
                                Some(index) => f.tokens.lookup(&pick(index, &live), NOW).unwrap(),
                                None => None,
                            };
                            let params = TokenParams {
                                policies: Some(vec!["dev".to_string()]),
                                num_uses,
                                renewable: true,
                                path: "auth/token/create".to_string(),
                                ..TokenParams::default()
                            };
                            if let Ok((auth, _)) = f.tokens.create(parent_entry.as_ref(), params, NOW).await {
                                live.push(auth.client_token);
                            }
                        }
                        Step::Revoke(index) if !live.is_empty() => {
                            f.tokens.revoke_tree(&pick(index, &live)).await.unwrap();
                        }
                        Step::RevokeOrphan(index) if !live.is_empty() => {
                            f.tokens.revoke_orphan(&pick(index, &live)).await.unwrap();
                        }
                        Step::Use(index) if !live.is_empty() => {
                            f.tokens.use_token(&pick(index, &live), NOW).await.unwrap();
                        }
                        _ => {}
                    }
                    live.retain(|token| f.tokens.lookup(token, NOW).unwrap().is_some());
                    check_invariants(&f.tokens);
                }
            });
        }
    }
}
