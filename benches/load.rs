//! Load harness: N concurrent HTTP/1 clients doing 256-byte KV writes and reads against
//! Arca (KV v2 over Vault's API) and etcd (its JSON gateway, `/v3/kv/put` and
//! `/v3/kv/range`), each as a single node and as a three-node cluster of real processes
//! on loopback with real data directories (fsync on).
//!
//! Run: `cargo bench --bench load -- --quick` (3 s per point) or without `--quick`
//! (10 s per point). Options: `--seconds N`, `--clients 1,16,64`,
//! `--only arca|etcd`. `--replication [--rate W] [--bootstrap-keys N]` measures
//! performance replication instead: the lag from the primary's acknowledgement of a
//! write to the secondary's stream reaching it, at W writes/s (default 1000), and the
//! time to bootstrap a secondary from a primary holding N secrets (default 100000). etcd is found as `etcd` on PATH or `$ETCD_BIN`; without it the
//! etcd rows are skipped.
//!
//! Issue 11's additions: `--ceiling` (a bare hyper server in this process answering
//! Arca's KV v2 read body, measured beside Arca's reads), `--preload N` (the single
//! node's points again with N more secrets stored), `--restart` (with `--preload`: a
//! node holding them restarted until it serves a read after unseal), `--compare`
//! (Arca/etcd ratios of the same run), `--stages` (per-stage write timings from
//! `sys/metrics`, with `ARCA_STAGE_TIMINGS=1` on the servers; without it the servers
//! run with stage timings off). `--nodes 1,3` picks the cluster sizes and
//! `--writes-only` skips the read points (a short write-only A/B of two builds);
//! `--raft-settings snapshot_threshold=1024;trailing_logs=256` adds lines to the nodes'
//! `storage "raft"` block. Three-node Arca also
//! measures reads with the clients spread over every node, and every deployment's
//! server RSS is printed after the load and after the points. `--snapshot
//! [--snapshot-keys N]` measures issue 6's benchmark instead: read p99 on a node
//! holding N secrets while it builds snapshots, against the same setup never
//! snapshotting; `--snapshot-thresholds 500,10000000,unset` picks the nodes' settings
//! (`unset` leaves `snapshot_threshold` out of the config, for a server built before
//! issue 6, run through `ARCA_BIN`). `--auth` measures issue 11's token targets on one
//! node instead: KV v2 writes, `auth/token/create` (root token, ttl 1h) and userpass
//! logins (64 users, client i as user i), a point each per client count, with the
//! token/write and login/write ratios and the RSS after each point. `--tokens-memory
//! [--preload-tokens N]` (`--preload-tokens N` alone is the same; with `--auth`, after
//! its points, on the same node) creates N tokens (default 100000) with 64 clients,
//! prints the RSS, then restarts the node until a token's `lookup-self` answers 200.
//! Errors are counted by cause (a status, no answer). Every request loop is bounded in
//! count and in time; every process started here is killed when the run ends.

// Bench harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The value size: etcd's own benchmark value (256 B).
const VALUE_BYTES: usize = 256;
/// Distinct keys written and read; the reads only touch keys written beforehand.
const KEYS_COUNT: usize = 1000;
/// A hard cap on requests per client per point, on top of the time bound.
const REQUESTS_PER_CLIENT_MAX: usize = 2_000_000;
/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cluster may take to come up, elect and unseal.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// fsync probe: appends of this size, this many times.
const FSYNC_PROBE_BYTES: usize = 2304;
const FSYNC_PROBE_COUNT: usize = 500;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Arca,
    Etcd,
    /// A bare hyper server answering Arca's read body (`--ceiling`).
    Ceiling,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Operation {
    Put,
    Get,
    /// etcd only: a serializable range (served locally, no read index round).
    GetSerializable,
    /// A read, with the clients spread over every node (client i on node i mod n).
    GetAllNodes,
    /// Arca only: `POST auth/token/create` with the root token (`--auth`).
    TokenCreate,
    /// Arca only: `POST auth/userpass/login/<user>`, client i as user i mod
    /// [`auth::USERS_COUNT`] (`--auth`).
    Login,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Put => "write",
            Operation::Get => "read",
            Operation::GetSerializable => "read (serializable)",
            Operation::GetAllNodes => "read (all nodes)",
            Operation::TokenCreate => "token create",
            Operation::Login => "userpass login",
        }
    }
}

struct Options {
    seconds: u64,
    clients: Vec<usize>,
    systems: Vec<System>,
    replication: bool,
    rate: u64,
    bootstrap_keys: usize,
    ceiling: bool,
    preload: Option<usize>,
    restart: bool,
    compare: bool,
    stages: bool,
    snapshot: bool,
    snapshot_keys: usize,
    /// The `snapshot_threshold` of each `--snapshot` node in turn; `None` leaves the
    /// setting out of the config (the server's own cadence; a server built before
    /// issue 6 knows no such setting and refuses it).
    snapshot_thresholds: Vec<Option<u64>>,
    /// The cluster sizes of the plain points (`--nodes 1,3`).
    nodes: Vec<usize>,
    /// Only the write points (`--writes-only`): no reads measured.
    writes_only: bool,
    /// Extra `storage "raft"` lines for the plain points' Arca nodes
    /// (`--raft-settings snapshot_threshold=1024;trailing_logs=256`).
    raft_settings: String,
    /// Token creation and userpass logins beside KV writes on one node (`--auth`).
    auth: bool,
    /// RSS with many live tokens and a restart (`--tokens-memory`).
    tokens_memory: bool,
    /// How many tokens `--tokens-memory` (or `--auth`, after its points) creates
    /// (`--preload-tokens N`).
    preload_tokens: Option<usize>,
}

fn parse_options() -> Options {
    let mut options = Options {
        seconds: 10,
        clients: vec![1, 16, 64],
        systems: vec![System::Arca, System::Etcd],
        replication: false,
        rate: 1000,
        bootstrap_keys: 100_000,
        ceiling: false,
        preload: None,
        restart: false,
        compare: false,
        stages: false,
        snapshot: false,
        snapshot_keys: 100_000,
        snapshot_thresholds: vec![
            Some(snapshot::THRESHOLD_SMALL),
            Some(snapshot::THRESHOLD_NEVER),
        ],
        nodes: vec![1, 3],
        writes_only: false,
        raft_settings: String::new(),
        auth: false,
        tokens_memory: false,
        preload_tokens: None,
    };
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let mut index = 0;
    while index < arguments.len() {
        let value = arguments.get(index + 1);
        match arguments[index].as_str() {
            "--quick" => options.seconds = 3,
            "--seconds" => {
                options.seconds = value.expect("--seconds N").parse().expect("seconds");
                index += 1;
            }
            "--clients" => {
                options.clients = value
                    .expect("--clients 1,16,64")
                    .split(',')
                    .map(|count| count.parse().expect("a client count"))
                    .collect();
                index += 1;
            }
            "--only" => {
                options.systems = match value.expect("--only arca|etcd").as_str() {
                    "arca" => vec![System::Arca],
                    "etcd" => vec![System::Etcd],
                    other => panic!("unknown system {other}"),
                };
                index += 1;
            }
            "--replication" => options.replication = true,
            "--ceiling" => options.ceiling = true,
            "--restart" => options.restart = true,
            "--compare" => options.compare = true,
            "--stages" => options.stages = true,
            "--snapshot" => options.snapshot = true,
            "--writes-only" => options.writes_only = true,
            "--auth" => options.auth = true,
            "--tokens-memory" => options.tokens_memory = true,
            "--preload-tokens" => {
                options.preload_tokens =
                    Some(value.expect("--preload-tokens N").parse().expect("a count"));
                index += 1;
            }
            "--raft-settings" => {
                options.raft_settings = value
                    .expect("--raft-settings name=value;name=value")
                    .split(';')
                    .filter(|setting| !setting.trim().is_empty())
                    .map(|setting| {
                        let (name, value) = setting.split_once('=').expect("name=value");
                        format!("  {} = {}\n", name.trim(), value.trim())
                    })
                    .collect();
                index += 1;
            }
            "--nodes" => {
                options.nodes = value
                    .expect("--nodes 1,3")
                    .split(',')
                    .map(|count| count.parse().expect("a node count"))
                    .collect();
                index += 1;
            }
            "--preload" => {
                options.preload = Some(value.expect("--preload N").parse().expect("a count"));
                index += 1;
            }
            "--snapshot-keys" => {
                options.snapshot_keys = value.expect("--snapshot-keys N").parse().expect("a count");
                index += 1;
            }
            "--snapshot-thresholds" => {
                options.snapshot_thresholds = value
                    .expect("--snapshot-thresholds 500,10000000,unset")
                    .split(',')
                    .map(|threshold| match threshold {
                        "unset" => None,
                        count => Some(count.parse().expect("a count or `unset`")),
                    })
                    .collect();
                index += 1;
            }
            "--rate" => {
                options.rate = value.expect("--rate W").parse().expect("writes per second");
                index += 1;
            }
            "--bootstrap-keys" => {
                options.bootstrap_keys =
                    value.expect("--bootstrap-keys N").parse().expect("a count");
                index += 1;
            }
            // cargo passes `--bench`; anything else is ignored.
            _ => {}
        }
        index += 1;
    }
    options
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed when dropped.
struct Process {
    child: Child,
}

impl Process {
    /// Resident memory (`VmRSS` in `/proc/PID/status`) in MiB; `None` off Linux or
    /// once it has exited.
    fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// CPU time this process has used so far (user + system), from `/proc/PID/stat`;
    /// `None` off Linux or once it has exited.
    fn cpu_time(&self) -> Option<Duration> {
        process_cpu_time(&self.child.id().to_string())
    }
}

/// CPU time (user + system) of `/proc/<pid>/stat`'s process so far (`pid` may be
/// `self`); `None` off Linux or once it has exited.
fn process_cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) are space-separated;
    // utime and stime are the 14th and 15th fields, in clock ticks.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_second(),
    ))
}

