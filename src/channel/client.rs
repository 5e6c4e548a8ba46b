//! [`ChannelClient`]: the client side of the cluster channel for one node. It keeps one
//! multiplexed [`Connection`] per peer, protocol and [`Lane`] (the pool of that peer),
//! opens it on first use, and reopens it after it breaks or goes quiet for a heartbeat
//! interval (a stalled stream must not hold new calls). A failed connect makes the
//! next attempt to that peer wait a backoff that doubles from [`RECONNECT_BACKOFF_MIN`]
//! up to [`RECONNECT_BACKOFF_MAX`]. During the backoff a Raft call fails at once as
//! unreachable (openraft has its own retry policy), while a forwarded client request waits
//! the rest of the backoff and tries once: a link that healed a moment ago must not cost
//! a client a 503 (the simulator's fleet scenario found one). A caller that queued while
//! another caller's attempt failed takes that failure instead of trying again, so callers
//! piled up behind an unreachable peer do not each pay a connect timeout in turn.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::connection::{Connection, ConnectionError};
use super::identity::{ChannelIdentity, NodeCertificate};
use super::protocol::{Lane, Protocol};
use crate::env::Clock;
use crate::env::runtime::timeout;

/// The first pause after a failed connect to a peer.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest pause between connect attempts to a peer. Under the shortest election
/// timeout: a peer back from a restart must hear from its leader before it would stand for
/// election, and until it does it cannot tell clients where the active node is (the
/// simulator's snapshot-catchup scenario found a restarted node answering 503 for a second
/// with a 1 s cap).
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// How long one connect and handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No connection could be opened (or the peer is in its reconnect backoff).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The connection broke while the call was outstanding.
    #[error("cluster channel error: {0}")]
    Network(String),
    /// The peer answered that it could not serve the request.
    #[error("{0}")]
    Failed(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer refused the certificate this node presented (a revoked secondary).
    #[error("certificate refused: {0}")]
    CertificateRefused(String),
}

/// Whom a call trusts at the other end of its connection.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A member of this node's own cluster: both ends hold a certificate under this
    /// cluster's CA.
    Members,
    /// A node of another cluster (performance replication): its certificate must chain
    /// to `ca_cert_der`; we present `client` (a secondary's certificate under that
    /// cluster's replication CA), or our own node certificate when there is none.
    Cluster {
        ca_cert_der: Arc<Vec<u8>>,
        client: Option<Arc<NodeCertificate>>,
    },
}

impl Trust {
    pub fn cluster(ca_cert_der: Vec<u8>) -> Trust {
        Trust::Cluster {
            ca_cert_der: Arc::new(ca_cert_der),
            client: None,
        }
    }

    pub fn cluster_as(ca_cert_der: Vec<u8>, client: NodeCertificate) -> Trust {
        Trust::Cluster {
            ca_cert_der: Arc::new(ca_cert_der),
            client: Some(Arc::new(client)),
        }
    }

    /// Tells pools apart: connections trusting different CAs, or presenting different
    /// certificates, are never shared.
    fn pool_tag(&self) -> Option<[u8; 32]> {
        match self {
            Trust::Members => None,
            Trust::Cluster {
                ca_cert_der,
                client,
            } => {
                use sha2::Digest;
                let mut digest = sha2::Sha256::new();
                digest.update(ca_cert_der.as_slice());
                if let Some(client) = client {
                    digest.update(&client.cert_der);
                }
                Some(digest.finalize().into())
            }
        }
    }
}

type PoolKey = (String, Protocol, Lane, Option<[u8; 32]>);

#[derive(Default)]
struct PoolState {
    connection: Option<Arc<Connection>>,
    /// Connect failures in a row.
    failures: u32,
    /// No connect is tried before this instant.
    retry_at: Option<Instant>,
    /// When the last connect attempt failed.
    failed_at: Option<Instant>,
}

#[derive(Default)]
struct PeerPool {
    state: tokio::sync::Mutex<PoolState>,
}

/// Connections from this node to its peers; clones share them.
#[derive(Clone)]
pub struct ChannelClient {
    clock: Clock,
    identity: ChannelIdentity,
    pools: Arc<Mutex<BTreeMap<PoolKey, Arc<PeerPool>>>>,
}

impl std::fmt::Debug for ChannelClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChannelClient")
            .field("pools", &lock(&self.pools).len())
            .finish()
    }
}

/// The pause before connect attempt `failures + 1`.
pub fn reconnect_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RECONNECT_BACKOFF_MIN
        .saturating_mul(1 << doublings)
        .min(RECONNECT_BACKOFF_MAX)
}

impl ChannelClient {
    pub fn new(clock: Clock, identity: ChannelIdentity) -> Self {
        Self {
            clock,
            identity,
            pools: Arc::default(),
        }
    }

    /// The node identity this client dials as (shared with the node's channel server).
    pub fn identity(&self) -> &ChannelIdentity {
        &self.identity
    }

    fn pool(&self, address: &str, protocol: Protocol, lane: Lane, trust: &Trust) -> Arc<PeerPool> {
        lock(&self.pools)
            .entry((address.to_string(), protocol, lane, trust.pool_tag()))
            .or_default()
            .clone()
    }

