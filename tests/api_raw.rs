//! Vault's HTTP API on one dev node, by raw requests where vaultrs does not reach:
//! a policy matrix (deny, sudo, `*`, `+`, create vs update), capabilities-self,
//! response wrapping by header, audit lines that hold only HMACs of secrets, every
//! bad-input class answered with a clean error envelope, and the response shapes of §3.

// Test harness: real sockets, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use serde_json::{Value, json};

/// One answer: status, headers (lower-case names) and the body parsed as JSON
/// (`Null` when empty, a string when not JSON).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

struct Api {
    http: reqwest::blocking::Client,
    address: String,
}

impl Api {
    fn new(address: &str) -> Api {
        Api {
            http: support::client(),
            address: address.to_string(),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.address));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
        let body = body.map(|body| serde_json::to_vec(&body).unwrap());
        self.send(method, path, Some(token), &[], body)
    }

    /// Call and insist on a status, printing the body when it differs.
    fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let answer = self.call(method, path, token, body);
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        answer.body
    }

    fn create_token(&self, policies: &[&str]) -> String {
        let body = self.expect(
            200,
            "POST",
            "auth/token/create",
            "root",
            Some(json!({"policies": policies})),
        );
        body["auth"]["client_token"].as_str().unwrap().to_string()
    }
}

