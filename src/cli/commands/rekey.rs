//! `operator rekey`: replace the unseal keys given a quorum of the current ones
//! (`sys/rekey/init`, `/update`, and `/verify` with `-verify`), printing what Vault's
//! command prints, with Arca's name where Vault says its own.

use serde_json::{Value, json};

use super::super::args::{ParsedArgs, expect_positionals};
use super::super::client::{Client, Method};
use super::super::format::{HOPE_DELIMITER, table, wrap_at_length};
use super::super::{Context, Failure, OutputFormat, local, remote};
use super::catalog;

pub fn rekey(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator rekey", args)?;
    expect_positionals(&parsed, 0, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let target = parsed
        .value("target")
        .unwrap_or("barrier")
        .trim()
        .to_ascii_lowercase();
    match target.as_str() {
        "barrier" => {}
        // Recovery keys exist only with an auto-unseal seal, which Arca does not have.
        "recovery" | "hsm" => {
            return Err(Failure::Remote(
                "Error: recovery rekeying not supported".into(),
            ));
        }
        other => return Err(Failure::Local(format!("Unknown target: {other}"))),
    }
    let client = context.client(&parsed)?;
    let verify = parsed.flag("verify");
    if parsed.flag("backup-delete") {
        client
            .send(Method::Delete, "sys/rekey/backup", &[], None)
            .map_err(|error| remote("Error deleting rekey stored keys", error))?;
        context.print("Success! Delete stored keys (if they existed)");
        return Ok(0);
    }
    if parsed.flag("backup-retrieve") {
        let response = client
            .send(Method::Get, "sys/rekey/backup", &[], None)
            .map_err(|error| remote("Error retrieving rekey stored keys", error))?;
        let secret = response.secret().ok_or_else(|| {
            Failure::Remote("Error retrieving rekey stored keys: no backup".into())
        })?;
        context.output_secret(format, &secret);
        return Ok(0);
    }
    if parsed.flag("cancel") {
        let path = if verify {
            "sys/rekey/verify"
        } else {
            "sys/rekey/init"
        };
        client
            .send(Method::Delete, path, &[], None)
            .map_err(|error| remote("Error canceling rekey", error))?;
        context.print("Success! Canceled rekeying (if it was started)");
        return Ok(0);
    }
    if parsed.flag("init") {
        return init(context, &client, format, &parsed);
    }
    if parsed.flag("status") {
        return print_current_status(context, &client, format, verify);
    }
    provide(context, &client, format, &parsed, verify)
}

fn number(parsed: &ParsedArgs, name: &str, default: u64) -> Result<u64, Failure> {
    match parsed.value(name) {
        None => Ok(default),
        Some(text) => text.parse::<u64>().map_err(|_| {
            Failure::Usage(format!(
                "invalid value {text:?} for flag -{name}: parse error"
            ))
        }),
    }
}

fn init(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
    parsed: &ParsedArgs,
) -> Result<u8, Failure> {
    let pgp_keys: Vec<String> = parsed
        .value("pgp-keys")
        .map(|keys| {
            keys.split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut body = json!({
        "secret_shares": number(parsed, "key-shares", 5)?,
        "secret_threshold": number(parsed, "key-threshold", 3)?,
        "backup": parsed.flag("backup"),
        "require_verification": parsed.flag("verify"),
    });
    if !pgp_keys.is_empty() {
        body["pgp_keys"] = json!(pgp_keys);
    }
    let response = client
        .send(Method::Put, "sys/rekey/init", &[], Some(&body))
        .map_err(|error| remote("Error initializing rekey", error))?;
    if format == OutputFormat::Table && pgp_keys.is_empty() {
        context.print_error(&wrap_at_length(
            "WARNING! If you lose the keys after they are returned, there is no recovery. Consider canceling this operation and re-initializing with the -pgp-keys flag to protect the returned unseal keys along with -backup to allow recovery of the encrypted keys in case of emergency. You can delete the stored keys later using the -delete flag.",
        ));
        context.print("");
    }
    let status = response.body.unwrap_or(Value::Null);
    print_status(context, format, &status, false);
    Ok(0)
}

fn status_path(verify: bool) -> &'static str {
    if verify {
        "sys/rekey/verify"
    } else {
        "sys/rekey/init"
    }
}

fn print_current_status(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
    verify: bool,
) -> Result<u8, Failure> {
    let response = client
        .send(Method::Get, status_path(verify), &[], None)
        .map_err(|error| remote("Error reading rekey status", error))?;
    print_status(
        context,
        format,
        &response.body.unwrap_or(Value::Null),
        verify,
    );
    Ok(0)
}

fn provide(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
    parsed: &ParsedArgs,
    verify: bool,
) -> Result<u8, Failure> {
    let status = client
        .send(Method::Get, status_path(verify), &[], None)
        .map_err(|error| remote("Error getting rekey status", error))?
        .body
        .unwrap_or(Value::Null);
    if !status
        .get("started")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        context.print_error(&wrap_at_length(
            "No rekey is in progress. Start a rekey process by running \"arca operator rekey -init\".",
        ));
        return Ok(1);
    }
    let (key, nonce) = key_share_and_nonce(context, parsed, &status, "Rekey operation nonce")?;
    let update_path = if verify {
        "sys/rekey/verify"
    } else {
        "sys/rekey/update"
    };
    let body = json!({"key": key.as_str(), "nonce": nonce});
    let response = client
        .send(Method::Put, update_path, &[], Some(&body))
        .map_err(|error| remote("Error posting unseal key", error))?
        .body
        .unwrap_or(Value::Null);
    if !response
        .get("complete")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return print_current_status(context, client, format, verify);
    }
    if verify {
        context.print(&wrap_at_length(
            "Rekey verification successful. The rekey operation is complete and the new keys are now active.",
        ));
        return Ok(0);
    }
    print_unseal_keys(context, client, format, &status, &response)
}

