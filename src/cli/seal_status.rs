//! The seal-status report printed by `status`, `operator unseal` and friends: Vault's
//! `SealStatusOutput`, which joins `sys/seal-status` with `sys/leader`.

use serde::{Deserialize, Serialize};

use super::format::table;

/// `GET sys/seal-status` and `POST sys/unseal`, in Go's field order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SealStatus {
    #[serde(default, rename = "type")]
    pub seal_type: String,
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default)]
    pub t: u64,
    #[serde(default)]
    pub n: u64,
    #[serde(default)]
    pub progress: u64,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub build_date: String,
    #[serde(default)]
    pub migration: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_id: String,
    #[serde(default)]
    pub recovery_seal: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_type: String,
}

/// `GET sys/leader`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LeaderStatus {
    #[serde(default)]
    pub ha_enabled: bool,
    #[serde(default)]
    pub is_self: bool,
    #[serde(default)]
    pub active_time: String,
    #[serde(default)]
    pub leader_address: String,
    #[serde(default)]
    pub leader_cluster_address: String,
    #[serde(default)]
    pub performance_standby: bool,
    #[serde(default)]
    pub performance_standby_last_remote_wal: u64,
    #[serde(default)]
    pub last_wal: u64,
    #[serde(default)]
    pub raft_committed_index: u64,
    #[serde(default)]
    pub raft_applied_index: u64,
}

/// Go's zero `time.Time`, which Vault sends when a node was never active.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn is_false(flag: &bool) -> bool {
    !flag
}

fn is_zero(number: &u64) -> bool {
    *number == 0
}

/// The two joined, serialized as Vault's `-format=json` prints them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SealStatusOutput {
    #[serde(flatten)]
    pub seal: SealStatus,
    pub ha_enabled: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub is_self: bool,
    pub active_time: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub leader_address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub leader_cluster_address: String,
    #[serde(skip_serializing_if = "is_false")]
    pub performance_standby: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub performance_standby_last_remote_wal: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub last_wal: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub raft_committed_index: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub raft_applied_index: u64,
}

impl SealStatusOutput {
    pub fn new(seal: SealStatus, leader: LeaderStatus) -> Self {
        let active_time = if leader.active_time.is_empty() {
            ZERO_TIME.to_string()
        } else {
            leader.active_time
        };
        SealStatusOutput {
            seal,
            ha_enabled: leader.ha_enabled,
            is_self: leader.is_self,
            active_time,
            leader_address: leader.leader_address,
            leader_cluster_address: leader.leader_cluster_address,
            performance_standby: leader.performance_standby,
            performance_standby_last_remote_wal: leader.performance_standby_last_remote_wal,
            last_wal: leader.last_wal,
            raft_committed_index: leader.raft_committed_index,
            raft_applied_index: leader.raft_applied_index,
        }
    }

