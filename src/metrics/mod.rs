//! [`Metrics`]: the node's telemetry, with Vault's metric names where Vault has them, read
//! by `GET sys/metrics` as JSON (go-metrics' in-memory form, which Vault answers) or in
//! Prometheus' text exposition format.
//!
//! Three kinds, as go-metrics has them: counters (`incr`), gauges (`set_gauge`) and
//! samples (`measure`, a duration in milliseconds), kept per series (a name and sorted
//! labels) in a `BTreeMap`, so rendering order never depends on hashing; each series
//! has its own lock, and the map is only written when a series first appears. A sample series
//! keeps its count and sum since start and the values of the last
//! [`SAMPLE_WINDOW_MAX`] observations within the retention time, from which the
//! quantiles are computed at scrape time: recording is a lookup, a lock and a push.
//!
//! Time comes from the caller (the seam's clock), so the simulator's runs stay
//! deterministic; nothing here reads a clock itself.

pub mod render;
pub mod stages;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Observations kept per sample series for quantiles (older ones still count in the
/// series' count and sum).
pub const SAMPLE_WINDOW_MAX: usize = 2048;
/// Series kept at most; a new series beyond it is dropped (labels come from mount paths
/// and operations, a bounded set, but the bound must not rest on that).
pub const SERIES_MAX: usize = 4096;
/// Vault's default `prometheus_retention_time`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// A metric's name and labels, e.g. `vault.core.handle_request`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub name: Cow<'static, str>,
    pub labels: Vec<(&'static str, String)>,
}

impl SeriesKey {
    pub fn plain(name: &'static str) -> Self {
        Self {
            name: Cow::Borrowed(name),
            labels: Vec::new(),
        }
    }
}

/// What one series holds.
#[derive(Debug, Clone)]
pub enum Series {
    /// `increments` counts the calls, `total` adds their amounts (go-metrics' Count and
    /// Sum).
    Counter {
        total: f64,
        increments: u64,
    },
    Gauge {
        value: f64,
    },
    Sample(Samples),
}

#[derive(Debug, Clone)]
pub struct Samples {
    pub count: u64,
    pub sum: f64,
    /// Recent observations with when they were made, oldest first.
    pub window: VecDeque<(Instant, f64)>,
}

impl Samples {
    /// The recent observations (within `retention` of `now`), sorted.
    pub fn recent_sorted(&self, now: Instant, retention: Duration) -> Vec<f64> {
        let mut values: Vec<f64> = self
            .window
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= retention)
            .map(|(_, value)| *value)
            .collect();
        values.sort_by(f64::total_cmp);
        values
    }
}

/// The node's metrics; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    series: RwLock<BTreeMap<SeriesKey, Arc<Mutex<Series>>>>,
    settings: Mutex<Settings>,
    /// `settings.retention` in nanoseconds, read on every observation without a lock.
    retention_nanos: AtomicU64,
}

/// The `telemetry` stanza and the listener's `unauthenticated_metrics_access`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `prometheus_retention_time`; zero turns the Prometheus format off.
    pub retention: Duration,
    /// `sys/metrics` answers without a token.
    pub unauthenticated_access: bool,
    /// Gauges are named `vault.<host>.…`, as go-metrics does unless
    /// `disable_hostname` is set.
    pub hostname: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retention: DEFAULT_RETENTION,
            unauthenticated_access: false,
            hostname: None,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            series: RwLock::new(BTreeMap::new()),
            settings: Mutex::new(Settings::default()),
            retention_nanos: AtomicU64::new(DEFAULT_RETENTION.as_nanos() as u64),
        }
    }
}

impl Metrics {
    pub fn configure(&self, settings: Settings) {
        self.set_retention(settings.retention);
        *lock(&self.settings) = settings;
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// How long observations stay in the quantiles (`prometheus_retention_time`).
    pub fn set_retention(&self, retention: Duration) {
        let nanos = u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX);
        self.retention_nanos.store(nanos, Ordering::Relaxed);
        lock(&self.settings).retention = retention;
    }

    pub fn retention(&self) -> Duration {
        Duration::from_nanos(self.retention_nanos.load(Ordering::Relaxed))
    }

    /// Add `by` to a counter.
    pub fn incr(&self, key: SeriesKey, by: f64) {
        self.update(key, |series| match series {
            Some(Series::Counter { total, increments }) => {
                *total += by;
                *increments += 1;
                None
            }
            _ => Some(Series::Counter {
                total: by,
                increments: 1,
            }),
        });
    }

    pub fn set_gauge(&self, key: SeriesKey, value: f64) {
        self.update(key, |_| Some(Series::Gauge { value }));
    }

    /// Record how long something took, since `started`, in milliseconds.
    pub fn measure_since(&self, key: SeriesKey, started: Instant, now: Instant) {
        let millis = now.saturating_duration_since(started).as_secs_f64() * 1000.0;
        self.observe(key, millis, now);
    }

    /// Record one observation of a sample series.
    pub fn observe(&self, key: SeriesKey, value: f64, now: Instant) {
        let retention = self.retention();
        self.update(key, |series| match series {
            Some(Series::Sample(samples)) => {
                samples.count += 1;
                samples.sum += value;
                while samples.window.len() >= SAMPLE_WINDOW_MAX
                    || samples
                        .window
                        .front()
                        .is_some_and(|(at, _)| now.saturating_duration_since(*at) > retention)
                {
                    samples.window.pop_front();
                }
                samples.window.push_back((now, value));
                None
            }
            _ => Some(Series::Sample(Samples {
                count: 1,
                sum: value,
                window: VecDeque::from([(now, value)]),
            })),
        });
    }

    /// Apply `change` to the series at `key`: it updates the series in place and returns
    /// `None`, or returns the series to store (a new one, or one of another kind). An
    /// existing series is found under the map's read lock and changed under its own
    /// lock, so requests recording different series do not wait for each other.
    fn update(&self, key: SeriesKey, change: impl FnOnce(Option<&mut Series>) -> Option<Series>) {
        let existing = read(&self.series).get(&key).cloned();
        let cell = match existing {
            Some(cell) => cell,
            None => {
                let mut map = write(&self.series);
                match map.get(&key) {
                    Some(cell) => cell.clone(),
                    None => {
                        if map.len() < SERIES_MAX
                            && let Some(created) = change(None)
                        {
                            map.insert(key, Arc::new(Mutex::new(created)));
                        }
                        return;
                    }
                }
            }
        };
        let mut series = lock(&cell);
        if let Some(replacement) = change(Some(&mut series)) {
            *series = replacement;
        }
    }

    /// Every series as it is now (for rendering).
    pub fn snapshot(&self) -> BTreeMap<SeriesKey, Series> {
        read(&self.series)
            .iter()
            .map(|(key, cell)| (key.clone(), lock(cell).clone()))
            .collect()
    }
}

/// A component's handle for timing what it does: the seam's clock and the node's
/// metrics.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub clock: crate::env::Clock,
    pub metrics: Arc<Metrics>,
}

impl Telemetry {
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Record the time since `started` under the plain name `name`.
    pub fn measure_since(&self, name: &'static str, started: Instant) {
        self.metrics
            .measure_since(SeriesKey::plain(name), started, self.clock.now());
    }

    pub fn incr(&self, name: &'static str) {
        self.metrics.incr(SeriesKey::plain(name), 1.0);
    }

    /// Record one observation of the sample series `name`.
    pub fn observe(&self, name: &'static str, value: f64) {
        self.metrics
            .observe(SeriesKey::plain(name), value, self.clock.now());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
