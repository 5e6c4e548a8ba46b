//! A standby learns through Raft that its cluster's keys were replaced.
//!
//! Activating a cluster as a performance secondary replaces its seal configuration, root
//! key and keyring with the primary's in one Raft step, applied on every node. The active
//! node installs the new keyring as it writes it; a standby still holds the keyring it
//! unsealed with, which opens nothing written from then on. Vault's answer is that the
//! secondary's standbys are unsealed again with the primary's keys, so a standby that sees
//! the stored keyring leave the root key it holds seals itself at once: it then reports
//! `sealed` and takes the primary's shares, instead of looking unsealed until an election
//! makes it active and every read fails with "stored value at core/keyring is corrupt".
//!
//! A rekey keeps the root key (it re-seals the same root key under new shares) and a
//! rotation re-seals a new keyring under the same root key, so neither seals a standby.
//!
//! The cache watcher (`cache_watch`) calls this when an applied change may touch
//! [`KEYS`]; the matching is the change feed's [`crate::raft::FeedEvent::may_touch`].

use crate::barrier::BarrierError;
use crate::storage::key_space::{KEYRING_KEY, ROOT_KEY_KEY};

use super::Core;

impl Core {
    /// Every node runs this (from the cache watcher) when the stored root key or
    /// keyring changes in its applied state (or may have: a snapshot install, a lagged
    /// feed). The active node takes a newer keyring (a rotation arriving from a primary
    /// cluster); a standby checks that the stored keyring still opens under the root key
    /// it holds, and seals itself when it does not.
    pub(super) async fn follow_stored_keys(&self) {
        if self.is_sealed() {
            return;
        }
        if self.cluster.is_leader() {
            // The active node wrote a replacement itself and holds it already; what it
            // cannot open here is such a replacement seen before it installed it.
            if let Err(error) = self.barrier.reload_keyring() {
                tracing::debug!(%error, "the active node did not take the stored keyring");
            }
            return;
        }
        self.seal_if_keys_replaced().await;
    }

    /// Seal this standby when the stored keyring is no longer sealed under the root key
    /// it holds; else take the stored keyring (a rotation the active node made).
    async fn seal_if_keys_replaced(&self) {
        match self.barrier.reload_keyring() {
            Ok(()) => {}
            Err(BarrierError::Corrupt { reason, .. }) => {
                tracing::warn!(
                    %reason,
                    "the cluster's keys were replaced (activated as a performance secondary, or a forced restore); sealing this standby: unseal it with the current keys"
                );
                crate::coverage::mark("replication-standby-sealed-by-activation");
                self.seal().await;
            }
            Err(error) => {
                tracing::debug!(%error, "checking the stored keyring on a standby failed");
            }
        }
    }
}

/// The keys whose change may leave a standby with keys that open nothing.
pub(super) const KEYS: &[&str] = &[ROOT_KEY_KEY, KEYRING_KEY];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Applied, Change, Changes, FeedEvent};
    use crate::storage::key_space::KeyClass;

    fn touches_keys(changes: &Changes) -> bool {
        FeedEvent::Applied(std::sync::Arc::new(Applied {
            log_index: 1,
            refused: None,
            wal_indexes: 0..0,
            changes: changes.clone(),
        }))
        .may_touch(KEYS)
    }

    fn change(key: &str) -> Change {
        Change {
            key: key.into(),
            class: KeyClass::Local,
            value: None,
        }
    }

    #[test]
    fn only_the_root_key_the_keyring_or_a_whole_snapshot_call_for_a_check() {
        assert!(touches_keys(&Changes::Everything));
        assert!(touches_keys(&Changes::Keys(vec![
            change("logical/abc/data"),
            change(KEYRING_KEY)
        ])));
        assert!(touches_keys(&Changes::Keys(vec![change(ROOT_KEY_KEY)])));
        assert!(!touches_keys(&Changes::Keys(vec![change(
            "logical/abc/data"
        )])));
        assert!(!touches_keys(&Changes::Keys(Vec::new())));
        assert!(FeedEvent::Lagged { missed: 3 }.may_touch(KEYS));
    }
}
