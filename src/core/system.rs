//! The system backend (`sys/`): mounts, auth methods, policies, capabilities, keys,
//! Raft membership, wrapping, audit, leases and the UI helper paths the CLI uses.

use serde_json::{Map, Value, json};

use super::metrics_endpoint::{MetricsBody, PROMETHEUS_CONTENT_TYPE};
use super::mounts::{self, MountConfig, MountEntry, TableKind};
use super::router::{Caller, LogicalCore};
use crate::engines::input::field_bool;
use crate::http::ApiRequest;
use crate::logical::{LogicalError, Operation, Request, Response, field_str};

impl LogicalCore {
    pub(crate) async fn handle_system(
        &self,
        request: &Request,
        caller: Option<&Caller>,
        wrap_ttl: Option<i64>,
        api: &ApiRequest,
    ) -> Result<Option<Response>, LogicalError> {
        let path = request.path.trim_end_matches('/').to_string();
        let operation = request.operation;
        let segments: Vec<&str> = path.split('/').collect();
        match (segments.as_slice(), operation) {
            (["mounts"], Operation::Read) => {
                Ok(Some(Response::data(self.tables()?.secrets.to_json())))
            }
            (["auth"], Operation::Read) => Ok(Some(Response::data(self.tables()?.auth.to_json()))),
            ([table @ ("mounts" | "auth"), rest @ ..], _)
                if rest.last() == Some(&"tune") && rest.len() > 1 =>
            {
                let kind = table_kind(table);
                let mount_path = rest[..rest.len() - 1].join("/");
                self.tune(kind, &mount_path, request).await
            }
            ([table @ ("mounts" | "auth"), rest @ ..], Operation::Read) if !rest.is_empty() => {
                let kind = table_kind(table);
                let tables = self.tables()?;
                let table = if kind == TableKind::Secrets {
                    &tables.secrets
                } else {
                    &tables.auth
                };
                let entry = table.get(&rest.join("/")).ok_or_else(|| {
                    LogicalError::BadRequest(format!("no mount found at {}", rest.join("/")))
                })?;
                Ok(Some(Response::from_value(entry.to_json(kind))))
            }
            ([table @ ("mounts" | "auth"), rest @ ..], Operation::Create | Operation::Update)
                if !rest.is_empty() =>
            {
                self.mount(table_kind(table), &rest.join("/"), request)
                    .await
                    .map(|()| None)
            }
            ([table @ ("mounts" | "auth"), rest @ ..], Operation::Delete) if !rest.is_empty() => {
                self.unmount(table_kind(table), &rest.join("/"))
                    .await
                    .map(|()| None)
            }
            (["policy", ..] | ["policies", "acl", ..], _) => {
                crate::policy::handlers::handle(&self.policies, request).await
            }
            (["capabilities-self"], Operation::Create | Operation::Update) => {
                let caller = caller.ok_or(LogicalError::PermissionDenied)?;
                crate::policy::handlers::capabilities_response(&caller.acl, &request.data).map(Some)
            }
            (["capabilities"], Operation::Create | Operation::Update) => {
                let token = field_str(&request.data, "token")?
                    .ok_or_else(|| LogicalError::BadRequest("missing token".into()))?;
                let target = self.authenticate(token, request.now_unix)?;
                crate::policy::handlers::capabilities_response(&target.acl, &request.data).map(Some)
            }
            (["capabilities-accessor"], Operation::Create | Operation::Update) => {
                let accessor = field_str(&request.data, "accessor")?
                    .ok_or_else(|| LogicalError::BadRequest("missing accessor".into()))?;
                let entry = self
                    .tokens
                    .lookup_accessor(accessor, request.now_unix)
                    .map_err(|error| LogicalError::Internal(error.to_string()))?
                    .ok_or_else(|| LogicalError::BadRequest("invalid accessor".into()))?;
                let acl = self
                    .policies
                    .acl_for(&entry.policies)
                    .map_err(|error| LogicalError::Internal(error.to_string()))?;
                crate::policy::handlers::capabilities_response(&acl, &request.data).map(Some)
            }
            (["seal"], Operation::Create | Operation::Update) => {
                self.core()?.seal().await;
                Ok(None)
            }
            (["step-down"], Operation::Create | Operation::Update) => {
                // On a standby the request was forwarded: this runs on the active node.
                self.core()?
                    .cluster()
                    .step_down()
                    .await
                    .map_err(LogicalError::Internal)?;
                Ok(None)
            }
            (["version-history"], Operation::List) => {
                let entries = super::version_history::read_all(self.barrier())?;
                Ok(Some(Response::data(super::version_history::list_data(
                    &entries,
                ))))
            }
            (["key-status"], Operation::Read) => {
                let (term, install_time) = self.barrier().with_keyring(|keyring| {
                    let active = keyring.active();
                    (active.term, active.install_time_unix)
                })?;
                Ok(Some(Response::from_value(json!({
                    "term": term,
                    "install_time": crate::util::rfc3339_seconds(install_time),
                    "encryptions": 0,
                }))))
            }
            (["rotate"], Operation::Create | Operation::Update) => {
                // A secondary's keyring is its primary's: rotating is the primary's act
                // (Vault refuses it with these words, rather than forwarding it).
                if self.barrier().is_replicated_read_only() {
                    return Err(LogicalError::BadRequest(
                        "cannot rotate on a replication secondary".into(),
                    ));
                }
                self.rotate().await.map(|()| None)
            }
            (["remount"], Operation::Create | Operation::Update) => {
                self.remount(request).await.map(Some)
            }
            (["remount", "status", migration_id], Operation::Read) => {
                self.remount_status(migration_id).map(Some)
            }
            // Backups exist only for PGP-encrypted shares, which this server refuses at
            // `sys/rekey/init`: there is never one to read, and deleting none succeeds.
            (["rekey", "backup"], Operation::Read) => Err(LogicalError::NotFound),
            (["rekey", "backup"], Operation::Delete) => Ok(None),
            (["ha-status"], Operation::Read) => Ok(Some(self.ha_status()?)),
            (["monitor"], Operation::Read) => self.monitor(&api.query).map(Some),
            (["storage", "raft", "configuration"], Operation::Read) => {
                Ok(Some(self.raft_configuration()?))
            }
            (["metrics"], Operation::Read) => {
                Ok(Some(match self.core()?.metrics_body(&api.query)? {
                    MetricsBody::Json(value) => Response {
                        raw: Some(value),
                        ..Response::default()
                    },
                    MetricsBody::Prometheus(text) => Response {
                        binary: Some(text.into()),
                        content_type: Some(PROMETHEUS_CONTENT_TYPE),
                        ..Response::default()
                    },
                }))
            }
            (["storage", "raft", "snapshot"], Operation::Read) => {
                let file = self.core()?.save_snapshot().await?;
                Ok(Some(Response {
                    binary: Some(file.into()),
                    ..Response::default()
                }))
            }
            (
                ["storage", "raft", kind @ ("snapshot" | "snapshot-force")],
                Operation::Create | Operation::Update,
            ) => {
                let force = *kind == "snapshot-force";
                self.core()?
                    .restore_snapshot(&api.body, force)
                    .await
                    .map(|()| None)
            }
            (["storage", "raft", "remove-peer"], Operation::Create | Operation::Update) => {
                let server_id = field_str(&request.data, "server_id")?
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| LogicalError::BadRequest("no server id provided".into()))?;
                self.core()?
                    .cluster()
                    .remove_peer(server_id)
                    .await
                    .map_err(LogicalError::BadRequest)?;
                Ok(None)
            }
            (["wrapping", ..], _) => {
                let mut inner = request.clone();
                inner.path = path.clone();
                crate::wrapping::handlers::handle(&self.wrapping, &inner, wrap_ttl).await
            }
            (["audit"] | ["audit", ..] | ["audit-hash", ..], _) => {
                crate::audit::handlers::handle(self.audit()?.as_ref(), request).await
            }
            (["internal", "ui", "mounts"], Operation::Read) => {
                let tables = self.tables()?;
                let mut auth = Map::new();
                for entry in tables.auth.serving() {
                    auth.insert(entry.path.clone(), entry.to_json(TableKind::Auth));
                }
                Ok(Some(Response::from_value(json!({
                    "secret": tables.secrets.to_json(),
                    "auth": auth,
                }))))
            }
            (["internal", "ui", "mounts", rest @ ..], Operation::Read) => {
                self.ui_mount(&rest.join("/"))
            }
            (["tools", "random", rest @ ..], Operation::Create | Operation::Update) => {
                self.random_bytes(rest, &request.data).map(Some)
            }
            (["replication", rest @ ..], _) => self.handle_replication(rest, request).await,
            (["leases", ..] | ["renew", ..] | ["revoke", ..] | ["revoke-prefix", ..], _) => {
                self.expiration.handle_leases(request).await.map(Some)
            }
            _ => Err(LogicalError::UnsupportedPath(format!(
                "unsupported path: sys/{path}"
            ))),
        }
    }

    /// `sys/mounts/:path` and `sys/auth/:path`.
    async fn mount(
        &self,
        kind: TableKind,
        path: &str,
        request: &Request,
    ) -> Result<(), LogicalError> {
        let path = mounts::validate_mount_path(path)?;
        let data = &request.data;
        let mut mount_type = field_str(data, "type")?
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                LogicalError::BadRequest("backend type must be specified as a string".into())
            })?
            .to_string();
        let mut options: std::collections::BTreeMap<String, String> = match data.get("options") {
            None | Some(Value::Null) => Default::default(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), text)
                })
                .collect(),
            Some(_) => return Err(LogicalError::BadRequest("options must be a map".into())),
        };
        match mount_type.as_str() {
            "kv-v1" => {
                mount_type = "kv".into();
                options.insert("version".into(), "1".into());
            }
            "kv-v2" => {
                mount_type = "kv".into();
                options.insert("version".into(), "2".into());
            }
            _ => {}
        }
        if options.contains_key("version") && !matches!(mount_type.as_str(), "kv" | "generic") {
            return Err(LogicalError::BadRequest(format!(
                "secrets engine {mount_type:?} does not allow setting a version"
            )));
        }
        if let Some(version) = options.get("version")
            && !matches!(version.as_str(), "1" | "2" | "")
        {
            return Err(LogicalError::BadRequest(format!(
                "invalid KV version {version:?}"
            )));
        }
        if !mounts::supported_type(kind, &mount_type) || mounts::is_builtin_type(&mount_type) {
            return Err(LogicalError::BadRequest(match kind {
                TableKind::Secrets => format!("plugin not found in the catalog: {mount_type}"),
                TableKind::Auth => format!("plugin not found in the catalog: {mount_type}"),
            }));
        }
        let mut config = MountConfig::default();
        match data.get("config") {
            None | Some(Value::Null) => {}
            Some(Value::Object(input)) => mounts::apply_config(&mut config, input)?,
            Some(_) => return Err(LogicalError::BadRequest("config must be a map".into())),
        }
        let local = field_bool(data, "local")?.unwrap_or(false);
        let rng = &self.env().rng;
        let entry = MountEntry {
            path: path.clone(),
            mount_type: mount_type.clone(),
            description: field_str(data, "description")?
                .unwrap_or_default()
                .to_string(),
            accessor: mounts::new_accessor(kind, &mount_type, rng),
            uuid: rng.uuid(),
            local,
            seal_wrap: field_bool(data, "seal_wrap")?.unwrap_or(false),
            external_entropy_access: field_bool(data, "external_entropy_access")?.unwrap_or(false),
            options,
            config,
            tainted: false,
        };
        self.update_table(kind, |table| {
            if kind == TableKind::Secrets
                && ["sys/", "auth/", "cubbyhole/", "identity/"]
                    .iter()
                    .any(|reserved| path.starts_with(reserved))
            {
                return Err(LogicalError::BadRequest(format!(
                    "cannot mount under reserved path {path:?}"
                )));
            }
            table.check_new_path(&path)?;
            table.insert(entry);
            Ok(())
        })
        .await?;
        // Vault's words, at info: an operator's change of what the server serves.
        match kind {
            TableKind::Secrets => tracing::info!(%path, %mount_type, "successful mount"),
            TableKind::Auth => {
                tracing::info!(%path, %mount_type, "enabled credential backend")
            }
        }
        Ok(())
    }

    /// Disable a mount, in Vault's order: mark its entry tainted (it serves nothing from
    /// then on), revoke its leases and tokens, delete its data, and only then remove the
    /// entry. An active node that stops midway leaves the mark, and the next one
    /// finishes the disable ([`LogicalCore::finish_tainted_unmounts`]).
    async fn unmount(&self, kind: TableKind, path: &str) -> Result<(), LogicalError> {
        let path = mounts::normalize_mount_path(path);
        let protected = match kind {
            TableKind::Secrets => ["sys/", "cubbyhole/", "identity/"].contains(&path.as_str()),
            TableKind::Auth => path == "token/",
        };
        if protected {
            return Err(LogicalError::BadRequest(format!("cannot unmount {path:?}")));
        }
        if crate::seeded_bugs::enabled(crate::seeded_bugs::SeededBug::UnmountRemovesEntryFirst) {
            return self.unmount_entry_first(kind, &path).await;
        }
        let tainted = self
            .update_table(kind, |table| Ok(table.taint(&path)))
            .await?;
        let Some(entry) = tainted else {
            // Vault answers 204 for a path that is not mounted.
            return Ok(());
        };
        // A fault point: the node stops serving this disable right after the taint (a
        // crash, a lost lead), which the tick's finishing of tainted mounts handles.
        if crate::buggify::buggify("unmount-interrupted-after-taint") {
            return Err(LogicalError::Unavailable(
                "the disable was interrupted; the active node finishes it".into(),
            ));
        }
        let _running = UnmountRunning::start(&self.unmounts_running, &entry.uuid);
        self.finish_unmount(kind, &entry).await?;
        match kind {
            TableKind::Secrets => tracing::info!(%path, "successfully unmounted"),
            TableKind::Auth => tracing::info!(%path, "disabled credential backend"),
        }
        Ok(())
    }

    /// The seeded bug [`UnmountRemovesEntryFirst`](crate::seeded_bugs::SeededBug): the
    /// entry goes first, then the leases and the data, with the same fault point between.
    async fn unmount_entry_first(&self, kind: TableKind, path: &str) -> Result<(), LogicalError> {
        let removed = self
            .update_table(kind, |table| Ok(table.remove(path)))
            .await?;
        let Some(entry) = removed else {
            return Ok(());
        };
        if crate::buggify::buggify("unmount-interrupted-after-taint") {
            return Err(LogicalError::Unavailable(
                "the disable was interrupted".into(),
            ));
        }
        let mount_point = mounts::client_path(kind, &entry.path);
        self.expiration.revoke_prefix(&mount_point).await?;
        self.delete_prefix(&entry.storage_prefix(kind)).await
    }

    /// The steps of a disable after the taint: revoke the mount's leases (with the
    /// tokens its logins issued), delete its data, remove its entry. Each step can run
    /// again after a stop: revoking and deleting what is already gone does nothing.
    /// Returns whether the entry was removed here.
    ///
    /// On a performance secondary, a replicated mount's data and entry are the
    /// primary's to delete; the leases and tokens the secondary issued under it are its
    /// own, and revoked here.
    pub(crate) async fn finish_unmount(
        &self,
        kind: TableKind,
        entry: &MountEntry,
    ) -> Result<bool, LogicalError> {
        let mount_point = mounts::client_path(kind, &entry.path);
        self.expiration.revoke_prefix(&mount_point).await?;
        if self.barrier().is_replicated_read_only() && !entry.local {
            return Ok(false);
        }
        self.delete_prefix(&entry.storage_prefix(kind)).await?;
        let uuid = entry.uuid.clone();
        let removed = self
            .update_table(kind, move |table| Ok(table.remove_uuid(&uuid)))
            .await?;
        Ok(removed.is_some())
    }

    /// Finish every disable an earlier active node marked and did not finish (the active
    /// node runs this on every expiration tick; nothing to do is one pass over two
    /// tables in memory).
    pub(crate) async fn finish_tainted_unmounts(&self) -> Result<(), LogicalError> {
        let tables = self.tables()?;
        let tainted: Vec<(TableKind, MountEntry)> = [
            (TableKind::Secrets, &tables.secrets),
            (TableKind::Auth, &tables.auth),
        ]
        .into_iter()
        .flat_map(|(kind, table)| table.tainted().map(move |entry| (kind, entry.clone())))
        .collect();
        for (kind, entry) in tainted {
            let Some(_running) = UnmountRunning::start(&self.unmounts_running, &entry.uuid) else {
                continue;
            };
            if self.finish_unmount(kind, &entry).await? {
                crate::coverage::mark("mount-disable-finished-later");
                tracing::info!(path = %entry.path, table = ?kind, "finished an interrupted disable");
            }
        }
        Ok(())
    }

    /// Delete every key below `prefix`, in bounded batches.
    async fn delete_prefix(&self, prefix: &str) -> Result<(), LogicalError> {
        const DELETE_BATCH_MAX: usize = 1024;
        let view = self.barrier().view(prefix.to_string());
        let keys = view.list_recursive("")?;
        // Bulk: bounded batches, each committed at once (one entry could not hold them).
        for chunk in keys.chunks(DELETE_BATCH_MAX) {
            view.commit_now(
                chunk
                    .iter()
                    .map(|key| crate::barrier::Write::Delete { key: key.clone() })
                    .collect(),
            )
            .await?;
        }
        Ok(())
    }

    async fn tune(
        &self,
        kind: TableKind,
        path: &str,
        request: &Request,
    ) -> Result<Option<Response>, LogicalError> {
        let path = mounts::normalize_mount_path(path);
        match request.operation {
            Operation::Read => {
                let tables = self.tables()?;
                let table = if kind == TableKind::Secrets {
                    &tables.secrets
                } else {
                    &tables.auth
                };
                let entry = table.get(&path).ok_or_else(|| {
                    LogicalError::BadRequest(format!("cannot fetch sysview for path {path:?}"))
                })?;
                let system_max = crate::token::MAX_LEASE_TTL_SECONDS;
                let default_ttl = if entry.config.default_lease_ttl == 0 {
                    system_max
                } else {
                    entry.config.default_lease_ttl
                };
                let max_ttl = if entry.config.max_lease_ttl == 0 {
                    system_max
                } else {
                    entry.config.max_lease_ttl
                };
                let mut data = json!({
                    "default_lease_ttl": default_ttl,
                    "max_lease_ttl": max_ttl,
                    "force_no_cache": entry.config.force_no_cache,
                    "description": entry.description,
                });
                if !entry.options.is_empty() {
                    data["options"] = json!(entry.options);
                }
                match (&entry.config.token_type, kind) {
                    (Some(token_type), _) => data["token_type"] = Value::from(token_type.clone()),
                    (None, TableKind::Auth) => data["token_type"] = Value::from("default-service"),
                    (None, TableKind::Secrets) => {}
                }
                Ok(Some(Response::from_value(data)))
            }
            Operation::Create | Operation::Update => {
                let data = request.data.clone();
                self.update_table(kind, move |table| {
                    let entry = table.get_mut(&path).ok_or_else(|| {
                        LogicalError::BadRequest(format!("no mount found at {path}"))
                    })?;
                    let mut config = entry.config.clone();
                    let config_fields: Map<String, Value> = data
                        .iter()
                        .filter(|(key, _)| !matches!(key.as_str(), "description" | "options"))
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect();
                    mounts::apply_config(&mut config, &config_fields)?;
                    entry.config = config;
                    if let Some(description) = data.get("description").and_then(Value::as_str) {
                        entry.description = description.to_string();
                    }
                    if let Some(Value::Object(options)) = data.get("options")
                        && let Some(version) = options.get("version")
                    {
                        let version = version
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| version.to_string());
                        if entry.engine_type() != "kv" {
                            return Err(LogicalError::BadRequest(
                                "only kv mounts have a version".into(),
                            ));
                        }
                        let current = entry
                            .options
                            .get("version")
                            .cloned()
                            .unwrap_or_else(|| "1".into());
                        if version == "1" && current == "2" {
                            return Err(LogicalError::BadRequest(
                                "cannot downgrade a kv mount from version 2 to 1".into(),
                            ));
                        }
                        entry.options.insert("version".into(), version);
                    }
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }

    /// `sys/tools/random[/source][/bytes]`: random bytes from the node's RNG.
    fn random_bytes(
        &self,
        segments: &[&str],
        data: &Map<String, Value>,
    ) -> Result<Response, LogicalError> {
        const RANDOM_BYTES_MAX: usize = 128 * 1024;
        let mut count: usize = 32;
        for segment in segments {
            match *segment {
                "platform" | "seal" | "all" | "" => {}
                number => {
                    count = number.parse().map_err(|_| {
                        LogicalError::BadRequest(format!("invalid URL parameter {number:?}"))
                    })?
                }
            }
        }
        if let Some(value) = data.get("bytes") {
            count = value
                .as_u64()
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
                .ok_or_else(|| LogicalError::BadRequest("bytes must be a number".into()))?
                as usize;
        }
        if count == 0 || count > RANDOM_BYTES_MAX {
            return Err(LogicalError::BadRequest(format!(
                "bytes must be between 1 and {RANDOM_BYTES_MAX}"
            )));
        }
        let mut bytes = vec![0u8; count];
        self.env().rng.fill(&mut bytes);
        let format = field_str(data, "format")?.unwrap_or("base64");
        let text = match format {
            "base64" => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
            "hex" => hex::encode(&bytes),
            other => {
                return Err(LogicalError::BadRequest(format!(
                    "unsupported encoding format {other}; must be \"hex\" or \"base64\""
                )));
            }
        };
        Ok(Response::from_value(json!({ "random_bytes": text })))
    }

    /// Add a keyring term. A term seals nothing before the keyring holding it is
    /// committed: the rotation works on a copy, commits it, and only then installs it,
    /// one rotation at a time. So the keyring that introduces a term always precedes,
    /// in the log and in a secondary's WAL, every value sealed under that term, and a
    /// failed commit leaves no value sealed under a term storage never saw.
    async fn rotate(&self) -> Result<(), LogicalError> {
        let _rotation = self.rotation_lock.lock().await;
        let now = self.env().clock.unix_seconds();
        let rng = self.env().rng.clone();
        let rotated = self.barrier().with_keyring(|keyring| {
            let mut rotated = keyring.clone();
            rotated.rotate(&rng, now);
            rotated
        })?;
        let op = crate::seal::keyring_op(&rng, &rotated);
        self.core()?
            .cluster()
            .backend()
            .commit(vec![op])
            .await
            .map_err(|error| LogicalError::Unavailable(error.to_string()))?;
        self.barrier().update_keyring(|keyring| {
            if rotated.active_term > keyring.active_term {
                *keyring = rotated;
            }
        })?;
        Ok(())
    }

    fn raft_configuration(&self) -> Result<Response, LogicalError> {
        let core = self.core()?;
        let indexes = core.cluster().indexes();
        let servers: Vec<Value> = core
            .cluster()
            .configuration()
            .into_iter()
            .map(|peer| {
                json!({
                    "node_id": peer.node_id,
                    "address": peer.address,
                    "leader": peer.leader,
                    "protocol_version": "3",
                    "voter": peer.voter,
                })
            })
            .collect();
        Ok(Response::from_value(json!({
            "config": { "index": indexes.committed, "servers": servers }
        })))
    }

    /// `sys/monitor?log_level=&log_format=`: this node's log lines, streamed until the
    /// client goes away or the node shuts down.
    fn monitor(
        &self,
        query: &std::collections::BTreeMap<String, String>,
    ) -> Result<Response, LogicalError> {
        use crate::config::log_monitor::monitors;
        let text = |name: &str, default: &'static str| {
            query
                .get(name)
                .map(String::as_str)
                .filter(|value| !value.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        let level: tracing_subscriber::filter::LevelFilter =
            crate::config::parse_log_level(&text("log_level", "info"))
                .map_err(LogicalError::BadRequest)?
                .parse()
                .map_err(|_| LogicalError::BadRequest("unknown log level".into()))?;
        let format = crate::config::LogFormat::parse(&text("log_format", "standard"))
            .map_err(LogicalError::BadRequest)?;
        let subscription = monitors()
            .subscribe(level, format)
            .map_err(|error| LogicalError::Unavailable(error.to_string()))?;
        let stop = self.core()?.streams_stop();
        // Dropping the stream (the client went away) drops the subscription.
        let stream = futures::stream::unfold(
            (subscription, stop),
            |(mut subscription, mut stop)| async move {
                if *stop.borrow() {
                    return None;
                }
                let line = tokio::select! {
                    biased;
                    _ = stop.changed() => None,
                    line = subscription.lines.recv() => line,
                };
                line.map(|line| (bytes::Bytes::from(line), (subscription, stop)))
            },
        );
        Ok(Response {
            stream: Some(crate::http::ResponseStream::new(stream)),
            ..Response::default()
        })
    }

    /// `sys/ha-status`: the active node (this one) and the peers it has heard from, with
    /// Vault's field names. Raft's heartbeat acknowledgements are the echoes; a peer
    /// that never acknowledged one since this node took the lead is left out, as Vault
    /// leaves out standbys it has not heard from. Arca knows a peer by its node id only,
    /// so that is its host name; and only its own version, so a peer's is empty.
    fn ha_status(&self) -> Result<Response, LogicalError> {
        let core = self.core()?;
        let clock = &self.env().clock;
        let (now, now_unix_millis) = (clock.now(), clock.unix_millis());
        let nodes: Vec<Value> = core
            .cluster()
            .configuration()
            .into_iter()
            .filter(|peer| peer.leader || peer.last_acknowledged.is_some())
            .map(|peer| {
                let last_echo = peer.last_acknowledged.filter(|_| !peer.leader).map(|at| {
                    let age_ms = now.saturating_duration_since(at).as_millis() as i64;
                    crate::util::rfc3339(now_unix_millis - age_ms)
                });
                let cluster_address = if peer.address.contains("://") {
                    peer.address.clone()
                } else {
                    format!("https://{}", peer.address)
                };
                json!({
                    "hostname": peer.node_id,
                    "api_address": peer.api_address,
                    "cluster_address": cluster_address,
                    "active_node": peer.leader,
                    "last_echo": last_echo,
                    "version": if peer.leader { super::VERSION } else { "" },
                })
            })
            .collect();
        Ok(Response {
            raw: Some(json!({ "Nodes": nodes })),
            ..Response::default()
        })
    }

    /// `sys/internal/ui/mounts/:path`: the mount serving a path (the `kv` CLI uses it
    /// to find a mount's KV version).
    fn ui_mount(&self, path: &str) -> Result<Option<Response>, LogicalError> {
        let tables = self.tables()?;
        let (entry, kind) = if let Some(auth_path) = path.strip_prefix("auth/") {
            (
                tables.auth.route(auth_path).map(|(entry, _)| entry),
                TableKind::Auth,
            )
        } else {
            (
                tables.secrets.route(path).map(|(entry, _)| entry),
                TableKind::Secrets,
            )
        };
        let entry =
            entry.ok_or_else(|| LogicalError::BadRequest(format!("no mount found at {path}")))?;
        let mut data = entry.to_json(kind);
        data["path"] = Value::from(mounts::client_path(kind, &entry.path));
        Ok(Some(Response::from_value(data)))
    }
}

fn table_kind(name: &str) -> TableKind {
    if name == "auth" {
        TableKind::Auth
    } else {
        TableKind::Secrets
    }
}

/// A disable running on this node, registered for as long as the value lives.
struct UnmountRunning<'a> {
    running: &'a std::sync::Mutex<std::collections::BTreeSet<String>>,
    uuid: String,
}

impl<'a> UnmountRunning<'a> {
    /// Register the disable of `uuid`; `None` if one is running already.
    fn start(
        running: &'a std::sync::Mutex<std::collections::BTreeSet<String>>,
        uuid: &str,
    ) -> Option<Self> {
        let fresh = running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(uuid.to_string());
        fresh.then(|| Self {
            running,
            uuid: uuid.to_string(),
        })
    }
}

impl Drop for UnmountRunning<'_> {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.uuid);
    }
}
