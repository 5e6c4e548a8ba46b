//! Helpers shared by the CLI tests that run real `arca server` processes the way the
//! performance replication tutorial starts its clusters.

// Test harness: real processes and files, outside the simulator.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

/// How long a step may take to become true (activation, replication of a filter).
pub const WAIT_ATTEMPTS_MAX: u32 = 120;
pub const WAIT_STEP: Duration = Duration::from_millis(500);

/// One `arca server` process, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two consecutive free ports (API and cluster), as the tutorial's 8200/8201.
pub fn free_port_pair() -> u16 {
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
pub fn start_cluster(lab: &Path, name: &str) -> Server {
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
    wait_listening(&mut server, port, &lab.join(format!("{name}.log")));
    server
}

/// Wait until `server` accepts connections on `port`; panic with its log if it exits.
pub fn wait_listening(server: &mut Server, port: u16, log_path: &Path) {
    for _ in 0..WAIT_ATTEMPTS_MAX {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(exit)) = server.child.try_wait() {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("arca server exited ({exit}) before listening:\n{log}");
        }
        std::thread::sleep(WAIT_STEP);
    }
    panic!(
        "{} never listened; see {}",
        server.address,
        log_path.display()
    );
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
