//! The server configuration: Vault's HCL file in, a validated [`ServerConfig`] out.
//!
//! Owns the translation of an operator's `vault-server.hcl` (the same file Vault reads)
//! into types that cannot hold an invalid listener address or an unknown storage kind.
//! Everything is checked once here, at the boundary; the server trusts the result.
//!
//! Input is the file's text, its name (for error messages) and the process environment
//! as an explicit map, so tests never touch the real environment. Environment overrides
//! follow Vault: `VAULT_API_ADDR`, `VAULT_CLUSTER_ADDR` and `VAULT_RAFT_NODE_ID` win over
//! the file, and the `ARCA_` spelling of each wins over the `VAULT_` one.
//!
//! Defaults follow Vault as well: a listener's cluster address is its address with the
//! port plus one; `api_addr` falls back to the first listener; `cluster_addr` falls back
//! to `api_addr` with the port plus one, and is always `https`, because the cluster
//! channel is always TLS.
//!
//! Every failure is a [`ConfigError`] naming the file, the line and the key; no input
//! text can make the parser panic (see the property test below).

mod error;
pub mod log_monitor;
mod logging;
mod parse;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use error::ConfigError;
pub use logging::{LogFormat, parse_log_level};

/// Everything `arca server -config=FILE` needs to start a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// At least one TCP listener, in file order.
    pub listeners: Vec<TcpListenerConfig>,
    pub storage: StorageConfig,
    /// The address clients are redirected to (`api_addr`, after environment overrides
    /// and defaults), e.g. `http://cluster-pri:8200`.
    pub api_addr: String,
    /// The address other nodes and clusters reach this node's cluster port on; always
    /// `https://HOST:PORT`.
    pub cluster_addr: String,
    pub cluster_name: Option<String>,
    pub ui: bool,
    /// One of `trace`, `debug`, `info`, `warn`, `error` when set.
    pub log_level: Option<String>,
    /// `log_format` (`standard` when not set).
    pub log_format: Option<LogFormat>,
    pub disable_mlock: bool,
    pub disable_cache: bool,
    /// The `replication { ... }` stanza, or its defaults.
    pub replication: ReplicationConfig,
    /// The `telemetry { ... }` stanza, or its defaults.
    pub telemetry: TelemetryConfig,
    /// Vault settings present in the file that Arca accepts without acting on them.
    pub ignored: Vec<String>,
}

/// `telemetry { prometheus_retention_time = "24h" disable_hostname = true }`. The
/// sinks that push elsewhere (statsd, circonus, ...) are accepted and not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// How long observations stay in `sys/metrics` quantiles; zero turns the
    /// Prometheus format off (Vault answers it with an error then).
    pub prometheus_retention: std::time::Duration,
    /// Vault prefixes gauge names with the host name unless this is set.
    pub disable_hostname: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            prometheus_retention: crate::metrics::DEFAULT_RETENTION,
            disable_hostname: false,
        }
    }
}

/// `replication { logshipper_buffer_length = N }`: how many recent WAL entries each
/// node keeps for log shipping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub logshipper_buffer_length: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            logshipper_buffer_length: crate::raft::wal::WAL_BUFFER_ENTRIES_DEFAULT,
        }
    }
}

/// One `listener "tcp" { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListenerConfig {
    /// Where the HTTP API listens (`address`, default `127.0.0.1:8200`).
    pub address: SocketAddr,
    /// Where the cluster channel listens (`cluster_address`, default port + 1).
    pub cluster_address: SocketAddr,
    pub tls: ListenerTls,
    /// `telemetry { unauthenticated_metrics_access = true }` inside the listener:
    /// `sys/metrics` answers without a token.
    pub unauthenticated_metrics_access: bool,
}

/// TLS on a listener: off (`tls_disable = 1`) or on with both files named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerTls {
    Disabled,
    Enabled(ListenerTlsFiles),
}

/// A TLS listener's settings. The files are read when the server starts and again on
/// SIGHUP; the configuration only names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTlsFiles {
    /// `tls_cert_file`: PEM, the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// `tls_key_file`: the PEM private key of the first certificate.
    pub key_file: PathBuf,
    /// `tls_min_version` (default `tls12`), `tls_max_version` (default `tls13`) and
    /// `tls_cipher_suites` (default: every suite offered).
    pub policy: crate::http::tls_policy::TlsPolicy,
    /// `tls_client_ca_file`: the CA client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// `tls_require_and_verify_client_cert`: refuse clients without a certificate
    /// signed by `client_ca_file`.
    pub require_client_cert: bool,
}

