//! The everyday commands around the tutorial's (issue 7), run as an operator types them
//! against a real `arca server -dev`: each command's output in the formats it offers,
//! and its exit code, checked against Vault's (reference §4 and Vault's documentation).

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;

use std::path::Path;
use std::process::Command;

use cli_support::{Server, WAIT_ATTEMPTS_MAX, WAIT_STEP, text};
use serde_json::Value;

/// A dev server and a shell pointed at it with the root token.
struct Operator {
    home: tempfile::TempDir,
    server: Server,
}

/// What one command printed and how it exited.
struct Ran {
    code: i32,
    out: String,
    err: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|error| panic!("{error}: {}", self.out))
    }
}

impl Operator {
    fn start() -> Operator {
        Operator::start_with(&[])
    }

    /// A dev server started with `extra` flags.
    fn start_with(extra: &[&str]) -> Operator {
        let home = tempfile::tempdir().unwrap();
        let server = cli_support::start_dev_server(home.path(), extra);
        let operator = Operator { home, server };
        for _ in 0..WAIT_ATTEMPTS_MAX {
            if operator.run(&["secrets", "list"]).code == 0 {
                return operator;
            }
            std::thread::sleep(WAIT_STEP);
        }
        panic!("the dev server never became active");
    }

    fn path(&self) -> &Path {
        self.home.path()
    }

    fn run(&self, args: &[&str]) -> Ran {
        let output = Command::new(env!("CARGO_BIN_EXE_arca"))
            .args(args)
            .env_clear()
            .env("HOME", self.path())
            .env("VAULT_ADDR", &self.server.address)
            .env("VAULT_TOKEN", "root")
            .env("VAULT_MAX_RETRIES", "0")
            .output()
            .unwrap();
        Ran {
            code: output.status.code().unwrap_or(-1),
            out: text(&output.stdout),
            err: text(&output.stderr),
        }
    }

    /// Run, insisting on success with nothing on stderr; the stdout.
    fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args);
        assert_eq!(
            (ran.code, ran.err.as_str()),
            (0, ""),
            "arca {}\nstdout: {}",
            args.join(" "),
            ran.out
        );
        ran.out
    }

    /// `arca monitor ARGS` left running, its stdout lines arriving on the receiver.
    fn monitor(&self, args: &[&str]) -> Monitor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arca"))
            .arg("monitor")
            .args(args)
            .env_clear()
            .env("HOME", self.path())
            .env("VAULT_ADDR", &self.server.address)
            .env("VAULT_TOKEN", "root")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Monitor { child, lines }
    }

    /// Run, insisting on `code`; the stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let ran = self.run(args);
        assert_eq!(
            ran.code,
            code,
            "arca {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            ran.out,
            ran.err
        );
        ran.err
    }
}

