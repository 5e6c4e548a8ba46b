//! One generate-root attempt on the active node (Vault's `sys/generate-root/*`): a
//! quorum of unseal key holders mints a new root token, handed back XORed with a
//! one-time password so that no single request or log line carries it in the clear.
//!
//! Phases: `start` (with the operator's OTP, or one made here from the node's seeded
//! RNG) → `submit` shares until the threshold → the shell proves the combined key
//! against the stored root key, creates the token and asks `encode` for the answer.
//!
//! The encoding is Vault's (`sdk/helper/roottoken`): the token's bytes XOR the OTP's
//! bytes, in unpadded standard base64; the OTP is as long as the token, `hvs.` plus 24
//! base62 characters. Decoding (the CLI's `-decode`) is the same XOR backwards.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Serialize;
use zeroize::Zeroizing;

use super::SealConfig;
use super::shares::{KeyOperationError, SharesGiven};
use crate::env::SharedRng;

/// Characters in an OTP: the length of a root token, `hvs.` and 24 base62 characters
/// (Vault's `TokenLength + TokenPrefixLength`).
pub const OTP_LENGTH: usize = 28;

/// `GET sys/generate-root/attempt` and the answers to its updates, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GenerateRootStatus {
    pub nonce: String,
    pub started: bool,
    pub progress: usize,
    pub required: usize,
    pub complete: bool,
    pub encoded_token: String,
    pub encoded_root_token: String,
    pub pgp_fingerprint: String,
    pub otp: String,
    pub otp_length: usize,
}

impl GenerateRootStatus {
    pub fn not_started(config: &SealConfig) -> Self {
        Self {
            nonce: String::new(),
            started: false,
            progress: 0,
            required: config.secret_threshold,
            complete: false,
            encoded_token: String::new(),
            encoded_root_token: String::new(),
            pgp_fingerprint: String::new(),
            otp: String::new(),
            otp_length: OTP_LENGTH,
        }
    }
}

pub struct GenerateRoot {
    nonce: String,
    otp: Zeroizing<String>,
    shares: SharesGiven,
}

impl std::fmt::Debug for GenerateRoot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GenerateRoot")
            .field("nonce", &self.nonce)
            .field("progress", &self.shares.count())
            .finish()
    }
}

impl GenerateRoot {
    /// Start an attempt. Without an OTP one is made here, and returned so the caller
    /// can show it once (Vault's answer to an init without `otp` or `pgp_key`).
    pub fn start(
        rng: &SharedRng,
        otp: Option<&str>,
    ) -> Result<(Self, Option<Zeroizing<String>>), KeyOperationError> {
        let (otp, generated) = match otp.filter(|otp| !otp.is_empty()) {
            Some(otp) if otp.len() != OTP_LENGTH => {
                return Err(KeyOperationError::invalid("OTP string is wrong length"));
            }
            Some(otp) => (Zeroizing::new(otp.to_string()), None),
            None => {
                let otp = Zeroizing::new(rng.base62(OTP_LENGTH));
                (otp.clone(), Some(otp))
            }
        };
        let attempt = Self {
            nonce: rng.uuid(),
            otp,
            shares: SharesGiven::default(),
        };
        Ok((attempt, generated))
    }

    pub fn status(&self, config: &SealConfig) -> GenerateRootStatus {
        GenerateRootStatus {
            nonce: self.nonce.clone(),
            started: true,
            progress: self.shares.count(),
            ..GenerateRootStatus::not_started(config)
        }
    }

    /// One unseal key share. Returns the combined unseal key at the threshold; the
    /// caller proves it against the stored root key before minting anything.
    pub fn submit(
        &mut self,
        nonce: &str,
        share: Vec<u8>,
        config: &SealConfig,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, KeyOperationError> {
        if nonce != self.nonce {
            return Err(KeyOperationError::invalid(format!(
                "incorrect nonce supplied; nonce for this root generation operation is {:?}",
                self.nonce
            )));
        }
        self.shares
            .add(share, config.secret_threshold, "generation")
    }

    /// The answer once the token exists: the status with the encoded token.
    pub fn completed(
        &self,
        token: &str,
        config: &SealConfig,
    ) -> Result<GenerateRootStatus, KeyOperationError> {
        let encoded = encode_token(token, &self.otp)?;
        Ok(GenerateRootStatus {
            nonce: self.nonce.clone(),
            started: true,
            progress: config.secret_threshold,
            required: config.secret_threshold,
            complete: true,
            encoded_token: encoded.clone(),
            encoded_root_token: encoded,
            pgp_fingerprint: String::new(),
            otp: String::new(),
            otp_length: 0,
        })
    }
}

/// Vault's `roottoken.EncodeToken`: XOR with an OTP of the same length, unpadded base64.
pub fn encode_token(token: &str, otp: &str) -> Result<String, KeyOperationError> {
    if token.is_empty() {
        return Err(KeyOperationError::Internal("no token provided".into()));
    }
    if otp.is_empty() {
        return Err(KeyOperationError::Internal("no otp provided".into()));
    }
    let xored = xor_bytes(otp.as_bytes(), token.as_bytes()).map_err(|error| {
        KeyOperationError::Internal(format!("xor of root token failed: {error}"))
    })?;
    Ok(STANDARD_NO_PAD.encode(xored))
}

/// Vault's `roottoken.DecodeToken` as the CLI's `-decode` uses it. `otp_length` is what
/// the server's status reports: 0 means the pre-1.10 form (a base64 OTP XORed with a
/// UUID token's 16 bytes), anything else the current form.
pub fn decode_token(encoded: &str, otp: &str, otp_length: usize) -> Result<String, String> {
    if otp_length == 0 {
        let encoded = STANDARD
            .decode(encoded)
            .map_err(|error| format!("error decoding first base64 value: {error}"))?;
        let otp = STANDARD
            .decode(otp)
            .map_err(|error| format!("error decoding second base64 value: {error}"))?;
        let bytes =
            xor_bytes(&encoded, &otp).map_err(|error| format!("error xoring token: {error}"))?;
        if bytes.len() != 16 {
            return Err(format!(
                "error formatting base64 token value: wrong length byte slice ({})",
                bytes.len()
            ));
        }
        let hex = hex::encode(bytes);
        return Ok(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ));
    }
    let bytes = STANDARD_NO_PAD
        .decode(encoded)
        .map_err(|error| format!("error decoding base64'd token: {error}"))?;
    let token = xor_bytes(&bytes, otp.as_bytes())
        .map_err(|error| format!("error xoring token: {error}"))?;
    String::from_utf8(token).map_err(|_| "error xoring token: the result is not text".to_string())
}

