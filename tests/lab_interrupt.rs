//! Interrupted runs, as when the operator's machine or network loses warren mid-way:
//! on a three-host lab, `apply` killed (SIGKILL) right after every step of a bootstrap
//! and of a rolling restart, inside restarts, and inside a master move; each time the
//! next `apply` takes the dead run's lock over and carries on, and at the end the
//! cluster is exactly the inventory's (read through RabbitMQ on every node), verify
//! passes, and every message published before is still in its queue. Also: a second
//! `apply` refused while one runs, `plan` saying a run is in progress, a node left with
//! its rabbit application stopped, and Ctrl-C stopping at a safe point.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Everything warren printed in this story, grepped for secrets at its end.
static OUTPUTS: Mutex<String> = Mutex::new(String::new());

fn record(text: &str) {
    OUTPUTS.lock().unwrap().push_str(text);
}

/// `lab_warren`, its output recorded.
fn lab(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let (code, out, err) = lab_warren(dir, args);
    record(&out);
    record(&err);
    (code, out, err)
}

/// How a run of `apply` is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: nothing of warren's own runs after it.
    Kill,
    /// SIGINT, as Ctrl-C sends it.
    Interrupt,
}

/// What one run printed and how it ended.
struct Run {
    stderr: String,
    stopped: Option<Stop>,
    /// The exit code when it ended by itself (or after SIGINT).
    code: Option<i32>,
    pid: u32,
}

/// `apply --yes` on the lab, its progress lines read as they come; the first line for
/// which `at` says so stops it. `at` may block (to wait for something on the hosts).
fn apply_until(dir: &Path, mut at: impl FnMut(&str) -> Option<Stop>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["-i", &inventory_arg(), "apply", "--yes"])
        .env("XDG_STATE_HOME", state_home(dir))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run warren");
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let mut stderr = String::new();
    let mut stopped = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if stopped.is_some() {
            continue;
        }
        match at(&line) {
            Some(Stop::Kill) => {
                child.kill().unwrap();
                child.wait().unwrap();
                record(&stdout.join().unwrap());
                record(&stderr);
                return Run {
                    stderr,
                    stopped: Some(Stop::Kill),
                    code: None,
                    pid,
                };
            }
            Some(Stop::Interrupt) => {
                let ok = Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(ok.success());
                stopped = Some(Stop::Interrupt);
            }
            None => {}
        }
    }
    let status = child.wait().unwrap();
    record(&stdout.join().unwrap());
    record(&stderr);
    Run {
        stderr,
        stopped,
        code: status.code(),
        pid,
    }
}

/// A line saying a lab host finished a step (a step that starts ends in " ...").
fn finished_step(line: &str) -> bool {
    ["central: ", "site1: ", "site2: "]
        .iter()
        .any(|h| line.starts_with(h))
        && !line.ends_with(" ...")
}

/// Reruns `apply`, each run stopped where `at(run, line)` says, until a run finishes
/// by itself; every rerun after a killed one must take the dead run's lock over.
/// Returns the lines each run was killed at.
fn killed_until_converged(
    dir: &Path,
    what: &str,
    mut at: impl FnMut(usize, &str) -> Option<Stop>,
) -> Vec<String> {
    let mut killed_at = Vec::new();
    for n in 0..120 {
        let run = apply_until(dir, |l| at(n, l));
        if n > 0 {
            assert!(
                run.stderr
                    .contains("note: took over the lock of warren apply by"),
                "{what}: run {n} after a killed run did not take its lock over:\n{}",
                run.stderr
            );
        }
        match run.stopped {
            Some(Stop::Kill) => {
                killed_at.push(run.stderr.lines().last().unwrap_or("").to_string());
            }
            _ => {
                assert_eq!(
                    run.code,
                    Some(0),
                    "{what}: the run after {} kills failed:\n{}",
                    killed_at.len(),
                    run.stderr
                );
                return killed_at;
            }
        }
    }
    panic!("{what}: no run finished in 120 runs; killed at: {killed_at:#?}");
}

