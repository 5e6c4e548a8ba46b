//! Parsing Vault ACL policies: HCL or JSON text (optionally base64-encoded, as the
//! `sys/policies/acl` API accepts) into a [`Policy`] whose rules cannot hold invalid
//! values.
//!
//! This is the boundary: after [`Policy::parse`] every pattern is normalised (leading
//! `/` stripped, a trailing `*` turned into a prefix flag), every capability is known,
//! every duration is in seconds and every parameter key is lowercased. Errors carry the
//! line of the offending HCL where the parser knows it.

use std::collections::BTreeMap;
use std::ops::Range;

use base64::Engine;
use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Body, Structure};
use serde_json::Value;

use super::capability::{Capability, CapabilitySet};
use crate::logical::parse_duration_seconds;

/// The longest policy text accepted, in bytes (after base64 decoding). Vault has no
/// policy-specific limit; real policies are a few kilobytes.
pub const POLICY_TEXT_BYTES_MAX: usize = 1024 * 1024;
/// The most `path` rules one policy may hold.
pub const PATHS_PER_POLICY_MAX: usize = 16_384;
/// The deepest nesting of brackets and braces accepted, so that neither parser can be
/// driven into deep recursion by hostile input.
pub const NESTING_DEPTH_MAX: usize = crate::util::HCL_NESTING_DEPTH_MAX;
/// The longest policy name accepted, in bytes.
pub const POLICY_NAME_BYTES_MAX: usize = 1024;

/// Why a policy text was refused. `Display` is Vault's `failed to parse policy: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The 1-based line of the offending text, when known (HCL only).
    pub line: Option<usize>,
    pub reason: String,
}

impl PolicyError {
    fn new(line: Option<usize>, reason: impl Into<String>) -> Self {
        Self {
            line,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(
                formatter,
                "failed to parse policy: line {line}: {}",
                self.reason
            ),
            None => write!(formatter, "failed to parse policy: {}", self.reason),
        }
    }
}

/// What a rule permits beyond its capabilities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    pub capabilities: CapabilitySet,
    /// 0 means unset.
    pub min_wrapping_ttl_seconds: i64,
    /// 0 means unset.
    pub max_wrapping_ttl_seconds: i64,
    /// Lowercased parameter name → allowed values (empty list: any value).
    pub allowed_parameters: BTreeMap<String, Vec<Value>>,
    /// Lowercased parameter name → denied values (empty list: any value).
    pub denied_parameters: BTreeMap<String, Vec<Value>>,
    pub required_parameters: Vec<String>,
}

/// One `path "..." { ... }` stanza, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRules {
    /// The pattern as written, without a leading `/` (templated rules are rendered from
    /// it when an ACL is built for an identity).
    pub pattern: String,
    /// The pattern as the ACL indexes it: no leading `/`; the trailing `*` removed when
    /// `is_prefix`; kept when the pattern also has `+` segments (Vault does the same).
    pub path: String,
    pub is_prefix: bool,
    pub has_segment_wildcards: bool,
    /// The pattern uses identity templating (`{{identity.entity.id}}`); such rules need
    /// the caller's entity and are skipped by an ACL built without one, as Vault skips
    /// them for tokens without an entity.
    pub templated: bool,
    pub permissions: Permissions,
}

/// A parsed ACL policy and the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Lowercased and trimmed, like Vault's `sanitizeName`.
    pub name: String,
    /// The policy text as stored and returned by `GET sys/policy/<name>` (base64 already
    /// decoded).
    pub raw: String,
    pub paths: Vec<PathRules>,
}

