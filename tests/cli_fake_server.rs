//! The `arca` binary end to end against a small scripted HTTP server on loopback: the
//! requests it sends (paths, headers, bodies), what it prints, and its exit codes.
//! The answers are the shapes from the reference, so these tests pin the CLI's side of
//! the contract while the real server is being built.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real threads and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

type Route = Box<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

struct FakeServer {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    /// Serve `route` on a fresh loopback port until the test process ends.
    fn start(route: Route) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_server = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                handle(stream, &route, &seen_by_server);
            }
        });
        FakeServer { address, seen }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn handle(stream: TcpStream, route: &Route, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let request = Seen {
        method,
        target,
        headers,
        body: serde_json::from_slice(&body).ok(),
    };
    let (status, answer) = route(&request);
    seen.lock().unwrap().push(request);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// Run `arca` with a clean environment pointed at `address`, a private HOME, and
/// `stdin` piped in.
fn arca(address: &str, home: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .env_clear()
        .env("VAULT_ADDR", address)
        .env("HOME", home)
        .env("VAULT_MAX_RETRIES", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SEAL_STATUS: &str = r#"{"type":"shamir","initialized":true,"sealed":false,"t":1,"n":1,"progress":0,"nonce":"","version":"0.1.0","build_date":"2026-01-01T00:00:00Z","migration":false,"cluster_name":"vault-cluster-4b364521","cluster_id":"0605f249-b686-6282-88cd-35d70f1b0113","recovery_seal":false,"storage_type":"raft"}"#;
const LEADER: &str = r#"{"ha_enabled":true,"is_self":false,"active_time":"0001-01-01T00:00:00Z","leader_address":"","leader_cluster_address":"","performance_standby":false,"performance_standby_last_remote_wal":0,"raft_committed_index":54,"raft_applied_index":53}"#;

fn tutorial_route() -> Route {
    Box::new(|request: &Seen| {
        let path = request.target.split('?').next().unwrap_or_default();
        match (request.method.as_str(), path) {
            ("PUT", "/v1/sys/init") => (
                200,
                r#"{"keys":["d3b4"],"keys_base64":["037yeI1EmdcgtNy+h2+vPGCyEWOYecwrarW/lBqsiSA="],"root_token":"hvs.aQrUNCbqnwq3t4tw5K6UcrWF"}"#.to_string(),
            ),
            ("PUT", "/v1/sys/unseal") | ("GET", "/v1/sys/seal-status") => (200, SEAL_STATUS.to_string()),
            ("GET", "/v1/sys/leader") => (200, LEADER.to_string()),
            ("GET", "/v1/auth/token/lookup-self") => (
                200,
                json!({"data": {"accessor": "VzzI18zBxpMBWUo1e3yruLFe", "policies": ["root"], "ttl": 0, "renewable": false, "meta": null}}).to_string(),
            ),
            ("PUT", "/v1/sys/policies/acl/superpolicy") => (204, String::new()),
            ("POST", "/v1/sys/auth/userpass/") => (204, String::new()),
            ("PUT", "/v1/sys/replication/performance/primary/enable") => (
                200,
                json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0, "data": null, "wrap_info": null, "auth": null,
                       "warnings": ["This cluster is being enabled as a primary for replication. Vault will be unavailable for a brief period and will resume service shortly."]}).to_string(),
            ),
            ("PUT", "/v1/sys/replication/performance/primary/secondary-token") => (
                200,
                json!({"request_id": "", "lease_id": "", "renewable": false, "lease_duration": 0, "data": null, "warnings": null, "auth": null,
                       "wrap_info": {"token": "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9.e30.sig", "accessor": "a", "ttl": 1800, "creation_time": "2024-07-02T21:41:49Z", "creation_path": "sys/replication/performance/primary/secondary-token", "wrapped_accessor": ""}}).to_string(),
            ),
            ("PUT", "/v1/auth/userpass/login/superuser") => (
                200,
                json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0, "data": null, "wrap_info": null, "warnings": null,
                       "auth": {"client_token": "hvs.CAESIKZs", "accessor": "xTlRFFdIdtI2XwPVLEOtTv55", "policies": ["default", "superpolicy"], "token_policies": ["default", "superpolicy"],
                                "metadata": {"username": "superuser"}, "lease_duration": 2764800, "renewable": true, "entity_id": "e", "token_type": "service", "orphan": true, "mfa_requirement": null, "num_uses": 0}}).to_string(),
            ),
            ("PUT", "/v1/sys/wrapping/unwrap") => (
                200,
                json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0, "wrap_info": null, "warnings": null, "auth": null,
                       "data": {"foo": "bar", "ttl": 90}}).to_string(),
            ),
            ("GET", "/v1/secret/forbidden") => (403, r#"{"errors":["permission denied"]}"#.to_string()),
            _ => (404, r#"{"errors":[]}"#.to_string()),
        }
    })
}

