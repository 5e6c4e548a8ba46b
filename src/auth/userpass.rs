//! The userpass auth method: users with argon2id password hashes, and logins that
//! return Vault's `auth` block.
//!
//! Storage, relative to the auth mount's view (replicated): `user/<lowercase name>` →
//! [`UserEntry`]. Passwords never reach storage: only an argon2id hash with a random
//! salt (from the injected RNG) and its cost parameters.
//!
//! Logins take the same time whether the user exists or not (a dummy hash is checked
//! for unknown users) and fail with Vault's one message, `invalid username or
//! password`.

use std::collections::BTreeMap;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::barrier::View;
use crate::env::SharedRng;
use crate::expiration::ExpirationManager;
use crate::identity::{IdentityStore, LoginAlias};
use crate::logical::{LogicalError, Operation, Request, Response, field_str};
use crate::token::role::{boolean, duration, string_list};
use crate::token::{TokenParams, TokenType};

/// The longest username (Vault sets none; ours keeps keys and display names bounded).
pub const USERNAME_BYTES_MAX: usize = 128;
/// The longest password hashed; longer ones are refused before any work is done.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// The most policies a user may carry.
pub const USER_POLICIES_MAX: usize = 64;
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;
const USER_PREFIX: &str = "user/";
const INVALID_CREDENTIALS: &str = "invalid username or password";

/// Argon2id cost. Production uses the argon2 crate's defaults (19 MiB, 2 passes);
/// tests may lower it. Each stored hash records its own cost, so changing it only
/// affects new passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct PasswordHash {
    cost: PasswordCost,
    salt: String,
    hash: String,
}

/// A user as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserEntry {
    password: PasswordHash,
    pub token_policies: Vec<String>,
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    pub token_explicit_max_ttl: i64,
    pub token_period: i64,
    pub token_num_uses: i64,
    pub token_no_default_policy: bool,
    pub token_type: String,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UserEntry")
            .field("token_policies", &self.token_policies)
            .finish_non_exhaustive()
    }
}

impl UserEntry {
    /// Vault's read shape: the `token_` fields, plus the deprecated `policies`, `ttl`,
    /// `max_ttl` and `bound_cidrs` mirroring them. Vault echoes those only for users
    /// written with the old names; Arca always does, because older clients (vaultrs
    /// before its `token_` fields) require them.
    fn to_data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("bound_cidrs".into(), Value::Array(Vec::new()));
        data.insert("max_ttl".into(), self.token_max_ttl.into());
        data.insert("policies".into(), self.token_policies.clone().into());
        data.insert("token_bound_cidrs".into(), Value::Array(Vec::new()));
        data.insert(
            "token_explicit_max_ttl".into(),
            self.token_explicit_max_ttl.into(),
        );
        data.insert("token_max_ttl".into(), self.token_max_ttl.into());
        data.insert(
            "token_no_default_policy".into(),
            self.token_no_default_policy.into(),
        );
        data.insert("token_num_uses".into(), self.token_num_uses.into());
        data.insert("token_period".into(), self.token_period.into());
        data.insert("token_policies".into(), self.token_policies.clone().into());
        data.insert("token_ttl".into(), self.token_ttl.into());
        data.insert("token_type".into(), self.token_type.clone().into());
        data.insert("ttl".into(), self.token_ttl.into());
        data
    }
}

/// Where this userpass instance is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserpassMount {
    /// The mount path with its trailing slash, e.g. `userpass/`.
    pub path: String,
    /// The mount accessor, e.g. `auth_userpass_1a2b3c4d` (keys identity aliases).
    pub accessor: String,
}

#[derive(Clone)]
pub struct UserpassBackend {
    view: View,
    mount: UserpassMount,
    rng: SharedRng,
    expiration: ExpirationManager,
    identity: IdentityStore,
    cost: PasswordCost,
    /// Verified against when the user does not exist, so timing does not tell.
    dummy_hash: PasswordHash,
}

impl std::fmt::Debug for UserpassBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("UserpassBackend")
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

