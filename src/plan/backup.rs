//! Definitions backups: the file name `warren backup` writes, the masking that keeps
//! link passwords out of it, and the live cluster compared with one (`plan --backup`):
//! what it lacks, has in addition or has changed since. No I/O. The file itself (its
//! name, the masking, reading it back) is `file.rs`.

mod file;

pub use file::{file_name, mask_secrets, parse, taken};

use crate::inventory::{Broker, Inventory};
use crate::render::definitions;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The kinds of definitions compared, in the order the comparison lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Vhost,
    User,
    Permission,
    Policy,
    Exchange,
    Queue,
    Binding,
    Parameter,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Vhost,
        Kind::User,
        Kind::Permission,
        Kind::Policy,
        Kind::Exchange,
        Kind::Queue,
        Kind::Binding,
        Kind::Parameter,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Vhost => "vhost",
            Kind::User => "user",
            Kind::Permission => "permission",
            Kind::Policy => "policy",
            Kind::Exchange => "exchange",
            Kind::Queue => "queue",
            Kind::Binding => "binding",
            Kind::Parameter => "parameter",
        }
    }

    /// The list RabbitMQ's definitions format keeps this kind in.
    fn section(self) -> &'static str {
        match self {
            Kind::Vhost => "vhosts",
            Kind::User => "users",
            Kind::Permission => "permissions",
            Kind::Policy => "policies",
            Kind::Exchange => "exchanges",
            Kind::Queue => "queues",
            Kind::Binding => "bindings",
            Kind::Parameter => "parameters",
        }
    }
}

/// How the cluster differs from the backup for one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// In the backup, not in the cluster now.
    Missing,
    /// In the cluster now, not in the backup.
    Added,
    /// In both, with different properties.
    Changed,
}

impl Change {
    pub fn symbol(self) -> &'static str {
        match self {
            Change::Missing => "-",
            Change::Added => "+",
            Change::Changed => "~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Difference {
    pub kind: Kind,
    pub name: String,
    pub change: Change,
    /// The definition as the backup (missing) or the cluster (added) holds it, or
    /// each changed property as `backup -> now`.
    pub detail: String,
    /// The inventory declares it: `warren apply` puts it back as the inventory has it.
    pub inventory: bool,
}

/// The live cluster's definitions compared with a backup.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The backup file, as the operator named it.
    pub file: String,
    /// When it was taken, from its name.
    pub taken: Option<String>,
    /// The RabbitMQ version that exported it.
    pub version: Option<String>,
    pub differences: Vec<Difference>,
    /// Definitions the same in both.
    pub same: usize,
    /// The central node's management API, as an operator's machine reaches it.
    pub api: String,
}

impl Comparison {
    pub fn differs(&self) -> bool {
        !self.differences.is_empty()
    }

    pub fn count(&self, c: Change) -> usize {
        self.differences.iter().filter(|d| d.change == c).count()
    }
}

/// One definition: what identifies it, how it is named, what is compared.
struct Entry {
    key: String,
    name: String,
    props: Vec<(&'static str, Value)>,
    /// A user's password hash (with its algorithm): compared, never shown.
    hash: Option<String>,
}

/// JSON with object keys sorted, so that two equal values give the same text.
fn canonical(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let sorted: BTreeMap<&String, Value> =
                    o.iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            v => v.clone(),
        }
    }
    sort(v).to_string()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        v => canonical(v),
    }
}

