//! Shared scaffolding for engine tests: an unsealed barrier over a memory backend and
//! request builders.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::barrier::{Barrier, Keyring, View};
use crate::env::SharedRng;
use crate::logical::{Operation, Request};
use crate::storage::MemoryBackend;

pub struct Fixture {
    pub backend: Arc<MemoryBackend>,
    pub barrier: Barrier,
    pub view: View,
}

pub fn fixture() -> Fixture {
    let rng = SharedRng::from_u64(1);
    let backend = Arc::new(MemoryBackend::new());
    let barrier = Barrier::new(backend.clone(), rng.clone());
    barrier.unseal_with(Keyring::generate(&rng, 0));
    let view = barrier.view("logical/uuid/");
    Fixture {
        backend,
        barrier,
        view,
    }
}

impl Fixture {
    /// Whether `needle` appears anywhere in the raw (encrypted) stored bytes or keys.
    pub fn storage_contains(&self, needle: &str) -> bool {
        self.backend.dump().iter().any(|(key, raw)| {
            key.contains(needle)
                || raw
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
        })
    }
}

pub fn request(operation: Operation, path: &str, body: Value, now_unix: i64) -> Request {
    let data: Map<String, Value> = match body {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Request::new(operation, path, data, now_unix)
}
