//! The mount tables: which backend serves which path prefix.
//!
//! Each entry is stored under its own key, chosen by the key space from its table, class
//! and uuid (`core/mounts/<uuid>`, `core/local-mounts/<uuid>`, `core/auth/<uuid>`,
//! `core/local-auth/<uuid>`) and encrypted on its own, so a secondary's filter can drop
//! one mount's entry without touching the others. A mount's data lives below its own
//! prefix, chosen the same way (`logical/<uuid>/`, `local-logical/<uuid>/`, `auth/<uuid>/`,
//! `local-auth/<uuid>/`): the key class of every byte of a local mount is local, and the
//! group of a mount's entry and data is its uuid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::barrier::Write;
use crate::env::SharedRng;
use crate::logical::{LogicalError, parse_duration_seconds};
use crate::storage::key_space;

/// The most mounts one table holds.
pub const MOUNTS_MAX: usize = 1024;
/// The longest mount path.
pub const MOUNT_PATH_BYTES_MAX: usize = 512;

pub use crate::storage::TableKind;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountConfig {
    #[serde(default)]
    pub default_lease_ttl: i64,
    #[serde(default)]
    pub max_lease_ttl: i64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_visibility: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_request_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_response_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountEntry {
    /// With its trailing slash: `secret/`.
    pub path: String,
    #[serde(rename = "type")]
    pub mount_type: String,
    #[serde(default)]
    pub description: String,
    pub accessor: String,
    pub uuid: String,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    #[serde(default)]
    pub external_entropy_access: bool,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub config: MountConfig,
    /// Being disabled (Vault's `tainted`): the entry stays in the table, serving nothing
    /// and holding its path, until its leases are revoked and its data deleted. Written
    /// before either, so an active node that stops midway leaves a mark its successor
    /// finishes from, never a removed entry whose tokens and leases live on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tainted: bool,
}

impl MountEntry {
    /// Where this mount's data lives. The system, identity and token backends keep
    /// their records in core stores instead (`sys/policy/`, `identity/`, `sys/token/`,
    /// ...), so their own prefix stays empty.
    pub fn storage_prefix(&self, kind: TableKind) -> String {
        key_space::mount_data_prefix(kind, self.local, &self.uuid)
    }

    /// The key of this entry in its table.
    pub fn storage_key(&self, kind: TableKind) -> String {
        key_space::mount_entry(kind, self.local, &self.uuid)
    }

    /// The engine that serves this mount. Vault's legacy `generic` type is KV (Vault's
    /// `mountAliases`); the table keeps and shows the type the operator asked for.
    pub fn engine_type(&self) -> &str {
        match self.mount_type.as_str() {
            "generic" => "kv",
            other => other,
        }
    }

    pub fn kv_version(&self) -> Option<u8> {
        (self.engine_type() == "kv").then(|| {
            if self.options.get("version").map(String::as_str) == Some("2") {
                2
            } else {
                1
            }
        })
    }

    /// The entry as `sys/mounts` and `sys/auth` show it.
    pub fn to_json(&self, kind: TableKind) -> Value {
        let mut config = json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "max_lease_ttl": self.config.max_lease_ttl,
            "force_no_cache": self.config.force_no_cache,
        });
        // Vault shows a token type on every auth mount, `default-service` unless tuned;
        // clients such as vaultrs require the field.
        match (&self.config.token_type, kind) {
            (Some(token_type), _) => config["token_type"] = Value::from(token_type.clone()),
            (None, TableKind::Auth) => config["token_type"] = Value::from("default-service"),
            (None, TableKind::Secrets) => {}
        }
        if self.mount_type == "system" {
            config["passthrough_request_headers"] = json!(["Accept"]);
        }
        for (name, values) in [
            (
                "passthrough_request_headers",
                &self.config.passthrough_request_headers,
            ),
            (
                "allowed_response_headers",
                &self.config.allowed_response_headers,
            ),
            (
                "audit_non_hmac_request_keys",
                &self.config.audit_non_hmac_request_keys,
            ),
            (
                "audit_non_hmac_response_keys",
                &self.config.audit_non_hmac_response_keys,
            ),
        ] {
            if !values.is_empty() {
                config[name] = json!(values);
            }
        }
        if let Some(visibility) = &self.config.listing_visibility {
            config["listing_visibility"] = Value::from(visibility.clone());
        }
        let options = if self.options.is_empty()
            && !(kind == TableKind::Secrets && self.engine_type() == "kv")
        {
            Value::Null
        } else {
            json!(self.options)
        };
        json!({
            "accessor": self.accessor,
            "config": config,
            "description": self.description,
            "external_entropy_access": self.external_entropy_access,
            "local": self.local,
            "options": options,
            "seal_wrap": self.seal_wrap,
            "type": self.mount_type,
            "uuid": self.uuid,
            "plugin_version": "",
            "running_plugin_version": format!("v{}+builtin.arca", crate::core::VERSION),
            "running_sha256": "",
            "deprecation_status": if self.mount_type == "system" || self.mount_type == "identity" || self.mount_type == "cubbyhole" || self.mount_type == "token" { Value::Null } else { Value::from("supported") },
        })
    }
}