impl UserpassBackend {
    /// `view` is this mount's (replicated) storage view.
    pub fn new(
        view: View,
        mount: UserpassMount,
        rng: SharedRng,
        expiration: ExpirationManager,
        identity: IdentityStore,
        cost: PasswordCost,
    ) -> Result<Self, LogicalError> {
        // Once per mount, at its first request: computed in place.
        let dummy_hash = password_hash_with_salt(cost, b"arca-userpass-dummy", rng.bytes())?;
        Ok(Self {
            view,
            mount,
            rng,
            expiration,
            identity,
            cost,
            dummy_hash,
        })
    }

    /// Vault's `pathLoginRenew`: a login token may be renewed only while its user
    /// exists with the same policies. The core calls this before renewing a token whose
    /// path is below this mount's `login/`.
    pub fn check_renewal(&self, entry: &crate::token::TokenEntry) -> Result<(), LogicalError> {
        let refuse = |why: &str| Err(LogicalError::BadRequest(why.to_string()));
        let Some(username) = entry.meta.get("username") else {
            return refuse("token was not issued by a userpass login");
        };
        let Some(user) = validate_username(username)
            .ok()
            .map(|name| self.user(&name))
            .transpose()?
            .flatten()
        else {
            return refuse("user no longer exists, not renewing");
        };
        let now = crate::token::store::sanitize_policies(&user.token_policies, false);
        let issued: Vec<String> = entry
            .policies
            .iter()
            .filter(|policy| *policy != "default" || now.contains(policy))
            .cloned()
            .collect();
        if now != issued {
            return refuse("policies have changed, not renewing");
        }
        Ok(())
    }

    /// Whether the target of a write exists (the router's create/update decision).
    pub fn exists(&self, path: &str) -> Result<bool, LogicalError> {
        match user_path(path) {
            Some(username) => Ok(self.user(&username)?.is_some()),
            None => Ok(false),
        }
    }

    /// Handle a request below the mount (`request.path` relative to it).
    pub async fn handle(&self, request: &Request) -> Result<Response, LogicalError> {
        let path = request.path.trim_end_matches('/');
        let write = matches!(request.operation, Operation::Create | Operation::Update);
        if let Some(username) = path.strip_prefix("login/") {
            if !write {
                return Err(LogicalError::UnsupportedOperation);
            }
            return self.login(request, username).await;
        }
        if path == "users" {
            if request.operation != Operation::List {
                return Err(LogicalError::UnsupportedOperation);
            }
            return Response::list(self.view.list(USER_PREFIX)?);
        }
        let Some(rest) = path.strip_prefix("users/") else {
            return Err(self.no_route(path));
        };
        let (name, action) = match rest.split_once('/') {
            Some((name, action)) => (name, Some(action)),
            None => (rest, None),
        };
        let username = validate_username(name)?;
        match (request.operation, action) {
            (Operation::Read, None) => {
                let user = self.user(&username)?.ok_or(LogicalError::NotFound)?;
                Ok(Response::data(user.to_data()))
            }
            (Operation::Delete, None) => {
                self.view
                    .delete(&format!("{USER_PREFIX}{username}"))
                    .await?;
                Ok(Response::default())
            }
            (_, None) if write => self.write_user(request, &username).await,
            (_, Some("password")) if write => {
                let mut user = self.user(&username)?.ok_or_else(|| {
                    LogicalError::BadRequest("username does not exist".to_string())
                })?;
                user.password = self.password_from(request).await?;
                self.save(&username, &user).await
            }
            (_, Some("policies")) if write => {
                let mut user = self.user(&username)?.ok_or_else(|| {
                    LogicalError::BadRequest("username does not exist".to_string())
                })?;
                user.token_policies = policies_from(&request.data)?.unwrap_or_default();
                self.save(&username, &user).await
            }
            (_, Some("password" | "policies")) | (_, None) => {
                Err(LogicalError::UnsupportedOperation)
            }
            _ => Err(self.no_route(path)),
        }
    }

    fn no_route(&self, path: &str) -> LogicalError {
        LogicalError::UnsupportedPath(format!(
            "no handler for route \"auth/{}{path}\". route entry not found.",
            self.mount.path
        ))
    }

