//! Caches above the barrier follow the applied change feed, on every node.
//!
//! A node caches what it derives from storage: the mount tables (and the router's
//! mount entries and userpass backends built from them), the audit devices, parsed
//! policies, the token salt and signing key, and the barrier's keyring. Each of them is
//! kept current by one watcher that reads this node's change feed, whichever path a
//! change came by (a client on this node, the leader, a primary cluster's WAL batch on
//! a performance secondary, a Raft snapshot install, a snapshot restore), so a standby
//! that becomes active already holds what the last active node wrote: nothing is
//! reloaded because the Raft term changed.
//!
//! Events in: feed events, and requests for a whole reload (an unseal, a change of
//! replication role). Out: calls that reload exactly the caches an event may touch,
//! decided by [`Reloads::for_event`] from the key-space registry's groups.
//!
//! Token roles and the response-wrapping keys have no cache to follow: the role store
//! reads each role from storage when it is used, and the wrapping store checks its
//! cached keys against the stored record's fingerprint at every use.
//!
//! Invariants:
//! - A reload builds a cache whole and then swaps it in, so a request sees the old
//!   cache or the new one, never a half-built one; a reload that fails leaves the old
//!   cache in place, is logged, and is retried (after [`RELOAD_RETRY_DELAY_MIN`],
//!   doubling to [`RELOAD_RETRY_DELAY_MAX`]).
//! - [`CacheProgress::log_index`] only moves past an event once every reload it called
//!   for succeeded, so a node that waits for it ([`Core::await_caches_current`]) serves
//!   from caches that reflect everything it had applied when it began to wait.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::logical::LogicalError;
use crate::raft::{FeedEvent, Subscription};
use crate::storage::key_space::{self, CoreGroup, KeyGroup, SNAPSHOT_RESTORE_KEY, Store};

use super::Core;
use super::key_watch::KEYS;

/// The first wait before a failed reload is tried again.
pub const RELOAD_RETRY_DELAY_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two tries of a failing reload.
pub const RELOAD_RETRY_DELAY_MAX: Duration = Duration::from_secs(2);
/// How many feed events one reload covers at most: under a burst of writes the watcher
/// reloads once for many events, and still reports progress regularly.
pub const EVENTS_PER_RELOAD_MAX: usize = 256;
/// Policy names invalidated one by one in one reload; beyond this every cached policy
/// is dropped (cheaper than a long list, and bounded).
pub const POLICY_NAMES_PER_RELOAD_MAX: usize = 64;
/// How long a node about to serve as active waits for its caches to reflect what it
/// has applied before it answers 503.
pub const CACHES_CURRENT_WAIT_MAX: Duration = Duration::from_secs(5);
const CACHES_CURRENT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Which policies a reload drops from the policy cache.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PolicyReloads {
    #[default]
    None,
    /// These names (as stored: sanitized).
    Named(BTreeSet<String>),
    All,
}

/// The caches one or more feed events may have made stale.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reloads {
    keyring: bool,
    mount_tables: bool,
    audit_devices: bool,
    policies: PolicyReloads,
    token_keys: bool,
    /// The CAs: a channel identity still pending (the cluster CA), and the replication
    /// CA, which the channel accepts `arca-repl/1` clients under.
    replication_ca: bool,
}

impl Reloads {
    /// Nothing to reload.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every cache: the whole state may have changed.
    pub fn everything() -> Self {
        Self {
            keyring: true,
            mount_tables: true,
            audit_devices: true,
            policies: PolicyReloads::All,
            token_keys: true,
            replication_ca: true,
        }
    }

    /// What `event` may have made stale: a snapshot install or missed events may have
    /// changed anything; an applied entry, what its keys' groups hold.
    pub fn for_event(event: &FeedEvent) -> Self {
        let changes = match event {
            FeedEvent::Lagged { .. } => return Self::everything(),
            FeedEvent::Applied(applied) => match &applied.changes {
                crate::raft::Changes::Everything => return Self::everything(),
                crate::raft::Changes::Keys(changes) => changes,
            },
        };
        let mut reloads = Self {
            // The keyring's keys are the key watcher's; its own test covers them.
            keyring: event.may_touch(KEYS),
            ..Self::none()
        };
        for change in changes {
            reloads.merge(Self::for_key(&change.key));
        }
        reloads
    }

