//! `GET sys/metrics`: this node's telemetry, as JSON (go-metrics' in-memory form, what
//! Vault answers by default) or with `format=prometheus` in Prometheus' text format.
//! With the listener's `unauthenticated_metrics_access` every node answers for itself
//! without a token; otherwise the request is an ordinary `sys/` read (a token with
//! `read` on `sys/metrics`), which a standby forwards like any other, so the active
//! node answers it, as in Vault without performance standbys.
//!
//! Gauges that describe state (seal, leadership, Raft indexes, token and lease counts,
//! replication positions) are read when scraped, not kept up to date on every change.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Core;
use crate::http::ApiResponse;
use crate::logical::LogicalError;
use crate::metrics::{SeriesKey, render};

/// A `sys/metrics` body.
pub enum MetricsBody {
    Json(Value),
    Prometheus(String),
}

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Core {
    /// Whether `sys/metrics` answers without a token on this node.
    pub(super) fn metrics_unauthenticated(&self) -> bool {
        self.env.metrics.settings().unauthenticated_access
    }

    /// The answer to `GET sys/metrics` with `query`, as the node answers it directly.
    pub(crate) fn metrics_answer(
        &self,
        query: &BTreeMap<String, String>,
    ) -> Result<ApiResponse, LogicalError> {
        Ok(match self.metrics_body(query)? {
            MetricsBody::Json(value) => ApiResponse::json(200, &value),
            MetricsBody::Prometheus(text) => ApiResponse {
                status: 200,
                body: text.into(),
                headers: vec![(
                    "Content-Type".to_string(),
                    PROMETHEUS_CONTENT_TYPE.to_string(),
                )],
                stream: None,
            },
        })
    }

    /// The metrics in the format `query` asks for (`format=prometheus`, or JSON).
    pub(crate) fn metrics_body(
        &self,
        query: &BTreeMap<String, String>,
    ) -> Result<MetricsBody, LogicalError> {
        let format = query.get("format").map(String::as_str).unwrap_or("");
        let settings = self.env.metrics.settings();
        if !matches!(format, "" | "json" | "prometheus") {
            return Err(LogicalError::BadRequest(format!(
                "metric response format {format:?} unknown"
            )));
        }
        if format == "prometheus" && settings.retention.is_zero() {
            return Err(LogicalError::BadRequest("prometheus is not enabled".into()));
        }
        self.refresh_state_gauges();
        let now = self.env.clock.now();
        let snapshot = self.env.metrics.snapshot();
        let hostname = settings.hostname.as_deref();
        if format == "prometheus" {
            return Ok(MetricsBody::Prometheus(render::prometheus(
                &snapshot,
                now,
                settings.retention,
                hostname,
            )));
        }
        let timestamp = crate::util::rfc3339(self.env.clock.unix_millis());
        Ok(MetricsBody::Json(render::json(
            &snapshot,
            now,
            settings.retention,
            hostname,
            &timestamp,
        )))
    }

    fn refresh_state_gauges(&self) {
        let set = |name: &'static str, value: f64| {
            self.env.metrics.set_gauge(SeriesKey::plain(name), value);
        };
        let unsealed = self.is_initialized() && !self.is_sealed();
        set("vault.core.unsealed", f64::from(u8::from(unsealed)));
        set(
            "vault.core.active",
            f64::from(u8::from(unsealed && self.cluster.is_leader())),
        );
        let indexes = self.cluster.indexes();
        set(
            "vault.raft_storage.stats.commit_index",
            indexes.committed as f64,
        );
        set(
            "vault.raft_storage.stats.applied_index",
            indexes.applied as f64,
        );
        set("vault.raft.term", indexes.term as f64);
        if !unsealed {
            return;
        }
        if let Some(logical) = self.logical() {
            for (name, value) in logical.usage_gauges() {
                set(name, value);
            }
        }
        if let Some(replication) = self.replication() {
            self.replication_gauges(&replication.status());
        }
    }

    /// WAL positions from the replication status: the primary's last WAL and each
    /// secondary's distance behind it; a secondary's last applied remote WAL.
    fn replication_gauges(&self, status: &Value) {
        let metrics = &self.env.metrics;
        let number = |value: &Value| value.as_u64().map(|number| number as f64);
        let mode = status["mode"].as_str().unwrap_or("disabled").to_string();
        metrics.set_gauge(
            SeriesKey {
                name: "vault.replication.performance.mode".into(),
                labels: vec![("mode", mode)],
            },
            1.0,
        );
        if let Some(last_wal) = number(&status["last_wal"]) {
            metrics.set_gauge(SeriesKey::plain("vault.replication.wal.last_wal"), last_wal);
            for secondary in status["secondaries"].as_array().into_iter().flatten() {
                let (Some(id), Some(position)) = (
                    secondary["node_id"].as_str(),
                    number(&secondary["last_remote_wal"]),
                ) else {
                    continue;
                };
                metrics.set_gauge(
                    SeriesKey {
                        name: "vault.replication.secondary.wal_lag".into(),
                        labels: vec![("secondary_id", id.to_string())],
                    },
                    (last_wal - position).max(0.0),
                );
            }
        }
        if let Some(position) = number(&status["last_remote_wal"]) {
            metrics.set_gauge(
                SeriesKey::plain("vault.replication.fsm.last_remote_wal"),
                position,
            );
        }
    }
}