    fn user(&self, username: &str) -> Result<Option<UserEntry>, LogicalError> {
        Ok(self.view.get_json(&format!("{USER_PREFIX}{username}"))?)
    }

    async fn save(&self, username: &str, user: &UserEntry) -> Result<Response, LogicalError> {
        self.view
            .put_json(&format!("{USER_PREFIX}{username}"), user)
            .await?;
        Ok(Response::default())
    }

    async fn write_user(
        &self,
        request: &Request,
        username: &str,
    ) -> Result<Response, LogicalError> {
        let body = &request.data;
        let existing = self.user(username)?;
        let password = match (field_str(body, "password")?, &existing) {
            (Some(_), _) => self.password_from(request).await?,
            (None, Some(user)) => user.password.clone(),
            (None, None) => return Err(LogicalError::BadRequest("missing password".to_string())),
        };
        if body.contains_key("password_hash") {
            return Err(LogicalError::BadRequest(
                "password_hash (bcrypt) is not supported; send password".to_string(),
            ));
        }
        let mut user = existing.unwrap_or(UserEntry {
            password: password.clone(),
            token_policies: Vec::new(),
            token_ttl: 0,
            token_max_ttl: 0,
            token_explicit_max_ttl: 0,
            token_period: 0,
            token_num_uses: 0,
            token_no_default_policy: false,
            token_type: "default".to_string(),
        });
        user.password = password;
        if let Some(policies) = policies_from(body)? {
            user.token_policies = policies;
        }
        let seconds = |names: &[&str]| -> Result<Option<i64>, LogicalError> {
            for name in names {
                if let Some(value) = body.get(*name).filter(|value| !value.is_null()) {
                    return Ok(Some(duration(name, value)?));
                }
            }
            Ok(None)
        };
        if let Some(ttl) = seconds(&["token_ttl", "ttl"])? {
            user.token_ttl = ttl;
        }
        if let Some(max) = seconds(&["token_max_ttl", "max_ttl"])? {
            user.token_max_ttl = max;
        }
        if let Some(explicit) = seconds(&["token_explicit_max_ttl"])? {
            user.token_explicit_max_ttl = explicit;
        }
        if let Some(period) = seconds(&["token_period", "period"])? {
            user.token_period = period;
        }
        if user.token_max_ttl > 0 && user.token_ttl > user.token_max_ttl {
            return Err(LogicalError::BadRequest(
                "\"token_ttl\" value must be less than \"token_max_ttl\" value".to_string(),
            ));
        }
        if let Some(value) = body.get("token_num_uses").filter(|value| !value.is_null()) {
            user.token_num_uses = value
                .as_i64()
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
                .filter(|uses| (0..=crate::token::store::NUM_USES_MAX).contains(uses))
                .ok_or_else(|| {
                    LogicalError::BadRequest("token_num_uses must be a non-negative integer".into())
                })?;
        }
        if let Some(value) = body.get("token_no_default_policy") {
            user.token_no_default_policy = boolean("token_no_default_policy", value)?;
        }
        if let Some(kind) = field_str(body, "token_type")? {
            match kind {
                "" | "default" | "service" | "default-service" => {
                    user.token_type = if kind.is_empty() { "default" } else { kind }.to_string()
                }
                "batch" | "default-batch" => {
                    return Err(LogicalError::BadRequest(
                        "batch tokens are not supported by this server".to_string(),
                    ));
                }
                other => {
                    return Err(LogicalError::BadRequest(format!(
                        "invalid 'token_type' value {other:?}"
                    )));
                }
            }
        }
        self.save(username, &user).await
    }

    async fn password_from(&self, request: &Request) -> Result<PasswordHash, LogicalError> {
        let password = field_str(&request.data, "password")?
            .filter(|password| !password.is_empty())
            .ok_or_else(|| LogicalError::BadRequest("missing password".to_string()))?;
        if password.len() > PASSWORD_BYTES_MAX {
            return Err(LogicalError::BadRequest(format!(
                "passwords are at most {PASSWORD_BYTES_MAX} bytes"
            )));
        }
        hash_password(&self.rng, self.cost, password.as_bytes()).await
    }