impl Policy {
    /// Parse `text` (HCL, JSON, or either base64-encoded) as the policy `name`.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_text(name, &decode_policy_text(text))
    }

    /// Parse text that is already plain HCL or JSON (a stored policy: base64 was decoded
    /// when it was written, so decoding again could change it).
    pub fn parse_text(name: &str, raw: &str) -> Result<Policy, PolicyError> {
        let name = sanitize_name(name);
        if name.len() > POLICY_NAME_BYTES_MAX {
            return Err(PolicyError::new(
                None,
                format!("policy name is longer than {POLICY_NAME_BYTES_MAX} bytes"),
            ));
        }
        let raw = raw.to_string();
        if raw.len() > POLICY_TEXT_BYTES_MAX {
            return Err(PolicyError::new(
                None,
                format!("policy text is longer than {POLICY_TEXT_BYTES_MAX} bytes"),
            ));
        }
        check_nesting(&raw)?;
        // Editors on some platforms save with a byte-order mark; neither parser wants it.
        let body = raw.strip_prefix('\u{feff}').unwrap_or(&raw);
        let rules = if body.trim_start().starts_with('{') {
            json_rules(body)?
        } else {
            hcl_rules(body)?
        };
        if rules.len() > PATHS_PER_POLICY_MAX {
            return Err(PolicyError::new(
                None,
                format!("policy has more than {PATHS_PER_POLICY_MAX} paths"),
            ));
        }
        let paths = rules
            .into_iter()
            .map(compile_rule)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { name, raw, paths })
    }

    /// The built-in `root` policy: no rules, but an ACL holding it allows everything.
    pub fn root() -> Policy {
        Policy {
            name: ROOT_POLICY_NAME.to_string(),
            raw: String::new(),
            paths: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.name == ROOT_POLICY_NAME
    }
}

/// The name of the built-in policy that allows everything.
pub const ROOT_POLICY_NAME: &str = "root";

/// Vault lowercases and trims policy names everywhere they enter.
pub fn sanitize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Vault tries standard base64 on every policy it is given and keeps the decoded text
/// when that works. Go's decoder skips `\r` and `\n`, so we do too; unlike Go we keep
/// the original when the decoded bytes are not UTF-8, since no parser could read them.
pub fn decode_policy_text(text: &str) -> String {
    let compact: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    if compact.is_empty() {
        return text.to_string();
    }
    match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_else(|_| text.to_string()),
        Err(_) => text.to_string(),
    }
}

/// Refuse input nested deeper than the HCL parser handles quickly (see
/// [`crate::util::HCL_NESTING_DEPTH_MAX`]).
fn check_nesting(text: &str) -> Result<(), PolicyError> {
    match crate::util::hcl_nesting_exceeded(text) {
        Some(offset) => Err(PolicyError::new(
            Some(line_of(text, offset)),
            format!("nesting deeper than {NESTING_DEPTH_MAX} levels"),
        )),
        None => Ok(()),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A value from either syntax, with the line it started on (HCL only).
#[derive(Debug, Clone)]
struct RawValue {
    line: Option<usize>,
    kind: RawKind,
}

#[derive(Debug, Clone)]
enum RawKind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<RawValue>),
    Object(Vec<(String, RawValue)>),
}

impl RawValue {
    fn to_json(&self) -> Value {
        match &self.kind {
            RawKind::Null => Value::Null,
            RawKind::Bool(value) => Value::Bool(*value),
            RawKind::Number(number) => Value::Number(number.clone()),
            RawKind::String(text) => Value::String(text.clone()),
            RawKind::Array(items) => Value::Array(items.iter().map(RawValue::to_json).collect()),
            RawKind::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            RawKind::Null => "null",
            RawKind::Bool(_) => "a bool",
            RawKind::Number(_) => "a number",
            RawKind::String(_) => "a string",
            RawKind::Array(_) => "a list",
            RawKind::Object(_) => "an object",
        }
    }
}

/// One `path` stanza before validation.
struct RawRule {
    pattern: String,
    line: Option<usize>,
    fields: Vec<(String, RawValue)>,
}

