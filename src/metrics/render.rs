//! The two forms `GET sys/metrics` answers in, from a [`super::Metrics::snapshot`]:
//! Prometheus' text exposition format (version 0.0.4) and the JSON of go-metrics'
//! in-memory sink that Vault returns without `format=prometheus`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Series, SeriesKey};

/// A series' name as rendered: gauges carry the host name after the service name
/// (`vault.<host>.core.unsealed`), as go-metrics names them unless `disable_hostname`.
fn rendered_name<'a>(key: &'a SeriesKey, series: &Series, hostname: Option<&str>) -> Cow<'a, str> {
    match (series, hostname) {
        (Series::Gauge { .. }, Some(host)) => match key.name.strip_prefix("vault.") {
            Some(rest) => Cow::Owned(format!("vault.{host}.{rest}")),
            None => Cow::Owned(format!("{host}.{}", key.name)),
        },
        _ => Cow::Borrowed(&key.name),
    }
}

/// The quantiles a sample series reports, as Vault's Prometheus sink does.
pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// The Prometheus form of a dotted name: `vault.core.handle_request` →
/// `vault_core_handle_request` (anything outside `[a-zA-Z0-9_:]` becomes `_`).
pub fn prometheus_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(name, value)| {
            format!(
                "{}=\"{}\"",
                prometheus_name(name),
                escape_label_value(value)
            )
        })
        .collect();
    if let Some((name, value)) = extra {
        parts.push(format!("{name}=\"{value}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Prometheus' number format: integers without a fraction, `NaN` for an empty quantile.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The `q` quantile of sorted `values` (nearest rank), `NaN` when there are none.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// The text exposition format. Series of one name are grouped under one `# TYPE` line
/// (the snapshot is ordered by name, then labels).
pub fn prometheus(
    snapshot: &BTreeMap<SeriesKey, Series>,
    now: Instant,
    retention: Duration,
    hostname: Option<&str>,
) -> String {
    let mut out = String::new();
    let mut last_name: Option<String> = None;
    for (key, series) in snapshot {
        let dotted = rendered_name(key, series, hostname);
        let name = prometheus_name(&dotted);
        if last_name.as_deref() != Some(name.as_str()) {
            let kind = match series {
                Series::Counter { .. } => "counter",
                Series::Gauge { .. } => "gauge",
                Series::Sample(_) => "summary",
            };
            let _ = writeln!(out, "# HELP {name} {dotted}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            last_name = Some(name.clone());
        }
        match series {
            Series::Counter { total, .. } => {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    label_text(&key.labels, None),
                    number(*total)
                );
            }
            Series::Gauge { value, .. } => {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    label_text(&key.labels, None),
                    number(*value)
                );
            }
            Series::Sample(samples) => {
                let recent = samples.recent_sorted(now, retention);
                for q in QUANTILES {
                    let labels = label_text(&key.labels, Some(("quantile", q.to_string())));
                    let _ = writeln!(out, "{name}{labels} {}", number(quantile(&recent, q)));
                }
                let labels = label_text(&key.labels, None);
                let _ = writeln!(out, "{name}_sum{labels} {}", number(samples.sum));
                let _ = writeln!(out, "{name}_count{labels} {}", samples.count);
            }
        }
    }
    out
}

/// go-metrics' in-memory sink as Vault answers it: `Timestamp`, `Gauges`, `Points`,
/// `Counters` and `Samples`. A counter's `Count` is its calls and `Sum` their total; a
/// sample's aggregates cover its observations within the retention time.
pub fn json(
    snapshot: &BTreeMap<SeriesKey, Series>,
    now: Instant,
    retention: Duration,
    hostname: Option<&str>,
    timestamp: &str,
) -> Value {
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    let mut samples_out = Vec::new();
    for (key, series) in snapshot {
        let labels: Map<String, Value> = key
            .labels
            .iter()
            .map(|(name, value)| (name.to_string(), Value::from(value.clone())))
            .collect();
        match series {
            Series::Gauge { value, .. } => gauges.push(json!({
                "Name": rendered_name(key, series, hostname),
                "Value": value,
                "Labels": labels,
            })),
            Series::Counter {
                total, increments, ..
            } => counters.push(json!({
                "Name": key.name,
                "Count": increments,
                "Rate": 0.0,
                "Sum": total,
                "Min": 1.0,
                "Max": 1.0,
                "Mean": if *increments == 0 { 0.0 } else { total / *increments as f64 },
                "Stddev": 0.0,
                "Labels": labels,
            })),
            Series::Sample(samples) => {
                let recent = samples.recent_sorted(now, retention);
                let count = recent.len();
                let sum: f64 = recent.iter().sum();
                let mean = if count == 0 { 0.0 } else { sum / count as f64 };
                let variance = if count < 2 {
                    0.0
                } else {
                    recent
                        .iter()
                        .map(|value| (value - mean).powi(2))
                        .sum::<f64>()
                        / (count - 1) as f64
                };
                samples_out.push(json!({
                    "Name": key.name,
                    "Count": count,
                    "Rate": sum / retention.as_secs_f64().max(1.0),
                    "Sum": sum,
                    "Min": recent.first().copied().unwrap_or(0.0),
                    "Max": recent.last().copied().unwrap_or(0.0),
                    "Mean": mean,
                    "Stddev": variance.sqrt(),
                    "Labels": labels,
                }));
            }
        }
    }
    json!({
        "Timestamp": timestamp,
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": samples_out,
    })
}
