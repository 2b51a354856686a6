//! `warren apply` on fresh lab hosts with the other choices: quorum queues, joins by
//! peer discovery from the config file, and the classic Erlang-terms rabbitmq.config.
//! Placement is read back from RabbitMQ: each leader on its site's node, a member on
//! the central node and a third on the next site. A plugin added restarts every node,
//! one at a time. Metrics: every node's Prometheus endpoint scraped as the rendered
//! scrape configuration says, and `status`'s numbers, against RabbitMQ's own. The
//! lab's own life around it: `lab up` after a run whose processes
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
    // Peer discovery is the lab's (and warren's) default join.
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
    metrics_as_an_operator_reads_them(&dir, &hosts);
    phases.done("metrics and status numbers");
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
    lab_ok(dir, &["up", "--hosts", &hosts.len().to_string()]);
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
    let lab_dir = lab_dir(dir);
    lab_ok(dir, &["down"]);
    assert_eq!(namespaces(), Vec::<String>::new());
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    let net = lab_net();
    assert!(
        !links.contains(&format!(": {}:", net.bridge))
            && !links.contains(&format!(": {}", net.link_prefix)),
        "{links}"
    );
    assert!(!lab_dir.exists());
    assert!(!Path::new(&format!("/run/warren-lab.{}", lab_name())).exists());
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
            !mounts.contains(&format!("/run/netns/{}", net.netns_prefix)),
            "a namespace mount is left"
        );
    }
    let again = lab_ok(dir, &["down"]);
    assert!(again.contains("nothing to remove"), "{again}");
}

