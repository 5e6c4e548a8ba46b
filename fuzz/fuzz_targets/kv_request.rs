//! KV request bodies and paths come from any client: the KV v2 engine must answer any
//! path and JSON body with a response or a clean error, never a panic.
#![no_main]
use std::sync::Arc;

use arca::barrier::{Barrier, Keyring};
use arca::env::SharedRng;
use arca::logical::{Operation, Request};
use arca::storage::MemoryBackend;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, body) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(serde_json::Value::Object(body)) = serde_json::from_str::<serde_json::Value>(body) else { return };
    let rng = SharedRng::from_u64(1);
    let barrier = Barrier::new(Arc::new(MemoryBackend::new()), rng.clone());
    barrier.unseal_with(Keyring::generate(&rng, 0));
    let view = barrier.view("logical/fuzz/");
    for operation in [Operation::Create, Operation::Read, Operation::Patch, Operation::List, Operation::Delete] {
        let request = Request::new(operation, path, body.clone(), 1_700_000_000);
        let _ = futures::executor::block_on(arca::engines::kv_v2::handle(&view, &request));
    }
});