    /// What a change to `key` may have made stale.
    fn for_key(key: &str) -> Self {
        // A snapshot restore swaps in the whole state in one entry.
        if key == SNAPSHOT_RESTORE_KEY {
            return Self::everything();
        }
        // The CAs (the cluster's, which a node unsealed before it arrived still waits
        // for, and the replication one), and the state whose secondaries' certificates
        // the replication CA accepts.
        if key == key_space::REPLICATION_CA_KEY
            || key == key_space::REPLICATION_STATE_KEY
            || key == key_space::CLUSTER_CA_KEY
        {
            return Self {
                replication_ca: true,
                ..Self::none()
            };
        }
        let Ok((_, group)) = key_space::classify(key) else {
            return Self::none();
        };
        match group {
            KeyGroup::Core(CoreGroup::Policies) => {
                let name = key
                    .strip_prefix(Store::Policies.prefix())
                    .expect("a key in the policies group lies below the policy store");
                Self {
                    policies: PolicyReloads::Named(BTreeSet::from([name.to_string()])),
                    ..Self::none()
                }
            }
            KeyGroup::Core(CoreGroup::AuditTable) => Self {
                audit_devices: true,
                ..Self::none()
            },
            KeyGroup::Core(CoreGroup::Tokens)
                if key.strip_prefix(Store::Tokens.prefix())
                    == Some(crate::token::store::SALT_KEY) =>
            {
                Self {
                    token_keys: true,
                    ..Self::none()
                }
            }
            // A mount's entry changes the tables; its data (same group) changes nothing
            // a node caches.
            KeyGroup::Mount(_) if key_space::mount_table_of(key).is_some() => Self {
                mount_tables: true,
                ..Self::none()
            },
            _ => Self::none(),
        }
    }

    /// Add what `other` calls for.
    pub fn merge(&mut self, other: Reloads) {
        self.keyring |= other.keyring;
        self.mount_tables |= other.mount_tables;
        self.audit_devices |= other.audit_devices;
        self.token_keys |= other.token_keys;
        self.replication_ca |= other.replication_ca;
        self.policies = match (std::mem::take(&mut self.policies), other.policies) {
            (PolicyReloads::All, _) | (_, PolicyReloads::All) => PolicyReloads::All,
            (PolicyReloads::None, other) => other,
            (mine, PolicyReloads::None) => mine,
            (PolicyReloads::Named(mut mine), PolicyReloads::Named(theirs)) => {
                mine.extend(theirs);
                if mine.len() > POLICY_NAMES_PER_RELOAD_MAX {
                    PolicyReloads::All
                } else {
                    PolicyReloads::Named(mine)
                }
            }
        };
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::none()
    }

    pub fn keyring(&self) -> bool {
        self.keyring
    }

    pub fn mount_tables(&self) -> bool {
        self.mount_tables
    }

    pub fn audit_devices(&self) -> bool {
        self.audit_devices
    }

    pub fn policies(&self) -> &PolicyReloads {
        &self.policies
    }

    pub fn token_keys(&self) -> bool {
        self.token_keys
    }
}

/// How far this node's caches have followed its applied state, shared between the
/// watcher and the request path.
#[derive(Debug, Default)]
pub struct CacheProgress {
    state: Mutex<ProgressState>,
    /// Wakes the watcher for a whole reload (a stored permit if it is busy).
    reload_requested: tokio::sync::Notify,
}

#[derive(Debug, Default, Clone, Copy)]
struct ProgressState {
    /// Whether a watcher follows the feed on this node.
    running: bool,
    /// Every event up to this Raft log index is reflected in the caches.
    log_index: u64,
    /// Whole reloads asked for, and done (each covers every request before it).
    reloads_requested: u64,
    reloads_done: u64,
}

impl CacheProgress {
    fn state(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ask the watcher to reload every cache.
    pub fn request_reload(&self) {
        self.state().reloads_requested += 1;
        self.reload_requested.notify_one();
    }

    /// The Raft log index every event up to which the caches reflect.
    pub fn log_index(&self) -> u64 {
        self.state().log_index
    }
}

/// Why the watcher woke.
enum Wake {
    Shutdown,
    Event(Option<FeedEvent>),
    ReloadRequested,
    Retry,
}

impl Core {
    /// Every node runs this from start to shutdown: follow the change feed and keep
    /// every cache above the barrier current (see the module documentation).
    ///
    /// The watcher counts as running from this call, before its first poll, so a
    /// request never takes its place in between (see [`Core::await_caches_current`]).
    pub fn watch_caches(
        self: Arc<Self>,
        feed: Subscription,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.caches.state().running = true;
        self.follow_feed(feed, shutdown)
    }

