//! Seal and unseal: the keyring is sealed under a root key, the root key under an unseal
//! key, and the unseal key is split into Shamir shares that only operators hold.
//!
//! Storage (raw, below the barrier; all three of class replicated, so a performance
//! secondary's nodes unseal with the primary's keys and follow its rekeys):
//! - `core/seal-config`: `{type, secret_shares, secret_threshold}` in JSON (not secret);
//! - `core/root-key`: the root key, AES-GCM sealed by the unseal key;
//! - `core/keyring`: the keyring, AES-GCM sealed by the root key.
//!
//! This module is pure: it turns shares into a keyring and an initialization request
//! into storage operations. The node applies them.
//!
//! A rekey replaces only the unseal key: the root key is re-sealed under the new one
//! (`core/root-key` and `core/seal-config` change in one Raft entry), and the keyring,
//! sealed by the root key, is untouched.

pub mod generate_root;
pub mod rekey;
pub mod shamir;
pub mod shares;
pub mod unseal;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::Keyring;
use crate::barrier::aead::{self, KEY_BYTES};
use crate::env::SharedRng;
use crate::storage::Op;
use crate::storage::key_space::{KEYRING_KEY, ROOT_KEY_KEY, SEAL_CONFIG_KEY};
pub use unseal::{SealGeneration, UnsealOutcome, UnsealProgress};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    #[serde(rename = "type")]
    pub seal_type: String,
    pub secret_shares: usize,
    pub secret_threshold: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("invalid seal configuration: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("stored seal data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the seal changed while this node was being unsealed (a rekey, on this cluster or on its performance primary); unseal progress was reset: unseal with the current keys"
    )]
    SealChanged,
}

/// The output of initialization: the operator's shares and what to store.
pub struct Initialized {
    pub shares: Vec<Zeroizing<Vec<u8>>>,
    pub keyring: Keyring,
    pub ops: Vec<Op>,
}

impl std::fmt::Debug for Initialized {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Initialized { .. }")
    }
}

