//! Byte strings in serde: written as one (a length and the bytes, copied at once)
//! instead of serde's default for `[u8]`, a sequence of single bytes that bincode
//! encodes and decodes one call per byte (most of a snapshot's time at 100,000 keys).
//! Bincode writes both alike, so data written either way reads back alike.

use serde::Serialize;

/// A borrowed byte string, serialized with `serialize_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawBytes<'a>(pub &'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// An owned byte string read as one ([`RawBytes`] written, or a sequence of bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteBuf(pub Vec<u8>);

impl Serialize for ByteBuf {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawBytes(&self.0).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(bytes.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(bytes))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ByteBuf, A::Error> {
                // Bounded by what the input holds, never by a length it claims.
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(byte) = seq.next_element()? {
                    bytes.push(byte);
                }
                Ok(ByteBuf(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

/// `#[serde(with = "crate::storage::byte_string::bytes_field")]` for a `Vec<u8>` or a
/// `Bytes` field: written and read as one byte string (see [`RawBytes`]).
pub mod bytes_field {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&super::RawBytes(bytes), serializer)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>, T: From<Vec<u8>>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        <super::ByteBuf as serde::Deserialize>::deserialize(deserializer).map(|buf| buf.0.into())
    }
}
