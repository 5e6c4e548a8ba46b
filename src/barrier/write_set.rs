//! One write set per request: a request's writes are staged while its handler runs and
//! committed once, as one Raft entry, when the handler is done.
//!
//! The router opens a staging scope around a request ([`staging`]); inside it,
//! [`Barrier::commit`](super::Barrier::commit) records plaintext writes here instead of
//! committing them, and the barrier's reads see them (a handler reads its own writes).
//! When the handler is done the router either commits the whole set
//! ([`Barrier::commit_write_set`](super::Barrier::commit_write_set)) or drops it (the
//! request failed, or it writes replicated state on a performance secondary and goes to
//! the primary): nothing a request staged takes effect unless all of it does.
//!
//! Three things keep a staged request as safe as one that committed as it went:
//! - **Locks that guard a read-then-write** (a token's parent still valid, an alias not
//!   yet bound to an entity) are taken through [`hold`]: inside a scope the guard is kept
//!   until the set has committed or been dropped, so the check and the write stay atomic
//!   as they were. A lock already held by the scope is not taken twice (a login that also
//!   wraps its answer creates two tokens). Reader-writer locks ([`hold_rw`]) let requests
//!   that only add fresh records (token creations) run side by side. Locks are always
//!   taken in one order: identity, then tokens; the router's own stripe, when the request
//!   takes one, is taken before any of them.
//! - **In-memory state that follows storage** (the lease schedule, the policy cache) is
//!   changed through [`after_commit`], which runs once the set has committed.
//! - **Work that cannot be one entry** commits as it goes with
//!   [`Barrier::commit_now`](super::Barrier::commit_now): bulk deletes in bounded batches
//!   (unmount, revoking a token tree), keys created once and cached (token salts, the
//!   wrapping key), mount and audit tables (published in memory under their own lock),
//!   single-use records whose delete must land before the payload leaves (unwrap), and
//!   the replication and seal machinery.
//!
//! A task spawned by a handler does not inherit the scope, so it commits at once.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};
use zeroize::Zeroizing;

use crate::storage::{BATCH_OPS_MAX, StorageError};

use super::Write;

/// What runs once a request's writes have committed.
type AfterCommit = Box<dyn FnOnce() + Send>;

/// The writes a request staged, last write per key winning, and what waits on them.
#[derive(Default)]
pub struct WriteSet {
    /// Plaintext value per key; `None` is a delete. Ordered, so the committed batch (and
    /// every node's log) does not depend on the order the handler wrote in.
    writes: BTreeMap<String, Option<Zeroizing<Vec<u8>>>>,
    after_commit: Vec<AfterCommit>,
    /// Locks kept until the set is committed or dropped, with the address of each lock
    /// (how a second [`hold`] or [`hold_rw`] of the same lock knows it is already held).
    held: Vec<(usize, Held)>,
}

/// A guard a write set keeps; never read, only dropped with the set.
enum Held {
    Mutex(#[allow(dead_code)] OwnedMutexGuard<()>),
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Exclusive(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

/// How a request takes a reader-writer lock with [`hold_rw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Beside other shared holders (requests that only add fresh records).
    Shared,
    /// Alone (requests that read, then change, what others may hold shared).
    Exclusive,
}

/// A reader-writer guard returned to a caller outside any scope.
#[derive(Debug)]
pub enum RwGuard {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Exclusive(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

/// A request that holds a lock shared asked for it exclusive: it would wait on itself
/// forever, so it is refused instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a request holding a lock shared cannot take it exclusive")]
pub struct UpgradeRefused;

impl std::fmt::Debug for WriteSet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WriteSet")
            .field("keys", &self.writes.keys().collect::<Vec<_>>())
            .field("after_commit", &self.after_commit.len())
            .field("held", &self.held.len())
            .finish()
    }
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// The staged keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.writes.keys().map(String::as_str)
    }

    /// The writes, sorted by key, and what must run once they have committed. The held
    /// locks stay with the set until it is dropped.
    pub(super) fn take(&mut self) -> (Vec<Write>, Vec<AfterCommit>) {
        let writes = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => Write::Put {
                    key,
                    value: value.to_vec(),
                },
                None => Write::Delete { key },
            })
            .collect();
        (writes, std::mem::take(&mut self.after_commit))
    }
}

tokio::task_local! {
    static STAGED: RefCell<WriteSet>;
}

/// Run `future` with its writes staged; returns its output and what it staged (not yet
/// committed). A scope inside a scope stages separately.
pub async fn staging<F: Future>(future: F) -> (F::Output, WriteSet) {
    STAGED
        .scope(RefCell::new(WriteSet::default()), async move {
            let output = future.await;
            let set = STAGED.with(|staged| std::mem::take(&mut *staged.borrow_mut()));
            (output, set)
        })
        .await
}

/// Whether the current task is staging.
pub fn is_staging() -> bool {
    STAGED.try_with(|_| ()).is_ok()
}