#[test]
fn the_tutorial_primary_steps() {
    let server = FakeServer::start(tutorial_route());
    let home = tempfile::tempdir().unwrap();
    let address = server.address.clone();

    // Initialize: the key and token lines the tutorial greps for.
    let init = arca(
        &address,
        home.path(),
        &[
            "operator",
            "init",
            "-address",
            &address,
            "-key-shares=1",
            "-key-threshold=1",
        ],
        "",
    );
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    let init_text = text(&init.stdout);
    assert!(init_text.starts_with("Unseal Key 1: 037yeI1EmdcgtNy+h2+vPGCyEWOYecwrarW/lBqsiSA=\n\nInitial Root Token: hvs.aQrUNCbqnwq3t4tw5K6UcrWF\n\nArca initialized with 1 key shares"), "{init_text}");

    // Unseal with the key as an argument: the status table.
    let unseal = arca(
        &address,
        home.path(),
        &[
            "operator",
            "unseal",
            "037yeI1EmdcgtNy+h2+vPGCyEWOYecwrarW/lBqsiSA=",
        ],
        "",
    );
    assert_eq!(unseal.status.code(), Some(0), "{}", text(&unseal.stderr));
    assert!(text(&unseal.stdout).contains("HA Mode                 standby\nActive Node Address     <none>\nRaft Committed Index    54\n"));

    // `echo $TOKEN | xargs arca login -address=...`: the token is an argument.
    let login = arca(
        &address,
        home.path(),
        &[
            "login",
            &format!("-address={address}"),
            "hvs.aQrUNCbqnwq3t4tw5K6UcrWF",
        ],
        "",
    );
    assert_eq!(login.status.code(), Some(0), "{}", text(&login.stderr));
    let login_text = text(&login.stdout);
    assert!(
        login_text.starts_with("Success! You are now authenticated."),
        "{login_text}"
    );
    assert!(
        login_text.contains("token_duration       ∞\n"),
        "{login_text}"
    );
    let stored = std::fs::read_to_string(home.path().join(".arca-token")).unwrap();
    assert_eq!(stored, "hvs.aQrUNCbqnwq3t4tw5K6UcrWF");

    // `arca policy write -address=... superpolicy -<<EOF`: flags first, policy on stdin.
    let policy = "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }\n";
    let written = arca(
        &address,
        home.path(),
        &[
            "policy",
            "write",
            &format!("-address={address}"),
            "superpolicy",
            "-",
        ],
        policy,
    );
    assert_eq!(
        text(&written.stdout),
        "Success! Uploaded policy: superpolicy\n"
    );

    let enabled = arca(
        &address,
        home.path(),
        &["auth", "enable", &format!("-address={address}"), "userpass"],
        "",
    );
    assert_eq!(
        text(&enabled.stdout),
        "Success! Enabled userpass auth method at: userpass/\n"
    );

    // `arca write -f .../primary/enable`: only the warnings block, on stderr.
    let enable = arca(
        &address,
        home.path(),
        &["write", "-f", "sys/replication/performance/primary/enable"],
        "",
    );
    assert_eq!(enable.status.code(), Some(0));
    assert_eq!(text(&enable.stdout), "");
    assert_eq!(
        text(&enable.stderr),
        "WARNING! The following warnings were returned from Vault:\n\n  * This cluster is being enabled as a primary for replication. Vault will be\n  unavailable for a brief period and will resume service shortly.\n\n"
    );

    // `... secondary-token id=secondary -format=json | jq -r '.wrap_info | .token'`.
    let token = arca(
        &address,
        home.path(),
        &[
            "write",
            "sys/replication/performance/primary/secondary-token",
            "id=secondary",
            "-format=json",
        ],
        "",
    );
    assert_eq!(token.status.code(), Some(0), "{}", text(&token.stderr));
    let printed: Value = serde_json::from_slice(&token.stdout).unwrap();
    assert_eq!(
        printed["wrap_info"]["token"],
        "eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9.e30.sig"
    );

    // What went over the wire.
    let requests = server.requests();
    assert!(
        requests.iter().all(
            |request| request.headers.get("x-vault-request").map(String::as_str) == Some("true")
        )
    );
    let init_request = requests
        .iter()
        .find(|request| request.target == "/v1/sys/init")
        .unwrap();
    assert_eq!(
        init_request.body,
        Some(json!({"secret_shares": 1, "secret_threshold": 1}))
    );
    let policy_request = requests
        .iter()
        .find(|request| request.target.ends_with("acl/superpolicy"))
        .unwrap();
    assert_eq!(policy_request.body, Some(json!({"policy": policy})));
    assert_eq!(
        policy_request
            .headers
            .get("x-vault-token")
            .map(String::as_str),
        Some("hvs.aQrUNCbqnwq3t4tw5K6UcrWF")
    );
    let token_request = requests
        .iter()
        .find(|request| request.target.ends_with("secondary-token"))
        .unwrap();
    assert_eq!(token_request.body, Some(json!({"id": "secondary"})));
    let enable_request = requests
        .iter()
        .find(|request| request.target.ends_with("primary/enable"))
        .unwrap();
    assert_eq!(enable_request.body, None);
}

