//! The two logging settings Vault reads from its configuration, its flags and its
//! environment: `log_level` and `log_format`. Parsed here once, so the file, the
//! `-log-level`/`-log-format` flags and a SIGHUP reload accept and refuse the same words.

/// `log_format`: Vault's `standard` (text lines) or `json` (one object per line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Standard,
    Json,
}

impl LogFormat {
    pub fn parse(text: &str) -> Result<LogFormat, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "standard" => Ok(LogFormat::Standard),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected \"standard\" or \"json\""
            )),
        }
    }
}

/// `log_level`, as the `tracing` directive it means: Vault's words, any case, with
/// `warning` for `warn` (an unknown word would otherwise read as a target name and
/// silently log nothing).
pub fn parse_log_level(text: &str) -> Result<&'static str, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok("trace"),
        "debug" => Ok("debug"),
        "info" => Ok("info"),
        "warn" | "warning" => Ok("warn"),
        "error" | "err" => Ok("error"),
        other => Err(format!(
            "unknown log level {other:?}: expected one of trace, debug, info, warn, error"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_formats_read_as_vault_reads_them() {
        assert_eq!(parse_log_level("Debug"), Ok("debug"));
        assert_eq!(parse_log_level(" WARNING "), Ok("warn"));
        assert_eq!(parse_log_level("err"), Ok("error"));
        assert!(parse_log_level("verbose").is_err());
        assert!(parse_log_level("").is_err());
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("standard"), Ok(LogFormat::Standard));
        assert!(LogFormat::parse("logfmt").is_err());
    }
}
