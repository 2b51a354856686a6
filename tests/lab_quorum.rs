//! `warren apply` on fresh lab hosts with the other choices: quorum queues, joins by
//! peer discovery from the config file, and the classic Erlang-terms rabbitmq.config.
//! Placement is read back from RabbitMQ: each leader on its site's node, a member on
//! the central node and a third on the next site. A plugin added restarts every node,
//! one at a time. The lab's own life around it: `lab up` after a run whose processes
//! were all killed builds a working lab, and `lab down` leaves nothing behind.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn quorum_queues_by_peer_discovery_with_erlang_terms_config() {
    let dir = workdir("lab_quorum");
    let mut phases = Phases::new("lab_quorum");
    // Three hosts are the fewest quorum queues need, and enough to show each rule.
    let hosts = fresh_lab(&dir, 3);
    up_after_a_killed_run(&dir, &hosts);
    phases.done("lab up, killed, up again");
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
    // The Erlang-terms file's kernel section: the lab's net tick time.
    assert_eq!(
        ssh_ok(
            &dir,
            &hosts[2],
            "rabbitmqctl -q eval 'net_kernel:get_net_ticktime().'"
        ),
        "20"
    );
    assert_all_see_all(&dir, &hosts);

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
    phases.done("bootstrap");

    // A plugin added concerns every host: each restarts, one at a time, and comes back
    // a member; every queue keeps a leader and all its members online.
    edit_inventory(
        &dir,
        "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\"]",
        "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\", \"rabbitmq_consistent_hash_exchange\"]",
    );
    let out = lab_warren_ok(&dir, &["apply", "--yes"]);
    assert!(out.contains("restarted central, site1, site2;"), "{out}");
    assert!(out.contains("Verified: all"), "{out}");
    let now = all_pids(&dir, &hosts);
    assert!(
        pids.iter().zip(&now).all(|(a, b)| a != b),
        "{pids:?} {now:?}"
    );
    for (h, plugins) in hosts.iter().zip(on_each(&hosts, |h| {
        ssh_ok(&dir, h, "rabbitmq-plugins -q list -E -m")
    })) {
        assert!(
            plugins
                .lines()
                .any(|l| l.trim() == "rabbitmq_consistent_hash_exchange"),
            "{}: {plugins}",
            h.name
        );
    }
    assert_all_see_all(&dir, &hosts);
    let queues = rabbitmqctl_json(&dir, &hosts[0], "list_queues name leader online");
    for q in queues.as_array().unwrap() {
        assert_eq!(q["online"].as_array().unwrap().len(), 3, "{q}");
    }
    phases.done("plugin added");

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
    phases.done("drill");
    down_leaves_nothing(&dir);
    phases.done("lab down");
}

/// Every process of the lab killed, as a killed run leaves it: the namespaces and links
/// outlive them. `lab up` then builds a working lab of fresh hosts again.
fn up_after_a_killed_run(dir: &Path, hosts: &[Host]) {
    for ns in namespaces() {
        let out = Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            Command::new("kill").args(["-KILL", pid]).status().unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        namespaces().len(),
        hosts.len(),
        "the namespaces outlive their processes"
    );
    assert!(!ssh(dir, &hosts[0], "true").status.success());
    warren_ok(dir, &["lab", "up", "--hosts", &hosts.len().to_string()]);
    on_each(hosts, |h| {
        assert_eq!(ssh_ok(dir, h, "hostname"), h.name);
        assert_eq!(
            running_nodes(dir, h),
            vec![format!("rabbit@{}", h.name)],
            "{} is not a fresh standalone node",
            h.name
        );
    });
}

/// `lab down`: no process, namespace, link, mount or file left; a second finds nothing.
fn down_leaves_nothing(dir: &Path) {
    let lab_dir = dir.join("lab");
    warren_ok(dir, &["lab", "down"]);
    assert_eq!(namespaces(), Vec::<String>::new());
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(warren::lab::BRIDGE)
            && !links.contains(&format!(": {}", warren::lab::LINK_PREFIX)),
        "{links}"
    );
    assert!(!lab_dir.exists());
    assert!(!Path::new("/run/warren-lab").exists());
    let lab_path = lab_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&lab_path),
            "process {pid} still runs from the lab: {cmdline}"
        );
        let mounts = std::fs::read_to_string(entry.path().join("mountinfo")).unwrap_or_default();
        assert!(
            !mounts.contains(&lab_path),
            "process {pid} still sees a lab mount"
        );
        assert!(
            !mounts.contains("/run/netns/wrnlab-"),
            "a namespace mount is left"
        );
    }
    let again = warren_ok(dir, &["lab", "down"]);
    assert!(again.contains("nothing to remove"), "{again}");
}
