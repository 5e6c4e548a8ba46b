//! The core of a node: seal state, the active/standby decision, and the request path
//! from an [`ApiRequest`] to a backend and back.
//!
//! Node-local endpoints (init, unseal, seal status, health, leader, Raft join) are
//! answered by every node. Everything else needs an unsealed node; a standby forwards
//! it whole to the active node (the Raft leader), which serves it.

pub mod cache_watch;
pub mod cluster;
pub mod forwarding;
pub mod help;
pub mod index_state;
pub mod join;
pub mod key_operations;
pub mod key_watch;
pub mod known_fields;
pub mod metrics_endpoint;
pub mod mounts;
pub mod node_endpoints;
pub mod remount;
pub mod replication_endpoints;
pub mod router;
pub mod snapshots;
pub mod system;
pub mod version_history;

use crate::metrics::SeriesKey;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::barrier::{Barrier, Keyring};
use crate::channel::ForwardRequest;
use crate::env::Env;
use crate::http::{ApiHandler, ApiRequest, ApiResponse};
use crate::logical::LogicalError;
use crate::seal::{self, SealConfig, UnsealProgress};
use crate::seeded_bugs::SeededBug;
use crate::storage::commit_count::counting_commits;
use crate::storage::key_space::{
    CLUSTER_CA_KEY, CLUSTER_INFO_KEY, KEYRING_KEY, ROOT_KEY_KEY, SEAL_CONFIG_KEY,
};
pub use cluster::{Cluster, NodeAddress, Peer, RaftIndexes, SharedCluster, SingleNodeCluster};
use index_state::{IndexState, IndexStateKey};
pub use join::JoinTarget;
use join::PendingJoin;

/// The version Arca reports where Vault reports its own.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How long a request that names an `X-Vault-Index` state waits for this node to reach
/// it before the answer is 412.
pub const INDEX_STATE_WAIT_MAX: Duration = Duration::from_secs(1);
/// How long an unseal waits for this node to catch up with its cluster before it judges
/// the shares against what it holds (see [`Core::catch_up_before_judging_shares`]).
pub const UNSEAL_CATCH_UP_WAIT_MAX: Duration = Duration::from_secs(3);
const UNSEAL_CATCH_UP_POLL_INTERVAL: Duration = Duration::from_millis(20);
const INDEX_STATE_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long a sealing leader that handed the lead over waits to see a newer term before
/// it closes its cluster channel: the hand-over goes out over that channel, and closed
/// too soon, it is lost and the followers elect only after their timeout.
pub const SEAL_HAND_OVER_WAIT_MAX: Duration = Duration::from_secs(2);
const SEAL_HAND_OVER_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// The answer to an unseal share sent to a node still finishing its own snapshot restore.
pub const RESTORE_STILL_RUNNING_MESSAGE: &str = "this node is finishing a snapshot restore: it still leads, sealed, until every voter holds the restore; submit the unseal key once it has handed over the lead";

/// Static facts about this node, from its configuration.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub node: NodeAddress,
    /// `cluster_name` from the configuration; generated at init when absent.
    pub cluster_name: Option<String>,
    /// `retry_join { leader_api_addr ... }` entries.
    pub retry_join: Vec<JoinTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_name: String,
    pub cluster_id: String,
}

#[derive(Default)]
struct SealState {
    progress: UnsealProgress,
    pending_join: Option<PendingJoin>,
    /// The seal configuration learned through a completed join, until Raft delivers the
    /// cluster's own copy to this node's storage.
    joined_seal_config: Option<SealConfig>,
    /// The cluster's CA as the join exchange handed it over: this node's identity until
    /// its own storage holds the CA (Raft brings it).
    joined_ca: Option<crate::channel::ClusterCa>,
    /// Unsealed before this node's applied state held the cluster CA (a restarted node
    /// still catching up): the cache watcher installs the identity once the CA arrives.
    identity_pending: bool,
}

