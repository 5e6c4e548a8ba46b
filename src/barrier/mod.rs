//! The barrier: everything above it sees plaintext, everything below it (storage, Raft,
//! disk, replication) sees only AES-256-GCM ciphertext bound to its key.
//!
//! While sealed the barrier holds no keyring and refuses every read and write.

pub mod aead;
pub mod keyring;
pub mod write_set;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::env::SharedRng;
use crate::storage::key_space::KEYRING_KEY;
use crate::storage::{Op, SharedBackend, StorageError};
pub use keyring::Keyring;
pub use write_set::WriteSet;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BarrierError {
    #[error("Vault is sealed")]
    Sealed,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored value at {key} cannot be decrypted: {reason}")]
    Corrupt { key: String, reason: String },
}

/// A write through the barrier, in plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Write {
    pub fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

#[derive(Clone)]
pub struct Barrier {
    backend: SharedBackend,
    rng: SharedRng,
    keyring: Arc<RwLock<Option<Keyring>>>,
    /// Set while this cluster is a performance secondary: writes to replicated keys are
    /// refused here, the one path every logical write takes, so nothing on a secondary
    /// can change what only its primary may write.
    replicated_read_only: Arc<AtomicBool>,
    /// Times each operation (`vault.barrier.get`, `put`, `delete`, `list`) when set.
    telemetry: Option<crate::metrics::Telemetry>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Barrier")
    }
}

impl Barrier {
    pub fn new(backend: SharedBackend, rng: SharedRng) -> Self {
        Self {
            backend,
            rng,
            keyring: Arc::new(RwLock::new(None)),
            replicated_read_only: Arc::new(AtomicBool::new(false)),
            telemetry: None,
        }
    }

    /// This barrier (and every view of it) timing its operations.
    pub fn measured(self, telemetry: crate::metrics::Telemetry) -> Self {
        Self {
            telemetry: Some(telemetry),
            ..self
        }
    }

    fn started(&self) -> Option<std::time::Instant> {
        self.telemetry.as_ref().map(|telemetry| telemetry.now())
    }

    fn measure(&self, name: &'static str, started: Option<std::time::Instant>) {
        if let (Some(telemetry), Some(started)) = (&self.telemetry, started) {
            telemetry.measure_since(name, started);
        }
    }

    pub fn backend(&self) -> &SharedBackend {
        &self.backend
    }

    pub fn is_sealed(&self) -> bool {
        self.keyring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none()
    }

    /// Install the keyring (unseal).
    pub fn unseal_with(&self, keyring: Keyring) {
        *self
            .keyring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(keyring);
    }

