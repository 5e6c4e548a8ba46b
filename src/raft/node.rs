//! [`RaftNode`]: the handle the rest of the server uses for integrated storage. It opens
//! the log and the state machine on the node's disk, runs openraft, serves peer RPCs on
//! the cluster listener, and exposes a [`Backend`] whose reads come from this node's
//! applied state and whose commits go through consensus.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, LinearizableReadError};
use openraft::{ChangeMembers, LinearizerOption, ServerState, SnapshotPolicy};

use super::change_feed::Subscription;
use super::disk_alarm::{CHECK_INTERVAL, DiskAlarm};
use super::log_store::{ENTRY_BYTES_MAX, LogStore, LogStoreError, LogStoreOptions};
use super::network::{NetworkFactory, RaftHandler};
use super::state_machine::{StateMachine, StateMachineError};
use super::types::{Command, CommandResponse, NodeInfo, Raft, TypeConfig};
use super::wal::WAL_BUFFER_ENTRIES_DEFAULT;
use crate::channel::identity::FOLLOWER_IDENTITY_PATH;
use crate::channel::{ChannelClient, ChannelIdentity, ChannelServer, NodeCertificate, Protocol};
use crate::env::{Clock, DiskError, Env};
use crate::storage::{Backend, Op, StorageError, validate_batch, validate_key};

/// The cluster name openraft tags its tracing with.
pub const CLUSTER_NAME: &str = "arca";
/// How often the leader sends heartbeats.
pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// A follower that hears no leader for a random time in this range stands for election.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 400;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 800;
/// A snapshot is built after this many entries since the last one; the log before it
/// is then purged. Vault's integrated-storage default (`snapshot_threshold`).
pub const SNAPSHOT_LOGS_SINCE_LAST: u64 = 8192;
/// Entries kept after a snapshot, so a briefly lagging follower catches up from the log
/// rather than a full snapshot. Vault's integrated-storage default (`trailing_logs`).
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 10_000;
/// How many times a commit is tried when no leader is known yet (right after an
/// election openraft can answer "forward to: unknown" on the leader itself).
pub const COMMIT_ATTEMPTS_MAX: usize = 3;
pub const COMMIT_RETRY_DELAY: Duration = Duration::from_millis(50);
/// The most key and value bytes one commit may carry: well under the log's entry limit,
/// so an oversized client write is refused here instead of failing the log (which would
/// stop the node).
pub const COMMIT_BYTES_MAX: usize = ENTRY_BYTES_MAX / 2;
/// How long `bootstrap` waits for this node to lead its new one-node cluster.
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);
/// How old the newest quorum acknowledgement of this leader's heartbeats may be for a
/// leadership confirmation to rest on it; older, and the confirmation sends a round of
/// heartbeats (a read-index round) and waits for a quorum. Heartbeats go out every
/// `HEARTBEAT_INTERVAL_MS`, so a healthy leader almost always has a fresh one.
pub const READ_QUORUM_ACK_AGE_MAX_MS: u64 = 200;
/// The default margin for clock drift between nodes, taken off every read lease
/// (`storage "raft" { max_clock_drift = "..." }` overrides it).
pub const CLOCK_DRIFT_MARGIN_MS_DEFAULT: u64 = 100;
/// How long a leadership confirmation may take before the node gives up and answers
/// that it is not sure it leads (a partitioned leader would otherwise wait forever).
pub const LEADERSHIP_CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between confirmation rounds that fell short of a quorum.
pub const LEADERSHIP_CONFIRM_RETRY_DELAY: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error(transparent)]
    LogStore(#[from] LogStoreError),
    #[error(transparent)]
    StateMachine(#[from] StateMachineError),
    #[error("raft configuration is invalid: {0}")]
    Config(String),
    #[error("raft has stopped: {0}")]
    Fatal(String),
    #[error("the raft cluster is already initialized")]
    AlreadyInitialized,
    #[error("this node is not the leader")]
    NotLeader { leader_api_addr: Option<String> },
    #[error("node {0} is not a member of the raft cluster")]
    UnknownPeer(String),
    #[error("raft membership change failed: {0}")]
    Membership(String),
    #[error("this node could not confirm that it still leads: {0}")]
    LeadershipUnconfirmed(String),
}

/// One member of the cluster, as `sys/storage/raft/configuration` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: String,
    /// The peer's cluster address.
    pub address: String,
    pub api_address: String,
    pub leader: bool,
    pub voter: bool,
    /// On the leader: when the peer last acknowledged a heartbeat or an append (never
    /// for the leader itself); on a follower, unknown.
    pub last_acknowledged: Option<std::time::Instant>,
    /// On the leader: the highest log index the peer is known to hold (its own last
    /// index for the leader itself); on a follower, unknown.
    pub matched_index: Option<u64>,
}

/// A summary of this node's Raft progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    pub committed_index: u64,
    /// The term of the entry at `committed_index`: the current term once this node
    /// knows its leader's first entry committed.
    pub committed_term: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub leader_id: Option<String>,
    pub is_leader: bool,
}