/// The inventory without a host: its [[hosts]] and [[sites]] entries and its
/// producer user.
fn without_host(text: &str, host: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') || blocks.is_empty() {
            blocks.push(String::new());
        }
        let b = blocks.last_mut().unwrap();
        b.push_str(line);
        b.push('\n');
    }
    let quoted = format!("\"{host}\"");
    let producer = format!("\"producer-{host}\"");
    blocks
        .into_iter()
        .filter(|b| !(b.starts_with("[[") && (b.contains(&quoted) || b.contains(&producer))))
        .collect()
}

/// The lab hosts' login user that is not root.
const OPERATOR: &str = "warrenop";

/// A login user that is not root, with passwordless sudo, on every lab host (they
/// share this machine's /etc/passwd and /etc/sudoers.d; the lab's sshd takes the lab
/// key for any user); removed again when dropped.
struct Operator;

impl Operator {
    fn make() -> Operator {
        let exists = Command::new("id")
            .arg(OPERATOR)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let ok = Command::new("useradd")
                .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
                // No password, but not locked: sshd (without PAM) refuses a locked
                // account even its keys.
                .args(["--password", "*"])
                .args(["--shell", "/bin/sh", OPERATOR])
                .status()
                .unwrap();
            assert!(ok.success(), "useradd {OPERATOR}");
        }
        let sudoers = format!("/etc/sudoers.d/{OPERATOR}");
        std::fs::write(&sudoers, format!("{OPERATOR} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        Operator
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/sudoers.d/{OPERATOR}"));
        let _ = Command::new("userdel").arg(OPERATOR).status();
    }
}

fn lock_file_exists(dir: &Path, central: &Host) -> bool {
    ssh(dir, central, "test -e /var/lib/rabbitmq/warren.lock")
        .status
        .success()
}

#[test]
fn killed_runs_are_finished_by_the_next() {
    let dir = workdir("lab_interrupt");
    let mut phases = Phases::new("lab_interrupt");
    let hosts = fresh_lab(&dir, 3);
    let (central, site1, site2) = (&hosts[0], &hosts[1], &hosts[2]);
    phases.done("lab up (3 hosts)");

    // One operator at a time: while a bootstrap runs, a second apply is refused and
    // says who holds the lock. Then the first is killed: plan says so.
    let mut second = None;
    let first = apply_until(&dir, |l| {
        if !finished_step(l) {
            return None;
        }
        second = Some(lab(&dir, &["apply", "--yes"]));
        Some(Stop::Kill)
    });
    let (code, _, err) = second.expect("a second apply ran");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("(pid {}) since ", first.pid))
            && err
                .contains("holds the lock (/var/lib/rabbitmq/warren.lock): one operator at a time")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(lock_file_exists(&dir, central));
    // Killed inside a wave: nodes may be stopping or booting as the plan reads them.
    let (_, plan, plan_err) = lab(&dir, &["plan"]);
    assert!(
        plan.contains("warning: a run was interrupted: warren apply by ")
            && plan.contains("the next `warren apply` takes its lock over"),
        "{plan}\n{plan_err}"
    );
    phases.done("a second apply refused while the first runs");

    // The bootstrap, killed right after each step it finishes.
    let kills = killed_until_converged(&dir, "bootstrap", |_, l| {
        finished_step(l).then_some(Stop::Kill)
    });
    assert!(kills.len() >= 8, "only {} kills: {kills:#?}", kills.len());
    assert_user_layout(&dir, &hosts);
    verify_passes(&dir);
    assert!(!lock_file_exists(&dir, central));
    phases.done(&format!(
        "bootstrap killed after each of {} steps",
        kills.len()
    ));