impl ListenerTls {
    /// The URL scheme clients use to reach a listener with this TLS setting.
    pub fn scheme(&self) -> &'static str {
        match self {
            ListenerTls::Disabled => "http",
            ListenerTls::Enabled(_) => "https",
        }
    }
}

/// The `storage "KIND" { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// Integrated storage.
    Raft(RaftStorageConfig),
    /// Nothing survives a restart; for tests and `-dev`.
    Inmem,
}

/// `storage "raft" { path, node_id, retry_join { leader_api_addr } ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStorageConfig {
    /// The data directory.
    pub path: PathBuf,
    /// This node's Raft id; `None` means the server generates one and keeps it in `path`.
    pub node_id: Option<String>,
    /// Leaders to try joining at start, in file order.
    pub retry_join: Vec<RetryJoinConfig>,
    /// The fewest entries applied between snapshots (Vault's `snapshot_threshold`,
    /// default 8192); a large key space also waits until the entries wrote half the last
    /// snapshot's size (`raft::snapshot_cadence`).
    pub snapshot_threshold: u64,
    /// Entries kept in the log after a snapshot (Vault's `trailing_logs`, default 10000).
    pub trailing_logs: u64,
    /// `leader_lease_clock_drift_ms`: the drift margin taken off every read lease.
    pub clock_drift_ms: u64,
}

/// The largest `snapshot_threshold` and `trailing_logs` accepted: far above any useful
/// setting, low enough that a typo cannot make the log grow without bound.
pub const RAFT_LOG_ENTRIES_SETTING_MAX: u64 = 10_000_000;

/// One `retry_join { leader_api_addr = "..." }` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryJoinConfig {
    pub leader_api_addr: String,
    /// `leader_ca_cert_file` or inline `leader_ca_cert`: the CA the leader's API
    /// certificate chains to (the system's roots when absent).
    pub leader_ca_cert: Option<PemSource>,
    /// `leader_client_cert_file` / `leader_client_cert`, for a leader that requires
    /// client certificates.
    pub leader_client_cert: Option<PemSource>,
    /// `leader_client_key_file` / `leader_client_key`.
    pub leader_client_key: Option<PemSource>,
    /// `leader_tls_servername`: the name the leader's certificate must carry, when it is
    /// not the host of `leader_api_addr`.
    pub leader_tls_servername: Option<String>,
}

/// PEM given in a configuration file, Vault-style: a path (`*_file`) or the PEM text.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

impl std::fmt::Debug for PemSource {
    // Inline PEM may be a private key: a debug print shows only where it came from.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemSource::File(path) => write!(formatter, "File({})", path.display()),
            PemSource::Inline(_) => formatter.write_str("Inline(..)"),
        }
    }
}

/// Environment variables the configuration reads, in order of precedence per setting.
const API_ADDR_VARIABLES: [&str; 2] = ["ARCA_API_ADDR", "VAULT_API_ADDR"];
const CLUSTER_ADDR_VARIABLES: [&str; 2] = ["ARCA_CLUSTER_ADDR", "VAULT_CLUSTER_ADDR"];
const RAFT_NODE_ID_VARIABLES: [&str; 2] = ["ARCA_RAFT_NODE_ID", "VAULT_RAFT_NODE_ID"];

