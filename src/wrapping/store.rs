//! The wrapping store: single-use tokens that each guard one stored response.
//!
//! Owns the key space below `sys/wrapping/` (a LOCAL prefix: wrapping tokens never
//! leave the cluster that minted them):
//!
//! - `jwtkey`: this cluster's ES512 signing key and the HMAC key for token ids, created
//!   once from the injected RNG and kept behind the barrier like every value.
//! - `token/<hex HMAC-SHA256(token id)>`: one record per live wrapping token, holding
//!   the wrapped response as the JSON text Vault keeps in `cubbyhole/response` and the
//!   lookup fields Vault keeps in `cubbyhole/wrapinfo`.
//!
//! Events in: `wrap`, `unwrap`, `lookup`, `rewrap`, `tidy`, each with `now_unix` from
//! the caller. Invariants: no token id is stored in clear (only its HMAC, compared in
//! constant time); a token unwraps at most once, because the record is deleted in the
//! same critical section that reads it and the payload is returned only after the
//! delete is committed; at most [`WRAPPING_TOKENS_LIVE_MAX`] records exist.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use p521::ecdsa::SigningKey;
use p521::elliptic_curve::Generate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::jwt;
use super::wrap_info::{WrapFormat, WrapInfo};
use crate::barrier::{View, Write};
use crate::env::SharedRng;
use crate::logical::LogicalError;
use crate::util::rfc3339_seconds;

/// Vault's answer for a token that is unknown, used or expired; one message for all
/// three, so a caller learns nothing about which.
pub const INVALID_TOKEN_MESSAGE: &str = "wrapping token is not valid or does not exist";

/// The shortest wrap TTL: a zero TTL means "do not wrap" in Vault.
pub const WRAP_TTL_SECONDS_MIN: i64 = 1;
/// The longest wrap TTL: Vault's default system maximum lease TTL (768h), which also
/// caps the wrapping token Vault creates.
pub const WRAP_TTL_SECONDS_MAX: i64 = 768 * 3600;
/// The largest wrapped response we keep: the record must fit one Raft entry with room
/// for the barrier's framing.
pub const WRAPPED_RESPONSE_BYTES_MAX: usize = 512 * 1024;
/// The most live wrapping tokens at once; beyond it wrapping is refused with 429
/// rather than letting callers fill storage.
pub const WRAPPING_TOKENS_LIVE_MAX: usize = 16_384;
/// The longest API address put in a JWT's `addr`; keeps every JWT under
/// [`jwt::JWT_BYTES_MAX`].
pub const ADDR_BYTES_MAX: usize = 2048;
/// The longest creation path recorded.
pub const CREATION_PATH_BYTES_MAX: usize = 1024;
/// How many expired records one tidy commit deletes.
pub const TIDY_BATCH_ENTRIES_MAX: usize = 256;
/// Vault sets a JWT's `nbf` this far before `iat`.
pub const JWT_NOT_BEFORE_SKEW_SECONDS: i64 = 5;

/// The prefix of service tokens (Vault 1.10+) and the number of base62 characters
/// after it in the short form.
pub const TOKEN_PREFIX: &str = "hvs.";
pub const TOKEN_RANDOM_CHARS: usize = 24;
/// Accessors are 24 base62 characters, as Vault's are.
pub const ACCESSOR_CHARS: usize = 24;

/// Storage keys relative to the view.
const JWT_KEY_KEY: &str = "jwtkey";
const TOKENS_PREFIX: &str = "token/";
const HMAC_KEY_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The stored form of the cluster's keys (inside the barrier).
#[derive(Serialize, Deserialize)]
struct StoredKeys {
    /// The P-521 private scalar, 66 bytes big-endian, base64.
    signing_key: String,
    /// The key for HMACs of token ids, base64.
    token_hmac_key: String,
}

impl Drop for StoredKeys {
    fn drop(&mut self) {
        self.signing_key.zeroize();
        self.token_hmac_key.zeroize();
    }
}

/// The keys in memory, with a fingerprint of the record they came from so a replaced
/// record (a wiped and re-bootstrapped cluster) is noticed.
struct Keys {
    signing: SigningKey,
    token_hmac_key: Zeroizing<[u8; HMAC_KEY_BYTES]>,
    record_fingerprint: [u8; 32],
}

/// One live wrapping token.
#[derive(Serialize, Deserialize)]
struct WrappingRecord {
    /// Hex HMAC of the token id, equal to the key's last segment; compared in constant
    /// time after the read so a corrupted or misplaced record cannot answer for
    /// another token.
    token_hmac: String,
    accessor: String,
    creation_unix: i64,
    ttl_seconds: i64,
    creation_path: String,
    wrapped_accessor: String,
    /// The wrapped response as JSON text, as Vault stores it in `cubbyhole/response`.
    response: String,
}

impl WrappingRecord {
    fn is_expired(&self, now_unix: i64) -> bool {
        now_unix >= self.creation_unix.saturating_add(self.ttl_seconds)
    }
}

/// What `sys/wrapping/lookup` shows about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapLookup {
    pub creation_path: String,
    /// RFC 3339 UTC.
    pub creation_time: String,
    pub creation_ttl: i64,
}

