use std::time::Duration;

use super::render::{self, prometheus_name, quantile};
use super::*;

fn labelled(name: &'static str, labels: &[(&'static str, &str)]) -> SeriesKey {
    SeriesKey {
        name: Cow::Borrowed(name),
        labels: labels
            .iter()
            .map(|(name, value)| (*name, value.to_string()))
            .collect(),
    }
}

#[test]
fn series_render_in_the_exposition_format_grouped_by_name() {
    let metrics = Metrics::default();
    let start = crate::env::Clock::system().now();
    for millis in 1..=100 {
        metrics.observe(
            SeriesKey::plain("vault.core.handle_request"),
            millis as f64,
            start,
        );
    }
    metrics.incr(labelled("vault.route.read", &[("mount", "secret/")]), 1.0);
    metrics.incr(labelled("vault.route.read", &[("mount", "secret/")]), 1.0);
    metrics.incr(labelled("vault.route.read", &[("mount", "kv\"x/")]), 1.0);
    metrics.set_gauge(SeriesKey::plain("vault.core.unsealed"), 1.0);
    let text = render::prometheus(&metrics.snapshot(), start, DEFAULT_RETENTION, None);
    assert!(text.contains("# TYPE vault_core_handle_request summary\n"));
    assert!(text.contains("vault_core_handle_request{quantile=\"0.5\"} 50\n"));
    assert!(text.contains("vault_core_handle_request{quantile=\"0.99\"} 99\n"));
    assert!(text.contains("vault_core_handle_request_sum 5050\n"));
    assert!(text.contains("vault_core_handle_request_count 100\n"));
    assert_eq!(text.matches("# TYPE vault_route_read counter").count(), 1);
    assert!(text.contains("vault_route_read{mount=\"secret/\"} 2\n"));
    assert!(text.contains("vault_route_read{mount=\"kv\\\"x/\"} 1\n"));
    assert!(text.contains("# TYPE vault_core_unsealed gauge\nvault_core_unsealed 1\n"));
}

#[test]
fn old_observations_leave_the_quantiles_but_not_the_totals() {
    let metrics = Metrics::default();
    metrics.set_retention(Duration::from_secs(60));
    let start = crate::env::Clock::system().now();
    let key = || SeriesKey::plain("vault.barrier.get");
    metrics.observe(key(), 1000.0, start);
    let later = start + Duration::from_secs(120);
    metrics.observe(key(), 2.0, later);
    let text = render::prometheus(&metrics.snapshot(), later, metrics.retention(), None);
    assert!(
        text.contains("vault_barrier_get{quantile=\"0.99\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("vault_barrier_get_count 2\n"));
    let json = render::json(&metrics.snapshot(), later, metrics.retention(), None, "t");
    assert_eq!(json["Samples"][0]["Max"], 2.0);
}

#[test]
fn the_window_and_the_series_count_are_bounded() {
    let metrics = Metrics::default();
    let now = crate::env::Clock::system().now();
    for value in 0..(SAMPLE_WINDOW_MAX + 10) {
        metrics.observe(SeriesKey::plain("x"), value as f64, now);
    }
    let Series::Sample(samples) = &metrics.snapshot()[&SeriesKey::plain("x")] else {
        panic!("a sample series");
    };
    assert_eq!(samples.window.len(), SAMPLE_WINDOW_MAX);
    assert_eq!(samples.count as usize, SAMPLE_WINDOW_MAX + 10);
    for index in 0..SERIES_MAX + 5 {
        metrics.incr(labelled("many", &[("i", &index.to_string())]), 1.0);
    }
    assert_eq!(metrics.snapshot().len(), SERIES_MAX);
}

#[test]
fn names_and_quantiles() {
    assert_eq!(
        prometheus_name("vault.raft-storage.get"),
        "vault_raft_storage_get"
    );
    assert_eq!(prometheus_name("9lives"), "_9lives");
    assert!(quantile(&[], 0.5).is_nan());
    assert_eq!(quantile(&[3.0], 0.99), 3.0);
    assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
}

#[test]
fn the_json_form_has_go_metrics_fields() {
    let metrics = Metrics::default();
    let now = crate::env::Clock::system().now();
    metrics.set_gauge(SeriesKey::plain("vault.token.count"), 3.0);
    metrics.incr(SeriesKey::plain("vault.raft.state.leader"), 1.0);
    metrics.observe(SeriesKey::plain("vault.raft.commitTime"), 4.0, now);
    metrics.observe(SeriesKey::plain("vault.raft.commitTime"), 6.0, now);
    let json = render::json(
        &metrics.snapshot(),
        now,
        DEFAULT_RETENTION,
        None,
        "2026-12-02T00:00:00Z",
    );
    assert_eq!(json["Gauges"][0]["Name"], "vault.token.count");
    assert_eq!(json["Gauges"][0]["Value"], 3.0);
    assert_eq!(json["Counters"][0]["Count"], 1);
    let sample = &json["Samples"][0];
    assert_eq!(sample["Count"], 2);
    assert_eq!(sample["Mean"], 5.0);
    assert_eq!(sample["Min"], 4.0);
    assert!(json["Points"].as_array().unwrap().is_empty());
}

#[test]
fn gauges_carry_the_host_name_unless_it_is_disabled() {
    let metrics = Metrics::default();
    let now = crate::env::Clock::system().now();
    metrics.set_gauge(SeriesKey::plain("vault.core.unsealed"), 1.0);
    metrics.observe(SeriesKey::plain("vault.barrier.get"), 1.0, now);
    let text = render::prometheus(&metrics.snapshot(), now, DEFAULT_RETENTION, Some("db-1"));
    assert!(text.contains("vault_db_1_core_unsealed 1\n"), "{text}");
    assert!(
        text.contains("vault_barrier_get_count 1\n"),
        "samples keep their name"
    );
}
