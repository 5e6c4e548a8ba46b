//! An in-memory [`Backend`] for unit tests of everything above storage.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::{Backend, Op, StorageError, list_children, validate_batch, validate_key};

#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<(BTreeMap<String, Vec<u8>>, u64)>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many batches were committed (the "log index" of this backend).
    pub fn commits(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1
    }

    /// Every key and raw (encrypted) value, for tests that look for plaintext.
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .0
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        validate_key(key)?;
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(state.0.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(list_children(
            state
                .0
                .range(prefix.to_string()..)
                .map(|(key, _)| key.as_str())
                .take_while(|key| key.starts_with(prefix)),
            prefix,
        ))
    }

    fn commit(&self, ops: Vec<Op>) -> BoxFuture<'static, Result<u64, StorageError>> {
        let result = validate_batch(&ops).map(|()| {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for op in ops {
                match op {
                    Op::Put { key, value } => {
                        state.0.insert(key, Vec::from(value));
                    }
                    Op::Delete { key } => {
                        state.0.remove(&key);
                    }
                }
            }
            state.1 += 1;
            state.1
        });
        if let Ok(index) = result {
            super::commit_count::note_commit(index);
        }
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Op {
        Op::Put {
            key: key.to_string(),
            value: vec![1].into(),
        }
    }

    #[tokio::test]
    async fn list_names_immediate_children_once() {
        let backend = MemoryBackend::new();
        backend
            .commit(vec![
                put("logical/u/a/b"),
                put("logical/u/a/c/d"),
                put("logical/u/a/c/e"),
                put("logical/u/b"),
            ])
            .await
            .unwrap();
        assert_eq!(backend.list("logical/u/a/").unwrap(), vec!["b", "c/"]);
        assert_eq!(backend.list("logical/u/").unwrap(), vec!["a/", "b"]);
        assert_eq!(backend.list("").unwrap(), vec!["logical/"]);
    }

    #[tokio::test]
    async fn a_batch_with_an_unregistered_key_is_refused_whole() {
        let backend = MemoryBackend::new();
        let refused = backend
            .commit(vec![put("logical/u/fine"), put("secret/unregistered")])
            .await;
        assert_eq!(
            refused,
            Err(StorageError::UnregisteredKey(
                crate::storage::UnregisteredKey("secret/unregistered".to_string())
            ))
        );
        assert_eq!(backend.commits(), 0);
        assert!(
            backend.dump().is_empty(),
            "nothing of the batch was applied"
        );
    }
}
