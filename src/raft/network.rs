//! Raft RPCs between nodes over plain TCP on each node's cluster address, through the
//! `tokio::net` name (madsim's network under `cfg(madsim)`).
//!
//! One request and one response per connection, each a frame
//! `[u32 length][u8 version][bincode body]` (`length` counts the body). The length is
//! checked against [`FRAME_BYTES_MAX`] before anything is allocated. A connect failure is
//! `Unreachable` (openraft backs off); an RPC that outlives openraft's hard TTL is a
//! `Timeout`. On the serving side a malformed frame closes that connection with a
//! logged error; nothing a peer sends can panic the node.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::RPCTypes;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout as RpcTimeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::state_machine::SNAPSHOT_BYTES_MAX;
use super::types::{NodeInfo, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};
use crate::env::runtime::timeout;

/// The version byte of every frame.
pub const FRAME_VERSION: u8 = 1;
/// The largest frame body: a whole snapshot plus its envelope.
pub const FRAME_BYTES_MAX: usize = SNAPSHOT_BYTES_MAX + 64 * 1024;
/// How long a server waits for a peer's request frame (a snapshot can be large).
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How many peer connections are served at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 256;
/// The pause after a failed `accept` (e.g. out of file descriptors) before trying again.
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

const FRAME_HEADER_BYTES: usize = 5;

/// A request frame on the cluster port (public so the fuzzers can decode it).
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    InstallSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
}

/// A response frame on the cluster port.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    InstallSnapshot(SnapshotResponse<TypeConfig>),
    /// The peer's Raft refused to serve (it is shutting down or failed).
    Error(String),
}

/// Write one frame and flush it (madsim's stream sends nothing until flushed).
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    value: &T,
) -> io::Result<()> {
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(io::Error::other)?;
    if body.len() > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the limit of {FRAME_BYTES_MAX}",
                body.len()
            ),
        ));
    }
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    header[4] = FRAME_VERSION;
    writer.write_all(&header).await?;
    writer.write_all(&body).await?;
    writer.flush().await
}

/// Read one frame, refusing an oversized length before allocating for it.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    reader: &mut R,
) -> io::Result<T> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    reader.read_exact(&mut header).await?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes exceeds the limit of {FRAME_BYTES_MAX}"),
        ));
    }
    if header[4] != FRAME_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown frame version {}", header[4]),
        ));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    let (value, used) = bincode::serde::decode_from_slice(
        &body,
        bincode::config::standard().with_limit::<FRAME_BYTES_MAX>(),
    )
    .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    if used != body.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "trailing bytes in frame",
        ));
    }
    Ok(value)
}

/// Builds one [`PeerClient`] per target; openraft asks for them.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    node_id: String,
}

impl NetworkFactory {
    pub fn new(node_id: String) -> Self {
        Self { node_id }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: String, node: &NodeInfo) -> PeerClient {
        PeerClient {
            source: self.node_id.clone(),
            target,
            cluster_addr: node.cluster_addr.clone(),
        }
    }
}

/// Sends RPCs to one peer, a connection per RPC.
#[derive(Debug)]
pub struct PeerClient {
    source: String,
    target: String,
    cluster_addr: String,
}

enum CallError {
    Unreachable(io::Error),
    Network(String),
    Timeout(Duration),
}

impl PeerClient {
    async fn call(&self, request: &RpcRequest, ttl: Duration) -> Result<RpcResponse, CallError> {
        let exchange = async {
            let mut stream = TcpStream::connect(self.cluster_addr.as_str())
                .await
                .map_err(CallError::Unreachable)?;
            write_frame(&mut stream, request)
                .await
                .map_err(|error| CallError::Network(error.to_string()))?;
            read_frame::<_, RpcResponse>(&mut stream)
                .await
                .map_err(|error| CallError::Network(error.to_string()))
        };
        match timeout(ttl, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(ttl)),
        }
    }

    fn rpc_error(&self, action: RPCTypes, error: CallError) -> RPCError<TypeConfig> {
        match error {
            CallError::Unreachable(error) => RPCError::Unreachable(Unreachable::new(&error)),
            CallError::Network(reason) => RPCError::Network(NetworkError::from_string(reason)),
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
        match self.call(&request, option.hard_ttl()).await {
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
        match self
            .call(&RpcRequest::AppendEntries(rpc), option.hard_ttl())
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
            result = self.call(&request, option.hard_ttl()) => result,
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

/// Accept peer connections on the cluster listener and hand each RPC to `raft`. Runs
/// until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, raft: Raft) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let raft = raft.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_connection(stream, raft).await {
                        tracing::warn!(%peer, %error, "closing a raft peer connection");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "raft listener failed to accept");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
}

async fn serve_connection(mut stream: TcpStream, raft: Raft) -> io::Result<()> {
    let request: RpcRequest = match timeout(REQUEST_READ_TIMEOUT, read_frame(&mut stream)).await {
        Ok(request) => request?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request frame in time",
            ));
        }
    };
    let response = match request {
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
    };
    write_frame(&mut stream, &response).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_lengths_are_refused_before_allocating() {
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &("hello".to_string(), 7u64))
            .await
            .unwrap();
        let value: (String, u64) = read_frame(&mut buffer.as_slice()).await.unwrap();
        assert_eq!(value, ("hello".to_string(), 7));

        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.push(FRAME_VERSION);
        let error = read_frame::<_, String>(&mut huge.as_slice())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let mut wrong_version = buffer.clone();
        wrong_version[4] = 99;
        assert!(
            read_frame::<_, (String, u64)>(&mut wrong_version.as_slice())
                .await
                .is_err()
        );

        // Garbage in the body is an error value, not a panic.
        let mut garbage = buffer.clone();
        for byte in garbage.iter_mut().skip(FRAME_HEADER_BYTES) {
            *byte = 0xff;
        }
        assert!(
            read_frame::<_, RpcRequest>(&mut garbage.as_slice())
                .await
                .is_err()
        );
    }
}
