//! The ACL test matrix: fixed policy sets, then a table of (path, operation) → allowed or
//! refused, with the reason each row holds. Rows marked "docs" come from the examples in
//! Vault's policy documentation; the rest follow Vault's `acl.go` rules.

use proptest::prelude::*;
use serde_json::Map;

use super::{Acl, Policy};
use crate::logical::Operation::{self, Create, Delete, List, Patch, Read, Update};

const ALLOW: bool = true;
const DENY: bool = false;

/// One policy exercising exact, prefix, `+`, deny and sudo rules.
const DEV_POLICY: &str = r#"
# docs: only "secret/foo", not "secret/food" nor "secret/foo/bar".
path "secret/foo" {
  capabilities = ["read"]
}
# docs: everything under "secret/bar/", not "secret/bars/zip".
path "secret/bar/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
# docs: everything prefixed with "zip-".
path "secret/zip-*" {
  capabilities = ["read"]
}
# docs: one segment between "secret/" and "/teamb".
path "secret/+/teamb" {
  capabilities = ["read", "update"]
}
path "secret/+/+/teamb" {
  capabilities = ["delete"]
}
path "secret/bar/super-secret" {
  capabilities = ["deny"]
}
path "sys/mounts/*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}
path "auth/+/login" {
  capabilities = ["create", "update"]
}
path "kv/data/+/config*" {
  capabilities = ["patch"]
}
"#;

/// Priority between different patterns (Vault's docs and `CheckAllowedFromNonExactPaths`).
const PRIORITY_POLICY: &str = r#"
path "p/*" {
  capabilities = ["read"]
}
# docs: "secret/*" beats "secret/+/*" (same first wildcard, both globs, fewer "+").
path "p/+/*" {
  capabilities = ["update"]
}
# A "+" later in the path beats a glob earlier in it.
path "p/a/+" {
  capabilities = ["delete"]
}
# Not ending in "*" beats ending in "*" at the same first wildcard.
path "q/+/x" {
  capabilities = ["read"]
}
path "q/+/x*" {
  capabilities = ["update"]
}
# Fewer "+" segments beat more at the same first wildcard.
path "r/+/b/c" {
  capabilities = ["read"]
}
path "r/+/+/c" {
  capabilities = ["update"]
}
# A longer glob beats a shorter one.
path "s/+/abc*" {
  capabilities = ["read"]
}
path "s/+/a*" {
  capabilities = ["update"]
}
# An exact path beats any glob, and the two never merge.
path "t/*" {
  capabilities = ["create", "update"]
}
path "t/exact" {
  capabilities = ["read"]
}
# A list of "u/dir/" is governed by the exact rule for "u/dir".
path "u/dir" {
  capabilities = ["list"]
}
"#;

/// Two policies sharing patterns: unions, and deny in either wins.
const TEAM_A: &str = r#"
path "shared/data" {
  capabilities = ["read"]
}
path "shared/*" {
  capabilities = ["list"]
}
path "shared/locked" {
  capabilities = ["read", "update"]
}
"#;
const TEAM_B: &str = r#"
path "shared/data" {
  capabilities = ["update"]
}
path "shared/*" {
  capabilities = ["read"]
}
path "shared/locked" {
  capabilities = ["deny"]
}
"#;

fn acl_of(policies: &[(&str, &str)]) -> Acl {
    let parsed: Vec<Policy> = policies
        .iter()
        .map(|(name, text)| Policy::parse(name, text).expect("matrix policies parse"))
        .collect();
    Acl::new(&parsed)
}