struct NodeInner {
    node_id: String,
    info: NodeInfo,
    raft: Raft,
    state_machine: StateMachine,
    /// The cluster listener: Raft is one of the protocols it serves.
    channel_server: Arc<ChannelServer>,
    /// This node's connections to its peers.
    channel_client: ChannelClient,
    clock: Clock,
    telemetry: crate::metrics::Telemetry,
    /// How long after a confirmation began this node may trust it without asking again.
    read_lease: Duration,
    /// The last leadership confirmation, and the last failure to get one.
    confirmation: Mutex<Confirmation>,
    /// Held while a confirmation round is under way, so there is only one at a time.
    confirm_round: tokio::sync::Mutex<()>,
    /// Refuses writes while the disk is (nearly) full.
    disk_alarm: Arc<DiskAlarm>,
}

#[derive(Debug, Default)]
struct Confirmation {
    lease: Option<ReadLease>,
    failure: Option<ConfirmFailure>,
    /// The term in which this node began handing its lead to another: no lease is
    /// granted in it again (see [`RaftNode::transfer_leadership`]).
    handed_over_term: Option<u64>,
}

/// A confirmation attempt that failed: when it began, and why.
#[derive(Debug, Clone)]
struct ConfirmFailure {
    began: std::time::Instant,
    reason: String,
}

/// A leadership confirmation this node may reuse: until `valid_until` (monotonic time)
/// no other node can have been elected, provided the term has not changed.
#[derive(Debug, Clone, Copy)]
struct ReadLease {
    term: u64,
    valid_until: std::time::Instant,
}

/// A running Raft node; clones share it.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "RaftNode({})", self.inner.node_id)
    }
}

/// Why Raft stopped on a node without being asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftFailure {
    pub reason: String,
    /// Whether storage failed (a write, an fsync or a read the log or state machine
    /// could not get past), rather than a panic.
    pub storage: bool,
}

/// Tunables; production uses [`RaftOptions::default`], tests snapshot and roll
/// segments sooner to exercise compaction.
#[derive(Debug, Clone, Copy)]
pub struct RaftOptions {
    pub log: LogStoreOptions,
    pub snapshot_logs_since_last: u64,
    pub logs_kept_after_snapshot: u64,
    /// The margin for clock drift between nodes, taken off every read lease.
    pub clock_drift_margin: Duration,
    /// How many recent WAL entries the state machine keeps (`logshipper_buffer_length`).
    pub wal_buffer_entries_max: usize,
    /// Heartbeat and election timers; the simulator draws them per seed.
    pub timers: RaftTimers,
}

/// Raft's timers, in milliseconds: how often a leader sends heartbeats, and the range a
/// follower's election timeout is drawn from. openraft requires
/// `heartbeat < election_timeout_min < election_timeout_max`; the read path also needs
/// `election_timeout_max` (openraft's leader lease) above `READ_QUORUM_ACK_AGE_MAX_MS`,
/// which [`RaftTimers::check`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTimers {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl RaftTimers {
    /// Production's timers.
    pub const DEFAULT: RaftTimers = RaftTimers {
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        election_timeout_min_ms: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max_ms: ELECTION_TIMEOUT_MAX_MS,
    };

    /// Why these timers cannot run safely, if they cannot. A leadership confirmation may
    /// rest on a quorum acknowledgement up to `READ_QUORUM_ACK_AGE_MAX_MS` old; that is
    /// sound only while followers still refuse to vote (for `election_timeout_max`).
    pub fn check(&self) -> Result<(), String> {
        if self.heartbeat_interval_ms == 0 {
            return Err("heartbeat interval must be positive".into());
        }
        if self.election_timeout_min_ms <= self.heartbeat_interval_ms {
            return Err(format!(
                "election timeout min {}ms must exceed the heartbeat interval {}ms",
                self.election_timeout_min_ms, self.heartbeat_interval_ms
            ));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(format!(
                "election timeout max {}ms must exceed min {}ms",
                self.election_timeout_max_ms, self.election_timeout_min_ms
            ));
        }
        if self.election_timeout_min_ms <= READ_QUORUM_ACK_AGE_MAX_MS {
            return Err(format!(
                "election timeout min {}ms must exceed the read quorum ack age {READ_QUORUM_ACK_AGE_MAX_MS}ms",
                self.election_timeout_min_ms
            ));
        }
        Ok(())
    }
}

