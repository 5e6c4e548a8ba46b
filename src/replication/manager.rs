//! [`Replication`]: the shell of performance replication on one node. It keeps the
//! stored role, answers the primary's side of `arca-repl/1` (through
//! [`ReplicationHandler`]), runs the secondary's pull loop on the secondary's active
//! node, and carries out the `sys/replication/...` operations.
//!
//! Decisions live in pure code: which keys cross and what a pull or a sync page holds
//! (`primary.rs`), filters and limits (`state.rs`), the wire and its MAC
//! (`protocol.rs`). This file does the waiting, the calls and the storage.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::activation_key;
use super::epoch::{self, Epoch, Follow, Probe};
use super::primary::{self, Crossing, Pulled};
use super::protocol::{
    MERKLE_REQUESTS_MAX, PULL_ENTRIES_MAX, PULL_WAIT_MAX_MS, PrimaryInfo, ReplBody, ReplRequest,
    ReplResponse, SYNC_PAGE_ENTRIES_MAX,
};
use super::secondary;
use super::state::{
    FirstContact, Mode, PathsFilter, Predecessor, PrimaryState, REPLICATION_STATE_KEY,
    ReplicationState, SECONDARIES_MAX, SecondaryRecord, SecondaryState, Superseded, filterable,
};
use crate::channel::frame::{decode_body, encode_body};
use crate::channel::{ChannelClient, Lane, Protocol, ProtocolHandler, Trust};
use crate::core::Core;
use crate::core::mounts::MountEntry;
use crate::logical::LogicalError;
use crate::raft::applied_state::AppliedState;
use crate::storage::key_space::{self, KEYRING_KEY, ROOT_KEY_KEY, SEAL_CONFIG_KEY};
use crate::storage::{BATCH_OPS_MAX, Op, TableKind};

/// Until this node applies something new or `deadline` passes: on the change feed when
/// the backend has one (a lagged feed also means something changed), else one short
/// poll interval.
async fn wait_for_change(
    changes: &mut Option<crate::raft::change_feed::Subscription>,
    clock: &crate::env::Clock,
    deadline: std::time::Instant,
) {
    let remaining = deadline.saturating_duration_since(clock.now());
    match changes {
        Some(subscription) => {
            if let Ok(None) = crate::env::runtime::timeout(remaining, subscription.next()).await {
                // The state machine is gone (the node is stopping): poll from now on.
                *changes = None;
            }
        }
        None => tokio::time::sleep(remaining.min(CHANGE_POLL_INTERVAL)).await,
    }
}

/// How long one call to the primary may take (a pull waits up to its own bound first).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a pull waits on the primary for a new entry.
pub const PULL_WAIT: Duration = Duration::from_millis(1_000);
/// How often a waiter looks at the applied state again when its backend publishes no
/// change feed (a waiter on Raft storage sleeps until an entry is applied instead).
const CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(2);
/// How long a secondary waits for its own forwarded write to stream back (Vault's
/// `best_effort_wal_wait_duration`); the client gets its answer either way.
pub const BEST_EFFORT_WAL_WAIT: Duration = Duration::from_secs(2);
/// Request headers that mean something only to the cluster that received them.
const CLUSTER_BOUND_HEADERS: &[&str] = &["x-vault-token", "authorization", "x-vault-index"];
/// How many primary nodes a forwarded request tries when the one asked is not active
/// (it was never served there, so trying the next is safe).
const FORWARD_ATTEMPTS_MAX: usize = 3;
/// The pause after a failed call to the primary, before the next address is tried.
pub const RETRY_DELAY: Duration = Duration::from_millis(250);
/// How long an idle node (not a secondary's active node) waits before looking again.
const IDLE_DELAY: Duration = Duration::from_millis(200);
/// How long a pinned sync view may go unused before the primary drops it.
const SYNC_PIN_TTL: Duration = Duration::from_secs(120);
/// Why a sync cannot run from or into a state without a Merkle index: the index is kept
/// only while a replication state is stored, which a primary and a secondary always do.
const NO_MERKLE_INDEX: &str = "this node keeps no Merkle index: no replication state is stored";
/// The longest the unwrap of an activation token at the primary may take.
const UNWRAP_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest activation bundle accepted.
const BUNDLE_BYTES_MAX: usize = 256 * 1024;
/// The most cluster addresses `update_primary_addrs` takes.
const PRIMARY_ADDRS_MAX: usize = 64;
/// How long a promotion waits for its primary to say whether it was demoted (an
/// unreachable primary needs `force` anyway, so a short wait costs nothing).
const PROMOTE_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a promoted cluster tells its former primary of the new epoch, until that
/// primary answers. The first notice goes one interval after the promotion.
pub const SUPERSEDE_NOTICE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one notice waits for an answer (an old primary cut off by a partition
/// must not hold the loop).
const SUPERSEDE_NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a secondary receives, wrapped in its single-use activation token.
#[derive(Clone, Serialize, Deserialize)]
struct Bundle {
    set_id: String,
    secondary_id: String,
    auth_key_hex: String,
    primary_api_addr: String,
    primary_cluster_addrs: Vec<String>,
    /// The primary's stored seal configuration, sealed root key and sealed keyring
    /// (base64), so the secondary's nodes unseal with the primary's keys from activation
    /// on. All three are replicated keys: a later rekey or rotation on the primary
    /// follows through the WAL (or the first Merkle sync, when it came after this
    /// bundle was made).
    seal_config: String,
    sealed_root_key: String,
    sealed_keyring: String,
    /// The primary's keyring itself (base64 of its JSON): the secondary stays unsealed
    /// through activation and opens the primary's ciphertext at once. This is why the
    /// activation token is as sensitive as a root token (Vault says the same).
    keyring: String,
    /// The primary's epoch: the secondary follows no primary of an older one.
    #[serde(default)]
    epoch: Epoch,
    /// The primary's cluster CA certificate (base64 DER): the secondary talks
    /// `arca-repl/1` only to nodes proving themselves under it.
    #[serde(default)]
    primary_ca_cert: String,
    /// The secondary's client certificate for `arca-repl/1`, under the primary's
    /// replication CA (base64 of its record, key included).
    #[serde(default)]
    client_certificate: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Bundle")
            .field("set_id", &self.set_id)
            .field("secondary_id", &self.secondary_id)
            .finish_non_exhaustive()
    }
}

/// A secondary's last contact, as its primary saw it.
#[derive(Debug, Clone, Default)]
struct Contact {
    last_heartbeat_unix_ms: i64,
    /// The contact before the last: their distance is how often the secondary checks in.
    previous_heartbeat_unix_ms: i64,
    /// When the secondary last asked for entries after the primary's last WAL index, i.e.
    /// held everything (its canary age is the time since).
    caught_up_unix_ms: i64,
    /// The secondary's clock minus ours, from its recent pulls (the secondary's own
    /// status has the primary's clock minus its own).
    clock_skew: SkewEstimate,
    position: u64,
    api_addr: String,
    cluster_addr: String,
}

/// How many recent one-way clock readings a skew estimate keeps.
pub const SKEW_SAMPLES_MAX: usize = 8;

/// The skew between our clock and a peer's, from one-way readings: the peer's clock at
/// send minus ours at receipt is the skew less the transit time, so the largest recent
/// reading is the one with the least transit. A message held seconds in the network
/// (retransmissions after a partition) then does not show as seconds of skew.
#[derive(Debug, Clone, Default)]
struct SkewEstimate {
    readings: std::collections::VecDeque<i64>,
}

impl SkewEstimate {
    fn note(&mut self, reading_ms: i64) {
        if self.readings.len() == SKEW_SAMPLES_MAX {
            self.readings.pop_front();
        }
        self.readings.push_back(reading_ms);
    }

    /// The peer's clock minus ours (0 before the first reading).
    fn estimate_ms(&self) -> i64 {
        self.readings.iter().copied().max().unwrap_or(0)
    }
}

/// The time between a secondary's last two pulls (0 before its second).
fn heartbeat_interval_ms(contact: &Contact) -> i64 {
    if contact.previous_heartbeat_unix_ms > 0 {
        (contact.last_heartbeat_unix_ms - contact.previous_heartbeat_unix_ms).max(0)
    } else {
        0
    }
}

/// What the secondary's pull loop knows of the stream right now.
#[derive(Debug, Clone)]
struct Stream {
    /// `stream-wals`, `merkle-sync` (a full sync of the filtered view) or `idle`.
    state: &'static str,
    /// `ready`, `connecting`, `transient_failure` or `shutdown`.
    connection_state: &'static str,
    primary: Option<PrimaryInfo>,
    last_heartbeat_unix_ms: i64,
    last_heartbeat_duration_ms: i64,
    /// The primary's clock minus ours, from its recent answers.
    clock_skew: SkewEstimate,
    /// The primary's filter generation this cluster's data reflects; `None` forces a
    /// sync (after a start, or when the stream says the filter changed).
    synced_generation: Option<u64>,
    /// The address calls go to now (index into [`Replication::primary_addresses`]).
    address_index: usize,
    /// The last call was answered "not active" with the active node's address, and
    /// `address_index` now points at it: the next call goes there, not past it.
    redirected: bool,
    last_start_unix_ms: i64,
    last_error: Option<String>,
    /// Whether the syncs keep up with the primary's writes.
    sync_pace: secondary::SyncPace,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            state: "idle",
            connection_state: "connecting",
            primary: None,
            last_heartbeat_unix_ms: 0,
            last_heartbeat_duration_ms: 0,
            clock_skew: SkewEstimate::default(),
            synced_generation: None,
            address_index: 0,
            redirected: false,
            last_start_unix_ms: 0,
            last_error: None,
            sync_pace: secondary::SyncPace::default(),
        }
    }
}

struct PinnedSync {
    sync_id: u64,
    view: AppliedState,
    crossing: Crossing,
    last_used: std::time::Instant,
}

/// Performance replication on one node.
pub struct Replication {
    core: Weak<Core>,
    client: ChannelClient,
    contacts: Mutex<BTreeMap<String, Contact>>,
    stream: Mutex<Stream>,
    syncs: Mutex<BTreeMap<String, PinnedSync>>,
    next_sync_id: Mutex<u64>,
    /// The highest WAL index any secondary has been sent.
    last_performance_wal: Mutex<u64>,
    /// Serializes changes to the stored state.
    state_lock: tokio::sync::Mutex<()>,
    /// Held by one round of the pull loop, and by the role changes that move this
    /// cluster's position (promote, update-primary), so a batch or a sync from the
    /// old primary never lands after the position was reset for the new one.
    loop_lock: tokio::sync::Mutex<()>,
    /// When the last notice of a promotion went to the former primary.
    last_notice: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Replication")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn internal(error: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(error.to_string())
}

impl Replication {
    pub fn new(core: &Arc<Core>, client: ChannelClient) -> Arc<Self> {
        Arc::new(Self {
            core: Arc::downgrade(core),
            client,
            contacts: Mutex::default(),
            stream: Mutex::default(),
            syncs: Mutex::default(),
            next_sync_id: Mutex::new(1),
            last_performance_wal: Mutex::new(0),
            state_lock: tokio::sync::Mutex::new(()),
            loop_lock: tokio::sync::Mutex::new(()),
            last_notice: Mutex::new(None),
        })
    }

    fn core(&self) -> Result<Arc<Core>, LogicalError> {
        self.core
            .upgrade()
            .ok_or_else(|| LogicalError::Unavailable("the node is shutting down".into()))
    }

    /// The stored state (disabled when none is stored).
    pub fn load_state(&self) -> Result<ReplicationState, LogicalError> {
        let core = self.core()?;
        match core.barrier().get(REPLICATION_STATE_KEY)? {
            None => Ok(ReplicationState::Disabled),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(internal),
        }
    }

    async fn store_state(&self, state: &ReplicationState) -> Result<(), LogicalError> {
        let core = self.core()?;
        let bytes = serde_json::to_vec(state).map_err(internal)?;
        core.barrier().put_now(REPLICATION_STATE_KEY, bytes).await?;
        // Who may dial arca-repl/1 follows the secondaries at once on this node (the
        // others follow through their change feed).
        core.refresh_replication_clients_ca();
        Ok(())
    }

