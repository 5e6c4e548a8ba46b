//! One simulated run: a fleet of independent clusters of real Arca nodes on madsim's
//! network and disks, a workload of reads and writes recorded by the oracle, a fault
//! schedule drawn from the seed, a healed (liveness) phase and the checks.
//!
//! Safety, checked at the end over the whole history of each cluster:
//! - the oracle's register checks (no stale read, no phantom, no refused write taking
//!   effect, nothing acknowledged lost, CAS honoured), reads during the run and after;
//! - nodes that applied the same index hold byte-identical state machines.
//!
//! Liveness, reported apart: after every fault is healed each cluster elects, takes a
//! write within [`LIVENESS_TIMEOUT`], acknowledges at least the scenario's share of the
//! healed phase's writes, and every node converges within [`CONVERGENCE_TIMEOUT`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca::env::{Clock, Env, IoErrorRates, SharedRng, SimDisk};
use arca::raft::log_store::{LogStoreOptions, PREALLOCATE_BYTES};
use arca::raft::{RaftOptions, RaftTimers};
use arca::server::{Node, NodeConfig};
use http::Method;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle, Runtime};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::call;
use crate::oracle::{History, Phase, Read, Revocation, TokenLife, TokenUse, Write, WriteOutcome};
use crate::scenario::{FaultKind, FaultSpec, Scenario};
use crate::trace::Trace;

mod replication;

