//! Arca through hvac, the Python Vault client: `tests/hvac/check.py` runs its steps (KV v2
//! and v1, mounts, policies, tokens and roles, userpass, wrapping, audit, the keyring,
//! leases) against a dev server and asserts what Vault answers at each.
//!
//! The interpreter is `$ARCA_TEST_PYTHON` (scripts/test-all.sh makes a virtual environment
//! with hvac pinned), else `python3` with hvac installed.

// Test harness: real processes, files and clocks, outside the simulated world.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg(not(madsim))]

mod cli_support;

use std::process::Command;

#[test]
fn hvac_the_python_client_works_against_a_dev_server() {
    let lab = tempfile::tempdir().unwrap();
    let server = cli_support::start_dev_server(lab.path(), &[]);
    let python = std::env::var("ARCA_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hvac/check.py");
    let audit = lab.path().join("audit.log");
    let output = Command::new(&python)
        .arg(script)
        .arg(&server.address)
        .arg("root")
        .arg(&audit)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run {python} (scripts/test-all.sh installs it with hvac): {error}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "hvac's steps failed ({}):\n{stdout}\n{stderr}\n(without hvac: `{python} -m pip install hvac==2.4.0`)",
        output.status
    );
    assert!(stdout.contains("every step held"), "{stdout}");
    // The audit device hvac enabled logged the requests that followed it.
    let log = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(log.contains("sys/rotate"), "audit log: {log}");
}
