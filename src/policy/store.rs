//! The policy store: named ACL policies kept through the barrier below `sys/policy/`
//! (a replicated prefix, so a performance secondary receives the primary's policies),
//! with a bounded in-memory cache of parsed policies.
//!
//! Invariants: names are sanitised (trimmed, lowercased) before any use; `root` never
//! touches storage; `root` and `response-wrapping` cannot be written; `default` and
//! the immutable ones cannot be deleted; every write drops the name from the cache, so
//! the next read parses what storage holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::acl::default_policy::{
    DEFAULT_POLICY_NAME, IMMUTABLE_POLICIES, NON_ASSIGNABLE_POLICIES, builtin_policy_text,
};
use crate::acl::policy::{POLICY_NAME_BYTES_MAX, sanitize_name};
use crate::acl::{Acl, Policy, PolicyError, ROOT_POLICY_NAME, TemplateIdentity};
use crate::barrier::{Barrier, BarrierError, View};
use crate::storage::Store;

/// The most parsed policies kept in memory (Vault's policy LRU holds 1024 too).
pub const POLICY_CACHE_ENTRIES_MAX: usize = 1024;

/// The most policy names one ACL may be built from.
pub const POLICIES_PER_ACL_MAX: usize = 1024;

/// The stored record of one policy (Vault's `PolicyEntry`: a version and the raw text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEntry {
    pub version: u32,
    pub raw: String,
}

