//! The disk-full alarm: a full disk is an operating condition, not the end of the node.
//!
//! Owns: whether this node refuses writes for lack of disk space. It keeps a reserve
//! ([`RESERVE_BYTES_BASE`] plus the size of the latest snapshot, since the next
//! snapshot needs about as much again) and raises the alarm when the free space falls
//! below it; it clears only once the free space is back above the reserve plus
//! [`HYSTERESIS_BYTES`], so a node near the line does not flap.
//!
//! Events in: a check before every proposal and every [`CHECK_INTERVAL`] (free bytes from
//! the [`Disk`] seam, the latest snapshot's size). Out: a refusal
//! ([`DiskFull`]) that the write path returns BEFORE proposing to Raft, as etcd's
//! NOSPACE alarm does; a log line on each transition (never one per refused write); the
//! gauge [`DISK_FULL_GAUGE`] and the counter [`WRITES_REFUSED_COUNTER`].
//!
//! Reads never consult it. Writes that reach the disk anyway (entries replicated from the
//! leader, votes, snapshots) wait and retry on `ENOSPC` in the log store and state
//! machine instead of failing the Raft core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::env::Disk;
use crate::metrics::{SeriesKey, Telemetry};

/// Space always kept free for what a node must still write with the alarm on: votes,
/// the committed index, entries from the leader, a purge record.
pub const RESERVE_BYTES_BASE: u64 = 4 * 1024 * 1024;
/// How far above the reserve the free space must climb before writes resume.
pub const HYSTERESIS_BYTES: u64 = 1024 * 1024;
/// How often the node looks at its free space when nothing else asks (so `sys/health`,
/// the gauge and the log follow the disk even without writes).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a disk write that met `ENOSPC` waits before it tries again.
pub const FULL_RETRY_DELAY: Duration = Duration::from_millis(500);
/// 1 while the alarm is on, 0 otherwise.
pub const DISK_FULL_GAUGE: &str = "vault.raft_storage.disk_full";
/// Writes refused because the alarm was on.
pub const WRITES_REFUSED_COUNTER: &str = "vault.raft_storage.disk_full.writes_refused";

/// A write refused because the disk is (nearly) full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{free_bytes} bytes free on the data directory's disk, below the {reserve_bytes} bytes \
     kept in reserve; writes resume once space is freed"
)]
pub struct DiskFull {
    pub free_bytes: u64,
    pub reserve_bytes: u64,
}

/// The pure step: whether the alarm is on after seeing `free_bytes`, given whether it was.
pub fn next_full(was_full: bool, free_bytes: u64, reserve_bytes: u64) -> bool {
    if was_full {
        free_bytes < reserve_bytes.saturating_add(HYSTERESIS_BYTES)
    } else {
        free_bytes < reserve_bytes
    }
}

/// The reserve for a node whose latest snapshot takes `snapshot_bytes`.
pub fn reserve_bytes(snapshot_bytes: u64) -> u64 {
    RESERVE_BYTES_BASE.saturating_add(snapshot_bytes)
}

#[derive(Debug)]
pub struct DiskAlarm {
    disk: Arc<dyn Disk>,
    telemetry: Telemetry,
    full: AtomicBool,
}

impl DiskAlarm {
    pub fn new(disk: Arc<dyn Disk>, telemetry: Telemetry) -> Self {
        telemetry
            .metrics
            .set_gauge(SeriesKey::plain(DISK_FULL_GAUGE), 0.0);
        Self {
            disk,
            telemetry,
            full: AtomicBool::new(false),
        }
    }

