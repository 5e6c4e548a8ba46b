//! The ACL: a set of policies compiled into three indexes (exact paths, prefix paths,
//! `+`-segment paths) and Vault's rules for choosing the one rule that governs a path.
//!
//! Pure: [`Acl::new`] takes parsed policies, [`Acl::allowed`] takes an operation, a path
//! and the request data, and answers with an [`AclResult`]. Invariants kept:
//! - rules with the same pattern (and kind) from several policies are merged: their
//!   capabilities are unioned, and a `deny` in any of them leaves only `deny`;
//! - rules with different patterns never merge: exact beats everything, then the
//!   highest-priority non-exact match wins alone (see [`Acl::matching_rule`]);
//! - no rule matching means denied.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::capability::{Capability, CapabilitySet};
use super::policy::{Permissions, Policy, normalize_pattern};
use crate::logical::Operation;

/// The merged permissions of every rule sharing one pattern, and which policies
/// granted each capability.
#[derive(Debug, Clone, Default, PartialEq)]
struct MergedRule {
    permissions: Permissions,
    granting_policies: BTreeMap<Capability, Vec<String>>,
}

impl MergedRule {
    fn first(policy_name: &str, permissions: &Permissions) -> Self {
        let mut rule = MergedRule {
            permissions: permissions.clone(),
            granting_policies: BTreeMap::new(),
        };
        rule.add_granting(policy_name, permissions.capabilities);
        rule
    }

    fn add_granting(&mut self, policy_name: &str, capabilities: CapabilitySet) {
        for capability in capabilities.iter() {
            let names = self.granting_policies.entry(capability).or_default();
            if !names.iter().any(|name| name == policy_name) {
                names.push(policy_name.to_string());
            }
        }
    }

    /// Vault's merge of a second rule with the same pattern (`NewACL`).
    fn merge(&mut self, policy_name: &str, other: &Permissions) {
        let mine = &mut self.permissions;
        if mine.capabilities.is_deny() {
            return;
        }
        if other.capabilities.is_deny() {
            mine.capabilities = CapabilitySet::only(Capability::Deny);
            mine.allowed_parameters.clear();
            mine.denied_parameters.clear();
            self.add_granting(policy_name, other.capabilities);
            return;
        }
        mine.capabilities = mine.capabilities.union(other.capabilities);
        // The shorter of two wrapping bounds wins, to keep lifetimes minimal.
        if other.max_wrapping_ttl_seconds > 0
            && (mine.max_wrapping_ttl_seconds == 0
                || other.max_wrapping_ttl_seconds < mine.max_wrapping_ttl_seconds)
        {
            mine.max_wrapping_ttl_seconds = other.max_wrapping_ttl_seconds;
        }
        if other.min_wrapping_ttl_seconds > 0
            && (mine.min_wrapping_ttl_seconds == 0
                || other.min_wrapping_ttl_seconds < mine.min_wrapping_ttl_seconds)
        {
            mine.min_wrapping_ttl_seconds = other.min_wrapping_ttl_seconds;
        }
        merge_parameters(&mut mine.allowed_parameters, &other.allowed_parameters);
        merge_parameters(&mut mine.denied_parameters, &other.denied_parameters);
        for name in &other.required_parameters {
            if !mine.required_parameters.contains(name) {
                mine.required_parameters.push(name.clone());
            }
        }
        self.add_granting(policy_name, other.capabilities);
    }
}

/// An empty value list means "any value" and absorbs every other list for that key.
fn merge_parameters(mine: &mut BTreeMap<String, Vec<Value>>, other: &BTreeMap<String, Vec<Value>>) {
    for (key, values) in other {
        match mine.get_mut(key) {
            Some(existing) if existing.is_empty() => {}
            Some(existing) if values.is_empty() => existing.clear(),
            Some(existing) => existing.extend(values.iter().cloned()),
            None => {
                mine.insert(key.clone(), values.clone());
            }
        }
    }
}

