//! The `arca` command line: Vault's CLI conventions with `arca` in place of `vault`.
//!
//! Arguments are parsed Go-flag style ([`args`]); the server is reached through one small
//! HTTP module ([`client`]); everything printed is built by pure functions ([`format`],
//! [`secret`], [`seal_status`]) that reproduce Vault's exact text. Exit codes follow
//! Vault: 0 success, 1 local or usage error, 2 an error from the server.

pub mod args;
pub mod client;
mod commands;
pub mod complete;
pub mod data_args;
pub mod format;
pub mod help;
pub(crate) mod local;
pub mod seal_status;
pub mod secret;
pub mod yaml;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use self::args::{ParsedArgs, parse_go_bool};
use self::client::{Client, ClientConfig, OutputMode, RequestError};
use self::format::{go_json, warnings_block};
use self::secret::Secret;

/// Vault's client default; a dev server is reached with `ARCA_ADDR=http://...`.
const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";
const DEFAULT_RETRIES_MAX: u32 = 2;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a command did not succeed, which decides the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Wrong arguments or flags (exit 1).
    Usage(String),
    /// A local problem: a file, the terminal, a missing field (exit 1).
    Local(String),
    /// The server refused or could not be reached (exit 2).
    Remote(String),
    /// Not a failure: the request was printed instead of sent (`-output-curl-string`,
    /// `-output-policy`); the text goes to stdout and the exit code is 0, as in Vault.
    Described(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Local(_) => 1,
            Failure::Remote(_) => 2,
            Failure::Described(_) => 0,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Usage(message)
            | Failure::Local(message)
            | Failure::Remote(message)
            | Failure::Described(message) => message,
        }
    }
}

/// Wrap a request error with the command's own prefix, as Vault does
/// (`Error writing data to PATH: ...`).
pub fn remote(prefix: &str, error: RequestError) -> Failure {
    match error {
        RequestError::Described(text) => Failure::Described(text),
        error => Failure::Remote(format!("{prefix}: {error}")),
    }
}

/// Like [`remote`], for the few commands whose request errors Vault counts as local
/// (exit 1): reading the seal status, for one.
pub fn local_request(prefix: &str, error: RequestError) -> Failure {
    match error {
        RequestError::Described(text) => Failure::Described(text),
        error => Failure::Local(format!("{prefix}: {error}")),
    }
}

