//! The single-cluster part of the performance replication tutorial
//! (`shared/seed/performance-replication-tutorial.txt`: start, init, unseal, log in,
//! configure the primary), and the README's short tour, run as shell command lines
//! through `bash -c` with `arca` on PATH, against real `arca server` processes.
//!
//! The command lines are the tutorial's, verbatim, except `vault` → `arca` and loopback
//! addresses instead of Docker host names. Each printed output is checked against the
//! tutorial and the reference's CLI section (§4): the `Success!` lines exactly, the init
//! text, the login tables row by row, the `secrets list` columns, the status table and
//! the exit codes.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli_support::{
    CUBBYHOLE_MOUNT, IDENTITY_MOUNT, LOGIN_SUCCESS, Lab, SYS_MOUNT, Server, check_root_login,
    check_secrets_list, check_userpass_login, is_base62, is_lower_hex, start_cluster, table,
    table_rows, text, wait_active, wait_listening,
};

const INIT_PARAGRAPHS: &str =
    "Arca initialized with 1 key shares and a key threshold of 1. Please securely
distribute the key shares printed above. When Arca is re-sealed, restarted, or
stopped, you must supply at least 1 of these keys to unseal it before it can
start servicing requests.

Arca does not store the generated root key. Without at least 1 keys to
reconstruct the root key, Arca will remain permanently sealed!

It is possible to generate new unseal keys, provided you have a quorum of
existing unseal keys shares. See \"arca operator rekey\" for more information.
";

/// The seal-status table of `operator unseal` and `status`, checked row by row against
/// the tutorial's (§4 order); the rows by name.
fn check_status_table(printed: &str, sealed: bool, initialized: bool) -> Vec<(String, String)> {
    let rows = table_rows(printed);
    let keys: Vec<&str> = rows.iter().map(|(key, _)| key.as_str()).collect();
    let value = |name: &str| -> &str {
        rows.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("no {name} row:\n{printed}"))
    };
    let shares = if initialized { "1" } else { "0" };
    let mut expected = vec![
        ("Seal Type", Some("shamir")),
        (
            "Initialized",
            Some(if initialized { "true" } else { "false" }),
        ),
        ("Sealed", Some(if sealed { "true" } else { "false" })),
        ("Total Shares", Some(shares)),
        ("Threshold", Some(shares)),
    ];
    if sealed {
        let progress = format!("0/{shares}");
        assert_eq!(value("Unseal Progress"), progress, "{printed}");
        expected.push(("Unseal Progress", None));
        expected.push(("Unseal Nonce", Some("n/a")));
    }
    expected.extend([
        ("Version", None),
        ("Build Date", None),
        ("Storage Type", Some("raft")),
    ]);
    if !sealed {
        expected.extend([("Cluster Name", None), ("Cluster ID", None)]);
    }
    expected.push(("HA Enabled", Some("true")));
    if !sealed {
        expected.extend([("HA Cluster", None), ("HA Mode", None)]);
        match value("HA Mode") {
            "active" => {
                if keys.contains(&"Active Since") {
                    expected.push(("Active Since", None));
                }
            }
            "standby" => expected.push(("Active Node Address", None)),
            other => panic!("HA Mode {other}:\n{printed}"),
        }
        expected.extend([("Raft Committed Index", None), ("Raft Applied Index", None)]);
    }
    let expected_keys: Vec<&str> = expected.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, expected_keys, "status rows:\n{printed}");
    for (key, fixed) in &expected {
        if let Some(fixed) = fixed {
            assert_eq!(value(key), *fixed, "{key}:\n{printed}");
        }
    }
    assert!(!value("Version").is_empty(), "{printed}");
    assert!(value("Build Date").ends_with('Z'), "{printed}");
    if !sealed {
        let name = value("Cluster Name");
        let suffix = name.strip_prefix("vault-cluster-").unwrap_or("");
        assert!(
            suffix.len() == 8 && is_lower_hex(suffix),
            "Cluster Name {name}"
        );
        let id = value("Cluster ID");
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "Cluster ID {id}");
        for index in ["Raft Committed Index", "Raft Applied Index"] {
            value(index)
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{index}:\n{printed}"));
        }
    }
    rows
}