/// The logical side of the core (mounts, tokens, policies, engines), installed once
/// the node assembles it. Requests reach it only on the active, unsealed node.
pub trait LogicalService: Send + Sync + 'static {
    fn handle(&self, request: ApiRequest) -> BoxFuture<'_, ApiResponse>;
    /// Called when this node becomes the active node for a new Raft term (after an
    /// unseal or an election): create defaults that are missing, resume expirations.
    /// Caches are not reloaded here: the cache watcher keeps them current.
    fn on_active(&self) -> BoxFuture<'_, Result<(), LogicalError>>;
    /// Called by the cache watcher on every node: reload (or drop) the caches named,
    /// each built whole before it replaces the old one, which stays on an error.
    fn reload_caches<'a>(
        &'a self,
        reloads: &'a cache_watch::Reloads,
    ) -> BoxFuture<'a, Result<(), LogicalError>>;
    /// On a performance primary: the entity of a login alias a secondary saw first,
    /// created here if it is new (Vault's `persist_alias`).
    fn persist_alias(
        &self,
        alias: crate::identity::OwnedLoginAlias,
        now_unix: i64,
    ) -> BoxFuture<'_, Result<crate::identity::Entity, LogicalError>>;
    /// Called once at initialization with the barrier unsealed: create the root token.
    fn on_initialize(
        &self,
        root_token_id: Option<String>,
    ) -> BoxFuture<'_, Result<String, LogicalError>>;
    /// A new root token in the token store, for a completed generate-root.
    fn create_root_token(&self) -> BoxFuture<'_, Result<String, LogicalError>>;
    /// Record a request the core answered itself (rekey, generate-root) on the audit
    /// devices: its request entry, or with `input.response` set, its response entry.
    fn audit_non_logical(&self, input: &crate::audit::AuditInput) -> Result<(), LogicalError>;
    /// Close and reopen every file audit device (SIGHUP, after a log rotation); the
    /// paths of the devices that failed. Nothing to do while the audit table is not
    /// loaded (sealed): unseal opens the files afresh.
    fn reopen_audit_files(&self) -> Vec<String>;
    /// Counts `sys/metrics` reports as gauges (tokens, leases), read at scrape time.
    fn usage_gauges(&self) -> Vec<(&'static str, f64)>;
}

pub struct Core {
    env: Env,
    config: CoreConfig,
    cluster: SharedCluster,
    barrier: Barrier,
    seal_state: Mutex<SealState>,
    challenges: Mutex<BTreeMap<String, join::Challenge>>,
    logical: Mutex<Option<Arc<dyn LogicalService>>>,
    replication: Mutex<Option<Arc<crate::replication::Replication>>>,
    /// How far the caches above the barrier follow this node's applied state.
    caches: cache_watch::CacheProgress,
    /// The Raft term for which `on_active` last ran on this node; `None` until it has.
    active_term: tokio::sync::Mutex<Option<u64>>,
    active_since: Mutex<Option<String>>,
    /// The rekey and generate-root attempts this node holds as active node. A tokio
    /// mutex: an update holds it across its Raft commit.
    key_operations: tokio::sync::Mutex<key_operations::KeyOperations>,
    /// Turns true when the node shuts down: streamed responses (`sys/monitor`) end.
    streams_stop: tokio::sync::watch::Sender<bool>,
    /// True while this node runs a snapshot restore as active node (staging, the swap,
    /// the wait for every voter): a restore that seals it closes the barrier at once but
    /// keeps the lead until the wait is over (see `snapshots.rs`).
    restore_running: std::sync::atomic::AtomicBool,
    /// Held through a whole seal and through an unseal from its share to its identity:
    /// a seal drops the member identity only after its hand-over (up to
    /// [`SEAL_HAND_OVER_WAIT_MAX`]), and an unseal landing in that window was undone by
    /// it: the node answered as unsealed with no identity to forward or replicate with.
    seal_transition: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Core")
            .field("node", &self.config.node)
            .finish()
    }
}

