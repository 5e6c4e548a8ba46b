//! Replication fleets: cluster 0 starts as the performance primary, every other cluster
//! one of its secondaries, activated through the same HTTP API an operator uses.
//! Failovers (planned, or a forced promotion across a split brain) move the primary to
//! another cluster; the fleet keeps the epochs it opened, and every check that speaks of
//! "the primary" means the one of the time.
//!
//! The workload is cluster 0's clients (their history goes to the oracle as in any
//! fleet), plus writes to a local mount that cluster 0 owns whatever its role. Their
//! operations follow a route: replicated registers are read on the current primary
//! and written through it, or through any cluster when the scenario writes through the
//! secondaries (each forwards to its primary: a write acknowledged by any cluster is
//! acknowledged). Readers on each cluster activated as a secondary at setup read the
//! registers through random nodes of it with a token from a userpass login there.
//!
//! Failovers, and what they add to the checks:
//! - planned (`failover`): demote, promote without force, `update-primary` on every
//!   other cluster. The oracle's reads pause from the demotion to the promotion; its
//!   ordinary checks then say no acknowledged write was lost, and the liveness checks
//!   below that every secondary converges to the new primary;
//! - `split-brain`: the oracle's workload pauses and the chosen secondary catches up,
//!   then the primary is cut off from every cluster while a writer of its own keeps
//!   writing to it, the secondary is force-promoted and the workload resumes there. The
//!   old primary must refuse every write once it reports itself superseded, never
//!   accept writes in the new primary's epoch, report at least as many divergent WAL
//!   entries as it acknowledged writes while cut off (before and after it follows the
//!   new primary), and none of those writes may be found on any cluster at the end;
//! - `rotate`: the barrier key is rotated on the primary, sometimes while a secondary is
//!   cut off; every node of every secondary must report the primary's key term at the
//!   end.
//!
//! Safety, checked while the run goes on (a sample every [`SAMPLE_INTERVAL`] of every
//! node's applied state, read directly through its `Node` handle) and at the end:
//! - nothing local crosses: no node of another cluster ever holds an entry of a
//!   primary's local mount data, token store or leases (a key under `local-logical/`,
//!   `sys/token/` or `sys/expire/` with the very bytes a primary held at a sample);
//! - nothing denied crosses: while a mount is denied to a secondary, no node of it holds,
//!   under that mount, a value whose write was invoked after the deny was acknowledged;
//! - `last_remote_wal` of each secondary node never goes back while the node stays up,
//!   except to 0 while a sync runs (by design); when that sync ends the position is at
//!   least the one before it (a reactivation, or following a new primary, starts
//!   afresh);
//! - secondary reads: no phantom (every value read is one the workload wrote to that
//!   register, invoked before the read completed), no value of the local
//!   mount ever, and monotonic reads per secondary, client and register: a KV v2
//!   version never decreases and a value, once replaced by another in what the client
//!   read, never comes back (values are unique, so coming back means going back in
//!   time). This holds across restarts, syncs, filter changes, reactivations and
//!   failovers, since every sync copies the primary's current state.
//!
//! Liveness, at the end: once faults are healed each secondary streams again
//! (`stream-wals`) at the primary's `last_wal` within [`CATCH_UP_TIMEOUT`], and then
//! every register read on it equals the primary's value (404 for a mount denied to it
//! and for the local mount, which only cluster 0 holds), with no filter active its
//! `merkle_root` equals the primary's, and every node of it reports the primary's key
//! term (`sys/key-status`). A secondary at the primary's position that differs is a
//! safety violation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca::server::Node;
use arca::storage::key_space::{self, Store, TableKind};
use http::Method;
use madsim::net::NetSim;
use serde_json::{Value, json};

use super::{Cluster, Route, SETUP_TIMEOUT, Simulation, describe, now};
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
/// Prefixes of keys that are the primary's own and must never reach a secondary: local
/// mounts' data, tokens and leases (named by the key-space registry).
pub const LOCAL_PREFIXES: &[&str] = &[
    key_space::mount_data_root(TableKind::Secrets, true),
    Store::Tokens.prefix(),
    Store::Leases.prefix(),
];
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

/// One cluster of the fleet, whatever its role now.
struct Member {
    cluster: Arc<Cluster>,
    /// The id it was activated under (changes with each reactivation).
    id: Mutex<String>,
    activations: Mutex<usize>,
    /// A token valid on it: the root token of cluster 0, elsewhere the readers' login
    /// (gone with each wipe).
    token: Mutex<Option<String>>,
    deny: Mutex<Option<Deny>>,
    reads: Mutex<Vec<SecondaryRead>>,
    positions: Mutex<BTreeMap<usize, Position>>,
    /// Set while it changes primary: its position moves to the new primary's numbering,
    /// so the sampler does not compare positions across the change.
    repointing: AtomicBool,
    /// Whether its nodes hold the fleet's keys: false until its first activation
    /// replaced its own (its running standbys must then seal themselves).
    holds_fleet_keys: AtomicBool,
}

impl Member {
    fn new(cluster: Arc<Cluster>, token: String) -> Self {
        Self {
            id: Mutex::new(format!("s{}", cluster.index)),
            cluster,
            activations: Mutex::new(0),
            token: Mutex::new(Some(token)),
            deny: Mutex::new(None),
            reads: Mutex::new(Vec::new()),
            positions: Mutex::new(BTreeMap::new()),
            repointing: AtomicBool::new(false),
            holds_fleet_keys: AtomicBool::new(false),
        }
    }