fn check_rows(acl: &Acl, rows: &[(&str, Operation, bool)]) {
    let mut failures = Vec::new();
    for (path, operation, expected) in rows {
        let result = acl.allowed(*operation, path, &Map::new());
        if result.allowed != *expected {
            failures.push(format!(
                "{operation:?} {path}: expected allowed={expected}, got {result:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "matrix failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn dev_policy_matrix() {
    let acl = acl_of(&[("dev", DEV_POLICY)]);
    check_rows(
        &acl,
        &[
            // Exact rule: that path only (docs).
            ("secret/foo", Read, ALLOW),
            ("/secret/foo", Read, ALLOW),
            ("secret/foo", Update, DENY),
            ("secret/food", Read, DENY),
            ("secret/foo/bar", Read, DENY),
            // Glob: a prefix of everything below, not of siblings (docs).
            ("secret/bar/zip", Read, ALLOW),
            ("secret/bar/zip/zap", Delete, ALLOW),
            ("secret/bar/", List, ALLOW),
            ("secret/bars/zip", Read, DENY),
            ("secret/bar", Read, DENY),
            ("secret/zip-zap", Read, ALLOW),
            ("secret/zip-zap/zong", Read, ALLOW),
            ("secret/zip/zap", Read, DENY),
            // Deny on an exact path inside a granted prefix.
            ("secret/bar/super-secret", Read, DENY),
            ("secret/bar/super-secret", Delete, DENY),
            ("secret/bar/super-secret-2", Read, ALLOW),
            // "+" is exactly one segment (docs).
            ("secret/foo/teamb", Read, ALLOW),
            ("secret/foo/teamb", Update, ALLOW),
            ("secret/foo/teamb", Delete, DENY),
            ("secret/foo/bar/teamb", Delete, ALLOW),
            ("secret/foo/bar/teamb", Read, DENY),
            ("secret/teamb", Read, DENY),
            ("secret/foo/teamb/x", Read, DENY),
            // "secret/bar/" glob's first wildcard is later than "+": the glob wins.
            ("secret/bar/teamb", Delete, ALLOW),
            // "+" matches any auth mount's login.
            ("auth/userpass/login", Update, ALLOW),
            ("auth/userpass/login", Read, DENY),
            ("auth/token/create", Update, DENY),
            ("auth/a/b/login", Update, DENY),
            // "+" with a trailing glob.
            ("kv/data/app/config", Patch, ALLOW),
            ("kv/data/app/config-prod/x", Patch, ALLOW),
            ("kv/data/app/other", Patch, DENY),
            ("kv/data/config", Patch, DENY),
            // Sudo paths.
            ("sys/mounts/secret", Create, ALLOW),
            ("sys/mounts", Read, DENY),
            // Nothing else.
            ("sys/policy/default", Read, DENY),
            ("", Read, DENY),
        ],
    );
    assert!(acl.allowed(Create, "sys/mounts/x", &Map::new()).root_privs);
    assert!(!acl.allowed(Read, "secret/foo", &Map::new()).root_privs);
    assert_eq!(acl.capabilities("secret/bar/super-secret"), vec!["deny"]);
    assert_eq!(
        acl.capabilities("sys/mounts/kv"),
        vec!["create", "delete", "list", "read", "sudo", "update"]
    );
}

#[test]
fn priority_matrix() {
    let acl = acl_of(&[("priority", PRIORITY_POLICY)]);
    check_rows(
        &acl,
        &[
            // docs: "p/*" over "p/+/*".
            ("p/x/y", Read, ALLOW),
            ("p/x/y", Update, DENY),
            // "p/a/+" has its first wildcard later than "p/*".
            ("p/a/z", Delete, ALLOW),
            ("p/a/z", Read, DENY),
            ("p/a/z/deeper", Read, ALLOW),
            // Not-a-prefix over prefix.
            ("q/1/x", Read, ALLOW),
            ("q/1/x", Update, DENY),
            ("q/1/xy", Update, ALLOW),
            // Fewer "+" over more.
            ("r/a/b/c", Read, ALLOW),
            ("r/a/b/c", Update, DENY),
            ("r/a/z/c", Update, ALLOW),
            // Longer over shorter.
            ("s/1/abcd", Read, ALLOW),
            ("s/1/abcd", Update, DENY),
            ("s/1/ab", Update, ALLOW),
            // Exact over glob, without a union.
            ("t/exact", Read, ALLOW),
            ("t/exact", Update, DENY),
            ("t/other", Update, ALLOW),
            // A list with a trailing slash finds the exact rule without it.
            ("u/dir/", List, ALLOW),
            ("u/dir", List, ALLOW),
            ("u/dir/", Read, DENY),
        ],
    );
}

#[test]
fn shared_patterns_matrix() {
    let acl = acl_of(&[("team-a", TEAM_A), ("team-b", TEAM_B)]);
    check_rows(
        &acl,
        &[
            // The same exact pattern in two policies: union.
            ("shared/data", Read, ALLOW),
            ("shared/data", Update, ALLOW),
            ("shared/data", List, DENY),
            // The same glob in two policies: union.
            ("shared/other", Read, ALLOW),
            ("shared/other", List, ALLOW),
            ("shared/other", Update, DENY),
            // Deny in one policy beats grants in the other.
            ("shared/locked", Read, DENY),
            ("shared/locked", Update, DENY),
        ],
    );
    let update = acl.allowed(Update, "shared/data", &Map::new());
    assert_eq!(update.granting_policies, vec!["team-b"]);
    // Order of policies does not matter for deny.
    let reversed = acl_of(&[("team-b", TEAM_B), ("team-a", TEAM_A)]);
    assert!(!reversed.allowed(Read, "shared/locked", &Map::new()).allowed);
}

#[test]
fn no_policies_deny_everything() {
    let acl = Acl::new(&[]);
    assert!(!acl.allowed(Read, "secret/foo", &Map::new()).allowed);
    assert_eq!(acl.capabilities("secret/foo"), vec!["deny"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_policy_text_never_panics(text in any::<String>()) {
        let _ = Policy::parse("fuzz", &text);
    }

    /// Text shaped like policies (the grammar's own characters) never panics the
    /// parser, and whatever parses compiles and answers without panicking.
    #[test]
    fn policy_shaped_text_never_panics(
        text in r#"(path "[a-z/+*{}]{0,12}" \{ ?(capabilities|policy|allowed_parameters|min_wrapping_ttl) ?= ?[\[\]{}"a-z0-9 ,=*+]{0,24} ?\}\n){0,4}"#,
        probe in "[a-z/+*]{0,12}",
    ) {
        if let Ok(policy) = Policy::parse("fuzz", &text) {
            let acl = Acl::new(&[policy]);
            let _ = acl.capabilities(&probe);
            let _ = acl.allowed(Update, &probe, &Map::new());
        }
    }

    /// Arbitrary JSON-ish text never panics either.
    #[test]
    fn json_shaped_text_never_panics(text in r#"\{"path": ?[\[\]{}":a-z0-9 ,*+]{0,40}\}"#) {
        let _ = Policy::parse("fuzz", &text);
    }
}
