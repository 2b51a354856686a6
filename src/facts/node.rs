//! A node's own view: its state (running, booting, its app stopped), its cluster
//! membership from RabbitMQ's node lists, and the messages in its own queues;
//! through the management API when it answers, else one `rabbitmqctl eval`.

use super::{Membership, NodeFacts, NodeState, QUERY_TIMEOUT};
use crate::inventory::Host;
use crate::platform::{Probe, Read};
use crate::rabbitmq::api::{self, Credentials};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The node list with only what a node's membership needs: every node's full
/// statistics, twenty times over on a 20-node cluster, are most of a plan's reading.
const NODE_LIST: &str = "/api/nodes?columns=name,running,type,partitions";

/// The node's own view: through the management API when it answers (fast), else
/// one `rabbitmqctl eval` (a fresh node may have no management plugin yet).
pub(super) fn read_node(
    p: &mut dyn Probe,
    h: &Host,
    port: u16,
    creds: &[Credentials],
    node: &mut NodeFacts,
) -> Result<NodeState> {
    for c in creds {
        let Ok(r) = p.get(port, "/api/overview", Some((&c.user, c.password.expose()))) else {
            break; // nothing listens: no management plugin
        };
        if r.status != 200 {
            continue;
        }
        let overview: api::Overview = api::parse(&r.body)
            .with_context(|| format!("{}: /api/overview: unexpected answer", h.name))?;
        let nodes: Vec<api::NodeInfo> = api::get(p, port, c, NODE_LIST)?;
        node.version = Some(format!(
            "RabbitMQ {}, Erlang {}",
            overview.rabbitmq_version, overview.erlang_version
        ));
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        node.rabbitmq_version = some(&overview.rabbitmq_version);
        node.erlang_version = some(&overview.erlang_version);
        // The node's own partitions: the nodes it lost and found again.
        let Some(partitions) = nodes
            .iter()
            .find(|n| n.name == overview.node)
            .and_then(|n| n.partitions.clone())
        else {
            // Incomplete statistics (after a partition, or a node whose API answers
            // while it still boots): the node's own live view instead.
            return match answer(p, h)? {
                Answer::Member(m, messages) => {
                    node.membership = Some(m);
                    node.messages = Some(messages);
                    node.api = Some(c.clone());
                    Ok(NodeState::Running)
                }
                Answer::Not(state) => Ok(state),
            };
        };
        node.membership = Some(membership_of(overview.node, &nodes, partitions));
        node.api = Some(c.clone());
        return Ok(NodeState::Running);
    }
    match answer(p, h)? {
        Answer::Member(m, messages) => {
            node.membership = Some(m);
            node.messages = Some(messages);
            Ok(NodeState::Running)
        }
        Answer::Not(state) => Ok(state),
    }
}

enum Answer {
    /// A running node: its membership, and the messages in its own queues.
    Member(Membership, u64),
    Not(NodeState),
}

/// How long a node whose OS process runs may take to answer the CLI at all (a VM
/// just started registers with epmd within seconds).
const ANSWER_WAIT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct NodeStateAnswer {
    state: String,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    disc: Vec<String>,
    #[serde(default)]
    running: Vec<String>,
    #[serde(default)]
    partitions: Vec<String>,
    #[serde(default)]
    messages: u64,
}

