//! TLS in the inventory: a host's `tls` table (the CA, its certificate and key, as PEM
//! files), and TLS among the hosts: every member or none, one wire for the balancer's
//! backends, a certificate to check a link's far end with.

use super::model::*;
use super::problem::{resolve_path, Problems};
use super::raw::*;
use std::path::Path;

/// TLS distribution is all or nothing among the cluster's members: a node that speaks
/// it cannot talk to one that does not. A link to a host whose plain listeners are
/// closed needs a certificate on the other end too (to check that host's).
pub(super) fn tls_together(p: &mut Problems, inv: &Inventory) {
    let members: Vec<usize> = (0..inv.hosts.len()).filter(|&i| inv.is_member(i)).collect();
    let with: Vec<&str> = members
        .iter()
        .filter(|&&i| inv.hosts[i].tls.is_some())
        .map(|&i| inv.hosts[i].name.as_str())
        .collect();
    if !with.is_empty() {
        for &i in &members {
            if inv.hosts[i].tls.is_none() {
                p.add(
                    format!("hosts[{i}].tls"),
                    format!(
                        "{} has tls, so the cluster's nodes talk to each other over TLS, and {} would not be able to: give it tls too, or remove tls from the others",
                        with.join(", "),
                        inv.hosts[i].name
                    ),
                );
            }
        }
    }
    // One balancer frontend leads to every member: they must all speak TLS only, or
    // all keep their plain listeners, for a client to speak to whichever it meets.
    if with.len() == members.len()
        && inv.load_balancer.is_some()
        && super::balancer::wire(inv) == super::balancer::Wire::Mixed
    {
        let closed: Vec<&str> = members
            .iter()
            .filter(|&&i| inv.hosts[i].tls_only())
            .map(|&i| inv.hosts[i].name.as_str())
            .collect();
        for &i in &members {
            if inv.hosts[i].tls.as_ref().is_some_and(|t| t.keep_plain) {
                p.add(
                    format!("hosts[{i}].tls.keep_plain"),
                    format!(
                        "the load balancer leads clients to every member, and {} listen with TLS only while {} keeps its plain listeners, so a client could meet either; set keep_plain the same on every member",
                        closed.join(", "),
                        inv.hosts[i].name
                    ),
                );
            }
        }
    }
    let ci = inv.central_index();
    for (si, s) in inv.sites.iter().enumerate() {
        if !s.linked() {
            continue;
        }
        // The end that connects, and the end it connects to.
        let (from, to) = match s.link {
            Link::Shovel => (s.host, ci),
            _ => (ci, s.host),
        };
        let closed = inv.hosts[to].tls_only();
        if closed && inv.hosts[from].tls.is_none() {
            p.add(
                format!("sites[{si}].link"),
                format!(
                    "the {} connects from {} to {} over TLS (its plain AMQP listener is closed), and {} has no tls to check {}'s certificate with: give {} tls, or keep_plain = true on {}",
                    s.link, inv.hosts[from].name, inv.hosts[to].name, inv.hosts[from].name, inv.hosts[to].name, inv.hosts[from].name, inv.hosts[to].name
                ),
            );
        }
    }
}

/// A host's `tls` table: all three files named (the CA, the certificate, its key).
pub(super) fn tls(p: &mut Problems, key: &str, t: &RawTls, dir: &Path) -> Option<Tls> {
    let mut file = |k: &str, v: &Option<String>, what: &str| match v.as_deref() {
        Some(f) if !f.is_empty() => Some(resolve_path(dir, f)),
        _ => {
            p.add(
                format!("{key}.{k}"),
                format!("TLS needs {what}: add {k} = \"PATH\" (a PEM file, relative to the inventory), or remove tls"),
            );
            None
        }
    };
    let ca = file(
        "ca",
        &t.ca,
        "the CA certificate that signed the cluster's certificates",
    );
    let cert = file("cert", &t.cert, "the host's certificate");
    let k = file("key", &t.key, "the certificate's private key");
    Some(Tls {
        ca: ca?,
        cert: cert?,
        key: k?,
        keep_plain: t.keep_plain.unwrap_or(false),
    })
}

/// A PEM file's text, if it holds a block whose BEGIN line ends in `marker`.
pub fn read_pem(path: &Path, marker: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e}; fix the path or the file's permissions",
            path.display()
        )
    })?;
    if !text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.ends_with(marker))
    {
        return Err(format!(
            "{} is not a PEM file with a {} block; give the PEM file (openssl x509 -in FILE -outform PEM converts one)",
            path.display(),
            marker.trim_end_matches('-')
        ));
    }
    Ok(text)
}