/// The definitions of `kind` in `defs`, by key; `vhost` is the inventory's (other
/// vhosts are named with theirs).
fn entries(kind: Kind, defs: &Value, vhost: &str) -> BTreeMap<String, Entry> {
    let empty = Vec::new();
    let items = defs
        .get(kind.section())
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut out = BTreeMap::new();
    for item in items {
        let s = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let v = |k: &str| item.get(k).cloned().unwrap_or(Value::Null);
        let args = || match item.get("arguments") {
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => Value::Object(Map::new()),
        };
        let in_vhost = |name: String| {
            let vh = s("vhost");
            if vh == vhost {
                name
            } else {
                format!("{name} (vhost {vh})")
            }
        };
        let e = match kind {
            Kind::Vhost => Entry {
                key: s("name"),
                name: s("name"),
                props: Vec::new(),
                hash: None,
            },
            Kind::User => {
                // Tags read as the API's users are: a list (3.10) or a comma-separated
                // string (older versions).
                let mut tags =
                    serde_json::from_value::<crate::rabbitmq::api::UserInfo>(item.clone())
                        .map(|u| u.tags)
                        .unwrap_or_default();
                tags.sort();
                let tags = if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(",")
                };
                Entry {
                    key: s("name"),
                    name: s("name"),
                    props: vec![("tags", Value::String(tags))],
                    hash: Some(format!("{}:{}", s("hashing_algorithm"), s("password_hash"))),
                }
            }
            Kind::Permission => Entry {
                key: format!("{}\0{}", s("user"), s("vhost")),
                name: format!("{} on {}", s("user"), s("vhost")),
                props: vec![
                    ("configure", v("configure")),
                    ("write", v("write")),
                    ("read", v("read")),
                ],
                hash: None,
            },
            Kind::Policy => Entry {
                key: format!("{}\0{}", s("vhost"), s("name")),
                name: in_vhost(s("name")),
                props: vec![
                    ("pattern", v("pattern")),
                    ("apply-to", v("apply-to")),
                    ("priority", v("priority")),
                    ("definition", v("definition")),
                ],
                hash: None,
            },
            Kind::Exchange => Entry {
                key: format!("{}\0{}", s("vhost"), s("name")),
                name: in_vhost(s("name")),
                props: vec![
                    ("type", v("type")),
                    ("durable", v("durable")),
                    ("auto_delete", v("auto_delete")),
                    ("internal", v("internal")),
                    ("arguments", args()),
                ],
                hash: None,
            },
            Kind::Queue => {
                // 3.10 names a queue's type in its arguments; later versions also
                // beside them.
                let kind = item
                    .get("type")
                    .or_else(|| item.get("arguments").and_then(|a| a.get("x-queue-type")))
                    .and_then(Value::as_str)
                    .unwrap_or("classic");
                Entry {
                    key: format!("{}\0{}", s("vhost"), s("name")),
                    name: in_vhost(s("name")),
                    props: vec![
                        ("type", Value::String(kind.to_string())),
                        ("durable", v("durable")),
                        ("auto_delete", v("auto_delete")),
                        ("arguments", args()),
                    ],
                    hash: None,
                }
            }
            Kind::Binding => {
                let dest = match s("destination_type").as_str() {
                    "queue" => s("destination"),
                    t => format!("{t} {}", s("destination")),
                };
                // A binding is all its fields: it is there or not, never changed.
                Entry {
                    key: format!(
                        "{}\0{}\0{}\0{}\0{}\0{}",
                        s("vhost"),
                        s("source"),
                        s("destination_type"),
                        s("destination"),
                        s("routing_key"),
                        canonical(&args())
                    ),
                    name: in_vhost(format!("{} -> {dest}", s("source"))),
                    props: vec![("routing key", v("routing_key")), ("arguments", args())],
                    hash: None,
                }
            }
            Kind::Parameter => Entry {
                key: format!("{}\0{}\0{}", s("vhost"), s("component"), s("name")),
                name: in_vhost(format!("{} {}", s("component"), s("name"))),
                props: vec![("value", v("value"))],
                hash: None,
            },
        };
        out.insert(e.key.clone(), e);
    }
    out
}

