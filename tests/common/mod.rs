//! Helpers for tests that run warren against the lab's real hosts: the warren binary,
//! and the operator's own tools (OpenSSH's client, rabbitmqctl on the host) to check
//! what warren did, independently of warren's own code.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn warren(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .env("XDG_STATE_HOME", state_home(dir))
        .current_dir(dir)
        .output()
        .expect("run warren")
}

/// Where warren's run logs go in a test: under the test's own folder, so that
/// `assert_no_secret_left` searches them too, and no test writes to root's home.
pub fn state_home(dir: &Path) -> PathBuf {
    dir.join("state")
}

/// The run logs warren wrote in this test's folder, oldest first.
pub fn run_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(state_home(dir).join("warren/runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.sort();
    logs
}

/// Runs `warren -i lab/inventory.toml ARGS` in a real terminal, as an operator sees
/// it: a detached tmux session of `width` x `height` on a server of its own, its
/// screen captured every half second until warren has exited. Returns the screens
/// (the last taken after the exit, with the line `warren exited: CODE`) and the exit
/// code.
pub fn in_terminal(dir: &Path, args: &[&str], width: u16, height: u16) -> (Vec<String>, i32) {
    let q = shell_words;
    let socket = format!("warren-test-{}", std::process::id());
    let script = dir.join("terminal.sh");
    let mut line = format!(
        "cd {} && XDG_STATE_HOME={} {} -i {}",
        q(&dir.display().to_string()),
        q(&state_home(dir).display().to_string()),
        q(env!("CARGO_BIN_EXE_warren")),
        q(&inventory_arg())
    );
    for a in args {
        line.push(' ');
        line.push_str(&q(a));
    }
    std::fs::write(
        &script,
        format!("{line}\necho \"warren exited: $?\"\nsleep 600\n"),
    )
    .unwrap();
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux (scripts/setup.sh installs it)")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        "warren",
        "-x",
        &width.to_string(),
        "-y",
        &height.to_string(),
        &format!("sh {}", q(&script.display().to_string())),
    ]);
    assert!(started.status.success(), "tmux: {started:?}");
    let mut screens = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let code = loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let out = tmux(&["capture-pane", "-p", "-t", "warren"]);
        let screen = String::from_utf8_lossy(&out.stdout).into_owned();
        let exited = screen
            .lines()
            .find_map(|l| l.strip_prefix("warren exited: "))
            .map(|c| c.trim().parse::<i32>().unwrap_or(-1));
        screens.push(screen);
        if let Some(code) = exited {
            break code;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "warren did not exit in 600 s:\n{}",
            screens.last().unwrap()
        );
    };
    tmux(&["kill-server"]);
    (screens, code)
}

