//! Bytes on the cluster channel come from any peer that can connect: decoding frames
//! (under the handshake bound and the full bound) and forwarded requests must fail
//! cleanly, never panic or allocate past the announced, bounded length.
#![no_main]
use arca::channel::ForwardRequest;
use arca::channel::frame::{FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX, decode_body, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limit in [HANDSHAKE_FRAME_BYTES_MAX, FRAME_BYTES_MAX] {
        // Several frames in a row, as on a long-lived connection.
        let mut rest = data;
        while let Ok(Some((_frame, used))) = decode_frame(rest, limit) {
            assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
    }
    if let Ok(request) = decode_body::<ForwardRequest>(data) {
        let _ = request.into_api();
    }
});
