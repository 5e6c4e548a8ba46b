//! SIGHUP on a running server, as an operator sends it after editing the configuration
//! or rotating logs: the server keeps running (TLS or not), applies a new `log_level`,
//! keeps the running configuration when the file is broken, and reopens its file audit
//! devices. The log's JSON format carries Vault's keys.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod cli_support;
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ServerProcess, call, client, eventually, free_port};

const WITHIN: Duration = Duration::from_secs(20);

/// The log's JSON lines, each checked for Vault's four keys.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
            for key in ["@level", "@message", "@module", "@timestamp"] {
                assert!(value[key].is_string(), "{key} missing: {line}");
            }
            value
        })
        .collect()
}

fn has_line(log: &str, level: &str, message_part: &str) -> bool {
    json_lines(log).iter().any(|line| {
        line["@level"] == level
            && line["@message"]
                .as_str()
                .is_some_and(|message| message.contains(message_part))
    })
}

#[test]
fn a_sighup_applies_the_new_log_level_and_never_ends_a_plain_http_server() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let mut server = ServerProcess::configure(root.path(), "node", free_port(), free_port(), &[]);
    let base = std::fs::read_to_string(&server.config_path).unwrap();
    let configured =
        |level: &str| format!("{base}log_level = \"{level}\"\nlog_format = \"json\"\n");
    std::fs::write(&server.config_path, configured("info")).unwrap();
    server.start_logging_as_configured();
    let address = server.address();
    eventually(WITHIN, "the API answers", || {
        call(&http, "GET", &address, "sys/health", None, None).ok()
    });

    // At info, the reload's debug line is filtered out.
    server.signal("-HUP");
    eventually(WITHIN, "the first reload is logged", || {
        has_line(&server.log(), "info", "SIGHUP received").then_some(())
    });
    assert!(server.is_running(), "a SIGHUP ended the server");
    assert!(!has_line(&server.log(), "debug", "configuration reloaded"));

    // The file now says debug: the next SIGHUP applies it.
    std::fs::write(&server.config_path, configured("debug")).unwrap();
    server.signal("-HUP");
    eventually(WITHIN, "debug lines after the level changed", || {
        has_line(&server.log(), "debug", "configuration reloaded").then_some(())
    });
    assert!(server.is_running());

    // A broken file is reported, and the server goes on as it was.
    std::fs::write(&server.config_path, "listener \"tcp\" {").unwrap();
    server.signal("-HUP");
    eventually(WITHIN, "the broken file is reported", || {
        has_line(&server.log(), "error", "could not reload the configuration").then_some(())
    });
    assert!(server.is_running());
    let (status, _) = call(&http, "GET", &address, "sys/health", None, None).unwrap();
    assert_eq!(status, 501, "uninitialized, and still answering");
}

/// `kill -HUP` to `child`.
fn hang_up(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_sighup_reopens_file_audit_devices_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let mut dev = cli_support::start_dev_server(dir.path(), &["-log-format=json"]);
    let address = dev.address.clone();
    eventually(WITHIN, "the dev server serves", || {
        call(&http, "GET", &address, "sys/health", None, None)
            .ok()
            .filter(|(status, _)| *status == 200)
    });
    let audit_path = dir.path().join("audit.log");
    let rotated_path = dir.path().join("audit.log.1");
    let enable =
        json!({"type": "file", "options": {"file_path": audit_path.display().to_string()}});
    let (status, answer) = call(
        &http,
        "PUT",
        &address,
        "sys/audit/file",
        Some("root"),
        Some(&enable),
    )
    .unwrap();
    assert_eq!(status, 204, "{answer}");
    let read = |path: &str| call(&http, "GET", &address, path, Some("root"), None).unwrap();
    assert_eq!(read("sys/mounts").0, 200);

    // logrotate moves the file away, then tells the server.
    std::fs::rename(&audit_path, &rotated_path).unwrap();
    hang_up(&dev.child);
    eventually(WITHIN, "a fresh audit file with the next request", || {
        assert_eq!(read("sys/policies/acl/default").0, 200);
        std::fs::read_to_string(&audit_path)
            .ok()
            .filter(|text| text.contains("sys/policies/acl/default"))
    });
    let rotated = std::fs::read_to_string(&rotated_path).unwrap();
    assert!(
        rotated.contains("sys/mounts"),
        "the old entries stay in the rotated file"
    );
    assert!(
        dev.child.try_wait().unwrap().is_none(),
        "a SIGHUP ended the server"
    );
    let log = std::fs::read_to_string(&dev.log_path).unwrap();
    assert!(has_line(&log, "info", "SIGHUP received"), "{log}");
}
