//! The quorum operations of the active node, answered as Vault's HTTP layer answers
//! them (raw JSON, no envelope, no token): `sys/rekey/{init,update,verify}` and
//! `sys/generate-root/{attempt,update}`. Like Vault, these need no token because the
//! key shares are the credential; a standby forwards them whole to the active node,
//! which holds the one attempt of each kind in memory.
//!
//! The state machines are `seal::rekey` and `seal::generate_root`; this shell decodes
//! the body, proves a combined key against the stored root key, commits the re-sealed
//! root key through Raft (so every node, sealed standbys included, unseals with the new
//! shares) and creates root tokens through the logical core. The attempt is dropped on
//! seal and when this node starts a new term as active node.
//!
//! Without `require_verification`, the new shares are shown only after the commit, as in
//! Vault: a crash between the two would leave a seal nobody holds the shares of. With it,
//! nothing is committed until a quorum of the new shares has come back.
//!
//! A rekey belongs to the cluster that owns the seal: on a performance secondary it is
//! refused, as in Vault, because the secondary's seal is its primary's and follows the
//! primary's rekeys through replication.
//!
//! Each request and its answer are written to the audit devices, as Vault's
//! `handleAuditNonLogical` does (every string HMAC'd, shares and new keys included); a
//! request no device could record is refused before it does anything.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Core, body_object, error_response};
use crate::http::{ApiRequest, ApiResponse};
use crate::logical::{LogicalError, field_str};
use crate::seal::generate_root::{GenerateRoot, GenerateRootStatus};
use crate::seal::rekey::{Rekey, RekeyRequest, RekeyStatus};
use crate::seal::shares::{self, KeyOperationError};
use crate::seal::{self, SealConfig};
use crate::storage::key_space::ROOT_KEY_KEY;

/// The paths this module answers (below `/v1/`, without a trailing slash).
const KEY_OPERATION_PATHS: &[&str] = &[
    "sys/rekey/init",
    "sys/rekey/update",
    "sys/rekey/verify",
    "sys/generate-root/attempt",
    "sys/generate-root/update",
    "sys/rekey-recovery-key/init",
    "sys/rekey-recovery-key/update",
    "sys/rekey-recovery-key/verify",
];

/// The attempts in progress on this node (at most one of each, as in Vault).
#[derive(Debug, Default)]
pub(super) struct KeyOperations {
    rekey: Option<Rekey>,
    generate_root: Option<GenerateRoot>,
}

/// `PUT sys/rekey/update` once the threshold is reached, as Vault answers it.
#[derive(Serialize)]
struct RekeyUpdateResponse {
    nonce: String,
    complete: bool,
    keys: Vec<String>,
    keys_base64: Vec<String>,
    pgp_fingerprints: Option<Vec<String>>,
    backup: bool,
    verification_required: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    verification_nonce: String,
}

impl Core {
    /// Answer a quorum operation, or `None` when the request is for the logical core.
    /// Called on the active node only, after it confirmed its leadership.
    pub(super) async fn handle_key_operation(&self, request: &ApiRequest) -> Option<ApiResponse> {
        let path = request.path.trim_end_matches('/');
        if !KEY_OPERATION_PATHS.contains(&path) {
            return None;
        }
        let mut audit_input = self.audit_input(request, path);
        if let Err(error) = self.audit(&audit_input) {
            return Some(error_response(&error));
        }
        let response = self.answer_key_operation(request, path).await;
        let body: Map<String, Value> = serde_json::from_slice(&response.body).unwrap_or_default();
        let mut audited = crate::audit::AuditResponse::from(&crate::logical::Response::data(body));
        if response.status >= 400 {
            audit_input.error = audited
                .data
                .get("errors")
                .and_then(|errors| errors.get(0))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            audited.data.clear();
        }
        audit_input.response = Some(audited);
        // As in Vault, an answer no device could record is not given. For a rekey that
        // committed without verification this withholds the new shares, which is why
        // `require_verification` is the safe way to rekey a cluster with audit devices.
        if let Err(error) = self.audit(&audit_input) {
            return Some(error_response(&error));
        }
        Some(response)
    }

    /// The audit entry's request half: the body as data, no token (none is needed).
    fn audit_input(&self, request: &ApiRequest, path: &str) -> crate::audit::AuditInput {
        let operation = match request.method.as_str() {
            "GET" => crate::logical::Operation::Read,
            "DELETE" => crate::logical::Operation::Delete,
            _ => crate::logical::Operation::Update,
        };
        let mut input = crate::audit::AuditInput::new(operation, path, self.env.clock.unix_nanos());
        input.request_id = self.env.rng.uuid();
        input.request_data = body_object(&request.body).unwrap_or_default();
        input
    }