    /// Drop the keyring from memory (seal).
    pub fn seal(&self) {
        *self
            .keyring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// Run `read` against the keyring, or fail when sealed.
    pub fn with_keyring<T>(&self, read: impl FnOnce(&Keyring) -> T) -> Result<T, BarrierError> {
        let guard = self
            .keyring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.as_ref().map(read).ok_or(BarrierError::Sealed)
    }

    /// Change the keyring in memory (rotation); the caller persists it.
    pub fn update_keyring<T>(
        &self,
        change: impl FnOnce(&mut Keyring) -> T,
    ) -> Result<T, BarrierError> {
        let mut guard = self
            .keyring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.as_mut().map(change).ok_or(BarrierError::Sealed)
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        let started = self.started();
        let value = self.get_unmeasured(key);
        self.measure("vault.barrier.get", started);
        value
    }

    fn get_unmeasured(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        // A request reads its own staged writes.
        if let Some(staged) = write_set::staged_value(key) {
            self.with_keyring(|_| ())?;
            return Ok(staged);
        }
        self.get_committed(key)
    }

    /// Whether `key` holds a value (the request's own staged writes first), without
    /// reading it out or opening it: what an existence check (create or update?) needs,
    /// at the cost of a lookup instead of a decryption.
    pub fn contains(&self, key: &str) -> Result<bool, BarrierError> {
        // Sealed nodes must not even reveal whether a key exists.
        self.with_keyring(|_| ())?;
        if let Some(written) = write_set::staged_presence(key) {
            return Ok(written);
        }
        Ok(self.backend.contains(key)?)
    }

    /// The committed value of `key`, whatever the current request has staged: what a
    /// cache shared by every request may hold.
    pub fn get_committed(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        let Some(sealed) = self.backend.get(key)? else {
            // Sealed nodes must not even reveal whether a key exists.
            self.with_keyring(|_| ())?;
            return Ok(None);
        };
        self.open(key, &sealed).map(Some)
    }

    /// Decrypt a raw stored value of `key` (used by replication and by `get`).
    pub fn open(&self, key: &str, sealed: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let term = aead::term_of(sealed).map_err(|error| corrupt(key, error))?;
        // Another node may have rotated the keyring since this node unsealed: a term we
        // do not hold sends us back to storage once.
        if !self.with_keyring(|keyring| keyring.term(term).is_some())? {
            self.reload_keyring()?;
        }
        self.with_keyring(|keyring| {
            let term_key = keyring
                .term(term)
                .ok_or_else(|| corrupt(key, aead::AeadError::UnknownTerm(term)))?;
            aead::open(&term_key.key, key.as_bytes(), sealed).map_err(|error| corrupt(key, error))
        })?
    }

    /// Re-read the stored keyring (sealed under the root key we hold). Used after
    /// another node rotated, and when this node becomes the active node.
    pub fn reload_keyring(&self) -> Result<(), BarrierError> {
        let Some(stored) = self.stored_keyring()? else {
            return Ok(());
        };
        self.update_keyring(|keyring| {
            if stored.active_term >= keyring.active_term {
                *keyring = stored;
            }
        })
    }

    /// Replace the keyring held with the stored one, whatever their terms: after a
    /// snapshot restore the stored keyring may be older than the one held, and writing
    /// under a term the stored keyring lacks would leave values no other node can open.
    /// `Corrupt` when the stored keyring is not sealed under this node's root key (a
    /// forced restore of another cluster's snapshot).
    pub fn replace_keyring_from_storage(&self) -> Result<(), BarrierError> {
        let Some(stored) = self.stored_keyring()? else {
            return Ok(());
        };
        self.update_keyring(|keyring| *keyring = stored)
    }

    /// The stored keyring, opened with the root key held.
    fn stored_keyring(&self) -> Result<Option<Keyring>, BarrierError> {
        let root_key = self.with_keyring(|keyring| keyring.root_key)?;
        let Some(sealed) = self.backend.get(KEYRING_KEY)? else {
            return Ok(None);
        };
        let bytes = zeroize::Zeroizing::new(
            aead::open(&root_key, KEYRING_KEY.as_bytes(), &sealed)
                .map_err(|error| corrupt(KEYRING_KEY, error))?,
        );
        Keyring::from_bytes(&bytes)
            .map(Some)
            .map_err(|error| BarrierError::Corrupt {
                key: KEYRING_KEY.to_string(),
                reason: error.to_string(),
            })
    }

    /// Encrypt a value that is never stored (a saved snapshot's content hash) under the
    /// active term, bound to `label`; [`Barrier::open`] with the same label opens it.
    pub fn seal_detached(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        self.with_keyring(|keyring| {
            let active = keyring.active();
            aead::seal(
                &self.rng,
                active.term,
                &active.key,
                label.as_bytes(),
                plaintext,
            )
        })
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let started = self.started();
        self.with_keyring(|_| ())?;
        let mut keys = self.backend.list(prefix)?;
        if let Some(staged) = write_set::staged_below(prefix)
            && !staged.is_empty()
        {
            keys = self.list_with_staged(prefix, keys, staged)?;
        }
        self.measure("vault.barrier.list", started);
        Ok(keys)
    }

    /// The children of `prefix` as the current request sees them: stored ones, plus what
    /// it staged, less what it deleted (a folder whose every key it deleted included).
    fn list_with_staged(
        &self,
        prefix: &str,
        stored: Vec<String>,
        staged: Vec<(String, bool)>,
    ) -> Result<Vec<String>, BarrierError> {
        let mut children: std::collections::BTreeSet<String> = stored.into_iter().collect();
        let mut thinned_folders = std::collections::BTreeSet::new();
        for (relative, written) in staged {
            match relative.split_once('/') {
                None if relative.is_empty() => {}
                None if written => {
                    children.insert(relative);
                }
                None => {
                    children.remove(&relative);
                }
                Some((folder, _)) => {
                    let folder = format!("{folder}/");
                    if written {
                        children.insert(folder);
                    } else {
                        thinned_folders.insert(folder);
                    }
                }
            }
        }
        for folder in thinned_folders {
            if children.contains(&folder) && self.list(&format!("{prefix}{folder}"))?.is_empty() {
                children.remove(&folder);
            }
        }
        Ok(children.into_iter().collect())
    }

    /// Refuse (or allow again) writes to replicated keys: set while this cluster is a
    /// performance secondary.
    pub fn set_replicated_read_only(&self, read_only: bool) {
        self.replicated_read_only.store(read_only, Ordering::SeqCst);
    }

    pub fn is_replicated_read_only(&self) -> bool {
        self.replicated_read_only.load(Ordering::SeqCst)
    }

    /// `Err(ReadOnly)` where a write to `key` is refused here: a replicated key while
    /// this cluster is a performance secondary, or a demoted or superseded primary.
    pub fn ensure_writable(&self, key: &str) -> Result<(), BarrierError> {
        if self.is_replicated_read_only()
            && crate::storage::key_class(key) == crate::storage::KeyClass::Replicated
        {
            return Err(BarrierError::Storage(StorageError::ReadOnly));
        }
        Ok(())
    }

    /// Commit `writes` as one batch, or, inside a request's staging scope, add them to
    /// the request's write set (committed once when the request is done; the returned
    /// index is then 0). Refused here, before anything is staged or committed, when a
    /// key is not writable on this cluster: that refusal is how a performance secondary
    /// knows, before any side effect, that a request must go to its primary.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<u64, BarrierError> {
        for write in &writes {
            self.ensure_writable(write.key())?;
        }
        if write_set::is_staging() {
            self.with_keyring(|_| ())?;
            for write in &writes {
                crate::storage::validate_write_key(write.key())?;
            }
            write_set::stage(&writes)?;
            return Ok(0);
        }
        self.commit_now(writes).await
    }

