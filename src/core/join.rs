//! Joining a Raft cluster, as Vault does it: the new node asks the active node for a
//! challenge, the operator unseals the new node with the cluster's keys, and the new
//! node proves it holds them by answering the challenge. Only then does the leader add
//! it as a voter. The leader also hands over its sealed root key and keyring (useless
//! without the unseal key) so the new node can open them before it has any data.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{Core, NodeAddress, lock};
use crate::barrier::{Keyring, aead};
use crate::http::client::PeerTls;
use crate::logical::LogicalError;
use crate::seal::{self, SealConfig};
use crate::storage::key_space;

/// Pending challenges the leader remembers at once; older ones are dropped first.
pub const CHALLENGES_MAX: usize = 64;
/// How long a challenge stays valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Each request to the leader during a join.
pub const JOIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between `retry_join` attempts.
pub const RETRY_JOIN_INTERVAL: Duration = Duration::from_secs(2);
const CHALLENGE_ASSOCIATED: &[u8] = b"raft-challenge";

/// A challenge the leader issued to a joining node.
#[derive(Debug, Clone)]
pub struct Challenge {
    nonce: [u8; 32],
    expires_at: std::time::Instant,
}

/// A leader to join: its API address and how to reach it over TLS (Vault's
/// `retry_join` block, or the body of `sys/storage/raft/join`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinTarget {
    pub leader_api_addr: String,
    pub tls: PeerTls,
}

impl JoinTarget {
    /// A leader reached with the system's roots (or in plain HTTP).
    pub fn new(leader_api_addr: impl Into<String>) -> JoinTarget {
        JoinTarget {
            leader_api_addr: leader_api_addr.into(),
            tls: PeerTls::default(),
        }
    }
}

/// What a joining node holds between its join request and its unseal.
#[derive(Debug, Clone)]
pub struct PendingJoin {
    pub leader_api_addr: String,
    /// The answer goes to the same leader, over the same trust.
    leader_tls: PeerTls,
    pub seal_config: SealConfig,
    sealed_root_key: Vec<u8>,
    sealed_keyring: Vec<u8>,
    sealed_cluster_ca: Vec<u8>,
    challenge: Vec<u8>,
}

impl Core {
    /// Leader side: issue a challenge to `server_id`.
    pub fn issue_challenge(&self, server_id: &str) -> Result<Value, LogicalError> {
        if !self.is_active() {
            return Err(LogicalError::Unavailable(
                "node is not the active node".into(),
            ));
        }
        if server_id.is_empty() || server_id.len() > 256 {
            return Err(LogicalError::BadRequest("server_id is required".into()));
        }
        let nonce: [u8; 32] = self.env.rng.bytes();
        let challenge = self.barrier.with_keyring(|keyring| {
            let active = keyring.active();
            aead::seal(
                &self.env.rng,
                active.term,
                &active.key,
                CHALLENGE_ASSOCIATED,
                &nonce,
            )
        })?;
        let backend = self.cluster.backend();
        let read = |key: &str| -> Result<Vec<u8>, LogicalError> {
            backend
                .get(key)
                .map_err(|error| LogicalError::Unavailable(error.to_string()))?
                .ok_or_else(|| LogicalError::Internal(format!("{key} is missing")))
        };
        let seal_config = read(key_space::SEAL_CONFIG_KEY)?;
        let sealed_root_key = read(key_space::ROOT_KEY_KEY)?;
        let sealed_keyring = read(key_space::KEYRING_KEY)?;
        // The cluster CA as stored (sealed by the barrier): the joiner opens it with the
        // keyring once unsealed, and dials and serves under it before it holds any data.
        let sealed_cluster_ca = read(key_space::CLUSTER_CA_KEY)?;
        let now = self.env.clock.now();
        let mut challenges = lock(&self.challenges);
        challenges.retain(|_, challenge| challenge.expires_at > now);
        while challenges.len() >= CHALLENGES_MAX {
            let oldest = challenges
                .iter()
                .min_by_key(|(_, challenge)| challenge.expires_at)
                .map(|(id, _)| id.clone())
                .expect("the map is not empty");
            challenges.remove(&oldest);
        }
        challenges.insert(
            server_id.to_string(),
            Challenge {
                nonce,
                expires_at: now + CHALLENGE_TTL,
            },
        );
        Ok(json!({
            "challenge": BASE64.encode(challenge),
            "seal_config": serde_json::from_slice::<Value>(&seal_config).unwrap_or(Value::Null),
            "sealed_root_key": BASE64.encode(sealed_root_key),
            "sealed_keyring": BASE64.encode(sealed_keyring),
            "sealed_cluster_ca": BASE64.encode(sealed_cluster_ca),
        }))
    }

