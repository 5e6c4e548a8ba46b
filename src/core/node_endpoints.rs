//! Endpoints every node answers for itself, sealed or not, without forwarding:
//! `sys/init`, `sys/seal-status`, `sys/unseal`, `sys/health`, `sys/leader`, and the
//! Raft join handshake.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::Method;
use serde_json::{Value, json};

use super::{Core, NodeAddress, VERSION, body_object, error_response};
use crate::http::{ApiRequest, ApiResponse};
use crate::logical::{LogicalError, field_str};
use crate::seal::SealConfig;

/// The build date Arca reports in `sys/seal-status` (fixed: builds are reproducible).
pub const BUILD_DATE: &str = "2026-11-28T00:00:00Z";

impl Core {
    /// Answer a node-local endpoint, or `None` when the request is for the logical core.
    pub(super) async fn handle_node_endpoint(&self, request: &ApiRequest) -> Option<ApiResponse> {
        let path = request.path.trim_end_matches('/');
        let method = &request.method;
        let result = match (path, method.as_str()) {
            ("sys/init", "GET") => Ok(json_ok(json!({ "initialized": self.is_initialized() }))),
            ("sys/init", "PUT" | "POST") => self.handle_init(request).await,
            ("sys/seal-status", "GET") => Ok(json_ok(self.seal_status())),
            ("sys/unseal", "PUT" | "POST") => self.handle_unseal(request).await,
            ("sys/health", "GET" | "HEAD") => self.health(request),
            ("sys/leader", "GET") => self.leader_status().map(json_ok),
            ("sys/metrics", "GET") if self.metrics_unauthenticated() => {
                self.metrics_answer(&request.query)
            }
            ("sys/storage/raft/join", "PUT" | "POST") => self.handle_join(request).await,
            ("sys/storage/raft/bootstrap/challenge", "PUT" | "POST")
                if self.cluster.is_leader() =>
            {
                self.handle_challenge(request)
            }
            ("sys/storage/raft/bootstrap/answer", "PUT" | "POST") if self.cluster.is_leader() => {
                self.handle_answer(request).await
            }
            (
                "sys/init"
                | "sys/seal-status"
                | "sys/unseal"
                | "sys/health"
                | "sys/leader"
                | "sys/storage/raft/join",
                _,
            ) => Err(LogicalError::UnsupportedOperation),
            _ => return None,
        };
        Some(result.unwrap_or_else(|error| error_response(&error)))
    }

    async fn handle_init(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let body = body_object(&request.body)?;
        let number = |field: &str| -> Result<usize, LogicalError> {
            match body.get(field) {
                Some(Value::Number(number)) => number
                    .as_u64()
                    .map(|value| value as usize)
                    .ok_or_else(|| LogicalError::BadRequest(format!("invalid {field}"))),
                Some(Value::String(text)) => text
                    .parse()
                    .map_err(|_| LogicalError::BadRequest(format!("invalid {field}"))),
                None => Ok(0),
                Some(_) => Err(LogicalError::BadRequest(format!("invalid {field}"))),
            }
        };
        let config = SealConfig::shamir(number("secret_shares")?, number("secret_threshold")?)
            .map_err(|error| LogicalError::BadRequest(error.to_string()))?;
        let (shares, root_token) = self.initialize(config, None).await?;
        Ok(json_ok(json!({
            "keys": shares.iter().map(|share| hex::encode(share.as_slice())).collect::<Vec<_>>(),
            "keys_base64": shares.iter().map(|share| BASE64.encode(share.as_slice())).collect::<Vec<_>>(),
            "recovery_keys": [],
            "recovery_keys_base64": [],
            "root_token": root_token,
        })))
    }

    async fn handle_unseal(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let body = body_object(&request.body)?;
        let reset = crate::engines::input::field_bool(&body, "reset")?.unwrap_or(false);
        let key = field_str(&body, "key")?;
        self.submit_unseal_share(key, reset).await?;
        Ok(json_ok(self.seal_status()))
    }

    /// Vault's seal-status object.
    pub fn seal_status(&self) -> Value {
        let config = self.seal_config();
        let sealed = self.is_sealed();
        let (progress, nonce) = {
            let state = super::lock(&self.seal_state);
            (
                state.progress.progress(),
                state.progress.nonce().to_string(),
            )
        };
        let mut status = json!({
            "type": "shamir",
            "initialized": config.is_some(),
            "sealed": sealed,
            "t": config.as_ref().map(|config| config.secret_threshold).unwrap_or(0),
            "n": config.as_ref().map(|config| config.secret_shares).unwrap_or(0),
            "progress": progress,
            "nonce": nonce,
            "version": VERSION,
            "build_date": BUILD_DATE,
            "migration": false,
            "recovery_seal": false,
            "storage_type": "raft",
        });
        if !sealed && let Some(info) = self.cluster_info() {
            status["cluster_name"] = Value::from(info.cluster_name);
            status["cluster_id"] = Value::from(info.cluster_id);
        }
        status
    }