#[test]
fn userpass_login_prompts_for_the_password() {
    let server = FakeServer::start(tutorial_route());
    let home = tempfile::tempdir().unwrap();
    // A token from another cluster sits in the helper file; it must not be sent.
    std::fs::write(home.path().join(".arca-token"), "hvs.stale").unwrap();
    let login = arca(
        &server.address,
        home.path(),
        &["login", "-method=userpass", "username=superuser"],
        "vaultMagic\n",
    );
    assert_eq!(login.status.code(), Some(0), "{}", text(&login.stderr));
    let output = text(&login.stdout);
    assert!(
        output.starts_with("Password (will be hidden): \nSuccess! You are now authenticated."),
        "{output}"
    );
    assert!(output.ends_with("token_policies         [\"default\" \"superpolicy\"]\nidentity_policies      []\npolicies               [\"default\" \"superpolicy\"]\ntoken_meta_username    superuser\n"), "{output}");
    let request = server
        .requests()
        .into_iter()
        .find(|request| request.target.contains("login"))
        .unwrap();
    assert_eq!(request.body, Some(json!({"password": "vaultMagic"})));
    assert_eq!(request.headers.get("x-vault-token"), None);
    assert_eq!(
        std::fs::read_to_string(home.path().join(".arca-token")).unwrap(),
        "hvs.CAESIKZs"
    );
}

