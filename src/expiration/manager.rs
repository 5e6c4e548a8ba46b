//! [`ExpirationManager`]: lease registration, renewal, revocation and expiry.
//!
//! Storage layout, relative to the view the caller gives (`sys/expire/`, local):
//!
//! | key | value |
//! |---|---|
//! | `id/<lease id>` | [`LeaseEntry`] (lease ids are paths, so they nest) |
//! | `token/<owner salted id>/<sha256(lease id) hex>` | the lease id: what a revoked token owned |
//!
//! The expiry schedule is an in-memory ordered set, rebuilt from storage on the first
//! tick after a restart and kept up to date by registrations and renewals. It is only
//! a hint: each due lease is re-read before anything is revoked, and for token leases
//! the token entry's own expiry decides.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::lease::{LeaseEntry, LeaseError, LeaseKind, validate_lease_id, validate_lease_prefix};
use crate::barrier::{BarrierError, View, Write};
use crate::env::SharedRng;
use crate::token::{MAX_LEASE_TTL_SECONDS, RevocationHook, RevokedToken, TokenEntry, TokenStore};

/// The most leases one tick revokes; the rest wait for the next tick, so a burst of
/// expiries never stalls the server.
pub const TICK_REVOCATIONS_MAX: usize = 256;
/// Random characters in a secret lease id's suffix.
const LEASE_SUFFIX_CHARS: usize = 24;

const ID_PREFIX: &str = "id/";
const TOKEN_PREFIX: &str = "token/";

type Schedule = Arc<Mutex<Option<BTreeSet<(i64, String)>>>>;

#[derive(Clone)]
pub struct ExpirationManager {
    view: View,
    tokens: TokenStore,
    rng: SharedRng,
    schedule: Schedule,
}

impl std::fmt::Debug for ExpirationManager {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ExpirationManager")
    }
}

impl ExpirationManager {
    /// How many leases are stored (`vault.expire.num_leases`; a recursive listing, so
    /// scrape-time only).
    pub fn count(&self) -> Result<usize, BarrierError> {
        Ok(self.view.list_recursive(ID_PREFIX)?.len())
    }

    /// `view` is the local `sys/expire/` view. Registers a hook on `tokens` so every
    /// revoked token takes its leases with it.
    pub fn new(view: View, tokens: TokenStore, rng: SharedRng) -> Self {
        tokens.add_revocation_hook(Arc::new(LeaseCleanup { view: view.clone() }));
        Self {
            view,
            tokens,
            rng,
            schedule: Arc::new(Mutex::new(None)),
        }
    }

    pub fn tokens(&self) -> &TokenStore {
        &self.tokens
    }

    /// Register the lease of a new token (login or token creation). Tokens that never
    /// expire get no lease. Returns the lease id.
    pub async fn register_token(&self, entry: &TokenEntry) -> Result<Option<String>, LeaseError> {
        let Some(expire_time) = entry.expire_time else {
            return Ok(None);
        };
        let lease = LeaseEntry {
            lease_id: token_lease_id(&entry.path, &entry.salted_id),
            kind: LeaseKind::Token,
            path: entry.path.clone(),
            token_salted_id: entry.salted_id.clone(),
            issue_time: entry.creation_time,
            expire_time,
            last_renewal_time: None,
            ttl: entry.ttl,
            renewable: entry.renewable,
        };
        self.store(&lease).await?;
        Ok(Some(lease.lease_id))
    }

    /// Register a leased secret read at `path` by `owner`, valid for `ttl` seconds
    /// (capped at the system max).
    pub async fn register_secret(
        &self,
        path: &str,
        owner: &TokenEntry,
        ttl: i64,
        renewable: bool,
        now_unix: i64,
    ) -> Result<LeaseEntry, LeaseError> {
        let ttl = ttl.clamp(1, MAX_LEASE_TTL_SECONDS);
        let lease = LeaseEntry {
            lease_id: format!(
                "{}/{}",
                path.trim_end_matches('/'),
                self.rng.base62(LEASE_SUFFIX_CHARS)
            ),
            kind: LeaseKind::Secret,
            path: path.to_string(),
            token_salted_id: owner.salted_id.clone(),
            issue_time: now_unix,
            expire_time: now_unix.saturating_add(ttl),
            last_renewal_time: None,
            ttl,
            renewable,
        };
        self.store(&lease).await?;
        Ok(lease)
    }