    async fn login(&self, request: &Request, name: &str) -> Result<Response, LogicalError> {
        let invalid = || LogicalError::BadRequest(INVALID_CREDENTIALS.to_string());
        let password = field_str(&request.data, "password")?
            .filter(|password| !password.is_empty())
            .ok_or_else(|| LogicalError::BadRequest("missing password".to_string()))?;
        if password.len() > PASSWORD_BYTES_MAX {
            return Err(invalid());
        }
        let user = match validate_username(name) {
            Ok(username) => self.user(&username)?.map(|user| (username, user)),
            Err(_) => None,
        };
        // Hash even for unknown users so the answer takes the same time.
        let stored = user
            .as_ref()
            .map_or(&self.dummy_hash, |(_, user)| &user.password);
        let matches = verify_password(stored, password.as_bytes()).await?;
        let Some((username, user)) = user.filter(|_| matches) else {
            return Err(invalid());
        };

        let entity = self
            .identity
            .entity_for_login(
                LoginAlias {
                    mount_accessor: &self.mount.accessor,
                    mount_path: &format!("auth/{}", self.mount.path),
                    mount_type: "userpass",
                    name: &username,
                },
                request.now_unix,
            )
            .await?;
        let mut meta = BTreeMap::new();
        meta.insert("username".to_string(), username.clone());
        let params = TokenParams {
            id: None,
            policies: Some(user.token_policies.clone()),
            no_default_policy: user.token_no_default_policy,
            meta,
            display_name: format!(
                "{}-{username}",
                self.mount.path.trim_end_matches('/').replace('/', "-")
            ),
            num_uses: user.token_num_uses,
            ttl: user.token_ttl,
            explicit_max_ttl: user.token_explicit_max_ttl,
            max_ttl: user.token_max_ttl,
            period: user.token_period,
            renewable: true,
            path: format!("auth/{}login/{username}", self.mount.path),
            entity_id: entity.id,
            role: String::new(),
            token_type: TokenType::Service,
        };
        let (auth, entry) = self
            .expiration
            .tokens()
            .create(None, params, request.now_unix)
            .await?;
        self.expiration.register_token(&entry).await?;
        Ok(Response {
            auth: Some(auth),
            ..Response::default()
        })
    }
}

/// `token_policies`, or the legacy `policies`, as a comma string or an array.
fn policies_from(body: &Map<String, Value>) -> Result<Option<Vec<String>>, LogicalError> {
    for field in ["token_policies", "policies"] {
        if let Some(value) = body.get(field).filter(|value| !value.is_null()) {
            let policies = string_list(field, value)?;
            if policies.len() > USER_POLICIES_MAX {
                return Err(LogicalError::BadRequest(format!(
                    "at most {USER_POLICIES_MAX} policies per user"
                )));
            }
            return Ok(Some(policies));
        }
    }
    Ok(None)
}

fn user_path(path: &str) -> Option<String> {
    let name = path.trim_end_matches('/').strip_prefix("users/")?;
    let name = name.split('/').next()?;
    validate_username(name).ok()
}

/// Vault's username rule: `[A-Za-z0-9_.-]`, no leading `-` or `.`, no trailing `.`.
/// Usernames are case-insensitive: the lowercase form is the key.
fn validate_username(name: &str) -> Result<String, LogicalError> {
    let valid = !name.is_empty()
        && name.len() <= USERNAME_BYTES_MAX
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte))
        && !name.starts_with(['-', '.'])
        && !name.ends_with('.');
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(LogicalError::BadRequest(format!(
            "invalid username {:?}",
            name.chars().take(USERNAME_BYTES_MAX).collect::<String>()
        )))
    }
}