/// Vault's `printStatus` for rekey: a Key/Value table, or the status as data.
fn print_status(context: &mut Context<'_>, format: OutputFormat, status: &Value, verify: bool) {
    if format != OutputFormat::Table {
        context.output_data(format, status);
        return;
    }
    let text = |key: &str| {
        status
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let number = |key: &str| status.get(key).and_then(Value::as_u64).unwrap_or(0);
    let flag = |key: &str| status.get(key).and_then(Value::as_bool).unwrap_or(false);
    let d = HOPE_DELIMITER;
    let mut rows = vec![format!("Key{d}Value")];
    if verify {
        rows.push(format!("Started{d}{}", flag("started")));
        rows.push(format!("New Shares{d}{}", number("n")));
        rows.push(format!("New Threshold{d}{}", number("t")));
        rows.push(format!("Verification Nonce{d}{}", text("nonce")));
        rows.push(format!(
            "Verification Progress{d}{}/{}",
            number("progress"),
            number("t")
        ));
    } else {
        rows.push(format!("Nonce{d}{}", text("nonce")));
        rows.push(format!("Started{d}{}", flag("started")));
        if flag("started") {
            let (progress, required) = (number("progress"), number("required"));
            if progress == required {
                rows.push(format!(
                    "Rekey Progress{d}{progress}/{required} (verification in progress)"
                ));
            } else {
                rows.push(format!("Rekey Progress{d}{progress}/{required}"));
            }
            rows.push(format!("New Shares{d}{}", number("n")));
            rows.push(format!("New Threshold{d}{}", number("t")));
            rows.push(format!(
                "Verification Required{d}{}",
                flag("verification_required")
            ));
            if !text("verification_nonce").is_empty() {
                rows.push(format!(
                    "Verification Nonce{d}{}",
                    text("verification_nonce")
                ));
            }
        }
    }
    context.print(&table(&rows, d));
}

/// Vault's `printUnsealKeys`: the new keys, the nonce, and what to do with them.
fn print_unseal_keys(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
    status: &Value,
    response: &Value,
) -> Result<u8, Failure> {
    if format != OutputFormat::Table {
        context.output_data(format, response);
        return Ok(0);
    }
    let strings = |key: &str| -> Vec<String> {
        response
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let keys = strings("keys");
    let keys_base64 = strings("keys_base64");
    context.print("");
    for (index, key) in keys.iter().enumerate() {
        let shown = if keys_base64.len() == keys.len() {
            &keys_base64[index]
        } else {
            key
        };
        context.print(&format!("Key {}: {shown}", index + 1));
    }
    context.print("");
    context.print(&format!(
        "Operation nonce: {}",
        response
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default()
    ));
    let shares = status.get("n").and_then(Value::as_u64).unwrap_or(0);
    let threshold = status.get("t").and_then(Value::as_u64).unwrap_or(0);
    let verification_required = status
        .get("verification_required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    context.print("");
    if !verification_required {
        context.print(&wrap_at_length(&format!(
            "Arca rekeyed with {shares} key shares and a key threshold of {threshold}. Please securely distribute the key shares printed above. When Arca is re-sealed, restarted, or stopped, you must supply at least {threshold} of these keys to unseal it before it can start servicing requests."
        )));
        return Ok(0);
    }
    context.print(&wrap_at_length(&format!(
        "Arca has created a new key, split into {shares} key shares and a key threshold of {threshold}. These will not be active until after verification is complete. Please securely distribute the key shares printed above. When Arca is re-sealed, restarted, or stopped, you must supply at least {threshold} of these keys to unseal it before it can start servicing requests."
    )));
    context.print("");
    context.print_error(&wrap_at_length(
        "Again, these key shares are _not_ valid until verification is performed. Do not lose or discard your current key shares until after verification is complete or you will be unable to unseal Arca. If you cancel the rekey process or seal Arca before verification is complete the new shares will be discarded and the current shares will remain valid.",
    ));
    context.print("");
    context.print_error(&wrap_at_length(
        "The current verification status, including initial nonce, is shown below.",
    ));
    context.print("");
    print_current_status(context, client, format, true)
}

/// The key share a `generate-root` or `rekey` update sends, and the nonce it goes with:
/// the share from the argument (`-` reads standard input) with `-nonce`, or, with no
/// argument, the attempt's own nonce (printed after `nonce_label`) and a hidden prompt.
pub(super) fn key_share_and_nonce(
    context: &mut Context<'_>,
    parsed: &ParsedArgs,
    status: &Value,
    nonce_label: &str,
) -> Result<(zeroize::Zeroizing<String>, String), Failure> {
    let flag_nonce = parsed.value("nonce").unwrap_or_default().to_string();
    let (key, nonce) = match parsed.positionals.first().map(String::as_str) {
        Some("-") => (local::read_stdin().map_err(Failure::Local)?, flag_nonce),
        Some(key) => (key.to_string(), flag_nonce),
        None => {
            context.may_prompt(parsed)?;
            let nonce = status
                .get("nonce")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            context.print(&format!("{nonce_label}: {nonce}"));
            let key = local::ask_secret("Unseal Key (will be hidden): ").map_err(Failure::Local)?;
            (key, nonce)
        }
    };
    let key = zeroize::Zeroizing::new(key.trim().to_string());
    if nonce.is_empty() {
        return Err(Failure::Local(
            "Missing nonce value: specify it via the -nonce flag".into(),
        ));
    }
    Ok((key, nonce))
}
