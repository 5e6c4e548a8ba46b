//! The checksummed record format shared by log segments and snapshot files:
//! `[u32 length][u32 crc32][u8 version][bincode body]`, little-endian, where `length`
//! counts the body and the CRC covers the version byte and the body.
//!
//! Decoding distinguishes a record that runs past the end of the bytes (a torn write:
//! the caller decides whether that is a recoverable tail) from one whose bytes are all
//! there but wrong (corruption).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version byte of every record this code writes.
pub const RECORD_VERSION: u8 = 1;
/// Length, CRC and version.
pub const RECORD_HEADER_BYTES: usize = 9;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record body of {bytes} bytes exceeds the limit of {bytes_max}")]
    TooLarge { bytes: usize, bytes_max: usize },
    #[error("cannot encode record: {0}")]
    Encode(String),
}

/// What is found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordRead<'a> {
    /// A whole, valid record; the next one starts at `end`.
    Complete { body: &'a [u8], end: usize },
    /// The header or the body runs past the end of the bytes.
    Incomplete,
    /// All bytes are present but the record is invalid; `end` is where it claims to end.
    Corrupt { reason: String, end: usize },
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encode `value` as one record. The body is encoded in place after a header that is
/// filled in last. (A snapshot file, too large for a second copy, is written from
/// [`header_for_pieces`] and its parts instead.)
pub fn encode<T: Serialize>(value: &T, body_bytes_max: usize) -> Result<Vec<u8>, RecordError> {
    let mut record = vec![0; RECORD_HEADER_BYTES];
    bincode::serde::encode_into_std_write(value, &mut record, bincode_config())
        .map_err(|error| RecordError::Encode(error.to_string()))?;
    let body_bytes = record.len() - RECORD_HEADER_BYTES;
    if body_bytes > body_bytes_max {
        return Err(RecordError::TooLarge {
            bytes: body_bytes,
            bytes_max: body_bytes_max,
        });
    }
    record[RECORD_HEADER_BYTES - 1] = RECORD_VERSION;
    let crc = crc32fast::hash(&record[RECORD_HEADER_BYTES - 1..]);
    record[..4].copy_from_slice(&(body_bytes as u32).to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(record)
}

/// The header of a record whose body is `pieces` one after another: the record is this
/// header followed by the pieces, byte for byte what [`encode`] makes of the same body.
/// For a body too large to copy into a second buffer (a snapshot file: its metadata,
/// then the encoded state, written from where they lie).
pub fn header_for_pieces(
    pieces: &[&[u8]],
    body_bytes_max: usize,
) -> Result<[u8; RECORD_HEADER_BYTES], RecordError> {
    let body_bytes: usize = pieces.iter().map(|piece| piece.len()).sum();
    if body_bytes > body_bytes_max {
        return Err(RecordError::TooLarge {
            bytes: body_bytes,
            bytes_max: body_bytes_max,
        });
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[RECORD_VERSION]);
    for piece in pieces {
        crc.update(piece);
    }
    let mut header = [0; RECORD_HEADER_BYTES];
    header[..4].copy_from_slice(&(body_bytes as u32).to_le_bytes());
    header[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    header[RECORD_HEADER_BYTES - 1] = RECORD_VERSION;
    Ok(header)
}

/// Read the record starting at `offset` of `bytes`.
pub fn read(bytes: &[u8], offset: usize, body_bytes_max: usize) -> RecordRead<'_> {
    let Some(header) = bytes.get(offset..offset + RECORD_HEADER_BYTES) else {
        return RecordRead::Incomplete;
    };
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let version = header[8];
    let body_start = offset + RECORD_HEADER_BYTES;
    let end = body_start.saturating_add(length);
    if end > bytes.len() {
        return RecordRead::Incomplete;
    }
    if length > body_bytes_max {
        return RecordRead::Corrupt {
            reason: format!("record length {length} exceeds the limit of {body_bytes_max}"),
            end,
        };
    }
    let body = &bytes[body_start..end];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[version]);
    hasher.update(body);
    if hasher.finalize() != crc {
        return RecordRead::Corrupt {
            reason: "checksum mismatch".to_string(),
            end,
        };
    }
    if version != RECORD_VERSION {
        return RecordRead::Corrupt {
            reason: format!("unknown record version {version}"),
            end,
        };
    }
    RecordRead::Complete { body, end }
}

/// The most a decoded body may claim to hold; bounds allocations when decoding.
const DECODE_BYTES_MAX: usize = 1 << 30;

/// Decode a record body checked by [`read`].
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let config = bincode_config().with_limit::<DECODE_BYTES_MAX>();
    let (value, used) =
        bincode::serde::decode_from_slice(body, config).map_err(|error| error.to_string())?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the body",
            body.len() - used
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::byte_string::{ByteBuf, RawBytes};

    #[test]
    fn raw_bytes_encode_like_a_sequence_of_bytes_and_read_back_either_way() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let as_sequence = encode(&("k", &bytes[..]), 4096).unwrap();
        let as_string = encode(&("k", RawBytes(&bytes)), 4096).unwrap();
        assert_eq!(as_sequence, as_string, "the format must not change");
        let RecordRead::Complete { body, .. } = read(&as_sequence, 0, 4096) else {
            panic!("a fresh record must read back");
        };
        let (key, read_back): (String, ByteBuf) = decode_body(body).unwrap();
        assert_eq!((key.as_str(), read_back.0), ("k", bytes));
        // A claimed length beyond the input is an error, not an allocation.
        let mut lying = as_sequence[RECORD_HEADER_BYTES..].to_vec();
        lying.truncate(10);
        assert!(decode_body::<(String, ByteBuf)>(&lying).is_err());
    }

    #[test]
    fn a_header_for_pieces_makes_the_record_encode_makes() {
        let value: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let whole = encode(&("key", RawBytes(&value)), 8192).unwrap();
        // The same body in two pieces: the tuple's first field, then the byte string.
        let body = &whole[RECORD_HEADER_BYTES..];
        let (front, back) = body.split_at(4);
        let header = header_for_pieces(&[front, back], 8192).unwrap();
        assert_eq!(&whole[..RECORD_HEADER_BYTES], &header[..]);
        assert_eq!(
            header_for_pieces(&[front, back], 100),
            Err(RecordError::TooLarge {
                bytes: body.len(),
                bytes_max: 100
            })
        );
    }

    #[test]
    fn a_record_round_trips_and_detects_damage() {
        let record = encode(&("key".to_string(), vec![1u8, 2, 3]), 1024).unwrap();
        let RecordRead::Complete { body, end } = read(&record, 0, 1024) else {
            panic!("a fresh record must read back");
        };
        assert_eq!(end, record.len());
        let value: (String, Vec<u8>) = decode_body(body).unwrap();
        assert_eq!(value, ("key".to_string(), vec![1, 2, 3]));

        // Every proper prefix is a torn record, never a corrupt one.
        for length in 0..record.len() {
            assert_eq!(read(&record[..length], 0, 1024), RecordRead::Incomplete);
        }
        // Any flipped byte after the length field is caught.
        for offset in 4..record.len() {
            let mut damaged = record.clone();
            damaged[offset] ^= 0xff;
            assert!(matches!(
                read(&damaged, 0, 1024),
                RecordRead::Corrupt { .. }
            ));
        }
        assert!(matches!(
            encode(&vec![0u8; 100], 10),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_record_from_a_newer_format_is_refused_by_name() {
        // A well-formed record (its checksum is right) whose version this build does
        // not know: the answer names the version instead of guessing at the body.
        let mut record = encode(&7u32, 1024).unwrap();
        let version = RECORD_VERSION + 1;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[version]);
        hasher.update(&record[RECORD_HEADER_BYTES..]);
        record[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
        record[8] = version;
        assert_eq!(
            read(&record, 0, 1024),
            RecordRead::Corrupt {
                reason: format!("unknown record version {version}"),
                end: record.len(),
            }
        );
    }
}
