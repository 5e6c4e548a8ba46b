//! One Arca node: the API listener, the cluster listener, Raft, the core and its
//! background tasks. The production binary and the simulator both start nodes through
//! [`Node::start`], so the simulator runs exactly the production code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::raft_cluster::RaftCluster;
use crate::core::router::LogicalCore;
use crate::core::{Core, CoreConfig, LogicalService, NodeAddress};
use crate::env::Env;
use crate::raft::{NodeInfo, RaftNode, RaftOptions};

/// How often the active node revokes expired tokens and leases.
pub const EXPIRATION_TICK: Duration = Duration::from_secs(1);

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: String,
    /// Where the HTTP API listens.
    pub api_listen: SocketAddr,
    /// Where Raft (and later replication) listens.
    pub cluster_listen: SocketAddr,
    /// The address clients and peers use for the API (`http://host:8200`).
    pub api_addr: String,
    /// The address peers use for the cluster port.
    pub cluster_addr: String,
    pub cluster_name: Option<String>,
    pub retry_join: Vec<crate::core::JoinTarget>,
    /// TLS on the API listener (real build only; always `None` in the simulator).
    pub api_tls: Option<Arc<crate::http::tls::ServerTls>>,
    /// Snapshot cadence, retained log and WAL buffer (from the `storage "raft"` and
    /// `replication` stanzas).
    pub raft: crate::raft::RaftOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Raft(#[from] crate::raft::RaftError),
}

pub struct Node {
    core: Arc<Core>,
    logical: Arc<LogicalCore>,
    raft: RaftNode,
    shutdown: watch::Sender<bool>,
    /// Why Raft failed on this node, once it has (set by `stop_serving_on_failure`, the
    /// one task that waits on Raft's metrics for it).
    failure: watch::Receiver<Option<crate::raft::RaftFailure>>,
    api_address: SocketAddr,
    /// Whether the API listener is up (from the start, or since [`Node::serve_api`]).
    api_served: bool,
    api_tls: Option<Arc<crate::http::tls::ServerTls>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Node")
            .field("api_address", &self.api_address)
            .finish()
    }
}

impl Node {
    pub async fn start(
        env: Env,
        config: NodeConfig,
        audit_files: Arc<dyn crate::env::LogFiles>,
    ) -> Result<Node, NodeError> {
        let raft_options = config.raft;
        Self::start_with_options(env, config, audit_files, raft_options).await
    }

    /// [`Node::start`] with Raft tunables other than the configuration's: the simulator
    /// draws small snapshot thresholds and segments per seed so snapshots, purges and
    /// installs run.
    pub async fn start_with_options(
        env: Env,
        config: NodeConfig,
        audit_files: Arc<dyn crate::env::LogFiles>,
        raft_options: RaftOptions,
    ) -> Result<Node, NodeError> {
        // The API port is taken before anything else starts, so a port in use fails the
        // start with nothing left running.
        let api_listener = bind_api(config.api_listen).await?;
        Self::start_inner(env, config, audit_files, raft_options, Some(api_listener)).await
    }

    /// A node whose API is not served yet: nothing listens on its API port (a client's
    /// connect is refused, not queued) until [`Node::serve_api`]. `arca server -dev`
    /// initializes and unseals first, so a script that waits for the port never sees
    /// the dev node sealed.
    pub async fn start_without_api(
        env: Env,
        config: NodeConfig,
        audit_files: Arc<dyn crate::env::LogFiles>,
    ) -> Result<Node, NodeError> {
        let raft_options = config.raft;
        Self::start_inner(env, config, audit_files, raft_options, None).await
    }

    /// Bind the API address and serve it, for a node from [`Node::start_without_api`].
    pub async fn serve_api(&mut self) -> Result<(), NodeError> {
        assert!(!self.api_served, "the API is served once");
        let listener = bind_api(self.api_address).await?;
        self.api_address = listener.local_addr().unwrap_or(self.api_address);
        spawn_api(
            &self.core,
            listener,
            self.api_tls.clone(),
            self.shutdown.subscribe(),
        );
        self.api_served = true;
        tracing::info!(api = %self.api_address, "serving the API");
        Ok(())
    }

