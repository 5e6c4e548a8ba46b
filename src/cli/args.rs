//! Command-line arguments in Vault's Go-flag style, made a little more forgiving:
//! `-name=value`, `-name value`, `--name=value`, boolean `-f` / `-f=false`, and flags
//! accepted after positional arguments (`arca write PATH k=v -format=json`). A lone `-`
//! is a positional (it means standard input); `--` ends the flags.

use std::collections::BTreeMap;

pub use crate::util::parse_go_bool;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    Bool,
    Value,
}

/// One flag a command accepts: its names (the first is canonical), its kind, and what
/// `-h` says about it. The parser and the help text read the same value, so a flag
/// cannot be accepted without being documented, nor documented without being accepted.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub names: &'static [&'static str],
    pub kind: FlagKind,
    /// The placeholder in `-name=<example>` (`string`, `int`, `duration`, ...); empty for
    /// a boolean, which is shown as a bare `-name`.
    pub example: &'static str,
    /// What the command does without the flag, as help prints it; empty when there is
    /// nothing to say (an optional value with no default).
    pub default: &'static str,
    /// The environment variable that sets the flag when it is absent, if any.
    pub environment: &'static str,
    /// One or more sentences for `-h`.
    pub usage: &'static str,
}

impl FlagSpec {
    pub const fn example(self, example: &'static str) -> FlagSpec {
        FlagSpec { example, ..self }
    }

    pub const fn default_value(self, default: &'static str) -> FlagSpec {
        FlagSpec { default, ..self }
    }

    pub const fn environment(self, environment: &'static str) -> FlagSpec {
        FlagSpec {
            environment,
            ..self
        }
    }

    pub const fn usage(self, usage: &'static str) -> FlagSpec {
        FlagSpec { usage, ..self }
    }

    pub fn name(&self) -> &'static str {
        self.names[0]
    }
}

pub const fn value_flag(names: &'static [&'static str]) -> FlagSpec {
    FlagSpec {
        names,
        kind: FlagKind::Value,
        example: "string",
        default: "",
        environment: "",
        usage: "",
    }
}

pub const fn bool_flag(names: &'static [&'static str]) -> FlagSpec {
    FlagSpec {
        names,
        kind: FlagKind::Bool,
        example: "",
        default: "false",
        environment: "",
        usage: "",
    }
}

/// Flags shown together under one heading in `-h` ("HTTP Options", "Output Options", ...).
#[derive(Debug, Clone, Copy)]
pub struct FlagGroup {
    pub title: &'static str,
    pub flags: &'static [FlagSpec],
}

/// Flags every command that talks to a server accepts ("HTTP Options" in Vault's help).
pub const HTTP_FLAGS: &[FlagSpec] = &[
    value_flag(&["address"])
        .default_value("https://127.0.0.1:8200")
        .environment("VAULT_ADDR")
        .usage("Address of the Arca server."),
    value_flag(&["ca-cert"])
        .environment("VAULT_CACERT")
        .usage("Path on the local disk to a single PEM-encoded CA certificate to verify the server's SSL certificate. This takes precedence over -ca-path."),
    value_flag(&["ca-path"])
        .environment("VAULT_CAPATH")
        .usage("Path on the local disk to a directory of PEM-encoded CA certificates to verify the server's SSL certificate."),
    value_flag(&["client-cert"])
        .environment("VAULT_CLIENT_CERT")
        .usage("Path on the local disk to a single PEM-encoded certificate to use for TLS authentication to the Arca server. If this flag is specified, -client-key is also required."),
    value_flag(&["client-key"])
        .environment("VAULT_CLIENT_KEY")
        .usage("Path on the local disk to a single PEM-encoded private key matching the client certificate from -client-cert."),
    value_flag(&["header"])
        .example("key=value")
        .usage("Key-value pair provided as key=value to provide http header added to any request done by the CLI. Trying to add headers starting with 'X-Vault-' is forbidden and will make the command fail. This can be specified multiple times."),
    value_flag(&["namespace", "ns"])
        .environment("VAULT_NAMESPACE")
        .usage("The namespace to use for the command. Setting this is not necessary but allows using relative paths."),
    bool_flag(&["non-interactive"])
        .usage("When set true, prevents asking the user for input via the terminal."),
    bool_flag(&["output-curl-string"])
        .usage("Instead of executing the request, print an equivalent cURL command string and exit."),
    bool_flag(&["output-policy"])
        .usage("Instead of executing the request, print an example HCL policy that would be required to run this command, and exit."),
    value_flag(&["tls-server-name"])
        .environment("VAULT_TLS_SERVER_NAME")
        .usage("Name the server's certificate must carry, when it is not the host of the address."),
    bool_flag(&["tls-skip-verify"])
        .environment("VAULT_SKIP_VERIFY")
        .usage("Disable verification of TLS certificates. Using this option is highly discouraged as it decreases the security of data transmissions to and from the Arca server."),
    value_flag(&["wrap-ttl"])
        .example("duration")
        .environment("VAULT_WRAP_TTL")
        .usage("Wraps the response in a cubbyhole token with the requested TTL. The response is available via the \"arca unwrap\" command. The TTL is specified as a numeric string with suffix like \"30s\" or \"5m\"."),
];