    fn token(&self) -> String {
        self.token.lock().unwrap().clone().unwrap_or_default()
    }
}

/// A write to a primary cut off by a split brain, with what its node said just before.
#[derive(Debug, Clone)]
struct DivergentWrite {
    register: String,
    value: String,
    completed_us: u64,
    acknowledged: bool,
    generation: Option<u64>,
    superseded_before: bool,
    primary_before: bool,
}

/// One epoch the harness opened: which cluster became primary, and when.
#[derive(Debug, Clone)]
struct EpochOpened {
    cluster: usize,
    /// When the promotion was acknowledged.
    at_us: u64,
}

struct Fleet {
    /// Every cluster by index. Cluster 0 starts as the primary, holds the oracle's
    /// history and owns the local mount; failovers move the primary elsewhere.
    members: Vec<Arc<Member>>,
    /// The index of the primary now: the last of `epochs`.
    epochs: Mutex<Vec<EpochOpened>>,
    /// The primary's unseal key: every cluster unseals with it once activated.
    unseal_key: String,
    root_token: String,
    /// Mount path (no slash) to uuid, on the primary.
    uuids: BTreeMap<String, String>,
    /// Entries (key and stored bytes) of the local classes the primary of the time held
    /// at any sample, with that primary's index: no other cluster may ever hold them.
    /// Bytes, not names only: a secondary has its own `sys/token/salt`.
    primary_local_keys: Mutex<BTreeMap<(String, bytes::Bytes), usize>>,
    /// The writes a cut-off primary took during a split brain: none may reach another
    /// cluster, nor stay on it once it follows the new primary.
    divergent: Mutex<Vec<DivergentWrite>>,
    /// The primary nodes' `last_wal` at the last sample (the trace shows changes).
    primary_last_wals: Mutex<String>,
}

impl Fleet {
    fn primary_index(&self) -> usize {
        self.epochs
            .lock()
            .unwrap()
            .last()
            .map_or(0, |epoch| epoch.cluster)
    }

    fn primary_member(&self) -> Arc<Member> {
        self.members[self.primary_index()].clone()
    }

    fn primary(&self) -> Arc<Cluster> {
        self.primary_member().cluster.clone()
    }

    /// A token valid on the primary now.
    fn primary_token(&self) -> String {
        self.primary_member().token()
    }

    /// Every cluster but the primary, in index order.
    fn secondaries(&self) -> Vec<Arc<Member>> {
        let primary = self.primary_index();
        self.members
            .iter()
            .filter(|member| member.cluster.index != primary)
            .cloned()
            .collect()
    }

