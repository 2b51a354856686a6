//! Plan cases: an inventory and a fixture of facts in, a plan out, no host involved.
//! `plan()` does no I/O, so each rule of the plan is pinned here by a case.

use std::collections::BTreeMap;
use warren::facts::{
    ClusterFacts, Facts, FileState, HostFacts, Membership, NodeFacts, NodeState, Unreadable,
};
use warren::inventory::{self, Inventory};
use warren::plan::{self, ClusterPlan, Options, Service, WaveKind};
use warren::render::{self, Rendered};

struct Case {
    _dir: tempfile::TempDir,
    inv: Inventory,
    rendered: Rendered,
}

fn case(edit: impl Fn(String) -> String) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<_> = (0..3).map(warren::lab::LabHost::new).collect();
    let text = edit(warren::lab::lab_inventory(&hosts));
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, &text).unwrap();
    std::fs::write(dir.path().join("erlang.cookie"), "PLANCASECOOKIE0123456789").unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/admin.password"), "a").unwrap();
    std::fs::write(dir.path().join("secrets/backend.password"), "b").unwrap();
    for i in 1..3 {
        let file = format!("secrets/producer-site{i}.password");
        std::fs::write(dir.path().join(file), "p").unwrap();
    }
    let inv = inventory::parse(&text, &path).unwrap();
    let rendered = render::render(&inv, None).unwrap();
    Case {
        _dir: dir,
        inv,
        rendered,
    }
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Facts of hosts that already have exactly the rendered files, running, members of
/// one cluster with every node.
fn converged(c: &Case) -> Vec<HostFacts> {
    let all: Vec<String> = c.inv.hosts.iter().map(|h| h.node_name()).collect();
    c.inv
        .hosts
        .iter()
        .zip(&c.rendered.hosts)
        .map(|(h, r)| {
            let mut files = BTreeMap::new();
            for f in &r.files {
                let state = match &f.content {
                    render::Content::Secret(s) => FileState::Hash {
                        sha256: sha256(s.expose().as_bytes()),
                        mode: f.mode.unwrap_or(0),
                        owner: f.owner.clone().unwrap_or_default(),
                    },
                    render::Content::Text(t) => FileState::Text {
                        content: t.as_bytes().to_vec(),
                        mode: f.mode.unwrap_or(0),
                        owner: f.owner.clone().unwrap_or_default(),
                    },
                };
                files.insert(f.path.clone(), state);
            }
            HostFacts {
                host: h.name.clone(),
                manager: warren::inventory::ServiceManager::Direct,
                files,
                node: NodeFacts {
                    pid: Some(100),
                    state: NodeState::Running,
                    membership: Some(Membership {
                        node: h.node_name(),
                        nodes: all.clone(),
                        running: all.clone(),
                        ram: vec![],
                        partitions: vec![],
                    }),
                    version: Some("3.10.8".into()),
                    rabbitmq_version: Some("3.10.8".into()),
                    erlang_version: Some("25.2.3".into()),
                    api: None,
                    messages: None,
                },
                api_port: 15672,
                stopped_plugins: vec![],
                hostname: Some(h.name.clone()),
                settings: r
                    .settings
                    .iter()
                    .map(|s| (s.key.clone(), s.value.clone()))
                    .collect(),
                service_stamp: r.service_stamp.clone(),
                server: None,
                ssh_shell: None,
                leftovers: vec![],
                packages: [
                    ("rabbitmq-server", "3.10.8-1.1+deb12u1"),
                    ("erlang-base", "1:25.2.3+dfsg-1+deb12u4"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            }
        })
        .collect()
}

fn plan_of(c: &Case, hosts: Vec<HostFacts>, force: bool) -> plan::Plan {
    plan_from(
        c,
        hosts,
        Err(Unreadable("not read in this case".into())),
        force,
    )
}

/// The plan for these facts, with `--force` or without.
fn plan_from(
    c: &Case,
    hosts: Vec<HostFacts>,
    cluster: Result<ClusterFacts, Unreadable>,
    force: bool,
) -> plan::Plan {
    let facts = Facts {
        hosts,
        cluster,
        links: Default::default(),
        balancer: None,
    };
    plan::plan(
        &c.inv,
        &c.rendered.hosts,
        &facts,
        Options {
            force,
            ..Default::default()
        },
    )
}

#[test]
fn converged_hosts_need_nothing() {
    let c = case(|t| t);
    let p = plan_of(&c, converged(&c), false);
    assert!(
        p.hosts.iter().all(|h| !h.changes()),
        "{}",
        plan::view::text(&p)
    );
    assert!(p.joins.is_empty());
    assert!(p.hosts.iter().all(|h| h
        .unchanged
        .iter()
        .all(|u| u.ends_with("already up to date"))));
}

#[test]
fn a_fresh_host_is_restarted_then_joined() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    let fresh = &mut facts[1];
    fresh
        .files
        .values_mut()
        .for_each(|f| *f = FileState::Missing);
    fresh.node.membership = Some(Membership {
        node: "rabbit@site1".into(),
        nodes: vec!["rabbit@site1".into()],
        running: vec!["rabbit@site1".into()],
        ram: vec![],
        partitions: vec![],
    });
    fresh.node.messages = Some(0);
    let p = plan_of(&c, facts, false);
    assert!(matches!(p.hosts[1].service, Service::Restart { .. }));
    assert!(p.hosts[1]
        .files
        .iter()
        .any(|f| f.diff == "(sensitive value) will be written"));
    assert!(!p.hosts[0].changes() && !p.hosts[2].changes());
    assert_eq!(p.joins.len(), 1);
    assert_eq!(p.joins[0].node, "rabbit@site1");
    assert_eq!(p.joins[0].seed, "rabbit@central");
    let text = plan::view::text(&p);
    assert!(
        !text.contains("PLANCASECOOKIE"),
        "the cookie leaked into the plan"
    );
}

#[test]
fn a_changed_cookie_stops_before_writing() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    for f in facts[2].files.values_mut() {
        if let FileState::Hash { sha256, .. } = f {
            *sha256 = "0".repeat(64);
        }
    }
    let p = plan_of(&c, facts, false);
    let cookie = p.hosts[2]
        .files
        .iter()
        .find(|f| f.path.ends_with(".erlang.cookie"))
        .unwrap();
    assert_eq!(cookie.diff, "(sensitive value) changed");
    assert_eq!(cookie.effect, render::Effect::StopWriteStart);
    assert!(
        matches!(&p.hosts[2].service, Service::Restart { reasons, .. } if reasons == &vec![".erlang.cookie changed".to_string()])
    );
}

