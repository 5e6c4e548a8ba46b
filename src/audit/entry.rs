//! Vault's JSON audit entries, built from plain inputs the router fills in.
//!
//! The router describes one request (and later its response) as an [`AuditInput`];
//! [`request_entry`] and [`response_entry`] turn it into the object Vault's file device
//! writes, one per line, with secrets hashed under a device's salt. Field names, their
//! order and their omission when empty follow Vault's `audit/types.go`; maps are
//! sorted by key, as Go's encoder sorts them.

use serde::Serialize;
use serde_json::{Map, Value};

use super::hash::{audit_hash, hash_value};
use crate::logical::{Auth, Operation, Response};
use crate::util::{rfc3339_nanos, rfc3339_seconds};

/// How a device hashes: its salt and its `hmac_accessor`, `log_raw` and
/// `elide_list_responses` options.
#[derive(Debug, Clone, Copy)]
pub struct HashSettings<'a> {
    pub salt: &'a str,
    /// Hash accessors too (`hmac_accessor`, default true).
    pub hmac_accessor: bool,
    /// Write everything in plaintext (`log_raw`, default false).
    pub log_raw: bool,
    /// In responses to `list`, replace `keys` and `key_info` by their sizes
    /// (`elide_list_responses`, default false).
    pub elide_list_responses: bool,
}

impl HashSettings<'_> {
    fn secret(&self, text: &str) -> String {
        if self.log_raw || text.is_empty() {
            text.to_string()
        } else {
            audit_hash(self.salt, text)
        }
    }

    fn accessor(&self, text: &str) -> String {
        if self.hmac_accessor {
            self.secret(text)
        } else {
            text.to_string()
        }
    }

    fn data(&self, data: &Map<String, Value>, exempt_keys: &[String]) -> Map<String, Value> {
        let mut value = Value::Object(data.clone());
        if !self.log_raw {
            hash_value(self.salt, &mut value, exempt_keys);
        }
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// The caller's token as the router resolved it (the `auth` block of both entries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditAuth {
    pub client_token: String,
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub identity_policies: Vec<String>,
    /// Token metadata (`username` for userpass logins); not hashed, as in Vault.
    pub metadata: Map<String, Value>,
    pub entity_id: String,
    /// `service` or `batch`; empty means Vault's `default`.
    pub token_type: String,
    pub token_ttl_seconds: i64,
    /// When the token was issued, in Unix seconds.
    pub token_issue_time_unix: Option<i64>,
    pub num_uses: i64,
    pub remaining_uses: i64,
    /// The ACL decision, when the router made one.
    pub policy_results: Option<PolicyResults>,
}

impl From<&Auth> for AuditAuth {
    /// The `auth` block of a login or token-creation response.
    fn from(auth: &Auth) -> Self {
        Self {
            client_token: auth.client_token.clone(),
            accessor: auth.accessor.clone(),
            policies: auth.policies.clone(),
            token_policies: auth.token_policies.clone(),
            identity_policies: auth.identity_policies.clone(),
            metadata: auth.metadata.clone().unwrap_or_default(),
            entity_id: auth.entity_id.clone(),
            token_type: auth.token_type.clone(),
            token_ttl_seconds: auth.lease_duration,
            num_uses: auth.num_uses,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyResults {
    pub allowed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub granting_policies: Vec<PolicyInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace_path: String,
    /// `acl` for ACL policies.
    #[serde(rename = "type")]
    pub policy_type: String,
}

/// A response-wrapping token handed out instead of the response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditWrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl_seconds: i64,
    pub creation_time_unix_nanos: i128,
    pub creation_path: String,
    pub wrapped_accessor: String,
}

/// What the backend answered, for the `response` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditResponse {
    pub data: Map<String, Value>,
    pub auth: Option<AuditAuth>,
    pub warnings: Vec<String>,
    pub wrap_info: Option<AuditWrapInfo>,
    pub lease_id: String,
    pub redirect: String,
}

impl From<&Response> for AuditResponse {
    fn from(response: &Response) -> Self {
        let data = match (&response.data, &response.raw) {
            (Some(data), _) => data.clone(),
            (None, Some(Value::Object(raw))) => raw.clone(),
            (None, Some(other)) => {
                // Vault logs a raw body under `http_raw_body`.
                let mut map = Map::new();
                map.insert("http_raw_body".to_string(), other.clone());
                map
            }
            (None, None) => Map::new(),
        };
        Self {
            data,
            auth: response.auth.as_ref().map(AuditAuth::from),
            warnings: response.warnings.clone(),
            wrap_info: None,
            lease_id: response
                .lease
                .as_ref()
                .map(|lease| lease.lease_id.clone())
                .unwrap_or_default(),
            redirect: String::new(),
        }
    }
}

/// One request as the router saw it, plus (for the response entry) what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditInput {
    /// The request id (`request_id` of the response envelope).
    pub request_id: String,
    pub operation: Operation,
    /// The full path below `/v1/` (`secret/data/foo`).
    pub path: String,
    /// The mount serving the path, with its trailing slash (`secret/`).
    pub mount_point: String,
    pub mount_type: String,
    pub mount_accessor: String,
    /// The token the caller presented, if any.
    pub client_token: String,
    pub client_token_accessor: String,
    /// The token's details; `None` for unauthenticated requests (logins).
    pub auth: Option<AuditAuth>,
    /// The request body (or query parameters).
    pub request_data: Map<String, Value>,
    pub remote_address: String,
    pub remote_port: u16,
    /// `X-Vault-Wrap-TTL`, when the caller asked for a wrapped response.
    pub wrap_ttl_seconds: i64,
    /// The response, for the response entry.
    pub response: Option<AuditResponse>,
    /// The error the request ended with (Vault's `error` field).
    pub error: String,
    /// The mount's `audit_non_hmac_request_keys`.
    pub non_hmac_request_keys: Vec<String>,
    /// The mount's `audit_non_hmac_response_keys`.
    pub non_hmac_response_keys: Vec<String>,
    /// When the entry is written, from the seam's clock.
    pub now_unix_nanos: i128,
}