    /// Cluster 0: its clients' history is the oracle's, and it owns the local mount.
    fn history_cluster(&self) -> Arc<Cluster> {
        self.members[0].cluster.clone()
    }
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
        arca::buggify::set_enabled(self.scenario.settings.buggify);
        self.set_route(&fleet, true);
        let mut clients = self.spawn_clients(
            &fleet.history_cluster(),
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
        arca::buggify::set_enabled(false);
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
        for member in &fleet.members {
            self.recover(&member.cluster, &fleet.unseal_key).await;
        }
        self.set_route(&fleet, true);
        if self
            .await_healthy(&fleet.history_cluster(), &fleet.root_token)
            .await
        {
            let healed = self.spawn_clients(
                &fleet.history_cluster(),
                &fleet.root_token,
                Phase::Healed,
                self.scenario.liveness.ops_per_client,
                Arc::new(AtomicBool::new(true)),
            );
            for client in healed {
                let _ = client.await;
            }
        }
        let history_cluster = fleet.history_cluster();
        if fleet.primary_index() != history_cluster.index {
            self.converge(&fleet.primary()).await;
        }
        self.check(&history_cluster, &fleet.root_token).await;
        for secondary in &fleet.secondaries() {
            self.converge(&secondary.cluster).await;
            self.check_caught_up(&fleet, secondary).await;
        }
        self.check_divergent_gone(&fleet).await;
        self.check_clock_skews(&fleet).await;
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
        let deadline = now() + SETUP_TIMEOUT;
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
            if now() > deadline {
                self.violation(&primary, "setup: the mounts' uuids never showed".into());
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let members = clusters
            .iter()
            .zip(&keys)
            .map(|(cluster, (_, token))| Arc::new(Member::new(cluster.clone(), token.clone())))
            .collect();
        let fleet = Fleet {
            members,
            epochs: Mutex::new(vec![EpochOpened {
                cluster: primary.index,
                at_us: self.now_us(),
            }]),
            unseal_key,
            root_token,
            uuids,
            primary_local_keys: Mutex::new(BTreeMap::new()),
            divergent: Mutex::new(Vec::new()),
            primary_last_wals: Mutex::new(String::new()),
        };
        for secondary in &fleet.secondaries() {
            if !self.activate(&fleet, secondary).await {
                return None;
            }
        }
        self.record("replication: every secondary activated");
        Some(fleet)
    }

    /// Issue a token under the secondary's current id, enable it with the token it has
    /// now, wait until it reports `mode: secondary`, log in there.
    async fn activate(&self, fleet: &Fleet, secondary: &Member) -> bool {
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
                if !secondary.holds_fleet_keys.swap(true, Ordering::SeqCst)
                    && !self.unseal_standbys(fleet, secondary).await
                {
                    return false;
                }
                return self.login(secondary).await;
            }
        }
        self.liveness_failure(cluster, "the secondary never activated".into());
        false
    }

    /// The operator's step after a first activation, as Vault documents it: the
    /// secondary's standbys are unsealed again, with the primary's key. The activation
    /// replaced the keys they unsealed with, so each must seal itself first (a standby
    /// that stays unsealed with keys that open nothing is a failure of the server).
    async fn unseal_standbys(&self, fleet: &Fleet, secondary: &Member) -> bool {
        let cluster = &secondary.cluster;
        let standbys: Vec<usize> = live_nodes_indexed(cluster)
            .into_iter()
            .filter(|(_, node)| !node.core().is_active())
            .map(|(index, _)| index)
            .collect();
        for standby in standbys {
            if !self.await_sealed(cluster, standby).await {
                self.liveness_failure(
                    cluster,
                    format!(
                        "node-{} stayed unsealed with the keys the activation replaced",
                        standby + 1
                    ),
                );
                return false;
            }
            if !self.unseal(cluster, standby, &fleet.unseal_key).await {
                self.liveness_failure(
                    cluster,
                    format!(
                        "node-{} did not unseal with the primary's key after the activation",
                        standby + 1
                    ),
                );
                return false;
            }
        }
        true
    }

    /// Until the node reports itself sealed, within the setup bound.
    async fn await_sealed(&self, cluster: &Cluster, node: usize) -> bool {
        let deadline = now() + SETUP_TIMEOUT;
        while now() < deadline {
            if let Ok((200, body)) = call(
                &cluster.api_addr(node),
                Method::GET,
                "sys/seal-status",
                None,
                None,
            )
            .await
                && body["sealed"] == Value::Bool(true)
            {
                self.record(format!(
                    "c{}: node-{} sealed itself",
                    cluster.index,
                    node + 1
                ));
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    async fn secondary_token(&self, fleet: &Fleet, id: &str) -> Option<String> {
        let primary = fleet.primary();
        let deadline = now() + SETUP_TIMEOUT;
        while now() < deadline {
            let node = self.rng.below(primary.size() as u64) as usize;
            let answer = call(
                &primary.api_addr(node),
                Method::POST,
                "sys/replication/performance/primary/secondary-token",
                Some(&fleet.primary_token()),
                Some(&json!({ "id": id })),
            )
            .await;
            self.record(format!(
                "c{}: secondary-token {id} via node-{} -> {}",
                primary.index,
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
        let deadline = now() + ACTIVATION_TIMEOUT;
        while now() < deadline {
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
    async fn login(&self, secondary: &Member) -> bool {
        let cluster = &secondary.cluster;
        let deadline = now() + SETUP_TIMEOUT;
        while now() < deadline {
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
        // The clusters activated as secondaries at setup; they keep reading whatever
        // role a failover gives them (cluster 0 holds values no secondary may read).
        for secondary in fleet.members.iter().skip(1) {
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

    async fn reader_loop(&self, secondary: &Member, client: usize, stop: &AtomicBool) {
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
        secondary: &Member,
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
        let mut pairs = Vec::new();
        for (position, first) in fleet.members.iter().enumerate() {
            for second in &fleet.members[position + 1..] {
                pairs.push((first.cluster.clone(), second.cluster.clone()));
            }
        }
        pairs
    }

    fn pick_secondary(&self, fleet: &Fleet) -> Arc<Member> {
        let secondaries = fleet.secondaries();
        secondaries[self.rng.below(secondaries.len() as u64) as usize].clone()
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
                let primary = fleet.primary();
                self.record(format!(
                    "FAULT partition c{} from c{} for {}ms",
                    primary.index,
                    secondary.cluster.index,
                    outage.as_millis()
                ));
                let links = node_links(&primary, &secondary.cluster);
                let net = NetSim::current();
                for (from, to) in &links {
                    net.clog_link(*from, *to);
                }
                tokio::time::sleep(outage).await;
                for (from, to) in &links {
                    net.unclog_link(*from, *to);
                }
                self.record(format!(
                    "HEAL c{} from c{}",
                    primary.index, secondary.cluster.index
                ));
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
            FaultKind::Rotate => self.rotate(fleet, spec).await,
            FaultKind::Failover => self.failover(fleet).await,
            FaultKind::SplitBrain => self.split_brain(fleet, spec).await,
            kind => {
                let cluster = match spec.on {
                    Target::Primary => fleet.primary(),
                    Target::Secondary => self.pick_secondary(fleet).cluster.clone(),
                    Target::Any => {
                        let index = self.rng.below(fleet.members.len() as u64) as usize;
                        fleet.members[index].cluster.clone()
                    }
                };
                self.inject(&cluster, kind, spec, &fleet.unseal_key, &fleet.root_token)
                    .await;
                self.record_digests(&cluster);
            }
        }
    }

    /// Point cluster 0's workload at the fleet as it is now: replicated registers are
    /// read on the primary (not at all while `reads` is off) and written through it, or
    /// through any cluster when the scenario says so; the local mount stays cluster 0's.
    fn set_route(&self, fleet: &Fleet, reads: bool) {
        let primary = fleet.primary_member();
        let through_secondaries = self
            .scenario
            .replication
            .is_some_and(|replication| replication.write_through_secondaries);
        let writes = if through_secondaries {
            fleet
                .members
                .iter()
                .map(|member| (member.cluster.clone(), member.token()))
                .collect()
        } else {
            vec![(primary.cluster.clone(), primary.token())]
        };
        *self.route.lock().unwrap() = Some(Route {
            reads: reads.then(|| (primary.cluster.clone(), primary.token())),
            writes,
            local: (fleet.history_cluster(), fleet.members[0].token()),
        });
    }

    /// Rotate the barrier key on the primary; every other strike (drawn by seed) does
    /// it while a secondary is cut off, which must then get the new term after the heal.
    async fn rotate(&self, fleet: &Fleet, spec: &FaultSpec) {
        let primary = fleet.primary();
        let cut_off = (self.rng.below(2) == 0).then(|| self.pick_secondary(fleet));
        let outage = Duration::from_millis(self.between(spec.outage_ms));
        let net = NetSim::current();
        let links = cut_off
            .as_ref()
            .map(|secondary| node_links(&primary, &secondary.cluster))
            .unwrap_or_default();
        if let Some(secondary) = &cut_off {
            self.record(format!(
                "FAULT partition c{} from c{} for {}ms, across a rotation",
                primary.index,
                secondary.cluster.index,
                outage.as_millis()
            ));
            for (from, to) in &links {
                net.clog_link(*from, *to);
            }
            tokio::time::sleep(outage / 2).await;
        }
        self.record(format!("c{}: FAULT rotate the barrier key", primary.index));
        let rotated = self.post_empty(&fleet.primary_member(), "sys/rotate").await;
        if !matches!(rotated, Some(200 | 204)) {
            self.liveness_failure(&primary, format!("rotate answered {rotated:?}"));
        }
        if let Some(secondary) = &cut_off {
            tokio::time::sleep(outage / 2).await;
            for (from, to) in &links {
                net.unclog_link(*from, *to);
            }
            self.record(format!(
                "HEAL c{} from c{}",
                primary.index, secondary.cluster.index
            ));
        }
    }

    /// A planned failover: demote the primary, promote a secondary without force (it
    /// must hold every write the demoted primary acknowledged), then point every other
    /// cluster, the old primary included, at the new one. The workload keeps writing
    /// throughout; its reads pause from the demotion until the promotion is
    /// acknowledged, since until then no cluster both holds every acknowledged write and
    /// takes new ones.
    async fn failover(&self, fleet: &Fleet) {
        let old = fleet.primary_member();
        let new = self.pick_secondary(fleet);
        self.record(format!(
            "FAULT planned failover from c{} to c{}",
            old.cluster.index, new.cluster.index
        ));
        self.set_route(fleet, false);
        let demoted = self
            .post_empty(&old, "sys/replication/performance/primary/demote")
            .await;
        if demoted != Some(200) {
            self.liveness_failure(&old.cluster, format!("demote answered {demoted:?}"));
            self.set_route(fleet, true);
            return;
        }
        if !self.promote(&new, false).await {
            // The demoted primary still holds every acknowledged write: read there.
            self.set_route(fleet, true);
            return;
        }
        for member in &fleet.members {
            member.repointing.store(true, Ordering::SeqCst);
        }
        fleet.epochs.lock().unwrap().push(EpochOpened {
            cluster: new.cluster.index,
            at_us: self.now_us(),
        });
        self.set_route(fleet, true);
        new.repointing.store(false, Ordering::SeqCst);
        for member in fleet.secondaries() {
            self.repoint(fleet, &member).await;
        }
    }

    /// Split brain: the primary is cut off from every other cluster while its own
    /// clients still reach it, a secondary is force-promoted, the partition heals, and
    /// the old primary is demoted and made to follow the new one.
    ///
    /// The oracle's workload pauses, and the new primary is caught up, before the cut:
    /// so every write in the oracle's history is on the new primary, and the writes the
    /// old primary takes during the split are a writer's of their own (registers
    /// `kv/divergent-kN`). Checked: no cluster accepts a replicated write once it reports
    /// itself superseded, the two sides never accept writes in the same epoch, the old
    /// primary reports at least as many divergent WAL entries as it acknowledged
    /// divergent writes (before and after it follows), and no divergent write reaches
    /// any other cluster nor survives on the old primary once it follows (the final
    /// checks read every divergent register on every cluster, and compare Merkle roots).
    async fn split_brain(&self, fleet: &Fleet, spec: &FaultSpec) {
        let old = fleet.primary_member();
        let new = self.pick_secondary(fleet);
        let outage = Duration::from_millis(self.between(spec.outage_ms));
        self.record(format!(
            "FAULT split brain: c{} cut off for {}ms, c{} force-promoted",
            old.cluster.index,
            outage.as_millis(),
            new.cluster.index
        ));
        *self.route.lock().unwrap() = Some(Route {
            reads: None,
            writes: Vec::new(),
            local: (fleet.history_cluster(), fleet.members[0].token()),
        });
        // Every operation in flight has its answer by then.
        tokio::time::sleep(crate::client::REQUEST_TIMEOUT).await;
        if !self.await_same_position(fleet, &new.cluster).await {
            self.liveness_failure(&new.cluster, "never caught up before the split".into());
        }
        let net = NetSim::current();
        let links: Vec<_> = fleet
            .secondaries()
            .iter()
            .flat_map(|member| node_links(&old.cluster, &member.cluster))
            .collect();
        for (from, to) in &links {
            net.clog_link(*from, *to);
        }
        let stop = AtomicBool::new(false);
        let token = old.token();
        let split = async {
            tokio::time::sleep(Duration::from_millis(self.between([100, 500]))).await;
            let promoted = self.promote(&new, true).await;
            let mut new_generation = None;
            if promoted {
                for member in &fleet.members {
                    member.repointing.store(true, Ordering::SeqCst);
                }
                fleet.epochs.lock().unwrap().push(EpochOpened {
                    cluster: new.cluster.index,
                    at_us: self.now_us(),
                });
                new.repointing.store(false, Ordering::SeqCst);
                self.set_route(fleet, true);
                new_generation = self.primary_generation(&new.cluster).await;
                for member in fleet.secondaries() {
                    if member.cluster.index != old.cluster.index {
                        self.repoint(fleet, &member).await;
                    }
                }
                tokio::time::sleep(outage).await;
            }
            for (from, to) in &links {
                net.unclog_link(*from, *to);
            }
            self.record(format!("HEAL c{} from every cluster", old.cluster.index));
            let report = if promoted {
                self.await_superseded(&old.cluster).await
            } else {
                None
            };
            // The writer goes on a while after the news arrived: those writes must be
            // refused.
            tokio::time::sleep(Duration::from_millis(self.between([200, 1000]))).await;
            stop.store(true, Ordering::SeqCst);
            (promoted, new_generation, report)
        };
        let (divergent, (promoted, new_generation, report)) =
            tokio::join!(self.divergent_writer(&old.cluster, &token, &stop), split);
        if !promoted {
            return;
        }
        self.check_divergent(
            fleet,
            &old.cluster,
            &divergent,
            new_generation,
            report.as_ref(),
        );
        let demoted = self
            .post_empty(&old, "sys/replication/performance/primary/demote")
            .await;
        if demoted != Some(200) {
            self.liveness_failure(&old.cluster, format!("demote answered {demoted:?}"));
        }
        self.repoint(fleet, &old).await;
        // Following the new primary, it still reports what it discarded.
        let acknowledged = divergent.iter().filter(|write| write.acknowledged).count() as u64;
        let mut after = None;
        for node in old.cluster.up() {
            if let Some(status) = self.status(&old.cluster, node).await {
                after = Some(status);
            }
        }
        let reported = after
            .as_ref()
            .and_then(|status| status["divergent_wals"].as_u64());
        if acknowledged > 0 && reported.is_none_or(|reported| reported < acknowledged) {
            self.violation(
                &old.cluster,
                format!(
                    "following the new primary it reports {reported:?} divergent WAL entries, \
                     but acknowledged {acknowledged} divergent writes"
                ),
            );
        }
        fleet.divergent.lock().unwrap().extend(divergent);
    }

    /// No write a split brain's cut-off primary took is on any cluster at the end: not
    /// merged into the new primary, nor kept by the old one now that it follows.
    async fn check_divergent_gone(&self, fleet: &Fleet) {
        let registers: BTreeSet<String> = fleet
            .divergent
            .lock()
            .unwrap()
            .iter()
            .map(|write| write.register.clone())
            .collect();
        for member in &fleet.members {
            let cluster = &member.cluster;
            for register in &registers {
                let mut answer = None;
                for _ in 0..super::FINAL_READ_ATTEMPTS_MAX {
                    let node = self.rng.below(cluster.size() as u64) as usize;
                    answer = match call(
                        &cluster.api_addr(node),
                        Method::GET,
                        register,
                        Some(&member.token()),
                        None,
                    )
                    .await
                    {
                        Ok((200, body)) => Some(body["data"]["value"].as_str().map(str::to_string)),
                        Ok((404, _)) => Some(None),
                        _ => None,
                    };
                    if answer.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                match answer {
                    Some(None) => {}
                    Some(Some(value)) => self.violation(
                        cluster,
                        format!(
                            "holds the divergent write {register}={value} after the split brain"
                        ),
                    ),
                    None => self.liveness_failure(cluster, format!("could not read {register}")),
                }
            }
        }
    }

    /// Wait until `cluster` streams at the primary's `last_wal`.
    async fn await_same_position(&self, fleet: &Fleet, cluster: &Cluster) -> bool {
        let primary = fleet.primary();
        let deadline = now() + CATCH_UP_TIMEOUT;
        while now() < deadline {
            let mut last_wal = None;
            for node in primary.up() {
                if let Some(status) = self.status(&primary, node).await
                    && status["mode"] == "primary"
                    && status["state"] == "running"
                {
                    last_wal = status["last_wal"].as_u64();
                }
            }
            for node in cluster.up() {
                if let Some(status) = self.status(cluster, node).await
                    && status["state"] == "stream-wals"
                    && last_wal.is_some()
                    && status["last_remote_wal"].as_u64() == last_wal
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The epoch generation a node of `cluster` reports as a running primary.
    async fn primary_generation(&self, cluster: &Cluster) -> Option<u64> {
        for node in cluster.up() {
            if let Some(status) = self.status(cluster, node).await
                && status["mode"] == "primary"
                && status["superseded"] != Value::Bool(true)
            {
                return status["epoch"].as_u64();
            }
        }
        None
    }

    /// Wait until a node of `cluster` reports itself superseded; its status then.
    async fn await_superseded(&self, cluster: &Cluster) -> Option<Value> {
        let deadline = now() + ACTIVATION_TIMEOUT;
        while now() < deadline {
            for node in cluster.up() {
                if let Some(status) = self.status(cluster, node).await
                    && status["superseded"] == Value::Bool(true)
                {
                    self.record(format!(
                        "c{}: node-{} reports itself superseded by epoch {}: {} divergent WAL entries",
                        cluster.index,
                        node + 1,
                        status["superseded_by_epoch"],
                        status["divergent_wals"]
                    ));
                    return Some(status);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.liveness_failure(cluster, "never learned it was superseded".into());
        None
    }

    /// Writes to the cut-off primary until `stop`, each after asking the same node for
    /// its status, so each acknowledgement is paired with the epoch and standing the
    /// node claimed just before.
    async fn divergent_writer(
        &self,
        cluster: &Cluster,
        token: &str,
        stop: &AtomicBool,
    ) -> Vec<DivergentWrite> {
        let mut writes = Vec::new();
        let keys = self.scenario.workload.keys as u64;
        while !stop.load(Ordering::SeqCst) {
            let node = self.rng.below(cluster.size() as u64) as usize;
            let before = self.status(cluster, node).await;
            let register = format!("kv/divergent-k{}", self.rng.below(keys));
            let value = format!("d{}", writes.len());
            let answer = call(
                &cluster.api_addr(node),
                Method::PUT,
                &register,
                Some(token),
                Some(&json!({ "value": value })),
            )
            .await;
            let completed_us = self.now_us();
            self.record(format!(
                "c{} divergent writer PUT {register}={value} via node-{} -> {}",
                cluster.index,
                node + 1,
                describe(&answer)
            ));
            writes.push(DivergentWrite {
                register,
                value,
                completed_us,
                acknowledged: matches!(answer, Ok((200..=299, _))),
                generation: before.as_ref().and_then(|status| status["epoch"].as_u64()),
                superseded_before: before
                    .as_ref()
                    .is_some_and(|status| status["superseded"] == Value::Bool(true)),
                primary_before: before
                    .as_ref()
                    .is_some_and(|status| status["mode"] == "primary"),
            });
            tokio::time::sleep(Duration::from_millis(self.between([80, 250]))).await;
        }
        writes
    }

    /// The split's safety, from what the divergent writer saw and the old primary's
    /// report once it learned it was superseded.
    fn check_divergent(
        &self,
        fleet: &Fleet,
        old: &Cluster,
        writes: &[DivergentWrite],
        new_generation: Option<u64>,
        report: Option<&Value>,
    ) {
        let promoted_us = fleet
            .epochs
            .lock()
            .unwrap()
            .last()
            .map_or(0, |epoch| epoch.at_us);
        let acknowledged: Vec<&DivergentWrite> =
            writes.iter().filter(|write| write.acknowledged).collect();
        for write in &acknowledged {
            if write.superseded_before {
                self.violation(
                    old,
                    format!(
                        "accepted {}={} at {}us after reporting itself superseded",
                        write.register, write.value, write.completed_us
                    ),
                );
            }
            if write.primary_before
                && write.generation.is_some()
                && write.generation == new_generation
            {
                self.violation(
                    old,
                    format!(
                        "accepted {}={} in epoch {:?}, the epoch the promoted cluster accepts writes in",
                        write.register, write.value, write.generation
                    ),
                );
            }
        }
        let after_promotion = acknowledged
            .iter()
            .filter(|write| write.completed_us > promoted_us)
            .count();
        self.record(format!(
            "c{}: {} divergent writes, {} acknowledged ({after_promotion} after the promotion), new epoch {new_generation:?}",
            old.index,
            writes.len(),
            acknowledged.len()
        ));
        if new_generation.is_none() {
            self.liveness_failure(old, "the promoted cluster reported no epoch".into());
        }
        let Some(report) = report else { return };
        let reported = report["divergent_wals"].as_u64();
        if reported.is_none_or(|reported| reported < acknowledged.len() as u64) {
            self.violation(
                old,
                format!(
                    "superseded, it reports {reported:?} divergent WAL entries, but acknowledged {} writes after it was cut off",
                    acknowledged.len()
                ),
            );
        }
    }

    /// An operator's POST of an empty body to `path` on `member`, retried until it gets
    /// a definite answer (recorded).
    async fn post_empty(&self, member: &Member, path: &str) -> Option<u16> {
        let cluster = &member.cluster;
        let answer = self
            .retry_call(cluster, |address| {
                let token = member.token();
                async move {
                    call(
                        &address,
                        Method::POST,
                        path,
                        Some(&token),
                        Some(&json!({})),
                    )
                    .await
                }
            })
            .await;
        self.record(format!("c{}: POST {path} -> {answer:?}", cluster.index));
        answer
    }

    /// Promote `member` (with `force` or not), retrying while it refuses because it has
    /// not yet caught up with its demoted primary.
    async fn promote(&self, member: &Member, force: bool) -> bool {
        let cluster = &member.cluster;
        let deadline = now() + ACTIVATION_TIMEOUT;
        while now() < deadline {
            let node = self.rng.below(cluster.size() as u64) as usize;
            let answer = call(
                &cluster.api_addr(node),
                Method::POST,
                "sys/replication/performance/secondary/promote",
                Some(&member.token()),
                Some(&json!({ "force": force })),
            )
            .await;
            self.record(format!(
                "c{}: promote (force={force}) via node-{} -> {}",
                cluster.index,
                node + 1,
                describe_with_reason(&answer)
            ));
            if matches!(answer, Ok((200, _))) {
                return true;
            }
            // A promotion whose answer was lost (a forced one waits on its unreachable
            // primary longer than a client does) may have happened all the same.
            if self.primary_generation(cluster).await.is_some() {
                self.record(format!("c{}: reports itself primary", cluster.index));
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.liveness_failure(cluster, "the secondary was never promoted".into());
        false
    }

    /// Make `member` follow the primary now: a secondary token from the primary under a
    /// new id, `update-primary` (no wipe: a Merkle diff resyncs it), then wait until it
    /// streams in the primary's epoch.
    async fn repoint(&self, fleet: &Fleet, member: &Member) {
        let cluster = &member.cluster;
        let id = format!("s{}e{}", cluster.index, fleet.epochs.lock().unwrap().len());
        for attempt in 0..ACTIVATION_ATTEMPTS_MAX {
            let Some(activation_token) = self.secondary_token(fleet, &id).await else {
                continue;
            };
            let node = self.rng.below(cluster.size() as u64) as usize;
            let answer = call(
                &cluster.api_addr(node),
                Method::POST,
                "sys/replication/performance/secondary/update-primary",
                Some(&member.token()),
                Some(&json!({ "token": activation_token })),
            )
            .await;
            self.record(format!(
                "c{}: update-primary to {id} (attempt {attempt}) via node-{} -> {}",
                cluster.index,
                node + 1,
                describe_with_reason(&answer)
            ));
            *member.id.lock().unwrap() = id.clone();
            if self.await_following(fleet, cluster).await {
                member.positions.lock().unwrap().clear();
                member.repointing.store(false, Ordering::SeqCst);
                return;
            }
        }
        self.liveness_failure(cluster, "never followed the new primary".into());
    }

    /// Wait until a node of `cluster` streams from the primary in the primary's epoch.
    async fn await_following(&self, fleet: &Fleet, cluster: &Cluster) -> bool {
        let primary = fleet.primary();
        let deadline = now() + ACTIVATION_TIMEOUT;
        while now() < deadline {
            let mut epoch = None;
            for node in primary.up() {
                if let Some(status) = self.status(&primary, node).await
                    && status["mode"] == "primary"
                {
                    epoch = Some(status["epoch"].clone());
                }
            }
            for node in cluster.up() {
                if let Some(status) = self.status(cluster, node).await
                    && status["state"] == "stream-wals"
                    && epoch.as_ref() == Some(&status["epoch"])
                {
                    self.record(format!(
                        "c{}: node-{} streams in epoch {}",
                        cluster.index,
                        node + 1,
                        status["epoch"]
                    ));
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Disable, revoke the old id on the primary, activate under a new id.
    async fn reactivate(&self, fleet: &Fleet, secondary: &Member, spec: &FaultSpec) {
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
            .retry_call(&fleet.primary(), |address| {
                let token = fleet.primary_token();
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
        self.record(format!(
            "c{}: revoke-secondary {old_id} -> {revoked:?}",
            fleet.primary_index()
        ));
        tokio::time::sleep(Duration::from_millis(self.between(spec.outage_ms))).await;
        self.activate(fleet, secondary).await;
    }

    /// Deny a replicated mount to `secondary` for the outage, then allow it again (the
    /// `last` strike may leave the deny in place when the scenario says `final_deny`).
    async fn filter_change(&self, fleet: &Fleet, secondary: &Member, spec: &FaultSpec, last: bool) {
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
            .retry_call(&fleet.primary(), |address| {
                let token = fleet.primary_token();
                let body = json!({"mode": "deny", "paths": [mount.clone()]});
                let path = path.clone();
                async move { call(&address, Method::POST, &path, Some(&token), Some(&body)).await }
            })
            .await;
        self.record(format!(
            "c{}: deny {mount} to {id} -> {denied:?}",
            fleet.primary_index()
        ));
        if denied != Some(204) {
            self.liveness_failure(&fleet.primary(), format!("deny answered {denied:?}"));
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
            .retry_call(&fleet.primary(), |address| {
                let token = fleet.primary_token();
                let path = path.clone();
                async move { call(&address, Method::DELETE, &path, Some(&token), None).await }
            })
            .await;
        self.record(format!(
            "c{}: allow {mount} to {id} -> {allowed:?}",
            fleet.primary_index()
        ));
        if allowed == Some(204) {
            *secondary.deny.lock().unwrap() = None;
        } else {
            self.liveness_failure(&fleet.primary(), format!("allow answered {allowed:?}"));
        }
    }

    // ----- the sampler -----

    /// One sample of every node's applied state: what the primary holds locally, and
    /// the invariants on each secondary node.
    fn sample(&self, fleet: &Fleet) {
        let primary = fleet.primary();
        {
            let mut local = fleet.primary_local_keys.lock().unwrap();
            let mut last_wals = Vec::new();
            for (index, node) in live_nodes_indexed(&primary) {
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
                        local
                            .entry((key.to_string(), value.clone()))
                            .or_insert(primary.index);
                    }
                }
            }
            let last_wals = last_wals.join(" ");
            let mut recorded = fleet.primary_last_wals.lock().unwrap();
            if *recorded != last_wals {
                self.record(format!("c{}: last_wal {last_wals}", primary.index));
                *recorded = last_wals;
            }
        }
        let now_us = self.now_us();
        for secondary in &fleet.secondaries() {
            let cluster = &secondary.cluster;
            let repointing = secondary.repointing.load(Ordering::SeqCst);
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
                                local
                                    .get(&(key.to_string(), (*value).clone()))
                                    .is_some_and(|owner| *owner != cluster.index)
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
                    let prefix =
                        key_space::mount_data_prefix(TableKind::Secrets, false, &deny.uuid);
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
                if repointing {
                    // Its position moves to the new primary's numbering: the change
                    // starts a fresh record once it streams from there.
                    secondary.positions.lock().unwrap().remove(&index);
                    continue;
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
    async fn check_caught_up(&self, fleet: &Fleet, secondary: &Member) {
        let cluster = &secondary.cluster;
        let logged_in = secondary.token.lock().unwrap().is_some();
        if !logged_in && !self.login(secondary).await {
            return;
        }
        let deadline = now() + CATCH_UP_TIMEOUT;
        let mut last_problem = String::from("never streamed");
        let mut at_position = false;
        while now() < deadline {
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

    /// Once every secondary caught up, both sides' `clock_skew_ms` are the injected
    /// difference of their wall clocks, within the pull's transit: the primary's entry of
    /// each secondary (its clock minus the primary's) and each secondary's own status
    /// (the primary's clock minus its own). A status that filled in 0 fails here for
    /// most seeds.
    async fn check_clock_skews(&self, fleet: &Fleet) {
        let primary = fleet.primary();
        let Some(node) = primary.up().into_iter().next() else {
            return;
        };
        let Some(status) = self.status(&primary, node).await else {
            return;
        };
        let entries = status["secondaries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for member in fleet.secondaries() {
            let id = member.id.lock().unwrap().clone();
            let expected = member.cluster.clock_skew_ms - primary.clock_skew_ms;
            let Some(entry) = entries.iter().find(|entry| entry["node_id"] == id.as_str()) else {
                continue;
            };
            let measured = entry["clock_skew_ms"]
                .as_str()
                .and_then(|text| text.parse::<i64>().ok());
            self.check_skew(&member.cluster, "the primary's status", measured, expected);
            for node in member.cluster.up() {
                // Only the active node pulls, so only its status has a primary entry.
                if let Some(own) = self.status(&member.cluster, node).await
                    && own["state"] == "stream-wals"
                    && let Some(primary_entry) = own["primaries"].get(0)
                {
                    let measured = primary_entry["clock_skew_ms"]
                        .as_str()
                        .and_then(|text| text.parse::<i64>().ok());
                    self.check_skew(&member.cluster, "its own status", measured, -expected);
                }
            }
        }
    }

    fn check_skew(&self, cluster: &Cluster, source: &str, measured: Option<i64>, expected: i64) {
        match measured {
            Some(measured) if (measured - expected).abs() <= super::CLOCK_SKEW_TOLERANCE_MS => {
                self.record(format!(
                    "c{}: clock skew in {source}: {measured} ms (injected {expected} ms)",
                    cluster.index
                ));
            }
            other => self.violation(
                cluster,
                format!(
                    "clock skew in {source} is {other:?} ms, but the clocks differ by {expected} ms"
                ),
            ),
        }
    }

    /// `Ok` when the secondary streams at the primary's `last_wal` and reads as the
    /// primary; else what differs, and whether the positions were equal.
    async fn compare(&self, fleet: &Fleet, secondary: &Member) -> Result<(), (String, bool)> {
        let cluster = &secondary.cluster;
        let primary = fleet.primary();
        let mut primary_status = None;
        for node in primary.up() {
            if let Some(status) = self.status(&primary, node).await
                && primary
                    .registry
                    .lock()
                    .unwrap()
                    .get(&node)
                    .is_some_and(|node| node.core().is_active())
            {
                primary_status = Some((node, status));
            }
        }
        let (primary_active, primary_status) =
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
            if mount == "local" && Arc::ptr_eq(cluster, &fleet.history_cluster()) {
                // Its own local mount, kept through a failover: the oracle checks it.
                continue;
            }
            let expected =
                if mount == "local" || deny.as_ref().is_some_and(|deny| deny.mount == mount) {
                    None
                } else {
                    let answer = self
                        .read_via(
                            &primary,
                            usize::MAX,
                            Phase::Final,
                            &register,
                            &fleet.primary_token(),
                            self.rng.below(primary.size() as u64) as usize,
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
        // The keyring is replicated: every node of the secondary opens data under the
        // primary's newest key term (a rotation must reach each of them).
        let primary_term = self
            .key_term(&primary, primary_active, &fleet.primary_token())
            .await
            .ok_or(("the primary did not answer key-status".to_string(), false))?;
        let token = secondary.token();
        for node in cluster.up() {
            let term = self.key_term(cluster, node, &token).await.ok_or((
                format!("node-{} did not answer key-status", node + 1),
                false,
            ))?;
            if term != primary_term {
                return Err((
                    format!(
                        "node-{} has key term {term}, the primary {primary_term}",
                        node + 1
                    ),
                    true,
                ));
            }
        }
        Ok(())
    }

    /// The active key term `node` of `cluster` reports (`sys/key-status`).
    async fn key_term(&self, cluster: &Cluster, node: usize, token: &str) -> Option<u64> {
        match call(
            &cluster.api_addr(node),
            Method::GET,
            "sys/key-status",
            Some(token),
            None,
        )
        .await
        {
            Ok((200, body)) => body["data"]["term"]
                .as_u64()
                .or_else(|| body["term"].as_u64()),
            _ => None,
        }
    }

    /// The secondary readers' history: no phantom, no local value, monotonic reads.
    fn check_secondary_reads(&self, fleet: &Fleet) {
        let history = fleet.history_cluster().history.lock().unwrap().clone();
        let mut written: BTreeMap<(&str, &str), Vec<&crate::oracle::Write>> = BTreeMap::new();
        for write in &history.writes {
            if let Some(value) = &write.value {
                written
                    .entry((write.register.as_str(), value.as_str()))
                    .or_default()
                    .push(write);
            }
        }
        for secondary in &fleet.members {
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
            type Seen<'a> = BTreeMap<(usize, &'a str), (u64, BTreeSet<&'a str>, Option<&'a str>)>;
            let mut seen: Seen = BTreeMap::new();
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

/// An answer with the reason the server gave for any refusal (an operator's step that
/// fails says why in the trace).
fn describe_with_reason(result: &Result<(u16, Value), String>) -> String {
    match result {
        Ok((status, body)) if *status >= 400 => match body["errors"][0].as_str() {
            Some(reason) => format!("{status} ({reason})"),
            None => status.to_string(),
        },
        _ => describe(result),
    }
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
