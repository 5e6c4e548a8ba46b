//! Bytes on `arca-repl/1` come from whoever can reach the cluster port: decoding a
//! request or an answer must fail cleanly, never panic, and a decoded request's MAC
//! check must never accept a request it was not made for.
#![no_main]
use arca::channel::frame::decode_body;
use arca::replication::protocol::{ReplRequest, ReplResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_body::<ReplRequest>(data) {
        // A key nobody holds: an input can only verify by forging HMAC-SHA256.
        assert!(!request.verify(b"a key no fuzz input knows, 32 b"));
        let _ = arca::replication::state::check_secondary_id(&request.secondary_id);
    }
    let _ = decode_body::<ReplResponse>(data);
});