/// The secrets engines and auth methods Arca has.
pub fn supported_type(kind: TableKind, mount_type: &str) -> bool {
    match kind {
        TableKind::Secrets => matches!(
            mount_type,
            "kv" | "generic" | "cubbyhole" | "system" | "identity"
        ),
        TableKind::Auth => matches!(mount_type, "token" | "userpass"),
    }
}

/// A mount's path as clients see it: `auth/` in front of an auth method's.
pub fn client_path(kind: TableKind, path: &str) -> String {
    match kind {
        TableKind::Secrets => path.to_string(),
        TableKind::Auth => format!("auth/{path}"),
    }
}

/// The types every cluster mounts itself and no one may enable or disable.
pub fn is_builtin_type(mount_type: &str) -> bool {
    matches!(mount_type, "system" | "identity" | "cubbyhole" | "token")
}

/// One table (secrets or auth), both classes merged, sorted by path.
#[derive(Debug, Clone, PartialEq)]
pub struct MountTable {
    pub kind: TableKind,
    entries: Vec<MountEntry>,
}

impl MountTable {
    pub fn new(kind: TableKind, mut entries: Vec<MountEntry>) -> Self {
        entries.sort_by(|left, right| left.path.cmp(&right.path));
        Self { kind, entries }
    }

    pub fn entries(&self) -> &[MountEntry] {
        &self.entries
    }

    /// The default tables of a fresh cluster.
    pub fn defaults(kind: TableKind, rng: &SharedRng) -> Self {
        let entry = |path: &str, mount_type: &str, description: &str, local: bool| MountEntry {
            path: path.to_string(),
            mount_type: mount_type.to_string(),
            description: description.to_string(),
            accessor: new_accessor(kind, mount_type, rng),
            uuid: rng.uuid(),
            local,
            seal_wrap: false,
            external_entropy_access: false,
            options: BTreeMap::new(),
            config: MountConfig {
                token_type: (mount_type == "token").then(|| "default-service".to_string()),
                ..MountConfig::default()
            },
            tainted: false,
        };
        match kind {
            TableKind::Secrets => Self::new(
                kind,
                vec![
                    entry(
                        "cubbyhole/",
                        "cubbyhole",
                        "per-token private secret storage",
                        true,
                    ),
                    entry("identity/", "identity", "identity store", false),
                    entry(
                        "sys/",
                        "system",
                        "system endpoints used for control, policy and debugging",
                        false,
                    ),
                ],
            ),
            TableKind::Auth => Self::new(
                kind,
                vec![entry("token/", "token", "token based credentials", false)],
            ),
        }
    }

