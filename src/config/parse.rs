//! Walking the HCL syntax tree of a configuration file, with byte spans turned into line
//! numbers for every error. Only literal values are accepted: a configuration file that
//! needs `${...}` interpolation is an error, not something to evaluate.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use hcl::edit::Span;
use hcl::edit::expr::Expression;
use hcl::edit::structure::{Attribute, Block, Body, Structure};

use super::{
    ConfigError, ListenerTls, ListenerTlsFiles, PemSource, RAFT_LOG_ENTRIES_SETTING_MAX,
    RaftStorageConfig, ReplicationConfig, RetryJoinConfig, StorageConfig, TcpListenerConfig,
    check_http_address, force_https,
};
use crate::http::tls_policy::{Tls12CipherSuite, TlsPolicy, TlsPolicyError, TlsVersion};
use crate::raft::node::{LOGS_KEPT_AFTER_SNAPSHOT, SNAPSHOT_LOGS_SINCE_LAST};
use crate::raft::wal::WAL_BUFFER_ENTRIES_MAX;

/// What the file itself says, before environment overrides and defaults.
#[derive(Debug, Default)]
pub(super) struct ParsedFile {
    pub listeners: Vec<TcpListenerConfig>,
    pub storage: Option<StorageConfig>,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    pub cluster_name: Option<String>,
    pub ui: bool,
    pub log_level: Option<String>,
    pub log_format: Option<super::LogFormat>,
    pub disable_mlock: bool,
    pub disable_cache: bool,
    pub replication: Option<ReplicationConfig>,
    pub telemetry: Option<super::TelemetryConfig>,
    /// Vault settings Arca accepts and does not act on (the server warns about them).
    pub ignored: Vec<String>,
}

/// Top-level Vault settings that do not change what Arca stores or how it answers, so
/// a Vault configuration file starts Arca unchanged; the server names them at start.
const IGNORED_ATTRIBUTES: &[&str] = &[
    "default_lease_ttl",
    "max_lease_ttl",
    "default_max_request_duration",
    "plugin_directory",
    "plugin_file_uid",
    "plugin_file_permissions",
    "log_file",
    "log_rotate_duration",
    "log_rotate_bytes",
    "log_rotate_max_files",
    "pid_file",
    "cluster_cipher_suites",
    "disable_clustering",
    "disable_performance_standby",
    "disable_sealwrap",
    "disable_printable_check",
    "raw_storage_endpoint",
    "introspection_endpoint",
    "enable_response_header_hostname",
    "enable_response_header_raft_node_id",
    "imprecise_lease_role_tracking",
    "detect_deadlocks",
    "license_path",
    "experiments",
];
const IGNORED_BLOCKS: &[&str] = &["service_registration", "user_lockout", "reporting"];

const DEFAULT_LISTEN_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8200);

/// Locates errors: the file name and its text, to turn byte offsets into lines.
struct Source<'a> {
    file_name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        let line = span.map(|span| {
            let end = span.start.min(self.text.len());
            // Offsets come from the parser and so fall on character boundaries; counting
            // bytes is still safe if one did not.
            self.text.as_bytes()[..end]
                .iter()
                .filter(|byte| **byte == b'\n')
                .count()
                + 1
        });
        ConfigError {
            file_name: self.file_name.to_string(),
            line,
            message,
        }
    }
}

