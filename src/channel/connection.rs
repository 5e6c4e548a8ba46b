//! [`Connection`]: one client connection of the cluster channel. Requests are
//! multiplexed by id, so one connection carries any number of concurrent calls; a
//! single task owns the socket (reader, writer and heartbeat), and dropping the
//! `Connection` stops it.
//!
//! An unused connection closes itself after [`UNUSED_INTERVALS_MAX`] heartbeat
//! intervals. Liveness: the connection sends a `Ping` every [`HEARTBEAT_INTERVAL`] and
//! closes itself after [`HEARTBEAT_MISSES_MAX`] intervals in which nothing arrived, also
//! while requests are outstanding: the peer's reader answers pings beside the requests it
//! serves, so silence means the stream itself is stalled (after a partition TCP backs off
//! its retransmissions for seconds, and a request queued behind them would wait for the
//! caller's whole deadline). Intervals in which our writer is still busy with a frame (a
//! snapshot upload on a slow link) are not counted: the peer cannot answer a ping it has
//! not read yet. A caller whose deadline passes also closes the connection, so the next
//! call reconnects. A connection that missed even one heartbeat is [suspect]: the pool
//! opens a fresh one for new calls instead of queueing them behind a stream that may stay
//! stalled for seconds, while the calls already on it keep their chance to finish.
//!
//! [suspect]: Connection::is_suspect

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::frame::{FRAME_BYTES_MAX, Frame, HANDSHAKE_FRAME_BYTES_MAX, read_frame, write_frame};
use super::protocol::Protocol;
use super::server::{HANDSHAKE_TIMEOUT, OUTBOUND_FRAMES_MAX};
use super::tls::{ChannelTls, server_name};

/// How often an idle connection proves its peer is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Idle intervals without a frame from the peer before the connection is closed.
pub const HEARTBEAT_MISSES_MAX: u32 = 3;
/// Heartbeat intervals without a request before an unused connection is closed (a
/// removed peer, a leader no standby forwards to any more); the next call reopens it.
pub const UNUSED_INTERVALS_MAX: u32 = 30;

type Reply = Result<Vec<u8>, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The connection broke (or was closed) before the response arrived.
    #[error("cluster connection closed: {0}")]
    Closed(String),
    /// The peer received the request and answered that it could not serve it.
    #[error("the peer could not serve the request: {0}")]
    Failed(String),
}

#[derive(Default)]
struct Shared {
    pending: Mutex<BTreeMap<u64, oneshot::Sender<Reply>>>,
    closed: AtomicBool,
    heard_from_peer: AtomicBool,
    /// Heartbeat intervals in a row in which nothing arrived (published for the pool).
    misses: AtomicU32,
    requested: AtomicBool,
    /// Our writer is in the middle of a frame (set around every write).
    writing: AtomicBool,
}

impl Shared {
    /// Mark the connection closed and fail every outstanding request.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        lock(&self.pending).clear();
    }
}

/// An open, handshaken connection to one peer for one protocol.
pub struct Connection {
    protocol: Protocol,
    identity: Arc<ChannelTls>,
    outbound: mpsc::Sender<Frame>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Connection")
            .field("protocol", &self.protocol)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.close();
    }
}

