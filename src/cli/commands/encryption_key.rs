//! `operator key-status` and `operator rotate`: the barrier keyring's active key.

use serde::{Deserialize, Serialize};

use super::super::args::expect_positionals;
use super::super::client::{Client, Method};
use super::super::format::{HOPE_DELIMITER, columnize, rfc822_utc};
use super::super::{Context, Failure, OutputFormat, remote};
use super::catalog;

/// `sys/key-status`, in Vault's field order (also its JSON output).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    #[serde(default)]
    pub term: u64,
    #[serde(default)]
    pub install_time: String,
    #[serde(default)]
    pub encryptions: u64,
}

/// Vault's `printKeyStatus`: three rows, no header.
pub fn key_status_text(status: &KeyStatus) -> String {
    let install_time =
        rfc822_utc(&status.install_time).unwrap_or_else(|| status.install_time.clone());
    columnize(
        &[
            format!("Key Term{HOPE_DELIMITER}{}", status.term),
            format!("Install Time{HOPE_DELIMITER}{install_time}"),
            format!("Encryption Count{HOPE_DELIMITER}{}", status.encryptions),
        ],
        HOPE_DELIMITER,
    )
}

fn read_key_status(client: &Client) -> Result<KeyStatus, Failure> {
    let prefix = "Error reading key status";
    let response = client
        .send(Method::Get, "sys/key-status", &[], None)
        .map_err(|error| remote(prefix, error))?;
    let body = response.body.unwrap_or_default();
    // Current servers answer in the envelope's `data`; old ones at the top level.
    let status = body
        .get("data")
        .filter(|data| data.is_object())
        .unwrap_or(&body);
    serde_json::from_value(status.clone())
        .map_err(|error| Failure::Remote(format!("{prefix}: unexpected answer: {error}")))
}

fn print_key_status(context: &mut Context<'_>, format: OutputFormat, status: &KeyStatus) {
    match format {
        OutputFormat::Table => context.print(&key_status_text(status)),
        _ => context.output_data(format, status),
    }
}

pub fn key_status(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator key-status", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let status = read_key_status(&client)?;
    print_key_status(context, format, &status);
    Ok(0)
}

pub fn rotate(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("operator rotate", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    client
        .send(Method::Put, "sys/rotate", &[], None)
        .map_err(|error| remote("Error rotating key", error))?;
    let status = read_key_status(&client)?;
    if format == OutputFormat::Table {
        context.print("Success! Rotated key\n");
    }
    print_key_status(context, format, &status);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_status_prints_three_aligned_rows() {
        let status = KeyStatus {
            term: 2,
            install_time: "2017-01-01T12:30:00Z".to_string(),
            encryptions: 4494,
        };
        assert_eq!(
            key_status_text(&status),
            "Key Term            2\nInstall Time        01 Jan 17 12:30 UTC\nEncryption Count    4494"
        );
    }
}
