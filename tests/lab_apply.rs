//! `warren plan` and `warren apply` on the lab's real hosts, the user's layout
//! (classic mirroring, joins by rabbitmqctl, rabbitmq.conf): bootstrap from fresh
//! hosts, a rerun that changes nothing, dry runs that touch nothing, a host that does
//! not answer, edits that restart only the hosts they concern, and a sixth host added.
//! Every result is read back through RabbitMQ itself (rabbitmqctl over SSH).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn block_ssh(host: &Host, block: bool) {
    let ns = lab_net().netns(&host.name);
    let op = if block { "-I" } else { "-D" };
    let ok = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "iptables",
            op,
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            "22",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "iptables in {ns}");
}

/// What `lab up` gives: each host its own machine as far as an operator can tell (its
/// own hostname, private RabbitMQ folders, a standalone RabbitMQ with its own random
/// cookie), and every host reaching the others by name.
fn fresh_hosts_are_separate_machines(dir: &Path, hosts: &[Host]) {
    let check = lab_warren_ok(dir, &["check"]);
    assert!(check.contains("5 hosts (4 sites)"), "{check}");
    let this_machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let cookies = on_each(hosts, |h| {
        assert_eq!(ssh_ok(dir, h, "hostname"), h.name);
        assert_eq!(ssh_ok(dir, h, "cat /etc/hostname"), h.name);
        assert_ne!(h.name, this_machine.trim());
        ssh_ok(
            dir,
            h,
            &format!(
                "touch /etc/rabbitmq/only-on-{0} /var/lib/rabbitmq/only-on-{0}",
                h.name
            ),
        );
        assert_eq!(
            ssh_ok(dir, h, "stat -c %U /var/lib/rabbitmq /var/log/rabbitmq"),
            "rabbitmq\nrabbitmq"
        );
        assert_eq!(
            running_nodes(dir, h),
            vec![format!("rabbit@{}", h.name)],
            "{} is not a standalone node",
            h.name
        );
        for other in hosts {
            assert_eq!(
                ssh_ok(dir, h, &format!("getent hosts {}", other.name))
                    .split_whitespace()
                    .next(),
                Some(other.address.as_str())
            );
        }
        ssh_ok(
            dir,
            h,
            &format!("timeout 5 bash -c '</dev/tcp/{}/5672'", hosts[0].address),
        );
        ssh_ok(dir, h, "sha256sum < /var/lib/rabbitmq/.erlang.cookie")
    });
    let distinct: std::collections::BTreeSet<&String> = cookies.iter().collect();
    assert_eq!(
        distinct.len(),
        hosts.len(),
        "each fresh host has its own random cookie"
    );
    for (h, listing) in hosts.iter().zip(on_each(hosts, |h| {
        ssh_ok(dir, h, "ls /etc/rabbitmq /var/lib/rabbitmq")
    })) {
        for other in hosts {
            assert_eq!(
                listing.contains(&format!("only-on-{}", other.name)),
                other.name == h.name,
                "{} sees {}'s files: {listing}",
                h.name,
                other.name
            );
        }
    }
    assert!(
        !Path::new("/etc/rabbitmq/only-on-central").exists(),
        "a lab host wrote into this machine's /etc/rabbitmq"
    );
}

