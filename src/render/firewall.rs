//! The inbound firewall rules a Windows host needs for the cluster: epmd,
//! distribution, the CLI, and the listeners it keeps (plain, TLS, metrics).

use crate::inventory::Host;

/// The inbound rules a Windows host needs for the cluster: (rule name, ports).
/// `metrics`: the host serves Prometheus metrics.
pub fn firewall_rules(host: &Host, metrics: bool) -> Vec<(&'static str, String)> {
    let p = host.ports;
    let mut rules = vec![
        ("warren-epmd", "4369".to_string()),
        ("warren-distribution", p.dist.to_string()),
        ("warren-cli", "35672-35682".to_string()),
    ];
    if !host.tls_only() {
        rules.extend([
            ("warren-amqp", p.amqp.to_string()),
            ("warren-management", p.management.to_string()),
            ("warren-mqtt", p.mqtt.to_string()),
        ]);
    }
    if host.tls.is_some() {
        rules.extend([
            ("warren-amqps", p.amqps.to_string()),
            ("warren-management-tls", p.management_tls.to_string()),
            ("warren-mqtts", p.mqtts.to_string()),
        ]);
    }
    if metrics && !host.tls_only() {
        rules.push(("warren-prometheus", p.prometheus.to_string()));
    }
    if metrics && host.tls.is_some() {
        rules.push(("warren-prometheus-tls", p.prometheus_tls.to_string()));
    }
    rules
}