    /// Commit a request's staged writes as one batch, then run what waited on them; the
    /// set's held locks are released after both. `None` when it staged nothing.
    pub async fn commit_write_set(&self, mut set: WriteSet) -> Result<Option<u64>, BarrierError> {
        let (writes, after_commit) = set.take();
        let index = if writes.is_empty() {
            None
        } else {
            Some(self.commit_now(writes).await?)
        };
        for change in after_commit {
            change();
        }
        drop(set);
        Ok(index)
    }

    /// Encrypt `writes` under the active term and commit them as one batch now, even
    /// inside a request's staging scope (see [`write_set`] for when that is right).
    pub async fn commit_now(&self, writes: Vec<Write>) -> Result<u64, BarrierError> {
        for write in &writes {
            self.ensure_writable(write.key())?;
        }
        write_set::forget(&writes.iter().map(Write::key).collect::<Vec<_>>());
        let started = self.started();
        let name = if writes
            .iter()
            .any(|write| matches!(write, Write::Put { .. }))
        {
            "vault.barrier.put"
        } else {
            "vault.barrier.delete"
        };
        let ops = self.with_keyring(|keyring| {
            let active = keyring.active();
            writes
                .into_iter()
                .map(|write| match write {
                    Write::Put { key, value } => {
                        let sealed =
                            aead::seal(&self.rng, active.term, &active.key, key.as_bytes(), &value);
                        Op::Put {
                            key,
                            value: sealed.into(),
                        }
                    }
                    Write::Delete { key } => Op::Delete { key },
                })
                .collect::<Vec<_>>()
        })?;
        let index = self.backend.commit(ops).await?;
        self.measure(name, started);
        Ok(index)
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, BarrierError> {
        self.commit(vec![Write::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<u64, BarrierError> {
        self.commit(vec![Write::Delete {
            key: key.to_string(),
        }])
        .await
    }

    /// One put committed at once (see [`Barrier::commit_now`]).
    pub async fn put_now(&self, key: &str, value: Vec<u8>) -> Result<u64, BarrierError> {
        self.commit_now(vec![Write::Put {
            key: key.to_string(),
            value,
        }])
        .await
    }

    /// One delete committed at once (see [`Barrier::commit_now`]).
    pub async fn delete_now(&self, key: &str) -> Result<u64, BarrierError> {
        self.commit_now(vec![Write::Delete {
            key: key.to_string(),
        }])
        .await
    }

    /// A view of the key space below `prefix` (a mount's data, a store's records).
    pub fn view(&self, prefix: impl Into<String>) -> View {
        View {
            barrier: self.clone(),
            prefix: prefix.into(),
        }
    }
}

fn corrupt(key: &str, error: aead::AeadError) -> BarrierError {
    BarrierError::Corrupt {
        key: key.to_string(),
        reason: error.to_string(),
    }
}

/// The barrier restricted to keys below a prefix; callers use relative keys.
#[derive(Clone, Debug)]
pub struct View {
    barrier: Barrier,
    prefix: String,
}

impl View {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn full_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        self.barrier.get(&self.full_key(key))
    }

    /// Whether `key` holds a value (see [`Barrier::contains`]).
    pub fn contains(&self, key: &str) -> Result<bool, BarrierError> {
        self.barrier.contains(&self.full_key(key))
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, BarrierError> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|error| BarrierError::Corrupt {
                        key: self.full_key(key),
                        reason: error.to_string(),
                    })
            }
        }
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.barrier.list(&self.full_key(prefix))
    }

