//! The policies Vault ships: `default` (attached to every non-root token unless
//! `no_default_policy`), `response-wrapping` (the fixed policy of wrapping tokens), and
//! the rules about which built-in policies may change.
//!
//! The texts are Vault's, byte for byte, so `vault policy read default` prints the same.

/// The name of the policy every token gets unless created with `no_default_policy`.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// The name of the fixed policy of response-wrapping tokens.
pub const RESPONSE_WRAPPING_POLICY_NAME: &str = "response-wrapping";

/// Vault's built-in `default` policy.
pub const DEFAULT_POLICY: &str = r#"
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own entity by id or name
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}


# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Allow checking the status of a Control Group request if the user has the
# accessor
path "sys/control-group/request" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"#;

/// Vault's built-in `response-wrapping` policy.
pub const RESPONSE_WRAPPING_POLICY: &str = r#"
path "cubbyhole/response" {
    capabilities = ["create", "read"]
}

path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}
"#;

/// Policies no one may write (Vault's `immutablePolicies`).
pub const IMMUTABLE_POLICIES: [&str; 2] = [
    super::policy::ROOT_POLICY_NAME,
    RESPONSE_WRAPPING_POLICY_NAME,
];

/// Policies that exist but are never listed nor attached to tokens by name (Vault's
/// `nonAssignablePolicies`).
pub const NON_ASSIGNABLE_POLICIES: [&str; 1] = [RESPONSE_WRAPPING_POLICY_NAME];

/// The built-in text of `name`, for the policies Vault creates at unseal.
pub fn builtin_policy_text(name: &str) -> Option<&'static str> {
    match name {
        DEFAULT_POLICY_NAME => Some(DEFAULT_POLICY),
        RESPONSE_WRAPPING_POLICY_NAME => Some(RESPONSE_WRAPPING_POLICY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{Acl, Policy, TemplateIdentity};
    use crate::logical::Operation;
    use serde_json::Map;

    #[test]
    fn default_policy_grants_what_vault_grants() {
        let acl = Acl::new(&[Policy::parse(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap()]);
        let allowed = |operation, path| acl.allowed(operation, path, &Map::new()).allowed;
        assert!(allowed(Operation::Read, "auth/token/lookup-self"));
        assert!(allowed(Operation::Update, "auth/token/renew-self"));
        assert!(allowed(Operation::Update, "sys/capabilities-self"));
        assert!(allowed(Operation::Create, "cubbyhole/anything/deep"));
        assert!(allowed(Operation::List, "cubbyhole/"));
        assert!(allowed(Operation::Update, "sys/wrapping/unwrap"));
        assert!(allowed(Operation::Update, "sys/tools/hash/sha2-256"));
        assert!(allowed(Operation::Update, "sys/control-group/request"));
        assert!(allowed(
            Operation::Read,
            "identity/oidc/provider/default/authorize"
        ));
        assert!(!allowed(Operation::Read, "secret/data/foo"));
        assert!(!allowed(Operation::Read, "sys/policy/default"));
        assert!(!allowed(Operation::Update, "auth/token/create"));
        // Without an entity the identity rules are skipped, as in Vault.
        assert!(!allowed(Operation::Read, "identity/entity/id/e-1"));

        let identity = TemplateIdentity {
            entity_id: "e-1".to_string(),
            entity_name: "alice".to_string(),
            ..TemplateIdentity::default()
        };
        let policy = Policy::parse(DEFAULT_POLICY_NAME, DEFAULT_POLICY).unwrap();
        let with_entity = Acl::with_identity(&[policy], Some(&identity));
        let own = |path| {
            with_entity
                .allowed(Operation::Read, path, &Map::new())
                .allowed
        };
        assert!(own("identity/entity/id/e-1"));
        assert!(own("identity/entity/name/alice"));
        assert!(!own("identity/entity/name/bob"));
    }

    #[test]
    fn response_wrapping_policy_only_reaches_its_cubbyhole() {
        let acl =
            Acl::new(&[
                Policy::parse(RESPONSE_WRAPPING_POLICY_NAME, RESPONSE_WRAPPING_POLICY).unwrap(),
            ]);
        assert_eq!(
            acl.capabilities("cubbyhole/response"),
            vec!["create", "read"]
        );
        assert_eq!(acl.capabilities("cubbyhole/other"), vec!["deny"]);
        assert_eq!(acl.capabilities("sys/wrapping/unwrap"), vec!["update"]);
    }
}
