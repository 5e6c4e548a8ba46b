//! Public-key activation: a secondary's bundle sealed to a key pair the secondary made,
//! so activation needs no call to the primary's API (Vault's
//! `performance/secondary/generate-public-key` and `secondary-token
//! secondary_public_key=...`).
//!
//! The secondary keeps a P-521 secret key (sealed by its barrier, local, and gone with
//! the storage wipe of the activation it serves, so a token opens at most once) and hands
//! out its public key. The primary seals the bundle to it: an ephemeral P-521 key, ECDH,
//! HKDF-SHA256 over the shared secret, AES-256-GCM with both public keys as associated
//! data. The token is `arcapk1.<ephemeral public key>.<sealed payload>`, both base64url
//! without padding; the payload is `{"exp": <unix seconds>, "bundle": {...}}`.
//!
//! Vault does not document the format of either answer; both sides of it are Arca's.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p521::elliptic_curve::Generate;
use p521::{PublicKey, SecretKey};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::barrier::aead;
use crate::env::SharedRng;

/// What a sealed activation token starts with (never a JWT, which starts `eyJ`).
pub const TOKEN_PREFIX: &str = "arcapk1.";
/// The longest sealed token accepted, checked before decoding (a bundle is a few KiB).
pub const TOKEN_BYTES_MAX: usize = 256 * 1024;
/// The longest public key accepted as `secondary_public_key`, before decoding.
const PUBLIC_KEY_TEXT_BYTES_MAX: usize = 1024;
const HKDF_INFO: &[u8] = b"arca performance activation bundle v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationKeyError {
    #[error("secondary_public_key is not a base64 P-521 public key")]
    BadPublicKey,
    #[error("the activation token is malformed")]
    Malformed,
    #[error(
        "the activation token was not sealed to this cluster's public key (generate-public-key \
         was called again, or the token is for another cluster)"
    )]
    WrongKey,
    #[error("the stored activation key is unreadable")]
    BadSecretKey,
}

/// A new secret key: (its bytes, to store sealed by the barrier; the public key to hand out).
pub fn generate(rng: &SharedRng) -> (Zeroizing<Vec<u8>>, String) {
    let secret = rng.with(SecretKey::generate_from_rng);
    let public = STANDARD.encode(secret.public_key().to_sec1_bytes());
    (Zeroizing::new(secret.to_bytes().to_vec()), public)
}

/// The public key of a stored secret key, as [`generate`] hands it out.
pub fn public_key_of(secret: &[u8]) -> Result<String, ActivationKeyError> {
    let secret = SecretKey::from_slice(secret).map_err(|_| ActivationKeyError::BadSecretKey)?;
    Ok(STANDARD.encode(secret.public_key().to_sec1_bytes()))
}

/// Check a `secondary_public_key` before anything is recorded for it.
pub fn parse_public_key(text: &str) -> Result<PublicKey, ActivationKeyError> {
    if text.len() > PUBLIC_KEY_TEXT_BYTES_MAX {
        return Err(ActivationKeyError::BadPublicKey);
    }
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| ActivationKeyError::BadPublicKey)?;
    PublicKey::from_sec1_bytes(&bytes).map_err(|_| ActivationKeyError::BadPublicKey)
}

pub fn looks_sealed(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX)
}

fn content_key(
    shared: &p521::ecdh::SharedSecret,
    associated: &[u8],
) -> Zeroizing<[u8; aead::KEY_BYTES]> {
    let mut key = Zeroizing::new([0u8; aead::KEY_BYTES]);
    shared
        .extract::<sha2::Sha256>(Some(associated))
        .expand(HKDF_INFO, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

fn associated_data(ephemeral: &[u8], recipient: &[u8]) -> Vec<u8> {
    let mut associated = Vec::with_capacity(HKDF_INFO.len() + ephemeral.len() + recipient.len());
    associated.extend_from_slice(HKDF_INFO);
    associated.extend_from_slice(ephemeral);
    associated.extend_from_slice(recipient);
    associated
}

/// Seal `bundle`, valid until `exp` (unix seconds), to `recipient`.
pub fn seal(rng: &SharedRng, recipient: &PublicKey, bundle: &Value, exp: i64) -> String {
    let ephemeral = rng.with(SecretKey::generate_from_rng);
    let ephemeral_public = ephemeral.public_key().to_sec1_bytes();
    let associated = associated_data(&ephemeral_public, &recipient.to_sec1_bytes());
    let shared = p521::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), recipient.as_affine());
    let key = content_key(&shared, &associated);
    let payload = Zeroizing::new(
        serde_json::to_vec(&serde_json::json!({ "exp": exp, "bundle": bundle }))
            .expect("JSON values serialize"),
    );
    let sealed = aead::seal(rng, 0, &key, &associated, &payload);
    format!(
        "{TOKEN_PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(ephemeral_public),
        URL_SAFE_NO_PAD.encode(sealed)
    )
}

