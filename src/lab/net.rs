//! The lab's network: one bridge on this machine, and per host a network namespace
//! joined to it by a veth pair. All names carry the lab's prefixes, so that leftovers
//! of a killed run can be found and cleared.

use super::sys::{kill, pid_alive, run, run_quiet};
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// The default lab's names (`warren lab up` without `--name`).
pub const BRIDGE: &str = "wrnlab0";
pub const NETNS_PREFIX: &str = "wrnlab-";
pub const LINK_PREFIX: &str = "wl-";
/// The default lab's private /24: .1 is this machine, .10 the central host, .11 and up
/// the sites. Named labs take other /24s of 10.231.0.0/16.
pub const SUBNET: &str = "10.231.77";

/// The names one lab's network uses on this machine: its bridge, the prefixes of its
/// namespaces and links, its /24. Two labs share none of them, and no lab's prefix
/// begins another's, so each clears only what is its own.
#[derive(Debug, Clone, PartialEq)]
pub struct LabNet {
    /// `None` for the default lab.
    pub name: Option<String>,
    pub bridge: String,
    pub netns_prefix: String,
    pub link_prefix: String,
    /// The first three octets of the lab's /24.
    pub subnet: String,
}

impl LabNet {
    /// The default lab: the names it has always had.
    pub fn default_lab() -> LabNet {
        LabNet {
            name: None,
            bridge: BRIDGE.into(),
            netns_prefix: NETNS_PREFIX.into(),
            link_prefix: LINK_PREFIX.into(),
            subnet: SUBNET.into(),
        }
    }

    /// The lab called `name` (`--name`), or the default one.
    pub fn of(name: Option<&str>) -> Result<LabNet> {
        match name {
            None => Ok(LabNet::default_lab()),
            Some(n) => LabNet::named(n),
        }
    }

