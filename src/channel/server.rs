//! [`ChannelServer`]: owns the cluster listener, reads each connection's handshake and
//! serves its requests with the handler installed for its protocol.
//!
//! A connection is refused (closed without an answer) while this node has no identity
//! (it is sealed), when its TLS client hello offers no protocol this node serves (ALPN),
//! when its TLS handshake fails (for the cluster's own protocols: no client certificate
//! under this cluster's CA) or does not finish within [`HANDSHAKE_TIMEOUT`], and when its
//! first frame is not a `Hello` naming the same protocol within [`HANDSHAKE_TIMEOUT`]
//! and [`HANDSHAKE_FRAME_BYTES_MAX`]. A plaintext client gets nothing back. After the handshake a
//! connection is closed when no frame arrives for [`CONNECTION_IDLE_MAX`] (clients
//! send heartbeats well within it) and on any malformed frame. Requests on one
//! connection are served concurrently, at most [`REQUESTS_IN_FLIGHT_MAX`] at a time;
//! nothing a peer sends can panic the node.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use super::frame::{FRAME_BYTES_MAX, Frame, HANDSHAKE_FRAME_BYTES_MAX, read_frame, write_frame};
use super::identity::ChannelIdentity;
use super::protocol::Protocol;
use crate::env::runtime::timeout;

/// How many peer connections are served at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 256;
/// How long a new connection has to send its `Hello`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that sends nothing (not even a heartbeat) for this long is closed.
pub const CONNECTION_IDLE_MAX: Duration = Duration::from_secs(10);
/// Requests one connection may have in service at once; the next waits to be read.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 64;
/// Frames queued for a connection's writer.
pub const OUTBOUND_FRAMES_MAX: usize = 64;
/// How long a connection whose TLS handshake failed is kept open for its alert to reach
/// the peer.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// The pause after a failed `accept` (e.g. out of file descriptors) before trying again.
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Serves one protocol's requests: a request payload in, a response payload out.
pub trait ProtocolHandler: Send + Sync + 'static {
    fn handle(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, String>>;
}

/// The cluster listener and the handlers of the protocols this node serves.
pub struct ChannelServer {
    identity: ChannelIdentity,
    handlers: Mutex<BTreeMap<Protocol, Arc<dyn ProtocolHandler>>>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for ChannelServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocols: Vec<Protocol> = lock(&self.handlers).keys().copied().collect();
        formatter
            .debug_struct("ChannelServer")
            .field("protocols", &protocols)
            .finish()
    }
}

impl ChannelServer {
    /// A server that answers as `identity` (shared with the node's channel client).
    pub fn new(identity: ChannelIdentity) -> Arc<Self> {
        Arc::new(Self {
            identity,
            handlers: Mutex::new(BTreeMap::new()),
            shutdown: watch::channel(false).0,
        })
    }

    /// Serve `protocol` with `handler` from now on (connections that named it before
    /// were refused).
    pub fn install(&self, protocol: Protocol, handler: Arc<dyn ProtocolHandler>) {
        lock(&self.handlers).insert(protocol, handler);
    }

    fn handler(&self, protocol: Protocol) -> Option<Arc<dyn ProtocolHandler>> {
        lock(&self.handlers).get(&protocol).cloned()
    }

