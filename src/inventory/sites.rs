//! `[[sites]]` and `[[users]]` checked: each site's host, exchange, queue, link and
//! copies (a quorum queue's three members), and each user's tags, permissions and
//! site, whose patterns may reach no other site.

use super::model::*;
use super::problem::{quoted, Problems};
use super::raw::*;
use super::secret::SecretRef;
use super::secret_check::secret_ref;
use std::collections::BTreeMap;
use std::path::Path;

pub(super) fn sites(
    p: &mut Problems,
    raw: &[RawSite],
    hosts: &[Host],
    replication: Replication,
    dir: &Path,
) -> Vec<Site> {
    let index: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    // The hosts of linked sites: standalone brokers, never members, never copies.
    let linked: Vec<usize> = raw
        .iter()
        .filter(|s| s.link.as_deref().is_some_and(|l| l != "cluster"))
        .filter_map(|s| index.get(s.host.as_str()).copied())
        .collect();
    let members = hosts.len() - linked.len();
    if replication == Replication::Quorum && hosts.len() >= 3 && members < 3 {
        p.add(
            "cluster.replication",
            format!(
                "quorum queues need at least three cluster members to survive one node's loss, and {members} of the hosts are members (the others are linked sites); add hosts or use \"mirrored\""
            ),
        );
    }
    let central = hosts.iter().position(|h| h.role == Role::Central);
    let mut used_hosts = BTreeMap::new();
    let mut exchanges = BTreeMap::new();
    let mut queues = BTreeMap::new();
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = |k: &str| format!("sites[{i}].{k}");
        let Some(&h) = index.get(s.host.as_str()) else {
            p.add(
                key("host"),
                format!(
                    "\"{}\" is not a host in this inventory; name one of its [[hosts]]",
                    s.host
                ),
            );
            continue;
        };
        if hosts[h].role != Role::Site {
            p.add(
                key("host"),
                format!(
                    "\"{}\" is the central host; a site belongs on a host with role = \"site\"",
                    s.host
                ),
            );
        }
        if let Some(j) = used_hosts.insert(h, i) {
            p.add(
                key("host"),
                format!(
                    "\"{}\" already has a site (sites[{j}]); give each site host one site",
                    s.host
                ),
            );
        }
        for (what, name, seen) in [
            ("exchange", &s.exchange, &mut exchanges),
            ("queue", &s.queue, &mut queues),
        ] {
            if let Some(why) = refused_resource_name(name) {
                p.add(
                    key(what),
                    format!("RabbitMQ would refuse the {what} name \"{name}\": {why}"),
                );
            }
            if let Some(j) = seen.insert(name.clone(), i) {
                p.add(
                    key(what),
                    format!("\"{name}\" is also the {what} of sites[{j}]; give each site its own"),
                );
            }
        }
        let exchange_type = s.exchange_type.clone().unwrap_or_else(|| "topic".into());
        if !["direct", "topic", "fanout", "headers"].contains(&exchange_type.as_str()) {
            p.add(
                key("exchange_type"),
                format!("\"{exchange_type}\" is not an exchange type; use \"direct\", \"topic\", \"fanout\" or \"headers\""),
            );
        }
        let link = p.keyword(
            &key("link"),
            s.link.as_deref(),
            Link::parse,
            Link::CHOICES,
            Link::Cluster,
        );
        let link_password = match (&s.link_password, link) {
            (Some(r), Link::Shovel | Link::Federation) => {
                secret_ref(p, &key("link_password"), r, dir)
            }
            (None, Link::Shovel | Link::Federation) => {
                p.add(
                    key("link_password"),
                    format!(
                        "a {link} site needs the password of its link user ({}): add link_password = {{ file = \"PATH\" }} (warren creates the file) or {{ env = \"VARIABLE\" }}",
                        link_user(&s.host)
                    ),
                );
                None
            }
            (Some(_), Link::Cluster) => {
                p.add(
                    key("link_password"),
                    "a cluster member has no link user; remove link_password, or set link = \"shovel\" or \"federation\"",
                );
                None
            }
            (None, Link::Cluster) => None,
        };
        let mut mirrors = Vec::new();
        if link != Link::Cluster {
            if s.mirrors.is_some() {
                p.add(
                    key("mirrors"),
                    format!("a {link} site is a standalone broker: its queue has no copies on other nodes (the central host's queue of the same name receives its messages); remove mirrors, or set link = \"cluster\""),
                );
            }
        } else {
            match &s.mirrors {
                None => mirrors.extend(central.filter(|&c| c != h)),
                Some(list) => {
                    for (m, name) in list.iter().enumerate() {
                        let mkey = key(&format!("mirrors[{m}]"));
                        match index.get(name.as_str()) {
                        None => p.add(
                            mkey,
                            format!("\"{name}\" is not a host in this inventory; name one of its [[hosts]]"),
                        ),
                        Some(&x) if x == h => p.add(
                            mkey,
                            format!("\"{name}\" is the site's own host; a mirror must be on another host"),
                        ),
                        Some(&x) if linked.contains(&x) => p.add(
                            mkey,
                            format!("\"{name}\" is a linked site's standalone broker, not a cluster member; name a member"),
                        ),
                        Some(&x) if mirrors.contains(&x) => {
                            p.add(mkey, format!("\"{name}\" is listed twice; list it once"))
                        }
                        Some(&x) => mirrors.push(x),
                    }
                    }
                }
            }
            if mirrors.is_empty() && s.mirrors.is_some() {
                p.add(key("mirrors"), "the list is empty, so the queue would have no copy; name at least one host or remove the key to mirror on the central host");
            }
            if replication == Replication::Quorum {
                fill_quorum_members(h, &mut mirrors, hosts, &linked);
            }
        }
        out.push(Site {
            host: h,
            exchange: s.exchange.clone(),
            exchange_type,
            queue: s.queue.clone(),
            routing_key: s.routing_key.clone().unwrap_or_else(|| "#".into()),
            mirrors,
            link,
            link_password,
        });
    }
    out
}