fn hcl_rules(text: &str) -> Result<Vec<RawRule>, PolicyError> {
    // Vault's HCL 1 layout (several attributes in a one-line `path` block) is rewritten
    // in place for HCL 2; offsets are unchanged, so lines are counted in `text`.
    let layout = crate::hcl_layout::to_hcl2_layout(text);
    let body = hcl::edit::parser::parse_body(&layout).map_err(|error| {
        PolicyError::new(
            Some(line_of(text, error.location().offset())),
            error.message().to_string(),
        )
    })?;
    let mut rules = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => {
                let line = span_line(text, attribute.span());
                match attribute.key.as_str() {
                    "name" => {}
                    // HCL1's object form: `path = { "secret/*" = { ... } }`.
                    "path" => {
                        let value = hcl_value(text, &attribute.value)?;
                        rules.extend(rules_from_object(value, "path")?);
                    }
                    other => {
                        return Err(PolicyError::new(line, format!("invalid key {other:?}")));
                    }
                }
            }
            Structure::Block(block) => {
                let line = span_line(text, block.span());
                if block.ident.as_str() != "path" {
                    return Err(PolicyError::new(
                        line,
                        format!("invalid key {:?}", block.ident.as_str()),
                    ));
                }
                let [label] = block.labels.as_slice() else {
                    return Err(PolicyError::new(
                        line,
                        "a path block needs exactly one label, the path pattern",
                    ));
                };
                rules.push(RawRule {
                    pattern: label.as_str().to_string(),
                    line,
                    fields: hcl_body_fields(text, &block.body)?,
                });
            }
        }
    }
    Ok(rules)
}

/// The attributes of a body, with nested blocks (`allowed_parameters { ... }`, HCL1's
/// spelling of an object) turned into objects.
fn hcl_body_fields(text: &str, body: &Body) -> Result<Vec<(String, RawValue)>, PolicyError> {
    let mut fields = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => {
                fields.push((
                    attribute.key.as_str().to_string(),
                    hcl_value(text, &attribute.value)?,
                ));
            }
            Structure::Block(block) => {
                let line = span_line(text, block.span());
                let mut value = RawValue {
                    line,
                    kind: RawKind::Object(hcl_body_fields(text, &block.body)?),
                };
                for label in block.labels.iter().rev() {
                    value = RawValue {
                        line,
                        kind: RawKind::Object(vec![(label.as_str().to_string(), value)]),
                    };
                }
                fields.push((block.ident.as_str().to_string(), value));
            }
        }
    }
    Ok(fields)
}

fn span_line(text: &str, span: Option<Range<usize>>) -> Option<usize> {
    span.map(|range| line_of(text, range.start))
}

fn hcl_value(text: &str, expression: &Expression) -> Result<RawValue, PolicyError> {
    let line = span_line(text, expression.span());
    let kind = match expression {
        Expression::Null(_) => RawKind::Null,
        Expression::Bool(value) => RawKind::Bool(*value.value()),
        Expression::Number(number) => {
            let number = number.value();
            let json = if let Some(integer) = number.as_i64() {
                Some(serde_json::Number::from(integer))
            } else if let Some(integer) = number.as_u64() {
                Some(serde_json::Number::from(integer))
            } else {
                number.as_f64().and_then(serde_json::Number::from_f64)
            };
            match json {
                Some(json) => RawKind::Number(json),
                None => return Err(PolicyError::new(line, "invalid number")),
            }
        }
        Expression::String(value) => RawKind::String(value.value().to_string()),
        Expression::Array(array) => RawKind::Array(
            array
                .iter()
                .map(|item| hcl_value(text, item))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(object) => {
            let mut entries = Vec::new();
            for (key, value) in object.iter() {
                let key = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_string(),
                    ObjectKey::Expression(expression) => match hcl_value(text, expression)? {
                        RawValue {
                            kind: RawKind::String(key),
                            ..
                        } => key,
                        other => {
                            return Err(PolicyError::new(
                                other.line,
                                format!("object keys must be strings, not {}", other.kind_name()),
                            ));
                        }
                    },
                };
                entries.push((key, hcl_value(text, value.expr())?));
            }
            RawKind::Object(entries)
        }
        Expression::Parenthesis(inner) => return hcl_value(text, inner.inner()),
        Expression::HeredocTemplate(heredoc) => {
            let mut literal = String::new();
            for element in heredoc.template.iter() {
                match element {
                    hcl::edit::template::Element::Literal(part) => literal.push_str(part.value()),
                    _ => {
                        return Err(PolicyError::new(
                            line,
                            "template interpolation is not supported in policies",
                        ));
                    }
                }
            }
            RawKind::String(literal)
        }
        Expression::StringTemplate(_) => {
            return Err(PolicyError::new(
                line,
                "template interpolation is not supported in policies",
            ));
        }
        Expression::Variable(ident) => {
            return Err(PolicyError::new(
                line,
                format!(
                    "unexpected identifier {:?}; strings must be quoted",
                    ident.as_str()
                ),
            ));
        }
        _ => return Err(PolicyError::new(line, "unsupported expression")),
    };
    Ok(RawValue { line, kind })
}