    async fn start_inner(
        env: Env,
        config: NodeConfig,
        audit_files: Arc<dyn crate::env::LogFiles>,
        raft_options: RaftOptions,
        api_listener: Option<tokio::net::TcpListener>,
    ) -> Result<Node, NodeError> {
        let api_address = api_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
            .unwrap_or(config.api_listen);
        let cluster_listener = tokio::net::TcpListener::bind(config.cluster_listen)
            .await
            .map_err(|source| NodeError::Listen {
                address: config.cluster_listen,
                source,
            })?;
        let info = NodeInfo {
            api_addr: config.api_addr.clone(),
            cluster_addr: crate::http::client::host_port(&config.cluster_addr)
                .unwrap_or_else(|_| config.cluster_addr.clone()),
        };
        let raft = RaftNode::start_with_options(
            env.clone(),
            config.node_id.clone(),
            info,
            cluster_listener,
            raft_options,
        )
        .await?;
        let cluster = Arc::new(RaftCluster::new(raft.clone()));
        let core = Core::new(
            env.clone(),
            CoreConfig {
                node: NodeAddress {
                    node_id: config.node_id.clone(),
                    api_addr: config.api_addr.clone(),
                    cluster_addr: config.cluster_addr.clone(),
                },
                cluster_name: config.cluster_name.clone(),
                retry_join: config.retry_join.clone(),
            },
            cluster,
        );
        let logical = LogicalCore::new(
            &core,
            audit_files,
            crate::auth::userpass::PasswordCost::default(),
        );
        core.install_logical(logical.clone() as Arc<dyn LogicalService>);
        raft.channel_server().install(
            crate::channel::Protocol::Forward,
            crate::core::forwarding::ForwardHandler::new(&core),
        );
        let replication =
            crate::replication::Replication::new(&core, raft.channel_client().clone());
        core.install_replication(replication.clone());
        logical.identity().set_remote(replication.clone());
        raft.channel_server().install(
            crate::channel::Protocol::Replication,
            crate::replication::ReplicationHandler::new(&replication),
        );

        let (shutdown, shutdown_receiver) = watch::channel(false);
        let api_served = api_listener.is_some();
        if let Some(listener) = api_listener {
            spawn_api(
                &core,
                listener,
                config.api_tls.clone(),
                shutdown_receiver.clone(),
            );
        }
        tokio::spawn(core.clone().retry_join_loop());
        tokio::spawn(
            core.clone()
                .watch_snapshot_restores(raft.subscribe(), shutdown_receiver.clone()),
        );
        tokio::spawn(
            core.clone()
                .watch_caches(raft.subscribe(), shutdown_receiver.clone()),
        );
        let (failure_sender, failure) = watch::channel(None);
        tokio::spawn(stop_serving_on_failure(
            raft.clone(),
            shutdown.clone(),
            failure_sender,
        ));
        tokio::spawn(replication.run(shutdown_receiver.clone()));
        tokio::spawn(expiration_loop(
            core.clone(),
            logical.clone(),
            shutdown_receiver,
        ));
        tracing::info!(node = %config.node_id, api = %api_address, "node started");
        Ok(Node {
            core,
            logical,
            raft,
            shutdown,
            failure,
            api_address,
            api_served,
            api_tls: config.api_tls.clone(),
        })
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub fn logical(&self) -> &Arc<LogicalCore> {
        &self.logical
    }

    pub fn api_address(&self) -> SocketAddr {
        self.api_address
    }

    /// Dev mode: initialize with one share, unseal, and mount `secret/` as KV v2 through
    /// the ordinary API path. Returns the unseal key and the root token.
    pub async fn initialize_dev(
        &self,
        root_token_id: Option<String>,
    ) -> Result<(Vec<u8>, String), crate::logical::LogicalError> {
        use base64::Engine;
        let config = crate::seal::SealConfig::shamir(1, 1)
            .map_err(|error| crate::logical::LogicalError::Internal(error.to_string()))?;
        let (shares, root_token) = self.core.initialize(config, root_token_id).await?;
        let share = shares[0].to_vec();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&share);
        self.core.submit_unseal_share(Some(&encoded), false).await?;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-vault-token",
            http::HeaderValue::from_str(&root_token).map_err(|_| {
                crate::logical::LogicalError::Internal("root token is not a header value".into())
            })?,
        );
        let body = serde_json::json!({"type": "kv", "options": {"version": "2"}, "description": "key/value secret storage"});
        let response = crate::http::ApiHandler::handle(
            self.core.as_ref(),
            crate::http::ApiRequest {
                method: http::Method::POST,
                path: "sys/mounts/secret".into(),
                query: Default::default(),
                headers,
                body: bytes::Bytes::from(body.to_string()),
                delegated_caller: None,
            },
        )
        .await;
        if response.status >= 400 {
            return Err(crate::logical::LogicalError::Internal(format!(
                "mounting secret/ failed: {}",
                String::from_utf8_lossy(&response.body)
            )));
        }
        Ok((share, root_token))
    }

    /// This node's applied index and a digest of its whole state machine (ciphertext),
    /// for convergence checks: nodes that applied the same log hold identical bytes.
    pub fn state_digest(&self) -> (u64, String) {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for (key, value) in self.raft.state_machine().dump() {
            hasher.update((key.len() as u64).to_le_bytes());
            hasher.update(key.as_bytes());
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(&value);
        }
        (
            self.raft.state_machine().applied_index(),
            hex::encode(hasher.finalize()),
        )
    }

    /// Why Raft failed on this node, once it has (it then serves no more: fail-stop).
    pub fn raft_failed(&self) -> Option<crate::raft::RaftFailure> {
        self.raft.failed()
    }

    /// Wait until Raft fails on this node (fail-stop), and say why; never returns on a
    /// node whose Raft stops only when asked to.
    pub async fn wait_raft_failed(&self) -> crate::raft::RaftFailure {
        let mut failure = self.failure.clone();
        if let Ok(failed) = failure.wait_for(Option::is_some).await
            && let Some(failed) = failed.clone()
        {
            return failed;
        }
        // Raft stopped without failing (a shutdown): nothing more will come.
        std::future::pending().await
    }

    /// Stop serving, then stop Raft.
    pub async fn shutdown(self) {
        // Streamed answers end first, so the HTTP server's drain does not wait on them.
        self.core.close_streams();
        let _ = self.shutdown.send(true);
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown");
        }
    }
}

