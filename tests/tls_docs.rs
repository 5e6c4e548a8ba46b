//! `docs/tls.md` as a reader follows it: its `bash` blocks run in order in a lab
//! directory (ports replaced by free ones), its three `arca server` lines start real
//! processes, and the cluster it builds answers over TLS and forwards a standby's write.
//! Needs `openssl` and `jq` on PATH, as the page does.

// Real processes and sockets: outside the simulator.
#![cfg(not(madsim))]
// Test harness: real processes and files, outside the simulator.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli_support;

use std::process::Command;

use cli_support::{Lab, Server, text};

/// The page's fenced blocks marked `bash`, in order.
fn bash_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match &mut current {
            None if line.trim_start() == "```bash" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed bash block in docs/tls.md");
    blocks
}

/// `text` with each whole number `from` replaced by `to` (8200 but not 18200).
fn replace_port(text: &str, from: u16, to: u16) -> String {
    let from = from.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&from) {
        let before = rest[..at].chars().last();
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(&from);
        } else {
            out.push_str(&to.to_string());
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// `bash -c SCRIPT` in the lab; the script's stdout, insisting on success.
fn run(lab: &Lab, script: &str) -> String {
    let output = lab.sh(script, "");
    assert!(
        output.status.success(),
        "docs/tls.md script failed ({:?}):\n{script}\nstdout: {}\nstderr: {}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[test]
fn the_tls_page_deploys_a_three_node_cluster() {
    for tool in ["openssl", "jq"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool} > /dev/null"))
            .status()
            .unwrap()
            .success();
        assert!(found, "docs/tls.md needs {tool} on PATH");
    }
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tls.md")).unwrap();
    let mut blocks = bash_blocks(&page);
    let lab = Lab::new();
    let ports: Vec<u16> = (0..3).map(|_| cli_support::free_port_pair()).collect();
    for block in &mut blocks {
        for (index, port) in ports.iter().enumerate() {
            let documented = 8200 + 10 * index as u16;
            *block = replace_port(block, documented, *port);
            *block = replace_port(block, documented + 1, port + 1);
        }
    }
    let start = blocks
        .iter()
        .position(|block| block.contains("arca server -config="))
        .expect("the page starts servers");

    // Steps 1 and 2: the CA, the certificates, the configurations.
    run(&lab, &blocks[..start].join("\n"));
    assert!(lab.path().join("tls/node3.pem").exists());

    // Step 3: the servers, started here so the test can stop them.
    let mut servers = Vec::new();
    for (line, port) in blocks[start].lines().zip(&ports) {
        let config = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("-config="))
            .expect("an arca server line names its -config");
        let log_path = lab.path().join(config.replace("server.hcl", "server.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_arca"))
            .current_dir(lab.path())
            .arg("server")
            .arg(format!("-config={config}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        servers.push(Server {
            child,
            address: format!("https://127.0.0.1:{port}"),
            log_path,
        });
    }
    assert_eq!(servers.len(), 3, "three arca server lines");

    // Step 4: init, unseal, three voters, and a write through each standby.
    let printed = run(&lab, &blocks[start + 1..].join("\n"));
    for node in ["node1", "node2", "node3"] {
        assert!(printed.contains(node), "{printed}");
    }
    assert!(printed.ends_with("world"), "{printed}");
}
