//! Scenario files: which fleet, which workload, which faults. The seed fills in every
//! choice the file leaves open (which node, when, for how long, which settings).

use serde::Deserialize;

/// The most nodes one cluster may have.
pub const NODES_MAX: usize = 9;
/// The most independent clusters in one fleet.
pub const CLUSTERS_MAX: usize = 4;
/// The most clients per cluster and operations per client, so a bad file cannot make a
/// run endless.
pub const CLIENTS_MAX: usize = 16;
pub const OPS_PER_CLIENT_MAX: usize = 10_000;
pub const KEYS_MAX: usize = 1000;
pub const FAULTS_MAX: usize = 64;
/// The longest outage a fault may ask for (virtual milliseconds).
pub const OUTAGE_MS_MAX: u64 = 60_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Nodes in each cluster.
    pub nodes: usize,
    /// Independent clusters in the fleet, each with its own nodes, addresses, disks,
    /// clients and checks.
    #[serde(default = "one")]
    pub clusters: usize,
    pub workload: Workload,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub liveness: LivenessSpec,
    /// Performance replication: cluster 0 becomes the primary, the others its
    /// secondaries.
    #[serde(default)]
    pub replication: Option<ReplicationSpec>,
    /// Coverage marks (`arca::coverage::MARKS`) this scenario must reach: a sweep of at
    /// least `MARK_CHECK_SEEDS_MIN` seeds fails when no seed hit one of them.
    #[serde(default)]
    pub marks: Vec<String>,
}

/// The `[replication]` table: one primary (cluster 0) and `secondaries` secondaries.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSpec {
    /// Secondaries in the fleet (the fleet has `secondaries + 1` clusters).
    pub secondaries: usize,
    /// The primary's WAL buffer (entries); small values make a lagging secondary sync.
    #[serde(default)]
    pub logshipper_buffer_length: Option<usize>,
    /// Whether `filter-change` strikes may leave their deny in place at the end (drawn
    /// by seed), so the final checks see a denied mount.
    #[serde(default)]
    pub final_deny: bool,
    /// Whether the workload's writes of replicated registers also go through the
    /// secondaries' nodes (each forwards them to its primary), drawn by seed per write.
    #[serde(default)]
    pub write_through_secondaries: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Clients per cluster.
    pub clients: usize,
    /// Operations each client makes at least while faults strike (more if the faults
    /// last longer).
    pub ops_per_client: usize,
    /// Keys shared by all clients of a cluster (each is a register in KV v1 and in KV v2).
    pub keys: usize,
    /// Virtual milliseconds a client pauses between operations (a range drawn by seed).
    #[serde(default = "default_pause")]
    pub pause_ms: [u64; 2],
    /// Relative weights of the operations.
    #[serde(default)]
    pub mix: Mix,
}

/// Relative weights of the workload's operations.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// KV v1 put.
    pub put: u64,
    /// KV v1 delete.
    pub delete: u64,
    /// KV v2 check-and-set write (with the version this client last read).
    pub cas: u64,
    /// KV v2 delete of the latest version.
    pub delete_v2: u64,
    /// A read of a KV v1 or v2 key.
    pub read: u64,
    /// A step of this client's own mount cycle: enable a KV mount, write and read its
    /// register, disable it (its data must be gone: a read answers 404), enable it again
    /// (empty). Off unless a scenario weighs it.
    #[serde(default)]
    pub mount: u64,
    /// Create a token (acknowledged: it must work until revoked), use one, or revoke one
    /// (acknowledged: it must never authorize a later request).
    #[serde(default)]
    pub token: u64,
    /// Create a token with a short TTL, or use one: once its TTL has passed on the
    /// simulated clock (allowing for the clock skew faults inject) it must be refused.
    #[serde(default)]
    pub lease: u64,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            put: 4,
            delete: 1,
            cas: 3,
            delete_v2: 1,
            read: 5,
            mount: 0,
            token: 0,
            lease: 0,
        }
    }
}

/// Settings drawn per seed.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Draw the snapshot threshold (down to a few entries), the entries kept after a
    /// snapshot, the log segment size and the Raft timers (heartbeat interval, election
    /// timeout range) per seed and cluster, so snapshots, purges, installs, segment rolls
    /// and elections at other paces run.
    #[serde(default)]
    pub randomize: bool,
    /// Switch on the server's fault points (`arca::buggify`) while the faults strike.
    #[serde(default)]
    pub buggify: bool,
}