impl Connection {
    /// Connect to `address`, complete TLS with `tls` (whose ALPN names `protocol`) and
    /// then the channel's own handshake for `protocol`. `identity` is the node identity
    /// the connection is made under: the pool drops the connection once it changes.
    pub async fn open(
        address: &str,
        protocol: Protocol,
        tls: Arc<rustls::ClientConfig>,
        identity: Arc<ChannelTls>,
    ) -> io::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        // Frames are small and many share the stream (appends, their answers, pings):
        // with Nagle's algorithm a frame waits for the ACK of the one before it, which
        // the peer may hold back for its delayed-ACK timer (up to 40 ms on Linux).
        stream.set_nodelay(true)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name(protocol), stream)
            .await?;
        if stream.get_ref().1.alpn_protocol() != Some(protocol.alpn().as_bytes()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer did not agree to the protocol (ALPN)",
            ));
        }
        let (mut reader, mut writer) = tokio::io::split(stream);
        let name = protocol.alpn().to_string();
        write_frame(
            &mut writer,
            &Frame::Hello {
                protocol: name.clone(),
            },
            HANDSHAKE_FRAME_BYTES_MAX,
        )
        .await?;
        let welcome = read_frame(
            &mut reader,
            HANDSHAKE_FRAME_BYTES_MAX,
            Some(HANDSHAKE_TIMEOUT),
        )
        .await
        .map_err(certificate_refusal)?;
        match welcome {
            Frame::Welcome { protocol } if protocol == name => {}
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the peer answered the handshake with {}", other.kind()),
                ));
            }
        }

        let shared = Arc::new(Shared::default());
        // The Welcome was just heard: the first interval must not count as a miss.
        shared.heard_from_peer.store(true, Ordering::SeqCst);
        let (outbound, mut outbound_frames) = mpsc::channel::<Frame>(OUTBOUND_FRAMES_MAX);
        let writing = {
            let shared = shared.clone();
            async move {
                while let Some(frame) = outbound_frames.recv().await {
                    shared.writing.store(true, Ordering::SeqCst);
                    write_frame(&mut writer, &frame, FRAME_BYTES_MAX).await?;
                    shared.writing.store(false, Ordering::SeqCst);
                }
                Ok::<(), io::Error>(())
            }
        };
        let reading = {
            let shared = shared.clone();
            async move {
                loop {
                    let frame = read_frame(&mut reader, FRAME_BYTES_MAX, None).await?;
                    shared.heard_from_peer.store(true, Ordering::SeqCst);
                    let (id, reply) = match frame {
                        Frame::Pong { .. } => continue,
                        Frame::Response { id, payload } => (id, Ok(payload)),
                        Frame::Failed { id, reason } => (id, Err(reason)),
                        other => {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("unexpected {} frame from a server", other.kind()),
                            ));
                        }
                    };
                    // A response whose caller gave up finds no waiter; that is fine.
                    if let Some(waiter) = lock(&shared.pending).remove(&id) {
                        let _ = waiter.send(reply);
                    }
                }
            }
        };
        let heartbeat = {
            let shared = shared.clone();
            let outbound = outbound.clone();
            async move {
                let mut misses = 0u32;
                let mut unused = 0u32;
                let mut nonce = 0u64;
                loop {
                    tokio::time::sleep(HEARTBEAT_INTERVAL).await;
                    if shared.requested.swap(false, Ordering::SeqCst) {
                        unused = 0;
                    } else {
                        unused += 1;
                        if unused >= UNUSED_INTERVALS_MAX {
                            return Ok(());
                        }
                    }
                    let heard = shared.heard_from_peer.swap(false, Ordering::SeqCst);
                    if heard || shared.writing.load(Ordering::SeqCst) {
                        misses = 0;
                        shared.misses.store(0, Ordering::SeqCst);
                    } else {
                        misses += 1;
                        shared.misses.store(misses, Ordering::SeqCst);
                        if misses >= HEARTBEAT_MISSES_MAX {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the peer stopped answering heartbeats",
                            ));
                        }
                    }
                    nonce += 1;
                    if outbound.send(Frame::Ping { nonce }).await.is_err() {
                        return Ok(());
                    }
                }
            }
        };
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let result = tokio::select! {
                    result = reading => result,
                    result = writing => result,
                    result = heartbeat => result,
                };
                if let Err(error) = result {
                    tracing::debug!(%error, %protocol, "cluster channel connection closed");
                }
                shared.close();
            })
        };
        Ok(Connection {
            protocol,
            identity,
            outbound,
            shared,
            next_id: AtomicU64::new(1),
            task,
        })
    }

    /// Whether this connection was made under `identity` (the node's current one).
    pub fn made_under(&self, identity: &Arc<ChannelTls>) -> bool {
        Arc::ptr_eq(&self.identity, identity)
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// The last heartbeat interval passed without a frame from the peer: the stream may
    /// be stalled, so new calls should not queue on it.
    pub fn is_suspect(&self) -> bool {
        self.shared.misses.load(Ordering::SeqCst) > 0
    }

    /// Stop the connection and fail its outstanding requests.
    pub fn close(&self) {
        self.task.abort();
        self.shared.close();
    }

    /// Send one request and wait for its response (the caller bounds the wait).
    pub async fn request(&self, payload: Vec<u8>) -> Result<Vec<u8>, ConnectionError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.shared.requested.store(true, Ordering::SeqCst);
        let (waiter, reply) = oneshot::channel();
        lock(&self.shared.pending).insert(id, waiter);
        // Whatever ends this call (a response, an error, the caller's deadline dropping
        // this future), the waiter does not outlive it.
        let _forget = ForgetOnDrop {
            shared: &self.shared,
            id,
        };
        if self.is_closed() {
            return Err(ConnectionError::Closed("already closed".into()));
        }
        if self
            .outbound
            .send(Frame::Request { id, payload })
            .await
            .is_err()
        {
            return Err(ConnectionError::Closed("the writer stopped".into()));
        }
        match reply.await {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(reason)) => Err(ConnectionError::Failed(reason)),
            Err(_) => Err(ConnectionError::Closed(
                "the connection closed before the response".into(),
            )),
        }
    }
}

/// A TLS 1.3 client learns that the server refused its certificate only when it next
/// reads: such an alert becomes `PermissionDenied`, which callers can tell from a peer
/// that is merely unreachable (a revoked secondary must stop, not retry).
fn certificate_refusal(error: io::Error) -> io::Error {
    use rustls::AlertDescription::{
        BadCertificate, CertificateExpired, CertificateRequired, CertificateRevoked, UnknownCA,
    };
    let alert = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::AlertReceived(
                alert @ (BadCertificate | CertificateExpired | CertificateRequired
                | CertificateRevoked | UnknownCA),
            ) => Some(*alert),
            _ => None,
        });
    match alert {
        Some(alert) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the peer refused this node's certificate ({alert:?})"),
        ),
        None => error,
    }
}

struct ForgetOnDrop<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
