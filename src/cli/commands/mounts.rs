//! `secrets enable|disable|list|tune|move` and `auth enable|disable|list|tune|move`:
//! the mount tables at `sys/mounts` and `sys/auth`, and `sys/remount`.

use serde_json::{Map, Value, json};

use super::super::args::{ParsedArgs, expect_positionals};
use super::super::client::Method;
use super::super::format::table;
use super::super::{Context, Failure, OutputFormat, remote};
use super::catalog;

/// Which mount table a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Secrets,
    Auth,
}

impl Table {
    /// The command group (`secrets`, `auth`).
    fn command(self) -> &'static str {
        match self {
            Table::Secrets => "secrets",
            Table::Auth => "auth",
        }
    }

    fn api_path(self) -> &'static str {
        match self {
            Table::Secrets => "sys/mounts",
            Table::Auth => "sys/auth",
        }
    }

    /// What Vault's messages call one entry.
    fn thing(self) -> &'static str {
        match self {
            Table::Secrets => "secrets engine",
            Table::Auth => "auth method",
        }
    }
}

fn ensure_trailing_slash(path: &str) -> String {
    format!("{}/", path.trim().trim_matches('/'))
}

/// The mount `config` block from the tuning flags.
fn mount_config(parsed: &ParsedArgs) -> Map<String, Value> {
    let mut config = Map::new();
    for (flag, key) in [
        ("default-lease-ttl", "default_lease_ttl"),
        ("max-lease-ttl", "max_lease_ttl"),
        ("listing-visibility", "listing_visibility"),
    ] {
        if let Some(value) = parsed.value(flag) {
            config.insert(key.to_string(), json!(value));
        }
    }
    for (flag, key) in [
        ("audit-non-hmac-request-keys", "audit_non_hmac_request_keys"),
        (
            "audit-non-hmac-response-keys",
            "audit_non_hmac_response_keys",
        ),
        ("passthrough-request-headers", "passthrough_request_headers"),
    ] {
        let values = parsed.values(flag);
        if !values.is_empty() {
            config.insert(key.to_string(), json!(values));
        }
    }
    if parsed.flag("force-no-cache") {
        config.insert("force_no_cache".to_string(), json!(true));
    }
    config
}

/// `-options=k=v` (repeatable) and `-version=N` as the `options` map.
fn mount_options(parsed: &ParsedArgs) -> Result<Map<String, Value>, Failure> {
    let mut options = Map::new();
    for option in parsed.values("options") {
        let Some((key, value)) = option.split_once('=') else {
            return Err(Failure::Usage(format!(
                "invalid -options value {option:?}: format must be key=value"
            )));
        };
        options.insert(key.to_string(), json!(value));
    }
    if let Some(version) = parsed.value("version") {
        let number: u32 = version.parse().map_err(|_| {
            Failure::Usage(format!(
                "invalid value {version:?} for flag -version: parse error"
            ))
        })?;
        if number > 0 {
            options.insert("version".to_string(), json!(number.to_string()));
        }
    }
    Ok(options)
}

/// The mounts map of a `sys/mounts` or `sys/auth` answer (under `data` on current
/// servers, at the top level on old ones).
fn mounts_map(body: Option<Value>) -> Map<String, Value> {
    let Some(Value::Object(mut body)) = body else {
        return Map::new();
    };
    if let Some(Value::Object(data)) = body.remove("data") {
        return data;
    }
    body.into_iter()
        .filter(|(key, value)| key.ends_with('/') && value.is_object())
        .collect()
}

