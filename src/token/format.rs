//! Token and accessor text formats, as Vault 1.10+ prints them.
//!
//! Root tokens (and tokens with a caller-chosen id) use the short form: `hvs.` and 24
//! base62 characters. Service tokens use the long form: `hvs.` and the unpadded
//! base64url of a protobuf `SignedToken { 1: token_version = 1, 2: hmac (32 bytes),
//! 3: Token { 1: random = "hvs.<24 base62>" } }`. The HMAC (SHA-256, keyed with a
//! per-cluster secret) covers the marshalled `Token`, so a long-form token decodes back
//! to its short `random` part only if this cluster signed it. The store keys entries
//! by the short part.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::env::SharedRng;

/// The longest token text accepted anywhere (Vault plans for 255 bytes).
pub const TOKEN_BYTES_MAX: usize = 255;
/// The prefix of service tokens since Vault 1.10.
pub const SERVICE_PREFIX: &str = "hvs.";
/// Random base62 characters in a short token and in an accessor.
pub const RANDOM_CHARS: usize = 24;
pub const ACCESSOR_CHARS: usize = 24;
/// The only `SignedToken.token_version` Vault writes.
const SIGNED_TOKEN_VERSION: u64 = 1;
const HMAC_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A fresh short token: `hvs.` + 24 base62.
pub fn new_short_token(rng: &SharedRng) -> String {
    format!("{SERVICE_PREFIX}{}", rng.base62(RANDOM_CHARS))
}

/// A fresh accessor: 24 base62.
pub fn new_accessor(rng: &SharedRng) -> String {
    rng.base62(ACCESSOR_CHARS)
}

/// Wrap a short token in Vault's signed long form.
pub fn encode_long_form(short: &str, signing_key: &[u8; 32]) -> String {
    let mut token_message = Vec::with_capacity(short.len() + 2);
    put_bytes_field(&mut token_message, 1, short.as_bytes());
    let tag = sign(&token_message, signing_key);
    let mut signed = Vec::with_capacity(token_message.len() + HMAC_BYTES + 6);
    signed.push(0x08); // field 1, varint
    put_varint(&mut signed, SIGNED_TOKEN_VERSION);
    put_bytes_field(&mut signed, 2, &tag);
    put_bytes_field(&mut signed, 3, &token_message);
    format!("{SERVICE_PREFIX}{}", URL_SAFE_NO_PAD.encode(signed))
}

/// The short token inside a long-form token, if `token` is one and its HMAC verifies
/// (in constant time) under `signing_key`.
pub fn decode_long_form(token: &str, signing_key: &[u8; 32]) -> Option<String> {
    if token.len() > TOKEN_BYTES_MAX {
        return None;
    }
    let body = token.strip_prefix(SERVICE_PREFIX)?;
    let signed = URL_SAFE_NO_PAD.decode(body).ok()?;
    let mut version = None;
    let mut tag = None;
    let mut token_message = None;
    for field in Fields::new(&signed) {
        match field? {
            (1, FieldValue::Varint(value)) => version = Some(value),
            (2, FieldValue::Bytes(bytes)) => tag = Some(bytes),
            (3, FieldValue::Bytes(bytes)) => token_message = Some(bytes),
            _ => {}
        }
    }
    if version != Some(SIGNED_TOKEN_VERSION) {
        return None;
    }
    let (tag, token_message) = (tag?, token_message?);
    let mut mac = HmacSha256::new_from_slice(signing_key).ok()?;
    mac.update(token_message);
    mac.verify_slice(tag).ok()?;
    let mut random = None;
    for field in Fields::new(token_message) {
        if let (1, FieldValue::Bytes(bytes)) = field? {
            random = Some(std::str::from_utf8(bytes).ok()?.to_string());
        }
    }
    random.filter(|random| is_short_token(random))
}

/// `hvs.` + exactly 24 base62 characters.
pub fn is_short_token(token: &str) -> bool {
    token.strip_prefix(SERVICE_PREFIX).is_some_and(|random| {
        random.len() == RANDOM_CHARS && random.bytes().all(|byte| byte.is_ascii_alphanumeric())
    })
}

/// Whether `token` is plausible token text at all (checked once at the boundary, before
/// any HMAC is computed): bounded, printable ASCII, no whitespace.
pub fn is_acceptable_text(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= TOKEN_BYTES_MAX
        && token.bytes().all(|b| b.is_ascii_graphic())
}

fn sign(message: &[u8], signing_key: &[u8; 32]) -> [u8; HMAC_BYTES] {
    let mut mac =
        HmacSha256::new_from_slice(signing_key).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

enum FieldValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// A bounded protobuf field reader: varint and length-delimited fields only; any other
/// wire type or a truncated field ends the iteration with `None`.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first()?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn field(&mut self) -> Option<(u64, FieldValue<'a>)> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => FieldValue::Varint(self.varint()?),
            2 => {
                let length = usize::try_from(self.varint()?).ok()?;
                if length > self.rest.len() {
                    return None;
                }
                let (bytes, rest) = self.rest.split_at(length);
                self.rest = rest;
                FieldValue::Bytes(bytes)
            }
            _ => return None,
        };
        Some((key >> 3, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    /// `Some(None)` reports a malformed message once.
    type Item = Option<(u64, FieldValue<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_none();
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_form_is_95_chars_and_round_trips() {
        let rng = SharedRng::from_u64(3);
        let key: [u8; 32] = rng.bytes();
        let short = new_short_token(&rng);
        assert!(is_short_token(&short));
        assert_eq!(short.len(), 28);

        let long = encode_long_form(&short, &key);
        assert_eq!(long.len(), 95, "Vault CE service tokens are 95 characters");
        assert!(
            long.starts_with("hvs.CAESI"),
            "08 01 12 20 encodes as CAESI"
        );
        assert_eq!(
            decode_long_form(&long, &key).as_deref(),
            Some(short.as_str())
        );

        // The byte layout is Vault's: 08 01 | 12 20 <hmac> | 1a 1e 0a 1c "hvs.<24>".
        let raw = URL_SAFE_NO_PAD.decode(&long[4..]).unwrap();
        assert_eq!(&raw[..4], &[0x08, 0x01, 0x12, 0x20]);
        assert_eq!(&raw[36..40], &[0x1a, 0x1e, 0x0a, 0x1c]);
        assert_eq!(&raw[40..], short.as_bytes());
    }

    #[test]
    fn forged_or_malformed_long_forms_are_rejected() {
        let rng = SharedRng::from_u64(4);
        let key: [u8; 32] = rng.bytes();
        let other_key: [u8; 32] = rng.bytes();
        let long = encode_long_form(&new_short_token(&rng), &key);
        assert_eq!(decode_long_form(&long, &other_key), None);
        for garbage in ["hvs.", "hvs.CAE", "hvs.////", "s.abc", "", &long[..60]] {
            assert_eq!(decode_long_form(garbage, &key), None, "{garbage}");
        }
        let too_long = format!("hvs.{}", "A".repeat(300));
        assert_eq!(decode_long_form(&too_long, &key), None);
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = decode_long_form(&format!("hvs.{text}"), &[7u8; 32]);
            let _ = is_acceptable_text(&text);
        }
    }
}