/// A new cookie on every member would split the cluster until the last restart:
/// refused unless `--allow-disruptive`; a new cookie on one host (the repair of a
/// file changed by hand) is not.
#[test]
fn a_cookie_change_on_every_member_is_refused_as_disruptive() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    for h in facts.iter_mut() {
        for f in h.files.values_mut() {
            if let FileState::Hash { sha256, .. } = f {
                *sha256 = "0".repeat(64);
            }
        }
    }
    let p = plan_of(&c, facts.clone(), false);
    assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
    assert!(
        p.blockers[0].message.contains("--allow-disruptive")
            && p.blockers[0].message.contains("cannot reach"),
        "{}",
        p.blockers[0].message
    );
    let allowed = plan::plan(
        &c.inv,
        &c.rendered.hosts,
        &Facts {
            hosts: facts,
            cluster: Err(Unreadable("not read in this case".into())),
            links: Default::default(),
            balancer: None,
        },
        Options {
            allow_disruptive: true,
            ..Default::default()
        },
    );
    assert!(allowed.blockers.is_empty(), "{:?}", allowed.blockers);
}

#[test]
fn a_stopped_plugin_is_started_again_unless_a_restart_starts_it_anyway() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    facts[1].stopped_plugins = vec!["rabbitmq_mqtt".into()];
    facts[2].stopped_plugins = vec!["rabbitmq_mqtt".into()];
    let cookie = c.rendered.hosts[2]
        .files
        .iter()
        .find(|f| f.content.is_secret())
        .unwrap()
        .path
        .clone();
    facts[2].files.insert(
        cookie,
        FileState::Hash {
            sha256: "0".repeat(64),
            mode: 0o400,
            owner: "rabbitmq".into(),
        },
    );
    let p = plan_of(&c, facts, false);
    assert_eq!(p.hosts[1].start_plugins, vec!["rabbitmq_mqtt".to_string()]);
    assert_eq!(p.hosts[1].service, Service::Leave);
    assert!(p.hosts[1].changes());
    assert!(p.hosts[2].start_plugins.is_empty(), "the restart starts it");
    assert!(matches!(p.hosts[2].service, Service::Restart { .. }));
    let text = plan::view::text(&p);
    assert!(
        text.contains("~ start plugins rabbitmq_mqtt: enabled, but not running"),
        "{text}"
    );
}

#[test]
fn a_node_list_only_change_needs_no_restart() {
    let c = case(|t| t.replace("join = \"cli\"", "join = \"config\""));
    let mut facts = converged(&c);
    // The host's config lists one node fewer than the inventory now does.
    let conf = facts[0]
        .files
        .get_mut("/etc/rabbitmq/rabbitmq.conf")
        .unwrap();
    if let FileState::Text { content, .. } = conf {
        let text = String::from_utf8(content.clone()).unwrap();
        let fewer: String = text
            .lines()
            .filter(|l| !l.contains("classic_config.nodes.3"))
            .map(|l| format!("{l}\n"))
            .collect();
        *content = fewer.into_bytes();
    }
    let p = plan_of(&c, facts, false);
    let f = &p.hosts[0].files[0];
    assert!(!f.restarts, "{}", f.why);
    assert!(f.why.contains("node list"), "{}", f.why);
    assert_eq!(p.hosts[0].service, Service::Leave);
}

#[test]
fn a_member_of_another_cluster_or_messages_block_without_force() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    facts[1].node.membership = Some(Membership {
        node: "rabbit@site1".into(),
        nodes: vec!["rabbit@site1".into(), "rabbit@elsewhere".into()],
        running: vec!["rabbit@site1".into()],
        ram: vec![],
        partitions: vec![],
    });
    facts[2].node.membership = Some(Membership {
        node: "rabbit@site2".into(),
        nodes: vec!["rabbit@site2".into()],
        running: vec!["rabbit@site2".into()],
        ram: vec![],
        partitions: vec![],
    });
    facts[2].node.messages = Some(42);
    let p = plan_of(&c, facts.clone(), false);
    assert!(p.joins.is_empty());
    assert_eq!(p.blockers.len(), 2);
    assert!(p.blockers[0]
        .message
        .contains("belongs to another cluster (with rabbit@elsewhere)"));
    assert!(p.blockers[1].message.contains("holds 42 messages"));
    let forced = plan_of(&c, facts, true);
    assert_eq!(forced.joins.len(), 2);
    assert!(forced.blockers.is_empty());
}

#[test]
fn a_stopped_node_is_started_and_its_membership_checked_then() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    facts[2].node.pid = None;
    facts[2].node.state = NodeState::Stopped;
    facts[2].node.membership = None;
    let p = plan_of(&c, facts, false);
    assert_eq!(p.hosts[2].service, Service::Start);
    assert_eq!(p.joins.len(), 1);
    assert!(p.joins[0]
        .why
        .contains("joins if it is not a member once started"));
}

/// A systemd node that is down while its drop-in changes (a start that failed on a
/// broken drop-in, then fixed): systemd rereads the unit before the start, or it
/// would start the unit as it was (lab_systemd runs this for real).
#[test]
fn a_stopped_systemd_node_with_a_new_drop_in_is_started_after_a_daemon_reload() {
    let drop_in = "/etc/systemd/system/rabbitmq-server.service.d/warren.conf";
    let c = case(|t| {
        let at = t.rfind("service = \"direct\"").unwrap();
        format!("{}service = \"systemd\"{}", &t[..at], &t[at + 18..])
    });
    let mut facts = converged(&c);
    facts[2].node.pid = None;
    facts[2].node.state = NodeState::Stopped;
    facts[2].node.membership = None;
    assert!(facts[2].files.remove(drop_in).is_some());
    let p = plan_of(&c, facts, false);
    assert_eq!(p.hosts[2].service, Service::Start);
    assert!(p.hosts[2].daemon_reload());
    assert!(!p.hosts[1].daemon_reload());
    let text = plan::view::text(&p);
    assert!(
        text.contains("> start RabbitMQ (after systemctl daemon-reload): it is not running"),
        "{text}"
    );
}

/// An interrupted run can leave a node booting (warren was killed after starting it)
/// or with its rabbit application stopped (killed inside a join): the plan finishes
/// both, then checks the membership; a file change still means a restart.
#[test]
fn a_booting_node_is_awaited_and_a_stopped_app_started() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    for (i, state) in [(1, NodeState::Booting), (2, NodeState::AppStopped)] {
        facts[i].node.state = state;
        facts[i].node.membership = None;
    }
    let p = plan_of(&c, facts.clone(), false);
    assert_eq!(p.hosts[1].service, Service::AwaitBoot);
    assert_eq!(p.hosts[2].service, Service::StartApp);
    assert_eq!(p.joins.len(), 2, "{}", plan::view::text(&p));
    let text = plan::view::text(&p);
    assert!(
        text.contains("> wait for RabbitMQ to finish booting"),
        "{text}"
    );
    assert!(text.contains("> start the rabbit application"), "{text}");
    assert!(p.blockers.is_empty());

    facts[2].files.insert(
        c.rendered.hosts[2].files[0].path.clone(),
        FileState::Missing,
    );
    let p = plan_of(&c, facts, false);
    assert!(matches!(p.hosts[2].service, Service::Restart { .. }));
}