    /// Accept connections on `listener` until [`ChannelServer::shutdown`].
    pub fn spawn(self: &Arc<Self>, listener: TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().accept_loop(listener))
    }

    /// Stop accepting and close every connection.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let server = self.clone();
                    let shutdown = self.shutdown.subscribe();
                    tokio::spawn(async move {
                        if let Err(error) = server.serve_connection(stream, shutdown).await {
                            tracing::debug!(%peer, %error, "closing a cluster channel connection");
                        }
                        drop(permit);
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "cluster listener failed to accept");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            }
        }
    }

    async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        mut shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        // A node without an identity answers no peer: not even a TLS alert. A sealed
        // node serves with its follower identity, which serves Raft only.
        let Some(identity) = self.identity.serving() else {
            return Err(refused("this node has no cluster identity"));
        };
        // Small frames, many on one stream: see `Connection::open`.
        stream.set_nodelay(true)?;
        let mut identity_changes = self.identity.subscribe();
        identity_changes.borrow_and_update();
        // Until a client hello is read, nothing is written back: rustls would answer a
        // plaintext peer with an alert, and a cluster port that does not speak to
        // strangers must not even say it speaks TLS.
        let (stream, answering) = QuietUntilHello::new(stream);
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = timeout(HANDSHAKE_TIMEOUT, acceptor)
            .await
            .map_err(|_| refused("no TLS client hello in time"))??;
        answering.store(true, std::sync::atomic::Ordering::SeqCst);
        let offered = start
            .client_hello()
            .alpn()
            .and_then(|mut names| names.find_map(Protocol::from_alpn));
        let protocol = offered.ok_or_else(|| refused("no known protocol offered (ALPN)"))?;
        let handler = self
            .handler(protocol)
            .ok_or_else(|| refused("protocol not served on this node"))?;
        let config = identity
            .server(protocol)
            .ok_or_else(|| refused("protocol not served on this node"))?;
        let stream =
            match timeout(HANDSHAKE_TIMEOUT, start.into_stream(config).into_fallible()).await {
                Err(_) => return Err(refused("the TLS handshake did not finish in time")),
                Ok(Ok(stream)) => stream,
                Ok(Err((error, mut stream))) => {
                    // Let the alert (a refused certificate) reach the peer: closing with its
                    // unread first frame would reset the connection, and the alert with it.
                    let _ = timeout(REFUSAL_LINGER, async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let _ = stream.shutdown().await;
                        let mut sink = [0u8; 1024];
                        while stream.read(&mut sink).await.is_ok_and(|read| read > 0) {}
                    })
                    .await;
                    return Err(error);
                }
            };
        let (mut reader, mut writer) = tokio::io::split(stream);
        let hello = read_frame(
            &mut reader,
            HANDSHAKE_FRAME_BYTES_MAX,
            Some(HANDSHAKE_TIMEOUT),
        )
        .await?;
        let Frame::Hello { protocol: name } = hello else {
            return Err(refused("the first frame is not a Hello"));
        };
        // The Hello must name what TLS agreed on.
        if Protocol::from_alpn(name.as_bytes()) != Some(protocol) {
            return Err(refused("the Hello names another protocol than ALPN"));
        }
        write_frame(
            &mut writer,
            &Frame::Welcome { protocol: name },
            HANDSHAKE_FRAME_BYTES_MAX,
        )
        .await?;

        let (outbound, mut outbound_frames) = mpsc::channel::<Frame>(OUTBOUND_FRAMES_MAX);
        let writing = async move {
            while let Some(frame) = outbound_frames.recv().await {
                write_frame(&mut writer, &frame, FRAME_BYTES_MAX).await?;
            }
            Ok::<(), io::Error>(())
        };
        let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT_MAX));
        let reading = async move {
            loop {
                match read_frame(&mut reader, FRAME_BYTES_MAX, Some(CONNECTION_IDLE_MAX)).await? {
                    Frame::Ping { nonce } => {
                        if outbound.send(Frame::Pong { nonce }).await.is_err() {
                            return Ok(());
                        }
                    }
                    Frame::Pong { .. } => {}
                    Frame::Request { id, payload } => {
                        let Ok(permit) = in_flight.clone().acquire_owned().await else {
                            return Ok(());
                        };
                        let handler = handler.clone();
                        let outbound = outbound.clone();
                        tokio::spawn(async move {
                            let reply = match handler.handle(payload).await {
                                Ok(payload) => Frame::Response { id, payload },
                                Err(reason) => Frame::Failed { id, reason },
                            };
                            // The connection may be gone; the peer then retries elsewhere.
                            let _ = outbound.send(reply).await;
                            drop(permit);
                        });
                    }
                    other => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("unexpected {} frame from a client", other.kind()),
                        ));
                    }
                }
            }
        };
        tokio::select! {
            result = reading => result,
            result = writing => result,
            _ = shutdown.changed() => Ok(()),
            // Sealed or re-unsealed: the peer reconnects under the new identity, if any.
            _ = identity_changes.changed() => Ok(()),
        }
    }
}

/// A stream that discards what is written to it until its flag is set.
struct QuietUntilHello<S> {
    inner: S,
    answering: Arc<std::sync::atomic::AtomicBool>,
}

impl<S> QuietUntilHello<S> {
    fn new(inner: S) -> (Self, Arc<std::sync::atomic::AtomicBool>) {
        let answering = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stream = QuietUntilHello {
            inner,
            answering: answering.clone(),
        };
        (stream, answering)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for QuietUntilHello<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(context, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for QuietUntilHello<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        if !self.answering.load(std::sync::atomic::Ordering::SeqCst) {
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(context, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

fn refused(reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("handshake refused: {reason}"),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