    /// The mode for `sys/health` and status; `disabled` when it cannot be read (sealed).
    pub fn mode(&self) -> Mode {
        self.load_state()
            .map(|state| state.mode())
            .unwrap_or(Mode::Disabled)
    }

    /// Make the barrier refuse replicated writes exactly when this cluster may not make
    /// them itself (a secondary, a demoted or a superseded primary). Called after
    /// unseal, on becoming active and on every role change.
    pub fn apply_role(&self) {
        if let Ok(core) = self.core()
            && let Ok(state) = self.load_state()
        {
            core.barrier()
                .set_replicated_read_only(!state.accepts_replicated_writes());
        }
    }

    /// This cluster's CA certificate (DER), which its secondaries trust its nodes under.
    fn own_ca_cert(core: &Core) -> Result<Vec<u8>, LogicalError> {
        let bytes = core
            .barrier()
            .get(crate::storage::key_space::CLUSTER_CA_KEY)?
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| internal("this cluster has no cluster CA"))?;
        let ca = crate::channel::ClusterCa::from_bytes(&bytes).map_err(internal)?;
        Ok(ca.cert_der().to_vec())
    }

    /// This cluster's replication CA, created the first time it is needed (a secondary
    /// token); every node of the cluster then accepts `arca-repl/1` clients under it.
    async fn replication_ca(core: &Core) -> Result<crate::channel::ClusterCa, LogicalError> {
        if let Some(bytes) = core
            .barrier()
            .get(crate::storage::key_space::REPLICATION_CA_KEY)?
            .map(zeroize::Zeroizing::new)
        {
            return crate::channel::ClusterCa::from_bytes(&bytes).map_err(internal);
        }
        let ca = crate::channel::ClusterCa::generate_named(
            &core.env().rng,
            crate::channel::identity::REPLICATION_CA_NAME,
        )
        .map_err(internal)?;
        core.barrier()
            .put_now(
                crate::storage::key_space::REPLICATION_CA_KEY,
                ca.to_bytes().to_vec(),
            )
            .await?;
        core.refresh_replication_clients_ca();
        Ok(ca)
    }

    /// Who this cluster's `arca-repl/1` accepts: its current secondaries' certificates
    /// under its replication CA (a primary's, or a demoted primary's, which still serves
    /// pulls); `None` when it has no replication CA or is neither.
    pub fn replication_clients(&self) -> Option<crate::channel::tls::ReplicationClients> {
        let core = self.core().ok()?;
        let bytes = core
            .barrier()
            .get(crate::storage::key_space::REPLICATION_CA_KEY)
            .ok()??;
        let ca = crate::channel::ClusterCa::from_bytes(&zeroize::Zeroizing::new(bytes)).ok()?;
        let secondaries = match self.load_state().ok()? {
            ReplicationState::Primary(primary) | ReplicationState::Demoted(primary) => {
                primary.secondaries
            }
            _ => return None,
        };
        let allowed_sha256 = secondaries
            .values()
            .filter_map(|record| {
                let bytes = hex::decode(&record.certificate_sha256).ok()?;
                <[u8; 32]>::try_from(bytes.as_slice()).ok()
            })
            .collect();
        Some(crate::channel::tls::ReplicationClients {
            ca_cert_der: ca.cert_der().to_vec(),
            allowed_sha256,
        })
    }

    fn cluster_addrs(core: &Core) -> Vec<String> {
        let mut addrs: Vec<String> = core
            .cluster()
            .configuration()
            .into_iter()
            .map(|peer| peer.address)
            .collect();
        if addrs.is_empty() {
            addrs.push(
                crate::http::client::host_port(&core.config().node.cluster_addr)
                    .unwrap_or_else(|_| core.config().node.cluster_addr.clone()),
            );
        }
        addrs
    }

    // ----- the operations behind sys/replication/performance/... -----

    pub async fn enable_primary(&self, primary_cluster_addr: &str) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let core = self.core()?;
        match self.load_state()? {
            ReplicationState::Primary(_) => Err(LogicalError::BadRequest(
                "this cluster is already a performance primary".into(),
            )),
            ReplicationState::Secondary(_) | ReplicationState::Demoted(_) => {
                Err(LogicalError::BadRequest(
                    "this cluster is a performance secondary; promote it instead".into(),
                ))
            }
            ReplicationState::Disabled => {
                let state = ReplicationState::Primary(PrimaryState {
                    set_id: core.env().rng.uuid(),
                    primary_cluster_addr: primary_cluster_addr.to_string(),
                    secondaries: BTreeMap::new(),
                    epoch: Epoch::first(),
                    superseded: None,
                    predecessor: None,
                });
                self.store_state(&state).await?;
                tracing::info!(mode = "primary", "performance replication enabled");
                Ok(())
            }
        }
    }

    pub async fn disable_primary(&self) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        match self.load_state()? {
            ReplicationState::Primary(_) => {
                self.store_state(&ReplicationState::Disabled).await?;
                lock(&self.syncs).clear();
                lock(&self.contacts).clear();
                tracing::info!(mode = "disabled", "performance primary disabled");
                Ok(())
            }
            _ => Err(LogicalError::BadRequest(
                "this cluster is not a performance primary".into(),
            )),
        }
    }

    /// `secondary/generate-public-key`: a new activation key pair for this cluster; the
    /// primary seals a secondary's bundle to the public key, so activating needs no
    /// call to the primary's API. Each call replaces the key (a token sealed to an
    /// earlier one no longer opens here).
    pub async fn generate_public_key(&self) -> Result<String, LogicalError> {
        let _guard = self.state_lock.lock().await;
        let core = self.core()?;
        if matches!(self.load_state()?, ReplicationState::Primary(_)) {
            return Err(LogicalError::BadRequest(
                "this cluster is a performance primary; generate the public key on the \
                 cluster to be activated as a secondary"
                    .into(),
            ));
        }
        let (secret, public) = activation_key::generate(&core.env().rng);
        core.barrier()
            .put_now(key_space::ACTIVATION_KEY_KEY, secret.to_vec())
            .await?;
        Ok(public)
    }

    /// Record secondary `id` and build the bundle its activation token wraps.
    /// `first_contact_by`: for a token sealed to the secondary's public key, the unix
    /// second (this cluster's clock) by which the secondary must first connect.
    pub async fn issue_secondary(
        &self,
        id: &str,
        first_contact_by: Option<i64>,
    ) -> Result<Value, LogicalError> {
        super::state::check_secondary_id(id)?;
        let _guard = self.state_lock.lock().await;
        let core = self.core()?;
        let state = self.load_state()?;
        if let Some(refusal) = state.write_refusal() {
            return Err(LogicalError::BadRequest(refusal));
        }
        let ReplicationState::Primary(mut primary) = state else {
            return Err(LogicalError::BadRequest(
                "this cluster is not a performance primary".into(),
            ));
        };
        if primary.secondaries.contains_key(id) {
            return Err(LogicalError::BadRequest(format!(
                "a secondary with id {id:?} already exists; revoke it first or use another id"
            )));
        }
        if primary.secondaries.len() >= SECONDARIES_MAX {
            return Err(LogicalError::BadRequest(format!(
                "a primary tracks at most {SECONDARIES_MAX} secondaries"
            )));
        }
        let auth_key_hex = hex::encode(core.env().rng.bytes::<32>());
        let client_certificate = Self::replication_ca(&core)
            .await?
            .issue_secondary(&core.env().rng, id)
            .map_err(internal)?;
        let certificate_sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&client_certificate.cert_der))
        };
        let backend = core.cluster().backend();
        let raw = |key: &str| -> Result<String, LogicalError> {
            let bytes = backend
                .get(key)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("{key} is missing")))?;
            Ok(BASE64.encode(bytes))
        };
        let keyring = core
            .barrier()
            .with_keyring(|keyring| BASE64.encode(zeroize::Zeroizing::new(keyring.to_bytes())))?;
        let primary_cluster_addrs = if primary.primary_cluster_addr.is_empty() {
            Self::cluster_addrs(&core)
        } else {
            vec![
                crate::http::client::host_port(&primary.primary_cluster_addr)
                    .unwrap_or_else(|_| primary.primary_cluster_addr.clone()),
            ]
        };
        let bundle = Bundle {
            set_id: primary.set_id.clone(),
            secondary_id: id.to_string(),
            auth_key_hex: auth_key_hex.clone(),
            primary_api_addr: core.config().node.api_addr.clone(),
            primary_cluster_addrs,
            seal_config: raw(SEAL_CONFIG_KEY)?,
            sealed_root_key: raw(ROOT_KEY_KEY)?,
            sealed_keyring: raw(KEYRING_KEY)?,
            keyring,
            epoch: primary.epoch.clone(),
            primary_ca_cert: BASE64.encode(Self::own_ca_cert(&core)?),
            client_certificate: BASE64.encode(client_certificate.to_bytes()),
        };
        primary.secondaries.insert(
            id.to_string(),
            SecondaryRecord {
                id: id.to_string(),
                auth_key_hex,
                filter: None,
                filter_generation: 0,
                certificate_sha256,
                first_contact_by: first_contact_by.unwrap_or(0),
            },
        );
        self.store_state(&ReplicationState::Primary(primary))
            .await?;
        serde_json::to_value(&bundle).map_err(internal)
    }

    /// A secondary activated with a public-key token connected in time: its deadline is
    /// met for good.
    async fn first_contact_made(&self, id: &str) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let ReplicationState::Primary(mut primary) = self.load_state()? else {
            return Ok(());
        };
        let Some(record) = primary.secondaries.get_mut(id) else {
            return Ok(());
        };
        if record.first_contact_by == 0 {
            return Ok(());
        }
        record.first_contact_by = 0;
        self.store_state(&ReplicationState::Primary(primary)).await
    }

    pub async fn revoke_secondary(&self, id: &str) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let ReplicationState::Primary(mut primary) = self.load_state()? else {
            return Err(LogicalError::BadRequest(
                "this cluster is not a performance primary".into(),
            ));
        };
        if primary.secondaries.remove(id).is_none() {
            return Err(LogicalError::BadRequest(format!(
                "no secondary with id {id:?}"
            )));
        }
        self.store_state(&ReplicationState::Primary(primary))
            .await?;
        lock(&self.syncs).remove(id);
        lock(&self.contacts).remove(id);
        tracing::info!(secondary = id, "performance secondary revoked");
        Ok(())
    }

    pub fn paths_filter(&self, id: &str) -> Result<Option<PathsFilter>, LogicalError> {
        let ReplicationState::Primary(primary) = self.load_state()? else {
            return Err(LogicalError::BadRequest(
                "this cluster is not a performance primary".into(),
            ));
        };
        Ok(primary
            .secondaries
            .get(id)
            .and_then(|secondary| secondary.filter.clone()))
    }

    /// Set (or with `None` remove) the filter of secondary `id`. The secondary learns of
    /// it on its next pull and resyncs its view: newly denied data disappears there,
    /// newly allowed data arrives.
    pub async fn set_paths_filter(
        &self,
        id: &str,
        filter: Option<PathsFilter>,
    ) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let ReplicationState::Primary(mut primary) = self.load_state()? else {
            return Err(LogicalError::BadRequest(
                "this cluster is not a performance primary".into(),
            ));
        };
        let secondary = primary.secondaries.get_mut(id).ok_or_else(|| {
            LogicalError::BadRequest(format!(
                "no secondary with id {id:?}: create its activation token first"
            ))
        })?;
        secondary.filter = filter;
        secondary.filter_generation += 1;
        self.store_state(&ReplicationState::Primary(primary))
            .await?;
        lock(&self.syncs).remove(id);
        tracing::info!(secondary = id, "performance secondary paths filter changed");
        Ok(())
    }

    /// Activate this cluster as a secondary with `token` (the primary's wrapped JWT):
    /// unwrap it at the primary, then wipe this cluster and install the primary's seal
    /// and keyring in one Raft step. Nothing here changes before the unwrap succeeds.
    pub async fn enable_secondary(
        &self,
        token: &str,
        primary_api_addr: Option<&str>,
    ) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let core = self.core()?;
        if !matches!(self.load_state()?, ReplicationState::Disabled) {
            return Err(LogicalError::BadRequest(
                "this cluster already takes part in performance replication; disable it first"
                    .into(),
            ));
        }
        let (bundle, address) = activation_bundle(&core, token, primary_api_addr).await?;
        let now = core.env().clock.unix_seconds();

        let decode = |name: &str, text: &str| {
            BASE64
                .decode(text)
                .map_err(|_| LogicalError::BadRequest(format!("activation bundle: bad {name}")))
        };
        let keyring_bytes = zeroize::Zeroizing::new(decode("keyring", &bundle.keyring)?);
        let keyring = crate::barrier::Keyring::from_bytes(&keyring_bytes)
            .map_err(|_| LogicalError::BadRequest("activation bundle: bad keyring".into()))?;
        let state = ReplicationState::Secondary(SecondaryState {
            set_id: bundle.set_id.clone(),
            secondary_id: bundle.secondary_id.clone(),
            auth_key_hex: bundle.auth_key_hex.clone(),
            primary_api_addr: address.clone(),
            primary_cluster_addrs: bundle.primary_cluster_addrs.clone(),
            primary_ca_cert: bundle.primary_ca_cert.clone(),
            client_certificate: bundle.client_certificate.clone(),
            bootstrapped: false,
            activated_unix: now,
            epoch: bundle.epoch.clone(),
            superseded: None,
        });
        let mut ops = vec![
            Op::Put {
                key: SEAL_CONFIG_KEY.into(),
                value: decode("seal_config", &bundle.seal_config)?.into(),
            },
            Op::Put {
                key: ROOT_KEY_KEY.into(),
                value: decode("sealed_root_key", &bundle.sealed_root_key)?.into(),
            },
            Op::Put {
                key: KEYRING_KEY.into(),
                value: decode("sealed_keyring", &bundle.sealed_keyring)?.into(),
            },
        ];
        // What this cluster keeps of its own, re-sealed under the primary's keyring in
        // the wipe's own entry: its name and id (as a Vault secondary keeps its node
        // cluster id), the versions it has run (`sys/version-history`), its cluster CA,
        // and its new role. One entry, because the standbys seal themselves as they apply
        // it and take no part in Raft until they are unsealed with the primary's keys:
        // no later entry could commit until then, and a standby must find the CA in its
        // own storage to rejoin at all.
        let mut carried: Vec<(String, zeroize::Zeroizing<Vec<u8>>)> = Vec::new();
        let keep = [
            crate::storage::key_space::CLUSTER_INFO_KEY,
            crate::storage::key_space::CLUSTER_CA_KEY,
        ];
        for key in keep {
            if let Some(value) = core.barrier().get(key)? {
                carried.push((key.to_string(), zeroize::Zeroizing::new(value)));
            }
        }
        for entry in crate::core::version_history::read_all(core.barrier())? {
            let bytes = serde_json::to_vec(&entry).map_err(internal)?;
            carried.push((
                crate::storage::key_space::version_history_entry(&entry.version),
                zeroize::Zeroizing::new(bytes),
            ));
        }
        carried.push((
            REPLICATION_STATE_KEY.to_string(),
            zeroize::Zeroizing::new(serde_json::to_vec(&state).map_err(internal)?),
        ));
        let active = keyring.active();
        for (key, plaintext) in carried {
            let value = crate::barrier::aead::seal(
                &core.env().rng,
                active.term,
                &active.key,
                key.as_bytes(),
                &plaintext,
            );
            ops.push(Op::Put {
                key,
                value: value.into(),
            });
        }
        let backend = core.cluster().backend();
        backend.replace_all(ops).await.map_err(internal)?;
        core.barrier().unseal_with(keyring);
        core.barrier().set_replicated_read_only(true);
        *lock(&self.stream) = Stream {
            last_start_unix_ms: core.env().clock.unix_millis(),
            ..Stream::default()
        };
        core.replication_role_changed().await;
        tracing::info!(
            secondary = %bundle.secondary_id,
            primary = %address,
            mode = "bootstrapping",
            "activated as a performance secondary: storage wiped, primary's keys installed"
        );
        Ok(())
    }

    pub async fn disable_secondary(&self) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let core = self.core()?;
        match self.load_state()? {
            ReplicationState::Secondary(_) | ReplicationState::Demoted(_) => {
                core.barrier().set_replicated_read_only(false);
                self.store_state(&ReplicationState::Disabled).await?;
                *lock(&self.stream) = Stream::default();
                tracing::info!(mode = "disabled", "performance secondary disabled");
                Ok(())
            }
            _ => Err(LogicalError::BadRequest(
                "this cluster is not a performance secondary".into(),
            )),
        }
    }

    /// `primary/demote`: this primary stops accepting replicated writes and becomes a
    /// secondary that follows no primary (Vault's `idle`), keeping its data, set id and
    /// epoch. It still answers its secondaries' pulls from its now final WAL, so the
    /// one to be promoted can first receive every write this cluster acknowledged.
    pub async fn demote_primary(&self) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let core = self.core()?;
        let ReplicationState::Primary(primary) = self.load_state()? else {
            return Err(LogicalError::BadRequest(
                "this cluster is not a performance primary".into(),
            ));
        };
        // Refuse replicated writes before the role is stored: a write that passed the
        // barrier before this line is in the WAL the secondaries still pull.
        core.barrier().set_replicated_read_only(true);
        if let Err(error) = self
            .store_state(&ReplicationState::Demoted(primary.clone()))
            .await
        {
            self.apply_role();
            return Err(error);
        }
        core.replication_role_changed().await;
        let last_wal = core
            .cluster()
            .backend()
            .applied_view()
            .map_or(0, |view| view.wal().last_wal_index());
        tracing::info!(
            mode = "secondary",
            state = "idle",
            epoch = %primary.epoch,
            last_wal,
            "performance primary demoted: replicated writes refused, WAL final"
        );
        Ok(())
    }

    /// `secondary/promote`: this secondary (or a demoted primary) becomes the primary of
    /// its set in a new epoch, keeping its data; it serves pulls and issues secondary
    /// tokens from now on, and tells its former primary of the new epoch until that
    /// primary answers. Without `force`, the former primary must have been demoted and
    /// all of its WAL received here ([`epoch::may_promote`]).
    pub async fn promote_secondary(
        &self,
        force: bool,
        primary_cluster_addr: &str,
    ) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        // The pull loop is between rounds while this holds: the position read here is
        // the one the promotion records.
        let _round = self.loop_lock.lock().await;
        let core = self.core()?;
        let position = core
            .cluster()
            .backend()
            .applied_view()
            .map_or(0, |view| view.last_remote_wal());
        let state = self.load_state()?;
        let seen = state.epoch_seen();
        let (set_id, predecessor) = match state {
            ReplicationState::Secondary(secondary) => {
                if !secondary.bootstrapped && !force {
                    return Err(LogicalError::BadRequest(
                        "this secondary has not finished its first sync with its primary; \
                         promote with force=true to promote it with partial data"
                            .into(),
                    ));
                }
                let probe = self.probe_primary(&core, &secondary, position).await;
                epoch::may_promote(force, position, &probe).map_err(LogicalError::BadRequest)?;
                let cluster_addrs = {
                    let stream = lock(&self.stream);
                    Self::primary_addresses(&secondary, &stream)
                };
                let predecessor = (!cluster_addrs.is_empty()).then(|| Predecessor {
                    secondary_id: secondary.secondary_id.clone(),
                    auth_key_hex: secondary.auth_key_hex.clone(),
                    cluster_addrs,
                    ca_cert: secondary.primary_ca_cert.clone(),
                    client_certificate: secondary.client_certificate.clone(),
                    from_wal: position,
                    notified: false,
                });
                (secondary.set_id, predecessor)
            }
            // It was this set's primary itself, so there is no one to tell; but it cannot
            // know whether another cluster was promoted since its demotion (that one
            // would not learn of this promotion), so taking the role back is forced.
            ReplicationState::Demoted(_) if !force => {
                return Err(LogicalError::BadRequest(
                    "this cluster was demoted and cannot tell whether another cluster was \
                     promoted since; promote with force=true to make it the primary again"
                        .into(),
                ));
            }
            ReplicationState::Demoted(primary) => (primary.set_id, None),
            ReplicationState::Primary(_) => {
                return Err(LogicalError::BadRequest(
                    "this cluster is already a performance primary".into(),
                ));
            }
            ReplicationState::Disabled => {
                return Err(LogicalError::BadRequest(
                    "this cluster is not a performance secondary".into(),
                ));
            }
        };
        let cluster = core
            .cluster_info()
            .map_or_else(|| core.env().rng.uuid(), |info| info.cluster_id);
        let epoch = Epoch::after(&seen, &cluster);
        let primary = PrimaryState {
            set_id,
            primary_cluster_addr: primary_cluster_addr.to_string(),
            secondaries: BTreeMap::new(),
            epoch: epoch.clone(),
            superseded: None,
            predecessor,
        };
        self.store_state(&ReplicationState::Primary(primary))
            .await?;
        *lock(&self.last_notice) = Some(core.env().clock.now());
        *lock(&self.stream) = Stream::default();
        lock(&self.contacts).clear();
        lock(&self.syncs).clear();
        core.replication_role_changed().await;
        tracing::info!(
            mode = "primary",
            epoch = %epoch,
            force,
            from_wal = position,
            "promoted to performance primary"
        );
        Ok(())
    }

    /// Ask this secondary's primary, briefly, whether it still accepts writes and how
    /// far its WAL goes (a pull that does not wait; its entries are not applied).
    async fn probe_primary(&self, core: &Core, secondary: &SecondaryState, position: u64) -> Probe {
        if secondary.primary_cluster_addrs.is_empty() {
            return Probe::Unreachable {
                error: "this secondary knows no primary".into(),
            };
        }
        let body = ReplBody::Pull {
            after: position,
            max_entries: 1,
            wait_ms: 0,
            filter_generation: lock(&self.stream).synced_generation.unwrap_or(0),
            api_addr: core.config().node.api_addr.clone(),
            cluster_addr: core.config().node.cluster_addr.clone(),
            now_unix_ms: core.env().clock.unix_millis(),
            epoch: secondary.epoch.clone(),
        };
        match self
            .call_within(core, secondary, body, PROMOTE_PROBE_TIMEOUT)
            .await
        {
            Ok(ReplResponse::Wals { primary, .. } | ReplResponse::NeedSync { primary })
                if primary.demoted =>
            {
                Probe::Demoted {
                    last_wal: primary.last_wal,
                }
            }
            Ok(ReplResponse::Wals { primary, .. } | ReplResponse::NeedSync { primary }) => {
                Probe::Live {
                    epoch: primary.epoch,
                }
            }
            Ok(ReplResponse::Refused { reason }) => Probe::Refused { reason },
            Ok(ReplResponse::NotActive { .. }) => Probe::Unreachable {
                error: "the primary node asked is not its cluster's active node".into(),
            },
            Ok(other) => Probe::Refused {
                reason: format!("unexpected answer {other:?}"),
            },
            Err(error) => Probe::Unreachable { error },
        }
    }

    /// `secondary/update-primary` with a token: follow the primary that issued it (of
    /// this same set, in an epoch no older than this cluster has seen) without a wipe.
    /// The position goes back to 0, so the first round is a Merkle sync with the new
    /// primary's view: only what differs crosses, and what this cluster holds that the
    /// new primary does not (a superseded primary's divergent writes) is deleted.
    pub async fn update_primary(
        &self,
        token: &str,
        primary_api_addr: Option<&str>,
    ) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let _round = self.loop_lock.lock().await;
        let core = self.core()?;
        let state = self.load_state()?;
        let seen = state.epoch_seen();
        let now = core.env().clock.unix_seconds();
        let (set_id, activated_unix, superseded) = match &state {
            ReplicationState::Secondary(secondary) => (
                secondary.set_id.clone(),
                secondary.activated_unix,
                secondary.superseded.clone(),
            ),
            ReplicationState::Demoted(primary) => {
                // Counted against this cluster's WAL as it is now, which is final (it
                // accepts no replicated write), not as it was when the news arrived: a
                // write that passed the barrier as the news arrived is divergent too, and
                // once this cluster follows, the report is frozen (repl-split-brain, seed
                // 237126427, reported one acknowledged divergent write short).
                let last_wal = core
                    .cluster()
                    .backend()
                    .applied_view()
                    .map_or(0, |view| view.wal().last_wal_index());
                let superseded = primary.superseded.clone().map(|report| Superseded {
                    divergent_wals: report
                        .successor_from_wal
                        .map(|from| epoch::divergent_wals(last_wal, from))
                        .or(report.divergent_wals),
                    ..report
                });
                (primary.set_id.clone(), now, superseded)
            }
            ReplicationState::Primary(_) => {
                return Err(LogicalError::BadRequest(
                    "this cluster is a performance primary; demote it first".into(),
                ));
            }
            ReplicationState::Disabled => {
                return Err(LogicalError::BadRequest(
                    "this cluster is not a performance secondary; enable it as one".into(),
                ));
            }
        };
        let (bundle, address) = activation_bundle(&core, token, primary_api_addr).await?;
        if bundle.set_id != set_id {
            return Err(LogicalError::BadRequest(format!(
                "the token is for replication set {}, but this cluster belongs to set {set_id}; \
                 to join another set, disable replication and enable this cluster as a \
                 secondary (which wipes it)",
                bundle.set_id
            )));
        }
        let epoch = match epoch::follow(&seen, &bundle.epoch) {
            Follow::Refuse { primary, seen } => {
                return Err(LogicalError::BadRequest(format!(
                    "the token's primary is in epoch {primary}, older than epoch {seen} this \
                     cluster has seen: that primary was superseded"
                )));
            }
            Follow::Apply => seen,
            Follow::Raise(newer) => newer,
        };
        core.cluster()
            .backend()
            .apply_remote(None, 0, Vec::new())
            .await
            .map_err(internal)?
            .map_err(internal)?;
        if let Some(divergent) = superseded.as_ref().and_then(|report| report.divergent_wals) {
            tracing::warn!(
                divergent_wals = divergent,
                "update-primary: the writes this cluster accepted after it was superseded \
                 are not on the new primary; the sync discards them here"
            );
        }
        let secondary_id = bundle.secondary_id.clone();
        let secondary = SecondaryState {
            set_id,
            secondary_id: bundle.secondary_id,
            auth_key_hex: bundle.auth_key_hex,
            primary_api_addr: address.clone(),
            primary_cluster_addrs: bundle.primary_cluster_addrs,
            primary_ca_cert: bundle.primary_ca_cert,
            client_certificate: bundle.client_certificate,
            bootstrapped: true,
            activated_unix,
            epoch: epoch.clone(),
            // A clean hand-over (nothing divergent) leaves nothing to report.
            superseded: superseded.filter(|report| report.divergent_wals != Some(0)),
        };
        core.barrier().set_replicated_read_only(true);
        self.store_state(&ReplicationState::Secondary(secondary))
            .await?;
        if activation_key::looks_sealed(token) {
            // The token opened once; the key it was sealed to goes with it.
            core.barrier()
                .delete_now(key_space::ACTIVATION_KEY_KEY)
                .await?;
        }
        *lock(&self.stream) = Stream {
            last_start_unix_ms: core.env().clock.unix_millis(),
            ..Stream::default()
        };
        core.replication_role_changed().await;
        tracing::info!(
            secondary = %secondary_id,
            primary = %address,
            epoch = %epoch,
            "performance secondary now follows a new primary; resyncing by Merkle diff"
        );
        Ok(())
    }

    /// `secondary/update-primary` without a token: `token=""` forgets the primary (the
    /// cluster stays a secondary and goes idle); `update_primary_addrs` replaces the
    /// cluster addresses of the same primary.
    pub async fn update_primary_addrs(&self, addrs: Vec<String>) -> Result<(), LogicalError> {
        let _guard = self.state_lock.lock().await;
        let _round = self.loop_lock.lock().await;
        let ReplicationState::Secondary(mut secondary) = self.load_state()? else {
            return Err(LogicalError::BadRequest(
                "this cluster is not a performance secondary that follows a primary".into(),
            ));
        };
        if addrs.len() > PRIMARY_ADDRS_MAX {
            return Err(LogicalError::BadRequest(format!(
                "at most {PRIMARY_ADDRS_MAX} primary addresses"
            )));
        }
        secondary.primary_cluster_addrs = addrs
            .iter()
            .map(|addr| crate::http::client::host_port(addr).unwrap_or_else(|_| addr.clone()))
            .collect();
        self.store_state(&ReplicationState::Secondary(secondary))
            .await?;
        *lock(&self.stream) = Stream::default();
        Ok(())
    }

    // ----- status -----

    /// The `performance` block of `sys/replication/status`.
    pub fn status(&self) -> Value {
        let Ok(core) = self.core() else {
            return json!({ "mode": "disabled" });
        };
        let state = match self.load_state() {
            Ok(state) => state,
            Err(_) => return json!({ "mode": "disabled" }),
        };
        let view = core.cluster().backend().applied_view();
        let last_wal = view.as_ref().map_or(0, |view| view.wal().last_wal_index());
        // The root of every replicated key held here: on a secondary that is exactly its
        // filtered view of the primary.
        let merkle_root = view
            .as_ref()
            .and_then(|view| view.merkle())
            .map_or_else(String::new, |merkle| short_root(&merkle.root()));
        let now_ms = core.env().clock.unix_millis();
        match state {
            ReplicationState::Disabled => json!({ "mode": "disabled" }),
            ReplicationState::Primary(primary) => {
                let contacts = lock(&self.contacts).clone();
                let secondaries: Vec<Value> = primary
                    .secondaries
                    .keys()
                    .filter_map(|id| contacts.get(id).map(|contact| (id, contact)))
                    .map(|(id, contact)| {
                        let connected = now_ms - contact.last_heartbeat_unix_ms
                            < 3 * PULL_WAIT.as_millis() as i64 + 2_000;
                        json!({
                            "node_id": id,
                            "api_address": contact.api_addr,
                            "cluster_address": contact.cluster_addr,
                            "connection_status": if connected { "connected" } else { "disconnected" },
                            "last_heartbeat": crate::util::rfc3339(contact.last_heartbeat_unix_ms),
                            // Our heartbeat is the secondary's pull: the time between its
                            // last two is how long the primary waits to hear from it.
                            "last_heartbeat_duration_ms": heartbeat_interval_ms(contact).to_string(),
                            "clock_skew_ms": contact.clock_skew.estimate_ms().to_string(),
                            "replication_primary_canary_age_ms": (now_ms - contact.caught_up_unix_ms)
                                .max(0)
                                .to_string(),
                            "last_remote_wal": contact.position,
                        })
                    })
                    .collect();
                // A superseded primary is Vault's `idle` primary (a problem), and says why.
                let state = if primary.superseded.is_some() {
                    "idle"
                } else {
                    "running"
                };
                let mut status = json!({
                    "mode": "primary",
                    "cluster_id": primary.set_id,
                    "state": state,
                    "epoch": primary.epoch.generation,
                    "primary_cluster_addr": primary.primary_cluster_addr,
                    "known_secondaries": primary.secondaries.keys().collect::<Vec<_>>(),
                    "secondaries": secondaries,
                    "last_wal": last_wal,
                    "last_performance_wal": *lock(&self.last_performance_wal),
                    "merkle_root": merkle_root,
                    "corrupted_merkle_tree": false,
                    "last_reindex_epoch": "0",
                    "last_corruption_check_epoch": "-62135596800",
                    "ssct_generation_counter": 0,
                });
                if let Some(superseded) = &primary.superseded {
                    // Counted against the WAL now: a write that passed the barrier as the
                    // news arrived is divergent too.
                    let divergent = superseded
                        .successor_from_wal
                        .map(|from| epoch::divergent_wals(last_wal, from));
                    add_superseded(&mut status, superseded, divergent);
                }
                status
            }
            ReplicationState::Demoted(primary) => {
                let mut status = json!({
                    "mode": "secondary",
                    "cluster_id": primary.set_id,
                    "state": "idle",
                    "connection_state": "shutdown",
                    "epoch": primary.epoch.generation,
                    "secondary_id": "",
                    "primary_cluster_addr": "",
                    "known_primary_cluster_addrs": [],
                    "primaries": [],
                    "last_wal": last_wal,
                    "last_remote_wal": 0,
                    "merkle_root": merkle_root,
                    "corrupted_merkle_tree": false,
                    "last_reindex_epoch": "0",
                    "last_corruption_check_epoch": "-62135596800",
                    "ssct_generation_counter": 0,
                });
                if let Some(superseded) = &primary.superseded {
                    let divergent = superseded
                        .successor_from_wal
                        .map(|from| epoch::divergent_wals(last_wal, from));
                    add_superseded(&mut status, superseded, divergent);
                }
                status
            }
            ReplicationState::Secondary(secondary) => {
                let stream = lock(&self.stream).clone();
                let mode = if secondary.bootstrapped {
                    "secondary"
                } else {
                    "bootstrapping"
                };
                let primary_info = stream.primary.clone().unwrap_or_default();
                let known_addrs: Vec<String> = if primary_info.cluster_addrs.is_empty() {
                    &secondary.primary_cluster_addrs
                } else {
                    &primary_info.cluster_addrs
                }
                .iter()
                .map(|address| cluster_url(address))
                .collect();
                let first_primary_addr = secondary
                    .primary_cluster_addrs
                    .first()
                    .map(|address| cluster_url(address))
                    .unwrap_or_default();
                let canary_age = if stream.last_heartbeat_unix_ms > 0 {
                    (now_ms - stream.last_heartbeat_unix_ms).max(0)
                } else {
                    0
                };
                let primaries = if stream.primary.is_some() {
                    vec![json!({
                        "api_address": primary_info.api_addr,
                        "cluster_address": first_primary_addr,
                        "connection_status": if stream.connection_state == "ready" { "connected" } else { "disconnected" },
                        "last_heartbeat": crate::util::rfc3339(stream.last_heartbeat_unix_ms),
                        "last_heartbeat_duration_ms": stream.last_heartbeat_duration_ms.to_string(),
                        "clock_skew_ms": stream.clock_skew.estimate_ms().to_string(),
                        "replication_primary_canary_age_ms": canary_age.to_string(),
                    })]
                } else {
                    Vec::new()
                };
                let mut status = json!({
                    "mode": mode,
                    "cluster_id": secondary.set_id,
                    "secondary_id": secondary.secondary_id,
                    "epoch": secondary.epoch.generation,
                    "state": if secondary.primary_cluster_addrs.is_empty() { "idle" } else { stream.state },
                    "connection_state": stream.connection_state,
                    "primary_cluster_addr": first_primary_addr,
                    "known_primary_cluster_addrs": known_addrs,
                    "primaries": primaries,
                    "last_remote_wal": view.as_ref().map_or(0, AppliedState::last_remote_wal),
                    "merkle_root": merkle_root,
                    "corrupted_merkle_tree": false,
                    "last_reindex_epoch": secondary.activated_unix.to_string(),
                    "last_corruption_check_epoch": "-62135596800",
                    "last_start": crate::util::rfc3339(stream.last_start_unix_ms),
                    "ssct_generation_counter": 0,
                });
                if let Some(superseded) = &secondary.superseded {
                    add_superseded(&mut status, superseded, superseded.divergent_wals);
                }
                if let Some(error) = &stream.last_error {
                    status["last_error"] = json!(error);
                }
                status
            }
        }
    }

    // ----- the primary's side of arca-repl/1 -----

    async fn serve(&self, request: ReplRequest) -> ReplResponse {
        let core = match self.core() {
            Ok(core) => core,
            Err(error) => {
                return ReplResponse::Refused {
                    reason: error.to_string(),
                };
            }
        };
        if !core.is_active() {
            return ReplResponse::NotActive {
                leader_cluster_addr: core.cluster().leader().map(|leader| {
                    crate::http::client::host_port(&leader.cluster_addr)
                        .unwrap_or(leader.cluster_addr)
                }),
            };
        }
        let refused = |reason: &str| ReplResponse::Refused {
            reason: reason.to_string(),
        };
        // A new leader may not have applied everything its predecessor committed (and so
        // streamed), and a deposed one may not know it yet: a view from either is older
        // than what a secondary already holds, and a sync from it would take the
        // secondary back in time. Serve only from a state that holds every commit.
        if let Err(error) = core.cluster().confirm_leadership().await {
            return refused(&format!("this node cannot serve replication now: {error}"));
        }
        // Subscribed before the view is read, so no entry applied after the view can
        // slip by a waiting pull unseen.
        let mut changes = core.cluster().backend().changes();
        // The view is taken before the stored state is read, so the filter judging its
        // entries is never older than they are.
        let Some(mut view) = core.cluster().backend().applied_view() else {
            return refused("this node's storage cannot replicate");
        };
        let (primary, demoted) = match self.load_state() {
            Ok(ReplicationState::Primary(primary)) => (primary, false),
            Ok(ReplicationState::Demoted(primary)) => (primary, true),
            // Not a primary at all: there is nothing to fence, so a notice is answered
            // as noted (it changes nothing here, so it needs no signature check).
            Ok(_) if matches!(request.body, ReplBody::Supersede { .. }) => {
                return ReplResponse::SupersedeNoted {
                    divergent_wals: None,
                    newest: None,
                };
            }
            Ok(_) => return refused("this cluster is not a performance primary"),
            Err(error) => return refused(&error.to_string()),
        };
        if request.set_id != primary.set_id {
            return refused("unknown replication set");
        }
        let Some(record) = primary.secondaries.get(&request.secondary_id) else {
            return refused("unknown or revoked secondary");
        };
        let Ok(key) = hex::decode(&record.auth_key_hex) else {
            return refused("secondary key is corrupt");
        };
        if !request.verify(&key) {
            return refused("request signature does not verify");
        }
        // A public-key activation's token expires by this cluster's clock: the secondary
        // opened it with its own clock, which may be wrong (or wound back).
        match record.first_contact(core.env().clock.unix_seconds()) {
            FirstContact::Known => {}
            FirstContact::Late => {
                return refused(
                    "this secondary's activation token expired (by the primary's clock) before \
                     it first connected; revoke it and issue a new token",
                );
            }
            FirstContact::InTime => {
                if let Err(error) = self.first_contact_made(&request.secondary_id).await {
                    tracing::warn!(%error, secondary = %request.secondary_id,
                        "could not record a secondary's first contact; checked again next time");
                }
            }
        }
        // A peer that has seen a newer epoch than this primary's own proves that a
        // promotion happened: stand down before serving anything.
        let named_epoch = match &request.body {
            ReplBody::Pull { epoch, .. }
            | ReplBody::SyncBegin { epoch }
            | ReplBody::Supersede { epoch, .. } => Some(epoch),
            _ => None,
        };
        if let Some(newer) =
            named_epoch.and_then(|named| epoch::superseded_by(&primary.epoch, named))
        {
            let from_wal = match &request.body {
                ReplBody::Supersede { from_wal, .. } => Some(*from_wal),
                _ => None,
            };
            let report = self.stand_down(&core, &newer, from_wal).await;
            return match request.body {
                ReplBody::Supersede { .. } => ReplResponse::SupersedeNoted {
                    divergent_wals: report.as_ref().and_then(|report| report.divergent_wals),
                    newest: report.map(|report| report.by),
                },
                _ => refused(&format!(
                    "this cluster was superseded: a primary was promoted in epoch {newer}"
                )),
            };
        }
        if let Some(superseded) = &primary.superseded {
            // Its WAL may hold writes its successor never received: nothing of it may
            // reach anyone.
            return refused(&format!(
                "this cluster was superseded: a primary was promoted in epoch {}",
                superseded.by
            ));
        }
        match &request.body {
            ReplBody::Supersede { epoch, .. } => {
                return refused(&format!(
                    "the notice names epoch {epoch}, which is not newer than this cluster's {}",
                    primary.epoch
                ));
            }
            ReplBody::Forward { .. } | ReplBody::PersistAlias { .. } if demoted => {
                return refused(
                    "this cluster was demoted and accepts no writes; point this secondary at \
                     the new primary with update-primary",
                );
            }
            _ => {}
        }
        let info = |view: &AppliedState| PrimaryInfo {
            now_unix_ms: core.env().clock.unix_millis(),
            last_wal: view.wal().last_wal_index(),
            api_addr: core.config().node.api_addr.clone(),
            cluster_addrs: Self::cluster_addrs(&core),
            filter_generation: record.filter_generation,
            epoch: primary.epoch.clone(),
            demoted,
        };
        let mut crossing = match crossing_for(&core, &view, record.filter.as_ref()) {
            Ok(crossing) => crossing,
            Err(error) => return refused(&error.to_string()),
        };
        match request.body {
            ReplBody::Pull {
                after,
                max_entries,
                wait_ms,
                filter_generation,
                api_addr,
                cluster_addr,
                now_unix_ms: secondary_now_ms,
                epoch: _,
            } => {
                let now_ms = core.env().clock.unix_millis();
                self.note_contact(
                    &request.secondary_id,
                    (after, view.wal().last_wal_index()),
                    (now_ms, secondary_now_ms),
                    (api_addr, cluster_addr),
                );
                // A fault point: the answer a position that left the buffer gets, which
                // any position must survive (the sync is idempotent).
                if filter_generation != record.filter_generation
                    || crate::buggify::buggify("replication-pull-answers-sync")
                {
                    return ReplResponse::NeedSync {
                        primary: info(&view),
                    };
                }
                // A fault point: one entry per answer, so a batch ends anywhere.
                let max_entries = if crate::buggify::buggify("replication-pull-one-entry") {
                    1
                } else {
                    max_entries.min(PULL_ENTRIES_MAX)
                };
                let wait = Duration::from_millis(u64::from(wait_ms.min(PULL_WAIT_MAX_MS)));
                let deadline = core.env().clock.now() + wait;
                loop {
                    match primary::pull(&view, after, max_entries, &crossing) {
                        Pulled::Wals { entries, to } => {
                            let mut shipped = lock(&self.last_performance_wal);
                            *shipped = (*shipped).max(to);
                            return ReplResponse::Wals {
                                entries,
                                to,
                                primary: info(&view),
                            };
                        }
                        Pulled::NeedSync => {
                            return ReplResponse::NeedSync {
                                primary: info(&view),
                            };
                        }
                        Pulled::UpToDate if core.env().clock.now() >= deadline => {
                            return ReplResponse::Wals {
                                entries: Vec::new(),
                                to: after,
                                primary: info(&view),
                            };
                        }
                        Pulled::UpToDate => {
                            let clock = core.env().clock.clone();
                            wait_for_change(&mut changes, &clock, deadline).await;
                            let Some(next) = core.cluster().backend().applied_view() else {
                                return refused("this node's storage cannot replicate");
                            };
                            if next.wal().last_wal_index() == view.wal().last_wal_index() {
                                continue;
                            }
                            view = next;
                            // New entries are judged by the filter and the mount tables as
                            // of the view that holds them (read after it): a mount created
                            // meanwhile is judged, and a filter changed meanwhile sends the
                            // secondary to resync instead of being applied half-way.
                            // A demotion or a stand-down meanwhile ends the wait too.
                            let current = match self.load_state() {
                                Ok(
                                    ReplicationState::Primary(current)
                                    | ReplicationState::Demoted(current),
                                ) if current.superseded.is_none() => {
                                    current.secondaries.get(&request.secondary_id).cloned()
                                }
                                _ => None,
                            };
                            let Some(current) = current.filter(|current| {
                                current.filter_generation == record.filter_generation
                            }) else {
                                return ReplResponse::NeedSync {
                                    primary: info(&view),
                                };
                            };
                            crossing = match crossing_for(&core, &view, current.filter.as_ref()) {
                                Ok(crossing) => crossing,
                                Err(error) => return refused(&error.to_string()),
                            };
                        }
                    }
                }
            }
            ReplBody::Forward { request, caller } => {
                let caller = match caller
                    .map(|json| serde_json::from_slice::<crate::token::TokenEntry>(&json))
                {
                    None => None,
                    Some(Ok(entry)) => Some(Arc::new(entry)),
                    Some(Err(_)) => return refused("forwarded caller is malformed"),
                };
                let mut api = match request.into_api() {
                    Ok(api) => api,
                    Err(error) => return refused(&error),
                };
                // The secondary's token means nothing here; its caller travels apart.
                api.headers.remove("x-vault-token");
                api.headers.remove(http::header::AUTHORIZATION);
                api.delegated_caller = caller;
                let response = core.handle_forwarded(api).await;
                let wal_index = core
                    .cluster()
                    .backend()
                    .applied_view()
                    .map_or(0, |view| view.wal().last_wal_index());
                ReplResponse::Forwarded {
                    response: crate::channel::ForwardResponse::from_api(response),
                    wal_index,
                }
            }
            ReplBody::PersistAlias { alias, now_unix } => {
                let Some(logical) = core.logical() else {
                    return refused("this node is not serving yet");
                };
                match logical.persist_alias(alias, now_unix).await {
                    Ok(entity) => match serde_json::to_vec(&entity) {
                        Ok(entity_json) => ReplResponse::Entity { entity_json },
                        Err(error) => ReplResponse::Failed {
                            reason: error.to_string(),
                        },
                    },
                    Err(error) => ReplResponse::Failed {
                        reason: error.to_string(),
                    },
                }
            }
            ReplBody::Supersede { .. } => refused("the notice was answered above"),
            ReplBody::SyncBegin { .. } => {
                let sync_id = {
                    let mut next = lock(&self.next_sync_id);
                    *next += 1;
                    *next
                };
                let wal_index = view.wal().last_wal_index();
                let allowed = |group: &crate::storage::KeyGroup| crossing.allows_group(group);
                let Some(merkle) = view.merkle() else {
                    return refused(NO_MERKLE_INDEX);
                };
                let group_roots = merkle.group_roots(allowed);
                let view_root = merkle.view_root(allowed);
                let primary_info = info(&view);
                let now = core.env().clock.now();
                let mut syncs = lock(&self.syncs);
                syncs.retain(|_, pinned| now.duration_since(pinned.last_used) < SYNC_PIN_TTL);
                syncs.insert(
                    request.secondary_id.clone(),
                    PinnedSync {
                        sync_id,
                        view,
                        crossing,
                        last_used: now,
                    },
                );
                ReplResponse::SyncStarted {
                    sync_id,
                    wal_index,
                    group_roots,
                    view_root,
                    primary: primary_info,
                }
            }
            ReplBody::Merkle { sync_id, requests } => {
                if requests.len() > MERKLE_REQUESTS_MAX {
                    return refused("too many Merkle requests in one call");
                }
                let Some((view, crossing)) =
                    self.pinned_sync(&request.secondary_id, sync_id, core.env().clock.now())
                else {
                    return refused("no such sync in progress; begin again");
                };
                let Some(merkle) = view.merkle() else {
                    return refused(NO_MERKLE_INDEX);
                };
                let mut responses = Vec::with_capacity(requests.len());
                for merkle_request in &requests {
                    // Key names of a denied mount stay on the primary too.
                    if !crossing.allows_group(merkle_request.group()) {
                        return refused("a Merkle request names a group outside this view");
                    }
                    responses.push(merkle.answer(merkle_request));
                }
                ReplResponse::MerkleAnswers { responses }
            }
            ReplBody::FetchKeys { sync_id, keys } => {
                if keys.len() > SYNC_PAGE_ENTRIES_MAX as usize {
                    return refused("too many keys in one fetch");
                }
                let Some((view, crossing)) =
                    self.pinned_sync(&request.secondary_id, sync_id, core.env().clock.now())
                else {
                    return refused("no such sync in progress; begin again");
                };
                match primary::fetch(&view, &keys, &crossing) {
                    Ok(entries) => ReplResponse::Keys { entries },
                    Err(_) => refused("a fetch names a key outside this view"),
                }
            }
        }
    }

    /// Record that a primary was promoted in `newer` (with this cluster's WAL up to
    /// `from_wal`, when its notice says so), and refuse replicated writes from now on.
    /// Idempotent: a repeated notice only fills in what the first did not say. Answers
    /// the report as stored.
    async fn stand_down(
        &self,
        core: &Core,
        newer: &Epoch,
        from_wal: Option<u64>,
    ) -> Option<Superseded> {
        let _guard = self.state_lock.lock().await;
        if !crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::SupersededKeepsWriting) {
            core.barrier().set_replicated_read_only(true);
        }
        let (mut primary, demoted) = match self.load_state() {
            Ok(ReplicationState::Primary(primary)) => (primary, false),
            Ok(ReplicationState::Demoted(primary)) => (primary, true),
            _ => {
                self.apply_role();
                return None;
            }
        };
        let last_wal = core
            .cluster()
            .backend()
            .applied_view()
            .map_or(0, |view| view.wal().last_wal_index());
        let report = Superseded::noted(primary.superseded.as_ref(), newer, from_wal, last_wal);
        if primary.superseded.as_ref() != Some(&report) {
            tracing::warn!(
                own_epoch = %primary.epoch,
                newer_epoch = %report.by,
                divergent_wals = ?report.divergent_wals,
                "performance primary superseded: a newer primary exists; replicated writes \
                 refused and nothing more is served from this cluster's WAL"
            );
            primary.superseded = Some(report.clone());
            let state = if demoted {
                ReplicationState::Demoted(primary)
            } else {
                ReplicationState::Primary(primary)
            };
            if let Err(error) = self.store_state(&state).await {
                // The barrier stays read-only in memory; the next notice stores it again.
                tracing::warn!(error = %error, "could not store the superseded state");
            }
        }
        lock(&self.syncs).clear();
        Some(report)
    }

    /// The view and crossing a secondary's sync `sync_id` pinned (O(1) clones), marking
    /// it used at `now`; `None` when no such sync is in progress.
    fn pinned_sync(
        &self,
        secondary_id: &str,
        sync_id: u64,
        now: std::time::Instant,
    ) -> Option<(AppliedState, Crossing)> {
        let mut syncs = lock(&self.syncs);
        let pinned = syncs
            .get_mut(secondary_id)
            .filter(|pinned| pinned.sync_id == sync_id)?;
        pinned.last_used = now;
        Some((pinned.view.clone(), pinned.crossing.clone()))
    }

    /// Send a request that writes replicated state to the primary's active node, then
    /// wait (at most [`BEST_EFFORT_WAL_WAIT`]) until this cluster's stream reaches the
    /// primary's WAL index after it, so the client reads its own write here.
    pub async fn forward_to_primary(
        &self,
        api: &crate::http::ApiRequest,
        caller: Option<crate::token::TokenEntry>,
    ) -> Result<crate::http::ApiResponse, LogicalError> {
        let core = self.core()?;
        let state = self.load_state()?;
        if let Some(refusal) = state.write_refusal() {
            return Err(LogicalError::BadRequest(refusal));
        }
        let ReplicationState::Secondary(secondary) = state else {
            return Err(LogicalError::ReadOnly);
        };
        if secondary.primary_cluster_addrs.is_empty() {
            return Err(LogicalError::BadRequest(
                "this secondary follows no primary, so it accepts no writes to replicated \
                 paths; point it at one with update-primary"
                    .into(),
            ));
        }
        let caller = caller
            .map(|entry| serde_json::to_vec(&entry))
            .transpose()
            .map_err(internal)?;
        let mut request = crate::channel::ForwardRequest::from_api(api);
        // The token stays on this cluster (its caller travels apart), and index states
        // name this cluster's indexes, which mean nothing to the primary.
        request.headers.retain(|(name, _)| {
            !CLUSTER_BOUND_HEADERS.contains(&name.to_ascii_lowercase().as_str())
        });
        let body = ReplBody::Forward { request, caller };
        let mut last_error = String::new();
        for _ in 0..FORWARD_ATTEMPTS_MAX {
            match self.call(&core, &secondary, body.clone()).await {
                Ok(ReplResponse::Forwarded {
                    response,
                    wal_index,
                }) => {
                    crate::coverage::mark("replication-write-forwarded");
                    let clock = core.env().clock.clone();
                    let deadline = clock.now() + BEST_EFFORT_WAL_WAIT;
                    let mut changes = core.cluster().backend().changes();
                    while core
                        .cluster()
                        .backend()
                        .applied_view()
                        .is_some_and(|view| view.last_remote_wal() < wal_index)
                        && clock.now() < deadline
                    {
                        wait_for_change(&mut changes, &clock, deadline).await;
                    }
                    // The primary's X-Vault-Index travels back: this cluster shares its
                    // key and honours the primary's WAL index it names.
                    return Ok(response.into_api());
                }
                Ok(ReplResponse::NotActive { .. }) => {
                    last_error = "the primary node asked is not active".into();
                }
                Ok(ReplResponse::Refused { reason }) => {
                    return Err(LogicalError::Unavailable(format!(
                        "the primary refused the forwarded request: {reason}"
                    )));
                }
                Ok(other) => {
                    return Err(internal(format!(
                        "unexpected answer from the primary: {other:?}"
                    )));
                }
                // The primary may not have received it: a write is not repeated blindly.
                Err(error) => {
                    return Err(LogicalError::Unavailable(format!(
                        "error forwarding the request to the primary: {error}"
                    )));
                }
            }
        }
        Err(LogicalError::Unavailable(format!(
            "error forwarding the request to the primary: {last_error}"
        )))
    }

    fn note_contact(
        &self,
        secondary_id: &str,
        (position, primary_last_wal): (u64, u64),
        (now_ms, secondary_now_ms): (i64, i64),
        (api_addr, cluster_addr): (String, String),
    ) {
        let mut contacts = lock(&self.contacts);
        let contact = contacts
            .entry(secondary_id.to_string())
            .or_insert_with(|| Contact {
                // Never caught up yet: the canary ages from the first contact.
                caught_up_unix_ms: now_ms,
                ..Contact::default()
            });
        if position >= primary_last_wal {
            contact.caught_up_unix_ms = now_ms;
        }
        contact.previous_heartbeat_unix_ms = contact.last_heartbeat_unix_ms;
        contact.last_heartbeat_unix_ms = now_ms;
        contact
            .clock_skew
            .note(secondary_now_ms.saturating_sub(now_ms));
        contact.position = position;
        contact.api_addr = api_addr;
        contact.cluster_addr = cluster_addr;
    }

    // ----- the secondary's pull loop -----

    /// Run until the node shuts down: on the active node of a secondary, keep this
    /// cluster's data following the primary.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let delay = match self.step().await {
                Ok(Some(delay)) => delay,
                Ok(None) => Duration::ZERO,
                Err(error) => {
                    let mut stream = lock(&self.stream);
                    if stream.last_error.as_deref() != Some(error.as_str()) {
                        tracing::warn!(error = %error, "performance secondary: call to the primary failed");
                    }
                    stream.last_error = Some(error);
                    stream.connection_state = "transient_failure";
                    if !std::mem::take(&mut stream.redirected) {
                        stream.address_index = stream.address_index.wrapping_add(1);
                    }
                    RETRY_DELAY
                }
            };
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// One round of the loop: `Ok(Some(delay))` to wait before the next.
    async fn step(&self) -> Result<Option<Duration>, String> {
        let Ok(core) = self.core() else {
            return Ok(Some(IDLE_DELAY));
        };
        if !core.is_active() {
            return Ok(Some(IDLE_DELAY));
        }
        match self.load_state() {
            Ok(ReplicationState::Secondary(_)) => {}
            Ok(ReplicationState::Primary(primary)) => {
                self.notify_predecessor(&core, &primary).await;
                return Ok(Some(IDLE_DELAY));
            }
            _ => return Ok(Some(IDLE_DELAY)),
        }
        let _round = self.loop_lock.lock().await;
        // Read again under the round's lock: a promotion or update-primary may have
        // finished while this round waited for it.
        let Ok(ReplicationState::Secondary(secondary)) = self.load_state() else {
            return Ok(Some(IDLE_DELAY));
        };
        if secondary.primary_cluster_addrs.is_empty() {
            lock(&self.stream).state = "idle";
            return Ok(Some(IDLE_DELAY));
        }
        let backend = core.cluster().backend();
        let Some(view) = backend.applied_view() else {
            return Ok(Some(IDLE_DELAY));
        };
        let position = view.last_remote_wal();
        let synced_generation = lock(&self.stream).synced_generation;
        let needs_sync = !secondary.bootstrapped || position == 0 || synced_generation.is_none();
        if needs_sync {
            self.sync(&core, &secondary).await?;
            return Ok(None);
        }
        let body = ReplBody::Pull {
            after: position,
            max_entries: PULL_ENTRIES_MAX,
            wait_ms: PULL_WAIT.as_millis() as u32,
            filter_generation: synced_generation.unwrap_or(0),
            api_addr: core.config().node.api_addr.clone(),
            cluster_addr: core.config().node.cluster_addr.clone(),
            now_unix_ms: core.env().clock.unix_millis(),
            epoch: secondary.epoch.clone(),
        };
        match self.call(&core, &secondary, body).await? {
            ReplResponse::Wals {
                entries,
                to,
                primary,
            } => {
                self.follow_epoch(&secondary, &primary).await?;
                self.note_primary(&core, primary, "stream-wals");
                lock(&self.stream).sync_pace.streamed();
                if to == position {
                    return Ok(None);
                }
                let ops = secondary::batch_ops(entries);
                match backend
                    .apply_remote(Some(position), to, ops)
                    .await
                    .map_err(|error| error.to_string())?
                {
                    // The batch went through this cluster's Raft: every node's cache
                    // watcher sees what it changed.
                    Ok(_) => Ok(None),
                    Err(why) => {
                        tracing::info!(reason = %why, "performance secondary: batch refused; resyncing");
                        lock(&self.stream).synced_generation = None;
                        Ok(None)
                    }
                }
            }
            ReplResponse::NeedSync { primary } => {
                self.follow_epoch(&secondary, &primary).await?;
                tracing::info!(
                    state = "merkle-sync",
                    position,
                    "performance secondary: position not in the primary's buffer or filter changed; syncing"
                );
                self.note_primary(&core, primary, "merkle-sync");
                let mut stream = lock(&self.stream);
                stream.synced_generation = None;
                if let Some(syncs) = stream.sync_pace.asked_to_sync() {
                    let error = format!(
                        "the merkle sync cannot keep up with the primary's writes: {syncs} syncs in \
                         a row ended with this cluster's position already out of the primary's \
                         log-shipper buffer; raise replication {{ logshipper_buffer_length }} on \
                         the primary or lower its write rate"
                    );
                    crate::coverage::mark("replication-sync-overtaken");
                    tracing::warn!(syncs, "performance secondary: {error}");
                    stream.last_error = Some(error);
                }
                Ok(None)
            }
            other => self.unexpected(other),
        }
    }

    fn unexpected(&self, response: ReplResponse) -> Result<Option<Duration>, String> {
        match response {
            ReplResponse::NotActive {
                leader_cluster_addr,
            } => Err(format!(
                "primary node is not active (leader {leader_cluster_addr:?})"
            )),
            ReplResponse::Refused { reason } => {
                let mut stream = lock(&self.stream);
                if stream.state != "idle" {
                    tracing::warn!(state = "idle", reason = %reason, "performance secondary: the primary refused");
                }
                stream.state = "idle";
                stream.last_error = Some(reason);
                Ok(Some(RETRY_DELAY * 8))
            }
            other => Err(format!("unexpected answer from the primary: {other:?}")),
        }
    }

    /// Judge the epoch a primary answered with ([`epoch::follow`]): an older one than
    /// this cluster has seen is refused before anything it sent is applied; a newer one
    /// is remembered. Called under the round's lock, which role changes also take.
    async fn follow_epoch(
        &self,
        secondary: &SecondaryState,
        primary: &PrimaryInfo,
    ) -> Result<(), String> {
        match epoch::follow(&secondary.epoch, &primary.epoch) {
            Follow::Apply => Ok(()),
            Follow::Raise(newer) => {
                let mut raised = secondary.clone();
                raised.epoch = newer;
                self.store_state(&ReplicationState::Secondary(raised))
                    .await
                    .map_err(|error| error.to_string())
            }
            Follow::Refuse { primary, seen } => {
                lock(&self.stream).state = "idle";
                Err(format!(
                    "the primary answered in epoch {primary}, older than epoch {seen} this \
                     cluster has seen: it was superseded, and nothing it sends is applied"
                ))
            }
        }
    }

    /// After a promotion, tell the former primary of the new epoch, every
    /// [`SUPERSEDE_NOTICE_INTERVAL`] until it answers, so it stands down even when it was
    /// not demoted (a forced promotion) and was cut off meanwhile.
    async fn notify_predecessor(&self, core: &Core, primary: &PrimaryState) {
        let Some(predecessor) = primary
            .predecessor
            .as_ref()
            .filter(|predecessor| !predecessor.notified)
        else {
            return;
        };
        if primary.superseded.is_some() {
            return;
        }
        let now = core.env().clock.now();
        {
            let mut last = lock(&self.last_notice);
            if last.is_some_and(|at| now.duration_since(at) < SUPERSEDE_NOTICE_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let Ok(key) = hex::decode(&predecessor.auth_key_hex) else {
            return;
        };
        let body = ReplBody::Supersede {
            epoch: primary.epoch.clone(),
            from_wal: predecessor.from_wal,
        };
        let request = ReplRequest::signed(&primary.set_id, &predecessor.secondary_id, &key, body);
        let Ok(payload) = encode_body(&request) else {
            return;
        };
        let trust = trust_of(&predecessor.ca_cert, &predecessor.client_certificate);
        for address in &predecessor.cluster_addrs {
            let reply = self
                .client
                .call_trusting(
                    &trust,
                    address,
                    Protocol::Replication,
                    Lane::Control,
                    payload.clone(),
                    SUPERSEDE_NOTICE_TIMEOUT,
                )
                .await;
            let answer = reply.map_err(|error| error.to_string()).and_then(|reply| {
                decode_body::<ReplResponse>(&reply).map_err(|error| error.to_string())
            });
            match answer {
                Ok(ReplResponse::SupersedeNoted {
                    divergent_wals,
                    newest,
                }) => {
                    tracing::info!(
                        epoch = %primary.epoch,
                        former_primary = %address,
                        divergent_wals = ?divergent_wals,
                        "the former primary knows of the new epoch"
                    );
                    // It has heard of a newer promotion than this one (two secondaries of
                    // it were promoted): this cluster is the one that stands down.
                    if let Some(newest) =
                        newest.and_then(|newest| epoch::superseded_by(&primary.epoch, &newest))
                    {
                        self.stand_down(core, &newest, None).await;
                    }
                    let _guard = self.state_lock.lock().await;
                    if let Ok(ReplicationState::Primary(mut current)) = self.load_state()
                        && current.epoch == primary.epoch
                        && let Some(stored) = current.predecessor.as_mut()
                    {
                        stored.notified = true;
                        if let Err(error) =
                            self.store_state(&ReplicationState::Primary(current)).await
                        {
                            tracing::warn!(error = %error, "could not record the notice");
                        }
                    }
                    return;
                }
                Ok(ReplResponse::Refused { reason }) => {
                    tracing::debug!(former_primary = %address, reason = %reason, "supersede notice refused");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(former_primary = %address, error = %error, "supersede notice not delivered");
                }
            }
        }
    }

    fn note_primary(&self, core: &Core, primary: PrimaryInfo, state: &'static str) {
        let now = core.env().clock.unix_millis();
        let mut stream = lock(&self.stream);
        if stream.state != state {
            tracing::info!(state, "performance secondary: transitioning state");
        }
        stream.state = state;
        stream.connection_state = "ready";
        stream.clock_skew.note(primary.now_unix_ms - now);
        stream.last_heartbeat_unix_ms = now;
        // A secondary that cannot keep up keeps saying so until it streams again.
        if !stream.sync_pace.is_behind() {
            stream.last_error = None;
        }
        stream.primary = Some(primary);
    }

    /// Bring this cluster to the primary's filtered view, pinned at WAL index `W`: diff
    /// the Merkle indexes (only differing pages and buckets cross), fetch the keys that
    /// differ (applied as they come), then apply the deletes and record `W` in one step,
    /// so the stream resumes at `W + 1`. A crash midway leaves the position at 0, which
    /// syncs again (cheaply: what already arrived now matches).
    async fn sync(&self, core: &Core, secondary: &SecondaryState) -> Result<(), String> {
        crate::coverage::mark("replication-merkle-sync");
        {
            let mut stream = lock(&self.stream);
            if stream.state != "merkle-diff" {
                tracing::info!(
                    state = "merkle-diff",
                    "performance secondary: transitioning state"
                );
            }
            stream.state = "merkle-diff";
        }
        let begin = ReplBody::SyncBegin {
            epoch: secondary.epoch.clone(),
        };
        let (sync_id, wal_index, group_roots, view_root) =
            match self.call(core, secondary, begin).await? {
                ReplResponse::SyncStarted {
                    sync_id,
                    wal_index,
                    group_roots,
                    view_root,
                    primary,
                } => {
                    self.follow_epoch(secondary, &primary).await?;
                    // Every answer carrying the primary's clock is a skew reading: a
                    // status read between this sync and the first pull answer (a long
                    // poll) must not report 0.
                    let now = core.env().clock.unix_millis();
                    let mut stream = lock(&self.stream);
                    stream.clock_skew.note(primary.now_unix_ms - now);
                    stream.primary = Some(primary);
                    drop(stream);
                    (sync_id, wal_index, group_roots, view_root)
                }
                other => return self.unexpected(other).map(|_| ()),
            };
        let backend = core.cluster().backend();
        let local = backend
            .applied_view()
            .ok_or("this node's storage cannot replicate")?;
        let merkle = local.merkle().ok_or(NO_MERKLE_INDEX)?;
        let mut run = secondary::MerkleSync::new(merkle, group_roots, wal_index, view_root)
            .map_err(|error| format!("merkle diff: {error}"))?;
        loop {
            match run.next_call(SYNC_PAGE_ENTRIES_MAX as usize) {
                secondary::SyncCall::Merkle(requests) => {
                    let body = ReplBody::Merkle { sync_id, requests };
                    match self.call(core, secondary, body).await? {
                        ReplResponse::MerkleAnswers { responses } => run
                            .on_merkle(responses)
                            .map_err(|error| format!("merkle diff: {error}"))?,
                        other => return self.unexpected(other).map(|_| ()),
                    }
                }
                secondary::SyncCall::Fetch(keys) => {
                    {
                        let mut stream = lock(&self.stream);
                        if stream.state != "merkle-sync" {
                            tracing::info!(
                                state = "merkle-sync",
                                "performance secondary: transitioning state"
                            );
                        }
                        stream.state = "merkle-sync";
                    }
                    let body = ReplBody::FetchKeys { sync_id, keys };
                    match self.call(core, secondary, body).await? {
                        ReplResponse::Keys { entries } if !entries.is_empty() => {
                            let ops = run.on_fetched(entries);
                            apply_chunk(&backend, ops, 0).await?;
                        }
                        ReplResponse::Keys { .. } => {
                            return Err("the primary answered an empty fetch".into());
                        }
                        other => return self.unexpected(other).map(|_| ()),
                    }
                }
                secondary::SyncCall::Done => break,
            }
        }
        let deletes = run.final_ops();
        let mut chunks: Vec<Vec<Op>> = deletes
            .chunks(BATCH_OPS_MAX / 2)
            .map(<[Op]>::to_vec)
            .collect();
        let last = chunks.pop().unwrap_or_default();
        for chunk in chunks {
            apply_chunk(&backend, chunk, 0).await?;
        }
        // The last step records W (a sync of an empty view still records it).
        apply_chunk(&backend, last, wal_index.max(1)).await?;
        if wal_index == 0 {
            // Nothing was ever written on the primary: position 1 would claim an entry
            // that does not exist, so go back to 0 and let the next pull find out.
            apply_chunk(&backend, Vec::new(), 0).await?;
        }
        let synced_root = backend
            .applied_view()
            .and_then(|view| view.merkle().map(|merkle| merkle.root()))
            .unwrap_or_default();
        let (fetched, deleted) = run.counts();
        if synced_root != run.expected_root {
            // The view changed under the sync (a write raced it here), or an index is
            // corrupt: say so and sync again rather than stream from a wrong base.
            lock(&self.stream).synced_generation = None;
            return Err(format!(
                "after the sync the merkle root is {} but the primary's view is {}; syncing again",
                short_root(&synced_root),
                short_root(&run.expected_root)
            ));
        }
        tracing::info!(
            state = "stream-wals",
            wal_index,
            fetched,
            deleted,
            "performance secondary: merkle sync complete"
        );
        lock(&self.stream).sync_pace.synced();
        let generation = lock(&self.stream)
            .primary
            .as_ref()
            .map_or(0, |primary| primary.filter_generation);
        if !secondary.bootstrapped {
            let mut bootstrapped = secondary.clone();
            bootstrapped.bootstrapped = true;
            self.store_state(&ReplicationState::Secondary(bootstrapped))
                .await
                .map_err(|error| error.to_string())?;
        }
        // The status says `stream-wals` only once the synced mount and auth tables are
        // served: a client that waits for it may log in with a replicated method at once.
        if let Err(error) = core
            .await_caches_current(crate::core::cache_watch::CACHES_CURRENT_WAIT_MAX)
            .await
        {
            tracing::warn!(%error, "performance secondary: caches lag the synced state");
        }
        let mut stream = lock(&self.stream);
        stream.synced_generation = Some(generation);
        stream.state = "stream-wals";
        Ok(())
    }

    async fn call(
        &self,
        core: &Core,
        secondary: &SecondaryState,
        body: ReplBody,
    ) -> Result<ReplResponse, String> {
        self.call_within(core, secondary, body, CALL_TIMEOUT).await
    }

    async fn call_within(
        &self,
        core: &Core,
        secondary: &SecondaryState,
        body: ReplBody,
        timeout: Duration,
    ) -> Result<ReplResponse, String> {
        let key = hex::decode(&secondary.auth_key_hex).map_err(|error| error.to_string())?;
        let addresses = {
            let stream = lock(&self.stream);
            let mut addresses = Self::primary_addresses(secondary, &stream);
            let index = stream.address_index % addresses.len().max(1);
            addresses.rotate_left(index);
            addresses
        };
        let address = addresses
            .first()
            .cloned()
            .ok_or("no primary cluster address is known")?;
        let request = ReplRequest::signed(&secondary.set_id, &secondary.secondary_id, &key, body);
        let payload = encode_body(&request).map_err(|error| error.to_string())?;
        let started = core.env().clock.now();
        let reply = match self
            .client
            .call_trusting(
                &trust_of(&secondary.primary_ca_cert, &secondary.client_certificate),
                &address,
                Protocol::Replication,
                Lane::Control,
                payload,
                timeout,
            )
            .await
        {
            Ok(reply) => reply,
            // The primary refused this secondary's certificate at the handshake (it was
            // revoked): the same answer as a refusal of its id.
            Err(crate::channel::CallError::CertificateRefused(reason)) => {
                return Ok(ReplResponse::Refused { reason });
            }
            Err(error) => return Err(format!("{address}: {error}")),
        };
        let response: ReplResponse =
            decode_body(&reply).map_err(|error| format!("bad answer from {address}: {error}"))?;
        let elapsed = core.env().clock.now().duration_since(started);
        let mut stream = lock(&self.stream);
        stream.last_heartbeat_duration_ms = elapsed.as_millis() as i64;
        stream.redirected = false;
        if let ReplResponse::NotActive {
            leader_cluster_addr: Some(leader),
        } = &response
        {
            // Go straight to the active node next time (the error this answer becomes
            // must not move the index past it).
            let known = Self::primary_addresses(secondary, &stream);
            if let Some(position) = known.iter().position(|addr| addr == leader) {
                stream.address_index = position;
                stream.redirected = true;
            }
        }
        Ok(response)
    }

    /// The primary's cluster addresses this secondary knows, without repeats, in the
    /// order `address_index` counts them.
    fn primary_addresses(secondary: &SecondaryState, stream: &Stream) -> Vec<String> {
        let mut addresses = secondary.primary_cluster_addrs.clone();
        if let Some(primary) = &stream.primary {
            for addr in &primary.cluster_addrs {
                if !addresses.contains(addr) {
                    addresses.push(addr.clone());
                }
            }
        }
        addresses
    }
}

impl crate::identity::RemoteIdentity for Replication {
    fn persist_alias(
        &self,
        alias: crate::identity::OwnedLoginAlias,
        now_unix: i64,
    ) -> BoxFuture<'_, Result<crate::identity::Entity, String>> {
        Box::pin(async move {
            let core = self.core().map_err(|error| error.to_string())?;
            let ReplicationState::Secondary(secondary) =
                self.load_state().map_err(|error| error.to_string())?
            else {
                return Err("this cluster is not a performance secondary".into());
            };
            let body = ReplBody::PersistAlias { alias, now_unix };
            match self.call(&core, &secondary, body).await? {
                ReplResponse::Entity { entity_json } => {
                    serde_json::from_slice(&entity_json).map_err(|error| error.to_string())
                }
                ReplResponse::Failed { reason } | ReplResponse::Refused { reason } => Err(reason),
                other => Err(format!("unexpected answer from the primary: {other:?}")),
            }
        })
    }
}