fn text(mount: &Value, key: &str) -> String {
    mount
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `vault secrets list`: `Path | Type | Accessor | Description`, sorted by path.
pub fn secrets_table(mounts: &Map<String, Value>) -> String {
    let mut rows = vec!["Path | Type | Accessor | Description".to_string()];
    for (path, mount) in mounts {
        rows.push(format!(
            "{path} | {} | {} | {}",
            text(mount, "type"),
            text(mount, "accessor"),
            text(mount, "description")
        ));
    }
    table(&rows, "|")
}

/// `vault auth list`: `Path | Type | Accessor | Description | Version`.
pub fn auth_table(mounts: &Map<String, Value>) -> String {
    let mut rows = vec!["Path | Type | Accessor | Description | Version".to_string()];
    for (path, mount) in mounts {
        rows.push(format!(
            "{path} | {} | {} | {} | {}",
            text(mount, "type"),
            text(mount, "accessor"),
            text(mount, "description"),
            text(mount, "plugin_version")
        ));
    }
    table(&rows, "|")
}

fn ttl_text(config: Option<&Value>, key: &str, system_default: bool) -> String {
    let seconds = config
        .and_then(|config| config.get(key))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if seconds == 0 {
        if system_default { "system" } else { "n/a" }.to_string()
    } else {
        super::super::format::human_duration(seconds)
    }
}

/// `vault secrets list -detailed`.
pub fn secrets_detailed_table(mounts: &Map<String, Value>) -> String {
    let mut rows = vec!["Path | Plugin | Accessor | Default TTL | Max TTL | Force No Cache | Replication | Seal Wrap | External Entropy Access | Options | Description | UUID | Version | Running Version | Running SHA256 | Deprecation Status".to_string()];
    for (path, mount) in mounts {
        let kind = text(mount, "type");
        let config = mount.get("config");
        let has_ttls = kind != "system" && kind != "cubbyhole" && kind != "identity";
        let flag = |key: &str| mount.get(key).and_then(Value::as_bool).unwrap_or(false);
        let options = mount
            .get("options")
            .filter(|options| !options.is_null())
            .map(super::super::format::go_value)
            .unwrap_or_default();
        rows.push(format!(
            "{path} | {kind} | {} | {} | {} | {} | {} | {} | {} | {options} | {} | {} | {} | {} | {} | {}",
            text(mount, "accessor"),
            ttl_text(config, "default_lease_ttl", has_ttls),
            ttl_text(config, "max_lease_ttl", has_ttls),
            config
                .and_then(|config| config.get("force_no_cache"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            if flag("local") { "local" } else { "replicated" },
            flag("seal_wrap"),
            flag("external_entropy_access"),
            text(mount, "description"),
            text(mount, "uuid"),
            text(mount, "plugin_version"),
            text(mount, "running_plugin_version"),
            text(mount, "running_sha256"),
            text(mount, "deprecation_status"),
        ));
    }
    table(&rows, "|")
}

pub fn secrets(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("secrets", None));
    };
    match subcommand.as_str() {
        "enable" => secrets_enable(context, rest),
        "disable" => disable(context, rest, Table::Secrets),
        "list" => list(context, rest, Table::Secrets),
        "tune" => tune(context, rest, Table::Secrets),
        "move" => move_mount(context, rest, Table::Secrets),
        other => Err(catalog::unknown("secrets", Some(other))),
    }
}

pub fn auth(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("auth", None));
    };
    match subcommand.as_str() {
        "enable" => auth_enable(context, rest),
        "disable" => disable(context, rest, Table::Auth),
        "list" => list(context, rest, Table::Auth),
        "tune" => tune(context, rest, Table::Auth),
        "move" => move_mount(context, rest, Table::Auth),
        "help" => auth_help(context, rest),
        other => Err(catalog::unknown("auth", Some(other))),
    }
}

fn enable_body(parsed: &ParsedArgs, kind: &str) -> Result<Value, Failure> {
    let mut body = Map::new();
    body.insert("type".to_string(), json!(kind));
    if let Some(description) = parsed.value("description") {
        body.insert("description".to_string(), json!(description));
    }
    body.insert("config".to_string(), Value::Object(mount_config(parsed)));
    if parsed.flag("local") {
        body.insert("local".to_string(), json!(true));
    }
    if parsed.flag("seal-wrap") {
        body.insert("seal_wrap".to_string(), json!(true));
    }
    if parsed.flag("external-entropy-access") {
        body.insert("external_entropy_access".to_string(), json!(true));
    }
    let options = mount_options(parsed)?;
    if !options.is_empty() {
        body.insert("options".to_string(), Value::Object(options));
    }
    Ok(Value::Object(body))
}