impl Default for RaftTimers {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Default for RaftOptions {
    fn default() -> Self {
        Self {
            log: LogStoreOptions::default(),
            snapshot_logs_since_last: SNAPSHOT_LOGS_SINCE_LAST,
            logs_kept_after_snapshot: LOGS_KEPT_AFTER_SNAPSHOT,
            clock_drift_margin: Duration::from_millis(CLOCK_DRIFT_MARGIN_MS_DEFAULT),
            wal_buffer_entries_max: WAL_BUFFER_ENTRIES_DEFAULT,
            timers: RaftTimers::DEFAULT,
        }
    }
}

impl RaftOptions {
    /// How long a leadership confirmation holds after it began.
    ///
    /// A confirmation means a quorum acknowledged a heartbeat this leader sent at most
    /// `READ_QUORUM_ACK_AGE_MAX_MS` before it began; a follower that acknowledged one
    /// refuses to vote for anyone else for an election timeout after it arrived (openraft's
    /// leader lease). Measured from the start of the confirmation, what is left of the
    /// shortest election timeout, less the drift margin, is a time in which no other leader
    /// can exist. Zero (no reuse: every request confirms) when the margin eats it all.
    pub fn read_lease(&self) -> Duration {
        Duration::from_millis(self.timers.election_timeout_min_ms)
            .saturating_sub(Duration::from_millis(READ_QUORUM_ACK_AGE_MAX_MS))
            .saturating_sub(self.clock_drift_margin)
    }
}

fn raft_config(options: &RaftOptions) -> Result<openraft::Config, RaftError> {
    options.timers.check().map_err(RaftError::Config)?;
    openraft::Config {
        cluster_name: CLUSTER_NAME.to_string(),
        heartbeat_interval: options.timers.heartbeat_interval_ms,
        election_timeout_min: options.timers.election_timeout_min_ms,
        election_timeout_max: options.timers.election_timeout_max_ms,
        // The state machine asks for snapshots itself (`snapshot_logs_since_last` entries
        // and half the last snapshot's size, see `raft::snapshot_cadence`);
        // `trigger_snapshots` passes its requests on.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: options.logs_kept_after_snapshot,
        // A follower whose disk lost writes it had acknowledged (a lost fsync, a
        // virtual machine restored from an old image) comes back with a shorter log.
        // The entries are still on a quorum, so let the leader resend them instead of
        // leaving that follower stuck forever; the simulator's lost-fsync scenario
        // found the stuck follower.
        allow_log_reversion: Some(true),
        // A restarted leader must win an election again: our state machine is rebuilt
        // in memory at start, so a leader restored without a vote could serve reads
        // from a stale state machine.
        enable_leader_restore: Some(false),
        // A node returning from a crash or partition must not depose a healthy leader.
        enable_pre_vote: Some(true),
        ..Default::default()
    }
    .validate()
    .map_err(|error| RaftError::Config(error.to_string()))
}

fn write_error(
    error: openraft::errors::RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
) -> RaftError {
    match error {
        openraft::errors::RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            RaftError::NotLeader {
                leader_api_addr: forward.leader_node.map(|node| node.api_addr),
            }
        }
        openraft::errors::RaftError::APIError(other) => RaftError::Membership(other.to_string()),
        openraft::errors::RaftError::Fatal(fatal) => RaftError::Fatal(fatal.to_string()),
    }
}

impl RaftNode {
    /// Open the log and the state machine on `env.disk`, start openraft and serve peer
    /// RPCs on `cluster_listener`.
    pub async fn start(
        env: Env,
        node_id: String,
        info: NodeInfo,
        cluster_listener: tokio::net::TcpListener,
    ) -> Result<RaftNode, RaftError> {
        Self::start_with_options(env, node_id, info, cluster_listener, RaftOptions::default()).await
    }

