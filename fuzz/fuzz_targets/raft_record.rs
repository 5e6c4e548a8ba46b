//! Raft log records are read back from disk after crashes: any bytes must decode to a
//! record, a torn tail or a corruption error, never a panic.
#![no_main]
use arca::raft::record::{self, RecordRead};
use arca::raft::types::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    while offset < data.len() {
        match record::read(data, offset, 1 << 20) {
            RecordRead::Complete { body, end } => {
                let _ = record::decode_body::<Entry>(body);
                assert!(end > offset, "a complete record must advance");
                offset = end;
            }
            RecordRead::Incomplete | RecordRead::Corrupt { .. } => break,
        }
    }
});
