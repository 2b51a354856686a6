//! `warren apply` on fresh lab hosts with the other choices: quorum queues, joins by
//! peer discovery from the config file, and the classic Erlang-terms rabbitmq.config.
//! Placement is read back from RabbitMQ: each leader on its site's node, a member on
//! the central node and a third on the next site.

mod common;

use common::*;

#[test]
fn quorum_queues_by_peer_discovery_with_erlang_terms_config() {
    let dir = workdir("lab_quorum");
    // Three hosts are the fewest quorum queues need, and enough to show each rule.
    let hosts = fresh_lab(&dir, 3);
    edit_inventory(
        &dir,
        "replication = \"mirrored\"",
        "replication = \"quorum\"",
    );
    edit_inventory(&dir, "join = \"cli\"", "join = \"config\"");
    edit_inventory(
        &dir,
        "config_format = \"rabbitmq.conf\"",
        "config_format = \"rabbitmq.config\"",
    );

    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(plan.contains("by peer discovery"), "{plan}");
    assert!(plan.contains("+ /etc/rabbitmq/rabbitmq.config"), "{plan}");
    let out = lab_warren_ok(&dir, &["apply", "--yes"]);
    assert!(out.contains("joined site1, site2;"), "{out}");

    // The nodes run the Erlang-terms file and found each other through it.
    for h in &hosts {
        let status = rabbitmqctl_json(&dir, h, "status");
        assert_eq!(
            status["config_files"],
            serde_json::json!(["/etc/rabbitmq/rabbitmq.config"]),
            "{}",
            h.name
        );
    }
    let mut want: Vec<String> = hosts.iter().map(|h| format!("rabbit@{}", h.name)).collect();
    want.sort();
    for h in &hosts {
        assert_eq!(running_nodes(&dir, h), want, "as {} sees it", h.name);
    }

    let queues = rabbitmqctl_json(
        &dir,
        &hosts[0],
        "list_queues name type leader members online",
    );
    let queues = queues.as_array().unwrap();
    for (i, site) in hosts.iter().enumerate().skip(1) {
        let name = format!("site.{}.data", site.name);
        let q = queues
            .iter()
            .find(|q| q["name"] == name.as_str())
            .unwrap_or_else(|| panic!("queue {name} missing: {queues:?}"));
        assert_eq!(q["type"], "quorum");
        assert_eq!(q["leader"], format!("rabbit@{}", site.name).as_str(), "{q}");
        let next = &hosts[if i == hosts.len() - 1 { 1 } else { i + 1 }];
        let mut want = vec![
            format!("rabbit@{}", site.name),
            "rabbit@central".to_string(),
            format!("rabbit@{}", next.name),
        ];
        want.sort();
        for key in ["members", "online"] {
            let mut got: Vec<String> = q[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect();
            got.sort();
            assert_eq!(got, want, "{name} {key}");
        }
    }

    let pids = all_pids(&dir, &hosts);
    let (code, out, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(pids, all_pids(&dir, &hosts));

    // A drill on quorum queues: site1 really stops, another member leads with every
    // message, site1's member is back online after; verify passes afterwards.
    let before = rabbit_pid(&dir, &hosts[1]);
    let out = lab_warren_ok(&dir, &["drill", "site1", "--yes", "--messages", "20"]);
    assert!(
        out.contains("Drill passed on site1: 20 confirmed messages were all on rabbit@"),
        "{out}"
    );
    assert_ne!(rabbit_pid(&dir, &hosts[1]), before, "site1 was not stopped");
    let listing = ssh_ok(
        &dir,
        &hosts[0],
        "rabbitmqctl -q list_queues --no-table-headers name",
    );
    assert!(!listing.contains("warren.drill"), "{listing}");
    lab_warren_ok(&dir, &["verify"]);
    warren_ok(&dir, &["lab", "down"]);
}
