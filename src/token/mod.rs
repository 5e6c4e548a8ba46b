//! The token store: Vault's service tokens, their accessors, the parent/child tree and
//! token roles.
//!
//! In: creations (root, child, orphan, login), presented tokens to look up or use,
//! renewals and revocations, each with `now` as an argument. Out: [`TokenEntry`]s,
//! Vault `auth` blocks and, for every revoked token, a call to each registered
//! [`RevocationHook`] so the layers that key data by token (cubbyhole, leases) can
//! clean up.
//!
//! Invariants: a token's text never reaches storage, neither in a key nor in a value.
//! Entries are stored under a salted HMAC-SHA256 of the token (the salt is random per
//! cluster, stored at `sys/token/salt`), and presented tokens are compared only
//! through that HMAC or a constant-time MAC check. Everything under `sys/token/` is
//! local to the cluster; roles live in a separate, replicated view.
//!
//! Batch tokens are not implemented: `type=batch` is refused with a 400.

pub mod entry;
pub mod format;
pub mod handlers;
pub mod role;
pub mod store;

pub use entry::{TokenEntry, TokenType};
pub use handlers::{PolicyLookup, TokenBackend};
pub use role::{RoleStore, TokenRole};
pub use store::{RevocationHook, RevokedToken, TokenError, TokenParams, TokenStore};

/// Vault's system default lease TTL and maximum lease TTL (768h), used when neither the
/// request, the role nor the auth method says otherwise.
pub const DEFAULT_LEASE_TTL_SECONDS: i64 = 768 * 3600;
pub const MAX_LEASE_TTL_SECONDS: i64 = 768 * 3600;

/// Format Unix seconds as RFC 3339 in UTC (`2026-11-28T05:00:00Z`), as Vault's
/// `issue_time` and `expire_time` fields carry.
pub fn rfc3339(unix_seconds: i64) -> String {
    crate::util::rfc3339_seconds(unix_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_434_061), "2026-12-28T05:01:01Z");
    }
}

/// A barrier over memory, a token store, an expiration manager and a token backend,
/// wired the way the server wires them, for the stories in this module's tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::barrier::{Barrier, Keyring};
    use crate::env::SharedRng;
    use crate::expiration::ExpirationManager;
    use crate::storage::MemoryBackend;

    use super::{PolicyLookup, RoleStore, TokenBackend, TokenStore};

    pub struct Fixture {
        pub backend: Arc<MemoryBackend>,
        pub barrier: Barrier,
        pub rng: SharedRng,
        pub tokens: TokenStore,
        pub expiration: ExpirationManager,
        pub token_backend: TokenBackend,
    }

    /// Policies `admin` and `dev` exist; `ops` has sudo everywhere.
    pub struct KnownPolicies;

    impl PolicyLookup for KnownPolicies {
        fn policy_exists(&self, name: &str) -> bool {
            ["admin", "dev", "ops"].contains(&name)
        }
        fn has_sudo(&self, policies: &[String], _path: &str) -> bool {
            policies.iter().any(|policy| policy == "ops")
        }
    }

    pub fn fixture(seed: u64) -> Fixture {
        let backend = Arc::new(MemoryBackend::new());
        let rng = SharedRng::from_u64(seed);
        let barrier = Barrier::new(backend.clone(), rng.clone());
        barrier.unseal_with(Keyring::generate(&rng, 0));
        let tokens = TokenStore::new(
            barrier.view(crate::storage::Store::Tokens.prefix()),
            rng.clone(),
        );
        let expiration = ExpirationManager::new(
            barrier.view(crate::storage::Store::Leases.prefix()),
            tokens.clone(),
            rng.clone(),
        );
        let token_backend = TokenBackend::new(
            expiration.clone(),
            RoleStore::new(barrier.view(crate::storage::Store::TokenRoles.prefix())),
            Arc::new(KnownPolicies),
        );
        Fixture {
            backend,
            barrier,
            rng,
            tokens,
            expiration,
            token_backend,
        }
    }

    impl Fixture {
        /// Whether `needle` appears anywhere in storage, keys or (encrypted) values.
        pub fn storage_contains(&self, needle: &str) -> bool {
            self.backend.dump().iter().any(|(key, value)| {
                key.contains(needle)
                    || value
                        .windows(needle.len())
                        .any(|window| window == needle.as_bytes())
            })
        }
    }
}