/// A quorum queue needs three members so that one node's loss keeps a majority: the
/// site's own node, its listed mirrors (the central host by default), and then the
/// next site hosts after it in inventory order, wrapping around. Deterministic, and it
/// spreads the third members over the sites.
fn fill_quorum_members(site: usize, members: &mut Vec<usize>, hosts: &[Host], linked: &[usize]) {
    let n = hosts.len();
    for step in 1..n {
        if members.len() >= 2 {
            break;
        }
        let candidate = (site + step) % n;
        if !members.contains(&candidate)
            && hosts[candidate].role == Role::Site
            && !linked.contains(&candidate)
        {
            members.push(candidate);
        }
    }
    for step in 1..n {
        if members.len() >= 2 {
            break;
        }
        let candidate = (site + step) % n;
        if !members.contains(&candidate) {
            members.push(candidate);
        }
    }
}

pub(super) fn users(
    p: &mut Problems,
    raw: &[RawUser],
    vhost: &str,
    dir: &Path,
    hosts: &[Host],
) -> Vec<User> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let key = |k: &str| format!("users[{i}].{k}");
        if u.name.is_empty() || u.name.len() > 255 || u.name.chars().any(char::is_control) {
            p.add(
                key("name"),
                "a user name must be 1 to 255 bytes without control characters",
            );
        }
        if u.name == "guest" {
            p.add(
                key("name"),
                "\"guest\" is RabbitMQ's built-in user that only logs in from localhost; declare your own user",
            );
        }
        if let Some(j) = seen.insert(u.name.clone(), i) {
            p.add(
                key("name"),
                format!("\"{}\" is also users[{j}]; declare each user once", u.name),
            );
        }
        for (t, tag) in u.tags.iter().enumerate() {
            if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                p.add(
                    key(&format!("tags[{t}]")),
                    format!("\"{tag}\" is not a user tag; tags are lower-case words like \"administrator\" or \"monitoring\""),
                );
            }
        }
        let password = secret_ref(p, &key("password"), &u.password, dir);
        let mut permissions = Vec::new();
        for (j, perm) in u.permissions.iter().enumerate() {
            let pv = perm.vhost.clone().unwrap_or_else(|| vhost.to_string());
            if pv != vhost {
                p.add(
                    key(&format!("permissions[{j}].vhost")),
                    format!("\"{pv}\" is not the cluster's virtual host \"{vhost}\"; warren manages one virtual host, set by cluster.vhost"),
                );
            }
            permissions.push(Permission {
                vhost: pv,
                configure: perm.configure.clone(),
                write: perm.write.clone(),
                read: perm.read.clone(),
            });
        }
        let site = u.site.as_ref().and_then(|name| {
            let found = hosts
                .iter()
                .position(|h| &h.name == name && h.role == Role::Site);
            if found.is_none() {
                let sites: Vec<&str> = hosts
                    .iter()
                    .filter(|h| h.role == Role::Site)
                    .map(|h| h.name.as_str())
                    .collect();
                p.add(
                    key("site"),
                    format!(
                        "\"{name}\" is not a site host; name one of {}, or leave site out for a user that is not a site's",
                        quoted(&sites)
                    ),
                );
            }
            found
        });
        out.push(User {
            name: u.name.clone(),
            password: password.unwrap_or(SecretRef::Env(String::new())),
            tags: u.tags.clone(),
            permissions,
            site,
        });
    }
    out
}

/// A site's user reaches nothing of the other sites: no permission pattern of it may
/// match another site's exchange or queue.
pub(super) fn site_users_isolated(p: &mut Problems, inv: &Inventory) {
    for (i, u) in inv.users.iter().enumerate() {
        let Some(own) = u.site else { continue };
        for (j, perm) in u.permissions.iter().enumerate() {
            let key = format!("users[{i}].permissions[{j}]");
            match inv.reach_beyond(own, &perm.configure, &perm.write, &perm.read) {
                Ok(reach) if reach.is_empty() => {}
                Ok(reach) => p.add(
                    key,
                    format!(
                        "{} is the user of site {} but may {}; narrow the patterns to that site's own names, e.g. write = \"^{}$\"",
                        u.name,
                        inv.hosts[own].name,
                        reach.join(", "),
                        inv.site_of(&inv.hosts[own])
                            .map(|s| crate::util::regex_escape(&s.exchange))
                            .unwrap_or_default()
                    ),
                ),
                Err(e) => p.add(key, format!("{e}; a site's user needs patterns warren can check")),
            }
        }
    }
}

/// Why RabbitMQ would refuse an exchange or queue name, if it would.
pub fn refused_resource_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty (RabbitMQ would generate a name); give it a name")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes; shorten it")
    } else if name.starts_with("amq.") {
        Some("names starting with \"amq.\" are reserved for RabbitMQ; choose another prefix")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters; remove them")
    } else {
        None
    }
}
