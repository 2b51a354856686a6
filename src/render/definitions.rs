//! The cluster's definitions (exchanges, queues, bindings, policies, users,
//! permissions) in RabbitMQ's own definitions format, from typed structs.
//!
//! Where each site queue's master lives cannot be said in this format: a definitions
//! import through one node would put every master there. warren declares each queue
//! through its own site's node instead; this file is the reference of what exists.

use crate::inventory::{
    link_name, link_user, Broker, Inventory, Link, Replication, Secret, Site, User,
};
use crate::util::regex_escape;
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
    /// Shovels and federation upstreams. Their URIs hold the link user's password,
    /// so a definitions file never holds them (`build` leaves them out).
    #[serde(skip)]
    pub parameters: Vec<ParameterDef>,
    /// The link users that live on this broker (their passwords are the sites'
    /// `link_password`), as (user, site index).
    #[serde(skip)]
    pub link_users: Vec<(String, usize)>,
}

/// The mask that stands for the link password in a parameter's URI: what `plan`
/// shows; `with_password` puts the real one in when the step runs.
pub const PASSWORD_MASK: &str = "********";

/// A runtime parameter: a dynamic shovel or a federation upstream.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ParameterDef {
    pub component: &'static str,
    pub vhost: String,
    pub name: String,
    /// The value, with `PASSWORD_MASK` in place of the link password.
    pub value: Map<String, Value>,
    /// The site whose link this is (its link password goes in the URI).
    #[serde(skip)]
    pub site: usize,
}

