//! Coverage marks: rare paths name themselves, so the simulator can show that its seeds
//! reach them (a sweep prints how many seeds hit each mark, and fails when a mark its
//! scenarios declare is never hit). A checker that never reaches the snapshot install
//! path proves nothing about it.
//!
//! Marks are recorded only in the simulator build (`--cfg madsim`, one seed per process);
//! elsewhere [`mark`] is empty and costs nothing.

/// Every mark, by name: a scenario may declare only these (a typo is an error, not a
/// mark that is never hit).
pub const MARKS: &[&str] = &[
    // Raft storage.
    "raft-snapshot-built",
    "raft-sole-voter-elected-at-start",
    "raft-snapshot-installed",
    "raft-log-purged",
    "raft-log-conflict-truncated",
    "raft-torn-tail-cut",
    // A leader asked to step down handed its lead to another voter (read lease revoked).
    "raft-lead-handed-over",
    // An unseal share arrived while a seal (or another share) was under way on the node
    // and waited for it to finish.
    "unseal-waited-for-seal",
    // A full disk: a write refused by the alarm; a disk write that met ENOSPC and waited.
    "raft-disk-full-write-refused",
    "raft-disk-full-waited",
    // Disk errors (EIO): a node that stopped serving after its storage failed (fail-stop);
    // a node that refused to start because its disk failed a read of its log or snapshot.
    "raft-disk-error-stopped",
    "raft-disk-error-start-refused",
    // Marked by the simulator's harness: a new leader while a node was cut off.
    "raft-election-during-partition",
    // Marked by the simulator's harness once a fault of each of these kinds ran its
    // course: nodes cut off and restored one at a time (swizzle-clog), every link slowed,
    // one node's links flapping, a node's wall clock jumped and back.
    "swizzle-clogged",
    "links-slowed",
    "node-slowed",
    "clock-jumped",
    // Marked by the simulator's workload when the server gave the answer the oracle
    // requires of a rare path: a read of a disabled mount's key refused (404), a revoked
    // token refused, a token refused after its TTL passed.
    "mount-disabled-read-refused",
    "token-revoked-refused",
    "token-expired-refused",
    // A disable interrupted after its taint, finished by the active node's tick.
    "mount-disable-finished-later",
    // Performance replication.
    "replication-merkle-sync",
    "replication-position-left-buffer",
    // A secondary's syncs overtaken by the primary's writes, reported in its status.
    "replication-sync-overtaken",
    "replication-write-forwarded",
    "replication-standby-sealed-by-activation",
];

#[cfg(madsim)]
static HITS: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Record that the path named `name` ran (in the simulator; nothing elsewhere).
#[inline(always)]
pub fn mark(name: &'static str) {
    #[cfg(madsim)]
    {
        debug_assert!(MARKS.contains(&name), "unknown coverage mark {name}");
        HITS.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name);
    }
    #[cfg(not(madsim))]
    let _ = name;
}

/// The marks hit in this process so far, in name order.
pub fn hits() -> Vec<&'static str> {
    #[cfg(madsim)]
    {
        HITS.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .copied()
            .collect()
    }
    #[cfg(not(madsim))]
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_names_are_unique_and_lowercase_words() {
        let mut names: Vec<&str> = MARKS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MARKS.len());
        for name in MARKS {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name}"
            );
        }
    }
}
