//! The performance replication tutorial (`shared/seed/performance-replication-tutorial.txt`),
//! command for command, with `arca` in place of `vault`, against two real `arca server`
//! processes on loopback.
//!
//! Ignored until `arca::server::launch` is assembled; then run it with
//! `cargo test --test cli_tutorial -- --ignored`. The only departures from the tutorial
//! are the ones a test needs: free loopback ports instead of 8200/8220 and Docker
//! host names, a temporary lab directory, and bounded waits where the tutorial's reader
//! would simply wait a moment.

// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// How long a step may take to become true (activation, replication of a filter).
const WAIT_ATTEMPTS_MAX: u32 = 120;
const WAIT_STEP: Duration = Duration::from_millis(500);

/// One `arca server` process, stopped when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two consecutive free ports (API and cluster), as the tutorial's 8200/8201.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = api.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports on loopback");
}

/// `cat > cluster-X/config/vault-server.hcl` and `docker run ... vault server -config=...`.
fn start_cluster(lab: &Path, name: &str) -> Server {
    let port = free_port_pair();
    let config_dir = lab.join(name).join("config");
    let data_dir = lab.join(name).join("data");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::create_dir_all(&data_dir).unwrap();
    let config = format!(
        "ui = true\nlistener \"tcp\" {{\n  tls_disable = 1\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{}\"\n}}\nstorage \"raft\" {{\n  path = \"{}\"\n}}\n",
        port + 1,
        data_dir.display()
    );
    let config_path = config_dir.join("vault-server.hcl");
    std::fs::write(&config_path, config).unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(lab.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_arca"))
        .arg("server")
        .arg(format!("-config={}", config_path.display()))
        .env("VAULT_ADDR", &address)
        .env(
            "VAULT_CLUSTER_ADDR",
            format!("http://127.0.0.1:{}", port + 1),
        )
        .env("VAULT_API_ADDR", &address)
        .env("VAULT_RAFT_NODE_ID", name)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = Server { child, address };
    for _ in 0..WAIT_ATTEMPTS_MAX {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        if let Ok(Some(exit)) = server.child.try_wait() {
            let log = std::fs::read_to_string(lab.join(format!("{name}.log"))).unwrap_or_default();
            panic!("{name} exited ({exit}) before listening:\n{log}");
        }
        std::thread::sleep(WAIT_STEP);
    }
    let address = server.address.clone();
    panic!("{name} never listened on {address}; see {name}.log in the lab directory");
}

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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
    assert!(text(&enable.stderr).starts_with("WARNING! The following warnings were returned from Vault:\n\n  * This cluster is being enabled as a primary"), "{}", text(&enable.stderr));

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
        userpass_text.starts_with("Password (will be hidden): Success! You are now authenticated."),
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
