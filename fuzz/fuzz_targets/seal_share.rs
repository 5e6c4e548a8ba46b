//! Unseal shares arrive from operators as text: decoding and combining must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = arca::seal::decode_share(text);
    }
    let parts: Vec<Vec<u8>> = data.chunks(9).map(|chunk| chunk.to_vec()).collect();
    let _ = arca::seal::shamir::combine(&parts);
});