    /// `Err(ReadOnly)` where a write to `key` is refused here (see
    /// [`Barrier::ensure_writable`]). A request that would change nothing must ask this
    /// too before it answers: on a cluster whose replicated state may lag its primary's,
    /// "nothing to change" is judged from a stale copy, and only the refusal sends the
    /// request to the primary, which judges it from the current one.
    pub fn ensure_writable(&self, key: &str) -> Result<(), BarrierError> {
        self.barrier.ensure_writable(&self.full_key(key))
    }

    /// The committed value of `key` (see [`Barrier::get_committed`]).
    pub fn get_committed(&self, key: &str) -> Result<Option<Vec<u8>>, BarrierError> {
        self.barrier.get_committed(&self.full_key(key))
    }

    /// Whether the current request has staged a write to `key`.
    pub fn is_staged(&self, key: &str) -> bool {
        write_set::is_staged(&self.full_key(key))
    }

    fn absolute(&self, writes: Vec<Write>) -> Vec<Write> {
        writes
            .into_iter()
            .map(|write| match write {
                Write::Put { key, value } => Write::Put {
                    key: self.full_key(&key),
                    value,
                },
                Write::Delete { key } => Write::Delete {
                    key: self.full_key(&key),
                },
            })
            .collect()
    }

    /// Relative plaintext writes become one barrier batch (staged inside a request).
    pub async fn commit(&self, writes: Vec<Write>) -> Result<u64, BarrierError> {
        self.barrier.commit(self.absolute(writes)).await
    }