/// The caller's identity, for rendering templated policy paths
/// (`{{identity.entity.id}}`, `{{identity.entity.name}}`,
/// `{{identity.entity.metadata.<key>}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateIdentity {
    pub entity_id: String,
    pub entity_name: String,
    pub entity_metadata: BTreeMap<String, String>,
}

impl TemplateIdentity {
    /// `pattern` with every template replaced, or `None` when one names something this
    /// identity does not have (Vault then skips the rule).
    fn render(&self, pattern: &str) -> Option<String> {
        let mut rendered = String::new();
        let mut rest = pattern;
        while let Some(open) = rest.find("{{") {
            rendered.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}")?;
            let key = after[..close].trim();
            let value = match key {
                "identity.entity.id" => self.entity_id.as_str(),
                "identity.entity.name" => self.entity_name.as_str(),
                _ => {
                    let metadata_key = key.strip_prefix("identity.entity.metadata.")?;
                    self.entity_metadata.get(metadata_key)?.as_str()
                }
            };
            if value.is_empty() {
                return None;
            }
            rendered.push_str(value);
            rest = &after[close + 2..];
        }
        rendered.push_str(rest);
        Some(rendered)
    }
}

/// Why an [`Acl`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No rule in any policy matches the path.
    NoMatchingRule,
    /// The governing rule says `deny`.
    ExplicitDeny,
    /// The governing rule lacks the capability the operation needs.
    MissingCapability(Capability),
    /// The rule bounds the response-wrapping TTL and the request is outside the bounds
    /// (or not wrapped at all).
    WrappingTtl,
    RequiredParameterMissing(String),
    ParameterDenied(String),
    ParameterNotAllowed(String),
}

impl std::fmt::Display for Denial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::NoMatchingRule => formatter.write_str("no policy grants access to this path"),
            Denial::ExplicitDeny => formatter.write_str("a policy explicitly denies this path"),
            Denial::MissingCapability(capability) => {
                write!(formatter, "missing the \"{capability}\" capability")
            }
            Denial::WrappingTtl => {
                formatter.write_str("response wrapping TTL is outside the bounds")
            }
            Denial::RequiredParameterMissing(name) => {
                write!(formatter, "required parameter {name:?} is missing")
            }
            Denial::ParameterDenied(name) => write!(formatter, "parameter {name:?} is denied"),
            Denial::ParameterNotAllowed(name) => {
                write!(formatter, "parameter {name:?} is not allowed")
            }
        }
    }
}

/// The answer to one authorization question (Vault's `ACLResults`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclResult {
    pub allowed: bool,
    /// The ACL holds the `root` policy.
    pub is_root: bool,
    /// The governing rule grants `sudo` (needed on root-protected paths).
    pub root_privs: bool,
    /// The capabilities of the governing rule.
    pub capabilities: CapabilitySet,
    /// The policies that granted the capability the operation needed.
    pub granting_policies: Vec<String>,
    /// Set exactly when `allowed` is false.
    pub denial: Option<Denial>,
}

impl AclResult {
    fn denied(mut self, denial: Denial) -> Self {
        self.allowed = false;
        self.denial = Some(denial);
        self
    }
}

/// A rule found by the non-exact search, with Vault's priority attributes.
struct Candidate<'a> {
    first_wildcard: usize,
    is_prefix: bool,
    wildcards: usize,
    pattern: &'a str,
    rule: &'a MergedRule,
}

impl Candidate<'_> {
    /// Higher is preferred: a later first wildcard, not a prefix, fewer `+` segments, a
    /// longer pattern, then (arbitrarily, as in Vault) the lexically greater one.
    fn priority(&self) -> (usize, bool, Reverse<usize>, usize, &str) {
        (
            self.first_wildcard,
            !self.is_prefix,
            Reverse(self.wildcards),
            self.pattern.len(),
            self.pattern,
        )
    }
}

/// Policies compiled for matching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acl {
    root: bool,
    exact_rules: BTreeMap<String, MergedRule>,
    prefix_rules: BTreeMap<String, MergedRule>,
    /// Patterns with `+` segments, keyed with any trailing `*` still attached.
    segment_wildcard_rules: BTreeMap<String, MergedRule>,
}

