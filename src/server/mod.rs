//! The server process: configuration in, a running node out.

use std::path::PathBuf;

/// What `arca server` was asked to do (parsed by the CLI).
#[derive(Debug, Clone, Default)]
pub struct ServerArgs {
    /// `-config=FILE` (may be given more than once in Vault; Arca takes the last).
    pub config_path: Option<PathBuf>,
    /// `-dev`: an in-memory, initialized, unsealed single node.
    pub dev: bool,
    /// `-dev-root-token-id=ID`.
    pub dev_root_token_id: Option<String>,
    /// `-dev-listen-address=ADDR` (default 127.0.0.1:8200).
    pub dev_listen_address: Option<String>,
    /// `-log-level=LEVEL`.
    pub log_level: Option<String>,
}

/// Run the server until SIGINT/SIGTERM. Returns the process exit code.
pub fn launch(args: ServerArgs) -> std::process::ExitCode {
    eprintln!("arca server is not assembled yet ({args:?})");
    std::process::ExitCode::from(1)
}