    fn audit(&self, input: &crate::audit::AuditInput) -> Result<(), LogicalError> {
        let logical_core = self
            .logical()
            .ok_or_else(|| LogicalError::Internal("the logical core is not installed".into()))?;
        logical_core.audit_non_logical(input)
    }

    async fn answer_key_operation(&self, request: &ApiRequest, path: &str) -> ApiResponse {
        if path.starts_with("sys/rekey")
            && let Err(error) = self.refuse_rekey_unless_seal_owner()
        {
            return error_response(&error);
        }
        let method = request.method.as_str();
        let result = match (path, method) {
            ("sys/rekey/init", "GET") => self.rekey_status().await,
            ("sys/rekey/init", "PUT" | "POST") => self.rekey_start(request).await,
            ("sys/rekey/init", "DELETE") => {
                self.key_operations.lock().await.rekey = None;
                Ok(ApiResponse::no_content())
            }
            ("sys/rekey/update", "PUT" | "POST") => self.rekey_update(request).await,
            ("sys/rekey/verify", "GET") => self.rekey_verification_status().await,
            ("sys/rekey/verify", "PUT" | "POST") => self.rekey_verify(request).await,
            ("sys/rekey/verify", "DELETE") => self.rekey_restart_verification().await,
            ("sys/generate-root/attempt", "GET") => self.generate_root_status().await,
            ("sys/generate-root/attempt", "PUT" | "POST") => {
                self.generate_root_start(request).await
            }
            ("sys/generate-root/attempt", "DELETE") => {
                self.key_operations.lock().await.generate_root = None;
                Ok(ApiResponse::no_content())
            }
            ("sys/generate-root/update", "PUT" | "POST") => {
                self.generate_root_update(request).await
            }
            // Recovery keys belong to auto-unseal seals; a Shamir seal has none, and
            // Vault answers so before it looks at the method.
            (
                "sys/rekey-recovery-key/init"
                | "sys/rekey-recovery-key/update"
                | "sys/rekey-recovery-key/verify",
                _,
            ) => Err(LogicalError::BadRequest(
                "recovery rekeying not supported".into(),
            )),
            _ => Err(LogicalError::UnsupportedOperation),
        };
        result.unwrap_or_else(|error| error_response(&error))
    }

    /// A performance secondary's seal is its primary's (replicated, so the secondary's
    /// nodes unseal with the primary's keys): a rekey of its own would be undone by the
    /// next change the primary sends, or leave the two clusters with different unseal
    /// keys for the same root key. Refused, with Vault's words, for every rekey path and
    /// method, on a secondary and on a cluster that may not write replicated keys for any
    /// other reason (a demoted or superseded primary); the operators rekey the primary.
    fn refuse_rekey_unless_seal_owner(&self) -> Result<(), LogicalError> {
        let Some(replication) = self.replication() else {
            return Ok(());
        };
        if replication.load_state()?.accepts_replicated_writes() {
            return Ok(());
        }
        Err(LogicalError::BadRequest(
            "rekeying can only be performed on the primary cluster when replication is activated"
                .into(),
        ))
    }

    /// Forget any attempt in progress (a seal, or a new term as active node).
    pub(super) async fn drop_key_operations(&self) {
        *self.key_operations.lock().await = KeyOperations::default();
    }

    fn current_seal_config(&self) -> Result<SealConfig, LogicalError> {
        self.seal_config()
            .ok_or_else(|| LogicalError::BadRequest("server is not yet initialized".into()))
    }

