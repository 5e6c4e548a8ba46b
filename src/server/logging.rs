//! The server's log: Vault's levels and its two formats, with a level a SIGHUP can change.
//!
//! `ARCA_LOG` (a `tracing` filter such as `info,arca::channel=debug`) overrides the level
//! for debugging and pins it: a SIGHUP then leaves the filter alone. The JSON format uses
//! the keys Vault's JSON logs carry (`@level`, `@message`, `@module`, `@timestamp`), so
//! log pipelines written for Vault read Arca's lines; other fields sit beside them.

use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogFormat;
use crate::config::log_monitor::{MonitorFilter, MonitorLayer, json_object};

/// The variable that overrides (and pins) the filter.
pub const FILTER_VARIABLE: &str = "ARCA_LOG";
/// The level when neither the configuration nor a flag names one.
pub const DEFAULT_LEVEL: &str = "info";

/// The installed log's handle: the level can change while the server runs.
pub struct Logging {
    filter: Option<reload::Handle<EnvFilter, Registry>>,
    pinned_by_environment: bool,
    level: std::sync::Mutex<String>,
}

/// Install the process's log (once; a second call only returns a handle that changes
/// nothing). `level` is a level [`crate::config::parse_log_level`] accepted.
pub fn init(level: &str, format: LogFormat) -> Logging {
    let from_environment = EnvFilter::try_from_env(FILTER_VARIABLE).ok();
    let pinned_by_environment = from_environment.is_some();
    let filter = from_environment.unwrap_or_else(|| level_filter(level));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Standard => Box::new(
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(std::io::stderr),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .event_format(VaultJson)
                .with_writer(std::io::stderr),
        ),
    };
    // The level filters the stderr layer only: `sys/monitor` streams carry their own
    // level, which may be more detailed than the server's.
    // Stage timings (issue 11) only when asked for: off, no stage span is ever enabled.
    let stages = crate::metrics::stages::enabled_by(
        std::env::var(crate::metrics::stages::ENABLE_VARIABLE)
            .ok()
            .as_deref(),
    );
    let installed = tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        .with(MonitorLayer.with_filter(MonitorFilter))
        .with(stages.then(crate::metrics::stages::layer))
        .try_init()
        .is_ok();
    Logging {
        filter: installed.then_some(handle),
        pinned_by_environment,
        level: std::sync::Mutex::new(level.to_string()),
    }
}

fn level_filter(level: &str) -> EnvFilter {
    // openraft's info lines describe every election and membership step; they drown
    // the server's own at the default level.
    EnvFilter::new(format!("{level},openraft=warn"))
}

impl Logging {
    /// Log at `level` from now on (a SIGHUP that found a new `log_level`). Returns
    /// whether the filter changed.
    pub fn set_level(&self, level: &str) -> bool {
        let mut current = self
            .level
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current == level {
            return false;
        }
        if self.pinned_by_environment {
            tracing::info!(
                level,
                "log_level changed in the configuration; {FILTER_VARIABLE} is set and keeps its filter"
            );
            return false;
        }
        let Some(handle) = &self.filter else {
            return false;
        };
        match handle.reload(level_filter(level)) {
            Ok(()) => {
                *current = level.to_string();
                tracing::info!(level, "log level changed");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "could not change the log level");
                false
            }
        }
    }
}

/// One JSON object per line, with Vault's keys.
struct VaultJson;

impl<S, N> FormatEvent<S, N> for VaultJson
where
    S: tracing::Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut timestamp = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let object = json_object(event, timestamp);
        let line = serde_json::to_string(&object).map_err(|_| std::fmt::Error)?;
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}
