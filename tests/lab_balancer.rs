//! The load balancer: `[load_balancer] host = "central"` puts HAProxy (Debian's
//! package) in front of the cluster. Read back as an operator would: HAProxy's own
//! config check, the management API through the balancer naming each node in turn,
//! and AMQP clients (pika, an AMQP library independent of warren) that publish
//! through it, with confirms, while a site node stops and returns: every message
//! they were told was confirmed is in the queue, counted by RabbitMQ.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const AMQP: u16 = 5673;
const MANAGEMENT: u16 = 15673;

#[test]
fn clients_reach_the_cluster_through_haproxy_while_a_node_stops() {
    let dir = workdir("lab_balancer");
    let mut phases = Phases::new("lab_balancer");
    let hosts = fresh_lab(&dir, 3);
    let (central, site1) = (&hosts[0], &hosts[1]);
    phases.done("lab up");

    append_inventory(&dir, "\n[load_balancer]\nhost = \"central\"\n");
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(plan.contains("+ /etc/haproxy/haproxy.cfg"), "{plan}");
    assert!(
        plan.contains("load balancer (HAProxy on central):\n  + not running: start it"),
        "{plan}"
    );
    let err = apply_verified_progress(&dir);
    assert!(err.contains("central: started HAProxy"), "{err}");
    phases.done("bootstrap with the balancer");

    // HAProxy accepts the file warren wrote, and runs as the package's user.
    ssh_ok(&dir, central, "haproxy -c -q -f /etc/haproxy/haproxy.cfg");
    // The processes of central's own HAProxy (its pid file, in the host's private
    // /run): the lab's hosts share this machine's process table, where another
    // story's `haproxy -c` may run as root.
    let user = ssh_ok(
        &dir,
        central,
        "for p in $(cat /run/haproxy-warren.pid); do ps -o user= -p $p; done | sort -u",
    );
    assert_eq!(user, "haproxy");
    // Through the balancer's management frontend, each node answers in turn.
    assert_eq!(nodes_through(&dir, central, 6), all_nodes(&hosts));

    // Clients publish through the balancer while site1 stops and comes back. Each
    // message goes over a new connection (to whichever node HAProxy picks), with
    // publisher confirms; a connection that fails is retried, as any client would.
    let clients = Clients::start(&dir, central);
    std::thread::sleep(std::time::Duration::from_secs(3));
    stop_rabbit(&dir, site1);
    // HAProxy takes the stopped node out: the management frontend answers only
    // from the others, and verify names the node its checks see down.
    await_nodes(
        &dir,
        central,
        &all_nodes(&hosts[..1])
            .union(&all_nodes(&hosts[2..]))
            .cloned()
            .collect(),
    );
    let (_, v) = verify_json(&dir);
    let backends = check_of(&v, "balancer backends");
    assert_eq!(backends["ok"], false, "{backends}");
    assert!(
        backends["detail"]
            .as_str()
            .unwrap()
            .contains("site1 in amqp: DOWN"),
        "{backends}"
    );
    // status shows it too: site1 down in every backend, the others up.
    let checks = |dir: &Path| -> Vec<(String, String, bool)> {
        let out = lab_warren_ok(dir, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["balancer"]["host"], "central", "{v}");
        assert_eq!(v["balancer"]["error"], serde_json::Value::Null, "{v}");
        v["balancer"]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let st = r["status"].as_str().unwrap();
                (
                    r["backend"].as_str().unwrap().to_string(),
                    r["server"].as_str().unwrap().to_string(),
                    st.starts_with("UP") && !st.contains('/'),
                )
            })
            .collect()
    };
    let backends: Vec<String> = ["amqp", "mqtt", "management"].map(String::from).into();
    let want = |down: Option<&str>| -> Vec<(String, String, bool)> {
        backends
            .iter()
            .flat_map(|b| {
                hosts
                    .iter()
                    .map(move |h| (b.clone(), h.name.clone(), Some(h.name.as_str()) != down))
            })
            .collect()
    };
    assert_eq!(checks(&dir), want(Some("site1")));
    let text = lab_warren_ok(&dir, &["status"]);
    assert!(
        text.contains("balancer HAProxy on central: amqp :5673, mqtt :1884, management :15673"),
        "{text}"
    );
    start_rabbit(&dir, site1);
    await_nodes(&dir, central, &all_nodes(&hosts));
    wait_for("every node UP in status", Duration::from_secs(30), || {
        checks(&dir) == want(None)
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (confirmed, gave_up, retried) = clients.stop();
    eprintln!(
        "[lab_balancer] {confirmed} messages confirmed through the balancer, {retried} attempts retried, {gave_up} given up"
    );
    assert_eq!(gave_up, 0, "a client gave up on a message");
    assert!(confirmed > 10, "{confirmed}");
    // Every confirmed message is in site2's queue, as RabbitMQ counts it (a failed
    // attempt may have landed too: at least once).
    let queued = queue_messages(&dir, central, "site.site2.data");
    assert!(
        (confirmed..=confirmed + retried).contains(&queued),
        "{queued} queued, {confirmed} confirmed, {retried} retried"
    );
    phases.done("clients through a node's stop and return");

    // site1's stop moved its queue's master, which apply moves back; HAProxy is
    // neither reloaded for it nor by the rerun, which plans nothing.
    let pid = haproxy_pid(&dir, central);
    let out = apply_verified(&dir);
    assert!(!out.contains("/etc/haproxy/haproxy.cfg"), "{out}");
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(pid, haproxy_pid(&dir, central));
    phases.done("rerun");

    // A new management port: only haproxy.cfg changes, HAProxy is reloaded and
    // serves there, and no RabbitMQ restarts.
    let pids = all_pids(&dir, &hosts);
    edit_inventory(
        &dir,
        "host = \"central\"\n",
        "host = \"central\"\nports = { management = 15674 }\n",
    );
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(plan.contains("~ /etc/haproxy/haproxy.cfg"), "{plan}");
    assert!(plan.contains("~ haproxy.cfg changed: reload"), "{plan}");
    assert!(plan.contains("0 restart(s)"), "{plan}");
    let err = apply_verified_progress(&dir);
    assert!(err.contains("central: reloaded HAProxy"), "{err}");
    assert_eq!(pids, all_pids(&dir, &hosts));
    assert_eq!(nodes_via(&dir, central, 15674, 6), all_nodes(&hosts));
    assert!(
        std::net::TcpStream::connect((central.address.as_str(), MANAGEMENT)).is_err(),
        "the old management port still answers"
    );
    phases.done("balancer port changed");

    // The drill shows it too: while site2 is down, HAProxy has taken it out and
    // clients through the balancer are answered by the other nodes; once it is
    // back, by all of them.
    let (code, out, err) = lab_warren(&dir, &["drill", "site2", "--yes", "--messages", "20"]);
    assert_eq!(code, 0, "{out}{err}");
    // Its steps, as its progress lines name them.
    let out = err;
    assert!(
        out.contains("HAProxy took out site2 within")
            && out.contains("through it, management answered from rabbit@central, rabbit@site1,"),
        "{out}"
    );
    assert!(
        out.contains("HAProxy put back site2 within")
            && out.contains("management answered from rabbit@central, rabbit@site1, rabbit@site2,"),
        "{out}"
    );
    assert!(out.contains("of 6 AMQP connections answered"), "{out}");
    phases.done("drill through the balancer");

    lab_reset_gives_fresh_servers(&dir, &hosts);
    phases.done("lab reset, and a bootstrap again");
    // Passed: the lab goes (a failed story keeps its lab for inspection).
    lab_ok(&dir, &["down"]);
}

/// `warren lab reset` on this bootstrapped lab, with HAProxy running on central: every
/// node is a freshly installed server again, as RabbitMQ reports it (standalone, only
/// the package's guest user, no queue, a new cookie), HAProxy is gone with its pid file,
/// the lab folder holds what `lab up` wrote, the host keys stay; and one `apply`
/// bootstraps the cluster on it again.
fn lab_reset_gives_fresh_servers(dir: &Path, hosts: &[Host]) {
    let known = std::fs::read_to_string(lab_dir(dir).join("known_hosts")).unwrap();
    let cookies = |dir: &Path| {
        on_each(hosts, |h| {
            ssh_ok(dir, h, "sha256sum /var/lib/rabbitmq/.erlang.cookie")
        })
    };
    let before = cookies(dir);
    lab_ok(dir, &["reset"]);
    on_each(hosts, |h| {
        assert_eq!(
            running_nodes(dir, h),
            vec![format!("rabbit@{}", h.name)],
            "{} is not standalone after reset",
            h.name
        );
        let users = rabbitmqctl_json(dir, h, "list_users");
        let names: Vec<&str> = users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["guest"], "{}", h.name);
        let queues = rabbitmqctl_json(dir, h, "list_queues name");
        assert_eq!(queues, serde_json::json!([]), "{}", h.name);
        assert_eq!(
            ssh_ok(dir, h, "ls -A /run | tr '\\n' ' '"),
            "lock sshd",
            "{}: /run keeps what the reset should have emptied",
            h.name
        );
    });
    let after = cookies(dir);
    assert!(
        before.iter().zip(&after).all(|(b, a)| b != a),
        "{before:?} {after:?}"
    );
    assert!(
        std::net::TcpStream::connect((hosts[0].address.as_str(), 15674)).is_err(),
        "HAProxy still answers after reset"
    );
    let lab = lab_dir(dir);
    let inventory = std::fs::read_to_string(lab.join("inventory.toml")).unwrap();
    assert!(!inventory.contains("[load_balancer]"), "{inventory}");
    assert!(!lab.join("erlang.cookie").exists());
    assert_eq!(
        std::fs::read_to_string(lab.join("known_hosts")).unwrap(),
        known
    );
    apply_verified(dir);
    assert_user_layout(dir, hosts);
}