/// `s` quoted for sh.
pub fn shell_words(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs warren and fails the test, with its output, unless it succeeds.
pub fn warren_ok(dir: &Path, args: &[&str]) -> String {
    let out = warren(dir, args);
    assert!(
        out.status.success(),
        "warren {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A lab host as the tests address it.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
}

pub fn lab_hosts(n: usize) -> Vec<Host> {
    let net = lab_net();
    (0..n)
        .map(|i| {
            let h = warren::lab::LabHost::of(&net, i);
            Host {
                name: h.name,
                address: h.address,
            }
        })
        .collect()
}

/// The name of this story's lab: each story runs on a lab of its own
/// (`warren lab up --name`), named after its test binary (lab_apply: "apply"), so two
/// stories can run side by side.
pub fn lab_name() -> String {
    let exe = std::env::current_exe().expect("the test's own path");
    let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
    let story = stem.split('-').next().unwrap_or(&stem);
    story.trim_start_matches("lab_").replace('_', "")
}

/// This story's lab network: its bridge, prefixes and subnet.
pub fn lab_net() -> warren::lab::LabNet {
    warren::lab::LabNet::named(&lab_name()).expect("a valid lab name")
}

/// The lab's folder in `dir`: `lab-NAME`.
pub fn lab_dir(dir: &Path) -> PathBuf {
    dir.join(format!("lab-{}", lab_name()))
}

/// The lab's inventory, as the `-i` argument of a command run in the test's folder.
pub fn inventory_arg() -> String {
    format!("lab-{}/inventory.toml", lab_name())
}

/// `warren lab ARGS --name NAME` on this story's lab; fails the test unless it succeeds.
pub fn lab_ok(dir: &Path, args: &[&str]) -> String {
    let name = lab_name();
    let mut all = vec!["lab"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--name", &name]);
    warren_ok(dir, &all)
}

/// `ssh root@host command` with the lab's key, checking the host key strictly.
pub fn ssh(dir: &Path, host: &Host, command: &str) -> Output {
    let lab = lab_dir(dir);
    Command::new("ssh")
        .args([
            "-i",
            lab.join("id_ed25519").to_str().unwrap(),
            "-o",
            &format!("UserKnownHostsFile={}", lab.join("known_hosts").display()),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            &format!("root@{}", host.address),
            command,
        ])
        .output()
        .expect("run ssh")
}

/// Like `ssh`, but fails the test unless the command succeeds; returns trimmed stdout.
pub fn ssh_ok(dir: &Path, host: &Host, command: &str) -> String {
    let out = ssh(dir, host, command);
    assert!(
        out.status.success(),
        "on {}: `{command}` failed ({}): {}",
        host.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The OS pid of the RabbitMQ node on `host`: the pid file RabbitMQ writes when it
/// boots, in the host's own data folder, checked against the process table (the lab's
/// hosts share this machine's, so pgrep would see every host's). Fails the test
/// unless RabbitMQ runs.
pub fn rabbit_pid(dir: &Path, host: &Host) -> String {
    ssh_ok(
        dir,
        host,
        "p=$(cat /var/lib/rabbitmq/mnesia/rabbit@$(hostname).pid) && [ \"$(cat /proc/$p/comm)\" = beam.smp ] && echo $p",
    )
}

/// `f` on every host at once (each is its own machine; asking one after another only
/// adds up SSH handshakes and CLI start-ups). Results in the hosts' order.
pub fn on_each<T: Send>(hosts: &[Host], f: impl Fn(&Host) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = hosts.iter().map(|h| s.spawn(move || f(h))).collect();
        handles
            .into_iter()
            .map(|j| j.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// A working folder for a lab test, kept under target/ so a failed run's lab can be
/// inspected; emptied at the start, but for the story's lab folder, which
/// `fresh_lab` resets in place when that lab still runs.
pub fn workdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let keep = lab_dir(&d);
    if let Ok(entries) = std::fs::read_dir(&d) {
        for e in entries.flatten() {
            let p = e.path();
            if p == keep {
                continue;
            }
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&lab_net().netns_prefix))
        .map(str::to_string)
        .collect()
}

/// Runs `warren -i lab/inventory.toml ARGS` and returns (exit code, stdout, stderr).
pub fn lab_warren(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let inventory = inventory_arg();
    let mut all = vec!["-i", inventory.as_str()];
    all.extend_from_slice(args);
    let out = warren(dir, &all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like `lab_warren`, failing the test unless warren exits 0; returns stdout.
pub fn lab_warren_ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = lab_warren(dir, args);
    assert_eq!(code, 0, "warren {} failed:\n{out}\n{err}", args.join(" "));
    out
}

/// A fresh lab of `n` hosts in `dir`. The story's lab of an earlier run, when it
/// still runs from `dir` with `n` hosts and no systemd, is reset in place (a story
/// rerun by hand starts in seconds); any other is removed and built anew.
pub fn fresh_lab(dir: &Path, n: usize) -> Vec<Host> {
    let lab = warren::lab::Lab::at(dir, Some(&lab_name())).unwrap();
    if lab.running() == Some((n, false)) {
        lab_ok(dir, &["reset"]);
    } else {
        lab_ok(dir, &["down"]);
        lab_ok(dir, &["up", "--hosts", &n.to_string()]);
    }
    lab_hosts(n)
}

/// Takes the MQTT plugin out of the lab's inventory, for a two-node story that
/// restarts nodes and tests nothing of MQTT. On RabbitMQ 3.10 a node restarted in a
/// cluster of two with MQTT enabled waits 100 s in the plugin's start: `mqtt_node`
/// asks the other node's member of its Raft cluster for the members (timeout 100 s)
/// before restarting its own, and one member of two is no majority, so no answer
/// comes. With three nodes or more the question is answered at once.
pub fn without_mqtt(dir: &Path) {
    edit_inventory(
        dir,
        "plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\"]",
        "plugins = [\"rabbitmq_management\"]",
    );
}

/// A fresh lab of `n` hosts whose central host boots systemd (`lab up --systemd`).
pub fn fresh_systemd_lab(dir: &Path, n: usize) -> Vec<Host> {
    lab_ok(dir, &["down"]);
    lab_ok(dir, &["up", "--systemd", "--hosts", &n.to_string()]);
    lab_hosts(n)
}

/// One property of rabbitmq-server.service as systemd on `host` reports it
/// (`systemctl show -p NAME --value`).
pub fn unit_property(dir: &Path, host: &Host, name: &str) -> String {
    ssh_ok(
        dir,
        host,
        &format!("systemctl show -p {name} --value rabbitmq-server"),
    )
}

/// `rabbitmqctl ... --formatter json` on `host`, parsed.
pub fn rabbitmqctl_json(dir: &Path, host: &Host, args: &str) -> serde_json::Value {
    let out = ssh_ok(
        dir,
        host,
        &format!("rabbitmqctl -q {args} --formatter json"),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args} on {}: {e}: {out}", host.name))
}

/// The nodes RabbitMQ on `host` lists as running members of its cluster, sorted.
pub fn running_nodes(dir: &Path, host: &Host) -> Vec<String> {
    let s = rabbitmqctl_json(dir, host, "cluster_status");
    let mut v: Vec<String> = s["running_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The node an Erlang pid such as `<rabbit@site1.1795.1866.0>` lives on.
pub fn pid_node(pid: &str) -> String {
    pid.trim_start_matches('<')
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

/// Hashes of every file warren manages on a lab host (and the hosts file), to show
/// that a command changed nothing.
pub fn file_hashes(dir: &Path, host: &Host) -> String {
    ssh_ok(
        dir,
        host,
        "sha256sum /etc/rabbitmq/* /var/lib/rabbitmq/.erlang.cookie /etc/hosts; stat -c '%n %a %U' /etc/rabbitmq/* /var/lib/rabbitmq/.erlang.cookie",
    )
}

pub fn all_pids(dir: &Path, hosts: &[Host]) -> Vec<String> {
    on_each(hosts, |h| rabbit_pid(dir, h))
}

pub fn all_file_hashes(dir: &Path, hosts: &[Host]) -> Vec<String> {
    on_each(hosts, |h| file_hashes(dir, h))
}

/// Every node sees every host's node as a running member, from its own side.
pub fn assert_all_see_all(dir: &Path, hosts: &[Host]) {
    let mut want: Vec<String> = hosts.iter().map(|h| format!("rabbit@{}", h.name)).collect();
    want.sort();
    for (h, seen) in hosts.iter().zip(on_each(hosts, |h| running_nodes(dir, h))) {
        assert_eq!(seen, want, "as {} sees it", h.name);
    }
}

/// Edits the lab's inventory in place.
pub fn edit_inventory(dir: &Path, from: &str, to: &str) {
    let p = lab_dir(dir).join("inventory.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "lab/inventory.toml has no {from:?}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// Adds `text` at the end of the lab's inventory.
pub fn append_inventory(dir: &Path, text: &str) {
    let p = lab_dir(dir).join("inventory.toml");
    let mut s = std::fs::read_to_string(&p).unwrap();
    s.push_str(text);
    std::fs::write(&p, s).unwrap();
}

/// An HTTP request to the management API of a lab host, straight from this machine
/// (the lab's bridge reaches every host) as the lab's administrator: the operator's
/// own way in, independent of warren's SSH tunnel. Returns (status, body).
pub fn management(
    dir: &Path,
    host: &Host,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    management_at(dir, host, 15672, method, path, body)
}

/// The tests' own Python (scripts/setup.sh makes it, with pika and the WinRM
/// libraries of tests/winrm/requirements.txt).
pub fn python() -> std::path::PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/winrm-venv/bin/python3");
    assert!(
        python.exists(),
        "{} is missing: run `make setup`",
        python.display()
    );
    python
}

/// The nodes that answered `n` requests to the management API through a load
/// balancer's frontend on `lb`'s `port` (each request a new connection).
pub fn nodes_via(dir: &Path, lb: &Host, port: u16, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .filter_map(|_| {
            let (code, body) = management_at(dir, lb, port, "GET", "/api/overview", None);
            (code == 200).then(|| {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v["node"].as_str().unwrap().to_string()
            })
        })
        .collect()
}

/// `management` to another port of the host (a load balancer's frontend).
pub fn management_at(
    dir: &Path,
    host: &Host,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    use base64::Engine;
    let password = std::fs::read_to_string(lab_dir(dir).join("secrets/admin.password")).unwrap();
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", password.trim()));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    http(
        &host.address,
        port,
        &format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            host.address,
            body.len()
        ),
    )
}

/// Sends one HTTP/1.0 request to `address:port` and reads the answer to its end:
/// (status, body).
fn http(address: &str, port: u16, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((address, port))
        .unwrap_or_else(|e| panic!("{address}:{port}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Publishes persistent messages to a queue through `host`'s node (the default
/// exchange, confirmed by the management API), failing unless each is routed.
pub fn publish(dir: &Path, host: &Host, queue: &str, payloads: &[String]) {
    for p in payloads {
        let (status, body) = management(
            dir,
            host,
            "POST",
            "/api/exchanges/%2F/amq.default/publish",
            Some(&serde_json::json!({
                "properties": {"delivery_mode": 2},
                "routing_key": queue,
                "payload": p,
                "payload_encoding": "string"
            })),
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"routed\":true"), "{body}");
    }
}

/// `name messages` of every queue, as RabbitMQ on `host` counts them now.
pub fn queue_messages(dir: &Path, host: &Host, queue: &str) -> u64 {
    let out = ssh_ok(
        dir,
        host,
        "rabbitmqctl -q list_queues --no-table-headers name messages",
    );
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(n, _)| *n == queue)
        .map(|(_, m)| m.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no queue {queue} on {}: {out}", host.name))
}

/// Like `lab_warren_ok`, with extra environment variables.
pub fn lab_warren_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["-i", &inventory_arg()])
        .args(args)
        .env("XDG_STATE_HOME", state_home(dir))
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run warren");
    assert!(
        out.status.success(),
        "warren {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where a long lab test spends its time: each `done` prints the part's own seconds and
/// the running total to stderr (seen with `--no-capture`, and in nextest's report when
/// the test fails). For finding what to speed up; never asserted.
pub struct Phases {
    test: &'static str,
    start: std::time::Instant,
    last: std::time::Instant,
}

impl Phases {
    pub fn new(test: &'static str) -> Phases {
        let now = std::time::Instant::now();
        Phases {
            test,
            start: now,
            last: now,
        }
    }

    /// Prints how long the phase `what` took, and appends the line to
    /// `target/tmp/phases.log`: nextest shows a passing story's output only with
    /// `--no-capture`, which runs the stories one at a time.
    pub fn done(&mut self, what: &str) {
        let now = std::time::Instant::now();
        let line = format!(
            "[{}] {:6.1} s  (total {:6.1} s)  {what}",
            self.test,
            (now - self.last).as_secs_f64(),
            (now - self.start).as_secs_f64()
        );
        eprintln!("{line}");
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("phases.log");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            use std::io::Write;
            let _ = writeln!(f, "{line}");
        }
        self.last = now;
    }
}

pub fn start_rabbit(dir: &Path, h: &Host) {
    ssh_ok(
        dir,
        h,
        "rabbitmq-server -detached > /dev/null 2>&1 < /dev/null",
    );
    ssh_ok(
        dir,
        h,
        "for i in $(seq 1 60); do rabbitmqctl -q await_startup --timeout 30 && exit 0; sleep 1; done; exit 1",
    );
}

pub fn stop_rabbit(dir: &Path, h: &Host) {
    ssh_ok(
        dir,
        h,
        &format!(
            "rabbitmqctl -q stop /var/lib/rabbitmq/mnesia/rabbit@{}.pid",
            h.name
        ),
    );
}

pub fn verify_json(dir: &Path) -> (i32, serde_json::Value) {
    let (code, out, err) = lab_warren(dir, &["verify", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

/// `apply --yes`, which ends with verify and exits 1 when a check fails; returns its
/// output.
pub fn apply_verified(dir: &Path) -> String {
    let out = lab_warren_ok(dir, &["apply", "--yes"]);
    assert!(out.contains("Verified: all"), "{out}");
    out
}

pub fn verify_passes(dir: &Path) {
    let (code, v) = verify_json(dir);
    assert_eq!((code, failing(&v)), (0, vec![]));
}

pub fn failing(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["host"].as_str().unwrap().to_string(),
                format!("{} {}", c["detail"], c["hint"]),
            )
        })
        .collect()
}

/// Every site queue: master on its site's node, a synchronised mirror on central.
pub fn assert_user_layout(dir: &Path, hosts: &[Host]) {
    let central = &hosts[0];
    // The text output names each pid's node (the JSON formatter does not).
    let listing = ssh_ok(
        dir,
        central,
        "rabbitmqctl -q list_queues --no-table-headers name pid slave_pids synchronised_slave_pids policy",
    );
    for site in &hosts[1..] {
        let name = format!("site.{}.data", site.name);
        let row: Vec<&str> = listing
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|cols| cols[0] == name)
            .unwrap_or_else(|| panic!("queue {name} missing: {listing}"));
        assert_eq!(row.len(), 5, "{row:?}");
        assert_eq!(pid_node(row[1]), format!("rabbit@{}", site.name), "{row:?}");
        let nodes = |col: &str| -> Vec<String> {
            col.trim_matches(['[', ']'])
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| pid_node(p.trim()))
                .collect()
        };
        assert_eq!(
            nodes(row[2]),
            vec!["rabbit@central"],
            "mirrors of {name}: {row:?}"
        );
        assert_eq!(
            nodes(row[3]),
            vec!["rabbit@central"],
            "synchronised mirrors of {name}: {row:?}"
        );
        assert_eq!(row[4], format!("warren-mirror-{}", site.name));
    }
    assert_all_see_all(dir, hosts);
    // One cookie everywhere: the cluster's.
    let hashes: std::collections::BTreeSet<String> = on_each(hosts, |h| {
        ssh_ok(dir, h, "sha256sum < /var/lib/rabbitmq/.erlang.cookie")
    })
    .into_iter()
    .collect();
    assert_eq!(hashes.len(), 1);
}

/// The lab's secrets: the cluster's cookie and every user's password, as the lab's
/// inventory names them.
pub fn lab_secrets(dir: &Path) -> Vec<String> {
    let lab = lab_dir(dir);
    let mut out = vec![std::fs::read_to_string(lab.join("erlang.cookie"))
        .unwrap()
        .trim()
        .to_string()];
    for e in std::fs::read_dir(lab.join("secrets")).unwrap() {
        let p = e.unwrap().path();
        out.push(std::fs::read_to_string(p).unwrap().trim().to_string());
    }
    assert!(
        out.iter().all(|s| s.len() >= 16),
        "a lab secret is too short to grep for"
    );
    out
}

/// After a full run: no secret in anything warren printed (`outputs`), in any file on
/// the lab hosts but the cookie file RabbitMQ reads (RabbitMQ's and warren's folders,
/// /etc, /tmp, root's home), or in the test's folder but the secret files the
/// inventory names (and the hosts' own folders under lab/hosts).
pub fn assert_no_secret_left(dir: &Path, hosts: &[Host], outputs: &str) {
    let secrets = lab_secrets(dir);
    for (i, s) in secrets.iter().enumerate() {
        assert!(
            !outputs.contains(s.as_str()),
            "secret {i} is in warren's output"
        );
    }
    let patterns: String = secrets.iter().map(|s| format!(" -e {s}")).collect();
    for h in hosts {
        let out = ssh(
            dir,
            h,
            &format!(
                "grep -rlF{patterns} /etc /var/lib/rabbitmq /var/log/rabbitmq /tmp /root 2>/dev/null | grep -vx /var/lib/rabbitmq/.erlang.cookie | grep -vF '{}'; true",
                // The lab hosts share this machine's /tmp and /root: the test's own
                // folder (the operator's side, searched below) may be under them.
                dir.display()
            ),
        );
        let found = String::from_utf8_lossy(&out.stdout);
        assert!(
            found.trim().is_empty(),
            "{}: a secret is in {}",
            h.name,
            found.trim()
        );
    }
    let out = Command::new("grep")
        .args(["-rlF"])
        .args(secrets.iter().flat_map(|s| ["-e", s.as_str()]))
        .arg(dir)
        .output()
        .unwrap();
    let lab = lab_dir(dir);
    let found: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .filter(|p| {
            let p = Path::new(p);
            // lab/hosts holds the lab hosts' own disks, searched from the hosts above.
            p != lab.join("erlang.cookie")
                && !p.starts_with(lab.join("secrets"))
                && !p.starts_with(lab.join("hosts"))
        })
        .collect();
    assert!(found.is_empty(), "a secret is in {found:?}");
}

/// Waits (a second between tries) until `done`, failing the test after `limit`: for
/// what RabbitMQ's statistics show a few seconds after the fact.
pub fn wait_for(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// A plain HTTP GET from this machine to `address:port` (no credentials, as a
/// Prometheus server scrapes). Returns (status, body).
pub fn http_get(address: &str, port: u16, path: &str) -> (u16, String) {
    http(
        address,
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n"),
    )
}

/// A Prometheus endpoint scraped and parsed by an independent parser (the
/// prometheus-parse crate), failing the test unless it answers 200.
pub fn scrape(address: &str, port: u16, path: &str) -> prometheus_parse::Scrape {
    let (status, body) = http_get(address, port, path);
    assert_eq!(status, 200, "GET {address}:{port}{path}: {body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("{address}:{port}{path} does not parse: {e}"))
}

/// The value of the first sample named `name` whose labels include `labels`.
pub fn sample(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}
