//! A full disk is an operating condition, not the end of the node (issue 10 item 6), on
//! a real process whose data directory is a 24 MiB tmpfs the test mounts.
//!
//! 1. A filler file takes half the file system; 2 KiB secrets are written until the node
//!    refuses one with a 500 "storage is full" in Vault's envelope.
//! 2. Reads keep working, `sys/health` says `disk_full`, the metrics gauge is 1, and the
//!    log says it once.
//! 3. The rest of the file system is filled to the last byte: the node still serves
//!    reads and health (nothing it must write is fatal).
//! 4. The fillers are deleted: writes resume by themselves, every acknowledged secret
//!    reads back, and the alarm clears.
//!
//! Mounting needs root (CI runs as root); otherwise the test says SKIPPED and passes.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::{ServerProcess, call, client, eventually, free_port, init_and_activate};

const FILESYSTEM_MIB: u64 = 24;
const FILLER_BYTES: usize = 12 * 1024 * 1024;
const SECRET_BYTES: usize = 2048;
/// Far more than the space left could hold: a node that never refuses fails the test.
const WRITES_MAX: usize = 20_000;

/// The tmpfs under the node's data directory; unmounted when dropped, even on panic.
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, mebibytes: u64) -> Mounted {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mebibytes}m"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {at:?} failed");
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn secret_value(index: usize) -> String {
    let stem = format!("secret-{index}-");
    stem.repeat(SECRET_BYTES / stem.len() + 1)[..SECRET_BYTES].to_string()
}

fn health(http: &reqwest::blocking::Client, address: &str) -> Value {
    let (_, body) = call(http, "GET", address, "sys/health", None, None).unwrap();
    body
}

/// Write files of 64 KiB chunks into `path` until the file system refuses more.
fn fill_to_the_last_byte(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        if let Err(error) = file.write_all(&chunk).and_then(|()| file.sync_data()) {
            assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
            return;
        }
    }
}

#[test]
fn a_full_disk_refuses_writes_serves_reads_and_recovers_when_space_is_freed() {
    if !is_root() {
        println!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let http = client();
    let api_port = free_port();
    let mut node = ServerProcess::configure(root.path(), "node1", api_port, free_port(), &[]);
    let _mounted = Mounted::tmpfs(&node.data_dir, FILESYSTEM_MIB);
    node.start();
    let address = node.address();
    let token = init_and_activate(&http, &address);
    let (status, body) = call(
        &http,
        "POST",
        &address,
        "sys/mounts/kv",
        Some(&token),
        Some(&json!({"type": "kv"})),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");
    assert_eq!(health(&http, &address)["disk_full"], false);

    // 1. Half the file system goes to a filler; secrets fill the rest until refused.
    let filler = node.data_dir.join("filler");
    std::fs::write(&filler, vec![0u8; FILLER_BYTES]).unwrap();
    let mut acknowledged = 0;
    let refusal = loop {
        assert!(
            acknowledged < WRITES_MAX,
            "{WRITES_MAX} writes and no refusal"
        );
        let body = json!({ "value": secret_value(acknowledged) });
        let path = format!("kv/s{acknowledged}");
        let (status, answer) = call(&http, "PUT", &address, &path, Some(&token), Some(&body))
            .expect("the node answers every write");
        if status != 204 {
            break (status, answer);
        }
        acknowledged += 1;
    };
    assert!(
        acknowledged > 100,
        "refused after only {acknowledged} writes"
    );
    let (status, answer) = refusal;
    assert_eq!(status, 500, "{answer}");
    let message = answer["errors"][0].as_str().unwrap_or_default();
    assert!(message.starts_with("storage is full: "), "{answer}");

    // 2. Reads work; health, metrics and the log say so.
    for index in [0, acknowledged / 2, acknowledged - 1] {
        let (status, body) = call(
            &http,
            "GET",
            &address,
            &format!("kv/s{index}"),
            Some(&token),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["value"], secret_value(index));
    }
    assert_eq!(health(&http, &address)["disk_full"], true);
    let (status, metrics) = call(
        &http,
        "GET",
        &address,
        "sys/metrics?format=prometheus",
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    // Gauges carry the host name after `vault_` unless `disable_hostname` is set.
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("vault_") && line.ends_with("raft_storage_disk_full 1")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("vault_raft_storage_disk_full_writes_refused ")),
        "{metrics}"
    );
    // Another refusal is not logged again.
    let (status, _) = call(
        &http,
        "PUT",
        &address,
        "kv/again",
        Some(&token),
        Some(&json!({"value": "x"})),
    )
    .unwrap();
    assert_eq!(status, 500);
    let raised = "storage is full: refusing writes";
    assert_eq!(node.log().matches(raised).count(), 1, "{}", node.log());

    // 3. Not a byte left: reads and health still answer, the process lives.
    let last_byte_filler = node.data_dir.join("filler-2");
    fill_to_the_last_byte(&last_byte_filler);
    std::thread::sleep(Duration::from_secs(2));
    assert!(node.is_running());
    let (status, body) = call(&http, "GET", &address, "kv/s0", Some(&token), None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(health(&http, &address)["disk_full"], true);

    // 4. Space is freed: writes resume without a restart, nothing acknowledged is lost.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&last_byte_filler).unwrap();
    eventually(Duration::from_secs(20), "writes resume", || {
        let body = json!({ "value": "after" });
        let (status, _) = call(
            &http,
            "PUT",
            &address,
            "kv/after",
            Some(&token),
            Some(&body),
        )
        .ok()?;
        (status == 204).then_some(())
    });
    assert_eq!(health(&http, &address)["disk_full"], false);
    for index in 0..acknowledged {
        let (status, body) = call(
            &http,
            "GET",
            &address,
            &format!("kv/s{index}"),
            Some(&token),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "s{index}: {body}");
        assert_eq!(body["data"]["value"], secret_value(index), "s{index}");
    }
    assert!(
        node.log()
            .contains("storage has space again: writes resume")
    );
    node.kill9();
}