    /// [`RaftNode::start`] with explicit tunables.
    pub async fn start_with_options(
        env: Env,
        node_id: String,
        info: NodeInfo,
        cluster_listener: tokio::net::TcpListener,
        options: RaftOptions,
    ) -> Result<RaftNode, RaftError> {
        let log_store =
            LogStore::open_measured(env.disk.clone(), options.log, Some(env.telemetry()))
                .await
                .map_err(|error| refuse_start(error.into()))?
                .with_committed_sync(env.clock.clone());
        let state_machine = StateMachine::open(env.disk.clone(), options.wal_buffer_entries_max)
            .await
            .map_err(|error| refuse_start(error.into()))?;
        let channel_identity = ChannelIdentity::new(env.rng.clone(), env.clock.clone());
        let channel_client = ChannelClient::new(env.clock.clone(), channel_identity.clone());
        let raft = Raft::new(
            node_id.clone(),
            Arc::new(raft_config(&options)?),
            NetworkFactory::new(node_id.clone(), channel_client.clone()),
            log_store,
            state_machine.clone(),
        )
        .await
        .map_err(|error| RaftError::Fatal(error.to_string()))?;
        stand_at_once_if_sole_voter(&raft, &node_id).await;
        // A node starts sealed: until it is unsealed it takes part in Raft with the
        // follower certificate it keeps on disk, if any.
        match env.disk.read(FOLLOWER_IDENTITY_PATH) {
            Ok(Some(bytes)) => {
                let installed = NodeCertificate::from_bytes(&zeroize::Zeroizing::new(bytes))
                    .and_then(|certificate| channel_identity.install_follower(certificate));
                if let Err(error) = installed {
                    tracing::warn!(%error, "ignoring an unreadable follower identity");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the follower identity"),
        }
        let channel_server = ChannelServer::new(channel_identity);
        channel_server.install(Protocol::Raft, RaftHandler::new(raft.clone()));
        channel_server.spawn(cluster_listener);
        let disk_alarm = Arc::new(DiskAlarm::new(env.disk.clone(), env.telemetry()));
        disk_alarm.check(state_machine.snapshot_bytes_latest()).ok();
        let node = RaftNode {
            inner: Arc::new(NodeInner {
                node_id,
                info,
                raft,
                state_machine,
                channel_server,
                channel_client,
                clock: env.clock.clone(),
                telemetry: env.telemetry(),
                read_lease: options.read_lease(),
                confirmation: Mutex::new(Confirmation::default()),
                confirm_round: tokio::sync::Mutex::new(()),
                disk_alarm,
            }),
        };
        tokio::spawn(watch_disk(Arc::downgrade(&node.inner)));
        tokio::spawn(trigger_snapshots(
            Arc::downgrade(&node.inner),
            node.inner
                .state_machine
                .snapshots_wanted(options.snapshot_logs_since_last),
        ));
        Ok(node)
    }

    /// Serve and dial the cluster channel as a member with `certificate`, and stand for
    /// election: what an unsealed node does (Raft's own tests call it directly).
    pub fn set_member_identity(
        &self,
        certificate: NodeCertificate,
    ) -> Result<(), crate::channel::identity::IdentityError> {
        self.inner.channel_client.identity().install(certificate)?;
        self.set_electable(true);
        Ok(())
    }

    /// Whether this node may stand for election (every node may, sealed or not; the
    /// switch exists so a new one-node cluster is sure to elect itself at bootstrap).
    pub fn set_electable(&self, electable: bool) {
        self.inner.raft.runtime_config().elect(electable);
    }

    /// Why Raft stopped for good on this node (a storage error it could not get past, a
    /// panic), or `None` while it runs. A shutdown asked for is not reported.
    pub fn failed(&self) -> Option<RaftFailure> {
        let receiver = self.inner.raft.metrics();
        let metrics = receiver.borrow_watched();
        match &metrics.running_state {
            Ok(()) | Err(openraft::errors::Fatal::Stopped) => None,
            Err(fatal) => Some(RaftFailure {
                reason: fatal.to_string(),
                storage: matches!(fatal, openraft::errors::Fatal::StorageError(_)),
            }),
        }
    }

    /// Wait until Raft stops on this node: why, if it failed ([`RaftNode::failed`]);
    /// `None` after an orderly shutdown.
    pub async fn wait_stopped(&self) -> Option<RaftFailure> {
        // Looked at under the watch's borrow on each change, not through openraft's
        // `wait().metrics()`: that clones the whole metrics (replication maps, membership)
        // on every change, several times per write, for a task that runs all the node's life.
        let mut receiver = self.inner.raft.metrics();
        loop {
            if receiver.borrow_watched().running_state.is_err() {
                break;
            }
            // An error here means the metrics are gone with the Raft core: stopped too.
            if receiver.changed().await.is_err() {
                break;
            }
        }
        self.failed()
    }

    /// Whether the disk-full alarm is on: this node refuses writes, serves reads.
    pub fn disk_full(&self) -> bool {
        self.inner.disk_alarm.is_full()
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn info(&self) -> &NodeInfo {
        &self.inner.info
    }

    /// The openraft handle, for callers that need more than this API.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// This node's applied key space.
    pub fn state_machine(&self) -> &StateMachine {
        &self.inner.state_machine
    }

    /// Every applied entry and installed snapshot on this node from now on, in apply
    /// order, whichever path it came by.
    pub fn subscribe(&self) -> Subscription {
        self.inner.state_machine.subscribe()
    }

    /// Initialize a one-node cluster of this node (`sys/init` on the first node, `-dev`).
    /// Returns once this node leads and has committed its first membership, so it can
    /// take writes and add voters at once.
    pub async fn bootstrap(&self) -> Result<(), RaftError> {
        // A sealed node does not stand for election; the one node of a new cluster must.
        self.set_electable(true);
        let members = BTreeMap::from([(self.inner.node_id.clone(), self.inner.info.clone())]);
        match self.inner.raft.initialize(members).await {
            Ok(()) => {
                let node_id = self.inner.node_id.clone();
                self.inner
                    .raft
                    .wait(Some(BOOTSTRAP_TIMEOUT))
                    .metrics(
                        move |metrics| {
                            metrics.state == ServerState::Leader
                                && metrics.current_leader.as_ref() == Some(&node_id)
                                && metrics.committed_membership_config.log_id().is_some()
                                && metrics.last_applied.as_ref().map(|log_id| log_id.index)
                                    >= metrics
                                        .committed_membership_config
                                        .log_id()
                                        .as_ref()
                                        .map(|log_id| log_id.index)
                        },
                        "bootstrap",
                    )
                    .await
                    .map_err(|error| RaftError::Fatal(error.to_string()))?;
                Ok(())
            }
            Err(openraft::errors::RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Err(RaftError::AlreadyInitialized)
            }
            Err(openraft::errors::RaftError::APIError(other)) => {
                Err(RaftError::Config(other.to_string()))
            }
            Err(openraft::errors::RaftError::Fatal(fatal)) => {
                Err(RaftError::Fatal(fatal.to_string()))
            }
        }
    }

    /// Whether this node has a log or a membership (bootstrapped or joined).
    pub async fn is_bootstrapped(&self) -> Result<bool, RaftError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|error| RaftError::Fatal(error.to_string()))
    }

    /// Add `node_id` as a learner, wait until it has caught up, then make it a voter.
    /// Must run on the leader.
    pub async fn add_voter(&self, node_id: String, info: NodeInfo) -> Result<(), RaftError> {
        self.inner
            .raft
            .add_learner(node_id.clone(), info, true)
            .await
            .map_err(write_error)?;
        self.inner
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    /// Remove `node_id` from the cluster (voter or learner). Must run on the leader.
    pub async fn remove_peer(&self, node_id: &str) -> Result<(), RaftError> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let is_voter = membership.voter_ids().any(|voter| voter == node_id);
        let is_member = membership.nodes().any(|(member, _)| member == node_id);
        let ids = BTreeSet::from([node_id.to_string()]);
        let change = if is_voter {
            ChangeMembers::RemoveVoters(ids)
        } else if is_member {
            ChangeMembers::RemoveNodes(ids)
        } else {
            return Err(RaftError::UnknownPeer(node_id.to_string()));
        };
        self.inner
            .raft
            .change_membership(change, false)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    /// Every member with its cluster address, whether it leads and whether it votes.
    pub fn configuration(&self) -> Vec<Peer> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<String> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(node_id, info)| Peer {
                node_id: node_id.clone(),
                address: info.cluster_addr.clone(),
                api_address: info.api_addr.clone(),
                leader: metrics.current_leader.as_ref() == Some(node_id),
                voter: voters.contains(node_id),
                last_acknowledged: metrics
                    .heartbeat
                    .as_ref()
                    .and_then(|heartbeats| heartbeats.get(node_id).cloned().flatten())
                    .map(|instant| instant.into_inner()),
                matched_index: metrics
                    .replication
                    .as_ref()
                    .and_then(|matched| matched.get(node_id).cloned().flatten())
                    .map(|log_id| log_id.index),
            })
            .collect()
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<(String, NodeInfo)> {
        // Read under the watch's borrow: cloning the whole metrics (replication maps, node
        // ids) on every request costs allocations the read path does not need.
        let receiver = self.inner.raft.metrics();
        let metrics = receiver.borrow_watched();
        let leader = metrics.current_leader.clone()?;
        let info = metrics
            .membership_config
            .membership()
            .nodes()
            .find(|(node_id, _)| **node_id == leader)
            .map(|(_, info)| info.clone())?;
        Some((leader, info))
    }

    pub fn is_leader(&self) -> bool {
        let receiver = self.inner.raft.metrics();
        let metrics = receiver.borrow_watched();
        metrics.state == ServerState::Leader
            && metrics.current_leader.as_deref() == Some(self.inner.node_id.as_str())
    }

    /// Confirm that this node still leads and that its state machine holds everything
    /// committed before the call, so a read from it now is linearizable.
    ///
    /// A leader that was paused, or cut off from its peers, keeps believing it leads until
    /// it hears of a newer term; its applied state may be older than what a new leader has
    /// already acknowledged. So every answer from this node's state is preceded (and
    /// followed, by the caller) by this check. A confirmation is reused, without asking
    /// openraft, for the node's read lease; after that it rests on a quorum acknowledgement
    /// younger than `READ_QUORUM_ACK_AGE_MAX_MS` or, failing that, a round of heartbeats.
    pub async fn confirm_leadership(&self) -> Result<(), RaftError> {
        let started = self.inner.clock.now();
        let term = self.status().term;
        if !self.is_leader() {
            return Err(RaftError::NotLeader {
                leader_api_addr: self.leader().map(|(_, info)| info.api_addr),
            });
        }
        if self.lease_holds(term) {
            return Ok(());
        }
        // One confirmation at a time: every request that finds the lease lapsed would
        // otherwise start its own rounds of heartbeats, and a burst of them (the reads
        // that piled up while the node was paused) floods the peers it needs answers from.
        let _single_flight = self.inner.confirm_round.lock().await;
        if self.lease_holds(term) {
            return Ok(());
        }
        if let Some(failure) = &lock(&self.inner.confirmation).failure
            && failure.began >= started
        {
            // A confirmation that began after this request arrived has just failed.
            return Err(RaftError::LeadershipUnconfirmed(failure.reason.clone()));
        }
        let round_began = self.inner.clock.now();
        let deadline = round_began + LEADERSHIP_CONFIRM_TIMEOUT;
        let outcome = self.confirm_rounds(term, round_began, deadline).await;
        let mut confirmation = lock(&self.inner.confirmation);
        match &outcome {
            Ok(()) => confirmation.failure = None,
            Err(reason) => {
                confirmation.lease = None;
                confirmation.failure = Some(ConfirmFailure {
                    began: round_began,
                    reason: reason.clone(),
                });
            }
        }
        outcome.map_err(RaftError::LeadershipUnconfirmed)
    }

    /// Whether a stored confirmation of `term` still holds now.
    fn lease_holds(&self, term: u64) -> bool {
        let now = self.inner.clock.now();
        let confirmation = lock(&self.inner.confirmation);
        confirmation.handed_over_term != Some(term)
            && confirmation
                .lease
                .is_some_and(|lease| lease.term == term && now < lease.valid_until)
    }

    /// Hand the lead to `target` at once, instead of leaving the others to notice an
    /// absence after an election timeout.
    ///
    /// The read lease rests on followers refusing to vote for another node for an election
    /// timeout after they acknowledged this leader; a hand-over tells them to stop refusing,
    /// so the target may lead (and commit) within a round trip while a lease here would
    /// still say no one else can. The lease is therefore revoked, and no new one granted in
    /// this term, before the first hand-over message leaves: from then on every read here
    /// confirms through openraft, which refuses while the hand-over is under way. If the
    /// target cannot take over (it lags), the others elect a leader after their timeout.
    pub async fn transfer_leadership(&self, target: String) -> Result<(), RaftError> {
        let term = self.status().term;
        if !self.is_leader() {
            return Err(RaftError::NotLeader {
                leader_api_addr: self.leader().map(|(_, info)| info.api_addr),
            });
        }
        if !crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::HandOverKeepsLease) {
            let mut confirmation = lock(&self.inner.confirmation);
            confirmation.lease = None;
            confirmation.handed_over_term = Some(term);
        }
        crate::coverage::mark("raft-lead-handed-over");
        self.inner
            .raft
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(|error| RaftError::Fatal(error.to_string()))
    }

