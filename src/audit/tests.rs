//! Stories about audit devices, told through `sys/audit*` and the broker.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::*;
use crate::barrier::{Barrier, Keyring, View};
use crate::env::{LogFiles, MemoryLogFiles, OsLogFiles, SharedRng};
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::storage::MemoryBackend;

const LOG: &str = "/var/log/vault_audit.log";
const NOW_UNIX: i64 = 1_719_956_509;

struct Cluster {
    backend: Arc<MemoryBackend>,
    view: View,
    rng: SharedRng,
}

fn cluster() -> Cluster {
    let backend = Arc::new(MemoryBackend::new());
    let rng = SharedRng::from_u64(11);
    let barrier = Barrier::new(backend.clone(), rng.clone());
    barrier.unseal_with(Keyring::generate(&rng, 0));
    Cluster {
        backend,
        view: barrier.view(""),
        rng,
    }
}

fn broker(cluster: &Cluster, files: Arc<dyn LogFiles>) -> AuditBroker {
    AuditBroker::load(cluster.view.clone(), files, cluster.rng.clone()).unwrap()
}

fn body(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

async fn call(
    broker: &AuditBroker,
    operation: Operation,
    path: &str,
    data: Value,
) -> Result<Option<Response>, LogicalError> {
    let request = Request::new(operation, path, body(data), NOW_UNIX);
    handle(broker, &request).await
}

async fn enable(broker: &AuditBroker, path: &str, options: Value) -> Result<(), LogicalError> {
    let answer = call(
        broker,
        Operation::Update,
        &format!("audit/{path}"),
        json!({"type": "file", "options": options}),
    )
    .await?;
    assert_eq!(answer, Some(Response::default()), "enable answers 204");
    Ok(())
}

async fn hash_of(broker: &AuditBroker, path: &str, input: &str) -> String {
    let answer = call(
        broker,
        Operation::Update,
        &format!("audit-hash/{path}"),
        json!({"input": input}),
    )
    .await
    .unwrap()
    .unwrap();
    answer.data.unwrap()["hash"].as_str().unwrap().to_string()
}

/// A userpass-authenticated write of a KV secret, and the response that hands back a
/// new token.
fn kv_write() -> AuditInput {
    let mut input = AuditInput::new(
        Operation::Update,
        "secret/data/app",
        i128::from(NOW_UNIX) * 1_000_000_000,
    );
    input.request_id = "0d9a5c5e-0000-4000-8000-000000000001".into();
    input.mount_point = "secret/".into();
    input.mount_type = "kv".into();
    input.mount_accessor = "kv_0a1b2c3d".into();
    input.client_token = "hvs.CAESIclienttoken".into();
    input.client_token_accessor = "accessorOfTheClient".into();
    input.auth = Some(AuditAuth {
        client_token: "hvs.CAESIclienttoken".into(),
        accessor: "accessorOfTheClient".into(),
        display_name: "userpass-alice".into(),
        policies: vec!["default".into(), "writer".into()],
        token_policies: vec!["default".into(), "writer".into()],
        entity_id: "entity-1".into(),
        token_type: "service".into(),
        token_ttl_seconds: 2_764_800,
        token_issue_time_unix: Some(NOW_UNIX - 60),
        policy_results: Some(PolicyResults {
            allowed: true,
            granting_policies: vec![PolicyInfo {
                name: "writer".into(),
                namespace_id: "root".into(),
                policy_type: "acl".into(),
                ..PolicyInfo::default()
            }],
        }),
        ..AuditAuth::default()
    });
    input.request_data = body(json!({
        "data": {"password": "correct-horse-battery", "api_key": "sk-live-123", "port": 5432, "enabled": true},
        "options": {"cas": 1},
        "comment": "not secret to this mount",
    }));
    input.non_hmac_request_keys = vec!["comment".into()];
    input.non_hmac_response_keys = vec!["version_note".into()];
    input.remote_address = "10.0.0.7".into();
    input.remote_port = 50_123;
    input.response = Some(AuditResponse {
        data: body(
            json!({"version": 3, "destroyed": false, "created_time": "2024-07-02T21:41:49Z", "version_note": "plain"}),
        ),
        auth: Some(AuditAuth {
            client_token: "hvs.NEWTOKENissued".into(),
            accessor: "accessorOfTheNewToken".into(),
            token_type: "service".into(),
            ..AuditAuth::default()
        }),
        warnings: vec!["a warning".into()],
        ..AuditResponse::default()
    });
    input
}

fn parse_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("every audit line is valid JSON"))
        .collect()
}