/// The healed phase after the faults: every cluster must serve writes again.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessSpec {
    /// Operations per client once everything is healed.
    #[serde(default = "default_liveness_ops")]
    pub ops_per_client: usize,
    /// The least share of healed-phase writes that must be acknowledged.
    #[serde(default = "default_ack_share")]
    pub ack_share_min: f64,
}

impl Default for LivenessSpec {
    fn default() -> Self {
        Self {
            ops_per_client: default_liveness_ops(),
            ack_share_min: default_ack_share(),
        }
    }
}

fn default_liveness_ops() -> usize {
    12
}

fn default_ack_share() -> f64 {
    0.9
}

fn default_pause() -> [u64; 2] {
    // About twenty operations a second per client: enough to overlap every fault,
    // few enough that CI's 200 seeds of every scenario fit in its time.
    [10, 80]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Power loss on the current leader: its disk loses what it had not synced (and may
    /// tear the last write); restart and unseal it after the outage.
    CrashLeader,
    /// The same for a node drawn by the seed.
    CrashRandom,
    /// Kill the leader's process (`kill -9`): unsynced writes survive in the page cache.
    KillLeader,
    /// The same for a node drawn by the seed.
    KillRandom,
    /// Power loss on every node of the cluster at once.
    PowerLossAll,
    /// Kill a majority of the cluster (beyond what a quorum tolerates: no progress until
    /// they return).
    KillMajority,
    /// Power loss on as many nodes as a quorum tolerates, at once.
    CrashMinority,
    /// Cut the leader off from everyone (both directions) for the outage.
    PartitionLeader,
    /// Cut a random node off.
    PartitionRandom,
    /// Cut one direction of one random link (asymmetric partition).
    ClogLinkRandom,
    /// FoundationDB's swizzle-clog: cut nodes drawn by seed off one at a time, in a
    /// random order, then bring them back one at a time in another order.
    SwizzleClog,
    /// Every link of the network slows down for the outage (madsim's send latency is
    /// raised to a range drawn by seed, well past the heartbeat interval).
    LatencySpike,
    /// One node's links flap for the outage (cut for tens of milliseconds, back for a
    /// few): its messages arrive late, after the network's retransmission backoff.
    SlowNode,
    /// A node's wall clock jumps forwards or backwards (up to
    /// `CLOCK_JUMP_MS_MAX`) for the outage, then jumps back. Only wall time moves:
    /// leases and token TTLs read it, Raft's timers read monotonic time.
    ClockJumpRandom,
    /// A random follower's fsyncs silently do nothing for the outage, then it crashes
    /// and restarts: it comes back missing writes it had acknowledged.
    LoseFsyncsFollower,
    /// Fill the disk of a node drawn by seed (its capacity becomes what its files hold
    /// plus a few KiB) for the outage: it must refuse writes with "storage is full",
    /// keep serving reads, and resume by itself once the space is freed.
    DiskFullRandom,
    /// The same on a majority of the cluster at once: no write can commit until space
    /// returns, and nothing acknowledged may be lost.
    DiskFullMajority,
    /// Disk errors (`EIO`) on a node drawn by seed for the outage, at rates drawn by
    /// seed. An fsync or append that fails stops the node (fail-stop); a read that fails
    /// while it starts makes it refuse to start. Midway the node may be restarted while
    /// the errors last; at the end the disk is repaired and the node restarted, as an
    /// operator would. A quorum keeps a valid copy throughout.
    DiskErrorsRandom,
    /// Freeze the leader in simulated time (no task of it runs), then resume it: it
    /// answers what clients sent it meanwhile from the state it had.
    PauseLeader,
    /// Cut the leader from its peers (both directions) while clients still reach it.
    IsolateLeaderFromPeers,
    /// Ask whichever node leads to step down (`sys/step-down`), again and again for the
    /// outage: each hands the lead to another voter at once (openraft's leader transfer,
    /// which lets the followers vote without waiting out the old leader's lease), so reads
    /// still arriving at the old leader race the new one's writes.
    StepDownLeader,
    /// Seal whichever node leads (`sys/seal`) and send it its unseal key the moment it
    /// answers sealed, while its seal still waits for the hand-over (half the strikes it
    /// hears nothing from its peers meanwhile, so the wait runs long). Once unsealed it
    /// must serve and forward again: an unseal undone by the end of the seal leaves a
    /// node that answers unsealed with no cluster identity.
    SealLeader,
    /// Freeze the leader and cut it from its peers, resume it, heal later.
    PauseAndIsolateLeader,
    /// Cut every link between two clusters of the fleet (both directions).
    PartitionClusters,
    /// Each strike draws one of the single-cluster faults above.
    Swarm,
    /// Replication: disable a secondary drawn by seed, issue it a new token under a new
    /// id and enable it again (a wipe and a full resync).
    ReactivateSecondary,
    /// Replication: deny a replicated mount to one secondary for the outage, then allow
    /// it again.
    FilterChange,
    /// Replication: rotate the barrier key on the current primary (`sys/rotate`); the
    /// new key term reaches every secondary through the replicated keyring.
    Rotate,
    /// Replication: a planned failover: demote the primary, promote a secondary drawn by
    /// seed (no force), point every other cluster, the old primary included, at it.
    Failover,
    /// Replication: cut the primary off from every other cluster (its own clients still
    /// reach it and write), force-promote a secondary, heal, then demote the old primary
    /// and make it follow the new one.
    SplitBrain,
}

impl FaultKind {
    /// What a `swarm` strike draws from.
    pub const SWARM: &'static [FaultKind] = &[
        FaultKind::CrashLeader,
        FaultKind::CrashRandom,
        FaultKind::KillLeader,
        FaultKind::KillRandom,
        FaultKind::PowerLossAll,
        FaultKind::KillMajority,
        FaultKind::CrashMinority,
        FaultKind::PartitionLeader,
        FaultKind::PartitionRandom,
        FaultKind::ClogLinkRandom,
        FaultKind::SwizzleClog,
        FaultKind::LatencySpike,
        FaultKind::SlowNode,
        FaultKind::ClockJumpRandom,
        FaultKind::LoseFsyncsFollower,
        FaultKind::DiskFullRandom,
        FaultKind::DiskFullMajority,
        FaultKind::DiskErrorsRandom,
        FaultKind::PauseLeader,
        FaultKind::IsolateLeaderFromPeers,
        FaultKind::PauseAndIsolateLeader,
        FaultKind::StepDownLeader,
        FaultKind::SealLeader,
    ];
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
    /// Whether a power loss may tear the last unsynced write.
    #[serde(default = "yes")]
    pub tear: bool,
    /// In a replication fleet, which cluster a single-cluster fault strikes (drawn by
    /// seed among the secondaries for `secondary`, among all for `any`).
    #[serde(default)]
    pub on: Target,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    #[default]
    Any,
    Primary,
    Secondary,
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
        if let Some(unknown) = self
            .marks
            .iter()
            .find(|mark| !arca::coverage::MARKS.contains(&mark.as_str()))
        {
            return Err(format!(
                "marks: {unknown:?} is not a coverage mark (known: {})",
                arca::coverage::MARKS.join(", ")
            ));
        }
        if !(1..=NODES_MAX).contains(&self.nodes) {
            return Err(format!("nodes must be between 1 and {NODES_MAX}"));
        }
        if !(1..=CLUSTERS_MAX).contains(&self.clusters) {
            return Err(format!("clusters must be between 1 and {CLUSTERS_MAX}"));
        }
        let workload = &self.workload;
        if !(1..=CLIENTS_MAX).contains(&workload.clients) {
            return Err(format!(
                "workload.clients must be between 1 and {CLIENTS_MAX}"
            ));
        }
        if !(1..=OPS_PER_CLIENT_MAX).contains(&workload.ops_per_client) {
            return Err(format!(
                "workload.ops_per_client must be between 1 and {OPS_PER_CLIENT_MAX}"
            ));
        }
        if !(1..=KEYS_MAX).contains(&workload.keys) {
            return Err(format!("workload.keys must be between 1 and {KEYS_MAX}"));
        }
        if workload.pause_ms[0] > workload.pause_ms[1] {
            return Err("workload.pause_ms must be [low, high]".into());
        }
        let mix = workload.mix;
        let writes = mix.put + mix.delete + mix.cas + mix.delete_v2;
        if writes == 0
            || [mix.read, mix.mount, mix.token, mix.lease]
                .into_iter()
                .try_fold(writes, u64::checked_add)
                .is_none()
        {
            return Err("workload.mix must give some write a weight".into());
        }
        if mix.mount + mix.token + mix.lease > 0 && self.replication.is_some() {
            return Err(
                "workload.mix: mount, token and lease steps run in single-cluster fleets only"
                    .into(),
            );
        }
        if self.liveness.ops_per_client > OPS_PER_CLIENT_MAX {
            return Err(format!(
                "liveness.ops_per_client must be at most {OPS_PER_CLIENT_MAX}"
            ));
        }
        if !(0.0..=1.0).contains(&self.liveness.ack_share_min) {
            return Err("liveness.ack_share_min must be between 0 and 1".into());
        }
        if self.faults.iter().map(|fault| fault.count).sum::<usize>() > FAULTS_MAX {
            return Err(format!("at most {FAULTS_MAX} faults in all"));
        }
        if let Some(replication) = &self.replication {
            if replication.secondaries == 0 || replication.secondaries + 1 != self.clusters {
                return Err("replication.secondaries must be clusters - 1 (at least 1)".into());
            }
            if replication.logshipper_buffer_length == Some(0) {
                return Err("replication.logshipper_buffer_length must be at least 1".into());
            }
        }
        for fault in &self.faults {
            let replicating = self.replication.is_some();
            if matches!(
                fault.kind,
                FaultKind::ReactivateSecondary
                    | FaultKind::FilterChange
                    | FaultKind::Rotate
                    | FaultKind::Failover
                    | FaultKind::SplitBrain
            ) && !replicating
            {
                return Err(format!("{:?} needs a [replication] table", fault.kind));
            }
            if fault.on != Target::Any && !replicating {
                return Err("`on` needs a [replication] table".into());
            }
            if fault.outage_ms[0] > fault.outage_ms[1] || fault.outage_ms[1] > OUTAGE_MS_MAX {
                return Err(format!(
                    "outage_ms must be [low, high] with high at most {OUTAGE_MS_MAX}"
                ));
            }
            if fault.kind == FaultKind::PartitionClusters && self.clusters < 2 {
                return Err("partition-clusters needs at least two clusters".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name = \"x\"\nnodes = 3\n[workload]\nclients = 2\nops_per_client = 10\nkeys = 3\n[[faults]]\nkind = \"crash-leader\"\ncount = 2\n";

    #[test]
    fn scenario_files_parse_and_bad_ones_are_refused() {
        let scenario = Scenario::parse(GOOD).unwrap();
        assert_eq!(scenario.faults[0].kind, FaultKind::CrashLeader);
        assert_eq!(scenario.clusters, 1);
        assert!(!scenario.settings.randomize);
        assert!(Scenario::parse(&GOOD.replace("nodes = 3", "nodes = 0")).is_err());
        let marked = GOOD.replace("nodes = 3", "nodes = 3\nmarks = [\"raft-log-purged\"]");
        assert_eq!(Scenario::parse(&marked).unwrap().marks, ["raft-log-purged"]);
        let typo = GOOD.replace("nodes = 3", "nodes = 3\nmarks = [\"raft-log-purge\"]");
        assert!(
            Scenario::parse(&typo)
                .unwrap_err()
                .contains("not a coverage mark")
        );
        assert!(Scenario::parse("garbage").is_err());
        assert!(Scenario::parse(&GOOD.replace("crash-leader", "meteor")).is_err());
        assert!(Scenario::parse(&GOOD.replace("crash-leader", "partition-clusters")).is_err());
        let two = GOOD.replace("nodes = 3", "nodes = 3\nclusters = 2")
            + "[[faults]]\nkind = \"partition-clusters\"\n";
        assert_eq!(Scenario::parse(&two).unwrap().clusters, 2);
        assert!(Scenario::parse(&GOOD.replace("nodes = 3", "nodes = 3\nclusters = 9")).is_err());
    }

    #[test]
    fn every_scenario_file_in_the_repository_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios");
        let mut parsed = 0;
        #[allow(clippy::disallowed_methods)] // a test reading the repository's files
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|extension| extension == "toml")
            {
                #[allow(clippy::disallowed_methods)]
                let text = std::fs::read_to_string(&path).unwrap();
                Scenario::parse(&text).unwrap_or_else(|error| panic!("{path:?}: {error}"));
                parsed += 1;
            }
        }
        assert!(parsed >= 3, "only {parsed} scenario files");
    }
}
