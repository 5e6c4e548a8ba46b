//! `secrets enable|disable|list|tune` and `auth enable|disable|list`: the mount tables
//! at `sys/mounts` and `sys/auth`.

use serde_json::{Map, Value, json};

use super::super::args::{
    FlagSpec, HTTP_FLAGS, ParsedArgs, bool_flag, expect_positionals, parse_args, value_flag,
};
use super::super::client::Method;
use super::super::format::table;
use super::super::{Context, Failure, OutputFormat, remote};

const ENABLE_FLAGS: &[FlagSpec] = &[
    value_flag(&["path"]),
    value_flag(&["description"]),
    value_flag(&["version"]),
    value_flag(&["default-lease-ttl"]),
    value_flag(&["max-lease-ttl"]),
    value_flag(&["options"]),
    value_flag(&["listing-visibility"]),
    value_flag(&["audit-non-hmac-request-keys"]),
    value_flag(&["audit-non-hmac-response-keys"]),
    value_flag(&["passthrough-request-headers"]),
    bool_flag(&["local"]),
    bool_flag(&["seal-wrap"]),
    bool_flag(&["force-no-cache"]),
    bool_flag(&["external-entropy-access"]),
];
const TUNE_FLAGS: &[FlagSpec] = &[
    value_flag(&["description"]),
    value_flag(&["default-lease-ttl"]),
    value_flag(&["max-lease-ttl"]),
    value_flag(&["options"]),
    value_flag(&["listing-visibility"]),
    value_flag(&["version"]),
];
const LIST_FLAGS: &[FlagSpec] = &[bool_flag(&["detailed"])];

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
        return Err(Failure::Usage(
            "Usage: arca secrets <subcommand> [options] [args]\n\nSubcommands: disable, enable, list, tune".to_string(),
        ));
    };
    match subcommand.as_str() {
        "enable" => secrets_enable(context, rest),
        "disable" => disable(context, rest, "sys/mounts", "secrets engine"),
        "list" => list(context, rest, "sys/mounts"),
        "tune" => secrets_tune(context, rest),
        other => Err(Failure::Usage(format!(
            "Unknown secrets subcommand: {other}"
        ))),
    }
}

pub fn auth(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(Failure::Usage(
            "Usage: arca auth <subcommand> [options] [args]\n\nSubcommands: disable, enable, list"
                .to_string(),
        ));
    };
    match subcommand.as_str() {
        "enable" => auth_enable(context, rest),
        "disable" => disable(context, rest, "sys/auth", "auth method"),
        "list" => list(context, rest, "sys/auth"),
        other => Err(Failure::Usage(format!("Unknown auth subcommand: {other}"))),
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
    let parsed = parse_args(args, &[HTTP_FLAGS, ENABLE_FLAGS]).map_err(Failure::Usage)?;
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
    let parsed = parse_args(args, &[HTTP_FLAGS, ENABLE_FLAGS]).map_err(Failure::Usage)?;
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

fn disable(
    context: &mut Context<'_>,
    args: &[String],
    table_path: &str,
    thing: &str,
) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS]).map_err(Failure::Usage)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let path = ensure_trailing_slash(&parsed.positionals[0]);
    let client = context.client(&parsed)?;
    client
        .delete(&format!("{table_path}/{path}"))
        .map_err(|error| remote(&format!("Error disabling {thing} at {path}"), error))?;
    context.print(&format!(
        "Success! Disabled the {thing} (if it existed) at: {path}"
    ));
    Ok(0)
}

fn list(context: &mut Context<'_>, args: &[String], table_path: &str) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS, LIST_FLAGS]).map_err(Failure::Usage)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let prefix = if table_path == "sys/auth" {
        "Error listing enabled authentications"
    } else {
        "Error listing secrets engines"
    };
    let response = client
        .send(Method::Get, table_path, &[], None)
        .map_err(|error| remote(prefix, error))?;
    let mounts = mounts_map(response.body);
    match format {
        OutputFormat::Json => context.output_json(&mounts),
        OutputFormat::Table => {
            let text = match (table_path, parsed.flag("detailed")) {
                ("sys/auth", _) => auth_table(&mounts),
                (_, true) => secrets_detailed_table(&mounts),
                (_, false) => secrets_table(&mounts),
            };
            context.print(&text);
        }
    }
    Ok(0)
}

fn secrets_tune(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS, TUNE_FLAGS]).map_err(Failure::Usage)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let path = ensure_trailing_slash(&parsed.positionals[0]);
    let mut body = mount_config(&parsed);
    if let Some(description) = parsed.value("description") {
        body.insert("description".to_string(), json!(description));
    }
    let options = mount_options(&parsed)?;
    if !options.is_empty() {
        body.insert("options".to_string(), Value::Object(options));
    }
    let client = context.client(&parsed)?;
    client
        .send(
            Method::Post,
            &format!("sys/mounts/{path}tune"),
            &[],
            Some(&Value::Object(body)),
        )
        .map_err(|error| remote(&format!("Error tuning secrets engine {path}"), error))?;
    context.print(&format!("Success! Tuned the secrets engine at: {path}"));
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
        let parsed = parse_args(
            &[
                "-path=localkv".to_string(),
                "-local".to_string(),
                "-version=2".to_string(),
                "kv".to_string(),
            ],
            &[HTTP_FLAGS, ENABLE_FLAGS],
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