impl AuditInput {
    /// A request with nothing but its operation and path filled in.
    pub fn new(operation: Operation, path: impl Into<String>, now_unix_nanos: i128) -> Self {
        Self {
            request_id: String::new(),
            operation,
            path: path.into(),
            mount_point: String::new(),
            mount_type: String::new(),
            mount_accessor: String::new(),
            client_token: String::new(),
            client_token_accessor: String::new(),
            auth: None,
            request_data: Map::new(),
            remote_address: String::new(),
            remote_port: 0,
            wrap_ttl_seconds: 0,
            response: None,
            error: String::new(),
            non_hmac_request_keys: Vec::new(),
            non_hmac_response_keys: Vec::new(),
            now_unix_nanos,
        }
    }
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_zero_port(value: &u16) -> bool {
    *value == 0
}

#[derive(Debug, Serialize)]
struct EntryAuth {
    #[serde(skip_serializing_if = "String::is_empty")]
    accessor: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    entity_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    identity_policies: Vec<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "is_zero")]
    num_uses: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_results: Option<PolicyResults>,
    #[serde(skip_serializing_if = "is_zero")]
    remaining_uses: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    token_policies: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    token_issue_time: String,
    #[serde(skip_serializing_if = "is_zero")]
    token_ttl: i64,
    token_type: String,
}