/// A request written byte for byte on a socket, so no client library normalizes the
/// path (`..` segments) first. Returns the status and the body.
fn raw_http(address: &str, request_line_and_headers: &str, body: &[u8]) -> (u16, Value) {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    let head = format!(
        "{request_line_and_headers}\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    // Chunked bodies are not expected: every answer here is small and has a length.
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

/// A clean Vault error envelope: exactly `{"errors": [strings]}`.
fn assert_error_envelope(what: &str, body: &Value) {
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not a JSON object: {body}"));
    assert_eq!(object.len(), 1, "{what}: {body}");
    assert!(
        object["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {body}"))
            .iter()
            .all(Value::is_string),
        "{what}: {body}"
    );
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// (who, token, method, path, body, expected status).
type MatrixCase<'a> = (&'a str, &'a str, &'a str, &'a str, Option<Value>, u16);

const POLICIES: &[(&str, &str)] = &[
    (
        "team-reader",
        r#"
path "secret/data/team/*" { capabilities = ["read", "list"] }
path "secret/data/team/locked" { capabilities = ["deny"] }
path "secret/data/+/shared" { capabilities = ["read"] }
"#,
    ),
    (
        "inbox-creator",
        r#"path "secret/data/inbox/*" { capabilities = ["create"] }"#,
    ),
    (
        "inbox-updater",
        r#"path "secret/data/inbox/*" { capabilities = ["update"] }"#,
    ),
    (
        "sys-admin",
        r#"
path "sys/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "auth/token/accessors" { capabilities = ["list"] }
"#,
    ),
    (
        "sys-sudo",
        r#"
path "sys/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
path "auth/token/accessors" { capabilities = ["list", "sudo"] }
"#,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_matrix_and_capabilities_self() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    blocking(move || {
        let api = Api::new(&address);

        // Setup: policies, one token per policy, and the secrets the matrix touches.
        for (name, hcl) in POLICIES {
            api.expect(
                204,
                "PUT",
                &format!("sys/policies/acl/{name}"),
                "root",
                Some(json!({"policy": hcl})),
            );
        }
        let reader = api.create_token(&["team-reader"]);
        let creator = api.create_token(&["inbox-creator"]);
        let updater = api.create_token(&["inbox-updater"]);
        let admin = api.create_token(&["sys-admin"]);
        let sudo = api.create_token(&["sys-sudo"]);
        for key in ["team/a", "team/locked", "other/shared", "inbox/existing"] {
            api.expect(
                200,
                "PUT",
                &format!("secret/data/{key}"),
                "root",
                Some(json!({"data": {"v": key}})),
            );
        }

        // The matrix: (token, method, path, body, expected status).
        let write = Some(json!({"data": {"v": "new"}}));
        let cases: Vec<MatrixCase> = vec![
            // `*` grants, an exact `deny` beats the glob, `+` matches one segment only.
            ("reader", &reader, "GET", "secret/data/team/a", None, 200),
            (
                "reader",
                &reader,
                "GET",
                "secret/data/team/locked",
                None,
                403,
            ),
            (
                "reader",
                &reader,
                "GET",
                "secret/data/other/shared",
                None,
                200,
            ),
            (
                "reader",
                &reader,
                "GET",
                "secret/data/a/b/shared",
                None,
                403,
            ),
            (
                "reader",
                &reader,
                "PUT",
                "secret/data/team/a",
                write.clone(),
                403,
            ),
            ("reader", &reader, "GET", "secret/data/elsewhere", None, 403),
            ("reader", &reader, "DELETE", "secret/data/team/a", None, 403),
            // create vs update: a new key needs create, an existing one update.
            (
                "creator",
                &creator,
                "PUT",
                "secret/data/inbox/new",
                write.clone(),
                200,
            ),
            (
                "creator",
                &creator,
                "PUT",
                "secret/data/inbox/existing",
                write.clone(),
                403,
            ),
            (
                "updater",
                &updater,
                "PUT",
                "secret/data/inbox/fresh",
                write.clone(),
                403,
            ),
            (
                "updater",
                &updater,
                "PUT",
                "secret/data/inbox/existing",
                write.clone(),
                200,
            ),
            (
                "updater",
                &updater,
                "GET",
                "secret/data/inbox/existing",
                None,
                403,
            ),
            // Root-protected paths need sudo even when the other capabilities match.
            ("admin", &admin, "GET", "sys/mounts", None, 200),
            ("admin", &admin, "GET", "sys/audit", None, 403),
            (
                "admin",
                &admin,
                "POST",
                "sys/auth/x",
                Some(json!({"type": "userpass"})),
                403,
            ),
            ("admin", &admin, "PUT", "sys/rotate", None, 403),
            ("admin", &admin, "PUT", "sys/seal", None, 403),
            ("admin", &admin, "LIST", "auth/token/accessors", None, 403),
            ("sudo", &sudo, "GET", "sys/audit", None, 200),
            (
                "sudo",
                &sudo,
                "POST",
                "sys/auth/x",
                Some(json!({"type": "userpass"})),
                204,
            ),
            ("sudo", &sudo, "PUT", "sys/rotate", None, 204),
            ("sudo", &sudo, "LIST", "auth/token/accessors", None, 200),
            ("root", "root", "GET", "sys/audit", None, 200),
            ("root", "root", "LIST", "auth/token/accessors", None, 200),
        ];
        let mut failures = Vec::new();
        for (who, token, method, path, body, status) in cases {
            let answer = api.call(method, path, token, body);
            if answer.status != status {
                failures.push(format!(
                    "{who} {method} {path}: want {status}, got {} {}",
                    answer.status, answer.body
                ));
            }
            if answer.status == 403 {
                assert_eq!(answer.body, json!({"errors": ["permission denied"]}));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // capabilities-self: per path and the combined list, as Vault answers.
        let body = api.expect(
            200,
            "POST",
            "sys/capabilities-self",
            &reader,
            Some(json!({"paths": ["secret/data/team/a", "secret/data/team/locked"]})),
        );
        assert_eq!(body["secret/data/team/a"], json!(["list", "read"]));
        assert_eq!(body["secret/data/team/locked"], json!(["deny"]));
        assert_eq!(body["data"]["secret/data/team/a"], json!(["list", "read"]));
        let body = api.expect(
            200,
            "POST",
            "sys/capabilities-self",
            "root",
            Some(json!({"path": "anything/at/all"})),
        );
        assert_eq!(body["capabilities"], json!(["root"]));

        // The same answers for another token, by token and by accessor.
        let looked = api.expect(
            200,
            "POST",
            "auth/token/lookup",
            "root",
            Some(json!({"token": reader})),
        );
        let accessor = looked["data"]["accessor"].as_str().unwrap();
        for (path, body) in [
            (
                "sys/capabilities",
                json!({"token": reader, "paths": ["secret/data/team/a"]}),
            ),
            (
                "sys/capabilities-accessor",
                json!({"accessor": accessor, "paths": ["secret/data/team/a"]}),
            ),
        ] {
            let body = api.expect(200, "POST", path, "root", Some(body));
            assert_eq!(body["capabilities"], json!(["list", "read"]), "{path}");
        }
        let unknown = api.call(
            "POST",
            "sys/capabilities-accessor",
            "root",
            Some(json!({"accessor": "nope", "paths": ["a"]})),
        );
        assert_eq!(unknown.status, 400, "{}", unknown.body);

        // sys/seal with sudo: 204, and then the node answers 503 "Vault is sealed".
        let answer = api.call("PUT", "sys/seal", &sudo, None);
        assert_eq!(answer.status, 204, "{}", answer.body);
        let sealed = api.call("GET", "secret/data/team/a", "root", None);
        assert_eq!(sealed.status, 503, "{}", sealed.body);
        assert_eq!(sealed.body, json!({"errors": ["Vault is sealed"]}));
    })
    .await;
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_wrapping_by_header_is_single_use() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    blocking(move || {
        let api = Api::new(&address);
        let written = api.expect(
            200,
            "PUT",
            "secret/data/wrapped",
            "root",
            Some(json!({"data": {"api_key": "k-123"}})),
        );
        assert_eq!(written["data"]["version"], 1);

        // A KV read with X-Vault-Wrap-TTL gives only wrap_info.
        let answer = api.send(
            "GET",
            "secret/data/wrapped",
            Some("root"),
            &[("X-Vault-Wrap-TTL", "60")],
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["data"], Value::Null);
        let info = &answer.body["wrap_info"];
        assert_eq!(info["ttl"], 60);
        assert_eq!(info["creation_path"], "secret/data/wrapped");
        assert!(info["accessor"].as_str().is_some_and(|a| !a.is_empty()));
        assert!(info["creation_time"].as_str().is_some());
        let wrapping_token = info["token"].as_str().unwrap().to_string();

        // Lookup is unauthenticated and shows the creation facts.
        let lookup = api.send(
            "POST",
            "sys/wrapping/lookup",
            None,
            &[],
            Some(serde_json::to_vec(&json!({"token": wrapping_token})).unwrap()),
        );
        assert_eq!(lookup.status, 200, "{}", lookup.body);
        assert_eq!(lookup.body["data"]["creation_ttl"], 60);
        assert_eq!(lookup.body["data"]["creation_path"], "secret/data/wrapped");

        // Unwrap with the wrapping token as X-Vault-Token: the original response.
        let unwrapped = api.expect(200, "POST", "sys/wrapping/unwrap", &wrapping_token, None);
        assert_eq!(unwrapped["data"]["data"], json!({"api_key": "k-123"}));
        assert_eq!(unwrapped["data"]["metadata"]["version"], 1);

        // Single use: the second unwrap is refused with 400.
        let again = api.call("POST", "sys/wrapping/unwrap", &wrapping_token, None);
        assert!(matches!(again.status, 400 | 403), "{}", again.body);
        let again = api.call(
            "POST",
            "sys/wrapping/unwrap",
            "root",
            Some(json!({"token": wrapping_token})),
        );
        assert_eq!(again.status, 400, "{}", again.body);
        assert_eq!(
            again.body,
            json!({"errors": ["wrapping token is not valid or does not exist"]})
        );

        // sys/wrapping/wrap without the header is refused.
        let refused = api.call("POST", "sys/wrapping/wrap", "root", Some(json!({"a": "b"})));
        assert_eq!(refused.status, 400, "{}", refused.body);
    })
    .await;
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lines_hold_only_hmacs_of_secrets() {
    let logs = tempfile::tempdir().unwrap();
    let dev = support::start_dev_node(Arc::new(arca::env::OsLogFiles)).await;
    let address = dev.address.clone();
    let log_path = logs.path().join("audit.log");
    blocking(move || {
        let api = Api::new(&address);
        let secret = "s3cr3t-value-9f2a";
        let password = "pa55word-7c1e";

        // A file device; then a secret write and read, a user and a login.
        api.expect(
            204,
            "PUT",
            "sys/audit/file",
            "root",
            Some(json!({"type": "file", "options": {"file_path": log_path.to_str().unwrap()}})),
        );
        let devices = api.expect(200, "GET", "sys/audit", "root", None);
        assert_eq!(devices["file/"]["type"], "file");
        assert_eq!(devices["file/"]["path"], "file/");
        api.expect(
            200,
            "PUT",
            "secret/data/audited",
            "root",
            Some(json!({"data": {"password": secret}})),
        );
        api.expect(200, "GET", "secret/data/audited", "root", None);
        api.expect(
            204,
            "POST",
            "sys/auth/userpass",
            "root",
            Some(json!({"type": "userpass"})),
        );
        api.expect(
            204,
            "POST",
            "auth/userpass/users/bob",
            "root",
            Some(json!({"password": password, "token_policies": ["default"]})),
        );
        let login = api.send(
            "POST",
            "auth/userpass/login/bob",
            None,
            &[],
            Some(serde_json::to_vec(&json!({"password": password})).unwrap()),
        );
        assert_eq!(login.status, 200, "{}", login.body);
        let user_token = login.body["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        api.expect(200, "GET", "auth/token/lookup-self", &user_token, None);

        // Every line is one JSON object with Vault's fields.
        let text = std::fs::read_to_string(&log_path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert!(lines.len() >= 10, "{} lines", lines.len());
        for line in &lines {
            let kind = line["type"].as_str().unwrap();
            assert!(kind == "request" || kind == "response", "{line}");
            assert!(line["time"].is_string(), "{line}");
            let request = &line["request"];
            for field in ["id", "operation", "path", "namespace"] {
                assert!(!request[field].is_null(), "request.{field}: {line}");
            }
            if kind == "response" {
                assert!(line.get("response").is_some(), "{line}");
            }
        }

        // No secret, password or token in plaintext anywhere in the file.
        for (name, plaintext) in [
            ("secret", secret),
            ("password", password),
            ("user token", user_token.as_str()),
        ] {
            assert!(!text.contains(plaintext), "the {name} is in the audit log");
        }

        // Each appears as the HMAC that sys/audit-hash reproduces.
        let hash_of = |input: &str| {
            let body = api.expect(
                200,
                "POST",
                "sys/audit-hash/file",
                "root",
                Some(json!({"input": input})),
            );
            let hash = body["hash"].as_str().unwrap().to_string();
            assert_eq!(body["data"]["hash"], hash.as_str());
            assert!(hash.starts_with("hmac-sha256:"), "{hash}");
            hash
        };
        let secret_hash = hash_of(secret);
        let write = lines
            .iter()
            .find(|line| {
                line["type"] == "request"
                    && line["request"]["path"] == "secret/data/audited"
                    && line["request"]["operation"] == "create"
            })
            .expect("the write's request line, a create");
        assert_eq!(write["request"]["data"]["data"]["password"], secret_hash);
        let read = lines
            .iter()
            .find(|line| {
                line["type"] == "response"
                    && line["request"]["path"] == "secret/data/audited"
                    && line["request"]["operation"] == "read"
            })
            .expect("the read's response line");
        assert_eq!(
            read["response"]["data"]["data"]["password"], secret_hash,
            "{read}"
        );
        let password_hash = hash_of(password);
        let login_line = lines
            .iter()
            .find(|line| line["request"]["path"] == "auth/userpass/login/bob")
            .expect("the login line");
        assert_eq!(login_line["request"]["data"]["password"], password_hash);
        let token_hash = hash_of(&user_token);
        let lookup = lines
            .iter()
            .find(|line| {
                line["type"] == "request" && line["request"]["path"] == "auth/token/lookup-self"
            })
            .expect("the lookup-self line");
        assert_eq!(lookup["request"]["client_token"], token_hash);
        assert_eq!(lookup["auth"]["client_token"], token_hash);
        assert_eq!(lookup["auth"]["policy_results"]["allowed"], true);
    })
    .await;
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_a_clean_error_envelope() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    blocking(move || {
        let api = Api::new(&address);
        let json_type = [("Content-Type", "application/json")];
        let failures = std::cell::RefCell::new(Vec::new());
        let check = |what: &str, answer: Answer, status: u16| {
            if answer.status != status {
                failures.borrow_mut().push(format!(
                    "{what}: want {status}, got {} {}",
                    answer.status, answer.body
                ));
                return;
            }
            if status >= 400 && status != 404 {
                assert_error_envelope(what, &answer.body);
                let errors = answer.body["errors"].as_array().unwrap();
                assert!(!errors.is_empty(), "{what}: no message");
            }
            assert_eq!(
                answer
                    .headers
                    .get("cache-control")
                    .map(|v| v.to_str().unwrap()),
                Some("no-store"),
                "{what}"
            );
        };
        let bytes = |text: &str| Some(text.as_bytes().to_vec());

        // Bodies that are not what the endpoint takes.
        for (what, method, path, body) in [
            ("malformed JSON", "PUT", "secret/data/x", "{\"data\": "),
            ("JSON array body", "PUT", "secret/data/x", "[1, 2, 3]"),
            ("JSON string body", "PUT", "sys/policy/p", "\"policy\""),
            (
                "kv data not an object",
                "PUT",
                "secret/data/x",
                r#"{"data": "text"}"#,
            ),
            (
                "kv cas not a number",
                "PUT",
                "secret/data/x",
                r#"{"data": {}, "options": {"cas": "one"}}"#,
            ),
            (
                "mount type not a string",
                "POST",
                "sys/mounts/m",
                r#"{"type": 5}"#,
            ),
            (
                "policy not a string",
                "PUT",
                "sys/policies/acl/p",
                r#"{"policy": 7}"#,
            ),
            (
                "num_uses not a number",
                "POST",
                "auth/token/create",
                r#"{"num_uses": "many"}"#,
            ),
            (
                "ttl not a duration",
                "POST",
                "auth/token/create",
                r#"{"ttl": "soon"}"#,
            ),
            (
                "policies not a list",
                "POST",
                "auth/token/create",
                r#"{"policies": {"a": 1}}"#,
            ),
            (
                "unknown mount type",
                "POST",
                "sys/mounts/m",
                r#"{"type": "nope"}"#,
            ),
            (
                "version on a non-kv mount",
                "POST",
                "sys/mounts/m",
                r#"{"type": "cubbyhole", "options": {"version": "2"}}"#,
            ),
            (
                "invalid HCL",
                "PUT",
                "sys/policies/acl/p",
                r#"{"policy": "path {"}"#,
            ),
            (
                "unknown capability",
                "PUT",
                "sys/policies/acl/p",
                r#"{"policy": "path \"a\" { capabilities = [\"fly\"] }"}"#,
            ),
            (
                "versions not a list",
                "POST",
                "secret/destroy/x",
                r#"{"versions": {"a": 1}}"#,
            ),
        ] {
            let answer = api.send(method, path, Some("root"), &json_type, bytes(body));
            check(what, answer, 400);
        }

        // A body over 32 MiB: 413, without a panic, whether the length is declared up
        // front (answered before the body is read; sent on a raw socket, since a client
        // that is still writing may see the early close as a reset) or only counted.
        let host = address.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).unwrap();
        write!(
            stream,
            "PUT /v1/secret/data/x HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: root\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            32 * 1024 * 1024 + 1
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        assert!(response.ends_with(r#"{"errors":["http: request body too large"]}"#), "{response}");
        let huge = vec![b' '; 32 * 1024 * 1024 + 1];
        // Chunked, no length: the limit is found while reading.
        let body = reqwest::blocking::Body::new(std::io::Cursor::new(huge));
        let streamed = api
            .http
            .put(format!("{address}/v1/secret/data/x"))
            .header("X-Vault-Token", "root")
            .body(body)
            .send();
        if let Ok(response) = streamed {
            assert_eq!(response.status().as_u16(), 413);
        }
        check(
            "the node still answers after a refused huge body",
            api.send("GET", "sys/health", None, &[], None),
            200,
        );

        // Bodies a parser could choke on: deep nesting, invalid UTF-8, huge numbers.
        let deep = format!("{{\"data\":{}1{}}}", "{\"a\":".repeat(300), "}".repeat(300));
        for (what, path, body) in [
            ("deeply nested JSON", "secret/data/x", deep.into_bytes()),
            ("invalid UTF-8 in a string", "secret/data/x", b"{\"data\":{\"a\":\"\xff\"}}".to_vec()),
            ("number out of range", "auth/token/create", b"{\"ttl\": 1e400}".to_vec()),
            ("fractional num_uses", "auth/token/create", b"{\"num_uses\": 1.5}".to_vec()),
        ] {
            let answer = api.send("PUT", path, Some("root"), &json_type, Some(body));
            check(what, answer, 400);
        }
        for (what, path) in [
            ("invalid percent escape", "/v1/secret/data/%zz"),
            ("percent-encoded invalid UTF-8", "/v1/secret/data/%ff%fe"),
        ] {
            let (status, body) = raw_http(
                &address,
                &format!("GET {path} HTTP/1.1\r\nX-Vault-Token: root"),
                b"",
            );
            assert_eq!(status, 400, "{what}: {body}");
            assert_error_envelope(what, &body);
        }

        // Traversal in paths and names, sent byte for byte.
        for path in [
            "/v1/secret/data/../../sys/mounts",
            "/v1/secret/data/a/../b",
            "/v1/sys/policies/acl/..",
            "/v1/sys/mounts/a/..",
            "/v1/auth/userpass/../token/lookup-self",
            "/v1/secret/data/%2e%2e/x",
        ] {
            let (status, body) = raw_http(
                &address,
                &format!("GET {path} HTTP/1.1\r\nX-Vault-Token: root"),
                b"",
            );
            if status != 400 {
                failures
                    .borrow_mut()
                    .push(format!("traversal {path}: want 400, got {status} {body}"));
            } else {
                assert_error_envelope(path, &body);
            }
        }
        // Names with traversal in a body field or a key: refused, never stored.
        api.expect(
            204,
            "POST",
            "sys/auth/userpass",
            "root",
            Some(json!({"type": "userpass"})),
        );
        for (what, path, body) in [
            (
                "username with a trailing dot",
                "auth/userpass/users/bob.",
                json!({"password": "x"}),
            ),
            (
                "username with a dot prefix",
                "auth/userpass/users/.hidden",
                json!({"password": "x"}),
            ),
            (
                "kv key with an empty segment",
                "secret/data/a//b",
                json!({"data": {}}),
            ),
            (
                "mount path with ..",
                "sys/mounts/a%2F..%2Fb",
                json!({"type": "kv"}),
            ),
            (
                "audit device with ..",
                "sys/audit/a%2F..",
                json!({"type": "file", "options": {"file_path": "/tmp/x"}}),
            ),
        ] {
            let answer = api.call("POST", path, "root", Some(body));
            check(what, answer, 400);
        }

        // A `null` body is no body, as Vault decodes it.
        check(
            "null body on a write",
            api.send("PUT", "sys/rotate", Some("root"), &json_type, bytes("null")),
            204,
        );
        check(
            "null body on a delete",
            api.send("DELETE", "secret/data/p-null", Some("root"), &json_type, bytes("null")),
            204,
        );

        // An unknown mount config key is refused rather than silently dropped.
        let answer = api.call(
            "POST",
            "sys/mounts/m2",
            "root",
            Some(json!({"type": "kv", "config": {"no_such_option": 1}})),
        );
        check("unknown mount config field", answer, 400);

        // Tokens: missing, invalid, malformed.
        check(
            "missing token",
            api.send("GET", "secret/data/x", None, &[], None),
            403,
        );
        check(
            "invalid token",
            api.send("GET", "secret/data/x", Some("hvs.nonsense"), &[], None),
            403,
        );
        check(
            "malformed long-form token",
            api.send("GET", "secret/data/x", Some("hvs.CAESI!!!"), &[], None),
            403,
        );

        // Methods: an unsupported one, and one a path does not take.
        check(
            "TRACE",
            api.send("TRACE", "secret/data/x", Some("root"), &[], None),
            405,
        );
        check(
            "DELETE on sys/seal-status",
            api.send("DELETE", "sys/seal-status", Some("root"), &[], None),
            405,
        );

        check(
            "OPTIONS",
            api.send("OPTIONS", "secret/data/x", Some("root"), &[], None),
            405,
        );
        check(
            "negative wrap TTL",
            api.send(
                "GET",
                "secret/data/x",
                Some("root"),
                &[("X-Vault-Wrap-TTL", "-5")],
                None,
            ),
            400,
        );

        // An empty list: 404 with exactly {"errors":[]}.
        let answer = api.send(
            "GET",
            "secret/metadata/nothing?list=true",
            Some("root"),
            &[],
            None,
        );
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert_eq!(answer.body, json!({"errors": []}));
        let answer = api.send("LIST", "secret/metadata/", Some("root"), &[], None);
        assert_eq!(answer.status, 404, "{}", answer.body);
        assert_eq!(answer.body, json!({"errors": []}));

        // PATCH needs application/merge-patch+json.
        api.expect(
            200,
            "PUT",
            "secret/data/p",
            "root",
            Some(json!({"data": {"a": "1"}})),
        );
        check(
            "PATCH with application/json",
            api.send(
                "PATCH",
                "secret/data/p",
                Some("root"),
                &json_type,
                bytes(r#"{"data": {"b": "2"}}"#),
            ),
            415,
        );
        check(
            "PATCH without a content type",
            api.send(
                "PATCH",
                "secret/data/p",
                Some("root"),
                &[],
                bytes(r#"{"data": {"b": "2"}}"#),
            ),
            400,
        );
        let patched = api.send(
            "PATCH",
            "secret/data/p",
            Some("root"),
            &[("Content-Type", "application/merge-patch+json")],
            bytes(r#"{"data": {"b": "2"}}"#),
        );
        assert_eq!(patched.status, 200, "{}", patched.body);
        let read = api.expect(200, "GET", "secret/data/p", "root", None);
        assert_eq!(read["data"]["data"], json!({"a": "1", "b": "2"}));

        // A bad wrap TTL header.
        check(
            "wrap TTL not a duration",
            api.send(
                "GET",
                "secret/data/p",
                Some("root"),
                &[("X-Vault-Wrap-TTL", "forever")],
                None,
            ),
            400,
        );
        let failures = failures.into_inner();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    })
    .await;
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_shapes_match_vault() {
    let dev = support::start_dev_node(Arc::new(arca::env::MemoryLogFiles::new())).await;
    let address = dev.address.clone();
    blocking(move || {
        let api = Api::new(&address);

        // The success envelope carries every key of §3.1, and Cache-Control: no-store.
        api.expect(
            200,
            "PUT",
            "secret/data/shape",
            "root",
            Some(json!({"data": {"a": "b"}})),
        );
        let answer = api.call("GET", "secret/data/shape", "root", None);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers.get("cache-control").unwrap(), "no-store");
        let mut keys: Vec<&str> = answer
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "auth",
                "data",
                "lease_duration",
                "lease_id",
                "mount_type",
                "renewable",
                "request_id",
                "warnings",
                "wrap_info"
            ]
        );
        assert_eq!(answer.body["mount_type"], "kv");
        assert_eq!(answer.body["lease_id"], "");
        assert_eq!(answer.body["renewable"], false);
        assert!(answer.body["request_id"].as_str().unwrap().len() == 36);

        // sys/ responses copy data keys to the top level.
        let mount = api.expect(200, "GET", "sys/mounts/secret", "root", None);
        assert_eq!(mount["type"], "kv");
        assert_eq!(mount["data"]["type"], "kv");
        assert_eq!(mount["options"], json!({"version": "2"}));
        assert!(mount["accessor"].as_str().unwrap().starts_with("kv_"));
        let mounts = api.expect(200, "GET", "sys/mounts", "root", None);
        assert_eq!(mounts["secret/"], mounts["data"]["secret/"]);
        assert_eq!(mounts["cubbyhole/"]["local"], true);
        let auths = api.expect(200, "GET", "sys/auth", "root", None);
        assert_eq!(auths["token/"]["config"]["token_type"], "default-service");
        assert!(
            auths["token/"]["accessor"]
                .as_str()
                .unwrap()
                .starts_with("auth_token_")
        );

        // 204 with no body on an empty response; errors also say no-store.
        let answer = api.call(
            "PUT",
            "sys/policies/acl/shape",
            "root",
            Some(json!({"policy": "path \"a/*\" { capabilities = [\"read\"] }"})),
        );
        assert_eq!(answer.status, 204);
        assert_eq!(answer.body, Value::Null);
        assert_eq!(answer.headers.get("cache-control").unwrap(), "no-store");
        let policy = api.expect(200, "GET", "sys/policies/acl/shape", "root", None);
        assert_eq!(policy["name"], "shape");
        assert_eq!(policy["data"]["name"], "shape");
        assert!(policy["policy"].as_str().unwrap().contains("a/*"));
        let legacy = api.expect(200, "GET", "sys/policy/shape", "root", None);
        assert_eq!(legacy["name"], "shape");
        assert!(legacy["rules"].as_str().unwrap().contains("a/*"));
        let list = api.expect(200, "GET", "sys/policy", "root", None);
        assert!(
            list["policies"]
                .as_array()
                .unwrap()
                .contains(&json!("root"))
        );
        assert_eq!(list["keys"], list["policies"]);
        let answer = api.call("GET", "secret/data/missing", "root", None);
        assert_eq!(answer.status, 404);
        assert_eq!(answer.body, json!({"errors": []}));
        assert_eq!(answer.headers.get("cache-control").unwrap(), "no-store");

        // The auth block of a created token has every field of §3.1.
        let created = api.expect(
            200,
            "POST",
            "auth/token/create",
            "root",
            Some(json!({"policies": ["shape"], "ttl": "1h", "meta": {"app": "x"}})),
        );
        let auth = created["auth"].as_object().unwrap();
        for field in [
            "client_token",
            "accessor",
            "policies",
            "token_policies",
            "metadata",
            "lease_duration",
            "renewable",
            "entity_id",
            "token_type",
            "orphan",
            "mfa_requirement",
            "num_uses",
        ] {
            assert!(auth.contains_key(field), "auth.{field}: {created}");
        }
        assert_eq!(created["auth"]["policies"], json!(["default", "shape"]));
        assert_eq!(created["auth"]["lease_duration"], 3600);
        assert_eq!(created["auth"]["token_type"], "service");
        assert_eq!(created["auth"]["orphan"], false);
        assert_eq!(created["auth"]["metadata"], json!({"app": "x"}));
        assert_eq!(created["data"], Value::Null);
        let token = created["auth"]["client_token"].as_str().unwrap();
        assert!(token.starts_with("hvs.") && token.len() >= 95, "{token}");

        // Warnings for a missing policy force a 200 and show in the envelope.
        let warned = api.expect(
            200,
            "POST",
            "auth/token/create",
            "root",
            Some(json!({"policies": ["web"]})),
        );
        assert!(
            warned["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("\"web\"")),
            "{warned}"
        );

        // lookup-self of the root token.
        let me = api.expect(200, "GET", "auth/token/lookup-self", "root", None);
        let data = &me["data"];
        assert_eq!(data["policies"], json!(["root"]));
        assert_eq!(data["ttl"], 0);
        assert_eq!(data["expire_time"], Value::Null);
        assert_eq!(data["display_name"], "root");
        assert_eq!(data["path"], "auth/token/root");
        assert_eq!(data["id"], "root");
        assert_eq!(data["orphan"], true);
        assert_eq!(data["type"], "service");
        assert_eq!(me["auth"], Value::Null);

        // Unauthenticated status endpoints: no envelope, Vault's fields.
        let status = api.send("GET", "sys/seal-status", None, &[], None);
        assert_eq!(status.status, 200);
        for field in [
            "type",
            "initialized",
            "sealed",
            "t",
            "n",
            "progress",
            "version",
            "cluster_name",
        ] {
            assert!(
                status.body.get(field).is_some(),
                "seal-status.{field}: {}",
                status.body
            );
        }
        assert_eq!(status.body["sealed"], false);
        let health = api.send("GET", "sys/health", None, &[], None);
        assert_eq!(health.status, 200);
        assert_eq!(health.body["initialized"], true);
        assert_eq!(health.body["standby"], false);
    })
    .await;
    dev.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_use_refused_by_audit_still_revokes_the_token() {
    let files = Arc::new(arca::env::MemoryLogFiles::new());
    let dev = support::start_dev_node(files.clone()).await;
    let address = dev.address.clone();
    blocking(move || {
        let api = Api::new(&address);
        api.expect(
            204,
            "PUT",
            "sys/audit/memory",
            "root",
            Some(json!({"type": "file", "options": {"file_path": "/audit.log"}})),
        );
        let created = api.expect(
            200,
            "POST",
            "auth/token/create",
            "root",
            Some(json!({"policies": ["default"], "num_uses": 1})),
        );
        let token = created["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();

        // The only audit device fails: the request is refused after its use was spent.
        files.set_failing("/audit.log", true);
        let refused = api.call("GET", "auth/token/lookup-self", &token, None);
        assert_eq!(refused.status, 500, "{}", refused.body);
        files.set_failing("/audit.log", false);

        // The spent token is gone, not left revocation-pending.
        let again = api.call("GET", "auth/token/lookup-self", &token, None);
        assert_eq!(again.status, 403, "{}", again.body);
        let lookup = api.call(
            "POST",
            "auth/token/lookup",
            "root",
            Some(json!({"token": token})),
        );
        assert!(matches!(lookup.status, 400 | 403), "{}", lookup.body);
    })
    .await;
    dev.node.shutdown().await;
}