impl Acl {
    /// Compile `policies`. A policy named `root` makes the ACL allow everything.
    /// Templated rules are skipped: this ACL has no identity to render them with.
    pub fn new(policies: &[Policy]) -> Acl {
        Acl::with_identity(policies, None)
    }

    /// Compile `policies` for a caller with `identity`: templated rules are rendered
    /// with it, and a rule whose template cannot be rendered (no identity, or a field
    /// the identity lacks) is skipped, as Vault skips it.
    pub fn with_identity(policies: &[Policy], identity: Option<&TemplateIdentity>) -> Acl {
        let mut acl = Acl::default();
        for policy in policies {
            if policy.is_root() {
                acl.root = true;
            }
            for rule in &policy.paths {
                let (path, is_prefix, has_segment_wildcards) = if rule.templated {
                    let Some(rendered) = identity.and_then(|who| who.render(&rule.pattern)) else {
                        continue;
                    };
                    let Ok(normalized) = normalize_pattern(&rendered) else {
                        continue;
                    };
                    normalized
                } else {
                    (
                        rule.path.clone(),
                        rule.is_prefix,
                        rule.has_segment_wildcards,
                    )
                };
                let index = if has_segment_wildcards {
                    &mut acl.segment_wildcard_rules
                } else if is_prefix {
                    &mut acl.prefix_rules
                } else {
                    &mut acl.exact_rules
                };
                match index.get_mut(&path) {
                    Some(existing) => existing.merge(&policy.name, &rule.permissions),
                    None => {
                        index.insert(path, MergedRule::first(&policy.name, &rule.permissions));
                    }
                }
            }
        }
        acl
    }

