//! `service = "systemd"` on a real systemd: the lab's central host boots systemd as
//! its init (`lab up --systemd`) and runs Debian's rabbitmq-server.service, as our
//! user's central server does; site1 stays a host without a service manager. Every
//! result is read through the host itself (systemctl, journalctl, /proc, rabbitmqctl),
//! not through warren: a bootstrap restarts the unit through systemd with warren's
//! drop-in loaded; a rerun restarts nothing; a config change restarts the unit once; a
//! start systemd refuses is reported with the unit's journal; the fix converges; a
//! rolling upgrade refused for a skipped series, then an Erlang package switch made
//! on central (its root an overlay in memory) with apt, drained and revived; HAProxy
//! as the load balancer, run and reloaded by systemd.

mod common;

use common::*;
use std::path::Path;

#[test]
fn central_under_systemd_bootstrap_rerun_change_and_a_failed_start() {
    let dir = workdir("lab_systemd");
    let mut phases = Phases::new("lab_systemd");
    let run_dir_before = Path::new("/run/systemd/nspawn").exists();
    let hosts = fresh_systemd_lab(&dir, 2);
    let (central, site) = (&hosts[0], &hosts[1]);
    // Two nodes restarted in turn: MQTT would add 100 s to each restart (`without_mqtt`).
    without_mqtt(&dir);
    phases.done("lab up --systemd");

    // The host as it booted: systemd is its init and runs sshd and RabbitMQ as units,
    // with the unit's own settings only; site1 has no service manager.
    assert_eq!(ssh_ok(&dir, central, "cat /proc/1/comm"), "systemd");
    assert_eq!(ssh_ok(&dir, central, "hostname"), "central");
    assert_eq!(
        ssh_ok(&dir, central, "systemctl is-active ssh rabbitmq-server"),
        "active\nactive"
    );
    assert_ne!(ssh_ok(&dir, site, "cat /proc/1/comm"), "systemd");
    assert_eq!(
        running_nodes(&dir, central),
        vec!["rabbit@central".to_string()]
    );
    let fresh = main_pid(&dir, central);
    assert_eq!(unit_property(&dir, central, "DropInPaths"), "");
    // The masks are in the container's overlay, not in this machine's /etc.
    assert_eq!(
        ssh_ok(
            &dir,
            central,
            "readlink /etc/systemd/system/console-getty.service"
        ),
        "/dev/null"
    );
    assert!(!Path::new("/etc/systemd/system/console-getty.service").exists());
    let inventory = std::fs::read_to_string(lab_dir(&dir).join("inventory.toml")).unwrap();
    assert!(
        inventory.contains(&format!(
            "name = \"central\"\naddress = \"{}\"",
            hosts[0].address
        )) && inventory.contains("role = \"central\"\nservice = \"systemd\"")
            && inventory.contains("role = \"site\"\nservice = \"direct\""),
        "{inventory}"
    );
    let status = lab_ok(&dir, &["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.contains("central") && l.contains("systemd") && l.contains("running")),
        "{status}"
    );

    // Bootstrap: the drop-in is planned with the daemon-reload it needs, and central
    // is restarted by systemd, which then runs it with warren's drop-in loaded.
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(
        plan.contains("+ /etc/systemd/system/rabbitmq-server.service.d/warren.conf"),
        "{plan}"
    );
    assert!(plan.contains("daemon-reload"), "{plan}");
    let journal_before = journal(&dir, central);
    let out = apply_verified(&dir);
    assert!(out.contains("joined site1"), "{out}");
    let booted = main_pid(&dir, central);
    assert_ne!(booted, fresh, "central was not restarted");
    assert_restarted(&journal_before, &journal(&dir, central));
    assert_eq!(
        unit_property(&dir, central, "DropInPaths"),
        "/etc/systemd/system/rabbitmq-server.service.d/warren.conf"
    );
    assert_eq!(unit_property(&dir, central, "NeedDaemonReload"), "no");
    // What the drop-in sets, as systemd holds it for the unit (Debian's unit sets the
    // same two values; the failed start below shows that a changed drop-in is what
    // runs). systemd gives the node LimitNOFILE, or the most the container's init may
    // give (a machine whose root lacks CAP_SYS_RESOURCE caps it below 65536).
    assert_eq!(unit_property(&dir, central, "LimitNOFILE"), "65536");
    assert_eq!(unit_property(&dir, central, "TimeoutStartUSec"), "10min");
    // (soft, hard) limits of open files of a process on central.
    let open_files = |pid: &str| -> (u64, u64) {
        let limits = ssh_ok(&dir, central, &format!("cat /proc/{pid}/limits"));
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or_else(|| panic!("{limits}"));
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (n[0], n[1])
    };
    let most = 65536.min(open_files("1").1);
    assert_eq!(open_files(&booted), (most, most));
    // The environment systemd gives its service, in the node's own process.
    let environ = ssh_ok(
        &dir,
        central,
        &format!("tr '\\0' '\\n' < /proc/{booted}/environ"),
    );
    assert!(
        environ.lines().any(|l| l.starts_with("INVOCATION_ID="))
            && environ.lines().any(|l| l.starts_with("NOTIFY_SOCKET=")),
        "{environ}"
    );
    assert_eq!(
        ssh_ok(&dir, central, &format!("ps -o user= -p {booted}")),
        "rabbitmq"
    );
    assert_all_see_all(&dir, &hosts);
    assert_user_layout(&dir, &hosts);
    phases.done("bootstrap");

    // A rerun changes nothing and restarts nothing, not even through systemd.
    let site_pid = rabbit_pid(&dir, site);
    let journal_before = journal(&dir, central);
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(main_pid(&dir, central), booted);
    assert_eq!(rabbit_pid(&dir, site), site_pid);
    assert_eq!(journal(&dir, central), journal_before);
    // doctor reads systemd's unit on central: active, enabled, run as rabbitmq;
    // every other line ok too, and it restarts nothing either.
    let (code, out, err) = lab_warren(&dir, &["doctor", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let not_ok: Vec<&serde_json::Value> = checks.iter().filter(|c| c["status"] != "ok").collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    let service = checks
        .iter()
        .find(|c| c["check"] == "service" && c["host"] == "central")
        .unwrap();
    assert_eq!(
        service["found"], "rabbitmq-server.service active, enabled, as user rabbitmq",
        "{service}"
    );
    assert_eq!(main_pid(&dir, central), booted);
    phases.done("rerun");

    // A setting every node reads: central is restarted through systemctl, once.
    edit_inventory(&dir, "net_ticktime = 20", "net_ticktime = 30");
    let out = apply_verified(&dir);
    assert!(out.contains("restarted central, site1"), "{out}");
    let changed = main_pid(&dir, central);
    assert_ne!(changed, booted);
    assert_restarted(&journal_before, &journal(&dir, central));
    assert_eq!(
        ssh_ok(
            &dir,
            central,
            "rabbitmqctl -q eval 'net_kernel:get_net_ticktime().'"
        ),
        "30"
    );
    assert_all_see_all(&dir, &hosts);
    phases.done("net_ticktime changed");

    // A start systemd refuses (a drop-in naming a user that does not exist, through a
    // template override): warren's error carries the unit's journal, which says why.
    let overrides = lab_dir(&dir).join("templates/linux");
    std::fs::create_dir_all(&overrides).unwrap();
    std::fs::write(
        overrides.join("systemd-warren.conf.tera"),
        "# {{ header }}\n[Service]\nLimitNOFILE=65536\nTimeoutStartSec=600\nUser=rabbitmq-nobody\n",
    )
    .unwrap();
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("central: starting RabbitMQ failed")
            && err.contains("journalctl -u rabbitmq-server")
            && (err.contains("Failed to determine user credentials")
                || err.contains("exit status 217/USER is systemd's: it could not find or switch to the unit's User=")),
        "{err}"
    );
    assert_ne!(
        ssh(&dir, central, "systemctl is-active rabbitmq-server")
            .status
            .code(),
        Some(0)
    );
    phases.done("a failed start");

    // The override removed: the rerun brings central back under systemd, verified.
    std::fs::remove_dir_all(lab_dir(&dir).join("templates")).unwrap();
    apply_verified(&dir);
    assert_eq!(
        ssh_ok(&dir, central, "systemctl is-active rabbitmq-server"),
        "active"
    );
    let back = main_pid(&dir, central);
    assert_ne!(back, changed);
    assert_all_see_all(&dir, &hosts);
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}\n{err}");
    phases.done("fixed and converged");

    // Rolling upgrade, on the one host that can hold its own packages: central's
    // root is an overlay of this machine's, in memory; site1 shares this machine's
    // root, so its packages are never touched. The versions are read from the hosts
    // (dpkg, the node's API, its feature flags).
    let central_pin = "role = \"central\"\nservice = \"systemd\"";
    edit_inventory(
        &dir,
        central_pin,
        &format!("{central_pin}\nrabbitmq_version = \"3.12.13\"\nrabbitmq_package = \"3.12.13-1\""),
    );
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(
        plan.contains(
            "x central: rabbit@central: RabbitMQ 3.10.8 -> 3.12.13 skips a release series"
        ),
        "{plan}"
    );
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(
        main_pid(&dir, central),
        back,
        "a refused upgrade touched central"
    );
    edit_inventory(
        &dir,
        "\nrabbitmq_version = \"3.12.13\"\nrabbitmq_package = \"3.12.13-1\"",
        "",
    );
    // Another Erlang package of the same OTP release, the only switch this machine's
    // apt offers: its .debs are fetched here and put into central's apt cache (in
    // its overlay), so that apt on central installs them without a network.
    let installed = ssh_ok(&dir, central, "dpkg-query -W -f='${Version}' erlang-base");
    let other = std::process::Command::new("apt-cache")
        .args(["madison", "erlang-base"])
        .output()
        .unwrap();
    let other = String::from_utf8_lossy(&other.stdout)
        .lines()
        .filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_string()))
        .find(|v| *v != installed)
        .expect("apt offers only one erlang-base version here: the upgrade cannot be made");
    let packages = ssh_ok(
        &dir,
        central,
        "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' 'erlang-*' | awk '$1 == \"ii\" { print $2 }'",
    );
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let mut download = std::process::Command::new("apt-get");
    download.arg("download").current_dir(&debs);
    for p in packages.lines() {
        download.arg(format!("{p}={other}"));
    }
    let got = download.output().unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let nspawn = std::fs::read_to_string(lab_dir(&dir).join("hosts/central/nspawn.pid")).unwrap();
    let nspawn = nspawn.trim();
    let init = std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).unwrap();
    let cache = format!("/proc/{}/root/var/cache/apt/archives", init.trim());
    for deb in std::fs::read_dir(&debs).unwrap().flatten() {
        std::fs::copy(deb.path(), Path::new(&cache).join(deb.file_name())).unwrap();
    }
    edit_inventory(
        &dir,
        central_pin,
        &format!("{central_pin}\nerlang_package = \"{other}\""),
    );
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(
        plan.contains(&format!("^ upgrade: Erlang package {installed} -> {other}"))
            && plan.contains("rolling upgrade (alone): central")
            && plan.contains("+ enable every stable feature flag through central"),
        "{plan}"
    );
    let site_pid = rabbit_pid(&dir, site);
    let journal_before = journal(&dir, central);
    // warren's policy-rc.d exists only while apt runs (one already there is kept).
    let policy = "ls -l --time-style=full-iso /usr/sbin/policy-rc.d 2>&1; true";
    let policy_before = ssh_ok(&dir, central, policy);
    let out = apply_verified(&dir);
    assert!(out.contains("restarted central; joined none"), "{out}");
    // Read on the hosts: central's packages are the other ones, every erlang-*
    // package moved together, site1's (this machine's) are as they were; central was
    // stopped and started once by systemd and runs again, out of maintenance mode,
    // with every stable feature flag enabled; site1 was not restarted.
    assert_eq!(
        ssh_ok(&dir, central, "dpkg-query -W -f='${Version}\\n' $(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' 'erlang-*' | awk '$1 == \"ii\" { print $2 }') | sort -u"),
        other
    );
    assert_eq!(
        ssh_ok(&dir, site, "dpkg-query -W -f='${Version}' erlang-base"),
        installed
    );
    assert_eq!(
        ssh_ok(&dir, central, policy),
        policy_before,
        "policy-rc.d not left as it was"
    );
    assert_restarted(&journal_before, &journal(&dir, central));
    assert_ne!(main_pid(&dir, central), back);
    assert_eq!(rabbit_pid(&dir, site), site_pid);
    let flags = rabbitmqctl_json(&dir, central, "list_feature_flags name state");
    let off: Vec<&serde_json::Value> = flags
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] != "enabled")
        .collect();
    assert!(off.is_empty(), "{off:?}");
    // Out of maintenance mode, as the node itself says (3.10's API does not).
    for h in &hosts {
        assert_eq!(
            ssh_ok(
                &dir,
                h,
                "rabbitmqctl -q eval 'rabbit_maintenance:is_being_drained_local_read(node()).'"
            ),
            "false",
            "{} is left in maintenance mode",
            h.name
        );
    }
    assert_all_see_all(&dir, &hosts);
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}\n{err}");
    phases.done("rolling upgrade of central's Erlang");

    // HAProxy under systemd: `[load_balancer]` on central runs Debian's
    // haproxy.service, enabled, with warren's file; the management API answers
    // through it from both nodes. A port change reloads the unit (its master process
    // stays, RabbitMQ is not restarted); a rerun touches nothing.
    let rabbit = main_pid(&dir, central);
    let was_running = ssh(&dir, central, "systemctl is-active --quiet haproxy")
        .status
        .success();
    append_inventory(&dir, "\n[load_balancer]\nhost = \"central\"\n");
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Verified: all"), "{out}");
    let done = if was_running { "reloaded" } else { "started" };
    assert!(err.contains(&format!("central: {done} HAProxy")), "{err}");
    assert_eq!(
        ssh_ok(
            &dir,
            central,
            "systemctl is-active haproxy; systemctl is-enabled haproxy"
        ),
        "active\nenabled"
    );
    let haproxy = haproxy_pid(&dir, central);
    assert_eq!(
        nodes_via(&dir, central, 15673, 6),
        ["rabbit@central", "rabbit@site1"].map(String::from).into()
    );
    let reloads = haproxy_reloads(&dir, central);
    edit_inventory(
        &dir,
        "[load_balancer]\nhost = \"central\"\n",
        "[load_balancer]\nhost = \"central\"\nports = { management = 15674 }\n",
    );
    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("central: reloaded HAProxy"), "{err}");
    assert_eq!(
        haproxy_pid(&dir, central),
        haproxy,
        "HAProxy was restarted, not reloaded"
    );
    assert_eq!(haproxy_reloads(&dir, central), reloads + 1);
    assert_eq!(
        nodes_via(&dir, central, 15674, 6),
        ["rabbit@central", "rabbit@site1"].map(String::from).into()
    );
    assert!(
        std::net::TcpStream::connect((central.address.as_str(), 15673)).is_err(),
        "the old management port still answers"
    );
    assert_eq!(
        main_pid(&dir, central),
        rabbit,
        "RabbitMQ was restarted for HAProxy"
    );
    let (code, out, err) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(haproxy_pid(&dir, central), haproxy);
    phases.done("HAProxy under systemd");

    down_leaves_no_container(&dir, run_dir_before);
    phases.done("lab down");
}