/// `-format` ("Output Options" in Vault's help).
pub const FORMAT_FLAG: FlagSpec = value_flag(&["format"])
    .default_value("table")
    .environment("VAULT_FORMAT")
    .usage(
        "Print the output in the given format. Valid formats are \"table\", \"json\" or \"yaml\".",
    );

/// `-field`, for commands that print a secret.
pub const FIELD_FLAG: FlagSpec = value_flag(&["field"]).usage("Print only the field with the given name. Specifying this option will take precedence over other formatting directives. The result will not have a trailing newline making it ideal for piping to other processes.");

/// `-detailed`, for commands that list.
pub const DETAILED_FLAG: FlagSpec = bool_flag(&["detailed"])
    .usage("Print detailed information such as the keys' metadata alongside each entry.");

pub const OUTPUT_FLAGS: &[FlagSpec] = &[FORMAT_FLAG];
pub const OUTPUT_FIELD_FLAGS: &[FlagSpec] = &[FIELD_FLAG, FORMAT_FLAG];

/// The result of parsing: flag values by canonical name, and the positionals in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedArgs {
    values: BTreeMap<&'static str, Vec<String>>,
    pub positionals: Vec<String>,
}

impl ParsedArgs {
    /// The last value given for a value flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|values| values.last())
            .map(String::as_str)
    }

    /// Every value given for a repeatable flag, in order.
    pub fn values(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether a boolean flag is set (the last occurrence wins).
    pub fn flag(&self, name: &str) -> bool {
        self.value(name) == Some("true")
    }
}

/// Parse `args` against the flag sets given. Errors use Go's `flag` wording.
pub fn parse_args(args: &[String], flag_sets: &[&[FlagSpec]]) -> Result<ParsedArgs, String> {
    let lookup = |name: &str| -> Option<FlagSpec> {
        flag_sets
            .iter()
            .flat_map(|set| set.iter())
            .find(|spec| spec.names.contains(&name))
            .copied()
    };
    let mut parsed = ParsedArgs::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        index += 1;
        if arg == "--" {
            parsed.positionals.extend(args[index..].iter().cloned());
            break;
        }
        let Some(stripped) = arg.strip_prefix('-').filter(|rest| !rest.is_empty()) else {
            parsed.positionals.push(arg.clone());
            continue;
        };
        let stripped = stripped.strip_prefix('-').unwrap_or(stripped);
        let (name, inline_value) = match stripped.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (stripped, None),
        };
        if name.is_empty() || name.starts_with('-') {
            return Err(format!("bad flag syntax: {arg}"));
        }
        let Some(spec) = lookup(name) else {
            return Err(format!("flag provided but not defined: -{name}"));
        };
        let value = match (spec.kind, inline_value) {
            (FlagKind::Bool, None) => "true".to_string(),
            (FlagKind::Bool, Some(text)) => match parse_go_bool(&text) {
                Some(flag) => flag.to_string(),
                None => {
                    return Err(format!(
                        "invalid boolean value {text:?} for -{name}: parse error"
                    ));
                }
            },
            (FlagKind::Value, Some(text)) => text,
            (FlagKind::Value, None) => {
                let Some(next) = args.get(index) else {
                    return Err(format!("flag needs an argument: -{name}"));
                };
                index += 1;
                next.clone()
            }
        };
        parsed.values.entry(spec.names[0]).or_default().push(value);
    }
    Ok(parsed)
}