const POLICY_ENTRY_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyStoreError {
    #[error("{0}")]
    Parse(#[from] PolicyError),
    /// Vault: `cannot update "root" policy`.
    #[error("cannot update {0:?} policy")]
    CannotUpdate(String),
    /// Vault: `cannot delete "root" policy` / `cannot delete default policy`.
    #[error("{0}")]
    CannotDelete(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0} policies exceed the limit of {POLICIES_PER_ACL_MAX} per token")]
    TooManyPolicies(usize),
    /// A stored policy no longer parses (only possible if storage was tampered with or
    /// written by a newer version).
    #[error("failed to parse stored policy {name:?}: {error}")]
    Corrupt { name: String, error: PolicyError },
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// Named policies over a barrier view, with a cache of parsed policies.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    view: View,
    cache: Arc<Mutex<PolicyCache>>,
}

/// Parsed policies, and a counter bumped by every invalidation so that a reader which
/// loaded a policy from storage before a concurrent write does not cache the old text.
#[derive(Debug, Default)]
struct PolicyCache {
    entries: BTreeMap<String, Arc<Policy>>,
    generation: u64,
}

impl PolicyStore {
    /// A store over `view`, whose prefix should be [`Store::Policies`]'s.
    pub fn new(view: View) -> Self {
        Self {
            view,
            cache: Arc::new(Mutex::new(PolicyCache::default())),
        }
    }

    /// A store at Vault's place in the key space.
    pub fn from_barrier(barrier: &Barrier) -> Self {
        Self::new(barrier.view(Store::Policies.prefix()))
    }

    /// Create `default` if it is missing and (re)write `response-wrapping` if it differs
    /// from the built-in text, as Vault does at every unseal of a primary. A performance
    /// secondary skips this: its policies come from the primary.
    pub async fn ensure_builtin_policies(&self) -> Result<(), PolicyStoreError> {
        for name in [
            DEFAULT_POLICY_NAME,
            crate::acl::RESPONSE_WRAPPING_POLICY_NAME,
        ] {
            let Some(text) = builtin_policy_text(name) else {
                continue;
            };
            let stored: Option<PolicyEntry> = self.view.get_json(name)?;
            let keep = match &stored {
                None => false,
                Some(entry) => !IMMUTABLE_POLICIES.contains(&name) || entry.raw == text,
            };
            if !keep {
                let policy = Policy::parse_text(name, text)?;
                self.write(policy).await?;
            }
        }
        Ok(())
    }

    /// The named policy with its raw text, or `None`. `root` exists without storage
    /// (with empty text, as Vault returns it).
    pub fn get(&self, name: &str) -> Result<Option<Arc<Policy>>, PolicyStoreError> {
        let name = sanitize_name(name);
        if name == ROOT_POLICY_NAME {
            return Ok(Some(Arc::new(Policy::root())));
        }
        // A policy this request changed is read from its write set and never cached:
        // the cache is shared by every request and must hold committed policies only.
        if self.view.is_staged(&name) {
            return match self.view.get_json::<PolicyEntry>(&name)? {
                None => Ok(None),
                Some(entry) => Policy::parse_text(&name, &entry.raw)
                    .map(|policy| Some(Arc::new(policy)))
                    .map_err(|error| PolicyStoreError::Corrupt { name, error }),
            };
        }
        let generation = {
            let cache = self.cache_lock();
            if let Some(policy) = cache.entries.get(&name) {
                return Ok(Some(policy.clone()));
            }
            cache.generation
        };
        let Some(entry) = self.view.get_json::<PolicyEntry>(&name)? else {
            return Ok(None);
        };
        let policy =
            Policy::parse_text(&name, &entry.raw).map_err(|error| PolicyStoreError::Corrupt {
                name: name.clone(),
                error,
            })?;
        let policy = Arc::new(policy);
        self.cache_insert(&name, policy.clone(), generation);
        Ok(Some(policy))
    }

    /// Parse `text` (HCL, JSON, or base64 of either) and store it as `name`.
    pub async fn set(&self, name: &str, text: &str) -> Result<Arc<Policy>, PolicyStoreError> {
        let name = sanitize_name(name);
        check_name(&name)?;
        if IMMUTABLE_POLICIES.contains(&name.as_str()) {
            return Err(PolicyStoreError::CannotUpdate(name));
        }
        let policy = Policy::parse(&name, text)?;
        self.write(policy).await
    }

    /// Delete `name`. Deleting a policy that does not exist succeeds, as in Vault.
    pub async fn delete(&self, name: &str) -> Result<(), PolicyStoreError> {
        let name = sanitize_name(name);
        if IMMUTABLE_POLICIES.contains(&name.as_str()) {
            return Err(PolicyStoreError::CannotDelete(format!(
                "cannot delete {name:?} policy"
            )));
        }
        if name == DEFAULT_POLICY_NAME {
            return Err(PolicyStoreError::CannotDelete(
                "cannot delete default policy".to_string(),
            ));
        }
        check_name(&name)?;
        let deleted = self.view.delete(&name).await;
        self.invalidate_when_committed(&name);
        deleted?;
        Ok(())
    }

    /// The names of stored, assignable policies, sorted (without `root`, which is not
    /// stored, and without `response-wrapping`, which cannot be assigned).
    pub fn list(&self) -> Result<Vec<String>, PolicyStoreError> {
        let mut names: Vec<String> = self
            .view
            .list_recursive("")?
            .into_iter()
            .filter(|name| !NON_ASSIGNABLE_POLICIES.contains(&name.as_str()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The ACL of a token holding `names`. Unknown names are skipped (Vault does the
    /// same: a token may outlive its policies); `root` yields the root ACL.
    pub fn acl_for(&self, names: &[String]) -> Result<Acl, PolicyStoreError> {
        let _stage =
            tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.acl.build")
                .entered();
        self.acl_for_identity(names, None)
    }

    /// [`PolicyStore::acl_for`] for a caller with an entity, so templated rules apply.
    pub fn acl_for_identity(
        &self,
        names: &[String],
        identity: Option<&TemplateIdentity>,
    ) -> Result<Acl, PolicyStoreError> {
        // Refuse rather than truncate: a dropped policy could be the one that denies.
        if names.len() > POLICIES_PER_ACL_MAX {
            return Err(PolicyStoreError::TooManyPolicies(names.len()));
        }
        let mut policies = Vec::new();
        for name in names {
            if sanitize_name(name) == ROOT_POLICY_NAME {
                return Ok(Acl::root());
            }
            if let Some(policy) = self.get(name)? {
                policies.push(Policy::clone(&policy));
            }
        }
        Ok(Acl::with_identity(&policies, identity))
    }

    /// Forget the cached copy of `name` (after replication wrote it underneath us).
    pub fn invalidate(&self, name: &str) {
        let mut cache = self.cache_lock();
        cache.entries.remove(&sanitize_name(name));
        cache.generation += 1;
    }

    /// Forget the cached copy of `name` now and again once the current request's
    /// writes have committed (a request stages its writes; a read between the two may
    /// have cached the value being replaced).
    fn invalidate_when_committed(&self, name: &str) {
        self.invalidate(name);
        let cache = self.cache.clone();
        let name = sanitize_name(name);
        crate::barrier::write_set::after_commit(move || {
            let mut cache = cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.entries.remove(&name);
            cache.generation += 1;
        });
    }

    /// Forget every cached policy: a node that becomes active cannot know what the
    /// previous active node changed while this one was a standby.
    pub fn invalidate_all(&self) {
        let mut cache = self.cache_lock();
        cache.entries.clear();
        cache.generation += 1;
    }

    async fn write(&self, policy: Policy) -> Result<Arc<Policy>, PolicyStoreError> {
        let name = policy.name.clone();
        let entry = PolicyEntry {
            version: POLICY_ENTRY_VERSION,
            raw: policy.raw.clone(),
        };
        // Invalidate even on error: a failed commit may still have been applied.
        let written = self.view.put_json(&name, &entry).await;
        self.invalidate_when_committed(&name);
        written?;
        Ok(Arc::new(policy))
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, PolicyCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cache `policy` unless something was invalidated since it was read (`generation`).
    fn cache_insert(&self, name: &str, policy: Arc<Policy>, generation: u64) {
        let mut cache = self.cache_lock();
        if cache.generation != generation {
            return;
        }
        if cache.entries.len() >= POLICY_CACHE_ENTRIES_MAX && !cache.entries.contains_key(name) {
            // Any victim will do: a miss costs one storage read and one parse.
            cache.entries.pop_first();
        }
        cache.entries.insert(name.to_string(), policy);
    }
}

fn check_name(name: &str) -> Result<(), PolicyStoreError> {
    if name.is_empty() {
        return Err(PolicyStoreError::InvalidName(
            "policy name must be provided in the URL".to_string(),
        ));
    }
    if name.len() > POLICY_NAME_BYTES_MAX {
        return Err(PolicyStoreError::InvalidName(format!(
            "policy name is longer than {POLICY_NAME_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::Keyring;
    use crate::env::SharedRng;
    use crate::logical::Operation;
    use crate::storage::MemoryBackend;
    use serde_json::Map;

    pub(crate) fn unsealed_barrier() -> Barrier {
        let rng = SharedRng::from_u64(1);
        let barrier = Barrier::new(Arc::new(MemoryBackend::new()), rng.clone());
        barrier.unseal_with(Keyring::generate(&rng, 0));
        barrier
    }

    #[tokio::test]
    async fn policies_round_trip_through_the_barrier() {
        let barrier = unsealed_barrier();
        let store = PolicyStore::from_barrier(&barrier);
        store.ensure_builtin_policies().await.unwrap();

        // Phase 1: the built-ins exist; response-wrapping is stored but not listed.
        assert_eq!(store.list().unwrap(), vec!["default"]);
        assert!(store.get("response-wrapping").unwrap().is_some());
        assert_eq!(store.get("ROOT").unwrap().unwrap().raw, "");

        // Phase 2: a new policy is stored under its lowercased name, in sys/policy/.
        let text = "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n";
        store.set("Reader", text).await.unwrap();
        assert_eq!(store.get("reader").unwrap().unwrap().raw, text);
        assert_eq!(store.list().unwrap(), vec!["default", "reader"]);
        assert!(barrier.get("sys/policy/reader").unwrap().is_some());

        // Phase 3: an update replaces the cached copy.
        store
            .set("reader", "path \"secret/*\" { capabilities = [\"list\"] }")
            .await
            .unwrap();
        let acl = store.acl_for(&["reader".to_string()]).unwrap();
        assert_eq!(acl.capabilities("secret/x"), vec!["list"]);

        // Phase 4: a second store over the same storage (another node) sees the same.
        let other = PolicyStore::from_barrier(&barrier);
        assert_eq!(other.get("reader").unwrap(), store.get("reader").unwrap());

        // Phase 5: delete removes it; deleting again is fine.
        store.delete("reader").await.unwrap();
        assert!(store.get("reader").unwrap().is_none());
        store.delete("reader").await.unwrap();
    }

    #[tokio::test]
    async fn a_read_racing_a_write_does_not_cache_the_old_text() {
        let store = PolicyStore::from_barrier(&unsealed_barrier());
        store
            .set("p", "path \"a\" { policy = \"read\" }")
            .await
            .unwrap();
        // A reader notes the generation, then a write lands before it caches its copy.
        let generation = store.cache_lock().generation;
        let stale = Arc::new(Policy::parse("p", "path \"a\" { policy = \"read\" }").unwrap());
        store
            .set("p", "path \"a\" { policy = \"deny\" }")
            .await
            .unwrap();
        store.cache_insert("p", stale, generation);
        let acl = store.acl_for(&["p".to_string()]).unwrap();
        assert_eq!(acl.capabilities("a"), vec!["deny"]);
    }

    #[tokio::test]
    async fn builtin_policies_are_protected() {
        let store = PolicyStore::from_barrier(&unsealed_barrier());
        store.ensure_builtin_policies().await.unwrap();
        let text = "path \"*\" { capabilities = [\"read\"] }";
        assert_eq!(
            store.set("root", text).await.unwrap_err().to_string(),
            "cannot update \"root\" policy"
        );
        assert_eq!(
            store
                .set("response-wrapping", text)
                .await
                .unwrap_err()
                .to_string(),
            "cannot update \"response-wrapping\" policy"
        );
        assert_eq!(
            store.delete("root").await.unwrap_err().to_string(),
            "cannot delete \"root\" policy"
        );
        assert_eq!(
            store.delete("Default").await.unwrap_err().to_string(),
            "cannot delete default policy"
        );
        // `default` may be changed, and a later unseal keeps the change.
        store.set("default", text).await.unwrap();
        store.ensure_builtin_policies().await.unwrap();
        assert_eq!(store.get("default").unwrap().unwrap().raw, text);
    }

    #[tokio::test]
    async fn acl_for_skips_unknown_names_and_honours_root() {
        let store = PolicyStore::from_barrier(&unsealed_barrier());
        store.ensure_builtin_policies().await.unwrap();
        let names = ["default".to_string(), "missing".to_string()];
        let acl = store.acl_for(&names).unwrap();
        assert!(
            acl.allowed(Operation::Read, "auth/token/lookup-self", &Map::new())
                .allowed
        );
        assert!(!acl.is_root());
        assert!(store.acl_for(&["root".to_string()]).unwrap().is_root());
    }

    #[tokio::test]
    async fn a_bad_policy_is_refused_with_the_parser_message() {
        let store = PolicyStore::from_barrier(&unsealed_barrier());
        let error = store
            .set("bad", "path \"a\" {\n  capabilities = [\"raed\"]\n}")
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to parse policy: line 2: invalid capability \"raed\" in path \"a\""
        );
        assert!(store.get("bad").unwrap().is_none());
    }
}
