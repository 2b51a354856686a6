//! The load balancer on its host: where Debian's HAProxy reads its configuration, and
//! what the probes through its frontends speak. `Platform::balancer_read`,
//! `balancer_reload` and `balancer_probe` build the scripts (on Linux only).

/// Where Debian's haproxy package reads its configuration.
pub const CONFIG: &str = "/etc/haproxy/haproxy.cfg";

/// What a balancer frontend speaks, for `Platform::balancer_probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalancerProtocol {
    Amqp,
    Mqtt,
    /// Probed this way only through TLS: plain management is asked through the API.
    Management,
}

/// TLS through the balancer, for `Platform::balancer_probe`: the CA file on the
/// balancer's host that the nodes' certificates must chain to (`None`: the host
/// has none, and the handshake alone is checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerTls {
    pub ca: Option<String>,
}