/// A validated short token id, the only form the store looks up.
struct ShortToken(Zeroizing<String>);

impl ShortToken {
    /// `hvs.` and exactly 24 base62 characters, or nothing.
    fn parse(text: &str) -> Option<Self> {
        let random = text.strip_prefix(TOKEN_PREFIX)?;
        (random.len() == TOKEN_RANDOM_CHARS && random.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(Zeroizing::new(text.to_string())))
    }
}

pub struct WrappingStore {
    view: View,
    rng: SharedRng,
    /// Serializes every operation: read-check-delete must not interleave with another
    /// unwrap of the same token, and key creation must happen once. Holds the keys.
    state: tokio::sync::Mutex<Option<Arc<Keys>>>,
    /// [`WRAPPING_TOKENS_LIVE_MAX`]; a field only so tests can reach the bound quickly.
    live_tokens_max: usize,
}

impl std::fmt::Debug for WrappingStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WrappingStore")
            .field("prefix", &self.view.prefix())
            .finish_non_exhaustive()
    }
}

fn invalid() -> LogicalError {
    LogicalError::BadRequest(INVALID_TOKEN_MESSAGE.to_string())
}

fn internal(what: &str) -> LogicalError {
    LogicalError::Internal(format!("wrapping store: {what}"))
}

impl WrappingStore {
    /// `view` must be the barrier view at `sys/wrapping/`.
    pub fn new(view: View, rng: SharedRng) -> Self {
        assert!(
            view.prefix().ends_with('/'),
            "the wrapping store's view must be a folder"
        );
        Self {
            view,
            rng,
            state: tokio::sync::Mutex::new(None),
            live_tokens_max: WRAPPING_TOKENS_LIVE_MAX,
        }
    }

    /// A fresh request id for a response built here (`sys/wrapping/wrap`): the logical
    /// request does not carry the HTTP layer's id.
    pub fn new_request_id(&self) -> String {
        self.rng.uuid()
    }

    /// The cluster's public wrapping key as a JWK.
    pub async fn public_key_jwk(&self) -> Result<Value, LogicalError> {
        let mut state = self.state.lock().await;
        let keys = self.keys(&mut state).await?;
        Ok(jwt::public_key_jwk(keys.signing.verifying_key(), None))
    }

    /// Vault's `sys/wrapping/pubkey` data: the affine coordinates in decimal.
    pub async fn public_key_vault(&self) -> Result<Value, LogicalError> {
        let mut state = self.state.lock().await;
        let keys = self.keys(&mut state).await?;
        let (x, y) = jwt::coordinates(keys.signing.verifying_key());
        Ok(json!({
            "jwt_x": jwt::decimal_from_big_endian(&x),
            "jwt_y": jwt::decimal_from_big_endian(&y),
            "jwt_curve": "p521",
        }))
    }

    /// Store `response` (the full body Vault would have returned, including its
    /// `request_id`) behind a new single-use token valid for `ttl_seconds`.
    pub async fn wrap(
        &self,
        response: &Value,
        ttl_seconds: i64,
        creation_path: &str,
        wrapped_accessor: Option<&str>,
        now_unix: i64,
        format: WrapFormat,
    ) -> Result<WrapInfo, LogicalError> {
        check_ttl(ttl_seconds)?;
        if creation_path.len() > CREATION_PATH_BYTES_MAX {
            return Err(LogicalError::BadRequest(format!(
                "creation path is {} bytes, more than the {CREATION_PATH_BYTES_MAX} allowed",
                creation_path.len()
            )));
        }
        if let WrapFormat::Jwt { addr } = &format
            && addr.len() > ADDR_BYTES_MAX
        {
            return Err(LogicalError::BadRequest(format!(
                "API address is {} bytes, more than the {ADDR_BYTES_MAX} allowed in a wrapping JWT",
                addr.len()
            )));
        }
        let response_text = response.to_string();
        if response_text.len() > WRAPPED_RESPONSE_BYTES_MAX {
            return Err(LogicalError::BadRequest(format!(
                "response to wrap is {} bytes, more than the {WRAPPED_RESPONSE_BYTES_MAX} allowed",
                response_text.len()
            )));
        }

        let mut state = self.state.lock().await;
        let keys = self.keys(&mut state).await?;
        self.ensure_capacity(now_unix).await?;

        let token = self.new_token();
        let accessor = self.rng.base62(ACCESSOR_CHARS);
        let token_hmac = token_hmac(&keys, &token);
        let record = WrappingRecord {
            token_hmac: token_hmac.clone(),
            accessor: accessor.clone(),
            creation_unix: now_unix,
            ttl_seconds,
            creation_path: creation_path.to_string(),
            wrapped_accessor: wrapped_accessor.unwrap_or_default().to_string(),
            response: response_text,
        };
        self.view
            .put_json(&record_key(&token_hmac), &record)
            .await?;

        let mut info = info_from_record(&record, token.0.to_string());
        if let WrapFormat::Jwt { addr } = format {
            let claims = json!({
                "accessor": record.wrapped_accessor,
                "addr": addr,
                "exp": now_unix.saturating_add(ttl_seconds),
                "iat": now_unix,
                "jti": token.0.as_str(),
                "nbf": now_unix.saturating_sub(JWT_NOT_BEFORE_SKEW_SECONDS),
                "type": "wrapping",
            });
            info.token = jwt::sign(&claims, &keys.signing, None);
            assert!(
                info.token.len() <= jwt::JWT_BYTES_MAX,
                "bounded inputs keep wrapping JWTs within what we accept back"
            );
            if addr.is_empty() {
                info.warnings.push(
                    "No redirect address set in Vault so none could be encoded in the token. \
                     You may need to supply Vault's API address when unwrapping the token."
                        .to_string(),
                );
            }
        }
        Ok(info)
    }

