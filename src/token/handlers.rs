//! The `auth/token/` backend: Vault's token endpoints over the [`TokenStore`], the
//! [`RoleStore`] and the expiration manager.
//!
//! The router has already checked the caller's token against the ACL for the path;
//! what is checked here is what Vault checks inside the token backend: child policies
//! within the parent's (unless root or sudo), `id` and `no_parent` only for root or
//! sudo callers, role constraints.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::entry::{TokenEntry, TokenType};
use super::role::{RoleStore, TokenRole, boolean, duration, string_list};
use super::store::{TokenError, TokenParams, TokenStore, auth_for, sanitize_policies};
use crate::expiration::ExpirationManager;
use crate::logical::{LogicalError, Operation, Request, Response};

/// What the token backend needs to know about policies, answered by the ACL layer.
pub trait PolicyLookup: Send + Sync {
    /// Whether a policy of this name exists (missing ones produce warnings).
    fn policy_exists(&self, name: &str) -> bool;
    /// Whether tokens with `policies` hold `sudo` on `path` (e.g. `auth/token/create`).
    fn has_sudo(&self, policies: &[String], path: &str) -> bool;
}

/// Vault's `auth/token/` backend.
#[derive(Clone)]
pub struct TokenBackend {
    expiration: ExpirationManager,
    roles: RoleStore,
    policies: Arc<dyn PolicyLookup>,
}

impl std::fmt::Debug for TokenBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TokenBackend")
    }
}

impl TokenBackend {
    pub fn new(
        expiration: ExpirationManager,
        roles: RoleStore,
        policies: Arc<dyn PolicyLookup>,
    ) -> Self {
        Self {
            expiration,
            roles,
            policies,
        }
    }

    fn store(&self) -> &TokenStore {
        self.expiration.tokens()
    }

    /// Handle a request below `auth/token/` (`request.path` relative to the mount).
    pub async fn handle(&self, request: &Request) -> Result<Response, LogicalError> {
        let path = request.path.trim_matches('/');
        let write = matches!(request.operation, Operation::Create | Operation::Update);
        let read = request.operation == Operation::Read;
        match path {
            "create" | "create-orphan" if write => self.create(request, path, None).await,
            _ if write && path.starts_with("create/") => {
                let role = &path["create/".len()..];
                self.create(request, path, Some(role)).await
            }
            "lookup" if write || read => {
                let token = optional_str(request, "token")?;
                self.lookup(request, token).await
            }
            "lookup-self" if write || read => self.lookup(request, None).await,
            "lookup-accessor" if write => self.lookup_accessor(request).await,
            "renew" if write => {
                let token = required_str(request, "token", "token ID")?;
                self.renew(request, &token).await
            }
            "renew-self" if write => {
                let token = self.caller(request)?.id;
                self.renew(request, &token).await
            }
            "renew-accessor" if write => self.renew_accessor(request).await,
            "revoke" if write => {
                let token = required_str(request, "token", "token ID")?;
                self.store().revoke_tree(&token).await?;
                Ok(Response::default())
            }
            "revoke-self" if write => {
                let token = self.caller(request)?.id;
                self.store().revoke_tree(&token).await?;
                Ok(Response::default())
            }
            "revoke-accessor" if write => {
                let accessor = required_str(request, "accessor", "accessor")?;
                if self.store().revoke_accessor(&accessor).await?.is_empty() {
                    return Err(LogicalError::BadRequest("invalid accessor".to_string()));
                }
                Ok(Response::default())
            }
            "revoke-orphan" if write => {
                let token = required_str(request, "token", "token ID")?;
                let caller = self.caller(request)?;
                if !self.is_sudo(&caller, "auth/token/revoke-orphan") {
                    return Err(LogicalError::BadRequest(
                        "root or sudo privileges required to revoke and orphan".to_string(),
                    ));
                }
                if self.store().revoke_orphan(&token).await?.is_empty() {
                    return Err(LogicalError::BadRequest(
                        "token to revoke not found".to_string(),
                    ));
                }
                Ok(Response::default())
            }
            "accessors" | "accessors/" if request.operation == Operation::List => {
                let caller = self.caller(request)?;
                if !self.is_sudo(&caller, "auth/token/accessors") {
                    return Err(LogicalError::PermissionDenied);
                }
                Response::list(self.store().list_accessors()?)
            }
            "roles" if request.operation == Operation::List => Response::list(self.roles.list()?),
            _ if path.starts_with("roles/") => self.role(request, &path["roles/".len()..]).await,
            _ => Err(LogicalError::UnsupportedPath(format!(
                "no handler for route \"auth/token/{path}\". route entry not found."
            ))),
        }
    }

