//! The one error a configuration file can produce: where it went wrong and why.

use std::fmt;

/// A configuration problem, located by file name and (when known) 1-based line.
///
/// Displayed as `config.hcl:4: storage "raft": unknown key "pth"`, so an operator can go
/// straight to the offending line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file_name: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "{}:{line}: {}", self.file_name, self.message),
            None => write!(formatter, "{}: {}", self.file_name, self.message),
        }
    }
}
