//! A host's pinned versions checked: RabbitMQ's and Erlang's (`[cluster]`'s keys, each
//! overridden by the host's own), their apt packages or Windows installers, and
//! whether warren knows how to run and upgrade that pair.

use super::model::*;
use super::problem::Problems;
use super::raw::*;

/// A host's pinned versions: `[cluster]`'s keys, each overridden by the host's own;
/// each problem named by the key it comes from (reported once, however many hosts
/// share a `[cluster]` key).
pub(super) fn versions(
    p: &mut Problems,
    i: usize,
    os: Os,
    cluster: &RawVersions,
    host: &RawVersions,
) -> Versions {
    use crate::versions::{debian_upstream, erlang_refusal, Version};
    let pick = |k: &str, c: &Option<String>, h: &Option<String>| -> Option<(String, String)> {
        match (h, c) {
            (Some(v), _) => Some((format!("hosts[{i}].{k}"), v.clone())),
            (None, Some(v)) => Some((format!("cluster.{k}"), v.clone())),
            _ => None,
        }
    };
    let rv = pick(
        "rabbitmq_version",
        &cluster.rabbitmq_version,
        &host.rabbitmq_version,
    );
    let ev = pick(
        "erlang_version",
        &cluster.erlang_version,
        &host.erlang_version,
    );
    let rp = pick(
        "rabbitmq_package",
        &cluster.rabbitmq_package,
        &host.rabbitmq_package,
    );
    let ep = pick(
        "erlang_package",
        &cluster.erlang_package,
        &host.erlang_package,
    );
    let ri = pick(
        "rabbitmq_installer",
        &cluster.rabbitmq_installer,
        &host.rabbitmq_installer,
    );
    let ei = pick(
        "erlang_installer",
        &cluster.erlang_installer,
        &host.erlang_installer,
    );
    // Packages are apt's (Linux), installers Windows': a host's own key of the other
    // kind is a mistake; `[cluster]` holds both for mixed clusters.
    for (k, own, want) in [
        ("rabbitmq_package", &host.rabbitmq_package, Os::Linux),
        ("erlang_package", &host.erlang_package, Os::Linux),
        ("rabbitmq_installer", &host.rabbitmq_installer, Os::Windows),
        ("erlang_installer", &host.erlang_installer, Os::Windows),
    ] {
        if own.is_some() && os != want {
            let instead = if want == Os::Linux {
                "rabbitmq_installer / erlang_installer (the installers, on Windows)"
            } else {
                "rabbitmq_package / erlang_package (apt's versions, on Linux)"
            };
            p.add(
                format!("hosts[{i}].{k}"),
                format!("is for {want} hosts, and this one runs {os}; use {instead}"),
            );
        }
    }
    for (k, v) in [&rp, &ep, &ri, &ei].into_iter().flatten() {
        if v.trim().is_empty() || v.chars().any(|c| c.is_control() || c == '\'' || c == '"') {
            p.add(k.clone(), format!("\"{v}\" is empty or holds quotes or control characters; give the version or path as it is"));
        }
    }
    let parsed = |kv: &Option<(String, String)>,
                  what: &str,
                  example: &str,
                  parts: std::ops::RangeInclusive<usize>,
                  p: &mut Problems| {
        let (k, v) = kv.as_ref()?;
        match Version::parse(v).filter(|x| parts.contains(&x.0.len())) {
            Some(x) => Some(x),
            None => {
                p.add(k.clone(), format!("\"{v}\" is not a {what} version; write it as RabbitMQ reports it, like \"{example}\""));
                None
            }
        }
    };
    let mut rabbitmq = parsed(&rv, "RabbitMQ", "3.10.8", 3..=3, p);
    let mut erlang = parsed(&ev, "Erlang/OTP", "25.2.3", 2..=4, p);
    // A package names its upstream version: it must be the pinned one.
    for (pkg, version, what, slot) in [
        (&rp, &rv, "RabbitMQ", &mut rabbitmq),
        (&ep, &ev, "Erlang", &mut erlang),
    ] {
        let Some((pk, pv)) = pkg else { continue };
        let Some(up) = Version::parse(debian_upstream(pv)) else {
            p.add(pk.clone(), format!("\"{pv}\" is not a Debian package version; give apt's version as `apt-cache policy` lists it, like \"3.10.8-1.1+deb12u1\""));
            continue;
        };
        match (version, slot.as_ref()) {
            (Some((vk, _)), Some(pinned)) => {
                let agrees = up.0.len() >= pinned.0.len() && up.0[..pinned.0.len()] == pinned.0[..];
                if !agrees {
                    p.add(pk.clone(), format!("\"{pv}\" is {what} {up}, but {vk} says {pinned}; make them name the same release (or leave {vk} out)"));
                }
            }
            (None, _) => *slot = Some(up),
            _ => {}
        }
    }
    if let (Some(r), Some(e)) = (&rabbitmq, &erlang) {
        if let Some(why) = erlang_refusal(r, e) {
            let k = ev
                .as_ref()
                .or(ep.as_ref())
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            p.add(k, format!("{why}; pin an Erlang version in that range"));
        }
    } else if let Some(r) = &rabbitmq {
        if crate::versions::erlang_range(r).is_none() {
            let k = rv
                .as_ref()
                .or(rp.as_ref())
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            p.add(k, format!("warren knows the upgrade rules and Erlang requirements of RabbitMQ 3.9 to 4.0 only (RabbitMQ's compatibility matrix), not {r}; pin a release of those series"));
        }
    }
    Versions {
        rabbitmq,
        erlang,
        rabbitmq_package: rp.map(|(_, v)| v),
        erlang_package: ep.map(|(_, v)| v),
        rabbitmq_installer: ri.map(|(_, v)| v),
        erlang_installer: ei.map(|(_, v)| v),
    }
}
