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
//! etcd rows are skipped. Every request loop is bounded in count and in time; every
//! process started here is killed when the run ends.

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
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Operation {
    Put,
    Get,
    /// etcd only: a serializable range (served locally, no read index round).
    GetSerializable,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Put => "write",
            Operation::Get => "read",
            Operation::GetSerializable => "read (serializable)",
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
}

fn parse_options() -> Options {
    let mut options = Options {
        seconds: 10,
        clients: vec![1, 16, 64],
        systems: vec![System::Arca, System::Etcd],
        replication: false,
        rate: 1000,
        bootstrap_keys: 100_000,
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
    /// CPU time this process has used so far (user + system), from `/proc/PID/stat`;
    /// `None` off Linux or once it has exited.
    fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces) are space-separated;
        // utime and stime are the 14th and 15th fields, in clock ticks.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_secs_f64(
            ticks as f64 / clock_ticks_per_second(),
        ))
    }
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

fn spawn(
    program: &Path,
    arguments: &[String],
    log_path: &Path,
    variables: &[(&str, &str)],
) -> Process {
    let log = std::fs::File::create(log_path).unwrap();
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
    token: String,
    processes: Vec<Process>,
    _data: tempfile::TempDir,
}

impl Deployment {
    /// CPU time all of the deployment's server processes have used so far. Unlike
    /// throughput, CPU per request barely moves with the neighbours' load on a shared box,
    /// so it is the figure to compare two builds by.
    fn cpu_time(&self) -> Option<Duration> {
        self.processes.iter().map(Process::cpu_time).sum()
    }
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
    let data = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..nodes_count)
        .map(|_| (free_port(), free_port()))
        .collect();
    let addresses: Vec<String> = ports
        .iter()
        .map(|(api, _)| format!("http://127.0.0.1:{api}"))
        .collect();
    let mut processes = Vec::new();
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
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{api_port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = 1\n}}\nstorage \"raft\" {{\n  path = \"{}\"\n  node_id = \"{name}\"\n{joins}}}\napi_addr = \"http://127.0.0.1:{api_port}\"\ncluster_addr = \"https://127.0.0.1:{cluster_port}\"\n",
            directory.join("raft").display()
        );
        let config_path = directory.join("server.hcl");
        std::fs::write(&config_path, config).unwrap();
        // `ARCA_BIN` runs another build of the server under the same harness, for
        // before/after comparisons in one session on the same box.
        let arca_bin = std::env::var_os("ARCA_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_arca")).to_path_buf());
        processes.push(spawn(
            &arca_bin,
            &[
                "server".into(),
                format!("-config={}", config_path.display()),
            ],
            &directory.join("server.log"),
            &[("ARCA_LOG", "warn")],
        ));
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
        token,
        processes,
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
        token: String::new(),
        processes,
        _data: data,
    }
}

/// One request of `operation` on `key`; true if it succeeded.
async fn request(
    http: &reqwest::Client,
    deployment: &Deployment,
    operation: Operation,
    key: usize,
    value: &str,
) -> bool {
    let target = &deployment.target;
    let base64 = base64::engine::general_purpose::STANDARD;
    let response = match (deployment.system, operation) {
        (System::Arca, Operation::Put) => {
            http.put(format!("{target}/v1/kv/data/key-{key}"))
                .header("X-Vault-Token", &deployment.token)
                .json(&json!({"data": {"value": value}}))
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
        (System::Etcd, Operation::GetSerializable) => {
            http.post(format!("{target}/v3/kv/range"))
                .json(&json!({"key": base64.encode(format!("key-{key}")), "serializable": true}))
                .send()
                .await
        }
    };
    let Ok(response) = response else {
        return false;
    };
    let ok = response.status().is_success();
    // Read the whole body: a response is done when its last byte arrived.
    let body = response.bytes().await;
    if !ok || body.is_err() {
        return false;
    }
    if deployment.system == System::Etcd && operation != Operation::Put {
        // An etcd range answers 200 with no `kvs` for a missing key: count that as an error.
        let body = body.unwrap();
        return body.windows(5).any(|window| window == b"\"kvs\"");
    }
    true
}

struct PointResult {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
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
            let mut errors = 0;
            for sequence in 0..REQUESTS_PER_CLIENT_MAX {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let key = (client_number * 7919 + sequence) % KEYS_COUNT;
                if request(&http, &deployment, operation, key, &value).await {
                    latencies_us.push(now.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    errors += 1;
                }
            }
            (latencies_us, errors)
        }));
    }
    let mut result = PointResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (latencies_us, errors) = task.await.unwrap();
        result.latencies_us.extend(latencies_us);
        result.errors += errors;
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
                assert!(
                    request(&http, &deployment, Operation::Put, key, &value).await,
                    "preload write of key-{key} failed"
                );
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
        "{} s per point, {VALUE_BYTES} B values, {KEYS_COUNT} keys, one HTTP/1 connection per client, load sent to the leader\n",
        options.seconds
    );
    println!(
        "| system | nodes | operation | clients | requests | errors | req/s | p50 ms | p99 ms | server CPU µs/req |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let etcd = etcd_binary();
    for system in &options.systems {
        for nodes_count in [1, 3] {
            let deployment = runtime.block_on(async {
                match system {
                    System::Arca => Some(start_arca(nodes_count).await),
                    System::Etcd => match &etcd {
                        Some(binary) => Some(start_etcd(binary, nodes_count).await),
                        None => None,
                    },
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
            let operations: &[Operation] = match system {
                System::Arca => &[Operation::Put, Operation::Get],
                System::Etcd => &[Operation::Put, Operation::Get, Operation::GetSerializable],
            };
            for &clients in &options.clients {
                for &operation in operations {
                    let cpu_before = deployment.cpu_time();
                    let result = runtime.block_on(run_point(
                        &deployment,
                        operation,
                        clients,
                        Duration::from_secs(options.seconds),
                    ));
                    let cpu_per_request_us = match (cpu_before, deployment.cpu_time()) {
                        (Some(before), Some(after)) if result.requests > 0 => format!(
                            "{:.0}",
                            (after - before).as_secs_f64() * 1e6 / result.requests as f64
                        ),
                        _ => "n/a".to_string(),
                    };
                    println!(
                        "| {:?} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
                        deployment.system,
                        deployment.nodes_count,
                        operation.name(),
                        clients,
                        result.requests,
                        result.errors,
                        result.requests as f64 / result.elapsed.as_secs_f64(),
                        percentile_ms(&result.latencies_us, 0.50),
                        percentile_ms(&result.latencies_us, 0.99),
                        cpu_per_request_us,
                    );
                }
            }
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

    async fn fill(primary: &std::sync::Arc<Deployment>, keys: usize) {
        let writers = 32;
        let mut tasks = Vec::new();
        let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for writer in 0..writers {
            let primary = primary.clone();
            let failures = failures.clone();
            tasks.push(tokio::spawn(async move {
                let http = client();
                let value = "v".repeat(VALUE_BYTES);
                for key in (writer..keys).step_by(writers) {
                    let ok = send(
                        &http,
                        reqwest::Method::POST,
                        format!("{}/v1/kv/data/bootstrap/{key}", primary.target),
                        Some(&primary.token),
                        Some(&json!({ "data": { "v": value } })),
                    )
                    .await
                    .is_some_and(|(status, _)| status == 200);
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
        assert_eq!(failures, 0, "{failures} of {keys} bootstrap writes failed");
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
        fill(&primary, options.bootstrap_keys).await;
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