#[test]
fn single_cluster_tutorial_commands_print_what_the_tutorial_shows() {
    let mut lab = Lab::new();
    std::fs::create_dir_all(lab.path().join("cluster-pri/data")).unwrap();

    // Start primary cluster: the tutorial's config file and `vault server -config=...`
    // with VAULT_API_ADDR, VAULT_CLUSTER_ADDR and VAULT_RAFT_NODE_ID set.
    let primary = start_cluster(lab.path(), "cluster-pri");
    let address = primary.address.clone();

    // Not yet initialized: `status` prints the sealed table and exits 2.
    let sealed = lab.expect(&format!("arca status -address={address}"), "", 2);
    check_status_table(&sealed, true, false);

    // $ vault operator init -address=... -key-shares=1 -key-threshold=1 > $PWD/cluster-pri/.init
    let printed = lab.ok(&format!(
        "arca operator init \\\n  -address={address} \\\n  -key-shares=1 \\\n  -key-threshold=1 \\\n  > $PWD/cluster-pri/.init"
    ));
    assert_eq!(printed, "", "everything went to .init");
    let init = std::fs::read_to_string(lab.path().join("cluster-pri/.init")).unwrap();

    // $ export CLUSTER_PRI_UNSEAL_KEY="$(grep 'Unseal Key 1' cluster-pri/.init | awk '{print $NF}')" && echo $CLUSTER_PRI_UNSEAL_KEY
    let unseal_key = lab.export(
        "CLUSTER_PRI_UNSEAL_KEY",
        "export CLUSTER_PRI_UNSEAL_KEY=\"$(grep 'Unseal Key 1' cluster-pri/.init | awk '{print $NF}')\" && echo $CLUSTER_PRI_UNSEAL_KEY",
    );
    assert_eq!(unseal_key.len(), 44, "a base64 32-byte share: {unseal_key}");
    // $ export CLUSTER_PRI_ROOT_TOKEN="$(grep 'Initial Root Token' cluster-pri/.init | awk '{print $NF}')" && echo $CLUSTER_PRI_ROOT_TOKEN
    let root_token = lab.export(
        "CLUSTER_PRI_ROOT_TOKEN",
        "export CLUSTER_PRI_ROOT_TOKEN=\"$(grep 'Initial Root Token' cluster-pri/.init | awk '{print $NF}')\" && echo $CLUSTER_PRI_ROOT_TOKEN",
    );
    let random = root_token.strip_prefix("hvs.").unwrap_or("");
    assert!(
        random.len() == 24 && is_base62(random),
        "short-form root token: {root_token}"
    );
    // The whole init text, trailing paragraphs included.
    assert_eq!(
        init,
        format!(
            "Unseal Key 1: {unseal_key}\n\nInitial Root Token: {root_token}\n\n{INIT_PARAGRAPHS}"
        )
    );

    // Initialized but sealed: `status` still exits 2, with the unseal progress.
    let sealed = lab.expect(&format!("arca status -address={address}"), "", 2);
    check_status_table(&sealed, true, true);

    // $ vault operator unseal -address=http://127.0.0.1:8200 $CLUSTER_PRI_UNSEAL_KEY
    let unsealed = lab.ok(&format!(
        "arca operator unseal -address={address} $CLUSTER_PRI_UNSEAL_KEY"
    ));
    check_status_table(&unsealed, false, true);

    // $ export PRI_ADDR=http://127.0.0.1:8200
    lab.exported.push(("PRI_ADDR".to_string(), address.clone()));
    wait_active(&lab, "-address=$PRI_ADDR");

    // $ echo $CLUSTER_PRI_ROOT_TOKEN | xargs vault login -address=$PRI_ADDR
    let login = lab.ok("echo $CLUSTER_PRI_ROOT_TOKEN | xargs arca login -address=$PRI_ADDR");
    let table_text = login
        .strip_prefix(LOGIN_SUCCESS)
        .unwrap_or_else(|| panic!("login text:\n{login}"));
    let rows = table_rows(table_text);
    let accessor = rows[1].1.clone();
    assert!(
        accessor.len() == 24 && is_base62(&accessor),
        "accessor {accessor}"
    );
    assert_eq!(
        table_text,
        table(&[
            ("token", &root_token),
            ("token_accessor", &accessor),
            ("token_duration", "∞"),
            ("token_renewable", "false"),
            ("token_policies", "[\"root\"]"),
            ("identity_policies", "[]"),
            ("policies", "[\"root\"]"),
        ])
    );
    // The token helper now holds the root token.
    assert_eq!(
        std::fs::read_to_string(lab.path().join(".arca-token")).unwrap(),
        root_token
    );

    // $ vault policy write -address=$PRI_ADDR superpolicy -<<EOF ... EOF
    assert_eq!(
        lab.ok("arca policy write -address=$PRI_ADDR superpolicy -<<EOF\npath \"*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"]\n}\nEOF"),
        "Success! Uploaded policy: superpolicy\n"
    );
    // $ vault auth enable -address=$PRI_ADDR userpass
    assert_eq!(
        lab.ok("arca auth enable -address=$PRI_ADDR userpass"),
        "Success! Enabled userpass auth method at: userpass/\n"
    );
    // $ vault write -address=$PRI_ADDR auth/userpass/users/superuser password="vaultMagic" policies="superpolicy"
    assert_eq!(
        lab.ok("arca write -address=$PRI_ADDR auth/userpass/users/superuser password=\"vaultMagic\" policies=\"superpolicy\""),
        "Success! Data written to: auth/userpass/users/superuser\n"
    );
    // $ vault secrets enable -address=$PRI_ADDR -path=replicatedkv kv-v2
    assert_eq!(
        lab.ok("arca secrets enable -address=$PRI_ADDR -path=replicatedkv kv-v2"),
        "Success! Enabled the kv-v2 secrets engine at: replicatedkv/\n"
    );
    // $ vault secrets enable -address=$PRI_ADDR -path=localkv -local kv-v2
    assert_eq!(
        lab.ok("arca secrets enable -address=$PRI_ADDR -path=localkv -local kv-v2"),
        "Success! Enabled the kv-v2 secrets engine at: localkv/\n"
    );
    // The same path again is the server's refusal: exit 2, the reason on stderr.
    let again = lab.sh(
        "arca secrets enable -address=$PRI_ADDR -path=localkv -local kv-v2",
        "",
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).starts_with("Error enabling: "),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(text(&again.stdout), "");

    // $ vault secrets list -address=$PRI_ADDR
    let list = lab.ok("arca secrets list -address=$PRI_ADDR");
    check_secrets_list(
        &list,
        &[
            CUBBYHOLE_MOUNT,
            IDENTITY_MOUNT,
            ("localkv/", "kv", "n/a"),
            ("replicatedkv/", "kv", "n/a"),
            SYS_MOUNT,
        ],
    );

    // $ vault login -address=$PRI_ADDR -method=userpass username=superuser
    // Password (will be hidden): vaultMagic
    let userpass = lab.expect(
        "arca login -address=$PRI_ADDR -method=userpass username=superuser",
        "vaultMagic\n",
        0,
    );
    check_userpass_login(&userpass, "Password (will be hidden): \n");

    // $ vault status (the token now is superuser's; status needs none)
    let status = lab.ok("arca status -address=$PRI_ADDR");
    let rows = check_status_table(&status, false, true);
    assert!(
        rows.iter()
            .any(|(key, value)| key == "HA Mode" && value == "active"),
        "{status}"
    );
    // VAULT_ADDR instead of the flag.
    let status = lab.ok("VAULT_ADDR=$PRI_ADDR arca status");
    check_status_table(&status, false, true);

    drop(primary);
    // A server that is gone: `status` reports an error with exit 1 (2 means sealed).
    let gone = lab.sh("arca status -address=$PRI_ADDR", "");
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone.stderr));
    assert!(
        text(&gone.stderr).starts_with("Error checking seal status: "),
        "{}",
        text(&gone.stderr)
    );
    assert_eq!(text(&gone.stdout), "");
}