/// The whole machine's CPU ticks so far (the first line of `/proc/stat`).
struct BoxTicks {
    total: u64,
    idle: u64,
    steal: u64,
}

impl BoxTicks {
    /// The share of the ticks between `self` and `later` that were busy (neither idle
    /// nor waiting for I/O), and the share stolen, e.g. `97 (3)`.
    fn busy_text(&self, later: &BoxTicks) -> String {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let idle = later.idle.saturating_sub(self.idle) as f64;
        let steal = later.steal.saturating_sub(self.steal) as f64;
        format!(
            "{:.0} ({:.0})",
            100.0 * (total - idle) / total,
            100.0 * steal / total
        )
    }
}

fn box_cpu_ticks() -> Option<BoxTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total = fields.iter().take(8).sum();
    Some(BoxTicks {
        total,
        idle: fields.get(3)? + fields.get(4)?,
        steal: *fields.get(7)?,
    })
}

/// The kernel's clock tick (`getconf CLK_TCK`), 100 where it cannot be asked.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a server process was started, to start it again (`--restart`).
#[derive(Clone)]
struct Launch {
    program: PathBuf,
    arguments: Vec<String>,
    log_path: PathBuf,
    variables: Vec<(&'static str, &'static str)>,
}

impl Launch {
    fn spawn(&self) -> Process {
        spawn(
            &self.program,
            &self.arguments,
            &self.log_path,
            &self.variables,
        )
    }
}

fn spawn(
    program: &Path,
    arguments: &[String],
    log_path: &Path,
    variables: &[(&str, &str)],
) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let mut command = Command::new(program);
    command
        .args(arguments)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    for (name, value) in variables {
        command.env(name, value);
    }
    Process {
        child: command
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", program.display())),
    }
}

/// One running system: its processes, the address the load goes to, and how to talk.
struct Deployment {
    system: System,
    nodes_count: usize,
    target: String,
    /// Every node's client address (the target among them).
    addresses: Vec<String>,
    token: String,
    /// Arca's unseal key (one share), for a restart.
    unseal_key: String,
    processes: std::sync::Mutex<Vec<Process>>,
    launches: Vec<Launch>,
    _data: tempfile::TempDir,
}

impl Deployment {
    /// CPU time all of the deployment's server processes have used so far. Unlike
    /// throughput, CPU per request barely moves with the neighbours' load on a shared box,
    /// so it is the figure to compare two builds by.
    fn cpu_time(&self) -> Option<Duration> {
        self.processes
            .lock()
            .unwrap()
            .iter()
            .map(Process::cpu_time)
            .sum()
    }

    /// Every server process's RSS, e.g. `41 MiB, 39 MiB, 40 MiB`.
    fn rss_text(&self) -> String {
        self.processes
            .lock()
            .unwrap()
            .iter()
            .map(|process| match process.rss_mib() {
                Some(mib) => format!("{mib:.0} MiB"),
                None => "n/a".to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a deployment of Arca is started with, beyond the defaults.
#[derive(Default, Clone)]
struct ArcaSettings {
    /// Extra lines in the `storage "raft"` block (e.g. `snapshot_threshold = 2000`).
    storage_extra: String,
    /// `ARCA_STAGE_TIMINGS=1` in the servers' environment.
    stages: bool,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap()
}

/// Retry `attempt` until it yields, for at most [`STARTUP_TIMEOUT`].
async fn eventually<T, F>(what: &str, mut attempt: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.ok()?;
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn start_arca(nodes_count: usize) -> Deployment {
    start_arca_with(nodes_count, &ArcaSettings::default()).await
}

async fn start_arca_with(nodes_count: usize, settings: &ArcaSettings) -> Deployment {
    let data = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..nodes_count)
        .map(|_| (free_port(), free_port()))
        .collect();
    let addresses: Vec<String> = ports
        .iter()
        .map(|(api, _)| format!("http://127.0.0.1:{api}"))
        .collect();
    let mut processes = Vec::new();
    let mut launches = Vec::new();
    for (index, (api_port, cluster_port)) in ports.iter().enumerate() {
        let name = format!("node{}", index + 1);
        let directory = data.path().join(&name);
        std::fs::create_dir_all(directory.join("raft")).unwrap();
        let joins: String = addresses
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, address)| {
                format!("  retry_join {{\n    leader_api_addr = \"{address}\"\n  }}\n")
            })
            .collect();
        let config = format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{api_port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = 1\n  telemetry {{\n    unauthenticated_metrics_access = true\n  }}\n}}\nstorage \"raft\" {{\n  path = \"{}\"\n  node_id = \"{name}\"\n{}\n{joins}}}\napi_addr = \"http://127.0.0.1:{api_port}\"\ncluster_addr = \"https://127.0.0.1:{cluster_port}\"\n",
            directory.join("raft").display(),
            settings.storage_extra,
        );
        let config_path = directory.join("server.hcl");
        std::fs::write(&config_path, config).unwrap();
        // `ARCA_BIN` runs another build of the server under the same harness, for
        // before/after comparisons in one session on the same box.
        let arca_bin = std::env::var_os("ARCA_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_arca")).to_path_buf());
        let mut variables = vec![("ARCA_LOG", "warn")];
        if settings.stages {
            variables.push(("ARCA_STAGE_TIMINGS", "1"));
        }
        let launch = Launch {
            program: arca_bin,
            arguments: vec![
                "server".into(),
                format!("-config={}", config_path.display()),
            ],
            log_path: directory.join("server.log"),
            variables,
        };
        processes.push(launch.spawn());
        launches.push(launch);
    }
    let http = client();
    for address in &addresses {
        eventually("arca answers", || {
            send(
                &http,
                reqwest::Method::GET,
                format!("{address}/v1/sys/seal-status"),
                None,
                None,
            )
        })
        .await;
    }
    let (status, init) = send(
        &http,
        reqwest::Method::PUT,
        format!("{}/v1/sys/init", addresses[0]),
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await
    .expect("sys/init answers");
    assert_eq!(status, 200, "{init}");
    let unseal_key = init["keys_base64"][0].as_str().unwrap().to_string();
    let token = init["root_token"].as_str().unwrap().to_string();
    for address in &addresses {
        eventually("arca unseals", || {
            let (http, unseal_key) = (&http, &unseal_key);
            async move {
                let (status, body) = send(
                    http,
                    reqwest::Method::PUT,
                    format!("{address}/v1/sys/unseal"),
                    None,
                    Some(&json!({"key": unseal_key})),
                )
                .await?;
                (status == 200 && body["sealed"] == Value::Bool(false)).then_some(())
            }
        })
        .await;
    }
    eventually("all voters", || {
        let (http, token) = (&http, &token);
        let address = &addresses[0];
        async move {
            let (status, body) = send(
                http,
                reqwest::Method::GET,
                format!("{address}/v1/sys/storage/raft/configuration"),
                Some(token),
                None,
            )
            .await?;
            let voters = body["data"]["config"]["servers"]
                .as_array()?
                .iter()
                .filter(|server| server["voter"] == Value::Bool(true))
                .count();
            (status == 200 && voters == nodes_count).then_some(())
        }
    })
    .await;
    let target = eventually("a leader", || {
        let http = &http;
        let address = &addresses[0];
        async move {
            let (_, body) = send(
                http,
                reqwest::Method::GET,
                format!("{address}/v1/sys/leader"),
                None,
                None,
            )
            .await?;
            let leader = body["leader_address"].as_str()?.trim_end_matches('/');
            (!leader.is_empty()).then(|| leader.to_string())
        }
    })
    .await;
    let (status, body) = send(
        &http,
        reqwest::Method::POST,
        format!("{target}/v1/sys/mounts/kv"),
        Some(&token),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await
    .expect("mount answers");
    assert!(
        status == 204 || status == 200,
        "mount kv v2: {status} {body}"
    );
    Deployment {
        system: System::Arca,
        nodes_count,
        target,
        addresses,
        token,
        unseal_key,
        processes: std::sync::Mutex::new(processes),
        launches,
        _data: data,
    }
}

fn etcd_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("ETCD_BIN") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join("etcd"))
            .find(|candidate| candidate.is_file())
    })
}