/// `apply --yes`, verified; returns its progress lines (stderr), where each step
/// done is named.
fn apply_verified_progress(dir: &Path) -> String {
    let (code, out, err) = lab_warren(dir, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Verified: all"), "{out}");
    err
}

fn all_nodes(hosts: &[Host]) -> BTreeSet<String> {
    hosts.iter().map(|h| format!("rabbit@{}", h.name)).collect()
}

/// The nodes that answered `n` requests to the management API through the
/// balancer's frontend (each request a new connection).
fn nodes_through(dir: &Path, lb: &Host, n: usize) -> BTreeSet<String> {
    nodes_via(dir, lb, MANAGEMENT, n)
}

/// Waits (up to 60 s) until the management frontend answers from exactly `want`.
fn await_nodes(dir: &Path, lb: &Host, want: &BTreeSet<String>) {
    let mut got = BTreeSet::new();
    for _ in 0..60 {
        got = nodes_through(dir, lb, 2 * want.len() + 2);
        if &got == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("through the balancer answered {got:?}, not {want:?}");
}

fn check_of(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v}"))
        .clone()
}

fn haproxy_pid(dir: &Path, h: &Host) -> String {
    ssh_ok(dir, h, "head -n1 /run/haproxy-warren.pid")
}

/// AMQP publishers through the balancer: a Python process (pika) that publishes to
/// site2's exchange until told to stop, and prints what was confirmed.
struct Clients {
    child: std::process::Child,
    stop: std::path::PathBuf,
}

const CLIENTS: &str = r#"
import os, sys, time, pika
host, port, user, password, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
params = pika.ConnectionParameters(host=host, port=port, credentials=pika.PlainCredentials(user, password),
                                   connection_attempts=1, socket_timeout=5, blocked_connection_timeout=10)
confirmed = gave_up = retried = 0
i = 0
while not os.path.exists(stop):
    i += 1
    for attempt in range(10):
        try:
            c = pika.BlockingConnection(params)
            ch = c.channel()
            ch.confirm_delivery()
            ch.basic_publish("site.site2", "reading", ("through the balancer %d" % i).encode(),
                             pika.BasicProperties(delivery_mode=2), mandatory=True)
        except Exception as e:
            # Possibly in the queue all the same (a confirm lost with its connection).
            retried += 1
            print("attempt %d of message %d: %r" % (attempt, i, e), file=sys.stderr, flush=True)
            time.sleep(0.5)
            continue
        confirmed += 1
        try:
            c.close()
        except Exception:
            pass
        break
    else:
        gave_up += 1
    time.sleep(0.1)
print(confirmed, gave_up, retried)
"#;

impl Clients {
    fn start(dir: &Path, lb: &Host) -> Clients {
        let password =
            std::fs::read_to_string(lab_dir(dir).join("secrets/producer-site2.password"))
                .unwrap()
                .trim()
                .to_string();
        let stop = dir.join("clients.stop");
        let _ = std::fs::remove_file(&stop);
        let child = std::process::Command::new(python())
            .args([
                "-c",
                CLIENTS,
                &lb.address,
                &AMQP.to_string(),
                "producer-site2",
                &password,
                stop.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        Clients { child, stop }
    }

    /// Stops the publishers; returns (confirmed, given up, attempts that failed).
    fn stop(self) -> (u64, u64, u64) {
        std::fs::write(&self.stop, "").unwrap();
        let out = self.child.wait_with_output().unwrap();
        assert!(out.status.success(), "the clients failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    }
}