/// The password typed at a real terminal: `script` gives `arca login` a pty; the
/// password is typed only once the prompt is shown, and must not be echoed.
#[test]
fn userpass_password_prompt_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to provide a pseudo-terminal");
        return;
    }
    let mut lab = Lab::new();
    let primary = start_cluster(lab.path(), "cluster-pri");
    lab.exported
        .push(("PRI_ADDR".to_string(), primary.address.clone()));
    let init = lab.ok("arca operator init -address=$PRI_ADDR -key-shares=1 -key-threshold=1");
    let word = |needle: &str| {
        init.lines()
            .find(|line| line.contains(needle))
            .and_then(|line| line.split_whitespace().last())
            .unwrap()
            .to_string()
    };
    let (key, root) = (word("Unseal Key 1"), word("Initial Root Token"));
    lab.ok(&format!("arca operator unseal -address=$PRI_ADDR {key}"));
    wait_active(&lab, "-address=$PRI_ADDR");
    lab.ok(&format!("arca login -address=$PRI_ADDR {root}"));
    lab.ok("arca auth enable -address=$PRI_ADDR userpass");
    lab.ok("arca write -address=$PRI_ADDR auth/userpass/users/superuser password=\"vaultMagic\" policies=\"superpolicy\"");

    let mut child = lab
        .command("script")
        .args([
            "-qec",
            "arca login -address=$PRI_ADDR -method=userpass username=superuser",
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(count) = stdout.read(&mut buffer) {
                if count == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buffer[..count]);
            }
        })
    };
    let prompt = "Password (will be hidden): ";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text(&seen.lock().unwrap()).contains(prompt) {
        assert!(Instant::now() < deadline, "no password prompt");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give the CLI a moment to turn echo off after printing the prompt.
    std::thread::sleep(Duration::from_millis(300));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"vaultMagic\r").unwrap();
    stdin.flush().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "login never finished");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    reader.join().unwrap();
    let printed = text(&seen.lock().unwrap()).replace("\r\n", "\n");
    assert_eq!(status.code(), Some(0), "{printed}");
    assert!(
        !printed.contains("vaultMagic"),
        "password echoed:\n{printed}"
    );
    check_userpass_login(&printed, "Password (will be hidden): \n");
    drop(primary);
}

