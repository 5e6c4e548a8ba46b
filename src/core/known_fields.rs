//! The request fields each endpoint understands, so a request carrying others gets
//! Vault's warning ("Endpoint ignored these unrecognized parameters") instead of having
//! them dropped in silence. Endpoints whose bodies are free-form (KV v1, cubbyhole,
//! KV v2's `data`) are not listed and never warn.

use serde_json::{Map, Value};

use super::mounts::TableKind;
use crate::logical::Operation;

const TOKEN_CREATE: &[&str] = &[
    "id",
    "role_name",
    "policies",
    "meta",
    "no_parent",
    "no_default_policy",
    "renewable",
    "ttl",
    "type",
    "explicit_max_ttl",
    "display_name",
    "num_uses",
    "period",
    "entity_alias",
    "lease",
];
const MOUNT: &[&str] = &[
    "type",
    "description",
    "config",
    "options",
    "local",
    "seal_wrap",
    "external_entropy_access",
    "plugin_name",
    "plugin_version",
];
const USERPASS_USER: &[&str] = &[
    "password",
    "password_hash",
    "policies",
    "token_policies",
    "token_ttl",
    "token_max_ttl",
    "token_explicit_max_ttl",
    "token_type",
    "token_period",
    "token_num_uses",
    "token_bound_cidrs",
    "token_no_default_policy",
    "bound_cidrs",
    "ttl",
    "max_ttl",
];
const POLICY: &[&str] = &["policy", "rules"];
const KV_DATA: &[&str] = &["data", "options", "version"];
const KV_METADATA: &[&str] = &[
    "max_versions",
    "cas_required",
    "delete_version_after",
    "custom_metadata",
];
const KV_CONFIG: &[&str] = &["max_versions", "cas_required", "delete_version_after"];
const KV_VERSIONS: &[&str] = &["versions"];

/// The fields `path` (below its mount) accepts for a write, or `None` when any are fine.
fn known(
    kind: TableKind,
    mount_type: &str,
    kv_version: Option<u8>,
    rest: &str,
) -> Option<&'static [&'static str]> {
    let first = rest.split('/').next().unwrap_or("");
    match (kind, mount_type) {
        (TableKind::Auth, "token")
            if rest == "create" || rest == "create-orphan" || rest.starts_with("create/") =>
        {
            Some(TOKEN_CREATE)
        }
        (TableKind::Auth, "userpass") if first == "users" && rest.matches('/').count() == 1 => {
            Some(USERPASS_USER)
        }
        (TableKind::Auth, "userpass") if first == "login" => Some(&["password"]),
        (TableKind::Secrets, "system")
            if rest.starts_with("mounts/") && !rest.ends_with("/tune") =>
        {
            Some(MOUNT)
        }
        (TableKind::Secrets, "system") if rest.starts_with("auth/") && !rest.ends_with("/tune") => {
            Some(MOUNT)
        }
        (TableKind::Secrets, "system")
            if rest.starts_with("policy/") || rest.starts_with("policies/acl/") =>
        {
            Some(POLICY)
        }
        (TableKind::Secrets, "kv") if kv_version == Some(2) => match first {
            "data" => Some(KV_DATA),
            "metadata" => Some(KV_METADATA),
            "config" => Some(KV_CONFIG),
            "delete" | "undelete" | "destroy" => Some(KV_VERSIONS),
            _ => None,
        },
        _ => None,
    }
}

/// Vault's warning for the fields of a write that its endpoint does not know, if any.
pub fn unrecognized_warning(
    kind: TableKind,
    mount_type: &str,
    kv_version: Option<u8>,
    rest: &str,
    operation: Operation,
    data: &Map<String, Value>,
) -> Option<String> {
    if !matches!(operation, Operation::Create | Operation::Update) {
        return None;
    }
    let known = known(kind, mount_type, kv_version, rest.trim_end_matches('/'))?;
    let unknown: Vec<&str> = data
        .keys()
        .map(String::as_str)
        .filter(|key| !known.contains(key))
        .collect();
    (!unknown.is_empty()).then(|| {
        format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            unknown.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_and_free_form_bodies_never_warn() {
        let mut data = Map::new();
        data.insert("policies".into(), Value::from("default"));
        data.insert("bogus".into(), Value::from(1));
        let warning = unrecognized_warning(
            TableKind::Auth,
            "token",
            None,
            "create",
            Operation::Update,
            &data,
        );
        assert_eq!(
            warning.as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [bogus]")
        );
        assert_eq!(
            unrecognized_warning(
                TableKind::Secrets,
                "kv",
                Some(1),
                "app",
                Operation::Update,
                &data
            ),
            None
        );
        assert_eq!(
            unrecognized_warning(
                TableKind::Auth,
                "token",
                None,
                "create",
                Operation::Read,
                &data
            ),
            None
        );
    }
}
