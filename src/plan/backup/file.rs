//! A backup file: its name (when it was taken, in UTC), the masking that keeps link
//! passwords out of it, and a file read back as definitions.

use crate::render::definitions::PASSWORD_MASK;
use serde_json::Value;

/// The file a backup taken at `t` is written to: `definitions-YYYYMMDD-HHMMSS.json`,
/// in UTC (the sites may be in other time zones than the operator).
pub fn file_name(t: std::time::SystemTime) -> String {
    format!("definitions-{}.json", crate::util::utc_stamp(t))
}

/// When the backup in file `name` was taken, read back from its name
/// ("2026-12-04 21:31:57 UTC"); `None` for a file named otherwise.
pub fn taken(name: &str) -> Option<String> {
    let stamp = name.strip_prefix("definitions-")?.strip_suffix(".json")?;
    let (d, t) = stamp.split_once('-')?;
    if d.len() != 8 || t.len() != 6 || !(d.chars().chain(t.chars())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        &d[..4],
        &d[4..6],
        &d[6..],
        &t[..2],
        &t[2..4],
        &t[4..]
    ))
}

/// Replaces every password in a URI of the runtime and global parameters (a
/// shovel's `src-uri` and `dest-uri`, a federation upstream's `uri`, each a string
/// or a list) by warren's mask, the one `plan` shows in its own links' URIs. Users
/// keep RabbitMQ's salted hashes: those are what a restore needs, and no password.
/// Returns how many URIs were masked.
pub fn mask_secrets(defs: &mut Value) -> usize {
    let mut n = 0;
    for section in ["parameters", "global_parameters"] {
        if let Some(Value::Array(items)) = defs.get_mut(section) {
            for item in items {
                if let Some(v) = item.get_mut("value") {
                    n += mask_value(v);
                }
            }
        }
    }
    n
}

fn mask_value(v: &mut Value) -> usize {
    match v {
        Value::String(s) => match masked_uri(s) {
            Some(m) => {
                *s = m;
                1
            }
            None => 0,
        },
        Value::Array(a) => a.iter_mut().map(mask_value).sum(),
        Value::Object(o) => o.values_mut().map(mask_value).sum(),
        _ => 0,
    }
}

/// `s` with its password masked, when it is a URI that holds one. A string that
/// looks like a URI with credentials but does not parse is masked whole: no secret
/// may reach the file.
fn masked_uri(s: &str) -> Option<String> {
    match url::Url::parse(s) {
        Ok(mut u) => match u.password() {
            Some(p) if p != PASSWORD_MASK => {
                u.set_password(Some(PASSWORD_MASK)).ok()?;
                Some(u.to_string())
            }
            _ => None,
        },
        Err(_) if s.contains("://") && s.contains('@') => Some(PASSWORD_MASK.to_string()),
        Err(_) => None,
    }
}

/// Why `text` (a file's content) is not a definitions file, in words for an operator;
/// `Ok` with its definitions, masked.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Some(o) = v.as_object() else {
        return Err("not RabbitMQ definitions (the file is not a JSON object)".into());
    };
    if !["users", "vhosts", "queues", "exchanges"]
        .iter()
        .any(|k| o.get(*k).is_some_and(Value::is_array))
    {
        return Err(
            "not RabbitMQ definitions (it has none of the lists users, vhosts, queues, exchanges)"
                .into(),
        );
    }
    mask_secrets(&mut v);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_file_is_named_by_its_time_in_utc_and_read_back() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_420_117);
        let name = file_name(t);
        assert_eq!(name, "definitions-20261204-213517.json");
        assert_eq!(taken(&name).as_deref(), Some("2026-12-04 21:35:17 UTC"));
        assert_eq!(taken("mine.json"), None);
        assert_eq!(taken("definitions-2026-1204.json"), None);
    }

    #[test]
    fn every_uri_password_is_masked_and_nothing_else_changes() {
        let mut d = json!({
            "users": [{"name": "admin", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}],
            "parameters": [
                {"vhost": "/", "component": "shovel", "name": "warren-site1", "value": {
                    "src-uri": "amqp:///%2F",
                    "dest-uri": "amqp://warren-link-site1:s3cr%2Ft@10.0.0.10:5672/%2F",
                    "src-queue": "q", "ack-mode": "on-confirm", "reconnect-delay": 5}},
                {"vhost": "/", "component": "federation-upstream", "name": "up", "value": {
                    "uri": ["amqps://u:p4ss@a:5671/%2F?cacertfile=/etc/ca.pem&verify=verify_peer",
                            "amqp://nopassword@b"]}},
                {"vhost": "/", "component": "shovel", "name": "odd", "value": {
                    "dest-uri": "amqp://u:p@[bad"}}
            ],
            "global_parameters": [{"name": "cluster_name", "value": "rabbit@central"}]
        });
        let users_before = d["users"].clone();
        assert_eq!(mask_secrets(&mut d), 3);
        let p = &d["parameters"];
        assert_eq!(
            p[0]["value"]["dest-uri"],
            "amqp://warren-link-site1:********@10.0.0.10:5672/%2F"
        );
        assert_eq!(p[0]["value"]["src-uri"], "amqp:///%2F");
        assert_eq!(
            p[1]["value"]["uri"],
            json!([
                "amqps://u:********@a:5671/%2F?cacertfile=/etc/ca.pem&verify=verify_peer",
                "amqp://nopassword@b"
            ])
        );
        assert_eq!(p[2]["value"]["dest-uri"], PASSWORD_MASK);
        assert_eq!(
            d["users"], users_before,
            "hashes stay as RabbitMQ keeps them"
        );
        assert_eq!(d["global_parameters"][0]["value"], "rabbit@central");
        let text = d.to_string();
        for secret in ["s3cr", "p4ss", ":p@"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // Masking twice changes nothing more.
        assert_eq!(mask_secrets(&mut d), 0);
    }

    #[test]
    fn a_file_that_is_not_definitions_is_refused_in_words() {
        assert!(parse("{").unwrap_err().starts_with("not JSON ("));
        assert_eq!(
            parse("[1]").unwrap_err(),
            "not RabbitMQ definitions (the file is not a JSON object)"
        );
        assert!(parse(r#"{"name": "x"}"#)
            .unwrap_err()
            .contains("none of the lists users, vhosts, queues, exchanges"));
        let v = parse(r#"{"queues": [], "parameters": [{"value": {"uri": "amqp://u:pw@h"}}]}"#)
            .unwrap();
        assert_eq!(v["parameters"][0]["value"]["uri"], "amqp://u:********@h");
    }
}
