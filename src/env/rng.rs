//! The one source of randomness a node uses: ChaCha20, seeded from the OS in production
//! and from the simulator's seed under madsim. Never implicit entropy in server code:
//! getrandom 0.2 (rand 0.8, ring) escapes the simulator.

use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

/// A cloneable handle to one seeded cryptographic RNG.
#[derive(Clone)]
pub struct SharedRng {
    inner: Arc<Mutex<ChaCha20Rng>>,
}

impl std::fmt::Debug for SharedRng {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SharedRng")
    }
}

impl SharedRng {
    /// In production the OS; under madsim the simulator's seeded RNG.
    pub fn from_entropy() -> Self {
        Self::from_seed(entropy_seed())
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ChaCha20Rng::from_seed(seed))),
        }
    }

    pub fn from_u64(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ChaCha20Rng::seed_from_u64(seed))),
        }
    }

    /// Run `use_rng` with exclusive access to the generator (for crypto APIs that take
    /// `&mut impl CryptoRng`).
    pub fn with<T>(&self, use_rng: impl FnOnce(&mut ChaCha20Rng) -> T) -> T {
        let mut rng = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        use_rng(&mut rng)
    }

    pub fn fill(&self, bytes: &mut [u8]) {
        self.with(|rng| rng.fill_bytes(bytes));
    }

    pub fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.fill(&mut bytes);
        bytes
    }

    pub fn next_u64(&self) -> u64 {
        self.with(|rng| rng.next_u64())
    }

    /// A value in `0..bound` (bound > 0), without modulo bias worth caring about for
    /// the uses here (jitter, fault choices).
    pub fn below(&self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0) has no valid answer");
        self.next_u64() % bound
    }

    /// A random version-4 UUID in its canonical text form.
    pub fn uuid(&self) -> String {
        let mut bytes: [u8; 16] = self.bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex = hex::encode(bytes);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// `length` characters of base62, as Vault uses in token bodies.
    pub fn base62(&self, length: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut out = String::with_capacity(length);
        while out.len() < length {
            // Rejection sampling keeps every character equally likely.
            let byte = self.bytes::<1>()[0];
            if byte < 248 {
                out.push(ALPHABET[(byte % 62) as usize] as char);
            }
        }
        out
    }
}

#[cfg(not(madsim))]
fn entropy_seed() -> [u8; 32] {
    use rand_core::TryRng;
    let mut seed = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut seed)
        .expect("the operating system's entropy source must be available");
    seed
}

#[cfg(madsim)]
fn entropy_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&madsim::rand::random::<u64>().to_le_bytes());
    }
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_stream() {
        let first = SharedRng::from_u64(7);
        let second = SharedRng::from_u64(7);
        assert_eq!(first.bytes::<32>(), second.bytes::<32>());
        assert_ne!(first.uuid(), SharedRng::from_u64(8).uuid());
    }

    #[test]
    fn base62_has_requested_length_and_alphabet() {
        let token = SharedRng::from_u64(1).base62(24);
        assert_eq!(token.len(), 24);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