    /// Prove a combined unseal key by opening the stored root key with it.
    fn prove_unseal_key(&self, unseal_key: &[u8]) -> Result<seal::UnsealKey, String> {
        let sealed_root = self
            .cluster
            .backend()
            .get(ROOT_KEY_KEY)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("{ROOT_KEY_KEY} is missing from storage"))?;
        seal::open_root_key(unseal_key, &sealed_root).map_err(|error| error.to_string())
    }

    async fn rekey_status(&self) -> Result<ApiResponse, LogicalError> {
        let current = self.current_seal_config()?;
        let operations = self.key_operations.lock().await;
        let status = match &operations.rekey {
            Some(rekey) => rekey.status(&current),
            None => RekeyStatus::not_started(&current),
        };
        Ok(json_ok(&status))
    }

    async fn rekey_start(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let body = body_object(&request.body)?;
        if non_empty(&body, "pgp_keys") {
            return Err(LogicalError::BadRequest(
                "pgp_keys are not supported by this server: the new unseal keys are returned unencrypted".into(),
            ));
        }
        if crate::engines::input::field_bool(&body, "backup")?.unwrap_or(false) {
            return Err(LogicalError::BadRequest(
                "cannot request a backup of the new keys without providing PGP keys for encryption"
                    .into(),
            ));
        }
        let rekey_request = RekeyRequest {
            secret_shares: number(&body, "secret_shares")?,
            secret_threshold: number(&body, "secret_threshold")?,
            require_verification: crate::engines::input::field_bool(&body, "require_verification")?
                .unwrap_or(false),
        };
        self.current_seal_config()?;
        {
            let mut operations = self.key_operations.lock().await;
            if operations.rekey.is_some() {
                return Err(LogicalError::BadRequest("rekey already in progress".into()));
            }
            let rekey = Rekey::start(&self.env.rng, &rekey_request).map_err(logical)?;
            tracing::info!(nonce = rekey.nonce(), "rekey initialized");
            operations.rekey = Some(rekey);
        }
        self.rekey_status().await
    }

    async fn rekey_update(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let (key, nonce) = key_and_nonce(request)?;
        let current = self.current_seal_config()?;
        // Held across the commit: a second update cannot interleave with this one.
        let mut operations = self.key_operations.lock().await;
        let rekey = operations
            .rekey
            .as_mut()
            .ok_or_else(|| LogicalError::BadRequest("no barrier rekey in progress".into()))?;
        let Some(old_key) = rekey
            .submit_old_share(&nonce, key, &current)
            .map_err(logical)?
        else {
            let status = rekey.status(&current);
            return Ok(json_ok(&status));
        };
        let root_key = self.prove_unseal_key(&old_key).map_err(|reason| {
            LogicalError::BadRequest(format!("root key verification failed: {reason}"))
        })?;
        let new_key = rekey.create_new_key(&self.env.rng).map_err(logical)?;
        let response = RekeyUpdateResponse {
            nonce: nonce.clone(),
            complete: true,
            keys: new_key
                .shares
                .iter()
                .map(|share| hex::encode(share.as_slice()))
                .collect(),
            keys_base64: new_key
                .shares
                .iter()
                .map(|share| BASE64.encode(share.as_slice()))
                .collect(),
            pgp_fingerprints: None,
            backup: false,
            verification_required: new_key.verification_nonce.is_some(),
            verification_nonce: new_key.verification_nonce.clone().unwrap_or_default(),
        };
        if new_key.verification_nonce.is_none() {
            // The attempt ends here whatever the commit's outcome: a failed commit
            // changed nothing, and its new shares are never shown.
            operations.rekey = None;
            self.commit_unseal_key(&new_key.unseal_key, &root_key, &new_key.config)
                .await?;
        }
        Ok(json_ok(&response))
    }

    /// Re-seal the root key under a new unseal key, with the seal configuration its
    /// shares follow, in one Raft entry: every node reads both from its own copy.
    async fn commit_unseal_key(
        &self,
        unseal_key: &seal::UnsealKey,
        root_key: &seal::UnsealKey,
        config: &SealConfig,
    ) -> Result<(), LogicalError> {
        // Again at the commit: the cluster may have been demoted or activated as a
        // secondary while the shares were coming in.
        self.refuse_rekey_unless_seal_owner()?;
        let ops = seal::root_key_ops(&self.env.rng, unseal_key, root_key, config);
        self.cluster
            .backend()
            .commit(ops)
            .await
            .map_err(|error| LogicalError::Unavailable(error.to_string()))?;
        tracing::info!(
            shares = config.secret_shares,
            threshold = config.secret_threshold,
            "rekey complete: the root key is sealed under the new unseal key"
        );
        Ok(())
    }

    async fn rekey_verification_status(&self) -> Result<ApiResponse, LogicalError> {
        let operations = self.key_operations.lock().await;
        let rekey = operations
            .rekey
            .as_ref()
            .ok_or_else(|| LogicalError::BadRequest("no rekey configuration found".into()))?;
        Ok(json_ok(&rekey.verification_status().map_err(logical)?))
    }

    async fn rekey_verify(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let (key, nonce) = key_and_nonce(request)?;
        let mut operations = self.key_operations.lock().await;
        let rekey = operations
            .rekey
            .as_mut()
            .ok_or_else(|| LogicalError::BadRequest("no rekey configuration found".into()))?;
        let Some((new_key, config)) = rekey.submit_new_share(&nonce, key).map_err(logical)? else {
            return Ok(json_ok(&rekey.verification_status().map_err(logical)?));
        };
        // The old key was proven when the new one was made; the root key is read again
        // under it now, from this node's keyring, which a rekey never changes.
        let root_key = self
            .barrier
            .with_keyring(|keyring| zeroize::Zeroizing::new(keyring.root_key))?;
        operations.rekey = None;
        self.commit_unseal_key(&new_key, &root_key, &config).await?;
        Ok(json_ok(&json!({ "nonce": nonce, "complete": true })))
    }

    async fn rekey_restart_verification(&self) -> Result<ApiResponse, LogicalError> {
        let mut operations = self.key_operations.lock().await;
        let rekey = operations
            .rekey
            .as_mut()
            .ok_or_else(|| LogicalError::BadRequest("no rekey configuration found".into()))?;
        rekey.restart_verification(&self.env.rng).map_err(logical)?;
        Ok(json_ok(&rekey.verification_status().map_err(logical)?))
    }

    async fn generate_root_status(&self) -> Result<ApiResponse, LogicalError> {
        let config = self.current_seal_config()?;
        let operations = self.key_operations.lock().await;
        let status = match &operations.generate_root {
            Some(attempt) => attempt.status(&config),
            None => GenerateRootStatus::not_started(&config),
        };
        Ok(json_ok(&status))
    }

    async fn generate_root_start(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let body = body_object(&request.body)?;
        if field_str(&body, "pgp_key")?.is_some_and(|key| !key.is_empty()) {
            return Err(LogicalError::BadRequest(
                "pgp_key is not supported by this server: use an otp".into(),
            ));
        }
        let otp = field_str(&body, "otp")?;
        let config = self.current_seal_config()?;
        let mut operations = self.key_operations.lock().await;
        if operations.generate_root.is_some() {
            return Err(LogicalError::BadRequest(
                "root generation already in progress".into(),
            ));
        }
        let (attempt, generated) = GenerateRoot::start(&self.env.rng, otp).map_err(logical)?;
        let mut status = attempt.status(&config);
        if let Some(generated) = generated {
            // Shown once, in this answer, as Vault does; never again by a status read.
            status.otp = generated.to_string();
        }
        tracing::info!(nonce = %status.nonce, "root generation initialized");
        operations.generate_root = Some(attempt);
        Ok(json_ok(&status))
    }

    async fn generate_root_update(
        &self,
        request: &ApiRequest,
    ) -> Result<ApiResponse, LogicalError> {
        let (key, nonce) = key_and_nonce(request)?;
        let config = self.current_seal_config()?;
        let mut operations = self.key_operations.lock().await;
        let attempt = operations
            .generate_root
            .as_mut()
            .ok_or_else(|| LogicalError::BadRequest("no root generation in progress".into()))?;
        let Some(unseal_key) = attempt.submit(&nonce, key, &config).map_err(logical)? else {
            let mut status = attempt.status(&config);
            status.otp_length = 0;
            return Ok(json_ok(&status));
        };
        self.prove_unseal_key(&unseal_key).map_err(|reason| {
            LogicalError::BadRequest(format!(
                "root generation aborted: unable to authenticate: {reason}"
            ))
        })?;
        let logical_core = self
            .logical()
            .ok_or_else(|| LogicalError::Internal("the logical core is not installed".into()))?;
        let token = zeroize::Zeroizing::new(logical_core.create_root_token().await?);
        // The OTP was checked to be a token's length at start, so encoding cannot fail
        // for a token of the store's format; if it ever did, the error is reported and
        // the attempt kept, and the token was never shown to anyone.
        let status = attempt.completed(&token, &config).map_err(logical)?;
        operations.generate_root = None;
        tracing::info!(nonce = %status.nonce, "root generation finished");
        Ok(json_ok(&status))
    }
}