impl Core {
    pub fn new(env: Env, config: CoreConfig, cluster: SharedCluster) -> Arc<Self> {
        let barrier = Barrier::new(cluster.backend(), env.rng.clone()).measured(env.telemetry());
        Arc::new(Self {
            env,
            config,
            cluster,
            barrier,
            seal_state: Mutex::new(SealState::default()),
            challenges: Mutex::new(BTreeMap::new()),
            logical: Mutex::new(None),
            replication: Mutex::new(None),
            caches: Default::default(),
            active_term: tokio::sync::Mutex::new(None),
            active_since: Mutex::new(None),
            key_operations: tokio::sync::Mutex::new(Default::default()),
            streams_stop: tokio::sync::watch::channel(false).0,
            restore_running: std::sync::atomic::AtomicBool::new(false),
            seal_transition: tokio::sync::Mutex::new(()),
        })
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// End every streamed response (the node is shutting down).
    pub fn close_streams(&self) {
        self.streams_stop.send_replace(true);
    }

    /// What a streamed response watches to know when to end.
    pub fn streams_stop(&self) -> tokio::sync::watch::Receiver<bool> {
        self.streams_stop.subscribe()
    }

    pub fn barrier(&self) -> &Barrier {
        &self.barrier
    }

    pub fn cluster(&self) -> &SharedCluster {
        &self.cluster
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn install_logical(&self, logical: Arc<dyn LogicalService>) {
        *lock(&self.logical) = Some(logical);
    }

    pub(crate) fn logical(&self) -> Option<Arc<dyn LogicalService>> {
        lock(&self.logical).clone()
    }

    pub fn install_replication(&self, replication: Arc<crate::replication::Replication>) {
        *lock(&self.replication) = Some(replication);
    }

    /// Performance replication on this node, once installed (every server node has it).
    pub fn replication(&self) -> Option<Arc<crate::replication::Replication>> {
        lock(&self.replication).clone()
    }

    /// The replication role changed (this cluster was activated as a secondary, or
    /// left replication): the barrier's guard follows the stored role, every cache is
    /// reloaded, and the logical side runs its once-per-term duties again.
    pub async fn replication_role_changed(&self) {
        if let Some(replication) = self.replication() {
            replication.apply_role();
        }
        *self.active_term.lock().await = None;
        self.request_cache_reload();
    }

    /// The stored seal configuration, or the leader's while a Raft join awaits unseal.
    pub fn seal_config(&self) -> Option<SealConfig> {
        if let Ok(Some(bytes)) = self.cluster.backend().get(SEAL_CONFIG_KEY)
            && let Ok(config) = SealConfig::from_bytes(&bytes)
        {
            return Some(config);
        }
        let state = lock(&self.seal_state);
        state
            .pending_join
            .as_ref()
            .map(|pending| pending.seal_config.clone())
            .or_else(|| state.joined_seal_config.clone())
    }

    pub fn is_initialized(&self) -> bool {
        self.seal_config().is_some()
    }

    pub fn is_sealed(&self) -> bool {
        self.barrier.is_sealed()
    }

    /// Whether this node is running a snapshot restore as active node. A sealed leader
    /// hands over its lead at once, except in the middle of its own restore.
    pub fn restore_running(&self) -> bool {
        self.restore_running
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Active: unsealed and leading the Raft cluster.
    pub fn is_active(&self) -> bool {
        !self.is_sealed() && self.cluster.is_leader()
    }

    pub fn cluster_info(&self) -> Option<ClusterInfo> {
        let bytes = self.barrier.get(CLUSTER_INFO_KEY).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Initialize a fresh node: bootstrap Raft, create and seal the keyring, create the
    /// root token. Returns the unseal shares and the root token; the node stays sealed.
    pub async fn initialize(
        &self,
        config: SealConfig,
        root_token_id: Option<String>,
    ) -> Result<(Vec<zeroize::Zeroizing<Vec<u8>>>, String), LogicalError> {
        if self.is_initialized() {
            return Err(LogicalError::BadRequest(
                "Vault is already initialized".into(),
            ));
        }
        if !self.cluster.is_bootstrapped() {
            self.cluster
                .bootstrap()
                .await
                .map_err(LogicalError::Internal)?;
        }
        self.wait_for_leadership(Duration::from_secs(10)).await?;
        let now = self.env.clock.unix_seconds();
        let initialized = seal::initialize(&self.env.rng, now, &config)
            .map_err(|error| LogicalError::BadRequest(error.to_string()))?;
        self.cluster
            .backend()
            .commit(initialized.ops)
            .await
            .map_err(|error| LogicalError::Unavailable(error.to_string()))?;
        // Vault leaves a freshly initialized node sealed; the root token is created with
        // the barrier open just long enough to write it.
        self.barrier.unseal_with(initialized.keyring.clone());
        let result = self.finish_initialize(root_token_id).await;
        self.barrier.seal();
        // Sealed: no member identity (init never installed one; this keeps it so).
        self.cluster.set_channel_identity(None).ok();
        *self.active_term.lock().await = None;
        let root_token = result?;
        Ok((initialized.shares, root_token))
    }

    async fn finish_initialize(
        &self,
        root_token_id: Option<String>,
    ) -> Result<String, LogicalError> {
        let info = ClusterInfo {
            cluster_name: self.config.cluster_name.clone().unwrap_or_else(|| {
                format!("vault-cluster-{}", hex::encode(self.env.rng.bytes::<4>()))
            }),
            cluster_id: self.env.rng.uuid(),
        };
        self.barrier
            .put(
                CLUSTER_INFO_KEY,
                serde_json::to_vec(&info).expect("cluster info serializes"),
            )
            .await?;
        let ca = crate::channel::ClusterCa::generate(&self.env.rng)
            .map_err(|error| LogicalError::Internal(error.to_string()))?;
        self.barrier
            .put(CLUSTER_CA_KEY, ca.to_bytes().to_vec())
            .await?;
        let logical = self
            .logical()
            .ok_or_else(|| LogicalError::Internal("the logical core is not installed".into()))?;
        logical.on_initialize(root_token_id).await
    }

    async fn wait_for_leadership(&self, within: Duration) -> Result<(), LogicalError> {
        let deadline = self.env.clock.now() + within;
        while !self.cluster.is_leader() {
            if self.env.clock.now() >= deadline {
                return Err(LogicalError::Unavailable(
                    "this node did not become the Raft leader".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Submit one unseal share (or reset progress).
    ///
    /// The request is checked in Vault's order, whatever the seal state: a reset on an
    /// unsealed node, a missing key and a key that is neither hex nor base64 are each a
    /// 400 before anything else; only a well-formed share on an unsealed node is a no-op.
    pub async fn submit_unseal_share(
        &self,
        share: Option<&str>,
        reset: bool,
    ) -> Result<(), LogicalError> {
        if reset {
            if !self.is_sealed() {
                return Err(LogicalError::BadRequest("vault is unsealed".into()));
            }
            lock(&self.seal_state).progress.reset();
            return Ok(());
        }
        let share = share.filter(|share| !share.is_empty()).ok_or_else(|| {
            LogicalError::BadRequest(
                "'key' must be specified in request body as JSON, or 'reset' set to true".into(),
            )
        })?;
        let share = seal::decode_share(share)
            .map_err(|error| LogicalError::BadRequest(error.to_string()))?;
        let Some(config) = self.seal_config() else {
            return Err(LogicalError::BadRequest("Vault is not initialized".into()));
        };
        let _transition = match self.seal_transition.try_lock() {
            Ok(transition) => transition,
            Err(_) => {
                crate::coverage::mark("unseal-waited-for-seal");
                self.seal_transition.lock().await
            }
        };
        if !self.is_sealed() {
            return Ok(());
        }
        if self.restore_running() {
            // Its barrier closed at the swap, but it still leads until every voter holds
            // the restore: unsealed now, under the snapshot's CA, it would strand them.
            return Err(LogicalError::Unavailable(
                RESTORE_STILL_RUNNING_MESSAGE.into(),
            ));
        }
        self.catch_up_before_judging_shares().await;
        let generation = self.stored_seal_generation()?;
        let outcome = lock(&self.seal_state)
            .progress
            .submit(&self.env.rng, generation, &config, share)
            .map_err(|error| LogicalError::BadRequest(error.to_string()));
        let unseal_key = match outcome {
            Ok(seal::UnsealOutcome::Progress) => return Ok(()),
            Ok(seal::UnsealOutcome::Complete(key)) => key,
            Err(error) => {
                lock(&self.seal_state).progress.reset();
                return Err(error);
            }
        };
        let pending = lock(&self.seal_state).pending_join.clone();
        let keyring = match pending {
            Some(pending) => self.complete_join(&pending, &unseal_key).await?,
            None => self.open_stored_keyring(&unseal_key)?,
        };
        self.barrier.unseal_with(keyring);
        if let Err(error) = self.install_channel_identity() {
            // Without an identity this node cannot reach its peers; a single node still
            // serves. A node unsealed while its applied state is still catching up may
            // not hold the CA yet: the cache watcher installs it when Raft brings it.
            tracing::warn!(%error, "no cluster channel identity yet: installed once this node's storage holds the cluster CA");
            lock(&self.seal_state).identity_pending = true;
        }
        // Nothing above the barrier was readable while sealed: load every cache.
        self.request_cache_reload();
        tracing::info!(node = %self.config.node.node_id, "unsealed");
        Ok(())
    }

    /// Issue this node a certificate from the cluster's CA (read through the barrier)
    /// and serve and dial the cluster channel with it. A joining node got its identity
    /// from the join exchange already, before its storage held anything.
    fn install_channel_identity(&self) -> Result<(), LogicalError> {
        let Some(bytes) = self.barrier.get(CLUSTER_CA_KEY)? else {
            let joined = lock(&self.seal_state).joined_ca.clone();
            return match joined {
                Some(ca) => self.install_identity_from(&ca),
                None => Err(LogicalError::Internal(format!(
                    "{CLUSTER_CA_KEY} is missing from storage"
                ))),
            };
        };
        let ca = crate::channel::ClusterCa::from_bytes(&zeroize::Zeroizing::new(bytes))
            .map_err(|error| LogicalError::Internal(error.to_string()))?;
        self.install_identity_from(&ca)
    }

    pub(super) fn install_identity_from(
        &self,
        ca: &crate::channel::ClusterCa,
    ) -> Result<(), LogicalError> {
        let node_id = &self.config.node.node_id;
        let issue_failed = |error: crate::channel::identity::IdentityError| {
            LogicalError::Internal(error.to_string())
        };
        if !self.cluster.follower_identity_trusts(ca.cert_der()) {
            // Kept on disk so the node follows Raft after a restart, sealed.
            let follower = ca
                .issue_follower(&self.env.rng, node_id)
                .map_err(issue_failed)?;
            if let Err(error) = crate::env::disk::write_atomic(
                self.env.disk.as_ref(),
                crate::channel::identity::FOLLOWER_IDENTITY_PATH,
                &follower.to_bytes(),
            ) {
                // Only a restart while sealed misses it: the node then follows Raft
                // once it is unsealed.
                tracing::warn!(%error, "cannot keep the follower identity on disk");
            }
            self.cluster
                .set_follower_identity(follower)
                .map_err(LogicalError::Internal)?;
        }
        let certificate = ca.issue(&self.env.rng, node_id).map_err(issue_failed)?;
        self.cluster
            .set_channel_identity(Some(certificate))
            .map_err(LogicalError::Internal)?;
        self.refresh_replication_clients_ca();
        Ok(())
    }

    /// Install the channel identity an unseal could not (its storage lacked the CA),
    /// now that an applied change may have brought it.
    pub(super) fn install_pending_channel_identity(&self) {
        if self.is_sealed() || !lock(&self.seal_state).identity_pending {
            return;
        }
        match self.install_channel_identity() {
            Ok(()) => {
                lock(&self.seal_state).identity_pending = false;
                tracing::info!("cluster channel identity installed: this node reaches its peers");
            }
            Err(error) => tracing::debug!(%error, "cluster channel identity still pending"),
        }
    }

    /// Accept `arca-repl/1` from this cluster's current secondaries only, as its stored
    /// replication CA and state say now (none: the channel refuses `arca-repl/1`).
    /// Called at unseal and whenever either changes (the cache watcher).
    pub fn refresh_replication_clients_ca(&self) {
        if self.is_sealed() {
            // The identity that would use it is gone too.
            return;
        }
        let clients = self
            .replication()
            .and_then(|replication| replication.replication_clients());
        if let Err(error) = self.cluster.set_replication_clients(clients) {
            tracing::warn!(%error, "cannot serve arca-repl/1 under the replication CA");
        }
    }

    /// Before shares are judged, let a restarted node apply what its cluster committed.
    ///
    /// A node rebuilds its state at start from its snapshot and the log up to the
    /// committed index it last wrote down, which may trail what it had applied (the file
    /// is written after the commit, and a follower learns of a commit a heartbeat late).
    /// Killed right after a rekey, it would judge shares against the seal from before:
    /// the replaced shares would unseal it. A sealed node still follows Raft, so wait
    /// (briefly) until it has applied everything committed before its leader's term;
    /// with no leader in reach it judges by what it holds, as it must to unseal at all.
    async fn catch_up_before_judging_shares(&self) {
        if lock(&self.seal_state).pending_join.is_some() || !self.cluster.is_bootstrapped() {
            // Joining: its storage holds nothing to judge by yet.
            return;
        }
        let deadline = self.env.clock.now() + UNSEAL_CATCH_UP_WAIT_MAX;
        loop {
            let indexes = self.cluster.indexes();
            if indexes.caught_up_with_term() && self.cluster.leader().is_some() {
                return;
            }
            if self.env.clock.now() >= deadline {
                tracing::warn!(
                    term = indexes.term,
                    committed = indexes.committed,
                    committed_term = indexes.committed_term,
                    applied = indexes.applied,
                    "unseal: no leader confirmed this node's state within {UNSEAL_CATCH_UP_WAIT_MAX:?}; judging the shares by what it holds"
                );
                return;
            }
            tokio::time::sleep(UNSEAL_CATCH_UP_POLL_INTERVAL).await;
        }
    }

    /// Wait until this node no longer leads (a voter it handed over to has begun a
    /// newer term), at most [`SEAL_HAND_OVER_WAIT_MAX`].
    async fn await_hand_over(&self) {
        let deadline = self.env.clock.now() + SEAL_HAND_OVER_WAIT_MAX;
        while self.cluster.is_leader() {
            if self.env.clock.now() >= deadline {
                tracing::warn!(
                    "seal: no voter took the lead within {SEAL_HAND_OVER_WAIT_MAX:?}; closing the cluster channel anyway"
                );
                return;
            }
            tokio::time::sleep(SEAL_HAND_OVER_POLL_INTERVAL).await;
        }
    }

    /// Which seal this node's storage holds now. A node waiting to join a Raft cluster
    /// holds none yet (absent values digest as empty): its attempt belongs to the seal
    /// the leader handed it.
    fn stored_seal_generation(&self) -> Result<seal::SealGeneration, LogicalError> {
        let backend = self.cluster.backend();
        let read = |key: &str| {
            backend
                .get(key)
                .map(Option::unwrap_or_default)
                .map_err(|error| LogicalError::Unavailable(error.to_string()))
        };
        Ok(seal::SealGeneration::of(
            &read(SEAL_CONFIG_KEY)?,
            &read(ROOT_KEY_KEY)?,
        ))
    }

    fn open_stored_keyring(&self, unseal_key: &[u8]) -> Result<Keyring, LogicalError> {
        let backend = self.cluster.backend();
        let read = |key: &str| {
            backend
                .get(key)
                .map_err(|error| LogicalError::Unavailable(error.to_string()))?
                .ok_or_else(|| LogicalError::Internal(format!("{key} is missing from storage")))
        };
        let sealed_root = read(ROOT_KEY_KEY)?;
        let sealed_keyring = read(KEYRING_KEY)?;
        seal::open_keyring(unseal_key, &sealed_root, &sealed_keyring).map_err(|error| match error {
            seal::SealError::InvalidKey(reason) => {
                LogicalError::BadRequest(format!("Error unsealing: {reason}"))
            }
            other => LogicalError::Internal(other.to_string()),
        })
    }

    /// Seal this node: forget the keyring and any unseal progress.
    pub async fn seal(&self) {
        let _transition =
            if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::SealIgnoresUnseal) {
                None
            } else {
                Some(self.seal_transition.lock().await)
            };
        self.barrier.seal();
        let hands_over = self.cluster.is_leader()
            && self
                .cluster
                .configuration()
                .iter()
                .any(|peer| peer.voter && !peer.leader);
        match self.cluster.step_down().await {
            Ok(()) if hands_over => self.await_hand_over().await,
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "a sealed leader could not hand over leadership"),
        }
        // Only after the hand-over, which needs the channel: a sealed node takes no
        // further part in Raft, as in Vault.
        self.cluster.set_channel_identity(None).ok();
        lock(&self.seal_state).progress.reset();
        lock(&self.seal_state).identity_pending = false;
        // A seal ends any rekey or generate-root attempt, as in Vault: nothing of it
        // was written, so the current shares stay the valid ones.
        self.drop_key_operations().await;
        *self.active_term.lock().await = None;
        *lock(&self.active_since) = None;
        tracing::info!(node = %self.config.node.node_id, "sealed");
    }

    /// Make sure `on_active` ran for the current term before serving as active node.
    async fn ensure_active(&self) -> Result<(), LogicalError> {
        let term = self.cluster.indexes().term;
        let mut active_term = self.active_term.lock().await;
        if *active_term == Some(term) {
            return Ok(());
        }
        if let Some(replication) = self.replication() {
            replication.apply_role();
        }
        if let Some(logical) = self.logical() {
            logical.on_active().await?;
        }
        // The caches followed the applied changes while this node was a standby; what
        // it applied last (and any defaults `on_active` just wrote) must be in them
        // before it serves.
        self.await_caches_current(cache_watch::CACHES_CURRENT_WAIT_MAX)
            .await?;
        self.clear_abandoned_restore_staging().await;
        // An attempt begun under an earlier term (this node lost the lead and won it
        // back) is not resumed: its operators may have started over on another node.
        self.drop_key_operations().await;
        *active_term = Some(term);
        *lock(&self.active_since) = Some(crate::util::rfc3339(self.env.clock.unix_millis()));
        // hashicorp/raft's name for "this node became leader": a leader change is an
        // increase of the sum over the nodes.
        self.env.telemetry().incr("vault.raft.state.leader");
        Ok(())
    }

    pub fn active_since(&self) -> Option<String> {
        lock(&self.active_since).clone()
    }

    async fn handle_api(&self, request: ApiRequest) -> ApiResponse {
        let started = self.env.clock.now();
        let name = if is_login_path(&request.path) {
            "vault.core.handle_login_request"
        } else {
            "vault.core.handle_request"
        };
        let response = self.handle_api_unmeasured(request).await;
        self.env
            .metrics
            .measure_since(SeriesKey::plain(name), started, self.env.clock.now());
        response
    }

    async fn handle_api_unmeasured(&self, request: ApiRequest) -> ApiResponse {
        if let Some(response) = self.handle_node_endpoint(&request).await {
            return response;
        }
        if !self.is_initialized() || self.is_sealed() {
            return ApiResponse::error(503, vec!["Vault is sealed".into()]);
        }
        if !self.cluster.is_leader() {
            if is_monitor_stream(&request) {
                // A stream cannot cross the cluster channel, which carries whole answers.
                let leader = self
                    .cluster
                    .leader()
                    .map(|leader| leader.api_addr)
                    .unwrap_or_default();
                return ApiResponse::error(
                    400,
                    vec![format!(
                        "sys/monitor streams the active node's log and this node is a standby: send the request to the active node ({leader})"
                    )],
                );
            }
            return self.forward_to_active(request).await;
        }
        self.serve_as_active(request, Arrival::Client).await
    }

    /// A request a standby forwarded over the cluster channel (`arca-fwd/1`). It is
    /// served here or refused: never forwarded again, so a request that lands on a node
    /// that just lost leadership cannot loop.
    pub async fn handle_forwarded(&self, request: ApiRequest) -> ApiResponse {
        if !self.is_initialized() || self.is_sealed() {
            return ApiResponse::error(503, vec!["Vault is sealed".into()]);
        }
        if !self.cluster.is_leader() {
            return ApiResponse::error(
                503,
                vec!["request was forwarded to a node that is not active".into()],
            );
        }
        self.serve_as_active(request, Arrival::Forwarded).await
    }

    /// Serve a request as the active node, from this node's state, if it can vouch for
    /// that state; else hand it to whoever leads now (a client's request) or refuse it (a
    /// request that was already forwarded here, which must not travel again).
    async fn serve_as_active(&self, request: ApiRequest, arrival: Arrival) -> ApiResponse {
        // Before anything is read (the token, the policies, the data): a node that only
        // believes it leads must not answer from its state.
        if let Err(error) = self.confirm_leadership().await {
            tracing::info!(%error, "not serving from local state: leadership unconfirmed");
            return self.not_serving(request, arrival, &error).await;
        }
        if let Err(error) = self.ensure_active().await {
            return error_response(&error);
        }
        // Rekey and generate-root are the active node's own, answered as Vault's HTTP
        // layer answers them: no token, no envelope.
        if let Some(response) = self.handle_key_operation(&request).await {
            return response;
        }
        if let Err(response) = self.await_index_states(&request).await {
            return response;
        }
        let Some(logical) = self.logical() else {
            return ApiResponse::error(500, vec!["the logical core is not installed".into()]);
        };
        let retry = request.clone();
        let (response, committed) = counting_commits(logical.handle(request)).await;
        // After: the answer is judged by the node's state when it is sent, not when the
        // request arrived. A node paused (or cut off) while it served may have been
        // deposed meanwhile, and what it read may be older than writes a new leader has
        // acknowledged since. A request that committed was served by its term's leader;
        // one that did not is answered afresh by whoever leads now, or refused.
        if committed.commits > 0 {
            return self.with_index_state(response, committed.highest_index);
        }
        if gives_up_the_lead(&retry) && response.status < 300 {
            // It handed the lead on by design: no confirmation can follow, and its answer
            // reads nothing that a newer leader could have changed.
            return response;
        }
        match self.confirm_leadership().await {
            Ok(()) => response,
            Err(error) if is_read_only(&retry.method) => {
                tracing::info!(%error, "leadership lost while serving a read");
                self.not_serving(retry, arrival, &error).await
            }
            Err(error) => ApiResponse::error(
                503,
                vec![format!(
                    "the active node lost its leadership while serving this request; retry: {error}"
                )],
            ),
        }
    }

    /// A request this node will not answer from its state: a client's goes to whoever
    /// leads now; a forwarded one is refused, so it cannot loop.
    async fn not_serving(
        &self,
        request: ApiRequest,
        arrival: Arrival,
        reason: &str,
    ) -> ApiResponse {
        match arrival {
            Arrival::Client => self.forward_to_active(request).await,
            Arrival::Forwarded => ApiResponse::error(
                503,
                vec![format!(
                    "request was forwarded to a node that could not confirm it is active: {reason}"
                )],
            ),
        }
    }

    /// The key `X-Vault-Index` states are signed with: derived from the barrier's first
    /// key term, which every node of the cluster holds and no rotation changes.
    fn index_state_key(&self) -> Option<IndexStateKey> {
        self.barrier
            .with_keyring(|keyring| {
                keyring
                    .term(1)
                    .map(|first| IndexStateKey::derive(&first.key))
            })
            .ok()
            .flatten()
    }

    /// Attach `X-Vault-Index` for a response whose writes committed at `index`.
    fn with_index_state(&self, mut response: ApiResponse, index: u64) -> ApiResponse {
        if let (Some(key), Some(info)) = (self.index_state_key(), self.cluster_info()) {
            let state = IndexState {
                cluster_id: info.cluster_id,
                local_index: index,
                replicated_index: self.replicated_position(),
            };
            response
                .headers
                .push(("x-vault-index".to_string(), state.encode(&key)));
        }
        response
    }

    /// Where this cluster stands in its replication set's WAL: on a performance
    /// secondary the primary's WAL index its data reflects, elsewhere its own last WAL
    /// index (which covers every write it has applied).
    fn replicated_position(&self) -> u64 {
        let Some(view) = self.cluster.backend().applied_view() else {
            return 0;
        };
        if self.barrier.is_replicated_read_only() {
            view.last_remote_wal()
        } else {
            view.wal().last_wal_index()
        }
    }

    /// A request that presents `X-Vault-Index` states of this cluster is served only once
    /// this node has applied them: it waits up to `INDEX_STATE_WAIT_MAX`, then answers
    /// 412 as Vault does (its client retries a 412). States of other clusters are not ours
    /// to wait for and are passed over.
    async fn await_index_states(&self, request: &ApiRequest) -> Result<(), ApiResponse> {
        let values: Vec<&str> = request
            .headers
            .get_all("x-vault-index")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if values.is_empty() {
            return Ok(());
        }
        let (Some(key), Some(info)) = (self.index_state_key(), self.cluster_info()) else {
            return Ok(());
        };
        let states = IndexState::decode_all(values.into_iter(), &key)
            .map_err(|error| ApiResponse::error(400, vec![error.to_string()]))?;
        let needed = states
            .iter()
            .filter(|state| state.cluster_id == info.cluster_id)
            .map(|state| state.local_index)
            .max()
            .unwrap_or(0);
        // A state another cluster of this replication set signed (the key is the set's:
        // it comes from the shared keyring): on a secondary, wait for the primary's WAL
        // index it names, so a client reads here what it wrote on the primary.
        let needed_replicated = if self.barrier.is_replicated_read_only() {
            states
                .iter()
                .filter(|state| state.cluster_id != info.cluster_id)
                .map(|state| state.replicated_index)
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        let deadline = self.env.clock.now() + INDEX_STATE_WAIT_MAX;
        while self.cluster.indexes().applied < needed
            || self.replicated_position() < needed_replicated
        {
            if self.env.clock.now() >= deadline {
                return Err(ApiResponse::error(
                    412,
                    vec!["required index state not present".into()],
                ));
            }
            tokio::time::sleep(INDEX_STATE_POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// Whether this node may answer from its own state now (see
    /// [`Cluster::confirm_leadership`]).
    async fn confirm_leadership(&self) -> Result<(), String> {
        if crate::seeded_bugs::enabled(SeededBug::StaleRead) {
            return Ok(());
        }
        self.cluster.confirm_leadership().await
    }

    /// Send a request to the active node over the cluster channel, as a Vault standby
    /// does, and relay its status, body and headers.
    async fn forward_to_active(&self, request: ApiRequest) -> ApiResponse {
        let Some(leader) = self.cluster.leader() else {
            return ApiResponse::error(
                503,
                vec!["local node not active but active cluster node not found".into()],
            );
        };
        if leader.node_id == self.config.node.node_id {
            return ApiResponse::error(503, vec!["active node is changing; retry".into()]);
        }
        // The request travels whole on the cluster channel; the active node knows it
        // was forwarded because of where it arrived, not from any header.
        match self
            .cluster
            .forward(&leader, ForwardRequest::from_api(&request))
            .await
        {
            Ok(response) => response.into_api(),
            Err(error) => ApiResponse::error(
                503,
                vec![format!(
                    "error forwarding request to the active node: {error}"
                )],
            ),
        }
    }
}

impl ApiHandler for Core {
    fn handle(&self, request: ApiRequest) -> BoxFuture<'_, ApiResponse> {
        Box::pin(self.handle_api(request))
    }
}

/// How a request reached the node that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// From a client, on this node's API listener.
    Client,
    /// From a standby, over the cluster channel (`arca-fwd/1`).
    Forwarded,
}

/// A `sys/monitor` request for the log stream (not for its help).
fn is_monitor_stream(request: &ApiRequest) -> bool {
    request.path.trim_end_matches('/') == "sys/monitor"
        && request
            .query
            .get("help")
            .is_none_or(|value| value.is_empty())
}

/// `sys/step-down` and `sys/seal`: requests whose success hands this node's lead to
/// another, so the leadership check after serving them is bound to fail.
fn gives_up_the_lead(request: &ApiRequest) -> bool {
    !is_read_only(&request.method)
        && matches!(
            request.path.trim_end_matches('/'),
            "sys/step-down" | "sys/seal"
        )
}

/// Methods that never change state, so a request with one may be asked again elsewhere.
fn is_read_only(method: &http::Method) -> bool {
    matches!(method.as_str(), "GET" | "HEAD" | "LIST")
}

/// A logical error in Vault's error envelope.
pub fn error_response(error: &LogicalError) -> ApiResponse {
    ApiResponse::error(error.status(), error.messages())
}

/// Parse a JSON request body (empty is `{}`), refusing anything but an object.
pub fn body_object(body: &Bytes) -> Result<Map<String, Value>, LogicalError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        // Vault decodes the body into a map, and JSON `null` decodes to an empty one;
        // some clients send `null` for "no body".
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(LogicalError::BadRequest(
            "request body must be a JSON object".into(),
        )),
        Err(error) => Err(LogicalError::BadRequest(format!(
            "failed to parse JSON input: {error}"
        ))),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `auth/<mount>/login…`: Vault times logins apart from other requests.
fn is_login_path(path: &str) -> bool {
    path.strip_prefix("auth/")
        .is_some_and(|rest| rest.split('/').any(|segment| segment == "login"))
}
