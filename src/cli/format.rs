//! Pure text formatting that reproduces what Vault's CLI prints: columnized tables
//! (`ryanuber/columnize` with Vault's settings), Go's `%v` rendering of JSON values,
//! Vault's human durations, minimal-raggedness word wrapping (`kr/text`), and Go's
//! `json.MarshalIndent` output. No I/O here: every function returns a `String`.

use serde::Serialize;
use serde_json::Value;

/// Vault wraps prose at this many columns (`maxLineLength`).
pub const LINE_LENGTH_MAX: usize = 78;
/// `kr/text`'s penalty for a line longer than the limit.
const OVERLONG_LINE_PENALTY: u64 = 100_000;

/// The delimiter Vault uses between a key and its value in secret tables (`hopeDelim`).
pub const HOPE_DELIMITER: &str = "♨";

/// `columnize.Format` with Vault's configuration: cells split on `delimiter`, trimmed,
/// empty cells shown as `n/a`, columns joined by four spaces, the last column unpadded.
pub fn columnize(rows: &[String], delimiter: &str) -> String {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.split(delimiter)
                .map(|cell| {
                    let cell = cell.trim();
                    if cell.is_empty() {
                        "n/a".to_string()
                    } else {
                        cell.to_string()
                    }
                })
                .collect()
        })
        .collect();
    let columns = table.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in &table {
        for (index, cell) in row.iter().enumerate() {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let mut lines = Vec::with_capacity(table.len());
    for row in &table {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if index + 1 < row.len() {
                let padding = widths[index] - cell.chars().count();
                line.push_str(&" ".repeat(padding + 4));
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Vault's `tableOutput`: the header row, an underline of dashes as long as each header,
/// then the rows, columnized.
pub fn table(rows: &[String], delimiter: &str) -> String {
    let Some(header) = rows.first() else {
        return String::new();
    };
    let underline = header
        .split(delimiter)
        .map(|heading| "-".repeat(heading.trim().chars().count()))
        .collect::<Vec<_>>()
        .join(delimiter);
    let mut all = Vec::with_capacity(rows.len() + 1);
    all.push(header.clone());
    all.push(underline);
    all.extend(rows[1..].iter().cloned());
    columnize(&all, delimiter)
}

/// A `Key`/`Value` table of already-formatted pairs, as Vault prints secrets and maps.
pub fn key_value_table(pairs: &[(String, String)]) -> String {
    let mut rows = vec![format!("Key{HOPE_DELIMITER}Value")];
    rows.extend(
        pairs
            .iter()
            .map(|(key, value)| format!("{key} {HOPE_DELIMITER} {value}")),
    );
    table(&rows, HOPE_DELIMITER)
}

/// Go's `fmt.Sprintf("%v", value)` for a value decoded from JSON with `UseNumber`.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_value).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(key, item)| format!("{key}:{}", go_value(item)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Go's `%q` for a list of strings: `["default" "superuser"]`.
pub fn go_quoted_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|item| serde_json::to_string(item).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Keys whose numeric values Vault shows as durations (`looksLikeDuration`).
pub fn looks_like_duration(key: &str) -> bool {
    key == "period"
        || key.ends_with("_period")
        || key == "ttl"
        || key.ends_with("_ttl")
        || key == "duration"
        || key.ends_with("_duration")
        || key == "lease_max"
        || key == "ttl_max"
}

/// Vault's `humanDuration`: Go's `time.Duration` text without trailing zero units
/// (`768h`, `1m30s`, `0s`).
pub fn human_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let total = seconds.unsigned_abs();
    let (hours, minutes, rest) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut text = if hours > 0 {
        format!("{sign}{hours}h{minutes}m{rest}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{rest}s")
    } else {
        format!("{sign}{rest}s")
    };
    if text.ends_with("m0s") {
        text.truncate(text.len() - 2);
    }
    if let Some(index) = text.find("h0m") {
        text.replace_range(index + 1..index + 3, "");
    }
    text
}

/// Vault's `humanDurationInt`: integers (or integer strings) become durations; any other
/// value is shown as is.
pub fn human_duration_value(value: &Value) -> String {
    let seconds = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse::<i64>().ok(),
        _ => None,
    };
    match seconds {
        Some(seconds) => human_duration(seconds),
        None => go_value(value),
    }
}

/// `kr/text.Wrap`: split on spaces and break into lines of at most `limit` characters
/// with minimal raggedness (the sum of squared shortfalls over all lines but the last).
pub fn wrap(text: &str, limit: usize) -> String {
    let normalized = text.trim().replace('\n', " ");
    let words: Vec<&str> = normalized.split(' ').collect();
    let count = words.len();
    let lengths: Vec<usize> = words.iter().map(|word| word.chars().count()).collect();
    // line_length(i, j): the length of words i..=j joined by single spaces.
    let line_length = |first: usize, last: usize| -> usize {
        lengths[first..=last].iter().sum::<usize>() + (last - first)
    };
    let mut cost = vec![u64::MAX; count];
    let mut next_break = vec![count; count];
    for first in (0..count).rev() {
        if line_length(first, count - 1) <= limit {
            cost[first] = 0;
            next_break[first] = count;
            continue;
        }
        for split in first + 1..count {
            let length = line_length(first, split - 1);
            let shortfall = limit as i64 - length as i64;
            let mut candidate = (shortfall * shortfall) as u64;
            candidate = candidate.saturating_add(cost[split]);
            if length > limit {
                candidate = candidate.saturating_add(OVERLONG_LINE_PENALTY);
            }
            if candidate < cost[first] {
                cost[first] = candidate;
                next_break[first] = split;
            }
        }
    }
    let mut lines = Vec::new();
    let mut first = 0;
    while first < count {
        let end = next_break[first].max(first + 1);
        lines.push(words[first..end].join(" "));
        first = end;
    }
    lines.join("\n")
}

/// Vault's `wrapAtLength`.
pub fn wrap_at_length(text: &str) -> String {
    wrap(text, LINE_LENGTH_MAX)
}

/// Vault's `wrapAtLengthWithPadding`: wrapped to fit after `padding` spaces, each line
/// indented by them.
pub fn wrap_with_padding(text: &str, padding: usize) -> String {
    wrap(text, LINE_LENGTH_MAX - padding)
        .lines()
        .map(|line| format!("{}{line}", " ".repeat(padding)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `time.RFC822` layout (`02 Jan 06 15:04 UTC`) for an RFC 3339 UTC time such as
/// `2026-12-02T05:51:10.123Z`; `None` for anything else (the caller shows it as given).
pub fn rfc822_utc(rfc3339: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = rfc3339.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-');
    let year = date_parts.next()?;
    let month: usize = date_parts.next()?.parse().ok()?;
    let day = date_parts.next()?;
    let mut time_parts = time.split(':');
    let hour = time_parts.next()?;
    let minute = time_parts.next()?;
    let month_name = MONTHS.get(month.checked_sub(1)?)?;
    if year.len() != 4 || day.len() != 2 || hour.len() != 2 || minute.len() != 2 {
        return None;
    }
    Some(format!(
        "{day} {month_name} {} {hour}:{minute} UTC",
        &year[2..]
    ))
}

/// Go's `time.Time.String()` for an RFC 3339 time as the Go client decodes it
/// (`2018-05-09 06:10:13.437421436 +0000 UTC`): a space for the `T`, the fraction without
/// trailing zeros, then the offset and the zone name. A `Z` time is in UTC; a numeric
/// offset becomes Go's nameless fixed zone, which prints the offset as its name (Go
/// would use the local zone's name instead when the offset happens to be the machine's
/// own; the server sends UTC). `None` when the text is not RFC 3339 (the caller shows it
/// as given).
pub fn go_time_string(rfc3339: &str) -> Option<String> {
    let (date, rest) = rfc3339.split_once('T')?;
    let date_ok = date.len() == 10
        && date.char_indices().all(|(index, c)| {
            if matches!(index, 4 | 7) {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    let clock = rest.get(..8)?;
    let clock_ok = clock.char_indices().all(|(index, c)| {
        if matches!(index, 2 | 5) {
            c == ':'
        } else {
            c.is_ascii_digit()
        }
    });
    if !date_ok || !clock_ok {
        return None;
    }
    let rest = &rest[8..];
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let digits = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            if digits == 0 || digits > 9 {
                return None;
            }
            (&after_dot[..digits], &after_dot[digits..])
        }
        None => ("", rest),
    };
    let fraction = fraction.trim_end_matches('0');
    let fraction = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    let zone = match zone {
        "Z" => "+0000 UTC".to_string(),
        offset => {
            let bytes = offset.as_bytes();
            let valid = bytes.len() == 6
                && matches!(bytes[0], b'+' | b'-')
                && bytes[3] == b':'
                && [1, 2, 4, 5]
                    .iter()
                    .all(|&index| bytes[index].is_ascii_digit());
            if !valid {
                return None;
            }
            let numeric = format!("{}{}", &offset[..3], &offset[4..]);
            format!("{numeric} {numeric}")
        }
    };
    Some(format!("{date} {clock}{fraction} {zone}"))
}

/// The warnings block Vault prints (to stderr) before a secret's table. The header keeps
/// Vault's name, as the tutorial and reference §4 show it: scripts that sift a command's
/// stderr match this line, and the warnings under it (the server's own texts) name
/// Vault too.
pub fn warnings_block(warnings: &[String]) -> String {
    let mut text = String::from("WARNING! The following warnings were returned from Vault:\n\n");
    for warning in warnings {
        text.push_str(&wrap_with_padding(&format!("* {warning}"), 2));
        text.push_str("\n\n");
    }
    text
}

/// Go's `json.MarshalIndent(value, "", "  ")`, including its escaping of `<`, `>` and
/// `&` (which only ever appear inside strings in JSON text).
pub fn go_json<T: Serialize + ?Sized>(value: &T) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc822_is_gos_layout() {
        assert_eq!(
            rfc822_utc("2017-01-01T12:30:59.123Z").as_deref(),
            Some("01 Jan 17 12:30 UTC")
        );
        assert_eq!(
            rfc822_utc("2026-12-02T05:51:10Z").as_deref(),
            Some("02 Dec 26 05:51 UTC")
        );
        assert_eq!(rfc822_utc("2026-13-02T05:51:10Z"), None);
        assert_eq!(rfc822_utc("yesterday"), None);
    }

    #[test]
    fn times_print_like_gos_time_string() {
        // The reference's wrapped-response table (§1.6).
        assert_eq!(
            go_time_string("2018-05-09T06:10:13.437421436Z").as_deref(),
            Some("2018-05-09 06:10:13.437421436 +0000 UTC")
        );
        // What Arca's server sends: whole seconds.
        assert_eq!(
            go_time_string("2026-12-02T05:51:10Z").as_deref(),
            Some("2026-12-02 05:51:10 +0000 UTC")
        );
        assert_eq!(
            go_time_string("2026-12-02T05:51:10.120Z").as_deref(),
            Some("2026-12-02 05:51:10.12 +0000 UTC")
        );
        assert_eq!(
            go_time_string("2026-12-02T05:51:10.000Z").as_deref(),
            Some("2026-12-02 05:51:10 +0000 UTC")
        );
        assert_eq!(
            go_time_string("2024-03-04T10:05:56-05:00").as_deref(),
            Some("2024-03-04 10:05:56 -0500 -0500")
        );
        for not_rfc3339 in [
            "",
            "yesterday",
            "2026-12-02 05:51:10Z",
            "2026-12-02T05:51Z",
            "2026-12-02T05:51:10",
            "2026-12-02T05:51:10.Z",
            "2026-12-02T05:51:10+0500",
            "2026-12-02T05:51:10.1234567890Z",
            "2026-1x-02T05:51:10Z",
            "20261-02-0T05:51:10Z",
        ] {
            assert_eq!(go_time_string(not_rfc3339), None, "{not_rfc3339:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn go_time_string_never_panics(text in "\\PC{0,40}") {
            let _ = go_time_string(&text);
        }
    }

    #[test]
    fn secrets_list_table_matches_vault() {
        let rows = vec![
            "Path | Type | Accessor | Description".to_string(),
            "cubbyhole/ | cubbyhole | cubbyhole_548b4dc5 | per-token private secret storage"
                .to_string(),
            "identity/ | identity | identity_aa00c06d | identity store".to_string(),
            "secret/ | kv | kv_ec655082 | key/value secret storage".to_string(),
            "sys/ | system | system_547412e3 | system endpoints used for control, policy and debugging".to_string(),
        ];
        let expected = "\
Path          Type         Accessor              Description
----          ----         --------              -----------
cubbyhole/    cubbyhole    cubbyhole_548b4dc5    per-token private secret storage
identity/     identity     identity_aa00c06d     identity store
secret/       kv           kv_ec655082           key/value secret storage
sys/          system       system_547412e3       system endpoints used for control, policy and debugging";
        assert_eq!(table(&rows, "|"), expected);
    }

    #[test]
    fn empty_cells_read_n_a() {
        let rows = vec![
            "Path | Type | Accessor | Description".to_string(),
            "replicatedkv/ | kv | kv_ec655082 | ".to_string(),
        ];
        assert!(table(&rows, "|").ends_with("replicatedkv/    kv      kv_ec655082    n/a"));
    }

    #[test]
    fn login_table_matches_vault() {
        let pairs: Vec<(String, String)> = [
            ("token", "hvs.CAESIAE31Vrf..."),
            ("token_accessor", "9XuvRw1jKWt99iwlZ146652v"),
            ("token_duration", "768h"),
            ("token_renewable", "true"),
            ("token_policies", "[\"default\" \"superuser\"]"),
            ("identity_policies", "[]"),
            ("policies", "[\"default\" \"superuser\"]"),
            ("token_meta_username", "tester"),
        ]
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
        let expected = "\
Key                    Value
---                    -----
token                  hvs.CAESIAE31Vrf...
token_accessor         9XuvRw1jKWt99iwlZ146652v
token_duration         768h
token_renewable        true
token_policies         [\"default\" \"superuser\"]
identity_policies      []
policies               [\"default\" \"superuser\"]
token_meta_username    tester";
        assert_eq!(key_value_table(&pairs), expected);
    }

    #[test]
    fn durations_read_like_vault() {
        assert_eq!(human_duration(2_764_800), "768h");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(3660), "1h1m");
        assert_eq!(human_duration(3661), "1h1m1s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(60), "1m");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration_value(&json!("1800")), "30m");
        assert_eq!(human_duration_value(&json!("soon")), "soon");
        assert!(looks_like_duration("token_ttl") && looks_like_duration("period"));
        assert!(!looks_like_duration("ttl_remaining"));
    }

    #[test]
    fn go_values_print_like_fmt_v() {
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!(["a", 1, true])), "[a 1 true]");
        assert_eq!(
            go_value(&json!({"b": "x", "a": {"c": []}})),
            "map[a:map[c:[]] b:x]"
        );
        assert_eq!(
            go_quoted_list(&["default".to_string(), "superuser".to_string()]),
            "[\"default\" \"superuser\"]"
        );
        assert_eq!(go_quoted_list(&[]), "[]");
    }

    #[test]
    fn init_paragraph_wraps_like_vault() {
        let text = "Vault initialized with 5 key shares and a key threshold of 3. Please securely distribute the key shares printed above. When the Vault is re-sealed, restarted, or stopped, you must supply at least 3 of these keys to unseal it before it can start servicing requests.";
        let expected = "\
Vault initialized with 5 key shares and a key threshold of 3. Please securely
distribute the key shares printed above. When the Vault is re-sealed,
restarted, or stopped, you must supply at least 3 of these keys to unseal it
before it can start servicing requests.";
        assert_eq!(wrap_at_length(text), expected);
    }

    #[test]
    fn warnings_block_matches_the_tutorial() {
        let warning = "This cluster is being enabled as a primary for replication. Vault will be unavailable for a brief period and will resume service shortly.";
        let expected = "\
WARNING! The following warnings were returned from Vault:

  * This cluster is being enabled as a primary for replication. Vault will be
  unavailable for a brief period and will resume service shortly.

";
        assert_eq!(warnings_block(&[warning.to_string()]), expected);
    }

    #[test]
    fn wrap_handles_degenerate_input() {
        assert_eq!(wrap("", 10), "");
        assert_eq!(
            wrap("averyveryverylongword short", 5),
            "averyveryverylongword\nshort"
        );
    }

    #[test]
    fn json_escapes_like_go() {
        assert_eq!(
            go_json(&json!({"a": "<b>&"})),
            "{\n  \"a\": \"\\u003cb\\u003e\\u0026\"\n}"
        );
    }
}