/// Stage `writes` in the current scope. `Ok(false)` outside any scope (the caller
/// commits them itself); `BatchTooLarge` when the set would outgrow one Raft entry.
pub(super) fn stage(writes: &[Write]) -> Result<bool, StorageError> {
    STAGED
        .try_with(|staged| {
            let mut staged = staged.borrow_mut();
            for write in writes {
                let (key, value) = match write {
                    Write::Put { key, value } => (key, Some(Zeroizing::new(value.clone()))),
                    Write::Delete { key } => (key, None),
                };
                if !staged.writes.contains_key(key) && staged.writes.len() >= BATCH_OPS_MAX {
                    return Err(StorageError::BatchTooLarge(staged.writes.len() + 1));
                }
                staged.writes.insert(key.clone(), value);
            }
            Ok(true)
        })
        .unwrap_or(Ok(false))
}

/// The staged state of `key`: `Some(Some(value))` written, `Some(None)` deleted, `None`
/// not staged (or no scope).
pub(super) fn staged_value(key: &str) -> Option<Option<Vec<u8>>> {
    STAGED
        .try_with(|staged| {
            staged
                .borrow()
                .writes
                .get(key)
                .map(|value| value.as_ref().map(|value| value.to_vec()))
        })
        .ok()
        .flatten()
}

/// Whether the current scope staged `key` as written (`Some(true)`) or deleted
/// (`Some(false)`); `None` when it did not stage it, or outside any scope.
pub(super) fn staged_presence(key: &str) -> Option<bool> {
    STAGED
        .try_with(|staged| staged.borrow().writes.get(key).map(Option::is_some))
        .ok()
        .flatten()
}

/// Whether `key` is staged (written or deleted) in the current scope.
pub fn is_staged(key: &str) -> bool {
    STAGED
        .try_with(|staged| staged.borrow().writes.contains_key(key))
        .unwrap_or(false)
}

/// The staged keys below `prefix` (relative to it), each with whether it is written
/// (`true`) or deleted; `None` outside any scope.
pub(super) fn staged_below(prefix: &str) -> Option<Vec<(String, bool)>> {
    STAGED
        .try_with(|staged| {
            staged
                .borrow()
                .writes
                .range(prefix.to_string()..)
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(key, value)| (key[prefix.len()..].to_string(), value.is_some()))
                .collect()
        })
        .ok()
}

/// Forget staged writes to `keys`: a later write that committed at once supersedes them.
pub(super) fn forget(keys: &[&str]) {
    let _outside_any_scope = STAGED.try_with(|staged| {
        let mut staged = staged.borrow_mut();
        for key in keys {
            staged.writes.remove(*key);
        }
    });
}

/// Run `change` once the current request's writes have committed (at once outside any
/// scope). Dropped, not run, when the request's writes are dropped.
pub fn after_commit(change: impl FnOnce() + Send + 'static) {
    let mut change = Some(change);
    let _outside_any_scope = STAGED.try_with(|staged| {
        if let Some(change) = change.take() {
            staged.borrow_mut().after_commit.push(Box::new(change));
        }
    });
    if let Some(change) = change {
        change();
    }
}

/// Whether the current scope holds the lock at `address`, and if so whether exclusively
/// (a mutex counts as exclusive); `None` outside any scope.
fn held_in_scope(address: usize) -> Option<Option<bool>> {
    STAGED
        .try_with(|staged| {
            staged
                .borrow()
                .held
                .iter()
                .find(|(held, _)| *held == address)
                .map(|(_, guard)| !matches!(guard, Held::Shared(_)))
        })
        .ok()
}

/// Take `lock` for the rest of the current request: inside a scope the guard stays with
/// the write set (and `None` is returned); outside one it is returned to the caller. A
/// lock the scope already holds is not taken again.
pub async fn hold(lock: &Arc<Mutex<()>>) -> Option<OwnedMutexGuard<()>> {
    let address = Arc::as_ptr(lock) as usize;
    match held_in_scope(address).map(|held| held.is_some()) {
        None => Some(lock.clone().lock_owned().await),
        Some(true) => None,
        Some(false) => {
            let guard = lock.clone().lock_owned().await;
            STAGED.with(|staged| staged.borrow_mut().held.push((address, Held::Mutex(guard))));
            None
        }
    }
}