#[test]
fn errors_and_exit_codes() {
    let server = FakeServer::start(tutorial_route());
    let home = tempfile::tempdir().unwrap();

    let denied = arca(
        &server.address,
        home.path(),
        &["read", "secret/forbidden"],
        "",
    );
    assert_eq!(denied.status.code(), Some(2));
    assert_eq!(
        text(&denied.stderr),
        format!(
            "Error reading secret/forbidden: Error making API request.\n\nURL: GET {}/v1/secret/forbidden\nCode: 403. Errors:\n\n* permission denied\n",
            server.address
        )
    );

    let missing = arca(
        &server.address,
        home.path(),
        &["read", "secret/nothing"],
        "",
    );
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(text(&missing.stderr), "No value found at secret/nothing\n");

    let no_data = arca(&server.address, home.path(), &["write", "secret/x"], "");
    assert_eq!(no_data.status.code(), Some(1));
    assert_eq!(text(&no_data.stderr), "Must supply data or use -force\n");

    let bad_flag = arca(&server.address, home.path(), &["read", "-bogus", "x"], "");
    assert_eq!(bad_flag.status.code(), Some(1));
    assert_eq!(
        text(&bad_flag.stderr),
        "flag provided but not defined: -bogus\n"
    );

    let status = arca(&server.address, home.path(), &["status"], "");
    assert_eq!(status.status.code(), Some(0));
    assert!(text(&status.stdout).starts_with("Key                     Value\n---                     -----\nSeal Type               shamir\n"));

    // Nobody listening: a transport error, exit 1 for status, 2 for the rest.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = arca(&nowhere, home.path(), &["status"], "");
    assert_eq!(down.status.code(), Some(1));
    assert!(
        text(&down.stderr).starts_with("Error checking seal status: Get \""),
        "{}",
        text(&down.stderr)
    );
    let down = arca(&nowhere, home.path(), &["read", "x"], "");
    assert_eq!(down.status.code(), Some(2));
}