    // A run that is alive (this test's own process, as far as the lock can tell) holds
    // the lock: plan and verify say a run is in progress, apply refuses, and only
    // --break-lock takes it over.
    let me = std::fs::read_to_string("/proc/self/stat").unwrap();
    let started = me[me.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let holder = serde_json::json!({
        "command": "drill", "user": "alice", "machine": machine.trim(),
        "pid": std::process::id(), "started": started.parse::<u64>().unwrap(),
        "since": "2026-12-02T18:00:00Z", "token": "0123456789abcdef"
    });
    ssh_ok(
        &dir,
        central,
        &format!("echo '{holder}' > /var/lib/rabbitmq/warren.lock"),
    );
    let (_, plan, _) = lab(&dir, &["plan"]);
    assert!(
        plan.contains(&format!(
            "warning: a run is in progress: warren drill by alice on {} (pid {}) since 2026-12-02T18:00:00Z",
            machine.trim(),
            std::process::id()
        )),
        "{plan}"
    );
    let (code, v) = verify_json(&dir);
    record(&v.to_string());
    assert_eq!(code, 0, "{v:#}");
    assert!(
        v["run_in_progress"]
            .as_str()
            .unwrap()
            .contains("a run is in progress: warren drill by alice"),
        "{v:#}"
    );
    let (code, _, err) = lab(&dir, &["apply", "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("warren drill by alice on"), "{err}");
    let (code, _, err) = lab(&dir, &["apply", "--yes", "--break-lock"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("note: broke the lock of warren drill by alice"),
        "{err}"
    );
    assert!(!lock_file_exists(&dir, central));
    phases.done("a live lock: plan and verify say so, apply refuses, --break-lock");

    // A join interrupted between stop_app and start_app leaves the rabbit application
    // stopped; an upload interrupted leaves its temporary file: the plan starts the
    // application, then checks the membership, and deletes the file.
    ssh_ok(&dir, site2, "rabbitmqctl -q stop_app");
    ssh_ok(
        &dir,
        site1,
        "cp /etc/rabbitmq/rabbitmq.conf /etc/rabbitmq/rabbitmq.conf.warren-new",
    );
    let (code, plan, _) = lab(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 2, "{plan}");
    assert!(
        plan.contains("> start the rabbit application: the Erlang VM runs with it stopped")
            && plan.contains("  - /etc/rabbitmq/rabbitmq.conf.warren-new  (the temporary file"),
        "{plan}"
    );
    record(&apply_verified(&dir));
    assert_user_layout(&dir, &hosts);
    assert!(!ssh(
        &dir,
        site1,
        "test -e /etc/rabbitmq/rabbitmq.conf.warren-new"
    )
    .status
    .success());
    phases.done("a stopped rabbit application and a half-written upload");

    // From here site1 is reached as a login user that is not root: every command
    // through sudo, every upload through a private folder and sudo.
    let _operator = Operator::make();
    let entry = format!(
        "name = \"site1\"\naddress = \"{}\"\nos = \"linux\"\ntransport = \"ssh\"\nuser = ",
        hosts[1].address
    );
    edit_inventory(
        &dir,
        &format!("{entry}\"root\""),
        &format!("{entry}\"{OPERATOR}\""),
    );

    // Messages in both site queues, then a change that restarts every node.
    let payloads: Vec<String> = (1..=20).map(|i| format!("reading {i}")).collect();
    publish(&dir, site1, "site.site1.data", &payloads);
    publish(&dir, site2, "site.site2.data", &payloads);
    edit_inventory(&dir, "net_ticktime = 20", "net_ticktime = 25");

    // Ctrl-C while a node restarts: that restart finishes, nothing after it starts,
    // the run says what it did and did not do, and its lock is released.
    let run = apply_until(&dir, |l| {
        l.contains(": stopping RabbitMQ (rabbitmq.conf changed) ...")
            .then_some(Stop::Interrupt)
    });
    assert_eq!(run.stopped, Some(Stop::Interrupt));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("stopped by Ctrl-C at a safe point")
            && run.stderr.contains("done before the failure:")
            && run
                .stderr
                .contains("wrote rabbitmq.conf; restarted RabbitMQ")
            && run.stderr.contains("not done:")
            && run.stderr.contains("it continues from here"),
        "{}",
        run.stderr
    );
    assert!(!lock_file_exists(&dir, central));
    phases.done("Ctrl-C stops at a safe point");

    // The rest of the rolling restart, killed alternately inside a stop or a start
    // and right after a finished step.
    let kills = killed_until_converged(&dir, "rolling restart", |n, l| {
        let inside = l.contains(": stopping RabbitMQ") || l.contains(": starting RabbitMQ");
        if n % 2 == 0 && inside {
            std::thread::sleep(Duration::from_millis(700));
            return Some(Stop::Kill);
        }
        (n % 2 == 1 && finished_step(l)).then_some(Stop::Kill)
    });
    assert!(!kills.is_empty());
    assert_user_layout(&dir, &hosts);
    verify_passes(&dir);
    for q in ["site.site1.data", "site.site2.data"] {
        assert_eq!(
            queue_messages(&dir, central, q),
            20,
            "{q} after the restarts"
        );
    }
    phases.done(&format!("rolling restart killed {} times", kills.len()));

    // A master move killed while its temporary policy is in place: site1's node
    // restarted by hand, so its queue's master is now on central.
    stop_rabbit(&dir, site1);
    start_rabbit(&dir, site1);
    let move_policy = |dir: &Path| -> bool {
        let (status, body) = management(dir, central, "GET", "/api/policies/%2F", None);
        status == 200 && body.contains("\"name\":\"warren-move-")
    };
    let mut left = false;
    let run = apply_until(&dir, |l| {
        if !l.contains(": moving the master of site.site1.data to rabbit@site1 ...") {
            return None;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !move_policy(&dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        left = true;
        Some(Stop::Kill)
    });
    assert!(left && run.stopped == Some(Stop::Kill), "{}", run.stderr);
    let left_behind = move_policy(&dir);
    eprintln!("[lab_interrupt] the killed run left its temporary policy: {left_behind}");
    if left_behind {
        let (code, plan, _) = lab(&dir, &["plan", "--exit-code"]);
        assert_eq!(code, 2, "{plan}");
        assert!(plan.contains("- policy warren-move-"), "{plan}");
    }
    record(&apply_verified(&dir));
    assert!(!move_policy(&dir), "the temporary policy is still there");
    assert_user_layout(&dir, &hosts);
    for q in ["site.site1.data", "site.site2.data"] {
        assert_eq!(queue_messages(&dir, central, q), 20, "{q} after the move");
    }
    phases.done("a master move killed midway, then finished");

    // site2 removed from the inventory, its queue holding messages: its master moves
    // to central's synchronised copy, the node is stopped and forgotten, its files stay;
    // the first run is killed right after its first step and the next one finishes.
    let text = std::fs::read_to_string(lab_dir(&dir).join("inventory.toml")).unwrap();
    std::fs::write(
        lab_dir(&dir).join("inventory.toml"),
        without_host(&text, "site2"),
    )
    .unwrap();
    let (code, plan, _) = lab(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 2, "{plan}");
    assert!(
        plan.contains("  - remove rabbit@site2 (not in the inventory), first: move the master of site.site2.data to rabbit@central (its synchronised copy), stop the node, forget it"),
        "{plan}"
    );
    let kills = killed_until_converged(&dir, "removal", |n, l| {
        (n == 0 && finished_step(l)).then_some(Stop::Kill)
    });
    assert_eq!(kills.len(), 1);
    let status = rabbitmqctl_json(&dir, central, "cluster_status");
    let mut members: Vec<&str> = status["disk_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["rabbit@central", "rabbit@site1"], "{status}");
    assert!(
        !ssh(&dir, site2, "rabbitmqctl -q ping").status.success(),
        "site2's node still runs"
    );
    ssh_ok(&dir, site2, "test -s /etc/rabbitmq/rabbitmq.conf");
    let listing = ssh_ok(
        &dir,
        central,
        "rabbitmqctl -q list_queues --no-table-headers name pid messages",
    );
    let row = listing
        .lines()
        .find(|l| l.starts_with("site.site2.data\t"))
        .unwrap_or_else(|| panic!("{listing}"));
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(pid_node(cols[1]), "rabbit@central", "{row}");
    assert_eq!(
        cols[2], "20",
        "messages of site2's queue after its node left: {row}"
    );
    assert_user_layout(&dir, &hosts[..2]);
    verify_passes(&dir);
    phases.done("site2 removed: drained, stopped, forgotten, its messages kept");

    // Nothing left: a rerun changes nothing, and no secret is in any output, on any
    // host, or here, but where the inventory keeps it and RabbitMQ reads it.
    let (code, plan, _) = lab(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{plan}");
    let (code, _, err) = lab(&dir, &["apply", "--yes"]);
    assert_eq!(code, 0, "{err}");
    let (_, status, _) = lab(&dir, &["status"]);
    assert!(status.contains("site.site1.data"), "{status}");
    let outputs = OUTPUTS.lock().unwrap().clone();
    assert_no_secret_left(&dir, &hosts, &outputs);
    phases.done("no secret left anywhere");
    lab_ok(&dir, &["down"]);
}
