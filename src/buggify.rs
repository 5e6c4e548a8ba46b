//! Fault points inside the server (FoundationDB's BUGGIFY): in the simulator, a run that
//! switches them on makes rare paths common: a call on the cluster channel fails before
//! it is sent, a replication pull is answered "sync" instead of with entries, an apply,
//! a snapshot build or a log fsync is slowed, a change-feed subscriber sees events late,
//! a request a standby forwarded reaches the active node late. Each point sits where the code already handles that
//! outcome (a retry, a resync, a slow disk), so a failure a point provokes is a real bug.
//!
//! Compiled to nothing outside the simulator. Inside it, each point is chosen active or
//! not once per run (`SITE_ACTIVE_CHANCE`), and an active one fires on a share of its
//! calls (`FIRE_CHANCE`), as FoundationDB does: a run sees a few points often rather than
//! every point rarely. The draws come from the simulator's seeded RNG and only while
//! points are on, so a run without them is unchanged by their presence. The harness
//! switches them off when its faults stop, so the healed phase runs clean.

#[cfg(madsim)]
mod sim {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    pub static ENABLED: AtomicBool = AtomicBool::new(false);
    /// Per point seen this run: whether it is active, and how often it fired.
    pub static SITES: Mutex<BTreeMap<&'static str, (bool, u64)>> = Mutex::new(BTreeMap::new());

    pub fn enabled() -> bool {
        ENABLED.load(Ordering::SeqCst)
    }

    pub fn set_enabled(on: bool) {
        ENABLED.store(on, Ordering::SeqCst);
    }

    /// A uniform draw in [0, 1) from the simulator's seeded RNG.
    pub fn chance(probability: f64) -> bool {
        let draw = madsim::rand::random::<u64>() >> 11;
        (draw as f64) / ((1u64 << 53) as f64) < probability
    }
}

/// The share of points active in a run that has them on.
pub const SITE_ACTIVE_CHANCE: f64 = 0.25;
/// The share of an active point's calls on which it fires.
pub const FIRE_CHANCE: f64 = 0.25;

/// Whether fault point `site` fires now (never outside the simulator, nor while off).
#[inline(always)]
pub fn buggify(site: &'static str) -> bool {
    #[cfg(madsim)]
    {
        if !sim::enabled() {
            return false;
        }
        let mut sites = sim::SITES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (active, fired) = sites
            .entry(site)
            .or_insert_with(|| (sim::chance(SITE_ACTIVE_CHANCE), 0));
        let fire = *active && sim::chance(FIRE_CHANCE);
        *fired += u64::from(fire);
        fire
    }
    #[cfg(not(madsim))]
    {
        let _ = site;
        false
    }
}

/// A delay for a fired point, drawn up to `max_ms` virtual milliseconds.
pub fn delay_ms(max_ms: u64) -> std::time::Duration {
    #[cfg(madsim)]
    {
        std::time::Duration::from_millis(madsim::rand::random::<u64>() % max_ms.max(1))
    }
    #[cfg(not(madsim))]
    {
        let _ = max_ms;
        std::time::Duration::ZERO
    }
}

/// The points that fired in this process, with how often, in name order.
pub fn fired() -> Vec<(&'static str, u64)> {
    #[cfg(madsim)]
    {
        sim::SITES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|(_, (_, fired))| *fired > 0)
            .map(|(site, (_, fired))| (*site, *fired))
            .collect()
    }
    #[cfg(not(madsim))]
    Vec::new()
}

/// Switch the points on or off for this process (the simulator's harness, per run).
pub fn set_enabled(on: bool) {
    #[cfg(madsim)]
    sim::set_enabled(on);
    #[cfg(not(madsim))]
    let _ = on;
}