#[tokio::test]
async fn a_request_and_its_response_are_logged_with_every_secret_hashed() {
    let cluster = cluster();
    let files = MemoryLogFiles::new();
    let broker = broker(&cluster, Arc::new(files.clone()));

    // Enabling writes Vault's test probe as the first line.
    enable(&broker, "file", json!({"file_path": LOG}))
        .await
        .unwrap();
    let probe = parse_lines(&files.lines(LOG));
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0]["type"], "request");
    assert_eq!(probe[0]["request"]["path"], "sys/audit/test");
    assert_eq!(probe[0]["request"]["operation"], "update");

    // The router logs the request, then the response.
    let input = kv_write();
    broker.log_request(&input).unwrap();
    broker.log_response(&input).unwrap();
    let lines = files.lines(LOG);
    assert_eq!(lines.len(), 3);
    for secret in [
        "correct-horse-battery",
        "sk-live-123",
        "hvs.CAESIclienttoken",
        "accessorOfTheClient",
        "hvs.NEWTOKENissued",
        "accessorOfTheNewToken",
    ] {
        for line in &lines[1..] {
            assert!(!line.contains(secret), "{secret} leaked into {line}");
        }
    }
    let entries = parse_lines(&lines);
    let (request, response) = (&entries[1], &entries[2]);

    // Vault's fields are there, in Vault's shape.
    assert_eq!(request["type"], "request");
    assert_eq!(response["type"], "response");
    assert!(lines[1].starts_with("{\"time\":\"2024-07-02T21:41:49"));
    assert_eq!(request["auth"]["display_name"], "userpass-alice");
    assert_eq!(request["auth"]["policies"], json!(["default", "writer"]));
    assert_eq!(request["auth"]["token_type"], "service");
    assert_eq!(request["auth"]["token_ttl"], 2_764_800);
    assert_eq!(request["auth"]["token_issue_time"], "2024-07-02T21:40:49Z");
    assert_eq!(request["auth"]["policy_results"]["allowed"], true);
    assert_eq!(request["request"]["namespace"], json!({"id": "root"}));
    assert_eq!(request["request"]["mount_type"], "kv");
    assert_eq!(request["request"]["remote_address"], "10.0.0.7");
    assert_eq!(request["request"]["remote_port"], 50_123);
    assert_eq!(response["response"]["mount_point"], "secret/");
    assert_eq!(response["response"]["warnings"], json!(["a warning"]));
    assert_eq!(response["request"], request["request"]);

    // What replaced each secret is exactly what sys/audit-hash gives back.
    let data = &request["request"]["data"];
    assert_eq!(
        data["data"]["password"],
        hash_of(&broker, "file", "correct-horse-battery").await
    );
    assert_eq!(
        data["data"]["api_key"],
        hash_of(&broker, "file/", "sk-live-123").await
    );
    let client_token = hash_of(&broker, "file", "hvs.CAESIclienttoken").await;
    assert!(client_token.starts_with("hmac-sha256:") && client_token.len() == 12 + 64);
    assert_eq!(request["auth"]["client_token"], client_token);
    assert_eq!(request["request"]["client_token"], client_token);
    assert_eq!(
        request["request"]["client_token_accessor"],
        hash_of(&broker, "file", "accessorOfTheClient").await
    );
    assert_eq!(
        response["response"]["auth"]["client_token"],
        hash_of(&broker, "file", "hvs.NEWTOKENissued").await
    );
    assert_eq!(
        response["response"]["data"]["created_time"],
        hash_of(&broker, "file", "2024-07-02T21:41:49Z").await
    );

    // Numbers and bools stay plaintext; exempt keys stay plaintext.
    assert_eq!(data["data"]["port"], 5432);
    assert_eq!(data["data"]["enabled"], true);
    assert_eq!(data["options"]["cas"], 1);
    assert_eq!(data["comment"], "not secret to this mount");
    assert_eq!(response["response"]["data"]["version"], 3);
    assert_eq!(response["response"]["data"]["destroyed"], false);
    assert_eq!(response["response"]["data"]["version_note"], "plain");
}