#[test]
fn an_unreadable_cluster_is_ensured_not_called_unchanged() {
    let c = case(|t| t);
    let p = plan_of(&c, converged(&c), false);
    match &p.cluster {
        ClusterPlan::Unknown { reason, changes } => {
            assert_eq!(reason, "not read in this case");
            assert!(changes.iter().any(|ch| ch.name == "site.site1.data"));
        }
        other => panic!("{other:?}"),
    }
    assert!(p.has_changes());
}

#[test]
fn a_converged_cluster_plans_no_change_and_a_moved_master_is_moved_back() {
    let c = case(|t| t);
    let queues = |master: &str| -> Vec<warren::rabbitmq::api::QueueInfo> {
        let q = |site: &str, node: &str| {
            serde_json::from_value(serde_json::json!({
                "name": format!("site.{site}.data"), "vhost": "/", "type": "classic",
                "durable": true, "node": node, "slave_nodes": ["rabbit@central"],
                "synchronised_slave_nodes": ["rabbit@central"],
                "policy": format!("warren-mirror-{site}")
            }))
            .unwrap()
        };
        vec![q("site1", master), q("site2", "rabbit@site2")]
    };
    let cluster = |master: &str| -> ClusterFacts {
        let defs = warren::render::definitions::build_without_passwords(&c.inv);
        ClusterFacts {
            vhosts: v(serde_json::json!([{"name": "/"}])),
            users: v(serde_json::json!([
                {"name": "admin", "password_hash": hash("a"), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]},
                {"name": "backend", "password_hash": hash("b"), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
                {"name": "producer-site1", "password_hash": hash("p"), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
                {"name": "producer-site2", "password_hash": hash("p"), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
            ])),
            permissions: v(serde_json::to_value(&defs.permissions).unwrap()),
            policies: v(serde_json::to_value(&defs.policies).unwrap()),
            exchanges: v(serde_json::to_value(&defs.exchanges).unwrap()),
            queues: queues(master),
            bindings: v(serde_json::to_value(&defs.bindings).unwrap()),
            nodes: vec![],
            parameters: vec![],
            feature_flags: vec![],
        }
    };
    let same = warren::plan::cluster::plan(
        &c.inv,
        warren::inventory::Broker::Cluster,
        &Ok(cluster("rabbit@site1")),
    );
    assert!(!same.has_changes(), "{same:?}");
    // An interrupted master move left its temporary policy: the plan removes it,
    // first (issue 12).
    let mut left = cluster("rabbit@site1");
    left.policies.push(v(serde_json::json!({
        "name": "warren-move-site.site1.data", "vhost": "/", "pattern": "^site\\.site1\\.data$",
        "apply-to": "queues", "priority": 1000,
        "definition": {"ha-mode": "nodes", "ha-params": ["rabbit@site1"]}
    })));
    let cleanup =
        warren::plan::cluster::plan(&c.inv, warren::inventory::Broker::Cluster, &Ok(left));
    let changes = cleanup.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (changes[0].action.symbol(), changes[0].name.as_str()),
        ("-", "warren-move-site.site1.data")
    );
    assert!(changes[0].detail.contains("interrupted master move"));
    // An interrupted verify and an interrupted drill left their queues, policies and
    // exchange: all removed, policies first.
    let mut left = cluster("rabbit@site1");
    for name in ["warren-verify-site1", "warren-drill-site2"] {
        left.policies.push(v(serde_json::json!({
            "name": name, "vhost": "/", "pattern": "^x$", "apply-to": "queues",
            "priority": 1000, "definition": {}
        })));
    }
    for name in ["warren.verify.site1", "warren.drill.site2"] {
        left.queues.push(v(
            serde_json::json!({"name": name, "vhost": "/", "durable": true}),
        ));
    }
    left.exchanges.push(v(serde_json::json!(
        {"name": "warren.verify", "vhost": "/", "type": "direct", "durable": false}
    )));
    let cleanup =
        warren::plan::cluster::plan(&c.inv, warren::inventory::Broker::Cluster, &Ok(left));
    let deleted: Vec<(&str, &str)> = cleanup
        .changes()
        .iter()
        .map(|c| (c.action.symbol(), c.name.as_str()))
        .collect();
    assert_eq!(
        deleted,
        [
            ("-", "warren-verify-site1"),
            ("-", "warren-drill-site2"),
            ("-", "warren.verify.site1"),
            ("-", "warren.drill.site2"),
            ("-", "warren.verify")
        ]
    );
    // RabbitMQ's default user goes once the inventory's administrator exists, last.
    let mut with_guest = cluster("rabbit@site1");
    with_guest.users.push(v(serde_json::json!(
        {"name": "guest", "password_hash": hash("guest"), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}
    )));
    let guest =
        warren::plan::cluster::plan(&c.inv, warren::inventory::Broker::Cluster, &Ok(with_guest));
    let changes = guest.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (changes[0].action.symbol(), changes[0].name.as_str()),
        ("-", "guest")
    );
    let moved = warren::plan::cluster::plan(
        &c.inv,
        warren::inventory::Broker::Cluster,
        &Ok(cluster("rabbit@central")),
    );
    let changes = moved.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        changes[0].detail.contains("move it back to rabbit@site1"),
        "{}",
        changes[0].detail
    );
}

fn v<T: serde::de::DeserializeOwned>(x: serde_json::Value) -> T {
    serde_json::from_value(x).unwrap()
}

