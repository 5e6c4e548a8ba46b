//! ES512 (ECDSA over P-521 with SHA-512) compact JWS, the form Vault gives wrapping tokens
//! that must travel between clusters (performance secondary activation).
//!
//! Input is untrusted: every function here returns a [`JwtError`] instead of panicking,
//! whatever bytes it is given. A token longer than [`JWT_BYTES_MAX`] is refused before
//! any decoding, so a caller cannot make us base64-decode or parse megabytes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p521::ecdsa::signature::{Signer, Verifier};
use p521::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};

/// The only algorithm we sign with or accept.
pub const ALGORITHM: &str = "ES512";

/// The largest token we decode. Our wrapping JWTs are about 600 bytes; an `addr` of
/// [`crate::wrapping::store::ADDR_BYTES_MAX`] still fits with room to spare.
pub const JWT_BYTES_MAX: usize = 4096;

/// A raw `r || s` P-521 signature: two 66-byte big-endian integers (RFC 7518 §3.4).
pub const SIGNATURE_BYTES: usize = 132;

/// Why a token was refused. The messages name the part at fault, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("JWT is {length} bytes, more than the {max} allowed")]
    TooLong { length: usize, max: usize },
    #[error("JWT is malformed: {0}")]
    Malformed(&'static str),
    #[error("JWT {0} is not valid base64url")]
    Base64(&'static str),
    #[error("JWT {0} is not a JSON object")]
    Json(&'static str),
    #[error("JWT algorithm {0:?} is not allowed; only ES512 is accepted")]
    AlgorithmNotAllowed(String),
    #[error("JWT header names critical extensions this server does not understand")]
    UnsupportedCritical,
    #[error("JWT signature is not valid")]
    BadSignature,
}

/// The three base64url parts of a compact JWS, split but not yet decoded.
struct Parts<'a> {
    header: &'a str,
    claims: &'a str,
    signature: &'a str,
    /// `header.claims`: the bytes the signature covers.
    signing_input: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > JWT_BYTES_MAX {
        return Err(JwtError::TooLong {
            length: token.len(),
            max: JWT_BYTES_MAX,
        });
    }
    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or(JwtError::Malformed("expected three dot-separated parts"))?;
    let (header, claims) = signing_input
        .split_once('.')
        .ok_or(JwtError::Malformed("expected three dot-separated parts"))?;
    if claims.contains('.') {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    }
    if header.is_empty() || claims.is_empty() || signature.is_empty() {
        return Err(JwtError::Malformed("a part is empty"));
    }
    Ok(Parts {
        header,
        claims,
        signature,
        signing_input,
    })
}

fn decode_object(part: &str, name: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Base64(name))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Json(name)),
    }
}

/// Vault's test for "this token is a JWT": exactly two dots, and not a typed Vault
/// token such as `s.xxx.ns` whose second character is the dot after its type letter.
pub fn looks_like_jwt(token: &str) -> bool {
    token.matches('.').count() == 2 && token.as_bytes().get(1) != Some(&b'.')
}

/// Sign `claims` as a compact ES512 JWS. The header is `{"alg":"ES512","typ":"JWT"}`,
/// exactly what Vault's go-jose signer writes, plus `kid` when one is given.
///
/// The nonce is RFC 6979 deterministic, so signing needs no randomness.
pub fn sign(claims: &Value, key: &SigningKey, kid: Option<&str>) -> String {
    let mut header = json!({"alg": ALGORITHM, "typ": "JWT"});
    if let (Some(kid), Some(object)) = (kid, header.as_object_mut()) {
        object.insert("kid".to_string(), Value::from(kid));
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: Signature = key.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

/// Check that `token` is an ES512 JWS signed by `key` and return its claims object.
///
/// The header's `alg` must be `ES512` (no `none`, no algorithm confusion), and the
/// signature is checked before the claims are parsed. Times (`exp`, `nbf`) are not
/// checked here: the wrapping store decides validity from its own record.
pub fn verify(token: &str, key: &VerifyingKey) -> Result<Value, JwtError> {
    let parts = split(token)?;
    let header = decode_object(parts.header, "header")?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALGORITHM => {}
        Some(Value::String(alg)) => return Err(JwtError::AlgorithmNotAllowed(alg.clone())),
        _ => return Err(JwtError::AlgorithmNotAllowed(String::new())),
    }
    // RFC 7515 §4.1.11: a header naming critical extensions we do not implement must
    // be refused; we implement none.
    if header.contains_key("crit") {
        return Err(JwtError::UnsupportedCritical);
    }
    let signature_bytes = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| JwtError::Base64("signature"))?;
    if signature_bytes.len() != SIGNATURE_BYTES {
        return Err(JwtError::BadSignature);
    }
    let signature = Signature::from_slice(&signature_bytes).map_err(|_| JwtError::BadSignature)?;
    key.verify(parts.signing_input.as_bytes(), &signature)
        .map_err(|_| JwtError::BadSignature)?;
    decode_object(parts.claims, "claims").map(Value::Object)
}

