//! `token create|lookup|renew|revoke` and `audit enable|disable|list`.

use serde_json::{Map, Value, json};

use super::super::args::{ParsedArgs, expect_positionals};
use super::super::client::Method;
use super::super::data_args::parse_data;
use super::super::format::table;
use super::super::local::LocalData;
use super::super::{Context, Failure, OutputFormat, remote};
use super::catalog;
use super::logical::output_response;

pub fn dispatch(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("token", None));
    };
    match subcommand.as_str() {
        "create" => create(context, rest),
        "lookup" => lookup(context, rest),
        "renew" => renew(context, rest),
        "revoke" => revoke(context, rest),
        "capabilities" => capabilities(context, rest),
        other => Err(catalog::unknown("token", Some(other))),
    }
}

/// The `auth/token/create` body from the flags.
pub fn create_body(parsed: &ParsedArgs) -> Result<Map<String, Value>, Failure> {
    let mut body = Map::new();
    let policies = parsed.values("policy");
    if !policies.is_empty() {
        let split: Vec<String> = policies
            .iter()
            .flat_map(|policy| policy.split(','))
            .map(|policy| policy.trim().to_string())
            .filter(|policy| !policy.is_empty())
            .collect();
        body.insert("policies".to_string(), json!(split));
    }
    for (flag, key) in [
        ("ttl", "ttl"),
        ("explicit-max-ttl", "explicit_max_ttl"),
        ("period", "period"),
        ("display-name", "display_name"),
        ("type", "type"),
        ("id", "id"),
    ] {
        if let Some(value) = parsed.value(flag) {
            body.insert(key.to_string(), json!(value));
        }
    }
    if let Some(uses) = parsed.value("use-limit") {
        let uses: u64 = uses
            .parse()
            .map_err(|_| Failure::Usage(format!("invalid value {uses:?} for flag -use-limit")))?;
        body.insert("num_uses".to_string(), json!(uses));
    }
    if let Some(renewable) = parsed.value("renewable") {
        let renewable = super::super::args::parse_go_bool(renewable).ok_or_else(|| {
            Failure::Usage(format!("invalid value {renewable:?} for flag -renewable"))
        })?;
        body.insert("renewable".to_string(), json!(renewable));
    }
    if parsed.flag("no-default-policy") {
        body.insert("no_default_policy".to_string(), json!(true));
    }
    let metadata = parse_data(parsed.values("metadata"), &mut LocalData)
        .map_err(|why| Failure::Usage(format!("Failed to parse -metadata: {why}")))?;
    if !metadata.is_empty() {
        body.insert("meta".to_string(), Value::Object(metadata));
    }
    Ok(body)
}

