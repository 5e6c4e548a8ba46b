//! Every storage key has exactly one class, decided by its prefix and never by the
//! caller: replication ships `Replicated` keys (subject to path filters), never `Local`
//! or `Ignored` ones.

/// How a key travels between clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyClass {
    /// Crosses to performance secondaries (mount and auth tables, policies, data of
    /// non-local mounts, userpass users, token roles, identity).
    Replicated,
    /// Stays in this cluster: tokens, accessors, leases, cubbyhole, local mounts' data,
    /// the seal configuration and keyring, replication bookkeeping.
    Local,
    /// Never replicated and never meaningful elsewhere (Raft configuration, caches).
    Ignored,
}

/// The prefixes that are always local. Order does not matter: prefixes are disjoint.
const LOCAL_PREFIXES: &[&str] = &[
    "core/seal-config",
    "core/root-key",
    "core/keyring",
    "core/cluster/",
    "core/local-mounts",
    "core/local-auth",
    "core/local-audit",
    "core/replication/",
    "sys/token/",
    "sys/expire/",
    "sys/wrapping/",
    "local-logical/",
    "local-auth/",
];

const IGNORED_PREFIXES: &[&str] = &["core/raft/", "core/cache/"];

/// The class of `key`. Keys not named local or ignored are replicated: forgetting to
/// name a new local prefix would leak it, so new local data must go under one of the
/// prefixes above (`local-logical/` for local mounts, `sys/token/` for tokens).
pub fn key_class(key: &str) -> KeyClass {
    if IGNORED_PREFIXES
        .iter()
        .any(|prefix| key.starts_with(prefix))
    {
        KeyClass::Ignored
    } else if LOCAL_PREFIXES.iter().any(|prefix| key.starts_with(prefix)) {
        KeyClass::Local
    } else {
        KeyClass::Replicated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_leases_and_local_mounts_never_replicate() {
        for key in [
            "sys/token/id/abc",
            "sys/expire/id/auth/userpass/login/x",
            "local-logical/1234/secret",
            "core/keyring",
            "core/seal-config",
        ] {
            assert_eq!(key_class(key), KeyClass::Local, "{key}");
        }
        for key in [
            "core/mounts",
            "sys/policy/admin",
            "logical/1234/data/x",
            "auth/5678/user/bob",
        ] {
            assert_eq!(key_class(key), KeyClass::Replicated, "{key}");
        }
        assert_eq!(key_class("core/raft/config"), KeyClass::Ignored);
    }
}