    pub fn lookup(&self, lease_id: &str) -> Result<Option<LeaseEntry>, LeaseError> {
        validate_lease_id(lease_id)?;
        Ok(self.view.get_json(&format!("{ID_PREFIX}{lease_id}"))?)
    }

    /// Lease ids directly below `prefix` (Vault's `LIST sys/leases/lookup/:prefix`).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, LeaseError> {
        if !prefix.is_empty() {
            validate_lease_prefix(prefix)?;
        }
        Ok(self.view.list(&format!("{ID_PREFIX}{prefix}"))?)
    }

    /// Renew a token (by its text) and move its lease along.
    pub async fn renew_token(
        &self,
        token: &str,
        increment: i64,
        now_unix: i64,
    ) -> Result<(TokenEntry, Vec<String>), LeaseError> {
        let (entry, warnings) = self.tokens.renew(token, increment, now_unix).await?;
        self.follow_token(&entry, now_unix).await?;
        Ok((entry, warnings))
    }

    pub async fn renew_token_accessor(
        &self,
        accessor: &str,
        increment: i64,
        now_unix: i64,
    ) -> Result<(TokenEntry, Vec<String>), LeaseError> {
        let (entry, warnings) = self
            .tokens
            .renew_accessor(accessor, increment, now_unix)
            .await?;
        self.follow_token(&entry, now_unix).await?;
        Ok((entry, warnings))
    }

    /// Renew a lease by id. Token leases renew their token.
    pub async fn renew(
        &self,
        lease_id: &str,
        increment: i64,
        now_unix: i64,
    ) -> Result<LeaseEntry, LeaseError> {
        let mut lease = self
            .lookup(lease_id)?
            .filter(|lease| lease.expire_time > now_unix)
            .ok_or(LeaseError::NotFound)?;
        if !lease.renewable {
            return Err(LeaseError::Invalid("lease is not renewable".to_string()));
        }
        if lease.kind == LeaseKind::Token {
            // Token renewal goes through the token store's rules; the salted id is all
            // we hold, so renew by accessor of the stored entry.
            let entry = self
                .tokens
                .entry_by_salted(&lease.token_salted_id)?
                .ok_or(LeaseError::NotFound)?;
            let (entry, _) = self
                .renew_token_accessor(&entry.accessor, increment, now_unix)
                .await?;
            lease.expire_time = entry.expire_time.unwrap_or(lease.expire_time);
            lease.last_renewal_time = Some(now_unix);
            return Ok(lease);
        }
        let mut ttl = if increment > 0 { increment } else { lease.ttl };
        let left = lease.issue_time.saturating_add(MAX_LEASE_TTL_SECONDS) - now_unix;
        if left <= 0 {
            return Err(LeaseError::Invalid(
                "past the max TTL, cannot renew".to_string(),
            ));
        }
        ttl = ttl.min(left);
        lease.expire_time = now_unix.saturating_add(ttl);
        lease.last_renewal_time = Some(now_unix);
        self.store(&lease).await?;
        Ok(lease)
    }

    /// Revoke one lease; for a token lease, the token and its tree.
    pub async fn revoke(&self, lease_id: &str) -> Result<Option<LeaseEntry>, LeaseError> {
        let Some(lease) = self.lookup(lease_id)? else {
            return Ok(None);
        };
        self.revoke_entry(&lease).await?;
        Ok(Some(lease))
    }

    /// Revoke every lease whose id starts with `prefix` (a disabled mount's path).
    pub async fn revoke_prefix(&self, prefix: &str) -> Result<Vec<LeaseEntry>, LeaseError> {
        validate_lease_prefix(prefix)?;
        let folder = if prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        let mut revoked = Vec::new();
        if let Some(lease) = self.lookup(prefix.trim_end_matches('/'))? {
            self.revoke_entry(&lease).await?;
            revoked.push(lease);
        }
        for key in self.view.list_recursive(&format!("{ID_PREFIX}{folder}"))? {
            let Some(lease_id) = key.strip_prefix(ID_PREFIX) else {
                continue;
            };
            if let Some(lease) = self.lookup(lease_id)? {
                self.revoke_entry(&lease).await?;
                revoked.push(lease);
            }
        }
        Ok(revoked)
    }

    /// Revoke what has expired by `now_unix` (at most [`TICK_REVOCATIONS_MAX`]) and
    /// return the revoked leases, so secret backends can be told.
    pub async fn tick(&self, now_unix: i64) -> Result<Vec<LeaseEntry>, LeaseError> {
        self.load_schedule()?;
        let mut revoked = Vec::new();
        while revoked.len() < TICK_REVOCATIONS_MAX {
            let Some((due, lease_id)) = self.pop_due(now_unix) else {
                break;
            };
            let Some(mut lease) = self.lookup(&lease_id)? else {
                continue;
            };
            if lease.expire_time > now_unix {
                self.schedule_insert(lease.expire_time, &lease_id);
                continue;
            }
            if lease.kind == LeaseKind::Token {
                // The token entry's expiry is the truth (a renewal may have raced us).
                match self.tokens.entry_by_salted(&lease.token_salted_id)? {
                    Some(entry) if entry.expire_time.is_some_and(|at| at > now_unix) => {
                        lease.expire_time = entry.expire_time.unwrap_or(due);
                        self.store(&lease).await?;
                        continue;
                    }
                    _ => {}
                }
            }
            self.revoke_entry(&lease).await?;
            revoked.push(lease);
        }
        Ok(revoked)
    }

    async fn revoke_entry(&self, lease: &LeaseEntry) -> Result<(), LeaseError> {
        match lease.kind {
            LeaseKind::Token => {
                // The cleanup hook deletes this lease with the token's other leases.
                let revoked = self
                    .tokens
                    .revoke_tree_salted(&lease.token_salted_id)
                    .await?;
                if revoked.is_empty() {
                    self.view.commit(lease_deletes(lease)).await?;
                }
            }
            LeaseKind::Secret => {
                self.view.commit(lease_deletes(lease)).await?;
            }
        }
        Ok(())
    }

    async fn follow_token(&self, entry: &TokenEntry, now_unix: i64) -> Result<(), LeaseError> {
        let lease_id = token_lease_id(&entry.path, &entry.salted_id);
        if let Some(mut lease) = self.lookup(&lease_id)? {
            lease.expire_time = entry.expire_time.unwrap_or(lease.expire_time);
            lease.last_renewal_time = Some(now_unix);
            self.store(&lease).await?;
        } else {
            self.register_token(entry).await?;
        }
        Ok(())
    }

    async fn store(&self, lease: &LeaseEntry) -> Result<(), LeaseError> {
        validate_lease_id(&lease.lease_id)?;
        let mut writes = vec![Write::Put {
            key: format!("{ID_PREFIX}{}", lease.lease_id),
            value: serde_json::to_vec(lease).expect("records always serialize"),
        }];
        // A token's own lease needs no owner index: its id follows from the token
        // (`token_lease_id`), and the cleanup after a revocation derives it, as Vault's
        // `RevokeByToken` does. One record fewer for every token issued.
        if lease.kind != LeaseKind::Token {
            writes.push(Write::Put {
                key: owner_index_key(lease),
                value: lease.lease_id.clone().into_bytes(),
            });
        }
        self.view.commit(writes).await?;
        // Scheduled once stored: inside a request, when the request's writes commit.
        let schedule = self.schedule.clone();
        let (expire_time, lease_id) = (lease.expire_time, lease.lease_id.clone());
        crate::barrier::write_set::after_commit(move || {
            if let Some(schedule) = schedule
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .as_mut()
            {
                schedule.insert((expire_time, lease_id));
            }
        });
        Ok(())
    }

    /// Drop the in-memory schedule; the next tick rebuilds it from storage. Called when
    /// this node becomes active: storage may have changed under it since it was built
    /// (a snapshot restore replaces every lease, another node may have led meanwhile).
    pub fn forget_schedule(&self) {
        *self
            .schedule
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    fn load_schedule(&self) -> Result<(), LeaseError> {
        let mut schedule = self
            .schedule
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if schedule.is_some() {
            return Ok(());
        }
        let mut loaded = BTreeSet::new();
        for key in self.view.list_recursive(ID_PREFIX)? {
            if let Some(lease) = self.view.get_json::<LeaseEntry>(&key)? {
                loaded.insert((lease.expire_time, lease.lease_id));
            }
        }
        *schedule = Some(loaded);
        Ok(())
    }

    fn schedule_insert(&self, expire_time: i64, lease_id: &str) {
        if let Some(schedule) = self
            .schedule
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_mut()
        {
            schedule.insert((expire_time, lease_id.to_string()));
        }
    }

    fn pop_due(&self, now_unix: i64) -> Option<(i64, String)> {
        let mut guard = self
            .schedule
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let schedule = guard.as_mut()?;
        let first = schedule.first()?.clone();
        if first.0 > now_unix {
            return None;
        }
        schedule.pop_first()
    }
}