    /// Ask openraft to confirm leadership (its lease, else a round of heartbeats) until it
    /// does, another leader is seen, or `deadline` passes. On success, store the lease.
    async fn confirm_rounds(
        &self,
        term: u64,
        began: std::time::Instant,
        deadline: std::time::Instant,
    ) -> Result<(), String> {
        loop {
            let option = LinearizerOption::new(
                Some(Duration::from_millis(READ_QUORUM_ACK_AGE_MAX_MS)),
                true,
            );
            let remaining = deadline.saturating_duration_since(self.inner.clock.now());
            let confirmed =
                tokio::time::timeout(remaining, self.inner.raft.ensure_linearizable(option)).await;
            let shortfall = match confirmed {
                Ok(Ok(_read_log_id)) => {
                    // The term is read again: a confirmation that spans an election must
                    // not be stored under the old term's number.
                    if self.status().term == term && self.is_leader() {
                        let mut confirmation = lock(&self.inner.confirmation);
                        // A hand-over that began while this round was out: the read it
                        // confirmed was sound then, but no lease may outlive the hand-over.
                        if confirmation.handed_over_term != Some(term) {
                            confirmation.lease = Some(ReadLease {
                                term,
                                valid_until: began + self.inner.read_lease,
                            });
                        }
                        return Ok(());
                    }
                    return Err("the term changed while leadership was confirmed".to_string());
                }
                Ok(Err(openraft::errors::RaftError::APIError(
                    LinearizableReadError::QuorumNotEnough(shortfall),
                ))) => shortfall.to_string(),
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_elapsed) => {
                    return Err(format!(
                        "no quorum answered within {LEADERSHIP_CONFIRM_TIMEOUT:?}"
                    ));
                }
            };
            // Too few peers answered this round (slow, or briefly unreachable): nothing
            // says another node leads, so ask again until the deadline.
            if self.inner.clock.now() + LEADERSHIP_CONFIRM_RETRY_DELAY >= deadline {
                return Err(shortfall);
            }
            tokio::time::sleep(LEADERSHIP_CONFIRM_RETRY_DELAY).await;
        }
    }

    pub fn status(&self) -> RaftStatus {
        let receiver = self.inner.raft.metrics();
        let metrics = receiver.borrow_watched();
        RaftStatus {
            term: metrics.current_term,
            committed_index: metrics
                .local_committed
                .as_ref()
                .map_or(0, |log_id| log_id.index),
            committed_term: metrics
                .local_committed
                .as_ref()
                .map_or(0, |log_id| log_id.leader_id.term),
            applied_index: metrics
                .last_applied
                .as_ref()
                .map_or(0, |log_id| log_id.index),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            leader_id: metrics.current_leader.clone(),
            is_leader: metrics.state == ServerState::Leader,
        }
    }

    /// The cluster listener this node serves Raft on; other protocols (forwarding,
    /// replication) install their handlers here.
    pub fn channel_server(&self) -> &Arc<ChannelServer> {
        &self.inner.channel_server
    }

    /// This node's connections to its peers on the cluster channel.
    pub fn channel_client(&self) -> &ChannelClient {
        &self.inner.channel_client
    }

    /// Stop serving peers, stop openraft, then close the connections to peers (after
    /// openraft, so nothing reopens them).
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        self.inner.channel_server.shutdown();
        let result = self
            .inner
            .raft
            .shutdown()
            .await
            .map_err(|error| RaftError::Fatal(error.to_string()));
        self.inner.channel_client.close_all();
        result
    }

    /// The storage backend on this node: reads are local, commits go through Raft.
    pub fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(RaftBackend {
            raft: self.inner.raft.clone(),
            state_machine: self.inner.state_machine.clone(),
            telemetry: self.inner.telemetry.clone(),
            disk_alarm: self.inner.disk_alarm.clone(),
        })
    }
}