pub(super) fn parse_file(text: &str, file_name: &str) -> Result<ParsedFile, ConfigError> {
    let source = Source { file_name, text };
    if let Some(offset) = crate::util::hcl_nesting_exceeded(text) {
        return Err(ConfigError {
            file_name: file_name.to_string(),
            line: Some(
                text.as_bytes()[..offset]
                    .iter()
                    .filter(|byte| **byte == b'\n')
                    .count()
                    + 1,
            ),
            message: format!(
                "nesting deeper than {} levels",
                crate::util::HCL_NESTING_DEPTH_MAX
            ),
        });
    }
    // Vault's HCL 1 layout (several attributes in a one-line block) is rewritten in
    // place for HCL 2; offsets are unchanged, so lines are counted in `text`.
    let layout = crate::hcl_layout::to_hcl2_layout(text);
    let body = hcl::edit::parser::parse_body(&layout).map_err(|error| {
        let offset = error.location().offset();
        source.error(
            Some(offset..offset),
            format!("syntax error: {}", error.message()),
        )
    })?;

    let mut file = ParsedFile::default();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => {
                let key = attribute.key.as_str();
                let value = Value::new(&source, "", attribute);
                match key {
                    "api_addr" => {
                        let address = value.string()?;
                        check_http_address(&address).map_err(|why| value.error(why))?;
                        file.api_addr = Some(address);
                    }
                    "cluster_addr" => {
                        let address = value.string()?;
                        file.cluster_addr =
                            Some(force_https(&address).map_err(|why| value.error(why))?);
                    }
                    "cluster_name" => file.cluster_name = Some(value.string()?),
                    "ui" => file.ui = value.bool()?,
                    "log_level" => {
                        let level = super::parse_log_level(&value.string()?)
                            .map_err(|why| value.error(why))?;
                        file.log_level = Some(level.to_string());
                    }
                    "log_format" => {
                        let format = super::LogFormat::parse(&value.string()?)
                            .map_err(|why| value.error(why))?;
                        file.log_format = Some(format);
                    }
                    "disable_mlock" => file.disable_mlock = value.bool()?,
                    "disable_cache" => file.disable_cache = value.bool()?,
                    other if IGNORED_ATTRIBUTES.contains(&other) => {
                        file.ignored.push(other.to_string())
                    }
                    other => {
                        return Err(source.error(attribute.span(), unknown_key("", other)));
                    }
                }
            }
            Structure::Block(block) => match block.ident.as_str() {
                "listener" => file.listeners.push(parse_listener(&source, block)?),
                "storage" => {
                    if file.storage.is_some() {
                        return Err(source.error(
                            block.span(),
                            "more than one storage block: exactly one is allowed".to_string(),
                        ));
                    }
                    file.storage = Some(parse_storage(&source, block)?);
                }
                "replication" => {
                    if file.replication.is_some() {
                        return Err(source.error(
                            block.span(),
                            "more than one replication block: at most one is allowed".to_string(),
                        ));
                    }
                    file.replication = Some(parse_replication(&source, block)?);
                }
                "telemetry" => {
                    if file.telemetry.is_some() {
                        return Err(source.error(
                            block.span(),
                            "more than one telemetry block: at most one is allowed".to_string(),
                        ));
                    }
                    file.telemetry = Some(parse_telemetry(&source, block, &mut file.ignored)?);
                }
                other if IGNORED_BLOCKS.contains(&other) => file.ignored.push(other.to_string()),
                "seal" => {
                    return Err(source.error(
                        block.span(),
                        "seal blocks (auto-unseal) are not supported: Arca unseals with Shamir shares".to_string(),
                    ));
                }
                other => {
                    return Err(source.error(block.span(), format!("unknown block {other:?}")));
                }
            },
        }
    }
    Ok(file)
}

fn unknown_key(context: &str, key: &str) -> String {
    format!("{context}unknown key {key:?}")
}

/// The single label of a block such as `listener "tcp"`, or an error.
fn single_label<'b>(source: &Source<'_>, block: &'b Block) -> Result<&'b str, ConfigError> {
    match block.labels.as_slice() {
        [label] => Ok(label.as_str()),
        _ => Err(source.error(
            block.span(),
            format!(
                "{} block needs exactly one label, like {} \"KIND\" {{ ... }}",
                block.ident.as_str(),
                block.ident.as_str()
            ),
        )),
    }
}

