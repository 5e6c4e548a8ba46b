//! arca-sim: Arca fleets inside the madsim simulator. The scenario format and the trace
//! build everywhere (and are unit-tested on Tokio); the runner needs `--cfg madsim`.

#[cfg(madsim)]
pub mod client;
#[cfg(madsim)]
pub mod run;
pub mod scenario;
pub mod trace;

/// The command that rebuilds and replays one seed, printed with every failure.
pub fn replay_command(scenario_path: &str, seed: u64) -> String {
    format!(
        "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target-sim cargo run -p arca-sim --release -- run {scenario_path} --seed {seed} --verbose"
    )
}