/// A node that is the only voter of its cluster stands for election as soon as it
/// starts instead of after an election timeout (400–800 ms): no other node can lead,
/// so waiting only delays the first answer after a restart. With other voters, or no
/// membership yet (a new node), it waits as Raft does.
async fn stand_at_once_if_sole_voter(raft: &Raft, node_id: &str) {
    let voters = raft
        .with_raft_state(|state| {
            state
                .membership_state
                .effective()
                .membership()
                .voter_ids()
                .collect::<Vec<_>>()
        })
        .await;
    if let Ok(voters) = voters
        && voters.len() == 1
        && voters[0] == node_id
    {
        crate::coverage::mark("raft-sole-voter-elected-at-start");
        // An error means the Raft core already stopped; start's caller sees that.
        raft.trigger().elect(false).await.ok();
    }
}

/// A node whose disk failed while reading its log, vote or snapshot at start refuses to
/// start, naming the file (the error says which). It does not drop what it cannot read
/// and catch up from the leader instead: the unreadable part may hold entries this node
/// acknowledged that no other quorum member holds (a write committed by this node and
/// the old leader alone), or the vote it cast in the current term; starting without
/// them could lose an acknowledged write or elect two leaders in one term. An operator
/// (the simulator's harness) starts it again once the disk is repaired.
fn refuse_start(error: RaftError) -> RaftError {
    let disk_error = matches!(
        &error,
        RaftError::LogStore(LogStoreError::Disk(DiskError::Io { .. }))
            | RaftError::StateMachine(StateMachineError::Disk(DiskError::Io { .. }))
    );
    if disk_error {
        crate::coverage::mark("raft-disk-error-start-refused");
    }
    tracing::error!(%error, "refusing to start raft: repair the disk, then start the node again");
    error
}