impl ParameterDef {
    /// The value with the link password in its URIs.
    pub fn with_password(&self, password: &str) -> Map<String, Value> {
        let enc = crate::rabbitmq::api::enc(password);
        self.value
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => {
                        Value::String(s.replace(&format!(":{PASSWORD_MASK}@"), &format!(":{enc}@")))
                    }
                    v => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    }
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

/// The policy that federates the exchange of the site on `host` into the cluster.
pub fn federation_policy_name(host: &str) -> String {
    format!("warren-federate-{host}")
}

/// The exchange `verify` federates from the site on `host` to prove its link.
pub fn verify_link_exchange(host: &str) -> String {
    format!("warren.verify.link.{host}")
}

/// The queue `verify` shovels from the site on `host` to the central host (the
/// same name on both) to prove its link.
pub fn verify_link_queue(host: &str) -> String {
    format!("warren.verify.link.{host}")
}

/// Seconds a shovel or federation link waits before it reconnects after a failure.
pub const LINK_RECONNECT_DELAY: u64 = 5;

/// The AMQP URI of host `to`'s broker, logged in as the link user of the site on
/// host `site`, for a link that runs on the other end (the site, or central); the
/// password is masked (`ParameterDef::with_password`). To a TLS host, when the end
/// that connects has its own certificate: AMQPS, the peer's certificate checked
/// against that end's CA for the peer's name, and that end's certificate presented.
/// A shovel's or upstream's value: `keys`, then what every link of warren's has (it
/// acknowledges a message once the other end confirmed it, and reconnects).
fn link_value<const N: usize>(keys: [(&str, Value); N]) -> Map<String, Value> {
    let mut value: Map<String, Value> = keys.into_iter().map(|(k, v)| (k.into(), v)).collect();
    value.insert("ack-mode".into(), json!("on-confirm"));
    value.insert("reconnect-delay".into(), json!(LINK_RECONNECT_DELAY));
    value
}

/// The port a link of the site on host `site` connects to on host `to`: AMQPS when
/// `to` listens with TLS and the connecting end has certificate files (as
/// `link_uri` builds it), plain AMQP otherwise.
pub fn link_port(inv: &Inventory, to: usize, site: usize) -> u16 {
    let from = if to == site {
        inv.central_index()
    } else {
        site
    };
    let h = &inv.hosts[to];
    match (h.tls.as_ref(), crate::render::tls_paths(&inv.hosts[from])) {
        (Some(_), Some(_)) => h.ports.amqps,
        _ => h.ports.amqp,
    }
}

fn link_uri(inv: &Inventory, to: usize, site: usize) -> String {
    let h = &inv.hosts[to];
    let from = if to == site {
        inv.central_index()
    } else {
        site
    };
    let user = crate::rabbitmq::api::enc(&link_user(&inv.hosts[site].name));
    let vhost = crate::rabbitmq::api::enc(&inv.cluster.vhost);
    match (h.tls.as_ref(), crate::render::tls_paths(&inv.hosts[from])) {
        (Some(_), Some(own)) => {
            // A query value keeps its slashes and colons (RFC 3986 allows them there,
            // and so RabbitMQ reads the path whether it decodes the value or not).
            let q = |p: &str| {
                crate::render::erl_path(p)
                    .replace('%', "%25")
                    .replace('&', "%26")
                    .replace('=', "%3D")
                    .replace('#', "%23")
                    .replace('+', "%2B")
                    .replace(' ', "%20")
            };
            format!(
                "amqps://{user}:{PASSWORD_MASK}@{}:{}/{vhost}?cacertfile={}&certfile={}&keyfile={}&verify=verify_peer&server_name_indication={}",
                h.address,
                h.ports.amqps,
                q(&own.ca),
                q(&own.cert),
                q(&own.key),
                h.name
            )
        }
        _ => format!(
            "amqp://{user}:{PASSWORD_MASK}@{}:{}/{vhost}",
            h.address, h.ports.amqp
        ),
    }
}

/// The local broker, through Erlang's direct connection (no network, no login).
fn local_uri(inv: &Inventory) -> String {
    format!("amqp:///{}", crate::rabbitmq::api::enc(&inv.cluster.vhost))
}

/// Builds the definitions. Reads the users' passwords (to hash them).
pub fn build(inv: &Inventory, cookie: &Secret<String>) -> Result<Definitions> {
    let mut d = build_without_passwords(inv);
    for u in &inv.users {
        d.users.push(user_def(inv, u, cookie)?);
    }
    Ok(d)
}

/// The cluster's definitions without the users (whose entries need their password
/// hashes).
pub fn build_without_passwords(inv: &Inventory) -> Definitions {
    for_broker(inv, Broker::Cluster)
}

/// What the inventory wants on broker `b`, without the users' entries (their
/// password hashes).
///
/// The cluster holds every member site's exchange, queue (with its master on the
/// site's node and its copies) and binding, and for each linked site a queue of the
/// same name on the central node; a federated site also gets its exchange there,
/// federated from the site's by an upstream and a policy. A linked site's own broker
/// holds its exchange, and for a shovel its queue and the shovel that empties it into
/// the central queue.
pub fn for_broker(inv: &Inventory, b: Broker) -> Definitions {
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
        parameters: Vec::new(),
        link_users: Vec::new(),
    };
    for u in inv.users_on(b) {
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
    let exchange = |s: &Site| ExchangeDef {
        name: s.exchange.clone(),
        vhost: vhost.clone(),
        kind: s.exchange_type.clone(),
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Map::new(),
    };
    let queue = |s: &Site, arguments| QueueDef {
        name: s.queue.clone(),
        vhost: vhost.clone(),
        durable: true,
        auto_delete: false,
        arguments,
    };
    let binding = |s: &Site| BindingDef {
        source: s.exchange.clone(),
        vhost: vhost.clone(),
        destination: s.queue.clone(),
        destination_type: "queue",
        routing_key: s.routing_key.clone(),
        arguments: Map::new(),
    };
    for (si, s) in inv.sites.iter().enumerate() {
        let host = &inv.hosts[s.host];
        match (b, s.link) {
            (Broker::Cluster, Link::Cluster) => {
                d.exchanges.push(exchange(s));
                let mut arguments = Map::new();
                if inv.cluster.replication == Replication::Quorum {
                    arguments.insert("x-queue-type".into(), json!("quorum"));
                    arguments.insert(
                        "x-quorum-initial-group-size".into(),
                        json!(1 + s.mirrors.len()),
                    );
                }
                d.queues.push(queue(s, arguments));
                d.bindings.push(binding(s));
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
            (Broker::Cluster, Link::Shovel) => {
                // The shovel's destination, and the user it logs in as: it may
                // publish to this one queue through the default exchange.
                d.queues.push(queue(s, Map::new()));
                let user = link_user(&host.name);
                d.permissions.push(PermissionDef {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    configure: format!(
                        "^({}|{})$",
                        regex_escape(&s.queue),
                        regex_escape(&verify_link_queue(&host.name))
                    ),
                    write: "^amq\\.default$".into(),
                    read: "^$".into(),
                });
                d.link_users.push((user, si));
            }
            (Broker::Cluster, Link::Federation) => {
                // The downstream: the site's exchange, federated from the site's
                // broker, bound to the site's queue here.
                d.exchanges.push(exchange(s));
                d.queues.push(queue(s, Map::new()));
                d.bindings.push(binding(s));
                let mut value = link_value([("uri", json!(link_uri(inv, s.host, s.host)))]);
                // A link that stops cleanly (central's node stopping) deletes its
                // queue and exchange on the site by default, and with them whatever
                // the queue held; the site's exchange then routes nothing until the
                // link is back. Kept, they buffer the site's messages through
                // central's restarts; warren removes them itself when the link goes.
                value.insert("resource-cleanup-mode".into(), json!("never"));
                d.parameters.push(ParameterDef {
                    component: "federation-upstream",
                    vhost: vhost.clone(),
                    name: link_name(&host.name),
                    value,
                    site: si,
                });
                let mut definition = Map::new();
                definition.insert("federation-upstream".into(), json!(link_name(&host.name)));
                d.policies.push(PolicyDef {
                    vhost: vhost.clone(),
                    name: federation_policy_name(&host.name),
                    pattern: format!("^{}$", regex_escape(&s.exchange)),
                    apply_to: "exchanges",
                    definition,
                    priority: 10,
                });
            }
            (Broker::Site(i), _) if i != si => {}
            (Broker::Site(_), Link::Cluster) => {}
            (Broker::Site(_), Link::Shovel) => {
                d.exchanges.push(exchange(s));
                d.queues.push(queue(s, Map::new()));
                d.bindings.push(binding(s));
                let value = link_value([
                    ("src-uri", json!(local_uri(inv))),
                    ("src-queue", json!(s.queue)),
                    (
                        "dest-uri",
                        json!(link_uri(inv, inv.central_index(), s.host)),
                    ),
                    ("dest-queue", json!(s.queue)),
                ]);
                d.parameters.push(ParameterDef {
                    component: "shovel",
                    vhost: vhost.clone(),
                    name: link_name(&host.name),
                    value,
                    site: si,
                });
            }
            (Broker::Site(_), Link::Federation) => {
                // The upstream: the exchange producers publish to, and the user the
                // central node's federation link logs in as. The link declares its
                // own exchange and queue here (`federation: ...`), binds them to the
                // site's exchange and consumes from the queue.
                d.exchanges.push(exchange(s));
                let user = link_user(&host.name);
                d.permissions.push(PermissionDef {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    configure: "^federation: ".into(),
                    write: "^federation: ".into(),
                    read: format!(
                        "^({}|{}|federation: .*)$",
                        regex_escape(&s.exchange),
                        regex_escape(&verify_link_exchange(&host.name))
                    ),
                });
                d.link_users.push((user, si));
            }
        }
    }
    d
}

/// The definitions as pretty JSON with a final newline.
pub fn render(inv: &Inventory, cookie: &Secret<String>) -> Result<String> {
    let mut s = serde_json::to_string_pretty(&build(inv, cookie)?)?;
    s.push('\n');
    Ok(s)
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ++ sha256(salt ++ password)).
/// RabbitMQ draws the 4-byte salt at random; warren derives it instead, so that the same
/// inventory and secrets render the same definitions.json byte for byte (a rendered tree
/// kept in git changes only when something really changed). The salt is the start of
/// HMAC-SHA-256 keyed with the cluster's cookie over the cluster's and the user's names:
/// unique per cluster and per user, and unknown to anyone without the cookie. A hash is
/// still compared by checking the password against it
/// (`plan::cluster::password_matches`), never by deriving it again.
fn user_def(inv: &Inventory, u: &User, cookie: &Secret<String>) -> Result<UserDef> {
    let password = u.password.read().map_err(|e| {
        anyhow::anyhow!("{}: users ({}): password: {e}", inv.path.display(), u.name)
    })?;
    let pw = password.expose().as_bytes();
    let salt = password_salt(cookie, &inv.cluster.name, &u.name);
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

/// The 4-byte salt of `user`'s password hash in `cluster`: see `user_def`.
fn password_salt(cookie: &Secret<String>, cluster: &str, user: &str) -> [u8; 4] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(cookie.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"warren password salt\0");
    mac.update(cluster.as_bytes());
    mac.update(b"\0");
    mac.update(user.as_bytes());
    let tag = mac.finalize().into_bytes();
    [tag[0], tag[1], tag[2], tag[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link to a TLS host speaks AMQPS, checking that host's certificate for its
    /// name against the connecting end's CA and presenting that end's certificate;
    /// to a host without TLS, plain AMQP.
    #[test]
    fn links_to_tls_hosts_use_amqps_with_the_connecting_ends_files() {
        let text = r#"
[cluster]
name = "t"
cookie = { env = "C" }

[[hosts]]
name = "central"
address = "10.0.0.10"
os = "linux"
role = "central"
tls = { ca = "ca.pem", cert = "central.pem", key = "central.key" }

[[hosts]]
name = "a"
address = "10.0.0.11"
os = "windows"
password = { env = "P" }
role = "site"
tls = { ca = "ca.pem", cert = "a.pem", key = "a.key" }

[[hosts]]
name = "b"
address = "10.0.0.12"
os = "linux"
role = "site"

[[sites]]
host = "a"
exchange = "site.a"
queue = "site.a.data"
link = "shovel"
link_password = { env = "L" }

[[sites]]
host = "b"
exchange = "site.b"
queue = "site.b.data"
link = "federation"
link_password = { env = "L" }
"#;
        let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml")).unwrap();
        let shovel = for_broker(&inv, Broker::Site(0));
        assert_eq!(
            shovel.parameters[0].value["dest-uri"],
            "amqps://warren-link-a:********@10.0.0.10:5671/%2F?cacertfile=C:/ProgramData/RabbitMQ/tls-ca.pem&certfile=C:/ProgramData/RabbitMQ/tls-cert.pem&keyfile=C:/ProgramData/RabbitMQ/tls-key.pem&verify=verify_peer&server_name_indication=central"
        );
        let cluster = for_broker(&inv, Broker::Cluster);
        let upstream = cluster
            .parameters
            .iter()
            .find(|p| p.component == "federation-upstream")
            .unwrap();
        assert_eq!(
            upstream.value["uri"],
            "amqp://warren-link-b:********@10.0.0.12:5672/%2F"
        );
        // The port apply names when a link does not run is the one the URI holds.
        assert_eq!(link_port(&inv, 0, 1), 5671);
        assert_eq!(link_port(&inv, 2, 2), 5672);
        // central's upstream has a certificate of its own, b listens plain
        // (and a federation link from central to `a` would speak AMQPS).
        assert_eq!(link_port(&inv, 1, 1), 5671);
        assert_eq!(
            upstream.value["resource-cleanup-mode"], "never",
            "the site keeps the link's queue through central's restarts"
        );
    }
}