/// RabbitMQ's salted SHA-256 of `pw` with a fixed salt.
fn hash(pw: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let salt = [1u8, 2, 3, 4];
    let mut raw = salt.to_vec();
    raw.extend(
        sha2::Sha256::new()
            .chain_update(salt)
            .chain_update(pw)
            .finalize(),
    );
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The facts with host `i`'s rabbitmq.conf edited by hand, so the plan restarts it.
fn conf_drifted(c: &Case, i: usize) -> Vec<HostFacts> {
    let mut facts = converged(c);
    let conf = c.rendered.hosts[i]
        .files
        .iter()
        .find(|f| f.path.ends_with("rabbitmq.conf"))
        .unwrap();
    facts[i].files.insert(
        conf.path.clone(),
        FileState::Text {
            content: b"# edited by hand\n".to_vec(),
            mode: conf.mode.unwrap_or(0),
            owner: conf.owner.clone().unwrap_or_default(),
        },
    );
    facts
}

fn quorum_queue(name: &str, members: &[&str], online: &[&str]) -> warren::rabbitmq::api::QueueInfo {
    serde_json::from_value(serde_json::json!({
        "name": name, "vhost": "/", "type": "quorum",
        "members": members, "online": online, "leader": members[0]
    }))
    .unwrap()
}

fn plan_with_queues(
    c: &Case,
    hosts: Vec<HostFacts>,
    queues: Vec<warren::rabbitmq::api::QueueInfo>,
    force: bool,
) -> plan::Plan {
    let cluster = ClusterFacts {
        queues,
        ..Default::default()
    };
    plan_from(c, hosts, Ok(cluster), force)
}

/// A restart that leaves a quorum queue without a majority of online members is
/// refused with the reason; with three members one restart keeps the majority;
/// --force lets an operator who means it through.
#[test]
fn a_restart_below_a_quorum_majority_is_refused() {
    let c = case(|t| t);
    let two = quorum_queue(
        "q2",
        &["rabbit@site1", "rabbit@central"],
        &["rabbit@site1", "rabbit@central"],
    );
    let p = plan_with_queues(&c, conf_drifted(&c, 1), vec![two.clone()], false);
    assert!(matches!(p.hosts[1].service, Service::Restart { .. }));
    assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
    assert_eq!(p.blockers[0].host, "site1");
    assert!(
        p.blockers[0].message.contains(
            "restarting rabbit@site1 takes quorum queue q2 below its majority (1 of its 2 members online, 2 needed)"
        ),
        "{}",
        p.blockers[0].message
    );
    let all = ["rabbit@site1", "rabbit@central", "rabbit@site2"];
    let three = quorum_queue("q3", &all, &all);
    let p = plan_with_queues(&c, conf_drifted(&c, 1), vec![three.clone()], false);
    assert!(p.blockers.is_empty(), "{:?}", p.blockers);
    // A member already offline: the restart would leave one of three.
    let degraded = quorum_queue("q3", &all, &["rabbit@site1", "rabbit@central"]);
    let p = plan_with_queues(&c, conf_drifted(&c, 1), vec![degraded], false);
    assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
    let p = plan_with_queues(&c, conf_drifted(&c, 1), vec![two], true);
    assert!(p.blockers.is_empty());
}

/// Restarting the only disc node of a cluster whose other nodes are RAM nodes is
/// refused; a RAM node's restart is not.
#[test]
fn restarting_the_only_disc_node_is_refused() {
    let c = case(|t| t);
    let ram = |mut facts: Vec<HostFacts>| {
        for f in &mut facts {
            let m = f.node.membership.as_mut().unwrap();
            m.ram = vec!["rabbit@site1".into(), "rabbit@site2".into()];
        }
        facts
    };
    let p = plan_of(&c, ram(conf_drifted(&c, 0)), false);
    assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
    assert!(p.blockers[0]
        .message
        .contains("rabbit@central is the cluster's only disc node"));
    assert!(plan_of(&c, ram(conf_drifted(&c, 1)), false)
        .blockers
        .is_empty());
    assert!(plan_of(&c, ram(conf_drifted(&c, 0)), true)
        .blockers
        .is_empty());
}

/// The temporary file of an upload that an interrupted run left is found by the facts
/// and deleted by the plan, on a host that otherwise needs nothing.
#[test]
fn a_half_written_upload_is_cleaned_up() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    facts[1].leftovers = vec!["/etc/rabbitmq/rabbitmq.conf.warren-new".into()];
    let p = plan_of(&c, facts, false);
    assert!(p.hosts[1].changes());
    assert_eq!(p.hosts[1].service, Service::Leave);
    let text = plan::view::text(&p);
    assert!(
        text.contains("  - /etc/rabbitmq/rabbitmq.conf.warren-new  (the temporary file of an upload an interrupted run left: deleted)"),
        "{text}"
    );
}

fn node(name: &str, running: bool) -> warren::rabbitmq::api::NodeInfo {
    serde_json::from_value(serde_json::json!({"name": name, "running": running, "type": "disc"}))
        .unwrap()
}

fn classic_queue(
    name: &str,
    master: &str,
    mirrors: &[&str],
    synced: &[&str],
) -> warren::rabbitmq::api::QueueInfo {
    serde_json::from_value(serde_json::json!({
        "name": name, "vhost": "/", "type": "classic", "durable": true, "node": master,
        "slave_nodes": mirrors, "synchronised_slave_nodes": synced
    }))
    .unwrap()
}

fn plan_with_cluster(c: &Case, cf: ClusterFacts, force: bool) -> plan::Plan {
    plan_from(c, converged(c), Ok(cf), force)
}

/// A node the cluster lists and the inventory does not (its host removed from it):
/// its queue's master moves to the synchronised copy on central, its quorum members
/// go, then it is stopped and forgotten; refused where a queue would lose messages.
#[test]
fn a_host_removed_from_the_inventory_is_drained_stopped_and_forgotten() {
    let c = case(|t| t);
    let mut nodes: Vec<_> = c
        .inv
        .hosts
        .iter()
        .map(|h| node(&h.node_name(), true))
        .collect();
    nodes.push(node("rabbit@site9", true));
    let cf = |queues| ClusterFacts {
        nodes: nodes.clone(),
        queues,
        ..Default::default()
    };
    let down = {
        let mut n = nodes.clone();
        n.last_mut().unwrap().running = false;
        n
    };
    let moved = classic_queue(
        "site.site9.data",
        "rabbit@site9",
        &["rabbit@central"],
        &["rabbit@central"],
    );
    let quorum = quorum_queue(
        "q",
        &["rabbit@site9", "rabbit@central", "rabbit@site1"],
        &["rabbit@site9", "rabbit@central", "rabbit@site1"],
    );
    let p = plan_with_cluster(&c, cf(vec![moved, quorum]), false);
    assert!(p.blockers.is_empty(), "{:?}", p.blockers);
    assert_eq!(p.departures.len(), 1);
    let text = plan::view::text(&p);
    assert!(
        text.contains("  - remove rabbit@site9 (not in the inventory), first: move the master of site.site9.data to rabbit@central (its synchronised copy), delete its member of quorum queue q, stop the node, forget it (forget_cluster_node); its files stay on its host"),
        "{text}"
    );
    assert!(p.has_changes());

    // Its copy not synchronised: refused, even with --force (syncing loses nothing).
    let unsynced = classic_queue("site.site9.data", "rabbit@site9", &["rabbit@central"], &[]);
    for force in [false, true] {
        let p = plan_with_cluster(&c, cf(vec![unsynced.clone()]), force);
        assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
        assert!(p.blockers[0]
            .message
            .contains("none of its copies (rabbit@central) is synchronised"));
    }
    // A queue on that node alone: refused unless --force.
    let alone = classic_queue("orders", "rabbit@site9", &[], &[]);
    let p = plan_with_cluster(&c, cf(vec![alone.clone()]), false);
    assert!(p.blockers[0]
        .message
        .contains("durable queue orders lives on it alone"));
    assert!(plan_with_cluster(&c, cf(vec![alone]), true)
        .blockers
        .is_empty());

    // Already down: only forgotten.
    let p = plan_with_cluster(
        &c,
        ClusterFacts {
            nodes: down,
            ..Default::default()
        },
        false,
    );
    assert_eq!(
        p.departures[0].describe(),
        "forget it (forget_cluster_node); its files stay on its host"
    );
}

