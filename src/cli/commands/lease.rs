//! `lease lookup|renew|revoke`, on `sys/leases/*`.

use serde_json::{Map, Value, json};

use super::super::args::expect_positionals;
use super::super::format::wrap_at_length;
use super::super::{Context, Failure, remote};
use super::catalog;
use super::logical::output_response;

pub fn dispatch(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("lease", None));
    };
    match subcommand.as_str() {
        "lookup" => lookup(context, rest),
        "renew" => renew(context, rest),
        "revoke" => revoke(context, rest),
        other => Err(catalog::unknown("lease", Some(other))),
    }
}

fn lookup(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("lease lookup", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let lease_id = parsed.positionals[0].trim().to_string();
    let client = context.client(&parsed)?;
    let secret = client
        .write("sys/leases/lookup", Some(&json!({"lease_id": lease_id})))
        .map_err(|error| remote(&format!("error looking up lease id {lease_id}"), error))?
        .unwrap_or_default();
    output_response(context, format, &secret, None)
}

fn renew(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("lease renew", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let lease_id = parsed.positionals[0].trim().to_string();
    let mut body = Map::new();
    body.insert("lease_id".to_string(), json!(lease_id));
    if let Some(increment) = parsed.value("increment") {
        body.insert("increment".to_string(), json!(increment));
    }
    let client = context.client(&parsed)?;
    let secret = client
        .write("sys/leases/renew", Some(&Value::Object(body)))
        .map_err(|error| remote(&format!("Error renewing {lease_id}"), error))?
        .unwrap_or_default();
    output_response(context, format, &secret, None)
}

fn revoke(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("lease revoke", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let (force, prefix) = (parsed.flag("force"), parsed.flag("prefix"));
    if force && !prefix {
        return Err(Failure::Usage(
            "Specifying -force requires also specifying -prefix".to_string(),
        ));
    }
    let lease_id = parsed.positionals[0].trim().to_string();
    let client = context.client(&parsed)?;
    if force {
        context.print_error(&wrap_at_length(
            "Warning! Force-removing leases can cause Arca to become out of sync with secret engines!",
        ));
        client
            .write(&format!("sys/leases/revoke-force/{lease_id}"), None)
            .map_err(|error| {
                remote(
                    &format!("Error force revoking leases with prefix {lease_id}"),
                    error,
                )
            })?;
        context.print(&format!(
            "Success! Force revoked any leases with prefix: {lease_id}"
        ));
    } else if prefix {
        client
            .write(&format!("sys/leases/revoke-prefix/{lease_id}"), None)
            .map_err(|error| {
                remote(
                    &format!("Error revoking leases with prefix {lease_id}"),
                    error,
                )
            })?;
        context.print(&format!(
            "Success! Revoked any leases with prefix: {lease_id}"
        ));
    } else {
        client
            .write("sys/leases/revoke", Some(&json!({"lease_id": lease_id})))
            .map_err(|error| remote(&format!("Error revoking lease {lease_id}"), error))?;
        context.print(&format!("Success! Revoked lease: {lease_id}"));
    }
    Ok(0)
}
