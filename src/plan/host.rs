//! A host's steps: each rendered file against the host's own (a block merged into
//! it, a diff, whether the change needs a restart), its settings, the service (leave,
//! start, restart, reinstall), the plugins to start again, a drained node to revive.

use super::{files_for, Action, FileChange, HostPlan, Service, SettingChange};
use crate::facts::{manager, Facts, FileState, HostFacts};
use crate::inventory::{Broker, Host, Inventory};
use crate::render::{Content, Effect, HostRender, Ownership, RenderedFile};
use crate::util::{file_name, sha256_hex};

pub fn host_plan(h: &Host, d: &HostRender, f: &HostFacts) -> HostPlan {
    let m = manager(h, f);
    let mut files = Vec::new();
    let mut unchanged = Vec::new();
    for rf in files_for(d, m) {
        match file_change(rf, crate::facts::file_state(f, rf)) {
            Some(c) => files.push(c),
            None => unchanged.push(format!("{}: already up to date", rf.path)),
        }
    }
    let mut settings = Vec::new();
    for s in &d.settings {
        let now = f.settings.get(&s.key);
        if now == Some(&s.value) {
            unchanged.push(format!("{}: already set", s.key));
        } else {
            settings.push(SettingChange {
                setting: s.clone(),
                now: now.cloned(),
            });
        }
    }
    let mut reasons: Vec<String> = Vec::new();
    for c in files.iter().filter(|c| c.restarts) {
        let r = format!("{} changed", file_name(&c.path));
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    // The service reads its environment at install only: reinstall it when that
    // changes, and when the last install was from another environment file (an
    // interrupted run wrote the file but did not reinstall).
    let mut reinstall: Vec<String> = files
        .iter()
        .filter(|c| c.restarts && c.effect == Effect::ReinstallService)
        .map(|c| format!("{} changed", file_name(&c.path)))
        .collect();
    for c in settings.iter().filter(|c| c.setting.reinstall) {
        reinstall.push(format!("{} changes", c.setting.key));
    }
    if let Some(want) = &d.service_stamp {
        let env_changes = files.iter().any(|c| c.effect == Effect::ReinstallService);
        match &f.service_stamp {
            _ if env_changes => {}
            None => reinstall.push("the service was not installed by warren".into()),
            Some(have) if have != want => reinstall
                .push("the service was installed from another rabbitmq-env-conf.bat".into()),
            Some(_) => {}
        }
    }
    for r in &reinstall {
        if !reasons.contains(r) {
            reasons.push(r.clone());
        }
    }
    use crate::facts::NodeState;
    let service = match f.node.state {
        NodeState::Stopped => Service::Start,
        _ if !reasons.is_empty() => Service::Restart {
            daemon_reload: files
                .iter()
                .any(|c| c.effect == Effect::DaemonReloadRestart),
            reasons,
        },
        NodeState::Booting => Service::AwaitBoot,
        NodeState::AppStopped => Service::StartApp,
        NodeState::Running => Service::Leave,
    };
    let start_plugins = if service == Service::Leave {
        f.stopped_plugins.clone()
    } else {
        Vec::new()
    };
    HostPlan {
        host: h.name.clone(),
        node: h.node_name(),
        manager: m,
        files,
        service,
        start_plugins,
        settings,
        reinstall,
        unchanged,
        leftovers: f.leftovers.clone(),
        upgrade: None,
        revive: false,
    }
}

/// Puts `block` (from its begin marker to its end marker) into `current`, replacing
/// the block already there or appending it.
pub fn merge_block(current: &str, block: &str, begin: &str, end: &str) -> String {
    // Keep the file's own line ending (CRLF in a Windows hosts file).
    let nl = if current.contains("\r\n") || (current.is_empty() && block.contains("\r\n")) {
        "\r\n"
    } else {
        "\n"
    };
    let lines: Vec<&str> = current.lines().collect();
    let start = lines.iter().position(|l| l.starts_with(begin));
    let stop = start.and_then(|s| {
        lines[s..]
            .iter()
            .position(|l| l.starts_with(end))
            .map(|e| s + e)
    });
    let block: Vec<&str> = block.trim_end_matches(['\r', '\n']).lines().collect();
    let block = block.join(nl);
    let mut out = String::new();
    match (start, stop) {
        (Some(s), Some(e)) => {
            for l in &lines[..s] {
                out.push_str(l);
                out.push_str(nl);
            }
            out.push_str(&block);
            out.push_str(nl);
            for l in &lines[e + 1..] {
                out.push_str(l);
                out.push_str(nl);
            }
        }
        _ => {
            out.push_str(current);
            if !current.is_empty() && !current.ends_with('\n') {
                out.push_str(nl);
            }
            out.push_str(&block);
            out.push_str(nl);
        }
    }
    out
}

/// Lines a running member does not need to reread: the peer-discovery node list is
/// read by a blank node at its first boot only.
fn restart_relevant(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("cluster_formation.classic_config.nodes.")
                && !t.starts_with("{cluster_nodes,")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn file_change(rf: &RenderedFile, current: &FileState) -> Option<FileChange> {
    let (cur_mode, cur_owner) = match current {
        FileState::Missing => (None, None),
        FileState::Text { mode, owner, .. } | FileState::Hash { mode, owner, .. } => {
            (Some(*mode), Some(owner.as_str()))
        }
    };
    let content = match (&rf.ownership, current) {
        (Ownership::Block { begin, end }, FileState::Text { content, .. }) => {
            Content::Text(merge_block(
                &String::from_utf8_lossy(content),
                &text_of(&rf.content),
                begin,
                end,
            ))
        }
        _ => rf.content.clone(),
    };
    let same_content = match current {
        FileState::Missing => false,
        FileState::Text { content: c, .. } => c.as_slice() == content.bytes(),
        FileState::Hash { sha256, .. } => *sha256 == sha256_hex(content.bytes()),
    };
    let same_meta = rf.mode.is_none_or(|m| cur_mode == Some(m))
        && rf.owner.as_deref().is_none_or(|o| cur_owner == Some(o));
    if same_content && same_meta {
        return None;
    }
    let action = if matches!(current, FileState::Missing) {
        Action::Create
    } else {
        Action::Update
    };
    let diff = if content.is_secret() {
        match current {
            FileState::Missing => "(sensitive value) will be written".to_string(),
            _ if same_content => "(sensitive value) unchanged; owner or mode corrected".to_string(),
            _ => "(sensitive value) changed".to_string(),
        }
    } else {
        let old = match current {
            FileState::Text { content, .. } => String::from_utf8_lossy(content).into_owned(),
            _ => String::new(),
        };
        let new = text_of(&content);
        let mut d = if same_content {
            String::new()
        } else {
            similar::TextDiff::from_lines(&old, &new)
                .unified_diff()
                .context_radius(2)
                .header(
                    &format!("{} (now)", rf.path),
                    &format!("{} (after apply)", rf.path),
                )
                .to_string()
        };
        if !same_meta && !matches!(current, FileState::Missing) {
            d.push_str(&format!(
                "owner/mode: {}:{:o} -> {}:{:o}\n",
                cur_owner.unwrap_or("-"),
                cur_mode.unwrap_or(0),
                rf.owner.as_deref().unwrap_or("-"),
                rf.mode.unwrap_or(0)
            ));
        }
        d
    };
    let (restarts, why) = match rf.effect {
        Effect::None => (false, "read when used; no restart".to_string()),
        Effect::ReloadBalancer => (
            false,
            "HAProxy reads it: reloaded once the cluster is done; RabbitMQ is not restarted"
                .to_string(),
        ),
        _ if same_content => (false, "owner or mode only; no restart".to_string()),
        Effect::Restart | Effect::DaemonReloadRestart | Effect::ReinstallService
            if !same_content && only_node_list_changed(current, &content) =>
        {
            (
                false,
                "only the peer-discovery node list changed, which a member never rereads; no restart"
                    .to_string(),
            )
        }
        Effect::Restart => (true, "RabbitMQ reads it at start: restart".to_string()),
        Effect::DaemonReloadRestart => (true, "systemd reads it: daemon-reload and restart".to_string()),
        Effect::ReinstallService => (true, "read at service install: reinstall the service".to_string()),
        Effect::StopWriteStart => (
            true,
            "the node and its CLI read it: stop RabbitMQ, write, start".to_string(),
        ),
    };
    Some(FileChange {
        path: rf.path.clone(),
        action,
        content,
        owner: rf.owner.clone(),
        mode: rf.mode,
        in_place: matches!(rf.ownership, Ownership::Block { .. }),
        diff,
        effect: rf.effect,
        restarts,
        why,
    })
}

fn only_node_list_changed(current: &FileState, new: &Content) -> bool {
    match current {
        FileState::Text { content, .. } => {
            restart_relevant(&String::from_utf8_lossy(content)) == restart_relevant(&text_of(new))
        }
        _ => false,
    }
}

fn text_of(c: &Content) -> String {
    String::from_utf8_lossy(c.bytes()).into_owned()
}

/// Running nodes their broker lists as in maintenance mode, with no upgrade of
/// their own to revive them: an upgrade that was interrupted after its drain. (3.10's
/// node list does not say; there a node's restart revives it, RabbitMQ's
/// `rabbit_maintenance:boot` step.)
pub(super) fn mark_drained(inv: &Inventory, facts: &Facts, hosts: &mut [HostPlan]) {
    for (i, hp) in hosts.iter_mut().enumerate() {
        if hp.upgrade.is_some() || facts.hosts[i].node.state != crate::facts::NodeState::Running {
            continue;
        }
        let b = inv
            .sites
            .iter()
            .position(|s| s.host == i && s.linked())
            .map(Broker::Site)
            .unwrap_or(Broker::Cluster);
        if let Ok(cf) = facts.broker(b) {
            hp.revive = cf
                .nodes
                .iter()
                .any(|n| n.name == hp.node && n.being_drained);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_appended_then_replaced_in_place() {
        let begin = "# BEGIN warren cluster x";
        let end = "# END warren cluster x";
        let block = format!("{begin}: managed\n10.0.0.1 a\n{end}\n");
        let host = "127.0.0.1 localhost\n::1 localhost\n";
        let once = merge_block(host, &block, begin, end);
        assert_eq!(once, format!("{host}{block}"));
        assert_eq!(merge_block(&once, &block, begin, end), once);
        let block2 = format!("{begin}: managed\n10.0.0.1 a\n10.0.0.2 b\n{end}\n");
        let edited = format!("{once}10.9.9.9 mine\n");
        let twice = merge_block(&edited, &block2, begin, end);
        assert_eq!(twice, format!("{host}{block2}10.9.9.9 mine\n"));
    }

    #[test]
    fn a_windows_hosts_file_keeps_its_crlf() {
        let begin = "# BEGIN warren cluster x";
        let end = "# END warren cluster x";
        let block = format!("{begin}: managed\r\n10.0.0.1 a\r\n{end}\r\n");
        let host = "# Copyright\r\n127.0.0.1 localhost\r\n";
        let once = merge_block(host, &block, begin, end);
        assert_eq!(once, format!("{host}{block}"));
        assert_eq!(merge_block(&once, &block, begin, end), once);
    }

    #[test]
    fn node_list_lines_do_not_need_a_restart() {
        let a = "cluster_name = x\ncluster_formation.classic_config.nodes.1 = rabbit@a\n";
        let b = "cluster_name = x\ncluster_formation.classic_config.nodes.1 = rabbit@a\ncluster_formation.classic_config.nodes.2 = rabbit@b\n";
        assert_eq!(restart_relevant(a), restart_relevant(b));
        assert_ne!(restart_relevant(a), restart_relevant("cluster_name = y\n"));
    }
}