/// Deletes the leases a revoked token owned (its own lease included).
struct LeaseCleanup {
    view: View,
}

impl RevocationHook for LeaseCleanup {
    fn token_revoked<'a>(
        &'a self,
        revoked: &'a RevokedToken,
    ) -> BoxFuture<'a, Result<(), BarrierError>> {
        Box::pin(async move {
            let folder = format!("{TOKEN_PREFIX}{}/", revoked.salted_id);
            let mut writes = Vec::new();
            let mut deleted = BTreeSet::new();
            for child in self.view.list(&folder)? {
                let index_key = format!("{folder}{child}");
                if let Some(lease_id) = self.view.get(&index_key)?
                    && let Ok(lease_id) = String::from_utf8(lease_id)
                    && deleted.insert(lease_id.clone())
                {
                    writes.push(Write::Delete {
                        key: format!("{ID_PREFIX}{lease_id}"),
                    });
                }
                writes.push(Write::Delete { key: index_key });
            }
            // The token's own lease has no index entry (storage written before that
            // change has one, deleted above): its id follows from the token, as in
            // Vault's `RevokeByToken`.
            let own = token_lease_id(&revoked.path, &revoked.salted_id);
            let own_key = format!("{ID_PREFIX}{own}");
            if !deleted.contains(&own) && self.view.contains(&own_key)? {
                writes.push(Write::Delete { key: own_key });
            }
            // Bulk, as the revocation that runs this hook: each batch at once.
            for chunk in writes.chunks(crate::token::store::REVOKE_BATCH_WRITES_MAX) {
                self.view.commit_now(chunk.to_vec()).await?;
            }
            Ok(())
        })
    }
}

