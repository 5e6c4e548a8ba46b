//! arca-sim: Arca fleets inside the madsim simulator. The scenario format, the oracle,
//! the trace and the child-process runner build everywhere (and are unit-tested on
//! Tokio); the simulation itself needs `--cfg madsim`.

#[cfg(madsim)]
pub mod client;
pub mod jobs;
pub mod oracle;
pub mod proofs;
#[cfg(madsim)]
pub mod run;
pub mod scenario;
pub mod trace;

/// The command that rebuilds and replays one seed, printed with every failure.
pub fn replay_command(scenario_path: &str, seed: u64, seeded_bug: Option<&str>) -> String {
    let bug = seeded_bug
        .map(|name| format!(" --seeded-bug {name}"))
        .unwrap_or_default();
    format!(
        "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target-sim cargo run -p arca-sim --release -- run {scenario_path} --seed {seed}{bug} --verbose"
    )
}
