//! What a cluster remembers about performance replication: its role, the replication
//! set it belongs to, and (on a primary) the secondaries it issued tokens to with their
//! path filters. Stored sealed by the barrier at [`REPLICATION_STATE_KEY`], a local key:
//! each cluster has its own.
//!
//! Pure data and the rules on it (filters, limits); the shell in `manager.rs` reads and
//! writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::epoch::Epoch;
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
    /// A primary that was demoted: it accepts no replicated writes and follows no
    /// primary until `update-primary`, but keeps its set id, its epoch and its
    /// secondaries' keys, and still answers their pulls from its frozen WAL, so a
    /// secondary about to be promoted can receive every write it acknowledged.
    Demoted(PrimaryState),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryState {
    /// The replication set's id (`cluster_id` in status).
    pub set_id: String,
    /// `primary_cluster_addr` given at enable, "" when none.
    pub primary_cluster_addr: String,
    /// Secondaries by id, in id order.
    pub secondaries: BTreeMap<String, SecondaryRecord>,
    /// The epoch this cluster is primary in (opened by its enable or its promotion).
    #[serde(default)]
    pub epoch: Epoch,
    /// Set once this cluster learns that a newer epoch exists: from then on it accepts
    /// no replicated write and serves no pull.
    #[serde(default)]
    pub superseded: Option<Superseded>,
    /// After a promotion: the primary this cluster followed, told of the new epoch until
    /// it answers (so it stands down even after a forced promotion).
    #[serde(default)]
    pub predecessor: Option<Predecessor>,
}

/// What a superseded primary knows of its successor, for its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    pub by: Epoch,
    /// The last of this cluster's WAL indexes the successor held when it was promoted
    /// (`None` until the successor itself says so: a secondary's pull names only the
    /// epoch).
    pub successor_from_wal: Option<u64>,
    /// The WAL entries this cluster accepted that the successor does not hold; they
    /// never cross to anyone, and a later `update-primary` discards them here.
    pub divergent_wals: Option<u64>,
}

impl Superseded {
    /// The report of a primary (with an `existing` one or none) that hears of `newer`,
    /// with the successor's position when its notice names it, at WAL index `last_wal`:
    /// the newest epoch heard wins, and a position once known is kept.
    pub fn noted(
        existing: Option<&Superseded>,
        newer: &Epoch,
        successor_from_wal: Option<u64>,
        last_wal: u64,
    ) -> Superseded {
        let by = existing
            .map(|report| &report.by)
            .filter(|by| *by > newer)
            .unwrap_or(newer)
            .clone();
        let successor_from_wal =
            successor_from_wal.or_else(|| existing.and_then(|report| report.successor_from_wal));
        Superseded {
            by,
            successor_from_wal,
            divergent_wals: successor_from_wal
                .map(|from| super::epoch::divergent_wals(last_wal, from)),
        }
    }
}

/// The primary a promoted cluster followed, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predecessor {
    /// The id and key this cluster had as that primary's secondary: the notice is
    /// signed with them, so the old primary can tell it is genuine.
    pub secondary_id: String,
    pub auth_key_hex: String,
    pub cluster_addrs: Vec<String>,
    /// The old primary's cluster CA certificate (base64 DER): its nodes must prove
    /// themselves under it before a notice goes to them.
    #[serde(default)]
    pub ca_cert: String,
    /// The client certificate that primary issued this cluster (base64 of its record):
    /// its nodes accept `arca-repl/1` only from holders of one.
    #[serde(default)]
    pub client_certificate: String,
    /// The old primary's last WAL index this cluster held when it was promoted.
    pub from_wal: u64,
    /// The old primary has answered the notice.
    pub notified: bool,
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
    /// The SHA-256 (hex) of the client certificate issued with its token: the only
    /// certificate this cluster's `arca-repl/1` accepts for it.
    #[serde(default)]
    pub certificate_sha256: String,
    /// For a token sealed to the secondary's public key (which the secondary opens on
    /// its own, without calling this cluster): the unix second by which it must first
    /// connect, judged by this cluster's clock, not the secondary's. 0 once it has (and
    /// for a wrapped token, whose expiry this cluster checked when it was unwrapped).
    #[serde(default)]
    pub first_contact_by: i64,
}

