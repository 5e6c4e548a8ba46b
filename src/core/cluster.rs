//! What the core needs from the cluster's consensus layer. The Raft node implements it;
//! unit tests use [`SingleNodeCluster`], a one-node cluster over memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;

use crate::channel::{ForwardRequest, ForwardResponse};
use crate::storage::{MemoryBackend, SharedBackend};

/// The addresses a node publishes to its peers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeAddress {
    pub node_id: String,
    pub api_addr: String,
    pub cluster_addr: String,
}

/// One member of the Raft configuration (`sys/storage/raft/configuration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: String,
    /// The cluster address, as Raft dials it (`host:port`).
    pub address: String,
    pub api_address: String,
    pub leader: bool,
    pub voter: bool,
    /// On the leader: when the peer last acknowledged a heartbeat or an append (`None`
    /// for the leader itself, and on followers, which do not know).
    pub last_acknowledged: Option<std::time::Instant>,
    /// On the leader: the highest log index the peer is known to hold.
    pub matched_index: Option<u64>,
}

/// Indexes and term for `sys/leader` and `arca status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftIndexes {
    pub term: u64,
    pub committed: u64,
    /// The term of the entry at `committed`.
    pub committed_term: u64,
    pub applied: u64,
}

impl RaftIndexes {
    /// Whether this node has applied everything committed before its current leader's
    /// term began: it knows an entry of the current term committed (every leader commits
    /// one first, after all that earlier leaders committed) and applied up to it.
    pub fn caught_up_with_term(&self) -> bool {
        self.committed_term == self.term && self.applied >= self.committed
    }
}

pub trait Cluster: Send + Sync + 'static {
    fn backend(&self) -> SharedBackend;
    /// Whether this node has Raft state (it bootstrapped a cluster or joined one).
    fn is_bootstrapped(&self) -> bool;
    /// Make this node a one-node cluster (`sys/init` on a fresh node, `-dev`).
    fn bootstrap(&self) -> BoxFuture<'_, Result<(), String>>;
    fn is_leader(&self) -> bool;
    fn leader(&self) -> Option<NodeAddress>;
    fn add_voter(&self, node: NodeAddress) -> BoxFuture<'_, Result<(), String>>;
    fn remove_peer(&self, node_id: &str) -> BoxFuture<'_, Result<(), String>>;
    fn configuration(&self) -> Vec<Peer>;
    fn indexes(&self) -> RaftIndexes;
    /// Confirm that this node still leads and holds everything committed before the call
    /// (a lease, else a quorum round), so an answer from its state now is not stale.
    fn confirm_leadership(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Whether this node's disk-full alarm is on (it refuses writes). A cluster without
    /// a disk never fills one.
    fn disk_full(&self) -> bool {
        false
    }
    /// Hand leadership to another voter, if there is one (a sealed node must not lead:
    /// every standby forwards to the leader, which could not serve).
    fn step_down(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Serve and dial the cluster channel as the member `certificate` from now on;
    /// `None` (the node sealed) closes the connections made under
    /// it; the node then dials Raft only, as a follower. A cluster without a channel (one
    /// node in memory) has nothing to do.
    fn set_channel_identity(
        &self,
        _certificate: Option<crate::channel::NodeCertificate>,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Accept `arca-repl/1` clients as `clients` says, or none.
    fn set_replication_clients(
        &self,
        _clients: Option<crate::channel::tls::ReplicationClients>,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Whether the follower identity this node keeps chains to `ca_cert_der`.
    fn follower_identity_trusts(&self, _ca_cert_der: &[u8]) -> bool {
        true
    }
    /// Keep `certificate` (stored on this node's disk) to serve Raft while sealed.
    fn set_follower_identity(
        &self,
        _certificate: crate::channel::NodeCertificate,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Send a client request to the active node `leader` over the cluster channel
    /// (`arca-fwd/1`) and return its answer. A cluster without peers cannot.
    fn forward(
        &self,
        leader: &NodeAddress,
        _request: ForwardRequest,
    ) -> BoxFuture<'_, Result<ForwardResponse, String>> {
        let reason = format!("no cluster channel to {}", leader.node_id);
        Box::pin(async move { Err(reason) })
    }
}

pub type SharedCluster = Arc<dyn Cluster>;

/// A one-node "cluster" over memory, for tests of the core.
#[derive(Debug)]
pub struct SingleNodeCluster {
    address: NodeAddress,
    backend: Arc<MemoryBackend>,
    bootstrapped: AtomicBool,
}

impl SingleNodeCluster {
    pub fn new(address: NodeAddress) -> Self {
        Self {
            address,
            backend: Arc::new(MemoryBackend::new()),
            bootstrapped: AtomicBool::new(false),
        }
    }

    pub fn memory(&self) -> &Arc<MemoryBackend> {
        &self.backend
    }
}

impl Cluster for SingleNodeCluster {
    fn backend(&self) -> SharedBackend {
        self.backend.clone()
    }

    fn is_bootstrapped(&self) -> bool {
        self.bootstrapped.load(Ordering::SeqCst)
    }

    fn bootstrap(&self) -> BoxFuture<'_, Result<(), String>> {
        self.bootstrapped.store(true, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }

    fn is_leader(&self) -> bool {
        self.is_bootstrapped()
    }

    fn leader(&self) -> Option<NodeAddress> {
        self.is_bootstrapped().then(|| self.address.clone())
    }

    fn add_voter(&self, _node: NodeAddress) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("a single-node test cluster cannot add voters".to_string()) })
    }

    fn remove_peer(&self, _node_id: &str) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("a single-node test cluster cannot remove peers".to_string()) })
    }

    fn configuration(&self) -> Vec<Peer> {
        vec![Peer {
            node_id: self.address.node_id.clone(),
            address: self.address.cluster_addr.clone(),
            api_address: self.address.api_addr.clone(),
            leader: true,
            voter: true,
            last_acknowledged: None,
            matched_index: None,
        }]
    }

    fn step_down(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn confirm_leadership(&self) -> BoxFuture<'_, Result<(), String>> {
        let leads = self.is_leader();
        Box::pin(async move {
            if leads {
                Ok(())
            } else {
                Err("this node is not bootstrapped".to_string())
            }
        })
    }

    fn indexes(&self) -> RaftIndexes {
        let applied = self.backend.commits();
        RaftIndexes {
            term: 1,
            committed: applied,
            committed_term: 1,
            applied,
        }
    }
}