/// The claims of `token` without checking its signature. Only for routing decisions
/// that must happen before a key is at hand (a secondary reads `addr` to find the
/// primary that can verify the token); never for granting anything.
pub fn decode_unverified_claims(token: &str) -> Result<Value, JwtError> {
    let parts = split(token)?;
    decode_object(parts.claims, "claims").map(Value::Object)
}

/// The public key as a JWK (RFC 7517/7518): uncompressed P-521 coordinates, each 66
/// bytes big-endian, base64url.
pub fn public_key_jwk(key: &VerifyingKey, kid: Option<&str>) -> Value {
    let (x, y) = coordinates(key);
    let mut jwk = json!({
        "kty": "EC",
        "crv": "P-521",
        "alg": ALGORITHM,
        "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
    });
    if let (Some(kid), Some(object)) = (kid, jwk.as_object_mut()) {
        object.insert("kid".to_string(), Value::from(kid));
    }
    jwk
}

/// The affine coordinates of the public key, 66 bytes big-endian each.
pub fn coordinates(key: &VerifyingKey) -> (Vec<u8>, Vec<u8>) {
    let point = key.to_sec1_point(false);
    // An uncompressed SEC1 point of a valid verifying key always has both
    // coordinates; the identity cannot be a verifying key.
    let x = point.x().map(|x| x.to_vec()).unwrap_or_default();
    let y = point.y().map(|y| y.to_vec()).unwrap_or_default();
    assert!(
        x.len() == 66 && y.len() == 66,
        "P-521 coordinates are 66 bytes"
    );
    (x, y)
}