/// Look at the free space every [`CHECK_INTERVAL`] while the node lives, so the alarm
/// (and `sys/health`, the gauge, the log) follows the disk without writes, and clears by
/// itself once space is freed.
async fn watch_disk(node: std::sync::Weak<NodeInner>) {
    loop {
        tokio::time::sleep(CHECK_INTERVAL).await;
        let Some(node) = node.upgrade() else { return };
        let snapshot_bytes = node.state_machine.snapshot_bytes_latest();
        node.disk_alarm.check(snapshot_bytes).ok();
    }
}

/// Build a snapshot each time the state machine says one is due, until the node or its
/// state machine is gone. openraft ignores a trigger while a build is running.
async fn trigger_snapshots(
    node: std::sync::Weak<NodeInner>,
    mut wanted: tokio::sync::watch::Receiver<u64>,
) {
    while wanted.changed().await.is_ok() {
        let Some(node) = node.upgrade() else { return };
        if let Err(error) = node.raft.trigger().snapshot().await {
            tracing::debug!(%error, "snapshot not triggered: raft has stopped");
            return;
        }
    }
}

struct RaftBackend {
    raft: Raft,
    state_machine: StateMachine,
    telemetry: crate::metrics::Telemetry,
    disk_alarm: Arc<DiskAlarm>,
}

impl RaftBackend {
    /// Refuse a write while the disk-full alarm is on, before anything is proposed.
    fn admit(&self) -> Result<(), StorageError> {
        self.disk_alarm
            .admit_write(self.state_machine.snapshot_bytes_latest())
            .map_err(|full| StorageError::Full(full.to_string()))
    }
}