fn secrets_enable(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("secrets enable", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let kind = parsed.positionals[0].trim().to_string();
    let path = ensure_trailing_slash(parsed.value("path").unwrap_or(&kind));
    let body = enable_body(&parsed, &kind)?;
    let client = context.client(&parsed)?;
    client
        .send(
            Method::Post,
            &format!("sys/mounts/{path}"),
            &[],
            Some(&body),
        )
        .map_err(|error| remote("Error enabling", error))?;
    context.print(&format!(
        "Success! Enabled the {kind} secrets engine at: {path}"
    ));
    Ok(0)
}

fn auth_enable(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("auth enable", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let kind = parsed.positionals[0].trim().to_string();
    let path = ensure_trailing_slash(parsed.value("path").unwrap_or(&kind));
    let body = enable_body(&parsed, &kind)?;
    let client = context.client(&parsed)?;
    client
        .send(Method::Post, &format!("sys/auth/{path}"), &[], Some(&body))
        .map_err(|error| remote(&format!("Error enabling {kind} auth"), error))?;
    context.print(&format!("Success! Enabled {kind} auth method at: {path}"));
    Ok(0)
}

fn disable(context: &mut Context<'_>, args: &[String], kind: Table) -> Result<u8, Failure> {
    let parsed = catalog::parse(&format!("{} disable", kind.command()), args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let path = ensure_trailing_slash(&parsed.positionals[0]);
    let client = context.client(&parsed)?;
    let thing = kind.thing();
    client
        .delete(&format!("{}/{path}", kind.api_path()))
        .map_err(|error| remote(&format!("Error disabling {thing} at {path}"), error))?;
    context.print(&format!(
        "Success! Disabled the {thing} (if it existed) at: {path}"
    ));
    Ok(0)
}

/// How often `move` asks for the migration's status, and how many times at most. Vault
/// polls until a terminal status; a bound keeps a lost migration from hanging a script.
const MOVE_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
const MOVE_POLLS_MAX: usize = 600;

/// `secrets move SRC DST` / `auth move SRC DST`: `sys/remount`, then its status until
/// the migration ends, printing what Vault prints.
fn move_mount(context: &mut Context<'_>, args: &[String], kind: Table) -> Result<u8, Failure> {
    let parsed = catalog::parse(&format!("{} move", kind.command()), args)?;
    expect_positionals(&parsed, 2, 2).map_err(Failure::Usage)?;
    let client = context.client(&parsed)?;
    let prefix = match kind {
        Table::Secrets => "",
        Table::Auth => "auth/",
    };
    let source = format!("{prefix}{}", ensure_trailing_slash(&parsed.positionals[0]));
    let destination = format!("{prefix}{}", ensure_trailing_slash(&parsed.positionals[1]));
    let thing = kind.thing();
    let body = json!({"from": source, "to": destination});
    let response = client
        .send(Method::Post, "sys/remount", &[], Some(&body))
        .map_err(|error| {
            remote(
                &format!("Error moving {thing} {source} to {destination}"),
                error,
            )
        })?;
    let migration_id = response
        .body
        .as_ref()
        .and_then(|body| body.get("data")?.get("migration_id")?.as_str())
        .unwrap_or_default()
        .to_string();
    context.print(&format!(
        "Started moving {thing} {source} to {destination}, with migration ID {migration_id}"
    ));
    for _ in 0..MOVE_POLLS_MAX {
        let status = client
            .send(
                Method::Get,
                &format!("sys/remount/status/{migration_id}"),
                &[],
                None,
            )
            .map_err(|error| {
                remote(
                    &format!(
                        "Error checking migration status of {thing} {source} to {destination}"
                    ),
                    error,
                )
            })?;
        let state = status
            .body
            .as_ref()
            .and_then(|body| {
                body.get("data")?
                    .get("migration_info")?
                    .get("status")?
                    .as_str()
            })
            .unwrap_or_default()
            .to_string();
        match state.as_str() {
            "success" => {
                context.print(&format!(
                    "Success! Finished moving {thing} {source} to {destination}, with migration ID {migration_id}"
                ));
                return Ok(0);
            }
            "failure" => {
                // Vault reports a failed migration on stderr and still exits 0.
                context.print_error(&format!(
                    "Failure! Error encountered moving {thing} {source} to {destination}, with migration ID {migration_id}"
                ));
                return Ok(0);
            }
            _ => {
                context.print(&format!(
                    "Waiting for terminal status in migration of {thing} {source} to {destination}, with migration ID {migration_id}"
                ));
                std::thread::sleep(MOVE_POLL_INTERVAL);
            }
        }
    }
    Err(Failure::Remote(format!(
        "Error checking migration status of {thing} {source} to {destination}: no terminal status after {MOVE_POLLS_MAX} checks"
    )))
}

/// The login help of the auth methods the CLI can log in with, by type.
fn login_help(method_type: &str) -> Option<&'static str> {
    match method_type {
        "token" => Some(TOKEN_LOGIN_HELP),
        "userpass" => Some(USERPASS_LOGIN_HELP),
        _ => None,
    }
}

const TOKEN_LOGIN_HELP: &str = "Usage: arca login TOKEN [CONFIG K=V...]

  The token auth method logs in with a token you already hold: one made by
  \"arca token create\", by the API, or given by an operator. The token is
  looked up, then stored by the token helper unless -no-store is given.

  Log in with a token:

      $ arca login hvs.CAESIJ3k9...

  Be asked for the token (the input is hidden):

      $ arca login

Configuration:

  token=<string>
      The token to log in with. Usually given as the command's argument.";

const USERPASS_LOGIN_HELP: &str = "Usage: arca login -method=userpass [CONFIG K=V...]

  The userpass auth method logs users in with a username and password kept
  in Arca's own user store (auth/<path>/users/<name>).

  Log in as \"sally\", asked for the password (the input is hidden):

      $ arca login -method=userpass username=sally
      Password (will be hidden):

  Log in as \"bob\" with the password on the command line:

      $ arca login -method=userpass username=bob password=changeme

Configuration:

  password=<string>
      The user's password. Asked for when not given.

  username=<string>
      The user to log in as.";

/// `auth help TYPE|PATH`: the login help of a method type, or of the type of the
/// method enabled at PATH (asked of the server), as Vault's `auth help`.
fn auth_help(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("auth help", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let name = parsed.positionals[0].as_str();
    if let Some(help) = login_help(name) {
        context.print(help);
        return Ok(0);
    }
    let client = context.client(&parsed)?;
    let response = client
        .send(Method::Get, "sys/auth", &[], None)
        .map_err(|error| remote("Error listing auth methods", error))?;
    let mounts = mounts_map(response.body);
    let path = format!("{}/", name.trim_matches('/'));
    let Some(mount) = mounts.get(&path) else {
        context.print_error(&format!(
            "No auth method available on the server at \"{path}\""
        ));
        return Ok(1);
    };
    match login_help(&text(mount, "type")) {
        Some(help) => {
            context.print(help);
            Ok(0)
        }
        None => {
            context.print_error(&format!(
                "No method-specific CLI handler available for auth method \"{name}\""
            ));
            Ok(2)
        }
    }
}

fn list(context: &mut Context<'_>, args: &[String], kind: Table) -> Result<u8, Failure> {
    let parsed = catalog::parse(&format!("{} list", kind.command()), args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let prefix = match kind {
        Table::Auth => "Error listing enabled authentications",
        Table::Secrets => "Error listing secrets engines",
    };
    let response = client
        .send(Method::Get, kind.api_path(), &[], None)
        .map_err(|error| remote(prefix, error))?;
    let mounts = mounts_map(response.body);
    match format {
        OutputFormat::Json | OutputFormat::Yaml => context.output_data(format, &mounts),
        OutputFormat::Table => {
            let text = match (kind, parsed.flag("detailed")) {
                (Table::Auth, _) => auth_table(&mounts),
                (Table::Secrets, true) => secrets_detailed_table(&mounts),
                (Table::Secrets, false) => secrets_table(&mounts),
            };
            context.print(&text);
        }
    }
    Ok(0)
}

/// The body of `sys/mounts/PATH/tune` and `sys/auth/PATH/tune`: the config keys at the
/// top level, as Vault's `MountConfigInput`.
fn tune_body(parsed: &ParsedArgs) -> Result<Map<String, Value>, Failure> {
    let mut body = mount_config(parsed);
    if let Some(description) = parsed.value("description") {
        body.insert("description".to_string(), json!(description));
    }
    let options = mount_options(parsed)?;
    if !options.is_empty() {
        body.insert("options".to_string(), Value::Object(options));
    }
    Ok(body)
}

fn tune(context: &mut Context<'_>, args: &[String], kind: Table) -> Result<u8, Failure> {
    let parsed = catalog::parse(&format!("{} tune", kind.command()), args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let path = ensure_trailing_slash(&parsed.positionals[0]);
    let body = tune_body(&parsed)?;
    let client = context.client(&parsed)?;
    let thing = kind.thing();
    client
        .send(
            Method::Post,
            &format!("{}/{path}tune", kind.api_path()),
            &[],
            Some(&Value::Object(body)),
        )
        .map_err(|error| remote(&format!("Error tuning {thing} {path}"), error))?;
    context.print(&format!("Success! Tuned the {thing} at: {path}"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secondary_after_replication_lists_like_the_tutorial() {
        let body = json!({
            "request_id": "x",
            "cubbyhole/": {"type": "cubbyhole", "accessor": "cubbyhole_da096a10", "description": "per-token private secret storage"},
            "data": {
                "cubbyhole/": {"type": "cubbyhole", "accessor": "cubbyhole_da096a10", "description": "per-token private secret storage"},
                "identity/": {"type": "identity", "accessor": "identity_962587a4", "description": "identity store"},
                "replicatedkv/": {"type": "kv", "accessor": "kv_ec655082", "description": ""},
                "sys/": {"type": "system", "accessor": "system_e413f153", "description": "system endpoints used for control, policy and debugging"}
            }
        });
        let expected = "\
Path             Type         Accessor              Description
----             ----         --------              -----------
cubbyhole/       cubbyhole    cubbyhole_da096a10    per-token private secret storage
identity/        identity     identity_962587a4     identity store
replicatedkv/    kv           kv_ec655082           n/a
sys/             system       system_e413f153       system endpoints used for control, policy and debugging";
        assert_eq!(secrets_table(&mounts_map(Some(body))), expected);
    }

    #[test]
    fn kv_v2_keeps_its_name_and_version_flags_become_options() {
        let parsed = crate::cli::args::parse_args(
            &[
                "-path=localkv".to_string(),
                "-local".to_string(),
                "-version=2".to_string(),
                "kv".to_string(),
            ],
            &catalog::doc("secrets enable").flag_sets(),
        )
        .unwrap();
        let body = enable_body(&parsed, "kv").unwrap();
        assert_eq!(
            body,
            json!({"type": "kv", "config": {}, "local": true, "options": {"version": "2"}})
        );
        assert_eq!(ensure_trailing_slash("localkv"), "localkv/");
    }

    #[test]
    fn auth_table_has_a_version_column() {
        let mounts = mounts_map(Some(
            json!({"data": {"token/": {"type": "token", "accessor": "auth_token_bd90f507", "description": "token based credentials"}}}),
        ));
        assert_eq!(
            auth_table(&mounts),
            "Path      Type     Accessor               Description                Version\n----      ----     --------               -----------                -------\ntoken/    token    auth_token_bd90f507    token based credentials    n/a"
        );
    }
}
