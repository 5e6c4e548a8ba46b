//! Helpers shared by the CLI tests that run real `arca server` processes the way the
//! performance replication tutorial starts its clusters, and type the tutorial's command
//! lines into a shell ([`Lab`]).

// Test harness: real processes and files, outside the simulator.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// How long a step may take to become true (activation, replication of a filter).
pub const WAIT_ATTEMPTS_MAX: u32 = 120;
pub const WAIT_STEP: Duration = Duration::from_millis(500);

/// How much of a server's log a failed test prints.
const LOG_LINES_SHOWN_MAX: usize = 80;

/// One `arca server` process, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows the end of each server's log: the why is usually there.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let shown = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN_MAX)..];
            eprintln!(
                "---- {} at {} (last {} of {} log lines)",
                self.log_path.display(),
                self.address,
                shown.len(),
                lines.len()
            );
            for line in shown {
                eprintln!("{line}");
            }
        }
    }
}

/// Two consecutive free ports (API and cluster), as the tutorial's 8200/8201; never a
/// port this test process was handed before (the kernel may give a released one again).
pub fn free_port_pair() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..100 {
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = api.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            let mut handed_out = HANDED_OUT.lock().unwrap();
            if !handed_out.contains(&port) && !handed_out.contains(&(port + 1)) {
                handed_out.extend([port, port + 1]);
                return port;
            }
        }
    }
    panic!("no two consecutive free ports on loopback");
}

/// The tutorial's `vault-server.hcl` for a cluster listening on `port` (API) and
/// `port + 1` (cluster) on loopback, its Raft data in `data_dir`: the tutorial's file with
/// `[::]:8200` and `/vault/file` replaced.
pub fn tutorial_config(port: u16, data_dir: &str) -> String {
    format!(
        "ui = true\nlistener \"tcp\" {{\n  tls_disable = 1\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{}\"\n}}\nstorage \"raft\" {{\n  path = \"{data_dir}\"\n}}\n",
        port + 1,
    )
}

/// `cat > cluster-X/config/vault-server.hcl` and `docker run ... vault server -config=...`.
pub fn start_cluster(lab: &Path, name: &str) -> Server {
    let port = free_port_pair();
    let config_dir = lab.join(name).join("config");
    let data_dir = lab.join(name).join("data");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::create_dir_all(&data_dir).unwrap();
    let config_path = config_dir.join("vault-server.hcl");
    std::fs::write(
        &config_path,
        tutorial_config(port, &data_dir.display().to_string()),
    )
    .unwrap();
    run_server(lab, name, &config_path, port)
}

/// `docker run --hostname=NAME --env VAULT_API_ADDR=... ... vault server -config=CONFIG`
/// as a local process: the container's variables point at loopback, the log goes to
/// `LAB/NAME.log`. Returns once the API port accepts connections.
pub fn run_server(lab: &Path, name: &str, config_path: &Path, port: u16) -> Server {
    let address = format!("http://127.0.0.1:{port}");
    let log_path = lab.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
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
    let mut server = Server {
        child,
        address,
        log_path,
    };
    wait_listening(&mut server, port);
    server
}

