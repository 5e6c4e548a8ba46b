//! The server process: configuration in, a running node out, until SIGINT or SIGTERM.

pub mod dev;
#[cfg(not(madsim))]
pub mod dev_tls;
#[cfg(not(madsim))]
pub mod hangup;
pub mod logging;
pub mod node;
pub mod raft_cluster;
#[cfg(not(madsim))]
pub mod tls_files;

use std::path::PathBuf;

pub use node::{Node, NodeConfig, NodeError};

/// What `arca server` was asked to do (parsed by the CLI).
#[derive(Debug, Clone, Default)]
pub struct ServerArgs {
    /// `-config=FILE` (may be given more than once in Vault; Arca takes the last).
    pub config_path: Option<PathBuf>,
    /// `-dev`: an in-memory, initialized, unsealed single node.
    pub dev: bool,
    /// `-dev-root-token-id=ID`.
    pub dev_root_token_id: Option<String>,
    /// `-dev-listen-address=ADDR` (default 127.0.0.1:8200).
    pub dev_listen_address: Option<String>,
    /// `-dev-tls`: serve the dev API over TLS with a generated CA and certificate.
    pub dev_tls: bool,
    /// `-dev-tls-cert-dir=DIR`: where `-dev-tls` writes them (a new temporary
    /// directory by default).
    pub dev_tls_cert_dir: Option<PathBuf>,
    /// `-log-level=LEVEL`.
    pub log_level: Option<String>,
    /// `-log-format=standard|json`.
    pub log_format: Option<String>,
}

/// Run the server until SIGINT/SIGTERM. Returns the process exit code.
#[cfg(not(madsim))]
pub fn launch(args: ServerArgs) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error starting the runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let result = if args.dev {
            dev::run_dev(&args).await
        } else {
            run_from_config(&args).await
        };
        match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                std::process::ExitCode::from(1)
            }
        }
    })
}

#[cfg(madsim)]
pub fn launch(_args: ServerArgs) -> std::process::ExitCode {
    eprintln!("the arca binary does not run inside the simulator; use arca-sim");
    std::process::ExitCode::from(1)
}

/// Set up logging once, from the flags (which win) or the configuration file's values:
/// Vault's `log_level` (default info) and `log_format`. Colours only on a terminal: a log
/// redirected to a file (systemd, a test's log shown on failure) stays plain text.
pub fn init_logging(
    args: &ServerArgs,
    config: Option<&crate::config::ServerConfig>,
) -> Result<logging::Logging, String> {
    let level = match &args.log_level {
        Some(flag) => crate::config::parse_log_level(flag)
            .map_err(|error| format!("Error parsing -log-level: {error}"))?,
        None => config
            .and_then(|config| config.log_level.as_deref())
            .map(crate::config::parse_log_level)
            .transpose()?
            .unwrap_or(logging::DEFAULT_LEVEL),
    };
    let format = match &args.log_format {
        Some(flag) => crate::config::LogFormat::parse(flag)
            .map_err(|error| format!("Error parsing -log-format: {error}"))?,
        None => config
            .and_then(|config| config.log_format)
            .unwrap_or_default(),
    };
    Ok(logging::init(level, format))
}

/// Read and parse the configuration file (at start and on SIGHUP). The file is the
/// operator's, read outside the simulated world, so not through the disk seam.
#[cfg(not(madsim))]
fn read_config(path: &std::path::Path) -> Result<crate::config::ServerConfig, String> {
    #[allow(clippy::disallowed_methods)]
    let text = std::fs::read_to_string(path) // seam-ok: the operator's configuration file
        .map_err(|error| {
            format!(
                "Error loading configuration from {}: {error}",
                path.display()
            )
        })?;
    let environment: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    crate::config::parse(&text, &path.display().to_string(), &environment)
        .map_err(|error| error.to_string())
}

