//! The seam: the only place where Arca reaches time, randomness, disk and tasks.
//!
//! Server code takes an [`Env`] and never calls `Instant::now`, `SystemTime::now`,
//! `thread_rng`, `std::fs` or `std::thread::spawn` itself (clippy's `disallowed-methods`
//! enforces it outside this folder). Built with `RUSTFLAGS="--cfg madsim"`, the `tokio`
//! name is the madsim simulator, so the same code runs deterministically from a seed.

pub mod clock;
pub mod disk;
pub mod disk_files;
pub mod disk_sim;
pub mod log_file;
pub mod rng;
pub mod runtime;

use std::sync::Arc;

pub use clock::Clock;
pub use disk::{Disk, DiskError};
pub use disk_files::FileDisk;
pub use disk_sim::{IoErrorRates, SimDisk};
pub use log_file::{LogFiles, LogSink, MemoryLogFiles, OsLogFiles};
pub use rng::SharedRng;

/// Everything a node needs from the outside world, injected once at start.
#[derive(Clone, Debug)]
pub struct Env {
    pub clock: Clock,
    pub rng: SharedRng,
    pub disk: Arc<dyn Disk>,
    /// The node's telemetry (not a seam: shared here because every component that has
    /// something to measure already holds the environment).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Env {
    /// The clock and metrics, for components that time what they do.
    pub fn telemetry(&self) -> crate::metrics::Telemetry {
        crate::metrics::Telemetry {
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Production: the system clock, the OS entropy source, files under `data_dir`.
    pub fn production(data_dir: &std::path::Path) -> Result<Self, DiskError> {
        Ok(Self {
            clock: Clock::system(),
            rng: SharedRng::from_entropy(),
            disk: Arc::new(FileDisk::open(data_dir)?),
            metrics: Arc::default(),
        })
    }

    /// A node with an in-memory disk; under madsim its randomness follows the seed.
    pub fn in_memory(disk: SimDisk) -> Self {
        Self {
            clock: Clock::system(),
            rng: SharedRng::from_entropy(),
            disk: Arc::new(disk),
            metrics: Arc::default(),
        }
    }
}