/// A big-endian unsigned integer in decimal, without leading zeros, as Go's
/// `big.Int.MarshalText` prints it (Vault's `sys/wrapping/pubkey` uses that form).
pub fn decimal_from_big_endian(bytes: &[u8]) -> String {
    // Repeated division by 10^9 over base-2^32 limbs, most significant first.
    const CHUNK: u64 = 1_000_000_000;
    let mut limbs: Vec<u32> = Vec::with_capacity(bytes.len() / 4 + 1);
    let leading = bytes.len() % 4;
    if leading > 0 {
        limbs.push(
            bytes[..leading]
                .iter()
                .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte)),
        );
    }
    for chunk in bytes[leading..].chunks_exact(4) {
        limbs.push(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
    let mut groups: Vec<u32> = Vec::new();
    while limbs.iter().any(|limb| *limb != 0) {
        let mut remainder: u64 = 0;
        for limb in limbs.iter_mut() {
            let current = (remainder << 32) | u64::from(*limb);
            *limb = (current / CHUNK) as u32;
            remainder = current % CHUNK;
        }
        groups.push(remainder as u32);
    }
    match groups.split_last() {
        None => "0".to_string(),
        Some((most_significant, rest)) => {
            let mut out = most_significant.to_string();
            for group in rest.iter().rev() {
                out.push_str(&format!("{group:09}"));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SharedRng;
    use p521::elliptic_curve::Generate;
    use proptest::prelude::*;

    fn key(seed: u64) -> SigningKey {
        SharedRng::from_u64(seed).with(SigningKey::generate_from_rng)
    }

    #[test]
    fn signed_tokens_verify_and_carry_the_claims() {
        let key = key(1);
        let claims = json!({"jti": "hvs.abc", "type": "wrapping", "exp": 10});
        let token = sign(&claims, &key, None);

        // The header is Vault's, byte for byte.
        let header = token.split('.').next().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"ES512","typ":"JWT"}"#
        );
        assert!(looks_like_jwt(&token));
        assert_eq!(verify(&token, key.verifying_key()).unwrap(), claims);
        assert_eq!(decode_unverified_claims(&token).unwrap(), claims);

        // The signature is the fixed-size JWS form, not DER.
        let signature = token.rsplit('.').next().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(signature).unwrap().len(),
            SIGNATURE_BYTES
        );
    }

    #[test]
    fn tampering_wrong_keys_and_wrong_algorithms_are_refused() {
        let key = key(2);
        let token = sign(
            &json!({"jti": "hvs.a", "type": "wrapping"}),
            &key,
            Some("k1"),
        );
        let parts: Vec<&str> = token.split('.').collect();

        // Claims swapped for others keep the old signature: refused.
        let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"jti":"hvs.b","type":"wrapping"}"#);
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&forged, key.verifying_key()),
            Err(JwtError::BadSignature)
        );

        // Another cluster's key: refused.
        let other = self::key(3);
        assert_eq!(
            verify(&token, other.verifying_key()),
            Err(JwtError::BadSignature)
        );

        // `alg: none` and HMAC algorithms: refused before the signature is looked at.
        for alg in ["none", "HS256", "ES256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let token = format!("{header}.{}.{}", parts[1], parts[2]);
            assert_eq!(
                verify(&token, key.verifying_key()),
                Err(JwtError::AlgorithmNotAllowed(alg.to_string()))
            );
        }

        // Critical extensions we do not know: refused.
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES512","crit":["b64"]}"#);
        let token = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            verify(&token, key.verifying_key()),
            Err(JwtError::UnsupportedCritical)
        );
    }

    #[test]
    fn malformed_input_gets_a_clear_error() {
        let key = key(4);
        let verifying = key.verifying_key();
        assert_eq!(
            verify("", verifying),
            Err(JwtError::Malformed("expected three dot-separated parts"))
        );
        assert_eq!(
            verify("a.b.c.d", verifying),
            Err(JwtError::Malformed("expected three dot-separated parts"))
        );
        assert_eq!(
            verify("..", verifying),
            Err(JwtError::Malformed("a part is empty"))
        );
        assert_eq!(
            verify("!!.e30.AA", verifying),
            Err(JwtError::Base64("header"))
        );
        assert_eq!(
            decode_unverified_claims("e30.W10.AA"),
            Err(JwtError::Json("claims"))
        );
        let long = "a".repeat(JWT_BYTES_MAX + 1);
        assert_eq!(
            verify(&long, verifying),
            Err(JwtError::TooLong {
                length: JWT_BYTES_MAX + 1,
                max: JWT_BYTES_MAX
            })
        );
        assert!(!looks_like_jwt("hvs.abcdef"));
        assert!(!looks_like_jwt("s.abc.ns1"));
    }

    #[test]
    fn the_jwk_holds_the_public_coordinates() {
        let key = key(5);
        let jwk = public_key_jwk(key.verifying_key(), None);
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-521");
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let mut sec1 = vec![0x04];
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        assert_eq!(
            &VerifyingKey::from_sec1_bytes(&sec1).unwrap(),
            key.verifying_key()
        );
    }

    #[test]
    fn big_endian_integers_print_in_decimal() {
        assert_eq!(decimal_from_big_endian(&[]), "0");
        assert_eq!(decimal_from_big_endian(&[0, 0, 0]), "0");
        assert_eq!(decimal_from_big_endian(&[1, 0]), "256");
        assert_eq!(decimal_from_big_endian(&[0xff; 8]), u64::MAX.to_string());
        assert_eq!(
            decimal_from_big_endian(&[0x3b, 0x9a, 0xca, 0x00]),
            "1000000000"
        );
        // 2^521 - 1, the P-521 field prime, 66 bytes with a 0x01 leading byte.
        let mut prime = vec![0x01];
        prime.extend_from_slice(&[0xff; 65]);
        assert_eq!(
            decimal_from_big_endian(&prime),
            "6864797660130609714981900799081393217269435300143305409394463459185543183397656052122559640661454554977296311391480858037121987999716643812574028291115057151"
        );
    }

    /// One key for every property case: P-521 key generation is slow in debug builds.
    fn shared_key() -> &'static SigningKey {
        static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| key(6))
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(token in ".{0,600}") {
            let key = shared_key();
            let _ = verify(&token, key.verifying_key());
            let _ = decode_unverified_claims(&token);
            let _ = looks_like_jwt(&token);
        }

        #[test]
        fn arbitrary_base64_parts_never_panic_or_verify(
            header in "[A-Za-z0-9_-]{0,80}",
            claims in "[A-Za-z0-9_-]{0,120}",
            signature in "[A-Za-z0-9_-]{0,200}",
        ) {
            let key = shared_key();
            let token = format!("{header}.{claims}.{signature}");
            prop_assert!(verify(&token, key.verifying_key()).is_err());
            let _ = decode_unverified_claims(&token);
        }

        #[test]
        fn any_changed_claim_fails_verification(jti in "[a-zA-Z0-9]{1,24}", exp in 0i64..i64::MAX) {
            let key = shared_key();
            let token = sign(&json!({"jti": "hvs.original", "exp": 1}), key, None);
            let parts: Vec<&str> = token.split('.').collect();
            let claims = URL_SAFE_NO_PAD.encode(json!({"jti": jti, "exp": exp}).to_string());
            let forged = format!("{}.{claims}.{}", parts[0], parts[2]);
            prop_assert_eq!(verify(&forged, key.verifying_key()), Err(JwtError::BadSignature));
        }
    }
}