/// Facts of a host fresh from its installer: none of warren's files, RabbitMQ running
/// standalone, no messages.
fn fresh(c: &Case, facts: &mut [HostFacts], i: usize) {
    let node = c.inv.hosts[i].node_name();
    let f = &mut facts[i];
    f.files.values_mut().for_each(|s| *s = FileState::Missing);
    f.node.membership = Some(Membership {
        node: node.clone(),
        nodes: vec![node.clone()],
        running: vec![node],
        ram: vec![],
        partitions: vec![],
    });
    f.node.messages = Some(0);
}

/// The waves as (kind, host names), in order.
fn waves(p: &plan::Plan) -> Vec<(WaveKind, Vec<String>)> {
    p.waves
        .iter()
        .map(|w| {
            (
                w.kind,
                w.hosts.iter().map(|&i| p.hosts[i].host.clone()).collect(),
            )
        })
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A first bootstrap: the seed alone, then every fresh site together; the plan says so.
#[test]
fn a_bootstrap_is_the_seed_then_every_fresh_node_at_once() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    for i in 0..3 {
        fresh(&c, &mut facts, i);
    }
    let p = plan_of(&c, facts, false);
    assert_eq!(
        waves(&p),
        vec![
            (WaveKind::Seed, names(&["central"])),
            (WaveKind::Fresh, names(&["site1", "site2"])),
        ]
    );
    let text = plan::view::text(&p);
    assert!(
        text.contains("  1. seed (alone): central; the seed: it runs before any node joins it"),
        "{text}"
    );
    assert!(
        text.contains("  2. fresh nodes (together): site1, site2; no messages and in no cluster"),
        "{text}"
    );
}

/// A node added to a running cluster: the members' hosts-file change at once, without
/// a restart; the new node on its own fresh wave; nobody else restarts.
#[test]
fn an_added_node_is_fresh_and_the_members_change_without_a_restart() {
    let c = case(|t| t);
    let mut facts = converged(&c);
    fresh(&c, &mut facts, 2);
    // The members lack the new host in their hosts block only.
    for f in facts.iter_mut().take(2) {
        for (path, state) in f.files.iter_mut() {
            if path == "/etc/hosts" {
                *state = FileState::Text {
                    content: b"127.0.0.1 localhost\n".to_vec(),
                    mode: 0o644,
                    owner: "root".into(),
                };
            }
        }
    }
    let p = plan_of(&c, facts, false);
    assert_eq!(p.restarts(), 1, "{}", plan::view::text(&p));
    assert_eq!(
        waves(&p),
        vec![
            (WaveKind::NoRestart, names(&["central", "site1"])),
            (WaveKind::Fresh, names(&["site2"])),
        ]
    );
}

/// Members that restart go one at a time; a node holding messages is never fresh (with
/// --force it is reset, one at a time, after the restarts); a stopped node comes first.
#[test]
fn members_roll_one_at_a_time_and_only_nodes_with_nothing_to_lose_go_together() {
    let c = case(|t| t);
    let mut facts = conf_drifted(&c, 0);
    let drifted = conf_drifted(&c, 1);
    facts[1] = drifted[1].clone();
    let p = plan_of(&c, facts.clone(), false);
    assert_eq!(
        waves(&p),
        vec![(WaveKind::Rolling, names(&["central", "site1"]))]
    );
    assert!(plan::view::text(&p).contains("1. rolling restart (one at a time): central, site1;"));

    fresh(&c, &mut facts, 2);
    facts[2].node.messages = Some(7);
    let p = plan_of(&c, facts.clone(), true);
    assert_eq!(
        waves(&p),
        vec![
            (WaveKind::Rolling, names(&["central", "site1", "site2"])),
            (WaveKind::Joins, names(&["site2"])),
        ]
    );

    facts[2].node.pid = None;
    facts[2].node.state = NodeState::Stopped;
    facts[2].node.membership = None;
    let p = plan_of(&c, facts, false);
    assert_eq!(
        waves(&p),
        vec![
            (WaveKind::BringUp, names(&["site2"])),
            (WaveKind::Rolling, names(&["central", "site1"])),
            (WaveKind::Joins, names(&["site2"])),
        ]
    );
}

/// `replication = "quorum"` on a cluster whose site queues are classic is a
/// migration per queue, its steps from where the cluster is now: from the start,
/// and resumed where an interrupted run left the temporary queue; refused without
/// the shovel plugin that moves the messages.
#[test]
fn mirrored_queues_are_migrated_to_quorum_from_wherever_a_run_stopped() {
    let quorum = |plugins: &str| {
        let plugins = plugins.to_string();
        move |t: String| {
            t.replace("replication = \"mirrored\"", "replication = \"quorum\"")
                .replace(
                    "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\"]",
                    &plugins,
                )
        }
    };
    let with_shovel = "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\", \"rabbitmq_shovel\"]";
    let c = case(quorum(with_shovel));
    let classic = |site: &str| {
        let mut q = classic_queue(
            &format!("site.{site}.data"),
            &format!("rabbit@{site}"),
            &["rabbit@central"],
            &["rabbit@central"],
        );
        q.messages = Some(20);
        q
    };
    let start = ClusterFacts {
        queues: vec![classic("site1"), classic("site2")],
        ..Default::default()
    };
    let p = warren::plan::cluster::plan(
        &c.inv,
        warren::inventory::Broker::Cluster,
        &Ok(start.clone()),
    );
    let text = format!("{p:?}");
    let migrations: Vec<_> = p
        .changes()
        .iter()
        .filter(|ch| ch.resource == warren::plan::cluster::Resource::Migration)
        .map(|ch| (ch.name.clone(), ch.detail.clone()))
        .collect();
    assert_eq!(migrations.len(), 2, "{text}");
    assert!(migrations[0].1.starts_with("classic -> quorum without losing a message: 1) quorum queue warren.migrate.site.site1.data bound to site.site1 in site.site1.data's place"), "{migrations:?}");
    assert!(
        migrations[0]
            .1
            .contains("site.site1.data's 20 message(s) shovelled into it"),
        "{migrations:?}"
    );
    // Stopped after the old queue was deleted: the rest, marked as resumed.
    let mut resumed = start.clone();
    resumed.queues = vec![
        serde_json::from_value(serde_json::json!({
            "name": "warren.migrate.site.site1.data", "vhost": "/", "type": "quorum"
        }))
        .unwrap(),
        classic("site2"),
    ];
    let p = warren::plan::cluster::plan(&c.inv, warren::inventory::Broker::Cluster, &Ok(resumed));
    let site1 = p
        .changes()
        .iter()
        .find(|ch| ch.name == "site.site1.data")
        .unwrap_or_else(|| panic!("{p:?}"));
    assert_eq!(site1.resource, warren::plan::cluster::Resource::Migration);
    assert!(
        site1.detail.contains(
            "(resuming an interrupted run): 1) site.site1.data declared as a quorum queue"
        ),
        "{}",
        site1.detail
    );
    // Without the shovel plugin: refused, saying what to add.
    let c = case(quorum(
        "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\"]",
    ));
    let p = warren::plan::cluster::plan(&c.inv, warren::inventory::Broker::Cluster, &Ok(start));
    let warren::plan::cluster::ClusterPlan::Known { blockers, .. } = &p else {
        panic!("{p:?}")
    };
    assert!(
        blockers
            .iter()
            .any(|b| b.contains("add \"rabbitmq_shovel\" to cluster.plugins")),
        "{blockers:?}"
    );
}