fn parse_listener(source: &Source<'_>, block: &Block) -> Result<TcpListenerConfig, ConfigError> {
    let kind = single_label(source, block)?;
    if kind != "tcp" {
        return Err(source.error(
            block.span(),
            format!("listener {kind:?}: unsupported listener type; only \"tcp\" is supported"),
        ));
    }
    let context = "listener \"tcp\": ";
    let mut address = None;
    let mut cluster_address = None;
    let mut tls_disable = false;
    let mut cert_file = None;
    let mut key_file = None;
    let mut min_version = TlsVersion::Tls12;
    let mut max_version = TlsVersion::Tls13;
    let mut cipher_suites = Vec::new();
    // Where each version setting and the suite list were written, for an error about
    // how they combine.
    let mut min_version_span = None;
    let mut max_version_span = None;
    let mut cipher_suites_span = None;
    let mut client_ca_file = None;
    let mut require_client_cert = false;
    let mut unauthenticated_metrics_access = false;
    for structure in block.body.iter() {
        if let Structure::Block(inner) = structure
            && inner.ident.as_str() == "telemetry"
        {
            unauthenticated_metrics_access = parse_listener_telemetry(source, inner)?;
            continue;
        }
        let attribute = only_attribute(source, context, structure)?;
        let key = attribute.key.as_str();
        let value = Value::new(source, context, attribute);
        match key {
            "address" => address = Some(value.listen_address()?),
            "cluster_address" => cluster_address = Some(value.listen_address()?),
            "tls_disable" => tls_disable = value.bool()?,
            "tls_cert_file" => cert_file = Some(PathBuf::from(value.non_empty_string()?)),
            "tls_key_file" => key_file = Some(PathBuf::from(value.non_empty_string()?)),
            "tls_min_version" => {
                min_version =
                    TlsVersion::parse(&value.string()?).map_err(|why| value.error(why))?;
                min_version_span = attribute.span();
            }
            "tls_max_version" => {
                max_version =
                    TlsVersion::parse(&value.string()?).map_err(|why| value.error(why))?;
                max_version_span = attribute.span();
            }
            "tls_cipher_suites" => {
                cipher_suites = Tls12CipherSuite::parse_list(&value.string()?)
                    .map_err(|why| value.error(why))?;
                cipher_suites_span = attribute.span();
            }
            "tls_client_ca_file" => client_ca_file = Some(PathBuf::from(value.non_empty_string()?)),
            "tls_require_and_verify_client_cert" => require_client_cert = value.bool()?,
            other => return Err(source.error(attribute.span(), unknown_key(context, other))),
        }
    }
    let address = address.unwrap_or(DEFAULT_LISTEN_ADDRESS);
    let cluster_address = match cluster_address {
        Some(cluster_address) => cluster_address,
        None => {
            let port = address.port().checked_add(1).ok_or_else(|| {
                source.error(
                    block.span(),
                    format!(
                        "{context}address port {} leaves no room for the default cluster port (port + 1); set cluster_address",
                        address.port()
                    ),
                )
            })?;
            SocketAddr::new(address.ip(), port)
        }
    };
    let tls = if tls_disable {
        ListenerTls::Disabled
    } else {
        match (cert_file, key_file) {
            (Some(cert_file), Some(key_file)) => {
                if require_client_cert && client_ca_file.is_none() {
                    return Err(source.error(
                        block.span(),
                        format!(
                            "{context}tls_require_and_verify_client_cert needs tls_client_ca_file: the CA client certificates must chain to"
                        ),
                    ));
                }
                let policy =
                    TlsPolicy::new(min_version, max_version, cipher_suites).map_err(|error| {
                        let span = match error {
                            TlsPolicyError::VersionsCrossed { .. } => {
                                max_version_span.or(min_version_span)
                            }
                            TlsPolicyError::SuitesWithoutTls12 => cipher_suites_span,
                        };
                        source.error(span.or(block.span()), format!("{context}{error}"))
                    })?;
                ListenerTls::Enabled(ListenerTlsFiles {
                    cert_file,
                    key_file,
                    policy,
                    client_ca_file,
                    require_client_cert,
                })
            }
            _ => {
                return Err(source.error(
                    block.span(),
                    format!(
                        "{context}tls_cert_file and tls_key_file must be set unless tls_disable = true"
                    ),
                ));
            }
        }
    };
    Ok(TcpListenerConfig {
        address,
        cluster_address,
        tls,
        unauthenticated_metrics_access,
    })
}

/// A listener's `telemetry { unauthenticated_metrics_access = BOOL }`.
fn parse_listener_telemetry(source: &Source<'_>, block: &Block) -> Result<bool, ConfigError> {
    let context = "listener \"tcp\": telemetry: ";
    let mut unauthenticated = false;
    for structure in block.body.iter() {
        let attribute = only_attribute(source, context, structure)?;
        let value = Value::new(source, context, attribute);
        match attribute.key.as_str() {
            "unauthenticated_metrics_access" => unauthenticated = value.bool()?,
            other => return Err(source.error(attribute.span(), unknown_key(context, other))),
        }
    }
    Ok(unauthenticated)
}