async fn start_etcd(binary: &Path, nodes_count: usize) -> Deployment {
    let data = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..nodes_count)
        .map(|_| (free_port(), free_port()))
        .collect();
    let initial_cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(index, (_, peer))| format!("n{}=http://127.0.0.1:{peer}", index + 1))
        .collect();
    let mut processes = Vec::new();
    for (index, (client_port, peer_port)) in ports.iter().enumerate() {
        let name = format!("n{}", index + 1);
        let directory = data.path().join(&name);
        std::fs::create_dir_all(&directory).unwrap();
        let arguments = vec![
            format!("--name={name}"),
            format!("--data-dir={}", directory.join("data").display()),
            format!("--listen-client-urls=http://127.0.0.1:{client_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster={}", initial_cluster.join(",")),
            "--initial-cluster-state=new".into(),
            "--initial-cluster-token=arca-bench".into(),
            "--logger=zap".into(),
            "--log-level=warn".into(),
        ];
        processes.push(spawn(binary, &arguments, &directory.join("etcd.log"), &[]));
    }
    let http = client();
    let addresses: Vec<String> = ports
        .iter()
        .map(|(client_port, _)| format!("http://127.0.0.1:{client_port}"))
        .collect();
    let mut target = None;
    for address in &addresses {
        let (member, leader) = eventually("etcd has a leader", || {
            let http = &http;
            async move {
                let (status, body) = send(
                    http,
                    reqwest::Method::POST,
                    format!("{address}/v3/maintenance/status"),
                    None,
                    Some(&json!({})),
                )
                .await?;
                let member = body["header"]["member_id"].as_str()?.to_string();
                let leader = body["leader"].as_str()?.to_string();
                (status == 200 && leader != "0").then_some((member, leader))
            }
        })
        .await;
        if member == leader {
            target = Some(address.clone());
        }
    }
    Deployment {
        system: System::Etcd,
        nodes_count,
        target: target.expect("one member is the leader"),
        addresses,
        token: String::new(),
        unseal_key: String::new(),
        processes: std::sync::Mutex::new(processes),
        launches: Vec::new(),
        _data: data,
    }
}

/// Why a request did not count.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Failure {
    /// No answer, or not the whole body (a timeout, a closed connection).
    NoAnswer,
    /// Answered with a status the operation does not count.
    Status(u16),
    /// An etcd range answered 200 without `kvs`: the key is missing.
    NoKvs,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoAnswer => write!(formatter, "no answer"),
            Failure::Status(status) => write!(formatter, "status {status}"),
            Failure::NoKvs => write!(formatter, "no kvs"),
        }
    }
}

/// One request of `operation` on `key` (for [`Operation::Login`], `key` picks the
/// user); why it did not count if it did not.
async fn request(
    http: &reqwest::Client,
    deployment: &Deployment,
    target: &str,
    operation: Operation,
    key: usize,
    value: &str,
) -> Result<(), Failure> {
    let base64 = base64::engine::general_purpose::STANDARD;
    let response = match (deployment.system, operation) {
        (System::Arca, Operation::Put) => {
            http.put(format!("{target}/v1/kv/data/key-{key}"))
                .header("X-Vault-Token", &deployment.token)
                .json(&json!({"data": {"value": value}}))
                .send()
                .await
        }
        (System::Arca, Operation::TokenCreate) => {
            http.post(format!("{target}/v1/auth/token/create"))
                .header("X-Vault-Token", &deployment.token)
                .json(&auth::token_create_body())
                .send()
                .await
        }
        (System::Arca, Operation::Login) => {
            let user = key % auth::USERS_COUNT;
            http.post(format!(
                "{target}/v1/auth/userpass/login/{}",
                auth::user_name(user)
            ))
            .json(&json!({ "password": auth::password(user) }))
            .send()
            .await
        }
        (System::Arca, _) => {
            http.get(format!("{target}/v1/kv/data/key-{key}"))
                .header("X-Vault-Token", &deployment.token)
                .send()
                .await
        }
        (System::Etcd, Operation::Put) => http
            .post(format!("{target}/v3/kv/put"))
            .json(
                &json!({"key": base64.encode(format!("key-{key}")), "value": base64.encode(value)}),
            )
            .send()
            .await,
        (System::Etcd, Operation::Get) => {
            http.post(format!("{target}/v3/kv/range"))
                .json(&json!({"key": base64.encode(format!("key-{key}"))}))
                .send()
                .await
        }
        (System::Ceiling, _) => {
            http.get(format!("{target}/v1/kv/data/key-{key}"))
                .send()
                .await
        }
        (System::Etcd, Operation::GetSerializable | Operation::GetAllNodes) => {
            http.post(format!("{target}/v3/kv/range"))
                .json(&json!({"key": base64.encode(format!("key-{key}")), "serializable": true}))
                .send()
                .await
        }
        (System::Etcd, Operation::TokenCreate | Operation::Login) => {
            unreachable!("etcd has no tokens or logins")
        }
    };
    let response = response.map_err(|_| Failure::NoAnswer)?;
    let status = response.status();
    // A token or a login is counted only when it is issued: Vault answers 200 with the
    // `auth` block.
    let ok = match operation {
        Operation::TokenCreate | Operation::Login => status.as_u16() == 200,
        _ => status.is_success(),
    };
    // Read the whole body: a response is done when its last byte arrived.
    let body = response.bytes().await.map_err(|_| Failure::NoAnswer)?;
    if !ok {
        return Err(Failure::Status(status.as_u16()));
    }
    if deployment.system == System::Etcd
        && operation != Operation::Put
        && !body.windows(5).any(|window| window == b"\"kvs\"")
    {
        // An etcd range answers 200 with no `kvs` for a missing key: count that as an error.
        return Err(Failure::NoKvs);
    }
    Ok(())
}

struct PointResult {
    requests: usize,
    errors: usize,
    /// The errors by why they did not count (`errors` in all).
    failures: std::collections::BTreeMap<Failure, usize>,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

/// The error count with its causes, e.g. `3 (status 500: 2, no answer: 1)`.
fn errors_text(errors: usize, failures: &std::collections::BTreeMap<Failure, usize>) -> String {
    if failures.is_empty() {
        return errors.to_string();
    }
    let causes: Vec<String> = failures
        .iter()
        .map(|(failure, count)| format!("{failure}: {count}"))
        .collect();
    format!("{errors} ({})", causes.join(", "))
}

async fn run_point(
    deployment: &std::sync::Arc<Deployment>,
    operation: Operation,
    clients: usize,
    duration: Duration,
) -> PointResult {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for client_number in 0..clients {
        let deployment = deployment.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let value = "v".repeat(VALUE_BYTES);
            let mut latencies_us = Vec::new();
            let mut failures = std::collections::BTreeMap::new();
            let target = if operation == Operation::GetAllNodes {
                deployment.addresses[client_number % deployment.addresses.len()].clone()
            } else {
                deployment.target.clone()
            };
            for sequence in 0..REQUESTS_PER_CLIENT_MAX {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                // A login's key is its user: each client logs in as its own.
                let key = match operation {
                    Operation::Login => client_number,
                    _ => (client_number * 7919 + sequence) % KEYS_COUNT,
                };
                match request(&http, &deployment, &target, operation, key, &value).await {
                    Ok(()) => {
                        latencies_us.push(now.elapsed().as_micros().min(u32::MAX as u128) as u32)
                    }
                    Err(failure) => *failures.entry(failure).or_insert(0) += 1,
                }
            }
            (latencies_us, failures)
        }));
    }
    let mut result = PointResult {
        requests: 0,
        errors: 0,
        failures: std::collections::BTreeMap::new(),
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (latencies_us, failures) = task.await.unwrap();
        result.latencies_us.extend(latencies_us);
        for (failure, count) in failures {
            result.errors += count;
            *result.failures.entry(failure).or_insert(0) += count;
        }
    }
    result.elapsed = started.elapsed();
    result.requests = result.latencies_us.len();
    result.latencies_us.sort_unstable();
    result
}

fn percentile_ms(sorted_us: &[u32], fraction: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted_us.len() as f64 * fraction).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[index]) / 1000.0
}