/// A federation link keeps its queue and exchange on the site when it stops (so that
/// they buffer through central's restarts): once the inventory links the site
/// another way, the plan for the site's broker removes them, the exchange first, and
/// the queue only when empty; one that still holds messages blocks, naming them.
#[test]
fn a_former_federation_links_queue_goes_once_empty() {
    let c = case(|t| {
        t.replacen(
            "queue = \"site.site2.data\"\n",
            "queue = \"site.site2.data\"\nlink = \"shovel\"\nlink_password = { env = \"WARREN_TEST_LINK\" }\n",
            1,
        )
    });
    let site = warren::inventory::Broker::Site(1);
    let site_facts = |messages: u64| -> ClusterFacts {
        let defs = warren::render::definitions::for_broker(&c.inv, site);
        let mut queues: Vec<serde_json::Value> = defs
            .queues
            .iter()
            .map(|q| serde_json::json!({"name": q.name, "vhost": q.vhost, "durable": true, "type": "classic", "node": "rabbit@site2"}))
            .collect();
        queues.push(serde_json::json!({"name": "federation: site.site2 -> lab", "vhost": "/", "durable": true, "type": "classic", "messages": messages}));
        let mut exchanges = serde_json::to_value(&defs.exchanges).unwrap();
        exchanges.as_array_mut().unwrap().push(serde_json::json!(
            {"name": "federation: site.site2 -> lab B", "vhost": "/", "type": "x-federation-upstream", "durable": true}
        ));
        ClusterFacts {
            vhosts: v(serde_json::json!([{"name": "/"}])),
            users: v(serde_json::json!([
                {"name": "warren-link-site2", "password_hash": hash("l"), "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
            ])),
            permissions: v(serde_json::to_value(&defs.permissions).unwrap()),
            policies: v(serde_json::to_value(&defs.policies).unwrap()),
            exchanges: v(exchanges),
            queues: v(serde_json::Value::Array(queues)),
            bindings: v(serde_json::to_value(&defs.bindings).unwrap()),
            nodes: vec![],
            parameters: vec![],
            feature_flags: vec![],
        }
    };
    let left = |p: &ClusterPlan| -> Vec<(String, String)> {
        p.changes()
            .iter()
            .filter(|c| c.name.starts_with("federation: "))
            .map(|c| (c.action.symbol().to_string(), c.name.clone()))
            .collect()
    };
    let empty = warren::plan::cluster::plan(&c.inv, site, &Ok(site_facts(0)));
    assert_eq!(
        left(&empty),
        [
            ("-".into(), "federation: site.site2 -> lab B".into()),
            ("-".into(), "federation: site.site2 -> lab".into())
        ],
        "{empty:?}"
    );
    let ClusterPlan::Known { blockers, .. } = &empty else {
        panic!("{empty:?}")
    };
    assert!(blockers.is_empty(), "{blockers:?}");
    // The federation's link user on the site goes too (the shovel's is on central).
    let user: Vec<_> = empty
        .changes()
        .iter()
        .filter(|c| c.name == "warren-link-site2")
        .map(|c| c.action.symbol())
        .collect();
    assert_eq!(user, ["-"], "{empty:?}");
    let full = warren::plan::cluster::plan(&c.inv, site, &Ok(site_facts(3)));
    let ClusterPlan::Known { blockers, .. } = &full else {
        panic!("{full:?}")
    };
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert!(
        blockers[0].starts_with("queue 'federation: site.site2 -> lab' on site2 holds 3 messages"),
        "{}",
        blockers[0]
    );
    assert!(!left(&full)
        .iter()
        .any(|(_, n)| n == "federation: site.site2 -> lab"));
    // While the site is federated they are the link's own: left alone.
    let fed = case(|t| {
        t.replacen(
            "queue = \"site.site2.data\"\n",
            "queue = \"site.site2.data\"\nlink = \"federation\"\nlink_password = { env = \"WARREN_TEST_LINK\" }\n",
            1,
        )
    });
    let p = warren::plan::cluster::plan(&fed.inv, site, &Ok(site_facts(3)));
    assert!(left(&p).is_empty(), "{p:?}");
    assert!(
        !p.changes()
            .iter()
            .any(|c| c.name == "warren-link-site2" && c.action.symbol() == "-"),
        "{p:?}"
    );
}

/// HAProxy on the `[load_balancer]` host: refused where it is not installed, started
/// where it does not run, reloaded when haproxy.cfg changes (and nothing restarts
/// RabbitMQ for it), left alone otherwise.
#[test]
fn the_balancer_is_started_reloaded_or_refused_where_haproxy_is_missing() {
    use warren::facts::balancer::BalancerFacts;
    use warren::plan::balancer::Action;
    let c = case(|t| format!("{t}\n[load_balancer]\nhost = \"central\"\n"));
    let with = |hosts: Vec<HostFacts>, version: Option<&str>, running: bool| {
        plan::plan(
            &c.inv,
            &c.rendered.hosts,
            &Facts {
                hosts,
                cluster: Err(Unreadable("not read in this case".into())),
                links: Default::default(),
                balancer: Some(Ok(BalancerFacts {
                    version: version.map(str::to_string),
                    running,
                })),
            },
            Options::default(),
        )
    };
    let p = with(converged(&c), Some("2.6.12"), true);
    assert_eq!(p.balancer.as_ref().unwrap().action, Action::Leave);
    assert!(
        p.hosts.iter().all(|h| !h.changes()),
        "{}",
        plan::view::text(&p)
    );

    let p = with(converged(&c), Some("2.6.12"), false);
    assert_eq!(p.balancer.as_ref().unwrap().action, Action::Start);

    let mut hosts = converged(&c);
    hosts[0].files.remove("/etc/haproxy/haproxy.cfg");
    let p = with(hosts, Some("2.6.12"), true);
    assert_eq!(p.balancer.as_ref().unwrap().action, Action::Reload);
    assert_eq!(p.restarts(), 0);
    let text = plan::view::text(&p);
    assert!(text.contains("+ /etc/haproxy/haproxy.cfg  (HAProxy reads it: reloaded once the cluster is done; RabbitMQ is not restarted)"), "{text}");
    assert!(
        text.contains("load balancer (HAProxy on central):\n  ~ haproxy.cfg changed: reload"),
        "{text}"
    );

    let p = with(converged(&c), None, false);
    assert!(p.balancer.is_none());
    assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
    assert!(
        p.blockers[0]
            .message
            .starts_with("HAProxy is not installed, and ")
            && p.blockers[0].message.ends_with("names this host in [load_balancer]: install Debian's package (apt-get install haproxy), then rerun"),
        "{}",
        p.blockers[0].message
    );
}

// Rolling upgrades: the lab's three hosts (central, site1, site2) run Debian's
// RabbitMQ 3.10.8 on Erlang 25.2.3 (`converged`); each case pins other versions.

/// The lab inventory with `keys` added to `[cluster]`.
fn pinned(keys: &str) -> Case {
    let keys = keys.to_string();
    case(move |t| t.replacen("[cluster]\n", &format!("[cluster]\n{keys}\n"), 1))
}

fn flags(list: &[(&str, &str, &str)]) -> ClusterFacts {
    let flags: Vec<serde_json::Value> = list
        .iter()
        .map(|(name, state, stability)| {
            serde_json::json!({"name": name, "state": state, "stability": stability})
        })
        .collect();
    ClusterFacts {
        feature_flags: v(serde_json::Value::Array(flags)),
        ..Default::default()
    }
}

fn blockers(p: &plan::Plan) -> Vec<String> {
    p.blockers
        .iter()
        .map(|b| format!("{}: {}", b.host, b.message))
        .collect()
}

#[test]
fn an_upgrade_goes_one_node_at_a_time_sites_first_then_every_flag() {
    let c = pinned("rabbitmq_version = \"3.10.25\"\nrabbitmq_package = \"3.10.25-1\"");
    let p = plan_of(&c, converged(&c), false);
    let text = plan::view::text(&p);
    assert!(p.blockers.is_empty(), "{text}");
    let names =
        |v: &[usize]| -> Vec<String> { v.iter().map(|&i| c.inv.hosts[i].name.clone()).collect() };
    assert_eq!(
        names(&p.upgrade.order),
        ["site1", "site2", "central"],
        "{text}"
    );
    // One wave, one node at a time, and nothing else restarts.
    assert_eq!(p.waves.len(), 1, "{text}");
    assert_eq!(p.waves[0].kind, WaveKind::Upgrade);
    assert!(!p.waves[0].parallel());
    assert_eq!(names(&p.waves[0].hosts), ["site1", "site2", "central"]);
    for h in &p.hosts {
        let up = h.upgrade.as_ref().expect("every node upgrades");
        assert_eq!(up.install.rabbitmq.as_deref(), Some("3.10.25-1"));
        assert_eq!(up.install.erlang, None);
        assert!(!up.new_series, "a patch release");
    }
    assert_eq!(names(&p.upgrade.enable_flags), ["central"]);
    assert!(
        text.contains(
            "  ^ upgrade: RabbitMQ 3.10.8 (3.10.8-1.1+deb12u1) -> 3.10.25 (3.10.25-1)\n      drain (maintenance mode"
        ),
        "{text}"
    );
    assert!(
        text.contains("rolling upgrade (one at a time): site1, site2, central"),
        "{text}"
    );
    assert!(
        text.contains("+ enable every stable feature flag through central (rabbitmqctl enable_feature_flag all): after the last node's upgrade"),
        "{text}"
    );
    assert!(text.contains("3 node upgrade(s)"), "{text}");
}

#[test]
fn a_new_series_needs_every_stable_flag_enabled_first() {
    let keys = "rabbitmq_version = \"3.11.28\"\nrabbitmq_package = \"3.11.28-1\"";
    let c = pinned(keys);
    // A stable flag disabled: refused on every node, the flag named.
    let off = flags(&[
        ("quorum_queue", "enabled", "stable"),
        ("stream_queue", "disabled", "stable"),
        ("khepri_db", "disabled", "experimental"),
    ]);
    let p = plan_with_cluster(&c, off, false);
    let b = blockers(&p);
    assert_eq!(b.len(), 3, "{b:?}");
    assert!(b[0].starts_with("site1: rabbit@site1 -> RabbitMQ 3.11.28: every stable feature flag must be enabled before a new release series"), "{b:?}");
    assert!(
        b[0].contains(
            "and stream_queue is not; run `rabbitmqctl enable_feature_flag all` on central"
        ),
        "{b:?}"
    );
    assert!(
        !b[0].contains("khepri_db"),
        "experimental flags are not asked for: {b:?}"
    );
    assert!(p.upgrade.order.is_empty());
    // Unreadable flags: refused too ("could not check" is never "fine").
    let p = plan_of(&c, converged(&c), false);
    assert!(
        blockers(&p)[0].contains("cannot be read (not read in this case)"),
        "{:?}",
        blockers(&p)
    );
    // All enabled: the upgrade, marked as a new series.
    let on = flags(&[
        ("quorum_queue", "enabled", "stable"),
        ("stream_queue", "enabled", "stable"),
    ]);
    let p = plan_with_cluster(&c, on, false);
    assert!(p.blockers.is_empty(), "{}", plan::view::text(&p));
    assert_eq!(p.upgrade.order.len(), 3);
    assert!(p
        .hosts
        .iter()
        .all(|h| h.upgrade.as_ref().unwrap().new_series));
}

#[test]
fn what_the_upgrade_guide_forbids_is_refused() {
    let flags_on = || flags(&[("quorum_queue", "enabled", "stable")]);
    // 3.10 -> 3.12 skips 3.11.
    let c = pinned("rabbitmq_version = \"3.12.13\"\nrabbitmq_package = \"3.12.13-1\"");
    let b = blockers(&plan_with_cluster(&c, flags_on(), false));
    assert_eq!(b.len(), 3, "{b:?}");
    assert!(b[0].contains("RabbitMQ 3.10.8 -> 3.12.13 skips a release series: a rolling upgrade goes one series at a time (3.11 next)"), "{b:?}");
    // A downgrade.
    let c = pinned("rabbitmq_version = \"3.10.7\"\nrabbitmq_package = \"3.10.7-1\"");
    let b = blockers(&plan_with_cluster(&c, flags_on(), false));
    assert!(
        b[0].contains("3.10.8 -> 3.10.7 is a downgrade, which RabbitMQ does not support"),
        "{b:?}"
    );
    // 4.0 from anything but 3.13.
    let c = pinned("rabbitmq_version = \"4.0.3\"\nrabbitmq_package = \"4.0.3-1\"\nerlang_version = \"26.2\"\nerlang_package = \"1:26.2.5-1\"");
    let mut facts = converged(&c);
    for f in &mut facts {
        f.packages
            .insert("rabbitmq-server".into(), "3.12.13-1".into());
        f.node.rabbitmq_version = Some("3.12.13".into());
    }
    let b = blockers(&plan_from(&c, facts, Ok(flags_on()), false));
    assert!(
        b[0].contains("3.12.13 -> 4.0.3 skips a release series")
            && b[0].contains("4.0 only from 3.13"),
        "{b:?}"
    );
    // 3.12 only from 3.11.18.
    let c = pinned("rabbitmq_version = \"3.12.13\"\nrabbitmq_package = \"3.12.13-1\"");
    let mut facts = converged(&c);
    for f in &mut facts {
        f.packages
            .insert("rabbitmq-server".into(), "3.11.10-1".into());
        f.node.rabbitmq_version = Some("3.11.10".into());
    }
    let b = blockers(&plan_from(&c, facts, Ok(flags_on()), false));
    assert!(
        b[0].contains("RabbitMQ 3.12.13 can be reached only from 3.11.18 or later"),
        "{b:?}"
    );
    // An Erlang the target does not run on: 3.11 needs 25.0 at least.
    let c = pinned("rabbitmq_version = \"3.11.28\"\nrabbitmq_package = \"3.11.28-1\"");
    let mut facts = converged(&c);
    for f in &mut facts {
        f.packages
            .insert("erlang-base".into(), "1:24.3.4.8-1".into());
        f.node.erlang_version = Some("24.3.4.8".into());
    }
    let b = blockers(&plan_from(&c, facts, Ok(flags_on()), false));
    assert!(
        b[0].contains("RabbitMQ 3.11.28 runs on Erlang 25.0 to 25.3.x, not 24.3.4.8"),
        "{b:?}"
    );
    // No apt version named for a Linux host: nothing to install from.
    let c = pinned("rabbitmq_version = \"3.10.25\"");
    let b = blockers(&plan_with_cluster(&c, flags_on(), false));
    assert!(b[0].contains("site1 has RabbitMQ 3.10.8 and the inventory pins 3.10.25: name apt's package version to install with rabbitmq_package"), "{b:?}");
}

#[test]
fn an_interrupted_upgrade_is_resumed_where_it_stopped() {
    let c = pinned("rabbitmq_version = \"3.10.25\"\nrabbitmq_package = \"3.10.25-1\"");
    let mut facts = converged(&c);
    // site1 done; site2's packages installed but its node still the old one.
    facts[1]
        .packages
        .insert("rabbitmq-server".into(), "3.10.25-1".into());
    facts[1].node.rabbitmq_version = Some("3.10.25".into());
    facts[2]
        .packages
        .insert("rabbitmq-server".into(), "3.10.25-1".into());
    let p = plan_of(&c, facts, false);
    let text = plan::view::text(&p);
    assert!(p.blockers.is_empty(), "{text}");
    let order: Vec<&str> = p
        .upgrade
        .order
        .iter()
        .map(|&i| c.inv.hosts[i].name.as_str())
        .collect();
    assert_eq!(order, ["site2", "central"], "{text}");
    assert!(p.hosts[1].upgrade.is_none());
    let site2 = p.hosts[2].upgrade.as_ref().unwrap();
    assert_eq!(
        site2.install,
        Default::default(),
        "nothing left to install on site2"
    );
    assert!(
        text.contains(
            "resuming an interrupted upgrade: rabbit@site1 already run(s) the pinned versions"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "RabbitMQ 3.10.8 -> 3.10.25 (installed already; the node still runs the old version)"
        ),
        "{text}"
    );
    // Every node done, a stable flag still off (killed before the last step).
    let mut facts = converged(&c);
    for f in &mut facts {
        f.packages
            .insert("rabbitmq-server".into(), "3.10.25-1".into());
        f.node.rabbitmq_version = Some("3.10.25".into());
    }
    let p = plan_from(
        &c,
        facts,
        Ok(flags(&[("stream_queue", "disabled", "stable")])),
        false,
    );
    assert!(p.upgrade.order.is_empty());
    assert_eq!(p.upgrade.enable_flags, [c.inv.central_index()]);
    assert!(plan::view::text(&p)
        .contains("every node runs its pinned version, and stream_queue is disabled"));
    // A node left in maintenance mode is revived.
    let mut cf = flags(&[]);
    cf.nodes = vec![serde_json::from_value(
        serde_json::json!({"name": "rabbit@site2", "running": true, "being_drained": true}),
    )
    .unwrap()];
    let c = case(|t| t);
    let p = plan_from(&c, converged(&c), Ok(cf), false);
    assert!(p.hosts[2].revive && !p.hosts[1].revive);
    assert!(plan::view::text(&p).contains("~ revive rabbit@site2 (rabbitmq-upgrade revive)"));
}

#[test]
fn an_erlang_package_switch_and_a_node_that_is_down() {
    // The switch this machine's apt can make: the same OTP release, another
    // Debian security update of it.
    let c = pinned("erlang_package = \"1:25.2.3+dfsg-1+deb12u1\"");
    let mut facts = converged(&c);
    facts[2].node.state = NodeState::Stopped;
    facts[2].node.membership = None;
    let p = plan_of(&c, facts, false);
    let text = plan::view::text(&p);
    assert!(p.blockers.is_empty(), "{text}");
    for h in &p.hosts {
        let up = h.upgrade.as_ref().unwrap();
        assert_eq!(
            up.install.erlang.as_deref(),
            Some("1:25.2.3+dfsg-1+deb12u1")
        );
        assert_eq!(up.install.rabbitmq, None);
    }
    assert!(
        text.contains(
            "Erlang package 1:25.2.3+dfsg-1+deb12u4 -> 1:25.2.3+dfsg-1+deb12u1 (an older package)"
        ),
        "{text}"
    );
    // site2 is down: installed before it starts, with the nodes brought up; the
    // others in the upgrade wave.
    assert_eq!(p.waves[0].kind, WaveKind::BringUp);
    assert_eq!(p.waves[0].hosts, [2]);
    assert_eq!(p.waves[1].kind, WaveKind::Upgrade);
    assert_eq!(p.waves[1].hosts, [1, 0]);
    assert!(text.contains("it is down: install every installed erlang-* package =1:25.2.3+dfsg-1+deb12u1 (apt-get), write its files, start"), "{text}");
}