/// Telemetry settings for sinks Arca does not push to: accepted (a Vault file starts
/// Arca unchanged) and named at start.
const IGNORED_TELEMETRY: &[&str] = &[
    "usage_gauge_period",
    "maximum_gauge_cardinality",
    "lease_metrics_epsilon",
    "num_lease_metrics_buckets",
    "add_lease_metrics_namespace_labels",
    "filter_default",
    "prefix_filter",
    "enable_hostname_label",
    "metrics_prefix",
    "statsite_address",
    "statsd_address",
    "dogstatsd_addr",
    "dogstatsd_tags",
    "circonus_api_token",
    "circonus_api_app",
    "circonus_api_url",
    "circonus_submission_interval",
    "circonus_submission_url",
    "circonus_check_id",
    "circonus_check_force_metric_activation",
    "circonus_check_instance_id",
    "circonus_check_search_tag",
    "circonus_check_display_name",
    "circonus_check_tags",
    "circonus_broker_id",
    "circonus_broker_select_tag",
    "stackdriver_project_id",
    "stackdriver_location",
    "stackdriver_namespace",
    "stackdriver_debug_logs",
];

fn parse_telemetry(
    source: &Source<'_>,
    block: &Block,
    ignored: &mut Vec<String>,
) -> Result<super::TelemetryConfig, ConfigError> {
    let context = "telemetry: ";
    if !block.labels.is_empty() {
        return Err(source.error(block.span(), format!("{context}takes no label")));
    }
    let mut config = super::TelemetryConfig::default();
    for structure in block.body.iter() {
        let attribute = only_attribute(source, context, structure)?;
        let value = Value::new(source, context, attribute);
        match attribute.key.as_str() {
            "prometheus_retention_time" => {
                let seconds = match &attribute.value {
                    Expression::Number(_) => value.unsigned(0, u64::MAX / 2)? as i64,
                    _ => crate::logical::parse_duration_text(&value.string()?)
                        .map_err(|why| value.error(why))?,
                };
                config.prometheus_retention = std::time::Duration::from_secs(seconds as u64);
            }
            "disable_hostname" => config.disable_hostname = value.bool()?,
            other if IGNORED_TELEMETRY.contains(&other) => {
                ignored.push(format!("telemetry.{other}"))
            }
            other => return Err(source.error(attribute.span(), unknown_key(context, other))),
        }
    }
    Ok(config)
}

fn parse_storage(source: &Source<'_>, block: &Block) -> Result<StorageConfig, ConfigError> {
    let kind = single_label(source, block)?;
    match kind {
        "raft" => parse_raft(source, &block.body).map(StorageConfig::Raft),
        "inmem" => {
            if let Some(structure) = block.body.iter().next() {
                let key = match structure {
                    Structure::Attribute(attribute) => attribute.key.as_str(),
                    Structure::Block(block) => block.ident.as_str(),
                };
                return Err(source.error(
                    structure_span(structure),
                    unknown_key("storage \"inmem\": ", key),
                ));
            }
            Ok(StorageConfig::Inmem)
        }
        other => Err(source.error(
            block.span(),
            format!(
                "storage {other:?}: unsupported storage type; use \"raft\" (or \"inmem\" for tests)"
            ),
        )),
    }
}