    /// Return the wrapped response and destroy the token. Accepts the short token or
    /// the JWT form (signature checked with this cluster's key, then `jti` is used).
    pub async fn unwrap(&self, token: &str, now_unix: i64) -> Result<Value, LogicalError> {
        let mut state = self.state.lock().await;
        let keys = self.keys(&mut state).await?;
        let short = resolve(&keys, token)?;
        let (key, record) = self.live_record(&keys, &short, now_unix).await?;
        let response: Value = serde_json::from_str(&record.response)
            .map_err(|_| internal("stored wrapped response is not JSON"))?;
        // The payload leaves only after the delete is committed (at once, under the
        // lock, not staged with the request): a failed delete leaves the token usable
        // and the caller sees an error, never a second copy.
        self.view
            .commit_now(vec![Write::Delete { key: key.clone() }])
            .await?;
        Ok(response)
    }

    /// The creation path, time and TTL of a live token, without using it up.
    pub async fn lookup(&self, token: &str, now_unix: i64) -> Result<WrapLookup, LogicalError> {
        let mut state = self.state.lock().await;
        let keys = self.keys(&mut state).await?;
        let short = resolve(&keys, token)?;
        let (_, record) = self.live_record(&keys, &short, now_unix).await?;
        Ok(WrapLookup {
            creation_path: record.creation_path.clone(),
            creation_time: rfc3339_seconds(record.creation_unix),
            creation_ttl: record.ttl_seconds,
        })
    }

    /// Move the payload to a new short token with the original TTL and creation path,
    /// invalidating the old one in the same committed batch.
    pub async fn rewrap(&self, token: &str, now_unix: i64) -> Result<WrapInfo, LogicalError> {
        let mut state = self.state.lock().await;
        let keys = self.keys(&mut state).await?;
        let short = resolve(&keys, token)?;
        let (old_key, old) = self.live_record(&keys, &short, now_unix).await?;

        let token = self.new_token();
        let token_hmac = token_hmac(&keys, &token);
        let record = WrappingRecord {
            token_hmac: token_hmac.clone(),
            accessor: self.rng.base62(ACCESSOR_CHARS),
            creation_unix: now_unix,
            ttl_seconds: old.ttl_seconds,
            creation_path: old.creation_path.clone(),
            wrapped_accessor: old.wrapped_accessor.clone(),
            response: old.response.clone(),
        };
        let value = serde_json::to_vec(&record).map_err(|_| internal("record encoding"))?;
        // At once, under the lock, as unwrap deletes: the old token is spent before the
        // new one is handed out.
        self.view
            .commit_now(vec![
                Write::Put {
                    key: record_key(&token_hmac),
                    value,
                },
                Write::Delete { key: old_key },
            ])
            .await?;
        Ok(info_from_record(&record, token.0.to_string()))
    }

    /// Delete every expired record; returns how many were removed.
    pub async fn tidy(&self, now_unix: i64) -> Result<usize, LogicalError> {
        let _state = self.state.lock().await;
        self.tidy_locked(now_unix).await
    }

    async fn tidy_locked(&self, now_unix: i64) -> Result<usize, LogicalError> {
        let mut expired = Vec::new();
        for name in self.view.list(TOKENS_PREFIX)? {
            let key = format!("{TOKENS_PREFIX}{name}");
            match self.view.get_json::<WrappingRecord>(&key) {
                Ok(Some(record)) if record.is_expired(now_unix) => expired.push(key),
                Ok(_) => {}
                // A record we cannot read can never be unwrapped either; it stays for
                // an operator to look at rather than vanishing silently.
                Err(error) => tracing::warn!(%error, "unreadable wrapping record"),
            }
        }
        let removed = expired.len();
        for batch in expired.chunks(TIDY_BATCH_ENTRIES_MAX) {
            let writes = batch
                .iter()
                .map(|key| Write::Delete { key: key.clone() })
                .collect();
            self.view.commit_now(writes).await?;
        }
        Ok(removed)
    }

    /// Refuse a new token when the live bound is reached, after clearing expired ones.
    async fn ensure_capacity(&self, now_unix: i64) -> Result<(), LogicalError> {
        if self.view.list(TOKENS_PREFIX)?.len() < self.live_tokens_max {
            return Ok(());
        }
        self.tidy_locked(now_unix).await?;
        if self.view.list(TOKENS_PREFIX)?.len() < self.live_tokens_max {
            return Ok(());
        }
        Err(LogicalError::TooManyRequests(format!(
            "too many live wrapping tokens (the limit is {}); \
             unwrap some or wait for them to expire",
            self.live_tokens_max
        )))
    }