impl EntryAuth {
    fn new(auth: &AuditAuth, hashing: &HashSettings<'_>) -> Self {
        Self {
            accessor: hashing.accessor(&auth.accessor),
            client_token: hashing.secret(&auth.client_token),
            display_name: auth.display_name.clone(),
            entity_id: auth.entity_id.clone(),
            identity_policies: auth.identity_policies.clone(),
            metadata: auth.metadata.clone(),
            num_uses: auth.num_uses,
            policies: auth.policies.clone(),
            policy_results: auth.policy_results.clone(),
            remaining_uses: auth.remaining_uses,
            token_policies: auth.token_policies.clone(),
            token_issue_time: auth
                .token_issue_time_unix
                .map(rfc3339_seconds)
                .unwrap_or_default(),
            token_ttl: auth.token_ttl_seconds,
            token_type: if auth.token_type.is_empty() {
                "default".to_string()
            } else {
                auth.token_type.clone()
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct EntryNamespace {
    id: &'static str,
}

#[derive(Debug, Serialize)]
struct EntryRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    client_token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_token_accessor: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    data: Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    mount_accessor: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    mount_point: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    mount_type: String,
    namespace: EntryNamespace,
    operation: Operation,
    #[serde(skip_serializing_if = "String::is_empty")]
    path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    remote_address: String,
    #[serde(skip_serializing_if = "is_zero_port")]
    remote_port: u16,
    #[serde(skip_serializing_if = "is_zero")]
    wrap_ttl: i64,
}

impl EntryRequest {
    fn new(input: &AuditInput, hashing: &HashSettings<'_>) -> Self {
        Self {
            client_token: hashing.secret(&input.client_token),
            client_token_accessor: hashing.accessor(&input.client_token_accessor),
            data: hashing.data(&input.request_data, &input.non_hmac_request_keys),
            id: input.request_id.clone(),
            mount_accessor: input.mount_accessor.clone(),
            mount_point: input.mount_point.clone(),
            mount_type: input.mount_type.clone(),
            namespace: EntryNamespace { id: "root" },
            operation: input.operation,
            path: input.path.clone(),
            remote_address: input.remote_address.clone(),
            remote_port: input.remote_port,
            wrap_ttl: input.wrap_ttl_seconds,
        }
    }
}

#[derive(Debug, Serialize)]
struct EntrySecret {
    lease_id: String,
}

#[derive(Debug, Serialize)]
struct EntryWrapInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    accessor: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    creation_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    creation_time: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    token: String,
    #[serde(skip_serializing_if = "is_zero")]
    ttl: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    wrapped_accessor: String,
}

#[derive(Debug, Serialize)]
struct EntryResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<EntryAuth>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    data: Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    mount_accessor: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    mount_point: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    mount_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    redirect: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<EntrySecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wrap_info: Option<EntryWrapInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

impl EntryResponse {
    fn new(input: &AuditInput, hashing: &HashSettings<'_>) -> Self {
        let empty = AuditResponse::default();
        let response = input.response.as_ref().unwrap_or(&empty);
        Self {
            auth: response
                .auth
                .as_ref()
                .map(|auth| EntryAuth::new(auth, hashing)),
            data: hashing.data(
                &response_data(response, input.operation, hashing),
                &input.non_hmac_response_keys,
            ),
            mount_accessor: input.mount_accessor.clone(),
            mount_point: input.mount_point.clone(),
            mount_type: input.mount_type.clone(),
            redirect: response.redirect.clone(),
            // Lease ids are not secrets in Vault's log: they are how operators find
            // and revoke a lease.
            secret: (!response.lease_id.is_empty()).then(|| EntrySecret {
                lease_id: response.lease_id.clone(),
            }),
            wrap_info: response.wrap_info.as_ref().map(|wrap| EntryWrapInfo {
                accessor: hashing.accessor(&wrap.accessor),
                creation_path: wrap.creation_path.clone(),
                creation_time: rfc3339_nanos(wrap.creation_time_unix_nanos),
                token: hashing.secret(&wrap.token),
                ttl: wrap.ttl_seconds,
                wrapped_accessor: hashing.accessor(&wrap.wrapped_accessor),
            }),
            warnings: response.warnings.clone(),
        }
    }
}

/// The response data to log: as given, or with list results reduced to their sizes,
/// as Vault's `doElideListResponseData` does before hashing.
fn response_data(
    response: &AuditResponse,
    operation: Operation,
    hashing: &HashSettings<'_>,
) -> Map<String, Value> {
    let mut data = response.data.clone();
    if hashing.elide_list_responses && operation == Operation::List {
        if let Some(Value::Array(keys)) = data.get("keys") {
            let count = keys.len();
            data.insert("keys".into(), Value::from(count));
        }
        if let Some(Value::Object(key_info)) = data.get("key_info") {
            let count = key_info.len();
            data.insert("key_info".into(), Value::from(count));
        }
    }
    data
}

/// One line of the log, serialized in Vault's field order (build it with
/// [`request_entry`] or [`response_entry`]).
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    time: String,
    auth: EntryAuth,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
    request: EntryRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<EntryResponse>,
    #[serde(rename = "type")]
    entry_type: &'static str,
}

fn entry(input: &AuditInput, hashing: &HashSettings<'_>, with_response: bool) -> AuditEntry {
    let auth = input.auth.clone().unwrap_or_default();
    AuditEntry {
        time: rfc3339_nanos(input.now_unix_nanos),
        auth: EntryAuth::new(&auth, hashing),
        error: input.error.clone(),
        request: EntryRequest::new(input, hashing),
        response: with_response.then(|| EntryResponse::new(input, hashing)),
        entry_type: if with_response { "response" } else { "request" },
    }
}

/// The `type: "request"` entry, hashed as `hashing` says.
pub fn request_entry(input: &AuditInput, hashing: &HashSettings<'_>) -> AuditEntry {
    entry(input, hashing, false)
}

/// The `type: "response"` entry (request, response and error), hashed as `hashing` says.
pub fn response_entry(input: &AuditInput, hashing: &HashSettings<'_>) -> AuditEntry {
    entry(input, hashing, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> AuditInput {
        let mut input = AuditInput::new(
            Operation::Update,
            "secret/data/app",
            1_719_956_509_000_000_123,
        );
        input.request_id = "req-1".into();
        input.mount_point = "secret/".into();
        input.mount_type = "kv".into();
        input.mount_accessor = "kv_1234abcd".into();
        input.client_token = "hvs.token".into();
        input.client_token_accessor = "accessor-1".into();
        input.auth = Some(AuditAuth {
            client_token: "hvs.token".into(),
            accessor: "accessor-1".into(),
            display_name: "userpass-alice".into(),
            policies: vec!["default".into(), "writer".into()],
            token_policies: vec!["default".into(), "writer".into()],
            token_type: "service".into(),
            token_ttl_seconds: 3600,
            token_issue_time_unix: Some(1_719_956_000),
            policy_results: Some(PolicyResults {
                allowed: true,
                granting_policies: vec![PolicyInfo {
                    name: "writer".into(),
                    namespace_id: "root".into(),
                    policy_type: "acl".into(),
                    ..PolicyInfo::default()
                }],
            }),
            ..AuditAuth::default()
        });
        input.request_data = json!({"data": {"password": "hunter2"}, "options": {"cas": 0}})
            .as_object()
            .cloned()
            .unwrap();
        input.remote_address = "127.0.0.1".into();
        input.remote_port = 51234;
        input
    }

    #[test]
    fn a_request_entry_has_vaults_fields_and_no_plaintext_secrets() {
        let hashing = HashSettings {
            salt: "salt-1",
            hmac_accessor: true,
            log_raw: false,
            elide_list_responses: false,
        };
        let text = serde_json::to_string(&request_entry(&input(), &hashing)).unwrap();
        let entry: Value = serde_json::from_str(&text).unwrap();
        assert!(text.starts_with("{\"time\":\"2024-07-02T21:41:49.000000123Z\",\"auth\":"));
        for secret in ["hunter2", "hvs.token", "accessor-1"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(entry["type"], "request");
        assert_eq!(
            entry["auth"]["client_token"],
            audit_hash("salt-1", "hvs.token")
        );
        assert_eq!(
            entry["auth"]["accessor"],
            audit_hash("salt-1", "accessor-1")
        );
        assert_eq!(entry["auth"]["display_name"], "userpass-alice");
        assert_eq!(entry["auth"]["token_ttl"], 3600);
        assert_eq!(entry["auth"]["token_issue_time"], "2024-07-02T21:33:20Z");
        assert_eq!(entry["auth"]["policy_results"]["allowed"], true);
        assert_eq!(
            entry["auth"]["policy_results"]["granting_policies"][0],
            json!({"name": "writer", "namespace_id": "root", "type": "acl"})
        );
        let request = &entry["request"];
        assert_eq!(request["operation"], "update");
        assert_eq!(request["namespace"], json!({"id": "root"}));
        assert_eq!(request["path"], "secret/data/app");
        assert_eq!(request["mount_point"], "secret/");
        assert_eq!(request["remote_port"], 51234);
        assert_eq!(
            request["data"]["data"]["password"],
            audit_hash("salt-1", "hunter2")
        );
        assert_eq!(request["data"]["options"]["cas"], 0);
        assert!(entry.get("response").is_none());
        assert!(entry.get("error").is_none());
    }

    #[test]
    fn raw_logging_and_plain_accessors_follow_the_device_options() {
        let raw = HashSettings {
            salt: "s",
            hmac_accessor: true,
            log_raw: true,
            elide_list_responses: false,
        };
        let entry = serde_json::to_value(request_entry(&input(), &raw)).unwrap();
        assert_eq!(entry["request"]["data"]["data"]["password"], "hunter2");
        assert_eq!(entry["auth"]["client_token"], "hvs.token");

        let plain_accessor = HashSettings {
            salt: "s",
            hmac_accessor: false,
            log_raw: false,
            elide_list_responses: false,
        };
        let entry = serde_json::to_value(request_entry(&input(), &plain_accessor)).unwrap();
        assert_eq!(entry["auth"]["accessor"], "accessor-1");
        assert_eq!(entry["request"]["client_token_accessor"], "accessor-1");
        assert_eq!(entry["auth"]["client_token"], audit_hash("s", "hvs.token"));
    }

    #[test]
    fn an_unauthenticated_request_has_a_default_auth_block() {
        let input = AuditInput::new(Operation::Update, "auth/userpass/login/alice", 0);
        let entry = serde_json::to_value(request_entry(
            &input,
            &HashSettings {
                salt: "s",
                hmac_accessor: true,
                log_raw: false,
                elide_list_responses: false,
            },
        ))
        .unwrap();
        assert_eq!(entry["auth"], json!({"token_type": "default"}));
        assert!(entry["request"].get("client_token").is_none());
    }
}