fn create(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("token create", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let body = create_body(&parsed)?;
    let path = match (parsed.value("role"), parsed.flag("orphan")) {
        (Some(role), _) => format!("auth/token/create/{role}"),
        (None, true) => "auth/token/create-orphan".to_string(),
        (None, false) => "auth/token/create".to_string(),
    };
    let client = context.client(&parsed)?;
    let secret = client
        .send(Method::Post, &path, &[], Some(&Value::Object(body)))
        .map_err(|error| remote("Error creating token", error))?
        .secret()
        .unwrap_or_default();
    output_response(context, format, &secret, parsed.value("field"))
}

fn lookup(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("token lookup", args)?;
    expect_positionals(&parsed, 0, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let response = match (parsed.positionals.first(), parsed.flag("accessor")) {
        (None, true) => {
            return Err(Failure::Usage(
                "Not enough arguments (expected 1, got 0)".to_string(),
            ));
        }
        (None, false) => client.send(Method::Get, "auth/token/lookup-self", &[], None),
        (Some(accessor), true) => client.send(
            Method::Post,
            "auth/token/lookup-accessor",
            &[],
            Some(&json!({"accessor": accessor})),
        ),
        (Some(token), false) => client.send(
            Method::Post,
            "auth/token/lookup",
            &[],
            Some(&json!({"token": token})),
        ),
    };
    let secret = response
        .map_err(|error| remote("Error looking up token", error))?
        .secret()
        .unwrap_or_default();
    output_response(context, format, &secret, parsed.value("field"))
}

fn renew(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("token renew", args)?;
    expect_positionals(&parsed, 0, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let mut body = Map::new();
    if let Some(increment) = parsed.value("increment") {
        body.insert("increment".to_string(), json!(increment));
    }
    let path = match parsed.positionals.first() {
        Some(token) => {
            body.insert("token".to_string(), json!(token));
            "auth/token/renew"
        }
        None => "auth/token/renew-self",
    };
    let client = context.client(&parsed)?;
    let secret = client
        .send(Method::Put, path, &[], Some(&Value::Object(body)))
        .map_err(|error| remote("Error renewing token", error))?
        .secret()
        .unwrap_or_default();
    output_response(context, format, &secret, parsed.value("field"))
}

fn revoke(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("token revoke", args)?;
    let revoke_self = parsed.flag("self");
    if revoke_self {
        expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    } else {
        expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    }
    let client = context.client(&parsed)?;
    let result = if revoke_self {
        client.send(Method::Put, "auth/token/revoke-self", &[], None)
    } else if parsed.flag("accessor") {
        client.send(
            Method::Put,
            "auth/token/revoke-accessor",
            &[],
            Some(&json!({"accessor": parsed.positionals[0]})),
        )
    } else {
        let path = if parsed.value("mode") == Some("orphan") {
            "auth/token/revoke-orphan"
        } else {
            "auth/token/revoke"
        };
        client.send(
            Method::Put,
            path,
            &[],
            Some(&json!({"token": parsed.positionals[0]})),
        )
    };
    result.map_err(|error| remote("Error revoking token", error))?;
    context.print("Success! Revoked token (if it existed)");
    Ok(0)
}

/// `token capabilities [TOKEN | -accessor ACCESSOR] PATH`: Vault prints the sorted
/// capabilities joined by ", " (JSON: the list).
fn capabilities(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("token capabilities", args)?;
    let by_accessor = parsed.flag("accessor");
    if by_accessor {
        expect_positionals(&parsed, 2, 2).map_err(Failure::Usage)?;
    } else {
        expect_positionals(&parsed, 1, 2).map_err(Failure::Usage)?;
    }
    let format = context.format(&parsed)?;
    let (subject, path) = match parsed.positionals.as_slice() {
        [path] => (None, path.clone()),
        [subject, path] => (Some(subject.clone()), path.clone()),
        _ => unreachable!("positionals were counted above"),
    };
    let (endpoint, body) = match (subject, by_accessor) {
        (None, _) => ("sys/capabilities-self", json!({"paths": [path]})),
        (Some(accessor), true) => (
            "sys/capabilities-accessor",
            json!({"accessor": accessor, "paths": [path]}),
        ),
        (Some(token), false) => ("sys/capabilities", json!({"token": token, "paths": [path]})),
    };
    let client = context.client(&parsed)?;
    let response = client
        .send(Method::Post, endpoint, &[], Some(&body))
        .map_err(|error| remote("Error listing capabilities", error))?;
    let capabilities = capabilities_for(response.body.as_ref(), &path);
    match format {
        OutputFormat::Table => context.print(&capabilities.join(", ")),
        _ => context.output_data(format, &capabilities),
    }
    Ok(0)
}

/// The capabilities on `path` from a `sys/capabilities*` answer: under `data`, keyed by
/// the path (current servers) or as `capabilities` (old ones); sorted, as Vault prints.
pub fn capabilities_for(body: Option<&Value>, path: &str) -> Vec<String> {
    let body = body.cloned().unwrap_or(Value::Null);
    let data = body.get("data").cloned().unwrap_or_else(|| body.clone());
    let list = data
        .get(path)
        .or_else(|| data.get("capabilities"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut capabilities: Vec<String> = list
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    capabilities.sort();
    capabilities
}

pub fn audit(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("audit", None));
    };
    match subcommand.as_str() {
        "enable" => audit_enable(context, rest),
        "disable" => audit_disable(context, rest),
        "list" => audit_list(context, rest),
        other => Err(catalog::unknown("audit", Some(other))),
    }
}

fn audit_enable(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("audit enable", args)?;
    expect_positionals(&parsed, 1, usize::MAX).map_err(Failure::Usage)?;
    let kind = parsed.positionals[0].trim().to_string();
    let path = format!(
        "{}/",
        parsed.value("path").unwrap_or(&kind).trim_matches('/')
    );
    let options = parse_data(&parsed.positionals[1..], &mut LocalData)
        .map_err(|why| Failure::Usage(format!("Failed to parse K=V data: {why}")))?;
    let body = json!({
        "type": kind,
        "description": parsed.value("description").unwrap_or_default(),
        "options": options,
        "local": parsed.flag("local"),
    });
    let client = context.client(&parsed)?;
    client
        .send(Method::Put, &format!("sys/audit/{path}"), &[], Some(&body))
        .map_err(|error| remote("Error enabling audit device", error))?;
    context.print(&format!(
        "Success! Enabled the {kind} audit device at: {path}"
    ));
    Ok(0)
}

fn audit_disable(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("audit disable", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let path = format!("{}/", parsed.positionals[0].trim().trim_matches('/'));
    let client = context.client(&parsed)?;
    client
        .delete(&format!("sys/audit/{path}"))
        .map_err(|error| remote("Error disabling audit device", error))?;
    context.print(&format!(
        "Success! Disabled audit device (if it was enabled) at: {path}"
    ));
    Ok(0)
}

/// `vault audit list`: `Path | Type | Description`.
pub fn audit_table(devices: &Map<String, Value>) -> String {
    let mut rows = vec!["Path | Type | Description".to_string()];
    for (path, device) in devices {
        let text = |key: &str| {
            device
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        rows.push(format!(
            "{path} | {} | {}",
            text("type"),
            text("description")
        ));
    }
    table(&rows, "|")
}

fn audit_list(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("audit list", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let response = client
        .send(Method::Get, "sys/audit", &[], None)
        .map_err(|error| remote("Error listing audits", error))?;
    let body = response.body.unwrap_or(Value::Null);
    let devices: Map<String, Value> = body
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| {
            body.as_object()
                .map(|object| {
                    object
                        .iter()
                        .filter(|(key, value)| key.ends_with('/') && value.is_object())
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect()
                })
                .unwrap_or_default()
        });
    if format != OutputFormat::Table {
        context.output_data(format, &devices);
        return Ok(0);
    }
    if devices.is_empty() {
        context.print("No audit devices are enabled.");
        return Ok(2);
    }
    context.print(&audit_table(&devices));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_flags_become_the_body() {
        let args: Vec<String> = [
            "-policy=a,b",
            "-policy=c",
            "-ttl=1h",
            "-use-limit=2",
            "-no-default-policy",
            "-metadata=team=x",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        let parsed = catalog::parse("token create", &args).unwrap();
        assert_eq!(
            Value::Object(create_body(&parsed).unwrap()),
            json!({"policies": ["a", "b", "c"], "ttl": "1h", "num_uses": 2, "no_default_policy": true, "meta": {"team": "x"}})
        );
    }

    #[test]
    fn capabilities_come_from_the_path_key_sorted() {
        let body =
            json!({"data": {"secret/foo": ["update", "read"], "capabilities": ["update", "read"]}});
        assert_eq!(
            capabilities_for(Some(&body), "secret/foo"),
            vec!["read", "update"]
        );
        let old = json!({"capabilities": ["deny"]});
        assert_eq!(capabilities_for(Some(&old), "x"), vec!["deny"]);
        assert!(capabilities_for(None, "x").is_empty());
    }

    #[test]
    fn audit_table_reads_like_vault() {
        let devices = json!({"file/": {"type": "file", "description": "", "options": {"file_path": "/tmp/a.log"}}});
        assert_eq!(
            audit_table(devices.as_object().unwrap()),
            "Path     Type    Description\n----     ----    -----------\nfile/    file    n/a"
        );
    }
}
