//! Stored and replicated ciphertexts are read back from disk and from peers: opening a
//! corrupt one must fail cleanly, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = [7u8; arca::barrier::aead::KEY_BYTES];
    let _ = arca::barrier::aead::term_of(data);
    let _ = arca::barrier::aead::open(&key, b"logical/fuzz", data);
});