async fn apply_chunk(
    backend: &crate::storage::SharedBackend,
    ops: Vec<Op>,
    last_remote_wal: u64,
) -> Result<(), String> {
    match backend
        .apply_remote(None, last_remote_wal, ops)
        .await
        .map_err(|error| error.to_string())?
    {
        Ok(_) => Ok(()),
        Err(why) => Err(format!("sync chunk refused: {why}")),
    }
}

/// The keys that cross to a secondary with `filter`, judged from `view`'s mount tables
/// (opened with this node's keyring).
fn crossing_for(
    core: &Core,
    view: &AppliedState,
    filter: Option<&PathsFilter>,
) -> Result<Crossing, LogicalError> {
    let Some(filter) = filter else {
        return Ok(Crossing::default());
    };
    let mut denied = BTreeSet::new();
    let mut allowed = BTreeSet::new();
    for kind in [TableKind::Secrets, TableKind::Auth] {
        let prefix = key_space::mount_table_prefix(kind, false);
        for (key, sealed) in view
            .range_from(std::ops::Bound::Included(prefix))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            let plain = core.barrier().open(key, sealed)?;
            let entry: MountEntry = serde_json::from_slice(&plain).map_err(internal)?;
            let path = crate::core::mounts::client_path(kind, &entry.path);
            if filterable(&entry) && !filter.allows(&path) {
                denied.insert(entry.uuid.clone());
            } else {
                allowed.insert(entry.uuid.clone());
            }
        }
    }
    Ok(Crossing {
        denied_mounts: denied,
        allowed_mounts: Some(allowed),
    })
}

