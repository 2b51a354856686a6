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

    backup_a_deleted_queue_planned_and_restored(&dir, &hosts);
    phases.done("backup taken, queues deleted, plan --backup, restored");
    // Passed: the lab goes (a failed story keeps its lab for inspection).
    lab_ok(&dir, &["down"]);
}

/// The definitions backup after a mistake: a queue of the backend's own beside the
/// site queues; `warren backup` writes a private file holding what RabbitMQ lists,
/// the users' hashes and no password; a site queue and the backend's queue deleted by
/// hand; `plan --backup` shows both missing; `apply` declares the site queue again
/// on its site's node and the backup, imported through the management API, brings
/// back the backend's; then the cluster holds exactly the backup's definitions.
fn backup_a_deleted_queue_planned_and_restored(dir: &Path, hosts: &[Host]) {
    use std::os::unix::fs::PermissionsExt;
    let central = &hosts[0];
    let (status, body) = management(
        dir,
        central,
        "PUT",
        "/api/queues/%2F/backend.audit",
        Some(&serde_json::json!({"durable": true, "arguments": {"x-queue-type": "quorum"}})),
    );
    assert!(status == 201 || status == 204, "{status} {body}");

    let out = lab_warren_ok(dir, &["backup"]);
    let file = out.trim();
    let name = file
        .strip_prefix("backups/")
        .unwrap_or_else(|| panic!("{out}"));
    let stamp: Vec<char> = name.chars().collect();
    assert!(
        name.starts_with("definitions-")
            && name.ends_with(".json")
            && name.len() == "definitions-YYYYMMDD-HHMMSS.json".len()
            && stamp[12..20].iter().all(char::is_ascii_digit)
            && stamp[20] == '-'
            && stamp[21..27].iter().all(char::is_ascii_digit),
        "{name}"
    );
    let path = dir.join(file);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.join("backups")), 0o700);
    let text = std::fs::read_to_string(&path).unwrap();
    for (i, secret) in lab_secrets(dir).iter().enumerate() {
        assert!(
            !text.contains(secret.as_str()),
            "secret {i} is in the backup"
        );
    }
    let defs: serde_json::Value = serde_json::from_str(&text).unwrap();
    // What RabbitMQ itself lists: every queue, and every user with its hash.
    let names = |v: &serde_json::Value, key: &str| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[key].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let listed = rabbitmqctl_json(dir, central, "list_queues name");
    assert_eq!(names(&defs["queues"], "name"), names(&listed, "name"));
    assert_eq!(
        names(&defs["queues"], "name"),
        ["backend.audit", "site.site1.data", "site.site2.data"]
    );
    let users = rabbitmqctl_json(dir, central, "list_users");
    assert_eq!(names(&defs["users"], "name"), names(&users, "user"));
    for u in defs["users"].as_array().unwrap() {
        assert_eq!(
            u["hashing_algorithm"], "rabbit_password_hashing_sha256",
            "{u}"
        );
        assert!(u["password_hash"].as_str().unwrap().len() >= 40, "{u}");
    }

    // The mistake.
    for q in ["site.site1.data", "backend.audit"] {
        ssh_ok(dir, central, &format!("rabbitmqctl -q delete_queue {q}"));
    }
    let (code, plan, err) = lab_warren(dir, &["plan", "--backup", file, "--exit-code"]);
    assert_eq!(code, 2, "{plan}\n{err}");
    let line = |start: &str| -> String {
        plan.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} in:\n{plan}"))
            .to_string()
    };
    assert!(
        line("  - queue site.site1.data: missing now, in the backup: type \"quorum\"")
            .ends_with("(the inventory's: apply puts it back)"),
        "{plan}"
    );
    assert!(
        !line("  - queue backend.audit: missing now, in the backup: type \"quorum\"")
            .contains("the inventory's"),
        "{plan}"
    );
    line("  - binding site.site1 -> site.site1.data: missing now");
    line("  note: to restore, `warren apply` first");
    assert!(
        plan.contains("Backup: 3 missing, 0 added, 0 changed"),
        "{plan}"
    );

    // The restore the plan describes: apply, then the backup imported.
    apply_verified(dir);
    let (status, body) = management(dir, central, "POST", "/api/definitions", Some(&defs));
    assert!(status == 200 || status == 204, "{status} {body}");
    let queues = rabbitmqctl_json(dir, central, "list_queues name type leader");
    let leader = |q: &str| {
        queues
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == q)
            .unwrap_or_else(|| panic!("no {q}: {queues}"))["leader"]
            .clone()
    };
    assert_eq!(leader("site.site1.data"), "rabbit@site1");
    leader("backend.audit");
    let (code, plan, err) = lab_warren(dir, &["plan", "--backup", file, "--exit-code"]);
    assert_eq!(code, 0, "{plan}\n{err}");
    assert!(
        plan.contains("Backup: the cluster holds exactly the backup's definitions."),
        "{plan}"
    );
}

/// `apply --yes`, killed (SIGKILL) once it says it drains site1's queue.
fn killed_while_draining(dir: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["-i", &inventory_arg(), "apply", "--yes"])
        .env("XDG_STATE_HOME", state_home(dir))
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
