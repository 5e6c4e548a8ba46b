//! Command dispatch: the first argument picks the command, the rest is its own.

pub mod catalog;
mod cluster_info;
mod encryption_key;
mod generate_root;
mod kv;
mod lease;
mod logical;
mod login;
mod mounts;
mod operator;
mod policy;
mod rekey;
mod token;

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::args::expect_positionals;
use super::help::{command_help, deepest, main_help, unknown_subcommand};
use super::{Context, Failure};
use crate::server::ServerArgs;
use catalog::{CATALOG, COMMON_COMMANDS};

/// Vault exits 127 when it prints usage instead of running a command.
const USAGE_EXIT_CODE: u8 = 127;

/// Whether the arguments ask for help (`-h`, `-help`, `--help`) before any `--`.
pub fn asks_for_help(args: &[String]) -> bool {
    args.iter()
        .take_while(|arg| arg.as_str() != "--")
        .any(|arg| matches!(arg.as_str(), "-h" | "-help" | "--help"))
}

/// The help text for the deepest command the arguments name, or the main help.
pub fn help_for(args: &[String]) -> String {
    match deepest(CATALOG, args) {
        Some(doc) => command_help(CATALOG, doc),
        None => main_help(CATALOG, COMMON_COMMANDS),
    }
}

pub fn dispatch(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((command, rest)) = args.split_first() else {
        context.print_error(&main_help(CATALOG, COMMON_COMMANDS));
        return Ok(USAGE_EXIT_CODE);
    };
    if asks_for_help(args) {
        context.print(&help_for(args));
        return Ok(0);
    }
    match command.as_str() {
        "read" => logical::read(context, rest),
        "write" => logical::write(context, rest),
        "list" => logical::list(context, rest),
        "delete" => logical::delete(context, rest),
        "path-help" => logical::path_help(context, rest),
        "login" => login::login(context, rest),
        "status" => operator::status(context, rest),
        "operator" => operator::dispatch(context, rest),
        "policy" => policy::dispatch(context, rest),
        "secrets" => mounts::secrets(context, rest),
        "auth" => mounts::auth(context, rest),
        "kv" => kv::dispatch(context, rest),
        "unwrap" => logical::unwrap(context, rest),
        "print" => print(context, rest),
        "token" => token::dispatch(context, rest),
        "lease" => lease::dispatch(context, rest),
        "audit" => token::audit(context, rest),
        "version-history" => cluster_info::version_history(context, rest),
        "monitor" => cluster_info::monitor(context, rest),
        "server" => Err(Failure::Usage(
            "arca server runs only as the arca binary's own process".to_string(),
        )),
        "version" | "-v" | "-version" | "--version" => {
            context.print(&format!("Arca v{}", env!("CARGO_PKG_VERSION")));
            Ok(0)
        }
        "help" => {
            context.print(&help_for(rest));
            Ok(0)
        }
        "-autocomplete-install" | "--autocomplete-install" => autocomplete(context, true),
        "-autocomplete-uninstall" | "--autocomplete-uninstall" => autocomplete(context, false),
        other => {
            context.print_error(&format!(
                "{}\n\n{}",
                unknown_subcommand(CATALOG, "", other),
                main_help(CATALOG, COMMON_COMMANDS)
            ));
            Ok(USAGE_EXIT_CODE)
        }
    }
}

/// `-autocomplete-install` / `-autocomplete-uninstall`: edit the shells' rc files
/// under `$HOME` so they ask this binary for completions. Silent on success, as Vault.
fn autocomplete(context: &mut Context<'_>, install: bool) -> Result<u8, Failure> {
    let verb = if install {
        "installing"
    } else {
        "uninstalling"
    };
    let failure = |why: String| Failure::Local(format!("Error {verb} autocomplete: {why}"));
    let home = context
        .home()
        .ok_or_else(|| failure("HOME is not set".to_string()))?
        .to_string();
    let binary = std::env::current_exe()
        .map_err(|error| failure(format!("cannot find this binary: {error}")))?;
    let binary = binary.display().to_string();
    let result = if install {
        super::complete::install(&home, &binary)
    } else {
        super::complete::uninstall(&home, &binary)
    };
    result.map_err(failure)?;
    Ok(0)
}

/// `print token`: the token the CLI would send (environment first, then the helper).
fn print(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    match args.split_first() {
        Some((what, rest)) if what == "token" => {
            let parsed = catalog::parse("print token", rest)?;
            expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
            let token = context
                .env_var(&["ARCA_TOKEN", "VAULT_TOKEN"])
                .or_else(|| super::local::read_token_helper(context.home()))
                .unwrap_or_default();
            context.print(&token);
            Ok(0)
        }
        Some((other, _)) => Err(catalog::unknown("print", Some(other))),
        None => Err(catalog::unknown("print", None)),
    }
}

