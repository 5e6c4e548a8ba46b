//! Request paths and query strings come from any client: decoding must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = arca::http::percent_decode(text);
        let _ = arca::http::parse_query(text);
        let _ = arca::logical::parse_duration_text(text);
        let _ = arca::storage::validate_key(text);
    }
});
