//! One rekey attempt on the active node (Vault's `sys/rekey/*`): replace the unseal key
//! and its shares, given a quorum of the current shares.
//!
//! Phases: collecting old shares (`submit_old_share`) → the shell proves the combined
//! key opens the stored root key and asks for `create_new_key` → either the shell
//! commits at once, or (`require_verification`) the new shares must first be handed
//! back (`submit_new_share`) and only their combination, equal to the new key, lets the
//! shell commit. Nothing is written before that commit, so a cancelled or interrupted
//! rekey (a seal, a restart, a change of leader) changes nothing.
//!
//! Invariants: one nonce per attempt and one per verification, both from the node's
//! seeded RNG; the new key is held only in memory and wiped when dropped; shares are
//! compared in constant time.

use serde::Serialize;
use zeroize::Zeroizing;

use super::shares::{KeyOperationError, SharesGiven};
use super::{SealConfig, Share, UnsealKey};
use crate::env::SharedRng;
use subtle::ConstantTimeEq;

/// What `PUT sys/rekey/init` asks for, once the body is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyRequest {
    pub secret_shares: usize,
    pub secret_threshold: usize,
    pub require_verification: bool,
}

/// `GET sys/rekey/init`, field for field as Vault answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RekeyStatus {
    pub nonce: String,
    pub started: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
    pub required: usize,
    /// Always null: PGP-encrypted shares are refused at init.
    pub pgp_fingerprints: Option<Vec<String>>,
    pub backup: bool,
    pub verification_required: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub verification_nonce: String,
}

impl RekeyStatus {
    /// The status when no rekey is in progress: `required` is the current threshold.
    pub fn not_started(current: &SealConfig) -> Self {
        Self {
            nonce: String::new(),
            started: false,
            t: 0,
            n: 0,
            progress: 0,
            required: current.secret_threshold,
            pgp_fingerprints: None,
            backup: false,
            verification_required: false,
            verification_nonce: String::new(),
        }
    }
}

/// `GET sys/rekey/verify`, as Vault answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerificationStatus {
    pub nonce: String,
    pub started: bool,
    pub t: usize,
    pub n: usize,
    pub progress: usize,
}

/// The new unseal key and its shares, made once the old quorum was proven.
pub struct NewKey {
    pub unseal_key: UnsealKey,
    pub shares: Vec<Share>,
    pub config: SealConfig,
    /// Set when the shares must be verified before the key is used.
    pub verification_nonce: Option<String>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NewKey")
            .field("shares", &self.shares.len())
            .field("verification_nonce", &self.verification_nonce)
            .finish()
    }
}

struct Verification {
    nonce: String,
    new_unseal_key: UnsealKey,
    shares: SharesGiven,
}

pub struct Rekey {
    nonce: String,
    new_config: SealConfig,
    verification_required: bool,
    old_shares: SharesGiven,
    verification: Option<Verification>,
}

impl std::fmt::Debug for Rekey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Rekey")
            .field("nonce", &self.nonce)
            .field("new_config", &self.new_config)
            .field("progress", &self.old_shares.count())
            .field("verifying", &self.verification.is_some())
            .finish()
    }
}