/// `arca server -dev` with root token `root` on a free port, with `extra` flags and the
/// environment's `ARCA_LOG` removed (the flags decide the log), once it listens.
pub fn start_dev_server(dir: &Path, extra: &[&str]) -> Server {
    let port = free_port_pair();
    let log_path = dir.join("dev.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let listen = format!("-dev-listen-address=127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(["server", "-dev", "-dev-root-token-id=root", &listen])
        .args(extra)
        .env_remove("ARCA_LOG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        address: format!("http://127.0.0.1:{port}"),
        log_path,
    };
    wait_listening(&mut server, port);
    server
}

/// Wait until `server` accepts connections on `port`; panic (showing its log) if it
/// exits first or never listens.
pub fn wait_listening(server: &mut Server, port: u16) {
    for _ in 0..WAIT_ATTEMPTS_MAX {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(exit)) = server.child.try_wait() {
            panic!("arca server exited ({exit}) before listening");
        }
        std::thread::sleep(WAIT_STEP);
    }
    panic!("{} never listened", server.address);
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The reader's terminal: a lab directory (also HOME), `arca` first on PATH, and the
/// variables the tutorial has exported so far.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub exported: Vec<(String, String)>,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_arca"), bin.join("arca")).unwrap();
        Lab {
            dir,
            bin,
            exported: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.path())
            .env_clear()
            .env("HOME", self.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .envs(self.exported.iter().map(|(name, value)| (name, value)));
        command
    }

    /// `$ LINE` in the lab, with `stdin` typed in.
    pub fn sh(&self, line: &str, stdin: &str) -> Output {
        let mut child = self
            .command("bash")
            .arg("-c")
            .arg(line)
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

    /// `$ LINE`, insisting on `code`; the stdout. Anything on stderr fails a success.
    pub fn expect(&self, line: &str, stdin: &str, code: i32) -> String {
        let output = self.sh(line, stdin);
        assert_eq!(
            output.status.code(),
            Some(code),
            "$ {line}\nstdout: {}\nstderr: {}",
            text(&output.stdout),
            text(&output.stderr)
        );
        if code == 0 {
            assert_eq!(text(&output.stderr), "", "$ {line}: unexpected stderr");
        }
        text(&output.stdout)
    }

    pub fn ok(&self, line: &str) -> String {
        self.expect(line, "", 0)
    }

    /// `$ LINE` again and again (bounded) until `accept` likes what it did: for what the
    /// tutorial's reader simply waits a moment for. The last attempt when none passes.
    pub fn eventually(&self, line: &str, stdin: &str, accept: impl Fn(&Output) -> bool) -> Output {
        let mut last = None;
        for _ in 0..WAIT_ATTEMPTS_MAX {
            let output = self.sh(line, stdin);
            if accept(&output) {
                return output;
            }
            last = Some(output);
            std::thread::sleep(WAIT_STEP);
        }
        let last = last.unwrap();
        panic!(
            "$ {line}\nnever did what was expected; last time (exit {:?}):\nstdout: {}\nstderr: {}",
            last.status.code(),
            text(&last.stdout),
            text(&last.stderr)
        );
    }

    /// `$ export NAME="$(...)" && echo $NAME`: run it, keep NAME for later lines.
    pub fn export(&mut self, name: &str, line: &str) -> String {
        let printed = self.ok(line);
        let value = printed.trim_end_matches('\n').to_string();
        assert_eq!(printed, format!("{value}\n"), "$ {line}");
        assert!(!value.is_empty(), "$ {line} printed nothing");
        self.exported.push((name.to_string(), value.clone()));
        value
    }
}

/// Retry `arca status` until the node reports itself active (the tutorial's reader
/// gives a freshly unsealed node a moment before configuring it).
pub fn wait_active(lab: &Lab, address_flag: &str) {
    for _ in 0..WAIT_ATTEMPTS_MAX {
        let output = lab.sh(&format!("arca status {address_flag}"), "");
        if output.status.success()
            && text(&output.stdout).contains("\nHA Mode                 active\n")
        {
            return;
        }
        std::thread::sleep(WAIT_STEP);
    }
    panic!("the node never became active");
}

/// A `Key`/`Value` table as Vault's columnize prints it: the key column padded to the
/// widest key, four spaces, then the value.
pub fn table(rows: &[(&str, &str)]) -> String {
    let all: Vec<(&str, &str)> = [("Key", "Value"), ("---", "-----")]
        .into_iter()
        .chain(rows.iter().copied())
        .collect();
    let width = all
        .iter()
        .map(|(key, _)| key.chars().count())
        .max()
        .unwrap();
    all.iter()
        .map(|(key, value)| format!("{key:<width$}    {value}\n"))
        .collect()
}

/// The rows of a printed `Key`/`Value` table, after checking its header and alignment.
pub fn table_rows(printed: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines.len() > 2, "not a table:\n{printed}");
    let column = lines[0].find("Value").expect("a Value column");
    assert!(lines[0].starts_with("Key "), "{printed}");
    assert_eq!(
        lines[1],
        format!("{:<column$}-----", "---"),
        "underline:\n{printed}"
    );
    lines[2..]
        .iter()
        .map(|line| {
            let (key, value) = line.split_at(column);
            assert!(
                key.ends_with("    ") && !key.trim_end().contains("  "),
                "misaligned row {line:?}:\n{printed}"
            );
            (key.trim_end().to_string(), value.to_string())
        })
        .collect()
}

/// Login's text before the table (Vault's text naming `arca`, `wrapAtLength`, then a
/// blank line).
pub const LOGIN_SUCCESS: &str = "Success! You are now authenticated. The token information displayed below is\nalready stored in the token helper. You do NOT need to run \"arca login\" again.\nFuture Arca requests will automatically use this token.\n\n";