fn kv_route() -> Route {
    Box::new(|request: &Seen| {
        let metadata = json!({"created_time": "2018-03-22T02:24:06.945319214Z", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": 1});
        match (request.method.as_str(), request.target.as_str()) {
            ("GET", target) if target.starts_with("/v1/sys/internal/ui/mounts/secret") => (
                200,
                json!({"data": {"path": "secret/", "type": "kv", "options": {"version": "2"}}}).to_string(),
            ),
            ("PUT", "/v1/secret/data/creds") => (200, json!({"data": metadata}).to_string()),
            ("GET", "/v1/secret/data/creds") => (
                200,
                json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0, "warnings": null,
                       "data": {"data": {"passcode": "my-long-passcode"}, "metadata": metadata}}).to_string(),
            ),
            ("GET", "/v1/secret/metadata/?list=true") => (200, json!({"data": {"keys": ["creds", "team/"]}}).to_string()),
            _ => (404, r#"{"errors":[]}"#.to_string()),
        }
    })
}

#[test]
fn kv_v2_put_get_list() {
    let server = FakeServer::start(kv_route());
    let home = tempfile::tempdir().unwrap();

    let put = arca(
        &server.address,
        home.path(),
        &["kv", "put", "secret/creds", "passcode=my-long-passcode"],
        "",
    );
    assert_eq!(put.status.code(), Some(0), "{}", text(&put.stderr));
    assert!(text(&put.stdout).starts_with("== Secret Path ==\nsecret/data/creds\n\n======= Metadata =======\nKey                Value\n"), "{}", text(&put.stdout));
    let written = server
        .requests()
        .into_iter()
        .find(|request| request.method == "PUT")
        .unwrap();
    assert_eq!(
        written.body,
        Some(json!({"data": {"passcode": "my-long-passcode"}}))
    );

    let get = arca(
        &server.address,
        home.path(),
        &["kv", "get", "-mount=secret", "creds"],
        "",
    );
    assert_eq!(get.status.code(), Some(0), "{}", text(&get.stderr));
    assert!(text(&get.stdout).ends_with("====== Data ======\nKey         Value\n---         -----\npasscode    my-long-passcode\n"), "{}", text(&get.stdout));

    let field = arca(
        &server.address,
        home.path(),
        &["kv", "get", "-field=passcode", "secret/creds"],
        "",
    );
    assert_eq!(text(&field.stdout), "my-long-passcode");

    let list = arca(&server.address, home.path(), &["kv", "list", "secret/"], "");
    assert_eq!(text(&list.stdout), "Keys\n----\ncreds\nteam/\n");

    let json_list = arca(
        &server.address,
        home.path(),
        &["list", "-format=json", "secret/metadata"],
        "",
    );
    assert_eq!(text(&json_list.stdout), "[\n  \"creds\",\n  \"team/\"\n]\n");
}

#[test]
fn unwrap_prints_the_wrapped_secret() {
    let server = FakeServer::start(tutorial_route());
    let home = tempfile::tempdir().unwrap();
    let unwrapped = arca(
        &server.address,
        home.path(),
        &["unwrap", "hvs.wrapping"],
        "",
    );
    assert_eq!(
        unwrapped.status.code(),
        Some(0),
        "{}",
        text(&unwrapped.stderr)
    );
    assert_eq!(
        text(&unwrapped.stdout),
        "Key    Value\n---    -----\nfoo    bar\nttl    1m30s\n"
    );
    let request = server.requests().pop().unwrap();
    assert_eq!(request.body, Some(json!({"token": "hvs.wrapping"})));
}

/// What the new commands put on the wire: `-header` values, the merge-patch content
/// type of `kv metadata patch`, the bodies of `token capabilities` and `lease revoke`.
#[test]
fn headers_patches_and_capability_bodies_on_the_wire() {
    let server = FakeServer::start(Box::new(|request: &Seen| {
        let path = request.target.split('?').next().unwrap_or_default();
        match (request.method.as_str(), path) {
            ("GET", "/v1/sys/internal/ui/mounts/kv/app") => (
                200,
                json!({"data": {"path": "kv/", "type": "kv", "options": {"version": "2"}}})
                    .to_string(),
            ),
            ("PATCH", "/v1/kv/metadata/app") | ("PUT", "/v1/sys/leases/revoke") => {
                (204, String::new())
            }
            ("POST", "/v1/sys/capabilities-self") => (
                200,
                json!({"data": {"kv/data/app": ["update", "read"], "capabilities": ["update", "read"]}})
                    .to_string(),
            ),
            _ => (404, r#"{"errors":[]}"#.to_string()),
        }
    }));
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| arca(&server.address, home.path(), args, "");

    let patched = run(&[
        "kv",
        "metadata",
        "patch",
        "-mount=kv",
        "-header=X-Team=blue",
        "-max-versions=3",
        "-custom-metadata=owner=ops",
        "app",
    ]);
    assert_eq!(patched.status.code(), Some(0), "{}", text(&patched.stderr));
    assert_eq!(
        text(&patched.stdout),
        "Success! Data written to: kv/metadata/app\n"
    );
    let capabilities = run(&["token", "capabilities", "kv/data/app"]);
    assert_eq!(text(&capabilities.stdout), "read, update\n");
    let revoked = run(&["lease", "revoke", "auth/token/create/abc"]);
    assert_eq!(
        text(&revoked.stdout),
        "Success! Revoked lease: auth/token/create/abc\n"
    );

    let requests = server.requests();
    let patch = requests
        .iter()
        .find(|request| request.method == "PATCH")
        .expect("a PATCH request");
    assert_eq!(
        patch.headers["content-type"],
        "application/merge-patch+json"
    );
    assert_eq!(patch.headers["x-team"], "blue");
    assert_eq!(
        patch.body,
        Some(json!({"max_versions": 3, "custom_metadata": {"owner": "ops"}}))
    );
    // The preflight carries the header too; the capability check sends the path.
    assert!(
        requests
            .iter()
            .filter(|request| request.target.starts_with("/v1/sys/internal/ui/mounts/"))
            .all(|request| request.headers.get("x-team").map(String::as_str) == Some("blue"))
    );
    let check = requests
        .iter()
        .find(|request| request.target == "/v1/sys/capabilities-self")
        .unwrap();
    assert_eq!(check.body, Some(json!({"paths": ["kv/data/app"]})));
    let revoke = requests
        .iter()
        .find(|request| request.target == "/v1/sys/leases/revoke")
        .unwrap();
    assert_eq!(
        revoke.body,
        Some(json!({"lease_id": "auth/token/create/abc"}))
    );
}