/// `{"secret/*": {...}, ...}` (or a list of such objects) into rules.
fn rules_from_object(value: RawValue, key: &str) -> Result<Vec<RawRule>, PolicyError> {
    match value.kind {
        RawKind::Object(entries) => entries
            .into_iter()
            .map(|(pattern, rule)| {
                let line = rule.line;
                match rule.kind {
                    RawKind::Object(fields) => Ok(RawRule {
                        pattern,
                        line,
                        fields,
                    }),
                    other => Err(PolicyError::new(
                        line,
                        format!(
                            "path {pattern:?}: expected an object, not {}",
                            RawValue { line, kind: other }.kind_name()
                        ),
                    )),
                }
            })
            .collect(),
        RawKind::Array(items) => {
            let mut rules = Vec::new();
            for item in items {
                rules.extend(rules_from_object(item, key)?);
            }
            Ok(rules)
        }
        _ => Err(PolicyError::new(
            value.line,
            format!("{key:?} must be an object of path patterns"),
        )),
    }
}

fn json_rules(text: &str) -> Result<Vec<RawRule>, PolicyError> {
    let value: Value = serde_json::from_str(text).map_err(|error| {
        let line = (error.line() > 0).then_some(error.line());
        PolicyError::new(line, error.to_string())
    })?;
    let Value::Object(top) = value else {
        return Err(PolicyError::new(None, "does not contain a root object"));
    };
    let mut rules = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "name" => {}
            "path" => rules.extend(rules_from_object(raw_from_json(value), "path")?),
            other => return Err(PolicyError::new(None, format!("invalid key {other:?}"))),
        }
    }
    Ok(rules)
}

fn raw_from_json(value: Value) -> RawValue {
    let kind = match value {
        Value::Null => RawKind::Null,
        Value::Bool(value) => RawKind::Bool(value),
        Value::Number(number) => RawKind::Number(number),
        Value::String(text) => RawKind::String(text),
        Value::Array(items) => RawKind::Array(items.into_iter().map(raw_from_json).collect()),
        Value::Object(entries) => RawKind::Object(
            entries
                .into_iter()
                .map(|(key, value)| (key, raw_from_json(value)))
                .collect(),
        ),
    };
    RawValue { line: None, kind }
}

/// Keys Vault accepts in a path stanza. The Enterprise-only ones (`mfa_methods`,
/// `control_group`) and descriptive ones are accepted and ignored so that policies
/// written for Vault load unchanged.
const PATH_KEYS_IGNORED: [&str; 5] = [
    "comment",
    "description",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
];

