//! Killed anywhere, finished by the rerun. `apply` is killed (SIGKILL: nothing of
//! warren's own runs after it) at a random moment inside a bootstrap, a rolling
//! restart and an added host's join, not only between steps: a CLI call cut off, a
//! node half-booted, a join half-done. After each kill the next `apply` converges and
//! the cluster is the inventory's, as RabbitMQ tells it (every node a running member
//! from every side; each node's `net_ticktime` read from the node). The offsets come
//! from one seed, printed, so a failure replays: `WARREN_KILL_SEED=N`.
//!
//! Also two things a killed run leaves that warren must see through:
//! - a node whose pid file is gone while it runs (a second `rabbitmq-server -detached`
//!   beside a running node removes it, as a racing start does): warren asks the node
//!   (epmd, and the process on its distribution port), so `plan` still sees it
//!   running and a restart really restarts it;
//! - a join that fails once (the Erlang distribution cut between the joining host and
//!   every member, so the TCP checks pass and Erlang's handshake does not; peer
//!   discovery then leaves the node standalone): warren says why, resets the node,
//!   which holds nothing, and joins it again.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `apply --yes`, killed `after` its start unless it ended before. Returns what it
/// printed last, for the story's own log.
fn apply_killed_after(dir: &Path, after: Duration) -> String {
    let out = dir.join("killed.out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["-i", &inventory_arg(), "apply", "--yes"])
        .env("XDG_STATE_HOME", state_home(dir))
        .current_dir(dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.join("killed.err")).unwrap())
        .spawn()
        .expect("run warren");
    let start = Instant::now();
    let ended = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() >= after {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(dir.join("killed.err")).unwrap_or_default();
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    match ended {
        None => format!("killed {:.1} s in, at: {last}", after.as_secs_f64()),
        Some(s) => format!("ended by itself ({s}) before {:.1} s", after.as_secs_f64()),
    }
}

/// Kills `apply` at a random moment in `range` (seconds), then reruns it: the rerun
/// must converge and verify.
fn killed_then_finished(dir: &Path, rng: &mut impl Rng, what: &str, range: (f64, f64)) {
    let at = Duration::from_secs_f64(rng.gen_range(range.0..range.1));
    let how = apply_killed_after(dir, at);
    eprintln!("[lab_killed] {what}: {how}");
    // A kill late in the run leaves nothing to do: the rerun then changes nothing,
    // and verifies nothing itself.
    let out = lab_warren_ok(dir, &["apply", "--yes"]);
    assert!(
        out.contains("Verified: all") || out.contains("No changes."),
        "{out}"
    );
    verify_passes(dir);
    let (code, plan, err) = lab_warren(dir, &["plan"]);
    assert_eq!(code, 0, "{plan}\n{err}");
    assert!(
        plan.contains("No changes."),
        "{what}: the rerun after a kill ({how}) left changes:\n{plan}"
    );
}

/// Each host's node's `net_ticktime`, as the node says.
fn ticktimes(dir: &Path, hosts: &[Host]) -> Vec<String> {
    on_each(hosts, |h| {
        ssh_ok(
            dir,
            h,
            "rabbitmqctl -q eval 'net_kernel:get_net_ticktime().'",
        )
    })
}

/// Refuses the Erlang distribution's data (not its TCP handshake) from `from` to
/// `to`'s node, inside `to`'s namespace: the port checks before a join pass, the join
/// itself fails as it would on a flaky link.
fn cut_distribution(from: &Host, to: &Host, cut: bool) {
    let ns = lab_net().netns(&to.name);
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns, "iptables"])
        .arg(if cut { "-I" } else { "-D" })
        .args([
            "INPUT",
            "-p",
            "tcp",
            "-s",
            &from.address,
            "--dport",
            "25672",
        ])
        .args(["-m", "length", "--length", "70:65535", "-j", "REJECT"])
        .args(["--reject-with", "tcp-reset"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "iptables in {ns}");
}

