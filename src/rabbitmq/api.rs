//! RabbitMQ's management HTTP API, reached through a host's transport (an SSH
//! direct-tcpip channel to 127.0.0.1:PORT on the host): typed reads of what warren
//! manages, and the writes the executor makes.

use crate::platform::{Probe, Transport};
use crate::transport::HttpResponse;
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Credentials for the API: the inventory's administrator, or `guest`, which RabbitMQ
/// accepts only from localhost, which is where the tunnelled requests come from.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: crate::inventory::Secret<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / (sensitive value)", self.user)
    }
}

/// The first of `creds` the API on `port` accepts; `Ok(None)` when it refuses them
/// all, `Err` when nothing answers there.
pub fn accepted(
    p: &mut dyn Probe,
    port: u16,
    creds: &[Credentials],
) -> crate::transport::Result<Option<Credentials>> {
    for c in creds {
        let r = p.get(port, "/api/overview", Some((&c.user, c.password.expose())))?;
        if r.status == 200 {
            return Ok(Some(c.clone()));
        }
    }
    Ok(None)
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request_get(
    p: &mut dyn Probe,
    port: u16,
    creds: &Credentials,
    path: &str,
) -> Result<HttpResponse> {
    Ok(p.get(port, path, Some((&creds.user, creds.password.expose())))?)
}

fn request(
    t: &mut dyn Transport,
    port: u16,
    creds: &Credentials,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<HttpResponse> {
    Ok(t.http(
        port,
        method,
        path,
        Some((&creds.user, creds.password.expose())),
        body,
    )?)
}

pub fn get<T: DeserializeOwned>(
    p: &mut dyn Probe,
    port: u16,
    creds: &Credentials,
    path: &str,
) -> Result<T> {
    let r = request_get(p, port, creds, path)?;
    if r.status != 200 {
        bail!(
            "{}: GET {path} answered {}: {}",
            p.host(),
            r.status,
            r.body.trim()
        );
    }
    parse(&r.body).with_context(|| format!("{}: GET {path}: unexpected answer", p.host()))
}

/// GET, with a 404 read as "does not exist".
pub fn get_opt<T: DeserializeOwned>(
    p: &mut dyn Probe,
    port: u16,
    creds: &Credentials,
    path: &str,
) -> Result<Option<T>> {
    let r = request_get(p, port, creds, path)?;
    match r.status {
        200 => parse(&r.body)
            .map(Some)
            .with_context(|| format!("{}: GET {path}: unexpected answer", p.host())),
        404 => Ok(None),
        s => bail!("{}: GET {path} answered {s}: {}", p.host(), r.body.trim()),
    }
}

/// DELETE; a 404 means it was already gone, which is what was wanted.
pub fn delete(t: &mut dyn Transport, port: u16, creds: &Credentials, path: &str) -> Result<()> {
    let r = request(t, port, creds, "DELETE", path, None)?;
    if !(200..300).contains(&r.status) && r.status != 404 {
        bail!(
            "{}: DELETE {path} answered {}: {}",
            t.host(),
            r.status,
            r.body.trim()
        );
    }
    Ok(())
}

/// Deletes a queue only if RabbitMQ finds it empty: `Ok(false)` when it holds a
/// message (RabbitMQ answers 400), `Ok(true)` when it is gone (or was already).
pub fn delete_if_empty(
    t: &mut dyn Transport,
    port: u16,
    creds: &Credentials,
    path: &str,
) -> Result<bool> {
    let r = request(
        t,
        port,
        creds,
        "DELETE",
        &format!("{path}?if-empty=true"),
        None,
    )?;
    match r.status {
        s if (200..300).contains(&s) || s == 404 => Ok(true),
        400 => Ok(false),
        s => bail!(
            "{}: DELETE {path} answered {s}: {}",
            t.host(),
            r.body.trim()
        ),
    }
}

/// RabbitMQ 3.10 at times repeats a key in a queue's JSON (`slave_nodes` while a
/// mirror restarts); reading through a `Value` keeps the last one, as browsers do,
/// instead of refusing the whole answer.
pub fn parse<T: DeserializeOwned>(body: &str) -> Result<T> {
    let v: Value = serde_json::from_str(body)?;
    Ok(serde_json::from_value(v)?)
}

/// A request with a JSON body whose answer must be a 2xx.
fn request_2xx(
    t: &mut dyn Transport,
    port: u16,
    creds: &Credentials,
    method: &str,
    path: &str,
    body: &Value,
) -> Result<HttpResponse> {
    let text = body.to_string();
    let r = request(t, port, creds, method, path, Some(&text))?;
    if !(200..300).contains(&r.status) {
        bail!(
            "{}: {method} {path} answered {}: {}",
            t.host(),
            r.status,
            r.body.trim()
        );
    }
    Ok(r)
}

/// PUT, POST or DELETE; any 2xx is success.
pub fn send(
    t: &mut dyn Transport,
    port: u16,
    creds: &Credentials,
    method: &str,
    path: &str,
    body: &Value,
) -> Result<()> {
    request_2xx(t, port, creds, method, path, body).map(drop)
}

/// A POST whose answer matters (a publish, a get): its JSON on any 2xx.
pub fn call(
    t: &mut dyn Transport,
    port: u16,
    creds: &Credentials,
    method: &str,
    path: &str,
    body: &Value,
) -> Result<Value> {
    let r = request_2xx(t, port, creds, method, path, body)?;
    parse(&r.body).with_context(|| format!("{}: {method} {path}: unexpected answer", t.host()))
}

#[derive(Debug, Clone, Deserialize)]
pub struct Overview {
    pub node: String,
    #[serde(default)]
    pub rabbitmq_version: String,
    #[serde(default)]
    pub erlang_version: String,
    #[serde(default)]
    pub cluster_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    #[serde(default)]
    pub running: bool,
    #[serde(rename = "type", default)]
    pub node_type: String,
    #[serde(default)]
    pub uptime: Option<u64>,
    /// Absent when the node's statistics are incomplete (3.10 can lose them for good
    /// after a partition): then only `rabbitmqctl cluster_status` can say.
    #[serde(default)]
    pub partitions: Option<Vec<String>>,
    #[serde(default)]
    pub mem_alarm: bool,
    #[serde(default)]
    pub disk_free_alarm: bool,
    /// Bytes of memory the node uses, and the high watermark that raises its alarm.
    #[serde(default)]
    pub mem_used: Option<u64>,
    #[serde(default)]
    pub mem_limit: Option<u64>,
    /// Free disk bytes where the node keeps its data, and the limit below which its
    /// alarm blocks publishers.
    #[serde(default)]
    pub disk_free: Option<u64>,
    #[serde(default)]
    pub disk_free_limit: Option<u64>,
    /// The OTP applications the node runs, plugins among them.
    #[serde(default)]
    pub applications: Vec<Application>,
    /// In maintenance mode (`rabbitmq-upgrade drain`), until revived. Listed by
    /// the versions after 3.10 only (3.10.8's node list has no such key: false).
    #[serde(default)]
    pub being_drained: bool,
}

/// A feature flag as `/api/feature-flags` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct FeatureFlag {
    pub name: String,
    /// `enabled`, `disabled`, or `unavailable` (a node of the cluster does not know it:
    /// a mixed-version cluster during an upgrade).
    #[serde(default)]
    pub state: String,
    /// `stable` or `experimental`.
    #[serde(default)]
    pub stability: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub slave_nodes: Vec<String>,
    #[serde(default)]
    pub synchronised_slave_nodes: Vec<String>,
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub online: Vec<String>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub messages: Option<u64>,
    #[serde(default)]
    pub messages_ready: Option<u64>,
    #[serde(default)]
    pub messages_unacknowledged: Option<u64>,
    #[serde(default)]
    pub consumers: Option<u64>,
    /// Absent until a message has gone through the queue.
    #[serde(default)]
    pub message_stats: Option<MessageStats>,
}

/// A queue's message counters since its statistics began, with their rates.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageStats {
    #[serde(default)]
    pub publish: u64,
    #[serde(default)]
    pub publish_details: Rate,
    /// Deliveries to consumers and `basic.get`s, acknowledged or not.
    #[serde(default)]
    pub deliver_get: u64,
    #[serde(default)]
    pub deliver_get_details: Rate,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rate {
    /// Per second, over the management plugin's last sample interval.
    #[serde(default)]
    pub rate: f64,
}

impl QueueInfo {
    /// The node holding the master (classic) or leader (quorum).
    pub fn master(&self) -> Option<&str> {
        self.leader.as_deref().or(self.node.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExchangeInfo {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BindingInfo {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    pub routing_key: String,
}

/// A binding as `/api/bindings/VHOST/e/X/q/Q` lists it: its key for a DELETE.
#[derive(Debug, Clone, Deserialize)]
pub struct BindingKey {
    pub properties_key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub vhost: String,
    pub pattern: String,
    #[serde(rename = "apply-to")]
    pub apply_to: String,
    pub definition: Map<String, Value>,
    pub priority: i64,
}

/// A runtime parameter (`/api/parameters`): a shovel or a federation upstream.
#[derive(Debug, Clone, Deserialize)]
pub struct ParameterInfo {
    pub name: String,
    pub vhost: String,
    pub component: String,
    pub value: Value,
}

/// A shovel's status (`/api/shovels`): `running`, `starting` or `terminated`.
#[derive(Debug, Clone, Deserialize)]
pub struct ShovelStatus {
    pub name: String,
    pub vhost: String,
    #[serde(default)]
    pub state: String,
    /// Why it is not running, when it says.
    #[serde(default)]
    pub reason: Option<Value>,
}

/// A federation link's status (`/api/federation-links`): `running`, `starting`
/// or `error`.
#[derive(Debug, Clone, Deserialize)]
pub struct FederationLink {
    pub upstream: String,
    #[serde(default)]
    pub exchange: Option<String>,
    pub vhost: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    pub name: String,
    #[serde(default)]
    pub password_hash: String,
    #[serde(default)]
    pub hashing_algorithm: String,
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
}

/// 3.10 answers tags as a list; older versions as a comma-separated string.
fn tags<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Value::Array(a) => a
            .into_iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct PermissionInfo {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VhostInfo {
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_in_a_queue_does_not_refuse_the_answer() {
        let body = r#"[{"name":"q","vhost":"/","type":"classic","node":"rabbit@a","slave_nodes":[],"slave_nodes":["rabbit@b"]}]"#;
        let qs: Vec<QueueInfo> = parse(body).unwrap();
        assert_eq!(qs[0].slave_nodes, vec!["rabbit@b"]);
    }
}