    /// Relative plaintext writes committed now (see [`Barrier::commit_now`]).
    pub async fn commit_now(&self, writes: Vec<Write>) -> Result<u64, BarrierError> {
        self.barrier.commit_now(self.absolute(writes)).await
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, BarrierError> {
        self.barrier.put(&self.full_key(key), value).await
    }

    pub async fn put_json<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<u64, BarrierError> {
        self.put(
            key,
            serde_json::to_vec(value).expect("records always serialize"),
        )
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<u64, BarrierError> {
        self.barrier.delete(&self.full_key(key)).await
    }

    /// Every key below `prefix`, recursively (relative to the view), sorted.
    pub fn list_recursive(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        let mut out = Vec::new();
        let mut pending = vec![prefix.to_string()];
        while let Some(dir) = pending.pop() {
            for child in self.list(&dir)? {
                let path = format!("{dir}{child}");
                if child.ends_with('/') {
                    pending.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, MemoryBackend};

    #[tokio::test]
    async fn sealed_barrier_refuses_and_unsealed_encrypts() {
        let backend = Arc::new(MemoryBackend::new());
        let rng = SharedRng::from_u64(9);
        let barrier = Barrier::new(backend.clone(), rng.clone());
        assert_eq!(barrier.get("a"), Err(BarrierError::Sealed));
        barrier.unseal_with(Keyring::generate(&rng, 0));
        let view = barrier.view("logical/m1/");
        view.put("secret", b"hunter2".to_vec()).await.unwrap();
        assert_eq!(view.get("secret").unwrap().unwrap(), b"hunter2");
        for (key, raw) in backend.dump() {
            assert_eq!(key, "logical/m1/secret");
            assert!(!raw.windows(7).any(|window| window == b"hunter2"));
        }
        barrier
            .update_keyring(|keyring| keyring.rotate(&rng, 1))
            .unwrap();
        view.put("other", b"x".to_vec()).await.unwrap();
        assert_eq!(view.get("secret").unwrap().unwrap(), b"hunter2");
        assert_eq!(view.list_recursive("").unwrap(), vec!["other", "secret"]);
    }

    #[tokio::test]
    async fn a_request_reads_what_it_staged_and_nothing_lands_until_its_set_commits() {
        let backend = Arc::new(MemoryBackend::new());
        let rng = SharedRng::from_u64(13);
        let barrier = Barrier::new(backend.clone(), rng.clone());
        barrier.unseal_with(Keyring::generate(&rng, 0));
        let view = barrier.view("logical/m1/");
        view.put("dir/gone", b"1".to_vec()).await.unwrap();
        view.put("dir2/kept", b"1".to_vec()).await.unwrap();
        view.put("dir2/gone", b"1".to_vec()).await.unwrap();
        view.put("top", b"old".to_vec()).await.unwrap();
        let stored_before = backend.dump().len();

        let (index, set) = write_set::staging(async {
            let index = view
                .commit(vec![
                    Write::Put {
                        key: "top".into(),
                        value: b"new".to_vec(),
                    },
                    Write::Put {
                        key: "fresh/a".into(),
                        value: b"2".to_vec(),
                    },
                    Write::Delete {
                        key: "dir/gone".into(),
                    },
                    Write::Delete {
                        key: "dir2/gone".into(),
                    },
                ])
                .await
                .unwrap();
            // The request sees its own writes: values, deletes, folders that appear and
            // a folder it emptied.
            assert_eq!(view.get("top").unwrap().unwrap(), b"new");
            assert_eq!(view.get_committed("top").unwrap().unwrap(), b"old");
            assert_eq!(view.get("dir/gone").unwrap(), None);
            assert_eq!(view.list("").unwrap(), vec!["dir2/", "fresh/", "top"]);
            assert_eq!(view.list("dir2/").unwrap(), vec!["kept"]);
            assert_eq!(
                view.list_recursive("").unwrap(),
                vec!["dir2/kept", "fresh/a", "top"]
            );
            index
        })
        .await;
        assert_eq!(index, 0, "staged, not committed");
        // Nothing reached storage while the request ran; other readers see the old state.
        assert_eq!(backend.dump().len(), stored_before);
        assert_eq!(view.get("top").unwrap().unwrap(), b"old");
        assert_eq!(set.len(), 4);

        assert!(barrier.commit_write_set(set).await.unwrap().is_some());
        assert_eq!(view.get("top").unwrap().unwrap(), b"new");
        assert_eq!(
            view.list_recursive("").unwrap(),
            vec!["dir2/kept", "fresh/a", "top"]
        );

        // A dropped set leaves storage as it was.
        let ((), dropped) = write_set::staging(async {
            view.delete("top").await.unwrap();
        })
        .await;
        drop(dropped);
        assert_eq!(view.get("top").unwrap().unwrap(), b"new");
    }

    #[tokio::test]
    async fn staging_refuses_what_committing_would_before_anything_is_staged() {
        let backend = Arc::new(MemoryBackend::new());
        let rng = SharedRng::from_u64(17);
        let barrier = Barrier::new(backend, rng.clone());
        barrier.unseal_with(Keyring::generate(&rng, 0));
        barrier.set_replicated_read_only(true);
        let ((), set) = write_set::staging(async {
            // A replicated key on a performance secondary: refused at once, which is how
            // the router knows to send the request to the primary.
            let refused = barrier
                .view("logical/m1/")
                .put("secret", b"x".to_vec())
                .await;
            assert_eq!(refused, Err(BarrierError::Storage(StorageError::ReadOnly)));
            // A key no prefix registers.
            barrier.set_replicated_read_only(false);
            assert!(matches!(
                barrier.put("nowhere/at/all", b"x".to_vec()).await,
                Err(BarrierError::Storage(StorageError::UnregisteredKey(_)))
            ));
        })
        .await;
        assert!(set.is_empty());
    }

    async fn store_keyring(backend: &MemoryBackend, rng: &SharedRng, keyring: &Keyring) {
        let sealed = aead::seal(
            rng,
            0,
            &keyring.root_key,
            KEYRING_KEY.as_bytes(),
            &keyring.to_bytes(),
        );
        backend
            .commit(vec![Op::Put {
                key: KEYRING_KEY.to_string(),
                value: sealed.into(),
            }])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_restored_keyring_replaces_the_one_held_or_is_refused_when_foreign() {
        let backend = Arc::new(MemoryBackend::new());
        let rng = SharedRng::from_u64(11);
        let barrier = Barrier::new(backend.clone(), rng.clone());
        let stored = Keyring::generate(&rng, 0);
        store_keyring(&backend, &rng, &stored).await;
        barrier.unseal_with(stored.clone());

        // A rotation held in memory but not in the (restored, older) stored keyring is
        // dropped: a plain reload keeps the newer one, a restore must not.
        barrier
            .update_keyring(|keyring| keyring.rotate(&rng, 1))
            .unwrap();
        barrier.reload_keyring().unwrap();
        assert_ne!(
            barrier.with_keyring(|keyring| keyring.active_term).unwrap(),
            stored.active_term
        );
        barrier.replace_keyring_from_storage().unwrap();
        assert_eq!(
            barrier.with_keyring(|keyring| keyring.active_term).unwrap(),
            stored.active_term
        );

        // A detached value opens under its label only.
        let sealed = barrier.seal_detached("label/a", b"hash").unwrap();
        assert_eq!(barrier.open("label/a", &sealed).unwrap(), b"hash");
        assert!(barrier.open("label/b", &sealed).is_err());

        // Another cluster's keyring, under another root key: refused, and kept out.
        store_keyring(&backend, &rng, &Keyring::generate(&rng, 0)).await;
        assert!(matches!(
            barrier.replace_keyring_from_storage(),
            Err(BarrierError::Corrupt { .. })
        ));
        assert_eq!(
            barrier.with_keyring(|keyring| keyring.active_term).unwrap(),
            stored.active_term
        );
        assert!(barrier.open("label/a", &sealed).is_ok());
    }
}
