//! What the plan refuses without a flag, and what it warns of: a new cookie or TLS
//! distribution that splits the running cluster (`--allow-disruptive`), restarts that
//! leave the RAM nodes without their disc node or take a quorum queue below its
//! majority (`--force`), and what the facts show of a host (an unchecked WinRM
//! certificate, a host that names itself otherwise, an old OpenSSH for Windows).

use super::{Blocker, FileChange, HostPlan, Options, Service};
use crate::facts::{Facts, FileState, HostFacts};
use crate::inventory::{Host, Inventory};
use crate::render::Effect;

/// A new cookie for more than one running member of the cluster: each node restarted
/// with it can no longer talk to those not restarted yet, so the cluster is split
/// until the last one has restarted. Refused unless `--allow-disruptive`.
pub(super) fn disruptive_cookie(
    inv: &Inventory,
    facts: &Facts,
    hosts: &[HostPlan],
    opts: Options,
) -> Option<Blocker> {
    if opts.allow_disruptive {
        return None;
    }
    let seed = inv.central().node_name();
    let members: Vec<&str> = hosts
        .iter()
        .zip(&facts.hosts)
        .filter(|(_, f)| {
            f.running()
                && f.node
                    .membership
                    .as_ref()
                    .is_some_and(|m| m.nodes.contains(&seed))
        })
        .filter(|(hp, f)| {
            hp.files.iter().any(|c| {
                (c.content.is_secret() && c.effect == Effect::StopWriteStart && c.restarts)
                    || switches_tls_distribution(c, f)
            })
        })
        .map(|(hp, _)| hp.host.as_str())
        .collect();
    (members.len() > 1).then(|| Blocker {
        host: inv.central().name.clone(),
        message: format!(
            "the cookie or TLS distribution changes on {} running members ({}): each node restarted with the change cannot reach those not restarted yet, so the cluster stays split until the last restart; rerun with --allow-disruptive in a quiet hour",
            members.len(),
            members.join(", ")
        ),
    })
}

/// Whether writing `c` switches the node's distribution between plain TCP and TLS
/// (its environment file gains or loses `-proto_dist inet_tls`).
fn switches_tls_distribution(c: &FileChange, f: &HostFacts) -> bool {
    if c.effect == Effect::None || c.content.is_secret() {
        return false;
    }
    let tls = |b: &[u8]| String::from_utf8_lossy(b).contains("-proto_dist inet_tls");
    let now = match f.files.get(&c.path) {
        Some(FileState::Text { content, .. }) => tls(content),
        _ => false,
    };
    c.restarts && tls(c.content.bytes()) != now
}

/// Restarts that would hurt a running cluster, refused unless `--force`: the only disc
/// node of a cluster with RAM nodes (they keep no state of their own), and a node whose
/// restart takes a quorum queue below its majority (it stops taking messages until the
/// node is back). Restarts run one at a time, each after every copy is back, so one
/// node down at a time is what is weighed.
pub(super) fn restart_refusals(facts: &Facts, hosts: &[HostPlan], blockers: &mut Vec<Blocker>) {
    for (hp, f) in hosts.iter().zip(&facts.hosts) {
        if !matches!(hp.service, Service::Restart { .. }) {
            continue;
        }
        let node = &hp.node;
        if let Some(m) = &f.node.membership {
            let disc: Vec<&String> = m.nodes.iter().filter(|n| !m.ram.contains(n)).collect();
            if m.nodes.len() > 1 && disc == [node] {
                blockers.push(Blocker {
                    host: hp.host.clone(),
                    message: format!(
                        "{node} is the cluster's only disc node: while it restarts the RAM nodes ({}) hold the cluster's state in memory only; make another node a disc node (node_type = \"disc\") first, or rerun with --force",
                        m.ram.join(", ")
                    ),
                });
            }
        }
        let Ok(cf) = &facts.cluster else { continue };
        for q in cf.queues.iter().filter(|q| q.members.contains(node)) {
            let majority = q.members.len() / 2 + 1;
            let online = q.online.iter().filter(|n| *n != node).count();
            if online < majority {
                blockers.push(Blocker {
                    host: hp.host.clone(),
                    message: format!(
                        "restarting {node} takes quorum queue {} below its majority ({online} of its {} members online, {majority} needed): it takes no messages until {node} is back; give it another member first, or rerun with --force in a quiet hour",
                        q.name,
                        q.members.len()
                    ),
                });
            }
        }
    }
}

/// The version in an OpenSSH for Windows banner (`SSH-2.0-OpenSSH_for_Windows_7.7`).
pub fn windows_openssh_version(banner: &str) -> Option<(u32, u32)> {
    let v = banner.split("OpenSSH_for_Windows_").nth(1)?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// What the facts show about a host that the operator should hear of before apply.
pub fn host_warnings(
    h: &Host,
    f: &HostFacts,
    warnings: &mut Vec<String>,
    blockers: &mut Vec<Blocker>,
) {
    if h.transport == crate::inventory::TransportKind::Winrm && h.winrm.https && h.winrm.insecure {
        warnings.push(format!(
            "{}: WinRM over HTTPS without checking the listener's certificate (winrm.insecure_skip_verify = true): anyone in between can read the session, passwords included; give winrm.ca_file instead",
            h.name
        ));
    }
    if let Some(name) = &f.hostname {
        let short = name.split('.').next().unwrap_or(name);
        if !short.eq_ignore_ascii_case(&h.name) {
            warnings.push(format!(
                "{}: the host calls itself {name}, the inventory {}: node {} works only while every host resolves {} to {} (hosts_file = true does that); rename the host or its inventory entry to make them one",
                h.name, h.name, h.node_name(), h.name, h.address
            ));
        }
    }
    let Some(version) = f.server.as_deref().and_then(windows_openssh_version) else {
        return;
    };
    if version >= (7, 9) {
        return;
    }
    let banner = f.server.as_deref().unwrap_or("");
    match &f.ssh_shell {
        // Before 7.9 a DefaultShell other than cmd.exe gets commands quoted wrongly
        // (Win32-OpenSSH #1082, fixed in v7.9.0.0p1-Beta).
        Some(shell) if !shell.to_ascii_lowercase().ends_with("cmd.exe") => blockers.push(Blocker {
            host: h.name.clone(),
            message: format!(
                "{banner} with DefaultShell {shell}: OpenSSH for Windows before 7.9 mangles the quoting of commands run through another shell than cmd.exe (Win32-OpenSSH #1082); remove HKLM:\\SOFTWARE\\OpenSSH DefaultShell, or install the current Win32-OpenSSH release"
            ),
        }),
        _ => warnings.push(format!(
            "{}: {banner} is Windows Server 2019's own OpenSSH; warren works with it (commands through cmd.exe, files by SFTP in small writes), but it has known bugs fixed since (SFTP writes over 100 KB, Win32-OpenSSH #1395, fixed in 8.6; a DefaultShell other than cmd.exe, #1082): install the current Win32-OpenSSH release when you can",
            h.name
        )),
    }
}