/// Arca's addition to the status of a cluster that was a superseded primary (Vault
/// has no such state: it relies on operators never running two primaries).
fn add_superseded(status: &mut Value, superseded: &Superseded, divergent_wals: Option<u64>) {
    status["superseded"] = json!(true);
    status["superseded_by_epoch"] = json!(superseded.by.generation);
    status["divergent_wals"] = json!(divergent_wals);
}

/// A root as the status shows it: hex of its first 20 bytes, the length of Vault's
/// `merkle_root`.
pub fn short_root(root: &super::merkle::Hash) -> String {
    hex::encode(&root[..20])
}

/// Check an activation token's shape and expiry, then unwrap it at the primary's API
/// (`primary_api_addr`, else the token's `addr` claim): the bundle and the address used.
async fn activation_bundle(
    core: &Core,
    token: &str,
    primary_api_addr: Option<&str>,
) -> Result<(Bundle, String), LogicalError> {
    if activation_key::looks_sealed(token) {
        return open_sealed_bundle(core, token, primary_api_addr);
    }
    let claims = crate::wrapping::jwt::decode_unverified_claims(token)
        .map_err(|error| LogicalError::BadRequest(format!("invalid activation token: {error}")))?;
    if claims.get("type").and_then(Value::as_str) != Some("wrapping") {
        return Err(LogicalError::BadRequest(
            "invalid activation token: not a wrapping token".into(),
        ));
    }
    let now = core.env().clock.unix_seconds();
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp <= now)
    {
        return Err(LogicalError::BadRequest(
            "activation token has expired".into(),
        ));
    }
    let address = match primary_api_addr.filter(|addr| !addr.is_empty()) {
        Some(addr) => addr.to_string(),
        None => claims
            .get("addr")
            .and_then(Value::as_str)
            .filter(|addr| !addr.is_empty())
            .ok_or_else(|| {
                LogicalError::BadRequest(
                    "the activation token carries no primary address; pass primary_api_addr".into(),
                )
            })?
            .to_string(),
    };
    let bundle = unwrap_bundle(&address, token).await?;
    Ok((bundle, address))
}