    /// Send `payload` to the member of this cluster at `address` (host:port) and wait at
    /// most `ttl` for the response payload.
    pub async fn call(
        &self,
        address: &str,
        protocol: Protocol,
        lane: Lane,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, CallError> {
        self.call_trusting(&Trust::Members, address, protocol, lane, payload, ttl)
            .await
    }

    /// [`ChannelClient::call`] to a peer trusted as `trust` says.
    pub async fn call_trusting(
        &self,
        trust: &Trust,
        address: &str,
        protocol: Protocol,
        lane: Lane,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, CallError> {
        if crate::buggify::buggify("channel-call-fails-before-sending") {
            return Err(CallError::Network(
                "fault point: the connection failed before the request was sent".into(),
            ));
        }
        let deadline = self.clock.now() + ttl;
        let pool = self.pool(address, protocol, lane, trust);
        let connection = match timeout(ttl, self.connection(&pool, trust, address, protocol)).await
        {
            Ok(connection) => connection?,
            Err(_) => return Err(CallError::Timeout(ttl)),
        };
        let remaining = deadline.saturating_duration_since(self.clock.now());
        match timeout(remaining, connection.request(payload)).await {
            // A fault point: the peer acted on the request, its answer is lost.
            Ok(Ok(_)) if crate::buggify::buggify("channel-answer-lost") => Err(CallError::Network(
                "fault point: the connection failed before the answer arrived".into(),
            )),
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(ConnectionError::Failed(reason))) => Err(CallError::Failed(reason)),
            Ok(Err(error @ ConnectionError::Closed(_))) => {
                Err(CallError::Network(error.to_string()))
            }
            Err(_) => {
                // The peer may be partitioned away mid-stream; a fresh connection is
                // cheaper than trusting this one.
                connection.close();
                Err(CallError::Timeout(ttl))
            }
        }
    }

    async fn connection(
        &self,
        pool: &PeerPool,
        trust: &Trust,
        address: &str,
        protocol: Protocol,
    ) -> Result<Arc<Connection>, CallError> {
        let queued_at = self.clock.now();
        let mut state = pool.state.lock().await;
        // A sealed node dials Raft with its follower identity and nothing else; a node
        // with no identity at all dials nobody (and counts no failure).
        let Some(identity) = self.identity.dialing(protocol) else {
            return Err(CallError::Unreachable(format!(
                "{address}: this node has no cluster identity (it is sealed)"
            )));
        };
        if let Some(connection) = &state.connection {
            if !connection.made_under(&identity) {
                // Made under an identity this node no longer holds (it sealed since).
                connection.close();
            } else if !connection.is_closed() && !connection.is_suspect() {
                return Ok(connection.clone());
            }
        }
        // A suspect connection is not closed here: the calls already on it hold it and
        // may still get their answers; it closes itself when they are done or it is dead.
        state.connection = None;
        if let Some(retry_at) = state.retry_at
            && self.clock.now() < retry_at
        {
            let failed_while_queued = state.failed_at.is_some_and(|at| at >= queued_at);
            if !protocol.waits_out_reconnect_backoff() || failed_while_queued {
                return Err(CallError::Unreachable(format!(
                    "{address}: waiting before reconnecting"
                )));
            }
            tokio::time::sleep(retry_at.saturating_duration_since(self.clock.now())).await;
        }
        let tls = match trust {
            Trust::Members => identity.member_client(protocol).ok_or_else(|| {
                CallError::Unreachable(format!("{address}: no client configuration"))
            })?,
            Trust::Cluster {
                ca_cert_der,
                client,
            } => match client {
                Some(client) => identity.client_config_as(protocol, ca_cert_der, client),
                None => identity.client_config(protocol, ca_cert_der),
            }
            .map_err(|error| CallError::Unreachable(format!("{address}: {error}")))?,
        };
        match timeout(
            CONNECT_TIMEOUT,
            Connection::open(address, protocol, tls, identity),
        )
        .await
        {
            Ok(Ok(connection)) => {
                let connection = Arc::new(connection);
                state.connection = Some(connection.clone());
                state.failures = 0;
                state.retry_at = None;
                state.failed_at = None;
                Ok(connection)
            }
            failed => {
                state.failures = state.failures.saturating_add(1);
                let now = self.clock.now();
                state.failed_at = Some(now);
                state.retry_at = Some(now + reconnect_backoff(state.failures));
                Err(match failed {
                    Ok(Err(error)) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                        CallError::CertificateRefused(format!("{address}: {error}"))
                    }
                    Ok(Err(error)) => CallError::Unreachable(format!("{address}: {error}")),
                    _ => CallError::Unreachable(format!(
                        "{address}: no handshake within {CONNECT_TIMEOUT:?}"
                    )),
                })
            }
        }
    }

    /// Close every connection (the node is shutting down). Later calls reconnect.
    pub fn close_all(&self) {
        let pools = std::mem::take(&mut *lock(&self.pools));
        for pool in pools.into_values() {
            if let Ok(mut state) = pool.state.try_lock()
                && let Some(connection) = state.connection.take()
            {
                connection.close();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_up_to_its_bound() {
        assert_eq!(reconnect_backoff(1), RECONNECT_BACKOFF_MIN);
        assert_eq!(reconnect_backoff(2), RECONNECT_BACKOFF_MIN * 2);
        assert_eq!(reconnect_backoff(3), RECONNECT_BACKOFF_MIN * 4);
        assert_eq!(reconnect_backoff(u32::MAX), RECONNECT_BACKOFF_MAX);
    }
}