/// The metrics an operator watches, read from RabbitMQ itself: each node's
/// Prometheus endpoint, scraped from this machine at the targets and paths of the
/// rendered scrape configuration (parsed by yaml-rust2, the samples by
/// prometheus-parse), and `status --json`'s queue numbers and alarms against
/// `rabbitmqctl` and the management API.
fn metrics_as_an_operator_reads_them(dir: &Path, hosts: &[Host]) {
    use std::time::Duration;
    let queue = "site.site1.data";
    publish(
        dir,
        &hosts[1],
        queue,
        &(0..7).map(|i| format!("metric {i}")).collect::<Vec<_>>(),
    );
    // What RabbitMQ itself counts, asked on the leader's node.
    let counts = |h: &Host| -> (u64, u64) {
        let v = rabbitmqctl_json(
            dir,
            h,
            "list_queues name messages_ready messages_unacknowledged",
        );
        let q = v
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == queue)
            .unwrap_or_else(|| panic!("no {queue}: {v}"))
            .clone();
        (
            q["messages_ready"].as_u64().unwrap(),
            q["messages_unacknowledged"].as_u64().unwrap(),
        )
    };
    // The queue held nothing before; a quorum queue's counts, rabbitmqctl's too, are
    // its leader's figures of its last tick.
    wait_for(
        "7 messages ready by rabbitmqctl",
        Duration::from_secs(60),
        || counts(&hosts[1]) == (7, 0),
    );
    // A consumer (pika, from this machine) takes 3 and holds them unacknowledged.
    let consumer = HeldConsumer::start(dir, &hosts[1], queue, 3);
    wait_for(
        "4 ready and 3 unacked by rabbitmqctl",
        Duration::from_secs(60),
        || counts(&hosts[1]) == (4, 3),
    );
    let (ready, unacked) = counts(&hosts[1]);

    warren_ok(
        dir,
        &["-i", &inventory_arg(), "render", "--out", "metrics-out"],
    );
    let text = std::fs::read_to_string(dir.join("metrics-out/cluster/prometheus.yml")).unwrap();
    let config = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let jobs = config[0]["scrape_configs"].as_vec().unwrap();
    assert_eq!(jobs.len(), 2, "{text}");
    let mut detailed: Vec<(String, u16, String)> = Vec::new();
    for job in jobs {
        let path = job["metrics_path"].as_str().unwrap();
        let mut query = Vec::new();
        if let Some(params) = job["params"].as_hash() {
            for (k, vs) in params {
                for v in vs.as_vec().unwrap() {
                    let v = v.as_str().unwrap().replace('/', "%2F");
                    query.push(format!("{}={v}", k.as_str().unwrap()));
                }
            }
        }
        let url = match query.is_empty() {
            true => path.to_string(),
            false => format!("{path}?{}", query.join("&")),
        };
        let targets = job["static_configs"].as_vec().unwrap();
        assert_eq!(targets.len(), hosts.len(), "{text}");
        for t in targets {
            let target = t["targets"][0].as_str().unwrap();
            let host = t["labels"]["host"].as_str().unwrap();
            let (address, port) = target.rsplit_once(':').unwrap();
            let h = hosts.iter().find(|h| h.name == host).unwrap();
            assert_eq!(address, h.address);
            let port: u16 = port.parse().unwrap();
            if path == "/metrics" {
                let s = scrape(address, port, &url);
                let node = format!("rabbit@{host}");
                assert_eq!(
                    sample(
                        &s,
                        "rabbitmq_identity_info",
                        &[("rabbitmq_node", &node), ("rabbitmq_cluster", "lab")]
                    ),
                    Some(1.0),
                    "{target}"
                );
                for alarm in [
                    "rabbitmq_alarms_memory_used_watermark",
                    "rabbitmq_alarms_free_disk_space_watermark",
                ] {
                    assert_eq!(sample(&s, alarm, &[]), Some(0.0), "{target} {alarm}");
                }
            } else {
                detailed.push((address.to_string(), port, url.clone()));
            }
        }
    }
    // The node that holds the queue's leader reports its numbers (site1, unless an
    // earlier phase of the story moved the leader); they settle within the
    // statistics interval.
    assert_eq!(detailed.len(), hosts.len());
    wait_for(
        "the queue's numbers in /metrics/detailed",
        Duration::from_secs(60),
        || {
            detailed.iter().any(|(address, port, url)| {
                let s = scrape(address, *port, url);
                let l = [("vhost", "/"), ("queue", queue)];
                sample(&s, "rabbitmq_detailed_queue_messages_ready", &l) == Some(ready as f64)
                    && sample(&s, "rabbitmq_detailed_queue_messages_unacked", &l)
                        == Some(unacked as f64)
            })
        },
    );

    // status --json: the queue's numbers as RabbitMQ counts them, its counters and
    // the nodes' limits as the management API reports them.
    let status = || -> serde_json::Value {
        serde_json::from_str(&lab_warren_ok(dir, &["status", "--json"])).unwrap()
    };
    let site_queue = |s: &serde_json::Value| {
        s["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == queue)
            .unwrap()
            .clone()
    };
    wait_for(
        "status's ready and unacknowledged counts",
        Duration::from_secs(60),
        || {
            let q = site_queue(&status());
            q["messages_ready"] == ready
                && q["messages_unacknowledged"] == unacked
                && q["consumers"] == 1
        },
    );
    let s = status();
    let (_, api) = management(
        dir,
        &hosts[0],
        "GET",
        &format!("/api/queues/%2F/{queue}"),
        None,
    );
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    let q = site_queue(&s);
    for (ours, theirs) in [("published", "publish"), ("delivered", "deliver_get")] {
        assert_eq!(
            q[ours].as_u64(),
            Some(api["message_stats"][theirs].as_u64().unwrap_or(0)),
            "{ours}: {q} {api}"
        );
    }
    consumer.release();
    assert!(q["publish_rate"].as_f64().is_some(), "{q}");
    assert!(q["deliver_rate"].as_f64().is_some(), "{q}");
    let (_, nodes) = management(dir, &hosts[0], "GET", "/api/nodes", None);
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    for n in nodes.as_array().unwrap() {
        let ours = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n["name"])
            .unwrap();
        for key in [
            "mem_limit",
            "disk_free_limit",
            "mem_alarm",
            "disk_free_alarm",
        ] {
            assert_eq!(ours[key], n[key], "{key} of {}", n["name"]);
        }
        assert!(ours["mem_used"].as_u64().unwrap() > 0, "{ours}");
    }

    // A memory alarm raised for real on site2 (its watermark below what it uses):
    // status names it, and so does the node's own endpoint; then put back.
    ssh_ok(
        dir,
        &hosts[2],
        "rabbitmqctl -q set_vm_memory_high_watermark 0.0001",
    );
    wait_for(
        "site2's memory alarm in status",
        Duration::from_secs(60),
        || {
            let s = status();
            let n = s["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["name"] == "rabbit@site2")
                .unwrap()
                .clone();
            n["mem_alarm"] == true && n["alarms"] == serde_json::json!(["memory"])
        },
    );
    let m = scrape(&hosts[2].address, 15692, "/metrics");
    assert_eq!(
        sample(&m, "rabbitmq_alarms_memory_used_watermark", &[]),
        Some(1.0)
    );
    let text = lab_warren_ok(dir, &["status"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("rabbit@site2"))
        .unwrap();
    assert!(line.ends_with("memory"), "{text}");
    ssh_ok(
        dir,
        &hosts[2],
        "rabbitmqctl -q set_vm_memory_high_watermark 0.4",
    );
    wait_for(
        "site2's memory alarm cleared",
        Duration::from_secs(60),
        || {
            status()["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["mem_alarm"] == false)
        },
    );
}

/// An AMQP consumer on a lab host's node, run by pika (the tests' Python venv) from
/// this machine: it takes `n` messages with a prefetch of `n` and holds them
/// unacknowledged until released, when they go back to the queue.
struct HeldConsumer(std::process::Child);

impl HeldConsumer {
    const SCRIPT: &'static str = r#"
import sys, pika
host, password, queue, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = pika.BlockingConnection(pika.ConnectionParameters(
    host, credentials=pika.PlainCredentials("admin", password), heartbeat=0))
ch = c.channel()
ch.basic_qos(prefetch_count=n)
got = []
ch.basic_consume(queue, lambda ch, m, p, b: got.append(m.delivery_tag), auto_ack=False)
while len(got) < n:
    c.process_data_events(time_limit=1)
print("held", len(got), flush=True)
sys.stdin.read()
c.close()
"#;

    fn start(dir: &Path, host: &Host, queue: &str, n: usize) -> HeldConsumer {
        use std::io::BufRead;
        let password =
            std::fs::read_to_string(lab_dir(dir).join("secrets/admin.password")).unwrap();
        let mut child = Command::new(python())
            .args(["-c", Self::SCRIPT, &host.address, password.trim(), queue])
            .arg(n.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            format!("held {n}"),
            "the consumer did not start"
        );
        HeldConsumer(child)
    }

    /// Closes its stdin: it closes its connection, RabbitMQ requeues what it held.
    fn release(mut self) {
        drop(self.0.stdin.take());
        assert!(self.0.wait().unwrap().success());
    }
}
