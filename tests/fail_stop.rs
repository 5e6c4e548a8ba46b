//! A node whose disk fails an fsync of its Raft log stops (fail-stop) and its process exits
//! with an error, as etcd's does, so a supervisor sees it stop. `strace` attaches to the
//! running server and makes every `fsync` and `fdatasync` fail with `EIO`.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::{ServerProcess, call, client, eventually, free_port, init_and_activate};

const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_failed_fsync_stops_the_node_and_its_process_exits_with_an_error() {
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let mut server = ServerProcess::configure(root.path(), "node", free_port(), free_port(), &[]);
    server.start();
    let address = server.address();
    let token = init_and_activate(&http, &address);
    let (status, body) = call(
        &http,
        "PUT",
        &address,
        "sys/mounts/kv",
        Some(&token),
        Some(&json!({ "type": "kv" })),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");

    // From here on every fsync of the server fails, as a dying disk's would.
    let strace_log = root.path().join("strace.log");
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            "inject=fsync,fdatasync:error=EIO",
            "-p",
            &server.pid().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&strace_log).unwrap())
        .spawn()
        .expect("strace runs (scripts/test-all.sh installs it)");

    // Writes go on until one reaches the log after strace attached: its fsync fails, no
    // write is acknowledged from then on, and the process ends by itself.
    let mut attempt = 0;
    let exit = eventually(
        WITHIN,
        "the server process exits after a failed fsync",
        || {
            if let Some(status) = server.exit_status() {
                return Some(status);
            }
            attempt += 1;
            let _ = call(
                &http,
                "PUT",
                &address,
                &format!("kv/after-{attempt}"),
                Some(&token),
                Some(&json!({ "value": "x" })),
            );
            None
        },
    );
    let _ = strace.wait();
    let log = server.log();
    assert_eq!(exit.code(), Some(1), "{log}");
    assert!(
        log.contains("Raft failed on this node") && log.contains("repair the disk"),
        "{log}"
    );
    let strace_log = std::fs::read_to_string(&strace_log).unwrap_or_default();
    assert!(
        strace_log.contains("EIO"),
        "the exit followed an injected EIO: {strace_log}"
    );
}