impl Rekey {
    /// Start an attempt, checking the new configuration with Vault's words.
    pub fn start(rng: &SharedRng, request: &RekeyRequest) -> Result<Self, KeyOperationError> {
        if request.secret_threshold > request.secret_shares {
            return Err(KeyOperationError::invalid(
                "provided threshold greater than the total shares",
            ));
        }
        let new_config = SealConfig::shamir(request.secret_shares, request.secret_threshold)
            .map_err(|error| {
                KeyOperationError::invalid(format!("invalid rekey seal configuration: {error}"))
            })?;
        Ok(Self {
            nonce: rng.uuid(),
            new_config,
            verification_required: request.require_verification,
            old_shares: SharesGiven::default(),
            verification: None,
        })
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    pub fn status(&self, current: &SealConfig) -> RekeyStatus {
        // While the new shares are being verified, the old quorum has been met.
        let progress = match &self.verification {
            Some(_) => current.secret_threshold,
            None => self.old_shares.count(),
        };
        RekeyStatus {
            nonce: self.nonce.clone(),
            started: true,
            t: self.new_config.secret_threshold,
            n: self.new_config.secret_shares,
            progress,
            required: current.secret_threshold,
            pgp_fingerprints: None,
            backup: false,
            verification_required: self.verification_required,
            verification_nonce: self
                .verification
                .as_ref()
                .map(|verification| verification.nonce.clone())
                .unwrap_or_default(),
        }
    }

    /// One of the current shares. Returns the combined (old) unseal key at the
    /// threshold; the caller proves it against the stored root key.
    pub fn submit_old_share(
        &mut self,
        nonce: &str,
        share: Vec<u8>,
        current: &SealConfig,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, KeyOperationError> {
        if let Some(verification) = &self.verification {
            return Err(KeyOperationError::invalid(format!(
                "rekey operation already finished; verification must be performed; nonce for the verification operation is {:?}",
                verification.nonce
            )));
        }
        if nonce != self.nonce {
            return Err(KeyOperationError::invalid(format!(
                "incorrect nonce supplied; nonce for this rekey operation is {:?}",
                self.nonce
            )));
        }
        self.old_shares
            .add(share, current.secret_threshold, "rekey")
    }

    /// Make the new key and its shares, once the old key was proven. With verification
    /// required the key is kept here until its shares come back; otherwise the caller
    /// commits it and ends the attempt.
    pub fn create_new_key(&mut self, rng: &SharedRng) -> Result<NewKey, KeyOperationError> {
        assert!(
            self.verification.is_none(),
            "a new key is made once per attempt"
        );
        let (unseal_key, shares) = super::new_unseal_key(rng, &self.new_config)
            .map_err(|error| KeyOperationError::Internal(error.to_string()))?;
        let verification_nonce = if self.verification_required {
            let nonce = rng.uuid();
            self.verification = Some(Verification {
                nonce: nonce.clone(),
                new_unseal_key: unseal_key.clone(),
                shares: SharesGiven::default(),
            });
            Some(nonce)
        } else {
            None
        };
        Ok(NewKey {
            unseal_key,
            shares,
            config: self.new_config.clone(),
            verification_nonce,
        })
    }

    pub fn verification_status(&self) -> Result<VerificationStatus, KeyOperationError> {
        let verification = self.verification()?;
        Ok(VerificationStatus {
            nonce: verification.nonce.clone(),
            started: true,
            t: self.new_config.secret_threshold,
            n: self.new_config.secret_shares,
            progress: verification.shares.count(),
        })
    }

    /// One of the new shares. At the new threshold, returns the new key and its
    /// configuration for the caller to commit, if the shares combine to it.
    pub fn submit_new_share(
        &mut self,
        nonce: &str,
        share: Vec<u8>,
    ) -> Result<Option<(UnsealKey, SealConfig)>, KeyOperationError> {
        let threshold = self.new_config.secret_threshold;
        let verification = self.verification_mut()?;
        if nonce != verification.nonce {
            return Err(KeyOperationError::invalid(format!(
                "incorrect nonce supplied; nonce for this verify operation is {:?}",
                verification.nonce
            )));
        }
        let Some(combined) = verification.shares.add(share, threshold, "verify")? else {
            return Ok(None);
        };
        let matches = combined.len() == verification.new_unseal_key.len()
            && bool::from(combined.ct_eq(verification.new_unseal_key.as_slice()));
        if !matches {
            return Err(KeyOperationError::invalid(
                "the provided keys do not combine to the new key; verification progress was reset",
            ));
        }
        Ok(Some((
            verification.new_unseal_key.clone(),
            self.new_config.clone(),
        )))
    }

    /// `DELETE sys/rekey/verify`: forget the new shares given so far, with a new nonce.
    pub fn restart_verification(&mut self, rng: &SharedRng) -> Result<(), KeyOperationError> {
        let verification = self.verification_mut()?;
        verification.shares.clear();
        verification.nonce = rng.uuid();
        Ok(())
    }

    fn verification(&self) -> Result<&Verification, KeyOperationError> {
        self.verification
            .as_ref()
            .ok_or_else(|| KeyOperationError::invalid("no rekey verification in progress"))
    }

    fn verification_mut(&mut self) -> Result<&mut Verification, KeyOperationError> {
        self.verification
            .as_mut()
            .ok_or_else(|| KeyOperationError::invalid("no rekey verification in progress"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::shamir;

    fn request(shares: usize, threshold: usize, verify: bool) -> RekeyRequest {
        RekeyRequest {
            secret_shares: shares,
            secret_threshold: threshold,
            require_verification: verify,
        }
    }

    fn current_shares(rng: &SharedRng) -> (Vec<u8>, Vec<Vec<u8>>, SealConfig) {
        let key: [u8; 32] = rng.bytes();
        let shares = shamir::split(rng, &key, 3, 2).unwrap();
        (key.to_vec(), shares, SealConfig::shamir(3, 2).unwrap())
    }

    #[test]
    fn old_quorum_then_new_key_without_verification() {
        let rng = SharedRng::from_u64(21);
        let (old_key, old_shares, current) = current_shares(&rng);
        let mut rekey = Rekey::start(&rng, &request(5, 3, false)).unwrap();
        let nonce = rekey.nonce().to_string();
        assert_eq!(rekey.status(&current).progress, 0);
        assert_eq!(rekey.status(&current).required, 2);
        assert!(
            rekey
                .submit_old_share(&nonce, old_shares[0].clone(), &current)
                .unwrap()
                .is_none()
        );
        assert_eq!(rekey.status(&current).progress, 1);
        let combined = rekey
            .submit_old_share(&nonce, old_shares[2].clone(), &current)
            .unwrap()
            .unwrap();
        assert_eq!(combined.as_slice(), old_key.as_slice());

        let new = rekey.create_new_key(&rng).unwrap();
        assert_eq!(new.shares.len(), 5);
        assert!(new.verification_nonce.is_none());
        let parts: Vec<Vec<u8>> = new.shares[1..4].iter().map(|s| s.to_vec()).collect();
        assert_eq!(shamir::combine(&parts).unwrap(), new.unseal_key.as_slice());
        assert_ne!(new.unseal_key.as_slice(), old_key.as_slice());
    }

    #[test]
    fn a_wrong_nonce_is_refused_and_names_the_right_one() {
        let rng = SharedRng::from_u64(22);
        let (_, old_shares, current) = current_shares(&rng);
        let mut rekey = Rekey::start(&rng, &request(3, 2, false)).unwrap();
        let error = rekey
            .submit_old_share("not-the-nonce", old_shares[0].clone(), &current)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "incorrect nonce supplied; nonce for this rekey operation is {:?}",
                rekey.nonce()
            )
        );
        assert_eq!(rekey.status(&current).progress, 0);
    }

    #[test]
    fn new_shares_must_come_back_before_the_key_is_used() {
        let rng = SharedRng::from_u64(23);
        let (_, old_shares, current) = current_shares(&rng);
        let mut rekey = Rekey::start(&rng, &request(3, 2, true)).unwrap();
        let nonce = rekey.nonce().to_string();
        assert!(rekey.verification_status().is_err());
        rekey
            .submit_old_share(&nonce, old_shares[0].clone(), &current)
            .unwrap();
        rekey
            .submit_old_share(&nonce, old_shares[1].clone(), &current)
            .unwrap()
            .unwrap();
        let new = rekey.create_new_key(&rng).unwrap();
        let verification_nonce = new.verification_nonce.clone().unwrap();
        let status = rekey.status(&current);
        assert_eq!(status.verification_nonce, verification_nonce);
        assert_eq!(status.progress, status.required);

        // The old shares are done with: more of them are refused.
        assert!(
            rekey
                .submit_old_share(&nonce, old_shares[2].clone(), &current)
                .is_err()
        );
        // A restart gives a new nonce and forgets what was given.
        rekey
            .submit_new_share(&verification_nonce, new.shares[0].to_vec())
            .unwrap();
        assert_eq!(rekey.verification_status().unwrap().progress, 1);
        rekey.restart_verification(&rng).unwrap();
        let restarted = rekey.verification_status().unwrap();
        assert_eq!(restarted.progress, 0);
        assert_ne!(restarted.nonce, verification_nonce);
        assert!(
            rekey
                .submit_new_share(&verification_nonce, new.shares[0].to_vec())
                .is_err()
        );

        let nonce = restarted.nonce;
        assert!(
            rekey
                .submit_new_share(&nonce, new.shares[2].to_vec())
                .unwrap()
                .is_none()
        );
        let (key, config) = rekey
            .submit_new_share(&nonce, new.shares[1].to_vec())
            .unwrap()
            .unwrap();
        assert_eq!(key.as_slice(), new.unseal_key.as_slice());
        assert_eq!(config, SealConfig::shamir(3, 2).unwrap());
    }

    #[test]
    fn shares_of_another_key_fail_verification() {
        let rng = SharedRng::from_u64(24);
        let (_, old_shares, current) = current_shares(&rng);
        let mut rekey = Rekey::start(&rng, &request(3, 2, true)).unwrap();
        let nonce = rekey.nonce().to_string();
        rekey
            .submit_old_share(&nonce, old_shares[0].clone(), &current)
            .unwrap();
        rekey
            .submit_old_share(&nonce, old_shares[1].clone(), &current)
            .unwrap();
        rekey.create_new_key(&rng).unwrap();
        let nonce = rekey.verification_status().unwrap().nonce;
        rekey
            .submit_new_share(&nonce, old_shares[0].clone())
            .unwrap();
        assert!(
            rekey
                .submit_new_share(&nonce, old_shares[1].clone())
                .is_err()
        );
        assert_eq!(rekey.verification_status().unwrap().progress, 0);
    }

    #[test]
    fn bad_configurations_are_refused_with_vaults_words() {
        let rng = SharedRng::from_u64(25);
        assert_eq!(
            Rekey::start(&rng, &request(3, 4, false))
                .unwrap_err()
                .to_string(),
            "provided threshold greater than the total shares"
        );
        for (shares, threshold) in [(0, 0), (3, 1), (256, 3)] {
            let error = Rekey::start(&rng, &request(shares, threshold, false)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("invalid rekey seal configuration: "),
                "{error}"
            );
        }
    }

    #[test]
    fn status_reads_as_vaults() {
        let rng = SharedRng::from_u64(26);
        let current = SealConfig::shamir(5, 3).unwrap();
        let idle = serde_json::to_value(RekeyStatus::not_started(&current)).unwrap();
        assert_eq!(
            idle,
            serde_json::json!({
                "nonce": "", "started": false, "t": 0, "n": 0, "progress": 0, "required": 3,
                "pgp_fingerprints": null, "backup": false, "verification_required": false,
            })
        );
        let rekey = Rekey::start(&rng, &request(1, 1, true)).unwrap();
        let started = serde_json::to_value(rekey.status(&current)).unwrap();
        assert_eq!(started["started"], true);
        assert_eq!(started["t"], 1);
        assert_eq!(started["n"], 1);
        assert_eq!(started["verification_required"], true);
        assert!(started.get("verification_nonce").is_none());
    }
}