#[test]
fn a_run_killed_anywhere_is_finished_by_the_next() {
    let dir = workdir("lab_killed");
    let mut phases = Phases::new("lab_killed");
    let seed: u64 = std::env::var("WARREN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("[lab_killed] kill seed {seed} (replay: WARREN_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hosts = fresh_lab(&dir, 2);
    // Two nodes restarted in turn: MQTT would add 100 s to each restart (`without_mqtt`).
    without_mqtt(&dir);

    // A bootstrap of two fresh hosts takes about 30-40 s here.
    killed_then_finished(&dir, &mut rng, "bootstrap", (2.0, 30.0));
    assert_all_see_all(&dir, &hosts);
    phases.done("bootstrap killed, finished by the rerun");

    // site1's pid file removed while its node runs, as a second start removes it.
    let site1 = &hosts[1];
    let pid_file = "/var/lib/rabbitmq/mnesia/rabbit@site1.pid";
    ssh_ok(
        &dir,
        site1,
        &format!("rabbitmq-server -detached > /dev/null 2>&1 < /dev/null; for i in $(seq 1 60); do [ -e {pid_file} ] || exit 0; sleep 0.5; done; exit 1"),
    );
    assert_eq!(running_nodes(&dir, site1).len(), 2, "site1 runs on");
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(plan.contains("No changes."), "{plan}");
    verify_passes(&dir);
    phases.done("a running node without its pid file is seen running");

    // A rolling restart (net_ticktime 20 -> 25 restarts both nodes), killed.
    assert_eq!(ticktimes(&dir, &hosts), ["20", "20"]);
    edit_inventory(&dir, "net_ticktime = 20", "net_ticktime = 25");
    killed_then_finished(&dir, &mut rng, "rolling restart", (2.0, 35.0));
    assert_eq!(
        ticktimes(&dir, &hosts),
        ["25", "25"],
        "every node restarted"
    );
    assert_all_see_all(&dir, &hosts);
    phases.done("rolling restart killed, finished by the rerun");

    // A third host added, its run killed.
    lab_ok(&dir, &["up", "--hosts", "3"]);
    let hosts = lab_hosts(3);
    killed_then_finished(&dir, &mut rng, "added host", (2.0, 30.0));
    assert_all_see_all(&dir, &hosts);
    phases.done("an added host's run killed, finished by the rerun");

    // site2 out again (standalone, holding nothing), and its first join fails. The
    // cut comes between its reset (which tells central it leaves) and its start: a
    // reset node with peer discovery in its config would otherwise join the cluster
    // again at its `start_app`.
    let site2 = &hosts[2];
    ssh_ok(
        &dir,
        site2,
        "rabbitmqctl -q stop_app && rabbitmqctl -q reset",
    );
    // Cut from every other node: peer discovery joins any running member it reaches.
    let cut_off = |cut: bool| {
        for other in &hosts[..2] {
            cut_distribution(site2, other, cut);
        }
    };
    cut_off(true);
    ssh_ok(&dir, site2, "rabbitmqctl -q start_app");
    assert_eq!(
        running_nodes(&dir, site2),
        ["rabbit@site2"],
        "site2 standalone"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["-i", &inventory_arg(), "apply", "--yes"])
        .env("XDG_STATE_HOME", state_home(&dir))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run warren");
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let mut err = String::new();
    let mut cut = true;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if cut && line.starts_with("site2: joining rabbit@central failed (") {
            cut_off(false);
            cut = false;
        }
        err.push_str(&line);
        err.push('\n');
    }
    if cut {
        cut_off(false);
    }
    let status = child.wait().unwrap();
    let out = out.join().unwrap();
    assert!(status.success(), "{out}\n{err}");
    assert!(!cut, "the first join did not fail:\n{err}");
    // site2 is not fresh (nothing to restart): it joins by `stop_app`, `reset`,
    // `start_app`, and peer discovery, which cannot reach central, leaves it
    // standalone.
    assert!(
        err.contains("site2: joining rabbit@central failed (site2: rabbit@site2 did not join rabbit@central by peer discovery: its cluster_status lists rabbit@site2")
            && err.contains("reset and joined again (attempt 2 of 3)")
            && err.contains("site2: joined rabbit@central's cluster (on attempt 2)"),
        "{err}"
    );
    assert!(out.contains("Verified: all"), "{out}");
    assert_all_see_all(&dir, &hosts);
    phases.done("a failed join retried from a reset");
    lab_ok(&dir, &["down"]);
}
