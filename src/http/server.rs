//! Our own accept loop: hyper's HTTP/1 server over `tokio::net` (madsim's in the
//! simulator), with graceful shutdown. `axum::serve` spawns on real Tokio and cannot
//! run in the simulator.
//!
//! With a [`ServerTls`] (real build only) each accepted connection first completes a TLS
//! handshake, in its own task and under [`TLS_HANDSHAKE_TIMEOUT`], so a slow or silent
//! client holds one connection permit and never the accept loop.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::tls::ServerTls;

/// How long in-flight connections get to finish after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connections served at once; further ones wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 4096;
/// How long a client gets to complete the TLS handshake after connecting.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `router` on `listener` until `shutdown` turns true; over TLS when `tls` is
/// given (never in the simulator, where [`ServerTls`] has no values).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerTls>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    // Tells every open connection to finish its request and close.
    let (closed_sender, _) = watch::channel(false);
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Answers go out as they are written, not held for the ACK of the previous
        // write (Vault's Go listener does the same: Go sets TCP_NODELAY by default).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY refused; answers may wait for ACKs");
        }
        let service = TowerToHyperService::new(router.clone());
        let stop = closed_sender.subscribe();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, service, stop).await,
                #[cfg(not(madsim))]
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    match crate::env::runtime::timeout(
                        TLS_HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => serve_connection(stream, service, stop).await,
                        // Go's server logs these as `http: TLS handshake error`; a
                        // client without the CA or without a certificate lands here.
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "http: TLS handshake error")
                        }
                        Err(_) => tracing::debug!("http: TLS handshake timed out"),
                    }
                }
                #[cfg(madsim)]
                Some(tls) => match *tls {},
            }
            drop(permit);
        });
    }
    let _ = closed_sender.send(true);
    // Wait (bounded) for connections to drain: every permit back means every task ended.
    let _ =
        crate::env::runtime::timeout(SHUTDOWN_GRACE, permits.acquire_many(CONNECTIONS_MAX as u32))
            .await;
}

/// HTTP/1 on one connection, plain or TLS, until it closes or `stop` asks it to.
async fn serve_connection<S>(
    stream: S,
    service: TowerToHyperService<Router>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        biased;
        _ = connection.as_mut() => {}
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = crate::env::runtime::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}