/// Write every key once (not measured), so reads never miss.
async fn preload(deployment: &std::sync::Arc<Deployment>) {
    let mut tasks = Vec::new();
    let writers = 16;
    for writer in 0..writers {
        let deployment = deployment.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let value = "v".repeat(VALUE_BYTES);
            for key in (writer..KEYS_COUNT).step_by(writers) {
                if let Err(failure) = request(
                    &http,
                    &deployment,
                    &deployment.target,
                    Operation::Put,
                    key,
                    &value,
                )
                .await
                {
                    panic!("preload write of key-{key} failed: {failure}");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// fdatasync latency of small writes in the temp directory (the data dirs' disk), two
/// ways: appends that grow the file (each sync also commits the new size to the ext4
/// journal) and overwrites inside a preallocated file (data only, as etcd's WAL does).
fn fsync_probe(preallocated: bool) -> (f64, f64) {
    use std::io::{Seek, SeekFrom};
    let directory = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(directory.path().join("probe")).unwrap();
    let bytes = vec![0x5a_u8; FSYNC_PROBE_BYTES];
    if preallocated {
        file.write_all(&vec![0_u8; FSYNC_PROBE_BYTES * FSYNC_PROBE_COUNT])
            .unwrap();
        file.sync_all().unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
    }
    let mut latencies_us = Vec::with_capacity(FSYNC_PROBE_COUNT);
    for _ in 0..FSYNC_PROBE_COUNT {
        file.write_all(&bytes).unwrap();
        let started = Instant::now();
        file.sync_data().unwrap();
        latencies_us.push(started.elapsed().as_micros() as u32);
    }
    latencies_us.sort_unstable();
    (
        percentile_ms(&latencies_us, 0.5),
        percentile_ms(&latencies_us, 0.99),
    )
}

/// One printed row, kept for `--compare` and the `--preload` ratios.
#[derive(Clone)]
struct Row {
    system: System,
    nodes: usize,
    operation: Operation,
    clients: usize,
    label: &'static str,
    /// Successful requests (for `--auth`, tokens issued).
    requests: usize,
    requests_per_second: f64,
    p99_ms: f64,
}

/// Run one point and print its row (`label` marks a variant, e.g. the preloaded node).
fn measure_point(
    runtime: &tokio::runtime::Runtime,
    deployment: &std::sync::Arc<Deployment>,
    operation: Operation,
    clients: usize,
    seconds: u64,
    label: &'static str,
) -> Row {
    let cpu_before = deployment.cpu_time();
    let client_cpu_before = process_cpu_time("self");
    let box_before = box_cpu_ticks();
    let result = runtime.block_on(run_point(
        deployment,
        operation,
        clients,
        Duration::from_secs(seconds),
    ));
    let server_cpu = match (cpu_before, deployment.cpu_time()) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let cpu_per_request_us = match server_cpu {
        Some(used) if result.requests > 0 => {
            format!("{:.0}", used.as_secs_f64() * 1e6 / result.requests as f64)
        }
        _ => "n/a".to_string(),
    };
    // Where the box's cores went during the point: the servers, the harness's own
    // clients, and the machine as a whole (steal: time the hypervisor gave to the
    // neighbours). A point whose servers and clients already fill the box cannot go
    // faster by adding nodes to it.
    let wall = result.elapsed.as_secs_f64();
    let cores = |used: Option<Duration>| {
        used.map_or("n/a".to_string(), |used| {
            format!("{:.2}", used.as_secs_f64() / wall)
        })
    };
    let server_cores = cores(server_cpu);
    let client_cores = cores(match (client_cpu_before, process_cpu_time("self")) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    });
    let box_busy = match (box_before, box_cpu_ticks()) {
        (Some(before), Some(after)) => before.busy_text(&after),
        _ => "n/a".to_string(),
    };
    let row = Row {
        system: deployment.system,
        nodes: deployment.nodes_count,
        operation,
        clients,
        label,
        requests: result.requests,
        requests_per_second: result.requests as f64 / result.elapsed.as_secs_f64(),
        p99_ms: percentile_ms(&result.latencies_us, 0.99),
    };
    println!(
        "| {:?}{} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} |",
        deployment.system,
        label,
        deployment.nodes_count,
        operation.name(),
        clients,
        result.requests,
        errors_text(result.errors, &result.failures),
        row.requests_per_second,
        percentile_ms(&result.latencies_us, 0.50),
        row.p99_ms,
        cpu_per_request_us,
        server_cores,
        client_cores,
        box_busy,
    );
    row
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            format!("load average {}", fields.join(", "))
        })
        .unwrap_or_else(|_| "load average n/a".into())
}

/// Store `keys` more secrets of [`VALUE_BYTES`] (`fill/N`) with 64 concurrent writers;
/// panics if any write is not answered 2xx.
async fn fill(deployment: &std::sync::Arc<Deployment>, keys: usize) -> Duration {
    fill_under(deployment, "fill", keys).await
}

/// Store `keys` secrets of [`VALUE_BYTES`] at `kv/data/<prefix>/N` with 64 concurrent
/// writers, each taking every 64th key; panics if any write is not answered 2xx.
async fn fill_under(
    deployment: &std::sync::Arc<Deployment>,
    prefix: &'static str,
    keys: usize,
) -> Duration {
    let started = Instant::now();
    let writers = 64;
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let deployment = deployment.clone();
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let value = "v".repeat(VALUE_BYTES);
            for key in (writer..keys).step_by(writers) {
                let ok = send(
                    &http,
                    reqwest::Method::PUT,
                    format!("{}/v1/kv/data/{prefix}/{key}", deployment.target),
                    Some(&deployment.token),
                    Some(&json!({ "data": { "value": value } })),
                )
                .await
                .is_some_and(|(status, _)| (200..300).contains(&status));
                if !ok {
                    failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let failures = failures.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        failures, 0,
        "{failures} of {keys} writes under {prefix}/ failed"
    );
    started.elapsed()
}

/// A bare hyper HTTP/1 server on its own two-thread runtime answering every request with
/// `body` (Arca's read body) and the headers Arca sends: the ceiling for reads.
fn start_ceiling(body: bytes::Bytes) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                stream.set_nodelay(true).ok();
                let body = body.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request| {
                        let body = body.clone();
                        async move {
                            let mut response =
                                hyper::Response::new(http_body_util::Full::new(body));
                            let headers = response.headers_mut();
                            headers.insert("cache-control", "no-store".parse().unwrap());
                            headers.insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    address
}

/// The ceiling as a deployment (no processes; the server lives in this process).
fn ceiling_deployment(address: String) -> Deployment {
    Deployment {
        system: System::Ceiling,
        nodes_count: 1,
        target: address.clone(),
        addresses: vec![address],
        token: String::new(),
        unseal_key: String::new(),
        processes: std::sync::Mutex::new(Vec::new()),
        launches: Vec::new(),
        _data: tempfile::tempdir().unwrap(),
    }
}

/// The stage series (`arca_stage_*`) and the related Vault series of a node's
/// Prometheus metrics: name → (count, sum ms, p50, p99).
async fn stage_series(deployment: &Deployment, address: &str) -> Vec<(String, [f64; 4])> {
    let http = client();
    let Ok(response) = http
        .get(format!("{address}/v1/sys/metrics?format=prometheus"))
        .header("X-Vault-Token", &deployment.token)
        .send()
        .await
    else {
        return Vec::new();
    };
    let text = response.text().await.unwrap_or_default();
    let wanted = |name: &str| {
        name.starts_with("arca_stage_")
            || [
                "vault_core_handle_request",
                "vault_raft_commitTime",
                "vault_raft_storage_fsync",
                "vault_barrier_put",
                "vault_barrier_get",
            ]
            .contains(&name)
    };
    let mut series: std::collections::BTreeMap<String, [f64; 4]> = Default::default();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((left, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, slot) = if let Some(name) = left.strip_suffix("_count") {
            (name.to_string(), 0)
        } else if let Some(name) = left.strip_suffix("_sum") {
            (name.to_string(), 1)
        } else if let Some(name) = left.strip_suffix("{quantile=\"0.5\"}") {
            (name.to_string(), 2)
        } else if let Some(name) = left.strip_suffix("{quantile=\"0.99\"}") {
            (name.to_string(), 3)
        } else {
            continue;
        };
        if wanted(&name) {
            series.entry(name).or_insert([f64::NAN; 4])[slot] = value;
        }
    }
    series.into_iter().collect()
}

/// Print the stages recorded during a point: the difference of counts and sums (so the
/// mean is the point's), and the quantiles of the last observations at its end.
fn print_stages(
    title: &str,
    requests: f64,
    before: &[(String, [f64; 4])],
    after: &[(String, [f64; 4])],
) {
    println!(
        "\nstages on {title} (count and mean of this point; p50/p99 over each series' last 2048 observations):\n"
    );
    println!("| stage | count | per request | mean ms | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, [count, sum, p50, p99]) in after {
        let (count_before, sum_before) = before
            .iter()
            .find(|(other, _)| other == name)
            .map_or((0.0, 0.0), |(_, values)| (values[0], values[1]));
        let count = count - count_before;
        if count <= 0.0 {
            continue;
        }
        println!(
            "| {name} | {count:.0} | {:.2} | {:.3} | {p50:.3} | {p99:.3} |",
            count / requests.max(1.0),
            (sum - sum_before) / count,
        );
    }
    println!();
}

/// Kill node 1 of `deployment` and start it again; the time from the spawn until it
/// answers, until it is unsealed, and until it answers `GET /v1/<probe_path>` with
/// `probe_token` 200 (a read of `kv/data/key-0`, or a token's `lookup-self`).
async fn restart_first_node(
    deployment: &Deployment,
    probe_path: &str,
    probe_token: &str,
) -> (Duration, Duration, Duration) {
    let http = client();
    let address = deployment.addresses[0].clone();
    {
        let mut processes = deployment.processes.lock().unwrap();
        // Killed (SIGKILL) and reaped before the new one starts, which takes its port.
        drop(processes.remove(0));
        processes.insert(0, deployment.launches[0].spawn());
    }
    let started = Instant::now();
    eventually("arca answers after restart", || {
        send(
            &http,
            reqwest::Method::GET,
            format!("{address}/v1/sys/seal-status"),
            None,
            None,
        )
    })
    .await;
    let answering = started.elapsed();
    eventually("arca unseals after restart", || {
        let (http, address) = (&http, &address);
        async move {
            let (status, body) = send(
                http,
                reqwest::Method::PUT,
                format!("{address}/v1/sys/unseal"),
                None,
                Some(&json!({"key": deployment.unseal_key})),
            )
            .await?;
            (status == 200 && body["sealed"] == Value::Bool(false)).then_some(())
        }
    })
    .await;
    let unsealed = started.elapsed();
    loop {
        let ok = send(
            &http,
            reqwest::Method::GET,
            format!("{address}/v1/{probe_path}"),
            Some(probe_token),
            None,
        )
        .await
        .is_some_and(|(status, _)| status == 200);
        if ok {
            break;
        }
        assert!(
            started.elapsed() < STARTUP_TIMEOUT,
            "no answer from {probe_path} after restart"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (answering, unsealed, started.elapsed())
}

fn main() {
    let options = parse_options();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if options.replication {
        runtime.block_on(replication::run(&options));
        return;
    }
    if options.snapshot {
        snapshot::run(&runtime, &options);
        return;
    }
    if options.auth || options.tokens_memory || options.preload_tokens.is_some() {
        auth::run(&runtime, &options);
        return;
    }
    for (preallocated, shape) in [
        (false, "appends growing the file"),
        (true, "overwrites in a preallocated file"),
    ] {
        let (p50, p99) = fsync_probe(preallocated);
        println!(
            "fdatasync after {FSYNC_PROBE_BYTES} B {shape} ({FSYNC_PROBE_COUNT}x): p50 {p50:.3} ms, p99 {p99:.3} ms"
        );
    }
    println!(
        "{} s per point, {VALUE_BYTES} B values, {KEYS_COUNT} keys, one HTTP/1 connection per client, load sent to the leader; {}\n",
        options.seconds,
        uptime()
    );
    println!(
        "| system | nodes | operation | clients | requests | errors | req/s | p50 ms | p99 ms | server CPU µs/req | server cores | client cores | box busy % (steal %) |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let etcd = etcd_binary();
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for system in &options.systems {
        for &nodes_count in &options.nodes {
            let deployment = runtime.block_on(async {
                match system {
                    System::Arca => Some(
                        start_arca_with(
                            nodes_count,
                            &ArcaSettings {
                                stages: options.stages,
                                storage_extra: options.raft_settings.clone(),
                            },
                        )
                        .await,
                    ),
                    System::Etcd => match &etcd {
                        Some(binary) => Some(start_etcd(binary, nodes_count).await),
                        None => None,
                    },
                    System::Ceiling => None,
                }
            });
            let Some(deployment) = deployment else {
                println!(
                    "| etcd | {nodes_count} | skipped: no etcd binary on PATH or $ETCD_BIN | | | | | | |"
                );
                continue;
            };
            let deployment = std::sync::Arc::new(deployment);
            runtime.block_on(preload(&deployment));
            notes.push(format!(
                "{:?} {} node(s): RSS after loading {KEYS_COUNT} keys: {} ({})",
                deployment.system,
                nodes_count,
                deployment.rss_text(),
                uptime()
            ));
            let ceiling =
                (options.ceiling && *system == System::Arca && nodes_count == 1).then(|| {
                    let body = runtime.block_on(async {
                        let response = client()
                            .get(format!("{}/v1/kv/data/key-0", deployment.target))
                            .header("X-Vault-Token", &deployment.token)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status().as_u16(), 200);
                        response.bytes().await.unwrap()
                    });
                    notes.push(format!(
                        "ceiling: a bare hyper server answering Arca's {} B read body",
                        body.len()
                    ));
                    std::sync::Arc::new(ceiling_deployment(start_ceiling(body)))
                });
            let operations: &[Operation] = match (system, nodes_count) {
                _ if options.writes_only => &[Operation::Put],
                (System::Arca, 1) => &[Operation::Put, Operation::Get],
                (System::Arca, _) => &[Operation::Put, Operation::Get, Operation::GetAllNodes],
                _ => &[Operation::Put, Operation::Get, Operation::GetSerializable],
            };
            for &clients in &options.clients {
                for &operation in operations {
                    let stages_before = (options.stages
                        && *system == System::Arca
                        && operation == Operation::Put)
                        .then(|| runtime.block_on(stage_series(&deployment, &deployment.target)));
                    // A follower's stages too (its append and fsync are half of a
                    // replicated write's wait).
                    let follower = deployment
                        .addresses
                        .iter()
                        .find(|address| **address != deployment.target)
                        .filter(|_| stages_before.is_some());
                    let follower_before = follower
                        .map(|address| runtime.block_on(stage_series(&deployment, address)));
                    let row = measure_point(
                        &runtime,
                        &deployment,
                        operation,
                        clients,
                        options.seconds,
                        "",
                    );
                    if let Some(before) = stages_before {
                        let after = runtime.block_on(stage_series(&deployment, &deployment.target));
                        print_stages(
                            &format!(
                                "the leader, {nodes_count} node(s), {clients} writing clients ({})",
                                uptime()
                            ),
                            row.requests_per_second * options.seconds as f64,
                            &before,
                            &after,
                        );
                    }
                    if let (Some(address), Some(before)) = (follower, follower_before) {
                        let after = runtime.block_on(stage_series(&deployment, address));
                        print_stages(
                            &format!("a follower, {clients} writing clients"),
                            row.requests_per_second * options.seconds as f64,
                            &before,
                            &after,
                        );
                    }
                    rows.push(row);
                    if let (Some(ceiling), Operation::Get) = (&ceiling, operation) {
                        rows.push(measure_point(
                            &runtime,
                            ceiling,
                            Operation::Get,
                            clients,
                            options.seconds,
                            "",
                        ));
                    }
                }
            }
            notes.push(format!(
                "{:?} {} node(s): RSS after the points: {} ({})",
                deployment.system,
                nodes_count,
                deployment.rss_text(),
                uptime()
            ));
            if let (Some(keys), System::Arca, 1) = (options.preload, system, nodes_count) {
                let took = runtime.block_on(fill(&deployment, keys));
                notes.push(format!(
                    "Arca 1 node: stored {keys} more secrets in {:.1} s ({:.0}/s, 64 writers); RSS after: {} ({})",
                    took.as_secs_f64(),
                    keys as f64 / took.as_secs_f64(),
                    deployment.rss_text(),
                    uptime()
                ));
                for &clients in &options.clients {
                    for &operation in operations {
                        let stages_before =
                            (options.stages && operation == Operation::Put).then(|| {
                                runtime.block_on(stage_series(&deployment, &deployment.target))
                            });
                        let row = measure_point(
                            &runtime,
                            &deployment,
                            operation,
                            clients,
                            options.seconds,
                            " (preloaded)",
                        );
                        if let Some(before) = stages_before {
                            let after =
                                runtime.block_on(stage_series(&deployment, &deployment.target));
                            print_stages(
                                &format!(
                                    "the node holding {keys} more secrets, {clients} writing clients ({})",
                                    uptime()
                                ),
                                row.requests_per_second * options.seconds as f64,
                                &before,
                                &after,
                            );
                        }
                        rows.push(row);
                    }
                }
                notes.push(format!(
                    "Arca 1 node with {keys} more secrets: RSS after the points: {} ({})",
                    deployment.rss_text(),
                    uptime()
                ));
                if options.restart {
                    let (answering, unsealed, reading) = runtime.block_on(restart_first_node(
                        &deployment,
                        "kv/data/key-0",
                        &deployment.token,
                    ));
                    notes.push(format!(
                        "restart of the node holding {} secrets: answers after {:.2} s, unsealed after {:.2} s, first read 200 after {:.2} s (from spawn); RSS after: {} ({})",
                        keys + KEYS_COUNT,
                        answering.as_secs_f64(),
                        unsealed.as_secs_f64(),
                        reading.as_secs_f64(),
                        deployment.rss_text(),
                        uptime()
                    ));
                }
            }
        }
    }
    println!();
    for note in &notes {
        println!("- {note}");
    }
    print_ratios(&rows, &options);
}

/// The ratios the targets are stated in, from this run's rows.
fn print_ratios(rows: &[Row], options: &Options) {
    let find = |system: System, nodes: usize, operation: Operation, clients: usize, label: &str| {
        rows.iter().find(|row| {
            row.system == system
                && row.nodes == nodes
                && row.operation == operation
                && row.clients == clients
                && row.label == label
        })
    };
    println!();
    for &clients in &options.clients {
        if let (Some(arca), Some(ceiling)) = (
            find(System::Arca, 1, Operation::Get, clients, ""),
            find(System::Ceiling, 1, Operation::Get, clients, ""),
        ) {
            println!(
                "- reads, 1 node, {clients} clients: Arca / bare hyper ceiling = {:.0} / {:.0} = {:.2}",
                arca.requests_per_second,
                ceiling.requests_per_second,
                arca.requests_per_second / ceiling.requests_per_second
            );
        }
        if let (Some(one), Some(all)) = (
            find(System::Arca, 1, Operation::Get, clients, ""),
            find(System::Arca, 3, Operation::GetAllNodes, clients, ""),
        ) {
            println!(
                "- reads, {clients} clients: 3 nodes with clients on every node / 1 node = {:.0} / {:.0} = {:.2}",
                all.requests_per_second,
                one.requests_per_second,
                all.requests_per_second / one.requests_per_second
            );
        }
        for operation in [Operation::Put, Operation::Get] {
            if let (Some(empty), Some(loaded)) = (
                find(System::Arca, 1, operation, clients, ""),
                find(System::Arca, 1, operation, clients, " (preloaded)"),
            ) {
                println!(
                    "- {}s, 1 node, {clients} clients: with {} more secrets / empty = {:.0} / {:.0} = {:.2}",
                    operation.name(),
                    options.preload.unwrap_or(0),
                    loaded.requests_per_second,
                    empty.requests_per_second,
                    loaded.requests_per_second / empty.requests_per_second
                );
            }
        }
    }
    if !options.compare {
        return;
    }
    println!(
        "\nArca against etcd, same run (writes: etcd's put; reads: etcd's serializable range):\n"
    );
    println!(
        "| nodes | clients | writes/s Arca / etcd | write p99 Arca / etcd | reads/s Arca / etcd |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for nodes in [1, 3] {
        for &clients in &options.clients {
            let ratio =
                |arca: Option<&Row>, etcd: Option<&Row>, throughput: bool| match (arca, etcd) {
                    (Some(arca), Some(etcd)) if throughput => format!(
                        "{:.2} ({:.0} / {:.0})",
                        arca.requests_per_second / etcd.requests_per_second,
                        arca.requests_per_second,
                        etcd.requests_per_second
                    ),
                    (Some(arca), Some(etcd)) => format!(
                        "{:.2} ({:.2} / {:.2} ms)",
                        arca.p99_ms / etcd.p99_ms,
                        arca.p99_ms,
                        etcd.p99_ms
                    ),
                    _ => "n/a".into(),
                };
            println!(
                "| {nodes} | {clients} | {} | {} | {} |",
                ratio(
                    find(System::Arca, nodes, Operation::Put, clients, ""),
                    find(System::Etcd, nodes, Operation::Put, clients, ""),
                    true
                ),
                ratio(
                    find(System::Arca, nodes, Operation::Put, clients, ""),
                    find(System::Etcd, nodes, Operation::Put, clients, ""),
                    false
                ),
                ratio(
                    find(System::Arca, nodes, Operation::Get, clients, ""),
                    find(System::Etcd, nodes, Operation::GetSerializable, clients, ""),
                    true
                ),
            );
        }
    }
}

/// Issue 6's benchmark: read latency on a node holding many secrets while it builds
/// snapshots, against the same setup never snapshotting; and write throughput with
/// those secrets against the same node empty.
mod snapshot {
    use super::*;

    /// A snapshot every this many applied entries on the snapshotting node.
    pub const THRESHOLD_SMALL: u64 = 500;
    /// Never, within the run, on the other.
    pub const THRESHOLD_NEVER: u64 = 10_000_000;
    /// The background writers' pace while readers are measured (a snapshot is due
    /// every [`THRESHOLD_SMALL`] of them, about every 2.5 s if they keep it up).
    const WRITES_PER_SECOND: u64 = 200;
    /// Writers sharing that pace, so one slow write does not stall the rest.
    const WRITERS: u64 = 8;
    const READ_CLIENTS: usize = 64;

    /// Reads at [`READ_CLIENTS`] for `seconds` while one client writes at
    /// [`WRITES_PER_SECOND`]; the read point's result and the writes that succeeded.
    async fn reads_under_writes(
        deployment: &std::sync::Arc<Deployment>,
        seconds: u64,
    ) -> (PointResult, usize, usize) {
        let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let deployment = deployment.clone();
                let writing = writing.clone();
                tokio::spawn(async move {
                    let http = client();
                    let value = "w".repeat(VALUE_BYTES);
                    let started = Instant::now();
                    let per_writer = WRITES_PER_SECOND / WRITERS;
                    let (mut ok, mut failed) = (0, 0);
                    let mut sequence: u64 = 0;
                    while writing.load(std::sync::atomic::Ordering::SeqCst) {
                        let due =
                            started + Duration::from_micros(sequence * 1_000_000 / per_writer);
                        tokio::time::sleep_until(due.into()).await;
                        let key = (sequence * WRITERS + writer) as usize % KEYS_COUNT;
                        if request(
                            &http,
                            &deployment,
                            &deployment.target,
                            Operation::Put,
                            key,
                            &value,
                        )
                        .await
                        .is_ok()
                        {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                        sequence += 1;
                    }
                    (ok, failed)
                })
            })
            .collect();
        let result = run_point(
            deployment,
            Operation::Get,
            READ_CLIENTS,
            Duration::from_secs(seconds),
        )
        .await;
        writing.store(false, std::sync::atomic::Ordering::SeqCst);
        let (mut ok, mut failed) = (0, 0);
        for writer in writers {
            let (done, refused) = writer.await.unwrap();
            ok += done;
            failed += refused;
        }
        (result, ok, failed)
    }

    /// Snapshot builds so far and their total time in ms, from the
    /// `arca_stage_raft_snapshot_build` stage; `None` where the node reports no stage
    /// series at all (a server built before stage timings, which cannot count them).
    fn snapshot_builds(series: &[(String, [f64; 4])]) -> Option<(f64, f64)> {
        if !series
            .iter()
            .any(|(name, _)| name.starts_with("arca_stage_"))
        {
            return None;
        }
        Some(
            series
                .iter()
                .find(|(name, _)| name == "arca_stage_raft_snapshot_build")
                .map_or((0.0, 0.0), |(_, values)| (values[0], values[1])),
        )
    }

    /// How often [`SnapshotFiles`] lists the node's directory.
    const FILES_POLL_INTERVAL: Duration = Duration::from_millis(10);

    /// Snapshot files (`*.snap`, named by their last log index) seen in a node's data
    /// directory, each with when it was first seen: a count of snapshots written that
    /// works for any build of the server, since every one so far writes each snapshot
    /// as a new file and keeps only the latest. A file replaced within one poll
    /// interval would be missed; a build of 100,000 secrets takes far longer.
    struct SnapshotFiles {
        seen: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Instant>>>,
        running: std::sync::Arc<std::sync::atomic::AtomicBool>,
        poller: Option<std::thread::JoinHandle<()>>,
    }

    fn snap_files(directory: &Path, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                snap_files(&path, found);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "snap")
            {
                found.push(path.display().to_string());
            }
        }
    }

    impl SnapshotFiles {
        fn watch(directory: PathBuf) -> Self {
            let seen =
                std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
            let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
            let poller = {
                let (seen, running) = (seen.clone(), running.clone());
                std::thread::spawn(move || {
                    while running.load(std::sync::atomic::Ordering::SeqCst) {
                        let mut found = Vec::new();
                        snap_files(&directory, &mut found);
                        let now = Instant::now();
                        let mut seen = seen.lock().unwrap();
                        for name in found {
                            seen.entry(name).or_insert(now);
                        }
                        drop(seen);
                        std::thread::sleep(FILES_POLL_INTERVAL);
                    }
                })
            };
            SnapshotFiles {
                seen,
                running,
                poller: Some(poller),
            }
        }

        /// Files first seen at or after `since`.
        fn count_since(&self, since: Instant) -> usize {
            self.seen
                .lock()
                .unwrap()
                .values()
                .filter(|first_seen| **first_seen >= since)
                .count()
        }
    }

    impl Drop for SnapshotFiles {
        fn drop(&mut self) {
            self.running
                .store(false, std::sync::atomic::Ordering::SeqCst);
            if let Some(poller) = self.poller.take() {
                let _ = poller.join();
            }
        }
    }

    pub fn run(runtime: &tokio::runtime::Runtime, options: &Options) {
        let keys = options.snapshot_keys;
        println!(
            "issue 6's benchmark: 1 node, {keys} secrets of {VALUE_BYTES} B, reads at {READ_CLIENTS} clients for {} s with {WRITERS} writers at {WRITES_PER_SECOND}/s in all beside them; {}\n",
            options.seconds,
            uptime()
        );
        println!(
            "server: {}",
            match std::env::var_os("ARCA_BIN") {
                Some(path) => format!("ARCA_BIN={}", path.to_string_lossy()),
                None => format!("this build ({})", env!("CARGO_BIN_EXE_arca")),
            }
        );
        if options.snapshot_thresholds.contains(&None) {
            println!(
                "snapshot_threshold `unset`: left out of the config, so the server snapshots at its own cadence (1,024 entries in servers built before issue 6, which know no such setting; 8,192 after)"
            );
        }
        println!(
            "snapshot builds and their mean come from the arca_stage_raft_snapshot_build stage (n/a: the server reports no stage timings); snapshot files are *.snap files seen in the node's directory (polled every {} ms)\n",
            FILES_POLL_INTERVAL.as_millis()
        );
        println!(
            "| snapshot_threshold | stored | reads | read errors | reads/s | p50 ms | p99 ms | p99.9 ms | max ms | writes ok / failed | snapshots built (mean build ms) | snapshot files written | RSS |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut write_notes = Vec::new();
        for setting in &options.snapshot_thresholds {
            let (threshold, storage_extra) = match setting {
                Some(threshold) => (
                    threshold.to_string(),
                    format!("  snapshot_threshold = {threshold}\n"),
                ),
                None => ("unset".to_string(), String::new()),
            };
            let deployment = std::sync::Arc::new(runtime.block_on(start_arca_with(
                1,
                &ArcaSettings {
                    storage_extra,
                    stages: true,
                },
            )));
            let started = Instant::now();
            let files = SnapshotFiles::watch(deployment._data.path().to_path_buf());
            runtime.block_on(preload(&deployment));
            let empty = measure_point(
                runtime,
                &deployment,
                Operation::Put,
                64,
                options.seconds,
                "",
            );
            let took = runtime.block_on(fill(&deployment, keys));
            let loaded = measure_point(
                runtime,
                &deployment,
                Operation::Put,
                64,
                options.seconds,
                " (preloaded)",
            );
            let builds =
                snapshot_builds(&runtime.block_on(stage_series(&deployment, &deployment.target)));
            let files_written = files.count_since(started);
            match builds {
                Some((builds, build_ms)) if builds > 0.0 => write_notes.push(format!(
                    "snapshot_threshold {threshold}: {builds:.0} snapshots built while filling and writing, mean build {:.0} ms; {files_written} snapshot files written",
                    build_ms / builds
                )),
                Some(_) => write_notes.push(format!(
                    "snapshot_threshold {threshold}: no snapshot built while filling and writing; {files_written} snapshot files written"
                )),
                None => write_notes.push(format!(
                    "snapshot_threshold {threshold}: snapshots built n/a (no stage timings); {files_written} snapshot files written while filling and writing"
                )),
            }
            write_notes.push(format!(
                "snapshot_threshold {threshold}: writes at 64 clients with {keys} more secrets / empty = {:.0} / {:.0} = {:.2} (filled in {:.1} s; {})",
                loaded.requests_per_second,
                empty.requests_per_second,
                loaded.requests_per_second / empty.requests_per_second,
                took.as_secs_f64(),
                uptime()
            ));
            let before =
                snapshot_builds(&runtime.block_on(stage_series(&deployment, &deployment.target)));
            let window_started = Instant::now();
            let (result, ok, failed) =
                runtime.block_on(reads_under_writes(&deployment, options.seconds));
            let after =
                snapshot_builds(&runtime.block_on(stage_series(&deployment, &deployment.target)));
            let files_in_window = files.count_since(window_started);
            let built = match (before, after) {
                (Some(before), Some(after)) => {
                    let built = after.0 - before.0;
                    if built > 0.0 {
                        format!("{built:.0} ({:.0})", (after.1 - before.1) / built)
                    } else {
                        format!("{built:.0} (-)")
                    }
                }
                _ => "n/a".to_string(),
            };
            println!(
                "| {threshold} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {ok} / {failed} | {built} | {files_in_window} | {} |",
                keys + KEYS_COUNT,
                result.requests,
                result.errors,
                result.requests as f64 / result.elapsed.as_secs_f64(),
                percentile_ms(&result.latencies_us, 0.50),
                percentile_ms(&result.latencies_us, 0.99),
                percentile_ms(&result.latencies_us, 0.999),
                percentile_ms(&result.latencies_us, 1.0),
                deployment.rss_text(),
            );
        }
        println!();
        for note in write_notes {
            println!("- {note}");
        }
        println!("- {}", uptime());
    }
}

/// Issue 11's token targets on one node: token creation and userpass logins beside KV
/// writes in the same run (`--auth`), and RSS with many live tokens and a restart until
/// the token store answers (`--tokens-memory`, `--preload-tokens N`).
mod auth {
    use super::*;

    /// Users created for the logins: one per client at 64 clients. Vault's logins of one
    /// user are independent of each other, so fewer clients simply use fewer users.
    pub const USERS_COUNT: usize = 64;
    /// Concurrent clients creating the `--preload-tokens` tokens.
    const TOKEN_WRITERS: usize = 64;
    /// The TTL of every token and login here: longer than any run, so all stay live.
    const TOKEN_TTL: &str = "1h";
    /// `--tokens-memory` without `--preload-tokens`: the 100,000.
    const TOKENS_DEFAULT: usize = 100_000;
    /// How long after a restart the RSS is read a second time.
    const RSS_SETTLE: Duration = Duration::from_secs(5);

    pub fn user_name(user: usize) -> String {
        format!("bench-user-{user}")
    }

    /// A benchmark user's password (made up here, used nowhere else).
    pub fn password(user: usize) -> String {
        format!("bench-password-{user}")
    }

    /// The body of every `auth/token/create` here.
    pub fn token_create_body() -> Value {
        json!({ "ttl": TOKEN_TTL, "policies": ["default"] })
    }

    /// Enable userpass at `userpass/` and create [`USERS_COUNT`] users (`default`
    /// policy, `token_ttl` 1h); the time taken (each password is hashed with argon2id).
    async fn enable_userpass(deployment: &Deployment) -> Duration {
        let started = Instant::now();
        let http = client();
        let (status, body) = send(
            &http,
            reqwest::Method::POST,
            format!("{}/v1/sys/auth/userpass", deployment.target),
            Some(&deployment.token),
            Some(&json!({ "type": "userpass" })),
        )
        .await
        .expect("sys/auth answers");
        assert!(
            status == 204 || status == 200,
            "enable userpass: {status} {body}"
        );
        for user in 0..USERS_COUNT {
            let (status, body) = send(
                &http,
                reqwest::Method::POST,
                format!(
                    "{}/v1/auth/userpass/users/{}",
                    deployment.target,
                    user_name(user)
                ),
                Some(&deployment.token),
                Some(&json!({
                    "password": password(user),
                    "token_ttl": TOKEN_TTL,
                    "token_policies": ["default"],
                })),
            )
            .await
            .expect("userpass users answers");
            assert!(
                status == 204 || status == 200,
                "create user {user}: {status} {body}"
            );
        }
        started.elapsed()
    }

    /// Create one token and return it (to probe the token store with `lookup-self`).
    async fn create_token(deployment: &Deployment) -> String {
        let (status, body) = send(
            &client(),
            reqwest::Method::POST,
            format!("{}/v1/auth/token/create", deployment.target),
            Some(&deployment.token),
            Some(&token_create_body()),
        )
        .await
        .expect("auth/token/create answers");
        assert_eq!(status, 200, "token create: {body}");
        body["auth"]["client_token"]
            .as_str()
            .expect("auth.client_token")
            .to_string()
    }

    /// Create `count` tokens with [`TOKEN_WRITERS`] concurrent clients, each taking every
    /// 64th; the time taken, and the errors by cause (each is one token fewer).
    async fn create_tokens(
        deployment: &std::sync::Arc<Deployment>,
        count: usize,
    ) -> (Duration, std::collections::BTreeMap<Failure, usize>) {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for writer in 0..TOKEN_WRITERS {
            let deployment = deployment.clone();
            tasks.push(tokio::spawn(async move {
                let http = client();
                let mut failures = std::collections::BTreeMap::new();
                for key in (writer..count).step_by(TOKEN_WRITERS) {
                    if let Err(failure) = request(
                        &http,
                        &deployment,
                        &deployment.target,
                        Operation::TokenCreate,
                        key,
                        "",
                    )
                    .await
                    {
                        *failures.entry(failure).or_insert(0) += 1;
                    }
                }
                failures
            }));
        }
        let mut failures = std::collections::BTreeMap::new();
        for task in tasks {
            for (failure, count) in task.await.unwrap() {
                *failures.entry(failure).or_insert(0) += count;
            }
        }
        (started.elapsed(), failures)
    }

    /// `lookup-self` with `token` on node 1: its status.
    async fn lookup_self(deployment: &Deployment, token: &str) -> Option<u16> {
        send(
            &client(),
            reqwest::Method::GET,
            format!("{}/v1/auth/token/lookup-self", deployment.addresses[0]),
            Some(token),
            None,
        )
        .await
        .map(|(status, _)| status)
    }

    /// KV writes, token creation and userpass logins, one point each per client count,
    /// then their ratios; the tokens issued.
    fn rates(
        runtime: &tokio::runtime::Runtime,
        deployment: &std::sync::Arc<Deployment>,
        options: &Options,
        notes: &mut Vec<String>,
    ) -> usize {
        runtime.block_on(preload(deployment));
        let took = runtime.block_on(enable_userpass(deployment));
        notes.push(format!(
            "userpass enabled at userpass/ and {USERS_COUNT} users created in {:.1} s; client i logs in as user i mod {USERS_COUNT}, so up to {USERS_COUNT} clients each have their own user",
            took.as_secs_f64()
        ));
        println!(
            "| system | nodes | operation | clients | requests | errors | req/s | p50 ms | p99 ms | server CPU µs/req | server cores | client cores | box busy % (steal %) |"
        );
        println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut rows = Vec::new();
        for &clients in &options.clients {
            for operation in [Operation::Put, Operation::TokenCreate, Operation::Login] {
                rows.push(measure_point(
                    runtime,
                    deployment,
                    operation,
                    clients,
                    options.seconds,
                    "",
                ));
                notes.push(format!(
                    "RSS after the {} point at {clients} clients: {} ({})",
                    operation.name(),
                    deployment.rss_text(),
                    uptime()
                ));
            }
        }
        println!();
        let rate = |operation: Operation, clients: usize| {
            rows.iter()
                .find(|row| row.operation == operation && row.clients == clients)
                .map_or(f64::NAN, |row| row.requests_per_second)
        };
        for &clients in &options.clients {
            let writes = rate(Operation::Put, clients);
            for operation in [Operation::TokenCreate, Operation::Login] {
                notes.push(format!(
                    "{clients} clients: {} / KV v2 write = {:.0} / {:.0} = {:.2}",
                    operation.name(),
                    rate(operation, clients),
                    writes,
                    rate(operation, clients) / writes
                ));
            }
        }
        rows.iter()
            .filter(|row| matches!(row.operation, Operation::TokenCreate | Operation::Login))
            .map(|row| row.requests)
            .sum()
    }

    /// Create `count` tokens (and one to probe with), then restart the node until that
    /// token's `lookup-self` answers 200; RSS after the load and after the restart.
    fn memory(
        runtime: &tokio::runtime::Runtime,
        deployment: &std::sync::Arc<Deployment>,
        count: usize,
        issued_before: usize,
        notes: &mut Vec<String>,
    ) {
        let probe = runtime.block_on(create_token(deployment));
        let (took, failures) = runtime.block_on(create_tokens(deployment, count));
        let errors: usize = failures.values().sum();
        let issued = count - errors;
        notes.push(format!(
            "created {issued} of {count} tokens (ttl {TOKEN_TTL}, {TOKEN_WRITERS} clients) in {:.1} s ({:.0}/s), errors: {}",
            took.as_secs_f64(),
            issued as f64 / took.as_secs_f64(),
            errors_text(errors, &failures)
        ));
        notes.push(format!(
            "RSS after the load, with {} live tokens ({issued} + 1 to probe with + {issued_before} from the points): {} ({})",
            issued + 1 + issued_before,
            deployment.rss_text(),
            uptime()
        ));
        assert_eq!(
            runtime.block_on(lookup_self(deployment, &probe)),
            Some(200),
            "lookup-self before the restart"
        );
        let (answering, unsealed, looked_up) = runtime.block_on(restart_first_node(
            deployment,
            "auth/token/lookup-self",
            &probe,
        ));
        notes.push(format!(
            "restart: answers after {:.2} s, unsealed after {:.2} s, lookup-self 200 (the first token created) after {:.2} s from spawn, {:.2} s from the unseal's answer; RSS after: {} ({})",
            answering.as_secs_f64(),
            unsealed.as_secs_f64(),
            looked_up.as_secs_f64(),
            (looked_up - unsealed).as_secs_f64(),
            deployment.rss_text(),
            uptime()
        ));
        std::thread::sleep(RSS_SETTLE);
        notes.push(format!(
            "RSS {} s after the restart's lookup-self: {} ({})",
            RSS_SETTLE.as_secs(),
            deployment.rss_text(),
            uptime()
        ));
    }

    pub fn run(runtime: &tokio::runtime::Runtime, options: &Options) {
        let tokens = (options.tokens_memory || options.preload_tokens.is_some())
            .then(|| options.preload_tokens.unwrap_or(TOKENS_DEFAULT));
        let mut measured = Vec::new();
        if options.auth {
            measured.push(format!(
                "KV v2 writes, token creation and userpass logins (token_ttl {TOKEN_TTL}), {} s per point",
                options.seconds
            ));
        }
        if let Some(count) = tokens {
            measured.push(format!("{count} tokens created, then a restart"));
        }
        println!(
            "issue 11's token targets: 1 node (fsync on), root token, token create body {}; {}; {}\n",
            token_create_body(),
            measured.join("; "),
            uptime()
        );
        let deployment = std::sync::Arc::new(runtime.block_on(start_arca_with(
            1,
            &ArcaSettings {
                stages: options.stages,
                storage_extra: options.raft_settings.clone(),
            },
        )));
        let mut notes = vec![format!(
            "RSS at start: {} ({})",
            deployment.rss_text(),
            uptime()
        )];
        let issued = if options.auth {
            rates(runtime, &deployment, options, &mut notes)
        } else {
            0
        };
        if let Some(count) = tokens {
            memory(runtime, &deployment, count, issued, &mut notes);
        }
        for note in &notes {
            println!("- {note}");
        }
    }
}

/// Performance replication: lag and bootstrap, between single-node clusters on loopback.
mod replication {
    use super::*;

    /// How often the lag watcher asks the secondary where its stream is.
    const WATCH_INTERVAL: Duration = Duration::from_millis(1);
    /// The most writes in flight at once while the writer keeps its rate.
    const IN_FLIGHT_MAX: usize = 256;
    /// How long a secondary may take to bootstrap before the run gives up.
    const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(1800);

    async fn call(
        http: &reqwest::Client,
        method: reqwest::Method,
        target: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        send(
            http,
            method,
            format!("{target}/v1/{path}"),
            Some(token),
            body,
        )
        .await
        .unwrap_or_else(|| panic!("{path}: no answer"))
    }

    async fn performance_status(http: &reqwest::Client, target: &str) -> Value {
        let (_, body) = call(
            http,
            reqwest::Method::GET,
            target,
            "sys/replication/performance/status",
            "",
            None,
        )
        .await;
        body["data"].clone()
    }

    /// Enable `primary` (once) and activate `secondary` from it as `id`; the time from
    /// the enable call to the secondary streaming.
    async fn activate(
        http: &reqwest::Client,
        primary: &Deployment,
        secondary: &Deployment,
        id: &str,
    ) -> Duration {
        if performance_status(http, &primary.target).await["mode"] != "primary" {
            let (status, body) = call(
                http,
                reqwest::Method::POST,
                &primary.target,
                "sys/replication/performance/primary/enable",
                &primary.token,
                Some(&json!({})),
            )
            .await;
            assert_eq!(status, 200, "primary enable: {body}");
        }
        let (status, wrapped) = call(
            http,
            reqwest::Method::POST,
            &primary.target,
            "sys/replication/performance/primary/secondary-token",
            &primary.token,
            Some(&json!({ "id": id })),
        )
        .await;
        assert_eq!(status, 200, "secondary-token: {wrapped}");
        let token = wrapped["wrap_info"]["token"].as_str().unwrap().to_string();
        let started = Instant::now();
        let (status, body) = call(
            http,
            reqwest::Method::POST,
            &secondary.target,
            "sys/replication/performance/secondary/enable",
            &secondary.token,
            Some(&json!({ "token": token })),
        )
        .await;
        assert_eq!(status, 200, "secondary enable: {body}");
        loop {
            let status = performance_status(http, &secondary.target).await;
            if status["mode"] == "secondary" && status["state"] == "stream-wals" {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < BOOTSTRAP_TIMEOUT,
                "bootstrap timed out: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The replicated index in a response's `X-Vault-Index` (Vault's format).
    fn replicated_index(header: &str) -> Option<u64> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split(':').nth(3)?.parse().ok()
    }

    async fn lag(
        http: &reqwest::Client,
        primary: &Deployment,
        secondary: &Deployment,
        options: &Options,
    ) {
        let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let watcher = {
            let watching = watching.clone();
            let target = secondary.target.clone();
            tokio::spawn(async move {
                let http = client();
                let mut samples: Vec<(Instant, u64)> = Vec::new();
                while watching.load(std::sync::atomic::Ordering::SeqCst) {
                    let status = performance_status(&http, &target).await;
                    if let Some(position) = status["last_remote_wal"].as_u64() {
                        samples.push((Instant::now(), position));
                    }
                    tokio::time::sleep(WATCH_INTERVAL).await;
                }
                samples
            })
        };
        let started = Instant::now();
        let total = options.rate * options.seconds;
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX));
        let mut writes = Vec::new();
        let value = "v".repeat(VALUE_BYTES);
        for sequence in 0..total {
            let due = started + Duration::from_micros(sequence * 1_000_000 / options.rate);
            tokio::time::sleep_until(due.into()).await;
            let permit = semaphore.clone().acquire_owned().await.unwrap();
            let http = http.clone();
            let url = format!("{}/v1/kv/data/lag-{}", primary.target, sequence % 1000);
            let token = primary.token.clone();
            let body = json!({ "data": { "v": value } });
            writes.push(tokio::spawn(async move {
                let _permit = permit;
                let response = http
                    .post(url)
                    .header("X-Vault-Token", token)
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                let acknowledged = Instant::now();
                if response.status().as_u16() != 200 {
                    return None;
                }
                let index =
                    replicated_index(response.headers().get("x-vault-index")?.to_str().ok()?)?;
                Some((acknowledged, index))
            }));
        }
        let mut acknowledged = Vec::new();
        let mut errors = 0;
        for write in writes {
            match write.await.unwrap() {
                Some(done) => acknowledged.push(done),
                None => errors += 1,
            }
        }
        let sent_in = started.elapsed();
        // Let the stream finish, then stop watching.
        tokio::time::sleep(Duration::from_secs(2)).await;
        watching.store(false, std::sync::atomic::Ordering::SeqCst);
        let samples = watcher.await.unwrap();
        let mut lags_us: Vec<u32> = Vec::new();
        let mut unseen = 0;
        for (acked_at, index) in &acknowledged {
            // The first sample at or after the acknowledgement that shows the index.
            match samples
                .iter()
                .find(|(at, position)| at >= acked_at && position >= index)
            {
                Some((at, _)) => lags_us.push(at.duration_since(*acked_at).as_micros() as u32),
                None => unseen += 1,
            }
        }
        lags_us.sort_unstable();
        let watch_period_ms = if samples.len() > 1 {
            (samples.last().unwrap().0 - samples[0].0).as_secs_f64() * 1000.0
                / (samples.len() - 1) as f64
        } else {
            f64::NAN
        };
        println!(
            "replication lag at {} writes/s for {} s: {} writes acknowledged ({:.0}/s achieved), {} errors, {} never seen on the secondary; lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (the secondary's position sampled every {:.2} ms on average)",
            options.rate,
            options.seconds,
            acknowledged.len(),
            acknowledged.len() as f64 / sent_in.as_secs_f64(),
            errors,
            unseen,
            percentile_ms(&lags_us, 0.50),
            percentile_ms(&lags_us, 0.99),
            percentile_ms(&lags_us, 1.0),
            watch_period_ms,
        );
    }

    pub async fn run(options: &Options) {
        // The ceiling in the same run: a secondary's apply is a Raft commit on its disk.
        let (p50, p99) = fsync_probe(false);
        println!(
            "ceiling: fdatasync after {FSYNC_PROBE_BYTES} B appends ({FSYNC_PROBE_COUNT}x) on this disk: p50 {p50:.3} ms, p99 {p99:.3} ms"
        );
        let http = client();
        let primary = std::sync::Arc::new(start_arca(1).await);
        let secondary = start_arca(1).await;
        let first = activate(&http, &primary, &secondary, "lag").await;
        println!(
            "activation of an empty secondary: {:.2} s",
            first.as_secs_f64()
        );
        lag(&http, &primary, &secondary, options).await;

        let filling = Instant::now();
        fill_under(&primary, "bootstrap", options.bootstrap_keys).await;
        println!(
            "filled the primary with {} secrets of {VALUE_BYTES} B in {:.1} s",
            options.bootstrap_keys,
            filling.elapsed().as_secs_f64()
        );
        let fresh = start_arca(1).await;
        let took = activate(&http, &primary, &fresh, "bootstrap").await;
        let status = performance_status(&http, &primary.target).await;
        println!(
            "bootstrap of a secondary from a primary holding {} secrets (last_wal {}): {:.2} s to stream-wals",
            options.bootstrap_keys,
            status["last_wal"],
            took.as_secs_f64()
        );
    }
}