fn parse_raft(source: &Source<'_>, body: &Body) -> Result<RaftStorageConfig, ConfigError> {
    let context = "storage \"raft\": ";
    let mut path = None;
    let mut node_id = None;
    let mut retry_join = Vec::new();
    let mut snapshot_threshold = SNAPSHOT_LOGS_SINCE_LAST;
    let mut trailing_logs = LOGS_KEPT_AFTER_SNAPSHOT;
    let mut clock_drift_ms = crate::raft::node::CLOCK_DRIFT_MARGIN_MS_DEFAULT;
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => {
                let key = attribute.key.as_str();
                let value = Value::new(source, context, attribute);
                match key {
                    "path" => path = Some(PathBuf::from(value.non_empty_string()?)),
                    "node_id" => node_id = Some(value.non_empty_string()?),
                    "snapshot_threshold" => {
                        snapshot_threshold = value.unsigned(1, RAFT_LOG_ENTRIES_SETTING_MAX)?
                    }
                    "trailing_logs" => {
                        trailing_logs = value.unsigned(0, RAFT_LOG_ENTRIES_SETTING_MAX)?
                    }
                    // Arca's own: the margin for clock drift between nodes that every
                    // read lease gives up (at most the shortest election timeout, where
                    // no lease is left and every read confirms with a quorum).
                    "leader_lease_clock_drift_ms" => {
                        clock_drift_ms =
                            value.unsigned(0, crate::raft::node::ELECTION_TIMEOUT_MIN_MS)?
                    }
                    other => {
                        return Err(source.error(attribute.span(), unknown_key(context, other)));
                    }
                }
            }
            Structure::Block(block) if block.ident.as_str() == "retry_join" => {
                retry_join.push(parse_retry_join(source, block)?);
            }
            Structure::Block(block) => {
                return Err(source.error(
                    block.span(),
                    format!("{context}unknown block {:?}", block.ident.as_str()),
                ));
            }
        }
    }
    let Some(path) = path else {
        return Err(source.error(body.span(), format!("{context}\"path\" is required")));
    };
    Ok(RaftStorageConfig {
        path,
        node_id,
        retry_join,
        snapshot_threshold,
        trailing_logs,
        clock_drift_ms,
    })
}

fn parse_replication(source: &Source<'_>, block: &Block) -> Result<ReplicationConfig, ConfigError> {
    let context = "replication: ";
    if !block.labels.is_empty() {
        return Err(source.error(block.span(), format!("{context}takes no label")));
    }
    let mut config = ReplicationConfig::default();
    for structure in block.body.iter() {
        let attribute = only_attribute(source, context, structure)?;
        let value = Value::new(source, context, attribute);
        match attribute.key.as_str() {
            "logshipper_buffer_length" => {
                config.logshipper_buffer_length =
                    value.unsigned(1, WAL_BUFFER_ENTRIES_MAX as u64)? as usize;
            }
            other => return Err(source.error(attribute.span(), unknown_key(context, other))),
        }
    }
    Ok(config)
}

fn parse_retry_join(source: &Source<'_>, block: &Block) -> Result<RetryJoinConfig, ConfigError> {
    let context = "storage \"raft\": retry_join: ";
    if !block.labels.is_empty() {
        return Err(source.error(block.span(), format!("{context}takes no label")));
    }
    let mut leader_api_addr = None;
    let mut join = RetryJoinConfig::default();
    for structure in block.body.iter() {
        let attribute = only_attribute(source, context, structure)?;
        let key = attribute.key.as_str();
        let value = Value::new(source, context, attribute);
        // Vault takes each PEM either as a file (`*_file`) or inline; the file wins
        // when both are given, as in Vault.
        let file = |value: &Value<'_>| -> Result<Option<PemSource>, ConfigError> {
            Ok(Some(PemSource::File(PathBuf::from(
                value.non_empty_string()?,
            ))))
        };
        let inline = |value: &Value<'_>, current: &Option<PemSource>| {
            if matches!(current, Some(PemSource::File(_))) {
                return Ok(current.clone());
            }
            Ok::<_, ConfigError>(Some(PemSource::Inline(value.non_empty_string()?)))
        };
        match key {
            "leader_api_addr" => {
                let address = value.string()?;
                check_http_address(&address).map_err(|why| value.error(why))?;
                leader_api_addr = Some(address);
            }
            "leader_ca_cert_file" => join.leader_ca_cert = file(&value)?,
            "leader_client_cert_file" => join.leader_client_cert = file(&value)?,
            "leader_client_key_file" => join.leader_client_key = file(&value)?,
            "leader_ca_cert" => join.leader_ca_cert = inline(&value, &join.leader_ca_cert)?,
            "leader_client_cert" => {
                join.leader_client_cert = inline(&value, &join.leader_client_cert)?
            }
            "leader_client_key" => {
                join.leader_client_key = inline(&value, &join.leader_client_key)?
            }
            "leader_tls_servername" => join.leader_tls_servername = Some(value.non_empty_string()?),
            other => return Err(source.error(attribute.span(), unknown_key(context, other))),
        }
    }
    if join.leader_client_cert.is_some() != join.leader_client_key.is_some() {
        return Err(source.error(
            block.span(),
            format!(
                "{context}leader_client_cert_file and leader_client_key_file must be set together"
            ),
        ));
    }
    match leader_api_addr {
        Some(leader_api_addr) => Ok(RetryJoinConfig {
            leader_api_addr,
            ..join
        }),
        None => Err(source.error(
            block.span(),
            format!("{context}\"leader_api_addr\" is required"),
        )),
    }
}