    async fn follow_feed(
        self: Arc<Self>,
        mut feed: Subscription,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut pending = Reloads::none();
        // The highest log index the pending reloads cover, and the whole-reload
        // requests they answer.
        let mut pending_through = 0;
        let mut pending_requests = 0;
        let mut retry_delay: Option<Duration> = None;
        loop {
            let wake = match retry_delay {
                None => tokio::select! {
                    biased;
                    _ = shutdown.changed() => Wake::Shutdown,
                    () = self.caches.reload_requested.notified() => Wake::ReloadRequested,
                    event = feed.next() => Wake::Event(event),
                },
                Some(delay) => tokio::select! {
                    biased;
                    _ = shutdown.changed() => Wake::Shutdown,
                    () = self.caches.reload_requested.notified() => Wake::ReloadRequested,
                    () = tokio::time::sleep(delay) => Wake::Retry,
                    event = feed.next() => Wake::Event(event),
                },
            };
            match wake {
                Wake::Shutdown | Wake::Event(None) => break,
                Wake::ReloadRequested => {
                    pending = Reloads::everything();
                    pending_requests = self.caches.state().reloads_requested;
                    pending_through = pending_through.max(self.cluster.indexes().applied);
                }
                Wake::Retry => {}
                Wake::Event(Some(event)) => {
                    let mut next = Some(event);
                    let mut taken = 0;
                    while let Some(event) = next {
                        pending.merge(Reloads::for_event(&event));
                        pending_through = pending_through.max(match &event {
                            FeedEvent::Applied(applied) => applied.log_index,
                            FeedEvent::Lagged { .. } => self.cluster.indexes().applied,
                        });
                        taken += 1;
                        next = (taken < EVENTS_PER_RELOAD_MAX)
                            .then(|| feed.try_next())
                            .flatten();
                    }
                    // A failing reload is retried on its timer, not at every event.
                    if retry_delay.is_some() {
                        continue;
                    }
                }
            }
            if self.is_sealed() {
                // Nothing above the barrier can be read; the unseal asks for a whole
                // reload, which covers everything dropped here.
                pending = Reloads::none();
                retry_delay = None;
                continue;
            }
            match self.reload_caches(&pending).await {
                Ok(()) => {
                    let mut state = self.caches.state();
                    state.log_index = state.log_index.max(pending_through);
                    state.reloads_done = state.reloads_done.max(pending_requests);
                    drop(state);
                    pending = Reloads::none();
                    retry_delay = None;
                }
                Err(error) => {
                    let delay = retry_delay.map_or(RELOAD_RETRY_DELAY_MIN, |delay| {
                        (delay * 2).min(RELOAD_RETRY_DELAY_MAX)
                    });
                    if retry_delay.is_none() {
                        tracing::warn!(%error, "reloading caches after applied changes failed; keeping the loaded ones and retrying");
                    } else {
                        tracing::debug!(%error, retry_ms = delay.as_millis() as u64, "reloading caches failed again");
                    }
                    retry_delay = Some(delay);
                }
            }
        }
        self.caches.state().running = false;
    }

    /// Reload what `reloads` names: the keyring first (what follows is read through
    /// it), then the logical side's caches.
    async fn reload_caches(&self, reloads: &Reloads) -> Result<(), LogicalError> {
        if reloads.is_empty() {
            return Ok(());
        }
        crate::coverage::mark("cache-watch-reload");
        if *reloads == Reloads::everything() {
            self.env.telemetry().incr("arca.caches.reload_everything");
        }
        if reloads.keyring() {
            self.follow_stored_keys().await;
            if self.is_sealed() {
                return Ok(());
            }
        }
        if reloads.replication_ca {
            self.install_pending_channel_identity();
            self.refresh_replication_clients_ca();
        }
        match self.logical() {
            Some(logical) => logical.reload_caches(reloads).await,
            None => Ok(()),
        }
    }

    /// Ask for every cache to be reloaded (this node was unsealed, or storage was
    /// replaced under it).
    pub fn request_cache_reload(&self) {
        self.caches.request_reload();
    }