fn argon2(cost: PasswordCost) -> Result<Argon2<'static>, LogicalError> {
    let params = Params::new(
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        Some(HASH_BYTES),
    )
    .map_err(|error| LogicalError::Internal(format!("invalid argon2 cost: {error}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Run password hashing on the blocking pool, at most [`password_hashes_at_once`] at a
/// time in the process. One argon2 hash at the default cost takes 19 MiB and tens of
/// milliseconds of a core: on the async workers a burst of logins stalled every other
/// request, and unbounded on the pool 64 concurrent logins would take 1.2 GiB.
async fn hash_off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    // The simulator hashes inline on its one thread, so there is nothing to bound; and a
    // process-wide semaphore would be shared by the simulated worlds of parallel tests,
    // whose waiters one world's runtime cannot wake.
    #[cfg(not(madsim))]
    let _permit = {
        static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
        let permits =
            HASHING.get_or_init(|| tokio::sync::Semaphore::new(password_hashes_at_once()));
        permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    };
    crate::env::runtime::blocking(work).await
}

/// One hash per core: more would only share the cores and add 19 MiB each.
#[cfg(not(madsim))]
fn password_hashes_at_once() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

async fn hash_password(
    rng: &SharedRng,
    cost: PasswordCost,
    password: &[u8],
) -> Result<PasswordHash, LogicalError> {
    // Drawn here, on the calling task, so the seam's draws keep their order.
    let salt: [u8; SALT_BYTES] = rng.bytes();
    let password = Zeroizing::new(password.to_vec());
    hash_off_the_workers(move || password_hash_with_salt(cost, &password, salt)).await
}

fn password_hash_with_salt(
    cost: PasswordCost,
    password: &[u8],
    salt: [u8; SALT_BYTES],
) -> Result<PasswordHash, LogicalError> {
    let mut hash = [0u8; HASH_BYTES];
    argon2(cost)?
        .hash_password_into(password, &salt, &mut hash)
        .map_err(|error| LogicalError::Internal(format!("password hashing failed: {error}")))?;
    Ok(PasswordHash {
        cost,
        salt: STANDARD.encode(salt),
        hash: STANDARD.encode(hash),
    })
}

async fn verify_password(stored: &PasswordHash, password: &[u8]) -> Result<bool, LogicalError> {
    let corrupt = || LogicalError::Internal("stored password hash is corrupt".to_string());
    let salt = STANDARD.decode(&stored.salt).map_err(|_| corrupt())?;
    let expected = STANDARD.decode(&stored.hash).map_err(|_| corrupt())?;
    if expected.len() != HASH_BYTES {
        return Err(corrupt());
    }
    let cost = stored.cost;
    let password = Zeroizing::new(password.to_vec());
    let actual = hash_off_the_workers(move || {
        let mut actual = [0u8; HASH_BYTES];
        argon2(cost)?
            .hash_password_into(&password, &salt, &mut actual)
            .map_err(|_| corrupt())?;
        Ok::<_, LogicalError>(actual)
    })
    .await?;
    Ok(bool::from(actual.ct_eq(&expected[..])))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::storage::{KeyClass, key_class};
    use crate::token::testing::{Fixture, fixture};

    const NOW: i64 = 1_800_000_000;
    /// The smallest argon2 cost, so the stories run fast in debug builds.
    const TEST_COST: PasswordCost = PasswordCost {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    fn userpass(f: &Fixture) -> UserpassBackend {
        UserpassBackend::new(
            f.barrier.view("auth/6a1c2f0e/"),
            UserpassMount {
                path: "userpass/".to_string(),
                accessor: "auth_userpass_1a2b3c4d".to_string(),
            },
            f.rng.clone(),
            f.expiration.clone(),
            IdentityStore::new(
                f.barrier.view(crate::storage::Store::Identity.prefix()),
                f.rng.clone(),
            ),
            TEST_COST,
        )
        .unwrap()
    }

    fn request(operation: Operation, path: &str, body: Value) -> Request {
        let data = match body {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Request::new(operation, path, data, NOW)
    }

    async fn login(
        backend: &UserpassBackend,
        user: &str,
        password: &str,
    ) -> Result<Response, LogicalError> {
        backend
            .handle(&request(
                Operation::Update,
                &format!("login/{user}"),
                json!({ "password": password }),
            ))
            .await
    }

    #[tokio::test]
    async fn create_user_login_and_get_vaults_auth_block() {
        let f = fixture(21);
        let backend = userpass(&f);

        // Phase 1: create a user with a comma string of legacy policies.
        let created = backend
            .handle(&request(
                Operation::Create,
                "users/Mitchellh",
                json!({"password": "foo-s3cret", "policies": "policy2,policy1"}),
            ))
            .await
            .unwrap();
        assert_eq!(created, Response::default(), "204");
        assert!(backend.exists("users/mitchellh").unwrap());

        // Phase 2: the read shape carries token_ fields and legacy mirrors.
        let read = backend
            .handle(&request(Operation::Read, "users/mitchellh", json!({})))
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(read["token_policies"], json!(["policy2", "policy1"]));
        assert_eq!(read["policies"], json!(["policy2", "policy1"]));
        assert_eq!(read["token_type"], "default");
        assert!(!read.contains_key("password"));

        // Phase 3: login returns an orphan, renewable, 768h service token.
        let auth = login(&backend, "mitchellh", "foo-s3cret")
            .await
            .unwrap()
            .auth
            .unwrap();
        assert_eq!(auth.client_token.len(), 95);
        assert_eq!(auth.accessor.len(), 24);
        assert_eq!(auth.policies, vec!["default", "policy1", "policy2"]);
        assert_eq!(auth.token_policies, auth.policies);
        assert_eq!(
            auth.metadata,
            Some(
                json!({"username": "mitchellh"})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        assert_eq!(auth.lease_duration, 2_764_800);
        assert!(auth.renewable && auth.orphan);
        assert_eq!(auth.token_type, "service");
        assert_eq!(auth.num_uses, 0);
        assert_eq!(auth.entity_id.len(), 36);

        // Phase 4: the token works, has a lease, and a second login has the same entity.
        let entry = f.tokens.lookup(&auth.client_token, NOW).unwrap().unwrap();
        assert_eq!(entry.path, "auth/userpass/login/mitchellh");
        assert_eq!(entry.display_name, "userpass-mitchellh");
        let lease_id = format!("auth/userpass/login/mitchellh/{}", entry.salted_id);
        assert!(f.expiration.lookup(&lease_id).unwrap().is_some());
        let again = login(&backend, "MITCHELLH", "foo-s3cret")
            .await
            .unwrap()
            .auth
            .unwrap();
        assert_eq!(again.entity_id, auth.entity_id);
        assert_ne!(again.client_token, auth.client_token);

        // Phase 5: neither the password nor any token appears in storage; users and
        // identity replicate, tokens and leases do not.
        for secret in [
            "foo-s3cret",
            auth.client_token.as_str(),
            again.client_token.as_str(),
        ] {
            assert!(!f.storage_contains(secret), "{secret}");
        }
        for (key, _) in f.backend.dump() {
            let expected = if key.starts_with("sys/token/") || key.starts_with("sys/expire/") {
                KeyClass::Local
            } else {
                KeyClass::Replicated
            };
            assert_eq!(key_class(&key), expected, "{key}");
        }
    }

    #[tokio::test]
    async fn wrong_passwords_and_unknown_users_fail_alike() {
        let f = fixture(22);
        let backend = userpass(&f);
        backend
            .handle(&request(
                Operation::Create,
                "users/bob",
                json!({"password": "right"}),
            ))
            .await
            .unwrap();
        let invalid = Err(LogicalError::BadRequest(
            "invalid username or password".into(),
        ));
        assert_eq!(login(&backend, "bob", "wrong").await, invalid);
        assert_eq!(login(&backend, "alice", "right").await, invalid);
        assert_eq!(login(&backend, "-bad-name", "right").await, invalid);
        assert_eq!(
            login(&backend, "bob", &"x".repeat(PASSWORD_BYTES_MAX + 1)).await,
            invalid
        );
        assert_eq!(
            login(&backend, "bob", "").await,
            Err(LogicalError::BadRequest("missing password".into()))
        );
        assert_eq!(invalid.clone().unwrap_err().status(), 400);
    }

    #[tokio::test]
    async fn password_and_policy_updates_take_effect_at_the_next_login() {
        let f = fixture(23);
        let backend = userpass(&f);
        backend
            .handle(&request(
                Operation::Create,
                "users/carol",
                json!({"password": "one", "token_policies": ["dev"], "token_ttl": "1h", "token_max_ttl": "2h"}),
            ))
            .await
            .unwrap();
        let auth = login(&backend, "carol", "one").await.unwrap().auth.unwrap();
        assert_eq!(auth.lease_duration, 3600);

        // Change the password: the old one stops working.
        backend
            .handle(&request(
                Operation::Update,
                "users/carol/password",
                json!({"password": "two"}),
            ))
            .await
            .unwrap();
        assert!(login(&backend, "carol", "one").await.is_err());
        assert!(login(&backend, "carol", "two").await.is_ok());

        // Change the policies (legacy field name): the next token carries them.
        backend
            .handle(&request(
                Operation::Update,
                "users/carol/policies",
                json!({"policies": "admin,ops"}),
            ))
            .await
            .unwrap();
        let auth = login(&backend, "carol", "two").await.unwrap().auth.unwrap();
        assert_eq!(auth.policies, vec!["admin", "default", "ops"]);

        // token_max_ttl caps renewals of the login token.
        let (entry, warnings) = f
            .expiration
            .renew_token(&auth.client_token, 3 * 3600, NOW + 1800)
            .await
            .unwrap();
        assert_eq!(entry.expire_time, Some(NOW + 7200));
        assert_eq!(warnings.len(), 1);

        // Renewal is refused once the user's policies change or the user is gone.
        let entry = f.tokens.lookup(&auth.client_token, NOW).unwrap().unwrap();
        assert_eq!(backend.check_renewal(&entry), Ok(()));
        backend
            .handle(&request(
                Operation::Update,
                "users/carol/policies",
                json!({"token_policies": ["admin"]}),
            ))
            .await
            .unwrap();
        assert_eq!(
            backend.check_renewal(&entry),
            Err(LogicalError::BadRequest(
                "policies have changed, not renewing".into()
            ))
        );

        // An update without a password keeps the old one.
        backend
            .handle(&request(
                Operation::Update,
                "users/carol",
                json!({"token_ttl": 60}),
            ))
            .await
            .unwrap();
        let auth = login(&backend, "carol", "two").await.unwrap().auth.unwrap();
        assert_eq!(auth.lease_duration, 60);
    }

    #[tokio::test]
    async fn users_list_delete_and_validation() {
        let f = fixture(24);
        let backend = userpass(&f);
        let list = request(Operation::List, "users", json!({}));
        assert_eq!(backend.handle(&list).await, Err(LogicalError::NotFound));
        for name in ["bob", "alice.b", "x_y-z"] {
            backend
                .handle(&request(
                    Operation::Create,
                    &format!("users/{name}"),
                    json!({"password": "p"}),
                ))
                .await
                .unwrap();
        }
        let keys = backend.handle(&list).await.unwrap().data.unwrap()["keys"].clone();
        assert_eq!(keys, json!(["alice.b", "bob", "x_y-z"]));

        for bad in ["-bob", ".bob", "bob.", "b/b", "bo b", ""] {
            let result = backend
                .handle(&request(
                    Operation::Create,
                    &format!("users/{bad}"),
                    json!({"password": "p"}),
                ))
                .await;
            assert!(result.is_err(), "{bad:?}");
        }
        assert_eq!(
            backend
                .handle(&request(Operation::Create, "users/dave", json!({})))
                .await,
            Err(LogicalError::BadRequest("missing password".into()))
        );
        assert!(
            backend
                .handle(&request(
                    Operation::Create,
                    "users/dave",
                    json!({"password": "p", "token_type": "batch"})
                ))
                .await
                .is_err()
        );

        backend
            .handle(&request(Operation::Delete, "users/bob", json!({})))
            .await
            .unwrap();
        assert!(login(&backend, "bob", "p").await.is_err());
        assert_eq!(
            backend
                .handle(&request(Operation::Read, "users/bob", json!({})))
                .await,
            Err(LogicalError::NotFound)
        );
    }
}
