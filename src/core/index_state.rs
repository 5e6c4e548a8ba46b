//! `X-Vault-Index`: the state a response was written at, and the state a request needs.
//!
//! Vault's format is base64 (standard alphabet) of
//! `v1:<cluster-id>:<local-index>:<replicated-index>:<hex HMAC-SHA256 of the text before it>`.
//! A response that committed carries the index it committed at; a client that sends it back
//! asks the node to answer only once it has applied that much (else 412). The HMAC keeps a
//! client from inventing an index the node would wait for; its key is derived from the
//! barrier's first key term, so every node of the cluster (and every term after a rotation)
//! computes the same one.
//!
//! Pure: encoding, decoding and checking; the core decides what to wait for.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The version prefix of the encoded state.
const STATE_VERSION: &str = "v1";
/// Vault's client sends at most two merged states (`api.MergeReplicationStates`).
pub const STATES_PER_REQUEST_MAX: usize = 2;
/// The longest header value decoded (a cluster id, two indexes and a hex HMAC fit well
/// under it).
pub const HEADER_BYTES_MAX: usize = 512;
/// What the HMAC key is derived for, so it is never the raw encryption key.
const KEY_DERIVATION_LABEL: &[u8] = b"arca x-vault-index v1";

/// Where a cluster's storage stood when a response was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    pub cluster_id: String,
    /// The Raft log index of this cluster (local and replicated writes alike).
    pub local_index: u64,
    /// The replicated (WAL) index; 0 where nothing is replicated.
    pub replicated_index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexStateError {
    #[error("invalid X-Vault-Index header: {0}")]
    Malformed(&'static str),
    #[error("X-Vault-Index header failed its integrity check")]
    BadSignature,
    #[error("too many X-Vault-Index states: at most {STATES_PER_REQUEST_MAX}")]
    TooMany,
}

/// The key states are signed with, derived from key material every node of the cluster
/// holds once unsealed.
#[derive(Clone)]
pub struct IndexStateKey([u8; 32]);

impl IndexStateKey {
    pub fn derive(key_material: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key_material)
            .expect("HMAC takes keys of any length");
        mac.update(KEY_DERIVATION_LABEL);
        Self(mac.finalize().into_bytes().into())
    }

    fn sign(&self, text: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for IndexStateKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("IndexStateKey(..)")
    }
}

impl IndexState {
    /// The header value.
    pub fn encode(&self, key: &IndexStateKey) -> String {
        use base64::Engine;
        let text = format!(
            "{STATE_VERSION}:{}:{}:{}",
            self.cluster_id, self.local_index, self.replicated_index
        );
        let signature = hex::encode(key.sign(&text));
        base64::engine::general_purpose::STANDARD.encode(format!("{text}:{signature}"))
    }

    /// Decode and verify one header value.
    pub fn decode(value: &str, key: &IndexStateKey) -> Result<IndexState, IndexStateError> {
        use base64::Engine;
        if value.len() > HEADER_BYTES_MAX {
            return Err(IndexStateError::Malformed("too long"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| IndexStateError::Malformed("not base64"))?;
        let text = String::from_utf8(bytes).map_err(|_| IndexStateError::Malformed("not UTF-8"))?;
        let (signed, signature) = text
            .rsplit_once(':')
            .ok_or(IndexStateError::Malformed("no signature"))?;
        let mut fields = signed.split(':');
        let (Some(version), Some(cluster_id), Some(local), Some(replicated), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(IndexStateError::Malformed("expected five fields"));
        };
        if version != STATE_VERSION {
            return Err(IndexStateError::Malformed("unknown version"));
        }
        let signature =
            hex::decode(signature).map_err(|_| IndexStateError::Malformed("signature not hex"))?;
        if !bool::from(signature.as_slice().ct_eq(&key.sign(signed))) {
            return Err(IndexStateError::BadSignature);
        }
        Ok(IndexState {
            cluster_id: cluster_id.to_string(),
            local_index: local
                .parse()
                .map_err(|_| IndexStateError::Malformed("local index"))?,
            replicated_index: replicated
                .parse()
                .map_err(|_| IndexStateError::Malformed("replicated index"))?,
        })
    }

    /// Decode every `X-Vault-Index` value of a request (at most
    /// [`STATES_PER_REQUEST_MAX`]).
    pub fn decode_all<'a>(
        values: impl Iterator<Item = &'a str>,
        key: &IndexStateKey,
    ) -> Result<Vec<IndexState>, IndexStateError> {
        let mut states = Vec::new();
        for value in values.flat_map(|value| value.split(',')) {
            if value.trim().is_empty() {
                continue;
            }
            if states.len() == STATES_PER_REQUEST_MAX {
                return Err(IndexStateError::TooMany);
            }
            states.push(IndexState::decode(value, key)?);
        }
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> IndexStateKey {
        IndexStateKey::derive(&[7; 32])
    }

    #[test]
    fn a_state_round_trips_and_reads_as_vault_writes_it() {
        let state = IndexState {
            cluster_id: "3a1e2f9c-0b6d-4a7e-9c1d-5f2b8e7a6d40".into(),
            local_index: 42,
            replicated_index: 0,
        };
        let encoded = state.encode(&key());
        assert_eq!(IndexState::decode(&encoded, &key()), Ok(state));
        use base64::Engine;
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&encoded)
                .unwrap(),
        )
        .unwrap();
        assert!(
            text.starts_with("v1:3a1e2f9c-0b6d-4a7e-9c1d-5f2b8e7a6d40:42:0:"),
            "{text}"
        );
        assert_eq!(text.rsplit(':').next().unwrap().len(), 64);
    }

    #[test]
    fn a_forged_or_foreign_state_is_refused() {
        let state = IndexState {
            cluster_id: "c".into(),
            local_index: 1,
            replicated_index: 0,
        };
        let other_key = IndexStateKey::derive(&[8; 32]);
        assert_eq!(
            IndexState::decode(&state.encode(&other_key), &key()),
            Err(IndexStateError::BadSignature)
        );
        use base64::Engine;
        let raised = base64::engine::general_purpose::STANDARD
            .encode(format!("v1:c:99:0:{}", hex::encode(key().sign("v1:c:1:0"))));
        assert_eq!(
            IndexState::decode(&raised, &key()),
            Err(IndexStateError::BadSignature)
        );
        let three = [
            state.encode(&key()),
            state.encode(&key()),
            state.encode(&key()),
        ];
        assert_eq!(
            IndexState::decode_all(three.iter().map(String::as_str), &key()),
            Err(IndexStateError::TooMany)
        );
    }

    proptest! {
        #[test]
        fn decoding_any_input_never_panics(value in ".{0,600}") {
            let _ = IndexState::decode(&value, &key());
        }

        #[test]
        fn every_state_round_trips(cluster in "[a-z0-9-]{1,40}", local: u64, replicated: u64) {
            let state = IndexState { cluster_id: cluster, local_index: local, replicated_index: replicated };
            prop_assert_eq!(IndexState::decode(&state.encode(&key()), &key()), Ok(state));
        }
    }
}
