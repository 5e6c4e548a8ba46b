//! Key shares handed in one request at a time toward a threshold, for the operations
//! that need a quorum of key holders while the node is unsealed: rekey (old shares),
//! rekey verification (new shares) and generate-root.
//!
//! Events in: a decoded share. Out: nothing until the threshold is reached, then the
//! combined key, after which the collection is empty again whatever the outcome (as in
//! Vault, a failed combination asks for a fresh quorum, not for one more share).
//!
//! Invariants: at most `threshold` shares are ever held (at most 255, Shamir's bound);
//! a share given twice is refused, compared in constant time; shares are wiped from
//! memory when dropped.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::shamir;
use crate::barrier::aead::KEY_BYTES;

/// Vault's bounds on a submitted key: a bare key (threshold 1) or a Shamir share, which
/// carries one more byte (its x coordinate).
pub const KEY_BYTES_MIN: usize = KEY_BYTES;
pub const KEY_BYTES_MAX: usize = KEY_BYTES + 1;

/// What a key operation refuses. `Invalid` is the caller's doing (400 in Vault's
/// envelope); `Internal` should not happen (500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyOperationError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

impl KeyOperationError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// Decode a key as Vault's rekey and generate-root handlers do: hex when it decodes to
/// a plausible key length (so a base64 string that happens to be hex is still read as
/// base64), else standard base64.
pub fn decode_key(text: &str) -> Result<Vec<u8>, KeyOperationError> {
    use base64::Engine;
    if let Ok(bytes) = hex::decode(text)
        && (KEY_BYTES_MIN..=KEY_BYTES_MAX).contains(&bytes.len())
    {
        return Ok(bytes);
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| KeyOperationError::invalid("'key' must be a valid hex or base64 string"))
}

/// Vault's length check on a decoded key, with its words.
pub fn check_key_length(key: &[u8]) -> Result<(), KeyOperationError> {
    if key.len() < KEY_BYTES_MIN {
        return Err(KeyOperationError::invalid(format!(
            "key is shorter than minimum {KEY_BYTES_MIN} bytes"
        )));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err(KeyOperationError::invalid(format!(
            "key is longer than maximum {KEY_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// The shares given so far toward one combination.
#[derive(Default)]
pub struct SharesGiven {
    shares: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for SharesGiven {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SharesGiven({})", self.shares.len())
    }
}

impl SharesGiven {
    pub fn count(&self) -> usize {
        self.shares.len()
    }

    pub fn clear(&mut self) {
        self.shares.clear();
    }

    /// Add one share toward `threshold`. `operation` names the operation in the
    /// duplicate message, as Vault words it ("rekey", "generation", "verify").
    /// Returns the combined key once the threshold is reached.
    pub fn add(
        &mut self,
        share: Vec<u8>,
        threshold: usize,
        operation: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, KeyOperationError> {
        assert!(
            (1..=shamir::SHARES_MAX).contains(&threshold),
            "a stored threshold is validated before it is used"
        );
        let share = Zeroizing::new(share);
        check_key_length(&share)?;
        if self
            .shares
            .iter()
            .any(|known| known.len() == share.len() && bool::from(known.ct_eq(&share)))
        {
            return Err(KeyOperationError::invalid(format!(
                "given key has already been provided during this {operation} operation"
            )));
        }
        self.shares.push(share);
        if self.shares.len() < threshold {
            return Ok(None);
        }
        let shares = std::mem::take(&mut self.shares);
        if threshold == 1 {
            let key = shares.into_iter().next().expect("threshold reached");
            return Ok(Some(key));
        }
        let parts: Vec<Vec<u8>> = shares.iter().map(|share| share.to_vec()).collect();
        let parts = Zeroizing::new(parts);
        shamir::combine(&parts)
            .map(|key| Some(Zeroizing::new(key)))
            .map_err(|error| {
                KeyOperationError::invalid(format!("failed to compute root key: {error}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SharedRng;
    use proptest::prelude::*;

    #[test]
    fn shares_count_up_to_the_threshold_then_combine_and_start_over() {
        let rng = SharedRng::from_u64(7);
        let secret: [u8; 32] = rng.bytes();
        let parts = shamir::split(&rng, &secret, 5, 3).unwrap();
        let mut given = SharesGiven::default();
        assert_eq!(given.add(parts[0].clone(), 3, "rekey").unwrap(), None);
        assert_eq!(given.count(), 1);
        // The same share twice is refused and not counted.
        let duplicate = given.add(parts[0].clone(), 3, "rekey").unwrap_err();
        assert_eq!(
            duplicate.to_string(),
            "given key has already been provided during this rekey operation"
        );
        assert_eq!(given.count(), 1);
        assert_eq!(given.add(parts[3].clone(), 3, "rekey").unwrap(), None);
        let key = given.add(parts[4].clone(), 3, "rekey").unwrap().unwrap();
        assert_eq!(key.as_slice(), secret);
        assert_eq!(given.count(), 0, "a combination empties the collection");
    }

    #[test]
    fn threshold_one_hands_back_the_key_itself() {
        let mut given = SharesGiven::default();
        let key = given.add(vec![9; 32], 1, "generation").unwrap().unwrap();
        assert_eq!(key.as_slice(), [9; 32]);
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused_with_vaults_words() {
        let mut given = SharesGiven::default();
        assert_eq!(
            given.add(vec![1; 31], 2, "rekey").unwrap_err().to_string(),
            "key is shorter than minimum 32 bytes"
        );
        assert_eq!(
            given.add(vec![1; 34], 2, "rekey").unwrap_err().to_string(),
            "key is longer than maximum 33 bytes"
        );
        assert_eq!(given.count(), 0);
    }

    #[test]
    fn keys_decode_from_hex_or_base64() {
        let key = [0xabu8; 33];
        assert_eq!(decode_key(&hex::encode(key)).unwrap(), key);
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(decode_key(&text).unwrap(), key);
        // Short hex is not a key, so it is read as base64 ("abcd" is valid base64).
        assert_eq!(decode_key("abcd").unwrap().len(), 3);
        assert!(decode_key("not a key!").is_err());
    }

    proptest! {
        #[test]
        fn any_sequence_of_submissions_never_panics(
            threshold in 1usize..5,
            shares in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 30..35), 0..8),
        ) {
            let mut given = SharesGiven::default();
            for share in shares {
                let _ = given.add(share, threshold, "rekey");
                prop_assert!(given.count() < threshold);
            }
        }
    }
}
