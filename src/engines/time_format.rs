//! Vault's textual forms of times and durations, computed from whole seconds.
//!
//! KV v2 prints timestamps with Go's `time.RFC3339Nano` layout (via protobuf's
//! `TimestampString`), which drops a zero fraction: our times are whole seconds from
//! `request.now_unix`, so they print as `2026-11-28T05:00:07Z`. Durations print like Go's
//! `time.Duration.String()` (`0s`, `1m30s`, `768h0m0s`, `-1s`).

/// Format seconds since the Unix epoch as Go's RFC3339Nano in UTC (a whole second has
/// no fraction in that layout).
pub fn rfc3339(unix_seconds: i64) -> String {
    crate::util::rfc3339_seconds(unix_seconds)
}

/// Format whole seconds like Go's `time.Duration.String()`.
pub fn go_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let magnitude = seconds.unsigned_abs();
    let hours = magnitude / 3600;
    let minutes = (magnitude % 3600) / 60;
    let rest = magnitude % 60;
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{rest}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{rest}s")
    } else {
        format!("{sign}{rest}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_go_rfc3339nano() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_521_685_446), "2018-03-22T02:24:06Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        // Extreme inputs must not panic.
        let _ = rfc3339(i64::MAX);
        let _ = rfc3339(i64::MIN);
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(90), "1m30s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(768 * 3600), "768h0m0s");
        assert_eq!(go_duration(-1), "-1s");
        let _ = go_duration(i64::MIN);
    }
}
