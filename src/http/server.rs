//! Our own accept loop: hyper's HTTP/1 server over `tokio::net` (madsim's in the
//! simulator), with graceful shutdown. `axum::serve` spawns on real Tokio and cannot
//! run in the simulator.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long in-flight connections get to finish after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Connections served at once; further ones wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 4096;

/// Serve `router` on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
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
        let service = TowerToHyperService::new(router.clone());
        let mut stop = closed_sender.subscribe();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                biased;
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = crate::env::runtime::timeout(SHUTDOWN_GRACE, connection).await;
                }
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