#[cfg(not(madsim))]
async fn run_from_config(args: &ServerArgs) -> Result<(), String> {
    let path = args
        .config_path
        .as_ref()
        .ok_or_else(|| "Must specify at least one config path using -config".to_string())?;
    let config = read_config(path)?;
    let logging = std::sync::Arc::new(init_logging(args, Some(&config))?);
    // From here a SIGHUP is queued for the reload handler instead of ending the process.
    let hangups = hangup::listen()?;
    if !config.ignored.is_empty() {
        eprintln!(
            "WARNING! Arca does not act on these Vault settings: {}",
            config.ignored.join(", ")
        );
    }
    let listener = config.listeners.first().ok_or("no listener configured")?;
    let api_tls = match &listener.tls {
        crate::config::ListenerTls::Disabled => None,
        crate::config::ListenerTls::Enabled(files) => {
            let server_config = tls_files::load_listener(files)
                .map_err(|error| format!("Error initializing listener of type tcp: {error}"))?;
            Some((
                crate::http::tls::ServerTls::new(server_config),
                files.clone(),
            ))
        }
    };
    let mut raft_options = crate::raft::RaftOptions {
        wal_buffer_entries_max: config.replication.logshipper_buffer_length,
        ..Default::default()
    };
    let (data_dir, node_id, retry_join) = match &config.storage {
        crate::config::StorageConfig::Raft(raft) => {
            raft_options.snapshot_logs_since_last = raft.snapshot_threshold;
            raft_options.logs_kept_after_snapshot = raft.trailing_logs;
            raft_options.clock_drift_margin = std::time::Duration::from_millis(raft.clock_drift_ms);
            (
                Some(raft.path.clone()),
                raft.node_id.clone(),
                raft.retry_join
                    .iter()
                    .map(tls_files::load_join_target)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| format!("Error in storage \"raft\": {error}"))?,
            )
        }
        crate::config::StorageConfig::Inmem => (None, None, Vec::new()),
    };
    let env = match &data_dir {
        Some(dir) => crate::env::Env::production(dir)
            .map_err(|error| format!("Error opening storage: {error}"))?,
        None => crate::env::Env::in_memory(crate::env::SimDisk::new(0)),
    };
    env.metrics.configure(crate::metrics::Settings {
        retention: config.telemetry.prometheus_retention,
        unauthenticated_access: listener.unauthenticated_metrics_access,
        hostname: (!config.telemetry.disable_hostname).then(host_name),
    });
    crate::metrics::stages::attach(env.telemetry());
    let node_id = match node_id {
        Some(node_id) => node_id,
        None => {
            stored_node_id(&env).map_err(|error| format!("Error reading the node id: {error}"))?
        }
    };
    let node_config = NodeConfig {
        node_id,
        api_listen: listener.address,
        cluster_listen: listener.cluster_address,
        api_addr: config.api_addr.clone(),
        cluster_addr: config.cluster_addr.clone(),
        cluster_name: config.cluster_name.clone(),
        retry_join,
        api_tls: api_tls.as_ref().map(|(tls, _)| tls.clone()),
        raft: raft_options,
    };
    print_configuration(&node_config, "raft");
    let node = Node::start(
        env,
        node_config,
        std::sync::Arc::new(crate::env::OsLogFiles),
    )
    .await
    .map_err(|error| format!("Error starting the node: {error}"))?;
    hangup::spawn(
        hangups,
        hangup::Reloadable {
            config_path: Some(path.clone()),
            logging,
            tls: api_tls,
        },
        node.core().clone(),
    );
    eprintln!("==> Arca server started! Log data will stream in below:\n");
    serve_until_stopped(node).await
}

/// Serve until SIGINT/SIGTERM, or until Raft fails on this node (fail-stop: its log or a
/// snapshot could not be made durable). The process then exits with an error, as etcd's
/// does on a failed fsync, so a supervisor sees the node stop rather than a process that
/// is up and answers nobody.
#[cfg(not(madsim))]
async fn serve_until_stopped(node: Node) -> Result<(), String> {
    let failure = tokio::select! {
        _ = wait_for_signal() => None,
        failure = node.wait_raft_failed() => Some(failure),
    };
    match &failure {
        None => eprintln!("==> Arca shutdown triggered"),
        Some(_) => eprintln!("==> Arca stopping: Raft failed on this node"),
    }
    node.shutdown().await;
    match failure {
        None => Ok(()),
        Some(failure) => Err(format!(
            "Error: Raft failed on this node ({}); repair the disk, then restart it",
            failure.reason
        )),
    }
}

/// This machine's host name, for gauge names (go-metrics' `EnableHostname`).
#[cfg(not(madsim))]
fn host_name() -> String {
    #[allow(clippy::disallowed_methods)]
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname") // seam-ok: process start-up
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    let name = name.trim();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name.to_string()
    }
}

/// The node id kept in the data directory (`node-id`), created on first start.
pub fn stored_node_id(env: &crate::env::Env) -> Result<String, crate::env::DiskError> {
    if let Some(bytes) = env.disk.read("node-id")? {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if !text.is_empty() {
            return Ok(text);
        }
    }
    let node_id = env.rng.uuid();
    crate::env::disk::write_atomic(env.disk.as_ref(), "node-id", node_id.as_bytes())?;
    Ok(node_id)
}

#[cfg(not(madsim))]
pub(crate) fn print_configuration(config: &NodeConfig, storage: &str) {
    eprintln!("==> Arca server configuration:\n");
    eprintln!("             Api Address: {}", config.api_addr);
    eprintln!("         Cluster Address: {}", config.cluster_addr);
    eprintln!(
        "              Listener 1: tcp (addr: \"{}\", cluster address: \"{}\", tls: \"{}\")",
        config.api_listen,
        config.cluster_listen,
        if config.api_tls.is_some() {
            "enabled"
        } else {
            "disabled"
        }
    );
    eprintln!("                 Storage: {storage} (HA available)");
    eprintln!("                 Node ID: {}", config.node_id);
    eprintln!("                 Version: Arca v{}\n", crate::core::VERSION);
}

#[cfg(not(madsim))]
async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            biased;
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
