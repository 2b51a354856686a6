//! `warren lab`: real hosts in network namespaces. One ordered scenario, because the
//! lab is one per machine: up, inspect each host as an operator would (SSH, hostname,
//! private folders, RabbitMQ answering standalone), grow to 6 without touching the
//! others, survive a killed run, and leave nothing behind on `down`.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

#[test]
fn lab_lifecycle() {
    let dir = workdir("lab_lifecycle");
    warren_ok(&dir, &["lab", "down"]);

    // Up: five hosts, each its own machine as far as an operator can tell.
    warren_ok(&dir, &["lab", "up"]);
    let hosts = lab_hosts(5);
    let check = warren_ok(&dir, &["-i", "lab/inventory.toml", "check"]);
    assert!(check.contains("5 hosts (4 sites)"), "{check}");
    let this_machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut cookies = BTreeSet::new();
    for h in &hosts {
        assert_eq!(ssh_ok(&dir, h, "hostname"), h.name);
        assert_eq!(ssh_ok(&dir, h, "cat /etc/hostname"), h.name);
        assert_ne!(h.name, this_machine.trim());
        // Private RabbitMQ folders, owned as the package expects.
        ssh_ok(
            &dir,
            h,
            &format!(
                "touch /etc/rabbitmq/only-on-{0} /var/lib/rabbitmq/only-on-{0}",
                h.name
            ),
        );
        assert_eq!(
            ssh_ok(&dir, h, "stat -c %U /var/lib/rabbitmq /var/log/rabbitmq"),
            "rabbitmq\nrabbitmq"
        );
        // RabbitMQ answers, standalone, with its own node name and its own cookie.
        let status = ssh_ok(&dir, h, "rabbitmqctl -q cluster_status --formatter json");
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(
            status["running_nodes"],
            serde_json::json!([format!("rabbit@{}", h.name)]),
            "{}: {status}",
            h.name
        );
        cookies.insert(ssh_ok(
            &dir,
            h,
            "sha256sum /var/lib/rabbitmq/.erlang.cookie",
        ));
        // Every lab host resolves and reaches the others.
        for other in &hosts {
            assert_eq!(
                ssh_ok(&dir, h, &format!("getent hosts {}", other.name))
                    .split_whitespace()
                    .next(),
                Some(other.address.as_str())
            );
        }
        ssh_ok(
            &dir,
            h,
            &format!("timeout 5 bash -c '</dev/tcp/{}/5672'", hosts[0].address),
        );
    }
    assert_eq!(
        cookies.len(),
        5,
        "each fresh host has its own random cookie"
    );
    for h in &hosts {
        let listing = ssh_ok(&dir, h, "ls /etc/rabbitmq /var/lib/rabbitmq");
        for other in &hosts {
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

    // Up --hosts 6: a fifth site, and the others untouched.
    let pids: Vec<String> = hosts.iter().map(|h| rabbit_pid(&dir, h)).collect();
    let known_before = std::fs::read_to_string(dir.join("lab/known_hosts")).unwrap();
    warren_ok(&dir, &["lab", "up", "--hosts", "6"]);
    let six = lab_hosts(6);
    assert_eq!(ssh_ok(&dir, &six[5], "hostname"), "site5");
    ssh_ok(&dir, &six[5], "rabbitmqctl -q await_startup");
    for (h, pid) in hosts.iter().zip(&pids) {
        assert_eq!(&rabbit_pid(&dir, h), pid, "{} was restarted", h.name);
        ssh_ok(
            &dir,
            h,
            &format!("test -e /etc/rabbitmq/only-on-{}", h.name),
        );
    }
    let known_after = std::fs::read_to_string(dir.join("lab/known_hosts")).unwrap();
    assert!(
        known_after.starts_with(&known_before),
        "existing host keys changed"
    );
    let check = warren_ok(&dir, &["-i", "lab/inventory.toml", "check"]);
    assert!(check.contains("6 hosts (5 sites)"), "{check}");

    // A killed run: every process gone, namespaces and links left behind.
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
        6,
        "the namespaces outlive their processes"
    );
    assert!(!ssh(&dir, &six[0], "true").status.success());
    warren_ok(&dir, &["lab", "up"]);
    for h in &six {
        assert_eq!(ssh_ok(&dir, h, "hostname"), h.name);
        ssh_ok(&dir, h, "rabbitmqctl -q await_startup");
    }

    // Down: no process, namespace, link, mount or file left.
    let lab_dir = dir.join("lab");
    warren_ok(&dir, &["lab", "down"]);
    assert_eq!(namespaces(), Vec::<String>::new());
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(warren::lab::BRIDGE)
            && !links.contains(&format!(": {}", warren::lab::LINK_PREFIX)),
        "{links}"
    );
    assert!(!lab_dir.exists());
    assert!(!Path::new("/run/warren-lab").exists());
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
            !mounts.contains("/run/netns/wrnlab-"),
            "a namespace mount is left"
        );
    }
    // A second down finds nothing to do.
    let again = warren_ok(&dir, &["lab", "down"]);
    assert!(again.contains("nothing to remove"), "{again}");
}

#[test]
fn lab_refuses_without_root_in_one_sentence() {
    let dir = workdir("lab_not_root");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_warren"),
            "lab",
            "up",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs root; run it with sudo"), "{err}");
    assert!(!dir.join("lab").exists());
}
