//! The Prometheus scrape configuration (`cluster/prometheus.yml`): per broker warren
//! manages, its nodes' totals and its per-queue numbers.

use super::context::HEADER;
use super::Templates;
use crate::inventory::Inventory;
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct ScrapeJob {
    name: String,
    path: &'static str,
    params: Vec<ScrapeParam>,
    scheme: &'static str,
    ca_file: Option<String>,
    targets: Vec<ScrapeTarget>,
}

#[derive(Serialize)]
struct ScrapeParam {
    name: &'static str,
    values: Vec<String>,
}

#[derive(Serialize, Clone)]
struct ScrapeTarget {
    target: String,
    cluster: String,
    host: String,
    role: &'static str,
    link: &'static str,
}

/// The Prometheus scrape jobs of every broker warren manages (the cluster's nodes,
/// each linked site's own): its nodes' totals, and its per-queue numbers. A broker's
/// nodes share TLS or not (validation refuses a mix in one cluster), so one scheme
/// serves each job.
pub(super) fn scrape_config(inv: &Inventory, t: &Templates) -> Result<Option<String>> {
    let mut jobs = Vec::new();
    for b in inv.brokers() {
        let members: Vec<usize> = match b {
            crate::inventory::Broker::Cluster => inv
                .central_first()
                .into_iter()
                .filter(|&i| inv.is_member(i))
                .collect(),
            crate::inventory::Broker::Site(s) => vec![inv.sites[s].host],
        };
        let members: Vec<usize> = members
            .into_iter()
            .filter(|&i| inv.serves_metrics(i))
            .collect();
        let Some(&first) = members.first() else {
            continue;
        };
        let cluster = match b {
            crate::inventory::Broker::Cluster => inv.cluster.name.clone(),
            crate::inventory::Broker::Site(_) => {
                format!("{}-{}", inv.cluster.name, inv.hosts[first].name)
            }
        };
        let tls = inv.hosts[first].tls.as_ref();
        let targets: Vec<ScrapeTarget> = members
            .iter()
            .map(|&i| {
                let h = &inv.hosts[i];
                let port = match h.tls {
                    Some(_) => h.ports.prometheus_tls,
                    None => h.ports.prometheus,
                };
                let address = match h.address.contains(':') {
                    true => format!("[{}]:{port}", h.address),
                    false => format!("{}:{port}", h.address),
                };
                ScrapeTarget {
                    target: address,
                    cluster: cluster.clone(),
                    host: h.name.clone(),
                    role: h.role.as_str(),
                    link: inv.site_of(h).map(|s| s.link.as_str()).unwrap_or("cluster"),
                }
            })
            .collect();
        let ca_file = tls.map(|t| {
            t.ca.strip_prefix(&inv.dir)
                .unwrap_or(&t.ca)
                .to_string_lossy()
                .into_owned()
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        jobs.push(ScrapeJob {
            name: format!("rabbitmq-{cluster}"),
            path: "/metrics",
            params: Vec::new(),
            scheme,
            ca_file: ca_file.clone(),
            targets: targets.clone(),
        });
        // The per-queue families only: /metrics/detailed without `family` returns
        // nothing, and /metrics/per-object would return every object's every metric.
        jobs.push(ScrapeJob {
            name: format!("rabbitmq-{cluster}-queues"),
            path: "/metrics/detailed",
            params: vec![
                ScrapeParam {
                    name: "family",
                    values: vec!["queue_coarse_metrics".into(), "queue_consumer_count".into()],
                },
                ScrapeParam {
                    name: "vhost",
                    values: vec![inv.cluster.vhost.clone()],
                },
            ],
            scheme,
            ca_file,
            targets,
        });
    }
    if jobs.is_empty() {
        return Ok(None);
    }
    let mut ctx = tera::Context::new();
    ctx.insert("header", HEADER);
    ctx.insert("cluster", &inv.cluster.name);
    ctx.insert("vhost", &inv.cluster.vhost);
    ctx.insert("jobs", &jobs);
    Ok(Some(t.render("common/prometheus.yml.tera", &ctx)?))
}