fn compile_rule(raw: RawRule) -> Result<PathRules, PolicyError> {
    let RawRule {
        pattern,
        line,
        fields,
    } = raw;
    let error = |line: Option<usize>, reason: String| {
        PolicyError::new(line, format!("{reason} in path {pattern:?}"))
    };

    let written = pattern.strip_prefix('/').unwrap_or(&pattern).to_string();
    let templated = written.contains("{{");
    if templated && !templates_balanced(&written) {
        return Err(error(line, "invalid policy templating".to_string()));
    }
    let (path, is_prefix, has_segment_wildcards) =
        normalize_pattern(&written).map_err(|reason| error(line, reason.to_string()))?;

    let mut capability_names: Vec<(String, Option<usize>)> = Vec::new();
    let mut legacy_policy: Option<(String, Option<usize>)> = None;
    let mut permissions = Permissions::default();
    let mut allowed_parameters = None;
    let mut denied_parameters = None;
    let mut required_parameters = None;

    for (key, value) in fields {
        match key.as_str() {
            "capabilities" => {
                capability_names = string_list(&value, "capabilities")
                    .map_err(|reason| error(value.line, reason))?
            }
            "policy" => match &value.kind {
                RawKind::String(text) => legacy_policy = Some((text.clone(), value.line)),
                _ => return Err(error(value.line, "policy must be a string".to_string())),
            },
            "allowed_parameters" => allowed_parameters = Some(value),
            "denied_parameters" => denied_parameters = Some(value),
            "required_parameters" => required_parameters = Some(value),
            "min_wrapping_ttl" => {
                permissions.min_wrapping_ttl_seconds = duration(&value).map_err(|reason| {
                    error(
                        value.line,
                        format!("error parsing min_wrapping_ttl: {reason}"),
                    )
                })?
            }
            "max_wrapping_ttl" => {
                permissions.max_wrapping_ttl_seconds = duration(&value).map_err(|reason| {
                    error(
                        value.line,
                        format!("error parsing max_wrapping_ttl: {reason}"),
                    )
                })?
            }
            ignored if PATH_KEYS_IGNORED.contains(&ignored) => {}
            other => return Err(error(value.line, format!("invalid key {other:?}"))),
        }
    }

    // Legacy `policy = "..."` maps onto capabilities exactly as Vault maps it.
    if let Some((legacy, legacy_line)) = legacy_policy {
        let names: &[&str] = match legacy.as_str() {
            "deny" => &["deny"],
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            _ => return Err(error(legacy_line, format!("invalid policy {legacy:?}"))),
        };
        if legacy == "deny" {
            capability_names.clear();
        }
        capability_names.extend(names.iter().map(|name| (name.to_string(), legacy_line)));
    }

    for (name, name_line) in &capability_names {
        match Capability::parse(name) {
            // A deny ends the stanza: nothing else in it is even looked at (Vault's
            // `goto PathFinished`).
            Some(Capability::Deny) => {
                return Ok(PathRules {
                    pattern: written,
                    path,
                    is_prefix,
                    has_segment_wildcards,
                    templated,
                    permissions: Permissions {
                        capabilities: CapabilitySet::only(Capability::Deny),
                        ..Permissions::default()
                    },
                });
            }
            Some(capability) => permissions.capabilities.insert(capability),
            None => return Err(error(*name_line, format!("invalid capability {name:?}"))),
        }
    }

    if let Some(value) = allowed_parameters {
        permissions.allowed_parameters = parameter_map(&value, "allowed_parameters")
            .map_err(|reason| error(value.line, reason))?;
    }
    if let Some(value) = denied_parameters {
        permissions.denied_parameters = parameter_map(&value, "denied_parameters")
            .map_err(|reason| error(value.line, reason))?;
    }
    if permissions.min_wrapping_ttl_seconds != 0
        && permissions.max_wrapping_ttl_seconds != 0
        && permissions.max_wrapping_ttl_seconds < permissions.min_wrapping_ttl_seconds
    {
        return Err(error(
            line,
            "max_wrapping_ttl cannot be less than min_wrapping_ttl".to_string(),
        ));
    }
    if let Some(value) = required_parameters {
        let names = string_list(&value, "required_parameters")
            .map_err(|reason| error(value.line, reason))?;
        for (name, name_line) in &names {
            if name.contains('*') {
                return Err(error(
                    *name_line,
                    format!(
                        "required_parameters: parameter key {name:?}: wildcard is not permitted here"
                    ),
                ));
            }
        }
        permissions.required_parameters = names.into_iter().map(|(name, _)| name).collect();
    }

    Ok(PathRules {
        pattern: written,
        path,
        is_prefix,
        has_segment_wildcards,
        templated,
        permissions,
    })
}