#[test]
fn bootstrap_rerun_edit_and_grow() {
    let dir = workdir("lab_apply");
    let mut phases = Phases::new("lab_apply");
    let hosts = fresh_lab(&dir, 5);
    fresh_hosts_are_separate_machines(&dir, &hosts);
    phases.done("fresh lab");
    let mut outputs = String::new();

    // The central node holds data of its own before the bootstrap (a queue with
    // messages, made the way an operator would, through its API from the host): as
    // the seed it is restarted, never reset, so the messages are there after.
    let curl = |method: &str, path: &str, body: &str| {
        ssh_ok(
            &dir,
            &hosts[0],
            &format!(
                "curl -sf -u guest:guest -X {method} -H 'content-type: application/json' -d '{body}' http://127.0.0.1:15672{path}"
            ),
        )
    };
    curl(
        "PUT",
        "/api/queues/%2F/kept.on.central",
        r#"{"durable":true}"#,
    );
    for n in 0..3 {
        let out = curl(
            "POST",
            "/api/exchanges/%2F/amq.default/publish",
            &format!(
                r#"{{"properties":{{"delivery_mode":2}},"routing_key":"kept.on.central","payload":"m{n}","payload_encoding":"string"}}"#
            ),
        );
        assert!(out.contains("\"routed\":true"), "{out}");
    }

    // Plan and dry run on fresh hosts: changes shown, nothing touched.
    let hashes = all_file_hashes(&dir, &hosts);
    let pids = all_pids(&dir, &hosts);
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        out.contains("+ join rabbit@site1 to rabbit@central"),
        "{out}"
    );
    assert!(out.contains("(sensitive value) changed"), "{out}");
    // Each lab host calls itself by its inventory name: nothing to warn of.
    assert!(!out.contains("warning:"), "{out}");
    // The waves: the seed, then every fresh site together (issue 13).
    assert!(
        out.contains("  1. seed (alone): central; ")
            && out.contains("  2. fresh nodes (together): site1, site2, site3, site4; "),
        "{out}"
    );
    outputs.push_str(&out);
    outputs.push_str(&err);
    let dry = lab_warren_ok(&dir, &["apply", "--dry-run"]);
    assert!(dry.contains("restart RabbitMQ"), "{dry}");
    outputs.push_str(&dry);
    let hashes_after = all_file_hashes(&dir, &hosts);
    assert_eq!(hashes, hashes_after, "plan or --dry-run changed a file");
    assert_eq!(
        pids,
        all_pids(&dir, &hosts),
        "plan or --dry-run restarted a node"
    );

    phases.done("plan and dry run");

    // Bootstrap.
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes", "--timings"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("joined site1, site2, site3, site4"), "{out}");
    outputs.push_str(&out);
    outputs.push_str(&err);
    // What ran is what the plan said: the seed and the fresh sites as one parallel
    // step, every site booting blank straight into the cluster (peer discovery, the
    // default), and all of them booting side by side: every site's start came before
    // any site had joined.
    assert!(
        err.contains("waves 1-2: seed and fresh nodes (central, site1, site2, site3, site4)"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let first_join = lines
        .iter()
        .position(|l| l.contains(" joined rabbit@central's cluster"))
        .expect("a join");
    for site in &hosts[1..] {
        assert!(
            err.contains(&format!(
                "{}: joined rabbit@central's cluster at its first boot (peer discovery)",
                site.name
            )) && err.contains(&format!("{}: emptying the database", site.name)),
            "{} did not boot blank into the cluster:\n{err}",
            site.name
        );
        let start = lines
            .iter()
            .position(|l| *l == format!("{}: starting RabbitMQ ...", site.name))
            .unwrap_or_else(|| panic!("{} never started: {err}", site.name));
        assert!(
            start < first_join,
            "{} started after a join:\n{err}",
            site.name
        );
    }
    // One cluster: every node's own cluster_status lists every node, running.
    assert_user_layout(&dir, &hosts);
    assert_eq!(queue_messages(&dir, &hosts[0], "kept.on.central"), 3);
    ssh_ok(
        &dir,
        &hosts[0],
        "rabbitmqctl -q delete_queue kept.on.central",
    );
    // The lab's inventory shortens Erlang's net tick time; the nodes run with it.
    assert_eq!(
        ssh_ok(
            &dir,
            &hosts[4],
            "rabbitmqctl -q eval 'net_kernel:get_net_ticktime().'"
        ),
        "20"
    );
    let users = rabbitmqctl_json(&dir, &hosts[0], "list_users");
    for u in ["admin", "backend"] {
        assert!(
            users.as_array().unwrap().iter().any(|x| x["user"] == u),
            "{users}"
        );
    }
    // RabbitMQ's default user is gone once warren's administrator exists.
    assert!(
        !users
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["user"] == "guest"),
        "{users}"
    );

    phases.done("bootstrap");

    // A rerun changes nothing and restarts nothing.
    let pids = all_pids(&dir, &hosts);
    let hashes = all_file_hashes(&dir, &hosts);
    let (code, out, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes."), "{out}");
    let out = lab_warren_ok(&dir, &["apply", "--yes"]);
    assert!(out.contains("No changes."), "{out}");
    outputs.push_str(&out);
    assert_eq!(
        pids,
        all_pids(&dir, &hosts),
        "a no-op apply restarted a node"
    );
    assert_eq!(hashes, all_file_hashes(&dir, &hosts));

    phases.done("rerun");

    // A host whose key is not in known_hosts: refused with its fingerprint, and
    // recorded only when the operator asks (issue 12).
    let known = lab_dir(&dir).join("known_hosts");
    let full = std::fs::read_to_string(&known).unwrap();
    let without: String = full
        .lines()
        .filter(|l| !l.starts_with(&format!("{},", hosts[1].address)))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, full);
    std::fs::write(&known, &without).unwrap();
    let (code, out, err) = lab_warren(&dir, &["plan"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("the host key of {} (SHA256:", hosts[1].address))
            && err.contains("--accept-new-host-keys"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&known).unwrap(), without);
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes", "--accept-new-host-keys"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "site1: recorded the host key of {} (SHA256:",
            hosts[1].address
        )),
        "{err}"
    );
    assert!(out.contains("No changes."), "{out}");
    // OpenSSH's own client accepts what warren recorded.
    assert_eq!(ssh_ok(&dir, &hosts[1], "hostname"), "site1");
    let (code, out, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(pids, all_pids(&dir, &hosts));
    // The lab's own file back (warren rewrote it in libssh2's layout), so that the
    // growth below can check that `lab up` only appends to it.
    std::fs::write(&known, &full).unwrap();

    phases.done("host key recorded");

    // A host that does not answer: named, nothing changed; back, the rerun finishes.
    let site3 = format!("name = \"site3\"\naddress = \"{}\"", hosts[3].address);
    edit_inventory(&dir, &site3, &format!("{site3}\nports = {{ mqtt = 1884 }}"));
    block_ssh(&hosts[2], true);
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    block_ssh(&hosts[2], false);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("site2: cannot connect to {}:22", hosts[2].address)),
        "{err}"
    );
    assert!(err.contains("no host was changed"), "{err}");
    assert_eq!(pids, all_pids(&dir, &hosts));

    phases.done("unreachable host");

    // The port edit concerns site3 only: only site3 restarts.
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(
        plan.contains("+mqtt.listeners.tcp.default = 1884"),
        "{plan}"
    );
    assert_eq!(plan.matches("! restart RabbitMQ").count(), 1, "{plan}");
    let out = lab_warren_ok(&dir, &["apply", "--yes"]);
    assert!(out.contains("restarted site3;"), "{out}");
    let now = all_pids(&dir, &hosts);
    for (i, h) in hosts.iter().enumerate() {
        assert_eq!(
            now[i] != pids[i],
            h.name == "site3",
            "{} restarted: {}",
            h.name,
            now[i] != pids[i]
        );
    }
    ssh_ok(
        &dir,
        &hosts[0],
        &format!("timeout 5 bash -c '</dev/tcp/{}/1884'", hosts[3].address),
    );
    assert_user_layout(&dir, &hosts);

    phases.done("port edit");

    // A sixth host: `lab up --hosts 6` leaves the others alone; plan shows its files,
    // join, queue and policy; for the others only hosts entries, without restart;
    // apply restarts no other node.
    let pids = all_pids(&dir, &hosts);
    let known_before = std::fs::read_to_string(lab_dir(&dir).join("known_hosts")).unwrap();
    lab_ok(&dir, &["up", "--hosts", "6"]);
    let six = lab_hosts(6);
    assert_eq!(ssh_ok(&dir, &six[5], "hostname"), "site5");
    assert_eq!(pids, all_pids(&dir, &hosts), "lab up restarted a node");
    on_each(&hosts, |h| {
        ssh_ok(
            &dir,
            h,
            &format!("test -e /etc/rabbitmq/only-on-{}", h.name),
        )
    });
    let known_after = std::fs::read_to_string(lab_dir(&dir).join("known_hosts")).unwrap();
    assert!(
        known_after.starts_with(&known_before),
        "existing host keys changed"
    );
    let check = lab_warren_ok(&dir, &["check"]);
    assert!(check.contains("6 hosts (5 sites)"), "{check}");
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(
        plan.contains("+ join rabbit@site5 to rabbit@central"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "+ queue site.site5.data: master on rabbit@site5, mirrored on rabbit@central"
        ),
        "{plan}"
    );
    assert!(plan.contains("+ policy warren-mirror-site5"), "{plan}");
    assert!(
        plan.contains(&format!("+{} site5", six[5].address)),
        "{plan}"
    );
    assert_eq!(
        plan.matches("! restart RabbitMQ").count(),
        1,
        "only site5 restarts: {plan}"
    );
    assert_eq!(
        plan.matches("= RabbitMQ keeps running: nothing it reads changed")
            .count(),
        5,
        "{plan}"
    );
    assert!(
        plan.contains("  1. no restart (together): central, site1, site2, site3, site4; ")
            && plan.contains("  2. fresh nodes (alone): site5; "),
        "{plan}"
    );
    let out = lab_warren_ok(&dir, &["apply", "--yes"]);
    assert!(out.contains("restarted site5; joined site5;"), "{out}");
    assert_eq!(
        pids,
        all_pids(&dir, &hosts),
        "adding site5 restarted another node"
    );
    assert_user_layout(&dir, &six);
    let (code, out, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}");

    phases.done("sixth host");

    verify_scenarios(&dir, &six, &mut outputs);
    phases.done("verify scenarios");
    unsynchronised_mirror(&dir, &six, &mut outputs);
    phases.done("unsynchronised mirror");
    site_user_widened_by_hand(&dir, &six);
    phases.done("site user widened");
    plugin_stopped(&dir, &six);
    phases.done("plugin stopped");
    cookie_changed_by_hand(&dir, &six, &mut outputs);
    phases.done("cookie changed");
    site_cut_off(&dir, &six, &mut phases);
    drills(&dir, &six, &mut outputs);
    phases.done("drills");

    // The cookie never appeared in any output.
    let cookie = std::fs::read_to_string(lab_dir(&dir).join("erlang.cookie")).unwrap();
    assert!(cookie.trim().len() >= 20);
    assert!(
        !outputs.contains(cookie.trim()),
        "the cookie leaked into warren's output"
    );
    lab_ok(&dir, &["down"]);
}

