//! `version-history`, `operator members` and `monitor`: what the cluster has run, who
//! is in it, and what its active node is logging.

use serde::Deserialize;
use serde_json::Value;

use super::super::args::expect_positionals;
use super::super::client::Method;
use super::super::format::table;
use super::super::{Context, Failure, OutputFormat, local_request, remote};
use super::catalog;

/// One `key_info` entry of `LIST sys/version-history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct VersionInfo {
    #[serde(default)]
    pub timestamp_installed: Option<String>,
    #[serde(default)]
    pub build_date: Option<String>,
}

/// Vault's `version-history` table: one row per version, oldest first.
pub fn version_history_table(keys: &[String], info: &serde_json::Map<String, Value>) -> String {
    let mut rows = vec!["Version | Installation Time | Build Date".to_string()];
    for version in keys {
        let entry: VersionInfo = info
            .get(version)
            .cloned()
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default();
        rows.push(format!(
            "{version} | {} | {}",
            entry.timestamp_installed.unwrap_or_default(),
            entry.build_date.unwrap_or_default()
        ));
    }
    table(&rows, "|")
}

pub fn version_history(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("version-history", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let prefix = "Error reading version history";
    let secret = client
        .list("sys/version-history")
        .map_err(|error| remote(prefix, error))?
        .filter(|secret| secret.data.is_some())
        .ok_or_else(|| Failure::Remote("Invalid response returned from Arca".to_string()))?;
    if format != OutputFormat::Table {
        context.output_secret(format, &secret);
        return Ok(0);
    }
    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<String> = data
        .get("keys")
        .cloned()
        .and_then(|keys| serde_json::from_value(keys).ok())
        .ok_or_else(|| Failure::Remote(format!("{prefix}: the answer has no \"keys\"")))?;
    let info = data
        .get("key_info")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    context.print(&version_history_table(&keys, &info));
    Ok(0)
}

/// One node of `sys/ha-status`, with Vault's field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HaNode {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub api_address: String,
    #[serde(default)]
    pub cluster_address: String,
    #[serde(default)]
    pub active_node: bool,
    #[serde(default)]
    pub last_echo: Option<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub upgrade_version: Option<String>,
    #[serde(default)]
    pub redundancy_zone: Option<String>,
}

/// Vault's `operator members` table. Empty cells (the active node's last echo, the
/// enterprise-only upgrade version and redundancy zone) show as `n/a`.
pub fn members_table(nodes: &[HaNode]) -> String {
    let mut rows = vec![
        "Host Name | API Address | Cluster Address | Active Node | Version | Upgrade Version | Redundancy Zone | Last Echo"
            .to_string(),
    ];
    for node in nodes {
        rows.push(format!(
            "{} | {} | {} | {} | {} | {} | {} | {}",
            node.hostname,
            node.api_address,
            node.cluster_address,
            node.active_node,
            node.version,
            node.upgrade_version.as_deref().unwrap_or_default(),
            node.redundancy_zone.as_deref().unwrap_or_default(),
            node.last_echo.as_deref().unwrap_or_default(),
        ));
    }
    table(&rows, "|")
}

pub fn members(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator members", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let prefix = "Error retrieving HA status";
    let response = client
        .send(Method::Get, "sys/ha-status", &[], None)
        .map_err(|error| remote(prefix, error))?;
    let body = response.body.unwrap_or_default();
    // Vault's `HAStatusResponse` is the body itself, `{"Nodes": [...]}`, and its JSON
    // output is that object.
    if format != OutputFormat::Table {
        context.output_data(format, &body);
        return Ok(0);
    }
    let nodes: Vec<HaNode> = body
        .get("Nodes")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| Failure::Remote(format!("{prefix}: unexpected answer: {error}")))?
        .unwrap_or_default();
    context.print(&members_table(&nodes));
    Ok(0)
}

/// Vault's accepted `-log-level` words, in order of detail.
const MONITOR_LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// `monitor`: stream the server's log lines to stdout until the server ends the stream
/// or the user interrupts.
pub fn monitor(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("monitor", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let level = parsed
        .value("log-level")
        .unwrap_or("info")
        .trim()
        .to_ascii_lowercase();
    if !MONITOR_LOG_LEVELS.contains(&level.as_str()) {
        return Err(Failure::Usage(format!(
            "{level} is an unknown log level. Valid log levels are: [{}]",
            MONITOR_LOG_LEVELS.join(" ")
        )));
    }
    let format = parsed
        .value("log-format")
        .unwrap_or("standard")
        .trim()
        .to_ascii_lowercase();
    if !matches!(format.as_str(), "standard" | "json") {
        return Err(Failure::Usage(format!(
            "{format} is an unknown log format. Valid log formats are: [standard json]"
        )));
    }
    let client = context.client(&parsed)?;
    let query = [
        ("log_level".to_string(), level),
        ("log_format".to_string(), format),
    ];
    let out = &mut *context.out;
    client
        .stream("sys/monitor", &query, &mut |chunk| {
            // A closed stdout (the reader of a pipe went away) ends the monitor.
            out.write_all(chunk).and_then(|()| out.flush()).is_ok()
        })
        .map_err(|error| local_request("Error starting monitor", error))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_table_reads_like_vault() {
        let nodes = vec![
            HaNode {
                hostname: "node1".into(),
                api_address: "http://10.0.0.2:8200".into(),
                cluster_address: "https://10.0.0.2:8201".into(),
                active_node: true,
                version: "0.1.0".into(),
                ..HaNode::default()
            },
            HaNode {
                hostname: "node2".into(),
                api_address: "http://10.0.0.3:8200".into(),
                cluster_address: "https://10.0.0.3:8201".into(),
                active_node: false,
                last_echo: Some("2026-12-03T06:00:00Z".into()),
                version: "0.1.0".into(),
                ..HaNode::default()
            },
        ];
        assert_eq!(
            members_table(&nodes),
            "Host Name    API Address             Cluster Address          Active Node    Version    Upgrade Version    Redundancy Zone    Last Echo\n\
             ---------    -----------             ---------------          -----------    -------    ---------------    ---------------    ---------\n\
             node1        http://10.0.0.2:8200    https://10.0.0.2:8201    true           0.1.0      n/a                n/a                n/a\n\
             node2        http://10.0.0.3:8200    https://10.0.0.3:8201    false          0.1.0      n/a                n/a                2026-12-03T06:00:00Z"
        );
    }

    #[test]
    fn version_history_table_lists_versions_in_order() {
        let info = json!({
            "0.2.0": {"timestamp_installed": "2026-02-01T00:00:00Z", "build_date": "2026-01-30T00:00:00Z", "previous_version": "0.1.0"},
            "0.1.0": {"timestamp_installed": "2026-01-01T00:00:00Z", "build_date": null, "previous_version": null},
        });
        let keys = vec!["0.1.0".to_string(), "0.2.0".to_string()];
        assert_eq!(
            version_history_table(&keys, info.as_object().unwrap()),
            "Version    Installation Time       Build Date\n\
             -------    -----------------       ----------\n\
             0.1.0      2026-01-01T00:00:00Z    n/a\n\
             0.2.0      2026-02-01T00:00:00Z    2026-01-30T00:00:00Z"
        );
    }
}