    /// The mount serving `path` (relative to `/v1/`, and for auth tables relative to
    /// `auth/`), with the rest of the path. The longest matching mount wins.
    /// A tainted mount serves nothing.
    pub fn route<'a>(&self, path: &'a str) -> Option<(&MountEntry, &'a str)> {
        self.serving()
            .filter(|entry| path.starts_with(&entry.path) || format!("{path}/") == entry.path)
            .max_by_key(|entry| entry.path.len())
            .map(|entry| (entry, path.get(entry.path.len()..).unwrap_or("")))
    }

    /// The mount at `path`, unless it is being disabled.
    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        let path = normalize_mount_path(path);
        self.serving().find(|entry| entry.path == path)
    }

    /// The entries that serve requests: all but the tainted ones.
    pub fn serving(&self) -> impl Iterator<Item = &MountEntry> {
        self.entries.iter().filter(|entry| !entry.tainted)
    }

    /// The entries being disabled.
    pub fn tainted(&self) -> impl Iterator<Item = &MountEntry> {
        self.entries.iter().filter(|entry| entry.tainted)
    }

    /// Mark the mount at `path` as being disabled; the entry as marked, also when an
    /// earlier disable marked it and did not finish.
    pub fn taint(&mut self, path: &str) -> Option<MountEntry> {
        let entry = self.entries.iter_mut().find(|entry| entry.path == path)?;
        entry.tainted = true;
        Some(entry.clone())
    }

    /// Remove the entry of mount `uuid`, whatever its state.
    pub fn remove_uuid(&mut self, uuid: &str) -> Option<MountEntry> {
        let index = self.entries.iter().position(|entry| entry.uuid == uuid)?;
        Some(self.entries.remove(index))
    }

    pub fn find_by_accessor(&self, accessor: &str) -> Option<&MountEntry> {
        self.entries.iter().find(|entry| entry.accessor == accessor)
    }

    /// Refuse a new mount whose path overlaps an existing one, as Vault does.
    pub fn check_new_path(&self, path: &str) -> Result<(), LogicalError> {
        if self.entries.len() >= MOUNTS_MAX {
            return Err(LogicalError::BadRequest("too many mounts".into()));
        }
        for entry in &self.entries {
            if entry.path == path {
                return Err(LogicalError::BadRequest(format!(
                    "path is already in use at {}",
                    entry.path
                )));
            }
            if path.starts_with(&entry.path) || entry.path.starts_with(path) {
                return Err(LogicalError::BadRequest(format!(
                    "path is already in use at {}",
                    entry.path
                )));
            }
        }
        Ok(())
    }

    pub fn insert(&mut self, entry: MountEntry) {
        self.entries.push(entry);
        self.entries
            .sort_by(|left, right| left.path.cmp(&right.path));
    }

    /// Remove the mount at `path`, unless it is being disabled.
    pub fn remove(&mut self, path: &str) -> Option<MountEntry> {
        let index = self
            .entries
            .iter()
            .position(|entry| entry.path == path && !entry.tainted)?;
        Some(self.entries.remove(index))
    }

    /// The mount at `path` to change, unless it is being disabled.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut MountEntry> {
        self.entries
            .iter_mut()
            .find(|entry| entry.path == path && !entry.tainted)
    }

    /// The stored writes that turn `before` into this table: a put for every entry
    /// that is new or changed, a delete for every stored key no entry has any more.
    /// Sorted by key, so the batch does not depend on the order the entries were
    /// changed in.
    pub fn writes_since(&self, before: Option<&MountTable>) -> Vec<Write> {
        let unchanged = |entry: &MountEntry| {
            before.is_some_and(|before| before.entries.iter().any(|old| old == entry))
        };
        let mut writes: Vec<Write> = self
            .entries
            .iter()
            .filter(|entry| !unchanged(entry))
            .map(|entry| Write::Put {
                key: entry.storage_key(self.kind),
                value: serde_json::to_vec(entry).expect("mount entries serialize"),
            })
            .collect();
        if let Some(before) = before {
            let kept: std::collections::BTreeSet<String> = self
                .entries
                .iter()
                .map(|entry| entry.storage_key(self.kind))
                .collect();
            writes.extend(
                before
                    .entries
                    .iter()
                    .map(|old| old.storage_key(before.kind))
                    .filter(|key| !kept.contains(key))
                    .map(|key| Write::Delete { key }),
            );
        }
        writes.sort_by(|left, right| write_key(left).cmp(write_key(right)));
        writes
    }

    /// `sys/mounts` / `sys/auth` listing: path → entry, of the serving mounts.
    pub fn to_json(&self) -> Map<String, Value> {
        self.serving()
            .map(|entry| (entry.path.clone(), entry.to_json(self.kind)))
            .collect()
    }
}

fn write_key(write: &Write) -> &str {
    match write {
        Write::Put { key, .. } | Write::Delete { key } => key,
    }
}

/// `<type>_<8 hex>` for secrets engines, `auth_<type>_<8 hex>` for auth methods.
pub fn new_accessor(kind: TableKind, mount_type: &str, rng: &SharedRng) -> String {
    let suffix = hex::encode(rng.bytes::<4>());
    match kind {
        TableKind::Secrets => format!("{mount_type}_{suffix}"),
        TableKind::Auth => format!("auth_{mount_type}_{suffix}"),
    }
}

/// `secret` and `/secret/` become `secret/`.
pub fn normalize_mount_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    format!("{trimmed}/")
}