/// Open a token sealed to this cluster's activation key (`generate-public-key`): the
/// bundle and the primary's API address (`primary_api_addr`, else the bundle's), with
/// no call to the primary. The key is not removed here: a refused activation can be
/// retried, and a successful one wipes it (`enable`) or removes it (`update-primary`).
fn open_sealed_bundle(
    core: &Core,
    token: &str,
    primary_api_addr: Option<&str>,
) -> Result<(Bundle, String), LogicalError> {
    let secret = zeroize::Zeroizing::new(
        core.barrier()
            .get(key_space::ACTIVATION_KEY_KEY)?
            .ok_or_else(|| {
                LogicalError::BadRequest(
                    "the activation token is sealed to a public key, but this cluster holds \
                     no activation key: run generate-public-key here and issue a new token \
                     with its output"
                        .into(),
                )
            })?,
    );
    let (bundle, exp) = activation_key::open(&secret, token)
        .map_err(|error| LogicalError::BadRequest(format!("invalid activation token: {error}")))?;
    if exp <= core.env().clock.unix_seconds() {
        return Err(LogicalError::BadRequest(
            "activation token has expired".into(),
        ));
    }
    let bundle: Bundle = serde_json::from_value(bundle)
        .map_err(|_| LogicalError::BadRequest("activation bundle is malformed".into()))?;
    let address = primary_api_addr
        .filter(|addr| !addr.is_empty())
        .unwrap_or(&bundle.primary_api_addr)
        .to_string();
    Ok((bundle, address))
}