    /// Leader side: check a joining node's answer and add it as a voter.
    pub async fn accept_answer(&self, node: NodeAddress, answer: &str) -> Result<(), LogicalError> {
        if !self.is_active() {
            return Err(LogicalError::Unavailable(
                "node is not the active node".into(),
            ));
        }
        let answer = BASE64
            .decode(answer)
            .map_err(|_| LogicalError::BadRequest("answer is not valid base64".into()))?;
        let challenge = lock(&self.challenges).remove(&node.node_id);
        let now = self.env.clock.now();
        let valid = challenge.is_some_and(|challenge| {
            challenge.expires_at > now
                && bool::from(challenge.nonce.as_slice().ct_eq(answer.as_slice()))
        });
        if !valid {
            return Err(LogicalError::PermissionDenied);
        }
        self.cluster.add_voter(node).await.map_err(|error| {
            LogicalError::Unavailable(format!(
                "failed to add the node to the Raft configuration: {error}"
            ))
        })
    }

    /// Joining side: ask the leader for a challenge and wait for the unseal.
    pub async fn request_join(&self, target: &JoinTarget) -> Result<(), LogicalError> {
        let leader_api_addr = target.leader_api_addr.as_str();
        if self.cluster.is_bootstrapped() {
            return Err(LogicalError::BadRequest(
                "node is already part of a Raft cluster".into(),
            ));
        }
        if self.seal_config().is_some() && lock(&self.seal_state).pending_join.is_none() {
            return Err(LogicalError::BadRequest(
                "node is already initialized".into(),
            ));
        }
        let (status, body) = crate::http::client::post_json(
            leader_api_addr,
            &target.tls,
            "/v1/sys/storage/raft/bootstrap/challenge",
            &json!({ "server_id": self.config.node.node_id }),
            JOIN_REQUEST_TIMEOUT,
        )
        .await
        .map_err(|error| {
            LogicalError::Unavailable(format!("failed to reach the leader: {error}"))
        })?;
        if status != 200 {
            return Err(LogicalError::Unavailable(format!(
                "the leader at {leader_api_addr} refused the join challenge ({status}): {body}"
            )));
        }
        let decode = |field: &str| -> Result<Vec<u8>, LogicalError> {
            body.get(field)
                .and_then(Value::as_str)
                .and_then(|text| BASE64.decode(text).ok())
                .ok_or_else(|| {
                    LogicalError::Unavailable(format!("the leader's challenge lacks {field}"))
                })
        };
        let seal_config: SealConfig =
            serde_json::from_value(body.get("seal_config").cloned().unwrap_or(Value::Null))
                .map_err(|error| {
                    LogicalError::Unavailable(format!(
                        "the leader's seal config is invalid: {error}"
                    ))
                })?;
        let pending = PendingJoin {
            leader_api_addr: leader_api_addr.to_string(),
            leader_tls: target.tls.clone(),
            seal_config,
            sealed_root_key: decode("sealed_root_key")?,
            sealed_keyring: decode("sealed_keyring")?,
            sealed_cluster_ca: decode("sealed_cluster_ca")?,
            challenge: decode("challenge")?,
        };
        let mut state = lock(&self.seal_state);
        state.progress.reset();
        state.pending_join = Some(pending);
        tracing::info!(
            leader = leader_api_addr,
            "joined; waiting for unseal to answer the challenge"
        );
        Ok(())
    }

