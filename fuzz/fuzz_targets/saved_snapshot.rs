//! Saved snapshots arrive as request bodies from anyone holding a sudo token, and from
//! files an operator picked: any bytes must decode to a snapshot or an error, never a
//! panic, and a snapshot that decodes must encode back to the same bytes' entries.
#![no_main]
use arca::raft::saved_snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a valid prefix, so the fuzzer reaches the header and content
    // checks without first having to find the magic.
    let mut prefixed = Vec::with_capacity(data.len() + 9);
    prefixed.extend_from_slice(saved_snapshot::MAGIC);
    prefixed.push(saved_snapshot::FORMAT_VERSION);
    prefixed.extend_from_slice(data);
    for bytes in [data, &prefixed[..]] {
        if let Ok(snapshot) = saved_snapshot::decode(bytes) {
            let content = saved_snapshot::encode_content(
                snapshot
                    .entries
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_slice())),
            )
            .expect("decoded entries are within the limits");
            let hash: String = content.sha256.iter().map(|byte| format!("{byte:02x}")).collect();
            assert_eq!(hash, snapshot.header.content_sha256);
        }
    }
});