/// Open a token [`seal`] made with the stored `secret` key: (the bundle, its expiry).
pub fn open(secret: &[u8], token: &str) -> Result<(Value, i64), ActivationKeyError> {
    let secret = SecretKey::from_slice(secret).map_err(|_| ActivationKeyError::BadSecretKey)?;
    if token.len() > TOKEN_BYTES_MAX {
        return Err(ActivationKeyError::Malformed);
    }
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(ActivationKeyError::Malformed)?;
    let (ephemeral_text, sealed_text) =
        rest.split_once('.').ok_or(ActivationKeyError::Malformed)?;
    let ephemeral_bytes = URL_SAFE_NO_PAD
        .decode(ephemeral_text)
        .map_err(|_| ActivationKeyError::Malformed)?;
    let ephemeral =
        PublicKey::from_sec1_bytes(&ephemeral_bytes).map_err(|_| ActivationKeyError::Malformed)?;
    let sealed = URL_SAFE_NO_PAD
        .decode(sealed_text)
        .map_err(|_| ActivationKeyError::Malformed)?;
    let associated = associated_data(&ephemeral_bytes, &secret.public_key().to_sec1_bytes());
    let shared = p521::ecdh::diffie_hellman(secret.to_nonzero_scalar(), ephemeral.as_affine());
    let key = content_key(&shared, &associated);
    let payload = Zeroizing::new(match aead::open(&key, &associated, &sealed) {
        Ok(payload) => payload,
        Err(aead::AeadError::Authentication) => return Err(ActivationKeyError::WrongKey),
        Err(_) => return Err(ActivationKeyError::Malformed),
    });
    let mut payload: Value =
        serde_json::from_slice(&payload).map_err(|_| ActivationKeyError::Malformed)?;
    let exp = payload
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(ActivationKeyError::Malformed)?;
    let bundle = payload
        .get_mut("bundle")
        .map(Value::take)
        .filter(Value::is_object)
        .ok_or(ActivationKeyError::Malformed)?;
    Ok((bundle, exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(seed: u64) -> (Zeroizing<Vec<u8>>, PublicKey) {
        let (secret, public) = generate(&SharedRng::from_u64(seed));
        (secret, parse_public_key(&public).unwrap())
    }

    #[test]
    fn a_bundle_sealed_to_a_public_key_opens_with_its_secret_key_only() {
        let rng = SharedRng::from_u64(9);
        let (secret, public) = pair(1);
        let bundle = serde_json::json!({ "set_id": "s", "keyring": "k" });
        let token = seal(&rng, &public, &bundle, 1_700_000_000);
        assert!(looks_sealed(&token));
        assert!(!token.contains("keyring"));
        assert_eq!(open(&secret, &token).unwrap(), (bundle, 1_700_000_000));

        let (other_secret, _) = pair(2);
        assert_eq!(
            open(&other_secret, &token),
            Err(ActivationKeyError::WrongKey)
        );
        assert_eq!(
            public_key_of(&secret).unwrap(),
            STANDARD.encode(public.to_sec1_bytes())
        );
    }

    #[test]
    fn a_tampered_or_truncated_token_is_refused() {
        let rng = SharedRng::from_u64(9);
        let (secret, public) = pair(1);
        let token = seal(&rng, &public, &serde_json::json!({}), 5);
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(open(&secret, &tampered).is_err());
        assert!(open(&secret, &token[..token.len() - 10]).is_err());
        assert_eq!(
            open(&secret, "arcapk1."),
            Err(ActivationKeyError::Malformed)
        );
        assert_eq!(
            open(&secret, "eyJhbGciOi.x.y"),
            Err(ActivationKeyError::Malformed)
        );
    }

    #[test]
    fn public_keys_that_are_not_p521_points_are_refused() {
        assert!(parse_public_key("not base64!").is_err());
        assert!(parse_public_key(&STANDARD.encode([4u8; 133])).is_err());
        assert!(parse_public_key(&"A".repeat(4096)).is_err());
        assert!(parse_public_key("").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(token in "arcapk1\\.[A-Za-z0-9_.-]{0,400}") {
            let (secret, _) = pair(3);
            let _ = open(&secret, &token);
        }
    }
}