    /// The ACL of a root token.
    pub fn root() -> Acl {
        Acl::new(&[Policy::root()])
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// What `sys/capabilities` reports for `path`: `["root"]` for root, `["deny"]` when
    /// nothing is granted, otherwise the granted names sorted alphabetically.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec!["root".to_string()];
        }
        // Vault asks as a list operation, so `foo/` also finds the rule for `foo`.
        let capabilities = self
            .matching_rule(Operation::List, path)
            .map(|rule| rule.permissions.capabilities)
            .unwrap_or_default();
        capabilities.names_sorted()
    }

    /// May `operation` on `path` with body `data` proceed? Wrapped requests use
    /// [`Acl::allowed_wrapped`]; here the request is taken as unwrapped.
    pub fn allowed(
        &self,
        operation: Operation,
        path: &str,
        data: &Map<String, Value>,
    ) -> AclResult {
        self.allowed_wrapped(operation, path, data, None)
    }

    /// [`Acl::allowed`] for a request whose response will be wrapped with this TTL.
    pub fn allowed_wrapped(
        &self,
        operation: Operation,
        path: &str,
        data: &Map<String, Value>,
        wrap_ttl_seconds: Option<i64>,
    ) -> AclResult {
        let _stage =
            tracing::trace_span!(target: crate::metrics::stages::TARGET, "arca.stage.acl.check")
                .entered();
        let mut result = AclResult::default();
        if self.root {
            result.allowed = true;
            result.is_root = true;
            result.root_privs = true;
            result.capabilities = Capability::ALL
                .into_iter()
                .filter(|capability| *capability != Capability::Deny)
                .collect();
            result.granting_policies = vec!["root".to_string()];
            return result;
        }
        let Some(rule) = self.matching_rule(operation, path) else {
            return result.denied(Denial::NoMatchingRule);
        };
        let permissions = &rule.permissions;
        result.capabilities = permissions.capabilities;
        result.root_privs = permissions.capabilities.contains(Capability::Sudo);
        if permissions.capabilities.is_deny() {
            return result.denied(Denial::ExplicitDeny);
        }
        let needed = Capability::for_operation(operation);
        if !permissions.capabilities.contains(needed) {
            return result.denied(Denial::MissingCapability(needed));
        }
        result.granting_policies = rule
            .granting_policies
            .get(&needed)
            .cloned()
            .unwrap_or_default();

        let ttl = wrap_ttl_seconds;
        let max = permissions.max_wrapping_ttl_seconds;
        let min = permissions.min_wrapping_ttl_seconds;
        if (max > 0 && ttl.is_none_or(|ttl| ttl > max))
            || (min > 0 && ttl.is_none_or(|ttl| ttl < min))
            || (min != 0 && max != 0 && max < min)
        {
            return result.denied(Denial::WrappingTtl);
        }

        // Only operations that carry parameters are checked against them.
        if matches!(
            operation,
            Operation::Read | Operation::Update | Operation::Create | Operation::Patch
        ) && let Err(denial) = check_parameters(permissions, data)
        {
            return result.denied(denial);
        }
        result.allowed = true;
        result
    }

    /// The one rule that governs `path` for `operation`, by Vault's search order:
    /// exact; for lists, exact without the trailing `/`; for lists, non-exact without
    /// the trailing `/`; then non-exact.
    fn matching_rule(&self, operation: Operation, path: &str) -> Option<&MergedRule> {
        let path = path.trim_start_matches('/');
        if let Some(rule) = self.exact_rules.get(path) {
            return Some(rule);
        }
        let is_list = operation == Operation::List;
        if is_list && let Some(rule) = self.exact_rules.get(path.trim_end_matches('/')) {
            return Some(rule);
        }
        if is_list
            && let Some(trimmed) = path.strip_suffix('/')
            && let Some(rule) = self.non_exact_rule(trimmed)
        {
            return Some(rule);
        }
        self.non_exact_rule(path)
    }

    /// The highest-priority prefix or `+` rule matching `path` (`CheckAllowedFromNonExactPaths`).
    fn non_exact_rule(&self, path: &str) -> Option<&MergedRule> {
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        if let Some((prefix, rule)) = self.longest_prefix_rule(path) {
            candidates.push(Candidate {
                first_wildcard: prefix.len(),
                is_prefix: true,
                wildcards: 0,
                pattern: prefix,
                rule,
            });
        }

        let path_parts: Vec<&str> = path.split('/').collect();
        'patterns: for (full_pattern, rule) in &self.segment_wildcard_rules {
            let Some(first_wildcard) = full_pattern.find('+') else {
                continue;
            };
            let (pattern, is_prefix) = match full_pattern.strip_suffix('*') {
                Some(stripped) => (stripped, true),
                None => (full_pattern.as_str(), false),
            };
            let pattern_parts: Vec<&str> = pattern.split('/').collect();
            if path_parts.len() < pattern_parts.len()
                || (!is_prefix && path_parts.len() != pattern_parts.len())
            {
                continue;
            }
            let mut wildcards = 0;
            for (index, (pattern_part, path_part)) in
                pattern_parts.iter().zip(&path_parts).enumerate()
            {
                let last = index + 1 == pattern_parts.len();
                if *pattern_part == "+" {
                    wildcards += 1;
                } else if pattern_part == path_part
                    || (is_prefix && last && path_part.starts_with(pattern_part))
                {
                } else {
                    continue 'patterns;
                }
            }
            candidates.push(Candidate {
                first_wildcard,
                is_prefix,
                wildcards,
                pattern,
                rule,
            });
        }
        // Ties cannot happen: equal priority means an equal pattern.
        candidates
            .into_iter()
            .max_by(|a, b| a.priority().cmp(&b.priority()))
            .map(|candidate| candidate.rule)
    }

    fn longest_prefix_rule(&self, path: &str) -> Option<(&str, &MergedRule)> {
        (0..=path.len())
            .rev()
            .filter(|end| path.is_char_boundary(*end))
            .find_map(|end| {
                self.prefix_rules
                    .get_key_value(&path[..end])
                    .map(|(prefix, rule)| (prefix.as_str(), rule))
            })
    }
}

