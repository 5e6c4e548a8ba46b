//! Scenario files: which fleet, which workload, which faults. The seed fills in every
//! choice the file leaves open (which node, when, for how long).

use serde::Deserialize;

/// The most nodes a scenario may ask for.
pub const NODES_MAX: usize = 9;
/// The most clients and writes, so a bad file cannot make a run endless.
pub const CLIENTS_MAX: usize = 16;
pub const WRITES_PER_CLIENT_MAX: usize = 10_000;
pub const FAULTS_MAX: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Nodes in the cluster.
    pub nodes: usize,
    pub workload: Workload,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub clients: usize,
    pub writes_per_client: usize,
    pub keys_per_client: usize,
    /// Virtual milliseconds a client pauses between writes (a range drawn by seed).
    #[serde(default = "default_pause")]
    pub pause_ms: [u64; 2],
}

fn default_pause() -> [u64; 2] {
    [5, 50]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Kill the current leader; its disk loses what it had not synced (and may tear the
    /// last write); restart and unseal it after the outage.
    CrashLeader,
    /// The same for a node drawn by the seed.
    CrashRandom,
    /// Cut the leader off from everyone (both directions) for the outage.
    PartitionLeader,
    /// Cut a random node off.
    PartitionRandom,
    /// Cut one direction of one random link (asymmetric partition).
    ClogLinkRandom,
    /// A random follower's fsyncs silently do nothing for the outage, then it crashes
    /// and restarts: it comes back missing writes it had acknowledged.
    LoseFsyncsFollower,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// How many times this fault strikes during the workload.
    #[serde(default = "one")]
    pub count: usize,
    /// The outage length in virtual milliseconds, drawn from this range.
    #[serde(default = "default_outage")]
    pub outage_ms: [u64; 2],
    /// Whether a crash may tear the last unsynced write.
    #[serde(default = "yes")]
    pub tear: bool,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn default_outage() -> [u64; 2] {
    [500, 3000]
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Self, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|error| error.to_string())?;
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        if !(1..=NODES_MAX).contains(&self.nodes) {
            return Err(format!("nodes must be between 1 and {NODES_MAX}"));
        }
        let workload = &self.workload;
        if !(1..=CLIENTS_MAX).contains(&workload.clients) {
            return Err(format!(
                "workload.clients must be between 1 and {CLIENTS_MAX}"
            ));
        }
        if !(1..=WRITES_PER_CLIENT_MAX).contains(&workload.writes_per_client) {
            return Err(format!(
                "workload.writes_per_client must be between 1 and {WRITES_PER_CLIENT_MAX}"
            ));
        }
        if workload.keys_per_client == 0 || workload.keys_per_client > 1000 {
            return Err("workload.keys_per_client must be between 1 and 1000".into());
        }
        if workload.pause_ms[0] > workload.pause_ms[1] {
            return Err("workload.pause_ms must be [low, high]".into());
        }
        if self.faults.iter().map(|fault| fault.count).sum::<usize>() > FAULTS_MAX {
            return Err(format!("at most {FAULTS_MAX} faults in all"));
        }
        for fault in &self.faults {
            if fault.outage_ms[0] > fault.outage_ms[1] || fault.outage_ms[1] > 60_000 {
                return Err("outage_ms must be [low, high] with high at most 60000".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_parse_and_bad_ones_are_refused() {
        let good = "name = \"x\"\nnodes = 3\n[workload]\nclients = 2\nwrites_per_client = 10\nkeys_per_client = 3\n[[faults]]\nkind = \"crash-leader\"\ncount = 2\n";
        let scenario = Scenario::parse(good).unwrap();
        assert_eq!(scenario.faults[0].kind, FaultKind::CrashLeader);
        assert!(Scenario::parse("name = \"x\"\nnodes = 0\n[workload]\nclients=1\nwrites_per_client=1\nkeys_per_client=1\n").is_err());
        assert!(Scenario::parse("garbage").is_err());
        assert!(Scenario::parse(&good.replace("crash-leader", "meteor")).is_err());
    }
}
