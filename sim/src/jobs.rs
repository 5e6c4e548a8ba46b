//! Seeds run in child processes: `arca-sim run FILE --seed N` of this same binary. A
//! panic (a node's or the harness's) fails that seed only and is reported with its replay
//! command; the sweep goes on. Memory goes back to the system after every seed, and
//! `--jobs N` keeps N children running.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use crate::replay_command;

/// Exit codes of `arca-sim run`.
pub const EXIT_SAFETY: u8 = 1;
pub const EXIT_LIVENESS: u8 = 3;
/// How often the parent looks at its children.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// The most output lines of a crashed child shown in the report.
pub const CRASH_LINES_SHOWN: usize = 25;

#[derive(Debug, Clone)]
pub struct Job {
    pub path: String,
    pub seed: u64,
    pub bug: Option<String>,
}

impl Job {
    pub fn new(path: &str, seed: u64, bug: Option<String>) -> Self {
        Self {
            path: path.to_string(),
            seed,
            bug,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Safety,
    Liveness,
    /// No verdict: the child panicked or was killed (exit code, if any).
    Crashed(Option<i32>),
}

#[derive(Debug, Clone)]
pub struct JobResult {
    pub job: Job,
    pub verdict: Verdict,
    pub trace_hash: Option<String>,
    pub simulated_secs: f64,
    pub wall_secs: f64,
    pub stdout: String,
    pub stderr: String,
    /// The coverage marks the run hit.
    pub marks: Vec<String>,
}

impl JobResult {
    pub fn failed(&self) -> bool {
        self.verdict != Verdict::Pass
    }

    /// The failure report: the child's own lines, or for a crash its last output and
    /// the replay command.
    pub fn report(&self) -> String {
        match self.verdict {
            Verdict::Pass => String::new(),
            Verdict::Safety | Verdict::Liveness => format!(
                "FAIL {} seed {}:\n{}",
                self.job.path, self.job.seed, self.stdout
            ),
            Verdict::Crashed(code) => {
                let lines: Vec<&str> = self.stdout.lines().chain(self.stderr.lines()).collect();
                let tail = &lines[lines.len().saturating_sub(CRASH_LINES_SHOWN)..];
                format!(
                    "FAIL {} seed {}: the run crashed (exit {code:?})\n    {}\n  replay: {}\n",
                    self.job.path,
                    self.job.seed,
                    tail.join("\n    "),
                    replay_command(&self.job.path, self.job.seed, self.job.bug.as_deref())
                )
            }
        }
    }
}

struct Running {
    job: Job,
    child: Child,
    started: std::time::Instant,
    /// The child's stdout and stderr, drained while it runs: a failing run's report can
    /// exceed a pipe's buffer, and a child blocked writing to a full pipe never exits.
    output: (Drain, Drain),
}

type Drain = std::thread::JoinHandle<String>;

/// Read `pipe` to its end on a thread of the harness (outside any simulation).
fn drain(pipe: Option<impl Read + Send + 'static>) -> Drain {
    #[allow(clippy::disallowed_methods)] // the harness's own thread, not server code
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

fn spawn(job: &Job) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|error| error.to_string())?;
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg(&job.path)
        .arg("--seed")
        .arg(job.seed.to_string());
    if let Some(bug) = &job.bug {
        command.arg("--seeded-bug").arg(bug);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start a child for seed {}: {error}", job.seed))
}

fn finish(running: Running, status: std::process::ExitStatus) -> JobResult {
    let (stdout, stderr) = running.output;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
            .map(str::to_string)
    };
    let result_line = field("result: ");
    let verdict = match (status.code(), result_line.as_deref()) {
        (Some(0), Some("pass")) => Verdict::Pass,
        (Some(code), Some("FAIL safety")) if code == i32::from(EXIT_SAFETY) => Verdict::Safety,
        (Some(code), Some("FAIL liveness")) if code == i32::from(EXIT_LIVENESS) => {
            Verdict::Liveness
        }
        (code, _) => Verdict::Crashed(code),
    };
    let simulated_secs = field("sim-time: ")
        .and_then(|rest| rest.split('s').next().and_then(|secs| secs.parse().ok()))
        .unwrap_or(0.0);
    JobResult {
        job: running.job,
        verdict,
        trace_hash: field("trace-hash: "),
        simulated_secs,
        wall_secs: running.started.elapsed().as_secs_f64(),
        marks: field("marks:")
            .map(|marks| marks.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        stdout,
        stderr,
    }
}

/// What a batch of jobs gave.
#[derive(Debug, Default)]
pub struct Summary {
    /// In the order the jobs were given.
    pub results: Vec<JobResult>,
    pub wall_secs: f64,
    /// Set when `keep_going` stopped the batch early.
    pub stopped_early: bool,
}

impl Summary {
    pub fn failures(&self) -> usize {
        self.results.iter().filter(|result| result.failed()).count()
    }

    /// Counts, timing and a combined trace hash (in job order).
    pub fn print(&self) {
        use sha2::{Digest, Sha256};
        let mut combined = Sha256::new();
        let (mut safety, mut liveness, mut crashed) = (0, 0, 0);
        let mut simulated = 0.0;
        let mut scenarios: Vec<&str> = Vec::new();
        for result in &self.results {
            simulated += result.simulated_secs;
            if !scenarios.contains(&result.job.path.as_str()) {
                scenarios.push(&result.job.path);
            }
            combined.update(result.trace_hash.as_deref().unwrap_or("none").as_bytes());
            match result.verdict {
                Verdict::Pass => {}
                Verdict::Safety => safety += 1,
                Verdict::Liveness => liveness += 1,
                Verdict::Crashed(_) => crashed += 1,
            }
        }
        for scenario in scenarios {
            let mine: Vec<&JobResult> = self
                .results
                .iter()
                .filter(|result| result.job.path == scenario)
                .collect();
            let passed = mine.iter().filter(|result| !result.failed()).count();
            let wall: f64 = mine.iter().map(|result| result.wall_secs).sum();
            println!(
                "{scenario}: {passed}/{} passed, {:.1}s of child wall time",
                mine.len(),
                wall
            );
            let mut hits: BTreeMap<&str, usize> = BTreeMap::new();
            for result in &mine {
                for mark in &result.marks {
                    *hits.entry(mark.as_str()).or_default() += 1;
                }
            }
            if !hits.is_empty() {
                let counts: Vec<String> = hits
                    .iter()
                    .map(|(mark, seeds)| format!("{mark} {seeds}"))
                    .collect();
                println!("  marks (seeds hitting each): {}", counts.join(", "));
            }
        }
        let runs = self.results.len();
        println!(
            "{} passed, {} failed ({safety} safety, {liveness} liveness, {crashed} crashed)",
            runs - self.failures(),
            self.failures()
        );
        println!(
            "simulated {:.0}s in {:.1}s wall: ratio {:.0}x, {:.1} seeds per wall second",
            simulated,
            self.wall_secs,
            simulated / self.wall_secs.max(1e-9),
            runs as f64 / self.wall_secs.max(1e-9)
        );
        println!("trace-hash: {}", hex::encode(combined.finalize()));
    }

    /// The marks each scenario declares (`declared`: path to marks) that no seed of it
    /// hit, as `path: mark`.
    pub fn unhit_marks(&self, declared: &BTreeMap<String, Vec<String>>) -> Vec<String> {
        let mut unhit = Vec::new();
        for (path, marks) in declared {
            for mark in marks {
                let hit = self
                    .results
                    .iter()
                    .any(|result| &result.job.path == path && result.marks.contains(mark));
                if !hit {
                    unhit.push(format!("{path}: {mark}"));
                }
            }
        }
        unhit
    }

    /// Success only when something ran and nothing failed.
    pub fn exit_code(&self) -> ExitCode {
        if self.results.is_empty() || self.failures() > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Run `jobs` with at most `parallel` children at once, printing each failure as it
/// comes. `keep_going` sees each finished result; when it answers false no new job
/// starts (running ones finish).
pub fn run_all(
    jobs: Vec<Job>,
    parallel: usize,
    keep_going: impl FnMut(&JobResult) -> bool,
) -> Summary {
    run_batch(jobs, parallel, true, keep_going)
}

/// [`run_all`] without printing failures (the caller reports them).
pub fn run_all_quiet(
    jobs: Vec<Job>,
    parallel: usize,
    keep_going: impl FnMut(&JobResult) -> bool,
) -> Summary {
    run_batch(jobs, parallel, false, keep_going)
}

fn run_batch(
    jobs: Vec<Job>,
    parallel: usize,
    print_failures: bool,
    mut keep_going: impl FnMut(&JobResult) -> bool,
) -> Summary {
    #[allow(clippy::disallowed_methods)] // wall time of the harness, outside the simulation
    let started = std::time::Instant::now();
    let total = jobs.len();
    let mut queue: VecDeque<(usize, Job)> = jobs.into_iter().enumerate().collect();
    let mut running: Vec<(usize, Running)> = Vec::new();
    let mut done: Vec<(usize, JobResult)> = Vec::new();
    let mut stopped = false;
    while !queue.is_empty() || !running.is_empty() {
        while !stopped && running.len() < parallel.max(1) {
            let Some((position, job)) = queue.pop_front() else {
                break;
            };
            #[allow(clippy::disallowed_methods)] // wall time of the harness
            let spawned_at = std::time::Instant::now();
            match spawn(&job) {
                Ok(mut child) => {
                    let output = (drain(child.stdout.take()), drain(child.stderr.take()));
                    running.push((
                        position,
                        Running {
                            job,
                            child,
                            started: spawned_at,
                            output,
                        },
                    ))
                }
                Err(error) => done.push((
                    position,
                    JobResult {
                        job,
                        verdict: Verdict::Crashed(None),
                        trace_hash: None,
                        simulated_secs: 0.0,
                        wall_secs: 0.0,
                        stdout: String::new(),
                        stderr: error,
                        marks: Vec::new(),
                    },
                )),
            }
        }
        if stopped {
            queue.clear();
        }
        let mut index = 0;
        while index < running.len() {
            match running[index].1.child.try_wait() {
                Ok(Some(status)) => {
                    let (position, finished) = running.swap_remove(index);
                    let result = finish(finished, status);
                    if print_failures && result.failed() {
                        print!("{}", result.report());
                    }
                    if !keep_going(&result) {
                        stopped = true;
                    }
                    done.push((position, result));
                }
                Ok(None) => index += 1,
                Err(_) => index += 1,
            }
        }
        if !running.is_empty() {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    done.sort_by_key(|(position, _)| *position);
    Summary {
        results: done.into_iter().map(|(_, result)| result).collect(),
        wall_secs: started.elapsed().as_secs_f64(),
        stopped_early: stopped && total > 0,
    }
}

/// Every `.toml` file directly in `dir`, sorted.
pub fn scenario_files(dir: &str) -> Result<Vec<String>, String> {
    #[allow(clippy::disallowed_methods)] // the harness lists its scenario files
    let entries = std::fs::read_dir(dir).map_err(|error| format!("cannot list {dir}: {error}"))?;
    let mut files: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().display().to_string())
        .filter(|path| path.ends_with(".toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The regression list: one `SCENARIO-FILE SEED [# why]` per line; `#` starts a
/// comment. An empty list is an error (a stage that runs nothing must not pass).
pub fn regression_list(path: &str) -> Result<Vec<Job>, String> {
    #[allow(clippy::disallowed_methods)] // the harness reads its regression list
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let mut jobs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(scenario), Some(seed), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!(
                "{path}:{}: expected SCENARIO-FILE SEED",
                number + 1
            ));
        };
        let seed = seed
            .parse()
            .map_err(|_| format!("{path}:{}: {seed:?} is not a seed", number + 1))?;
        jobs.push(Job::new(scenario, seed, None));
    }
    if jobs.is_empty() {
        return Err(format!("{path} lists no seeds"));
    }
    Ok(jobs)
}
