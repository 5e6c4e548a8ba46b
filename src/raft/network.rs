//! Raft RPCs between nodes over the cluster channel's `arca-raft/1` protocol (see
//! [`crate::channel`]): long-lived, multiplexed connections per peer, snapshots on their
//! own lane so heartbeats never queue behind them.
//!
//! A connect failure is `Unreachable` (openraft backs off; the channel adds its own
//! reconnect backoff); an RPC that outlives openraft's hard TTL is a `Timeout`. On the
//! serving side a malformed request is answered with a failure and never panics the
//! node.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::RPCTypes;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout as RpcTimeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::{NodeInfo, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};
use crate::channel::frame::{decode_body, encode_body};
use crate::channel::{CallError, ChannelClient, Lane, Protocol, ProtocolHandler};

/// A request of `arca-raft/1` (public so the fuzzers can decode it).
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    InstallSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        #[serde(with = "crate::storage::byte_string::bytes_field")]
        data: Vec<u8>,
    },
    /// The leader hands its lead over: every voter stops refusing votes, the named one
    /// campaigns at once.
    TransferLeader(TransferLeaderRequest<TypeConfig>),
}

/// A response of `arca-raft/1`.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    InstallSnapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// The peer's Raft refused to serve (it is shutting down or failed).
    Error(String),
}

/// Builds one [`PeerClient`] per target; openraft asks for them. Every client shares
/// the node's channel connections.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    node_id: String,
    channel: ChannelClient,
}

impl NetworkFactory {
    pub fn new(node_id: String, channel: ChannelClient) -> Self {
        Self { node_id, channel }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: String, node: &NodeInfo) -> PeerClient {
        PeerClient {
            source: self.node_id.clone(),
            target,
            cluster_addr: node.cluster_addr.clone(),
            channel: self.channel.clone(),
        }
    }
}

/// Sends RPCs to one peer over the channel.
#[derive(Debug)]
pub struct PeerClient {
    source: String,
    target: String,
    cluster_addr: String,
    channel: ChannelClient,
}

/// Requests up to this size get openraft's TTL alone (a heartbeat interval for an
/// AppendEntries): every ordinary batch of writes.
pub const TTL_ALLOWANCE_BYTES_MIN: usize = 64 * 1024;
/// The slowest transfer-and-apply rate a larger request is given time for. One large
/// entry (a commit near its 32 MiB limit, a secondary activation's replacement) cannot
/// cross and be appended within a heartbeat interval; without this allowance it timed out on every
/// attempt and never committed (the restore test found it with a 1.2 MiB entry on a
/// loaded machine).
pub const TRANSFER_BYTES_PER_MS_MIN: usize = 1024;

/// The time a request of `bytes` gets beyond openraft's TTL.
fn transfer_allowance(bytes: usize) -> Duration {
    if bytes <= TTL_ALLOWANCE_BYTES_MIN {
        return Duration::ZERO;
    }
    Duration::from_millis((bytes / TRANSFER_BYTES_PER_MS_MIN) as u64)
}

impl PeerClient {
    async fn call(
        &self,
        request: &RpcRequest,
        lane: Lane,
        ttl: Duration,
    ) -> Result<RpcResponse, CallError> {
        let payload =
            encode_body(request).map_err(|error| CallError::Network(error.to_string()))?;
        let ttl = ttl + transfer_allowance(payload.len());
        let reply = self
            .channel
            .call(&self.cluster_addr, Protocol::Raft, lane, payload, ttl)
            .await?;
        decode_body(&reply).map_err(|error| CallError::Network(error.to_string()))
    }

    fn rpc_error(&self, action: RPCTypes, error: CallError) -> RPCError<TypeConfig> {
        match error {
            CallError::Unreachable(reason) | CallError::CertificateRefused(reason) => {
                RPCError::Unreachable(Unreachable::new(&std::io::Error::other(reason)))
            }
            CallError::Network(reason) | CallError::Failed(reason) => {
                RPCError::Network(NetworkError::from_string(reason))
            }
            CallError::Timeout(timeout) => RPCError::Timeout(RpcTimeout {
                action,
                id: self.source.clone(),
                target: self.target.clone(),
                timeout,
            }),
        }
    }