/// Check a user-supplied mount path.
pub fn validate_mount_path(path: &str) -> Result<String, LogicalError> {
    let normalized = normalize_mount_path(path);
    if normalized == "/" || normalized.len() > MOUNT_PATH_BYTES_MAX {
        return Err(LogicalError::BadRequest("invalid mount path".into()));
    }
    if normalized.trim_end_matches('/').split('/').any(|segment| {
        segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.contains(['*', '+', '\0'])
    }) {
        return Err(LogicalError::BadRequest(format!(
            "invalid mount path {path:?}"
        )));
    }
    Ok(normalized)
}

/// Parse the `config` object of a mount or tune request into `config`.
pub fn apply_config(
    config: &mut MountConfig,
    input: &Map<String, Value>,
) -> Result<(), LogicalError> {
    for (field, value) in input {
        match field.as_str() {
            "default_lease_ttl" | "max_lease_ttl" => {
                let seconds = match value {
                    Value::String(text) if text == "system" => 0,
                    other => parse_duration_seconds(other).map_err(LogicalError::BadRequest)?,
                };
                if field == "default_lease_ttl" {
                    config.default_lease_ttl = seconds;
                } else {
                    config.max_lease_ttl = seconds;
                }
            }
            "force_no_cache" => {
                config.force_no_cache = match value {
                    Value::Bool(flag) => *flag,
                    Value::String(text) => {
                        crate::util::parse_go_bool(text).ok_or_else(|| bad_type(field))?
                    }
                    _ => return Err(bad_type(field)),
                };
            }
            "listing_visibility" => {
                let visibility = value.as_str().ok_or_else(|| bad_type(field))?;
                if !matches!(visibility, "" | "unauth" | "hidden") {
                    return Err(LogicalError::BadRequest(format!(
                        "invalid listing_visibility {visibility}"
                    )));
                }
                config.listing_visibility = Some(visibility.to_string());
            }
            "passthrough_request_headers" => {
                config.passthrough_request_headers = string_list(field, value)?
            }
            "allowed_response_headers" => {
                config.allowed_response_headers = string_list(field, value)?
            }
            "audit_non_hmac_request_keys" => {
                config.audit_non_hmac_request_keys = string_list(field, value)?
            }
            "audit_non_hmac_response_keys" => {
                config.audit_non_hmac_response_keys = string_list(field, value)?
            }
            "token_type" => {
                let token_type = value.as_str().ok_or_else(|| bad_type(field))?;
                if !matches!(
                    token_type,
                    "default-service" | "default-batch" | "service" | "batch" | "default"
                ) {
                    return Err(LogicalError::BadRequest(format!(
                        "invalid token_type {token_type:?}"
                    )));
                }
                config.token_type = Some(token_type.to_string());
            }
            // Accepted and ignored, as Vault ignores them for the built-in engines.
            "plugin_version"
            | "description"
            | "options"
            | "user_lockout_config"
            | "identity_token_key" => {}
            other => {
                return Err(LogicalError::BadRequest(format!(
                    "unknown config field {other:?}"
                )));
            }
        }
    }
    if config.max_lease_ttl != 0 && config.default_lease_ttl > config.max_lease_ttl {
        return Err(LogicalError::BadRequest(
            "default lease TTL cannot be greater than max lease TTL".into(),
        ));
    }
    Ok(())
}

fn bad_type(field: &str) -> LogicalError {
    LogicalError::BadRequest(format!("invalid type for field {field:?}"))
}

