//! What a cluster remembers about performance replication: its role, the replication
//! set it belongs to, and (on a primary) the secondaries it issued tokens to with their
//! path filters. Stored sealed by the barrier at [`REPLICATION_STATE_KEY`], a local key:
//! each cluster has its own.
//!
//! Pure data and the rules on it (filters, limits); the shell in `manager.rs` reads and
//! writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::mounts::MountEntry;
use crate::logical::LogicalError;
pub use crate::storage::key_space::REPLICATION_STATE_KEY;

/// The most secondaries one primary tracks (tokens issued and not revoked).
pub const SECONDARIES_MAX: usize = 256;
/// The longest secondary id accepted (it names status entries and path filters).
pub const SECONDARY_ID_BYTES_MAX: usize = 128;
/// The most paths one filter may list.
pub const FILTER_PATHS_MAX: usize = 512;
/// The longest path in a filter.
pub const FILTER_PATH_BYTES_MAX: usize = 512;

/// Vault's `mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Disabled,
    Primary,
    Secondary,
    Bootstrapping,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disabled => "disabled",
            Mode::Primary => "primary",
            Mode::Secondary => "secondary",
            Mode::Bootstrapping => "bootstrapping",
        }
    }
}

/// The stored replication state of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ReplicationState {
    Disabled,
    Primary(PrimaryState),
    Secondary(SecondaryState),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryState {
    /// The replication set's id (`cluster_id` in status).
    pub set_id: String,
    /// `primary_cluster_addr` given at enable, "" when none.
    pub primary_cluster_addr: String,
    /// Secondaries by id, in id order.
    pub secondaries: BTreeMap<String, SecondaryRecord>,
}

/// A secondary as its primary knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryRecord {
    pub id: String,
    /// The key that authenticates this secondary's requests (HMAC-SHA256), hex. It
    /// travels once, in the wrapped activation bundle.
    pub auth_key_hex: String,
    pub filter: Option<PathsFilter>,
    /// Bumped on every filter change, so a connected secondary resyncs its view.
    pub filter_generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryState {
    pub set_id: String,
    pub secondary_id: String,
    /// The key this secondary signs its requests with, hex.
    pub auth_key_hex: String,
    /// The primary's API address, used to unwrap the activation token.
    pub primary_api_addr: String,
    /// The cluster addresses of the primary's nodes (host:port), the first one used.
    pub primary_cluster_addrs: Vec<String>,
    /// Until the first sync completes the cluster reports `bootstrapping`.
    pub bootstrapped: bool,
    /// Unix seconds of activation (`last_reindex_epoch`).
    pub activated_unix: i64,
}

impl ReplicationState {
    pub fn mode(&self) -> Mode {
        match self {
            ReplicationState::Disabled => Mode::Disabled,
            ReplicationState::Primary(_) => Mode::Primary,
            ReplicationState::Secondary(state) if state.bootstrapped => Mode::Secondary,
            ReplicationState::Secondary(_) => Mode::Bootstrapping,
        }
    }
}

/// Vault's paths filter: `allow` keeps only the listed mounts, `deny` drops them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathsFilter {
    pub mode: FilterMode,
    /// Mount paths with a trailing slash (`secret/`, `auth/userpass/`).
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    Allow,
    Deny,
}

impl PathsFilter {
    /// Parse the `mode` and `paths` of a `paths-filter/:id` write.
    pub fn parse(mode: Option<&str>, paths: Vec<String>) -> Result<Self, LogicalError> {
        let mode = match mode.unwrap_or("allow") {
            "allow" | "whitelist" => FilterMode::Allow,
            "deny" | "blacklist" => FilterMode::Deny,
            other => {
                return Err(LogicalError::BadRequest(format!(
                    "invalid filter mode {other:?}: must be \"allow\" or \"deny\""
                )));
            }
        };
        if paths.len() > FILTER_PATHS_MAX {
            return Err(LogicalError::BadRequest(format!(
                "a filter lists at most {FILTER_PATHS_MAX} paths"
            )));
        }
        let mut normalized = Vec::with_capacity(paths.len());
        for path in paths {
            let path = path.trim().trim_start_matches('/');
            if path.is_empty() || path.len() > FILTER_PATH_BYTES_MAX {
                return Err(LogicalError::BadRequest(format!(
                    "invalid filter path {path:?}"
                )));
            }
            let path = if path.ends_with('/') {
                path.to_string()
            } else {
                format!("{path}/")
            };
            if !normalized.contains(&path) {
                normalized.push(path);
            }
        }
        Ok(Self {
            mode,
            paths: normalized,
        })
    }

    /// Whether a mount at `mount_path` (as the router names it: `secret/`,
    /// `auth/userpass/`) crosses to the secondary.
    pub fn allows(&self, mount_path: &str) -> bool {
        let listed = self.paths.iter().any(|path| path == mount_path);
        match self.mode {
            FilterMode::Allow => listed,
            FilterMode::Deny => !listed,
        }
    }
}

/// Whether a mount can be filtered at all: the system, identity and token backends
/// are the cluster itself and always cross (Vault's filters name user mounts).
pub fn filterable(entry: &MountEntry) -> bool {
    !matches!(entry.mount_type.as_str(), "system" | "identity" | "token")
}

/// Check a secondary id given to `secondary-token`.
pub fn check_secondary_id(id: &str) -> Result<(), LogicalError> {
    if id.is_empty() {
        return Err(LogicalError::BadRequest("missing id".into()));
    }
    if id.len() > SECONDARY_ID_BYTES_MAX
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(LogicalError::BadRequest(format!(
            "invalid id {id:?}: use at most {SECONDARY_ID_BYTES_MAX} letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_normalize_paths_and_decide_by_mode() {
        let deny = PathsFilter::parse(Some("deny"), vec!["replicatedkv".into()]).unwrap();
        assert_eq!(deny.paths, ["replicatedkv/"]);
        assert!(!deny.allows("replicatedkv/"));
        assert!(deny.allows("other/"));
        let allow = PathsFilter::parse(None, vec!["a/".into(), "/a".into()]).unwrap();
        assert_eq!(allow.paths, ["a/"]);
        assert!(allow.allows("a/"));
        assert!(!allow.allows("b/"));
        assert!(PathsFilter::parse(Some("maybe"), vec![]).is_err());
        assert!(PathsFilter::parse(None, vec!["".into()]).is_err());
    }

    #[test]
    fn secondary_ids_are_bounded_and_plain() {
        assert!(check_secondary_id("us-east_1.a").is_ok());
        for bad in ["", "a/b", "a b", &"x".repeat(SECONDARY_ID_BYTES_MAX + 1)] {
            assert!(check_secondary_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn modes_follow_the_role_and_bootstrap() {
        assert_eq!(ReplicationState::Disabled.mode(), Mode::Disabled);
        let mut secondary = SecondaryState {
            set_id: "s".into(),
            secondary_id: "x".into(),
            auth_key_hex: String::new(),
            primary_api_addr: String::new(),
            primary_cluster_addrs: Vec::new(),
            bootstrapped: false,
            activated_unix: 0,
        };
        assert_eq!(
            ReplicationState::Secondary(secondary.clone()).mode(),
            Mode::Bootstrapping
        );
        secondary.bootstrapped = true;
        assert_eq!(
            ReplicationState::Secondary(secondary).mode(),
            Mode::Secondary
        );
    }
}