/// Runs verify, expecting it to fail; returns the failing checks.
fn verify_failures(dir: &Path) -> Vec<(String, String, String)> {
    let (code, v) = verify_json(dir);
    assert_eq!(code, 1, "{v:#}");
    failing(&v)
}

/// Runs verify until its failures satisfy `want` (for up to a minute).
fn verify_fails_with(what: &str, dir: &Path, want: impl Fn(&[(String, String, String)]) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, v) = verify_json(dir);
        let fails = failing(&v);
        if code == 1 && want(&fails) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "verify did not report {what}: {fails:#?}"
        );
    }
}

/// `warren verify` and `warren status` on the converged six-host lab: healthy; a site
/// node stopped, then back.
fn verify_scenarios(dir: &Path, hosts: &[Host], outputs: &mut String) {
    let (code, v) = verify_json(dir);
    assert_eq!((code, failing(&v)), (0, vec![]));
    assert_eq!(v["ok"], true);
    let paths = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "message path" && c["ok"] == true)
        .count();
    assert_eq!(paths, hosts.len() - 1, "one message path per site");
    let table = lab_warren_ok(dir, &["verify"]);
    assert!(table.contains("0 failed"), "{table}");
    outputs.push_str(&table);
    // status: a table without colour when not on a terminal, in colour when forced.
    let plain = lab_warren_ok(dir, &["status"]);
    assert!(plain.contains("site.site1.data"), "{plain}");
    assert!(!plain.contains('\x1b'), "{plain}");
    let coloured = lab_warren_env(dir, &["status"], &[("CLICOLOR_FORCE", "1")]);
    assert!(coloured.contains("\x1b[32mrunning"), "{coloured}");

    // RabbitMQ stopped on a site host: named; status shows it down and its master on
    // the central mirror; back, and after apply moves the master home, all passes.
    let site2 = &hosts[2];
    stop_rabbit(dir, site2);
    let fails = verify_failures(dir);
    assert!(
        fails
            .iter()
            .any(|(n, h, _)| n == "rabbitmq running" && h == "site2"),
        "{fails:#?}"
    );
    // status shows the management API's statistics, which follow within seconds.
    let mut status = serde_json::Value::Null;
    wait_for(
        "status showing site2 down, its master on central",
        std::time::Duration::from_secs(30),
        || {
            status = serde_json::from_str(&lab_warren_ok(dir, &["status", "--json"])).unwrap();
            named(&status["nodes"], "rabbit@site2")["running"] == false
                && named(&status["queues"], "site.site2.data")["master"] == "rabbit@central"
        },
    );
    assert_eq!(
        named(&status["queues"], "site.site2.data")["site"],
        "site2",
        "{status:#}"
    );
    start_rabbit(dir, site2);
    apply_verified(dir);
    assert_user_layout(dir, hosts);
}

