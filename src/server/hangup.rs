//! SIGHUP, as Vault handles it: the server re-reads its configuration file and applies
//! what can change without a restart (`log_level`), reloads the API listener's
//! certificate, and reopens its file audit devices (after a log rotation). A bad file
//! is logged and the server goes on as it was: a reload never takes a node down, and
//! neither does the signal itself (its default action ends the process, so the handler
//! is installed before the server says it started, TLS or not).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::logging::Logging;
use crate::config::ListenerTlsFiles;
use crate::core::Core;
use crate::http::tls::ServerTls;

/// What a SIGHUP reloads.
pub struct Reloadable {
    /// The configuration file (`None` for a dev server).
    pub config_path: Option<PathBuf>,
    pub logging: Arc<Logging>,
    /// The API listener's certificate and the files it came from.
    pub tls: Option<(Arc<ServerTls>, ListenerTlsFiles)>,
}

/// Take over SIGHUP now: from here on the signal is queued for [`spawn`] instead of
/// ending the process.
pub fn listen() -> Result<Signal, String> {
    signal(SignalKind::hangup()).map_err(|error| format!("Error listening for SIGHUP: {error}"))
}

/// Handle every SIGHUP (those queued since [`listen`] included) for `core`.
pub fn spawn(mut hangups: Signal, reloadable: Reloadable, core: Arc<Core>) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration");
            reload(&reloadable, &core);
        }
    });
}

fn reload(reloadable: &Reloadable, core: &Core) {
    if let Some(path) = &reloadable.config_path {
        match super::read_config(path) {
            Ok(config) => {
                if let Some(level) = &config.log_level {
                    reloadable.logging.set_level(level);
                }
            }
            Err(error) => {
                tracing::error!(%error, "could not reload the configuration; keeping the running one")
            }
        }
    }
    if let Some((tls, files)) = &reloadable.tls {
        super::tls_files::reload_listener(tls, files);
    }
    if let Some(logical) = core.logical() {
        for path in logical.reopen_audit_files() {
            tracing::error!(path, "could not reopen the audit device's file");
        }
    }
    // At debug only: the test of a level change (and an operator raising it) sees it.
    tracing::debug!("configuration reloaded");
}