    /// Wait until this node's caches reflect everything it has applied now and every
    /// whole reload asked for so far, up to `within`.
    ///
    /// A core without a watcher (one over a storage backend with no change feed, as
    /// in-process tests build it) is the only writer of its storage, so its own writes
    /// keep its caches; a whole reload it was asked for is done here, by the caller.
    pub async fn await_caches_current(&self, within: Duration) -> Result<(), LogicalError> {
        let applied = self.cluster.indexes().applied;
        let requested = self.caches.state().reloads_requested;
        let deadline = self.env.clock.now() + within;
        loop {
            let state = *self.caches.state();
            if !state.running {
                if state.reloads_done < requested {
                    self.reload_caches(&Reloads::everything()).await?;
                    let mut state = self.caches.state();
                    state.reloads_done = state.reloads_done.max(requested);
                }
                return Ok(());
            }
            if state.log_index >= applied && state.reloads_done >= requested {
                return Ok(());
            }
            if self.env.clock.now() >= deadline {
                return Err(LogicalError::Unavailable(format!(
                    "this node's caches have not caught up with its applied state (index {} of {applied}); retry",
                    state.log_index
                )));
            }
            tokio::time::sleep(CACHES_CURRENT_POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Applied, Change, Changes};
    use crate::storage::key_space::{
        KEYRING_KEY, KeyClass, ROOT_KEY_KEY, TableKind, audit_entry, mount_data_prefix, mount_entry,
    };

    fn applied(keys: &[&str]) -> FeedEvent {
        FeedEvent::Applied(Arc::new(Applied {
            log_index: 7,
            refused: None,
            wal_indexes: 0..0,
            changes: Changes::Keys(
                keys.iter()
                    .map(|key| Change {
                        key: (*key).into(),
                        class: KeyClass::Replicated,
                        value: None,
                    })
                    .collect(),
            ),
        }))
    }

    fn only(build: impl FnOnce(&mut Reloads)) -> Reloads {
        let mut reloads = Reloads::none();
        build(&mut reloads);
        reloads
    }

    #[test]
    fn each_cache_reloads_for_its_own_keys_and_nothing_else() {
        // A mount's table entry reloads the tables, in either table and either class.
        let tables = only(|reloads| reloads.mount_tables = true);
        for kind in [TableKind::Secrets, TableKind::Auth] {
            for local in [false, true] {
                let key = mount_entry(kind, local, "u1");
                assert_eq!(Reloads::for_event(&applied(&[&key])), tables, "{key}");
                // The mount's data, in the same group, reloads nothing.
                let data = format!("{}data/app", mount_data_prefix(kind, local, "u1"));
                assert!(Reloads::for_event(&applied(&[&data])).is_empty(), "{data}");
            }
        }

        // An audit device, of either class, reloads the audit devices.
        let audit = only(|reloads| reloads.audit_devices = true);
        assert_eq!(
            Reloads::for_event(&applied(&[&audit_entry(false, "a")])),
            audit
        );
        assert_eq!(
            Reloads::for_event(&applied(&[&audit_entry(true, "a")])),
            audit
        );

        // A policy drops that policy only.
        let policy_key = format!("{}admin", Store::Policies.prefix());
        assert_eq!(
            Reloads::for_event(&applied(&[&policy_key])),
            only(|reloads| reloads.policies =
                PolicyReloads::Named(BTreeSet::from(["admin".to_string()])))
        );

        // The token salt drops the cached token keys; a token's own entry nothing.
        let salt = format!(
            "{}{}",
            Store::Tokens.prefix(),
            crate::token::store::SALT_KEY
        );
        assert_eq!(
            Reloads::for_event(&applied(&[&salt])),
            only(|reloads| reloads.token_keys = true)
        );
        let token = format!("{}id/abc", Store::Tokens.prefix());
        assert!(Reloads::for_event(&applied(&[&token])).is_empty());

        // The root key or the keyring: the keyring.
        for key in [KEYRING_KEY, ROOT_KEY_KEY] {
            assert_eq!(
                Reloads::for_event(&applied(&[key])),
                only(|reloads| reloads.keyring = true)
            );
        }

        // Token roles, leases, identity and wrapping records have no cache.
        for key in [
            format!("{}deployer", Store::TokenRoles.prefix()),
            format!("{}id/x", Store::Leases.prefix()),
            format!("{}entity/id/e", Store::Identity.prefix()),
            format!("{}jwtkey", Store::Wrapping.prefix()),
        ] {
            assert!(Reloads::for_event(&applied(&[&key])).is_empty(), "{key}");
        }
        assert!(Reloads::for_event(&applied(&[])).is_empty());
    }

    #[test]
    fn a_whole_state_replacement_reloads_everything() {
        // A Raft snapshot install, missed events, a snapshot restore's swap.
        let install = FeedEvent::Applied(Arc::new(Applied {
            log_index: 9,
            refused: None,
            wal_indexes: 0..0,
            changes: Changes::Everything,
        }));
        assert_eq!(Reloads::for_event(&install), Reloads::everything());
        assert_eq!(
            Reloads::for_event(&FeedEvent::Lagged { missed: 2 }),
            Reloads::everything()
        );
        assert_eq!(
            Reloads::for_event(&applied(&[SNAPSHOT_RESTORE_KEY])),
            Reloads::everything()
        );
    }

    #[test]
    fn one_batch_merges_what_its_keys_call_for_and_bounds_the_policy_names() {
        let first = format!("{}a", Store::Policies.prefix());
        let second = format!("{}b", Store::Policies.prefix());
        let table = mount_entry(TableKind::Auth, false, "u");
        let merged = Reloads::for_event(&applied(&[&first, &second, &table]));
        assert_eq!(
            merged,
            only(|reloads| {
                reloads.mount_tables = true;
                reloads.policies =
                    PolicyReloads::Named(BTreeSet::from(["a".to_string(), "b".to_string()]));
            })
        );

        let many: Vec<String> = (0..=POLICY_NAMES_PER_RELOAD_MAX)
            .map(|index| format!("{}p{index}", Store::Policies.prefix()))
            .collect();
        let keys: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            Reloads::for_event(&applied(&keys)).policies,
            PolicyReloads::All
        );
    }
}