/// A list of strings, given as a JSON array or a comma-separated string.
pub fn string_list(field: &str, value: &Value) -> Result<Vec<String>, LogicalError> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad_type(field))
            })
            .collect(),
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err(bad_type(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KV mount at `secret/` with uuid `u1`, shaped after `table`'s `sys/` entry.
    fn kv_at_secret(table: &MountTable) -> MountEntry {
        let mut kv = table.get("sys/").unwrap().clone();
        kv.path = "secret/".into();
        kv.mount_type = "kv".into();
        kv.uuid = "u1".into();
        kv
    }

    #[test]
    fn a_tainted_mount_serves_nothing_and_keeps_its_path_until_removed() {
        let mut table = MountTable::defaults(TableKind::Secrets, &SharedRng::from_u64(3));
        table.insert(kv_at_secret(&table));
        let before = table.clone();

        let marked = table.taint("secret/").unwrap();
        assert!(marked.tainted);
        // Its one change to store is the entry, marked.
        let writes = table.writes_since(Some(&before));
        assert!(matches!(
            writes.as_slice(),
            [Write::Put { key, value }]
                if key.ends_with("u1") && serde_json::from_slice::<MountEntry>(value).unwrap().tainted
        ));
        assert!(table.route("secret/data/foo").is_none());
        assert!(table.get("secret/").is_none());
        assert!(table.get_mut("secret/").is_none());
        assert!(!table.to_json().contains_key("secret/"));
        assert!(table.check_new_path("secret/").is_err());
        assert!(table.remove("secret/").is_none());
        assert_eq!(table.tainted().count(), 1);
        // A second disable finds the mark and carries on from it.
        assert!(table.taint("secret/").unwrap().tainted);

        assert!(table.remove_uuid("u1").is_some());
        assert_eq!(table.tainted().count(), 0);
        table.check_new_path("secret/").unwrap();
    }

    #[test]
    fn an_entry_stored_before_taints_existed_reads_as_serving() {
        let rng = SharedRng::from_u64(3);
        let table = MountTable::defaults(TableKind::Secrets, &rng);
        let entry = table.get("sys/").unwrap();
        let stored = serde_json::to_value(entry).unwrap();
        assert!(stored.get("tainted").is_none(), "{stored}");
        let read: MountEntry = serde_json::from_value(stored).unwrap();
        assert!(!read.tainted);
    }

    #[test]
    fn the_longest_mount_wins_and_local_mounts_store_locally() {
        let mut table = MountTable::defaults(TableKind::Secrets, &SharedRng::from_u64(3));
        let kv = kv_at_secret(&table);
        table.check_new_path("secret/").unwrap();
        table.insert(kv.clone());
        assert!(table.check_new_path("secret/").is_err());
        assert!(table.check_new_path("secret/inner/").is_err());
        let (entry, rest) = table.route("secret/data/foo").unwrap();
        assert_eq!((entry.path.as_str(), rest), ("secret/", "data/foo"));
        assert_eq!(table.route("secret").unwrap().1, "");
        assert!(table.route("nothing/here").is_none());
        assert_eq!(entry.storage_prefix(TableKind::Secrets), "logical/u1/");
        let cubbyhole = table.get("cubbyhole").unwrap();
        assert!(
            cubbyhole
                .storage_prefix(TableKind::Secrets)
                .starts_with("local-logical/")
        );
        assert!(
            cubbyhole.accessor.starts_with("cubbyhole_")
                && cubbyhole.accessor.len() == "cubbyhole_".len() + 8
        );
    }

    #[test]
    fn a_table_change_writes_only_the_entries_it_touched() {
        let rng = SharedRng::from_u64(5);
        let fresh = MountTable::defaults(TableKind::Secrets, &rng);
        let keys = |writes: &[Write]| -> Vec<String> {
            writes
                .iter()
                .map(|write| match write {
                    Write::Put { key, .. } => format!("put {key}"),
                    Write::Delete { key } => format!("delete {key}"),
                })
                .collect()
        };
        // A fresh table writes each entry under its own key, local ones locally.
        let created = keys(&fresh.writes_since(None));
        assert_eq!(created.len(), 3);
        let cubbyhole = fresh.get("cubbyhole/").unwrap().uuid.clone();
        assert!(created.contains(&format!("put core/local-mounts/{cubbyhole}")));

        // Tuning one mount rewrites that entry alone; an unchanged table writes nothing.
        let mut tuned = fresh.clone();
        tuned.get_mut("identity/").unwrap().config.max_lease_ttl = 60;
        let identity = fresh.get("identity/").unwrap().uuid.clone();
        assert_eq!(
            keys(&tuned.writes_since(Some(&fresh))),
            vec![format!("put core/mounts/{identity}")]
        );
        assert!(tuned.writes_since(Some(&tuned)).is_empty());

        // Removing a mount deletes its entry's key.
        let mut removed = fresh.clone();
        removed.remove("cubbyhole/");
        assert_eq!(
            keys(&removed.writes_since(Some(&fresh))),
            vec![format!("delete core/local-mounts/{cubbyhole}")]
        );
    }

    #[test]
    fn mount_paths_are_validated() {
        assert_eq!(validate_mount_path("/kv/").unwrap(), "kv/");
        for bad in ["", "/", "a//b", "a/../b", "x*"] {
            assert!(validate_mount_path(bad).is_err(), "{bad}");
        }
    }
}
