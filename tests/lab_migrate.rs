//! Classic mirrored queues to quorum queues on a running cluster, while a publisher
//! keeps publishing: `replication = "quorum"` is planned as a migration, queue by
//! queue; the first `apply` is killed in the middle of it and the rerun finishes it.
//! Every message is then read back from the new quorum queues through RabbitMQ:
//! none lost (a message published at the moment the exchange is switched from one
//! queue to the next may arrive twice, never not at all).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn mirrored_to_quorum_while_publishing_killed_and_resumed() {
    let dir = workdir("lab_migrate");
    let mut phases = Phases::new("lab_migrate");
    let hosts = fresh_lab(&dir, 3);
    let (central, site1, site2) = (&hosts[0], &hosts[1], &hosts[2]);
    edit_inventory(
        &dir,
        "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\"]",
        "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\", \"rabbitmq_shovel\"]",
    );
    apply_verified(&dir);
    let before: Vec<String> = (0..300).map(|i| format!("before {i}")).collect();
    publish(&dir, site1, "site.site1.data", &before);
    publish(&dir, site2, "site.site2.data", &before);
    phases.done("mirrored cluster with 300 messages per site queue");

    // A publisher on site1's exchange, through site1's node, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (dir, site1, stop) = (dir.clone(), site1.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sent = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let p = format!("during {}", sent.len());
                let (status, body) = management(
                    &dir,
                    &site1,
                    "POST",
                    "/api/exchanges/%2F/site.site1/publish",
                    Some(&serde_json::json!({
                        "properties": {"delivery_mode": 2},
                        "routing_key": "reading",
                        "payload": p,
                        "payload_encoding": "string"
                    })),
                );
                assert_eq!(status, 200, "{body}");
                assert!(body.contains("\"routed\":true"), "{p} not routed: {body}");
                sent.push(p);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            sent
        })
    };

    edit_inventory(
        &dir,
        "replication = \"mirrored\"",
        "replication = \"quorum\"",
    );
    let plan = lab_warren_ok(&dir, &["plan"]);
    for q in ["site.site1.data", "site.site2.data"] {
        assert!(
            plan.contains(&format!("~ migration of queue {q}: classic -> quorum")),
            "{plan}"
        );
    }

    // The first run is killed while it drains site1's old queue.
    killed_while_draining(&dir);
    let queues = names_and_types(&dir, central);
    assert!(
        queues.contains_key("warren.migrate.site.site1.data"),
        "the kill came after the migration: {queues:?}"
    );
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(
        plan.contains("migration of queue site.site1.data"),
        "{plan}"
    );
    phases.done("migration killed mid-way");

    let out = apply_verified(&dir);
    assert!(out.contains("migration of queue site.site2.data"), "{out}");
    stop.store(true, Ordering::Relaxed);
    let during = publisher.join().unwrap();
    assert!(
        during.len() > 50,
        "the publisher published {}",
        during.len()
    );
    phases.done("migration finished");

    // Only the quorum site queues are left: warren's temporary queues, its shovels
    // and the mirror policies are gone; each leader is on its site's node.
    let queues = names_and_types(&dir, central);
    let want: BTreeMap<String, String> = [
        ("site.site1.data".to_string(), "quorum".to_string()),
        ("site.site2.data".to_string(), "quorum".to_string()),
    ]
    .into();
    assert_eq!(queues, want);
    let listed = rabbitmqctl_json(&dir, central, "list_queues name leader");
    for q in listed.as_array().unwrap() {
        let site = q["name"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .to_string();
        assert_eq!(q["leader"], format!("rabbit@{site}").as_str(), "{q}");
    }
    assert_eq!(
        ssh_ok(
            &dir,
            central,
            "rabbitmqctl -q list_policies --no-table-headers"
        ),
        ""
    );
    assert_eq!(
        ssh_ok(
            &dir,
            central,
            "rabbitmqctl -q list_parameters --no-table-headers"
        ),
        ""
    );

    // Every message is there, read through RabbitMQ.
    let got1 = payloads(&dir, central, "site.site1.data");
    let got2 = payloads(&dir, central, "site.site2.data");
    for p in before.iter().chain(&during) {
        assert!(got1.contains_key(p), "site1 lost {p:?}");
    }
    for p in &before {
        assert!(got2.contains_key(p), "site2 lost {p:?}");
    }
    let twice = got1.values().filter(|&&n| n > 1).count();
    eprintln!(
        "[lab_migrate] site1: {} published, {} read back, {twice} twice",
        before.len() + during.len(),
        got1.values().sum::<usize>()
    );
    let (code, out, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}");
    phases.done("messages counted");
}

/// `apply --yes`, killed (SIGKILL) once it says it drains site1's queue.
fn killed_while_draining(dir: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["-i", "lab/inventory.toml", "apply", "--yes"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("migrating site.site1.data: 2/3") {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
    }
    panic!(
        "apply ended ({:?}) without draining site1's queue:\n{seen}",
        child.wait().unwrap()
    );
}

/// Every queue's name and type, as RabbitMQ on `host` lists them.
fn names_and_types(dir: &Path, host: &Host) -> BTreeMap<String, String> {
    rabbitmqctl_json(dir, host, "list_queues name type")
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap().to_string(),
                q["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The payloads in `queue`, each with how often it is there, read with RabbitMQ's
/// `get` through the management API and requeued.
fn payloads(dir: &Path, host: &Host, queue: &str) -> BTreeMap<String, usize> {
    let (status, body) = management(
        dir,
        host,
        "POST",
        &format!("/api/queues/%2F/{queue}/get"),
        Some(&serde_json::json!({
            "count": 100000, "ackmode": "reject_requeue_true", "encoding": "auto"
        })),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for m in v.as_array().unwrap() {
        *out.entry(m["payload"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    out
}