/// What a signed request from a secondary means for its activation deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstContact {
    /// No deadline is pending: it connected before, or was activated by unwrapping.
    Known,
    /// Its first contact, in time: the deadline is met for good.
    InTime,
    /// Its first contact, after its token expired by this cluster's clock.
    Late,
}

impl SecondaryRecord {
    pub fn first_contact(&self, now_unix: i64) -> FirstContact {
        match self.first_contact_by {
            0 => FirstContact::Known,
            by if now_unix <= by => FirstContact::InTime,
            _ => FirstContact::Late,
        }
    }
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
    /// The primary's cluster CA certificate (base64 DER), from the activation bundle:
    /// the primary's nodes prove themselves under it on `arca-repl/1`.
    #[serde(default)]
    pub primary_ca_cert: String,
    /// This secondary's client certificate under the primary's replication CA (base64
    /// of its record, key included: the whole state is sealed by the barrier).
    #[serde(default)]
    pub client_certificate: String,
    /// Until the first sync completes the cluster reports `bootstrapping`.
    pub bootstrapped: bool,
    /// Unix seconds of activation (`last_reindex_epoch`).
    pub activated_unix: i64,
    /// The highest epoch this cluster has seen (from its activation bundle and its
    /// primaries' answers); it follows no primary of an older one.
    #[serde(default)]
    pub epoch: Epoch,
    /// When this cluster was a superseded primary before: what it had accepted that
    /// its successor never received (discarded by the sync, reported here).
    #[serde(default)]
    pub superseded: Option<Superseded>,
}

impl ReplicationState {
    pub fn mode(&self) -> Mode {
        match self {
            ReplicationState::Disabled => Mode::Disabled,
            ReplicationState::Primary(_) => Mode::Primary,
            ReplicationState::Secondary(state) if state.bootstrapped => Mode::Secondary,
            ReplicationState::Secondary(_) => Mode::Bootstrapping,
            // Vault reports a demoted primary as a secondary (with state `idle`).
            ReplicationState::Demoted(_) => Mode::Secondary,
        }
    }

    /// The set this cluster belongs to, if any.
    pub fn set_id(&self) -> Option<&str> {
        match self {
            ReplicationState::Disabled => None,
            ReplicationState::Primary(primary) | ReplicationState::Demoted(primary) => {
                Some(&primary.set_id)
            }
            ReplicationState::Secondary(secondary) => Some(&secondary.set_id),
        }
    }

    /// The highest epoch this cluster knows of.
    pub fn epoch_seen(&self) -> Epoch {
        match self {
            ReplicationState::Disabled => Epoch::default(),
            ReplicationState::Primary(primary) | ReplicationState::Demoted(primary) => primary
                .superseded
                .as_ref()
                .map_or_else(|| primary.epoch.clone(), |superseded| superseded.by.clone()),
            ReplicationState::Secondary(secondary) => secondary.epoch.clone(),
        }
    }

    /// Whether this cluster itself may write replicated keys: with replication off, or
    /// as a primary nothing has superseded. A secondary's writes go to its primary.
    pub fn accepts_replicated_writes(&self) -> bool {
        match self {
            ReplicationState::Disabled => true,
            ReplicationState::Primary(primary) => {
                primary.superseded.is_none()
                    || crate::seeded_bugs::enabled(
                        crate::seeded_bugs::SeededBug::SupersededKeepsWriting,
                    )
            }
            ReplicationState::Secondary(_) | ReplicationState::Demoted(_) => false,
        }
    }