/// Parse a configuration file's `text`. `file_name` only labels errors; `env` is the
/// process environment (pass `std::env::vars().collect()` in production).
pub fn parse(
    text: &str,
    file_name: &str,
    env: &BTreeMap<String, String>,
) -> Result<ServerConfig, ConfigError> {
    let file = parse::parse_file(text, file_name)?;
    let whole_file_error = |message: String| ConfigError {
        file_name: file_name.to_string(),
        line: None,
        message,
    };

    let listeners = file.listeners;
    let Some(first_listener) = listeners.first() else {
        return Err(whole_file_error(
            "no listener \"tcp\" block: at least one listener is required".to_string(),
        ));
    };
    let Some(mut storage) = file.storage else {
        return Err(whole_file_error(
            "no storage block: a storage backend must be specified".to_string(),
        ));
    };

    let api_addr = match first_set(env, &API_ADDR_VARIABLES) {
        Some((name, value)) => {
            check_http_address(value).map_err(|why| whole_file_error(format!("{name}: {why}")))?;
            value.to_string()
        }
        None => match file.api_addr {
            Some(value) => value,
            None => listener_url(first_listener),
        },
    };
    let cluster_addr = match first_set(env, &CLUSTER_ADDR_VARIABLES) {
        Some((name, value)) => {
            force_https(value).map_err(|why| whole_file_error(format!("{name}: {why}")))?
        }
        None => match file.cluster_addr {
            Some(value) => value,
            None => cluster_addr_from_api_addr(&api_addr)
                .map_err(|why| whole_file_error(format!("api_addr: {why}")))?,
        },
    };
    if let (StorageConfig::Raft(raft), Some((_, node_id))) =
        (&mut storage, first_set(env, &RAFT_NODE_ID_VARIABLES))
    {
        raft.node_id = Some(node_id.to_string());
    }

    Ok(ServerConfig {
        listeners,
        storage,
        api_addr,
        cluster_addr,
        cluster_name: file.cluster_name,
        ui: file.ui,
        log_level: file.log_level,
        log_format: file.log_format,
        disable_mlock: file.disable_mlock,
        disable_cache: file.disable_cache,
        replication: file.replication.unwrap_or_default(),
        telemetry: file.telemetry.unwrap_or_default(),
        ignored: file.ignored,
    })
}

/// The first variable of `names` that is set to a non-empty value (Vault ignores empty
/// ones), with its name.
fn first_set<'a>(
    env: &'a BTreeMap<String, String>,
    names: &[&'static str],
) -> Option<(&'static str, &'a str)> {
    names.iter().find_map(|name| {
        env.get(*name)
            .filter(|value| !value.is_empty())
            .map(|value| (*name, value.as_str()))
    })
}

/// `http(s)://HOST:PORT` for a listener, with a wildcard host replaced by loopback,
/// since nobody can connect to `0.0.0.0`.
fn listener_url(listener: &TcpListenerConfig) -> String {
    let address = listener.address;
    let host = if address.ip().is_unspecified() {
        if address.is_ipv6() {
            "[::1]".to_string()
        } else {
            "127.0.0.1".to_string()
        }
    } else if address.is_ipv6() {
        format!("[{}]", address.ip())
    } else {
        address.ip().to_string()
    };
    format!("{}://{host}:{}", listener.tls.scheme(), address.port())
}

/// An address split into its parts: `scheme://host[:port][/rest]`.
struct HttpAddress<'a> {
    host: &'a str,
    port: Option<u16>,
}

fn split_http_address(text: &str) -> Result<(&str, HttpAddress<'_>), String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "invalid address {text:?}: expected http://HOST:PORT or https://HOST:PORT"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "invalid address {text:?}: the scheme must be http or https"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err(format!("invalid address {text:?}: unclosed '['"));
        };
        (inside, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("invalid address {text:?}: no host"));
    }
    let port = match port_text {
        Some(port_text) => Some(
            port_text
                .parse::<u16>()
                .map_err(|_| format!("invalid address {text:?}: bad port {port_text:?}"))?,
        ),
        None => None,
    };
    Ok((scheme, HttpAddress { host, port }))
}

fn check_http_address(text: &str) -> Result<(), String> {
    split_http_address(text).map(|_| ())
}

fn bracket_if_ipv6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Vault always rewrites the cluster address to `https`, the cluster channel being TLS
/// whatever the API listener does.
fn force_https(text: &str) -> Result<String, String> {
    let (_, address) = split_http_address(text)?;
    let Some(port) = address.port else {
        return Err(format!("invalid address {text:?}: a port is required"));
    };
    Ok(format!("https://{}:{port}", bracket_if_ipv6(address.host)))
}

/// The cluster address Vault derives when none is configured: the API address's host,
/// its port plus one, over https.
fn cluster_addr_from_api_addr(api_addr: &str) -> Result<String, String> {
    let (scheme, address) = split_http_address(api_addr)?;
    let port = address
        .port
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let cluster_port = port
        .checked_add(1)
        .ok_or_else(|| format!("port {port} leaves no room for a cluster port (port + 1)"))?;
    Ok(format!(
        "https://{}:{cluster_port}",
        bracket_if_ipv6(address.host)
    ))
}

#[cfg(test)]
mod tests;
