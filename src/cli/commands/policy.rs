//! `policy write|read|list|delete`, on `sys/policies/acl`.

use serde_json::{Value, json};

use super::super::args::expect_positionals;
use super::super::client::Method;
use super::super::local;
use super::super::{Context, Failure, OutputFormat, remote};
use super::catalog;
use super::logical::list_keys;

pub fn dispatch(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let Some((subcommand, rest)) = args.split_first() else {
        return Err(catalog::unknown("policy", None));
    };
    match subcommand.as_str() {
        "write" => write(context, rest),
        "read" => read(context, rest),
        "list" => list(context, rest),
        "delete" => delete(context, rest),
        "fmt" => fmt(context, rest),
        other => Err(catalog::unknown("policy", Some(other))),
    }
}

/// Policy names are stored lowercase by Vault; the CLI lowercases too.
fn policy_name(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn write(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("policy write", args)?;
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

/// The canonical layout of a policy's HCL, after checking it is a valid policy. JSON
/// policies are left as they are (Vault formats HCL only). Comments would be lost by
/// the formatter, so a policy with comments is refused rather than silently stripped.
pub fn formatted_policy(text: &str) -> Result<String, String> {
    crate::acl::Policy::parse_text("fmt", text).map_err(|error| error.to_string())?;
    if text.trim_start().starts_with('{') {
        return Ok(text.to_string());
    }
    let body = hcl::parse(text).map_err(|error| error.to_string())?;
    if has_comment(text) {
        return Err(
            "the policy has comments, which formatting would drop; the file is unchanged"
                .to_string(),
        );
    }
    // Arrays stay on one line, as Vault's formatter keeps `capabilities = [...]`.
    let mut formatter = hcl::format::Formatter::builder()
        .compact_arrays(true)
        .build_vec();
    hcl::format::Format::format_string(&body, &mut formatter).map_err(|error| error.to_string())
}

/// Whether HCL text holds a comment outside string literals.
fn has_comment(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    let mut previous = ' ';
    for character in text.chars() {
        if in_string {
            match (escaped, character) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else {
            match character {
                '"' => in_string = true,
                '#' => return true,
                '/' | '*' if previous == '/' => return true,
                _ => {}
            }
        }
        previous = character;
    }
    false
}

/// `policy fmt PATH`: rewrite a local policy file in canonical form.
fn fmt(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("policy fmt", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let path = &parsed.positionals[0];
    let text = local::read_file(path)
        .map_err(|why| Failure::Local(format!("Error opening policy file: {why}")))?;
    let formatted = formatted_policy(&text)
        .map_err(|why| Failure::Local(format!("Error parsing policy: {why}")))?;
    local::write_file(path, &formatted)
        .map_err(|why| Failure::Local(format!("Error writing formatted policy: {why}")))?;
    context.print(&format!("Success! Formatted policy: {path}"));
    Ok(0)
}

fn read(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("policy read", args)?;
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
        OutputFormat::Json | OutputFormat::Yaml => {
            context.output_data(format, &json!({"policy": rules}))
        }
        OutputFormat::Table => context.print(rules.trim_end_matches('\n')),
    }
    Ok(0)
}

fn list(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("policy list", args)?;
    expect_positionals(&parsed, 0, 0).map_err(Failure::Usage)?;
    let format = context.format(&parsed)?;
    let client = context.client(&parsed)?;
    let secret = client
        .list("sys/policies/acl")
        .map_err(|error| remote("Error listing policies", error))?;
    let names = secret.as_ref().and_then(list_keys).unwrap_or_default();
    match format {
        OutputFormat::Json | OutputFormat::Yaml => context.output_data(format, &names),
        OutputFormat::Table => {
            for name in &names {
                context.print(name);
            }
        }
    }
    Ok(0)
}

fn delete(context: &mut Context<'_>, args: &[String]) -> Result<u8, Failure> {
    let parsed = catalog::parse("policy delete", args)?;
    expect_positionals(&parsed, 1, 1).map_err(Failure::Usage)?;
    let name = policy_name(&parsed.positionals[0]);
    let client = context.client(&parsed)?;
    client
        .delete(&format!("sys/policies/acl/{name}"))
        .map_err(|error| remote(&format!("Error deleting {name}"), error))?;
    context.print(&format!("Success! Deleted policy: {name}"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_canonicalizes_valid_hcl_policies() {
        let formatted =
            formatted_policy("path   \"secret/*\" {capabilities=[\"read\",\"list\"]}\n").unwrap();
        assert_eq!(
            formatted,
            "path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"
        );
        assert_eq!(formatted_policy(&formatted).unwrap(), formatted);
    }

    #[test]
    fn fmt_refuses_what_it_cannot_keep_or_check() {
        assert!(formatted_policy("path \"a\" { capabilities = [\"bogus\"] }").is_err());
        assert!(formatted_policy("# keep me\npath \"a\" { capabilities = [\"read\"] }").is_err());
        assert!(formatted_policy("path \"a#b\" { capabilities = [\"read\"] }").is_ok());
        assert!(formatted_policy("path \"a\" {").is_err());
    }
}
