//! Activation and wrapping JWTs are presented by clients and peers: any string must be
//! refused cleanly unless it carries a valid ES512 signature.
#![no_main]
use libfuzzer_sys::fuzz_target;
use p521::ecdsa::SigningKey;
use p521::elliptic_curve::Generate;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let key = SigningKey::generate_from_rng(&mut rand_chacha::ChaCha20Rng::seed_from_u64(7));
        let _ = arca::wrapping::jwt::decode_unverified_claims(text);
        let _ = arca::wrapping::jwt::verify(text, key.verifying_key());
        let _ = arca::wrapping::jwt::looks_like_jwt(text);
    }
});
