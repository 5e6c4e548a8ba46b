//! `policy write|read|list|delete`, on `sys/policies/acl`.

use serde_json::{Value, json};

use super::super::args::{HTTP_FLAGS, expect_positionals, parse_args};
use super::super::client::Method;
use super::super::local;
use super::super::{Context, Failure, OutputFormat, remote};
use super::logical::list_keys;

pub fn dispatch(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(Failure::Usage(
            "Usage: arca policy <subcommand> [options] [args]\n\nSubcommands: delete, list, read, write".to_string(),
        ));
    };
    match subcommand.as_str() {
        "write" => write(context, rest),
        "read" => read(context, rest),
        "list" => list(context, rest),
        "delete" => delete(context, rest),
        other => Err(Failure::Usage(format!(
            "Unknown policy subcommand: {other}"
        ))),
    }
}

/// Policy names are stored lowercase by Vault; the CLI lowercases too.
fn policy_name(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn write(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS]).map_err(Failure::Usage)?;
    expect_positionals(&parsed, 2, 2).map_err(Failure::Usage)?;
    let name = policy_name(&parsed.positionals[0]);
    let source = &parsed.positionals[1];
    let rules = if source == "-" {
        local::read_stdin()
            .map_err(|why| Failure::Local(format!("Error reading policy from stdin: {why}")))?
    } else {
        local::read_file(source)
            .map_err(|why| Failure::Local(format!("Error opening policy file: {why}")))?
    };
    let client = context.client(&parsed)?;
    client
        .send(
            Method::Put,
            &format!("sys/policies/acl/{name}"),
            &[],
            Some(&json!({"policy": rules})),
        )
        .map_err(|error| remote("Error uploading policy", error))?;
    context.print(&format!("Success! Uploaded policy: {name}"));
    Ok(0)
}

fn read(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS]).map_err(Failure::Usage)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let name = policy_name(&parsed.positionals[0]);
    let client = context.client(&parsed)?;
    let secret = client
        .read(&format!("sys/policies/acl/{name}"), &[])
        .map_err(|error| remote(&format!("Error reading policy named {name}"), error))?
        .ok_or_else(|| Failure::Remote(format!("No policy named: {name}")))?;
    let rules = secret
        .data
        .as_ref()
        .and_then(|data| data.get("policy").or_else(|| data.get("rules")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match format {
        OutputFormat::Json => context.output_json(&json!({"policy": rules})),
        OutputFormat::Table => context.print(rules.trim_end_matches('\n')),
    }
    Ok(0)
}

fn list(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS]).map_err(Failure::Usage)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let secret = client
        .list("sys/policies/acl")
        .map_err(|error| remote("Error listing policies", error))?;
    let names = secret.as_ref().and_then(list_keys).unwrap_or_default();
    match format {
        OutputFormat::Json => context.output_json(&names),
        OutputFormat::Table => {
            for name in &names {
                context.print(name);
            }
        }
    }
    Ok(0)
}

fn delete(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = parse_args(args, &[HTTP_FLAGS]).map_err(Failure::Usage)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let name = policy_name(&parsed.positionals[0]);
    let client = context.client(&parsed)?;
    client
        .delete(&format!("sys/policies/acl/{name}"))
        .map_err(|error| remote(&format!("Error deleting {name}"), error))?;
    context.print(&format!("Success! Deleted policy: {name}"));
    Ok(0)
}