/// The `key` and `nonce` of an update, decoded as Vault decodes them.
fn key_and_nonce(request: &ApiRequest) -> Result<(Vec<u8>, String), LogicalError> {
    let body = body_object(&request.body)?;
    let key = field_str(&body, "key")?
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            LogicalError::BadRequest("'key' must be specified in request body as JSON".into())
        })?;
    let key = shares::decode_key(key).map_err(logical)?;
    let nonce = field_str(&body, "nonce")?.unwrap_or_default().to_string();
    Ok((key, nonce))
}

/// A whole-number field (JSON number or numeric string; absent is 0, as Go decodes it).
fn number(body: &Map<String, Value>, field: &str) -> Result<usize, LogicalError> {
    let invalid = || LogicalError::BadRequest(format!("invalid {field}"));
    match body.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|value| usize::try_from(value).ok())
            .ok_or_else(invalid),
        Some(Value::String(text)) => text.trim().parse().map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// Whether a list-or-string field holds anything.
fn non_empty(body: &Map<String, Value>, field: &str) -> bool {
    match body.get(field) {
        None | Some(Value::Null) => false,
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

fn logical(error: KeyOperationError) -> LogicalError {
    match error {
        KeyOperationError::Invalid(message) => LogicalError::BadRequest(message),
        KeyOperationError::Internal(message) => LogicalError::Internal(message),
    }
}

fn json_ok(value: &impl Serialize) -> ApiResponse {
    ApiResponse::json(
        200,
        &serde_json::to_value(value).expect("key operation answers serialize"),
    )
}