    /// Why a replicated write cannot be made here or forwarded anywhere, for a cluster
    /// that has no primary to send it to (`None` otherwise).
    pub fn write_refusal(&self) -> Option<String> {
        match self {
            ReplicationState::Primary(PrimaryState {
                superseded: Some(superseded),
                epoch,
                ..
            }) => Some(format!(
                "this cluster is no longer the performance primary: it was primary in epoch                  {epoch} and a cluster promoted in epoch {} superseded it, so it accepts no                  writes to replicated paths; demote it and point it at the new primary with                  update-primary",
                superseded.by
            )),
            ReplicationState::Demoted(_) => Some(
                "this cluster was demoted and follows no primary yet, so it accepts no writes                  to replicated paths; point it at the new primary with update-primary"
                    .to_string(),
            ),
            _ => None,
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
    fn a_public_key_activation_must_first_connect_by_the_primarys_deadline() {
        let mut record = SecondaryRecord {
            id: "s".into(),
            auth_key_hex: String::new(),
            filter: None,
            filter_generation: 0,
            certificate_sha256: String::new(),
            first_contact_by: 1_000,
        };
        assert_eq!(record.first_contact(999), FirstContact::InTime);
        assert_eq!(record.first_contact(1_000), FirstContact::InTime);
        assert_eq!(record.first_contact(1_001), FirstContact::Late);
        record.first_contact_by = 0;
        assert_eq!(record.first_contact(i64::MAX), FirstContact::Known);
        // A record stored before the deadline existed has none pending.
        let old: SecondaryRecord = serde_json::from_value(serde_json::json!({
            "id": "s", "auth_key_hex": "", "filter": null, "filter_generation": 0
        }))
        .unwrap();
        assert_eq!(old.first_contact(i64::MAX), FirstContact::Known);
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
            primary_ca_cert: String::new(),
            client_certificate: String::new(),
            set_id: "s".into(),
            secondary_id: "x".into(),
            auth_key_hex: String::new(),
            primary_api_addr: String::new(),
            primary_cluster_addrs: Vec::new(),
            bootstrapped: false,
            activated_unix: 0,
            epoch: Epoch::first(),
            superseded: None,
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

    /// A secondary's pull names only the epoch; the new primary's notice adds its
    /// position, and with it the count of divergent entries; a repeat changes nothing.
    #[test]
    fn a_superseded_report_fills_in_and_keeps_the_newest_epoch() {
        let b = Epoch::after(&Epoch::first(), "b");
        let from_pull = Superseded::noted(None, &b, None, 20);
        assert_eq!(from_pull.by, b);
        assert_eq!(from_pull.divergent_wals, None);
        let from_notice = Superseded::noted(Some(&from_pull), &b, Some(17), 20);
        assert_eq!(from_notice.divergent_wals, Some(3));
        assert_eq!(
            Superseded::noted(Some(&from_notice), &b, None, 20),
            from_notice
        );
        let older = Epoch::first();
        assert_eq!(
            Superseded::noted(Some(&from_notice), &older, None, 20).by,
            b
        );
    }

    /// Only a primary nobody superseded writes replicated keys itself; a demoted or
    /// superseded one says why not, and reports the epoch that superseded it.
    #[test]
    fn only_an_unsuperseded_primary_accepts_replicated_writes() {
        let mut primary = PrimaryState {
            set_id: "s".into(),
            primary_cluster_addr: String::new(),
            secondaries: BTreeMap::new(),
            epoch: Epoch::first(),
            superseded: None,
            predecessor: None,
        };
        assert!(ReplicationState::Disabled.accepts_replicated_writes());
        assert!(ReplicationState::Primary(primary.clone()).accepts_replicated_writes());
        assert_eq!(
            ReplicationState::Primary(primary.clone()).write_refusal(),
            None
        );
        let demoted = ReplicationState::Demoted(primary.clone());
        assert!(!demoted.accepts_replicated_writes());
        assert_eq!(demoted.mode(), Mode::Secondary);
        assert!(demoted.write_refusal().unwrap().contains("demoted"));
        let newer = Epoch::after(&Epoch::first(), "b");
        primary.superseded = Some(Superseded {
            by: newer.clone(),
            successor_from_wal: None,
            divergent_wals: None,
        });
        let superseded = ReplicationState::Primary(primary);
        assert!(!superseded.accepts_replicated_writes());
        assert_eq!(superseded.mode(), Mode::Primary);
        assert_eq!(superseded.epoch_seen(), newer);
        assert!(superseded.write_refusal().unwrap().contains("superseded"));
    }
}