    /// Joining side, on unseal: open the keyring, answer the challenge, become a member.
    pub(super) async fn complete_join(
        &self,
        pending: &PendingJoin,
        unseal_key: &[u8],
    ) -> Result<Keyring, LogicalError> {
        let keyring = seal::open_keyring(
            unseal_key,
            &pending.sealed_root_key,
            &pending.sealed_keyring,
        )
        .map_err(|error| LogicalError::BadRequest(format!("Error unsealing: {error}")))?;
        let term = aead::term_of(&pending.challenge)
            .map_err(|error| LogicalError::Internal(error.to_string()))?;
        let term_key = keyring.term(term).ok_or_else(|| {
            LogicalError::Internal("the challenge names an unknown key term".into())
        })?;
        let answer = aead::open(&term_key.key, CHALLENGE_ASSOCIATED, &pending.challenge)
            .map_err(|_| LogicalError::BadRequest("failed to decrypt the join challenge".into()))?;
        let ca = open_cluster_ca(&keyring, &pending.sealed_cluster_ca)?;
        // The leader replicates to this node as soon as it accepts the answer: the
        // channel must already answer as a member.
        self.install_identity_from(&ca)?;
        let node = &self.config.node;
        let (status, body) = crate::http::client::post_json(
            &pending.leader_api_addr,
            &pending.leader_tls,
            "/v1/sys/storage/raft/bootstrap/answer",
            &json!({
                "server_id": node.node_id,
                "answer": BASE64.encode(answer),
                "api_addr": node.api_addr,
                "cluster_addr": node.cluster_addr,
            }),
            Duration::from_secs(60),
        )
        .await
        .map_err(|error| {
            // Still sealed: no identity either.
            self.cluster.set_channel_identity(None).ok();
            LogicalError::Unavailable(format!("failed to answer the join challenge: {error}"))
        })?;
        if status != 200 && status != 204 {
            lock(&self.seal_state).pending_join = None;
            self.cluster.set_channel_identity(None).ok();
            return Err(LogicalError::Unavailable(format!(
                "the leader refused the join answer ({status}): {body}"
            )));
        }
        let mut state = lock(&self.seal_state);
        state.pending_join = None;
        state.joined_seal_config = Some(pending.seal_config.clone());
        state.joined_ca = Some(ca);
        Ok(keyring)
    }

    /// `retry_join`: until this node is a member (or initialized), try each leader.
    pub async fn retry_join_loop(self: std::sync::Arc<Self>) {
        if self.config.retry_join.is_empty() {
            return;
        }
        loop {
            let pending = lock(&self.seal_state).pending_join.is_some();
            if self.cluster.is_bootstrapped() || self.is_initialized() && !pending {
                return;
            }
            if !pending {
                for target in self.config.retry_join.clone() {
                    let leader = target.leader_api_addr.as_str();
                    if leader.trim_end_matches('/')
                        == self.config.node.api_addr.trim_end_matches('/')
                    {
                        continue;
                    }
                    match self.request_join(&target).await {
                        Ok(()) => break,
                        Err(error) => tracing::debug!(%leader, %error, "retry_join attempt failed"),
                    }
                }
            }
            tokio::time::sleep(RETRY_JOIN_INTERVAL).await;
        }
    }
}

/// Open the cluster CA the leader handed over (its stored value, sealed by the barrier
/// under `keyring`).
fn open_cluster_ca(
    keyring: &Keyring,
    sealed: &[u8],
) -> Result<crate::channel::ClusterCa, LogicalError> {
    let unreadable = || LogicalError::Unavailable("the leader's cluster CA is unreadable".into());
    let term = aead::term_of(sealed).map_err(|_| unreadable())?;
    let term_key = keyring.term(term).ok_or_else(unreadable)?;
    let bytes = zeroize::Zeroizing::new(
        aead::open(&term_key.key, key_space::CLUSTER_CA_KEY.as_bytes(), sealed)
            .map_err(|_| unreadable())?,
    );
    crate::channel::ClusterCa::from_bytes(&bytes).map_err(|_| unreadable())
}