    fn caller(&self, request: &Request) -> Result<TokenEntry, LogicalError> {
        let token = request
            .client_token
            .as_deref()
            .ok_or(LogicalError::PermissionDenied)?;
        self.store()
            .lookup(token, request.now_unix)?
            .ok_or(LogicalError::PermissionDenied)
    }

    fn is_sudo(&self, caller: &TokenEntry, path: &str) -> bool {
        caller.is_root() || self.policies.has_sudo(&caller.policies, path)
    }

    async fn create(
        &self,
        request: &Request,
        path: &str,
        role_name: Option<&str>,
    ) -> Result<Response, LogicalError> {
        let parent = self.caller(request)?;
        let sudo = self.is_sudo(&parent, &format!("auth/token/{path}"));
        let body = &request.data;
        let role_name = role_name
            .map(str::to_string)
            .or(optional_str(request, "role_name")?);
        let role = match &role_name {
            Some(name) => Some(
                self.roles
                    .get(name)?
                    .ok_or_else(|| LogicalError::BadRequest(format!("unknown role {name}")))?,
            ),
            None => None,
        };

        let id = optional_str(request, "id")?;
        if id.is_some() && !sudo {
            return Err(LogicalError::BadRequest(
                "root or sudo privileges required to specify token id".to_string(),
            ));
        }
        if id.as_deref().is_some_and(|id| id.contains('.')) {
            return Err(LogicalError::BadRequest(
                "token IDs can not contain a '.'".to_string(),
            ));
        }
        let no_parent = flag(body, "no_parent", false)?;
        if no_parent && !sudo {
            return Err(LogicalError::BadRequest(
                "root or sudo privileges required to create orphan token".to_string(),
            ));
        }
        let orphan =
            no_parent || path == "create-orphan" || role.as_ref().is_some_and(|r| r.orphan);
        let token_type = match optional_str(request, "type")?.as_deref() {
            None | Some("") | Some("service") => TokenType::Service,
            Some("batch") => TokenType::Batch,
            Some(other) => {
                return Err(LogicalError::BadRequest(format!(
                    "unsupported token type {other:?}"
                )));
            }
        };
        let no_default_policy = flag(body, "no_default_policy", false)?
            || role
                .as_ref()
                .is_some_and(|role| role.token_no_default_policy);
        let requested = match body.get("policies") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => string_list("policies", value)?,
        };
        let policies = child_policies(role.as_ref(), &requested, &parent, sudo, no_default_policy)?;

        let mut params = TokenParams {
            id,
            policies: Some(policies),
            // `child_policies` already decided whether `default` belongs.
            no_default_policy: true,
            meta: meta(body)?,
            display_name: display_name(optional_str(request, "display_name")?.as_deref()),
            num_uses: integer(body, "num_uses")?,
            ttl: duration_field(body, "ttl")?,
            explicit_max_ttl: duration_field(body, "explicit_max_ttl")?,
            max_ttl: 0,
            period: duration_field(body, "period")?,
            renewable: flag(body, "renewable", true)?,
            path: format!("auth/token/{path}"),
            entity_id: if orphan {
                String::new()
            } else {
                parent.entity_id.clone()
            },
            role: role_name.clone().unwrap_or_default(),
            token_type,
        };
        if let Some(role) = &role {
            if role.token_period > 0 {
                params.period = role.token_period;
            }
            if role.token_explicit_max_ttl > 0
                && (params.explicit_max_ttl == 0
                    || params.explicit_max_ttl > role.token_explicit_max_ttl)
            {
                params.explicit_max_ttl = role.token_explicit_max_ttl;
            }
            if role.token_num_uses > 0
                && (params.num_uses == 0 || params.num_uses > role.token_num_uses)
            {
                params.num_uses = role.token_num_uses;
            }
            params.renewable &= role.renewable;
            params.token_type = role.token_type();
            params.path = format!("auth/token/create/{}", role.name);
            if !role.path_suffix.is_empty() {
                params.path = format!("{}/{}", params.path, role.path_suffix);
            }
        }
        if params.period > 0 && !sudo && role.is_none() {
            return Err(LogicalError::BadRequest(
                "root or sudo privileges required to create periodic token".to_string(),
            ));
        }

