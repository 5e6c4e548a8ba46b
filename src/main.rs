//! The `arca` binary: the server and the Vault-compatible command line.

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    arca::cli::main()
}

/// Under the simulator there is no process to run: the simulation drives the library.
#[cfg(madsim)]
fn main() {}
