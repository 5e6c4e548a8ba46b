//! `arca-sim`: run Arca fleets inside the madsim simulator.
//!
//! ```text
//! arca-sim run FILE --seed N [--seeded-bug NAME] [--verbose]
//! arca-sim sweep [FILES] --seeds N [--first-seed S|random] [--jobs J] [--seeded-bug NAME]
//! arca-sim determinism [FILES] --seed N [--jobs J]
//! arca-sim regress scenarios/regressions.txt [--jobs J]
//! arca-sim prove-bugs [--jobs J] [--bug NAME] [--strict]
//! ```
//! `run` simulates one seed in this process. Every other command runs each seed in a
//! child process (`run` of this same binary): a panic fails that seed only, with its
//! replay command, memory is returned after every seed, and `--jobs` uses several cores.
//! Must be built with `RUSTFLAGS="--cfg madsim"` (its own target dir).

use std::process::ExitCode;

use arca_sim::replay_command;
#[cfg(madsim)]
use arca_sim::{jobs, proofs, run, scenario};

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
        replay_command("scenarios/raft-leader-crash.toml", 1, None)
    ))
}

/// The most parallel child processes `--jobs` may ask for.
#[cfg(madsim)]
const JOBS_MAX: usize = 64;
/// The default seed count of a sweep.
#[cfg(madsim)]
const SWEEP_SEEDS_DEFAULT: u64 = 200;
/// The smallest sweep whose scenarios' declared coverage marks are checked.
#[cfg(madsim)]
const MARK_CHECK_SEEDS_MIN: u64 = 100;

#[cfg(madsim)]
struct Args {
    command: String,
    seed: Option<u64>,
    seeds: u64,
    first_seed: Option<u64>,
    jobs: usize,
    verbose: bool,
    strict: bool,
    bug: Option<String>,
    paths: Vec<String>,
}

#[cfg(madsim)]
fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        command: args.first().cloned().unwrap_or_default(),
        seed: None,
        seeds: SWEEP_SEEDS_DEFAULT,
        first_seed: Some(1),
        jobs: 1,
        verbose: false,
        strict: false,
        bug: None,
        paths: Vec::new(),
    };
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let mut text = |name: &str| -> Result<String, String> {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |name: &str, value: String| -> Result<u64, String> {
            value
                .parse()
                .map_err(|_| format!("{name} needs a number, not {value:?}"))
        };
        match arg.as_str() {
            "--seed" => parsed.seed = Some(number("--seed", text("--seed")?)?),
            "--seeds" => parsed.seeds = number("--seeds", text("--seeds")?)?,
            "--first-seed" => {
                let value = text("--first-seed")?;
                parsed.first_seed = if value == "random" {
                    None
                } else {
                    Some(number("--first-seed", value)?)
                };
            }
            "--jobs" | "-j" => {
                let jobs = number("--jobs", text("--jobs")?)? as usize;
                if !(1..=JOBS_MAX).contains(&jobs) {
                    return Err(format!("--jobs must be between 1 and {JOBS_MAX}"));
                }
                parsed.jobs = jobs;
            }
            "--seeded-bug" | "--bug" => {
                let name = text(arg)?;
                if arca::seeded_bugs::SeededBug::from_name(&name).is_none() {
                    let known: Vec<&str> = arca::seeded_bugs::SeededBug::ALL
                        .iter()
                        .map(|bug| bug.name())
                        .collect();
                    return Err(format!("unknown seeded bug {name:?}; known: {known:?}"));
                }
                parsed.bug = Some(name);
            }
            "--verbose" | "-v" => parsed.verbose = true,
            "--strict" => parsed.strict = true,
            other if other.starts_with('-') => return Err(format!("unknown flag {other}")),
            path => parsed.paths.push(path.to_string()),
        }
    }
    Ok(parsed)
}

