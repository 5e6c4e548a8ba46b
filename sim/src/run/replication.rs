//! Replication fleets: cluster 0 is a performance primary, every other cluster one of
//! its secondaries, activated through the same HTTP API an operator uses.
//!
//! The primary runs the ordinary workload (its history goes to the oracle as in any
//! fleet), plus writes to a local mount. Readers on each secondary read the registers
//! through random nodes of that secondary with a token from a userpass login there.
//!
//! Safety, checked while the run goes on (a sample every [`SAMPLE_INTERVAL`] of every
//! node's applied state, read directly through its `Node` handle) and at the end:
//! - nothing local crosses: no secondary node ever holds an entry of the primary's
//!   local mount data, token store or leases (a key under `local-logical/`,
//!   `sys/token/` or `sys/expire/` with the very bytes the primary held at a sample);
//! - nothing denied crosses: while a mount is denied to a secondary, no node of it holds,
//!   under that mount, a value whose write was invoked after the deny was acknowledged;
//! - `last_remote_wal` of each secondary node never goes back while the node stays up,
//!   except to 0 while a sync runs (by design); when that sync ends the position is at
//!   least the one before it (a reactivation starts afresh);
//! - secondary reads: no phantom (every value read is one the workload wrote to that
//!   register on the primary, invoked before the read completed), no value of the local
//!   mount ever, and monotonic reads per secondary, client and register: a KV v2
//!   version never decreases and a value, once replaced by another in what the client
//!   read, never comes back (values are unique, so coming back means going back in
//!   time). This holds across restarts, syncs, filter changes and reactivations, since
//!   every sync copies the primary's current state.
//!
//! Liveness, at the end: once faults are healed each secondary streams again
//! (`stream-wals`) at the primary's `last_wal` within [`CATCH_UP_TIMEOUT`], and then
//! every register read on it equals the primary's value (404 for a mount denied to it
//! and for the local mount), and with no filter active its `merkle_root` equals the
//! primary's. A secondary at the primary's position that answers a different value is a
//! safety violation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca::server::Node;
use http::Method;
use madsim::net::NetSim;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Cluster, SETUP_TIMEOUT, Simulation, describe};
use crate::client::call;
use crate::oracle::Phase;
use crate::scenario::{FaultKind, FaultSpec, Target};

/// How often the sampler reads every node's applied state.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(300);
/// How long a secondary may take, after the healed phase, to stream at the primary's
/// position and answer every register as the primary does.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long activation (enable, wipe, first sync) may take.
pub const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Activation attempts (a fresh token each) before giving up.
pub const ACTIVATION_ATTEMPTS_MAX: usize = 5;
/// Prefixes of keys that are the primary's own and must never reach a secondary.
pub const LOCAL_PREFIXES: &[&str] = &["local-logical/", "sys/token/", "sys/expire/"];
/// The replicated mounts a filter change may deny.
pub const FILTERABLE_MOUNTS: &[&str] = &["kv", "kv2"];
/// The user every secondary reader logs in as (replicated from the primary).
const USER: &str = "sim";
const PASSWORD: &str = "sim-password";

/// A mount denied to one secondary.
#[derive(Debug, Clone)]
struct Deny {
    mount: String,
    uuid: String,
    /// When the primary acknowledged the deny: later writes must never reach it.
    acknowledged_us: u64,
    /// When the allow was requested (from then on the mount may fill again).
    lifting_us: Option<u64>,
}

/// One read on a secondary.
#[derive(Debug, Clone)]
struct SecondaryRead {
    register: String,
    value: Option<String>,
    version: Option<u64>,
    invoked_us: u64,
    completed_us: u64,
    client: usize,
    node: usize,
}

/// What the sampler remembers of one secondary node between samples.
struct Position {
    node: Arc<Node>,
    last: u64,
    /// The position before the sync now running (0 when none runs).
    before_sync: u64,
}

struct Secondary {
    cluster: Arc<Cluster>,
    /// The id it was activated under (changes with each reactivation).
    id: Mutex<String>,
    activations: Mutex<usize>,
    /// The reader's login token on it (gone with each wipe).
    token: Mutex<Option<String>>,
    deny: Mutex<Option<Deny>>,
    reads: Mutex<Vec<SecondaryRead>>,
    positions: Mutex<BTreeMap<usize, Position>>,
}

struct Fleet {
    primary: Arc<Cluster>,
    secondaries: Vec<Arc<Secondary>>,
    /// The primary's unseal key: every cluster unseals with it once activated.
    unseal_key: String,
    root_token: String,
    /// Mount path (no slash) to uuid, on the primary.
    uuids: BTreeMap<String, String>,
    /// Entries (key and stored bytes) of the primary's local classes seen at any
    /// sample. Bytes, not names only: a secondary has its own `sys/token/salt`.
    primary_local_keys: Mutex<BTreeSet<(String, bytes::Bytes)>>,
    /// The primary nodes' `last_wal` at the last sample (the trace shows changes).
    primary_last_wals: Mutex<String>,
}

