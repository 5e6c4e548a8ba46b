//! Small shared helpers: time formatting, percent-encoding and Go's boolean syntax.

/// Go's `strconv.ParseBool`: the one boolean syntax Vault reads from text, whether a
/// query flag (`?list=True`), a body field sent as a string, an audit option or a CLI
/// flag value. Anything else is not a boolean (`None`), never silently false.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// RFC 3339 in UTC with nanosecond precision, as Vault prints `created_time`
/// (`2024-07-02T21:41:49.123456789Z`).
pub fn rfc3339_nanos(unix_nanos: i128) -> String {
    let seconds = unix_nanos.div_euclid(1_000_000_000) as i64;
    let nanos = unix_nanos.rem_euclid(1_000_000_000) as u32;
    format!("{}.{nanos:09}Z", date_time(seconds))
}

/// RFC 3339 in UTC to the second (`2024-07-02T21:41:49Z`).
pub fn rfc3339(unix_millis: i64) -> String {
    format!("{}Z", date_time(unix_millis.div_euclid(1000)))
}

/// RFC 3339 from whole seconds.
pub fn rfc3339_seconds(unix_seconds: i64) -> String {
    format!("{}Z", date_time(unix_seconds))
}

fn date_time(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        (second_of_day % 3600) / 60,
        second_of_day % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The most `{`, `[` and `(` an HCL text may nest. hcl-rs's parser is exponential in
/// nesting under operators (a 307-byte input at depth 25 took 2.4 s, found by the
/// policy fuzz target); real policies and server configurations nest at most 5 deep.
pub const HCL_NESTING_DEPTH_MAX: usize = 12;

/// The byte offset where `text` first nests deeper than [`HCL_NESTING_DEPTH_MAX`], if it
/// does. Brackets inside strings count too, which only errs on the side of refusing.
pub fn hcl_nesting_exceeded(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, byte) in text.bytes().enumerate() {
        match byte {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > HCL_NESTING_DEPTH_MAX {
                    return Some(offset);
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Percent-encode everything but unreserved characters and `/`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_vault() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_719_956_509), "2024-07-02T21:41:49Z");
        assert_eq!(
            rfc3339_nanos(1_719_956_509_000_000_123),
            "2024-07-02T21:41:49.000000123Z"
        );
        // Leap days and a century that is not a leap year.
        assert_eq!(rfc3339_seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn encoding_keeps_slashes() {
        assert_eq!(percent_encode("a b/c&d"), "a%20b/c%26d");
    }
}
