//! The event trace of a run. Its hash is the determinism check: the same seed must give
//! the same trace, byte for byte.

use sha2::{Digest, Sha256};

#[derive(Debug, Default)]
pub struct Trace {
    hasher: Sha256,
    lines: Vec<String>,
    verbose: bool,
}

/// The most trace lines kept in memory for the failure report (all are hashed).
pub const KEPT_LINES_MAX: usize = 400;

impl Trace {
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            ..Self::default()
        }
    }

    pub fn record(&mut self, elapsed_ms: u128, event: impl AsRef<str>) {
        let line = format!("[{elapsed_ms:>8}ms] {}", event.as_ref());
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        if self.verbose {
            println!("{line}");
        }
        if self.lines.len() == KEPT_LINES_MAX {
            self.lines.remove(0);
        }
        self.lines.push(line);
    }

    pub fn tail(&self) -> &[String] {
        &self.lines
    }

    pub fn hash(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}
