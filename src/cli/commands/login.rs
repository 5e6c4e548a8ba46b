//! `login`: a token (argument, `-`, piped or prompted) or `-method=userpass`; the token
//! goes into the token helper file.

use serde_json::{Value, json};

use super::super::client::Method;
use super::super::data_args::parse_data;
use super::super::format::wrap_at_length;
use super::super::local::{self, LocalData};
use super::super::secret::{Secret, SecretAuth};
use super::super::{Context, Failure, OutputFormat, remote};
use super::catalog;

pub const SUCCESS_TEXT: &str = "Success! You are now authenticated. The token information displayed below is already stored in the token helper. You do NOT need to run \"arca login\" again. Future Arca requests will automatically use this token.";
const NOT_STORED_TEXT: &str = "Success! The token was not stored in the token helper. Set the VAULT_TOKEN environment variable or pass the token below with each request to Vault.";
const TOKEN_ENV_WARNING: &str = "WARNING! The VAULT_TOKEN environment variable is set! The value of this variable will take precedence; if this is unwanted please unset VAULT_TOKEN or update its value accordingly.";

/// Turn a `lookup-self` answer into the auth block Vault's token login prints.
pub fn token_login_secret(token: &str, lookup: &Secret) -> Secret {
    let data = lookup.data.clone().unwrap_or_default();
    let strings = |key: &str| -> Vec<String> {
        data.get(key)
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
    let token_policies = strings("policies");
    let identity_policies = strings("identity_policies");
    let mut policies = token_policies.clone();
    policies.extend(identity_policies.iter().cloned());
    Secret {
        auth: Some(SecretAuth {
            client_token: token.to_string(),
            accessor: data
                .get("accessor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            policies,
            token_policies,
            identity_policies,
            metadata: data.get("meta").and_then(Value::as_object).cloned(),
            lease_duration: data.get("ttl").and_then(Value::as_i64).unwrap_or(0),
            renewable: data
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ..SecretAuth::default()
        }),
        ..Secret::default()
    }
}

pub fn login(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("login", args)?;
    let format = context.format(&parsed)?;
    let mut client = context.client(&parsed)?;
    let method = parsed.value("method").unwrap_or("token").to_string();
    let secret = match method.as_str() {
        "token" => {
            if parsed.positionals.len() > 1 {
                return Err(Failure::Usage(format!(
                    "Too many arguments (expected 1, got {})",
                    parsed.positionals.len()
                )));
            }
            let token = match parsed.positionals.first().map(String::as_str) {
                Some("-") => local::read_stdin().map_err(Failure::Local)?,
                Some(token) => token.to_string(),
                // Vault's token handler prompts on stderr (userpass and unseal on stdout).
                None => {
                    context.may_prompt(&parsed)?;
                    local::ask_secret_on_stderr("Token (will be hidden): ")
                        .map_err(Failure::Local)?
                }
            };
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(Failure::Usage(
                    "Error authenticating: no token provided".to_string(),
                ));
            }
            client.set_token(Some(token.clone()));
            let lookup = client
                .send(Method::Get, "auth/token/lookup-self", &[], None)
                .map_err(|error| remote("Error authenticating", error))?
                .secret()
                .unwrap_or_default();
            token_login_secret(&token, &lookup)
        }
        "userpass" | "ldap" | "radius" | "okta" => {
            let data = parse_data(&parsed.positionals, &mut LocalData)
                .map_err(|why| Failure::Usage(format!("Error parsing configuration: {why}")))?;
            let Some(username) = data.get("username").and_then(Value::as_str) else {
                return Err(Failure::Usage(
                    "Error authenticating: 'username' must be specified".to_string(),
                ));
            };
            let password = match data.get("password").and_then(Value::as_str) {
                Some(password) => password.to_string(),
                None => {
                    context.may_prompt(&parsed)?;
                    local::ask_secret("Password (will be hidden): ").map_err(Failure::Local)?
                }
            };
            // As Vault does: a stored token (perhaps from another cluster) is never sent
            // with a login to another method.
            client.set_token(None);
            let mount = parsed
                .value("path")
                .unwrap_or(&method)
                .trim_matches('/')
                .to_string();
            let path = format!("auth/{mount}/login/{username}");
            client
                .send(
                    Method::Put,
                    &path,
                    &[],
                    Some(&json!({"password": password})),
                )
                .map_err(|error| remote("Error authenticating", error))?
                .secret()
                .ok_or_else(|| {
                    Failure::Remote(
                        "Error authenticating: empty response from credential provider".to_string(),
                    )
                })?
        }
        other => {
            return Err(Failure::Usage(format!(
                "Unknown auth method: {other}. Use \"arca auth list\" to see the complete list of auth methods. Additionally, some auth methods are only available via the HTTP API."
            )));
        }
    };
    let Some(auth) = &secret.auth else {
        return Err(Failure::Remote(
            "Error authenticating: no auth information returned".to_string(),
        ));
    };
    let token = auth.client_token.clone();

    let no_store = parsed.flag("no-store");
    if !no_store {
        local::write_token_helper(context.home(), &token).map_err(Failure::Local)?;
        if context.env_var(&["ARCA_TOKEN", "VAULT_TOKEN"]).is_some() {
            context.print_error(&wrap_at_length(TOKEN_ENV_WARNING));
            context.print_error("");
        }
    }
    if parsed.flag("token-only") {
        return context.output_field(OutputFormat::Table, &secret, "token");
    }
    if parsed.flag("no-print") {
        return Ok(0);
    }
    if let Some(field) = parsed.value("field") {
        return context.output_field(format, &secret, field);
    }
    if format == OutputFormat::Table {
        let text = if no_store {
            NOT_STORED_TEXT
        } else {
            SUCCESS_TEXT
        };
        context.print(&format!("{}\n", wrap_at_length(text)));
    }
    context.output_secret(format, &secret);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_text_wraps_like_vault() {
        assert_eq!(
            wrap_at_length(SUCCESS_TEXT),
            "Success! You are now authenticated. The token information displayed below is\nalready stored in the token helper. You do NOT need to run \"arca login\" again.\nFuture Arca requests will automatically use this token."
        );
    }

    #[test]
    fn a_root_lookup_becomes_the_tutorial_table() {
        let lookup = Secret::from_body(&json!({
            "data": {
                "accessor": "VzzI18zBxpMBWUo1e3yruLFe", "policies": ["root"],
                "ttl": 0, "renewable": false, "meta": null, "display_name": "root"
            }
        }))
        .unwrap();
        let secret = token_login_secret("hvs.aQrUNCbqnwq3t4tw5K6UcrWF", &lookup);
        let table = secret.table().unwrap();
        assert!(table.contains("token_duration       ∞\ntoken_renewable      false\ntoken_policies       [\"root\"]\nidentity_policies    []\npolicies             [\"root\"]"), "{table}");
    }
}
