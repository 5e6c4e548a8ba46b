//! `sys/remount` and `sys/remount/status/:migration_id`: move a secrets engine or an
//! auth method to another path.
//!
//! A mount's data lives under its uuid (`logical/<uuid>/`, `auth/<uuid>/`), never under
//! its path, so a move is one change of the mount-table entry (one Raft entry): the data
//! goes with the mount without being copied. As in Vault, the leases issued under the
//! old path are revoked first, since their ids name that path.
//!
//! Vault answers with a migration id and moves the mount in the background; here the
//! move is a single commit, done before the answer, so the status reads `success` at
//! once. The record of recent migrations is kept in memory on the active node, bounded.

use std::collections::VecDeque;

use serde_json::json;

use super::mounts::{self, TableKind};
use super::router::LogicalCore;
use crate::logical::{LogicalError, Request, Response, field_str};

/// Migration records kept for `sys/remount/status` (oldest dropped first).
pub const MIGRATIONS_MAX: usize = 128;

/// One move, checked: which table, and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remount {
    pub kind: TableKind,
    /// Mount paths within the table (`secret/`, or `userpass/` for `auth/userpass/`).
    pub from: String,
    pub to: String,
}

impl Remount {
    /// Check `from` and `to` with Vault's rules and words.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, LogicalError> {
        let (Some(from), Some(to)) = (
            from.filter(|path| !path.is_empty()),
            to.filter(|path| !path.is_empty()),
        ) else {
            return Err(LogicalError::BadRequest(
                "both 'from' and 'to' path must be specified as a string".into(),
            ));
        };
        let from = mounts::validate_mount_path(from)?;
        let to = mounts::validate_mount_path(to)?;
        let (kind, from_inner, to_inner) =
            match (from.strip_prefix("auth/"), to.strip_prefix("auth/")) {
                (Some(from_inner), Some(to_inner)) => (TableKind::Auth, from_inner, to_inner),
                (None, None) => (TableKind::Secrets, from.as_str(), to.as_str()),
                (Some(_), None) => {
                    return Err(LogicalError::BadRequest(format!(
                        "cannot remount auth mount to non-auth mount {to:?}"
                    )));
                }
                (None, Some(_)) => {
                    return Err(LogicalError::BadRequest(format!(
                        "cannot remount non-auth mount to auth mount {to:?}"
                    )));
                }
            };
        let protected = match kind {
            TableKind::Secrets => ["sys/", "cubbyhole/", "identity/", "audit/"]
                .iter()
                .any(|reserved| from_inner.starts_with(reserved)),
            TableKind::Auth => from_inner == "token/",
        };
        if protected || from_inner.is_empty() {
            return Err(LogicalError::BadRequest(format!("cannot remount {from:?}")));
        }
        let reserved_target = match kind {
            TableKind::Secrets => ["sys/", "cubbyhole/", "identity/", "audit/"]
                .iter()
                .any(|reserved| to_inner.starts_with(reserved)),
            TableKind::Auth => to_inner == "token/",
        };
        if reserved_target || to_inner.is_empty() {
            return Err(LogicalError::BadRequest(format!(
                "cannot remount to destination {to:?}"
            )));
        }
        Ok(Self {
            kind,
            from: from_inner.to_string(),
            to: to_inner.to_string(),
        })
    }

    /// The path as clients see it (`auth/` in front of an auth method's).
    fn client_path(&self, path: &str) -> String {
        mounts::client_path(self.kind, path)
    }
}

#[derive(Debug, Clone)]
struct Migration {
    id: String,
    source_mount: String,
    target_mount: String,
    status: &'static str,
    start_time: String,
    end_time: String,
}

/// The most recent migrations, for their status reads.
#[derive(Debug, Default)]
pub struct Migrations {
    recent: std::sync::Mutex<VecDeque<Migration>>,
}

impl Migrations {
    fn record(&self, migration: Migration) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() == MIGRATIONS_MAX {
            recent.pop_front();
        }
        recent.push_back(migration);
    }

    fn find(&self, id: &str) -> Option<Migration> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|migration| migration.id == id)
            .cloned()
    }
}