impl Simulation {
    /// Setup, activation, workload and readers under faults, recovery, the healed
    /// phase, the checks.
    pub(super) async fn run_replication(
        self: Arc<Self>,
        clusters: Vec<Arc<Cluster>>,
    ) -> super::Outcome {
        let control = madsim::runtime::Handle::current()
            .create_node()
            .name("control")
            .ip("10.2.0.1".parse().unwrap())
            .build();
        let this = self.clone();
        let driven = clusters.clone();
        let _ = control
            .spawn(async move { this.drive_replication(driven).await })
            .await;
        let history = clusters[0].history.lock().unwrap().clone();
        let trace = self.trace.lock().unwrap();
        super::Outcome {
            trace_hash: trace.hash(),
            violations: self.violations.lock().unwrap().clone(),
            liveness_failures: self.liveness_failures.lock().unwrap().clone(),
            trace_tail: trace.tail().to_vec(),
            acknowledged_writes: history.acknowledged_writes(),
            reads_checked: history.reads.len(),
            simulated: self.start.elapsed(),
        }
    }

    async fn drive_replication(self: Arc<Self>, clusters: Vec<Arc<Cluster>>) {
        let Some(fleet) = self.setup_replication(&clusters).await else {
            return;
        };
        let fleet = Arc::new(fleet);
        let stop_sampling = Arc::new(AtomicBool::new(false));
        let sampler = {
            let this = self.clone();
            let fleet = fleet.clone();
            let stop = stop_sampling.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    this.sample(&fleet);
                    tokio::time::sleep(SAMPLE_INTERVAL).await;
                }
            })
        };
        let faults_done = Arc::new(AtomicBool::new(false));
        let mut clients = self.spawn_clients(
            &fleet.primary,
            &fleet.root_token,
            Phase::Faults,
            self.scenario.workload.ops_per_client,
            faults_done.clone(),
        );
        clients.extend(self.spawn_readers(&fleet, faults_done.clone()));
        // Only the last filter change may leave its deny in place, so a deny is
        // never replaced by another (each is checked on its own).
        let mut filter_changes_left: usize = self
            .scenario
            .faults
            .iter()
            .filter(|spec| spec.kind == FaultKind::FilterChange)
            .map(|spec| spec.count)
            .sum();
        for spec in &self.scenario.faults {
            for _ in 0..spec.count {
                tokio::time::sleep(Duration::from_millis(self.between([300, 2000]))).await;
                if spec.kind == FaultKind::FilterChange {
                    filter_changes_left -= 1;
                }
                self.inject_replication(&fleet, spec, filter_changes_left == 0)
                    .await;
            }
        }
        faults_done.store(true, Ordering::SeqCst);
        for client in clients {
            let _ = client.await;
        }
        self.record("workload under faults finished");
        let net = NetSim::current();
        for (first, second) in self.cluster_pairs(&fleet) {
            for (from, to) in node_links(&first, &second) {
                net.unclog_link(from, to);
            }
        }
        self.recover(&fleet.primary, &fleet.unseal_key).await;
        for secondary in &fleet.secondaries {
            self.recover(&secondary.cluster, &fleet.unseal_key).await;
        }
        if self.await_healthy(&fleet.primary, &fleet.root_token).await {
            let healed = self.spawn_clients(
                &fleet.primary,
                &fleet.root_token,
                Phase::Healed,
                self.scenario.liveness.ops_per_client,
                Arc::new(AtomicBool::new(true)),
            );
            for client in healed {
                let _ = client.await;
            }
        }
        self.check(&fleet.primary, &fleet.root_token).await;
        for secondary in &fleet.secondaries {
            self.converge(&secondary.cluster).await;
            self.check_caught_up(&fleet, secondary).await;
        }
        stop_sampling.store(true, Ordering::SeqCst);
        let _ = sampler.await;
        self.sample(&fleet);
        self.check_secondary_reads(&fleet);
    }

    // ----- setup -----

    async fn setup_replication(&self, clusters: &[Arc<Cluster>]) -> Option<Fleet> {
        let mut keys = Vec::new();
        for cluster in clusters {
            keys.push(self.setup(cluster).await?);
        }
        let primary = clusters[0].clone();
        let (unseal_key, root_token) = keys[0].clone();
        let policy = "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }";
        for (method, path, body) in [
            (
                Method::POST,
                "sys/mounts/local",
                json!({"type": "kv", "local": true}),
            ),
            (
                Method::PUT,
                "sys/policies/acl/sim",
                json!({ "policy": policy }),
            ),
            (
                Method::POST,
                "sys/auth/userpass",
                json!({"type": "userpass"}),
            ),
            (
                Method::POST,
                "auth/userpass/users/sim",
                json!({"password": PASSWORD, "policies": "sim"}),
            ),
            (
                Method::POST,
                "sys/replication/performance/primary/enable",
                json!({}),
            ),
        ] {
            let answered = self
                .retry_call(&primary, |address| {
                    let token = root_token.clone();
                    let body = body.clone();
                    let method = method.clone();
                    async move { call(&address, method, path, Some(&token), Some(&body)).await }
                })
                .await;
            if !matches!(answered, Some(200 | 204)) {
                self.violation(&primary, format!("setup: {path} answered {answered:?}"));
                return None;
            }
        }
        let mut uuids = BTreeMap::new();
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while uuids.len() < 3 {
            let node = self.rng.below(primary.size() as u64) as usize;
            if let Ok((200, body)) = call(
                &primary.api_addr(node),
                Method::GET,
                "sys/mounts",
                Some(&root_token),
                None,
            )
            .await
            {
                for mount in ["kv", "kv2", "local"] {
                    if let Some(uuid) = body["data"][format!("{mount}/")]["uuid"].as_str() {
                        uuids.insert(mount.to_string(), uuid.to_string());
                    }
                }
            }
            if Instant::now() > deadline {
                self.violation(&primary, "setup: the mounts' uuids never showed".into());
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut secondaries = Vec::new();
        for (index, cluster) in clusters.iter().enumerate().skip(1) {
            let secondary = Arc::new(Secondary {
                cluster: cluster.clone(),
                id: Mutex::new(format!("s{index}")),
                activations: Mutex::new(0),
                token: Mutex::new(Some(keys[index].1.clone())),
                deny: Mutex::new(None),
                reads: Mutex::new(Vec::new()),
                positions: Mutex::new(BTreeMap::new()),
            });
            secondaries.push(secondary);
        }
        let fleet = Fleet {
            primary,
            secondaries,
            unseal_key,
            root_token,
            uuids,
            primary_local_keys: Mutex::new(BTreeSet::new()),
            primary_last_wals: Mutex::new(String::new()),
        };
        for secondary in &fleet.secondaries {
            if !self.activate(&fleet, secondary).await {
                return None;
            }
        }
        self.record("replication: every secondary activated");
        Some(fleet)
    }

    /// Issue a token under the secondary's current id, enable it with the token it has
    /// now, wait until it reports `mode: secondary`, log in there.
    async fn activate(&self, fleet: &Fleet, secondary: &Secondary) -> bool {
        let cluster = &secondary.cluster;
        for attempt in 0..ACTIVATION_ATTEMPTS_MAX {
            let id = {
                let mut activations = secondary.activations.lock().unwrap();
                *activations += 1;
                let id = if *activations == 1 {
                    format!("s{}", cluster.index)
                } else {
                    format!("s{}r{}", cluster.index, *activations - 1)
                };
                *secondary.id.lock().unwrap() = id.clone();
                id
            };
            let Some(activation_token) = self.secondary_token(fleet, &id).await else {
                continue;
            };
            let token = secondary.token.lock().unwrap().clone().unwrap_or_default();
            let body = json!({ "token": activation_token });
            let node = self.rng.below(cluster.size() as u64) as usize;
            let answer = call(
                &cluster.api_addr(node),
                Method::POST,
                "sys/replication/performance/secondary/enable",
                Some(&token),
                Some(&body),
            )
            .await;
            self.record(format!(
                "c{}: enable secondary {id} (attempt {attempt}) via node-{} -> {}",
                cluster.index,
                node + 1,
                describe(&answer)
            ));
            secondary.positions.lock().unwrap().clear();
            if self.await_mode(cluster, "secondary").await {
                *secondary.token.lock().unwrap() = None;
                *secondary.deny.lock().unwrap() = None;
                self.restart_standbys(fleet, secondary).await;
                return self.login(secondary).await;
            }
        }
        self.liveness_failure(cluster, "the secondary never activated".into());
        false
    }

    /// The operator's step after an activation: restart each standby of the secondary,
    /// one at a time, and unseal it with the primary's key. Activation replaces the
    /// seal and keyring through Raft but leaves a running standby with the keyring it
    /// unsealed with; such a standby, once elected, cannot open the new keyring and
    /// answers 500 "stored value at core/keyring is corrupt" (found by
    /// repl-secondary-restart before this step; not fixed in the server yet).
    async fn restart_standbys(&self, fleet: &Fleet, secondary: &Secondary) {
        let cluster = &secondary.cluster;
        let standbys: Vec<usize> = live_nodes_indexed(cluster)
            .into_iter()
            .filter(|(_, node)| !node.core().is_active())
            .map(|(index, _)| index)
            .collect();
        for standby in standbys {
            self.take_down(cluster, &[standby], false, false, Duration::ZERO);
            self.restart(cluster, &[standby], &fleet.unseal_key).await;
        }
    }

    async fn secondary_token(&self, fleet: &Fleet, id: &str) -> Option<String> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while Instant::now() < deadline {
            let node = self.rng.below(fleet.primary.size() as u64) as usize;
            let answer = call(
                &fleet.primary.api_addr(node),
                Method::POST,
                "sys/replication/performance/primary/secondary-token",
                Some(&fleet.root_token),
                Some(&json!({ "id": id })),
            )
            .await;
            self.record(format!(
                "c0: secondary-token {id} via node-{} -> {}",
                node + 1,
                describe(&answer)
            ));
            if let Ok((200, body)) = answer
                && let Some(token) = body["wrap_info"]["token"].as_str()
            {
                return Some(token.to_string());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// The status of one node (its own view: only the active node runs the stream).
    async fn status(&self, cluster: &Cluster, node: usize) -> Option<Value> {
        match call(
            &cluster.api_addr(node),
            Method::GET,
            "sys/replication/performance/status",
            None,
            None,
        )
        .await
        {
            Ok((200, body)) => Some(body["data"].clone()),
            _ => None,
        }
    }

    /// Wait until some node of `cluster` reports `mode`.
    async fn await_mode(&self, cluster: &Cluster, mode: &str) -> bool {
        let deadline = Instant::now() + ACTIVATION_TIMEOUT;
        while Instant::now() < deadline {
            for node in cluster.up() {
                if let Some(status) = self.status(cluster, node).await
                    && status["mode"] == mode
                {
                    self.record(format!(
                        "c{}: node-{} reports mode {mode}",
                        cluster.index,
                        node + 1
                    ));
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Log the readers in on `secondary` (the user is replicated; the token is local).
    async fn login(&self, secondary: &Secondary) -> bool {
        let cluster = &secondary.cluster;
        let deadline = Instant::now() + SETUP_TIMEOUT;
        while Instant::now() < deadline {
            let node = self.rng.below(cluster.size() as u64) as usize;
            let answer = call(
                &cluster.api_addr(node),
                Method::PUT,
                &format!("auth/userpass/login/{USER}"),
                None,
                Some(&json!({ "password": PASSWORD })),
            )
            .await;
            if let Ok((200, body)) = &answer
                && let Some(token) = body["auth"]["client_token"].as_str()
            {
                self.record(format!(
                    "c{}: readers logged in via node-{}",
                    cluster.index,
                    node + 1
                ));
                *secondary.token.lock().unwrap() = Some(token.to_string());
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.liveness_failure(cluster, "no login on the secondary succeeded".into());
        false
    }

    // ----- readers -----

    fn spawn_readers(
        self: &Arc<Self>,
        fleet: &Arc<Fleet>,
        stop: Arc<AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut readers = Vec::new();
        for secondary in &fleet.secondaries {
            for client in 0..self.scenario.workload.clients {
                let this = self.clone();
                let reader = secondary.clone();
                let stop = stop.clone();
                readers.push(
                    secondary
                        .cluster
                        .client_node
                        .spawn(async move { this.reader_loop(&reader, client, &stop).await }),
                );
            }
        }
        readers
    }

    async fn reader_loop(&self, secondary: &Secondary, client: usize, stop: &AtomicBool) {
        let workload = self.scenario.workload.clone();
        let mut done = 0usize;
        while !((done >= workload.ops_per_client && stop.load(Ordering::SeqCst))
            || done >= super::OPS_WHILE_FAULTS_MAX)
        {
            let key = self.rng.below(workload.keys as u64);
            let mount = self.pick(&["kv", "kv2", "local"]);
            self.read_secondary(secondary, client, &format!("{mount}/k{key}"))
                .await;
            done += 1;
            tokio::time::sleep(Duration::from_millis(self.between(workload.pause_ms))).await;
        }
    }

    /// One read through a random node of `secondary`, recorded when definite.
    async fn read_secondary(
        &self,
        secondary: &Secondary,
        client: usize,
        register: &str,
    ) -> Option<(Option<String>, Option<u64>)> {
        let cluster = &secondary.cluster;
        let token = secondary.token.lock().unwrap().clone()?;
        let node = self.rng.below(cluster.size() as u64) as usize;
        let invoked_us = self.now_us();
        let result = call(
            &cluster.api_addr(node),
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
        self.record(format!(
            "c{} reader {client} GET {register} via node-{} -> {} {:?}",
            cluster.index,
            node + 1,
            describe(&result),
            answer
        ));
        let (value, version) = answer?;
        secondary.reads.lock().unwrap().push(SecondaryRead {
            register: register.to_string(),
            value: value.clone(),
            version,
            invoked_us,
            completed_us,
            client,
            node,
        });
        Some((value, version))
    }

    // ----- faults -----

    /// Both orders of every (primary, secondary) pair.
    fn cluster_pairs(&self, fleet: &Fleet) -> Vec<(Arc<Cluster>, Arc<Cluster>)> {
        fleet
            .secondaries
            .iter()
            .map(|secondary| (fleet.primary.clone(), secondary.cluster.clone()))
            .collect()
    }

    fn pick_secondary(&self, fleet: &Fleet) -> Arc<Secondary> {
        fleet.secondaries[self.rng.below(fleet.secondaries.len() as u64) as usize].clone()
    }

    async fn inject_replication(&self, fleet: &Fleet, spec: &FaultSpec, last_filter_change: bool) {
        let kind = match spec.kind {
            FaultKind::Swarm => self.pick(FaultKind::SWARM),
            kind => kind,
        };
        match kind {
            FaultKind::PartitionClusters => {
                let secondary = self.pick_secondary(fleet);
                let outage = Duration::from_millis(self.between(spec.outage_ms));
                self.record(format!(
                    "FAULT partition c0 from c{} for {}ms",
                    secondary.cluster.index,
                    outage.as_millis()
                ));
                let links = node_links(&fleet.primary, &secondary.cluster);
                let net = NetSim::current();
                for (from, to) in &links {
                    net.clog_link(*from, *to);
                }
                tokio::time::sleep(outage).await;
                for (from, to) in &links {
                    net.unclog_link(*from, *to);
                }
                self.record(format!("HEAL c0 from c{}", secondary.cluster.index));
            }
            FaultKind::ReactivateSecondary => {
                let secondary = self.pick_secondary(fleet);
                self.reactivate(fleet, &secondary, spec).await;
            }
            FaultKind::FilterChange => {
                let secondary = self.pick_secondary(fleet);
                self.filter_change(fleet, &secondary, spec, last_filter_change)
                    .await;
            }
            kind => {
                let cluster = match spec.on {
                    Target::Primary => fleet.primary.clone(),
                    Target::Secondary => self.pick_secondary(fleet).cluster.clone(),
                    Target::Any => {
                        let index = self.rng.below(fleet.secondaries.len() as u64 + 1) as usize;
                        match index {
                            0 => fleet.primary.clone(),
                            index => fleet.secondaries[index - 1].cluster.clone(),
                        }
                    }
                };
                self.inject(&cluster, kind, spec, &fleet.unseal_key).await;
                self.record_digests(&cluster);
            }
        }
    }

    /// Disable, revoke the old id on the primary, activate under a new id.
    async fn reactivate(&self, fleet: &Fleet, secondary: &Secondary, spec: &FaultSpec) {
        let cluster = &secondary.cluster;
        let old_id = secondary.id.lock().unwrap().clone();
        self.record(format!(
            "c{}: FAULT reactivate secondary {old_id}",
            cluster.index
        ));
        let token = secondary.token.lock().unwrap().clone().unwrap_or_default();
        let disabled = self
            .retry_call(cluster, |address| {
                let token = token.clone();
                async move {
                    call(
                        &address,
                        Method::POST,
                        "sys/replication/performance/secondary/disable",
                        Some(&token),
                        Some(&json!({})),
                    )
                    .await
                }
            })
            .await;
        self.record(format!("c{}: disable -> {disabled:?}", cluster.index));
        if !self.await_mode(cluster, "disabled").await {
            self.liveness_failure(cluster, "the secondary never reported disabled".into());
            return;
        }
        let revoked = self
            .retry_call(&fleet.primary, |address| {
                let token = fleet.root_token.clone();
                let body = json!({ "id": old_id });
                async move {
                    call(
                        &address,
                        Method::POST,
                        "sys/replication/performance/primary/revoke-secondary",
                        Some(&token),
                        Some(&body),
                    )
                    .await
                }
            })
            .await;
        self.record(format!("c0: revoke-secondary {old_id} -> {revoked:?}"));
        tokio::time::sleep(Duration::from_millis(self.between(spec.outage_ms))).await;
        self.activate(fleet, secondary).await;
    }

    /// Deny a replicated mount to `secondary` for the outage, then allow it again (the
    /// `last` strike may leave the deny in place when the scenario says `final_deny`).
    async fn filter_change(
        &self,
        fleet: &Fleet,
        secondary: &Secondary,
        spec: &FaultSpec,
        last: bool,
    ) {
        let cluster = &secondary.cluster;
        let id = secondary.id.lock().unwrap().clone();
        let mount = self.pick(FILTERABLE_MOUNTS).to_string();
        let outage = Duration::from_millis(self.between(spec.outage_ms));
        let sticky = last
            && self
                .scenario
                .replication
                .is_some_and(|replication| replication.final_deny)
            && self.rng.below(2) == 0;
        self.record(format!(
            "c{}: FAULT deny {mount} to {id} for {}ms{}",
            cluster.index,
            outage.as_millis(),
            if sticky { ", left in place" } else { "" }
        ));
        let path = format!("sys/replication/performance/primary/paths-filter/{id}");
        let denied = self
            .retry_call(&fleet.primary, |address| {
                let token = fleet.root_token.clone();
                let body = json!({"mode": "deny", "paths": [mount.clone()]});
                let path = path.clone();
                async move { call(&address, Method::POST, &path, Some(&token), Some(&body)).await }
            })
            .await;
        self.record(format!("c0: deny {mount} to {id} -> {denied:?}"));
        if denied != Some(204) {
            self.liveness_failure(&fleet.primary, format!("deny answered {denied:?}"));
            return;
        }
        *secondary.deny.lock().unwrap() = Some(Deny {
            uuid: fleet.uuids[&mount].clone(),
            mount: mount.clone(),
            acknowledged_us: self.now_us(),
            lifting_us: None,
        });
        tokio::time::sleep(outage).await;
        if sticky {
            return;
        }
        if let Some(deny) = secondary.deny.lock().unwrap().as_mut() {
            deny.lifting_us = Some(self.now_us());
        }
        let allowed = self
            .retry_call(&fleet.primary, |address| {
                let token = fleet.root_token.clone();
                let path = path.clone();
                async move { call(&address, Method::DELETE, &path, Some(&token), None).await }
            })
            .await;
        self.record(format!("c0: allow {mount} to {id} -> {allowed:?}"));
        if allowed == Some(204) {
            *secondary.deny.lock().unwrap() = None;
        } else {
            self.liveness_failure(&fleet.primary, format!("allow answered {allowed:?}"));
        }
    }

    // ----- the sampler -----

    /// One sample of every node's applied state: what the primary holds locally, and
    /// the invariants on each secondary node.
    fn sample(&self, fleet: &Fleet) {
        {
            let mut local = fleet.primary_local_keys.lock().unwrap();
            let mut last_wals = Vec::new();
            for (index, node) in live_nodes_indexed(&fleet.primary) {
                let Some(view) = node.core().cluster().backend().applied_view() else {
                    continue;
                };
                last_wals.push(format!(
                    "node-{}:{}{}",
                    index + 1,
                    view.wal().last_wal_index(),
                    if node.core().is_active() { "*" } else { "" }
                ));
                for prefix in LOCAL_PREFIXES.iter().copied() {
                    for (key, value) in view
                        .range_from(std::ops::Bound::Included(prefix))
                        .take_while(|(key, _)| key.starts_with(prefix))
                    {
                        local.insert((key.to_string(), value.clone()));
                    }
                }
            }
            let last_wals = last_wals.join(" ");
            let mut recorded = fleet.primary_last_wals.lock().unwrap();
            if *recorded != last_wals {
                self.record(format!("c0: last_wal {last_wals}"));
                *recorded = last_wals;
            }
        }
        let now_us = self.now_us();
        for secondary in &fleet.secondaries {
            let cluster = &secondary.cluster;
            let deny = secondary
                .deny
                .lock()
                .unwrap()
                .clone()
                .filter(|deny| deny.lifting_us.is_none());
            let mut moved = Vec::new();
            for (index, node) in live_nodes_indexed(cluster) {
                let Some(view) = node.core().cluster().backend().applied_view() else {
                    continue;
                };
                // Nothing local crosses.
                {
                    let local = fleet.primary_local_keys.lock().unwrap();
                    for prefix in LOCAL_PREFIXES.iter().copied() {
                        if let Some((key, _)) = view
                            .range_from(std::ops::Bound::Included(prefix))
                            .take_while(|(key, _)| key.starts_with(prefix))
                            .find(|(key, value)| {
                                local.contains(&(key.to_string(), (*value).clone()))
                            })
                        {
                            self.violation(
                                cluster,
                                format!("node-{} holds the primary's local key {key}", index + 1),
                            );
                        }
                    }
                }
                // Nothing denied crosses.
                if let Some(deny) = &deny {
                    let prefix = format!("logical/{}/", deny.uuid);
                    for (key, sealed) in view
                        .range_from(std::ops::Bound::Included(prefix.as_str()))
                        .take_while(|(key, _)| key.starts_with(&prefix))
                    {
                        let Ok(plain) = node.core().barrier().open(key, sealed) else {
                            continue;
                        };
                        let invoked = self.values_invoked_us.lock().unwrap();
                        let late = json_strings(&plain).into_iter().find(|text| {
                            invoked
                                .get(text)
                                .is_some_and(|at| *at > deny.acknowledged_us)
                        });
                        if let Some(value) = late {
                            self.violation(
                                cluster,
                                format!(
                                    "node-{} holds {value:?} under {}/ ({key}), written after {}/ was denied to it at {}us",
                                    index + 1,
                                    deny.mount,
                                    deny.mount,
                                    deny.acknowledged_us
                                ),
                            );
                        }
                    }
                }
                // The position never goes back (but to 0 while a sync runs).
                let position = view.last_remote_wal();
                let mut positions = secondary.positions.lock().unwrap();
                let entry = positions.entry(index).or_insert_with(|| Position {
                    node: node.clone(),
                    last: position,
                    before_sync: 0,
                });
                if !Arc::ptr_eq(&entry.node, &node) {
                    // Restarted: its state machine is rebuilt from its disk.
                    *entry = Position {
                        node: node.clone(),
                        last: position,
                        before_sync: 0,
                    };
                }
                if position == 0 && entry.last > 0 {
                    entry.before_sync = entry.last;
                } else if position > 0 && position < entry.last.max(entry.before_sync) {
                    self.violation(
                        cluster,
                        format!(
                            "node-{} last_remote_wal went back from {} to {position} at {now_us}us",
                            index + 1,
                            entry.last.max(entry.before_sync)
                        ),
                    );
                }
                if position > 0 {
                    entry.before_sync = 0;
                }
                if position != entry.last {
                    moved.push(format!("node-{}:{position}", index + 1));
                }
                entry.last = position;
            }
            if !moved.is_empty() {
                self.record(format!(
                    "c{}: last_remote_wal {}",
                    cluster.index,
                    moved.join(" ")
                ));
            }
        }
    }

    // ----- the end -----

    /// Once healed: the secondary streams at the primary's position and answers every
    /// register as the primary does.
    async fn check_caught_up(&self, fleet: &Fleet, secondary: &Secondary) {
        let cluster = &secondary.cluster;
        let logged_in = secondary.token.lock().unwrap().is_some();
        if !logged_in && !self.login(secondary).await {
            return;
        }
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let mut last_problem = String::from("never streamed");
        let mut at_position = false;
        while Instant::now() < deadline {
            match self.compare(fleet, secondary).await {
                Ok(()) => {
                    self.record(format!("c{}: caught up with the primary", cluster.index));
                    return;
                }
                Err((problem, same_position)) => {
                    last_problem = problem;
                    at_position = same_position;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for node in cluster.up() {
            if let Some(status) = self.status(cluster, node).await {
                self.record(format!(
                    "c{}: node-{} status: state {} connection {} last_remote_wal {} primaries {} known {}",
                    cluster.index,
                    node + 1,
                    status["state"],
                    status["connection_state"],
                    status["last_remote_wal"],
                    status["primaries"],
                    status["known_primary_cluster_addrs"]
                ));
            }
        }
        let message = format!(
            "secondary not caught up within {}s: {last_problem}",
            CATCH_UP_TIMEOUT.as_secs()
        );
        if at_position {
            self.violation(cluster, message);
        } else {
            self.liveness_failure(cluster, message);
        }
    }

    /// `Ok` when the secondary streams at the primary's `last_wal` and reads as the
    /// primary; else what differs, and whether the positions were equal.
    async fn compare(&self, fleet: &Fleet, secondary: &Secondary) -> Result<(), (String, bool)> {
        let cluster = &secondary.cluster;
        let mut primary_status = None;
        for node in fleet.primary.up() {
            if let Some(status) = self.status(&fleet.primary, node).await
                && fleet
                    .primary
                    .registry
                    .lock()
                    .unwrap()
                    .get(&node)
                    .is_some_and(|node| node.core().is_active())
            {
                primary_status = Some(status);
            }
        }
        let primary_status =
            primary_status.ok_or(("the primary has no active node".to_string(), false))?;
        let mut streaming = None;
        for node in cluster.up() {
            if let Some(status) = self.status(cluster, node).await
                && status["state"] == "stream-wals"
            {
                streaming = Some(status);
            }
        }
        let status = streaming.ok_or(("no node streams".to_string(), false))?;
        let last_wal = primary_status["last_wal"].as_u64().unwrap_or(0);
        let position = status["last_remote_wal"].as_u64().unwrap_or(0);
        if position != last_wal {
            return Err((format!("at {position}, the primary at {last_wal}"), false));
        }
        let deny = secondary.deny.lock().unwrap().clone();
        for register in self.registers() {
            let (mount, _) = register.split_once('/').unwrap_or_default();
            let expected =
                if mount == "local" || deny.as_ref().is_some_and(|deny| deny.mount == mount) {
                    None
                } else {
                    let answer = self
                        .read_via(
                            &fleet.primary,
                            usize::MAX,
                            Phase::Final,
                            &register,
                            &fleet.root_token,
                            self.rng.below(fleet.primary.size() as u64) as usize,
                        )
                        .await
                        .ok_or((format!("the primary did not answer {register}"), false))?;
                    answer.0
                };
            let seen = self
                .read_secondary(secondary, usize::MAX, &register)
                .await
                .ok_or((format!("no answer for {register}"), false))?;
            if seen.0 != expected {
                return Err((
                    format!(
                        "{register} is {:?} there, {expected:?} on the primary",
                        seen.0
                    ),
                    true,
                ));
            }
        }
        if deny.is_none() && status["merkle_root"] != primary_status["merkle_root"] {
            return Err((
                format!(
                    "merkle_root {} there, {} on the primary",
                    status["merkle_root"], primary_status["merkle_root"]
                ),
                true,
            ));
        }
        Ok(())
    }

    /// The secondary readers' history: no phantom, no local value, monotonic reads.
    fn check_secondary_reads(&self, fleet: &Fleet) {
        let history = fleet.primary.history.lock().unwrap().clone();
        let mut written: BTreeMap<(&str, &str), Vec<&crate::oracle::Write>> = BTreeMap::new();
        for write in &history.writes {
            if let Some(value) = &write.value {
                written
                    .entry((write.register.as_str(), value.as_str()))
                    .or_default()
                    .push(write);
            }
        }
        for secondary in &fleet.secondaries {
            let cluster = &secondary.cluster;
            let reads = secondary.reads.lock().unwrap().clone();
            let mut reported = 0;
            let mut report = |message: String| {
                if reported < crate::oracle::VIOLATIONS_REPORTED_MAX {
                    self.violation(cluster, message);
                }
                reported += 1;
            };
            // (client, register) -> (highest version, values seen in order, last value)
            let mut seen: BTreeMap<(usize, &str), (u64, BTreeSet<&str>, Option<&str>)> =
                BTreeMap::new();
            for read in &reads {
                let describe = || {
                    format!(
                        "reader {} read {}={:?} (version {:?}) via node-{} during [{}us, {}us]",
                        read.client,
                        read.register,
                        read.value,
                        read.version,
                        read.node + 1,
                        read.invoked_us,
                        read.completed_us
                    )
                };
                if read.register.starts_with("local/") && read.value.is_some() {
                    report(format!("the local mount is visible: {}", describe()));
                }
                if let Some(value) = &read.value {
                    let possible = written
                        .get(&(read.register.as_str(), value.as_str()))
                        .is_some_and(|writes| {
                            writes.iter().any(|write| {
                                write.outcome != crate::oracle::WriteOutcome::Refused
                                    && write.invoked_us < read.completed_us
                            })
                        });
                    if !possible {
                        report(format!("phantom value on a secondary: {}", describe()));
                    }
                }
                if read.client == usize::MAX {
                    continue;
                }
                let state = seen
                    .entry((read.client, read.register.as_str()))
                    .or_insert((0, BTreeSet::new(), None));
                if let Some(version) = read.version {
                    if version < state.0 {
                        report(format!(
                            "non-monotonic read: version {version} after version {}: {}",
                            state.0,
                            describe()
                        ));
                    }
                    state.0 = state.0.max(version);
                }
                if let Some(value) = read.value.as_deref() {
                    if state.2 != Some(value) && state.1.contains(value) {
                        report(format!(
                            "non-monotonic read: {value:?} came back after {:?}: {}",
                            state.2,
                            describe()
                        ));
                    }
                    state.1.insert(value);
                    state.2 = Some(value);
                }
            }
            self.record(format!(
                "c{}: {} secondary reads checked",
                cluster.index,
                reads.len()
            ));
        }
    }
}

/// Every (from, to) pair between the nodes of two clusters, both directions (clients
/// keep reaching their own cluster).
fn node_links(
    first: &Cluster,
    second: &Cluster,
) -> Vec<(madsim::task::NodeId, madsim::task::NodeId)> {
    let mut links = Vec::new();
    for a in &first.handles {
        for b in &second.handles {
            links.push((a.id(), b.id()));
            links.push((b.id(), a.id()));
        }
    }
    links
}

/// The nodes running now (sealed or not: their applied state is there either way).
fn live_nodes_indexed(cluster: &Cluster) -> Vec<(usize, Arc<Node>)> {
    cluster
        .registry
        .lock()
        .unwrap()
        .iter()
        .map(|(index, node)| (*index, node.clone()))
        .collect()
}

/// Every string in a JSON document (empty when it is not JSON).
fn json_strings(bytes: &[u8]) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            Value::Object(map) => map.values().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        walk(&value, &mut out);
    }
    out
}