fn structure_span(structure: &Structure) -> Option<Range<usize>> {
    match structure {
        Structure::Attribute(attribute) => attribute.span(),
        Structure::Block(block) => block.span(),
    }
}

fn only_attribute<'b>(
    source: &Source<'_>,
    context: &str,
    structure: &'b Structure,
) -> Result<&'b Attribute, ConfigError> {
    match structure {
        Structure::Attribute(attribute) => Ok(attribute),
        Structure::Block(block) => Err(source.error(
            block.span(),
            format!("{context}unknown block {:?}", block.ident.as_str()),
        )),
    }
}

/// One attribute's value, with what is needed to report a wrong type against its key.
struct Value<'a> {
    source: &'a Source<'a>,
    context: &'a str,
    attribute: &'a Attribute,
}

impl<'a> Value<'a> {
    fn new(source: &'a Source<'a>, context: &'a str, attribute: &'a Attribute) -> Self {
        Self {
            source,
            context,
            attribute,
        }
    }

    fn error(&self, why: String) -> ConfigError {
        self.source.error(
            self.attribute.span(),
            format!("{}{:?}: {why}", self.context, self.attribute.key.as_str()),
        )
    }

    fn string(&self) -> Result<String, ConfigError> {
        match &self.attribute.value {
            Expression::String(text) => Ok(text.value().clone()),
            other => Err(self.error(format!("expected a string, got {}", describe(other)))),
        }
    }

    fn non_empty_string(&self) -> Result<String, ConfigError> {
        let text = self.string()?;
        if text.is_empty() {
            return Err(self.error("must not be empty".to_string()));
        }
        Ok(text)
    }

    /// Booleans as Vault reads them: `true`, `1`, `"true"`, `"1"` and friends.
    fn bool(&self) -> Result<bool, ConfigError> {
        match &self.attribute.value {
            Expression::Bool(value) => Ok(*value.value()),
            Expression::Number(number) => match number.value().as_i64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(self.error(format!(
                    "expected a boolean (true, false, 1 or 0), got {}",
                    number.value()
                ))),
            },
            Expression::String(text) => crate::util::parse_go_bool(text.value())
                .ok_or_else(|| self.error(format!("expected a boolean, got {:?}", text.value()))),
            other => Err(self.error(format!("expected a boolean, got {}", describe(other)))),
        }
    }

    /// A whole number in `min..=max`, written as a number or a string of digits (Vault
    /// reads its storage settings either way).
    fn unsigned(&self, min: u64, max: u64) -> Result<u64, ConfigError> {
        let number = match &self.attribute.value {
            Expression::Number(number) => number.value().as_u64(),
            Expression::String(text) => text.value().parse::<u64>().ok(),
            other => {
                return Err(self.error(format!("expected a number, got {}", describe(other))));
            }
        };
        match number {
            Some(number) if (min..=max).contains(&number) => Ok(number),
            _ => Err(self.error(format!("expected a whole number from {min} to {max}"))),
        }
    }

    fn listen_address(&self) -> Result<SocketAddr, ConfigError> {
        let text = self.string()?;
        parse_listen_address(&text).map_err(|why| self.error(why))
    }
}

/// `IP:PORT` (`[::]:8200`, `0.0.0.0:8200`), or `localhost:PORT`. Host names are not
/// resolved: a listener binds to an address, and resolving would hide which one.
pub(super) fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if let Some(port) = text.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    Err(format!(
        "invalid address {text:?}: expected IP:PORT, like \"0.0.0.0:8200\" or \"[::]:8200\""
    ))
}

fn describe(expression: &Expression) -> &'static str {
    match expression {
        Expression::Null(_) => "null",
        Expression::Bool(_) => "a boolean",
        Expression::Number(_) => "a number",
        Expression::String(_) => "a string",
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            "a template (interpolation is not supported)"
        }
        _ => "an expression (only literal values are supported)",
    }
}