#[tokio::test]
async fn device_options_change_what_is_hashed_and_how_lines_start() {
    let cluster = cluster();
    let files = MemoryLogFiles::new();
    let broker = broker(&cluster, Arc::new(files.clone()));

    // log_raw writes plaintext; hmac_accessor=false leaves accessors readable.
    enable(
        &broker,
        "raw",
        json!({"file_path": "/logs/raw.log", "log_raw": "true"}),
    )
    .await
    .unwrap();
    enable(
        &broker,
        "plain-accessor",
        json!({"file_path": "/logs/accessor.log", "hmac_accessor": false, "prefix": "AUDIT: ", "skip_test": "true"}),
    )
    .await
    .unwrap();
    broker.log_request(&kv_write()).unwrap();

    let raw = parse_lines(&files.lines("/logs/raw.log"));
    assert_eq!(
        raw[1]["request"]["data"]["data"]["password"],
        "correct-horse-battery"
    );
    assert_eq!(raw[1]["auth"]["client_token"], "hvs.CAESIclienttoken");

    let prefixed = files.lines("/logs/accessor.log");
    assert_eq!(prefixed.len(), 1, "skip_test writes no probe");
    let json_text = prefixed[0].strip_prefix("AUDIT: ").expect("prefix first");
    let entry: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(entry["auth"]["accessor"], "accessorOfTheClient");
    assert_eq!(
        entry["request"]["client_token_accessor"],
        "accessorOfTheClient"
    );
    assert_ne!(entry["auth"]["client_token"], "hvs.CAESIclienttoken");

    // elide_list_responses logs the size of a listing, not its names.
    enable(
        &broker,
        "elide",
        json!({"file_path": "/logs/elide.log", "elide_list_responses": "true", "skip_test": "true"}),
    )
    .await
    .unwrap();
    let mut listing = AuditInput::new(Operation::List, "secret/metadata/", 0);
    listing.response = Some(AuditResponse {
        data: body(json!({"keys": ["app", "db/"], "key_info": {"app": {"a": 1}}})),
        ..AuditResponse::default()
    });
    broker.log_response(&listing).unwrap();
    let elided = parse_lines(&files.lines("/logs/elide.log"));
    assert_eq!(
        elided[0]["response"]["data"],
        json!({"keys": 2, "key_info": 1})
    );
    let full = parse_lines(&files.lines("/logs/raw.log"));
    assert_eq!(
        full.last().unwrap()["response"]["data"]["keys"],
        json!(["app", "db/"])
    );

    // stdout and discard are the special paths Vault has.
    enable(&broker, "out", json!({"file_path": "STDOUT"}))
        .await
        .unwrap();
    enable(&broker, "nowhere", json!({"file_path": "discard"}))
        .await
        .unwrap();
    broker.log_request(&kv_write()).unwrap();
    assert_eq!(files.lines("stdout").len(), 2);
}