/// Vault's "Not enough arguments" / "Too many arguments" checks.
pub fn expect_positionals(
    parsed: &ParsedArgs,
    minimum: usize,
    maximum: usize,
) -> Result<(), String> {
    let count = parsed.positionals.len();
    if count < minimum {
        return Err(format!(
            "Not enough arguments (expected {minimum}, got {count})"
        ));
    }
    if count > maximum {
        return Err(format!(
            "Too many arguments (expected {maximum}, got {count})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE_FLAGS: &[FlagSpec] = &[bool_flag(&["force", "f"]), value_flag(&["field"])];

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    fn parse(items: &[&str]) -> Result<ParsedArgs, String> {
        parse_args(&strings(items), &[HTTP_FLAGS, OUTPUT_FLAGS, WRITE_FLAGS])
    }

    #[test]
    fn flags_may_follow_positionals() {
        let parsed = parse(&[
            "sys/replication/performance/primary/secondary-token",
            "id=secondary",
            "-format=json",
        ])
        .unwrap();
        assert_eq!(parsed.value("format"), Some("json"));
        assert_eq!(
            parsed.positionals,
            strings(&[
                "sys/replication/performance/primary/secondary-token",
                "id=secondary"
            ])
        );
    }

    #[test]
    fn every_flag_spelling() {
        let parsed = parse(&[
            "-address=http://127.0.0.1:8200",
            "--format",
            "json",
            "-f",
            "--field=token",
            "-ns",
            "team",
            "path",
        ])
        .unwrap();
        assert_eq!(parsed.value("address"), Some("http://127.0.0.1:8200"));
        assert_eq!(parsed.value("format"), Some("json"));
        assert!(parsed.flag("force"));
        assert_eq!(parsed.value("field"), Some("token"));
        assert_eq!(parsed.value("namespace"), Some("team"));
        assert_eq!(parsed.positionals, strings(&["path"]));
    }

    #[test]
    fn booleans_take_go_values_and_the_last_one_wins() {
        assert!(!parse(&["-force=false"]).unwrap().flag("force"));
        assert!(parse(&["-f=0", "-f=T"]).unwrap().flag("force"));
        assert_eq!(
            parse(&["-f=maybe"]).unwrap_err(),
            "invalid boolean value \"maybe\" for -f: parse error"
        );
    }

    #[test]
    fn dash_is_stdin_and_double_dash_ends_flags() {
        let parsed = parse(&["superpolicy", "-"]).unwrap();
        assert_eq!(parsed.positionals, strings(&["superpolicy", "-"]));
        let parsed = parse(&["--", "-f", "k=v"]).unwrap();
        assert!(!parsed.flag("force"));
        assert_eq!(parsed.positionals, strings(&["-f", "k=v"]));
    }

    #[test]
    fn key_value_pairs_stay_positional() {
        let parsed = parse(&[
            "auth/userpass/users/superuser",
            "password=-x=y",
            "policies=a,b",
        ])
        .unwrap();
        assert_eq!(parsed.positionals.len(), 3);
        assert_eq!(parsed.positionals[1], "password=-x=y");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_arguments_never_panic(args in proptest::collection::vec("(-{0,3})[a-z=\\-]{0,8}|\\PC{0,12}", 0..8)) {
            let _ = parse_args(&args, &[HTTP_FLAGS, OUTPUT_FLAGS, WRITE_FLAGS]);
        }
    }

    #[test]
    fn mistakes_read_like_go() {
        assert_eq!(
            parse(&["-bogus"]).unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            parse(&["-address"]).unwrap_err(),
            "flag needs an argument: -address"
        );
        assert_eq!(parse(&["---x"]).unwrap_err(), "bad flag syntax: ---x");
        let parsed = parse(&["a", "b"]).unwrap();
        assert_eq!(
            expect_positionals(&parsed, 1, 1).unwrap_err(),
            "Too many arguments (expected 1, got 2)"
        );
        assert_eq!(
            expect_positionals(&ParsedArgs::default(), 1, 1).unwrap_err(),
            "Not enough arguments (expected 1, got 0)"
        );
    }
}
