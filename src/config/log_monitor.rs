//! The server's log lines, fanned out to `sys/monitor` streams.
//!
//! [`MonitorLayer`] is one more layer of the process's `tracing` subscriber, beside the
//! stderr layer. Each monitor subscribes with its own level and format and gets a
//! bounded queue of formatted lines ([`MONITOR_BUFFER_LINES`]): a monitor that reads
//! slower than the server logs loses lines, counted and announced in its stream, and
//! never slows the server. At most [`MONITORS_MAX`] monitors stream at once.
//!
//! The layer carries its own filter ([`MonitorFilter`]): while no monitor listens it is
//! interested in nothing, so an idle server pays nothing for it; when monitors come and
//! go the callsite interest is rebuilt. The server's own level applies to its stderr
//! layer only, so a `log_level=debug` monitor sees debug lines of a server that logs at
//! info.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::{Context, Filter, Layer};

use super::LogFormat;

/// Monitors streaming at once; one more is refused.
pub const MONITORS_MAX: usize = 64;
/// Lines queued for one monitor; beyond this its newest lines are dropped.
pub const MONITOR_BUFFER_LINES: usize = 512;

/// A monitor that could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    #[error("too many monitors: at most {MONITORS_MAX} may stream at once")]
    TooMany,
}

struct Monitor {
    level: LevelFilter,
    format: LogFormat,
    lines: tokio::sync::mpsc::Sender<String>,
    /// Lines lost since the last one delivered (the queue was full).
    dropped: u64,
}

/// Every monitor of this process (the `tracing` subscriber is the process's too).
pub struct LogMonitors {
    monitors: Mutex<BTreeMap<u64, Monitor>>,
    next_id: AtomicU64,
    /// The most detailed level any monitor asks for, as [`level_rank`]; 0 for none.
    level_max: AtomicU8,
}

static MONITORS: LogMonitors = LogMonitors {
    monitors: Mutex::new(BTreeMap::new()),
    next_id: AtomicU64::new(1),
    level_max: AtomicU8::new(0),
};

/// The process's monitors.
pub fn monitors() -> &'static LogMonitors {
    &MONITORS
}

/// One monitor's stream of formatted lines (each ends with a newline). Dropping it
/// ends the monitor.
pub struct Subscription {
    id: u64,
    owner: &'static LogMonitors,
    pub lines: tokio::sync::mpsc::Receiver<String>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.owner.unsubscribe(self.id);
    }
}

fn level_rank(level: LevelFilter) -> u8 {
    match level.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(Level::TRACE) => 5,
    }
}

fn rank_level(rank: u8) -> LevelFilter {
    match rank {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Whether a monitor at `level` gets `metadata`'s events. openraft's lines below warn
/// are left out below trace, as the server's own log leaves them out: they describe
/// every election and replication step.
fn wanted(level: LevelFilter, metadata: &Metadata<'_>) -> bool {
    if metadata.target().starts_with("openraft") && level < LevelFilter::TRACE {
        return *metadata.level() <= Level::WARN && level >= *metadata.level();
    }
    level >= *metadata.level()
}

impl LogMonitors {
    /// Start a monitor of lines at `level` and above, formatted as `format`.
    pub fn subscribe(
        &'static self,
        level: LevelFilter,
        format: LogFormat,
    ) -> Result<Subscription, MonitorError> {
        let (sender, receiver) = tokio::sync::mpsc::channel(MONITOR_BUFFER_LINES);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut monitors = self.lock();
            if monitors.len() >= MONITORS_MAX {
                return Err(MonitorError::TooMany);
            }
            monitors.insert(
                id,
                Monitor {
                    level,
                    format,
                    lines: sender,
                    dropped: 0,
                },
            );
            self.update_level_max(&monitors);
        }
        tracing::callsite::rebuild_interest_cache();
        Ok(Subscription {
            id,
            owner: self,
            lines: receiver,
        })
    }

    /// How many monitors stream now.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn unsubscribe(&self, id: u64) {
        {
            let mut monitors = self.lock();
            monitors.remove(&id);
            self.update_level_max(&monitors);
        }
        tracing::callsite::rebuild_interest_cache();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Monitor>> {
        self.monitors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update_level_max(&self, monitors: &BTreeMap<u64, Monitor>) {
        let rank = monitors
            .values()
            .map(|monitor| level_rank(monitor.level))
            .max()
            .unwrap_or(0);
        self.level_max.store(rank, Ordering::Relaxed);
    }

    fn level_max(&self) -> LevelFilter {
        rank_level(self.level_max.load(Ordering::Relaxed))
    }

    /// Format `event` once per format asked for and queue it for every monitor that
    /// wants it, without waiting: a full queue loses the line.
    fn publish(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut monitors = self.lock();
        let (mut standard, mut json) = (None, None);
        for monitor in monitors.values_mut() {
            if !wanted(monitor.level, metadata) {
                continue;
            }
            let line = match monitor.format {
                LogFormat::Standard => standard.get_or_insert_with(|| standard_line(event)),
                LogFormat::Json => json.get_or_insert_with(|| json_line(event)),
            };
            if monitor.dropped > 0 {
                let notice = format!(
                    "[monitor] {} log lines were dropped: this monitor read slower than the server logged\n",
                    monitor.dropped
                );
                if monitor.lines.try_send(notice).is_err() {
                    monitor.dropped += 1;
                    continue;
                }
                monitor.dropped = 0;
            }
            if monitor.lines.try_send(line.clone()).is_err() {
                monitor.dropped += 1;
            }
        }
    }
}

/// The layer that feeds [`LogMonitors`]; add it with [`MonitorFilter`].
pub struct MonitorLayer;

impl<S: Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        monitors().publish(event);
    }
}

