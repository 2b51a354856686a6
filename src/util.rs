//! Small helpers every layer may use: a SHA-256 in hex, the file name of a host path,
//! a name escaped for a RabbitMQ pattern. They know nothing of warren's own types.

use sha2::{Digest, Sha256};

/// The SHA-256 of `b` in lowercase hex, as `sha256sum` and warren's stamps write it.
pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

pub fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Escapes a queue name for use in a policy pattern (an Erlang `re` regex).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `t` in UTC as `YYYYMMDD-HHMMSS`: for file names that sort by time.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    // "2026-12-04T21:31:57Z"
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!(
        "{}-{}",
        s[..10].replace('-', ""),
        s[11..19].replace(':', "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_escape_quotes_metacharacters() {
        assert_eq!(regex_escape("site.win1"), r"site\.win1");
        assert_eq!(regex_escape("a(b)*"), r"a\(b\)\*");
    }
}
