//! Unseal progress on one node: shares arrive one request at a time, possibly from
//! different operators, until the threshold is reached. Progress is per node and lives
//! only in memory, so a restarted node starts sealed with no progress, as in Vault.
//!
//! An attempt belongs to the seal it began under ([`SealGeneration`]). A sealed node's
//! storage keeps applying Raft entries, and on a performance secondary those carry the
//! primary's rekeys, so the seal can change between two shares; the attempt is then
//! reset instead of combining shares of two different unseal keys.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{SealConfig, SealError, shamir};
use crate::env::SharedRng;

/// Which stored seal an unseal attempt's shares belong to: a digest of the stored seal
/// configuration and sealed root key, the two values a rekey replaces together. Both
/// are public (the configuration is plaintext, the root key is sealed), so their digest
/// reveals nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealGeneration([u8; 32]);

impl SealGeneration {
    pub fn of(seal_config: &[u8], sealed_root_key: &[u8]) -> Self {
        let mut digest = Sha256::new();
        // Length-prefixed, so no two different pairs digest the same bytes.
        for part in [seal_config, sealed_root_key] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Self(digest.finalize().into())
    }
}

#[derive(Default)]
pub struct UnsealProgress {
    nonce: String,
    shares: Vec<Zeroizing<Vec<u8>>>,
    /// The seal the shares given so far belong to; `None` while none was given.
    generation: Option<SealGeneration>,
}

impl std::fmt::Debug for UnsealProgress {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UnsealProgress")
            .field("nonce", &self.nonce)
            .field("progress", &self.shares.len())
            .finish()
    }
}

/// What one submitted share led to.
#[derive(Debug)]
pub enum UnsealOutcome {
    /// More shares are needed.
    Progress,
    /// The threshold was reached: the combined unseal key (to be checked by decrypting).
    Complete(Zeroizing<Vec<u8>>),
}

impl UnsealProgress {
    pub fn progress(&self) -> usize {
        self.shares.len()
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    pub fn reset(&mut self) {
        self.shares.clear();
        self.nonce.clear();
        self.generation = None;
    }

    /// Add a share of the seal `generation`, whose configuration is `config`. A share
    /// already given is not counted twice. When the seal changed since the first share
    /// of this attempt, the attempt is reset and the share refused: the shares given so
    /// far were of the old unseal key.
    pub fn submit(
        &mut self,
        rng: &SharedRng,
        generation: SealGeneration,
        config: &SealConfig,
        share: Vec<u8>,
    ) -> Result<UnsealOutcome, SealError> {
        if self
            .generation
            .is_some_and(|started_under| started_under != generation)
        {
            self.reset();
            return Err(SealError::SealChanged);
        }
        let expected_length = if config.secret_shares == 1 { 32 } else { 33 };
        if share.len() != expected_length {
            return Err(SealError::InvalidKey(format!(
                "invalid key length: expected {expected_length} bytes, got {}",
                share.len()
            )));
        }
        if self.shares.is_empty() {
            self.nonce = rng.uuid();
            self.generation = Some(generation);
        }
        if !self
            .shares
            .iter()
            .any(|known| known.as_slice() == share.as_slice())
        {
            self.shares.push(Zeroizing::new(share));
        }
        if self.shares.len() < config.secret_threshold {
            return Ok(UnsealOutcome::Progress);
        }
        let shares: Vec<Vec<u8>> = self.shares.iter().map(|share| share.to_vec()).collect();
        self.reset();
        if config.secret_shares == 1 {
            return Ok(UnsealOutcome::Complete(Zeroizing::new(shares[0].clone())));
        }
        let key =
            shamir::combine(&shares).map_err(|error| SealError::InvalidKey(error.to_string()))?;
        Ok(UnsealOutcome::Complete(Zeroizing::new(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_shares_complete_and_reset_progress() {
        let rng = SharedRng::from_u64(2);
        let config = SealConfig::shamir(3, 2).unwrap();
        let generation = SealGeneration::of(b"config", b"root");
        let secret: [u8; 32] = rng.bytes();
        let parts = shamir::split(&rng, &secret, 3, 2).unwrap();
        let mut progress = UnsealProgress::default();
        assert!(matches!(
            progress
                .submit(&rng, generation, &config, parts[0].clone())
                .unwrap(),
            UnsealOutcome::Progress
        ));
        assert!(matches!(
            progress
                .submit(&rng, generation, &config, parts[0].clone())
                .unwrap(),
            UnsealOutcome::Progress
        ));
        assert_eq!(progress.progress(), 1);
        assert!(!progress.nonce().is_empty());
        match progress
            .submit(&rng, generation, &config, parts[2].clone())
            .unwrap()
        {
            UnsealOutcome::Complete(key) => assert_eq!(key.as_slice(), secret),
            UnsealOutcome::Progress => panic!("threshold reached"),
        }
        assert_eq!(progress.progress(), 0);
        assert!(
            progress
                .submit(&rng, generation, &config, vec![1, 2, 3])
                .is_err()
        );
    }

    #[test]
    fn a_seal_that_changes_mid_attempt_resets_it_instead_of_mixing_shares() {
        let rng = SharedRng::from_u64(3);
        let config = SealConfig::shamir(3, 2).unwrap();
        let old_seal = SealGeneration::of(b"config", b"root sealed under the old key");
        let new_seal = SealGeneration::of(b"config", b"root sealed under the new key");
        let old_key: [u8; 32] = rng.bytes();
        let new_key: [u8; 32] = rng.bytes();
        let old_parts = shamir::split(&rng, &old_key, 3, 2).unwrap();
        let new_parts = shamir::split(&rng, &new_key, 3, 2).unwrap();
        let mut progress = UnsealProgress::default();
        progress
            .submit(&rng, old_seal, &config, old_parts[0].clone())
            .unwrap();
        let first_nonce = progress.nonce().to_string();

        // The rekey lands: the next share, of whichever key, is refused and the old
        // share is forgotten.
        let refused = progress
            .submit(&rng, new_seal, &config, new_parts[0].clone())
            .unwrap_err();
        assert_eq!(refused, SealError::SealChanged);
        assert_eq!(progress.progress(), 0);

        // A fresh attempt under the new seal needs a quorum of the new key alone.
        progress
            .submit(&rng, new_seal, &config, new_parts[0].clone())
            .unwrap();
        assert_ne!(progress.nonce(), first_nonce);
        match progress
            .submit(&rng, new_seal, &config, new_parts[1].clone())
            .unwrap()
        {
            UnsealOutcome::Complete(key) => assert_eq!(key.as_slice(), new_key),
            UnsealOutcome::Progress => panic!("threshold reached"),
        }
    }

    #[test]
    fn the_generation_tells_apart_every_change_of_either_value() {
        let base = SealGeneration::of(b"ab", b"c");
        assert_eq!(base, SealGeneration::of(b"ab", b"c"));
        assert_ne!(base, SealGeneration::of(b"a", b"bc"));
        assert_ne!(base, SealGeneration::of(b"ab", b"d"));
        assert_ne!(base, SealGeneration::of(b"xb", b"c"));
    }
}