/// `-header key=value` values as header pairs. Vault refuses `X-Vault-*` names: the CLI
/// sets those itself and a second value would be ambiguous.
pub fn parse_headers(values: &[String]) -> Result<Vec<(String, String)>, Failure> {
    values
        .iter()
        .map(|pair| {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(Failure::Usage(format!(
                    "invalid value {pair:?} for flag -header: format must be key=value"
                )));
            };
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
            if !valid_name {
                return Err(Failure::Usage(format!(
                    "invalid value {pair:?} for flag -header: {name:?} is not a header name"
                )));
            }
            if name.to_ascii_lowercase().starts_with("x-vault-") {
                return Err(Failure::Usage(format!(
                    "invalid value {pair:?} for flag -header: headers starting with \"X-Vault-\" are set by the CLI itself"
                )));
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// The output format chosen with `-format` or `VAULT_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// What every command gets: the environment and the two output streams.
pub struct Context<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Context<'_> {
    /// The first of `names` set to a non-empty value (ARCA_ names come first).
    pub fn env_var(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|name| self.env.get(*name).filter(|value| !value.is_empty()))
            .cloned()
    }

    /// Whether the user may be asked for input: not with `-non-interactive`.
    pub fn may_prompt(&self, parsed: &ParsedArgs) -> Result<(), Failure> {
        if parsed.flag("non-interactive") {
            return Err(Failure::Usage(
                "Input is needed but -non-interactive was given: pass the value as an argument or on stdin (\"-\")".to_string(),
            ));
        }
        Ok(())
    }

    pub fn home(&self) -> Option<&str> {
        self.env.get("HOME").map(String::as_str)
    }

    pub fn print(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }

    pub fn print_error(&mut self, text: &str) {
        let _ = writeln!(self.err, "{text}");
    }

    pub fn format(&self, parsed: &ParsedArgs) -> Result<OutputFormat, Failure> {
        let chosen = parsed
            .value("format")
            .map(str::to_string)
            .or_else(|| self.env_var(&["ARCA_FORMAT", "VAULT_FORMAT"]))
            .unwrap_or_else(|| "table".to_string());
        match chosen.to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "json" => Ok(OutputFormat::Json),
            "yaml" | "yml" => Ok(OutputFormat::Yaml),
            other => Err(Failure::Usage(format!("Invalid output format: {other}"))),
        }
    }

    /// Build the HTTP client from the common flags and the environment.
    pub fn client(&self, parsed: &ParsedArgs) -> Result<Client, Failure> {
        let address = parsed
            .value("address")
            .map(str::to_string)
            .or_else(|| self.env_var(&["ARCA_ADDR", "VAULT_ADDR"]))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        let token = self
            .env_var(&["ARCA_TOKEN", "VAULT_TOKEN"])
            .or_else(|| local::read_token_helper(self.home()));
        let ca_cert_path = parsed
            .value("ca-cert")
            .map(str::to_string)
            .or_else(|| self.env_var(&["ARCA_CACERT", "VAULT_CACERT"]));
        let tls = self.client_tls(parsed, ca_cert_path.as_deref())?;
        let output_mode = if parsed.flag("output-curl-string") {
            OutputMode::CurlString
        } else if parsed.flag("output-policy") {
            OutputMode::Policy
        } else {
            OutputMode::Send
        };
        let retries_max = match self.env_var(&["ARCA_MAX_RETRIES", "VAULT_MAX_RETRIES"]) {
            Some(text) => text
                .parse::<u32>()
                .map_err(|_| Failure::Usage(format!("Invalid VAULT_MAX_RETRIES value {text:?}")))?,
            None => DEFAULT_RETRIES_MAX,
        };
        let timeout = match self.env_var(&["ARCA_CLIENT_TIMEOUT", "VAULT_CLIENT_TIMEOUT"]) {
            Some(text) => Duration::from_secs(
                crate::logical::parse_duration_text(&text)
                    .map_err(|why| Failure::Usage(format!("Invalid VAULT_CLIENT_TIMEOUT: {why}")))?
                    .max(1) as u64,
            ),
            None => DEFAULT_TIMEOUT,
        };
        Client::new(ClientConfig {
            address,
            token,
            namespace: parsed
                .value("namespace")
                .map(str::to_string)
                .or_else(|| self.env_var(&["ARCA_NAMESPACE", "VAULT_NAMESPACE"])),
            wrap_ttl: parsed
                .value("wrap-ttl")
                .map(str::to_string)
                .or_else(|| self.env_var(&["ARCA_WRAP_TTL", "VAULT_WRAP_TTL"])),
            tls,
            retries_max,
            timeout,
            headers: parse_headers(parsed.values("header"))?,
            output_mode,
            ca_cert_path,
        })
        .map_err(Failure::Local)
    }

    /// The TLS flags and variables, files read: `-ca-cert` wins over `-ca-path` (as in
    /// Vault), each flag over its variable, each `ARCA_` variable over its `VAULT_` one.
    fn client_tls(
        &self,
        parsed: &ParsedArgs,
        ca_cert_path: Option<&str>,
    ) -> Result<client::ClientTls, Failure> {
        let setting = |flag: &str, names: &[&str]| {
            parsed
                .value(flag)
                .map(str::to_string)
                .or_else(|| self.env_var(names))
        };
        let ca_certificates_pem = match ca_cert_path {
            Some(path) => vec![local::read_file_bytes(path).map_err(Failure::Local)?],
            None => match setting("ca-path", &["ARCA_CAPATH", "VAULT_CAPATH"]) {
                Some(dir) => local::read_pem_directory(&dir).map_err(Failure::Local)?,
                None => Vec::new(),
            },
        };
        let client_certificate = setting("client-cert", &["ARCA_CLIENT_CERT", "VAULT_CLIENT_CERT"]);
        let client_key = setting("client-key", &["ARCA_CLIENT_KEY", "VAULT_CLIENT_KEY"]);
        let (client_certificate_pem, client_key_pem) = match (client_certificate, client_key) {
            (Some(certificate), Some(key)) => (
                Some(local::read_file_bytes(&certificate).map_err(Failure::Local)?),
                Some(zeroize::Zeroizing::new(
                    local::read_file_bytes(&key).map_err(Failure::Local)?,
                )),
            ),
            (None, None) => (None, None),
            _ => {
                return Err(Failure::Usage(
                    "Both client cert and client key must be provided (-client-cert and -client-key, or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY)".to_string(),
                ));
            }
        };
        let skip_verify = parsed.flag("tls-skip-verify")
            || self
                .env_var(&["ARCA_SKIP_VERIFY", "VAULT_SKIP_VERIFY"])
                .and_then(|value| parse_go_bool(&value))
                .unwrap_or(false);
        Ok(client::ClientTls {
            ca_certificates_pem,
            client_certificate_pem,
            client_key_pem,
            server_name: setting(
                "tls-server-name",
                &["ARCA_TLS_SERVER_NAME", "VAULT_TLS_SERVER_NAME"],
            ),
            skip_verify,
        })
    }

    /// Vault's `OutputSecret`: warnings (stderr) then the table, or the JSON envelope.
    pub fn output_secret(&mut self, format: OutputFormat, secret: &Secret) {
        match format {
            OutputFormat::Json | OutputFormat::Yaml => self.output_data(format, secret),
            OutputFormat::Table => {
                if !secret.warnings().is_empty() {
                    let _ = write!(self.err, "{}", warnings_block(secret.warnings()));
                }
                if let Some(table) = secret.table() {
                    self.print(&table);
                }
            }
        }
    }

    /// Vault's `OutputData` for the structured formats: JSON indented like Go, or YAML.
    /// A table has no generic form; callers print their own and never pass it here.
    pub fn output_data<T: Serialize + ?Sized>(&mut self, format: OutputFormat, value: &T) {
        match format {
            OutputFormat::Yaml => self.print(yaml::to_yaml(value).trim_end()),
            OutputFormat::Json | OutputFormat::Table => self.print(&go_json(value)),
        }
    }

    /// Vault's `PrintRawField`: one value, with no trailing newline when piped.
    pub fn output_field(
        &mut self,
        format: OutputFormat,
        secret: &Secret,
        field: &str,
    ) -> Result<u8, Failure> {
        let Some(value) = secret.field(field) else {
            return Err(Failure::Local(format!(
                "Field \"{field}\" not present in secret"
            )));
        };
        match format {
            OutputFormat::Json | OutputFormat::Yaml => {
                let raw = secret
                    .data
                    .as_ref()
                    .and_then(|data| data.get(field))
                    .cloned()
                    .unwrap_or(serde_json::Value::String(value));
                self.output_data(format, &raw);
            }
            OutputFormat::Table => {
                if local::stdout_is_terminal() {
                    self.print(&value);
                } else {
                    let _ = write!(self.out, "{value}");
                }
            }
        }
        Ok(0)
    }
}

/// Run one `arca` invocation against the given environment and streams.
pub fn run(
    args: &[String],
    env: &BTreeMap<String, String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut context = Context { env, out, err };
    // The shell asks for completions by running us with its line in `COMP_LINE`.
    if let Some(line) = env.get("COMP_LINE") {
        let point = env.get("COMP_POINT").and_then(|point| point.parse().ok());
        for word in complete::completions(commands::catalog::CATALOG, line, point) {
            context.print(&word);
        }
        return 0;
    }
    match commands::dispatch(&mut context, args) {
        Ok(code) => code,
        Err(Failure::Described(text)) => {
            context.print(&text);
            0
        }
        Err(failure) => {
            context.print_error(failure.message());
            failure.exit_code()
        }
    }
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    if args.first().map(String::as_str) == Some("server") && !commands::asks_for_help(&args) {
        return match commands::server_args(&args[1..], &env) {
            Ok(server_args) => crate::server::launch(server_args),
            Err(failure) => {
                eprintln!("{}", failure.message());
                ExitCode::from(failure.exit_code())
            }
        };
    }
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    ExitCode::from(run(&args, &env, &mut out, &mut err))
}