    /// Vault's `OutputSealStatusStruct` table.
    pub fn table(&self) -> String {
        let seal = &self.seal;
        let prefix = if seal.recovery_seal { "Recovery " } else { "" };
        let mut rows = vec!["Key | Value".to_string()];
        rows.push(format!("{prefix}Seal Type | {}", seal.seal_type));
        rows.push(format!("Initialized | {}", seal.initialized));
        rows.push(format!("Sealed | {}", seal.sealed));
        rows.push(format!("Total {prefix}Shares | {}", seal.n));
        rows.push(format!("Threshold | {}", seal.t));
        if seal.sealed {
            rows.push(format!("Unseal Progress | {}/{}", seal.progress, seal.t));
            rows.push(format!("Unseal Nonce | {}", seal.nonce));
        }
        if seal.migration {
            rows.push("Seal Migration in Progress | true".to_string());
        }
        rows.push(format!("Version | {}", seal.version));
        rows.push(format!("Build Date | {}", seal.build_date));
        rows.push(format!("Storage Type | {}", seal.storage_type));
        if !seal.cluster_name.is_empty() && !seal.cluster_id.is_empty() {
            rows.push(format!("Cluster Name | {}", seal.cluster_name));
            rows.push(format!("Cluster ID | {}", seal.cluster_id));
        }
        rows.push(format!("HA Enabled | {}", self.ha_enabled));
        if self.ha_enabled {
            if !seal.sealed {
                rows.push(format!("HA Cluster | {}", self.leader_cluster_address));
                let mode = if self.is_self { "active" } else { "standby" };
                rows.push(format!("HA Mode | {mode}"));
                if self.is_self && !self.active_time.is_empty() && self.active_time != ZERO_TIME {
                    rows.push(format!("Active Since | {}", self.active_time));
                }
                if !self.is_self {
                    let leader = if self.leader_address.is_empty() {
                        "<none>"
                    } else {
                        &self.leader_address
                    };
                    rows.push(format!("Active Node Address | {leader}"));
                }
                if self.performance_standby {
                    rows.push("Performance Standby Node | true".to_string());
                    rows.push(format!(
                        "Performance Standby Last Remote WAL | {}",
                        self.performance_standby_last_remote_wal
                    ));
                }
            }
            if self.raft_committed_index > 0 {
                rows.push(format!(
                    "Raft Committed Index | {}",
                    self.raft_committed_index
                ));
            }
            if self.raft_applied_index > 0 {
                rows.push(format!("Raft Applied Index | {}", self.raft_applied_index));
            }
            if self.last_wal != 0 {
                rows.push(format!("Last WAL | {}", self.last_wal));
            }
        }
        table(&rows, "|")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::format::go_json;

    fn tutorial_seal() -> SealStatus {
        serde_json::from_value(json!({
            "type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1,
            "progress": 0, "nonce": "", "version": "1.17.1+ent",
            "build_date": "2024-06-25T16:39:02Z", "migration": false,
            "cluster_name": "vault-cluster-4b364521",
            "cluster_id": "0605f249-b686-6282-88cd-35d70f1b0113",
            "recovery_seal": false, "storage_type": "raft"
        }))
        .unwrap()
    }

    #[test]
    fn unsealed_standby_table_matches_the_tutorial() {
        let leader = LeaderStatus {
            ha_enabled: true,
            raft_committed_index: 54,
            raft_applied_index: 53,
            ..LeaderStatus::default()
        };
        let expected = "\
Key                     Value
---                     -----
Seal Type               shamir
Initialized             true
Sealed                  false
Total Shares            1
Threshold               1
Version                 1.17.1+ent
Build Date              2024-06-25T16:39:02Z
Storage Type            raft
Cluster Name            vault-cluster-4b364521
Cluster ID              0605f249-b686-6282-88cd-35d70f1b0113
HA Enabled              true
HA Cluster              n/a
HA Mode                 standby
Active Node Address     <none>
Raft Committed Index    54
Raft Applied Index      53";
        assert_eq!(
            SealStatusOutput::new(tutorial_seal(), leader).table(),
            expected
        );
    }

    #[test]
    fn sealed_table_shows_progress_and_no_ha_details() {
        let mut seal = tutorial_seal();
        seal.sealed = true;
        seal.t = 3;
        seal.n = 5;
        seal.progress = 1;
        seal.nonce = "abc".to_string();
        seal.cluster_name.clear();
        let output = SealStatusOutput::new(
            seal,
            LeaderStatus {
                ha_enabled: true,
                ..LeaderStatus::default()
            },
        );
        let table = output.table();
        assert!(table.contains("\nUnseal Progress    1/3\n"), "{table}");
        assert!(table.contains("\nUnseal Nonce       abc\n"), "{table}");
        assert!(!table.contains("Cluster Name"));
        assert!(table.ends_with("HA Enabled         true"), "{table}");
    }

    #[test]
    fn active_node_shows_active_since() {
        let leader = LeaderStatus {
            ha_enabled: true,
            is_self: true,
            active_time: "2024-07-02T21:41:49.123Z".to_string(),
            leader_cluster_address: "https://cluster-pri:8201".to_string(),
            ..LeaderStatus::default()
        };
        let table = SealStatusOutput::new(tutorial_seal(), leader).table();
        assert!(table.ends_with("HA Cluster      https://cluster-pri:8201\nHA Mode         active\nActive Since    2024-07-02T21:41:49.123Z"), "{table}");
    }

    #[test]
    fn json_joins_both_objects() {
        let output = SealStatusOutput::new(
            tutorial_seal(),
            LeaderStatus {
                ha_enabled: true,
                raft_committed_index: 54,
                ..LeaderStatus::default()
            },
        );
        let text = go_json(&output);
        assert!(
            text.starts_with("{\n  \"type\": \"shamir\",\n  \"initialized\": true,"),
            "{text}"
        );
        assert!(text.contains("\"storage_type\": \"raft\",\n  \"ha_enabled\": true,\n  \"active_time\": \"0001-01-01T00:00:00Z\",\n  \"raft_committed_index\": 54\n}"), "{text}");
    }
}
