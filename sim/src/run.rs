//! One simulated run: a cluster of real Arca nodes on madsim's network and disks, a
//! workload with an oracle, a fault schedule drawn from the seed, and the checks.
//!
//! Invariants checked at the end, after every fault is healed and every node is back:
//! - no acknowledged write is lost: each key holds its last acknowledged value or a
//!   value written after it whose outcome the client never learned;
//! - every node converged: the same applied index and byte-identical state machines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arca::env::{Clock, Env, SharedRng, SimDisk};
use arca::server::{Node, NodeConfig};
use http::Method;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle, Runtime};
use serde_json::{Value, json};

use crate::client::call;
use crate::scenario::{FaultKind, FaultSpec, Scenario};
use crate::trace::Trace;

/// Virtual time a run may take before it is declared stuck.
pub const RUN_TIME_LIMIT: Duration = Duration::from_secs(1200);
/// How long the cluster gets to converge after the last fault.
pub const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long setup steps (init, unseal, join) may retry.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The most writes a client makes while faults are still pending.
pub const WRITES_WHILE_FAULTS_MAX: usize = 5_000;

pub struct Outcome {
    pub trace_hash: String,
    pub violations: Vec<String>,
    pub trace_tail: Vec<String>,
    pub acknowledged_writes: usize,
}

pub fn run(scenario: &Scenario, seed: u64, verbose: bool) -> Outcome {
    let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.set_time_limit(RUN_TIME_LIMIT);
    let scenario = scenario.clone();
    runtime.block_on(async move { Simulation::new(scenario, seed, verbose).run().await })
}

/// A write attempt and what the client learned of it.
#[derive(Debug, Clone)]
struct Attempt {
    value: String,
    acknowledged: bool,
}

type Registry = Arc<Mutex<BTreeMap<usize, Arc<Node>>>>;

struct Fleet {
    handles: Vec<NodeHandle>,
    disks: Vec<SimDisk>,
    registry: Registry,
    down: Mutex<Vec<bool>>,
}

impl Fleet {
    fn api_addr(index: usize) -> String {
        format!("http://10.0.0.{}:8200", index + 1)
    }

    fn index_of(api_addr: &str) -> Option<usize> {
        (0..crate::scenario::NODES_MAX)
            .find(|index| Self::api_addr(*index) == api_addr.trim_end_matches('/'))
    }
}