/// Virtual time a run may take before it is declared stuck.
pub const RUN_TIME_LIMIT: Duration = Duration::from_secs(1800);
/// How long the cluster gets to converge after the healed phase.
pub const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long setup steps (init, unseal, join) may retry.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a healed cluster may take to elect and acknowledge a first write.
pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(60);
/// The most operations a client makes while faults are still pending.
pub const OPS_WHILE_FAULTS_MAX: usize = 5_000;
/// Attempts to read each register after the run before giving up on it.
pub const FINAL_READ_ATTEMPTS_MAX: usize = 50;
/// How long after convergence a cluster may take to finish the disables its earlier
/// active nodes marked (the active node finishes them on its expiration tick, 1 s).
pub const TAINTED_MOUNTS_FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Snapshot thresholds a randomized run draws from: down to a few entries, so building,
/// purging and installing snapshots happen in nearly every run; the production value
/// stays in the set.
pub const SNAPSHOT_THRESHOLDS: &[u64] = &[4, 8, 16, 32, 64, 1024];
/// The most entries a randomized run keeps after a snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT_MAX: u64 = 8;
/// Replication fleets set each cluster's wall clocks off by up to this much either way.
pub const CLUSTER_CLOCK_SKEW_MAX_MS: u64 = 2_000;
/// How far a measured clock skew may be from the injected one: the measurement includes
/// the pull's one-way transit.
pub const CLOCK_SKEW_TOLERANCE_MS: i64 = 500;
/// Segment sizes a randomized run draws from (bytes); small ones roll segments often.
pub const SEGMENT_BYTES_CHOICES: &[u64] = &[2048, 16 * 1024, 64 * 1024 * 1024];
/// Log-shipper buffer lengths (the WAL entries a primary keeps for its secondaries) a
/// randomized run draws from where its scenario sets none: short ones send a secondary
/// to a Merkle sync after a short outage; production's default stays in the set.
pub const LOGSHIPPER_BUFFER_CHOICES: &[usize] = &[4, 16, 64, 16_384];
/// A filled disk keeps at most this much room past what its files hold (well below the
/// alarm's reserve, so the node refuses writes at once).
pub const DISK_FULL_SLACK_BYTES_MAX: u64 = 64 * 1024;
/// The range a disk-error strike draws its rates from, in parts per million of calls.
/// Reads happen mostly while a node starts (about ten of them), so their rate is high
/// enough to refuse some starts; writes happen on every batch, so a low rate already
/// fails a few of them in a strike.
pub const DISK_READ_ERRORS_PER_MILLION: [u64; 2] = [20_000, 300_000];
pub const DISK_WRITE_ERRORS_PER_MILLION: [u64; 2] = [2_000, 100_000];
/// A randomized run's heartbeat interval is drawn from this range (milliseconds).
pub const HEARTBEAT_INTERVAL_MS_RANGE: [u64; 2] = [40, 160];
/// Its shortest election timeout is at least this many heartbeats, and at least
/// `ELECTION_TIMEOUT_MIN_MS_LEAST`, drawn up to `ELECTION_TIMEOUT_MIN_MS_MOST`: above the
/// read quorum's acknowledgement age (`READ_QUORUM_ACK_AGE_MAX_MS`), which openraft's
/// leader lease must outlast.
pub const ELECTION_TIMEOUT_HEARTBEATS_MIN: u64 = 3;
pub const ELECTION_TIMEOUT_MIN_MS_LEAST: u64 = 250;
pub const ELECTION_TIMEOUT_MIN_MS_MOST: u64 = 900;
/// The spread of the election timeout range above its minimum (milliseconds).
pub const ELECTION_TIMEOUT_SPREAD_MS: [u64; 2] = [50, 800];
/// The pause between two step-downs of a `step-down-leader` fault: from shorter than a
/// hand-over round trip to several heartbeats.
pub const STEP_DOWN_INTERVAL_MS: [u64; 2] = [20, 600];
/// How long a node that just stepped down may stay deaf to its peers (one direction cut):
/// around the read lease it would keep if the hand-over left it one.
pub const STEP_DOWN_DEAF_MS: [u64; 2] = [100, 1500];
/// How long a `seal-leader` strike waits for the node to answer sealed before it sends
/// the unseal key anyway.
pub const SEAL_UNSEAL_RACE_WAIT: Duration = Duration::from_secs(3);
/// The furthest a clock-jump strike moves a node's wall clock, either way. Token TTLs and
/// leases read wall time, so the lease check allows twice this (creator ahead, checker
/// behind).
pub const CLOCK_JUMP_MS_MAX: u64 = 2_000;
/// The send latency a latency spike sets for every link: its low end is drawn from the
/// first range, its high end from the second (milliseconds; madsim's default is 1-10).
pub const LATENCY_SPIKE_LOW_MS: [u64; 2] = [20, 100];
pub const LATENCY_SPIKE_HIGH_MS: [u64; 2] = [150, 600];
/// A slow node's links are cut for a time drawn from the first range, then open for one
/// drawn from the second, over and over for the outage (milliseconds).
pub const SLOW_NODE_CUT_MS: [u64; 2] = [20, 200];
pub const SLOW_NODE_OPEN_MS: [u64; 2] = [5, 60];
/// The pause between two steps of a swizzle-clog (milliseconds).
pub const SWIZZLE_STEP_MS: [u64; 2] = [50, 500];
/// The most live tokens, revoked tokens and short-lived (lease) tokens one client keeps
/// to present again.
pub const CLIENT_TOKENS_MAX: usize = 4;
/// The TTL of a lease token (seconds, drawn per token): short enough to expire within a
/// run's fault phase.
pub const LEASE_TTL_S: [u64; 2] = [1, 4];
/// The TTL of an ordinary created token: far longer than any run, so it never expires.
pub const TOKEN_TTL: &str = "24h";
/// How far a token's expiry may be seen from its TTL (microseconds): twice the largest
/// clock jump, one second of the server's rounding of expiry to whole seconds, and a
/// margin for the request's own transit.
pub const TOKEN_EXPIRY_SLACK_US: u64 = (2 * CLOCK_JUMP_MS_MAX + 1_000 + 500) * 1_000;
/// How long a strike that made a node lose acknowledged writes waits for it to catch up
/// before the next one.
pub const CATCH_UP_AFTER_LOST_FSYNCS_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads tried through a node with a full disk before that counts as a violation (a
/// read may meet an election or a forward to a leader that just changed).
pub const FULL_NODE_READ_ATTEMPTS_MAX: usize = 10;

pub struct Outcome {
    pub trace_hash: String,
    /// Safety violations: any one fails the run.
    pub violations: Vec<String>,
    /// Liveness failures, reported apart from safety.
    pub liveness_failures: Vec<String>,
    pub trace_tail: Vec<String>,
    pub acknowledged_writes: usize,
    pub reads_checked: usize,
    pub simulated: Duration,
}

pub fn run(scenario: &Scenario, seed: u64, verbose: bool) -> Outcome {
    let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.set_time_limit(RUN_TIME_LIMIT);
    let scenario = scenario.clone();
    runtime.block_on(async move { Simulation::new(scenario, seed, verbose).run().await })
}

type Registry = Arc<Mutex<BTreeMap<usize, Arc<Node>>>>;

/// One cluster of the fleet: its nodes, disks, clients' node and settings.
struct Cluster {
    index: usize,
    /// How far this cluster's wall clocks are off (every node alike): replication
    /// fleets draw one per cluster, so the status's clock skew is checked against it.
    clock_skew_ms: i64,
    handles: Vec<NodeHandle>,
    disks: Vec<SimDisk>,
    /// Each node's clock (kept across restarts, as a machine keeps its clock), so a
    /// clock-jump strike can move its wall time.
    clocks: Vec<Clock>,
    registry: Registry,
    /// Nodes whose last start was refused while their disk had errors switched on, with
    /// the error (a start refused with a healthy disk panics the run instead).
    start_refusals: Arc<Mutex<BTreeMap<usize, String>>>,
    down: Mutex<Vec<bool>>,
    client_node: NodeHandle,
    history: Mutex<History>,
}

fn node_ip(cluster: usize, node: usize) -> String {
    format!("10.0.{cluster}.{}", node + 1)
}

impl Cluster {
    fn size(&self) -> usize {
        self.handles.len()
    }

    fn api_addr(&self, node: usize) -> String {
        format!("http://{}:8200", node_ip(self.index, node))
    }

    fn index_of(&self, api_addr: &str) -> Option<usize> {
        (0..self.size()).find(|node| self.api_addr(*node) == api_addr.trim_end_matches('/'))
    }

    fn up(&self) -> Vec<usize> {
        let down = self.down.lock().unwrap();
        (0..down.len()).filter(|node| !down[*node]).collect()
    }
}

struct Simulation {
    scenario: Scenario,
    rng: SharedRng,
    /// Draws the Raft timers of randomized runs apart from `rng`, so adding them did not
    /// move any other choice a seed makes.
    timers_rng: SharedRng,
    /// Draws the log-shipper buffer of randomized runs, apart from `rng` for the same
    /// reason.
    buffer_rng: SharedRng,
    trace: Arc<Mutex<Trace>>,
    start: Instant,
    violations: Mutex<Vec<String>>,
    liveness_failures: Mutex<Vec<String>>,
    /// Replication fleets: when the write of each value was invoked (values are unique).
    values_invoked_us: Mutex<BTreeMap<String, u64>>,
    /// Replication fleets: where the operations of cluster 0's clients (whose history
    /// the oracle checks) go now. `None` elsewhere: every cluster serves its own.
    route: Mutex<Option<Route>>,
}

/// Where a replication fleet's workload sends its operations, each with a token valid
/// on that cluster. The primary changes with a failover; the history stays one.
#[derive(Clone)]
struct Route {
    /// Replicated registers are read on the primary only (a secondary's read may be
    /// stale by design); `None` while a failover is under way and no cluster is known to
    /// hold every acknowledged write.
    reads: Option<(Arc<Cluster>, String)>,
    /// Clusters that writes of replicated registers may go through (a secondary
    /// forwards them to its primary), drawn by seed per write; none pauses the writes.
    writes: Vec<(Arc<Cluster>, String)>,
    /// The cluster that owns the local mount: its registers live there whatever its role.
    local: (Arc<Cluster>, String),
}

/// Where one operation goes.
enum Routed {
    /// Straight to the cluster named by the caller, with the caller's token.
    Direct,
    Via(Arc<Cluster>, String),
    /// Not now: the operation is skipped and not recorded.
    Paused,
}

impl Simulation {
    fn new(scenario: Scenario, seed: u64, verbose: bool) -> Self {
        Self {
            scenario,
            rng: SharedRng::from_u64(seed ^ 0x5eed),
            timers_rng: SharedRng::from_u64(seed ^ 0x7133_e125),
            buffer_rng: SharedRng::from_u64(seed ^ 0xb0ff_e125),
            trace: Arc::new(Mutex::new(Trace::new(verbose))),
            start: now(),
            violations: Mutex::new(Vec::new()),
            liveness_failures: Mutex::new(Vec::new()),
            values_invoked_us: Mutex::new(BTreeMap::new()),
            route: Mutex::new(None),
        }
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn record(&self, event: impl AsRef<str>) {
        self.trace
            .lock()
            .unwrap()
            .record(self.start.elapsed().as_millis(), event);
    }

    fn violation(&self, cluster: &Cluster, message: String) {
        let message = format!("c{}: {message}", cluster.index);
        self.record(format!("VIOLATION {message}"));
        self.violations.lock().unwrap().push(message);
    }

    fn liveness_failure(&self, cluster: &Cluster, message: String) {
        let message = format!("c{}: {message}", cluster.index);
        self.record(format!("LIVENESS {message}"));
        self.liveness_failures.lock().unwrap().push(message);
    }

    fn between(&self, range: [u64; 2]) -> u64 {
        range[0] + self.rng.below(range[1] - range[0] + 1)
    }

    fn pick<T: Copy>(&self, choices: &[T]) -> T {
        choices[self.rng.below(choices.len() as u64) as usize]
    }

    async fn run(self) -> Outcome {
        let this = Arc::new(self);
        let clusters: Vec<Arc<Cluster>> = (0..this.scenario.clusters)
            .map(|index| Arc::new(this.build_cluster(index)))
            .collect();
        if this.scenario.replication.is_some() {
            return this.run_replication(clusters).await;
        }
        let mut drivers = Vec::new();
        for cluster in &clusters {
            let driver = this.clone();
            let driven = cluster.clone();
            drivers.push(
                cluster
                    .client_node
                    .spawn(async move { driver.drive(driven).await }),
            );
        }
        let fleet_faults = this.clone();
        let fleet = clusters.clone();
        let fleet_task = tokio::spawn(async move { fleet_faults.fleet_faults(&fleet).await });
        for driver in drivers {
            let _ = driver.await;
        }
        let _ = fleet_task.await;
        let mut acknowledged_writes = 0;
        let mut reads_checked = 0;
        for cluster in &clusters {
            let history = cluster.history.lock().unwrap();
            acknowledged_writes += history.acknowledged_writes();
            reads_checked += history.reads.len();
        }
        let trace = this.trace.lock().unwrap();
        Outcome {
            trace_hash: trace.hash(),
            violations: this.violations.lock().unwrap().clone(),
            liveness_failures: this.liveness_failures.lock().unwrap().clone(),
            trace_tail: trace.tail().to_vec(),
            acknowledged_writes,
            reads_checked,
            simulated: this.start.elapsed(),
        }
    }

    /// The Raft settings of one cluster: production's, or drawn by the seed.
    fn draw_options(&self, cluster: usize) -> RaftOptions {
        let scenario_buffer = self
            .scenario
            .replication
            .and_then(|replication| replication.logshipper_buffer_length);
        let wal_buffer_entries_max = match scenario_buffer {
            Some(length) => length,
            None if self.scenario.settings.randomize => {
                LOGSHIPPER_BUFFER_CHOICES[self
                    .buffer_rng
                    .below(LOGSHIPPER_BUFFER_CHOICES.len() as u64)
                    as usize]
            }
            None => RaftOptions::default().wal_buffer_entries_max,
        };
        let base = RaftOptions {
            wal_buffer_entries_max,
            ..RaftOptions::default()
        };
        if !self.scenario.settings.randomize {
            return base;
        }
        let segment_bytes_max = self.pick(SEGMENT_BYTES_CHOICES);
        let options = RaftOptions {
            log: LogStoreOptions {
                segment_bytes_max,
                // Zeros ahead in chunks of a quarter segment (production's size for the
                // largest), so small segments fill ahead several times and tear in and
                // around the zeros. No draw of its own: seeds keep their other draws.
                preallocate_bytes: (segment_bytes_max / 4).min(PREALLOCATE_BYTES),
            },
            snapshot_logs_since_last: self.pick(SNAPSHOT_THRESHOLDS),
            logs_kept_after_snapshot: self.rng.below(LOGS_KEPT_AFTER_SNAPSHOT_MAX + 1),
            timers: self.draw_timers(),
            ..base
        };
        self.record(format!(
            "c{cluster}: settings: snapshot every {} entries, keep {}, segments of {} bytes (zeros ahead {}), heartbeat {}ms, election timeout {}-{}ms",
            options.snapshot_logs_since_last,
            options.logs_kept_after_snapshot,
            options.log.segment_bytes_max,
            options.log.preallocate_bytes,
            options.timers.heartbeat_interval_ms,
            options.timers.election_timeout_min_ms,
            options.timers.election_timeout_max_ms,
        ));
        options
    }

    /// Raft timers drawn by seed, always within what openraft and the read path accept.
    fn draw_timers(&self) -> RaftTimers {
        let draw = |range: [u64; 2]| range[0] + self.timers_rng.below(range[1] - range[0] + 1);
        let heartbeat_interval_ms = draw(HEARTBEAT_INTERVAL_MS_RANGE);
        let least = (heartbeat_interval_ms * ELECTION_TIMEOUT_HEARTBEATS_MIN)
            .clamp(ELECTION_TIMEOUT_MIN_MS_LEAST, ELECTION_TIMEOUT_MIN_MS_MOST);
        let election_timeout_min_ms = draw([least, ELECTION_TIMEOUT_MIN_MS_MOST]);
        let timers = RaftTimers {
            heartbeat_interval_ms,
            election_timeout_min_ms,
            election_timeout_max_ms: election_timeout_min_ms + draw(ELECTION_TIMEOUT_SPREAD_MS),
        };
        assert!(timers.check().is_ok(), "drawn timers {timers:?}");
        timers
    }

    fn build_cluster(&self, index: usize) -> Cluster {
        let handle = Handle::current();
        let count = self.scenario.nodes;
        let options = self.draw_options(index);
        let clock_skew_ms = if self.scenario.replication.is_some() {
            let skew = self.rng.below(2 * CLUSTER_CLOCK_SKEW_MAX_MS + 1) as i64
                - CLUSTER_CLOCK_SKEW_MAX_MS as i64;
            self.record(format!("c{index}: wall clocks off by {skew} ms"));
            skew
        } else {
            0
        };
        let registry: Registry = Arc::new(Mutex::new(BTreeMap::new()));
        let start_refusals: Arc<Mutex<BTreeMap<usize, String>>> =
            Arc::new(Mutex::new(BTreeMap::new()));
        let mut handles = Vec::new();
        let mut disks = Vec::new();
        let mut clocks = Vec::new();
        let api_addr = |node: usize| format!("http://{}:8200", node_ip(index, node));
        for node in 0..count {
            let disk = SimDisk::new(self.rng.next_u64());
            disks.push(disk.clone());
            let node_clock = Clock::system();
            node_clock.set_skew_ms(clock_skew_ms);
            clocks.push(node_clock.clone());
            let config = NodeConfig {
                node_id: format!("node-{}", node + 1),
                api_listen: format!("{}:8200", node_ip(index, node)).parse().unwrap(),
                cluster_listen: format!("{}:8201", node_ip(index, node)).parse().unwrap(),
                api_addr: api_addr(node),
                cluster_addr: format!("https://{}:8201", node_ip(index, node)),
                cluster_name: Some(format!("sim-{index}")),
                retry_join: (0..count)
                    .filter(|other| *other != node)
                    .map(|other| arca::core::JoinTarget::new(api_addr(other)))
                    .collect(),
                api_tls: None,
                raft: Default::default(),
            };
            let registry = registry.clone();
            let start_refusals = start_refusals.clone();
            let started = handle
                .create_node()
                .name(format!("c{index}-node-{}", node + 1))
                .ip(node_ip(index, node).parse().unwrap())
                .init(move || {
                    let disk = disk.clone();
                    let failing_disk = disk.clone();
                    let config = config.clone();
                    let registry = registry.clone();
                    let start_refusals = start_refusals.clone();
                    let clock = node_clock.clone();
                    async move {
                        let env = Env {
                            clock,
                            rng: SharedRng::from_entropy(),
                            disk: Arc::new(disk),
                            metrics: Default::default(),
                        };
                        match Node::start_with_options(
                            env,
                            config,
                            Arc::new(arca::env::MemoryLogFiles::new()),
                            options,
                        )
                        .await
                        {
                            Ok(started) => {
                                start_refusals.lock().unwrap().remove(&node);
                                registry.lock().unwrap().insert(node, Arc::new(started));
                                std::future::pending::<()>().await;
                            }
                            // A disk failing reads: refusing to start is the node's
                            // answer (it names the file); the harness starts it again
                            // once the disk is repaired.
                            Err(error) if failing_disk.io_errors().is_some() => {
                                start_refusals
                                    .lock()
                                    .unwrap()
                                    .insert(node, error.to_string());
                                std::future::pending::<()>().await;
                            }
                            Err(error) => {
                                panic!("c{index} node-{} failed to start: {error}", node + 1)
                            }
                        }
                    }
                })
                .build();
            handles.push(started);
        }
        let client_node = handle
            .create_node()
            .name(format!("c{index}-clients"))
            .ip(format!("10.1.{index}.1").parse().unwrap())
            .build();
        Cluster {
            index,
            clock_skew_ms,
            handles,
            disks,
            clocks,
            registry,
            start_refusals,
            down: Mutex::new(vec![false; count]),
            client_node,
            history: Mutex::new(History {
                expiry_slack_us: TOKEN_EXPIRY_SLACK_US,
                ..History::default()
            }),
        }
    }

    /// Setup, workload under faults, recovery, the healed phase, checks.
    async fn drive(self: Arc<Self>, cluster: Arc<Cluster>) {
        let Some((unseal_key, root_token)) = self.setup(&cluster).await else {
            return;
        };
        let faults_done = Arc::new(AtomicBool::new(false));
        if self.scenario.settings.buggify {
            arca::buggify::set_enabled(true);
        }
        let clients = self.spawn_clients(
            &cluster,
            &root_token,
            Phase::Faults,
            self.scenario.workload.ops_per_client,
            faults_done.clone(),
        );
        let faults: Vec<FaultSpec> = self
            .scenario
            .faults
            .iter()
            .filter(|spec| spec.kind != FaultKind::PartitionClusters)
            .cloned()
            .collect();
        for spec in &faults {
            for _ in 0..spec.count {
                tokio::time::sleep(Duration::from_millis(self.between([300, 2000]))).await;
                let kind = match spec.kind {
                    FaultKind::Swarm => self.pick(FaultKind::SWARM),
                    kind => kind,
                };
                self.inject(&cluster, kind, spec, &unseal_key, &root_token)
                    .await;
                self.record_digests(&cluster);
            }
        }
        faults_done.store(true, Ordering::SeqCst);
        // The healed phase runs without fault points (every cluster of the fleet).
        arca::buggify::set_enabled(false);
        for client in clients {
            let _ = client.await;
        }
        self.record(format!(
            "c{}: workload under faults finished",
            cluster.index
        ));
        self.recover(&cluster, &unseal_key).await;
        if self.await_healthy(&cluster, &root_token).await {
            let healed = self.spawn_clients(
                &cluster,
                &root_token,
                Phase::Healed,
                self.scenario.liveness.ops_per_client,
                Arc::new(AtomicBool::new(true)),
            );
            for client in healed {
                let _ = client.await;
            }
        }
        self.check(&cluster, &root_token).await;
    }

    fn spawn_clients(
        self: &Arc<Self>,
        cluster: &Arc<Cluster>,
        token: &str,
        phase: Phase,
        ops_min: usize,
        stop: Arc<AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.scenario.workload.clients)
            .map(|client| {
                let this = self.clone();
                let cluster = cluster.clone();
                let token = token.to_string();
                let stop = stop.clone();
                tokio::spawn(async move {
                    this.client_loop(&cluster, client, &token, phase, ops_min, &stop)
                        .await
                })
            })
            .collect()
    }

    /// Cross-cluster faults: cut every link between two clusters for a while.
    async fn fleet_faults(&self, clusters: &[Arc<Cluster>]) {
        let net = NetSim::current();
        for spec in &self.scenario.faults {
            if spec.kind != FaultKind::PartitionClusters || clusters.len() < 2 {
                continue;
            }
            for _ in 0..spec.count {
                tokio::time::sleep(Duration::from_millis(self.between([1000, 4000]))).await;
                let first = self.rng.below(clusters.len() as u64) as usize;
                let second = (first + 1 + self.rng.below(clusters.len() as u64 - 1) as usize)
                    % clusters.len();
                let outage = Duration::from_millis(self.between(spec.outage_ms));
                self.record(format!(
                    "FAULT partition c{first} from c{second} for {}ms",
                    outage.as_millis()
                ));
                let links = cross_links(&clusters[first], &clusters[second]);
                for (from, to) in &links {
                    net.clog_link(*from, *to);
                }
                tokio::time::sleep(outage).await;
                for (from, to) in &links {
                    net.unclog_link(*from, *to);
                }
                self.record(format!("HEAL c{first} from c{second}"));
            }
        }
    }

    async fn setup(&self, cluster: &Cluster) -> Option<(String, String)> {
        let deadline = now() + SETUP_TIMEOUT;
        let first = cluster.api_addr(0);
        let (unseal_key, root_token) = loop {
            if let Ok((200, body)) = call(
                &first,
                Method::PUT,
                "sys/init",
                None,
                Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await
            {
                let key = body["keys_base64"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let token = body["root_token"].as_str().unwrap_or_default().to_string();
                break (key, token);
            }
            if now() > deadline {
                self.violation(cluster, "setup: sys/init never succeeded".into());
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.record(format!("c{}: initialized node-1", cluster.index));
        for node in 0..cluster.size() {
            if !self.unseal(cluster, node, &unseal_key).await {
                self.violation(cluster, format!("setup: node-{} never unsealed", node + 1));
                return None;
            }
        }
        if !self.wait_for_voters(cluster, &root_token).await {
            return None;
        }
        for (path, body) in [
            ("sys/mounts/kv", json!({"type": "kv"})),
            (
                "sys/mounts/kv2",
                json!({"type": "kv", "options": {"version": "2"}}),
            ),
        ] {
            let mounted = self
                .retry_call(cluster, |address| {
                    let token = root_token.clone();
                    let body = body.clone();
                    async move {
                        call(&address, Method::POST, path, Some(&token), Some(&body)).await
                    }
                })
                .await;
            if !matches!(mounted, Some(200 | 204)) {
                self.violation(cluster, format!("setup: {path} answered {mounted:?}"));
                return None;
            }
        }
        self.record(format!("c{}: setup complete", cluster.index));
        Some((unseal_key, root_token))
    }

    /// Retry a call against random nodes until it gets a definite answer.
    async fn retry_call<F, Fut>(&self, cluster: &Cluster, make: F) -> Option<u16>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<(u16, Value), String>>,
    {
        let deadline = now() + SETUP_TIMEOUT;
        while now() < deadline {
            let node = self.rng.below(cluster.size() as u64) as usize;
            if let Ok((status, _)) = make(cluster.api_addr(node)).await
                && status < 500
            {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    async fn unseal(&self, cluster: &Cluster, node: usize, key: &str) -> bool {
        let address = cluster.api_addr(node);
        let deadline = now() + SETUP_TIMEOUT;
        while now() < deadline {
            if let Ok((200, body)) = call(
                &address,
                Method::PUT,
                "sys/unseal",
                None,
                Some(&json!({"key": key})),
            )
            .await
                && body["sealed"] == Value::Bool(false)
            {
                self.record(format!("c{}: unsealed node-{}", cluster.index, node + 1));
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    async fn wait_for_voters(&self, cluster: &Cluster, root_token: &str) -> bool {
        let deadline = now() + SETUP_TIMEOUT;
        while now() < deadline {
            if let Ok((200, body)) = call(
                &cluster.api_addr(0),
                Method::GET,
                "sys/storage/raft/configuration",
                Some(root_token),
                None,
            )
            .await
            {
                let voters = body["data"]["config"]["servers"]
                    .as_array()
                    .map(|servers| {
                        servers
                            .iter()
                            .filter(|server| server["voter"] == Value::Bool(true))
                            .count()
                    })
                    .unwrap_or(0);
                if voters == cluster.size() {
                    self.record(format!("c{}: {voters} voters", cluster.index));
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.violation(
            cluster,
            "setup: the cluster never reached full membership".into(),
        );
        false
    }

    /// One client: a seeded mix of KV v1 puts, deletes and reads and KV v2
    /// check-and-set writes, deletes and reads, through random nodes, each recorded
    /// with its times and outcome.
    async fn client_loop(
        &self,
        cluster: &Cluster,
        client: usize,
        token: &str,
        phase: Phase,
        ops_min: usize,
        stop: &AtomicBool,
    ) {
        let workload = self.scenario.workload.clone();
        let mix = workload.mix;
        let replicating = self.scenario.replication.is_some();
        // The KV v2 version this client last saw per key; a CAS without one reads first.
        let mut known_versions: BTreeMap<u64, u64> = BTreeMap::new();
        let mut steps = ClientSteps::default();
        let mut done = 0usize;
        let tag = match phase {
            Phase::Faults => "f",
            Phase::Healed => "h",
            Phase::Final => "z",
        };
        loop {
            if (done >= ops_min && stop.load(Ordering::SeqCst)) || done >= OPS_WHILE_FAULTS_MAX {
                break;
            }
            let key = self.rng.below(workload.keys as u64);
            let value = format!("c{client}-{tag}{done}");
            let total = mix.put
                + mix.delete
                + mix.cas
                + mix.delete_v2
                + mix.read
                + mix.mount
                + mix.token
                + mix.lease;
            let mut draw = self.rng.below(total);
            let mut next = |weight: u64| {
                let hit = draw < weight;
                draw = draw.saturating_sub(weight);
                hit
            };
            // A replication fleet's primary also writes its local mount, which must
            // never reach a secondary.
            let v1_mount = if replicating && self.rng.below(3) == 0 {
                "local"
            } else {
                "kv"
            };
            if next(mix.put) {
                let body = json!({ "value": value });
                self.write(
                    cluster,
                    client,
                    phase,
                    &format!("{v1_mount}/k{key}"),
                    Method::PUT,
                    Some(body),
                    Some(value),
                    None,
                    token,
                )
                .await;
            } else if next(mix.delete) {
                self.write(
                    cluster,
                    client,
                    phase,
                    &format!("{v1_mount}/k{key}"),
                    Method::DELETE,
                    None,
                    None,
                    None,
                    token,
                )
                .await;
            } else if next(mix.cas) {
                let target = self.rng.below(cluster.size() as u64) as usize;
                if !known_versions.contains_key(&key)
                    && let Some((_, version)) = self
                        .read_via(cluster, client, phase, &format!("kv2/k{key}"), token, target)
                        .await
                    // In a replication fleet a key never written is created with cas=0,
                    // so KV v2 versions move and secondaries' reads of them are checked.
                    && let Some(version) = version.or(replicating.then_some(0))
                {
                    known_versions.insert(key, version);
                }
                if let Some(version) = known_versions.remove(&key) {
                    let body = json!({"data": {"value": value}, "options": {"cas": version}});
                    if let Some(written) = self
                        .write(
                            cluster,
                            client,
                            phase,
                            &format!("kv2/k{key}"),
                            Method::PUT,
                            Some(body),
                            Some(value),
                            Some(version),
                            token,
                        )
                        .await
                    {
                        known_versions.insert(key, written);
                    }
                }
            } else if next(mix.mount) {
                self.mount_step(cluster, client, phase, &value, token, &mut steps)
                    .await;
            } else if next(mix.token) {
                self.token_step(cluster, client, phase, token, &mut steps)
                    .await;
            } else if next(mix.lease) {
                self.lease_step(cluster, client, phase, token, &mut steps)
                    .await;
            } else if next(mix.delete_v2) {
                self.write(
                    cluster,
                    client,
                    phase,
                    &format!("kv2/k{key}"),
                    Method::DELETE,
                    None,
                    None,
                    None,
                    token,
                )
                .await;
            } else {
                let register = if self.rng.below(2) == 0 {
                    format!("{v1_mount}/k{key}")
                } else {
                    format!("kv2/k{key}")
                };
                if let Some(version) = self.read(cluster, client, phase, &register, token).await
                    && register.starts_with("kv2/")
                {
                    known_versions.insert(key, version);
                }
            }
            done += 1;
            tokio::time::sleep(Duration::from_millis(self.between(workload.pause_ms))).await;
        }
    }

    /// One step of this client's mount cycle on its own mount `m<client>/`: enable it
    /// when it is (believed) disabled, else write or read its register, or disable it. A
    /// disable is a write of "absent" to the register: once acknowledged, a read answers
    /// 404 until a later write, also after the mount is enabled again (empty).
    async fn mount_step(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        value: &str,
        token: &str,
        steps: &mut ClientSteps,
    ) {
        let register = mount_register(client);
        if !steps.mount_enabled {
            if self.rng.below(2) == 0 {
                let target = self.rng.below(cluster.size() as u64) as usize;
                let answer = self
                    .read_via(cluster, client, phase, &register, token, target)
                    .await;
                if steps.mount_disable_acknowledged && matches!(answer, Some((None, _))) {
                    arca::coverage::mark("mount-disabled-read-refused");
                }
                return;
            }
            let target = self.rng.below(cluster.size() as u64) as usize;
            let result = call(
                &cluster.api_addr(target),
                Method::POST,
                &format!("sys/mounts/m{client}"),
                Some(token),
                Some(&json!({"type": "kv"})),
            )
            .await;
            self.record(format!(
                "c{} client {client} enable mount m{client}/ via node-{} -> {}",
                cluster.index,
                target + 1,
                describe(&result)
            ));
            // Enabled, already there, or unknown: from now on writes go to it (a write
            // to a mount that does not exist is refused with 404 and recorded so).
            steps.mount_enabled = true;
            return;
        }
        match self.rng.below(4) {
            0 | 1 => {
                let body = json!({ "value": value });
                self.write(
                    cluster,
                    client,
                    phase,
                    &register,
                    Method::PUT,
                    Some(body),
                    Some(value.to_string()),
                    None,
                    token,
                )
                .await;
            }
            2 => {
                self.read(cluster, client, phase, &register, token).await;
            }
            _ => {
                self.write_path(
                    cluster,
                    client,
                    phase,
                    &register,
                    &format!("sys/mounts/m{client}"),
                    Method::DELETE,
                    None,
                    None,
                    None,
                    token,
                )
                .await;
                // Nothing was awaited since the write was recorded: it is the last one.
                steps.mount_disable_acknowledged = cluster
                    .history
                    .lock()
                    .unwrap()
                    .writes
                    .last()
                    .is_some_and(|write| write.outcome == WriteOutcome::Ok);
                steps.mount_enabled = false;
            }
        }
    }

    /// Create a token (kept to present later), present one, or revoke one.
    async fn token_step(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        token: &str,
        steps: &mut ClientSteps,
    ) {
        let draw = self.rng.below(3);
        if steps.live_tokens.is_empty()
            || (draw == 0 && steps.live_tokens.len() < CLIENT_TOKENS_MAX)
        {
            if let Some(created) = self.create_token(cluster, client, token, None).await {
                steps.live_tokens.push(created);
            }
        } else if draw == 1 {
            let mut presentable: Vec<&(String, String)> = steps
                .live_tokens
                .iter()
                .chain(&steps.revoked_tokens)
                .collect();
            let position = self.rng.below(presentable.len() as u64) as usize;
            let (label, secret) = presentable.swap_remove(position).clone();
            self.use_token(cluster, client, phase, &label, &secret)
                .await;
        } else {
            let position = self.rng.below(steps.live_tokens.len() as u64) as usize;
            let (label, secret) = steps.live_tokens.remove(position);
            self.revoke_token(cluster, client, &label, &secret, token)
                .await;
            steps.revoked_tokens.push((label, secret));
            if steps.revoked_tokens.len() > CLIENT_TOKENS_MAX {
                steps.revoked_tokens.remove(0);
            }
        }
    }

    /// Create a token with a short TTL (a lease that must expire), or present one.
    async fn lease_step(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        token: &str,
        steps: &mut ClientSteps,
    ) {
        if steps.lease_tokens.is_empty()
            || (steps.lease_tokens.len() < CLIENT_TOKENS_MAX && self.rng.below(2) == 0)
        {
            let ttl_s = self.between(LEASE_TTL_S);
            if let Some(created) = self.create_token(cluster, client, token, Some(ttl_s)).await {
                steps.lease_tokens.push(created);
            }
        } else {
            let position = self.rng.below(steps.lease_tokens.len() as u64) as usize;
            let (label, secret) = steps.lease_tokens[position].clone();
            self.use_token(cluster, client, phase, &label, &secret)
                .await;
        }
    }

    /// `auth/token/create` through a random node: the token's label and secret when its
    /// creation was acknowledged (recorded for the oracle).
    async fn create_token(
        &self,
        cluster: &Cluster,
        client: usize,
        token: &str,
        ttl_s: Option<u64>,
    ) -> Option<(String, String)> {
        let target = self.rng.below(cluster.size() as u64) as usize;
        let ttl = ttl_s.map_or(TOKEN_TTL.to_string(), |ttl| format!("{ttl}s"));
        let invoked_us = self.now_us();
        let result = call(
            &cluster.api_addr(target),
            Method::POST,
            "auth/token/create",
            Some(token),
            Some(&json!({ "ttl": ttl })),
        )
        .await;
        let completed_us = self.now_us();
        let secret = match &result {
            Ok((200, body)) => body["auth"]["client_token"].as_str().map(str::to_string),
            _ => None,
        };
        let mut history = cluster.history.lock().unwrap();
        // Labels count the cluster's created tokens, so they are unique across phases.
        let label = format!("c{client}-t{}", history.tokens.len());
        self.record(format!(
            "c{} client {client} create token {} ttl={ttl} via node-{} -> {}",
            cluster.index,
            if secret.is_some() {
                label.as_str()
            } else {
                "-"
            },
            target + 1,
            describe(&result)
        ));
        let secret = secret?;
        history.tokens.push(TokenLife {
            label: label.clone(),
            secret: secret.clone(),
            created_invoked_us: invoked_us,
            created_completed_us: completed_us,
            ttl_ms: ttl_s.map(|ttl| ttl * 1000),
            revocation: None,
        });
        Some((label, secret))
    }

    /// `auth/token/revoke` of `secret` with the client's own token; the outcome is
    /// recorded on the token for the oracle.
    async fn revoke_token(
        &self,
        cluster: &Cluster,
        client: usize,
        label: &str,
        secret: &str,
        token: &str,
    ) {
        let target = self.rng.below(cluster.size() as u64) as usize;
        let invoked_us = self.now_us();
        let result = call(
            &cluster.api_addr(target),
            Method::POST,
            "auth/token/revoke",
            Some(token),
            Some(&json!({ "token": secret })),
        )
        .await;
        let completed_us = self.now_us();
        self.record(format!(
            "c{} client {client} revoke token {label} via node-{} -> {}",
            cluster.index,
            target + 1,
            describe(&result)
        ));
        let mut history = cluster.history.lock().unwrap();
        if let Some(life) = history.tokens.iter_mut().find(|life| life.label == label) {
            life.revocation = Some(Revocation {
                invoked_us,
                completed_us,
                outcome: classify_write(&result),
            });
        }
    }

    /// Present a created token: a read of a KV register with it through a random node.
    /// Authorized (an answer from the register, recorded as a read too) or refused
    /// (403) is recorded for the oracle; anything else says nothing. The mount cycle's
    /// registers are left out: their mount may not exist (404 whatever the token).
    async fn use_token(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        label: &str,
        secret: &str,
    ) -> Option<bool> {
        let registers: Vec<String> = self
            .registers()
            .into_iter()
            .filter(|register| register.starts_with("kv"))
            .collect();
        let register = registers[self.rng.below(registers.len() as u64) as usize].clone();
        let target = self.rng.below(cluster.size() as u64) as usize;
        let invoked_us = self.now_us();
        let result = call(
            &cluster.api_addr(target),
            Method::GET,
            &Self::api_path(&register),
            Some(secret),
            None,
        )
        .await;
        let completed_us = self.now_us();
        let node = format!("node-{}", target + 1);
        self.record(format!(
            "c{} client {client} GET {register} with token {label} via {node} -> {}",
            cluster.index,
            describe(&result)
        ));
        let authorized = match &result {
            Ok((200 | 404, body)) => {
                let value = if register.starts_with("kv2/") {
                    body["data"]["data"]["value"].as_str()
                } else {
                    body["data"]["value"].as_str()
                };
                cluster.history.lock().unwrap().reads.push(Read {
                    register: register.clone(),
                    value: value.map(str::to_string),
                    invoked_us,
                    completed_us,
                    phase,
                    client,
                    node: node.clone(),
                });
                true
            }
            Ok((403, _)) => false,
            _ => return None,
        };
        cluster.history.lock().unwrap().token_uses.push(TokenUse {
            label: label.to_string(),
            invoked_us,
            completed_us,
            authorized,
            phase,
            client,
            node,
        });
        Some(authorized)
    }

    /// At the end: every token whose revocation was acknowledged, and every lease token
    /// once its TTL (and the slack) has passed, is presented again and must be refused.
    async fn present_ended_tokens(&self, cluster: &Cluster) {
        let tokens = cluster.history.lock().unwrap().tokens.clone();
        for life in tokens {
            let revoked = life
                .revocation
                .is_some_and(|revocation| revocation.outcome == WriteOutcome::Ok);
            let Some(ended_us) = (match life.ttl_ms {
                Some(ttl_ms) => {
                    Some(life.created_completed_us + ttl_ms * 1000 + TOKEN_EXPIRY_SLACK_US)
                }
                None => revoked.then(|| self.now_us()),
            }) else {
                continue;
            };
            let now_us = self.now_us();
            if ended_us > now_us {
                tokio::time::sleep(Duration::from_micros(ended_us - now_us + 1)).await;
            }
            for _ in 0..FINAL_READ_ATTEMPTS_MAX {
                match self
                    .use_token(cluster, usize::MAX, Phase::Final, &life.label, &life.secret)
                    .await
                {
                    Some(false) if revoked => {
                        arca::coverage::mark("token-revoked-refused");
                        break;
                    }
                    Some(false) => {
                        arca::coverage::mark("token-expired-refused");
                        break;
                    }
                    // Authorized: the oracle reports it.
                    Some(true) => break,
                    None => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }

    /// The API path of a register (`kv/kN` or `kv2/kN`).
    fn api_path(register: &str) -> String {
        match register.strip_prefix("kv2/") {
            Some(key) => format!("kv2/data/{key}"),
            None => register.to_string(),
        }
    }

    /// One write through a random node; returns the KV v2 version it created, if any.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        register: &str,
        method: Method,
        body: Option<Value>,
        value: Option<String>,
        cas: Option<u64>,
        token: &str,
    ) -> Option<u64> {
        self.write_path(
            cluster,
            client,
            phase,
            register,
            &Self::api_path(register),
            method,
            body,
            value,
            cas,
            token,
        )
        .await
    }

    /// A write of `register` made by a request to `path` (a register's own path, or
    /// one whose effect on it is known, such as disabling its mount).
    #[allow(clippy::too_many_arguments)]
    async fn write_path(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        register: &str,
        path: &str,
        method: Method,
        body: Option<Value>,
        value: Option<String>,
        cas: Option<u64>,
        token: &str,
    ) -> Option<u64> {
        let (via, token) = match self.routed(cluster, register, true) {
            Routed::Direct => (None, token.to_string()),
            Routed::Via(via, token) => (Some(via), token),
            Routed::Paused => return None,
        };
        let via_cluster = via.as_deref().unwrap_or(cluster);
        let target = self.rng.below(via_cluster.size() as u64) as usize;
        let invoked_us = self.now_us();
        if self.scenario.replication.is_some()
            && let Some(value) = &value
        {
            self.values_invoked_us
                .lock()
                .unwrap()
                .insert(value.clone(), invoked_us);
        }
        let result = call(
            &via_cluster.api_addr(target),
            method.clone(),
            path,
            Some(&token),
            body.as_ref(),
        )
        .await;
        let completed_us = self.now_us();
        let mut outcome = classify_write(&result);
        // Disabling a mount takes several commits (the table entry, then its data in
        // batches); a refusal for a full disk may come after the first took effect.
        if path.starts_with("sys/mounts/") && matches!(&result, Ok((500, _))) {
            outcome = WriteOutcome::Unknown;
        }
        self.record(format!(
            "c{} client {client} {method} {register}={value:?}{} via {}node-{} -> {}",
            cluster.index,
            cas.map(|version| format!(" cas={version}"))
                .unwrap_or_default(),
            via.as_ref()
                .map(|via| format!("c{} ", via.index))
                .unwrap_or_default(),
            target + 1,
            describe(&result)
        ));
        cluster.history.lock().unwrap().writes.push(Write {
            register: register.to_string(),
            value,
            cas,
            invoked_us,
            completed_us,
            outcome,
            phase,
            client,
        });
        match result {
            Ok((200..=299, body)) => body["data"]["version"].as_u64(),
            _ => None,
        }
    }

    /// One read through a random node; records it when it got a definite answer and
    /// returns the KV v2 version it saw (also of a deleted one).
    async fn read(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        register: &str,
        token: &str,
    ) -> Option<u64> {
        let target = self.rng.below(cluster.size() as u64) as usize;
        self.read_via(cluster, client, phase, register, token, target)
            .await
            .and_then(|(_, version)| version)
    }

    /// A read through `target`: `Some((value, version))` when it got a definite answer.
    async fn read_via(
        &self,
        cluster: &Cluster,
        client: usize,
        phase: Phase,
        register: &str,
        token: &str,
        target: usize,
    ) -> Option<(Option<String>, Option<u64>)> {
        let (via, token) = match self.routed(cluster, register, false) {
            Routed::Direct => (None, token.to_string()),
            Routed::Via(via, token) => (Some(via), token),
            Routed::Paused => return None,
        };
        let via_cluster = via.as_deref().unwrap_or(cluster);
        let invoked_us = self.now_us();
        let result = call(
            &via_cluster.api_addr(target),
            Method::GET,
            &Self::api_path(register),
            Some(&token),
            None,
        )
        .await;
        let completed_us = self.now_us();
        let v2 = register.starts_with("kv2/");
        let answer = match &result {
            Ok((200, body)) if v2 => Some((
                body["data"]["data"]["value"].as_str().map(str::to_string),
                body["data"]["metadata"]["version"].as_u64(),
            )),
            Ok((200, body)) => Some((body["data"]["value"].as_str().map(str::to_string), None)),
            Ok((404, body)) => Some((None, body["data"]["metadata"]["version"].as_u64())),
            _ => None,
        };
        let node = format!(
            "{}node-{}",
            via.as_ref()
                .map(|via| format!("c{} ", via.index))
                .unwrap_or_default(),
            target + 1
        );
        self.record(format!(
            "c{} client {client} GET {register} via {node} -> {} {:?}",
            cluster.index,
            describe(&result),
            answer.as_ref().map(|(value, _)| value)
        ));
        let (value, version) = answer?;
        cluster.history.lock().unwrap().reads.push(Read {
            register: register.to_string(),
            value: value.clone(),
            invoked_us,
            completed_us,
            phase,
            client,
            node,
        });
        Some((value, version))
    }

    /// Where an operation of `cluster`'s on `register` goes: the replication fleet's
    /// route for cluster 0, which holds the oracle's history; straight there otherwise.
    fn routed(&self, cluster: &Cluster, register: &str, write: bool) -> Routed {
        let route = self.route.lock().unwrap();
        let Some(route) = route.as_ref().filter(|_| cluster.index == 0) else {
            return Routed::Direct;
        };
        let (via, token) = if register.starts_with("local/") {
            route.local.clone()
        } else if write {
            match route.writes.len() {
                0 => return Routed::Paused,
                // One choice draws nothing, so fleets that write through the primary
                // alone draw the same numbers as before routes existed.
                1 => route.writes[0].clone(),
                choices => route.writes[self.rng.below(choices as u64) as usize].clone(),
            }
        } else {
            match &route.reads {
                Some(reads) => reads.clone(),
                None => return Routed::Paused,
            }
        };
        Routed::Via(via, token)
    }

    /// The node most up nodes name as leader (a node that just restarted may still
    /// name itself from its persisted vote until it hears the new term).
    async fn leader_index(&self, cluster: &Cluster) -> Option<usize> {
        let up = cluster.up();
        let mut votes = vec![0usize; cluster.size()];
        for node in up.iter().copied() {
            if let Ok((200, body)) = call(
                &cluster.api_addr(node),
                Method::GET,
                "sys/leader",
                None,
                None,
            )
            .await
                && let Some(address) = body["leader_address"].as_str()
                && let Some(leader) = cluster.index_of(address)
                && up.contains(&leader)
            {
                votes[leader] += 1;
            }
        }
        let (leader, count) = votes
            .iter()
            .enumerate()
            .max_by_key(|(node, count)| (**count, std::cmp::Reverse(*node)))?;
        (*count > 0).then_some(leader)
    }

    fn random_up_node(&self, cluster: &Cluster, excluding: Option<usize>) -> Option<usize> {
        let candidates: Vec<usize> = cluster
            .up()
            .into_iter()
            .filter(|node| Some(*node) != excluding)
            .collect();
        (!candidates.is_empty()).then(|| self.pick(&candidates))
    }

    /// `count` distinct up nodes drawn by the seed.
    fn random_up_nodes(&self, cluster: &Cluster, count: usize) -> Vec<usize> {
        let mut candidates = cluster.up();
        let mut chosen = Vec::new();
        while chosen.len() < count && !candidates.is_empty() {
            let position = self.rng.below(candidates.len() as u64) as usize;
            chosen.push(candidates.remove(position));
        }
        chosen.sort();
        chosen
    }

    /// Put `items` in an order drawn by the seed (Fisher-Yates).
    fn shuffle<T>(&self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let other = self.rng.below(last as u64 + 1) as usize;
            items.swap(last, other);
        }
    }

    /// The network's current send latency.
    fn send_latency(net: &NetSim) -> std::ops::Range<Duration> {
        let mut latency = Duration::ZERO..Duration::ZERO;
        net.update_config(|config| latency = config.send_latency.clone());
        latency
    }

    async fn leader_or_random(&self, cluster: &Cluster) -> Option<usize> {
        match self.leader_index(cluster).await {
            Some(leader) => Some(leader),
            None => self.random_up_node(cluster, None),
        }
    }

    async fn inject(
        &self,
        cluster: &Cluster,
        kind: FaultKind,
        spec: &FaultSpec,
        unseal_key: &str,
        root_token: &str,
    ) {
        let outage = Duration::from_millis(self.between(spec.outage_ms));
        let net = NetSim::current();
        let c = cluster.index;
        match kind {
            FaultKind::CrashLeader
            | FaultKind::CrashRandom
            | FaultKind::KillLeader
            | FaultKind::KillRandom => {
                let target = match kind {
                    FaultKind::CrashLeader | FaultKind::KillLeader => {
                        self.leader_or_random(cluster).await
                    }
                    _ => self.random_up_node(cluster, None),
                };
                let Some(target) = target else { return };
                let power_loss = matches!(kind, FaultKind::CrashLeader | FaultKind::CrashRandom);
                self.take_down(cluster, &[target], power_loss, spec.tear, outage);
                tokio::time::sleep(outage).await;
                self.restart(cluster, &[target], unseal_key).await;
            }
            FaultKind::PowerLossAll | FaultKind::KillMajority | FaultKind::CrashMinority => {
                let size = cluster.size();
                let count = match kind {
                    FaultKind::PowerLossAll => size,
                    FaultKind::KillMajority => size / 2 + 1,
                    _ => (size - 1) / 2,
                };
                let targets = self.random_up_nodes(cluster, count);
                if targets.is_empty() {
                    return;
                }
                let power_loss = kind != FaultKind::KillMajority;
                self.take_down(cluster, &targets, power_loss, spec.tear, outage);
                tokio::time::sleep(outage).await;
                self.restart(cluster, &targets, unseal_key).await;
            }
            FaultKind::PartitionLeader | FaultKind::PartitionRandom => {
                let target = match kind {
                    FaultKind::PartitionLeader => self.leader_or_random(cluster).await,
                    _ => self.random_up_node(cluster, None),
                };
                let Some(target) = target else { return };
                let id = cluster.handles[target].id();
                self.record(format!(
                    "c{c}: FAULT partition node-{} for {}ms",
                    target + 1,
                    outage.as_millis()
                ));
                let term_before = self
                    .highest_term_leading(cluster, target)
                    .map(|(term, _)| term);
                net.clog_node(id);
                tokio::time::sleep(outage).await;
                if let Some((term, true)) = self.highest_term_leading(cluster, target)
                    && Some(term) > term_before
                {
                    arca::coverage::mark("raft-election-during-partition");
                }
                net.unclog_node(id);
                self.record(format!("c{c}: HEAL node-{}", target + 1));
            }
            FaultKind::ClogLinkRandom => {
                let Some(from) = self.random_up_node(cluster, None) else {
                    return;
                };
                let Some(to) = self.random_up_node(cluster, Some(from)) else {
                    return;
                };
                let (from_id, to_id) = (cluster.handles[from].id(), cluster.handles[to].id());
                self.record(format!(
                    "c{c}: FAULT clog link node-{} -> node-{} for {}ms",
                    from + 1,
                    to + 1,
                    outage.as_millis()
                ));
                net.clog_link(from_id, to_id);
                tokio::time::sleep(outage).await;
                net.unclog_link(from_id, to_id);
                self.record(format!(
                    "c{c}: HEAL link node-{} -> node-{}",
                    from + 1,
                    to + 1
                ));
            }
            FaultKind::SwizzleClog => {
                // Clog a random subset one node at a time, then unclog them one at a
                // time in another random order (FoundationDB's swizzle-clog).
                let count = 1 + self.rng.below(cluster.size() as u64) as usize;
                let mut clogging = self.random_up_nodes(cluster, count);
                if clogging.is_empty() {
                    return;
                }
                self.shuffle(&mut clogging);
                self.record(format!(
                    "c{c}: FAULT swizzle-clog {} for {}ms",
                    names(&clogging),
                    outage.as_millis()
                ));
                for node in &clogging {
                    net.clog_node(cluster.handles[*node].id());
                    tokio::time::sleep(Duration::from_millis(self.between(SWIZZLE_STEP_MS))).await;
                }
                tokio::time::sleep(outage).await;
                self.shuffle(&mut clogging);
                for node in &clogging {
                    net.unclog_node(cluster.handles[*node].id());
                    self.record(format!("c{c}: HEAL node-{}", node + 1));
                    tokio::time::sleep(Duration::from_millis(self.between(SWIZZLE_STEP_MS))).await;
                }
                arca::coverage::mark("swizzle-clogged");
            }
            FaultKind::LatencySpike => {
                let low = self.between(LATENCY_SPIKE_LOW_MS);
                let high = self.between(LATENCY_SPIKE_HIGH_MS);
                self.record(format!(
                    "c{c}: FAULT every link slowed to {low}-{high}ms for {}ms",
                    outage.as_millis()
                ));
                let before = Self::send_latency(&net);
                net.update_config(|config| {
                    config.send_latency = Duration::from_millis(low)..Duration::from_millis(high);
                });
                tokio::time::sleep(outage).await;
                net.update_config(|config| config.send_latency = before);
                self.record(format!("c{c}: HEAL link latency"));
                arca::coverage::mark("links-slowed");
            }
            FaultKind::SlowNode => {
                let Some(target) = self.random_up_node(cluster, None) else {
                    return;
                };
                let id = cluster.handles[target].id();
                self.record(format!(
                    "c{c}: FAULT slow links of node-{} for {}ms",
                    target + 1,
                    outage.as_millis()
                ));
                let until = now() + outage;
                while now() < until {
                    net.clog_node(id);
                    tokio::time::sleep(Duration::from_millis(self.between(SLOW_NODE_CUT_MS))).await;
                    net.unclog_node(id);
                    tokio::time::sleep(Duration::from_millis(self.between(SLOW_NODE_OPEN_MS)))
                        .await;
                }
                self.record(format!("c{c}: HEAL links of node-{}", target + 1));
                arca::coverage::mark("node-slowed");
            }
            FaultKind::ClockJumpRandom => {
                let Some(target) = self.random_up_node(cluster, None) else {
                    return;
                };
                let clock = &cluster.clocks[target];
                let jump_ms = self.between([1, CLOCK_JUMP_MS_MAX]) as i64
                    * if self.rng.below(2) == 0 { 1 } else { -1 };
                let before_ms = cluster.clock_skew_ms;
                self.record(format!(
                    "c{c}: FAULT wall clock of node-{} jumps {jump_ms:+}ms for {}ms",
                    target + 1,
                    outage.as_millis()
                ));
                clock.set_skew_ms(before_ms + jump_ms);
                tokio::time::sleep(outage).await;
                clock.set_skew_ms(before_ms);
                self.record(format!("c{c}: HEAL wall clock of node-{}", target + 1));
                arca::coverage::mark("clock-jumped");
            }
            FaultKind::LoseFsyncsFollower => {
                let leader = self.leader_index(cluster).await;
                let Some(target) = self.random_up_node(cluster, leader) else {
                    return;
                };
                self.record(format!(
                    "c{c}: FAULT node-{} loses fsyncs for {}ms",
                    target + 1,
                    outage.as_millis()
                ));
                cluster.disks[target].set_lose_fsyncs(true);
                tokio::time::sleep(outage).await;
                let down_for = Duration::from_millis(self.between([100, 1000]));
                self.take_down(cluster, &[target], true, spec.tear, down_for);
                tokio::time::sleep(down_for).await;
                cluster.disks[target].set_lose_fsyncs(false);
                // What the others applied by now may be held by them alone: the target
                // acknowledged it but lost it. The next strike must not take the last
                // copy away before the target has it again (no replicated system survives
                // a quorum member forgetting what it acknowledged while another member
                // is lost), so the strike ends when the target caught up.
                let applied_elsewhere = self.applied_max(cluster, Some(target));
                self.restart(cluster, &[target], unseal_key).await;
                self.await_applied(cluster, target, applied_elsewhere).await;
            }
            FaultKind::DiskFullRandom | FaultKind::DiskFullMajority => {
                let count = match kind {
                    FaultKind::DiskFullRandom => 1,
                    _ => cluster.size() / 2 + 1,
                };
                let targets = self.random_up_nodes(cluster, count);
                if targets.is_empty() {
                    return;
                }
                for target in &targets {
                    // Below the alarm's reserve, so the node refuses at once; the
                    // slack lets some entries from the leader land before ENOSPC.
                    let slack = self.between([0, DISK_FULL_SLACK_BYTES_MAX]);
                    let disk = &cluster.disks[*target];
                    disk.set_capacity_bytes(Some(disk.used_bytes() + slack));
                }
                self.record(format!(
                    "c{c}: FAULT disk full on {} for {}ms",
                    names(&targets),
                    outage.as_millis()
                ));
                tokio::time::sleep(outage).await;
                // One full node must keep serving reads. With a majority full, the
                // followers' log writers wait out ENOSPC and may not answer the leader in
                // time, so a read cannot always be confirmed by a quorum: not required
                // (seed 597432051 of disk-full; docs and the closing note say so).
                if kind == FaultKind::DiskFullRandom {
                    for target in &targets {
                        self.reads_work_on_full_node(cluster, *target, root_token)
                            .await;
                    }
                }
                for target in &targets {
                    cluster.disks[*target].set_capacity_bytes(None);
                }
                self.record(format!("c{c}: HEAL disk space on {}", names(&targets)));
            }
            FaultKind::DiskErrorsRandom => {
                let Some(target) = self.random_up_node(cluster, None) else {
                    return;
                };
                let rates = IoErrorRates {
                    read_per_million: self.between(DISK_READ_ERRORS_PER_MILLION) as u32,
                    write_per_million: self.between(DISK_WRITE_ERRORS_PER_MILLION) as u32,
                };
                self.record(format!(
                    "c{c}: FAULT disk errors on node-{} for {}ms ({} reads, {} writes per million)",
                    target + 1,
                    outage.as_millis(),
                    rates.read_per_million,
                    rates.write_per_million
                ));
                let disk = &cluster.disks[target];
                disk.set_io_errors(Some(rates));
                if self.rng.below(2) == 0 {
                    // An operator restarts the node while the disk still fails: its
                    // start may be refused (it stays down until the repair).
                    tokio::time::sleep(outage / 2).await;
                    self.take_down(cluster, &[target], false, spec.tear, outage / 2);
                    self.restart_on_failing_disk(cluster, target, unseal_key)
                        .await;
                    tokio::time::sleep(outage / 2).await;
                } else {
                    tokio::time::sleep(outage).await;
                }
                disk.set_io_errors(None);
                let stopped = cluster
                    .registry
                    .lock()
                    .unwrap()
                    .get(&target)
                    .and_then(|node| node.raft_failed());
                self.record(format!(
                    "c{c}: HEAL disk of node-{} ({} errors in all{})",
                    target + 1,
                    disk.stats().io_errors_injected,
                    match &stopped {
                        Some(failure) => format!("; it had stopped: {}", failure.reason),
                        None => String::new(),
                    }
                ));
                // The repair: the node is restarted whatever state it is in (stopped,
                // refused to start, or serving on), and must come back. Its process is
                // killed first even when it is down for the harness: a refused or stopped
                // node still holds its ports.
                self.take_down(cluster, &[target], false, spec.tear, Duration::ZERO);
                self.restart(cluster, &[target], unseal_key).await;
            }
            FaultKind::PauseLeader
            | FaultKind::IsolateLeaderFromPeers
            | FaultKind::PauseAndIsolateLeader => {
                let Some(target) = self.leader_or_random(cluster).await else {
                    return;
                };
                let pause = kind != FaultKind::IsolateLeaderFromPeers;
                let isolate = kind != FaultKind::PauseLeader;
                let id = cluster.handles[target].id();
                let peers: Vec<_> = (0..cluster.size())
                    .filter(|node| *node != target)
                    .map(|node| cluster.handles[node].id())
                    .collect();
                self.record(format!(
                    "c{c}: FAULT {}{}node-{} for {}ms",
                    if pause { "pause " } else { "" },
                    if isolate { "isolate from peers " } else { "" },
                    target + 1,
                    outage.as_millis()
                ));
                if isolate {
                    for peer in &peers {
                        net.clog_link(id, *peer);
                        net.clog_link(*peer, id);
                    }
                }
                if pause {
                    Handle::current().pause(id);
                }
                tokio::time::sleep(outage).await;
                if pause {
                    Handle::current().resume(id);
                    self.record(format!("c{c}: RESUME node-{}", target + 1));
                }
                if isolate {
                    if pause {
                        // Resumed but still cut off: it answers from what it had.
                        tokio::time::sleep(Duration::from_millis(self.between([200, 2000]))).await;
                    }
                    for peer in &peers {
                        net.unclog_link(id, *peer);
                        net.unclog_link(*peer, id);
                    }
                    self.record(format!("c{c}: HEAL node-{} and its peers", target + 1));
                }
            }
            FaultKind::StepDownLeader => {
                let until = now() + outage;
                while now() < until {
                    if let Some(leader) = self.leader_index(cluster).await {
                        let answer = call(
                            &cluster.api_addr(leader),
                            Method::PUT,
                            "sys/step-down",
                            Some(root_token),
                            None,
                        )
                        .await
                        .map(|(status, _)| status);
                        self.record(format!(
                            "c{c}: FAULT step down node-{} -> {answer:?}",
                            leader + 1
                        ));
                        if self.rng.below(2) == 0 {
                            // Its hand-over goes out, but it hears nothing back: it
                            // learns of no newer term while the others elect and commit,
                            // and its clients still reach it.
                            let id = cluster.handles[leader].id();
                            let peers: Vec<_> = (0..cluster.size())
                                .filter(|node| *node != leader)
                                .map(|node| cluster.handles[node].id())
                                .collect();
                            let deaf = Duration::from_millis(self.between(STEP_DOWN_DEAF_MS));
                            self.record(format!(
                                "c{c}: FAULT node-{} hears no peer for {}ms",
                                leader + 1,
                                deaf.as_millis()
                            ));
                            for peer in &peers {
                                net.clog_link(*peer, id);
                            }
                            self.probe_old_leader(cluster, leader, deaf, root_token)
                                .await;
                            for peer in &peers {
                                net.unclog_link(*peer, id);
                            }
                            self.record(format!("c{c}: HEAL node-{}", leader + 1));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(self.between(STEP_DOWN_INTERVAL_MS)))
                        .await;
                }
            }
            FaultKind::SealLeader => {
                let Some(leader) = self.leader_index(cluster).await else {
                    return;
                };
                let id = cluster.handles[leader].id();
                let peers: Vec<_> = (0..cluster.size())
                    .filter(|node| *node != leader)
                    .map(|node| cluster.handles[node].id())
                    .collect();
                let deaf = self.rng.below(2) == 0;
                if deaf {
                    for peer in &peers {
                        net.clog_link(*peer, id);
                    }
                }
                let address = cluster.api_addr(leader);
                let sealed = || {
                    cluster
                        .registry
                        .lock()
                        .unwrap()
                        .get(&leader)
                        .is_some_and(|node| node.core().is_sealed())
                };
                let seal = call(&address, Method::PUT, "sys/seal", Some(root_token), None);
                let unseal = async {
                    let until = now() + SEAL_UNSEAL_RACE_WAIT;
                    while !sealed() && now() < until {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    call(
                        &address,
                        Method::PUT,
                        "sys/unseal",
                        None,
                        Some(&json!({"key": unseal_key})),
                    )
                    .await
                };
                let (seal, unseal) = tokio::join!(seal, unseal);
                self.record(format!(
                    "c{c}: FAULT seal node-{}{} -> {:?}, unseal at once -> {:?}",
                    leader + 1,
                    if deaf { " (deaf to its peers)" } else { "" },
                    seal.map(|(status, _)| status),
                    unseal.map(|(status, body)| (status, body["sealed"].clone())),
                ));
                tokio::time::sleep(outage).await;
                if deaf {
                    for peer in &peers {
                        net.unclog_link(*peer, id);
                    }
                    self.record(format!("c{c}: HEAL node-{}", leader + 1));
                }
                // A share that did not unseal it (refused, or its call timed out while
                // the seal held it back) goes in again.
                if !self.unseal(cluster, leader, unseal_key).await {
                    self.liveness_failure(
                        cluster,
                        format!("node-{} did not unseal after its seal", leader + 1),
                    );
                }
            }
            FaultKind::PartitionClusters
            | FaultKind::Swarm
            | FaultKind::ReactivateSecondary
            | FaultKind::FilterChange
            | FaultKind::Rotate
            | FaultKind::Failover
            | FaultKind::SplitBrain => {}
        }
    }

    /// For `within`: write the probe register through a random node, then read it back
    /// through `old_leader`, which stepped down and hears nothing from its peers. It must
    /// not answer the read from a state older than the write (the oracle judges it like
    /// every read).
    async fn probe_old_leader(
        &self,
        cluster: &Cluster,
        old_leader: usize,
        within: Duration,
        token: &str,
    ) {
        const PROBE_CLIENT: usize = usize::MAX - 1;
        let until = now() + within;
        let mut attempt = 0usize;
        while now() < until {
            attempt += 1;
            // Unique in the run (the oracle needs one write per value): the strikes of a
            // fault each count their attempts from one.
            let value = format!("hand-over-{}-{attempt}", self.now_us());
            self.write(
                cluster,
                PROBE_CLIENT,
                Phase::Faults,
                "kv/probe",
                Method::PUT,
                Some(json!({ "value": value })),
                Some(value),
                None,
                token,
            )
            .await;
            self.read_via(
                cluster,
                PROBE_CLIENT,
                Phase::Faults,
                "kv/probe",
                token,
                old_leader,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(self.between([5, 40]))).await;
        }
    }

    /// A node whose disk is full still serves reads: a register read through it gets a
    /// definite answer within a few tries (the oracle checks the value like any read).
    /// Not checked in replication fleets, whose reads are routed by role, not by node.
    async fn reads_work_on_full_node(&self, cluster: &Cluster, target: usize, token: &str) {
        if self.scenario.replication.is_some() {
            return;
        }
        let registers = self.registers();
        let register = registers[self.rng.below(registers.len() as u64) as usize].clone();
        for _ in 0..FULL_NODE_READ_ATTEMPTS_MAX {
            let answer = self
                .read_via(cluster, 0, Phase::Faults, &register, token, target)
                .await;
            if answer.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.violation(
            cluster,
            format!(
                "node-{} answered no read of {register} while its disk was full",
                target + 1
            ),
        );
    }

    /// Kill `targets` (a process kill keeps unsynced data; a power loss drops it and may
    /// tear the last write).
    fn take_down(
        &self,
        cluster: &Cluster,
        targets: &[usize],
        power_loss: bool,
        tear: bool,
        outage: Duration,
    ) {
        let names: Vec<String> = targets
            .iter()
            .map(|node| format!("node-{}", node + 1))
            .collect();
        self.record(format!(
            "c{}: FAULT {} {} for {}ms",
            cluster.index,
            if power_loss {
                format!("power loss (tear={tear}) on")
            } else {
                "process kill of".to_string()
            },
            names.join(","),
            outage.as_millis()
        ));
        for target in targets {
            Handle::current().kill(cluster.handles[*target].id());
            cluster.registry.lock().unwrap().remove(target);
            cluster.down.lock().unwrap()[*target] = true;
            if power_loss {
                cluster.disks[*target].crash(tear);
            }
        }
    }

    /// Restart `targets` together, then unseal each.
    async fn restart(&self, cluster: &Cluster, targets: &[usize], unseal_key: &str) {
        for target in targets {
            Handle::current().restart(cluster.handles[*target].id());
            self.record(format!("c{}: RESTART node-{}", cluster.index, target + 1));
        }
        for target in targets {
            if self.unseal(cluster, *target, unseal_key).await {
                cluster.down.lock().unwrap()[*target] = false;
            } else {
                self.liveness_failure(
                    cluster,
                    format!("node-{} did not unseal after restart", target + 1),
                );
            }
        }
    }

    /// Restart `target` while its disk fails: it is unsealed if it starts and stays up,
    /// and left down (for the repair to restart) if its start is refused or it stops.
    async fn restart_on_failing_disk(&self, cluster: &Cluster, target: usize, unseal_key: &str) {
        cluster.start_refusals.lock().unwrap().remove(&target);
        Handle::current().restart(cluster.handles[target].id());
        self.record(format!(
            "c{}: RESTART node-{} on a failing disk",
            cluster.index,
            target + 1
        ));
        let address = cluster.api_addr(target);
        let deadline = now() + SETUP_TIMEOUT;
        while now() < deadline {
            if let Some(error) = cluster.start_refusals.lock().unwrap().get(&target) {
                self.record(format!(
                    "c{}: node-{} refused to start: {error}",
                    cluster.index,
                    target + 1
                ));
                return;
            }
            let failure = cluster
                .registry
                .lock()
                .unwrap()
                .get(&target)
                .and_then(|node| node.raft_failed());
            if let Some(failure) = failure {
                self.record(format!(
                    "c{}: node-{} stopped again: {}",
                    cluster.index,
                    target + 1,
                    failure.reason
                ));
                return;
            }
            if let Ok((200, body)) = call(
                &address,
                Method::PUT,
                "sys/unseal",
                None,
                Some(&json!({"key": unseal_key})),
            )
            .await
                && body["sealed"] == Value::Bool(false)
            {
                self.record(format!("c{}: unsealed node-{}", cluster.index, target + 1));
                cluster.down.lock().unwrap()[target] = false;
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.record(format!(
            "c{}: node-{} did not come up on its failing disk",
            cluster.index,
            target + 1
        ));
    }

    async fn recover(&self, cluster: &Cluster, unseal_key: &str) {
        let net = NetSim::current();
        for handle in &cluster.handles {
            net.unclog_node(handle.id());
        }
        let down: Vec<usize> = {
            let down = cluster.down.lock().unwrap();
            (0..down.len()).filter(|node| down[*node]).collect()
        };
        if !down.is_empty() {
            self.restart(cluster, &down, unseal_key).await;
        }
    }

    /// After healing: a leader is known and a probe write is acknowledged within
    /// [`LIVENESS_TIMEOUT`]. The probe is an ordinary write of a register of its own.
    async fn await_healthy(&self, cluster: &Cluster, token: &str) -> bool {
        let deadline = now() + LIVENESS_TIMEOUT;
        let mut attempt = 0usize;
        while now() < deadline {
            attempt += 1;
            let value = format!("probe-{attempt}");
            let body = json!({ "value": value });
            let before = cluster.history.lock().unwrap().acknowledged_writes();
            self.write(
                cluster,
                usize::MAX,
                Phase::Final,
                "kv/probe",
                Method::PUT,
                Some(body),
                Some(value),
                None,
                token,
            )
            .await;
            if cluster.history.lock().unwrap().acknowledged_writes() > before
                && self.every_node_knows_the_leader(cluster)
            {
                self.record(format!(
                    "c{}: healthy after {attempt} probes",
                    cluster.index
                ));
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.liveness_failure(
            cluster,
            format!(
                "no write acknowledged within {}s after healing",
                LIVENESS_TIMEOUT.as_secs()
            ),
        );
        false
    }

    /// Healed means every node of the cluster is up, unsealed and knows the active node
    /// (a node back from a restart that has not yet heard from the leader answers 503, as
    /// a Vault standby does; the measured phase starts once no node is in that state).
    ///
    /// Every node must name the same leader in the same term, and that node must lead: a
    /// node just back from a restart names the leader of its persisted vote until it
    /// hears the current one, and forwards to a node that is no longer active (seed
    /// 7078 of swarm, with randomized timers).
    fn every_node_knows_the_leader(&self, cluster: &Cluster) -> bool {
        let registry = cluster.registry.lock().unwrap();
        let views: Vec<(Option<String>, u64, bool, bool)> = registry
            .values()
            .map(|node| {
                let core = node.core();
                let raft = core.cluster();
                (
                    raft.leader().map(|leader| leader.node_id),
                    raft.indexes().term,
                    raft.is_leader(),
                    core.is_sealed(),
                )
            })
            .collect();
        // Healed also means caught up: a node restarted behind the others serves once
        // it has applied what the leader committed (until then it cannot even prove
        // itself to its peers if the CA arrived after its last applied entry).
        let leader_committed = registry
            .values()
            .map(|node| node.core().cluster())
            .find(|raft| raft.is_leader())
            .map(|raft| raft.indexes().committed);
        let caught_up = leader_committed.is_some_and(|committed| {
            registry
                .values()
                .all(|node| node.core().cluster().indexes().applied >= committed)
        });
        caught_up
            && registry.len() == cluster.size()
            && views
                .iter()
                .all(|(leader, _, _, sealed)| leader.is_some() && !sealed)
            && views
                .windows(2)
                .all(|pair| pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1)
            && views.iter().filter(|(_, _, leads, _)| *leads).count() == 1
    }

    /// Among the running nodes other than `excluding`: the highest Raft term, and
    /// whether a node of that term leads (read in process: no call that would change
    /// the run).
    fn highest_term_leading(&self, cluster: &Cluster, excluding: usize) -> Option<(u64, bool)> {
        let registry = cluster.registry.lock().unwrap();
        registry
            .iter()
            .filter(|(node, _)| **node != excluding)
            .map(|(_, started)| {
                let raft = started.core().cluster();
                (raft.indexes().term, raft.is_leader())
            })
            .max()
    }

    /// The highest applied index among the running nodes other than `excluding`.
    fn applied_max(&self, cluster: &Cluster, excluding: Option<usize>) -> u64 {
        let registry = cluster.registry.lock().unwrap();
        registry
            .iter()
            .filter(|(node, _)| Some(**node) != excluding)
            .map(|(_, started)| started.core().cluster().indexes().applied)
            .max()
            .unwrap_or(0)
    }

    /// Wait (at most `CATCH_UP_AFTER_LOST_FSYNCS_TIMEOUT`) until `target` applied `index`.
    async fn await_applied(&self, cluster: &Cluster, target: usize, index: u64) {
        let deadline = now() + CATCH_UP_AFTER_LOST_FSYNCS_TIMEOUT;
        while now() < deadline {
            let applied = cluster
                .registry
                .lock()
                .unwrap()
                .get(&target)
                .map(|started| started.core().cluster().indexes().applied);
            if applied.is_some_and(|applied| applied >= index) {
                self.record(format!(
                    "c{}: node-{} caught up to {index}",
                    cluster.index,
                    target + 1
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.record(format!(
            "c{}: node-{} did not catch up to {index}",
            cluster.index,
            target + 1
        ));
    }

    /// Every node's applied index and state digest, into the trace (and so the hash).
    fn record_digests(&self, cluster: &Cluster) -> Vec<(usize, (u64, String))> {
        let states: Vec<(usize, (u64, String))> = {
            let registry = cluster.registry.lock().unwrap();
            registry
                .iter()
                .map(|(node, started)| (*node, started.state_digest()))
                .collect()
        };
        let summary: Vec<String> = states
            .iter()
            .map(|(node, (index, digest))| {
                format!(
                    "node-{}@{index}:{}",
                    node + 1,
                    &digest[..12.min(digest.len())]
                )
            })
            .collect();
        self.record(format!("c{}: digests {}", cluster.index, summary.join(" ")));
        states
    }

    /// Every register the workload uses.
    fn registers(&self) -> Vec<String> {
        let mut registers: Vec<String> = Vec::new();
        for key in 0..self.scenario.workload.keys {
            registers.push(format!("kv/k{key}"));
            registers.push(format!("kv2/k{key}"));
            if self.scenario.replication.is_some() {
                registers.push(format!("local/k{key}"));
            }
        }
        if self.scenario.workload.mix.mount > 0 {
            registers.extend((0..self.scenario.workload.clients).map(mount_register));
        }
        registers
    }

    async fn check(&self, cluster: &Cluster, root_token: &str) {
        self.converge(cluster).await;
        self.check_mount_storage(cluster).await;
        self.present_ended_tokens(cluster).await;
        self.final_reads(cluster, root_token).await;
    }

    /// A disabled mount leaves nothing behind: once the cluster has converged and its
    /// active node has had [`TAINTED_MOUNTS_FINISH_TIMEOUT`] to finish interrupted
    /// disables, no mount entry is still tainted, and no mount data lies under a uuid
    /// that has no entry (data nothing serves, deletes or ever revisits).
    async fn check_mount_storage(&self, cluster: &Cluster) {
        let deadline = now() + TAINTED_MOUNTS_FINISH_TIMEOUT;
        loop {
            let nodes: Vec<_> = cluster.registry.lock().unwrap().values().cloned().collect();
            let findings = nodes
                .iter()
                .find_map(|started| mount_storage_findings(started.core().barrier()).ok());
            match findings {
                Some(findings) if findings.orphaned.is_empty() && findings.tainted.is_empty() => {
                    return;
                }
                Some(findings) if now() > deadline => {
                    if !findings.orphaned.is_empty() {
                        self.violation(
                            cluster,
                            format!(
                                "mount data outlived its entry (a disable left it behind): {:?}",
                                findings.orphaned
                            ),
                        );
                    }
                    if !findings.tainted.is_empty() {
                        self.liveness_failure(
                            cluster,
                            format!("disables never finished: {:?}", findings.tainted),
                        );
                    }
                    return;
                }
                None if now() > deadline => {
                    self.liveness_failure(
                        cluster,
                        "no node's storage could be read for the mount check".into(),
                    );
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Convergence: the same applied index and identical state on every node.
    async fn converge(&self, cluster: &Cluster) {
        let deadline = now() + CONVERGENCE_TIMEOUT;
        loop {
            let states = self.record_digests(cluster);
            let all_up = states.len() == cluster.size();
            if all_up && states.windows(2).all(|pair| pair[0].1 == pair[1].1) {
                self.record(format!(
                    "c{}: converged at index {}",
                    cluster.index, states[0].1.0
                ));
                break;
            }
            // Nodes at the same applied index must hold the same bytes, converged or not.
            let mut by_index: BTreeMap<u64, &str> = BTreeMap::new();
            let diverged = states.iter().find(|(_, (index, digest))| {
                by_index
                    .insert(*index, digest.as_str())
                    .is_some_and(|other| other != digest.as_str())
            });
            if let Some((node, (index, _))) = diverged {
                self.violation(
                    cluster,
                    format!(
                        "node-{} diverged: a different state at applied index {index}",
                        node + 1
                    ),
                );
                break;
            }
            if now() > deadline {
                self.liveness_failure(cluster, format!("nodes did not converge: {states:?}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn final_reads(&self, cluster: &Cluster, root_token: &str) {
        // Final reads of every register, through random nodes: ordinary reads to the
        // oracle, so a lost acknowledged write shows as a stale read.
        let mut registers = self.registers();
        registers.push("kv/probe".to_string());
        for register in &registers {
            let mut answered = false;
            for _ in 0..FINAL_READ_ATTEMPTS_MAX {
                let target = self.rng.below(cluster.size() as u64) as usize;
                if self
                    .read_via(
                        cluster,
                        usize::MAX,
                        Phase::Final,
                        register,
                        root_token,
                        target,
                    )
                    .await
                    .is_some()
                {
                    answered = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if !answered {
                self.liveness_failure(cluster, format!("could not read {register} after recovery"));
            }
        }
        let history = cluster.history.lock().unwrap().clone();
        for violation in history.check() {
            self.violation(cluster, violation);
        }
        let liveness = history.liveness();
        let share_min = self.scenario.liveness.ack_share_min;
        if liveness.healed_writes > 0
            && (liveness.healed_acknowledged as f64) < share_min * liveness.healed_writes as f64
        {
            self.liveness_failure(
                cluster,
                format!(
                    "only {} of {} writes acknowledged in the healed phase (at least {:.0}% required)",
                    liveness.healed_acknowledged,
                    liveness.healed_writes,
                    share_min * 100.0
                ),
            );
        }
        self.record(format!(
            "c{}: checks done: {} writes ({} acknowledged), {} reads",
            cluster.index,
            history.writes.len(),
            history.acknowledged_writes(),
            history.reads.len()
        ));
    }
}

/// Simulated time now. The harness runs inside madsim, whose clock is virtual: the rule
/// against reading `Instant::now` protects server code, which must read the seam's
/// clock; here there is nothing else to read.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// Every (from, to) pair of node ids between two clusters, both directions.
fn cross_links(
    first: &Cluster,
    second: &Cluster,
) -> Vec<(madsim::task::NodeId, madsim::task::NodeId)> {
    let mut links = Vec::new();
    for a in first
        .handles
        .iter()
        .chain(std::iter::once(&first.client_node))
    {
        for b in second
            .handles
            .iter()
            .chain(std::iter::once(&second.client_node))
        {
            links.push((a.id(), b.id()));
            links.push((b.id(), a.id()));
        }
    }
    links
}

/// What a write's answer says of its effect.
fn classify_write(result: &Result<(u16, Value), String>) -> WriteOutcome {
    match result {
        Ok((200..=299, _)) => WriteOutcome::Ok,
        // A clear refusal: the write must never take effect. Timeouts, precondition
        // and rate answers say nothing definite.
        Ok((status, _)) if (400..500).contains(status) && !matches!(status, 408 | 412 | 429) => {
            WriteOutcome::Refused
        }
        // The disk-full alarm refuses before proposing: as definite as a 4xx.
        Ok((500, body)) if refused_for_full_storage(body) => WriteOutcome::Refused,
        _ => WriteOutcome::Unknown,
    }
}

/// The register of client `client`'s own mount.
fn mount_register(client: usize) -> String {
    format!("m{client}/k")
}

/// What one client keeps between its steps of the mount, token and lease workload.
#[derive(Debug, Default)]
struct ClientSteps {
    /// Whether this client's mount is enabled, as far as it knows.
    mount_enabled: bool,
    /// Whether its last disable was acknowledged (a read must then answer 404).
    mount_disable_acknowledged: bool,
    /// Tokens created and not yet revoked; tokens whose revocation was asked for; lease
    /// tokens (label, secret), each at most `CLIENT_TOKENS_MAX`.
    live_tokens: Vec<(String, String)>,
    revoked_tokens: Vec<(String, String)>,
    lease_tokens: Vec<(String, String)>,
}

/// Whether an answer is the disk-full alarm's refusal (500, "storage is full: ...").
fn refused_for_full_storage(body: &Value) -> bool {
    body["errors"][0]
        .as_str()
        .is_some_and(|message| message.starts_with("storage is full: "))
}

/// `node-1, node-3`.
fn names(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|node| format!("node-{}", node + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(result: &Result<(u16, Value), String>) -> String {
    match result {
        // A server error says why, so a failed run's trace explains itself.
        Ok((status, body)) if *status >= 500 || *status == 403 => {
            match body["errors"][0].as_str() {
                Some(reason) => format!("{status} ({reason})"),
                None => status.to_string(),
            }
        }
        Ok((status, _)) => status.to_string(),
        Err(error) => format!("error ({})", error.split(':').next().unwrap_or("")),
    }
}

/// What one node's storage says about its mounts (see `Simulation::check_mount_storage`).
struct MountStorageFindings {
    /// Data roots below which a uuid has no entry in its table: `logical/<uuid>/`, ...
    orphaned: Vec<String>,
    /// Entries of disables not finished.
    tainted: Vec<String>,
}

fn mount_storage_findings(
    barrier: &arca::barrier::Barrier,
) -> Result<MountStorageFindings, arca::barrier::BarrierError> {
    use arca::storage::{TableKind, key_space};
    let mut findings = MountStorageFindings {
        orphaned: Vec::new(),
        tainted: Vec::new(),
    };
    for kind in [TableKind::Secrets, TableKind::Auth] {
        for local in [false, true] {
            let table = key_space::mount_table_prefix(kind, local);
            let uuids = barrier.list(table)?;
            for uuid in &uuids {
                let entry = barrier.get(&key_space::mount_entry(kind, local, uuid))?;
                let tainted = entry
                    .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                    .is_some_and(|entry| entry["tainted"] == Value::Bool(true));
                if tainted {
                    findings
                        .tainted
                        .push(key_space::mount_entry(kind, local, uuid));
                }
            }
            let root = key_space::mount_data_root(kind, local);
            for folder in barrier.list(root)? {
                let uuid = folder.trim_end_matches('/');
                if !uuids.iter().any(|known| known == uuid) {
                    findings.orphaned.push(format!("{root}{folder}"));
                }
            }
        }
    }
    Ok(findings)
}