#[tokio::test]
async fn sys_audit_lists_enables_and_disables_like_vault() {
    let cluster = cluster();
    let files = MemoryLogFiles::new();
    let broker = broker(&cluster, Arc::new(files.clone()));

    // An empty table lists as an empty map.
    let listed = call(&broker, Operation::Read, "audit", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.data, Some(Map::new()));

    call(
        &broker,
        Operation::Update,
        "audit/file",
        json!({"type": "file", "description": "main log", "options": {"file_path": LOG}, "local": true}),
    )
    .await
    .unwrap();
    let listed = call(&broker, Operation::Read, "audit", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::Object(listed.data.unwrap()),
        json!({"file/": {"type": "file", "description": "main log", "options": {"file_path": LOG}, "local": true, "path": "file/"}})
    );

    // Refusals carry Vault's messages and 400s.
    let refusals = [
        (
            "audit/file",
            json!({"type": "file", "options": {"file_path": LOG}}),
            "path already in use",
        ),
        (
            "audit/file/inner",
            json!({"type": "file", "options": {"file_path": LOG}}),
            "path already in use",
        ),
        (
            "audit/sys",
            json!({"type": "syslog"}),
            "unknown backend type: \"syslog\"",
        ),
        (
            "audit/x",
            json!({"type": "file", "options": {}}),
            "\"file_path\" is required",
        ),
        (
            "audit/x",
            json!({"type": "file", "options": {"file_path": "relative.log"}}),
            "must be absolute",
        ),
        (
            "audit/x",
            json!({"type": "file", "options": {"file_path": LOG, "mode": "0755"}}),
            "must not be executable",
        ),
        (
            "audit/x",
            json!({"type": "file", "options": {"file_path": LOG, "log_raw": "maybe"}}),
            "unable to parse 'log_raw'",
        ),
        (
            "audit/x",
            json!({"type": "file", "options": {"file_path": LOG, "format": "jsonx"}}),
            "jsonx",
        ),
        (
            "audit/x",
            json!({"type": "file", "options": {"file_path": ["a"]}}),
            "options must be string valued",
        ),
    ];
    for (path, data, message) in refusals {
        let error = call(&broker, Operation::Update, path, data)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 400, "{path}: {error}");
        assert!(error.to_string().contains(message), "{path}: {error}");
    }

    // audit-hash needs input and a known device.
    let error = call(
        &broker,
        Operation::Update,
        "audit-hash/file",
        json!({"input": ""}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error,
        LogicalError::BadRequest("the \"input\" parameter is empty".into())
    );
    let error = call(
        &broker,
        Operation::Update,
        "audit-hash/none",
        json!({"input": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(error.status(), 400);

    // Disabling answers 204, also for a path that has no device.
    let answer = call(&broker, Operation::Delete, "audit/file", json!({}))
        .await
        .unwrap();
    assert_eq!(answer, Some(Response::default()));
    let answer = call(&broker, Operation::Delete, "audit/file", json!({}))
        .await
        .unwrap();
    assert_eq!(answer, Some(Response::default()));
    assert!(broker.is_empty());

    // Other paths are not ours; other operations are 405.
    assert_eq!(
        call(&broker, Operation::Read, "mounts", json!({}))
            .await
            .unwrap(),
        None
    );
    let error = call(&broker, Operation::Delete, "audit", json!({}))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 405);
}

#[tokio::test]
async fn one_failing_device_is_tolerated_but_none_recording_blocks_the_request() {
    let cluster = cluster();
    let files = MemoryLogFiles::new();
    let broker = broker(&cluster, Arc::new(files.clone()));
    let input = kv_write();

    // With no device at all, nothing needs recording.
    broker.log_request(&input).unwrap();

    enable(&broker, "first", json!({"file_path": "/logs/first.log"}))
        .await
        .unwrap();
    enable(&broker, "second", json!({"file_path": "/logs/second.log"}))
        .await
        .unwrap();

    // One disk fails: the other device records, the request goes on.
    files.set_failing("/logs/first.log", true);
    broker.log_request(&input).unwrap();
    broker.log_response(&input).unwrap();
    assert_eq!(files.lines("/logs/second.log").len(), 3);

    // Both fail: Vault refuses the request with a bare 500.
    files.set_failing("/logs/second.log", true);
    let error = broker.log_request(&input).unwrap_err();
    assert_eq!(error, AuditError::NotRecorded("request"));
    let refusal = LogicalError::from(error);
    assert_eq!(
        (refusal.status(), refusal.to_string()),
        (500, "internal error".to_string())
    );
    assert!(broker.log_response(&input).is_err());

    // A recovered disk lets requests through again.
    files.set_failing("/logs/first.log", false);
    broker.log_request(&input).unwrap();
}

#[tokio::test]
async fn an_unwritable_path_fails_at_enable_and_leaves_nothing_behind() {
    let cluster = cluster();
    let files = MemoryLogFiles::new();
    let broker = broker(&cluster, Arc::new(files.clone()));
    files.set_failing("/root/forbidden.log", true);

    let error = enable(&broker, "file", json!({"file_path": "/root/forbidden.log"}))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
    assert!(
        error
            .to_string()
            .starts_with("audit backend failed test message:"),
        "{error}"
    );
    assert!(broker.is_empty());
    assert!(cluster.backend.dump().is_empty(), "no table was written");
}

#[tokio::test]
async fn devices_and_their_salts_survive_a_reload_from_storage() {
    let cluster = cluster();
    let files = MemoryLogFiles::new();
    let broker = broker(&cluster, Arc::new(files.clone()));
    enable(&broker, "file", json!({"file_path": LOG}))
        .await
        .unwrap();
    call(
        &broker,
        Operation::Update,
        "audit/local-file",
        json!({"type": "file", "options": {"file_path": "/logs/local.log"}, "local": true}),
    )
    .await
    .unwrap();
    let hash_before = hash_of(&broker, "file", "hunter2").await;

    // Each device lands under its own key in its class's table, encrypted by the
    // barrier: one replicated, one local, both in the audit table's group.
    let classes: Vec<(String, crate::storage::KeyClass, crate::storage::KeyGroup)> = cluster
        .backend
        .dump()
        .into_iter()
        .map(|(key, _)| {
            let (class, group) = crate::storage::classify(&key).unwrap();
            (key, class, group)
        })
        .collect();
    let devices = broker.devices();
    let table = crate::storage::KeyGroup::Core(crate::storage::CoreGroup::AuditTable);
    assert_eq!(
        classes,
        vec![
            (
                format!("core/audit/{}", devices[0].uuid),
                crate::storage::KeyClass::Replicated,
                table.clone()
            ),
            (
                format!("core/local-audit/{}", devices[1].uuid),
                crate::storage::KeyClass::Local,
                table
            ),
        ]
    );
    let salt = broker.devices()[0].salt.clone();
    for (_, raw) in cluster.backend.dump() {
        assert!(
            !raw.windows(salt.len())
                .any(|window| window == salt.as_bytes())
        );
    }

    // After a restart (unseal), the same devices hash with the same salts.
    let reloaded = AuditBroker::load(
        cluster.view.clone(),
        Arc::new(files.clone()),
        cluster.rng.clone(),
    )
    .unwrap();
    assert_eq!(reloaded.devices(), broker.devices());
    assert_eq!(hash_of(&reloaded, "file", "hunter2").await, hash_before);
    reloaded.log_request(&kv_write()).unwrap();
    assert_eq!(files.lines(LOG).len(), 2);

    // Disabling and enabling again gives a fresh salt, as Vault does.
    call(&reloaded, Operation::Delete, "audit/file", json!({}))
        .await
        .unwrap();
    enable(&reloaded, "file", json!({"file_path": LOG}))
        .await
        .unwrap();
    assert_ne!(hash_of(&reloaded, "file", "hunter2").await, hash_before);
    let again =
        AuditBroker::load(cluster.view.clone(), Arc::new(files), cluster.rng.clone()).unwrap();
    assert_eq!(again.devices().len(), 2);
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // the test reads the file the production sink wrote
async fn a_real_file_receives_the_lines_through_the_production_sink() {
    let cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/vault_audit.log");
    let path_text = path.to_str().unwrap().to_string();
    let broker = broker(&cluster, Arc::new(OsLogFiles));

    enable(&broker, "file", json!({"file_path": path_text}))
        .await
        .unwrap();
    let input = kv_write();
    broker.log_request(&input).unwrap();
    broker.log_response(&input).unwrap();

    let text = std::fs::read_to_string(&path).unwrap(); // seam-ok: test harness
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3);
    assert!(text.ends_with('\n'));
    assert!(!text.contains("correct-horse-battery"));
    let entries = parse_lines(&lines);
    assert_eq!(
        entries[2]["request"]["data"]["data"]["password"],
        hash_of(&broker, "file", "correct-horse-battery").await
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode(); // seam-ok: test harness
        assert_eq!(mode & 0o777, 0o600);
    }

    // A directory that cannot be written fails at enable time.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"a file, not a directory").unwrap(); // seam-ok: test harness
    let error = enable(
        &broker,
        "other",
        json!({"file_path": blocked.join("audit.log").to_str().unwrap()}),
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("audit backend failed test message:"),
        "{error}"
    );
}

/// The handlers run inside axum's handlers, so their futures must be `Send`.
#[test]
fn handler_and_broker_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let cluster = cluster();
    let broker = broker(&cluster, Arc::new(MemoryLogFiles::new()));
    let request = Request::new(Operation::Read, "audit", Map::new(), NOW_UNIX);
    assert_send(&handle(&broker, &request));
    assert_send(&broker.disable("file"));
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<AuditBroker>();
}