/// Unwrap an activation token at the primary's API and read the bundle.
async fn unwrap_bundle(address: &str, token: &str) -> Result<Bundle, LogicalError> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-vault-token",
        http::HeaderValue::from_str(token)
            .map_err(|_| LogicalError::BadRequest("invalid activation token".into()))?,
    );
    // The primary's API is trusted through the system's roots, as Vault's secondary does
    // without a `ca_file`.
    let response = crate::http::client::request(
        address,
        &crate::http::client::PeerTls::default(),
        http::Method::PUT,
        "/v1/sys/wrapping/unwrap",
        &headers,
        bytes::Bytes::from_static(b"{}"),
        UNWRAP_TIMEOUT,
    )
    .await
    .map_err(|error| {
        LogicalError::BadRequest(format!(
            "error unwrapping secondary token at {address}: {error}"
        ))
    })?;
    if response.status != 200 {
        let message = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|body| body.get("errors").cloned())
            .map(|errors| errors.to_string())
            .unwrap_or_default();
        return Err(LogicalError::BadRequest(format!(
            "error response unwrapping secondary token; status code is {}, message is {message}",
            response.status
        )));
    }
    if response.body.len() > BUNDLE_BYTES_MAX {
        return Err(LogicalError::BadRequest(
            "activation bundle is too large".into(),
        ));
    }
    let body: Value = serde_json::from_slice(&response.body)
        .map_err(|_| LogicalError::BadRequest("activation bundle is not JSON".into()))?;
    serde_json::from_value(body.get("data").cloned().unwrap_or(Value::Null))
        .map_err(|_| LogicalError::BadRequest("activation bundle is malformed".into()))
}