/// Vault's parameter checks: required first, then denied, then allowed.
fn check_parameters(permissions: &Permissions, data: &Map<String, Value>) -> Result<(), Denial> {
    let lowered: BTreeMap<String, &Value> = data
        .iter()
        .map(|(key, value)| (key.to_lowercase(), value))
        .collect();
    for name in &permissions.required_parameters {
        if !lowered.contains_key(&name.to_lowercase()) {
            return Err(Denial::RequiredParameterMissing(name.clone()));
        }
    }
    if data.is_empty() {
        return Ok(());
    }
    let denied = &permissions.denied_parameters;
    if !denied.is_empty() {
        if denied.contains_key("*") {
            return Err(Denial::ParameterDenied("*".to_string()));
        }
        for (name, value) in &lowered {
            if let Some(values) = denied.get(name)
                && value_in_denied_list(value, values)
            {
                return Err(Denial::ParameterDenied(name.clone()));
            }
        }
    }
    let allowed = &permissions.allowed_parameters;
    if allowed.is_empty() {
        return Ok(());
    }
    let allowed_all = allowed.contains_key("*");
    if allowed_all && allowed.len() == 1 {
        return Ok(());
    }
    for (name, value) in &lowered {
        match allowed.get(name) {
            None if !allowed_all => return Err(Denial::ParameterNotAllowed(name.clone())),
            Some(values) if !value_in_allowed_list(value, values) => {
                return Err(Denial::ParameterNotAllowed(name.clone()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn value_in_allowed_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(value, list) {
        return true;
    }
    // A list (or comma-separated string) is allowed when every element is.
    match value {
        Value::Array(items) => items.iter().all(|item| value_in_list(item, list)),
        Value::String(text) => comma_items(text).all(|item| value_in_list(&item, list)),
        _ => false,
    }
}

fn value_in_denied_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(value, list) {
        return true;
    }
    // A list (or comma-separated string) is denied when any element is.
    match value {
        Value::Array(items) => items.iter().any(|item| value_in_list(item, list)),
        Value::String(text) => comma_items(text).any(|item| value_in_list(&item, list)),
        _ => false,
    }
}

fn comma_items(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| Value::String(item.to_string()))
}

fn value_in_list(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|element| match (element, value) {
        (Value::String(pattern), Value::String(text)) => globbed_strings_match(pattern, text),
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    })
}

/// Vault's `GlobbedStringsMatch`: a `*` at the start and/or end of the pattern.
fn globbed_strings_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) => value.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), None) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => pattern == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acl(policies: &[(&str, &str)]) -> Acl {
        let parsed: Vec<Policy> = policies
            .iter()
            .map(|(name, text)| Policy::parse(name, text).unwrap())
            .collect();
        Acl::new(&parsed)
    }

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn same_pattern_unions_and_deny_wins() {
        let acl = acl(&[
            ("a", r#"path "secret/x" { capabilities = ["read"] }"#),
            (
                "b",
                r#"path "secret/x" { capabilities = ["update", "list"] }"#,
            ),
            ("c", r#"path "secret/y" { capabilities = ["read"] }"#),
            ("d", r#"path "secret/y" { capabilities = ["deny"] }"#),
        ]);
        assert_eq!(acl.capabilities("secret/x"), vec!["list", "read", "update"]);
        let read = acl.allowed(Operation::Read, "secret/x", &Map::new());
        assert!(read.allowed);
        assert_eq!(read.granting_policies, vec!["a"]);
        let denied = acl.allowed(Operation::Read, "secret/y", &Map::new());
        assert_eq!(denied.denial, Some(Denial::ExplicitDeny));
        assert_eq!(acl.capabilities("secret/y"), vec!["deny"]);
    }

    #[test]
    fn root_allows_everything_with_sudo() {
        let acl = Acl::root();
        let result = acl.allowed(Operation::Delete, "sys/raw/anything", &Map::new());
        assert!(result.allowed && result.is_root && result.root_privs);
        assert_eq!(acl.capabilities("anything"), vec!["root"]);
    }

    #[test]
    fn parameters_are_checked_like_vault() {
        let acl = acl(&[(
            "p",
            r#"
path "secret/params" {
  capabilities = ["create", "update", "read"]
  allowed_parameters = {
    "color" = ["red*", "blue"]
    "size" = []
    "tags" = ["a", "b"]
  }
  denied_parameters = { "size" = ["huge"] }
  required_parameters = ["color"]
}
path "secret/anything-but" {
  capabilities = ["update"]
  allowed_parameters = { "*" = [] }
  denied_parameters = { "admin" = [] }
}
"#,
        )]);
        let check =
            |path: &str, body: Value| acl.allowed(Operation::Update, path, &data(body)).denial;
        assert_eq!(
            check("secret/params", json!({"color": "reddish", "size": "m"})),
            None
        );
        assert_eq!(check("secret/params", json!({"COLOR": "blue"})), None);
        assert_eq!(
            check("secret/params", json!({"size": "m"})),
            Some(Denial::RequiredParameterMissing("color".into()))
        );
        assert_eq!(
            check("secret/params", json!({"color": "green"})),
            Some(Denial::ParameterNotAllowed("color".into()))
        );
        assert_eq!(
            check("secret/params", json!({"color": "blue", "size": "huge"})),
            Some(Denial::ParameterDenied("size".into()))
        );
        assert_eq!(
            check("secret/params", json!({"color": "blue", "shape": "x"})),
            Some(Denial::ParameterNotAllowed("shape".into()))
        );
        assert_eq!(
            check(
                "secret/params",
                json!({"color": "blue", "tags": ["a", "b"]})
            ),
            None
        );
        assert_eq!(
            check("secret/params", json!({"color": "blue", "tags": "a, b"})),
            None
        );
        assert_eq!(
            check(
                "secret/params",
                json!({"color": "blue", "tags": ["a", "c"]})
            ),
            Some(Denial::ParameterNotAllowed("tags".into()))
        );
        assert_eq!(check("secret/anything-but", json!({"x": 1})), None);
        assert_eq!(
            check("secret/anything-but", json!({"admin": true})),
            Some(Denial::ParameterDenied("admin".into()))
        );
        // Deletes carry no parameters, so parameter rules never refuse them.
        assert!(
            !acl.allowed(Operation::Delete, "secret/params", &Map::new())
                .allowed
        );
    }

    #[test]
    fn wrapping_ttl_bounds_need_a_wrapped_request() {
        let acl = acl(&[(
            "p",
            r#"path "secret/wrapped" {
  capabilities = ["read"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "1h"
}"#,
        )]);
        let at = |ttl| acl.allowed_wrapped(Operation::Read, "secret/wrapped", &Map::new(), ttl);
        assert_eq!(at(None).denial, Some(Denial::WrappingTtl));
        assert_eq!(at(Some(30)).denial, Some(Denial::WrappingTtl));
        assert!(at(Some(300)).allowed);
        assert_eq!(at(Some(7200)).denial, Some(Denial::WrappingTtl));
    }

    #[test]
    fn templated_rules_render_with_an_identity() {
        let policy = Policy::parse(
            "p",
            r#"
path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }
path "secret/{{ identity.entity.metadata.team }}/*" { capabilities = ["list"] }
path "kv/{{identity.entity.aliases.auth_x.name}}" { capabilities = ["read"] }
"#,
        )
        .unwrap();
        let identity = TemplateIdentity {
            entity_id: "e-1".to_string(),
            entity_name: "alice".to_string(),
            entity_metadata: [("team".to_string(), "blue".to_string())].into(),
        };
        let acl = Acl::with_identity(&[policy], Some(&identity));
        assert_eq!(acl.capabilities("identity/entity/id/e-1"), vec!["read"]);
        assert_eq!(acl.capabilities("identity/entity/id/e-2"), vec!["deny"]);
        assert_eq!(acl.capabilities("secret/blue/x"), vec!["list"]);
        // Alias templates are not rendered yet, so that rule is skipped.
        assert_eq!(acl.capabilities("kv/alice"), vec!["deny"]);
    }

    #[test]
    fn templated_rules_are_skipped_without_an_identity() {
        let acl = acl(&[(
            "p",
            r#"path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }"#,
        )]);
        assert_eq!(
            acl.capabilities("identity/entity/id/{{identity.entity.id}}"),
            vec!["deny"]
        );
    }
}