/// A pattern as written (without its leading `/`) into the form the ACL indexes:
/// `(path, is_prefix, has_segment_wildcards)`. With `+` segments a trailing `*` stays in
/// the path, as in Vault.
pub fn normalize_pattern(pattern: &str) -> Result<(String, bool, bool), &'static str> {
    if pattern.contains("+*") {
        return Err("invalid use of wildcards ('+*' is forbidden)");
    }
    let has_segment_wildcards =
        pattern == "+" || pattern.contains("/+") || pattern.starts_with("+/");
    Ok(match pattern.strip_suffix('*') {
        Some(stripped) if !has_segment_wildcards => (stripped.to_string(), true, false),
        _ => (pattern.to_string(), false, has_segment_wildcards),
    })
}

/// Every `{{` is closed by a `}}` before the next `{{`.
fn templates_balanced(path: &str) -> bool {
    let mut rest = path;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return false;
        };
        if after[..close].contains("{{") || after[..close].trim().is_empty() {
            return false;
        }
        rest = &after[close + 2..];
    }
    !rest.contains("}}")
}

/// A list of strings (a lone string counts as a list of one, as HCL1 decodes it).
fn string_list(value: &RawValue, field: &str) -> Result<Vec<(String, Option<usize>)>, String> {
    let items: Vec<&RawValue> = match &value.kind {
        RawKind::Array(items) => items.iter().collect(),
        RawKind::String(_) => vec![value],
        _ => {
            return Err(format!(
                "{field} must be a list of strings, not {}",
                value.kind_name()
            ));
        }
    };
    items
        .into_iter()
        .map(|item| match &item.kind {
            RawKind::String(text) => Ok((text.clone(), item.line.or(value.line))),
            _ => Err(format!(
                "{field} must be a list of strings, found {}",
                item.kind_name()
            )),
        })
        .collect()
}

fn duration(value: &RawValue) -> Result<i64, String> {
    parse_duration_seconds(&value.to_json())
}

