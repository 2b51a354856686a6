//! RabbitMQ's rules for moving a cluster between versions, as its upgrade guide
//! (upgrade.md, rolling-upgrade.md) and its Erlang compatibility matrix
//! (which-erlang.md) state them: which release series a rolling upgrade may go to
//! from which, and which Erlang/OTP versions each RabbitMQ release runs on. Pure:
//! the inventory's check and the plan both ask it.

use std::cmp::Ordering;
use std::fmt;

/// A dotted version, `3.10.8` or `25.2.3` or `24.3.4.8`; missing parts count as 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub Vec<u32>);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let parts: Option<Vec<u32>> = s.trim().split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty() && p.len() <= 4).map(Version)
    }
    fn part(&self, i: usize) -> u32 {
        self.0.get(i).copied().unwrap_or(0)
    }
    /// The release series: `(major, minor)`.
    pub fn series(&self) -> (u32, u32) {
        (self.part(0), self.part(1))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (0..4)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// The upstream version inside a Debian package version: no epoch (`1:`), no
/// Debian revision (`-1.1+deb12u1`), no repack suffix (`+dfsg`).
/// `1:25.2.3+dfsg-1+deb12u4` -> `25.2.3`; `3.10.8-1.1+deb12u1` -> `3.10.8`.
pub fn debian_upstream(package_version: &str) -> &str {
    let v = package_version
        .split_once(':')
        .map_or(package_version, |(_, v)| v);
    let v = v.rsplit_once('-').map_or(v, |(u, _)| u);
    v.split(['+', '~']).next().unwrap_or(v)
}

/// Compares two Debian package versions by dpkg's rules (epoch, upstream, revision;
/// `~` sorts before anything, letters before other characters).
pub fn debian_cmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            Some('~') => -1,
            None => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(mut a: &str, mut b: &str) -> Ordering {
        while !a.is_empty() || !b.is_empty() {
            // The non-digit prefix, character by character.
            let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
            let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
            let (mut ca, mut cb) = (a[..na].chars(), b[..nb].chars());
            loop {
                let (x, y) = (ca.next(), cb.next());
                if x.is_none() && y.is_none() {
                    break;
                }
                match order(x).cmp(&order(y)) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            a = &a[na..];
            b = &b[nb..];
            let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let x: u64 = a[..da].parse().unwrap_or(0);
            let y: u64 = b[..db].parse().unwrap_or(0);
            match x.cmp(&y) {
                Ordering::Equal => {}
                o => return o,
            }
            a = &a[da..];
            b = &b[db..];
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// The Erlang/OTP versions a RabbitMQ release runs on: (minimum, newest series),
/// from RabbitMQ's compatibility matrix. `None`: a release the table does not cover.
pub fn erlang_range(rabbitmq: &Version) -> Option<(Version, (u32, u32))> {
    // (first release, last release of the row, minimum Erlang, newest Erlang series)
    const TABLE: &[(&str, &str, &str, (u32, u32))] = &[
        ("3.9.0", "3.9.999", "23.2", (25, 2)),
        ("3.10.0", "3.10.4", "23.2", (24, 3)),
        ("3.10.5", "3.10.7", "23.2", (25, 2)),
        ("3.10.8", "3.10.13", "24.2", (25, 2)),
        ("3.10.14", "3.10.18", "24.3", (25, 2)),
        ("3.10.19", "3.10.999", "24.3.4.8", (25, 3)),
        ("3.11.0", "3.11.999", "25.0", (25, 3)),
        ("3.12.0", "3.12.4", "25.0", (26, 0)),
        ("3.12.5", "3.12.9", "25.0", (26, 1)),
        ("3.12.10", "3.12.999", "25.0", (26, 2)),
        ("3.13.0", "3.13.999", "26.0", (26, 2)),
        ("4.0.0", "4.0.999", "26.2", (26, 2)),
    ];
    let v = |s: &str| Version::parse(s).expect("table version");
    TABLE
        .iter()
        .find(|(first, last, _, _)| *rabbitmq >= v(first) && *rabbitmq <= v(last))
        .map(|(_, _, min, max)| (v(min), *max))
}

/// Why RabbitMQ `rabbitmq` does not run on Erlang `erlang`, if it does not.
pub fn erlang_refusal(rabbitmq: &Version, erlang: &Version) -> Option<String> {
    let Some((min, (maj, minor))) = erlang_range(rabbitmq) else {
        return Some(format!(
            "warren does not know which Erlang versions RabbitMQ {rabbitmq} runs on (its table covers 3.9 to 4.0, from RabbitMQ's compatibility matrix)"
        ));
    };
    if *erlang < min || erlang.series() > (maj, minor) {
        return Some(format!(
            "RabbitMQ {rabbitmq} runs on Erlang {min} to {maj}.{minor}.x, not {erlang} (RabbitMQ's Erlang compatibility matrix)"
        ));
    }
    None
}

/// What a rolling upgrade from `from` to `to` needs first, or why RabbitMQ's upgrade
/// guide forbids it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// The same version.
    Same,
    /// A patch release of the same series: no feature flag requirement.
    Patch,
    /// The next release series: every stable feature flag must be enabled before.
    NextSeries,
    /// Refused, with the guide's reason.
    Refused(String),
}

/// The guide's upgradability table: rolling upgrades go one release series at a
/// time (3.12 -> 3.13 -> 4.0), from the series' minimum patch release where the table
/// names one (3.11.18 for 3.12, 3.7.18 for 3.8), and 4.0 only from 3.13; never down.
pub fn upgrade_path(from: &Version, to: &Version) -> Path {
    if from == to {
        return Path::Same;
    }
    if to < from {
        return Path::Refused(format!(
            "RabbitMQ {from} -> {to} is a downgrade, which RabbitMQ does not support (its upgrade guide); to go back, restore a backup of the node's data taken before the upgrade, or build a new cluster of that version"
        ));
    }
    let (a, b) = (from.series(), to.series());
    if a == b {
        return Path::Patch;
    }
    let next = match a {
        (3, 13) => (4, 0),
        (3, m) => (3, m + 1),
        (major, m) => (major, m + 1),
    };
    if b != next {
        return Path::Refused(format!(
            "RabbitMQ {from} -> {to} skips a release series: a rolling upgrade goes one series at a time ({}.{} next{}), as RabbitMQ's upgrade guide requires; pin {}.{}.x first, apply, then pin {to}",
            next.0,
            next.1,
            if b.0 >= 4 && a != (3, 13) { "; 4.0 only from 3.13" } else { "" },
            next.0,
            next.1
        ));
    }
    let minimum = match b {
        (3, 12) => Some("3.11.18"),
        (3, 8) => Some("3.7.18"),
        _ => None,
    };
    if let Some(min) = minimum.and_then(Version::parse) {
        if *from < min {
            return Path::Refused(format!(
                "RabbitMQ {to} can be reached only from {min} or later (RabbitMQ's upgrade guide); pin {min} first, apply, then pin {to}"
            ));
        }
    }
    Path::NextSeries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn debian_versions() {
        assert_eq!(debian_upstream("1:25.2.3+dfsg-1+deb12u4"), "25.2.3");
        assert_eq!(debian_upstream("3.10.8-1.1+deb12u1"), "3.10.8");
        assert_eq!(debian_upstream("3.11.28-1"), "3.11.28");
        assert_eq!(debian_upstream("26.2.5"), "26.2.5");
        assert_eq!(
            debian_cmp("1:25.2.3+dfsg-1+deb12u1", "1:25.2.3+dfsg-1+deb12u4"),
            Ordering::Less
        );
        assert_eq!(debian_cmp("3.10.8-1.1", "3.10.8-1.1"), Ordering::Equal);
        assert_eq!(debian_cmp("3.10.10-1", "3.10.8-1.1"), Ordering::Greater);
        assert_eq!(debian_cmp("1:1.0", "2.0"), Ordering::Greater);
        assert_eq!(debian_cmp("1.0~rc1", "1.0"), Ordering::Less);
    }

    #[test]
    fn the_guides_paths() {
        assert_eq!(upgrade_path(&v("3.10.8"), &v("3.10.25")), Path::Patch);
        assert_eq!(upgrade_path(&v("3.10.8"), &v("3.11.28")), Path::NextSeries);
        assert_eq!(upgrade_path(&v("3.13.7"), &v("4.0.3")), Path::NextSeries);
        assert!(matches!(
            upgrade_path(&v("3.10.8"), &v("3.12.0")),
            Path::Refused(m) if m.contains("skips a release series")
        ));
        assert!(matches!(
            upgrade_path(&v("3.12.13"), &v("4.0.3")),
            Path::Refused(m) if m.contains("4.0 only from 3.13")
        ));
        assert!(matches!(
            upgrade_path(&v("3.11.10"), &v("3.12.1")),
            Path::Refused(m) if m.contains("3.11.18")
        ));
        assert!(matches!(
            upgrade_path(&v("3.10.8"), &v("3.10.7")),
            Path::Refused(m) if m.contains("downgrade")
        ));
    }

    #[test]
    fn erlang_matrix() {
        assert_eq!(erlang_refusal(&v("3.10.8"), &v("25.2.3")), None);
        assert!(erlang_refusal(&v("3.10.8"), &v("25.3")).is_some());
        assert!(erlang_refusal(&v("3.10.8"), &v("24.1")).is_some());
        assert_eq!(erlang_refusal(&v("3.11.28"), &v("25.3.2.8")), None);
        assert!(erlang_refusal(&v("3.13.7"), &v("25.3")).is_some());
        assert!(erlang_refusal(&v("4.1.0"), &v("26.2")).is_some());
    }
}
