//! Unseal progress on one node: shares arrive one request at a time, possibly from
//! different operators, until the threshold is reached. Progress is per node and lives
//! only in memory, so a restarted node starts sealed with no progress, as in Vault.

use zeroize::Zeroizing;

use super::{SealConfig, SealError, shamir};
use crate::env::SharedRng;

#[derive(Default)]
pub struct UnsealProgress {
    nonce: String,
    shares: Vec<Zeroizing<Vec<u8>>>,
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
    }

    /// Add a share. A share already given is not counted twice.
    pub fn submit(
        &mut self,
        rng: &SharedRng,
        config: &SealConfig,
        share: Vec<u8>,
    ) -> Result<UnsealOutcome, SealError> {
        let expected_length = if config.secret_shares == 1 { 32 } else { 33 };
        if share.len() != expected_length {
            return Err(SealError::InvalidKey(format!(
                "invalid key length: expected {expected_length} bytes, got {}",
                share.len()
            )));
        }
        if self.shares.is_empty() {
            self.nonce = rng.uuid();
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
        let secret: [u8; 32] = rng.bytes();
        let parts = shamir::split(&rng, &secret, 3, 2).unwrap();
        let mut progress = UnsealProgress::default();
        assert!(matches!(
            progress.submit(&rng, &config, parts[0].clone()).unwrap(),
            UnsealOutcome::Progress
        ));
        assert!(matches!(
            progress.submit(&rng, &config, parts[0].clone()).unwrap(),
            UnsealOutcome::Progress
        ));
        assert_eq!(progress.progress(), 1);
        assert!(!progress.nonce().is_empty());
        match progress.submit(&rng, &config, parts[2].clone()).unwrap() {
            UnsealOutcome::Complete(key) => assert_eq!(key.as_slice(), secret),
            UnsealOutcome::Progress => panic!("threshold reached"),
        }
        assert_eq!(progress.progress(), 0);
        assert!(progress.submit(&rng, &config, vec![1, 2, 3]).is_err());
    }
}