impl SealConfig {
    pub fn shamir(shares: usize, threshold: usize) -> Result<Self, SealError> {
        if shares == 0 {
            return Err(SealError::InvalidConfig(
                "secret shares must be at least one".into(),
            ));
        }
        if shares > shamir::SHARES_MAX {
            return Err(SealError::InvalidConfig(
                "secret shares must be at most 255".into(),
            ));
        }
        if threshold == 0 || threshold > shares {
            return Err(SealError::InvalidConfig(
                "secret threshold must be between one and the number of shares".into(),
            ));
        }
        if shares > 1 && threshold == 1 {
            return Err(SealError::InvalidConfig(
                "threshold must be greater than one for multiple shares".into(),
            ));
        }
        Ok(Self {
            seal_type: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        serde_json::from_slice(bytes).map_err(|error| SealError::Corrupt(error.to_string()))
    }
}

/// Create a keyring, seal it, and split the unseal key. With one share the share is the
/// unseal key itself, as in Vault.
pub fn initialize(
    rng: &SharedRng,
    now_unix: i64,
    config: &SealConfig,
) -> Result<Initialized, SealError> {
    let (unseal_key, shares) = new_unseal_key(rng, config)?;
    let keyring = Keyring::generate(rng, now_unix);
    let ops = seal_keyring_ops(rng, &unseal_key, &keyring, config);
    Ok(Initialized {
        shares,
        keyring,
        ops,
    })
}

/// A fresh unseal key and its shares for `config`. With one share the share is the
/// unseal key itself, as in Vault.
pub fn new_unseal_key(
    rng: &SharedRng,
    config: &SealConfig,
) -> Result<(UnsealKey, Vec<Share>), SealError> {
    let unseal_key: UnsealKey = Zeroizing::new(rng.bytes());
    let shares = if config.secret_shares == 1 {
        vec![Zeroizing::new(unseal_key.to_vec())]
    } else {
        shamir::split(
            rng,
            unseal_key.as_slice(),
            config.secret_shares,
            config.secret_threshold,
        )
        .map_err(|error| SealError::InvalidConfig(error.to_string()))?
        .into_iter()
        .map(Zeroizing::new)
        .collect()
    };
    Ok((unseal_key, shares))
}

/// An unseal key (or a root key) that is wiped from memory when dropped.
pub type UnsealKey = Zeroizing<[u8; KEY_BYTES]>;

/// One operator's share of an unseal key, wiped from memory when dropped.
pub type Share = Zeroizing<Vec<u8>>;

/// The raw storage writes that persist `keyring` under `unseal_key`.
pub fn seal_keyring_ops(
    rng: &SharedRng,
    unseal_key: &[u8; KEY_BYTES],
    keyring: &Keyring,
    config: &SealConfig,
) -> Vec<Op> {
    let keyring_bytes = Zeroizing::new(keyring.to_bytes());
    let sealed_keyring = aead::seal(
        rng,
        0,
        &keyring.root_key,
        KEYRING_KEY.as_bytes(),
        &keyring_bytes,
    );
    let mut ops = root_key_ops(rng, unseal_key, &keyring.root_key, config);
    ops.push(Op::Put {
        key: KEYRING_KEY.into(),
        value: sealed_keyring.into(),
    });
    ops
}

/// The raw storage writes that seal `root_key` under `unseal_key` and record the seal
/// configuration its shares follow. A rekey commits exactly these, in one entry, so a
/// node never sees the new configuration with the old sealed root key or the reverse.
pub fn root_key_ops(
    rng: &SharedRng,
    unseal_key: &[u8; KEY_BYTES],
    root_key: &[u8; KEY_BYTES],
    config: &SealConfig,
) -> Vec<Op> {
    let sealed_root = aead::seal(rng, 0, unseal_key, ROOT_KEY_KEY.as_bytes(), root_key);
    vec![
        Op::Put {
            key: SEAL_CONFIG_KEY.into(),
            value: serde_json::to_vec(config)
                .expect("seal config serializes")
                .into(),
        },
        Op::Put {
            key: ROOT_KEY_KEY.into(),
            value: sealed_root.into(),
        },
    ]
}

/// Open the stored root key with an unseal key: how a combined key is proven right
/// (unseal, rekey and generate-root all ask this one question).
pub fn open_root_key(unseal_key: &[u8], sealed_root: &[u8]) -> Result<UnsealKey, SealError> {
    let unseal_key: [u8; KEY_BYTES] = unseal_key
        .try_into()
        .map_err(|_| SealError::InvalidKey("invalid key length".into()))?;
    let unseal_key = Zeroizing::new(unseal_key);
    let root_key = Zeroizing::new(
        aead::open(&unseal_key, ROOT_KEY_KEY.as_bytes(), sealed_root)
            .map_err(|_| SealError::InvalidKey("cipher: message authentication failed".into()))?,
    );
    let root_key: [u8; KEY_BYTES] = root_key
        .as_slice()
        .try_into()
        .map_err(|_| SealError::Corrupt("root key has the wrong length".into()))?;
    Ok(Zeroizing::new(root_key))
}

/// The keyring write after a rotation (root key unchanged).
pub fn keyring_op(rng: &SharedRng, keyring: &Keyring) -> Op {
    let keyring_bytes = Zeroizing::new(keyring.to_bytes());
    Op::Put {
        key: KEYRING_KEY.into(),
        value: aead::seal(
            rng,
            0,
            &keyring.root_key,
            KEYRING_KEY.as_bytes(),
            &keyring_bytes,
        )
        .into(),
    }
}

/// Open the stored keyring with an unseal key.
pub fn open_keyring(
    unseal_key: &[u8],
    sealed_root: &[u8],
    sealed_keyring: &[u8],
) -> Result<Keyring, SealError> {
    let root_key = open_root_key(unseal_key, sealed_root)?;
    let keyring_bytes = Zeroizing::new(
        aead::open(&root_key, KEYRING_KEY.as_bytes(), sealed_keyring)
            .map_err(|error| SealError::Corrupt(format!("keyring: {error}")))?,
    );
    Keyring::from_bytes(&keyring_bytes)
        .map_err(|error| SealError::Corrupt(format!("keyring: {error}")))
}

/// Decode an unseal key share as the CLI and API accept it: base64 or hex.
pub fn decode_share(text: &str) -> Result<Vec<u8>, SealError> {
    let text = text.trim();
    if text.len().is_multiple_of(2)
        && text.chars().all(|c| c.is_ascii_hexdigit())
        && let Ok(bytes) = hex::decode(text)
    {
        return Ok(bytes);
    }
    BASE64
        .decode(text)
        .map_err(|_| SealError::InvalidKey("'key' must be a valid hex or base64 string".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(ops: &[Op], key: &str) -> Vec<u8> {
        ops.iter()
            .find_map(|op| match op {
                Op::Put { key: k, value } if k == key => Some(value.to_vec()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn shares_open_the_keyring_and_nothing_is_stored_in_plaintext() {
        let rng = SharedRng::from_u64(11);
        let config = SealConfig::shamir(5, 3).unwrap();
        let initialized = initialize(&rng, 0, &config).unwrap();
        let unseal_key = shamir::combine(
            &initialized.shares[1..4]
                .iter()
                .map(|s| s.to_vec())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let keyring = open_keyring(
            &unseal_key,
            &stored(&initialized.ops, ROOT_KEY_KEY),
            &stored(&initialized.ops, KEYRING_KEY),
        )
        .unwrap();
        assert_eq!(keyring.root_key, initialized.keyring.root_key);
        for op in &initialized.ops {
            if let Op::Put { value, .. } = op {
                assert!(!value.windows(32).any(|w| w == keyring.root_key));
                assert!(!value.windows(32).any(|w| w == keyring.active().key));
                assert!(!value.windows(32).any(|w| w == unseal_key.as_slice()));
            }
        }
        assert!(open_keyring(&[0u8; 32], &stored(&initialized.ops, ROOT_KEY_KEY), b"").is_err());
    }

    #[test]
    fn one_share_is_the_unseal_key_itself() {
        let rng = SharedRng::from_u64(12);
        let initialized = initialize(&rng, 0, &SealConfig::shamir(1, 1).unwrap()).unwrap();
        assert_eq!(initialized.shares.len(), 1);
        assert_eq!(initialized.shares[0].len(), 32);
    }

    #[test]
    fn seal_config_limits_match_vault() {
        assert!(SealConfig::shamir(0, 0).is_err());
        assert!(SealConfig::shamir(3, 4).is_err());
        assert!(SealConfig::shamir(3, 1).is_err());
        assert!(SealConfig::shamir(256, 3).is_err());
        assert!(SealConfig::shamir(5, 3).is_ok());
    }

    #[test]
    fn shares_decode_from_hex_and_base64() {
        assert_eq!(decode_share("0aff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(decode_share("AQI=").unwrap(), vec![1, 2]);
        assert!(decode_share("not a key!").is_err());
    }
}
