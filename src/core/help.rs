//! `?help=1` on any path: Vault's `{"help": ..., "openapi": ...}` answer, small and true.
//!
//! Vault builds its help from each backend's path table (synopsis, fields, description)
//! and its OpenAPI document from the same table. Arca's engines have no such table, so
//! the help names the request, the mount and its engine, says what the engine does and
//! lists the paths it answers; the OpenAPI document lists those paths with a
//! description each and no parameter schemas. Nothing here claims more than that.

use serde_json::{Map, Value, json};

use super::VERSION;
use super::mounts::TableKind;
use super::router::Route;

/// What an engine is, and the paths (relative to its mount) it answers.
struct EngineHelp {
    description: &'static str,
    paths: &'static [(&'static str, &'static str)],
}

const KV_V2: EngineHelp = EngineHelp {
    description: "The KV secrets engine, version 2: a versioned key/value store. Every write \
                  makes a new version; old versions can be read, deleted, undeleted and \
                  destroyed, up to max_versions per key.",
    paths: &[
        (
            "config",
            "The engine's settings: max_versions, cas_required, delete_version_after.",
        ),
        (
            "data/{path}",
            "Write a new version, read a version (?version=N), patch, or soft-delete the latest version.",
        ),
        (
            "metadata/{path}",
            "A key's versions and settings; list keys; delete every version.",
        ),
        ("delete/{path}", "Soft-delete the versions given."),
        ("undelete/{path}", "Restore soft-deleted versions."),
        (
            "destroy/{path}",
            "Remove the data of the versions given for good.",
        ),
        (
            "subkeys/{path}",
            "A version's keys without their values (?version=, ?depth=).",
        ),
    ],
};

const KV_V1: EngineHelp = EngineHelp {
    description: "The KV secrets engine, version 1: a key/value store without versions. A \
                  write replaces the value; a delete removes it.",
    paths: &[(
        "{path}",
        "Read, write, list (a path ending in /) or delete a secret.",
    )],
};

const CUBBYHOLE: EngineHelp = EngineHelp {
    description: "The cubbyhole: private key/value storage for each token. No other token, \
                  root included, can read it; it is destroyed with its token.",
    paths: &[(
        "{path}",
        "Read, write, list or delete a secret of the calling token.",
    )],
};

const TOKEN: EngineHelp = EngineHelp {
    description: "The token auth method: create, look up, renew and revoke tokens.",
    paths: &[
        (
            "create",
            "Create a child token (create-orphan: without a parent).",
        ),
        ("create/{role_name}", "Create a token from a role."),
        (
            "lookup",
            "A token's properties (lookup-self: the caller's).",
        ),
        ("lookup-accessor", "A token's properties by its accessor."),
        (
            "renew",
            "Renew a token's lease (renew-self, renew-accessor).",
        ),
        (
            "revoke",
            "Revoke a token and its children (revoke-self, revoke-accessor, revoke-orphan).",
        ),
        ("roles/{role_name}", "Token roles."),
        ("accessors", "List the accessors of every token."),
    ],
};

const USERPASS: EngineHelp = EngineHelp {
    description: "The userpass auth method: users with a password log in for a token.",
    paths: &[
        (
            "users/{username}",
            "Create, read, update or delete a user; list users.",
        ),
        ("users/{username}/password", "Change a user's password."),
        ("users/{username}/policies", "Change a user's policies."),
        ("login/{username}", "Log in with the user's password."),
    ],
};

const SYSTEM: EngineHelp = EngineHelp {
    description: "System endpoints used for control, policy and debugging: mounts, auth \
                  methods, policies, audit devices, leases, response wrapping, seal and \
                  Raft storage.",
    paths: &[
        (
            "monitor",
            "GET: stream this node's log lines until the client disconnects (read and sudo). \
             log_level: trace, debug, info (default), warn or error; log_format: standard \
             (default) or json.",
        ),
        (
            "ha-status",
            "GET: the active node and the standbys it has heard from, with their addresses \
             and last echo.",
        ),
        (
            "version-history",
            "LIST: the versions this cluster has run, with installation time, build date and \
             the version each replaced.",
        ),
    ],
};

const IDENTITY: EngineHelp = EngineHelp {
    description: "The identity store: entities that tie a client's tokens together.",
    paths: &[],
};

fn engine_help(route: &Route) -> Option<&'static EngineHelp> {
    match (
        route.kind,
        route.entry.engine_type(),
        route.entry.kv_version(),
    ) {
        (TableKind::Secrets, "kv", Some(2)) => Some(&KV_V2),
        (TableKind::Secrets, "kv", _) => Some(&KV_V1),
        (TableKind::Secrets, "cubbyhole", _) => Some(&CUBBYHOLE),
        (TableKind::Secrets, "system", _) => Some(&SYSTEM),
        (TableKind::Secrets, "identity", _) => Some(&IDENTITY),
        (TableKind::Auth, "token", _) => Some(&TOKEN),
        (TableKind::Auth, "userpass", _) => Some(&USERPASS),
        _ => None,
    }
}

/// The body of a `?help=1` answer for `route` (Vault answers it without the envelope).
pub fn help_body(route: &Route) -> Value {
    let engine = engine_help(route);
    let mut help = format!(
        "Request:        {}\nMount:          {} ({})\n",
        route.rest, route.mount_point, route.entry.mount_type
    );
    if let Some(engine) = engine {
        help.push_str(&format!("\n## DESCRIPTION\n\n{}\n", engine.description));
        if !engine.paths.is_empty() {
            help.push_str("\n## PATHS\n\n");
            for (pattern, description) in engine.paths {
                help.push_str(&format!(
                    "    {}{pattern}\n        {description}\n",
                    route.mount_point
                ));
            }
        }
    }
    let mut paths = Map::new();
    for (pattern, description) in engine.map(|engine| engine.paths).unwrap_or_default() {
        paths.insert(
            format!("/{}{pattern}", route.mount_point),
            json!({ "description": description }),
        );
    }
    json!({
        "help": help,
        "see_also": Value::Null,
        "openapi": {
            "openapi": "3.0.2",
            "info": {
                "title": "Arca API",
                "description": "Vault's HTTP API as Arca serves it. All API routes are prefixed with `/v1/`.",
                "version": VERSION,
            },
            "paths": paths,
        },
    })
}
