//! Load harness: N concurrent HTTP/1 clients doing 256-byte KV writes and reads against
//! Arca (KV v2 over Vault's API) and etcd (its JSON gateway, `/v3/kv/put` and
//! `/v3/kv/range`), each as a single node and as a three-node cluster of real processes
//! on loopback with real data directories (fsync on).
//!
//! Run: `cargo bench --bench load -- --quick` (3 s per point) or without `--quick`
//! (10 s per point). Options: `--seconds N`, `--clients 1,16,64`,
//! `--only arca|etcd`. etcd is found as `etcd` on PATH or `$ETCD_BIN`; without it the
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
}

fn parse_options() -> Options {
    let mut options = Options {
        seconds: 10,
        clients: vec![1, 16, 64],
        systems: vec![System::Arca, System::Etcd],
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
    _processes: Vec<Process>,
    _data: tempfile::TempDir,
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
        _processes: processes,
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
        _processes: processes,
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
        "| system | nodes | operation | clients | requests | errors | req/s | p50 ms | p99 ms |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
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
                    let result = runtime.block_on(run_point(
                        &deployment,
                        operation,
                        clients,
                        Duration::from_secs(options.seconds),
                    ));
                    println!(
                        "| {:?} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} |",
                        deployment.system,
                        deployment.nodes_count,
                        operation.name(),
                        clients,
                        result.requests,
                        result.errors,
                        result.requests as f64 / result.elapsed.as_secs_f64(),
                        percentile_ms(&result.latencies_us, 0.50),
                        percentile_ms(&result.latencies_us, 0.99),
                    );
                }
            }
        }
    }
}