/// The node's membership, or why it has none to give: still booting, or its rabbit
/// application stopped. Both are states the plan finishes (wait, `start_app`), never
/// errors; a node that does not answer at all within `ANSWER_WAIT` is one. One CLI
/// call (`Read::NodeState`) per try.
fn answer(p: &mut dyn Probe, h: &Host) -> Result<Answer> {
    let q = p.platform().read(Read::NodeState);
    let deadline = std::time::Instant::now() + ANSWER_WAIT;
    loop {
        let out = p.query(&q, QUERY_TIMEOUT)?;
        if out.ok() {
            return parse_node_state(&out.stdout, h);
        }
        // A node in between (registering with epmd, starting or stopping) may fail
        // the call in several ways: asked again until `ANSWER_WAIT`.
        if std::time::Instant::now() > deadline {
            bail!(
                "{}: RabbitMQ runs but `rabbitmqctl eval` (its state) failed: {}",
                h.name,
                out.last_line()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn parse_node_state(stdout: &str, h: &Host) -> Result<Answer> {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let a: NodeStateAnswer = serde_json::from_str(line)
        .with_context(|| format!("{}: the node's state: unexpected answer {line:?}", h.name))?;
    match a.state.as_str() {
        "running" => {
            let mut nodes = a.nodes.clone();
            nodes.sort();
            let ram = a
                .nodes
                .into_iter()
                .filter(|n| !a.disc.contains(n))
                .collect();
            Ok(Answer::Member(
                Membership {
                    node: h.node_name(),
                    nodes,
                    running: a.running,
                    ram,
                    partitions: a.partitions,
                },
                a.messages,
            ))
        }
        "booting" => Ok(Answer::Not(NodeState::Booting)),
        _ => Ok(Answer::Not(NodeState::AppStopped)),
    }
}

/// A running node's membership and the messages in its own queues, in one CLI call;
/// an error when the node is not running.
pub fn node_state(p: &mut dyn Probe, h: &Host) -> Result<(Membership, u64)> {
    let q = p.platform().read(Read::NodeState);
    let out = p.query(&q, QUERY_TIMEOUT)?;
    if !out.ok() {
        bail!(
            "{}: RabbitMQ runs but `rabbitmqctl eval` (its state) failed: {}",
            h.name,
            out.last_line()
        );
    }
    match parse_node_state(&out.stdout, h)? {
        Answer::Member(m, messages) => Ok((m, messages)),
        Answer::Not(NodeState::Booting) => bail!("{}: RabbitMQ is still booting", h.name),
        Answer::Not(_) => bail!(
            "{}: RabbitMQ runs with its rabbit application stopped",
            h.name
        ),
    }
}

/// How many messages the queues on `node` hold, from its management API: `None`
/// when the API does not say for every queue (statistics not in yet after a start),
/// so that only the CLI decides then. The list of queues itself is RabbitMQ's own.
pub fn api_local_messages(
    p: &mut dyn Probe,
    port: u16,
    c: &Credentials,
    node: &str,
) -> Option<u64> {
    let queues: Vec<api::QueueInfo> =
        api::get(p, port, c, "/api/queues?columns=name,vhost,node,messages").ok()?;
    let mut sum = 0;
    for q in queues.iter().filter(|q| q.node.as_deref() == Some(node)) {
        sum += q.messages?;
    }
    Some(sum)
}

/// A node's membership from its own management API (`/api/nodes` lists the nodes of
/// its cluster from RabbitMQ's own database), or `None` when the API does not answer
/// with any of `creds` or its statistics lack the node's partitions.
pub fn api_membership(
    p: &mut dyn Probe,
    port: u16,
    creds: &[Credentials],
    node: &str,
) -> Option<(Membership, Credentials)> {
    for c in creds {
        let r = p
            .get(port, NODE_LIST, Some((&c.user, c.password.expose())))
            .ok()?; // nothing listens: no management plugin (yet)
        if r.status != 200 {
            continue;
        }
        let nodes: Vec<api::NodeInfo> = api::parse(&r.body).ok()?;
        let partitions = nodes.iter().find(|n| n.name == node)?.partitions.clone()?;
        return Some((
            membership_of(node.to_string(), &nodes, partitions),
            c.clone(),
        ));
    }
    None
}

/// `node`'s membership from the node list its management API gives.
fn membership_of(node: String, nodes: &[api::NodeInfo], partitions: Vec<String>) -> Membership {
    let names = |keep: &dyn Fn(&api::NodeInfo) -> bool| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| keep(n))
            .map(|n| n.name.clone())
            .collect()
    };
    let mut all = names(&|_| true);
    all.sort();
    Membership {
        node,
        nodes: all,
        running: names(&|n| n.running),
        ram: names(&|n| n.node_type == "ram"),
        partitions,
    }
}

/// How many messages the node's queues hold (before a reset would drop them).
pub fn local_messages(p: &mut dyn Probe, h: &Host) -> Result<u64> {
    let q = p.platform().read(Read::LocalMessages);
    let out = p.query(&q, QUERY_TIMEOUT)?;
    if !out.ok() {
        bail!(
            "{}: `rabbitmqctl list_queues` failed: {}",
            h.name,
            out.last_line()
        );
    }
    let rows: Vec<BTreeMap<String, serde_json::Value>> =
        serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    Ok(rows
        .iter()
        .filter_map(|r| r.get("messages").and_then(|m| m.as_u64()))
        .sum())
}
