//! The file `operator raft snapshot save` writes and `restore` reads: the whole key
//! space of a cluster, values exactly as stored (the barrier's ciphertext, so a saved
//! snapshot never holds a plaintext secret).
//!
//! Layout, version 1 (integers big-endian):
//!
//! ```text
//! [8]  magic "ARCASNAP"
//! [1]  format version
//! [4]  header length h (at most HEADER_BYTES_MAX)
//! [h]  header: JSON of SavedSnapshotHeader (cluster id, Raft index and term, entry count,
//!      content length, content SHA-256, the barrier-sealed SHA-256)
//! [32] SHA-256 of everything before it (magic, version, length and header)
//! [..] content: per entry [u32 key length][key][u32 value length][value], keys in
//!      strictly increasing order; exactly the header's content length
//! ```
//!
//! Decoding reads like [`super::record`]: every length is checked against the bytes
//! present before it is used; a file cut short (`Truncated`) and one whose bytes are
//! all there but wrong (`Corrupt`) are different answers; the version is read before
//! anything it governs. Any input decodes to a snapshot or an error, never a panic.
//!
//! The sealed SHA-256 is Vault's "hash file": the content hash encrypted by the barrier
//! of the cluster that saved it. A plain restore opens it with the restoring cluster's
//! keyring, which proves the snapshot was taken under the same keys; a forced restore
//! skips that proof.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::KEY_BYTES_MAX;

/// The first bytes of every saved snapshot.
pub const MAGIC: &[u8; 8] = b"ARCASNAP";
/// The format version this code writes; any other is refused rather than guessed at.
pub const FORMAT_VERSION: u8 = 1;
/// The largest saved snapshot accepted or written. A restore stages its entries in
/// bounded Raft batches (`core::snapshots`), so this is not tied to the size of a Raft
/// entry; it bounds what one restore request holds in memory (the body, its decoded
/// entries, and the staged copy beside the old key space on every node). The restore
/// endpoints take request bodies up to this size.
pub const SAVED_SNAPSHOT_BYTES_MAX: usize = 256 * 1024 * 1024;
/// The largest header: a few hundred bytes of JSON in practice.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;
/// The most entries a snapshot may hold: a million keys is far beyond any cluster
/// Arca is sized for, and bounds the per-entry overhead of decoding and staging.
pub const ENTRIES_MAX: usize = 1024 * 1024;
/// The associated data the content hash is sealed under: a name no stored key has, so
/// a sealed hash cannot pass for a stored value or the other way round.
pub const SEALED_SHA256_LABEL: &str = "core/raft/snapshot-sha256";

const PREFIX_BYTES: usize = MAGIC.len() + 1 + 4;
const CHECKSUM_BYTES: usize = 32;

/// What a saved snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSnapshotHeader {
    /// The id of the cluster that saved it (`core/cluster/info`).
    pub cluster_id: String,
    /// The last Raft log index the content reflects.
    pub raft_index: u64,
    /// The Raft term of the leader that saved it.
    pub raft_term: u64,
    /// When it was saved, in seconds since the epoch.
    pub created_unix: i64,
    pub entries: u64,
    pub content_bytes: u64,
    /// SHA-256 of the content, hex.
    pub content_sha256: String,
    /// The content SHA-256 sealed by the saving cluster's barrier, hex.
    pub sealed_sha256: String,
}

/// A decoded, checked snapshot: its header and every stored key and value, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    pub header: SavedSnapshotHeader,
    pub entries: Vec<(String, Vec<u8>)>,
}

/// The encoded content and what the header says of it, before the header is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotContent {
    pub bytes: Vec<u8>,
    pub entries: u64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedSnapshotError {
    #[error("not an Arca snapshot (the file does not start with {MAGIC:?})")]
    NotASnapshot,
    #[error(
        "snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    UnknownVersion { found: u8 },
    #[error("snapshot is truncated: {0}")]
    Truncated(String),
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("snapshot of {bytes} bytes exceeds the limit of {SAVED_SNAPSHOT_BYTES_MAX} bytes")]
    TooLarge { bytes: usize },
    #[error("snapshot of {entries} entries exceeds the limit of {ENTRIES_MAX}")]
    TooManyEntries { entries: usize },
}

