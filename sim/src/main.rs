//! `arca-sim`: run Arca fleets inside the madsim simulator.
//!
//! ```text
//! arca-sim run scenarios/NAME.toml --seed N [--verbose]
//! arca-sim sweep --seeds N [--first-seed S] [scenarios/*.toml ...]
//! arca-sim determinism scenarios/NAME.toml --seed N
//! ```
//! Must be built with `RUSTFLAGS="--cfg madsim"` (its own target dir).

use std::process::ExitCode;

use arca_sim::replay_command;
#[cfg(madsim)]
use arca_sim::{run, scenario};

fn main() -> ExitCode {
    // `ARCA_SIM_LOG=debug` (any tracing filter) shows the nodes' own logs in virtual time.
    if let Ok(filter) = std::env::var("ARCA_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match entry(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("arca-sim: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(not(madsim))]
fn entry(_args: &[String]) -> Result<ExitCode, String> {
    Err(format!(
        "this binary was built without the simulator. Build and run it with:\n  {}",
        replay_command("scenarios/raft-leader-crash.toml", 1)
    ))
}

#[cfg(madsim)]
fn entry(args: &[String]) -> Result<ExitCode, String> {
    let command = args.first().map(String::as_str).unwrap_or("");
    let mut seed: Option<u64> = None;
    let mut seeds: u64 = 200;
    let mut first_seed: u64 = 1;
    let mut verbose = false;
    let mut paths: Vec<String> = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            rest.next()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seed" => seed = Some(value("--seed")?),
            "--seeds" => seeds = value("--seeds")?,
            "--first-seed" => first_seed = value("--first-seed")?,
            "--verbose" | "-v" => verbose = true,
            other if other.starts_with('-') => return Err(format!("unknown flag {other}")),
            path => paths.push(path.to_string()),
        }
    }
    match command {
        "run" => {
            let path = paths.first().ok_or("run needs a scenario file")?;
            let seed = seed.ok_or("run needs --seed N")?;
            let scenario = load(path)?;
            let passed = run_one(path, &scenario, seed, verbose);
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "determinism" => {
            let path = paths.first().ok_or("determinism needs a scenario file")?;
            let seed = seed.ok_or("determinism needs --seed N")?;
            let scenario = load(path)?;
            let first = run::run(&scenario, seed, false);
            let second = run::run(&scenario, seed, false);
            println!("first  trace-hash: {}", first.trace_hash);
            println!("second trace-hash: {}", second.trace_hash);
            if first.trace_hash == second.trace_hash {
                println!("deterministic: the same seed gave the same trace");
                println!("trace-hash: {}", first.trace_hash);
                Ok(ExitCode::SUCCESS)
            } else {
                println!("NOT deterministic for seed {seed}; replay with:\n  {}", replay_command(path, seed));
                Ok(ExitCode::FAILURE)
            }
        }
        "sweep" => {
            if paths.is_empty() {
                paths = scenario_files("scenarios")?;
            }
            let mut failures = 0usize;
            let mut runs = 0usize;
            let mut combined = sha2_hex_init();
            for path in &paths {
                let scenario = load(path)?;
                let started = std::time::Instant::now();
                for seed in first_seed..first_seed + seeds {
                    let outcome = run::run(&scenario, seed, false);
                    runs += 1;
                    combined = sha2_hex_chain(&combined, &outcome.trace_hash);
                    if !outcome.violations.is_empty() {
                        failures += 1;
                        report_failure(path, seed, &outcome);
                    }
                }
                println!(
                    "{}: {} seeds from {first_seed}, {:.1}s",
                    scenario.name,
                    seeds,
                    started.elapsed().as_secs_f64()
                );
            }
            println!("{} passed, {} failed", runs - failures, failures);
            println!("trace-hash: {combined}");
            Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        _ => Err("usage: arca-sim run FILE --seed N | sweep --seeds N [FILES] | determinism FILE --seed N".into()),
    }
}

#[cfg(madsim)]
fn run_one(path: &str, scenario: &scenario::Scenario, seed: u64, verbose: bool) -> bool {
    let outcome = run::run(scenario, seed, verbose);
    println!(
        "scenario {} seed {seed}: {} acknowledged writes",
        scenario.name, outcome.acknowledged_writes
    );
    let passed = outcome.violations.is_empty();
    if passed {
        println!("result: pass");
    } else {
        report_failure(path, seed, &outcome);
    }
    println!("trace-hash: {}", outcome.trace_hash);
    passed
}

#[cfg(madsim)]
fn report_failure(path: &str, seed: u64, outcome: &run::Outcome) {
    println!("FAIL {path} seed {seed}:");
    for violation in &outcome.violations {
        println!("  - {violation}");
    }
    println!("  last events:");
    for line in outcome.trace_tail.iter().rev().take(30).rev() {
        println!("    {line}");
    }
    println!("  replay: {}", replay_command(path, seed));
}

#[cfg(madsim)]
fn load(path: &str) -> Result<scenario::Scenario, String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    scenario::Scenario::parse(&text).map_err(|error| format!("{path}: {error}"))
}

#[cfg(madsim)]
fn scenario_files(dir: &str) -> Result<Vec<String>, String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot list {dir}: {error}"))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().display().to_string())
        .filter(|path| path.ends_with(".toml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(madsim)]
fn sha2_hex_init() -> String {
    String::new()
}

#[cfg(madsim)]
fn sha2_hex_chain(previous: &str, next: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("{previous}{next}").as_bytes()))
}
