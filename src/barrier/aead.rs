//! AES-256-GCM with a framed layout: `[version=1][term u32 BE][nonce 12][ciphertext+tag]`.
//! The associated data binds a value to its storage key, so a ciphertext moved to
//! another key fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

use crate::env::SharedRng;

pub const KEY_BYTES: usize = 32;
const VERSION: u8 = 1;
const NONCE_BYTES: usize = 12;
const HEADER_BYTES: usize = 1 + 4 + NONCE_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    #[error("ciphertext is too short or has an unknown version")]
    Malformed,
    #[error("ciphertext was sealed under key term {0}, which this keyring does not hold")]
    UnknownTerm(u32),
    #[error("ciphertext failed authentication")]
    Authentication,
}

/// Encrypt `plaintext` under `key` (of key term `term`), bound to `associated`.
pub fn seal(
    rng: &SharedRng,
    term: u32,
    key: &[u8; KEY_BYTES],
    associated: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let _stage =
        tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.barrier.encrypt")
            .entered();
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let nonce_bytes: [u8; NONCE_BYTES] = rng.bytes();
    let nonce = Nonce::from(nonce_bytes);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: associated,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(HEADER_BYTES + ciphertext.len());
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ciphertext);
    out
}

/// The key term a sealed value names, read without decrypting.
pub fn term_of(sealed: &[u8]) -> Result<u32, AeadError> {
    if sealed.len() < HEADER_BYTES + 16 || sealed[0] != VERSION {
        return Err(AeadError::Malformed);
    }
    Ok(u32::from_be_bytes(
        sealed[1..5].try_into().expect("4 bytes"),
    ))
}

/// Decrypt a value sealed by [`seal`] with the key of its term.
pub fn open(key: &[u8; KEY_BYTES], associated: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
    let _stage =
        tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.barrier.decrypt")
            .entered();
    term_of(sealed)?;
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let nonce_bytes: [u8; NONCE_BYTES] = sealed[5..HEADER_BYTES].try_into().expect("12 bytes");
    let nonce = Nonce::from(nonce_bytes);
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed[HEADER_BYTES..],
                aad: associated,
            },
        )
        .map_err(|_| AeadError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_only_under_their_key_and_associated_data() {
        let rng = SharedRng::from_u64(1);
        let key = [7u8; KEY_BYTES];
        let sealed = seal(&rng, 3, &key, b"logical/a", b"secret");
        assert_eq!(term_of(&sealed).unwrap(), 3);
        assert_eq!(open(&key, b"logical/a", &sealed).unwrap(), b"secret");
        assert_eq!(
            open(&key, b"logical/b", &sealed),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            open(&[8u8; KEY_BYTES], b"logical/a", &sealed),
            Err(AeadError::Authentication)
        );
        assert_eq!(open(&key, b"", &sealed[..10]), Err(AeadError::Malformed));
        assert!(!sealed.windows(6).any(|window| window == b"secret"));
    }
}
