//! Helpers for integration tests over real `arca` processes and real HTTP.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free loopback port (bound and released; a tiny race that tests tolerate).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One `arca server` process.
pub struct ServerProcess {
    pub name: String,
    pub api_port: u16,
    pub cluster_port: u16,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// Write a Vault-style configuration for this node under `root`.
    pub fn configure(
        root: &Path,
        name: &str,
        api_port: u16,
        cluster_port: u16,
        retry_join: &[String],
    ) -> ServerProcess {
        let api_addr = format!("http://127.0.0.1:{api_port}");
        Self::configure_advertising(root, name, api_port, cluster_port, retry_join, &api_addr)
    }

    /// [`ServerProcess::configure`] with the `api_addr` the node advertises to its
    /// peers set apart from where it listens.
    pub fn configure_advertising(
        root: &Path,
        name: &str,
        api_port: u16,
        cluster_port: u16,
        retry_join: &[String],
        api_addr: &str,
    ) -> ServerProcess {
        let data_dir = root.join(name).join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let joins: String = retry_join
            .iter()
            .map(|address| format!("  retry_join {{\n    leader_api_addr = \"{address}\"\n  }}\n"))
            .collect();
        let config = format!(
            "ui = true\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{api_port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = 1\n}}\nstorage \"raft\" {{\n  path = \"{}\"\n  node_id = \"{name}\"\n{joins}}}\napi_addr = \"{api_addr}\"\ncluster_addr = \"https://127.0.0.1:{cluster_port}\"\n",
            data_dir.display()
        );
        let config_path = root.join(name).join("server.hcl");
        std::fs::write(&config_path, config).unwrap();
        ServerProcess {
            name: name.to_string(),
            api_port,
            cluster_port,
            log_path: root.join(name).join("server.log"),
            data_dir,
            config_path,
            child: None,
        }
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_arca"))
            .arg("server")
            .arg(format!("-config={}", self.config_path.display()))
            .env("ARCA_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// `kill -9`: no chance to flush or shut down.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Call the API; `Err` only when no HTTP answer came back.
pub fn call(
    client: &reqwest::blocking::Client,
    method: &str,
    address: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("{address}/v1/{path}"));
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().map_err(|error| error.to_string())?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, value))
}

/// Retry `attempt` until it returns `Some`, or panic with `what` after `within`.
pub fn eventually<T>(within: Duration, what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Whether `needle` occurs in any file below `dir`.
pub fn any_file_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    files_below(dir).into_iter().find(|path| {
        std::fs::read(path)
            .map(|bytes| bytes.windows(needle.len()).any(|window| window == needle))
            .unwrap_or(false)
    })
}

/// One in-process dev node on free loopback ports: initialized, unsealed, `secret/` as
/// KV v2, root token `root`. Keep the tempdir alive as long as the node.
pub struct DevNode {
    pub node: arca::server::Node,
    pub address: String,
    pub data: tempfile::TempDir,
}

pub async fn start_dev_node(audit_files: std::sync::Arc<dyn arca::env::LogFiles>) -> DevNode {
    let data = tempfile::tempdir().unwrap();
    let (api_port, cluster_port) = (free_port(), free_port());
    let config = arca::server::NodeConfig {
        node_id: "node1".into(),
        api_listen: format!("127.0.0.1:{api_port}").parse().unwrap(),
        cluster_listen: format!("127.0.0.1:{cluster_port}").parse().unwrap(),
        api_addr: format!("http://127.0.0.1:{api_port}"),
        cluster_addr: format!("https://127.0.0.1:{cluster_port}"),
        cluster_name: None,
        retry_join: Vec::new(),
    };
    let node = arca::server::Node::start(
        arca::env::Env::production(data.path()).unwrap(),
        config,
        audit_files,
    )
    .await
    .unwrap();
    node.initialize_dev(Some("root".into())).await.unwrap();
    DevNode {
        node,
        address: format!("http://127.0.0.1:{api_port}"),
        data,
    }
}
