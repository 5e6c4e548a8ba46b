//! Helpers for integration tests over real `arca` processes and real HTTP.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free loopback port (bound and released; a tiny race with other processes that
/// tests tolerate). Never the same port twice in one test process: the kernel may hand a
/// just-released port out again, and two nodes of one cluster were once given the same
/// one (node3's cluster port was node1's API port, and node3 could not start).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

pub fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// TLS for a [`ServerProcess`]: HCL lines added to its `listener "tcp"` block (the
/// `tls_*` settings) and to each of its `retry_join` blocks (the `leader_*` settings).
#[derive(Debug, Clone, Default)]
pub struct NodeTls {
    pub listener: String,
    pub retry_join: String,
}

/// One `arca server` process.
pub struct ServerProcess {
    pub name: String,
    /// `http` or `https`, as its listener serves.
    pub scheme: &'static str,
    pub api_port: u16,
    pub cluster_port: u16,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    pub fn address(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.api_port)
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
        Self::configure_with_tls(
            root,
            name,
            api_port,
            cluster_port,
            retry_join,
            api_addr,
            None,
        )
    }

    /// [`ServerProcess::configure_advertising`] with the listener serving TLS when
    /// `tls` is given (`api_addr` should then be `https://`).
    pub fn configure_with_tls(
        root: &Path,
        name: &str,
        api_port: u16,
        cluster_port: u16,
        retry_join: &[String],
        api_addr: &str,
        tls: Option<&NodeTls>,
    ) -> ServerProcess {
        let data_dir = root.join(name).join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let (listener_tls, join_tls) = match tls {
            Some(tls) => (tls.listener.clone(), tls.retry_join.clone()),
            None => ("  tls_disable = 1\n".to_string(), String::new()),
        };
        let joins: String = retry_join
            .iter()
            .map(|address| {
                format!("  retry_join {{\n    leader_api_addr = \"{address}\"\n{join_tls}  }}\n")
            })
            .collect();
        let config = format!(
            "ui = true\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{api_port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n{listener_tls}}}\nstorage \"raft\" {{\n  path = \"{}\"\n  node_id = \"{name}\"\n{joins}}}\napi_addr = \"{api_addr}\"\ncluster_addr = \"https://127.0.0.1:{cluster_port}\"\n",
            data_dir.display()
        );
        let config_path = root.join(name).join("server.hcl");
        std::fs::write(&config_path, config).unwrap();
        ServerProcess {
            name: name.to_string(),
            scheme: if tls.is_some() { "https" } else { "http" },
            api_port,
            cluster_port,
            log_path: root.join(name).join("server.log"),
            data_dir,
            config_path,
            child: None,
        }
    }

    /// Start with the log at info whatever the configuration says (`ARCA_LOG`).
    pub fn start(&mut self) {
        self.start_logging(Some("info"));
    }

    /// Start with the log as the configuration file sets it (`ARCA_LOG` unset).
    pub fn start_logging_as_configured(&mut self) {
        self.start_logging(None);
    }

    fn start_logging(&mut self, filter: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_arca"));
        command
            .arg("server")
            .arg(format!("-config={}", self.config_path.display()))
            .env_remove("ARCA_LOG")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if let Some(filter) = filter {
            command.env("ARCA_LOG", filter);
        }
        self.child = Some(command.spawn().unwrap());
    }

    /// Whether the process is still running (it has not exited, by a signal or
    /// otherwise).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    /// How the process ended, once it has (`None` while it runs).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().unwrap())
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process is running").id()
    }

    /// `kill -9`: no chance to flush or shut down.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// `kill -STOP`: the process freezes with its sockets open; requests queue unanswered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// `kill -CONT`: the process resumes where it stopped, its clock having moved on.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// `kill SIGNAL PID`, e.g. `-HUP` to reload certificates.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the process is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
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
        // A stopped process ignores SIGKILL until continued on some kernels' accounting of
        // `wait`; resume first so the kill always completes.
        if self.is_running() {
            self.resume();
        }
        self.kill9();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // A failed test shows the end of each node's log: the why is usually there.
        if std::thread::panicking() {
            // ARCA_TEST_LOG_DIR keeps every node's whole log past the lab's removal.
            let keep = std::env::var_os("ARCA_TEST_LOG_DIR").map(PathBuf::from);
            for node in &self.nodes {
                let log = node.log();
                if let Some(dir) = &keep {
                    let _ = std::fs::create_dir_all(dir);
                    let test = std::thread::current()
                        .name()
                        .unwrap_or("test")
                        .replace("::", "-");
                    let _ = std::fs::write(dir.join(format!("{test}-{}.log", node.name)), &log);
                }
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {} (last {} lines of its log)", node.name, tail.len());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A running three-node cluster of real processes, initialized and unsealed.
pub struct TestCluster {
    pub nodes: Vec<ServerProcess>,
    pub addresses: Vec<String>,
    pub root_token: String,
    pub unseal_key: String,
}

impl TestCluster {
    /// Start three nodes that retry_join each other, initialize the first, unseal all,
    /// and wait until the configuration holds three voters.
    pub fn start(root: &Path, http: &reqwest::blocking::Client) -> TestCluster {
        Self::start_with_tls(root, http, None)
    }

    /// [`TestCluster::start`] with TLS listeners and `https://` joins when `tls` is
    /// given; `http` must then trust the listeners' CA.
    pub fn start_with_tls(
        root: &Path,
        http: &reqwest::blocking::Client,
        tls: Option<&NodeTls>,
    ) -> TestCluster {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let addresses: Vec<String> = ports
            .iter()
            .map(|(api, _)| format!("{scheme}://127.0.0.1:{api}"))
            .collect();
        let mut nodes = Vec::new();
        for (index, (api_port, cluster_port)) in ports.iter().enumerate() {
            let others: Vec<String> = addresses
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, address)| address.clone())
                .collect();
            let mut node = ServerProcess::configure_with_tls(
                root,
                &format!("node{}", index + 1),
                *api_port,
                *cluster_port,
                &others,
                &addresses[index],
                tls,
            );
            node.start();
            nodes.push(node);
        }
        // The cluster owns its nodes from here on, so a failure while it forms shows
        // their logs too (a node that never answers says why in its log).
        let mut cluster = TestCluster {
            nodes,
            addresses: addresses.clone(),
            root_token: String::new(),
            unseal_key: String::new(),
        };
        let nodes = &cluster.nodes;
        for node in nodes {
            eventually(Duration::from_secs(30), "the node answers", || {
                call(http, "GET", &node.address(), "sys/seal-status", None, None).ok()
            });
        }
        let (status, init) = call(
            http,
            "PUT",
            &addresses[0],
            "sys/init",
            None,
            Some(&serde_json::json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .unwrap();
        assert_eq!(status, 200, "{init}");
        let unseal_key = init["keys_base64"][0].as_str().unwrap().to_string();
        let root_token = init["root_token"].as_str().unwrap().to_string();
        for node in nodes {
            eventually(Duration::from_secs(30), "the node unseals", || {
                match call(
                    http,
                    "PUT",
                    &node.address(),
                    "sys/unseal",
                    None,
                    Some(&serde_json::json!({"key": unseal_key})),
                ) {
                    Ok((200, body)) if body["sealed"] == Value::Bool(false) => Some(()),
                    _ => None,
                }
            });
        }
        eventually(Duration::from_secs(30), "three voters", || {
            let (status, body) = call(
                http,
                "GET",
                &addresses[0],
                "sys/storage/raft/configuration",
                Some(&root_token),
                None,
            )
            .ok()?;
            let servers = body["data"]["config"]["servers"].as_array()?.clone();
            (status == 200
                && servers
                    .iter()
                    .filter(|server| server["voter"] == Value::Bool(true))
                    .count()
                    == 3)
                .then_some(())
        });
        cluster.root_token = root_token;
        cluster.unseal_key = unseal_key;
        cluster
    }

    /// The index of the node that `asked` names as active, if it names one of ours.
    pub fn leader_seen_by(&self, http: &reqwest::blocking::Client, asked: usize) -> Option<usize> {
        let (_, leader) = call(
            http,
            "GET",
            &self.addresses[asked],
            "sys/leader",
            None,
            None,
        )
        .ok()?;
        let address = leader["leader_address"].as_str()?.trim_end_matches('/');
        self.addresses.iter().position(|ours| ours == address)
    }

    /// The active node, as a majority of the nodes see it.
    pub fn leader(&self, http: &reqwest::blocking::Client) -> usize {
        eventually(Duration::from_secs(30), "an agreed leader", || {
            let seen: Vec<usize> = (0..self.nodes.len())
                .filter_map(|index| self.leader_seen_by(http, index))
                .collect();
            seen.iter()
                .copied()
                .find(|candidate| seen.iter().filter(|other| *other == candidate).count() >= 2)
        })
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

/// Wait until the node at `address` answers, then initialize it with one unseal share:
/// its root token and the share (base64).
pub fn init_one_share(client: &reqwest::blocking::Client, address: &str) -> (String, String) {
    eventually(Duration::from_secs(30), "the node answers", || {
        call(client, "GET", address, "sys/seal-status", None, None).ok()
    });
    let (status, init) = call(
        client,
        "PUT",
        address,
        "sys/init",
        None,
        Some(&serde_json::json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .unwrap();
    assert_eq!(status, 200, "{init}");
    (
        init["root_token"].as_str().unwrap().to_string(),
        init["keys_base64"][0].as_str().unwrap().to_string(),
    )
}

/// Initialize the one-node server at `address` with one share, unseal it, and wait until
/// it is active (`sys/health` answers 200): its root token.
pub fn init_and_activate(client: &reqwest::blocking::Client, address: &str) -> String {
    let (root_token, key) = init_one_share(client, address);
    let (status, body) = call(
        client,
        "PUT",
        address,
        "sys/unseal",
        None,
        Some(&serde_json::json!({ "key": key })),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(30), "the node is active", || {
        let (status, _) = call(client, "GET", address, "sys/health", None, None).ok()?;
        (status == 200).then_some(())
    });
    root_token
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
        api_tls: None,
        raft: Default::default(),
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