/// Encode the stored entries (in key order, as a state machine view yields them).
pub fn encode_content<'a>(
    entries: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<SnapshotContent, SavedSnapshotError> {
    let mut bytes = Vec::new();
    let mut count = 0usize;
    let mut previous: Option<&str> = None;
    for (key, value) in entries {
        assert!(
            previous.is_none_or(|previous| previous < key),
            "a state machine view yields keys in strictly increasing order"
        );
        previous = Some(key);
        count += 1;
        if count > ENTRIES_MAX {
            return Err(SavedSnapshotError::TooManyEntries { entries: count });
        }
        bytes.extend_from_slice(&length_u32(key.len())?.to_be_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(&length_u32(value.len())?.to_be_bytes());
        bytes.extend_from_slice(value);
        if bytes.len() > SAVED_SNAPSHOT_BYTES_MAX {
            return Err(SavedSnapshotError::TooLarge { bytes: bytes.len() });
        }
    }
    let sha256 = Sha256::digest(&bytes).into();
    Ok(SnapshotContent {
        bytes,
        entries: count as u64,
        sha256,
    })
}

fn length_u32(length: usize) -> Result<u32, SavedSnapshotError> {
    u32::try_from(length).map_err(|_| SavedSnapshotError::TooLarge { bytes: length })
}

/// The whole file: prefix, header, header checksum, content.
pub fn assemble(
    header: &SavedSnapshotHeader,
    content: &SnapshotContent,
) -> Result<Vec<u8>, SavedSnapshotError> {
    assert_eq!(header.content_bytes, content.bytes.len() as u64);
    assert_eq!(header.entries, content.entries);
    let header_bytes = serde_json::to_vec(header).expect("a header serializes");
    assert!(
        header_bytes.len() <= HEADER_BYTES_MAX,
        "a header is a few hundred bytes"
    );
    let total = PREFIX_BYTES + header_bytes.len() + CHECKSUM_BYTES + content.bytes.len();
    if total > SAVED_SNAPSHOT_BYTES_MAX {
        return Err(SavedSnapshotError::TooLarge { bytes: total });
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(header_bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&header_bytes);
    let checksum: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&checksum);
    out.extend_from_slice(&content.bytes);
    Ok(out)
}

/// Decode and check a whole saved snapshot.
pub fn decode(bytes: &[u8]) -> Result<SavedSnapshot, SavedSnapshotError> {
    let (header, content) = split(bytes)?;
    let entries = decode_content(content, &header)?;
    Ok(SavedSnapshot { header, entries })
}

/// Check the framing, the header and the content hash; return the header and the
/// content bytes (not yet parsed into entries).
fn split(bytes: &[u8]) -> Result<(SavedSnapshotHeader, &[u8]), SavedSnapshotError> {
    if bytes.len() > SAVED_SNAPSHOT_BYTES_MAX {
        return Err(SavedSnapshotError::TooLarge { bytes: bytes.len() });
    }
    let magic_present = bytes.len().min(MAGIC.len());
    if bytes[..magic_present] != MAGIC[..magic_present] {
        return Err(SavedSnapshotError::NotASnapshot);
    }
    if bytes.len() < PREFIX_BYTES {
        return Err(SavedSnapshotError::Truncated(format!(
            "{} bytes, shorter than the {PREFIX_BYTES}-byte prefix",
            bytes.len()
        )));
    }
    let version = bytes[MAGIC.len()];
    if version != FORMAT_VERSION {
        return Err(SavedSnapshotError::UnknownVersion { found: version });
    }
    let header_length = u32::from_be_bytes(
        bytes[MAGIC.len() + 1..PREFIX_BYTES]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    if header_length > HEADER_BYTES_MAX {
        return Err(SavedSnapshotError::Corrupt(format!(
            "header length {header_length} exceeds the limit of {HEADER_BYTES_MAX}"
        )));
    }
    let header_end = PREFIX_BYTES + header_length;
    let content_start = header_end + CHECKSUM_BYTES;
    if bytes.len() < content_start {
        return Err(SavedSnapshotError::Truncated(
            "the header or its checksum is cut short".into(),
        ));
    }
    let checksum: [u8; 32] = Sha256::digest(&bytes[..header_end]).into();
    if checksum[..] != bytes[header_end..content_start] {
        return Err(SavedSnapshotError::Corrupt(
            "header checksum mismatch".into(),
        ));
    }
    let header: SavedSnapshotHeader = serde_json::from_slice(&bytes[PREFIX_BYTES..header_end])
        .map_err(|error| SavedSnapshotError::Corrupt(format!("header: {error}")))?;
    let content = &bytes[content_start..];
    let expected = usize::try_from(header.content_bytes).unwrap_or(usize::MAX);
    if content.len() < expected {
        return Err(SavedSnapshotError::Truncated(format!(
            "{} of {expected} content bytes present",
            content.len()
        )));
    }
    if content.len() > expected {
        return Err(SavedSnapshotError::Corrupt(format!(
            "{} bytes after the content",
            content.len() - expected
        )));
    }
    let sha256 = hex::encode(Sha256::digest(content));
    if sha256 != header.content_sha256 {
        return Err(SavedSnapshotError::Corrupt(
            "content checksum mismatch".into(),
        ));
    }
    Ok((header, content))
}

/// Parse the content (already checked against its hash, so an error here means the
/// saving side wrote nonsense under a valid hash; it is refused all the same).
fn decode_content(
    content: &[u8],
    header: &SavedSnapshotHeader,
) -> Result<Vec<(String, Vec<u8>)>, SavedSnapshotError> {
    let corrupt = SavedSnapshotError::Corrupt;
    let declared = usize::try_from(header.entries).unwrap_or(usize::MAX);
    if declared > ENTRIES_MAX {
        return Err(SavedSnapshotError::TooManyEntries { entries: declared });
    }
    // Each entry takes at least its two 4-byte lengths and a 1-byte key, so a header
    // cannot make this allocate for more entries than the content could hold.
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(declared.min(content.len() / 9));
    let mut offset = 0;
    while offset < content.len() {
        if entries.len() == declared {
            return Err(corrupt(format!(
                "more entries than the {declared} the header declares"
            )));
        }
        let key = take(content, &mut offset, "key")?;
        if key.is_empty() || key.len() > KEY_BYTES_MAX {
            return Err(corrupt(format!("a key of {} bytes", key.len())));
        }
        let key = std::str::from_utf8(key)
            .map_err(|_| corrupt("a key is not UTF-8".into()))?
            .to_string();
        let value = take(content, &mut offset, "value")?.to_vec();
        if entries.last().is_some_and(|(previous, _)| *previous >= key) {
            return Err(corrupt(format!("key {key:?} is out of order")));
        }
        entries.push((key, value));
    }
    if entries.len() != declared {
        return Err(corrupt(format!(
            "{} entries, the header declares {declared}",
            entries.len()
        )));
    }
    Ok(entries)
}

/// The length-prefixed field at `offset`, moving `offset` past it.
fn take<'a>(
    content: &'a [u8],
    offset: &mut usize,
    what: &str,
) -> Result<&'a [u8], SavedSnapshotError> {
    let corrupt = SavedSnapshotError::Corrupt;
    let length_end = offset
        .checked_add(4)
        .filter(|end| *end <= content.len())
        .ok_or_else(|| corrupt(format!("{what} length runs past the content")))?;
    let length =
        u32::from_be_bytes(content[*offset..length_end].try_into().expect("4 bytes")) as usize;
    let end = length_end
        .checked_add(length)
        .filter(|end| *end <= content.len())
        .ok_or_else(|| corrupt(format!("{what} of {length} bytes runs past the content")))?;
    *offset = end;
    Ok(&content[length_end..end])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn header_for(content: &SnapshotContent) -> SavedSnapshotHeader {
        SavedSnapshotHeader {
            cluster_id: "c0ffee".into(),
            raft_index: 42,
            raft_term: 3,
            created_unix: 1_700_000_000,
            entries: content.entries,
            content_bytes: content.bytes.len() as u64,
            content_sha256: hex::encode(content.sha256),
            sealed_sha256: "00".into(),
        }
    }

    fn sample() -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
        let entries: Vec<(String, Vec<u8>)> = vec![
            (crate::storage::key_space::KEYRING_KEY.into(), vec![1, 2, 3]),
            ("logical/abc/secret".into(), vec![9; 40]),
            ("sys/token/id/x".into(), Vec::new()),
        ];
        let content = encode_content(
            entries
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_slice())),
        )
        .unwrap();
        let file = assemble(&header_for(&content), &content).unwrap();
        (entries, file)
    }

    #[test]
    fn a_saved_snapshot_decodes_to_what_was_saved() {
        let (entries, file) = sample();
        let decoded = decode(&file).unwrap();
        assert_eq!(decoded.entries, entries);
        assert_eq!(decoded.header.raft_index, 42);
        assert_eq!(decoded.header.entries, 3);

        // An empty key space is a valid snapshot too.
        let empty = encode_content(std::iter::empty()).unwrap();
        let file = assemble(&header_for(&empty), &empty).unwrap();
        assert!(decode(&file).unwrap().entries.is_empty());
    }

    #[test]
    fn each_class_of_damage_is_refused_with_its_own_answer() {
        let (_, file) = sample();
        let header_end =
            PREFIX_BYTES + u32::from_be_bytes(file[9..13].try_into().unwrap()) as usize;

        // Not a snapshot at all.
        assert_eq!(
            decode(b"{\"json\": 1}"),
            Err(SavedSnapshotError::NotASnapshot)
        );
        assert_eq!(
            decode(b""),
            Err(SavedSnapshotError::Truncated(
                "0 bytes, shorter than the 13-byte prefix".into()
            ))
        );

        // A version this build does not read.
        let mut future = file.clone();
        future[8] = 2;
        assert_eq!(
            decode(&future),
            Err(SavedSnapshotError::UnknownVersion { found: 2 })
        );

        // Cut anywhere: truncated, never corrupt or a panic.
        for cut in [5, 12, 20, header_end + 10, file.len() - 1] {
            assert!(
                matches!(decode(&file[..cut]), Err(SavedSnapshotError::Truncated(_))),
                "cut at {cut}: {:?}",
                decode(&file[..cut])
            );
        }

        // A flipped byte in the header, in its checksum, or in the content.
        for at in [20, header_end + 3, file.len() - 5] {
            let mut flipped = file.clone();
            flipped[at] ^= 0x40;
            assert!(
                matches!(decode(&flipped), Err(SavedSnapshotError::Corrupt(_))),
                "flip at {at}: {:?}",
                decode(&flipped)
            );
        }

        // Bytes appended after the content.
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(SavedSnapshotError::Corrupt(_))
        ));

        // A header length past the limit.
        let mut huge = file.clone();
        huge[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&huge), Err(SavedSnapshotError::Corrupt(_))));
    }

    #[test]
    fn content_under_a_valid_hash_is_still_checked() {
        // Keys out of order, and a length that runs past the end, each with a header
        // and hashes that match them.
        let mut unordered = Vec::new();
        for key in ["b", "a"] {
            unordered.extend_from_slice(&1u32.to_be_bytes());
            unordered.extend_from_slice(key.as_bytes());
            unordered.extend_from_slice(&0u32.to_be_bytes());
        }
        let mut overrun = Vec::new();
        overrun.extend_from_slice(&100u32.to_be_bytes());
        overrun.extend_from_slice(b"k");
        for (bytes, entries) in [(unordered, 2), (overrun, 1)] {
            let content = SnapshotContent {
                sha256: Sha256::digest(&bytes).into(),
                bytes,
                entries,
            };
            let file = assemble(&header_for(&content), &content).unwrap();
            assert!(matches!(decode(&file), Err(SavedSnapshotError::Corrupt(_))));
        }
    }

    proptest! {
        /// Any bytes at all decode to a snapshot or an error, never a panic; with the
        /// magic and version in front, the deeper checks are reached too.
        #[test]
        fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512),
                                    prefixed in any::<bool>()) {
            let mut bytes = Vec::new();
            if prefixed {
                bytes.extend_from_slice(MAGIC);
                bytes.push(FORMAT_VERSION);
            }
            bytes.extend_from_slice(&tail);
            let _ = decode(&bytes);
        }

        /// Random damage to a valid file never panics and is never silently accepted
        /// as different content.
        #[test]
        fn a_damaged_file_is_refused_or_decodes_to_the_original(
            at in 0usize..4096, mask in 1u8..=255, cut in any::<bool>()) {
            let (entries, file) = sample();
            let at = at % file.len();
            let damaged = if cut {
                file[..at].to_vec()
            } else {
                let mut damaged = file.clone();
                damaged[at] ^= mask;
                damaged
            };
            if let Ok(decoded) = decode(&damaged) {
                prop_assert_eq!(decoded.entries, entries);
            }
        }
    }
}
