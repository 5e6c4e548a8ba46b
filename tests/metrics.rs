//! `sys/metrics` scraped from running servers: the `telemetry` stanza, a listener's
//! `unauthenticated_metrics_access`, Prometheus' text format parsed line by line, the
//! JSON form, and the series an operator alerts on (request time, Raft commit, fsync,
//! barrier, seal and leadership, token count) moving with the traffic.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::{ServerProcess, call, client, free_port};

/// A one-node server with `extra` appended to its configuration (and `listener_extra`
/// inside its listener block), initialized and unsealed; its root token.
fn start_node(
    root: &std::path::Path,
    http: &reqwest::blocking::Client,
    listener_extra: &str,
    extra: &str,
) -> (ServerProcess, String) {
    let mut node = ServerProcess::configure(root, "node", free_port(), free_port(), &[]);
    let config = std::fs::read_to_string(&node.config_path).unwrap();
    let config = config.replacen(
        "  tls_disable = 1\n",
        &format!("  tls_disable = 1\n{listener_extra}"),
        1,
    );
    std::fs::write(&node.config_path, format!("{config}{extra}")).unwrap();
    node.start();
    let address = node.address();
    let root_token = support::init_and_activate(http, &address);
    (node, root_token)
}

/// One sample of the exposition format.
#[derive(Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse Prometheus' text format (0.0.4) strictly: every sample's family has a `# TYPE`
/// line before it, labels are `name="value"` with escapes, values are numbers or NaN.
fn parse_exposition(text: &str) -> BTreeMap<String, Vec<Sample>> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "one TYPE per family: {line}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = if value == "NaN" {
            f64::NAN
        } else {
            value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"))
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (
                name,
                parse_labels(labels.strip_suffix('}').expect("closing brace")),
            ),
            None => (series, BTreeMap::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(*base).is_some_and(|kind| kind == "summary"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample before its TYPE line: {line}"
        );
        samples
            .entry(name.to_string())
            .or_default()
            .push(Sample { labels, value });
    }
    samples
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (index, '"') => break index,
                (_, other) => value.push(other),
            }
        };
        labels.insert(name.to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

fn single_value(samples: &BTreeMap<String, Vec<Sample>>, name: &str) -> f64 {
    let found = samples
        .get(name)
        .unwrap_or_else(|| panic!("no series {name}"));
    found
        .iter()
        .find(|sample| !sample.labels.contains_key("quantile"))
        .unwrap_or(&found[0])
        .value
}

/// Series exported only by a performance primary with secondaries, or a secondary.
const REPLICATION_ONLY_SERIES: &[&str] = &[
    "vault_replication_secondary_wal_lag",
    "vault_replication_wal_last_wal",
    "vault_replication_fsm_last_remote_wal",
];

/// The `vault_*` names in the `yaml` block of the alerts section of docs/metrics.md.
fn alert_rule_series() -> std::collections::BTreeSet<String> {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let alerts = &page[page.find("## Alerts").expect("an alerts section")..];
    let block_start = alerts.find("```yaml\n").expect("a yaml block of rules") + 8;
    let block = &alerts[block_start..];
    let block = &block[..block.find("```").expect("the block ends")];
    let mut names = std::collections::BTreeSet::new();
    let mut rest = block;
    while let Some(start) = rest.find("vault_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.insert(name);
    }
    assert!(names.len() >= 8, "{names:?}");
    names
}

#[test]
fn a_scrape_without_a_token_shows_the_traffic_in_prometheus_format() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let (node, root_token) = start_node(
        root.path(),
        &http,
        "  telemetry {\n    unauthenticated_metrics_access = true\n  }\n",
        "telemetry {\n  prometheus_retention_time = \"30s\"\n  disable_hostname = true\n}\n",
    );
    let address = node.address();
    let api = |method: &str, path: &str, body: Option<Value>| {
        call(
            &http,
            method,
            &address,
            path,
            Some(&root_token),
            body.as_ref(),
        )
        .unwrap()
    };
    assert_eq!(
        api("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"}))).0,
        204
    );
    for index in 0..5 {
        let (status, body) = api(
            "POST",
            &format!("secret/data/s{index}"),
            Some(json!({"data": {"v": index}})),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(api("GET", &format!("secret/data/s{index}"), None).0, 200);
    }
    assert_eq!(
        api("POST", "auth/token/create", Some(json!({"ttl": "1h"}))).0,
        200
    );

    let response = http
        .get(format!("{address}/v1/sys/metrics?format=prometheus"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let samples = parse_exposition(&response.text().unwrap());

    assert!(single_value(&samples, "vault_core_handle_request_count") >= 11.0);
    let p99 = samples["vault_core_handle_request"]
        .iter()
        .find(|sample| sample.labels.get("quantile").map(String::as_str) == Some("0.99"))
        .expect("a 0.99 quantile")
        .value;
    assert!(p99 > 0.0 && p99 < 60_000.0, "p99 {p99} ms");
    for (series, at_least) in [
        ("vault_barrier_put_count", 5.0),
        ("vault_barrier_get_count", 5.0),
        ("vault_raft_commitTime_count", 5.0),
        ("vault_raft_storage_fsync_count", 1.0),
        ("vault_raft_storage_entries_per_fsync_count", 1.0),
        ("vault_raft_storage_entries_per_fsync_sum", 5.0),
        ("vault_route_create_secret__count", 5.0),
        ("vault_route_read_secret__count", 5.0),
        ("vault_core_unsealed", 1.0),
        ("vault_core_active", 1.0),
        ("vault_raft_state_leader", 1.0),
        ("vault_token_count", 2.0),
        ("vault_raft_storage_stats_applied_index", 5.0),
    ] {
        let value = single_value(&samples, series);
        assert!(
            value >= at_least,
            "{series} = {value}, expected at least {at_least}"
        );
    }
    assert!(
        !samples.keys().any(|name| name.contains("localhost")),
        "disable_hostname"
    );
    // Every series the alert rules of docs/metrics.md name is one this scrape exports,
    // but for those only a replicating cluster has.
    for series in alert_rule_series() {
        assert!(
            samples.contains_key(&series) || REPLICATION_ONLY_SERIES.contains(&series.as_str()),
            "docs/metrics.md alerts on {series}, which the scrape does not export"
        );
    }

    // The JSON form, go-metrics' fields.
    let (status, body) = call(&http, "GET", &address, "sys/metrics", None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["Timestamp"].is_string());
    let unsealed = body["Gauges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|gauge| gauge["Name"] == "vault.core.unsealed")
        .expect("the unsealed gauge");
    assert_eq!(unsealed["Value"], 1.0);
    assert!(
        body["Samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|sample| sample["Name"] == "vault.raft.commitTime"
                && sample["Count"].as_u64() >= Some(5))
    );
    let (status, body) =
        call(&http, "GET", &address, "sys/metrics?format=xml", None, None).unwrap();
    assert_eq!(status, 400, "{body}");
}

#[test]
fn without_unauthenticated_access_a_token_is_needed_and_zero_retention_turns_prometheus_off() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let (node, root_token) = start_node(
        root.path(),
        &http,
        "",
        "telemetry {\n  prometheus_retention_time = 0\n}\n",
    );
    let address = node.address();
    let (status, _) = call(&http, "GET", &address, "sys/metrics", None, None).unwrap();
    assert_eq!(status, 403, "a token is needed");
    let (status, body) = call(
        &http,
        "GET",
        &address,
        "sys/metrics",
        Some(&root_token),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["Gauges"].is_array());
    let (status, body) = call(
        &http,
        "GET",
        &address,
        "sys/metrics?format=prometheus",
        Some(&root_token),
        None,
    )
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0], "prometheus is not enabled");
}
