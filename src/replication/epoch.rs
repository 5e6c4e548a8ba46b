//! The replication set's epoch, and the decisions that keep one primary per epoch.
//!
//! An [`Epoch`] is a generation number and the cluster that opened it. `enable` opens
//! the first; every `promote` opens the next one above the highest its cluster has
//! seen. Two clusters promoted from the same generation (a forced promotion on each
//! side of a partition) still open different epochs, because the cluster id is part of
//! the epoch, and epochs are totally ordered: so at most one cluster accepts replicated
//! writes in any epoch, and when two primaries meet, exactly one is the newer.
//!
//! Events in: an epoch named by a peer's frame (a secondary's pull, a new primary's
//! notice), a primary's answer to a secondary, a promotion's probe of its primary.
//! Answers out: whether to serve, follow, refuse or stand down, as values; the shell
//! (`manager.rs`) stores and acts on them. Invariants: a cluster never lowers the epoch
//! it has seen; a primary that has seen a newer epoch than its own accepts no
//! replicated write and serves nothing from its divergent WAL.

use serde::{Deserialize, Serialize};

/// A generation of the replication set and the cluster that opened it. Ordered by
/// generation, then by cluster id (an arbitrary but fixed tie-break).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Epoch {
    pub generation: u64,
    /// The opening cluster's id ("" for the first epoch, opened by `enable`).
    pub cluster: String,
}

impl Epoch {
    /// The epoch `enable` opens.
    pub fn first() -> Self {
        Self {
            generation: 1,
            cluster: String::new(),
        }
    }

    /// The epoch a promotion of `cluster` opens, above every epoch it has seen.
    pub fn after(seen: &Epoch, cluster: &str) -> Self {
        Self {
            generation: seen.generation + 1,
            cluster: cluster.to_string(),
        }
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cluster.is_empty() {
            write!(formatter, "{}", self.generation)
        } else {
            write!(formatter, "{} (cluster {})", self.generation, self.cluster)
        }
    }
}

/// A primary's judgement of an epoch a peer's frame names: `Some(newer)` when the peer
/// has seen a newer epoch than the primary's own, so the primary was superseded.
pub fn superseded_by(own: &Epoch, named: &Epoch) -> Option<Epoch> {
    (named > own).then(|| named.clone())
}

/// A secondary's judgement of the epoch its primary answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// The primary's epoch is the one this secondary has seen: apply its answer.
    Apply,
    /// The primary is in a newer epoch (it was promoted since this secondary last
    /// heard): remember it, then apply.
    Raise(Epoch),
    /// The primary's epoch is older than one this secondary has seen: it was
    /// superseded, and its WAL may hold writes no one else has. Apply nothing.
    Refuse { primary: Epoch, seen: Epoch },
}

pub fn follow(seen: &Epoch, primary: &Epoch) -> Follow {
    match primary.cmp(seen) {
        std::cmp::Ordering::Equal => Follow::Apply,
        std::cmp::Ordering::Greater => Follow::Raise(primary.clone()),
        std::cmp::Ordering::Less => Follow::Refuse {
            primary: primary.clone(),
            seen: seen.clone(),
        },
    }
}

/// What a secondary about to be promoted learned from asking its primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The primary answered as a primary that still accepts writes.
    Live { epoch: Epoch },
    /// The primary was demoted; its WAL stopped at `last_wal`.
    Demoted { last_wal: u64 },
    /// The primary answered that it was superseded, or refused this secondary.
    Refused { reason: String },
    /// No answer.
    Unreachable { error: String },
}

