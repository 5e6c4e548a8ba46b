//! `operator generate-root`: mint a new root token from a quorum of unseal keys
//! (`sys/generate-root/attempt` and `/update`), and decode the answer locally with the
//! OTP, as Vault's command does.

use serde_json::{Value, json};

use super::super::args::{ParsedArgs, expect_positionals};
use super::super::client::{Client, Method};
use super::super::format::{columnize, wrap_at_length};
use super::super::{Context, Failure, OutputFormat, local, remote};
use super::catalog;
use crate::env::SharedRng;
use crate::seal::generate_root::decode_token;

const ATTEMPT: &str = "sys/generate-root/attempt";
const UPDATE: &str = "sys/generate-root/update";

pub fn generate_root(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator generate-root", args)?;
    expect_positionals(&parsed, 0, 1).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    if parsed.flag("generate-otp") {
        return generate_otp(context, &client, format);
    }
    if let Some(encoded) = parsed.value("decode") {
        return decode(context, &client, format, encoded, parsed.value("otp"));
    }
    if parsed.flag("cancel") {
        client
            .send(Method::Delete, ATTEMPT, &[], None)
            .map_err(|error| remote("Error canceling root token generation", error))?;
        context.print("Success! Root token generation canceled (if it was started)");
        return Ok(0);
    }
    if parsed.flag("init") {
        return init(context, &client, format, &parsed);
    }
    if parsed.flag("status") {
        let status = status(&client)?;
        return Ok(print_status(context, format, &status));
    }
    provide(context, &client, format, &parsed)
}

fn status(client: &Client) -> Result<Value, Failure> {
    client
        .send(Method::Get, ATTEMPT, &[], None)
        .map_err(|error| remote("Error getting root generation status", error))
        .map(|response| response.body.unwrap_or(Value::Null))
}

fn otp_length(status: &Value) -> usize {
    status
        .get("otp_length")
        .and_then(Value::as_u64)
        .and_then(|length| usize::try_from(length).ok())
        .unwrap_or(0)
}

/// Vault's `PrintRaw`: the value alone, with no newline when piped into a script.
fn print_raw(context: &mut Context<'_>, text: &str) {
    if local::stdout_is_terminal() {
        context.print(text);
    } else {
        let _ = write!(context.out, "{text}");
    }
}

/// `-generate-otp`: an OTP as long as the server's tokens (from the CLI's own entropy:
/// the CLI is not server code and has no seam to answer to).
fn generate_otp(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
) -> Result<u8, Failure> {
    let status = status(client)?;
    let rng = SharedRng::from_entropy();
    let otp = match otp_length(&status) {
        0 => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(rng.bytes::<16>())
        }
        length => rng.base62(length),
    };
    match format {
        OutputFormat::Table => print_raw(context, &otp),
        _ => context.output_data(format, &json!({"otp": otp, "otp_length": otp.len()})),
    }
    Ok(0)
}

fn decode(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
    encoded: &str,
    otp: Option<&str>,
) -> Result<u8, Failure> {
    if encoded.is_empty() {
        return Err(Failure::Local(
            "Missing encoded value: use -decode=<string> to supply it".into(),
        ));
    }
    let Some(otp) = otp.filter(|otp| !otp.is_empty()) else {
        return Err(Failure::Local("Missing otp: use -otp to supply it".into()));
    };
    let status = status(client)?;
    let token = decode_token(encoded, otp, otp_length(&status)).map_err(|error| {
        // Vault capitalizes the first word of the helper's message here.
        let mut message = error;
        if let Some(first) = message.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        Failure::Local(message)
    })?;
    match format {
        OutputFormat::Table => print_raw(context, &token),
        _ => context.output_data(format, &json!({"token": token})),
    }
    Ok(0)
}

fn init(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
    parsed: &ParsedArgs,
) -> Result<u8, Failure> {
    let otp = parsed.value("otp").unwrap_or_default();
    let pgp_key = parsed.value("pgp-key").unwrap_or_default();
    if !otp.is_empty() && !pgp_key.is_empty() {
        return Err(Failure::Local(
            "Error initializing: cannot specify both -otp and -pgp-key".into(),
        ));
    }
    let body = json!({"otp": otp, "pgp_key": pgp_key});
    let response = client
        .send(Method::Put, ATTEMPT, &[], Some(&body))
        .map_err(|error| remote("Error initializing root generation", error))?;
    let status = response.body.unwrap_or(Value::Null);
    Ok(print_status(context, format, &status))
}

/// Give one unseal key: from the argument (the nonce from `-nonce`), stdin (`-`), or a
/// hidden prompt (the nonce from the attempt's status).
fn provide(
    context: &mut Context<'_>,
    client: &Client,
    format: OutputFormat,
    parsed: &ParsedArgs,
) -> Result<u8, Failure> {
    let status = status(client)?;
    if !status
        .get("started")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        context.print_error(&wrap_at_length(
            "No root generation is in progress. Start a root generation by running \"arca operator generate-root -init\".",
        ));
        context.print_error(&wrap_at_length(&format!(
            "If starting root generation using the OTP method and generating your own OTP, the length of the OTP string needs to be {} characters in length.",
            otp_length(&status)
        )));
        return Ok(1);
    }
    let (key, nonce) =
        super::rekey::key_share_and_nonce(context, parsed, &status, "Operation nonce")?;
    let body = json!({"key": key.as_str(), "nonce": nonce});
    let response = client
        .send(Method::Put, UPDATE, &[], Some(&body))
        .map_err(|error| remote("Error posting unseal key", error))?;
    let status = response.body.unwrap_or(Value::Null);
    Ok(print_status(context, format, &status))
}

/// Vault's `printStatus` for generate-root: a two-column list, or the status as data.
fn print_status(context: &mut Context<'_>, format: OutputFormat, status: &Value) -> u8 {
    if format != OutputFormat::Table {
        context.output_data(format, status);
        return 0;
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
    let mut rows = vec![
        format!("Nonce | {}", text("nonce")),
        format!("Started | {}", flag("started")),
        format!("Progress | {}/{}", number("progress"), number("required")),
        format!("Complete | {}", flag("complete")),
    ];
    if !text("pgp_fingerprint").is_empty() {
        rows.push(format!("PGP Fingerprint | {}", text("pgp_fingerprint")));
    }
    if !text("encoded_token").is_empty() {
        rows.push(format!("Encoded Token | {}", text("encoded_token")));
    } else if !text("encoded_root_token").is_empty() {
        rows.push(format!(
            "Encoded Root Token | {}",
            text("encoded_root_token")
        ));
    }
    if !text("otp").is_empty() {
        context.print_error(&wrap_at_length(
            "A One-Time-Password has been generated for you and is shown in the OTP field. You will need this value to decode the resulting root token, so keep it safe.",
        ));
        rows.push(format!("OTP | {}", text("otp")));
    }
    if number("otp_length") != 0 {
        rows.push(format!("OTP Length | {}", number("otp_length")));
    }
    context.print(&columnize(&rows, "|"));
    0
}