/// Serves `arca-repl/1` on a primary's nodes.
pub struct ReplicationHandler {
    replication: Weak<Replication>,
}

impl ReplicationHandler {
    pub fn new(replication: &Arc<Replication>) -> Arc<Self> {
        Arc::new(Self {
            replication: Arc::downgrade(replication),
        })
    }
}

impl ProtocolHandler for ReplicationHandler {
    fn handle(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let replication = self
                .replication
                .upgrade()
                .ok_or_else(|| "the node is shutting down".to_string())?;
            let request: ReplRequest = decode_body(&payload)
                .map_err(|error| format!("bad replication request: {error}"))?;
            let response = replication.serve(request).await;
            encode_body(&response).map_err(|error| error.to_string())
        })
    }
}

/// A primary's cluster address as Vault's status shows it: a URL, always `https://` (the
/// cluster port speaks only TLS in Vault, whatever scheme `cluster_addr` was given with;
/// the tutorial's `known_primary_cluster_addrs` reads `https://cluster-pri:8201` for a
/// `VAULT_CLUSTER_ADDR` of `http://cluster-pri:8201`). Arca keeps the addresses it dials
/// as `host:port`.
fn cluster_url(host_port: &str) -> String {
    match host_port.split_once("://") {
        Some((_, rest)) => format!("https://{rest}"),
        None => format!("https://{host_port}"),
    }
}

