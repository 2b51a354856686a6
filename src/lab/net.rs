//! The lab's network: one bridge on this machine, and per host a network namespace
//! joined to it by a veth pair. All names carry the lab's prefixes, so that leftovers
//! of a killed run can be found and cleared.

use super::sys::{kill, pid_alive, run, run_quiet};
use anyhow::Result;
use std::time::{Duration, Instant};

pub const BRIDGE: &str = "wrnlab0";
pub const NETNS_PREFIX: &str = "wrnlab-";
pub const LINK_PREFIX: &str = "wl-";
/// The lab's private /24: .1 is this machine, .10 the central host, .11 and up the sites.
pub const SUBNET: &str = "10.231.77";

pub fn bridge_address() -> String {
    format!("{SUBNET}.1")
}

/// Namespaces that carry the lab's prefix.
pub fn namespaces() -> Vec<String> {
    run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .map(str::to_string)
        .collect()
}

/// Links that carry the lab's prefix, and the bridge.
pub fn links() -> Vec<String> {
    run("ip", &["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| n.starts_with(LINK_PREFIX) || n == BRIDGE)
        .collect()
}

pub fn netns_exists(ns: &str) -> bool {
    namespaces().iter().any(|n| n == ns)
}

/// Processes whose network namespace is `ns`.
pub fn pids_in(ns: &str) -> Vec<u32> {
    run("ip", &["netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Stops every process in `ns` (TERM, then KILL after a grace period), then deletes it.
pub fn delete_namespace(ns: &str) {
    let pids = pids_in(ns);
    for &p in &pids {
        kill(p, "TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Anything still there, including what the TERM handlers started meanwhile.
    for _ in 0..3 {
        let left = pids_in(ns);
        if left.is_empty() {
            break;
        }
        for p in left {
            kill(p, "KILL");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run_quiet("ip", &["netns", "del", ns]);
}

pub fn ensure_bridge() -> Result<()> {
    if !links().iter().any(|l| l == BRIDGE) {
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    }
    let addr = format!("{}/24", bridge_address());
    let shown = run("ip", &["-o", "addr", "show", "dev", BRIDGE])?;
    if !shown.contains(&format!(" {addr} ")) {
        run("ip", &["addr", "add", &addr, "dev", BRIDGE])?;
    }
    run("ip", &["link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// Creates `ns` with `eth0` at `address`, linked to the bridge through `link`.
pub fn create_host_network(ns: &str, link: &str, address: &str) -> Result<()> {
    run("ip", &["netns", "add", ns])?;
    run(
        "ip",
        &[
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )?;
    run("ip", &["link", "set", link, "master", BRIDGE, "up"])?;
    run(
        "ip",
        &[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ],
    )?;
    run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Removes every namespace, link and the bridge that carry the lab's names.
/// Returns what it removed.
pub fn clear_all() -> Vec<String> {
    let mut removed = Vec::new();
    for ns in namespaces() {
        delete_namespace(&ns);
        removed.push(format!("namespace {ns}"));
    }
    for l in links() {
        if run_quiet("ip", &["link", "del", &l]) {
            removed.push(format!("link {l}"));
        }
    }
    removed
}
