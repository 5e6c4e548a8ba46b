//! Shamir secret sharing over GF(256), byte by byte, as Vault does. Shares are laid out
//! like Vault's: the y bytes followed by the x coordinate as the last byte.

use crate::env::SharedRng;
use vsss_rs::Gf256;

/// Vault's limits: at most 255 shares (x is one byte, 0 is reserved).
pub const SHARES_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    #[error("invalid share count or threshold")]
    InvalidParameters,
    #[error("invalid share: {0}")]
    InvalidShare(String),
}

/// Split `secret` into `shares` parts, any `threshold` of which recover it.
pub fn split(
    rng: &SharedRng,
    secret: &[u8],
    shares: usize,
    threshold: usize,
) -> Result<Vec<Vec<u8>>, ShamirError> {
    if !(2..=SHARES_MAX).contains(&shares)
        || !(2..=shares).contains(&threshold)
        || secret.is_empty()
    {
        return Err(ShamirError::InvalidParameters);
    }
    let parts = rng
        .with(|rng| Gf256::split_bytes(threshold, shares, secret, rng))
        .map_err(|_| ShamirError::InvalidParameters)?;
    // vsss-rs puts x first; Vault puts it last.
    Ok(parts
        .into_iter()
        .map(|mut part| {
            let x = part.remove(0);
            part.push(x);
            part
        })
        .collect())
}

/// Recover the secret from shares in Vault's layout. Too few shares yield a wrong
/// secret, not an error: the caller detects that by failing to decrypt.
pub fn combine(parts: &[Vec<u8>]) -> Result<Vec<u8>, ShamirError> {
    let Some(first) = parts.first() else {
        return Err(ShamirError::InvalidShare("no shares".into()));
    };
    if first.len() < 2 || parts.iter().any(|part| part.len() != first.len()) {
        return Err(ShamirError::InvalidShare("shares differ in length".into()));
    }
    let mut seen = [false; 256];
    let reordered: Vec<Vec<u8>> = parts
        .iter()
        .map(|part| {
            let x = part[part.len() - 1];
            let mut out = Vec::with_capacity(part.len());
            out.push(x);
            out.extend_from_slice(&part[..part.len() - 1]);
            (x, out)
        })
        .map(|(x, out)| {
            if x == 0 || seen[x as usize] {
                Err(ShamirError::InvalidShare(
                    "duplicate or zero share index".into(),
                ))
            } else {
                seen[x as usize] = true;
                Ok(out)
            }
        })
        .collect::<Result<_, _>>()?;
    Gf256::combine_bytes(&reordered)
        .map_err(|error| ShamirError::InvalidShare(format!("{error:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn any_threshold_subset_recovers_the_secret() {
        let rng = SharedRng::from_u64(5);
        let secret: [u8; 32] = rng.bytes();
        let parts = split(&rng, &secret, 5, 3).unwrap();
        assert!(parts.iter().all(|part| part.len() == 33));
        let subset = vec![parts[4].clone(), parts[1].clone(), parts[2].clone()];
        assert_eq!(combine(&subset).unwrap(), secret);
        assert_eq!(combine(&parts).unwrap(), secret);
        assert_ne!(combine(&parts[..2]).unwrap(), secret);
        assert!(combine(&[parts[0].clone(), parts[0].clone()]).is_err());
    }

    proptest! {
        #[test]
        fn split_then_combine_round_trips(seed: u64, length in 1usize..48, threshold in 2usize..5, extra in 0usize..3) {
            let rng = SharedRng::from_u64(seed);
            let mut secret = vec![0u8; length];
            rng.fill(&mut secret);
            let parts = split(&rng, &secret, threshold + extra, threshold).unwrap();
            prop_assert_eq!(combine(&parts[extra..]).unwrap(), secret);
        }

        #[test]
        fn combine_never_panics(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..5)) {
            let _ = combine(&parts);
        }
    }
}