struct Simulation {
    scenario: Scenario,
    rng: SharedRng,
    trace: Arc<Mutex<Trace>>,
    start: Instant,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Simulation {
    fn new(scenario: Scenario, seed: u64, verbose: bool) -> Self {
        Self {
            scenario,
            rng: SharedRng::from_u64(seed ^ 0x5eed),
            trace: Arc::new(Mutex::new(Trace::new(verbose))),
            start: Instant::now(),
            violations: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn record(&self, event: impl AsRef<str>) {
        record(&self.trace, self.start, event);
    }

    fn violation(&self, message: String) {
        self.record(format!("VIOLATION {message}"));
        self.violations.lock().unwrap().push(message);
    }

    fn between(&self, range: [u64; 2]) -> u64 {
        range[0] + self.rng.below(range[1] - range[0] + 1)
    }

    async fn run(self) -> Outcome {
        let fleet = Arc::new(self.build_fleet());
        let client = Handle::current()
            .create_node()
            .name("client")
            .ip("10.0.1.1".parse().unwrap())
            .build();
        let this = Arc::new(self);
        let driver = this.clone();
        let fleet_for_client = fleet.clone();
        let acknowledged = client
            .spawn(async move { driver.drive(fleet_for_client).await })
            .await
            .unwrap_or(0);
        let trace = this.trace.lock().unwrap();
        Outcome {
            trace_hash: trace.hash(),
            violations: this.violations.lock().unwrap().clone(),
            trace_tail: trace.tail().to_vec(),
            acknowledged_writes: acknowledged,
        }
    }

    fn build_fleet(&self) -> Fleet {
        let handle = Handle::current();
        let count = self.scenario.nodes;
        let registry: Registry = Arc::new(Mutex::new(BTreeMap::new()));
        let mut handles = Vec::new();
        let mut disks = Vec::new();
        for index in 0..count {
            let disk = SimDisk::new(self.rng.next_u64());
            disks.push(disk.clone());
            let config = NodeConfig {
                node_id: format!("node-{}", index + 1),
                api_listen: format!("10.0.0.{}:8200", index + 1).parse().unwrap(),
                cluster_listen: format!("10.0.0.{}:8201", index + 1).parse().unwrap(),
                api_addr: Fleet::api_addr(index),
                cluster_addr: format!("https://10.0.0.{}:8201", index + 1),
                cluster_name: Some("sim".into()),
                retry_join: (0..count)
                    .filter(|other| *other != index)
                    .map(Fleet::api_addr)
                    .collect(),
                raft: Default::default(),
            };
            let registry = registry.clone();
            let node = handle
                .create_node()
                .name(format!("node-{}", index + 1))
                .ip(format!("10.0.0.{}", index + 1).parse().unwrap())
                .init(move || {
                    let disk = disk.clone();
                    let config = config.clone();
                    let registry = registry.clone();
                    async move {
                        let env = Env {
                            clock: Clock::system(),
                            rng: SharedRng::from_entropy(),
                            disk: Arc::new(disk),
                        };
                        match Node::start(
                            env,
                            config,
                            std::sync::Arc::new(arca::env::MemoryLogFiles::new()),
                        )
                        .await
                        {
                            Ok(node) => {
                                registry.lock().unwrap().insert(index, Arc::new(node));
                                std::future::pending::<()>().await;
                            }
                            Err(error) => panic!("node-{} failed to start: {error}", index + 1),
                        }
                    }
                })
                .build();
            handles.push(node);
        }
        Fleet {
            handles,
            disks,
            registry,
            down: Mutex::new(vec![false; count]),
        }
    }

    /// Setup, workload with faults, recovery, checks. Returns the acknowledged writes.
    async fn drive(self: Arc<Self>, fleet: Arc<Fleet>) -> usize {
        let Some((unseal_key, root_token)) = self.setup(&fleet).await else {
            return 0;
        };
        let oracle: Arc<Mutex<BTreeMap<String, Vec<Attempt>>>> =
            Arc::new(Mutex::new(BTreeMap::new()));
        let faults_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for client in 0..self.scenario.workload.clients {
            let this = self.clone();
            let oracle = oracle.clone();
            let token = root_token.clone();
            let faults_done = faults_done.clone();
            let nodes = self.scenario.nodes;
            clients.push(tokio::spawn(async move {
                this.client_loop(client, nodes, token, oracle, faults_done)
                    .await
            }));
        }
        let faults: Vec<FaultSpec> = self.scenario.faults.clone();
        for spec in &faults {
            for _ in 0..spec.count {
                tokio::time::sleep(Duration::from_millis(self.between([300, 2000]))).await;
                self.inject(&fleet, spec, &unseal_key, &root_token).await;
            }
        }
        faults_done.store(true, std::sync::atomic::Ordering::SeqCst);
        for client in clients {
            let _ = client.await;
        }
        self.record("workload finished");
        self.recover(&fleet, &unseal_key).await;
        self.check(&fleet, &root_token, &oracle).await;
        oracle
            .lock()
            .unwrap()
            .values()
            .map(|attempts| {
                attempts
                    .iter()
                    .filter(|attempt| attempt.acknowledged)
                    .count()
            })
            .sum()
    }

    async fn setup(&self, fleet: &Fleet) -> Option<(String, String)> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let first = Fleet::api_addr(0);
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
            if Instant::now() > deadline {
                self.violation("setup: sys/init never succeeded".into());
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.record("initialized node-1");
        for index in 0..self.scenario.nodes {
            if !self.unseal(index, &unseal_key).await {
                self.violation(format!("setup: node-{} never unsealed", index + 1));
                return None;
            }
        }
        if !self.wait_for_voters(fleet, &root_token).await {
            return None;
        }
        let mounted = self
            .retry_call(|address| {
                let token = root_token.clone();
                async move {
                    call(
                        &address,
                        Method::POST,
                        "sys/mounts/kv",
                        Some(&token),
                        Some(&json!({"type": "kv"})),
                    )
                    .await
                }
            })
            .await;
        if mounted != Some(204) {
            self.violation(format!("setup: mounting kv/ answered {mounted:?}"));
            return None;
        }
        self.record("setup complete");
        Some((unseal_key, root_token))
    }

    /// Retry a call against random nodes until it gets a definite answer.
    async fn retry_call<F, Fut>(&self, make: F) -> Option<u16>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<(u16, Value), String>>,
    {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while Instant::now() < deadline {
            let index = self.rng.below(self.scenario.nodes as u64) as usize;
            if let Ok((status, _)) = make(Fleet::api_addr(index)).await
                && status < 500
            {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    async fn unseal(&self, index: usize, key: &str) -> bool {
        let address = Fleet::api_addr(index);
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while Instant::now() < deadline {
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
                self.record(format!("unsealed node-{}", index + 1));
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    async fn wait_for_voters(&self, fleet: &Fleet, root_token: &str) -> bool {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok((200, body)) = call(
                &Fleet::api_addr(0),
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
                if voters == fleet.handles.len() {
                    self.record(format!("{voters} voters"));
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.violation("setup: the cluster never reached full membership".into());
        false
    }

    async fn client_loop(
        self: Arc<Self>,
        client: usize,
        nodes: usize,
        token: String,
        oracle: Arc<Mutex<BTreeMap<String, Vec<Attempt>>>>,
        faults_done: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let workload = self.scenario.workload.clone();
        let mut written = 0usize;
        loop {
            let done = faults_done.load(std::sync::atomic::Ordering::SeqCst);
            if (written >= workload.writes_per_client && done) || written >= WRITES_WHILE_FAULTS_MAX
            {
                break;
            }
            let key = format!(
                "c{client}-k{}",
                self.rng.below(workload.keys_per_client as u64)
            );
            let value = format!("c{client}-n{written}");
            let target = self.rng.below(nodes as u64) as usize;
            let result = call(
                &Fleet::api_addr(target),
                Method::PUT,
                &format!("kv/{key}"),
                Some(&token),
                Some(&json!({ "value": value })),
            )
            .await;
            let acknowledged = matches!(result, Ok((200 | 204, _)));
            let outcome = match &result {
                Ok((status, _)) => status.to_string(),
                Err(error) => format!("error ({})", error.split(':').next().unwrap_or("")),
            };
            self.record(format!(
                "client {client} put {key}={value} via node-{} -> {outcome}",
                target + 1
            ));
            oracle
                .lock()
                .unwrap()
                .entry(key)
                .or_default()
                .push(Attempt {
                    value,
                    acknowledged,
                });
            written += 1;
            tokio::time::sleep(Duration::from_millis(self.between(workload.pause_ms))).await;
        }
    }

    /// The node most up nodes name as leader (a node that just restarted may still
    /// name itself from its persisted vote until it hears the new term).
    async fn leader_index(&self, fleet: &Fleet) -> Option<usize> {
        let down = fleet.down.lock().unwrap().clone();
        let mut votes = vec![0usize; down.len()];
        for (index, is_down) in down.iter().enumerate() {
            if *is_down {
                continue;
            }
            if let Ok((200, body)) = call(
                &Fleet::api_addr(index),
                Method::GET,
                "sys/leader",
                None,
                None,
            )
            .await
                && let Some(address) = body["leader_address"].as_str()
                && let Some(leader) = Fleet::index_of(address)
                && !down[leader]
            {
                votes[leader] += 1;
            }
        }
        let (leader, count) = votes
            .iter()
            .enumerate()
            .max_by_key(|(index, count)| (**count, std::cmp::Reverse(*index)))?;
        (*count > 0).then_some(leader)
    }

    fn random_up_node(&self, fleet: &Fleet, excluding: Option<usize>) -> Option<usize> {
        let down = fleet.down.lock().unwrap().clone();
        let candidates: Vec<usize> = (0..down.len())
            .filter(|index| !down[*index] && Some(*index) != excluding)
            .collect();
        (!candidates.is_empty())
            .then(|| candidates[self.rng.below(candidates.len() as u64) as usize])
    }

    async fn inject(&self, fleet: &Fleet, spec: &FaultSpec, unseal_key: &str, _root_token: &str) {
        let outage = Duration::from_millis(self.between(spec.outage_ms));
        let handle = Handle::current();
        let net = NetSim::current();
        match spec.kind {
            FaultKind::CrashLeader | FaultKind::CrashRandom => {
                let target = match spec.kind {
                    FaultKind::CrashLeader => self.leader_index(fleet).await,
                    _ => None,
                }
                .or_else(|| self.random_up_node(fleet, None));
                let Some(target) = target else { return };
                self.crash(fleet, target, spec.tear, outage).await;
                self.restart(fleet, target, unseal_key).await;
            }
            FaultKind::PartitionLeader | FaultKind::PartitionRandom => {
                let target = match spec.kind {
                    FaultKind::PartitionLeader => self.leader_index(fleet).await,
                    _ => None,
                }
                .or_else(|| self.random_up_node(fleet, None));
                let Some(target) = target else { return };
                let id = fleet.handles[target].id();
                self.record(format!(
                    "FAULT partition node-{} for {}ms",
                    target + 1,
                    outage.as_millis()
                ));
                net.clog_node(id);
                tokio::time::sleep(outage).await;
                net.unclog_node(id);
                self.record(format!("HEAL node-{}", target + 1));
            }
            FaultKind::ClogLinkRandom => {
                let Some(from) = self.random_up_node(fleet, None) else {
                    return;
                };
                let Some(to) = self.random_up_node(fleet, Some(from)) else {
                    return;
                };
                let (from_id, to_id) = (fleet.handles[from].id(), fleet.handles[to].id());
                self.record(format!(
                    "FAULT clog link node-{} -> node-{} for {}ms",
                    from + 1,
                    to + 1,
                    outage.as_millis()
                ));
                net.clog_link(from_id, to_id);
                tokio::time::sleep(outage).await;
                net.unclog_link(from_id, to_id);
                self.record(format!("HEAL link node-{} -> node-{}", from + 1, to + 1));
            }
            FaultKind::LoseFsyncsFollower => {
                let leader = self.leader_index(fleet).await;
                let Some(target) = self.random_up_node(fleet, leader) else {
                    return;
                };
                self.record(format!(
                    "FAULT node-{} loses fsyncs for {}ms",
                    target + 1,
                    outage.as_millis()
                ));
                fleet.disks[target].set_lose_fsyncs(true);
                tokio::time::sleep(outage).await;
                self.crash(
                    fleet,
                    target,
                    spec.tear,
                    Duration::from_millis(self.between([100, 1000])),
                )
                .await;
                fleet.disks[target].set_lose_fsyncs(false);
                self.restart(fleet, target, unseal_key).await;
            }
        }
        let _ = handle;
    }

    async fn crash(&self, fleet: &Fleet, target: usize, tear: bool, outage: Duration) {
        self.record(format!(
            "FAULT crash node-{} (tear={tear}) for {}ms",
            target + 1,
            outage.as_millis()
        ));
        Handle::current().kill(fleet.handles[target].id());
        fleet.registry.lock().unwrap().remove(&target);
        fleet.down.lock().unwrap()[target] = true;
        fleet.disks[target].crash(tear);
        tokio::time::sleep(outage).await;
    }

    async fn restart(&self, fleet: &Fleet, target: usize, unseal_key: &str) {
        Handle::current().restart(fleet.handles[target].id());
        self.record(format!("RESTART node-{}", target + 1));
        if self.unseal(target, unseal_key).await {
            fleet.down.lock().unwrap()[target] = false;
        } else {
            self.violation(format!("node-{} did not unseal after restart", target + 1));
        }
    }

    async fn recover(&self, fleet: &Fleet, unseal_key: &str) {
        let net = NetSim::current();
        for handle in &fleet.handles {
            net.unclog_node(handle.id());
        }
        let down = fleet.down.lock().unwrap().clone();
        for (index, is_down) in down.into_iter().enumerate() {
            if is_down {
                self.restart(fleet, index, unseal_key).await;
            }
        }
    }

    async fn check(
        &self,
        fleet: &Fleet,
        root_token: &str,
        oracle: &Mutex<BTreeMap<String, Vec<Attempt>>>,
    ) {
        // Convergence: the same applied index and identical state on every node.
        let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
        let converged = loop {
            let states: Vec<(u64, String)> = {
                let registry = fleet.registry.lock().unwrap();
                registry.values().map(|node| node.state_digest()).collect()
            };
            if states.len() == fleet.handles.len()
                && states.windows(2).all(|pair| pair[0] == pair[1])
            {
                self.record(format!("converged at index {}", states[0].0));
                break true;
            }
            if Instant::now() > deadline {
                self.violation(format!("nodes did not converge: {states:?}"));
                break false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let _ = converged;
        // No acknowledged write lost.
        let expectations = oracle.lock().unwrap().clone();
        for (key, attempts) in expectations {
            let last_acknowledged = attempts.iter().rposition(|attempt| attempt.acknowledged);
            let allowed: Vec<&str> = match last_acknowledged {
                Some(position) => attempts[position..]
                    .iter()
                    .map(|attempt| attempt.value.as_str())
                    .collect(),
                None => attempts
                    .iter()
                    .map(|attempt| attempt.value.as_str())
                    .collect(),
            };
            let mut answer = None;
            for _ in 0..50 {
                let index = self.rng.below(self.scenario.nodes as u64) as usize;
                match call(
                    &Fleet::api_addr(index),
                    Method::GET,
                    &format!("kv/{key}"),
                    Some(root_token),
                    None,
                )
                .await
                {
                    Ok((200, body)) => {
                        answer = Some(body["data"]["value"].as_str().map(str::to_string));
                        break;
                    }
                    Ok((404, _)) => {
                        answer = Some(None);
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            match answer {
                None => self.violation(format!("could not read {key} after recovery")),
                Some(None) if last_acknowledged.is_some() => self.violation(format!(
                    "acknowledged write lost: {key} is gone (expected one of {allowed:?})"
                )),
                Some(None) => {}
                Some(Some(value)) if !allowed.contains(&value.as_str()) => self.violation(format!(
                    "acknowledged write lost: {key}={value}, expected one of {allowed:?}"
                )),
                Some(Some(_)) => {}
            }
        }
        self.record("checks done");
    }
}

fn record(trace: &Mutex<Trace>, start: Instant, event: impl AsRef<str>) {
    trace
        .lock()
        .unwrap()
        .record(start.elapsed().as_millis(), event);
}
