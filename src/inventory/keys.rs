//! Every key the inventory knows, table by table, so that `check` reports every
//! unknown key at once, each with its line, alongside every other problem, instead
//! of stopping at the first one serde meets.

use super::Problem;

const TOP: &[&str] = &["cluster", "hosts", "sites", "users", "load_balancer"];
const BALANCER: &[&str] = &["host", "ports"];
const BALANCER_PORTS: &[&str] = &["amqp", "mqtt", "management", "stats"];
const CLUSTER: &[&str] = &[
    "name",
    "cookie",
    "replication",
    "partition_handling",
    "net_ticktime",
    "plugins",
    "prometheus",
    "join",
    "config_format",
    "hosts_file",
    "vhost",
    "ports",
    "rabbitmq_version",
    "erlang_version",
    "rabbitmq_package",
    "erlang_package",
    "rabbitmq_installer",
    "erlang_installer",
];
const PORTS: &[&str] = &[
    "amqp",
    "management",
    "mqtt",
    "dist",
    "amqps",
    "management_tls",
    "mqtts",
    "prometheus",
    "prometheus_tls",
];
const SECRET: &[&str] = &["file", "env"];
const HOST: &[&str] = &[
    "name",
    "address",
    "os",
    "transport",
    "port",
    "user",
    "key",
    "password",
    "known_hosts",
    "role",
    "node_type",
    "service",
    "ports",
    "paths",
    "winrm",
    "tls",
    "rabbitmq_version",
    "erlang_version",
    "rabbitmq_package",
    "erlang_package",
    "rabbitmq_installer",
    "erlang_installer",
];
const TLS: &[&str] = &["ca", "cert", "key", "keep_plain"];
const WINRM: &[&str] = &["scheme", "auth", "ca_file", "insecure_skip_verify"];
const SITE: &[&str] = &[
    "host",
    "exchange",
    "queue",
    "exchange_type",
    "routing_key",
    "mirrors",
    "link",
    "link_password",
];
const USER: &[&str] = &["name", "password", "tags", "permissions", "site"];
const PERMISSION: &[&str] = &["vhost", "configure", "write", "read"];

/// Removes every unknown key from `value` (the whole inventory) and returns one
/// problem per key, with its line in `text` where it can be found.
pub fn strip_unknown(value: &mut toml::Value, text: &str) -> Vec<Problem> {
    let mut found = Vec::new();
    let mut at = |v: &mut toml::Value, path: &str, known: &[&str], what: &str| {
        let Some(t) = v.as_table_mut() else { return };
        let unknown: Vec<String> = t
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            t.remove(&k);
            let key = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            found.push(Problem {
                key,
                message: format!(
                    "unknown key{}; {what} takes {}: fix the spelling or remove it",
                    line_of_key(text, &k)
                        .map(|l| format!(" (line {l})"))
                        .unwrap_or_default(),
                    known.join(", ")
                ),
            });
        }
    };
    at(value, "", TOP, "the inventory");
    let Some(top) = value.as_table_mut() else {
        return found;
    };
    if let Some(c) = top.get_mut("cluster") {
        at(c, "cluster", CLUSTER, "[cluster]");
        if let Some(x) = c.get_mut("cookie") {
            at(x, "cluster.cookie", SECRET, "a secret reference");
        }
        if let Some(x) = c.get_mut("ports") {
            at(x, "cluster.ports", PORTS, "ports");
        }
    }
    if let Some(b) = top.get_mut("load_balancer") {
        at(b, "load_balancer", BALANCER, "[load_balancer]");
        if let Some(x) = b.get_mut("ports") {
            at(
                x,
                "load_balancer.ports",
                BALANCER_PORTS,
                "load_balancer.ports",
            );
        }
    }
    let mut each = |name: &str, f: &mut dyn FnMut(&mut toml::Value, String)| {
        if let Some(list) = top.get_mut(name).and_then(|v| v.as_array_mut()) {
            for (i, item) in list.iter_mut().enumerate() {
                f(item, format!("{name}[{i}]"));
            }
        }
    };
    each("hosts", &mut |h, p| {
        at(h, &p, HOST, "a host");
        for (sub, keys, what) in [
            ("ports", PORTS, "ports"),
            ("password", SECRET, "a secret reference"),
            ("winrm", WINRM, "winrm"),
            ("tls", TLS, "tls"),
        ] {
            if let Some(x) = h.get_mut(sub) {
                at(x, &format!("{p}.{sub}"), keys, what);
            }
        }
    });
    each("sites", &mut |s, p| {
        at(s, &p, SITE, "a site");
        if let Some(x) = s.get_mut("link_password") {
            at(
                x,
                &format!("{p}.link_password"),
                SECRET,
                "a secret reference",
            );
        }
    });
    each("users", &mut |u, p| {
        at(u, &p, USER, "a user");
        if let Some(x) = u.get_mut("password") {
            at(x, &format!("{p}.password"), SECRET, "a secret reference");
        }
        if let Some(list) = u.get_mut("permissions").and_then(|v| v.as_array_mut()) {
            for (j, perm) in list.iter_mut().enumerate() {
                at(
                    perm,
                    &format!("{p}.permissions[{j}]"),
                    PERMISSION,
                    "a permission",
                );
            }
        }
    });
    found
}

/// The first line (from 1) where `key` is assigned, as `key =` or inside `{ key = }`.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.split('#').next().unwrap_or("");
            l.trim_start().starts_with(&format!("{key} "))
                || l.trim_start().starts_with(&format!("{key}="))
                || l.contains(&format!("{{ {key} "))
                || l.contains(&format!(", {key} "))
                || l.contains(&format!("{{{key}="))
        })
        .map(|i| i + 1)
}