/// Vault's `xor.XORBytes`: equal lengths or an error with its words.
fn xor_bytes(left: &[u8], right: &[u8]) -> Result<Vec<u8>, String> {
    if left.len() != right.len() {
        return Err(format!(
            "length of byte slices is not equivalent: {} != {}",
            left.len(),
            right.len()
        ));
    }
    Ok(left.iter().zip(right).map(|(a, b)| a ^ b).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::shamir;
    use proptest::prelude::*;

    #[test]
    fn encoding_is_vaults_xor_in_unpadded_base64() {
        // XOR of "hvs.A" with "aaaaa", worked by hand: 0x68^0x61=0x09, 0x76^0x61=0x17,
        // 0x73^0x61=0x12, 0x2e^0x61=0x4f, 0x41^0x61=0x20.
        let encoded = encode_token("hvs.A", "aaaaa").unwrap();
        assert_eq!(
            STANDARD_NO_PAD.decode(&encoded).unwrap(),
            [0x09, 0x17, 0x12, 0x4f, 0x20]
        );
        assert!(!encoded.ends_with('='));
        assert_eq!(decode_token(&encoded, "aaaaa", 5).unwrap(), "hvs.A");
        assert_eq!(
            encode_token("someToken", "tooShort")
                .unwrap_err()
                .to_string(),
            "xor of root token failed: length of byte slices is not equivalent: 8 != 9"
        );
        assert_eq!(
            encode_token("", "x").unwrap_err().to_string(),
            "no token provided"
        );
    }

    #[test]
    fn the_pre_1_10_form_decodes_to_a_uuid() {
        let token = [0x11u8; 16];
        let otp = [0x22u8; 16];
        let encoded: Vec<u8> = token.iter().zip(otp).map(|(a, b)| a ^ b).collect();
        let decoded = decode_token(&STANDARD.encode(encoded), &STANDARD.encode(otp), 0).unwrap();
        assert_eq!(decoded, "11111111-1111-1111-1111-111111111111");
    }

    #[test]
    fn an_attempt_generates_an_otp_of_token_length_from_the_seeded_rng() {
        let (attempt, otp) = GenerateRoot::start(&SharedRng::from_u64(3), None).unwrap();
        let otp = otp.unwrap();
        assert_eq!(otp.len(), OTP_LENGTH);
        let (again, otp_again) = GenerateRoot::start(&SharedRng::from_u64(3), None).unwrap();
        assert_eq!(otp, otp_again.unwrap(), "the same seed gives the same OTP");
        assert_eq!(attempt.nonce, again.nonce);
        assert_eq!(
            GenerateRoot::start(&SharedRng::from_u64(3), Some("short"))
                .unwrap_err()
                .to_string(),
            "OTP string is wrong length"
        );
    }

    #[test]
    fn a_quorum_completes_and_the_answer_decodes_to_the_token() {
        let rng = SharedRng::from_u64(4);
        let config = SealConfig::shamir(3, 2).unwrap();
        let key: [u8; 32] = rng.bytes();
        let parts = shamir::split(&rng, &key, 3, 2).unwrap();
        let otp = rng.base62(OTP_LENGTH);
        let (mut attempt, generated) = GenerateRoot::start(&rng, Some(&otp)).unwrap();
        assert!(generated.is_none());
        let nonce = attempt.status(&config).nonce;
        assert!(attempt.submit("wrong", parts[0].clone(), &config).is_err());
        assert!(
            attempt
                .submit(&nonce, parts[0].clone(), &config)
                .unwrap()
                .is_none()
        );
        assert_eq!(attempt.status(&config).progress, 1);
        let combined = attempt
            .submit(&nonce, parts[1].clone(), &config)
            .unwrap()
            .unwrap();
        assert_eq!(combined.as_slice(), key);
        let token = format!("hvs.{}", rng.base62(24));
        let done = attempt.completed(&token, &config).unwrap();
        assert!(done.complete);
        assert_eq!(done.encoded_token, done.encoded_root_token);
        assert_eq!(
            decode_token(&done.encoded_token, &otp, OTP_LENGTH).unwrap(),
            token
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(token in "[ -~]{1,40}", seed: u64) {
            let otp = SharedRng::from_u64(seed).base62(token.len());
            let encoded = encode_token(&token, &otp).unwrap();
            prop_assert_eq!(decode_token(&encoded, &otp, otp.len()).unwrap(), token);
        }

        #[test]
        fn decoding_garbage_never_panics(encoded in ".{0,60}", otp in ".{0,40}", otp_length in 0usize..40) {
            let _ = decode_token(&encoded, &otp, otp_length);
        }
    }
}