        let parent_ref = if orphan { None } else { Some(&parent) };
        let (auth, entry) = self
            .store()
            .create(parent_ref, params, request.now_unix)
            .await?;
        self.expiration.register_token(&entry).await?;

        let mut response = Response {
            auth: Some(auth),
            ..Response::default()
        };
        for policy in &entry.policies {
            if policy != "default" && policy != "root" && !self.policies.policy_exists(policy) {
                response
                    .warnings
                    .push(format!("Policy {policy:?} does not exist"));
            }
        }
        Ok(response)
    }

    async fn lookup(
        &self,
        request: &Request,
        token: Option<String>,
    ) -> Result<Response, LogicalError> {
        let entry = match token {
            Some(token) if !token.is_empty() => self.store().lookup(&token, request.now_unix)?,
            _ => Some(self.caller(request)?),
        };
        let entry = entry.ok_or(LogicalError::PermissionDenied)?;
        Ok(Response::data(entry.lookup_data(request.now_unix)))
    }

    async fn lookup_accessor(&self, request: &Request) -> Result<Response, LogicalError> {
        let accessor = required_str(request, "accessor", "accessor")?;
        let entry = self
            .store()
            .lookup_accessor(&accessor, request.now_unix)?
            .ok_or_else(|| LogicalError::BadRequest("invalid accessor".to_string()))?;
        Ok(Response::data(entry.lookup_data(request.now_unix)))
    }

    async fn renew(&self, request: &Request, token: &str) -> Result<Response, LogicalError> {
        let increment = duration_field(&request.data, "increment")?;
        let (entry, warnings) = self
            .expiration
            .renew_token(token, increment, request.now_unix)
            .await?;
        Ok(renewal_response(&entry, warnings, request.now_unix))
    }

    async fn renew_accessor(&self, request: &Request) -> Result<Response, LogicalError> {
        let accessor = required_str(request, "accessor", "accessor")?;
        let increment = duration_field(&request.data, "increment")?;
        let (entry, warnings) = self
            .expiration
            .renew_token_accessor(&accessor, increment, request.now_unix)
            .await
            .map_err(|error| match error {
                crate::expiration::LeaseError::Token(TokenError::NotFound) => {
                    LogicalError::BadRequest("invalid accessor".to_string())
                }
                other => other.into(),
            })?;
        Ok(renewal_response(&entry, warnings, request.now_unix))
    }

    async fn role(&self, request: &Request, name: &str) -> Result<Response, LogicalError> {
        match request.operation {
            Operation::Read => {
                let role = self.roles.get(name)?.ok_or(LogicalError::NotFound)?;
                Ok(Response::data(role.to_data()))
            }
            Operation::Create | Operation::Update => {
                self.roles.write(name, &request.data).await?;
                Ok(Response::default())
            }
            Operation::Delete => {
                self.roles.delete(name).await?;
                Ok(Response::default())
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }
}

fn renewal_response(entry: &TokenEntry, warnings: Vec<String>, now_unix: i64) -> Response {
    let mut auth = auth_for(entry);
    auth.lease_duration = entry.remaining_ttl(now_unix);
    Response {
        auth: Some(auth),
        warnings,
        ..Response::default()
    }
}

/// Vault's policy rules for a child token (`handleCreateCommon`):
/// - a role with allowed or disallowed policies decides alone: requested policies must
///   lie within its allowed ones (all of them when none are requested; the parent's
///   when it allows any), and none may be disallowed;
/// - otherwise no request inherits the parent's policies (`default` only if the parent
///   has it), and a request must lie within the parent's unless the caller has sudo;
/// - `root` only ever comes from a root parent; `no_default_policy` strips `default`.
fn child_policies(
    role: Option<&TokenRole>,
    requested: &[String],
    parent: &TokenEntry,
    sudo: bool,
    no_default_policy: bool,
) -> Result<Vec<String>, LogicalError> {
    let parent_has_default = parent.policies.iter().any(|policy| policy == "default");
    let mut policies = match role {
        Some(role) if !role.allowed_policies.is_empty() || !role.disallowed_policies.is_empty() => {
            let add_default = !no_default_policy
                && !role
                    .disallowed_policies
                    .iter()
                    .any(|policy| policy == "default");
            let mut policies = sanitize_policies(requested, add_default);
            if !role.allowed_policies.is_empty() {
                let allowed = sanitize_policies(&role.allowed_policies, add_default);
                if requested.is_empty() {
                    policies = allowed;
                } else if let Some(outside) = policies.iter().find(|p| !allowed.contains(p)) {
                    return Err(LogicalError::BadRequest(format!(
                        "token policies ({outside:?}) must be subset of the role's allowed policies ({allowed:?})"
                    )));
                }
            } else if requested.is_empty() {
                policies = sanitize_policies(&parent.policies, add_default);
            }
            let disallowed = sanitize_policies(&role.disallowed_policies, false);
            if let Some(denied) = policies.iter().find(|p| disallowed.contains(p)) {
                return Err(LogicalError::BadRequest(format!(
                    "token policy {denied:?} is disallowed by this role"
                )));
            }
            policies
        }
        _ if requested.is_empty() => sanitize_policies(&parent.policies, false),
        _ if !sudo => {
            let wanted = sanitize_policies(requested, false);
            let held = sanitize_policies(&parent.policies, false);
            if !wanted.iter().all(|policy| held.contains(policy)) {
                return Err(LogicalError::BadRequest(
                    "child policies must be subset of parent".to_string(),
                ));
            }
            sanitize_policies(requested, !no_default_policy && parent_has_default)
        }
        _ => sanitize_policies(requested, !no_default_policy),
    };
    if no_default_policy {
        policies.retain(|policy| policy != "default");
    }
    if policies.iter().any(|policy| policy == "root") && !parent.is_root() {
        return Err(LogicalError::BadRequest(
            "root tokens may not be created without parent token being root".to_string(),
        ));
    }
    Ok(policies)
}

/// Vault's display name: `token`, or `token-<name>` with anything outside
/// `[A-Za-z0-9-]` replaced by `-`.
fn display_name(requested: Option<&str>) -> String {
    match requested {
        None | Some("") => "token".to_string(),
        Some(name) => {
            let cleaned: String = name
                .chars()
                .take(super::store::DISPLAY_NAME_BYTES_MAX - "token-".len())
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("token-{cleaned}")
        }
    }
}

fn meta(body: &Map<String, Value>) -> Result<BTreeMap<String, String>, LogicalError> {
    match body.get("meta") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                _ => Err(LogicalError::BadRequest(
                    "meta values must be strings".to_string(),
                )),
            })
            .collect(),
        Some(_) => Err(LogicalError::BadRequest(
            "meta must be a map of strings".to_string(),
        )),
    }
}