/// Whether a secondary at `position` (the last of its primary's WAL indexes it holds)
/// may be promoted. Without `force` it must know its primary accepts no more writes
/// (demoted) and hold every write that primary acknowledged; `force` skips both checks,
/// as Vault's does, and the old primary's later writes are then reported as divergent
/// when it learns of the promotion.
pub fn may_promote(force: bool, position: u64, probe: &Probe) -> Result<(), String> {
    if force {
        return Ok(());
    }
    match probe {
        Probe::Demoted { last_wal } if position >= *last_wal => Ok(()),
        Probe::Demoted { last_wal } => Err(format!(
            "this secondary holds the demoted primary's WAL up to index {position} of \
             {last_wal}; wait for it to catch up, or promote with force=true (the writes \
             after {position} would be lost)"
        )),
        Probe::Live { epoch } => Err(format!(
            "the primary still accepts writes (epoch {epoch}); demote it first, or promote \
             with force=true (it stands down when it learns of the promotion, and writes it \
             accepts until then are lost)"
        )),
        Probe::Refused { reason } => Err(format!(
            "the primary refused this secondary ({reason}); promote with force=true to \
             promote anyway"
        )),
        Probe::Unreachable { error } => Err(format!(
            "the primary could not be asked whether it was demoted ({error}); promote with \
             force=true if it is gone"
        )),
    }
}

/// The writes a superseded primary accepted that its successor does not hold: the WAL
/// indexes after the successor's position when it was promoted.
pub fn divergent_wals(last_wal: u64, successor_from_wal: u64) -> u64 {
    last_wal.saturating_sub(successor_from_wal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(generation: u64, cluster: &str) -> Epoch {
        Epoch {
            generation,
            cluster: cluster.to_string(),
        }
    }

    #[test]
    fn promotions_open_distinct_ordered_epochs_even_from_the_same_generation() {
        let first = Epoch::first();
        let b = Epoch::after(&first, "b");
        let c = Epoch::after(&first, "c");
        assert!(b > first && c > first);
        assert_ne!(b, c, "two forced promotions never share an epoch");
        assert!(c > b, "and one of them is the newer");
        assert!(
            Epoch::after(&b, "a") > c,
            "a later generation wins any tie-break"
        );
    }

    #[test]
    fn a_primary_stands_down_only_for_a_newer_epoch() {
        let own = epoch(2, "b");
        assert_eq!(superseded_by(&own, &epoch(2, "b")), None);
        assert_eq!(superseded_by(&own, &epoch(1, "")), None);
        assert_eq!(superseded_by(&own, &epoch(2, "a")), None);
        assert_eq!(superseded_by(&own, &epoch(2, "c")), Some(epoch(2, "c")));
        assert_eq!(superseded_by(&own, &epoch(3, "")), Some(epoch(3, "")));
    }

    #[test]
    fn a_secondary_follows_its_epoch_or_newer_and_refuses_an_older_primary() {
        let seen = epoch(2, "b");
        assert_eq!(follow(&seen, &seen), Follow::Apply);
        assert_eq!(follow(&seen, &epoch(3, "a")), Follow::Raise(epoch(3, "a")));
        assert_eq!(
            follow(&seen, &Epoch::first()),
            Follow::Refuse {
                primary: Epoch::first(),
                seen: seen.clone()
            }
        );
    }

    #[test]
    fn a_promotion_without_force_needs_a_demoted_primary_and_all_its_writes() {
        let demoted = Probe::Demoted { last_wal: 10 };
        assert!(may_promote(false, 10, &demoted).is_ok());
        let behind = may_promote(false, 9, &demoted).unwrap_err();
        assert!(behind.contains("up to index 9 of 10"), "{behind}");
        for probe in [
            Probe::Live {
                epoch: Epoch::first(),
            },
            Probe::Refused {
                reason: "revoked".into(),
            },
            Probe::Unreachable {
                error: "timeout".into(),
            },
        ] {
            let refused = may_promote(false, 10, &probe).unwrap_err();
            assert!(refused.contains("force=true"), "{refused}");
            assert!(
                may_promote(true, 0, &probe).is_ok(),
                "force skips the checks"
            );
        }
    }

    #[test]
    fn divergent_writes_are_those_after_the_successors_position() {
        assert_eq!(divergent_wals(15, 12), 3);
        assert_eq!(divergent_wals(12, 12), 0);
        assert_eq!(divergent_wals(3, 12), 0);
    }
}
