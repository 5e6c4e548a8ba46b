//! Per-stage timings of a request, for finding where a write's time goes (issue 11).
//!
//! Each stage is a `tracing` span at TRACE level with the target [`TARGET`] and a
//! name `arca.stage.<stage>` (e.g. `arca.stage.token.lookup`). Off (the default) a
//! stage costs what a disabled TRACE callsite costs: one load of tracing's global
//! maximum level. On (`ARCA_STAGE_TIMINGS=1` in the server's environment), the server's
//! log installs [`StageLayer`], which times each stage span from its creation to its
//! close with the seam's clock and records it as a sample series of the same name in
//! the node's [`super::Metrics`], so `GET sys/metrics` (JSON or Prometheus) shows
//! count, sum and quantiles per stage. Stages nest (a token lookup includes the
//! barrier reads it makes): they are not a partition of the request's time.
//!
//! The layer records into the first node's telemetry [`attach`]ed in the process: a
//! server process has one node; in-process test clusters never turn it on.

use std::sync::OnceLock;
use std::time::Instant;

use tracing::span;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::{SeriesKey, Telemetry};

/// The target every stage span carries.
pub const TARGET: &str = "arca::stage";
/// The environment variable that turns stage timings on (`1` or `true`).
pub const ENABLE_VARIABLE: &str = "ARCA_STAGE_TIMINGS";

static SINK: OnceLock<Telemetry> = OnceLock::new();

/// Where stage timings go from now on (the node's clock and metrics). Only the first
/// call takes effect.
pub fn attach(telemetry: Telemetry) {
    let _ = SINK.set(telemetry);
}

/// Whether a value of [`ENABLE_VARIABLE`] turns stage timings on.
pub fn enabled_by(value: Option<&str>) -> bool {
    matches!(value.map(str::trim), Some("1" | "true" | "TRUE" | "True"))
}

/// When a stage span began.
struct StageStart(Instant);

/// Times stage spans (filter it to [`TARGET`]; see [`layer`]).
pub struct StageLayer;

/// The layer with its filter: stage spans only, every other callsite never enabled.
pub fn layer<S>() -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    StageLayer.with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.target() == TARGET
    }))
}

impl<S> Layer<S> for StageLayer
where
    S: tracing::Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(
        &self,
        _attributes: &span::Attributes<'_>,
        id: &span::Id,
        context: Context<'_, S>,
    ) {
        let (Some(telemetry), Some(span)) = (SINK.get(), context.span(id)) else {
            return;
        };
        span.extensions_mut().insert(StageStart(telemetry.now()));
    }

    fn on_close(&self, id: span::Id, context: Context<'_, S>) {
        let (Some(telemetry), Some(span)) = (SINK.get(), context.span(&id)) else {
            return;
        };
        let Some(started) = span.extensions().get::<StageStart>().map(|start| start.0) else {
            return;
        };
        telemetry.metrics.measure_since(
            SeriesKey::plain(span.metadata().name()),
            started,
            telemetry.now(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Series;
    use tracing_subscriber::prelude::*;

    #[test]
    fn stage_spans_are_timed_into_the_metrics_and_other_spans_are_not() {
        attach(Telemetry {
            clock: crate::env::Clock::system(),
            metrics: Default::default(),
        });
        // The first attach in the process wins; read back whichever it was.
        let metrics = SINK.get().expect("attached").metrics.clone();
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                let _stage = tracing::trace_span!(target: TARGET, "arca.stage.test_only").entered();
            }
            let _other = tracing::trace_span!("arca.stage.test_not_a_stage").entered();
        });
        let snapshot = metrics.snapshot();
        match snapshot.get(&SeriesKey::plain("arca.stage.test_only")) {
            Some(Series::Sample(samples)) => assert_eq!(samples.count, 3),
            other => panic!("no stage series: {other:?}"),
        }
        assert!(
            !snapshot.contains_key(&SeriesKey::plain("arca.stage.test_not_a_stage")),
            "a span of another target was timed"
        );
    }

    #[test]
    fn the_switch_takes_one_or_true_only() {
        assert!(enabled_by(Some("1")));
        assert!(enabled_by(Some("true")));
        assert!(!enabled_by(Some("0")));
        assert!(!enabled_by(Some("")));
        assert!(!enabled_by(None));
    }
}