/// The unit's main pid, checked to be the RabbitMQ node that runs: the pid RabbitMQ
/// wrote at boot, and an Erlang VM.
fn main_pid(dir: &Path, central: &Host) -> String {
    let pid = unit_property(dir, central, "MainPID");
    assert_ne!(pid, "0", "rabbitmq-server.service has no main process");
    assert_eq!(rabbit_pid(dir, central), pid, "MainPID is not the node");
    pid
}

/// haproxy.service's main process (HAProxy's master), checked to be HAProxy.
fn haproxy_pid(dir: &Path, host: &Host) -> String {
    let pid = ssh_ok(dir, host, "systemctl show -p MainPID --value haproxy");
    assert_ne!(pid, "0", "haproxy.service has no main process");
    assert_eq!(
        ssh_ok(dir, host, &format!("cat /proc/{pid}/comm")),
        "haproxy"
    );
    pid
}

/// How many reloads of haproxy.service systemd has logged on `host`.
fn haproxy_reloads(dir: &Path, host: &Host) -> usize {
    ssh_ok(dir, host, "journalctl -u haproxy --no-pager -o cat; true")
        .lines()
        .filter(|l| l.starts_with("Reloaded haproxy.service"))
        .count()
}

/// What systemd logged about rabbitmq-server.service on `host`, its messages only.
fn journal(dir: &Path, host: &Host) -> Vec<String> {
    ssh_ok(dir, host, "journalctl -u rabbitmq-server --no-pager -o cat")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Between the two journals, systemd stopped the unit and then started it, once.
fn assert_restarted(before: &[String], after: &[String]) {
    assert!(after.starts_with(before), "{before:?}\n{after:?}");
    let new = &after[before.len()..];
    let at = |what: &str| {
        let found: Vec<usize> = new
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(what))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(found.len(), 1, "{what} in {new:?}");
        found[0]
    };
    let stopped = at("Stopped rabbitmq-server.service");
    let started = at("Started rabbitmq-server.service");
    assert!(stopped < started, "{new:?}");
}

/// `lab down`: the container, its cgroups and its mounts are gone, and so is
/// /run/systemd/nspawn unless it was there before.
fn down_leaves_no_container(dir: &Path, run_dir_before: bool) {
    let lab = lab_dir(dir);
    lab_ok(dir, &["down"]);
    assert_eq!(namespaces(), Vec::<String>::new());
    assert!(!lab.exists());
    assert!(!Path::new("/run/systemd/nspawn").exists() || run_dir_before);
    for root in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
    ] {
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(&lab_net().netns_prefix),
                "cgroup {root}/{name} is left"
            );
        }
    }
    let lab_path = lab.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&format!("/run/netns/{}", lab_net().netns_prefix))
                && !cmdline.contains(&lab_path),
            "process {pid} is left: {cmdline}"
        );
        let mounts = std::fs::read_to_string(entry.path().join("mountinfo")).unwrap_or_default();
        assert!(
            !mounts.contains(&lab_path),
            "process {pid} still sees a lab mount"
        );
    }
}
