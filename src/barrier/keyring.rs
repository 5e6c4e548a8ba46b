//! The keyring: the root key and every encryption key term the barrier has used.
//! Values keep the term they were written under, so rotation never re-encrypts data;
//! old terms stay for reading until nothing refers to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::aead::KEY_BYTES;
use crate::env::SharedRng;

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct TermKey {
    pub term: u32,
    pub key: [u8; KEY_BYTES],
    /// When the term was installed, seconds since the Unix epoch.
    pub install_time_unix: i64,
}

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Keyring {
    /// Encrypts the keyring itself in storage; sealed by the unseal key.
    pub root_key: [u8; KEY_BYTES],
    #[zeroize(skip)]
    terms: BTreeMap<u32, TermKey>,
    pub active_term: u32,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        formatter
            .debug_struct("Keyring")
            .field("active_term", &self.active_term)
            .field("terms", &self.terms.len())
            .finish()
    }
}

impl Keyring {
    /// A fresh keyring: a random root key and term 1.
    pub fn generate(rng: &SharedRng, now_unix: i64) -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(
            1,
            TermKey {
                term: 1,
                key: rng.bytes(),
                install_time_unix: now_unix,
            },
        );
        Self {
            root_key: rng.bytes(),
            terms,
            active_term: 1,
        }
    }

    pub fn active(&self) -> &TermKey {
        &self.terms[&self.active_term]
    }

    pub fn term(&self, term: u32) -> Option<&TermKey> {
        self.terms.get(&term)
    }

    /// Add a new term and make it active (`sys/rotate`).
    pub fn rotate(&mut self, rng: &SharedRng, now_unix: i64) -> u32 {
        let term = self.active_term + 1;
        self.terms.insert(
            term,
            TermKey {
                term,
                key: rng.bytes(),
                install_time_unix: now_unix,
            },
        );
        self.active_term = term;
        term
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a keyring always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let keyring: Self = serde_json::from_slice(bytes)?;
        assert!(
            keyring.terms.contains_key(&keyring.active_term),
            "a stored keyring names an active term it holds"
        );
        Ok(keyring)
    }
}