pub fn is_base62(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric())
}

pub fn is_lower_hex(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The userpass login's output after `prompt`: the success text and the tutorial's rows.
pub fn check_userpass_login(printed: &str, prompt: &str) {
    let table_text = printed
        .strip_prefix(prompt)
        .and_then(|rest| rest.strip_prefix(LOGIN_SUCCESS))
        .unwrap_or_else(|| panic!("login text:\n{printed:?}"));
    let rows = table_rows(table_text);
    let token = rows[0].1.clone();
    assert!(
        token.starts_with("hvs.CAES") && token.len() >= 95,
        "long-form service token {token}"
    );
    let accessor = rows[1].1.clone();
    assert!(
        accessor.len() == 24 && is_base62(&accessor),
        "accessor {accessor}"
    );
    assert_eq!(
        table_text,
        table(&[
            ("token", &token),
            ("token_accessor", &accessor),
            ("token_duration", "768h"),
            ("token_renewable", "true"),
            ("token_policies", "[\"default\" \"superpolicy\"]"),
            ("identity_policies", "[]"),
            ("policies", "[\"default\" \"superpolicy\"]"),
            ("token_meta_username", "superuser"),
        ])
    );
}

/// A row of `secrets list` as (path, type, description); the accessor is checked apart.
pub type MountRow = (&'static str, &'static str, &'static str);

pub const CUBBYHOLE_MOUNT: MountRow = (
    "cubbyhole/",
    "cubbyhole",
    "per-token private secret storage",
);
pub const IDENTITY_MOUNT: MountRow = ("identity/", "identity", "identity store");
pub const SYS_MOUNT: MountRow = (
    "sys/",
    "system",
    "system endpoints used for control, policy and debugging",
);

/// `secrets list`'s table, exactly: these mounts in this order, each accessor its type
/// and eight hex digits, the columns padded as Vault's columnize pads them.
pub fn check_secrets_list(list: &str, expected_mounts: &[MountRow]) {
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2 + expected_mounts.len(), "{list}");
    let mut accessors = Vec::new();
    for (line, (path, kind, _)) in lines[2..].iter().zip(expected_mounts) {
        let accessor = line.split_whitespace().nth(2).unwrap_or_default();
        let hex = accessor
            .strip_prefix(&format!("{kind}_"))
            .unwrap_or_else(|| panic!("{path} accessor {accessor}:\n{list}"));
        assert!(
            hex.len() == 8 && is_lower_hex(hex),
            "{path} accessor {accessor}"
        );
        accessors.push(accessor.to_string());
    }
    let cells: Vec<[&str; 4]> = [["Path", "Type", "Accessor", "Description"]]
        .into_iter()
        .chain([["----", "----", "--------", "-----------"]])
        .chain(expected_mounts.iter().zip(&accessors).map(
            |((path, kind, description), accessor)| [*path, *kind, accessor.as_str(), *description],
        ))
        .collect();
    let widths: Vec<usize> = (0..3)
        .map(|column| cells.iter().map(|row| row[column].len()).max().unwrap())
        .collect();
    let expected_list: String = cells
        .iter()
        .map(|row| {
            format!(
                "{:<w0$}    {:<w1$}    {:<w2$}    {}\n",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect();
    assert_eq!(list, expected_list);
}

/// Initialize a cluster into `.init`, export its unseal key and root token, unseal it,
/// and export its address as `ADDRESS_VARIABLE`. `side` names the cluster: `PRI` is
/// `cluster-pri`, whose variables are `CLUSTER_PRI_UNSEAL_KEY` and `CLUSTER_PRI_ROOT_TOKEN`.
pub fn init_and_unseal(lab: &mut Lab, server: &Server, side: &str, address_variable: &str) {
    let name = format!("cluster-{}", side.to_ascii_lowercase());
    let address = &server.address;
    // $ vault operator init \ -address=http://127.0.0.1:8200 \ -key-shares=1 \ -key-threshold=1 \ > $PWD/cluster-pri/.init
    assert_eq!(
        lab.ok(&format!(
            "arca operator init \\\n  -address={address} \\\n  -key-shares=1 \\\n  -key-threshold=1 \\\n  > $PWD/{name}/.init"
        )),
        "",
        "everything went to .init"
    );
    // $ export CLUSTER_PRI_UNSEAL_KEY="$(grep 'Unseal Key 1' cluster-pri/.init | awk '{print $NF}')" && echo $CLUSTER_PRI_UNSEAL_KEY
    let key_variable = format!("CLUSTER_{side}_UNSEAL_KEY");
    let unseal_key = lab.export(
        &key_variable,
        &format!("export {key_variable}=\"$(grep 'Unseal Key 1' {name}/.init | awk '{{print $NF}}')\" && echo ${key_variable}"),
    );
    assert_eq!(unseal_key.len(), 44, "a base64 32-byte share: {unseal_key}");
    // $ export CLUSTER_PRI_ROOT_TOKEN="$(grep 'Initial Root Token' cluster-pri/.init | awk '{print $NF}')" && echo $CLUSTER_PRI_ROOT_TOKEN
    let token_variable = format!("CLUSTER_{side}_ROOT_TOKEN");
    let root_token = lab.export(
        &token_variable,
        &format!("export {token_variable}=\"$(grep 'Initial Root Token' {name}/.init | awk '{{print $NF}}')\" && echo ${token_variable}"),
    );
    assert!(root_token.starts_with("hvs."), "{root_token}");
    // $ vault operator unseal -address=http://127.0.0.1:8200 $CLUSTER_PRI_UNSEAL_KEY
    let unsealed = lab.ok(&format!(
        "arca operator unseal -address={address} ${key_variable}"
    ));
    let rows = table_rows(&unsealed);
    for (key, value) in [
        ("Seal Type", "shamir"),
        ("Initialized", "true"),
        ("Sealed", "false"),
        ("Total Shares", "1"),
        ("Threshold", "1"),
        ("Storage Type", "raft"),
        ("HA Enabled", "true"),
    ] {
        assert!(
            rows.iter().any(|row| row.0 == key && row.1 == value),
            "{key} {value}:\n{unsealed}"
        );
    }
    // $ export PRI_ADDR=http://127.0.0.1:8200
    lab.exported
        .push((address_variable.to_string(), address.clone()));
    wait_active(lab, &format!("-address=${address_variable}"));
}

/// `$ echo $CLUSTER_X_ROOT_TOKEN | xargs vault login -address=$X_ADDR` and its table.
pub fn root_login(lab: &Lab, token_variable: &str, address_variable: &str) {
    let login = lab.ok(&format!(
        "echo ${token_variable} | xargs arca login -address=${address_variable}"
    ));
    let root_token = lab
        .exported
        .iter()
        .find(|(name, _)| name == token_variable)
        .map(|(_, value)| value.as_str())
        .unwrap();
    check_root_login(&login, root_token);
}

/// What `arca login` prints for the root token `root_token`: the success text, then
/// Vault's table of a root token.
pub fn check_root_login(login: &str, root_token: &str) {
    let table_text = login
        .strip_prefix(LOGIN_SUCCESS)
        .unwrap_or_else(|| panic!("login text:\n{login}"));
    let rows = table_rows(table_text);
    assert_eq!(
        table_text,
        table(&[
            ("token", root_token),
            ("token_accessor", &rows[1].1),
            ("token_duration", "∞"),
            ("token_renewable", "false"),
            ("token_policies", "[\"root\"]"),
            ("identity_policies", "[]"),
            ("policies", "[\"root\"]"),
        ])
    );
}

/// Vault's warnings block for one warning (stderr of a command that got only warnings).
pub fn warnings_block(wrapped_lines: &[&str]) -> String {
    format!(
        "WARNING! The following warnings were returned from Vault:\n\n  * {}\n\n",
        wrapped_lines.join("\n  ")
    )
}

/// `$ LINE` that prints nothing on stdout and exactly `stderr`, with exit 0.
pub fn only_warnings(lab: &Lab, line: &str, stderr: &str) {
    let output = lab.sh(line, "");
    assert_eq!(
        (
            output.status.code(),
            text(&output.stdout),
            text(&output.stderr)
        ),
        (Some(0), String::new(), stderr.to_string()),
        "$ {line}"
    );
}

/// The CLI tests that type `... | jq` need jq; they fail, not skip, without it.
pub fn require_jq() {
    let jq = Command::new("jq").arg("--version").output();
    assert!(
        jq.is_ok_and(|output| output.status.success()),
        "these command lines pipe into jq: install it (scripts/test-all.sh does)"
    );
}