/// How an entry reads on its own: its properties, empty arguments left out.
fn describe(e: &Entry) -> String {
    e.props
        .iter()
        .filter(|(k, v)| !(*k == "arguments" && v.as_object().is_some_and(Map::is_empty)))
        .map(|(k, v)| format!("{k} {}", text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The (kind, key) of every definition the inventory declares on the cluster.
fn inventory_keys(inv: &Inventory) -> BTreeSet<(Kind, String)> {
    let d = definitions::build_without_passwords(inv);
    let mut as_value = serde_json::to_value(&d).unwrap_or(Value::Null);
    let users: Vec<Value> = inv
        .users_on(Broker::Cluster)
        .map(|u| u.name.clone())
        .chain(d.link_users.iter().map(|(u, _)| u.clone()))
        .map(|name| serde_json::json!({ "name": name }))
        .collect();
    let parameters: Vec<Value> = d
        .parameters
        .iter()
        .map(|p| serde_json::json!({"vhost": p.vhost, "component": p.component, "name": p.name}))
        .collect();
    if let Value::Object(o) = &mut as_value {
        o.insert("users".into(), Value::Array(users));
        o.insert("parameters".into(), Value::Array(parameters));
    }
    Kind::ALL
        .iter()
        .flat_map(|&k| {
            entries(k, &as_value, &inv.cluster.vhost)
                .into_keys()
                .map(move |key| (k, key))
        })
        .collect()
}

/// The cluster's definitions now (`live`) against the backup's (`backup`, from
/// `file`), both masked as `warren backup` writes them.
pub fn compare(inv: &Inventory, file: &str, backup: &Value, live: &Value) -> Comparison {
    let vhost = &inv.cluster.vhost;
    let declared = inventory_keys(inv);
    let mut differences = Vec::new();
    let mut same = 0;
    for kind in Kind::ALL {
        let was = entries(kind, backup, vhost);
        let now = entries(kind, live, vhost);
        let inventory = |key: &str| declared.contains(&(kind, key.to_string()));
        for (key, b) in &was {
            let Some(n) = now.get(key) else {
                differences.push(Difference {
                    kind,
                    name: b.name.clone(),
                    change: Change::Missing,
                    detail: describe(b),
                    inventory: inventory(key),
                });
                continue;
            };
            let mut what: Vec<String> = b
                .props
                .iter()
                .zip(&n.props)
                .filter(|((_, x), (_, y))| x != y)
                .map(|((k, x), (_, y))| format!("{k} {} -> {}", text(x), text(y)))
                .collect();
            if b.hash != n.hash {
                what.push("password hash differs (its password was changed)".into());
            }
            if !what.is_empty() && matches!(kind, Kind::Queue | Kind::Exchange) {
                what.push(
                    "RabbitMQ changes no queue or exchange in place: an import cannot restore it unless it is deleted first (a queue with its messages)"
                        .into(),
                );
            }
            if what.is_empty() {
                same += 1;
            } else {
                differences.push(Difference {
                    kind,
                    name: b.name.clone(),
                    change: Change::Changed,
                    detail: what.join("; "),
                    inventory: inventory(key),
                });
            }
        }
        for (key, n) in now.iter().filter(|(k, _)| !was.contains_key(*k)) {
            differences.push(Difference {
                kind,
                name: n.name.clone(),
                change: Change::Added,
                detail: describe(n),
                inventory: inventory(key),
            });
        }
    }
    let name = std::path::Path::new(file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Comparison {
        file: file.to_string(),
        taken: taken(&name),
        version: ["rabbitmq_version", "rabbit_version"]
            .iter()
            .find_map(|k| backup.get(*k).and_then(Value::as_str))
            .map(str::to_string),
        differences,
        same,
        api: {
            let h = &inv.hosts[inv.central_index()];
            match &h.tls {
                Some(_) => format!("https://{}:{}", h.address, h.ports.management_tls),
                None => format!("http://{}:{}", h.address, h.ports.management),
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// warren's own link URIs, read live and masked, are the URIs `plan` shows.
    #[test]
    fn a_masked_live_link_uri_is_the_one_warren_renders() {
        let inv = linked_inventory();
        let cluster = definitions::for_broker(&inv, Broker::Cluster);
        let rendered = cluster.parameters[0].value["uri"].as_str().unwrap();
        let live = cluster.parameters[0].with_password("pa:ss/w@rd");
        let mut v = json!({"parameters": [{"value": Value::Object(live)}]});
        mask_secrets(&mut v);
        assert_eq!(v["parameters"][0]["value"]["uri"], rendered);
    }

    fn linked_inventory() -> Inventory {
        let text = r#"
[cluster]
name = "t"
cookie = { env = "C" }

[[hosts]]
name = "central"
address = "10.0.0.10"
os = "linux"
role = "central"

[[hosts]]
name = "a"
address = "10.0.0.11"
os = "linux"
role = "site"

[[hosts]]
name = "b"
address = "10.0.0.12"
os = "linux"
role = "site"

[[sites]]
host = "a"
exchange = "site.a"
queue = "site.a.data"

[[sites]]
host = "b"
exchange = "site.b"
queue = "site.b.data"
link = "federation"
link_password = { env = "L" }

[[users]]
name = "admin"
password = { env = "A" }
tags = ["administrator"]
permissions = [{ configure = ".*", write = ".*", read = ".*" }]
"#;
        crate::inventory::parse(text, std::path::Path::new("inv.toml")).unwrap()
    }

    /// A 3.10.8 export of the inventory above, as `GET /api/definitions` gives it.
    fn backup() -> Value {
        json!({
            "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
            "product_name": "RabbitMQ", "product_version": "3.10.8",
            "users": [
                {"name": "admin", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                 "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"], "limits": {}},
                {"name": "reporting", "password_hash": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                 "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"], "limits": {}}
            ],
            "vhosts": [{"name": "/", "limits": [], "metadata": {"description": "", "tags": []}}],
            "permissions": [
                {"user": "admin", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
                {"user": "reporting", "vhost": "/", "configure": "^$", "write": "^$", "read": "^report\\."}
            ],
            "topic_permissions": [],
            "parameters": [
                {"value": {"ack-mode": "on-confirm", "reconnect-delay": 5, "resource-cleanup-mode": "never",
                           "uri": "amqp://warren-link-b:********@10.0.0.12:5672/%2F"},
                 "vhost": "/", "component": "federation-upstream", "name": "warren-b"}
            ],
            "global_parameters": [{"name": "cluster_name", "value": "t"}],
            "policies": [
                {"vhost": "/", "name": "warren-mirror-a", "pattern": "^site\\.a\\.data$", "apply-to": "queues",
                 "definition": {"ha-mode": "nodes", "ha-params": ["rabbit@a", "rabbit@central"], "ha-sync-mode": "automatic"},
                 "priority": 10},
                {"vhost": "/", "name": "warren-federate-b", "pattern": "^site\\.b$", "apply-to": "exchanges",
                 "definition": {"federation-upstream": "warren-b"}, "priority": 10}
            ],
            "queues": [
                {"name": "site.a.data", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}},
                {"name": "site.b.data", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}},
                {"name": "report.daily", "vhost": "/", "durable": true, "auto_delete": false,
                 "arguments": {"x-queue-type": "quorum", "x-max-length": 1000}}
            ],
            "exchanges": [
                {"name": "site.a", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {}},
                {"name": "site.b", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}
            ],
            "bindings": [
                {"source": "site.a", "vhost": "/", "destination": "site.a.data", "destination_type": "queue", "routing_key": "#", "arguments": {}},
                {"source": "site.b", "vhost": "/", "destination": "site.b.data", "destination_type": "queue", "routing_key": "#", "arguments": {}},
                {"source": "site.a", "vhost": "/", "destination": "report.daily", "destination_type": "queue", "routing_key": "report.#", "arguments": {}}
            ]
        })
    }

    #[test]
    fn the_same_definitions_differ_in_nothing_whatever_their_key_order() {
        let inv = linked_inventory();
        let b = backup();
        // RabbitMQ may list keys and entries in another order: not a difference.
        let mut live = b.clone();
        live["queues"].as_array_mut().unwrap().reverse();
        let args = &mut live["queues"][0]["arguments"];
        *args = json!({"x-max-length": 1000, "x-queue-type": "quorum"});
        // Tags as versions before 3.9 export them.
        live["users"][0]["tags"] = json!("administrator");
        let c = compare(&inv, "backups/definitions-20261204-213517.json", &b, &live);
        assert!(!c.differs(), "{:?}", c.differences);
        assert_eq!(c.same, 16);
        assert_eq!(c.taken.as_deref(), Some("2026-12-04 21:35:17 UTC"));
        assert_eq!(c.version.as_deref(), Some("3.10.8"));
    }

    /// The cluster after a few mistakes: a site queue and a backend queue deleted, a
    /// user's password and tags changed, a policy edited, a queue declared with other
    /// arguments, and things added by hand.
    #[test]
    fn what_the_cluster_lacks_has_more_of_or_changed_is_listed_by_kind() {
        let inv = linked_inventory();
        let b = backup();
        let mut live = b.clone();
        let queues = live["queues"].as_array_mut().unwrap();
        queues.retain(|q| q["name"] != "site.a.data");
        queues[1]["arguments"]["x-max-length"] = json!(10);
        queues.push(json!({"name": "scratch", "vhost": "/", "durable": false, "auto_delete": true, "arguments": {}}));
        live["bindings"]
            .as_array_mut()
            .unwrap()
            .retain(|b| b["destination"] != "site.a.data");
        live["users"][1]["password_hash"] =
            json!("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB");
        live["users"][1]["tags"] = json!(["monitoring", "management"]);
        live["policies"][0]["definition"]["ha-sync-mode"] = json!("manual");
        live["permissions"].as_array_mut().unwrap().push(json!(
            {"user": "admin", "vhost": "other", "configure": ".*", "write": ".*", "read": ".*"}
        ));
        live["vhosts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "other"}));
        let c = compare(&inv, "backups/definitions-20261204-213517.json", &b, &live);
        let text = crate::plan::view::backup_text(&c);
        assert!(!text.contains("BBBB") && !text.contains("AAAA"), "{text}");
        insta::assert_snapshot!("backup_differences", text);
    }
}
