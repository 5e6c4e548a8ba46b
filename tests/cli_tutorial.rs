//! The performance replication tutorial (`shared/seed/performance-replication-tutorial.txt`),
//! command for command, with `arca` in place of `vault`, against two real `arca server`
//! processes on loopback.
//!
//! Ignored until `arca::server::launch` is assembled; then run it with
//! `cargo test --test cli_tutorial -- --ignored`. The only departures from the tutorial
//! are the ones a test needs: free loopback ports instead of 8200/8220 and Docker
//! host names, a temporary lab directory, and bounded waits where the tutorial's reader
//! would simply wait a moment.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use cli_support::{WAIT_ATTEMPTS_MAX, WAIT_STEP, start_cluster, text};

/// The reader's shell: one HOME (one token helper) for the whole tutorial.
struct Shell {
    home: PathBuf,
}

impl Shell {
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arca"))
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
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

    /// Run and insist on exit 0; the stdout.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run(args, stdin);
        assert_eq!(
            output.status.code(),
            Some(0),
            "arca {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Retry a command until `accept` likes its output (bounded).
    fn eventually(&self, args: &[&str], stdin: &str, accept: impl Fn(&Output) -> bool) -> Output {
        let mut last = None;
        for _ in 0..WAIT_ATTEMPTS_MAX {
            let output = self.run(args, stdin);
            if accept(&output) {
                return output;
            }
            last = Some(output);
            std::thread::sleep(WAIT_STEP);
        }
        let last = last.unwrap();
        panic!(
            "arca {args:?} never succeeded:\nstdout: {}\nstderr: {}",
            text(&last.stdout),
            text(&last.stderr)
        );
    }
}

/// `grep 'NEEDLE' .init | awk '{print $NF}'`.
fn grep_last_word(init: &str, needle: &str) -> String {
    init.lines()
        .find(|line| line.contains(needle))
        .and_then(|line| line.split_whitespace().last())
        .unwrap_or_else(|| panic!("no {needle:?} line in:\n{init}"))
        .to_string()
}

/// `arca operator init ... > .init`, then unseal with the key; the root token.
fn init_and_unseal(shell: &Shell, address: &str) -> String {
    let init = shell.ok(
        &[
            "operator",
            "init",
            &format!("-address={address}"),
            "-key-shares=1",
            "-key-threshold=1",
        ],
        "",
    );
    let unseal_key = grep_last_word(&init, "Unseal Key 1");
    let root_token = grep_last_word(&init, "Initial Root Token");
    assert!(root_token.starts_with("hvs."), "{root_token}");
    let unsealed = shell.ok(
        &[
            "operator",
            "unseal",
            &format!("-address={address}"),
            &unseal_key,
        ],
        "",
    );
    assert!(unsealed.contains("\nSealed "), "{unsealed}");
    let sealed_row = unsealed
        .lines()
        .find(|line| line.starts_with("Sealed "))
        .unwrap();
    assert!(sealed_row.ends_with("false"), "{unsealed}");
    root_token
}

#[test]
#[ignore = "needs the assembled server (arca::server::launch)"]
fn performance_replication_tutorial() {
    let lab = tempfile::tempdir().unwrap();
    let shell = Shell {
        home: lab.path().to_path_buf(),
    };

    // Start primary cluster; initialize and unseal it.
    let primary = start_cluster(lab.path(), "cluster-pri");
    let pri_addr = primary.address.clone();
    let pri_root = init_and_unseal(&shell, &pri_addr);

    // Start secondary cluster; initialize and unseal it.
    let secondary = start_cluster(lab.path(), "cluster-sec");
    let sec_addr = secondary.address.clone();
    let sec_root = init_and_unseal(&shell, &sec_addr);

    // Configure the primary: `echo $CLUSTER_PRI_ROOT_TOKEN | xargs vault login -address=$PRI_ADDR`.
    let login = shell.ok(&["login", &format!("-address={pri_addr}"), &pri_root], "");
    assert!(login.contains("token_policies       [\"root\"]"), "{login}");
    let policy = "path \"*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"]\n}\n";
    assert_eq!(
        shell.ok(
            &[
                "policy",
                "write",
                &format!("-address={pri_addr}"),
                "superpolicy",
                "-"
            ],
            policy
        ),
        "Success! Uploaded policy: superpolicy\n"
    );
    assert_eq!(
        shell.ok(
            &[
                "auth",
                "enable",
                &format!("-address={pri_addr}"),
                "userpass"
            ],
            ""
        ),
        "Success! Enabled userpass auth method at: userpass/\n"
    );
    assert_eq!(
        shell.ok(
            &[
                "write",
                &format!("-address={pri_addr}"),
                "auth/userpass/users/superuser",
                "password=vaultMagic",
                "policies=superpolicy"
            ],
            ""
        ),
        "Success! Data written to: auth/userpass/users/superuser\n"
    );
    assert_eq!(
        shell.ok(
            &[
                "secrets",
                "enable",
                &format!("-address={pri_addr}"),
                "-path=replicatedkv",
                "kv-v2"
            ],
            ""
        ),
        "Success! Enabled the kv-v2 secrets engine at: replicatedkv/\n"
    );
    assert_eq!(
        shell.ok(
            &[
                "secrets",
                "enable",
                &format!("-address={pri_addr}"),
                "-path=localkv",
                "-local",
                "kv-v2"
            ],
            ""
        ),
        "Success! Enabled the kv-v2 secrets engine at: localkv/\n"
    );

    // Enable performance replication on the primary: only a warning is printed.
    let enable = shell.run(
        &[
            "write",
            &format!("-address={pri_addr}"),
            "-f",
            "sys/replication/performance/primary/enable",
        ],
        "",
    );
    assert_eq!(enable.status.code(), Some(0), "{}", text(&enable.stderr));
    assert!(text(&enable.stderr).starts_with("WARNING! The following warnings were returned from Arca:\n\n  * This cluster is being enabled as a primary"), "{}", text(&enable.stderr));

    // SEC_BOOTSTRAP=$(vault write ... secondary-token id=secondary -format=json | jq -r '.wrap_info | .token')
    let token_output = shell.eventually(
        &[
            "write",
            &format!("-address={pri_addr}"),
            "sys/replication/performance/primary/secondary-token",
            "id=secondary",
            "-format=json",
        ],
        "",
        |output| output.status.success(),
    );
    let envelope: Value = serde_json::from_slice(&token_output.stdout).unwrap();
    let sec_bootstrap = envelope["wrap_info"]["token"].as_str().unwrap().to_string();
    assert!(sec_bootstrap.starts_with("eyJ"), "{sec_bootstrap}");

    // Configure the secondary: log in with its root token, activate it.
    shell.ok(&["login", &format!("-address={sec_addr}"), &sec_root], "");
    let activate = shell.run(
        &[
            "write",
            &format!("-address={sec_addr}"),
            "sys/replication/performance/secondary/enable",
            &format!("token={sec_bootstrap}"),
        ],
        "",
    );
    assert_eq!(
        activate.status.code(),
        Some(0),
        "{}",
        text(&activate.stderr)
    );
    assert!(
        text(&activate.stderr).contains("Vault has successfully found secondary information"),
        "{}",
        text(&activate.stderr)
    );

    // The root token is gone; the replicated userpass user logs in (password prompted).
    let userpass = shell.eventually(
        &[
            "login",
            &format!("-address={sec_addr}"),
            "-method=userpass",
            "username=superuser",
        ],
        "vaultMagic\n",
        |output| output.status.success(),
    );
    let userpass_text = text(&userpass.stdout);
    assert!(
        userpass_text
            .starts_with("Password (will be hidden): \nSuccess! You are now authenticated."),
        "{userpass_text}"
    );
    assert!(
        userpass_text.contains("token_meta_username    superuser"),
        "{userpass_text}"
    );

    // Verify the replication status on the secondary.
    let status = shell.eventually(
        &[
            "read",
            "-format=json",
            &format!("-address={sec_addr}"),
            "sys/replication/status",
        ],
        "",
        |output| {
            serde_json::from_slice::<Value>(&output.stdout)
                .map(|status| status["data"]["performance"]["mode"] == "secondary")
                .unwrap_or(false)
        },
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["data"]["dr"]["mode"], "disabled");

    // replicatedkv/ is on the secondary, localkv/ is not.
    let mounts = shell.eventually(
        &["secrets", "list", &format!("-address={sec_addr}")],
        "",
        |output| text(&output.stdout).contains("\nreplicatedkv/ "),
    );
    assert!(
        text(&mounts.stdout).starts_with("Path "),
        "{}",
        text(&mounts.stdout)
    );
    assert!(
        !text(&mounts.stdout).contains("localkv/"),
        "{}",
        text(&mounts.stdout)
    );

    // Manage replicated mounts: deny replicatedkv for the secondary.
    shell.ok(&["login", &format!("-address={pri_addr}"), &pri_root], "");
    assert_eq!(
        shell.ok(
            &[
                "write",
                &format!("-address={pri_addr}"),
                "sys/replication/performance/primary/paths-filter/secondary",
                "mode=deny",
                "paths=replicatedkv"
            ],
            ""
        ),
        "Success! Data written to: sys/replication/performance/primary/paths-filter/secondary\n"
    );
    shell.eventually(
        &[
            "login",
            &format!("-address={sec_addr}"),
            "-method=userpass",
            "username=superuser",
        ],
        "vaultMagic\n",
        |output| output.status.success(),
    );
    shell.eventually(
        &["secrets", "list", &format!("-address={sec_addr}")],
        "",
        |output| output.status.success() && !text(&output.stdout).contains("replicatedkv/"),
    );

    drop(secondary);
    drop(primary);
}