    fn new_token(&self) -> ShortToken {
        let token = format!("{TOKEN_PREFIX}{}", self.rng.base62(TOKEN_RANDOM_CHARS));
        ShortToken::parse(&token).expect("generated tokens have the short form")
    }

    /// The live record of `short`, or the one error for unknown, used and expired.
    async fn live_record(
        &self,
        keys: &Keys,
        short: &ShortToken,
        now_unix: i64,
    ) -> Result<(String, WrappingRecord), LogicalError> {
        let token_hmac = token_hmac(keys, short);
        let key = record_key(&token_hmac);
        let Some(record) = self.view.get_json::<WrappingRecord>(&key)? else {
            return Err(invalid());
        };
        if !bool::from(record.token_hmac.as_bytes().ct_eq(token_hmac.as_bytes())) {
            return Err(invalid());
        }
        if record.is_expired(now_unix) {
            // An expired token can never be used again: drop its payload now rather
            // than waiting for tidy (at once: the request fails, and a failed request's
            // staged writes are dropped).
            self.view
                .commit_now(vec![Write::Delete { key: key.clone() }])
                .await?;
            return Err(invalid());
        }
        Ok((key, record))
    }

    /// The keys, created on first use and re-read when the stored record changed.
    async fn keys(&self, cached: &mut Option<Arc<Keys>>) -> Result<Arc<Keys>, LogicalError> {
        let stored = match self.view.get(JWT_KEY_KEY)? {
            Some(bytes) => Zeroizing::new(bytes),
            None => {
                let bytes = Zeroizing::new(self.generate_keys());
                // At once: the key is cached in memory and every later token is
                // signed with it.
                self.view
                    .commit_now(vec![Write::Put {
                        key: JWT_KEY_KEY.to_string(),
                        value: bytes.to_vec(),
                    }])
                    .await?;
                bytes
            }
        };
        let fingerprint: [u8; 32] = Sha256::digest(stored.as_slice()).into();
        if let Some(keys) = cached.as_ref()
            && keys.record_fingerprint == fingerprint
        {
            return Ok(keys.clone());
        }
        let keys = Arc::new(parse_keys(&stored, fingerprint)?);
        *cached = Some(keys.clone());
        Ok(keys)
    }

    fn generate_keys(&self) -> Vec<u8> {
        let signing = self.rng.with(SigningKey::generate_from_rng);
        let token_hmac_key = Zeroizing::new(self.rng.bytes::<HMAC_KEY_BYTES>());
        let stored = StoredKeys {
            signing_key: STANDARD.encode(signing.to_bytes()),
            token_hmac_key: STANDARD.encode(token_hmac_key.as_slice()),
        };
        serde_json::to_vec(&stored).expect("key records always serialize")
    }
}

fn parse_keys(stored: &[u8], record_fingerprint: [u8; 32]) -> Result<Keys, LogicalError> {
    let corrupt = || internal("stored wrapping key is corrupt");
    let record: StoredKeys = serde_json::from_slice(stored).map_err(|_| corrupt())?;
    let scalar = Zeroizing::new(
        STANDARD
            .decode(&record.signing_key)
            .map_err(|_| corrupt())?,
    );
    let signing = SigningKey::from_slice(&scalar).map_err(|_| corrupt())?;
    let hmac_bytes = Zeroizing::new(
        STANDARD
            .decode(&record.token_hmac_key)
            .map_err(|_| corrupt())?,
    );
    let mut token_hmac_key = Zeroizing::new([0u8; HMAC_KEY_BYTES]);
    if hmac_bytes.len() != HMAC_KEY_BYTES {
        return Err(corrupt());
    }
    token_hmac_key.copy_from_slice(&hmac_bytes);
    Ok(Keys {
        signing,
        token_hmac_key,
        record_fingerprint,
    })
}

/// Turn what a caller presented into the short token id, checking a JWT's signature
/// and type first (Vault's `ValidateWrappingToken`).
fn resolve(keys: &Keys, presented: &str) -> Result<ShortToken, LogicalError> {
    if jwt::looks_like_jwt(presented) {
        let claims = jwt::verify(presented, keys.signing.verifying_key()).map_err(|error| {
            LogicalError::BadRequest(format!("error validating wrapping token: {error}"))
        })?;
        if claims.get("type").and_then(Value::as_str) != Some("wrapping") {
            return Err(LogicalError::BadRequest(
                "error validating wrapping token: unexpected type claim".to_string(),
            ));
        }
        let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
        return ShortToken::parse(jti).ok_or_else(invalid);
    }
    ShortToken::parse(presented).ok_or_else(invalid)
}