#[cfg(madsim)]
fn entry(args: &[String]) -> Result<ExitCode, String> {
    let args = parse_args(args)?;
    match args.command.as_str() {
        "run" => {
            let path = args.paths.first().ok_or("run needs a scenario file")?;
            let seed = args.seed.ok_or("run needs --seed N")?;
            let scenario = load(path)?;
            if let Some(name) = &args.bug {
                let bug = arca::seeded_bugs::SeededBug::from_name(name).expect("checked");
                arca::seeded_bugs::set_enabled(&[bug]);
            }
            Ok(run_one(path, &scenario, seed, args.bug.as_deref(), args.verbose))
        }
        "sweep" => {
            let paths = scenario_paths(&args.paths)?;
            let first_seed = args.first_seed.unwrap_or_else(random_first_seed);
            println!(
                "sweep: {} seeds from {first_seed} of {} scenario(s), {} job(s){}",
                args.seeds,
                paths.len(),
                args.jobs,
                args.bug
                    .as_ref()
                    .map(|bug| format!(", seeded bug {bug}"))
                    .unwrap_or_default()
            );
            let mut queue = Vec::new();
            for path in &paths {
                for seed in first_seed..first_seed + args.seeds {
                    queue.push(jobs::Job::new(path, seed, args.bug.clone()));
                }
            }
            let summary = jobs::run_all(queue, args.jobs, |_| true);
            summary.print();
            let mut declared = std::collections::BTreeMap::new();
            for path in &paths {
                declared.insert(path.clone(), load(path)?.marks);
            }
            if args.seeds < MARK_CHECK_SEEDS_MIN {
                println!(
                    "marks: not checked (a sweep of fewer than {MARK_CHECK_SEEDS_MIN} seeds \
                     may miss a rare one)"
                );
                return Ok(summary.exit_code());
            }
            let unhit = summary.unhit_marks(&declared);
            if unhit.is_empty() {
                println!("marks: every declared mark was hit");
                return Ok(summary.exit_code());
            }
            println!("FAIL marks never hit in {} seeds:", args.seeds);
            for line in &unhit {
                println!("  - {line}");
            }
            Ok(ExitCode::FAILURE)
        }
        "regress" => {
            let list = args
                .paths
                .first()
                .map(String::as_str)
                .unwrap_or("scenarios/regressions.txt");
            let queue = jobs::regression_list(list)?;
            println!("regressions: {} seed(s) from {list}", queue.len());
            let summary = jobs::run_all(queue, args.jobs, |_| true);
            summary.print();
            Ok(summary.exit_code())
        }
        "determinism" => {
            let paths = scenario_paths(&args.paths)?;
            let seed = args.seed.ok_or("determinism needs --seed N")?;
            // Each seed twice, in two separate processes: what a replay relies on.
            let mut queue = Vec::new();
            for path in &paths {
                queue.push(jobs::Job::new(path, seed, args.bug.clone()));
                queue.push(jobs::Job::new(path, seed, args.bug.clone()));
            }
            let summary = jobs::run_all(queue, args.jobs, |_| true);
            let mut same = 0;
            for pair in summary.results.chunks(2) {
                let (first, second) = (&pair[0], &pair[1]);
                if first.trace_hash.is_some() && first.trace_hash == second.trace_hash {
                    same += 1;
                    println!(
                        "deterministic: {} seed {seed}: trace-hash {}",
                        first.job.path,
                        first.trace_hash.as_deref().unwrap_or("")
                    );
                } else {
                    println!(
                        "NOT deterministic: {} seed {seed}: {:?} vs {:?}; replay with:\n  {}",
                        first.job.path,
                        first.trace_hash,
                        second.trace_hash,
                        replay_command(&first.job.path, seed, None)
                    );
                }
            }
            println!("{same} of {} scenario(s) deterministic across processes", paths.len());
            Ok(if same == paths.len() && same > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        "prove-bugs" => proofs::prove(args.jobs, args.bug.as_deref(), args.strict),
        _ => Err("usage: arca-sim run FILE --seed N [--seeded-bug NAME] | sweep [FILES] --seeds N [--first-seed S|random] [--jobs J] | determinism [FILES] --seed N | regress [LIST] | prove-bugs [--bug NAME] [--strict]".into()),
    }
}

/// The first seed of a sweep asked for `random`: fresh each time, and printed so the
/// sweep can be repeated. Taken from the wall clock outside any simulation.
#[cfg(madsim)]
fn random_first_seed() -> u64 {
    #[allow(clippy::disallowed_methods)] // the harness itself, outside the simulation
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Keep seeds readable and far from the fixed low range CI used to run.
    1_000_000 + (now.as_nanos() as u64 ^ u64::from(std::process::id())) % 1_000_000_000
}

/// One seed in this process: prints the summary lines the parent parses.
#[cfg(madsim)]
fn run_one(
    path: &str,
    scenario: &scenario::Scenario,
    seed: u64,
    bug: Option<&str>,
    verbose: bool,
) -> ExitCode {
    #[allow(clippy::disallowed_methods)] // wall time of the harness, outside the simulation
    let started = std::time::Instant::now();
    let outcome = run::run(scenario, seed, verbose);
    let wall = started.elapsed();
    println!(
        "scenario {} seed {seed}: {} acknowledged writes, {} reads checked",
        scenario.name, outcome.acknowledged_writes, outcome.reads_checked
    );
    println!(
        "sim-time: {:.3}s wall: {:.3}s ratio: {:.0}x",
        outcome.simulated.as_secs_f64(),
        wall.as_secs_f64(),
        outcome.simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    let code = if !outcome.violations.is_empty() {
        println!("result: FAIL safety");
        jobs::EXIT_SAFETY
    } else if !outcome.liveness_failures.is_empty() {
        println!("result: FAIL liveness");
        jobs::EXIT_LIVENESS
    } else {
        println!("result: pass");
        0
    };
    if code != 0 {
        for violation in &outcome.violations {
            println!("  - safety: {violation}");
        }
        for failure in &outcome.liveness_failures {
            println!("  - liveness: {failure}");
        }
        println!("  last events:");
        for line in outcome.trace_tail.iter().rev().take(30).rev() {
            println!("    {line}");
        }
        println!("  replay: {}", replay_command(path, seed, bug));
    }
    println!("trace-hash: {}", outcome.trace_hash);
    println!("marks: {}", arca::coverage::hits().join(" "));
    let fired: Vec<String> = arca::buggify::fired()
        .into_iter()
        .map(|(site, times)| format!("{site}x{times}"))
        .collect();
    if !fired.is_empty() {
        println!("fault points fired: {}", fired.join(" "));
    }
    ExitCode::from(code)
}

#[cfg(madsim)]
fn load(path: &str) -> Result<scenario::Scenario, String> {
    #[allow(clippy::disallowed_methods)] // the harness reads its scenario files
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    scenario::Scenario::parse(&text).map_err(|error| format!("{path}: {error}"))
}

/// The files named, or every scenario in `scenarios/`; each must parse, and there
/// must be at least one (a sweep over nothing is not a pass).
#[cfg(madsim)]
fn scenario_paths(named: &[String]) -> Result<Vec<String>, String> {
    let paths = if named.is_empty() {
        jobs::scenario_files("scenarios")?
    } else {
        named.to_vec()
    };
    if paths.is_empty() {
        return Err("no scenario files to run".into());
    }
    for path in &paths {
        load(path)?;
    }
    Ok(paths)
}