/// `{ "name" = [values...] }` with Vault's key rules: keys are lowercased, and a key
/// with `*` must be exactly `*` (or a `/pointer/*`).
fn parameter_map(value: &RawValue, field: &str) -> Result<BTreeMap<String, Vec<Value>>, String> {
    let RawKind::Object(entries) = &value.kind else {
        return Err(format!(
            "{field} must be an object, not {}",
            value.kind_name()
        ));
    };
    let mut parameters = BTreeMap::new();
    for (key, values) in entries {
        if key.contains('*') {
            let pointer_tail =
                key.starts_with('/') && key.ends_with("/*") && !key[..key.len() - 2].contains('*');
            if key != "*" && !pointer_tail {
                return Err(format!(
                    "{field}: parameter key {key:?} cannot contain non-tail wildcards"
                ));
            }
        }
        let list = match &values.kind {
            RawKind::Array(items) => items.iter().map(RawValue::to_json).collect(),
            _ => vec![values.to_json()],
        };
        parameters.insert(key.to_lowercase(), list);
    }
    Ok(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_policy_parses_into_normalised_rules() {
        let policy = Policy::parse(
            " SuperUser ",
            r#"
# The tutorial's superuser policy, plus the other shapes Vault accepts.
path "*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}
path "/secret/+/teamb" {
  capabilities = ["read"]
}
path "secret/+/logs*" {
  policy = "write"
}
path "secret/restricted" {
  capabilities = ["create"]
  allowed_parameters = {
    "Foo" = []
    "bar" = ["zip", "zap"]
  }
  denied_parameters = { "baz" = [] }
  required_parameters = ["bar"]
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = 90
}
path "secret/nothing" {
  capabilities = ["read", "deny", "bogus"]
}
"#,
        )
        .unwrap();
        assert_eq!(policy.name, "superuser");
        assert_eq!(policy.paths.len(), 5);

        let glob = &policy.paths[0];
        assert_eq!((glob.path.as_str(), glob.is_prefix), ("", true));
        assert!(glob.permissions.capabilities.contains(Capability::Sudo));

        let segment = &policy.paths[1];
        assert_eq!(segment.path, "secret/+/teamb");
        assert!(segment.has_segment_wildcards && !segment.is_prefix);

        // With a `+`, the trailing `*` stays in the pattern (Vault keeps it too).
        let segment_glob = &policy.paths[2];
        assert_eq!(segment_glob.path, "secret/+/logs*");
        assert!(!segment_glob.is_prefix);
        assert_eq!(
            segment_glob.permissions.capabilities.names_sorted(),
            vec!["create", "delete", "list", "read", "update"]
        );

        let restricted = &policy.paths[3].permissions;
        assert_eq!(restricted.allowed_parameters["foo"], Vec::<Value>::new());
        assert_eq!(restricted.allowed_parameters["bar"], vec!["zip", "zap"]);
        assert!(restricted.denied_parameters.contains_key("baz"));
        assert_eq!(restricted.required_parameters, vec!["bar"]);
        assert_eq!(restricted.min_wrapping_ttl_seconds, 1);
        assert_eq!(restricted.max_wrapping_ttl_seconds, 90);

        // Deny stops the stanza, so the bogus capability after it is never checked.
        assert_eq!(
            policy.paths[4].permissions.capabilities,
            CapabilitySet::only(Capability::Deny)
        );
    }

    #[test]
    fn json_and_base64_policies_parse_like_hcl() {
        let json = r#"{"path": {"secret/*": {"capabilities": ["read", "list"]}}}"#;
        let from_json = Policy::parse("p", json).unwrap();
        assert_eq!(from_json.paths[0].path, "secret/");
        assert!(from_json.paths[0].is_prefix);

        let hcl = "path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(hcl);
        let from_base64 = Policy::parse("p", &encoded).unwrap();
        assert_eq!(from_base64.raw, hcl, "the decoded text is what is stored");
        assert_eq!(from_base64.paths, from_json.paths);

        // HCL1's object spelling of the same policy.
        let object_form = "path = {\n  \"secret/*\" = { capabilities = [\"read\", \"list\"] }\n}\n";
        assert_eq!(
            Policy::parse("p", object_form).unwrap().paths,
            from_json.paths
        );

        let with_bom = format!("\u{feff}{hcl}");
        assert_eq!(
            Policy::parse("p", &with_bom).unwrap().paths,
            from_json.paths
        );

        let listed = r#"{"path": [{"a": {"policy": "read"}}, {"b": {"capabilities": []}}]}"#;
        assert_eq!(Policy::parse("p", listed).unwrap().paths.len(), 2);
    }

    #[test]
    fn one_line_path_blocks_parse_as_in_vault() {
        let written_out = Policy::parse(
            "p",
            "path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n\
             path \"secret/app\" {\n  capabilities = [\"create\"]\n  min_wrapping_ttl = \"1s\"\n  \
             allowed_parameters = { \"a\" = [], \"b\" = [\"x\"] }\n}\n",
        )
        .unwrap();
        // One attribute on one line is HCL 2 already; several are HCL 1, which Vault
        // reads, with or without commas between them.
        for one_line in [
            "path \"secret/*\" { capabilities = [\"read\", \"list\"] }\n\
             path \"secret/app\" { capabilities = [\"create\"] min_wrapping_ttl = \"1s\" allowed_parameters = { \"a\" = [], \"b\" = [\"x\"] } }\n",
            "path \"secret/*\" { capabilities = [\"read\", \"list\"] }\n\
             path \"secret/app\" { capabilities = [\"create\"], min_wrapping_ttl = \"1s\", allowed_parameters = { \"a\" = [], \"b\" = [\"x\"] } }\n",
        ] {
            let policy = Policy::parse("p", one_line).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(policy.paths, written_out.paths, "{one_line}");
        }

        // An error in a rewritten block names the line the author wrote.
        let text = "path \"a\" { capabilities = [\"read\"] }\npath \"b\" { capabilities = [\"read\"] policy = \"maybe\" }\n";
        let error = Policy::parse("p", text).unwrap_err();
        assert_eq!(error.line, Some(2), "{error}");
    }

    #[test]
    fn errors_name_the_line_and_the_reason() {
        let text = "path \"secret/*\" {\n  capabilities = [\"read\",\n    \"raed\"]\n}\n";
        let error = Policy::parse("p", text).unwrap_err();
        assert_eq!(error.line, Some(3));
        assert_eq!(
            error.to_string(),
            "failed to parse policy: line 3: invalid capability \"raed\" in path \"secret/*\""
        );

        let cases = [
            (
                "path \"a\" {\n  capabilitiez = [\"read\"]\n}",
                "invalid key \"capabilitiez\"",
            ),
            (
                "path \"a\" {\n  policy = \"maybe\"\n}",
                "invalid policy \"maybe\"",
            ),
            (
                "path \"a+*\" {\n  policy = \"read\"\n}",
                "'+*' is forbidden",
            ),
            ("pth \"a\" {}\n", "invalid key \"pth\""),
            (
                "path \"a\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"2m\"\n max_wrapping_ttl = \"1m\"\n}",
                "max_wrapping_ttl cannot be less than min_wrapping_ttl",
            ),
            (
                "path \"a\" {\n allowed_parameters = { \"a*b\" = [] }\n}",
                "cannot contain non-tail wildcards",
            ),
            (
                "path \"a\" {\n capabilities = read\n}",
                "strings must be quoted",
            ),
            ("path \"a\" {\n", ""),
            ("[1, 2", ""),
            (
                r#"{"path": {"a": {"capabilities": ["raed"]}}}"#,
                "invalid capability \"raed\"",
            ),
        ];
        for (text, reason) in cases {
            let error = Policy::parse("p", text).unwrap_err();
            assert!(
                error.to_string().starts_with("failed to parse policy: ")
                    && error.reason.contains(reason),
                "{text:?} gave {error}"
            );
        }
    }

    #[test]
    fn limits_are_enforced() {
        let deep = "[".repeat(NESTING_DEPTH_MAX + 1);
        assert!(
            Policy::parse("p", &format!("path \"a\" {{ capabilities = {deep} }}"))
                .unwrap_err()
                .reason
                .contains("nesting")
        );
        // Long operator chains have no brackets to count; they must fail, not crash.
        for unit in ["-", "!", "1 + ", "a ? b : ", "a.", "x[0]"] {
            let text = format!("path \"a\" {{ capabilities = {}1 }}", unit.repeat(50_000));
            assert!(Policy::parse("p", &text).is_err());
        }
        let huge = "#".repeat(POLICY_TEXT_BYTES_MAX + 1);
        assert!(
            Policy::parse("p", &huge)
                .unwrap_err()
                .reason
                .contains("longer")
        );
    }

    #[test]
    fn templated_paths_are_flagged() {
        let policy = Policy::parse(
            "p",
            "path \"identity/entity/id/{{identity.entity.id}}\" {\n capabilities = [\"read\"]\n}",
        )
        .unwrap();
        assert!(policy.paths[0].templated);
        assert!(Policy::parse("p", "path \"a/{{oops\" {\n policy = \"read\"\n}").is_err());
    }

    #[test]
    fn deeply_nested_text_is_refused_before_the_slow_parser_sees_it() {
        // The policy fuzz target found this input: 2.4 s in hcl-rs at depth 25.
        let slow = include_bytes!("../../fuzz/regressions/policy-slow-nesting.hcl");
        let text = String::from_utf8_lossy(slow);
        let error = Policy::parse("slow", &text).unwrap_err();
        assert!(error.to_string().contains("nesting deeper than"), "{error}");
    }
}