/// [`hold`] for a reader-writer lock: taken `access`-wise for the rest of the current
/// request. A scope that already holds it exclusive, or shared when shared is asked,
/// does not take it again (a queued writer would otherwise make a second read wait on
/// the first); a scope holding it shared that asks for exclusive is refused.
pub async fn hold_rw(
    lock: &Arc<RwLock<()>>,
    access: Access,
) -> Result<Option<RwGuard>, UpgradeRefused> {
    let address = Arc::as_ptr(lock) as usize;
    let already_held = held_in_scope(address);
    match (already_held, access) {
        (None, Access::Shared) => Ok(Some(RwGuard::Shared(lock.clone().read_owned().await))),
        (None, Access::Exclusive) => Ok(Some(RwGuard::Exclusive(lock.clone().write_owned().await))),
        (Some(Some(true)), _) | (Some(Some(false)), Access::Shared) => Ok(None),
        (Some(Some(false)), Access::Exclusive) => Err(UpgradeRefused),
        (Some(None), access) => {
            let guard = match access {
                Access::Shared => Held::Shared(lock.clone().read_owned().await),
                Access::Exclusive => Held::Exclusive(lock.clone().write_owned().await),
            };
            STAGED.with(|staged| staged.borrow_mut().held.push((address, guard)));
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8]) -> Write {
        Write::Put {
            key: key.to_string(),
            value: value.to_vec(),
        }
    }

    #[tokio::test]
    async fn writes_are_staged_in_key_order_last_write_winning() {
        assert!(!stage(&[put("a", b"x")]).unwrap());
        let ((), mut set) = staging(async {
            assert!(stage(&[put("b", b"1"), put("a", b"2")]).unwrap());
            assert!(
                stage(&[Write::Delete {
                    key: "b".to_string()
                }])
                .unwrap()
            );
            assert_eq!(staged_value("a"), Some(Some(b"2".to_vec())));
            assert_eq!(staged_value("b"), Some(None));
            assert_eq!(staged_value("c"), None);
            assert_eq!(
                staged_below("").unwrap(),
                vec![("a".to_string(), true), ("b".to_string(), false)]
            );
            forget(&["a"]);
            assert_eq!(staged_value("a"), None);
        })
        .await;
        let (writes, _) = set.take();
        assert_eq!(
            writes,
            vec![Write::Delete {
                key: "b".to_string()
            }]
        );
    }

    #[tokio::test]
    async fn after_commit_waits_for_the_set_outside_a_scope_it_runs_at_once() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = ran.clone();
        after_commit(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
        let counter = ran.clone();
        let ((), mut set) = staging(async move {
            after_commit(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        })
        .await;
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (_, hooks) = set.take();
        hooks.into_iter().for_each(|hook| hook());
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_held_lock_is_kept_until_the_set_is_dropped_and_is_reentrant() {
        let lock = Arc::new(Mutex::new(()));
        let ((), set) = staging(async {
            assert!(hold(&lock).await.is_none());
            // Taken again by the same request: no deadlock.
            assert!(hold(&lock).await.is_none());
        })
        .await;
        assert!(lock.try_lock().is_err(), "held while the set lives");
        drop(set);
        assert!(lock.try_lock().is_ok());
        // Outside a scope the caller holds it.
        let guard = hold(&lock).await;
        assert!(guard.is_some() && lock.try_lock().is_err());
    }

    #[tokio::test]
    async fn shared_holders_run_together_an_exclusive_one_alone_and_none_waits_on_itself() {
        let lock = Arc::new(RwLock::new(()));
        let ((), first) = staging(async {
            assert!(hold_rw(&lock, Access::Shared).await.unwrap().is_none());
            // Shared again in the same request: not taken twice, no wait.
            assert!(hold_rw(&lock, Access::Shared).await.unwrap().is_none());
            // Exclusive after shared would wait on itself: refused.
            assert_eq!(
                hold_rw(&lock, Access::Exclusive).await.unwrap_err(),
                UpgradeRefused
            );
        })
        .await;
        // A second request shares it while the first set lives; a writer cannot.
        let ((), second) = staging(async {
            assert!(hold_rw(&lock, Access::Shared).await.unwrap().is_none());
        })
        .await;
        assert!(lock.try_write().is_err(), "held shared by both sets");
        drop(first);
        assert!(lock.try_write().is_err(), "still held by the second set");
        drop(second);
        let ((), exclusive) = staging(async {
            assert!(hold_rw(&lock, Access::Exclusive).await.unwrap().is_none());
            // Either access again under an exclusive hold: already covered.
            assert!(hold_rw(&lock, Access::Shared).await.unwrap().is_none());
            assert!(hold_rw(&lock, Access::Exclusive).await.unwrap().is_none());
        })
        .await;
        assert!(
            lock.try_read().is_err(),
            "held exclusive while the set lives"
        );
        drop(exclusive);
        // Outside a scope the caller holds the guard.
        let guard = hold_rw(&lock, Access::Exclusive).await.unwrap();
        assert!(matches!(guard, Some(RwGuard::Exclusive(_))) && lock.try_read().is_err());
    }

    #[tokio::test]
    async fn a_set_larger_than_one_entry_is_refused() {
        let ((), set) = staging(async {
            let writes: Vec<Write> = (0..BATCH_OPS_MAX)
                .map(|index| put(&format!("k{index}"), b""))
                .collect();
            assert!(stage(&writes).unwrap());
            // Rewriting a staged key adds nothing; a new one is one too many.
            assert!(stage(&[put("k0", b"again")]).unwrap());
            assert!(matches!(
                stage(&[put("one-more", b"")]),
                Err(StorageError::BatchTooLarge(_))
            ));
        })
        .await;
        assert_eq!(set.len(), BATCH_OPS_MAX);
    }
}