impl Backend for RaftBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        validate_key(key)?;
        Ok(self.state_machine.get(key))
    }

    fn contains(&self, key: &str) -> Result<bool, StorageError> {
        validate_key(key)?;
        Ok(self.state_machine.contains(key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.state_machine.list(prefix))
    }

    fn commit(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<u64, StorageError>> {
        let raft = self.raft.clone();
        let telemetry = self.telemetry.clone();
        let admitted = self.admit();
        Box::pin(async move {
            let started = telemetry.now();
            validate_batch(&ops)?;
            if let Err(refusal) = admitted {
                if crate::seeded_bugs::enabled(
                    crate::seeded_bugs::SeededBug::DiskFullAppliesRefused,
                ) {
                    let raft = raft.clone();
                    tokio::spawn(async move { raft.client_write(Command::Apply { ops }).await });
                }
                return Err(refusal);
            }
            let bytes: usize = ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value } => key.len() + value.len(),
                    Op::Delete { key } => key.len(),
                })
                .sum();
            if bytes > COMMIT_BYTES_MAX {
                return Err(StorageError::Unavailable(format!(
                    "a commit of {bytes} bytes exceeds the limit of {COMMIT_BYTES_MAX}"
                )));
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                // Proposal to applied on this node: the log append and its fsync, the
                // followers' acknowledgements and the apply, as the client waits.
                let proposed = tracing::Instrument::instrument(
                    raft.client_write(Command::Apply { ops: ops.clone() }),
                    tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.raft.commit"),
                );
                let error = match proposed.await {
                    Ok(response) => {
                        crate::storage::commit_count::note_commit(response.log_id.index);
                        // Proposed to committed and applied here, as a client waits for it.
                        telemetry.measure_since("vault.raft.commitTime", started);
                        return Ok(response.log_id.index);
                    }
                    Err(error) => write_error(error),
                };
                match error {
                    RaftError::NotLeader {
                        leader_api_addr: None,
                    } if attempt < COMMIT_ATTEMPTS_MAX => {
                        tokio::time::sleep(COMMIT_RETRY_DELAY).await;
                    }
                    RaftError::NotLeader { leader_api_addr } => {
                        return Err(StorageError::NotLeader { leader_api_addr });
                    }
                    other => return Err(StorageError::Unavailable(other.to_string())),
                }
            }
        })
    }

    fn apply_remote(
        &self,
        after: Option<u64>,
        last_remote_wal: u64,
        ops: Vec<Op>,
    ) -> BoxFuture<'static, Result<Result<u64, String>, StorageError>> {
        let raft = self.raft.clone();
        let admitted = self.admit();
        Box::pin(async move {
            crate::storage::validate_remote_batch(&ops)?;
            admitted?;
            check_commit_bytes(&ops)?;
            let command = Command::ApplyRemote {
                after,
                last_remote_wal,
                ops,
            };
            let response = Self::propose(raft, command).await?;
            Ok(match response.refused {
                Some(why) => Err(why),
                None => Ok(response.index),
            })
        })
    }

    fn replace_all(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<u64, StorageError>> {
        let raft = self.raft.clone();
        let admitted = self.admit();
        Box::pin(async move {
            validate_batch(&ops)?;
            check_commit_bytes(&ops)?;
            admitted?;
            Ok(Self::propose(raft, Command::ReplaceAll { ops })
                .await?
                .index)
        })
    }

    fn replace_all_from_staging(
        &self,
        restore_id: String,
        entries: u64,
        ops: Vec<Op>,
    ) -> BoxFuture<'static, Result<Result<u64, String>, StorageError>> {
        let raft = self.raft.clone();
        Box::pin(async move {
            validate_batch(&ops)?;
            check_commit_bytes(&ops)?;
            let command = Command::ReplaceAllFromStaging {
                restore_id,
                entries,
                ops,
            };
            let response = Self::propose(raft, command).await?;
            Ok(match response.refused {
                Some(why) => Err(why),
                None => Ok(response.index),
            })
        })
    }

    fn clear_restore_staging(&self) -> BoxFuture<'static, Result<u64, StorageError>> {
        let raft = self.raft.clone();
        Box::pin(async move {
            Ok(Self::propose(raft, Command::ClearRestoreStaging)
                .await?
                .index)
        })
    }

    fn applied_view(&self) -> Option<crate::raft::applied_state::AppliedState> {
        Some(self.state_machine.view())
    }

    fn changes(&self) -> Option<crate::raft::change_feed::Subscription> {
        Some(self.state_machine.subscribe())
    }
}

impl RaftBackend {
    /// Propose `command` and wait for it to be applied here; a node that is not the
    /// leader answers [`StorageError::NotLeader`].
    async fn propose(raft: Raft, command: Command) -> Result<CommandResponse, StorageError> {
        match raft.client_write(command).await {
            Ok(response) => {
                crate::storage::commit_count::note_commit(response.log_id.index);
                Ok(response.data)
            }
            Err(error) => match write_error(error) {
                RaftError::NotLeader { leader_api_addr } => {
                    Err(StorageError::NotLeader { leader_api_addr })
                }
                other => Err(StorageError::Unavailable(other.to_string())),
            },
        }
    }
}

fn commit_bytes(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        })
        .sum()
}

fn check_commit_bytes(ops: &[Op]) -> Result<(), StorageError> {
    let bytes = commit_bytes(ops);
    if bytes > COMMIT_BYTES_MAX {
        return Err(StorageError::Unavailable(format!(
            "a commit of {bytes} bytes exceeds the limit of {COMMIT_BYTES_MAX}"
        )));
    }
    Ok(())
}

#[cfg(all(test, not(madsim)))]
mod tests;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