/// Passes what at least one monitor wants, and nothing while none listens.
pub struct MonitorFilter;

impl<S> Filter<S> for MonitorFilter {
    fn enabled(&self, metadata: &Metadata<'_>, _context: &Context<'_, S>) -> bool {
        wanted(monitors().level_max(), metadata)
    }

    fn callsite_enabled(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // `sometimes`: the answer changes as monitors come and go (the interest cache
        // is rebuilt then, but a callsite registered meanwhile must not be cached).
        if wanted(monitors().level_max(), metadata) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(monitors().level_max())
    }
}

fn timestamp() -> String {
    let mut text = String::new();
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut text));
    text
}

/// Vault's standard (hclog) line: `TIME [LEVEL]  target: message: key=value ...`.
pub fn standard_line(event: &Event<'_>) -> String {
    let metadata = event.metadata();
    let mut fields = JsonFields::default();
    event.record(&mut fields);
    let message = match fields.0.remove("message") {
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let level = format!("[{}]", metadata.level().as_str());
    let mut line = format!("{} {level:<8}{}: {message}", timestamp(), metadata.target());
    if !fields.0.is_empty() {
        line.push(':');
        for (key, value) in &fields.0 {
            match value {
                Value::String(text) if !text.contains(char::is_whitespace) => {
                    let _ = write!(line, " {key}={text}");
                }
                other => {
                    let _ = write!(line, " {key}={other}");
                }
            }
        }
    }
    line.push('\n');
    line
}

/// Vault's JSON line: `@level`, `@message`, `@module`, `@timestamp`, then the fields.
pub fn json_line(event: &Event<'_>) -> String {
    let mut line = serde_json::to_string(&json_object(event, timestamp())).unwrap_or_default();
    line.push('\n');
    line
}

/// An event as the JSON object Vault's JSON logs carry, stamped with `timestamp`.
pub fn json_object(event: &Event<'_>, timestamp: String) -> Map<String, Value> {
    let metadata = event.metadata();
    let mut object = Map::new();
    object.insert(
        "@level".into(),
        Value::from(metadata.level().as_str().to_ascii_lowercase()),
    );
    object.insert("@module".into(), Value::from(metadata.target()));
    object.insert("@timestamp".into(), Value::from(timestamp));
    let mut fields = JsonFields::default();
    event.record(&mut fields);
    let message = fields.0.remove("message").unwrap_or(Value::from(""));
    object.insert("@message".into(), message);
    for (key, value) in fields.0 {
        object.entry(key).or_insert(value);
    }
    object
}

/// An event's fields as JSON values, in name order.
#[derive(Default)]
struct JsonFields(BTreeMap<String, Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn monitors_get_their_level_and_a_full_queue_drops_lines() {
        let subscriber =
            tracing_subscriber::registry().with(MonitorLayer.with_filter(MonitorFilter));
        tracing::subscriber::with_default(subscriber, || {
            let mut debug = monitors()
                .subscribe(LevelFilter::DEBUG, LogFormat::Json)
                .unwrap();
            let mut warn = monitors()
                .subscribe(LevelFilter::WARN, LogFormat::Standard)
                .unwrap();
            tracing::debug!(path = "secret/x", "a debug line");
            tracing::warn!("a warning");
            let first: Value = serde_json::from_str(&debug.lines.try_recv().unwrap()).unwrap();
            assert_eq!(first["@level"], "debug");
            assert_eq!(first["@message"], "a debug line");
            assert_eq!(first["path"], "secret/x");
            assert!(debug.lines.try_recv().unwrap().contains("a warning"));
            // The warn monitor never saw the debug line.
            let line = warn.lines.try_recv().unwrap();
            assert!(
                line.contains("[WARN]") && line.ends_with("a warning\n"),
                "{line}"
            );
            assert!(warn.lines.try_recv().is_err());

            // Nobody reads the debug monitor: past its buffer, lines are lost, and the
            // next line delivered says how many.
            for index in 0..MONITOR_BUFFER_LINES + 10 {
                tracing::debug!(index, "flood");
            }
            let mut received = 0;
            while debug.lines.try_recv().is_ok() {
                received += 1;
            }
            assert_eq!(received, MONITOR_BUFFER_LINES);
            tracing::debug!("after the flood");
            let notice = debug.lines.try_recv().unwrap();
            assert!(notice.contains("10 log lines were dropped"), "{notice}");
            drop(debug);
            drop(warn);
        });

        // No more than the maximum at once (one test: the monitors are the process's).
        let held: Vec<Subscription> = (0..MONITORS_MAX - monitors().count())
            .map(|_| {
                monitors()
                    .subscribe(LevelFilter::INFO, LogFormat::Standard)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            monitors()
                .subscribe(LevelFilter::INFO, LogFormat::Standard)
                .unwrap_err(),
            MonitorError::TooMany
        );
        drop(held);
    }
}