/// The entry called `name` in a JSON list of named things.
fn named<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

fn has_failure(fails: &[(String, String, String)], name: &str, host: &str, text: &str) -> bool {
    fails
        .iter()
        .any(|(n, h, d)| n == name && h == host && d.contains(text))
}

/// A mirror left behind: site1's policy switched to manual sync by hand, messages
/// published on site1, the central node restarted. verify names the queue with the
/// sync hint, plan shows the policy's drift, apply repairs both, no message is lost.
fn unsynchronised_mirror(dir: &Path, hosts: &[Host], outputs: &mut String) {
    let (central, site1) = (&hosts[0], &hosts[1]);
    ssh_ok(
        dir,
        central,
        r#"rabbitmqctl -q set_policy -p / --priority 10 --apply-to queues warren-mirror-site1 '^site\.site1\.data$' '{"ha-mode":"nodes","ha-params":["rabbit@site1","rabbit@central"],"ha-sync-mode":"manual"}'"#,
    );
    let payloads: Vec<String> = (1..=5).map(|i| format!("order {i}")).collect();
    publish(dir, site1, "site.site1.data", &payloads);
    stop_rabbit(dir, central);
    start_rabbit(dir, central);

    let fails = verify_failures(dir);
    assert!(
        has_failure(&fails, "queue placement", "site1", "not synchronised")
            && has_failure(&fails, "queue placement", "site1", "rabbitmqctl sync_queue"),
        "{fails:#?}"
    );
    let (code, out, _) = lab_warren(dir, &["plan", "--exit-code"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("warren-mirror-site1"), "{out}");
    outputs.push_str(&apply_verified(dir));
    assert_user_layout(dir, hosts);
    assert_eq!(queue_messages(dir, central, "site.site1.data"), 5);
}

/// site1's producer given every permission by hand: verify says which other sites'
/// exchanges and queues it can now reach; apply narrows it back.
fn site_user_widened_by_hand(dir: &Path, hosts: &[Host]) {
    ssh_ok(
        dir,
        &hosts[0],
        "rabbitmqctl -q set_permissions -p / producer-site1 '.*' '.*' '.*'",
    );
    let fails = verify_failures(dir);
    assert!(
        has_failure(
            &fails,
            "site user isolation",
            "site1",
            "write on exchange site.site2 (site site2)"
        ) && has_failure(
            &fails,
            "site user isolation",
            "site1",
            "read on queue site.site5.data (site site5)"
        ) && has_failure(&fails, "users and permissions", "cluster", "producer-site1"),
        "{fails:#?}"
    );
    assert_eq!(fails.len(), 2, "{fails:#?}");
    apply_verified(dir);
    let perms = ssh_ok(
        dir,
        &hosts[0],
        "rabbitmqctl -q list_user_permissions --no-table-headers producer-site1",
    );
    assert_eq!(perms.trim(), "/\t^$\t^site\\.site1$\t^$", "{perms}");
}

/// A declared plugin stopped on a running node (as a plugin that crashes stays):
/// verify names it; apply starts it again without restarting the node.
fn plugin_stopped(dir: &Path, hosts: &[Host]) {
    let site2 = &hosts[2];
    ssh_ok(
        dir,
        site2,
        "rabbitmqctl -q eval 'application:stop(rabbitmq_mqtt).'",
    );
    // The node statistics verify starts from are refreshed every 5 s.
    verify_fails_with("the stopped plugin", dir, |fails| {
        has_failure(fails, "plugins", "site2", "not running: rabbitmq_mqtt")
    });
    // plan notices through the node's statistics (refreshed every 5 s), then asks
    // the node itself.
    wait_for(
        "plan showing the plugin start",
        std::time::Duration::from_secs(30),
        || {
            lab_warren_ok(dir, &["plan"])
                .contains("~ start plugins rabbitmq_mqtt: enabled, but not running")
        },
    );
    let pids = all_pids(dir, hosts);
    apply_verified(dir);
    assert_eq!(
        pids,
        all_pids(dir, hosts),
        "a plugin start restarted a node"
    );
    let plugins = ssh_ok(dir, site2, "rabbitmq-plugins -q list -e");
    assert!(
        plugins
            .lines()
            .any(|l| l.starts_with("[E*]") && l.contains("rabbitmq_mqtt")),
        "{plugins}"
    );
}

/// The cookie file changed by hand on site3 (the running node keeps its old cookie
/// in memory, so nothing else notices): verify reports it, plan shows it as a change
/// without its value, apply puts the cluster's cookie back and restarts only site3.
fn cookie_changed_by_hand(dir: &Path, hosts: &[Host], outputs: &mut String) {
    let site3 = &hosts[3];
    let pids = all_pids(dir, hosts);
    ssh_ok(
        dir,
        site3,
        "f=/var/lib/rabbitmq/.erlang.cookie; chmod 600 $f; printf NOTTHECLUSTERSCOOKIE > $f; chmod 400 $f",
    );
    let fails = verify_failures(dir);
    assert!(
        has_failure(&fails, "cookie", "site3", "differs"),
        "{fails:#?}"
    );
    assert_eq!(fails.len(), 1, "only the cookie: {fails:#?}");
    let (code, out, _) = lab_warren(dir, &["plan", "--exit-code"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(".erlang.cookie"), "{out}");
    assert!(!out.contains("NOTTHECLUSTERSCOOKIE"), "{out}");
    outputs.push_str(&out);
    outputs.push_str(&apply_verified(dir));
    let after = all_pids(dir, hosts);
    for (i, h) in hosts.iter().enumerate() {
        assert_eq!(pids[i] != after[i], i == 3, "restarted {}?", h.name);
    }
    assert_user_layout(dir, hosts);
}

/// Drops a lab host's traffic with the other lab hosts, inside its namespace; this
/// machine (and so SSH from it) still reaches it.
fn cut_off(host: &Host, cut: bool) {
    let net = lab_net();
    let ns = net.netns(&host.name);
    let subnet = format!("{}.0/24", net.subnet);
    let me = net.bridge_address();
    let iptables = |args: &[&str]| {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns, "iptables"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "iptables {args:?} in {ns}");
    };
    for (chain, dir, lo) in [("INPUT", "-s", "-i"), ("OUTPUT", "-d", "-o")] {
        if cut {
            iptables(&["-I", chain, dir, &subnet, "-j", "DROP"]);
            iptables(&["-I", chain, dir, &me, "-j", "ACCEPT"]);
            // The host's own address goes through loopback: its CLI reaches its node.
            iptables(&["-I", chain, lo, "lo", "-j", "ACCEPT"]);
        } else {
            iptables(&["-F", chain]);
        }
    }
}

/// site4 cut off from the cluster: each side reports the other not running; once the
/// link is back RabbitMQ reports the partition on both sides; restarting the cut-off
/// node (verify's hint) and apply bring everything back.
fn site_cut_off(dir: &Path, hosts: &[Host], phases: &mut Phases) {
    let (central, site4) = (&hosts[0], &hosts[4]);
    cut_off(site4, true);
    // Erlang notices a silent peer after its net tick time (the lab's 20 s; 60 s by
    // default).
    wait_for(
        "central seeing site4 down",
        std::time::Duration::from_secs(180),
        || !running_nodes(dir, central).contains(&"rabbit@site4".to_string()),
    );
    wait_for(
        "site4 seeing central down",
        std::time::Duration::from_secs(60),
        || !running_nodes(dir, site4).contains(&"rabbit@central".to_string()),
    );
    phases.done("site4 cut off: both sides notice");
    // RabbitMQ knows; its statistics, which verify reads, follow within seconds.
    verify_fails_with("each side seeing the other down", dir, |fails| {
        has_failure(
            fails,
            "cluster view",
            "central",
            "not running: rabbit@site4",
        ) && has_failure(fails, "cluster view", "site4", "rabbit@central")
    });
    phases.done("site4 cut off: verify reports it");
    cut_off(site4, false);
    let partitioned = |h: &Host| {
        !rabbitmqctl_json(dir, h, "cluster_status")["partitions"]
            .as_object()
            .map(|o| o.is_empty())
            .unwrap_or(true)
    };
    wait_for(
        "the partition reported",
        std::time::Duration::from_secs(120),
        || partitioned(central) && partitioned(site4),
    );
    phases.done("site4 back: RabbitMQ reports the partition");
    verify_fails_with("the partition on both sides", dir, |fails| {
        has_failure(
            fails,
            "partitions",
            "central",
            "partitioned from rabbit@site4",
        ) && has_failure(fails, "partitions", "site4", "rabbit@central")
    });
    phases.done("site4 back: verify reports the partition");
    stop_rabbit(dir, site4);
    start_rabbit(dir, site4);
    phases.done("site4 restarted");
    apply_verified(dir);
    assert_user_layout(dir, hosts);
    phases.done("site4 cut off: apply repairs");
}

/// `warren drill`: refuses without a terminal or --yes and for a host that is not a
/// site; then on site1 (whose queue holds messages) and on the host added last it
/// stops RabbitMQ for real (its pid changes), passes, and leaves the cluster as it
/// found it, the site queue's messages included. Every site runs the same code with
/// its own names; drilling all five here would cost the suite three more minutes.
fn drills(dir: &Path, hosts: &[Host], outputs: &mut String) {
    let central = &hosts[0];
    let (code, _, err) = lab_warren(dir, &["drill", "central", "--yes"]);
    assert_eq!(code, 1);
    assert!(err.contains("no site host is called central"), "{err}");
    let pids = all_pids(dir, hosts);
    let (code, out, err) = lab_warren(dir, &["drill", "site1"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("--yes"), "{err}");
    assert!(out.contains("STOP RabbitMQ on site1"), "{out}");
    assert_eq!(pids, all_pids(dir, hosts), "a refused drill stopped a node");
    for site in [&hosts[1], &hosts[hosts.len() - 1]] {
        let before = rabbit_pid(dir, site);
        let out = lab_warren_ok(dir, &["drill", &site.name, "--yes", "--messages", "20"]);
        assert!(
            out.contains(&format!(
                "Drill passed on {}: 20 confirmed messages were all on rabbit@central",
                site.name
            )),
            "{out}"
        );
        outputs.push_str(&out);
        assert_ne!(
            rabbit_pid(dir, site),
            before,
            "{} was not stopped",
            site.name
        );
        let queues = ssh_ok(
            dir,
            central,
            "rabbitmqctl -q list_queues --no-table-headers name",
        );
        assert!(!queues.contains("warren.drill"), "{queues}");
        let policies = ssh_ok(
            dir,
            central,
            "rabbitmqctl -q list_policies --no-table-headers",
        );
        assert!(!policies.contains("warren-drill"), "{policies}");
    }
    assert_user_layout(dir, hosts);
    assert_eq!(queue_messages(dir, central, "site.site1.data"), 5);
    verify_passes(dir);
}