    /// Whether the alarm was on at the last check.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// Look at the free space now and update the alarm. A disk that cannot say how much
    /// is free leaves the alarm as it was (the writes themselves will tell).
    pub fn check(&self, snapshot_bytes: u64) -> Result<(), DiskFull> {
        let reserve_bytes = reserve_bytes(snapshot_bytes);
        let free_bytes = match self.disk.free_bytes() {
            Ok(free_bytes) => free_bytes,
            Err(error) => {
                tracing::warn!(%error, "cannot read the free space of the data directory");
                return if self.is_full() {
                    Err(DiskFull {
                        free_bytes: 0,
                        reserve_bytes,
                    })
                } else {
                    Ok(())
                };
            }
        };
        let was_full = self.is_full();
        let full = next_full(was_full, free_bytes, reserve_bytes);
        if full != was_full && self.full.swap(full, Ordering::SeqCst) == was_full {
            self.telemetry
                .metrics
                .set_gauge(SeriesKey::plain(DISK_FULL_GAUGE), f64::from(u8::from(full)));
            if full {
                tracing::error!(
                    free_bytes,
                    reserve_bytes,
                    "storage is full: refusing writes until space is freed; reads go on"
                );
            } else {
                tracing::warn!(
                    free_bytes,
                    reserve_bytes,
                    "storage has space again: writes resume"
                );
            }
        }
        if full {
            Err(DiskFull {
                free_bytes,
                reserve_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// [`DiskAlarm::check`] for a write about to be proposed: a refusal is counted.
    pub fn admit_write(&self, snapshot_bytes: u64) -> Result<(), DiskFull> {
        let answer = self.check(snapshot_bytes);
        if answer.is_err() {
            crate::coverage::mark("raft-disk-full-write-refused");
            self.telemetry.incr(WRITES_REFUSED_COUNTER);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Clock, SimDisk};

    #[test]
    fn the_alarm_rises_below_the_reserve_and_clears_only_above_it_plus_the_hysteresis() {
        let reserve = reserve_bytes(1000);
        assert_eq!(reserve, RESERVE_BYTES_BASE + 1000);
        assert!(!next_full(false, reserve, reserve));
        assert!(next_full(false, reserve - 1, reserve));
        assert!(next_full(true, reserve, reserve));
        assert!(next_full(true, reserve + HYSTERESIS_BYTES - 1, reserve));
        assert!(!next_full(true, reserve + HYSTERESIS_BYTES, reserve));
    }

    #[test]
    fn a_check_follows_the_disk_counts_refusals_and_sets_the_gauge() {
        let disk = SimDisk::new(1);
        let telemetry = Telemetry {
            clock: Clock::system(),
            metrics: Arc::default(),
        };
        let alarm = DiskAlarm::new(Arc::new(disk.clone()), telemetry.clone());
        let gauge = |metrics: &crate::metrics::Metrics| match metrics
            .snapshot()
            .get(&SeriesKey::plain(DISK_FULL_GAUGE))
        {
            Some(crate::metrics::Series::Gauge { value }) => *value,
            other => panic!("{other:?}"),
        };
        assert_eq!(alarm.admit_write(0), Ok(()));
        disk.set_capacity_bytes(Some(RESERVE_BYTES_BASE + 10));
        disk.write("filler", &[0; 20]).unwrap();
        let refusal = alarm.admit_write(0).unwrap_err();
        assert_eq!(refusal.free_bytes, RESERVE_BYTES_BASE - 10);
        assert!(alarm.is_full());
        assert_eq!(gauge(&telemetry.metrics), 1.0);
        // Freeing a little is not enough; freeing past the hysteresis is.
        disk.remove("filler").unwrap();
        assert!(alarm.check(0).is_err());
        disk.set_capacity_bytes(Some(RESERVE_BYTES_BASE + HYSTERESIS_BYTES));
        assert_eq!(alarm.admit_write(0), Ok(()));
        assert_eq!(gauge(&telemetry.metrics), 0.0);
        match telemetry
            .metrics
            .snapshot()
            .get(&SeriesKey::plain(WRITES_REFUSED_COUNTER))
        {
            Some(crate::metrics::Series::Counter { total, .. }) => assert_eq!(*total, 1.0),
            other => panic!("{other:?}"),
        }
    }
}
