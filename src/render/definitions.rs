//! The cluster's definitions (exchanges, queues, bindings, policies, users,
//! permissions) in RabbitMQ's own definitions format, from typed structs.
//!
//! Where each site queue's master lives cannot be said in this format: a definitions
//! import through one node would put every master there. warren declares each queue
//! through its own site's node instead; this file is the reference of what exists.

use crate::inventory::{Inventory, Replication, Site, User};
use anyhow::Result;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

#[derive(Serialize)]
pub struct Definitions {
    pub users: Vec<UserDef>,
    pub vhosts: Vec<VhostDef>,
    pub permissions: Vec<PermissionDef>,
    pub policies: Vec<PolicyDef>,
    pub queues: Vec<QueueDef>,
    pub exchanges: Vec<ExchangeDef>,
    pub bindings: Vec<BindingDef>,
}

#[derive(Serialize)]
pub struct UserDef {
    pub name: String,
    pub password_hash: String,
    pub hashing_algorithm: &'static str,
    pub tags: Vec<String>,
}

#[derive(Serialize)]
pub struct VhostDef {
    pub name: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to")]
    pub apply_to: &'static str,
    pub definition: Map<String, Value>,
    pub priority: i64,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct QueueDef {
    pub name: String,
    pub vhost: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: Map<String, Value>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ExchangeDef {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Map<String, Value>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct BindingDef {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: &'static str,
    pub routing_key: String,
    pub arguments: Map<String, Value>,
}

/// The name of the mirroring policy of the site on `host`.
/// The classic-mirroring policy definition for a site's queue, and for warren's own
/// queues beside it (verify's message path, the drill): a copy on the site's node and
/// on each of its mirror hosts, synchronised automatically.
pub fn mirror_definition(inv: &Inventory, s: &Site) -> Map<String, Value> {
    let mut nodes = vec![json!(inv.hosts[s.host].node_name())];
    nodes.extend(inv.copy_nodes(s).into_iter().map(Value::String));
    let mut definition = Map::new();
    definition.insert("ha-mode".into(), json!("nodes"));
    definition.insert("ha-params".into(), Value::Array(nodes));
    definition.insert("ha-sync-mode".into(), json!("automatic"));
    definition
}

pub fn policy_name(host: &str) -> String {
    format!("warren-mirror-{host}")
}

/// Builds the definitions. Reads the users' passwords (to hash them).
pub fn build(inv: &Inventory) -> Result<Definitions> {
    let mut d = build_without_passwords(inv);
    for u in &inv.users {
        d.users.push(user_def(inv, u)?);
    }
    Ok(d)
}

/// Everything but the users (whose entries need their password hashes).
pub fn build_without_passwords(inv: &Inventory) -> Definitions {
    let vhost = inv.cluster.vhost.clone();
    let mut d = Definitions {
        users: Vec::new(),
        vhosts: vec![VhostDef {
            name: vhost.clone(),
        }],
        permissions: Vec::new(),
        policies: Vec::new(),
        queues: Vec::new(),
        exchanges: Vec::new(),
        bindings: Vec::new(),
    };
    for u in &inv.users {
        for p in &u.permissions {
            d.permissions.push(PermissionDef {
                user: u.name.clone(),
                vhost: p.vhost.clone(),
                configure: p.configure.clone(),
                write: p.write.clone(),
                read: p.read.clone(),
            });
        }
    }
    for s in &inv.sites {
        let host = &inv.hosts[s.host];
        d.exchanges.push(ExchangeDef {
            name: s.exchange.clone(),
            vhost: vhost.clone(),
            kind: s.exchange_type.clone(),
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: Map::new(),
        });
        let mut arguments = Map::new();
        if inv.cluster.replication == Replication::Quorum {
            arguments.insert("x-queue-type".into(), json!("quorum"));
            arguments.insert(
                "x-quorum-initial-group-size".into(),
                json!(1 + s.mirrors.len()),
            );
        }
        d.queues.push(QueueDef {
            name: s.queue.clone(),
            vhost: vhost.clone(),
            durable: true,
            auto_delete: false,
            arguments,
        });
        d.bindings.push(BindingDef {
            source: s.exchange.clone(),
            vhost: vhost.clone(),
            destination: s.queue.clone(),
            destination_type: "queue",
            routing_key: s.routing_key.clone(),
            arguments: Map::new(),
        });
        if inv.cluster.replication == Replication::Mirrored {
            let definition = mirror_definition(inv, s);
            d.policies.push(PolicyDef {
                vhost: vhost.clone(),
                name: policy_name(&host.name),
                pattern: format!("^{}$", regex_escape(&s.queue)),
                apply_to: "queues",
                definition,
                priority: 10,
            });
        }
    }
    d
}

/// The definitions as pretty JSON with a final newline.
pub fn render(inv: &Inventory) -> Result<String> {
    let mut s = serde_json::to_string_pretty(&build(inv)?)?;
    s.push('\n');
    Ok(s)
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ++ sha256(salt ++ password)),
/// with a 4-byte salt drawn at random, as RabbitMQ itself does: the same password never
/// gives the same hash twice. A hash is compared by checking the password against it
/// (`plan::cluster::password_matches`), never by deriving it again.
fn user_def(inv: &Inventory, u: &User) -> Result<UserDef> {
    use rand::RngCore;
    let password = u.password.read().map_err(|e| {
        anyhow::anyhow!("{}: users ({}): password: {e}", inv.path.display(), u.name)
    })?;
    let pw = password.expose().as_bytes();
    let mut salt = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = &salt[..];
    let hash = Sha256::new().chain_update(salt).chain_update(pw).finalize();
    let mut salted = salt.to_vec();
    salted.extend_from_slice(&hash);
    Ok(UserDef {
        name: u.name.clone(),
        password_hash: base64::engine::general_purpose::STANDARD.encode(salted),
        hashing_algorithm: "rabbit_password_hashing_sha256",
        tags: u.tags.clone(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_escape_quotes_metacharacters() {
        assert_eq!(regex_escape("site.win1"), r"site\.win1");
        assert_eq!(regex_escape("a(b)*"), r"a\(b\)\*");
    }
}