impl LogicalCore {
    /// `POST sys/remount {from, to}`.
    pub(crate) async fn remount(&self, request: &Request) -> Result<Response, LogicalError> {
        let remount = Remount::parse(
            field_str(&request.data, "from")?,
            field_str(&request.data, "to")?,
        )?;
        let start_time = crate::util::rfc3339(self.env().clock.unix_millis());
        let id = self.env().rng.uuid();
        {
            let tables = self.tables()?;
            let table = match remount.kind {
                TableKind::Secrets => &tables.secrets,
                TableKind::Auth => &tables.auth,
            };
            if table.get(&remount.from).is_none() {
                return Err(LogicalError::BadRequest(format!(
                    "no matching mount at {:?}",
                    remount.client_path(&remount.from)
                )));
            }
        }
        // Leases name the path they were issued under; like Vault, revoke them rather
        // than leave ids that no longer route.
        self.expiration
            .revoke_prefix(&remount.client_path(&remount.from))
            .await?;
        let (from, to) = (remount.from.clone(), remount.to.clone());
        self.update_table(remount.kind, move |table| {
            let mut entry = table.remove(&from).ok_or_else(|| {
                LogicalError::BadRequest(format!("no matching mount at {from:?}"))
            })?;
            table.check_new_path(&to)?;
            entry.path = to;
            table.insert(entry);
            Ok(())
        })
        .await?;
        tracing::info!(from = %remount.client_path(&remount.from), to = %remount.client_path(&remount.to), migration_id = %id, "mount moved");
        self.migrations.record(Migration {
            id: id.clone(),
            source_mount: remount.client_path(&remount.from),
            target_mount: remount.client_path(&remount.to),
            status: "success",
            start_time,
            end_time: crate::util::rfc3339(self.env().clock.unix_millis()),
        });
        Ok(Response::from_value(json!({ "migration_id": id })))
    }

    /// `GET sys/remount/status/:migration_id`.
    pub(crate) fn remount_status(&self, id: &str) -> Result<Response, LogicalError> {
        let migration = self.migrations.find(id).ok_or_else(|| {
            LogicalError::BadRequest(format!("no migration found for migration id {id:?}"))
        })?;
        Ok(Response::from_value(json!({
            "migration_id": migration.id,
            "migration_info": {
                "source_mount": migration.source_mount,
                "target_mount": migration.target_mount,
                "status": migration.status,
                "start_time": migration.start_time,
                "end_time": migration.end_time,
            },
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(from: &str, to: &str) -> Result<Remount, String> {
        Remount::parse(Some(from), Some(to)).map_err(|error| error.to_string())
    }

    #[test]
    fn secrets_and_auth_moves_stay_in_their_table() {
        assert_eq!(
            parse("secret", "/kv/app/").unwrap(),
            Remount {
                kind: TableKind::Secrets,
                from: "secret/".into(),
                to: "kv/app/".into()
            }
        );
        assert_eq!(
            parse("auth/userpass", "auth/people/").unwrap(),
            Remount {
                kind: TableKind::Auth,
                from: "userpass/".into(),
                to: "people/".into()
            }
        );
        assert_eq!(
            parse("auth/userpass", "people").unwrap_err(),
            "cannot remount auth mount to non-auth mount \"people/\""
        );
        assert_eq!(
            parse("secret", "auth/secret").unwrap_err(),
            "cannot remount non-auth mount to auth mount \"auth/secret/\""
        );
    }

    #[test]
    fn system_mounts_do_not_move_and_nothing_moves_onto_them() {
        for from in ["sys", "cubbyhole", "identity", "auth/token"] {
            assert!(parse(from, "elsewhere").is_err() || parse(from, "auth/elsewhere").is_err());
        }
        assert_eq!(parse("sys", "x").unwrap_err(), "cannot remount \"sys/\"");
        assert_eq!(
            parse("auth/token", "auth/x").unwrap_err(),
            "cannot remount \"auth/token/\""
        );
        assert!(parse("secret", "sys/x").is_err());
        assert!(parse("auth/userpass", "auth/token").is_err());
    }

    #[test]
    fn bad_input_is_a_400_not_a_panic() {
        let missing = Remount::parse(None, Some("x")).unwrap_err();
        assert_eq!(missing.status(), 400);
        assert_eq!(
            missing.to_string(),
            "both 'from' and 'to' path must be specified as a string"
        );
        for (from, to) in [
            ("", "x"),
            ("/", "x"),
            ("a/../b", "x"),
            ("x", "*"),
            ("auth/", "auth/x"),
        ] {
            let error = Remount::parse(Some(from), Some(to)).unwrap_err();
            assert_eq!(error.status(), 400, "{from} -> {to}: {error}");
        }
    }

    #[test]
    fn migrations_are_bounded() {
        let migrations = Migrations::default();
        for index in 0..MIGRATIONS_MAX + 5 {
            migrations.record(Migration {
                id: index.to_string(),
                source_mount: "a/".into(),
                target_mount: "b/".into(),
                status: "success",
                start_time: String::new(),
                end_time: String::new(),
            });
        }
        assert!(migrations.find("0").is_none());
        assert!(migrations.find(&(MIGRATIONS_MAX + 4).to_string()).is_some());
    }
}