    /// A named lab: bridge `wrn-NAME`, namespaces `wrn-NAME-HOST`, links
    /// `wn-NAME-INDEX` (a link's name holds 15 characters), and a /24 of
    /// 10.231.0.0/16 chosen by the name (10.231.100.0 to 10.231.227.0), so the same
    /// name always gets the same addresses.
    pub fn named(name: &str) -> Result<LabNet> {
        let valid = !name.is_empty()
            && name.len() <= 10
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid {
            bail!("--name {name:?}: a lab's name is 1 to 10 lowercase letters and digits (it goes into network interface names); choose another");
        }
        let hash = name.bytes().fold(2166136261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16777619)
        });
        Ok(LabNet {
            name: Some(name.to_string()),
            bridge: format!("wrn-{name}"),
            netns_prefix: format!("wrn-{name}-"),
            link_prefix: format!("wn-{name}-"),
            subnet: format!("10.231.{}", 100 + hash % 128),
        })
    }

    pub fn bridge_address(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// The namespace of lab host `host`.
    pub fn netns(&self, host: &str) -> String {
        format!("{}{host}", self.netns_prefix)
    }

    /// This machine's end of the veth pair of host number `index` called `host`.
    pub fn link(&self, index: usize, host: &str) -> String {
        match self.name {
            None => format!("{}{host}", self.link_prefix),
            Some(_) => format!("{}{index}", self.link_prefix),
        }
    }

    /// Namespaces that carry the lab's prefix.
    pub fn namespaces(&self) -> Vec<String> {
        all_namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&self.netns_prefix))
            .collect()
    }

    /// Links that carry the lab's prefix, and its bridge.
    pub fn links(&self) -> Vec<String> {
        run("ip", &["-o", "link", "show"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .filter(|n| n.starts_with(&self.link_prefix) || *n == self.bridge)
            .collect()
    }

    pub fn ensure_bridge(&self) -> Result<()> {
        let bridge = self.bridge.as_str();
        let addr = format!("{}/24", self.bridge_address());
        // Another lab's name may hash to the same /24: say so rather than route
        // half of two labs' traffic into the wrong one.
        let all = run("ip", &["-o", "-4", "addr", "show"])?;
        if let Some(other) = all.lines().find(|l| {
            l.contains(&format!(" {addr} ")) && l.split_whitespace().nth(1) != Some(bridge)
        }) {
            bail!(
                "the lab's subnet {}.0/24 is already on this machine ({}); choose another --name",
                self.subnet,
                other.split_whitespace().nth(1).unwrap_or("?")
            );
        }
        if !self.links().iter().any(|l| l == bridge) {
            run("ip", &["link", "add", bridge, "type", "bridge"])?;
        }
        let shown = run("ip", &["-o", "addr", "show", "dev", bridge])?;
        if !shown.contains(&format!(" {addr} ")) {
            run("ip", &["addr", "add", &addr, "dev", bridge])?;
        }
        run("ip", &["link", "set", bridge, "up"])?;
        Ok(())
    }

    /// Creates `ns` with `eth0` at `address`, linked to the lab's bridge through `link`.
    pub fn create_host_network(&self, ns: &str, link: &str, address: &str) -> Result<()> {
        run("ip", &["netns", "add", ns])?;
        run(
            "ip",
            &[
                "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        )?;
        run("ip", &["link", "set", link, "master", &self.bridge, "up"])?;
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
    pub fn clear_all(&self) -> Vec<String> {
        let mut removed = Vec::new();
        for ns in self.namespaces() {
            delete_namespace(&ns);
            removed.push(format!("namespace {ns}"));
        }
        for l in self.links() {
            if run_quiet("ip", &["link", "del", &l]) {
                removed.push(format!("link {l}"));
            }
        }
        removed
    }
}

/// Every network namespace on this machine, by name.
fn all_namespaces() -> Vec<String> {
    run("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

pub fn netns_exists(ns: &str) -> bool {
    all_namespaces().iter().any(|n| n == ns)
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
    stop_processes(ns, &[], Duration::from_secs(5));
    run_quiet("ip", &["netns", "del", ns]);
}

/// Stops every process in `ns` but those in `keep`: TERM, then KILL after `grace`
/// (at once when `grace` is zero).
pub fn stop_processes(ns: &str, keep: &[u32], grace: Duration) {
    let others = || -> Vec<u32> {
        pids_in(ns)
            .into_iter()
            .filter(|p| !keep.contains(p))
            .collect()
    };
    let pids = if grace.is_zero() {
        Vec::new()
    } else {
        others()
    };
    for &p in &pids {
        kill(p, "TERM");
    }
    let deadline = Instant::now() + grace;
    while pids.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Anything still there, including what the TERM handlers started meanwhile.
    for _ in 0..3 {
        let left = others();
        if left.is_empty() {
            break;
        }
        for p in left {
            kill(p, "KILL");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No lab's names begin another's (each clears only what is its own), a link's
    /// name fits the kernel's 15 characters, and the test stories' labs get /24s of
    /// their own.
    #[test]
    fn labs_share_no_names() {
        let stories = [
            "apply",
            "balancer",
            "interrupt",
            "links",
            "migrate",
            "quorum",
            "systemd",
            "tls",
        ];
        let mut nets = vec![LabNet::default_lab()];
        nets.extend(stories.iter().map(|n| LabNet::named(n).unwrap()));
        for (i, a) in nets.iter().enumerate() {
            assert!(
                a.bridge.len() <= 15 && a.link(49, "site49").len() <= 15,
                "{a:?}"
            );
            for b in &nets[i + 1..] {
                assert_ne!(a.subnet, b.subnet, "{a:?} {b:?}");
                for (x, y) in [
                    (&a.netns_prefix, &b.netns_prefix),
                    (&a.link_prefix, &b.link_prefix),
                ] {
                    assert!(
                        !x.starts_with(y.as_str()) && !y.starts_with(x.as_str()),
                        "{x} {y}"
                    );
                }
                assert!(
                    !a.link(0, "central").starts_with(&b.link_prefix),
                    "{a:?} {b:?}"
                );
                assert!(
                    !b.link(0, "central").starts_with(&a.link_prefix),
                    "{a:?} {b:?}"
                );
            }
        }
        assert_eq!(
            LabNet::named("apply").unwrap(),
            LabNet::named("apply").unwrap()
        );
        assert_eq!(LabNet::of(None).unwrap(), LabNet::default_lab());
        for bad in ["", "Apply", "a-b", "elevenchars"] {
            let e = LabNet::named(bad).unwrap_err().to_string();
            assert!(e.contains("1 to 10 lowercase letters and digits"), "{e}");
        }
    }
}