/// A running `arca monitor`, killed when dropped.
struct Monitor {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Monitor {
    /// The first line containing `needle` that arrives within `wait`.
    fn line_with(&self, needle: &str, wait: std::time::Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn monitor_streams_the_servers_log_at_its_own_level() {
    // The server logs at warn; a monitor asks for more, and gets it.
    let operator = Operator::start_with(&["-log-level=warn"]);
    let info = operator.monitor(&["-log-level=info"]);
    let json = operator.monitor(&["-log-level=INFO", "-log-format=json"]);
    let warn = operator.monitor(&["-log-level=warn"]);

    // A request that logs at info: enabling a secrets engine. Each monitor connects in
    // the background, on its own schedule, so mounts are made until both have shown one
    // (not necessarily the same one: a monitor sees only what is logged after it joined).
    let (mut info_seen, mut json_seen) = (None, None);
    for attempt in 0..20 {
        let path = format!("monitored-{attempt}");
        operator.ok(&["secrets", "enable", &format!("-path={path}"), "kv"]);
        if info_seen.is_none() {
            info_seen = info.line_with(&format!("path={path}/"), WAIT_STEP);
        }
        if json_seen.is_none() {
            json_seen = json
                .line_with(&format!("{path}/"), WAIT_STEP)
                .map(|line| (path.clone(), line));
        }
        if info_seen.is_some() && json_seen.is_some() {
            break;
        }
    }
    let line = info_seen.expect("the info monitor never saw a mount");
    assert!(
        line.contains("[INFO]") && line.contains("successful mount"),
        "{line}"
    );
    // The same kind of event, as JSON, to the JSON monitor.
    let (path, line) = json_seen.expect("the JSON monitor never saw a mount");
    let object: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(object["@level"], "info");
    assert_eq!(object["@message"], "successful mount");
    assert_eq!(object["path"], format!("{path}/"));
    // The warn monitor was fed in the same step and got nothing; nor did the server's
    // own log, at warn.
    assert_eq!(warn.line_with("successful mount", WAIT_STEP), None);
    let log = std::fs::read_to_string(&operator.server.log_path).unwrap();
    assert!(!log.contains("successful mount"), "{log}");

    // Disconnecting ends the monitor on the server: its slot is free again (a killed
    // client is noticed at the next line written to it).
    drop(info);
    drop(json);
    drop(warn);

    // A bad level is the CLI's usage error; the server refuses one too.
    let err = operator.fails(&["monitor", "-log-level=loud"], 1);
    assert!(err.contains("loud is an unknown log level"), "{err}");

    // A token without sudo on sys/monitor is refused, even with read.
    let policy = operator.path().join("monitor-read.hcl");
    std::fs::write(
        &policy,
        "path \"sys/monitor\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    operator.ok(&["policy", "write", "monitor-read", policy.to_str().unwrap()]);
    let token = operator.ok(&["token", "create", "-policy=monitor-read", "-field=token"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(["monitor"])
        .env_clear()
        .env("HOME", operator.path())
        .env("VAULT_ADDR", &operator.server.address)
        .env("VAULT_TOKEN", &token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a monitor that was let in would stream until killed.
    let mut status = None;
    for _ in 0..WAIT_ATTEMPTS_MAX {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("a token without sudo on sys/monitor was given the stream");
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_ne!(status.unwrap().code(), Some(0), "{err}");
    assert!(
        err.contains("Error starting monitor") && err.contains("permission denied"),
        "{err}"
    );

    // -output-curl-string describes the request and stops.
    let curl = operator.ok(&["monitor", "-output-curl-string", "-log-level=debug"]);
    assert!(
        curl.contains("/v1/sys/monitor?log_level=debug&log_format=standard"),
        "{curl}"
    );
    // And the path still answers help.
    let help = operator.run(&["path-help", "sys/monitor"]);
    assert_eq!(help.code, 0, "{}", help.err);
    assert!(help.out.contains("log_level"), "{}", help.out);
}

#[test]
fn version_history_lists_the_running_version() {
    let operator = Operator::start();
    let version = env!("CARGO_PKG_VERSION");
    let table = operator.ok(&["version-history"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("Version")
            && lines[0].contains("Installation Time")
            && lines[0].ends_with("Build Date"),
        "{table}"
    );
    assert!(lines[2].starts_with(version), "{table}");
    let json = operator.run(&["version-history", "-format=json"]).json();
    assert_eq!(json["data"]["keys"], serde_json::json!([version]));
    let info = &json["data"]["key_info"][version];
    assert_eq!(info["previous_version"], Value::Null);
    assert!(info["timestamp_installed"].as_str().unwrap().ends_with('Z'));
    assert!(info["build_date"].is_string());
}

#[test]
fn kv_versions_metadata_and_rollback() {
    let operator = Operator::start();
    operator.ok(&["secrets", "enable", "-path=kv", "kv-v2"]);
    operator.ok(&["kv", "put", "-mount=kv", "app", "password=one"]);
    operator.ok(&["kv", "put", "-mount=kv", "app", "password=two"]);

    // kv patch merges into the latest version, by HTTP PATCH or by read-and-rewrite.
    operator.ok(&["kv", "put", "-mount=kv", "merge", "a=1", "b=2"]);
    let patched = operator.ok(&["kv", "patch", "-mount=kv", "merge", "b=3"]);
    assert!(patched.contains("\nversion            2\n"), "{patched}");
    operator.ok(&["kv", "patch", "-mount=kv", "-method=rw", "merge", "c=4"]);
    let merged = operator
        .run(&["kv", "get", "-mount=kv", "-format=json", "merge"])
        .json();
    assert_eq!(
        merged["data"]["data"],
        serde_json::json!({"a": "1", "b": "3", "c": "4"})
    );
    assert_eq!(
        operator.fails(
            &["kv", "patch", "-mount=kv", "-method=bogus", "merge", "d=5"],
            1
        ),
        "Unsupported method provided to -method flag: bogus\n"
    );

    // Rollback writes version 1's data as version 3, printed like `kv put`.
    let rolled = operator.ok(&["kv", "rollback", "-mount=kv", "-version=1", "app"]);
    assert!(
        rolled.starts_with("== Secret Path ==\nkv/data/app\n\n======= Metadata =======\n"),
        "{rolled}"
    );
    assert!(rolled.contains("\nversion            3\n"), "{rolled}");
    assert_eq!(
        operator.ok(&["kv", "get", "-mount=kv", "-field=password", "app"]),
        "one"
    );
    assert_eq!(
        operator.fails(&["kv", "rollback", "-mount=kv", "app"], 1),
        "Must provide a version\n"
    );
    assert!(
        operator
            .fails(&["kv", "rollback", "-mount=kv", "-version=9", "app"], 1)
            .starts_with("Cannot find data for version 9")
    );

    // Metadata put sets what is given; patch merges; get shows it in every format.
    assert_eq!(
        operator.ok(&[
            "kv",
            "metadata",
            "put",
            "-mount=kv",
            "-max-versions=5",
            "-custom-metadata=team=blue",
            "-delete-version-after=1h",
            "app",
        ]),
        "Success! Data written to: kv/metadata/app\n"
    );
    assert_eq!(
        operator.ok(&[
            "kv",
            "metadata",
            "patch",
            "-mount=kv",
            "-cas-required",
            "-custom-metadata=owner=ops",
            "app"
        ]),
        "Success! Data written to: kv/metadata/app\n"
    );
    let json = operator
        .run(&["kv", "metadata", "get", "-mount=kv", "-format=json", "app"])
        .json();
    let data = &json["data"];
    assert_eq!(data["max_versions"], 5);
    assert_eq!(data["cas_required"], true);
    assert_eq!(data["delete_version_after"], "1h0m0s");
    assert_eq!(
        data["custom_metadata"],
        serde_json::json!({"team": "blue", "owner": "ops"})
    );
    assert_eq!(data["current_version"], 3);
    let table = operator.ok(&["kv", "metadata", "get", "-mount=kv", "app"]);
    assert!(
        table.starts_with("== Metadata Path ==\nkv/metadata/app\n\n"),
        "{table}"
    );
    assert!(table.contains("\nmax_versions            5\n"), "{table}");
    assert!(
        table.contains("\n====== Version 3 ======\nKey              Value\n"),
        "{table}"
    );
    let yaml = operator.ok(&["kv", "metadata", "get", "-mount=kv", "-format=yaml", "app"]);
    assert!(yaml.contains("\n  max_versions: 5\n"), "{yaml}");
    assert!(
        yaml.contains("\n  custom_metadata:\n    owner: ops\n    team: blue\n"),
        "{yaml}"
    );
    // cas_required now refuses a write without -cas.
    assert_eq!(
        operator
            .fails(&["kv", "put", "-mount=kv", "app", "password=x"], 2)
            .lines()
            .next(),
        Some("Error writing data to kv/data/app: Error making API request.")
    );
    operator.ok(&["kv", "put", "-mount=kv", "-cas=3", "app", "password=four"]);

    // A bad flag value is a usage error before anything is sent.
    assert!(
        operator
            .fails(
                &[
                    "kv",
                    "metadata",
                    "put",
                    "-mount=kv",
                    "-custom-metadata=oops",
                    "app"
                ],
                1
            )
            .contains("format must be key=value")
    );
    assert_eq!(
        operator.ok(&["kv", "metadata", "delete", "-mount=kv", "app"]),
        "Success! Data deleted (if it existed) at: kv/metadata/app\n"
    );
    assert_eq!(
        operator.fails(&["kv", "get", "-mount=kv", "app"], 2),
        "No value found at kv/data/app\n"
    );

    // enable-versioning upgrades a v1 mount: kv put then prints v2's sections.
    operator.ok(&["secrets", "enable", "-path=old", "kv"]);
    assert_eq!(
        operator.ok(&["kv", "put", "old/x", "a=b"]),
        "Success! Data written to: old/x\n"
    );
    assert_eq!(
        operator.ok(&["kv", "enable-versioning", "old"]),
        "Success! Tuned the secrets engine at: old/\n"
    );
    let put = operator.ok(&["kv", "put", "old/y", "a=b"]);
    assert!(put.starts_with("== Secret Path ==\nold/data/y\n"), "{put}");
}

#[test]
fn tokens_leases_keys_policies_and_mounts() {
    let operator = Operator::start();

    // token capabilities: self, another token, an accessor; table and JSON.
    assert_eq!(
        operator.ok(&["token", "capabilities", "sys/mounts"]),
        "root\n"
    );
    let policy = operator.path().join("reader.hcl");
    std::fs::write(
        &policy,
        "path   \"secret/data/*\" {capabilities=[\"read\",\"list\"]}\n",
    )
    .unwrap();
    operator.ok(&["policy", "write", "reader", policy.to_str().unwrap()]);
    let token = operator.ok(&["token", "create", "-policy=reader", "-field=token"]);
    assert_eq!(
        operator.ok(&["token", "capabilities", &token, "secret/data/app"]),
        "list, read\n"
    );
    assert_eq!(
        operator
            .run(&[
                "token",
                "capabilities",
                "-format=json",
                &token,
                "secret/data/app"
            ])
            .json(),
        serde_json::json!(["list", "read"])
    );
    let accessor = operator.ok(&["token", "lookup", "-field=accessor", &token]);
    assert_eq!(
        operator.ok(&[
            "token",
            "capabilities",
            "-accessor",
            &accessor,
            "sys/mounts"
        ]),
        "deny\n"
    );

    // policy fmt rewrites the file in place, canonically; a second run changes nothing.
    assert_eq!(
        operator.ok(&["policy", "fmt", policy.to_str().unwrap()]),
        format!("Success! Formatted policy: {}\n", policy.display())
    );
    let formatted = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(
        formatted,
        "path \"secret/data/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"
    );
    operator.ok(&["policy", "fmt", policy.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), formatted);

    // lease lookup | renew | revoke on the new token's lease.
    let leases = operator
        .run(&[
            "list",
            "-format=json",
            "sys/leases/lookup/auth/token/create/",
        ])
        .json();
    let lease = format!("auth/token/create/{}", leases[0].as_str().unwrap());
    let looked_up = operator.ok(&["lease", "lookup", &lease]);
    assert!(
        looked_up.starts_with("Key             Value\n---             -----\nexpire_time     "),
        "{looked_up}"
    );
    assert!(
        looked_up.contains(&format!("\nid              {lease}\n")),
        "{looked_up}"
    );
    assert!(
        looked_up.contains("\nrenewable       true\n"),
        "{looked_up}"
    );
    let renewed = operator
        .run(&["lease", "renew", "-increment=1h", "-format=json", &lease])
        .json();
    assert_eq!(renewed["lease_id"], lease.as_str());
    assert_eq!(renewed["lease_duration"], 3600);
    assert_eq!(
        operator.fails(&["lease", "revoke", "-force", &lease], 1),
        "Specifying -force requires also specifying -prefix\n"
    );
    assert_eq!(
        operator.ok(&["lease", "revoke", &lease]),
        format!("Success! Revoked lease: {lease}\n")
    );
    assert!(
        operator
            .fails(&["lease", "lookup", &lease], 2)
            .starts_with(&format!(
                "error looking up lease id {lease}: Error making API request."
            ))
    );
    assert_eq!(
        operator.ok(&["lease", "revoke", "-prefix", "auth/token/create"]),
        "Success! Revoked any leases with prefix: auth/token/create\n"
    );

    // operator key-status | rotate, table and JSON.
    let status = operator.ok(&["operator", "key-status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines.len(), 3, "{status}");
    assert_eq!(lines[0], "Key Term            1");
    assert!(lines[1].starts_with("Install Time        ") && lines[1].ends_with(" UTC"));
    assert!(lines[2].starts_with("Encryption Count    "));
    let rotated = operator.ok(&["operator", "rotate"]);
    assert!(
        rotated.starts_with("Success! Rotated key\n\nKey Term            2\n"),
        "{rotated}"
    );
    let json = operator
        .run(&["operator", "key-status", "-format=json"])
        .json();
    assert_eq!(json["term"], 2);
    assert!(json["install_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        operator
            .ok(&["operator", "key-status", "-format=yaml"])
            .lines()
            .next(),
        Some("encryptions: 0")
    );

    // A single node steps down to nobody and stays active.
    assert_eq!(
        operator.ok(&["operator", "step-down"]),
        format!("Success! Stepped down: {}\n", operator.server.address)
    );
    operator.ok(&["secrets", "list"]);

    // auth tune changes what sys/auth/PATH/tune reads back.
    operator.ok(&["auth", "enable", "userpass"]);
    assert_eq!(
        operator.ok(&[
            "auth",
            "tune",
            "-default-lease-ttl=1h",
            "-description=people",
            "userpass/"
        ]),
        "Success! Tuned the auth method at: userpass/\n"
    );
    let tuned = operator
        .run(&["read", "-format=json", "sys/auth/userpass/tune"])
        .json();
    assert_eq!(tuned["data"]["default_lease_ttl"], 3600);

    // print token and path-help (the server's `?help=1`; a path under no mount is
    // Vault's error, exit 2).
    assert_eq!(operator.ok(&["print", "token"]), "root\n");
    let help = operator.ok(&["path-help", "sys/mounts"]);
    assert!(
        help.starts_with("Request:        mounts\nMount:          sys/ (system)\n"),
        "{help}"
    );
    assert!(
        operator
            .fails(&["path-help", "nowhere/x"], 2)
            .starts_with("Error retrieving help")
    );
}

#[test]
fn global_flags_describe_wrap_and_refuse() {
    let operator = Operator::start();
    operator.ok(&["secrets", "enable", "-path=kv", "kv-v2"]);
    operator.ok(&["kv", "put", "-mount=kv", "app", "password=one"]);

    // -output-curl-string: the request as curl, token hidden, nothing sent.
    let address = &operator.server.address;
    assert_eq!(
        operator.ok(&[
            "kv",
            "put",
            "-mount=kv",
            "-output-curl-string",
            "app",
            "password=two"
        ]),
        format!(
            "curl -X PUT -H \"X-Vault-Request: true\" -H \"X-Vault-Token: $(arca print token)\" -d '{{\"data\":{{\"password\":\"two\"}}}}' {address}/v1/kv/data/app\n"
        )
    );
    assert_eq!(
        operator.ok(&[
            "read",
            "-output-curl-string",
            "-header=X-Team=blue",
            "sys/mounts"
        ]),
        format!(
            "curl -H \"X-Vault-Request: true\" -H \"X-Vault-Token: $(arca print token)\" -H \"X-Team: blue\" {address}/v1/sys/mounts\n"
        )
    );
    assert_eq!(
        operator.ok(&["kv", "get", "-mount=kv", "-field=password", "app"]),
        "one"
    );

    // -output-policy: the policy the request needs, sudo included where required.
    assert_eq!(
        operator.ok(&["kv", "get", "-mount=kv", "-output-policy", "app"]),
        "path \"kv/data/app\" {\n  capabilities = [\"read\"]\n}\n"
    );
    assert_eq!(
        operator.ok(&["kv", "list", "-mount=kv", "-output-policy"]),
        "path \"kv/metadata/\" {\n  capabilities = [\"list\"]\n}\n"
    );
    assert_eq!(
        operator.ok(&["operator", "rotate", "-output-policy"]),
        "path \"sys/rotate\" {\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}\n"
    );

    // -header: sent along; X-Vault-* refused before anything is sent.
    operator.ok(&["read", "-header=X-Team=blue", "sys/mounts"]);
    assert!(
        operator
            .fails(&["read", "-header=X-Vault-Token=other", "sys/mounts"], 1)
            .contains("headers starting with \"X-Vault-\" are set by the CLI itself")
    );

    // -wrap-ttl (and VAULT_WRAP_TTL through the same flag): a wrapped answer.
    let wrapped = operator.ok(&["read", "-wrap-ttl=5m", "kv/data/app"]);
    assert!(
        wrapped.contains("\nwrapping_token_ttl:              5m\n"),
        "{wrapped}"
    );
    let token = operator.ok(&[
        "read",
        "-wrap-ttl=5m",
        "-field=wrapping_token",
        "kv/data/app",
    ]);
    let unwrapped = operator.run(&["unwrap", "-format=json", &token]).json();
    assert_eq!(unwrapped["data"]["data"]["password"], "one");

    // -format=yaml on a read.
    let yaml = operator.ok(&["read", "-format=yaml", "kv/data/app"]);
    assert!(
        yaml.starts_with("data:\n  data:\n    password: one\n"),
        "{yaml}"
    );

    // -non-interactive: no prompt, a usage error instead.
    assert!(
        operator
            .fails(&["operator", "unseal", "-non-interactive"], 1)
            .starts_with("Input is needed but -non-interactive was given")
    );

    // -detailed on a list the server answers without key_info: the plain keys.
    assert_eq!(
        operator.ok(&["kv", "list", "-mount=kv", "-detailed"]),
        "Keys\n----\napp\n"
    );
}

#[test]
fn messages_name_arca_where_vault_names_itself() {
    let operator = Operator::start();

    // Vault's login text, with the command the reader should not run again named ours
    // (stderr warns that VAULT_TOKEN, set for these tests, takes precedence).
    let ran = operator.run(&["login", "root"]);
    assert_eq!(ran.code, 0, "{}", ran.err);
    let login = ran.out;
    assert!(
        login.starts_with(
            "Success! You are now authenticated. The token information displayed below is\n\
             already stored in the token helper. You do NOT need to run \"arca login\" again.\n\
             Future Arca requests will automatically use this token.\n\n"
        ),
        "{login}"
    );
    assert_eq!(
        operator.ok(&["operator", "init", "-status"]),
        "Arca is initialized\n"
    );
    assert!(
        operator
            .fails(&["login", "-method=nonesuch"], 1)
            .contains("Use \"arca auth list\" to see the complete list of auth methods")
    );
    assert_eq!(
        operator.ok(&["operator", "seal"]),
        "Success! Arca is sealed.\n"
    );
}

#[test]
fn completion_answers_the_shell_and_installs_into_rc_files() {
    let home = tempfile::tempdir().unwrap();
    let arca = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_arca"))
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        Ran {
            code: output.status.code().unwrap_or(-1),
            out: text(&output.stdout),
            err: text(&output.stderr),
        }
    };

    // What bash runs on <Tab>: the binary with the line in COMP_LINE.
    let offered = |line: &str| {
        let ran = arca(&["arca"], &[("COMP_LINE", line)]);
        assert_eq!((ran.code, ran.err.as_str()), (0, ""), "{line}");
        ran.out
    };
    assert_eq!(offered("arca ope"), "operator\n");
    assert_eq!(offered("arca operator mem"), "members\n");
    assert_eq!(offered("arca version"), "version\nversion-history\n");
    assert_eq!(offered("arca monitor -log-f"), "-log-format\n");

    // No rc file at all: nothing to install into.
    let ran = arca(&["-autocomplete-install"], &[]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.err.contains("Did not find any shells to install"),
        "{}",
        ran.err
    );

    // With a .bashrc and a .zshrc, both get their lines, once.
    let bashrc = home.path().join(".bashrc");
    let zshrc = home.path().join(".zshrc");
    std::fs::write(&bashrc, "alias ll='ls -l'\n").unwrap();
    std::fs::write(&zshrc, "").unwrap();
    let ran = arca(&["-autocomplete-install"], &[]);
    assert_eq!((ran.code, ran.out.as_str(), ran.err.as_str()), (0, "", ""));
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_arca")).unwrap();
    let bash_text = std::fs::read_to_string(&bashrc).unwrap();
    assert_eq!(
        bash_text,
        format!("alias ll='ls -l'\ncomplete -C {} arca\n", binary.display())
    );
    let zsh_text = std::fs::read_to_string(&zshrc).unwrap();
    assert!(
        zsh_text.contains(&format!("complete -o nospace -C {} arca", binary.display())),
        "{zsh_text}"
    );
    let ran = arca(&["-autocomplete-install"], &[]);
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("already installed"), "{}", ran.err);

    // Uninstall takes the registration out again.
    let ran = arca(&["-autocomplete-uninstall"], &[]);
    assert_eq!((ran.code, ran.err.as_str()), (0, ""));
    assert_eq!(
        std::fs::read_to_string(&bashrc).unwrap(),
        "alias ll='ls -l'\n"
    );
    assert!(
        !std::fs::read_to_string(&zshrc)
            .unwrap()
            .contains("complete -o nospace")
    );
}

#[test]
fn auth_help_prints_a_methods_login_usage_by_type_or_path() {
    let operator = Operator::start();
    let userpass = operator.ok(&["auth", "help", "userpass"]);
    assert!(
        userpass.starts_with("Usage: arca login -method=userpass [CONFIG K=V...]\n"),
        "{userpass}"
    );
    assert!(userpass.contains("\n  username=<string>\n"), "{userpass}");
    // By path: the server says which type is enabled there.
    operator.ok(&["auth", "enable", "-path=people", "userpass"]);
    assert_eq!(operator.ok(&["auth", "help", "people/"]), userpass);
    assert!(
        operator
            .ok(&["auth", "help", "token/"])
            .starts_with("Usage: arca login TOKEN")
    );
    let err = operator.fails(&["auth", "help", "nowhere"], 1);
    assert_eq!(
        err,
        "No auth method available on the server at \"nowhere/\"\n"
    );
    operator.fails(&["auth", "help"], 1);
}