fn optional_str(request: &Request, field: &str) -> Result<Option<String>, LogicalError> {
    Ok(crate::logical::field_str(&request.data, field)?.map(str::to_string))
}

fn required_str(request: &Request, field: &str, what: &str) -> Result<String, LogicalError> {
    optional_str(request, field)?
        .filter(|value| !value.is_empty())
        .ok_or_else(|| LogicalError::BadRequest(format!("missing {what}")))
}

fn flag(body: &Map<String, Value>, field: &str, default: bool) -> Result<bool, LogicalError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => Ok(boolean(field, value)?),
    }
}

fn duration_field(body: &Map<String, Value>, field: &str) -> Result<i64, LogicalError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => Ok(duration(field, value)?),
    }
}

fn integer(body: &Map<String, Value>, field: &str) -> Result<i64, LogicalError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(number)) => number
            .as_i64()
            .ok_or_else(|| LogicalError::BadRequest(format!("{field} must be an integer"))),
        Some(Value::String(text)) => text
            .parse()
            .map_err(|_| LogicalError::BadRequest(format!("{field} must be an integer"))),
        Some(_) => Err(LogicalError::BadRequest(format!(
            "{field} must be an integer"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::token::testing::{Fixture, fixture};

    const NOW: i64 = 1_800_000_000;

    fn request(operation: Operation, path: &str, token: &str, body: Value) -> Request {
        let data = match body {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut request = Request::new(operation, path, data, NOW);
        request.client_token = Some(token.to_string());
        request
    }

    async fn call(
        f: &Fixture,
        operation: Operation,
        path: &str,
        token: &str,
        body: Value,
    ) -> Result<Response, LogicalError> {
        f.token_backend
            .handle(&request(operation, path, token, body))
            .await
    }

    async fn create(f: &Fixture, token: &str, body: Value) -> crate::logical::Auth {
        call(f, Operation::Update, "create", token, body)
            .await
            .unwrap()
            .auth
            .unwrap()
    }

    #[tokio::test]
    async fn root_lookup_self_has_vaults_shape() {
        let f = fixture(31);
        let (root, entry) = f.tokens.create_root(NOW - 50, Some("root")).await.unwrap();
        let data = call(&f, Operation::Read, "lookup-self", &root, json!({}))
            .await
            .unwrap()
            .data
            .unwrap();
        let expected = json!({
            "accessor": entry.accessor, "creation_time": NOW - 50, "creation_ttl": 0,
            "display_name": "root", "entity_id": "", "expire_time": null, "explicit_max_ttl": 0,
            "id": "root", "issue_time": crate::token::rfc3339(NOW - 50), "meta": null,
            "num_uses": 0, "orphan": true, "path": "auth/token/root", "policies": ["root"],
            "renewable": false, "ttl": 0, "type": "service"
        });
        assert_eq!(Value::Object(data), expected);
    }

    #[tokio::test]
    async fn create_lookup_renew_and_revoke_through_the_endpoints() {
        let f = fixture(32);
        let (root, _) = f.tokens.create_root(NOW, None).await.unwrap();

        // Create: the auth block, warnings for unknown policies.
        let response = call(
            &f,
            Operation::Update,
            "create",
            &root,
            json!({"policies": ["dev", "web"], "ttl": "1h", "meta": {"team": "a"}, "display_name": "ci job"}),
        )
        .await
        .unwrap();
        assert_eq!(response.warnings, vec!["Policy \"web\" does not exist"]);
        let auth = response.auth.unwrap();
        assert_eq!(auth.policies, vec!["default", "dev", "web"]);
        assert_eq!(
            (auth.lease_duration, auth.renewable, auth.orphan),
            (3600, true, false)
        );
        assert_eq!(
            auth.metadata,
            Some(json!({"team": "a"}).as_object().unwrap().clone())
        );
        assert_eq!(auth.client_token.len(), 95);

        // Lookup by token and by accessor.
        let data = call(
            &f,
            Operation::Update,
            "lookup",
            &root,
            json!({"token": auth.client_token}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
        assert_eq!(data["display_name"], "token-ci-job");
        assert_eq!(data["path"], "auth/token/create");
        assert_eq!(data["ttl"], 3600);
        assert_eq!(data["expire_time"], crate::token::rfc3339(NOW + 3600));
        assert_eq!(data["id"], auth.client_token.as_str());
        let by_accessor = call(
            &f,
            Operation::Update,
            "lookup-accessor",
            &root,
            json!({"accessor": auth.accessor}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
        assert_eq!(by_accessor["id"], "");
        assert_eq!(by_accessor["accessor"], auth.accessor.as_str());

        // Renew-self with an increment; the lease follows.
        let renewed = call(
            &f,
            Operation::Update,
            "renew-self",
            &auth.client_token,
            json!({"increment": "2h"}),
        )
        .await
        .unwrap()
        .auth
        .unwrap();
        assert_eq!(renewed.lease_duration, 7200);
        let lease = f
            .expiration
            .lookup(&format!(
                "auth/token/create/{}",
                f.tokens
                    .lookup(&auth.client_token, NOW)
                    .unwrap()
                    .unwrap()
                    .salted_id
            ))
            .unwrap()
            .unwrap();
        assert_eq!(lease.expire_time, NOW + 7200);

        // Revoke by accessor: 204, then the token is a bad token.
        let revoked = call(
            &f,
            Operation::Update,
            "revoke-accessor",
            &root,
            json!({"accessor": auth.accessor}),
        )
        .await
        .unwrap();
        assert_eq!(revoked, Response::default());
        assert_eq!(
            call(
                &f,
                Operation::Update,
                "lookup",
                &root,
                json!({"token": auth.client_token})
            )
            .await,
            Err(LogicalError::PermissionDenied)
        );
        assert!(
            f.expiration.lookup(&lease.lease_id).unwrap().is_none(),
            "the lease went with it"
        );
        assert_eq!(
            call(
                &f,
                Operation::Update,
                "revoke-accessor",
                &root,
                json!({"accessor": auth.accessor})
            )
            .await,
            Err(LogicalError::BadRequest("invalid accessor".into()))
        );
    }

    #[tokio::test]
    async fn children_stay_within_their_parents_policies() {
        let f = fixture(33);
        let (root, _) = f.tokens.create_root(NOW, None).await.unwrap();
        let dev = create(&f, &root, json!({"policies": ["dev"]})).await;

        // A dev token may mint dev (and default), nothing more, and no orphans or ids.
        let child = create(&f, &dev.client_token, json!({"policies": ["dev"]})).await;
        assert!(!child.orphan);
        let inherited = create(&f, &dev.client_token, json!({})).await;
        assert_eq!(inherited.policies, vec!["default", "dev"]);
        let denied = [
            json!({"policies": ["admin"]}),
            json!({"policies": ["root"]}),
            json!({"no_parent": true}),
            json!({"id": "custom"}),
            json!({"period": "1h"}),
        ];
        for body in denied {
            let result = call(
                &f,
                Operation::Update,
                "create",
                &dev.client_token,
                body.clone(),
            )
            .await;
            assert!(matches!(result, Err(LogicalError::BadRequest(_))), "{body}");
        }

        // create-orphan is open to it; a sudo (ops) token may exceed its policies.
        let orphan = call(
            &f,
            Operation::Update,
            "create-orphan",
            &dev.client_token,
            json!({}),
        )
        .await
        .unwrap()
        .auth
        .unwrap();
        assert!(orphan.orphan);
        let ops = create(&f, &root, json!({"policies": ["ops"]})).await;
        let wide = create(
            &f,
            &ops.client_token,
            json!({"policies": ["admin"], "no_parent": true}),
        )
        .await;
        assert!(wide.orphan);
        assert_eq!(wide.policies, vec!["admin", "default"]);

        // Root may choose an id (without a '.').
        let custom = create(&f, &root, json!({"id": "my-token"})).await;
        assert_eq!(custom.client_token, "my-token");
        assert!(
            call(&f, Operation::Update, "create", &root, json!({"id": "a.b"}))
                .await
                .is_err()
        );

        // Revoking the dev token takes its children, not the orphan.
        call(
            &f,
            Operation::Update,
            "revoke",
            &root,
            json!({"token": dev.client_token}),
        )
        .await
        .unwrap();
        assert!(f.tokens.lookup(&child.client_token, NOW).unwrap().is_none());
        assert!(
            f.tokens
                .lookup(&inherited.client_token, NOW)
                .unwrap()
                .is_none()
        );
        assert!(
            f.tokens
                .lookup(&orphan.client_token, NOW)
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn default_policy_and_root_follow_vaults_inheritance_rules() {
        let f = fixture(36);
        let (root, _) = f.tokens.create_root(NOW, None).await.unwrap();

        // A parent without `default` passes none on, even to explicit requests.
        let bare = create(
            &f,
            &root,
            json!({"policies": ["dev"], "no_default_policy": true}),
        )
        .await;
        assert_eq!(bare.policies, vec!["dev"]);
        assert_eq!(
            create(&f, &bare.client_token, json!({})).await.policies,
            vec!["dev"]
        );
        let explicit = create(&f, &bare.client_token, json!({"policies": ["dev"]})).await;
        assert_eq!(explicit.policies, vec!["dev"]);

        // Sudo lets a token exceed its policies, but never mint root.
        let ops = create(&f, &root, json!({"policies": ["ops"]})).await;
        assert_eq!(
            call(
                &f,
                Operation::Update,
                "create",
                &ops.client_token,
                json!({"policies": ["root"]})
            )
            .await,
            Err(LogicalError::BadRequest(
                "root tokens may not be created without parent token being root".into()
            ))
        );
        // A root parent's children inherit root and never expire.
        let child_root = create(&f, &root, json!({})).await;
        assert_eq!(child_root.policies, vec!["root"]);
        assert_eq!(
            (child_root.lease_duration, child_root.renewable),
            (0, false)
        );
    }

    #[tokio::test]
    async fn roles_shape_tokens_created_through_them() {
        let f = fixture(34);
        let (root, _) = f.tokens.create_root(NOW, None).await.unwrap();
        call(
            &f,
            Operation::Create,
            "roles/deployer",
            &root,
            json!({"allowed_policies": "dev,admin", "disallowed_policies": ["ops"], "orphan": true, "token_period": "30m", "path_suffix": "v1"}),
        )
        .await
        .unwrap();
        let role = call(&f, Operation::Read, "roles/deployer", &root, json!({}))
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(role["allowed_policies"], json!(["dev", "admin"]));
        assert_eq!(role["period"], 1800);
        let keys = call(&f, Operation::List, "roles", &root, json!({}))
            .await
            .unwrap();
        assert_eq!(keys.data.unwrap()["keys"], json!(["deployer"]));

        let auth = call(&f, Operation::Update, "create/deployer", &root, json!({}))
            .await
            .unwrap()
            .auth
            .unwrap();
        assert!(auth.orphan);
        assert_eq!(auth.policies, vec!["admin", "default", "dev"]);
        assert_eq!(auth.lease_duration, 1800);
        let entry = f.tokens.lookup(&auth.client_token, NOW).unwrap().unwrap();
        assert_eq!(entry.path, "auth/token/create/deployer/v1");
        assert_eq!(entry.role, "deployer");
        assert!(
            call(
                &f,
                Operation::Update,
                "create/deployer",
                &root,
                json!({"policies": ["ops"]})
            )
            .await
            .is_err()
        );
        assert!(
            call(&f, Operation::Update, "create/nope", &root, json!({}))
                .await
                .is_err()
        );

        // Roles are replicated; tokens are not.
        assert!(
            f.backend
                .dump()
                .iter()
                .any(|(key, _)| key == "sys/token-roles/deployer")
        );
        assert_eq!(
            crate::storage::key_class("sys/token-roles/deployer"),
            crate::storage::KeyClass::Replicated
        );
        call(&f, Operation::Delete, "roles/deployer", &root, json!({}))
            .await
            .unwrap();
        assert_eq!(
            call(&f, Operation::Read, "roles/deployer", &root, json!({})).await,
            Err(LogicalError::NotFound)
        );
    }

    #[tokio::test]
    async fn accessors_listing_and_revoke_orphan_need_sudo() {
        let f = fixture(35);
        let (root, root_entry) = f.tokens.create_root(NOW, None).await.unwrap();
        let dev = create(&f, &root, json!({"policies": ["dev"]})).await;
        let grandchild = create(&f, &dev.client_token, json!({})).await;

        assert_eq!(
            call(
                &f,
                Operation::List,
                "accessors",
                &dev.client_token,
                json!({})
            )
            .await,
            Err(LogicalError::PermissionDenied)
        );
        let keys = call(&f, Operation::List, "accessors", &root, json!({}))
            .await
            .unwrap()
            .data
            .unwrap()["keys"]
            .clone();
        let mut expected = vec![root_entry.accessor, dev.accessor, grandchild.accessor];
        expected.sort();
        assert_eq!(keys, json!(expected));

        assert_eq!(
            call(
                &f,
                Operation::Update,
                "revoke-orphan",
                &dev.client_token,
                json!({"token": dev.client_token})
            )
            .await,
            Err(LogicalError::BadRequest(
                "root or sudo privileges required to revoke and orphan".into()
            ))
        );
        let revoke_orphan = json!({"token": dev.client_token});
        call(
            &f,
            Operation::Update,
            "revoke-orphan",
            &root,
            revoke_orphan.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            call(&f, Operation::Update, "revoke-orphan", &root, revoke_orphan).await,
            Err(LogicalError::BadRequest("token to revoke not found".into()))
        );
        let survivor = call(
            &f,
            Operation::Update,
            "lookup",
            &root,
            json!({"token": grandchild.client_token}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
        assert_eq!(survivor["orphan"], true);

        // revoke-self ends the caller's own token.
        call(
            &f,
            Operation::Update,
            "revoke-self",
            &grandchild.client_token,
            json!({}),
        )
        .await
        .unwrap();
        assert!(
            f.tokens
                .lookup(&grandchild.client_token, NOW)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            call(&f, Operation::Update, "nonsense", &root, json!({})).await,
            Err(LogicalError::UnsupportedPath(_))
        ));
    }
}