/// Fail-stop: once Raft has failed on this node (its log or a snapshot could not be
/// made durable, so openraft stopped rather than acknowledge it), the node stops serving
/// its API too, as etcd exits on a failed fsync. Clients go to the other nodes; an
/// operator restarts this one once the disk is repaired, and it catches up from the
/// leader. Serving on would answer from a state machine that no longer follows the log.
async fn stop_serving_on_failure(
    raft: RaftNode,
    shutdown: watch::Sender<bool>,
    failed: watch::Sender<Option<crate::raft::RaftFailure>>,
) {
    let Some(failure) = raft.wait_stopped().await else {
        return;
    };
    failed.send_replace(Some(failure.clone()));
    if failure.storage {
        crate::coverage::mark("raft-disk-error-stopped");
    }
    tracing::error!(
        reason = %failure.reason,
        "raft failed: this node stops serving; repair the disk, then restart it"
    );
    let _ = shutdown.send(true);
}

fn spawn_api(
    core: &Arc<Core>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<crate::http::tls::ServerTls>>,
    shutdown: watch::Receiver<bool>,
) {
    let router = crate::http::router(core.clone() as Arc<dyn crate::http::ApiHandler>);
    tokio::spawn(crate::http::server::serve(listener, router, tls, shutdown));
}

async fn bind_api(address: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| NodeError::Listen { address, source })
}

/// Revoke expired tokens and leases on the active node, on the seam's clock.
async fn expiration_loop(
    core: Arc<Core>,
    logical: Arc<LogicalCore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(EXPIRATION_TICK) => {}
        }
        if core.is_active()
            && let Err(error) = logical.tick_expiration().await
        {
            tracing::warn!(%error, "expiration tick failed");
        }
        // A node restarted sealed can still win an election; it must not keep leading
        // (except through its own restore's wait for the voters, which then hands over).
        if core.is_sealed()
            && !core.restore_running()
            && core.cluster().is_leader()
            && let Err(error) = core.cluster().step_down().await
        {
            tracing::warn!(%error, "a sealed leader could not hand over leadership");
        }
    }
}