/// The id of a token's own lease: the path it was created on, then its salted id.
fn token_lease_id(path: &str, salted_id: &str) -> String {
    format!("{}/{}", path.trim_end_matches('/'), salted_id)
}

fn owner_index_key(lease: &LeaseEntry) -> String {
    format!(
        "{TOKEN_PREFIX}{}/{}",
        lease.token_salted_id,
        hex::encode(Sha256::digest(lease.lease_id.as_bytes()))
    )
}

fn lease_deletes(lease: &LeaseEntry) -> Vec<Write> {
    vec![
        Write::Delete {
            key: format!("{ID_PREFIX}{}", lease.lease_id),
        },
        Write::Delete {
            key: owner_index_key(lease),
        },
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::logical::{Operation, Request};
    use crate::token::TokenParams;
    use crate::token::testing::fixture;

    const NOW: i64 = 1_800_000_000;

    fn params(ttl: i64) -> TokenParams {
        TokenParams {
            policies: Some(vec!["dev".to_string()]),
            ttl,
            renewable: true,
            path: "auth/token/create".to_string(),
            ..TokenParams::default()
        }
    }

    #[tokio::test]
    async fn tick_revokes_expired_tokens_with_their_children_and_leases() {
        let f = fixture(41);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (auth, parent) = f.tokens.create(Some(&root), params(60), NOW).await.unwrap();
        let lease_id = f.expiration.register_token(&parent).await.unwrap().unwrap();
        let (child, child_entry) = f
            .tokens
            .create(Some(&parent), params(3600), NOW)
            .await
            .unwrap();
        f.expiration.register_token(&child_entry).await.unwrap();
        let secret = f
            .expiration
            .register_secret("database/creds/ro", &child_entry, 3600, true, NOW)
            .await
            .unwrap();
        assert!(
            f.expiration.register_token(&root).await.unwrap().is_none(),
            "roots never expire"
        );

        // Before the TTL nothing happens.
        assert!(f.expiration.tick(NOW + 59).await.unwrap().is_empty());
        assert!(
            f.tokens
                .lookup(&auth.client_token, NOW + 59)
                .unwrap()
                .is_some()
        );

        // At the TTL the parent's lease fires: the parent, its child and the secret
        // the child owned are all gone.
        let revoked = f.expiration.tick(NOW + 60).await.unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].lease_id, lease_id);
        assert!(
            f.tokens
                .entry_by_salted(&parent.salted_id)
                .unwrap()
                .is_none()
        );
        assert!(
            f.tokens
                .lookup(&child.client_token, NOW + 60)
                .unwrap()
                .is_none()
        );
        assert!(f.expiration.lookup(&secret.lease_id).unwrap().is_none());
        assert!(
            f.barrier
                .view(crate::storage::Store::Leases.prefix())
                .list_recursive("")
                .unwrap()
                .is_empty()
        );
        // The child's own lease was cleaned with it, so later ticks find nothing.
        assert!(f.expiration.tick(NOW + 10_000).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_token_lease_has_no_owner_index_and_is_removed_with_its_token_as_is_an_older_indexed_one()
     {
        let f = fixture(43);
        let leases = f.barrier.view(crate::storage::Store::Leases.prefix());
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (auth, entry) = f.tokens.create(Some(&root), params(60), NOW).await.unwrap();
        let lease_id = f.expiration.register_token(&entry).await.unwrap().unwrap();
        assert_eq!(
            leases.list_recursive("").unwrap(),
            vec![format!("{ID_PREFIX}{lease_id}")],
            "a token's lease is one record"
        );
        f.tokens.revoke_tree(&auth.client_token).await.unwrap();
        assert!(leases.list_recursive("").unwrap().is_empty());

        // Storage written before: the token's lease listed under its owner index too.
        let (auth, entry) = f.tokens.create(Some(&root), params(60), NOW).await.unwrap();
        let lease_id = f.expiration.register_token(&entry).await.unwrap().unwrap();
        let lease = f.expiration.lookup(&lease_id).unwrap().unwrap();
        leases
            .commit_now(vec![Write::Put {
                key: owner_index_key(&lease),
                value: lease_id.clone().into_bytes(),
            }])
            .await
            .unwrap();
        assert_eq!(leases.list_recursive("").unwrap().len(), 2);
        f.tokens.revoke_tree(&auth.client_token).await.unwrap();
        assert!(leases.list_recursive("").unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_renewed_token_survives_its_first_expiry_and_a_restart_reloads_the_schedule() {
        let f = fixture(42);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let (auth, entry) = f.tokens.create(Some(&root), params(60), NOW).await.unwrap();
        f.expiration.register_token(&entry).await.unwrap();
        f.expiration.tick(NOW).await.unwrap();

        // Renew through the token store directly (as a racing request would), not the
        // manager: the tick must still consult the token's own expiry.
        f.tokens
            .renew(&auth.client_token, 600, NOW + 30)
            .await
            .unwrap();
        assert!(f.expiration.tick(NOW + 60).await.unwrap().is_empty());
        assert!(
            f.tokens
                .lookup(&auth.client_token, NOW + 61)
                .unwrap()
                .is_some()
        );

        // A new manager over the same storage (a restart) finds the lease.
        let restarted = ExpirationManager::new(
            f.barrier.view(crate::storage::Store::Leases.prefix()),
            f.tokens.clone(),
            f.rng.clone(),
        );
        assert!(restarted.tick(NOW + 629).await.unwrap().is_empty());
        assert_eq!(restarted.tick(NOW + 630).await.unwrap().len(), 1);
        assert!(f.tokens.lookup(&auth.client_token, NOW).unwrap().is_none());
    }

    #[tokio::test]
    async fn secret_leases_renew_revoke_by_prefix_and_ticks_are_bounded() {
        let f = fixture(43);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..TICK_REVOCATIONS_MAX + 4 {
            let lease = f
                .expiration
                .register_secret("aws/creds/deploy", &root, 100, true, NOW)
                .await
                .unwrap();
            ids.push(lease.lease_id);
        }
        let other = f
            .expiration
            .register_secret("aws-other/creds/x", &root, 100, false, NOW)
            .await
            .unwrap();

        // Renew one within the max; the non-renewable one refuses.
        let renewed = f.expiration.renew(&ids[0], 500, NOW + 50).await.unwrap();
        assert_eq!(renewed.expire_time, NOW + 550);
        assert!(f.expiration.renew(&other.lease_id, 10, NOW).await.is_err());

        // One tick revokes at most the bound; the next picks up the rest.
        let first = f.expiration.tick(NOW + 100).await.unwrap();
        assert_eq!(first.len(), TICK_REVOCATIONS_MAX);
        let second = f.expiration.tick(NOW + 100).await.unwrap();
        assert_eq!(
            second.len(),
            4,
            "the rest, including the other mount's lease"
        );
        assert!(f.expiration.lookup(&ids[0]).unwrap().is_some(), "renewed");

        // revoke_prefix takes a mount's leases only (aws/ does not match aws-other/).
        let again = f
            .expiration
            .register_secret("aws-other/creds/x", &root, 1000, false, NOW)
            .await
            .unwrap();
        let revoked = f.expiration.revoke_prefix("aws/").await.unwrap();
        assert_eq!(revoked.len(), 1);
        assert!(f.expiration.lookup(&again.lease_id).unwrap().is_some());

        // Malformed ids and prefixes are refused, never turned into odd keys.
        for bad in ["", "../x", "a//b", "a/./b"] {
            assert!(f.expiration.lookup(bad).is_err(), "{bad:?}");
        }
        assert!(f.expiration.revoke_prefix("").await.is_err());
    }

    #[tokio::test]
    async fn sys_leases_endpoints() {
        let f = fixture(44);
        let (_, root) = f.tokens.create_root(NOW, None).await.unwrap();
        let lease = f
            .expiration
            .register_secret("kv/creds/a", &root, 100, true, NOW)
            .await
            .unwrap();
        let call = |operation, path: &str, body: serde_json::Value| {
            let data: Map<_, _> = body.as_object().cloned().unwrap_or_default();
            Request::new(operation, path, data, NOW + 10)
        };
        let looked = f
            .expiration
            .handle_leases(&call(
                Operation::Update,
                "leases/lookup",
                json!({"lease_id": lease.lease_id}),
            ))
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(looked["ttl"], 90);
        assert_eq!(looked["renewable"], true);
        let renewed = f
            .expiration
            .handle_leases(&call(
                Operation::Update,
                "leases/renew",
                json!({"lease_id": lease.lease_id, "increment": "5m"}),
            ))
            .await
            .unwrap();
        assert_eq!(renewed.lease.unwrap().lease_duration, 300);
        let listed = f
            .expiration
            .handle_leases(&call(
                Operation::List,
                "leases/lookup/kv/creds/a/",
                json!({}),
            ))
            .await
            .unwrap();
        assert_eq!(listed.data.unwrap()["keys"].as_array().unwrap().len(), 1);
        f.expiration
            .handle_leases(&call(
                Operation::Update,
                "leases/revoke",
                json!({"lease_id": lease.lease_id}),
            ))
            .await
            .unwrap();
        assert!(f.expiration.lookup(&lease.lease_id).unwrap().is_none());
    }
}