/// `arca server [-config=FILE] [-dev ...]` as [`ServerArgs`]; as in Vault, the dev
/// flags fall back to `VAULT_DEV_ROOT_TOKEN_ID` and `VAULT_DEV_LISTEN_ADDRESS` (the
/// `ARCA_` spellings win).
pub fn server_args(args: &[String], env: &BTreeMap<String, String>) -> Result<ServerArgs, Failure> {
    let parsed = catalog::parse("server", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let from_env = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|name| env.get(*name).filter(|value| !value.is_empty()))
            .cloned()
    };
    let server_args = ServerArgs {
        config_path: parsed.value("config").map(PathBuf::from),
        dev: parsed.flag("dev"),
        dev_root_token_id: parsed
            .value("dev-root-token-id")
            .map(str::to_string)
            .or_else(|| from_env(["ARCA_DEV_ROOT_TOKEN_ID", "VAULT_DEV_ROOT_TOKEN_ID"])),
        dev_listen_address: parsed
            .value("dev-listen-address")
            .map(str::to_string)
            .or_else(|| from_env(["ARCA_DEV_LISTEN_ADDRESS", "VAULT_DEV_LISTEN_ADDRESS"])),
        dev_tls: parsed.flag("dev-tls"),
        dev_tls_cert_dir: parsed.value("dev-tls-cert-dir").map(PathBuf::from),
        log_level: parsed
            .value("log-level")
            .map(str::to_string)
            .or_else(|| from_env(["ARCA_LOG_LEVEL", "VAULT_LOG_LEVEL"])),
        log_format: parsed
            .value("log-format")
            .map(str::to_string)
            .or_else(|| from_env(["ARCA_LOG_FORMAT", "VAULT_LOG_FORMAT"])),
    };
    // As in Vault, -dev-tls implies -dev.
    let server_args = ServerArgs {
        dev: server_args.dev || server_args.dev_tls,
        ..server_args
    };
    if server_args.config_path.is_none() && !server_args.dev {
        return Err(Failure::Usage(
            "No configuration files found. Please provide configurations with the -config flag. If you are supplying the name of a directory, please supply the file path instead.".to_string(),
        ));
    }
    Ok(server_args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn the_tutorial_server_line_becomes_server_args() {
        let no_env = BTreeMap::new();
        let args = server_args(
            &strings(&["-config=/vault/config/vault-server.hcl"]),
            &no_env,
        )
        .unwrap();
        assert_eq!(
            args.config_path,
            Some(PathBuf::from("/vault/config/vault-server.hcl"))
        );
        assert!(!args.dev);
        let dev = server_args(
            &strings(&["-dev", "-dev-root-token-id", "root", "-log-level=debug"]),
            &no_env,
        )
        .unwrap();
        assert!(dev.dev);
        assert_eq!(dev.dev_root_token_id.as_deref(), Some("root"));
        assert_eq!(dev.log_level.as_deref(), Some("debug"));
        let from_env: BTreeMap<String, String> =
            [("VAULT_LOG_FORMAT".to_string(), "json".to_string())].into();
        let dev = server_args(&strings(&["-dev"]), &from_env).unwrap();
        assert_eq!(dev.log_format.as_deref(), Some("json"));
    }

    #[test]
    fn dev_tls_implies_dev_and_keeps_its_directory() {
        let args = server_args(
            &strings(&["-dev-tls", "-dev-tls-cert-dir=/tmp/certs"]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(args.dev && args.dev_tls);
        assert_eq!(args.dev_tls_cert_dir, Some(PathBuf::from("/tmp/certs")));
    }

    #[test]
    fn a_server_without_config_is_a_usage_error() {
        let no_env = BTreeMap::new();
        assert!(matches!(server_args(&[], &no_env), Err(Failure::Usage(_))));
        assert!(matches!(
            server_args(&strings(&["-bogus"]), &no_env),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn dev_settings_fall_back_to_the_environment() {
        let env = BTreeMap::from([
            (
                "VAULT_DEV_ROOT_TOKEN_ID".to_string(),
                "vault-root".to_string(),
            ),
            (
                "ARCA_DEV_ROOT_TOKEN_ID".to_string(),
                "arca-root".to_string(),
            ),
            (
                "VAULT_DEV_LISTEN_ADDRESS".to_string(),
                "0.0.0.0:8200".to_string(),
            ),
        ]);
        let args = server_args(&strings(&["-dev"]), &env).unwrap();
        assert_eq!(args.dev_root_token_id.as_deref(), Some("arca-root"));
        assert_eq!(args.dev_listen_address.as_deref(), Some("0.0.0.0:8200"));
        let flag_wins = server_args(&strings(&["-dev", "-dev-root-token-id=flag"]), &env).unwrap();
        assert_eq!(flag_wins.dev_root_token_id.as_deref(), Some("flag"));
    }
}