/// How another cluster's nodes are trusted on `arca-repl/1`: under the CA certificate
/// recorded for it (base64 DER), presenting the client certificate it issued this
/// cluster. A record without a CA (or an unreadable one) trusts an empty set, so the
/// call fails at the handshake rather than talking to anyone; without a client
/// certificate the other side refuses it.
fn trust_of(ca_cert_base64: &str, client_certificate_base64: &str) -> Trust {
    let der = BASE64.decode(ca_cert_base64).unwrap_or_default();
    let client = BASE64
        .decode(client_certificate_base64)
        .ok()
        .map(zeroize::Zeroizing::new)
        .and_then(|bytes| crate::channel::NodeCertificate::from_bytes(&bytes).ok());
    match client {
        Some(client) => Trust::cluster_as(der, client),
        None => Trust::cluster(der),
    }
}

#[cfg(test)]
mod tests {
    use super::{SKEW_SAMPLES_MAX, SkewEstimate, cluster_url};

    #[test]
    fn a_delayed_message_does_not_show_as_skew() {
        let mut skew = SkewEstimate::default();
        assert_eq!(skew.estimate_ms(), 0);
        // Clocks 1500 ms apart; transits of 2 to 5 ms, and one held 8 s in the network.
        for reading in [1498, 1495, 1500 - 8_000, 1497] {
            skew.note(reading);
        }
        assert_eq!(skew.estimate_ms(), 1498);
        // The clocks change (an NTP step): after a window of readings, so does the estimate.
        for _ in 0..SKEW_SAMPLES_MAX {
            skew.note(-203);
        }
        assert_eq!(skew.estimate_ms(), -203);
    }

    #[test]
    fn cluster_addresses_show_as_vault_shows_them() {
        assert_eq!(cluster_url("127.0.0.1:8201"), "https://127.0.0.1:8201");
        assert_eq!(cluster_url("cluster-pri:8201"), "https://cluster-pri:8201");
        assert_eq!(
            cluster_url("http://cluster-pri:8201"),
            "https://cluster-pri:8201"
        );
        assert_eq!(cluster_url("https://[::1]:8201"), "https://[::1]:8201");
    }
}
