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
    /// The state machine ignores deletes when it applies a batch (src/raft/state_machine.rs).
    DropDeletes = 1,
    /// The log purges one entry past the purge point: from memory, and on disk the
    /// segment holding it goes too (src/raft/log_store.rs).
    PurgeOneTooMany = 2,
    /// On restart the state machine trusts the unsynced `raft/committed` file as its
    /// applied index instead of re-applying the entries after its snapshot
    /// (src/raft/state_machine.rs).
    SkipReapplyOnRestart = 3,
    /// The log writer answers appends as durable without fsyncing the segment
    /// (src/raft/log_store.rs).
    SkipLogFsync = 4,
    /// Truncating a conflicting suffix also removes the last matching entry: the
    /// truncation point is off by one (src/raft/log_store.rs).
    TruncateOneTooMany = 5,
    /// Installing a leader's snapshot merges it into the local map instead of replacing
    /// it, so keys deleted since survive (src/raft/state_machine.rs).
    InstallMergesSnapshot = 6,
    /// The key-space registry classes the token store as replicated, as a forgotten or
    /// mistyped registration would: the primary's tokens travel to its secondaries
    /// (src/storage/key_space.rs).
    ReplicateLocalKeys = 7,
    /// The primary ignores a secondary's paths filter when it ships WAL entries: denied
    /// data crosses (src/replication/primary.rs).
    IgnorePathsFilter = 8,
    /// A primary that learns a newer epoch superseded it reports so, but keeps its
    /// barrier open to replicated writes: two clusters accept writes for the same set
    /// (src/replication/state.rs, src/replication/manager.rs).
    SupersededKeepsWriting = 9,
    /// A Merkle sync fetches what differs from the primary but never deletes what the
    /// primary does not hold: a superseded primary that follows its successor keeps the
    /// divergent writes it accepted (src/replication/secondary.rs).
    SyncKeepsExtraKeys = 10,
    /// With the disk-full alarm on, a write is answered "storage is full" but proposed
    /// anyway, so a refused write takes effect (src/raft/node.rs).
    DiskFullAppliesRefused = 11,
    /// The log writer logs a failed fsync of a segment (`EIO`) and answers the appends
    /// as durable anyway, as PostgreSQL did before 2018: the kernel has already dropped
    /// the unsynced pages, so the node acknowledged entries its disk does not hold
    /// (src/raft/log_store.rs).
    IgnoreLogWriteError = 12,
    /// Revoking a token deletes its accessor and parent index but not the token entry
    /// itself, as a refactor that moved the entry's delete elsewhere would: the revoke is
    /// answered, and the token keeps working (src/token/store.rs).
    RevokeKeepsTokenEntry = 13,
    /// A leader asked to step down hands its lead over but keeps its read lease, as a
    /// hand-over written without the lease in mind would: the followers vote at once, and
    /// the old leader answers reads from its lease while the new one commits writes
    /// (src/raft/node.rs).
    HandOverKeepsLease = 14,
    /// A seal and an unseal share run side by side, as they did before seals and
    /// unseals took turns: an unseal accepted while the seal waits for its hand-over is
    /// undone by the seal's last step, and the node answers unsealed with no cluster
    /// identity to forward a write with (src/core/mod.rs).
    SealIgnoresUnseal = 15,
    /// A disable removes the mount's entry first and deletes its data after, the order
    /// before Vault's taint: a disable interrupted between the two leaves the mount's
    /// data with nothing that would ever delete it (its leases are left to the sweep for
    /// leases no mount serves) (src/core/system.rs).
    UnmountRemovesEntryFirst = 16,
}

impl SeededBug {
    pub const ALL: &'static [SeededBug] = &[
        SeededBug::StaleRead,
        SeededBug::DropDeletes,
        SeededBug::PurgeOneTooMany,
        SeededBug::SkipReapplyOnRestart,
        SeededBug::SkipLogFsync,
        SeededBug::TruncateOneTooMany,
        SeededBug::InstallMergesSnapshot,
        SeededBug::ReplicateLocalKeys,
        SeededBug::IgnorePathsFilter,
        SeededBug::SupersededKeepsWriting,
        SeededBug::SyncKeepsExtraKeys,
        SeededBug::DiskFullAppliesRefused,
        SeededBug::IgnoreLogWriteError,
        SeededBug::RevokeKeepsTokenEntry,
        SeededBug::HandOverKeepsLease,
        SeededBug::SealIgnoresUnseal,
        SeededBug::UnmountRemovesEntryFirst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SeededBug::StaleRead => "stale-read",
            SeededBug::DropDeletes => "drop-deletes",
            SeededBug::PurgeOneTooMany => "purge-one-too-many",
            SeededBug::SkipReapplyOnRestart => "skip-reapply-on-restart",
            SeededBug::SkipLogFsync => "skip-log-fsync",
            SeededBug::TruncateOneTooMany => "truncate-one-too-many",
            SeededBug::InstallMergesSnapshot => "install-merges-snapshot",
            SeededBug::ReplicateLocalKeys => "replicate-local-keys",
            SeededBug::IgnorePathsFilter => "ignore-paths-filter",
            SeededBug::SupersededKeepsWriting => "superseded-keeps-writing",
            SeededBug::SyncKeepsExtraKeys => "sync-keeps-extra-keys",
            SeededBug::DiskFullAppliesRefused => "disk-full-applies-refused",
            SeededBug::IgnoreLogWriteError => "ignore-log-write-error",
            SeededBug::RevokeKeepsTokenEntry => "revoke-keeps-token-entry",
            SeededBug::HandOverKeepsLease => "hand-over-keeps-lease",
            SeededBug::SealIgnoresUnseal => "seal-ignores-unseal",
            SeededBug::UnmountRemovesEntryFirst => "unmount-removes-entry-first",
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