fn token_hmac(keys: &Keys, token: &ShortToken) -> String {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(keys.token_hmac_key.as_slice())
        .expect("HMAC takes keys of any length");
    mac.update(token.0.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn record_key(token_hmac: &str) -> String {
    format!("{TOKENS_PREFIX}{token_hmac}")
}

fn info_from_record(record: &WrappingRecord, token: String) -> WrapInfo {
    WrapInfo {
        token,
        accessor: record.accessor.clone(),
        ttl_seconds: record.ttl_seconds,
        creation_time: rfc3339_seconds(record.creation_unix),
        creation_path: record.creation_path.clone(),
        wrapped_accessor: record.wrapped_accessor.clone(),
        warnings: Vec::new(),
    }
}

/// A wrap TTL within Vault's bounds, or Vault-style refusals.
pub fn check_ttl(ttl_seconds: i64) -> Result<(), LogicalError> {
    if ttl_seconds < 0 {
        return Err(LogicalError::BadRequest(
            "requested wrap ttl cannot be negative".to_string(),
        ));
    }
    if ttl_seconds < WRAP_TTL_SECONDS_MIN {
        return Err(LogicalError::BadRequest(
            "endpoint requires response wrapping to be used".to_string(),
        ));
    }
    if ttl_seconds > WRAP_TTL_SECONDS_MAX {
        return Err(LogicalError::BadRequest(format!(
            "requested wrap ttl of {ttl_seconds}s is more than the maximum of {WRAP_TTL_SECONDS_MAX}s"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::{Barrier, Keyring};
    use crate::storage::MemoryBackend;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use p521::ecdsa::VerifyingKey;

    const NOW: i64 = 1_774_633_958;
    const SECRET: &str = "correct-horse-battery-staple";

    struct Cluster {
        backend: Arc<MemoryBackend>,
        barrier: Barrier,
        rng: SharedRng,
    }

    impl Cluster {
        fn new(seed: u64) -> Self {
            let backend = Arc::new(MemoryBackend::new());
            let rng = SharedRng::from_u64(seed);
            let barrier = Barrier::new(backend.clone(), rng.clone());
            barrier.unseal_with(Keyring::generate(&rng, 0));
            Self {
                backend,
                barrier,
                rng,
            }
        }

        /// A store as the core builds it; several may share one cluster (a restart).
        fn store(&self) -> WrappingStore {
            WrappingStore::new(
                self.barrier.view(crate::storage::Store::Wrapping.prefix()),
                self.rng.clone(),
            )
        }

        /// True when `needle` appears anywhere in storage, keys or raw values.
        fn storage_contains(&self, needle: &str) -> bool {
            self.backend.dump().iter().any(|(key, value)| {
                key.contains(needle)
                    || value
                        .windows(needle.len())
                        .any(|window| window == needle.as_bytes())
            })
        }
    }

    fn secret_response() -> Value {
        json!({
            "request_id": "8e3c7f3a-0d1b-4c55-9a3e-7b1f1e0c2d4a",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": {"password": SECRET},
            "wrap_info": null,
            "warnings": null,
            "auth": null,
            "mount_type": "kv",
        })
    }

    fn invalid_error() -> LogicalError {
        LogicalError::BadRequest(INVALID_TOKEN_MESSAGE.to_string())
    }

    async fn wrap_token(store: &WrappingStore, ttl: i64, now: i64) -> WrapInfo {
        store
            .wrap(
                &secret_response(),
                ttl,
                "secret/data/app",
                None,
                now,
                WrapFormat::Token,
            )
            .await
            .unwrap()
    }

    fn claims_of(token: &str) -> Map<String, Value> {
        match jwt::decode_unverified_claims(token).unwrap() {
            Value::Object(map) => map,
            other => panic!("claims are not an object: {other}"),
        }
    }

    use serde_json::Map;

    #[tokio::test]
    async fn wrap_lookup_unwrap_once_then_the_token_is_gone() {
        let cluster = Cluster::new(1);
        let store = cluster.store();

        // Wrapping answers with Vault's wrap_info fields and a short service token.
        let info = wrap_token(&store, 300, NOW).await;
        assert!(info.token.starts_with("hvs.") && info.token.len() == 28);
        assert_eq!(info.accessor.len(), ACCESSOR_CHARS);
        assert_eq!(info.ttl_seconds, 300);
        assert_eq!(info.creation_time, rfc3339_seconds(NOW));
        assert_eq!(info.creation_path, "secret/data/app");
        assert_eq!(info.wrapped_accessor, "");

        // Lookup shows the creation facts and does not use the token up.
        let lookup = store.lookup(&info.token, NOW + 10).await.unwrap();
        assert_eq!(
            lookup,
            WrapLookup {
                creation_path: "secret/data/app".to_string(),
                creation_time: rfc3339_seconds(NOW),
                creation_ttl: 300,
            }
        );

        // The first unwrap returns the inner response verbatim.
        let unwrapped = store.unwrap(&info.token, NOW + 20).await.unwrap();
        assert_eq!(unwrapped, secret_response());

        // The second unwrap, and any lookup afterwards, find nothing.
        assert_eq!(
            store.unwrap(&info.token, NOW + 21).await,
            Err(invalid_error())
        );
        assert_eq!(
            store.lookup(&info.token, NOW + 21).await,
            Err(invalid_error())
        );
        assert_eq!(invalid_error().status(), 400);
    }

    #[tokio::test]
    async fn tokens_expire_when_now_reaches_creation_plus_ttl() {
        let cluster = Cluster::new(2);
        let store = cluster.store();
        let short = wrap_token(&store, 60, NOW).await;
        let long = wrap_token(&store, 600, NOW).await;

        // One second before expiry the token still answers; at expiry it is invalid.
        assert!(store.lookup(&short.token, NOW + 59).await.is_ok());
        assert_eq!(
            store.unwrap(&short.token, NOW + 60).await,
            Err(invalid_error())
        );

        // Tidy removes what has expired and leaves the rest.
        let third = wrap_token(&store, 30, NOW).await;
        assert_eq!(store.tidy(NOW + 100).await.unwrap(), 1);
        assert_eq!(
            store.lookup(&third.token, NOW + 100).await,
            Err(invalid_error())
        );
        assert_eq!(
            store.unwrap(&long.token, NOW + 100).await.unwrap(),
            secret_response()
        );
        assert_eq!(store.tidy(NOW + 100).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn jwt_form_carries_vaults_claims_and_unwraps_once() {
        let cluster = Cluster::new(3);
        let store = cluster.store();
        let addr = "https://10.2.0.153:8200";
        let info = store
            .wrap(
                &secret_response(),
                1800,
                "sys/replication/performance/primary/secondary-token",
                Some("inner-accessor"),
                NOW,
                WrapFormat::Jwt {
                    addr: addr.to_string(),
                },
            )
            .await
            .unwrap();
        assert!(jwt::looks_like_jwt(&info.token));
        assert!(info.warnings.is_empty());
        assert_eq!(info.wrapped_accessor, "inner-accessor");

        // Exactly the claims Vault writes, with Vault's arithmetic.
        let claims = claims_of(&info.token);
        let names: Vec<&str> = claims.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["accessor", "addr", "exp", "iat", "jti", "nbf", "type"]
        );
        assert_eq!(claims["accessor"], "inner-accessor");
        assert_eq!(claims["addr"], addr);
        assert_eq!(claims["iat"], NOW);
        assert_eq!(claims["exp"], NOW + 1800);
        assert_eq!(claims["nbf"], NOW - 5);
        assert_eq!(claims["type"], "wrapping");
        let jti = claims["jti"].as_str().unwrap().to_string();
        assert!(ShortToken::parse(&jti).is_some(), "jti is the short token");

        // The header is Vault's, and the signature verifies with the published JWK.
        let header = URL_SAFE_NO_PAD
            .decode(info.token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"ES512","typ":"JWT"}"#);
        let jwk = store.public_key_jwk().await.unwrap();
        let verifying = verifying_key_from_jwk(&jwk);
        assert_eq!(
            jwt::verify(&info.token, &verifying).unwrap(),
            Value::Object(claims.clone())
        );

        // Lookup works on the JWT as on the short token.
        let lookup = store.lookup(&info.token, NOW + 1).await.unwrap();
        assert_eq!(lookup.creation_ttl, 1800);

        // Unwrapping with the JWT consumes the token: the jti is dead afterwards.
        assert_eq!(
            store.unwrap(&info.token, NOW + 2).await.unwrap(),
            secret_response()
        );
        assert_eq!(store.unwrap(&jti, NOW + 3).await, Err(invalid_error()));
        assert_eq!(
            store.unwrap(&info.token, NOW + 3).await,
            Err(invalid_error())
        );
    }

    #[tokio::test]
    async fn a_jwt_without_an_address_warns_like_vault() {
        let cluster = Cluster::new(4);
        let store = cluster.store();
        let info = store
            .wrap(
                &secret_response(),
                60,
                "p",
                None,
                NOW,
                WrapFormat::Jwt {
                    addr: String::new(),
                },
            )
            .await
            .unwrap();
        assert_eq!(claims_of(&info.token)["addr"], "");
        assert_eq!(claims_of(&info.token)["accessor"], "");
        assert!(info.warnings[0].starts_with("No redirect address set in Vault"));
    }

    #[tokio::test]
    async fn forged_and_foreign_jwts_are_refused() {
        let cluster = Cluster::new(5);
        let store = cluster.store();
        let victim = wrap_token(&store, 600, NOW).await;
        let mine = store
            .wrap(
                &json!({"data": "mine"}),
                600,
                "p",
                None,
                NOW,
                WrapFormat::Jwt {
                    addr: "https://a:8200".to_string(),
                },
            )
            .await
            .unwrap();

        // Pointing a signed JWT's jti at someone else's token breaks the signature.
        let parts: Vec<&str> = mine.token.split('.').collect();
        let mut claims = claims_of(&mine.token);
        claims.insert("jti".to_string(), Value::from(victim.token.clone()));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string()),
            parts[2]
        );
        let refused = store.unwrap(&forged, NOW + 1).await.unwrap_err();
        assert_eq!(
            refused,
            LogicalError::BadRequest(
                "error validating wrapping token: JWT signature is not valid".to_string()
            )
        );

        // A JWT from another cluster's key is refused even though its jti is live here.
        let other_cluster = Cluster::new(6);
        let other_key = other_cluster.rng.with(SigningKey::generate_from_rng);
        let foreign = jwt::sign(
            &json!({"jti": victim.token, "type": "wrapping"}),
            &other_key,
            None,
        );
        assert!(store.unwrap(&foreign, NOW + 1).await.is_err());

        // A correctly signed JWT of another type is refused.
        let keys = store.keys(&mut *store.state.lock().await).await.unwrap();
        let not_wrapping = jwt::sign(
            &json!({"jti": victim.token, "type": "other"}),
            &keys.signing,
            None,
        );
        assert_eq!(
            store.unwrap(&not_wrapping, NOW + 1).await,
            Err(LogicalError::BadRequest(
                "error validating wrapping token: unexpected type claim".to_string()
            ))
        );

        // Garbage of every shape is a clear 400, never a panic.
        for garbage in [
            "",
            ".",
            "..",
            "a.b.c",
            "hvs.",
            "hvs.short",
            "hvs.!!!!!!!!!!!!!!!!!!!!!!!!",
            "eyJhbGciOiJub25lIn0.e30.",
            "s.abc.ns",
            "\u{0}\u{1}.\u{2}.\u{3}",
        ] {
            let error = store.unwrap(garbage, NOW + 1).await.unwrap_err();
            assert_eq!(error.status(), 400, "{garbage:?}: {error}");
        }
        let huge = format!("{}.{}.{}", "a".repeat(5000), "b", "c");
        assert!(store.unwrap(&huge, NOW + 1).await.is_err());

        // None of this touched the real tokens.
        assert_eq!(
            store.unwrap(&victim.token, NOW + 2).await.unwrap(),
            secret_response()
        );
        assert!(store.unwrap(&mine.token, NOW + 2).await.is_ok());
    }

    #[tokio::test]
    async fn rewrap_moves_the_payload_to_a_new_token() {
        let cluster = Cluster::new(7);
        let store = cluster.store();
        let original = wrap_token(&store, 300, NOW).await;

        // The new token keeps the creation path and TTL, with a new creation time.
        let rewrapped = store.rewrap(&original.token, NOW + 100).await.unwrap();
        assert_ne!(rewrapped.token, original.token);
        assert_ne!(rewrapped.accessor, original.accessor);
        assert_eq!(rewrapped.creation_path, "secret/data/app");
        assert_eq!(rewrapped.ttl_seconds, 300);
        assert_eq!(rewrapped.creation_time, rfc3339_seconds(NOW + 100));

        // The old token is dead; the new one unwraps the same payload, and lives for
        // its full TTL from the rewrap.
        assert_eq!(
            store.lookup(&original.token, NOW + 101).await,
            Err(invalid_error())
        );
        assert_eq!(
            store.unwrap(&rewrapped.token, NOW + 399).await.unwrap(),
            secret_response()
        );

        // A JWT rewraps to a short token, as in Vault.
        let jwt_info = store
            .wrap(
                &secret_response(),
                60,
                "p",
                None,
                NOW,
                WrapFormat::Jwt {
                    addr: "https://a:8200".to_string(),
                },
            )
            .await
            .unwrap();
        let from_jwt = store.rewrap(&jwt_info.token, NOW + 1).await.unwrap();
        assert!(ShortToken::parse(&from_jwt.token).is_some());
        assert_eq!(
            store.unwrap(&jwt_info.token, NOW + 2).await,
            Err(invalid_error())
        );
    }

    #[tokio::test]
    async fn storage_never_holds_a_token_or_the_secret_in_clear() {
        let cluster = Cluster::new(8);
        let store = cluster.store();
        let short = wrap_token(&store, 300, NOW).await;
        let jwt_info = store
            .wrap(
                &secret_response(),
                300,
                "p",
                None,
                NOW,
                WrapFormat::Jwt {
                    addr: "https://a:8200".to_string(),
                },
            )
            .await
            .unwrap();
        let jti = claims_of(&jwt_info.token)["jti"]
            .as_str()
            .unwrap()
            .to_string();
        let rewrapped = store.rewrap(&short.token, NOW + 1).await.unwrap();

        for needle in [
            SECRET,
            short.token.as_str(),
            &short.token[4..],
            jwt_info.token.as_str(),
            jti.as_str(),
            &jti[4..],
            rewrapped.token.as_str(),
            &rewrapped.token[4..],
        ] {
            assert!(!cluster.storage_contains(needle), "{needle} is in storage");
        }

        // Everything lives below the local prefix.
        for (key, _) in cluster.backend.dump() {
            assert!(key.starts_with("sys/wrapping/"), "{key}");
            assert_eq!(
                crate::storage::key_class(&key),
                crate::storage::KeyClass::Local
            );
        }
    }

    #[tokio::test]
    async fn the_signing_key_is_created_once_and_survives_a_restart() {
        let cluster = Cluster::new(9);
        let first = cluster.store();
        let token = wrap_token(&first, 300, NOW).await;
        let jwk = first.public_key_jwk().await.unwrap();

        // A new store over the same storage (a restart, or the next active node) uses
        // the stored key and the stored tokens.
        let second = cluster.store();
        assert_eq!(second.public_key_jwk().await.unwrap(), jwk);
        assert_eq!(
            second.unwrap(&token.token, NOW + 1).await.unwrap(),
            secret_response()
        );

        // Vault's pubkey shape: decimal coordinates of the same point.
        let vault_shape = second.public_key_vault().await.unwrap();
        assert_eq!(vault_shape["jwt_curve"], "p521");
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(vault_shape["jwt_x"], jwt::decimal_from_big_endian(&x));

        // Another cluster has another key.
        let elsewhere = Cluster::new(10).store();
        assert_ne!(elsewhere.public_key_jwk().await.unwrap(), jwk);
    }

    #[tokio::test]
    async fn concurrent_unwraps_of_one_token_succeed_exactly_once() {
        let cluster = Cluster::new(11);
        let store = cluster.store();
        let info = wrap_token(&store, 300, NOW).await;
        let (first, second, third) = tokio::join!(
            store.unwrap(&info.token, NOW + 1),
            store.unwrap(&info.token, NOW + 1),
            store.unwrap(&info.token, NOW + 1),
        );
        let successes = [first, second, third]
            .into_iter()
            .filter(Result::is_ok)
            .count();
        assert_eq!(successes, 1);
    }

    #[tokio::test]
    async fn every_bound_is_enforced_with_a_clear_error() {
        let cluster = Cluster::new(12);
        let mut store = cluster.store();
        let response = secret_response();

        // TTL bounds.
        for (ttl, message) in [
            (-1, "requested wrap ttl cannot be negative"),
            (0, "endpoint requires response wrapping to be used"),
        ] {
            let error = store
                .wrap(&response, ttl, "p", None, NOW, WrapFormat::Token)
                .await
                .unwrap_err();
            assert_eq!(error, LogicalError::BadRequest(message.to_string()));
        }
        assert!(
            store
                .wrap(
                    &response,
                    WRAP_TTL_SECONDS_MAX + 1,
                    "p",
                    None,
                    NOW,
                    WrapFormat::Token
                )
                .await
                .is_err()
        );
        assert!(
            store
                .wrap(
                    &response,
                    WRAP_TTL_SECONDS_MAX,
                    "p",
                    None,
                    NOW,
                    WrapFormat::Token
                )
                .await
                .is_ok()
        );

        // Size bounds: response, API address, creation path.
        let huge = json!({"data": "x".repeat(WRAPPED_RESPONSE_BYTES_MAX)});
        let error = store
            .wrap(&huge, 60, "p", None, NOW, WrapFormat::Token)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("more than the 524288 allowed"),
            "{error}"
        );
        let long_addr = WrapFormat::Jwt {
            addr: "h".repeat(ADDR_BYTES_MAX + 1),
        };
        assert!(
            store
                .wrap(&response, 60, "p", None, NOW, long_addr)
                .await
                .is_err()
        );
        let longest_addr = WrapFormat::Jwt {
            addr: "h".repeat(ADDR_BYTES_MAX),
        };
        let info = store
            .wrap(&response, 60, "p", None, NOW, longest_addr)
            .await
            .unwrap();
        assert!(store.lookup(&info.token, NOW).await.is_ok());
        let long_path = "p".repeat(CREATION_PATH_BYTES_MAX + 1);
        assert!(
            store
                .wrap(&response, 60, &long_path, None, NOW, WrapFormat::Token)
                .await
                .is_err()
        );

        // The live-token bound: refused with 429 once full, unless tidy frees room.
        store.live_tokens_max = 4;
        let _short_lived = wrap_token(&store, 10, NOW).await;
        let _ = wrap_token(&store, 600, NOW).await;
        let error = store
            .wrap(&response, 600, "p", None, NOW, WrapFormat::Token)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 429);
        assert!(error.to_string().contains("limit is 4"), "{error}");
        assert!(
            store
                .wrap(&response, 600, "p", None, NOW + 10, WrapFormat::Token)
                .await
                .is_ok(),
            "the expired token was tidied to make room"
        );
    }

    #[test]
    fn debug_output_redacts_everything_secret() {
        let cluster = Cluster::new(13);
        let shown = format!("{:?}", cluster.store());
        assert_eq!(shown, "WrappingStore { prefix: \"sys/wrapping/\", .. }");
    }

    proptest::proptest! {
        /// Whatever a caller presents as a token, resolving it is an answer, not a panic,
        /// and only well-formed short tokens get as far as a storage lookup.
        #[test]
        fn any_presented_token_resolves_without_panicking(presented in ".{0,400}") {
            let keys = shared_keys();
            if let Ok(short) = resolve(keys, &presented) {
                proptest::prop_assert!(ShortToken::parse(&short.0).is_some());
            }
        }

        #[test]
        fn dotted_base64_lookalikes_never_resolve(
            header in "[A-Za-z0-9_-]{1,60}",
            claims in "[A-Za-z0-9_-]{1,120}",
            signature in "[A-Za-z0-9_-]{1,200}",
        ) {
            let token = format!("{header}.{claims}.{signature}");
            proptest::prop_assert!(resolve(shared_keys(), &token).is_err());
        }
    }

    /// Keys parsed once for all property cases (P-521 is slow in debug builds).
    fn shared_keys() -> &'static Keys {
        static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| {
            let cluster = Cluster::new(14);
            let stored = cluster.store().generate_keys();
            parse_keys(&stored, [0; 32]).unwrap()
        })
    }

    fn verifying_key_from_jwk(jwk: &Value) -> VerifyingKey {
        let mut sec1 = vec![0x04];
        for coordinate in ["x", "y"] {
            sec1.extend(
                URL_SAFE_NO_PAD
                    .decode(jwk[coordinate].as_str().unwrap())
                    .unwrap(),
            );
        }
        VerifyingKey::from_sec1_bytes(&sec1).unwrap()
    }
}
