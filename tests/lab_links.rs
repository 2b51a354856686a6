//! Sites on another network: `link = "shovel"` and `link = "federation"` make a site a
//! standalone broker of its own, linked to the central host instead of clustered with
//! it. Everything is read back from RabbitMQ: each site node runs alone with its own
//! cookie, the shovel runs on the site and the federation link on the central node, the
//! link users hold only what their side needs, and a message published at a site's
//! exchange arrives in the central queue of the same name, also when it was published
//! while the other end was down.

mod common;

use common::*;
use std::path::Path;

#[test]
fn shovelled_and_federated_sites_carry_messages_through_restarts() {
    let dir = workdir("lab_links");
    let mut phases = Phases::new("lab_links");
    let hosts = fresh_lab(&dir, 3);
    let (central, site1, site2) = (&hosts[0], &hosts[1], &hosts[2]);
    phases.done("lab up");

    link_site(&dir, "site1", "shovel");
    link_site(&dir, "site2", "federation");
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(
        plan.contains("site broker site1 (standalone, linked to the cluster):"),
        "{plan}"
    );
    assert!(plan.contains("shovel warren-site1"), "{plan}");
    assert!(plan.contains("upstream warren-site2"), "{plan}");
    let out = apply_verified(&dir);
    assert!(out.contains("joined none;"), "{out}");
    phases.done("bootstrap");

    // Three brokers, each alone in its own cluster, the sites with a cookie of their own.
    for h in &hosts {
        assert_eq!(
            running_nodes(&dir, h),
            vec![format!("rabbit@{}", h.name)],
            "{}",
            h.name
        );
    }
    let cookies = on_each(&hosts, |h| {
        ssh_ok(&dir, h, "cat /var/lib/rabbitmq/.erlang.cookie")
    });
    assert!(
        cookies[0] != cookies[1] && cookies[0] != cookies[2] && cookies[1] != cookies[2],
        "every broker has its own cookie"
    );

    // The links, as RabbitMQ reports them: the dynamic shovel on site1 and the
    // federation link on central.
    assert_eq!(shovel_state(&dir, site1), "running");
    assert_eq!(federation_state(&dir, central), "running");
    let shovel = parameter(&dir, site1, "shovel", "warren-site1");
    assert_eq!(shovel["value"]["ack-mode"], "on-confirm", "{shovel}");
    assert_eq!(shovel["value"]["src-queue"], "site.site1.data", "{shovel}");
    assert_eq!(shovel["value"]["dest-queue"], "site.site1.data", "{shovel}");
    let upstream = parameter(&dir, central, "federation-upstream", "warren-site2");
    assert_eq!(upstream["value"]["ack-mode"], "on-confirm", "{upstream}");

    // The link users: the shovel's user on central may write through the default
    // exchange and read nothing; the federation's user on site2 reads only its exchange
    // and the federation's own queues.
    let perms = rabbitmqctl_json(&dir, central, "list_user_permissions warren-link-site1");
    assert_eq!(perms[0]["read"], "^$", "{perms}");
    assert_eq!(perms[0]["write"], "^amq\\.default$", "{perms}");
    let perms = rabbitmqctl_json(&dir, site2, "list_user_permissions warren-link-site2");
    assert!(
        perms[0]["read"]
            .as_str()
            .unwrap()
            .starts_with("^(site\\.site2|"),
        "{perms}"
    );

    // A message published at each site arrives in the central queue of the same name.
    publish_at(&dir, site1, "site.site1", 5);
    publish_at(&dir, site2, "site.site2", 5);
    await_count(&dir, central, "site.site1.data", 5);
    await_count(&dir, central, "site.site2.data", 5);
    assert_eq!(queue_messages(&dir, site1, "site.site1.data"), 0);
    phases.done("links carry messages");

    // Central stops while both sites keep publishing: the shovelled site holds every
    // message in its queue, the federated site in the federation's queue (a clean
    // stop of central would delete that queue and its exchange, by RabbitMQ's
    // default, and the site's exchange would route nothing: warren's upstream keeps
    // them), and they arrive once central is back, none lost.
    stop_rabbit(&dir, central);
    publish_at(&dir, site1, "site.site1", 7);
    publish_at(&dir, site2, "site.site2", 7);
    assert_eq!(queue_messages(&dir, site1, "site.site1.data"), 7);
    assert_eq!(
        queue_messages(&dir, site2, "federation: site.site2 -> lab"),
        7
    );
    start_rabbit(&dir, central);
    await_count(&dir, central, "site.site1.data", 12);
    await_count(&dir, central, "site.site2.data", 12);
    phases.done("central restarted");

    // Each site restarts: its link resumes on its own and carries what follows.
    for (site, exchange) in [(site1, "site.site1"), (site2, "site.site2")] {
        stop_rabbit(&dir, site);
        start_rabbit(&dir, site);
        publish_at(&dir, site, exchange, 3);
    }
    await_count(&dir, central, "site.site1.data", 15);
    await_count(&dir, central, "site.site2.data", 15);
    assert_eq!(shovel_state(&dir, site1), "running");
    assert_eq!(federation_state(&dir, central), "running");
    phases.done("sites restarted");

    // Nothing of that is drift: the plan is empty, nothing restarts, verify passes,
    // and status shows both links running.
    let pids = all_pids(&dir, &hosts);
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}{err}");
    verify_passes(&dir);
    assert_eq!(pids, all_pids(&dir, &hosts));
    let status: serde_json::Value =
        serde_json::from_str(&lab_warren_ok(&dir, &["status", "--json"])).unwrap();
    let links = status["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "{status}");
    for l in links {
        assert_eq!(l["running"], true, "{l}");
    }
    // verify's own test messages left nothing behind in the site queues.
    assert_eq!(queue_messages(&dir, central, "site.site1.data"), 15);
    assert_eq!(queue_messages(&dir, central, "site.site2.data"), 15);
    phases.done("rerun, verify, status");

    // A backup of the cluster holds central's federation upstream, whose URI carries
    // site2's link password in clear in RabbitMQ: in the file, the password is masked
    // and the rest of the URI is RabbitMQ's.
    let password =
        std::fs::read_to_string(lab_dir(&dir).join("secrets/link-site2.password")).unwrap();
    let live_uri = upstream["value"]["uri"].as_str().unwrap().to_string();
    let clear = format!(":{}@", password.trim());
    assert!(live_uri.contains(&clear), "{live_uri}");
    let file = lab_warren_ok(&dir, &["backup", "--out", "saved"]);
    let text = std::fs::read_to_string(dir.join(file.trim())).unwrap();
    for (i, secret) in lab_secrets(&dir).iter().enumerate() {
        assert!(
            !text.contains(secret.as_str()),
            "secret {i} is in the backup"
        );
    }
    let defs: serde_json::Value = serde_json::from_str(&text).unwrap();
    let saved = defs["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["component"] == "federation-upstream" && p["name"] == "warren-site2")
        .unwrap_or_else(|| panic!("no upstream in {defs}"));
    assert_eq!(
        saved["value"]["uri"].as_str().unwrap(),
        live_uri.replace(&clear, ":********@")
    );
    let (code, out, err) = lab_warren(&dir, &["plan", "--backup", file.trim(), "--exit-code"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Backup: the cluster holds exactly the backup's definitions."),
        "{out}"
    );
    phases.done("backup with a link password masked");

    // A shovel changed by hand is drift: the plan puts it back.
    let mut value = shovel["value"].clone();
    value["reconnect-delay"] = serde_json::json!(60);
    let (code, body) = management(
        &dir,
        site1,
        "PUT",
        "/api/parameters/shovel/%2F/warren-site1",
        Some(&serde_json::json!({"value": value})),
    );
    assert!(code == 201 || code == 204, "{code} {body}");
    let (code, out, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("shovel warren-site1"), "{out}");
    apply_verified(&dir);
    let shovel = parameter(&dir, site1, "shovel", "warren-site1");
    assert_eq!(shovel["value"]["reconnect-delay"], 5, "{shovel}");
    phases.done("drift repaired");

    // site2 changes from federation to shovel: the federation's queue and exchange,
    // which the link keeps on the site, go with it, and the shovel carries on; a
    // rerun then has nothing left to do.
    edit_inventory(
        &dir,
        "queue = \"site.site2.data\"\nlink = \"federation\"",
        "queue = \"site.site2.data\"\nlink = \"shovel\"",
    );
    apply_verified(&dir);
    let names = ssh_ok(
        &dir,
        site2,
        "rabbitmqctl -q list_queues --no-table-headers name; rabbitmqctl -q list_exchanges --no-table-headers name",
    );
    assert!(!names.contains("federation: "), "{names}");
    // Nor is anything of the federation left behind: no policy on central, no link
    // user on the site (the shovel's is on central now).
    let policies = ssh_ok(
        &dir,
        central,
        "rabbitmqctl -q list_policies --no-table-headers",
    );
    assert!(!policies.contains("warren-federate-site2"), "{policies}");
    let users = ssh_ok(&dir, site2, "rabbitmqctl -q list_users --no-table-headers");
    assert!(!users.contains("warren-link-site2"), "{users}");
    let users = ssh_ok(
        &dir,
        central,
        "rabbitmqctl -q list_users --no-table-headers",
    );
    assert!(users.contains("warren-link-site2"), "{users}");
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}{err}");
    publish_at(&dir, site2, "site.site2", 2);
    await_count(&dir, central, "site.site2.data", 17);
    phases.done("federation -> shovel");
    // Passed: the lab goes (a failed story keeps its lab for inspection).
    lab_ok(&dir, &["down"]);
}

/// Makes `site` a linked site in the lab's inventory.
fn link_site(dir: &Path, site: &str, link: &str) {
    edit_inventory(
        dir,
        &format!("queue = \"site.{site}.data\"\n"),
        &format!(
            "queue = \"site.{site}.data\"\nlink = \"{link}\"\n\
             link_password = {{ file = \"secrets/link-{site}.password\" }}\n"
        ),
    );
}

/// Publishes `n` persistent messages to a site's exchange on its own node, each one
/// confirmed routed.
fn publish_at(dir: &Path, host: &Host, exchange: &str, n: usize) {
    assert_eq!(
        publish_counting(dir, host, exchange, n),
        n as u64,
        "{exchange}: not all routed"
    );
}

/// Publishes `n` persistent messages to a site's exchange on its own node; returns
/// how many the exchange routed.
fn publish_counting(dir: &Path, host: &Host, exchange: &str, n: usize) -> u64 {
    let mut routed = 0;
    for i in 0..n {
        let (status, body) = management(
            dir,
            host,
            "POST",
            &format!("/api/exchanges/%2F/{exchange}/publish"),
            Some(&serde_json::json!({
                "properties": {"delivery_mode": 2},
                "routing_key": "reading",
                "payload": format!("{exchange} {i}"),
                "payload_encoding": "string"
            })),
        );
        assert_eq!(status, 200, "{body}");
        if body.contains("\"routed\":true") {
            routed += 1;
        }
    }
    routed
}

/// Waits (up to 60 s) until `queue` on `host` holds exactly `want` messages.
fn await_count(dir: &Path, host: &Host, queue: &str, want: u64) {
    let mut got = 0;
    for _ in 0..60 {
        got = queue_messages(dir, host, queue);
        if got == want {
            return;
        }
        assert!(got < want, "{queue} on {} holds {got} > {want}", host.name);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("{queue} on {} holds {got} messages, not {want}", host.name);
}

fn api_json(dir: &Path, host: &Host, path: &str) -> serde_json::Value {
    let (code, body) = management(dir, host, "GET", path, None);
    assert_eq!(code, 200, "{path} on {}: {body}", host.name);
    serde_json::from_str(&body).unwrap()
}

fn parameter(dir: &Path, host: &Host, component: &str, name: &str) -> serde_json::Value {
    api_json(
        dir,
        host,
        &format!("/api/parameters/{component}/%2F/{name}"),
    )
}

/// The state of site1's shovel as its node reports it (links reconnect every few
/// seconds after a restart).
fn shovel_state(dir: &Path, host: &Host) -> String {
    link_state(dir, host, "/api/shovels", ("name", "warren-site1"), "state")
}

fn federation_state(dir: &Path, host: &Host) -> String {
    link_state(
        dir,
        host,
        "/api/federation-links",
        ("upstream", "warren-site2"),
        "status",
    )
}

/// The `state` field of the link `path` lists with `key` = `name`, waited for up to 30 s
/// while it is not "running".
fn link_state(
    dir: &Path,
    host: &Host,
    path: &str,
    (key, name): (&str, &str),
    state: &str,
) -> String {
    let mut last = String::new();
    for _ in 0..30 {
        let all = api_json(dir, host, path);
        last = all
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l[key] == name)
            .map(|l| l[state].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| "absent".into());
        if last == "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    last
}