    /// `sys/health`, with Vault's status-code precedence and query overrides.
    ///
    /// As in Vault, a code that is not a whole number, or a `standbyok` that is not one
    /// of Go's booleans, is a 400; an empty `standbyok` is false.
    fn health(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let code = |name: &str, default: u16| -> Result<u16, LogicalError> {
            let Some(text) = request.query.get(name) else {
                return Ok(default);
            };
            let code = text.parse::<i64>().map_err(|_| {
                LogicalError::BadRequest(format!("invalid status code {text:?} for {name:?}"))
            })?;
            // Go would write any code; ours must be one HTTP can carry.
            Ok(u16::try_from(code)
                .ok()
                .filter(|code| (100..600).contains(code))
                .unwrap_or(default))
        };
        let standby_ok = request.query_flag("standbyok")?.unwrap_or(false);
        // Arca has no performance standbys, but a malformed flag is refused all the same.
        request.query_flag("perfstandbyok")?;
        let (uninit_code, sealed_code, standby_code, active_code) = (
            code("uninitcode", 501)?,
            code("sealedcode", 503)?,
            code("standbycode", 429)?,
            code("activecode", 200)?,
        );
        let initialized = self.is_initialized();
        let sealed = self.is_sealed();
        let standby = !sealed && !self.cluster.is_leader();
        let status = if !initialized {
            uninit_code
        } else if sealed {
            sealed_code
        } else if standby && !standby_ok {
            standby_code
        } else {
            active_code
        };
        let info = if sealed { None } else { self.cluster_info() };
        // Read from this node's copy of the cluster's state, so a standby reports the
        // active node's mode, as Vault's does.
        let replication_mode = match self.replication() {
            Some(replication) if !sealed => replication.mode().as_str(),
            _ => "disabled",
        };
        let body = json!({
            "initialized": initialized,
            "sealed": sealed,
            "standby": sealed || standby,
            "performance_standby": false,
            "replication_performance_mode": replication_mode,
            "replication_dr_mode": "disabled",
            "server_time_utc": self.env.clock.unix_seconds(),
            "version": VERSION,
            "enterprise": false,
            "cluster_name": info.as_ref().map(|info| info.cluster_name.clone()).unwrap_or_default(),
            "cluster_id": info.as_ref().map(|info| info.cluster_id.clone()).unwrap_or_default(),
            "echo_duration_ms": 0,
            "clock_skew_ms": 0,
            "replication_primary_canary_age_ms": 0,
            "removed_from_cluster": false,
            // Not in Vault: the disk-full alarm, on while this node refuses writes.
            "disk_full": self.cluster.disk_full(),
        });
        let mut response = ApiResponse::json(status, &body);
        if request.method == Method::HEAD {
            response.body = bytes::Bytes::new();
        }
        Ok(response)
    }

    fn leader_status(&self) -> Result<Value, LogicalError> {
        if self.is_sealed() {
            return Err(LogicalError::Sealed);
        }
        let leader = self.cluster.leader();
        let indexes = self.cluster.indexes();
        let is_self = leader
            .as_ref()
            .is_some_and(|leader| leader.node_id == self.config.node.node_id);
        Ok(json!({
            "ha_enabled": true,
            "is_self": is_self,
            "active_time": if is_self { self.active_since().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()) } else { "0001-01-01T00:00:00Z".into() },
            "leader_address": leader.as_ref().map(|leader| leader.api_addr.clone()).unwrap_or_default(),
            "leader_cluster_address": leader.as_ref().map(|leader| leader.cluster_addr.clone()).unwrap_or_default(),
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "raft_committed_index": indexes.committed,
            "raft_applied_index": indexes.applied,
        }))
    }

    async fn handle_join(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let body = body_object(&request.body)?;
        let leader = field_str(&body, "leader_api_addr")?
            .ok_or_else(|| LogicalError::BadRequest("leader_api_addr is required".into()))?
            .to_string();
        // Vault's join body carries the leader's CA and a client certificate inline.
        let pem = |field: &str| -> Result<Option<Vec<u8>>, LogicalError> {
            Ok(field_str(&body, field)?
                .filter(|value| !value.is_empty())
                .map(|value| value.as_bytes().to_vec()))
        };
        let tls = crate::http::client::PeerTls {
            ca_certificate_pem: pem("leader_ca_cert")?,
            client_certificate_pem: pem("leader_client_cert")?,
            client_key_pem: pem("leader_client_key")?.map(zeroize::Zeroizing::new),
            server_name: None,
        };
        self.request_join(&super::JoinTarget {
            leader_api_addr: leader,
            tls,
        })
        .await?;
        Ok(json_ok(json!({ "joined": true })))
    }

    fn handle_challenge(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let body = body_object(&request.body)?;
        let server_id = field_str(&body, "server_id")?.unwrap_or_default();
        self.issue_challenge(server_id).map(json_ok)
    }

    async fn handle_answer(&self, request: &ApiRequest) -> Result<ApiResponse, LogicalError> {
        let body = body_object(&request.body)?;
        let required = |field: &str| -> Result<String, LogicalError> {
            field_str(&body, field)?
                .filter(|value| !value.is_empty())
                .map(str::to_string)
                .ok_or_else(|| LogicalError::BadRequest(format!("{field} is required")))
        };
        let node = NodeAddress {
            node_id: required("server_id")?,
            api_addr: required("api_addr")?,
            cluster_addr: required("cluster_addr")?,
        };
        self.accept_answer(node, &required("answer")?).await?;
        Ok(json_ok(json!({ "joined": true })))
    }
}

fn json_ok(value: Value) -> ApiResponse {
    ApiResponse::json(200, &value)
}