/// README's short tour: `server -dev`, `login root`, `secrets enable`, `kv put/get -mount`,
/// `status`.
#[test]
fn readme_tour() {
    let mut lab = Lab::new();
    let port = cli_support::free_port_pair();
    let address = format!("http://127.0.0.1:{port}");
    let log_path = lab.path().join("dev.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // $ arca server -dev -dev-root-token-id=root &
    let child = lab
        .command("arca")
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        address: address.clone(),
        log_path,
    };
    wait_listening(&mut server, port);
    // $ export VAULT_ADDR=http://127.0.0.1:8200
    lab.exported.push(("VAULT_ADDR".to_string(), address));
    wait_active(&lab, "");

    // $ arca login root
    check_root_login(&lab.ok("arca login root"), "root");
    // `arca login` with no token asks for it on stderr, as Vault's token handler does,
    // so stdout holds only the result.
    let prompted = lab.sh("printf 'root\\n' | arca login", "");
    assert_eq!(
        prompted.status.code(),
        Some(0),
        "{}",
        text(&prompted.stderr)
    );
    assert_eq!(text(&prompted.stderr), "Token (will be hidden): \n");
    assert!(
        text(&prompted.stdout).starts_with(LOGIN_SUCCESS),
        "{}",
        text(&prompted.stdout)
    );
    // $ arca secrets enable -path=kv kv-v2
    assert_eq!(
        lab.ok("arca secrets enable -path=kv kv-v2"),
        "Success! Enabled the kv-v2 secrets engine at: kv/\n"
    );
    // $ arca kv put -mount=kv app password=hunter2
    let put = lab.ok("arca kv put -mount=kv app password=hunter2");
    let metadata = put
        .strip_prefix("== Secret Path ==\nkv/data/app\n\n======= Metadata =======\n")
        .unwrap_or_else(|| panic!("{put}"));
    let rows = table_rows(metadata);
    let created = rows[0].1.clone();
    assert!(
        created.len() >= 20 && created.ends_with('Z'),
        "created_time {created}"
    );
    let metadata_table = table(&[
        ("created_time", &created),
        ("custom_metadata", "<nil>"),
        ("deletion_time", "n/a"),
        ("destroyed", "false"),
        ("version", "1"),
    ]);
    assert_eq!(metadata, metadata_table);
    // $ arca kv get -mount=kv app
    assert_eq!(
        lab.ok("arca kv get -mount=kv app"),
        format!(
            "== Secret Path ==\nkv/data/app\n\n======= Metadata =======\n{metadata_table}\n====== Data ======\n{}",
            table(&[("password", "hunter2")])
        )
    );
    // $ arca kv put -h
    let help = lab.ok("arca kv put -h");
    assert!(
        help.starts_with("Usage: arca kv put [options] KEY [DATA]\n\n"),
        "{help}"
    );
    for heading in [
        "HTTP Options:",
        "Output Options:",
        "Common Options:",
        "Command Options:",
    ] {
        assert!(help.contains(&format!("\n{heading}\n")), "{help}");
    }
    assert!(help.contains("\n  -cas=<int>\n"), "{help}");
    // $ arca kv get -mount=kv -output-curl-string app
    let address = &server.address;
    assert_eq!(
        lab.ok("arca kv get -mount=kv -output-curl-string app"),
        format!(
            "curl -H \"X-Vault-Request: true\" -H \"X-Vault-Token: $(arca print token)\" {address}/v1/kv/data/app\n"
        )
    );
    // $ arca status
    let status = lab.ok("arca status");
    let rows = table_rows(&status);
    assert!(
        rows.iter()
            .any(|(key, value)| key == "Sealed" && value == "false"),
        "{status}"
    );
    drop(server);
}