    fn unexpected(response: RpcResponse) -> RPCError<TypeConfig> {
        match response {
            RpcResponse::Error(reason) => RPCError::Network(NetworkError::from_string(reason)),
            other => RPCError::Network(NetworkError::from_string(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    async fn vote_call(
        &mut self,
        request: RpcRequest,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(&request, Lane::Control, option.hard_ttl()).await {
            Ok(RpcResponse::Vote(response)) => Ok(response),
            Ok(other) => Err(Self::unexpected(other)),
            Err(error) => Err(self.rpc_error(RPCTypes::Vote, error)),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // Heartbeats (no entries) keep the control lane; entries travel on the bulk
        // lane. A heartbeat that times out closes its connection, and when both shared
        // one, it cut every large batch in flight: a follower busy appending 256 KiB
        // restore batches never answered a 100 ms heartbeat in time, each timeout closed
        // the batch's connection, the batch was resent, and the leader could not confirm
        // its lead for minutes (the large-snapshot restore test found it).
        let (lane, stage) = if rpc.entries.is_empty() {
            (Lane::Control, tracing::Span::none())
        } else {
            (
                Lane::Bulk,
                tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.raft.replicate"),
            )
        };
        match tracing::Instrument::instrument(
            self.call(&RpcRequest::AppendEntries(rpc), lane, option.hard_ttl()),
            stage,
        )
        .await
        {
            Ok(RpcResponse::AppendEntries(response)) => Ok(response),
            Ok(other) => Err(Self::unexpected(other)),
            Err(error) => Err(self.rpc_error(RPCTypes::AppendEntries, error)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_call(RpcRequest::Vote(rpc), option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_call(RpcRequest::PreVote(rpc), option).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(
                &RpcRequest::TransferLeader(rpc),
                Lane::Control,
                option.hard_ttl(),
            )
            .await
        {
            Ok(RpcResponse::TransferLeader(response)) => Ok(response),
            Ok(other) => Err(Self::unexpected(other)),
            Err(error) => Err(self.rpc_error(RPCTypes::TransferLeader, error)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = RpcRequest::InstallSnapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let result = tokio::select! {
            biased;
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = self.call(&request, Lane::Bulk, option.hard_ttl()) => result,
        };
        match result {
            Ok(RpcResponse::InstallSnapshot(response)) => Ok(response),
            Ok(other) => Err(match Self::unexpected(other) {
                RPCError::Network(error) => StreamingError::Network(error),
                other => StreamingError::Network(NetworkError::from_string(other.to_string())),
            }),
            Err(error) => Err(match self.rpc_error(RPCTypes::InstallSnapshot, error) {
                RPCError::Unreachable(error) => StreamingError::Unreachable(error),
                RPCError::Timeout(error) => StreamingError::Timeout(error),
                RPCError::Network(error) => StreamingError::Network(error),
                other => StreamingError::Network(NetworkError::from_string(other.to_string())),
            }),
        }
    }
}

/// Serves `arca-raft/1` requests with this node's Raft.
pub struct RaftHandler {
    raft: Raft,
}

impl RaftHandler {
    pub fn new(raft: Raft) -> Arc<Self> {
        Arc::new(Self { raft })
    }

    async fn serve(&self, request: RpcRequest) -> RpcResponse {
        let raft = &self.raft;
        match request {
            RpcRequest::AppendEntries(rpc) => raft
                .append_entries(rpc)
                .await
                .map(RpcResponse::AppendEntries)
                .unwrap_or_else(|error| RpcResponse::Error(error.to_string())),
            RpcRequest::Vote(rpc) => raft
                .vote(rpc)
                .await
                .map(RpcResponse::Vote)
                .unwrap_or_else(|error| RpcResponse::Error(error.to_string())),
            RpcRequest::PreVote(rpc) => raft
                .pre_vote(rpc)
                .await
                .map(RpcResponse::Vote)
                .unwrap_or_else(|error| RpcResponse::Error(error.to_string())),
            RpcRequest::InstallSnapshot { vote, meta, data } => raft
                .install_full_snapshot(
                    vote,
                    Snapshot {
                        meta,
                        snapshot: data,
                    },
                )
                .await
                .map(RpcResponse::InstallSnapshot)
                .unwrap_or_else(|error| RpcResponse::Error(error.to_string())),
            RpcRequest::TransferLeader(rpc) => raft
                .handle_transfer_leader(rpc)
                .await
                .map(RpcResponse::TransferLeader)
                .unwrap_or_else(|error| RpcResponse::Error(error.to_string())),
        }
    }
}

impl ProtocolHandler for RaftHandler {
    fn handle(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let request: RpcRequest =
                decode_body(&payload).map_err(|error| format!("bad raft request: {error}"))?;
            let response = self.serve(request).await;
            encode_body(&response).map_err(|error| error.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_raft_request() {
        assert!(decode_body::<RpcRequest>(&[0xff; 64]).is_err());
        assert!(decode_body::<RpcRequest>(&[]).is_err());
        assert!(decode_body::<RpcResponse>(&[0xff; 64]).is_err());
    }
}
