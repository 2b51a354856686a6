//! `warren doctor` on real hosts, and the checks the plan of a join makes first.
//! On fresh hosts doctor passes, warns of what `apply` will change (the installer's
//! cookie), and changes nothing. On the bootstrapped cluster every check is ok. When
//! the central host refuses new connections to its distribution port (iptables there),
//! doctor fails naming that host and that port; the plan to join a node that was
//! reset refuses, and `apply` changes nothing (the node stays standalone, as
//! rabbitmqctl shows); once the port is open again, `apply` joins it. A member whose
//! cookie file differs from the inventory's fails, naming the host.

mod common;

use common::*;
use serde_json::Value;

/// `doctor --json`: exit code and the checks.
fn doctor(dir: &std::path::Path, args: &[&str]) -> (i32, Vec<Value>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = lab_warren(dir, &all);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(v["ok"], Value::Bool(code == 0), "{out}\n{err}");
    (code, v["checks"].as_array().unwrap().clone())
}

/// The (check, host, found) of each line with this status.
fn with(checks: &[Value], status: &str) -> Vec<(String, String, String)> {
    checks
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["host"].as_str().unwrap().to_string(),
                c["found"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The node names in `host`'s cluster, as its own rabbitmqctl lists them.
fn cluster_of(dir: &std::path::Path, host: &Host) -> Vec<String> {
    let v = rabbitmqctl_json(dir, host, "cluster_status");
    let mut nodes: Vec<String> = v["disk_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    nodes.sort();
    nodes
}

/// New connections only (SYN): the distribution connections the members hold stay
/// up, as they would behind a firewall closed after the cluster formed. (Matching
/// conntrack's NEW instead would also cut connections conntrack had not seen yet.)
const REFUSE_DIST: &str =
    "iptables -{} INPUT -p tcp --dport 25672 --syn -j REJECT --reject-with tcp-reset";

#[test]
fn doctor_checks_every_assumption_and_a_join_is_checked_first() {
    let dir = workdir("lab_doctor");
    let mut phases = Phases::new("lab_doctor");
    let hosts = fresh_lab(&dir, 3);
    let (central, site1, site2) = (&hosts[0], &hosts[1], &hosts[2]);
    // This story's nodes join the other way: each boots standalone, then
    // `rabbitmqctl join_cluster` (the default, peer discovery, is every other story's).
    edit_inventory(&dir, "join = \"config\"", "join = \"cli\"");

    // Fresh hosts: nothing fails, the installer's cookie is a warning, nothing changes.
    let (pids, files) = (all_pids(&dir, &hosts), all_file_hashes(&dir, &hosts));
    let (code, checks) = doctor(&dir, &[]);
    assert_eq!(code, 0, "{:#?}", with(&checks, "fail"));
    for h in &hosts {
        let warned: Vec<String> = with(&checks, "warn")
            .into_iter()
            .filter(|w| w.1 == h.name)
            .map(|w| w.0)
            .collect();
        assert!(
            warned.contains(&"cookie".to_string()),
            "{}: {warned:?}",
            h.name
        );
        for check in [
            "reach",
            "administrator",
            "versions",
            "node name",
            "folders",
            "names",
        ] {
            assert!(
                checks
                    .iter()
                    .any(|c| c["check"] == check && c["host"] == h.name.as_str()),
                "no {check} line for {}",
                h.name
            );
        }
    }
    assert_eq!(all_pids(&dir, &hosts), pids, "doctor restarted a node");
    assert_eq!(
        all_file_hashes(&dir, &hosts),
        files,
        "doctor changed a file"
    );
    let (code, _, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 2, "the bootstrap is still to do");
    phases.done("fresh hosts: doctor passes with warnings and changes nothing");

    let out = apply_verified(&dir);
    assert!(out.contains("by rabbitmqctl join_cluster"), "{out}");
    let (code, checks) = doctor(&dir, &[]);
    assert_eq!(code, 0);
    assert!(
        checks.iter().all(|c| c["status"] == "ok"),
        "{:#?}",
        checks
            .iter()
            .filter(|c| c["status"] != "ok")
            .collect::<Vec<_>>()
    );
    // Every member's epmd, distribution, AMQP and management ports, from the others.
    for h in &hosts {
        let ports = with(&checks, "ok")
            .into_iter()
            .find(|c| c.0 == "ports" && c.1 == h.name)
            .unwrap_or_else(|| panic!("no ports line for {}", h.name));
        for p in ["4369", "25672", "5672", "15672"] {
            assert!(ports.2.contains(p), "{}: {}", h.name, ports.2);
        }
    }
    phases.done("bootstrapped: every check ok");

    // The central host refuses new connections to its distribution port.
    ssh_ok(&dir, central, &REFUSE_DIST.replace("{}", "A"));
    let (code, checks) = doctor(&dir, &[]);
    assert_eq!(code, 1);
    let failed = with(&checks, "fail");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let (check, host, found) = &failed[0];
    assert_eq!((check.as_str(), host.as_str()), ("ports", "central"));
    assert!(
        found.contains("25672") && found.contains("distribution"),
        "{found}"
    );
    assert!(
        found.contains("site1") && found.contains("site2"),
        "{found}"
    );
    // Only site2 asked for: its own lines, and the ports between it and the others.
    let (code, checks) = doctor(&dir, &["--host", "site2"]);
    assert_eq!(code, 1);
    assert!(checks
        .iter()
        .all(|c| c["host"] == "site2" || c["check"] == "ports" || c["check"] == "names"));
    phases.done("a refused distribution port: doctor fails naming central and 25672");

    // site2 taken out of the cluster by hand: its join is planned, and refused.
    ssh_ok(
        &dir,
        site2,
        "rabbitmqctl stop_app && rabbitmqctl reset && rabbitmqctl start_app",
    );
    let (_, out, _) = lab_warren(&dir, &["plan"]);
    assert!(out.contains("join rabbit@site2"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("x site2:") && l.contains("25672") && l.contains("central")),
        "{out}"
    );
    let pids = all_pids(&dir, &hosts);
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(cluster_of(&dir, site2), vec!["rabbit@site2".to_string()]);
    assert_eq!(all_pids(&dir, &hosts), pids);
    phases.done("the join refused before anything changed");

    ssh_ok(&dir, central, &REFUSE_DIST.replace("{}", "D"));
    apply_verified(&dir);
    assert_eq!(cluster_of(&dir, site2).len(), 3);
    phases.done("port open again: apply joins site2");

    // A member's cookie file replaced behind warren's back.
    let cookie = "/var/lib/rabbitmq/.erlang.cookie";
    ssh_ok(
        &dir,
        site1,
        &format!("cp -p {cookie} /var/lib/rabbitmq/cookie.kept && chmod 600 {cookie} && printf DIFFERENTCOOKIEDIFFERENT > {cookie} && chmod 400 {cookie}"),
    );
    let (code, checks) = doctor(&dir, &[]);
    assert_eq!(code, 1);
    let failed = with(&checks, "fail");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(
        (failed[0].0.as_str(), failed[0].1.as_str()),
        ("cookie", "site1")
    );
    assert!(failed[0].2.contains(cookie), "{:?}", failed[0]);
    ssh_ok(
        &dir,
        site1,
        &format!("mv -f /var/lib/rabbitmq/cookie.kept {cookie}"),
    );
    let (code, _) = doctor(&dir, &[]);
    assert_eq!(code, 0);
    phases.done("a member's cookie that differs: doctor fails naming site1");
    lab_ok(&dir, &["down"]);
}
