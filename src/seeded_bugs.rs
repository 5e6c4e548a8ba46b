//! Deliberate bugs that prove the simulator's checkers can see what they claim to see.
//!
//! Each bug is a plausible mistake put back into the server at one named place. They are
//! compiled only into the simulator build (`--cfg madsim`), so a production binary contains
//! none of them; in that build every bug is off until the harness turns one on at run time
//! (`arca-sim ... --seeded-bug NAME`), so one build serves every bug. The harness runs a
//! scenario with a bug on and expects a failure within a stated number of seeds.

/// A bug the simulator can switch on. Names are what `--seeded-bug` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum SeededBug {
    /// The active node answers requests from its applied state without confirming that
    /// it still leads (no lease, no read-index round): a deposed leader serves stale reads.
    StaleRead = 0,
}

impl SeededBug {
    pub const ALL: &'static [SeededBug] = &[SeededBug::StaleRead];

    pub fn name(self) -> &'static str {
        match self {
            SeededBug::StaleRead => "stale-read",
        }
    }

    pub fn from_name(name: &str) -> Option<SeededBug> {
        Self::ALL.iter().copied().find(|bug| bug.name() == name)
    }
}

#[cfg(madsim)]
mod switch {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::SeededBug;

    /// One bit per bug. The simulator runs every node in one process, so one switch
    /// covers the whole fleet.
    static ENABLED: AtomicU64 = AtomicU64::new(0);

    pub fn enabled(bug: SeededBug) -> bool {
        ENABLED.load(Ordering::Relaxed) & (1 << bug as u32) != 0
    }

    pub fn set(bugs: &[SeededBug]) {
        let bits = bugs
            .iter()
            .fold(0u64, |bits, bug| bits | (1 << *bug as u32));
        ENABLED.store(bits, Ordering::Relaxed);
    }
}

/// Whether `bug` is switched on. Always false outside the simulator build.
#[cfg(madsim)]
pub fn enabled(bug: SeededBug) -> bool {
    switch::enabled(bug)
}

/// Whether `bug` is switched on. Always false outside the simulator build.
#[cfg(not(madsim))]
pub fn enabled(_bug: SeededBug) -> bool {
    false
}

/// Switch exactly `bugs` on (the simulator harness, before a run).
#[cfg(madsim)]
pub fn set_enabled(bugs: &[SeededBug]) {
    switch::set(bugs);
}
