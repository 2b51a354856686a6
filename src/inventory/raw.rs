//! The inventory exactly as written in `inventory.toml`: serde structs that refuse
//! unknown keys. Nothing here is checked beyond its TOML type; `validate` turns it into
//! the checked model.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub cluster: RawCluster,
    #[serde(default)]
    pub hosts: Vec<RawHost>,
    #[serde(default)]
    pub sites: Vec<RawSite>,
    #[serde(default)]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub load_balancer: Option<RawLoadBalancer>,
}

/// `[load_balancer]`: HAProxy on one Linux host of the inventory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoadBalancer {
    pub host: String,
    #[serde(default)]
    pub ports: RawBalancerPorts,
}

/// The ports HAProxy listens on; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBalancerPorts {
    pub amqp: Option<u16>,
    pub mqtt: Option<u16>,
    pub management: Option<u16>,
    pub stats: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: String,
    #[serde(deserialize_with = "secret_ref")]
    pub cookie: RawSecretRef,
    #[serde(default)]
    pub replication: Option<String>,
    #[serde(default)]
    pub partition_handling: Option<String>,
    #[serde(default)]
    pub net_ticktime: Option<u32>,
    #[serde(default)]
    pub plugins: Option<Vec<String>>,
    #[serde(default)]
    pub prometheus: Option<bool>,
    #[serde(default)]
    pub join: Option<String>,
    #[serde(default)]
    pub config_format: Option<String>,
    #[serde(default)]
    pub hosts_file: Option<bool>,
    #[serde(default)]
    pub vhost: Option<String>,
    #[serde(default)]
    pub ports: RawPorts,
    #[serde(default)]
    pub rabbitmq_version: Option<String>,
    #[serde(default)]
    pub erlang_version: Option<String>,
    #[serde(default)]
    pub rabbitmq_package: Option<String>,
    #[serde(default)]
    pub erlang_package: Option<String>,
    #[serde(default)]
    pub rabbitmq_installer: Option<String>,
    #[serde(default)]
    pub erlang_installer: Option<String>,
}

/// The version keys of `[cluster]` or of a host (which overrides them one by one).
#[derive(Debug, Default, Clone)]
pub struct RawVersions {
    pub rabbitmq_version: Option<String>,
    pub erlang_version: Option<String>,
    pub rabbitmq_package: Option<String>,
    pub erlang_package: Option<String>,
    pub rabbitmq_installer: Option<String>,
    pub erlang_installer: Option<String>,
}

macro_rules! versions_of {
    ($t:ty) => {
        impl $t {
            pub fn versions(&self) -> RawVersions {
                RawVersions {
                    rabbitmq_version: self.rabbitmq_version.clone(),
                    erlang_version: self.erlang_version.clone(),
                    rabbitmq_package: self.rabbitmq_package.clone(),
                    erlang_package: self.erlang_package.clone(),
                    rabbitmq_installer: self.rabbitmq_installer.clone(),
                    erlang_installer: self.erlang_installer.clone(),
                }
            }
        }
    };
}
versions_of!(RawCluster);
versions_of!(RawHost);

/// Listener ports; every field optional so that a host can override one of them.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPorts {
    pub amqp: Option<u16>,
    pub management: Option<u16>,
    pub mqtt: Option<u16>,
    pub dist: Option<u16>,
    pub amqps: Option<u16>,
    pub management_tls: Option<u16>,
    pub mqtts: Option<u16>,
    pub prometheus: Option<u16>,
    pub prometheus_tls: Option<u16>,
}

/// Where a secret comes from: a file or an environment variable, never the value.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    pub file: Option<String>,
    pub env: Option<String>,
}

/// A secret's value written in the inventory itself is refused with the fix.
fn secret_ref<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RawSecretRef, D::Error> {
    use serde::de::Error;
    match toml::Value::deserialize(d)? {
        toml::Value::String(_) => Err(D::Error::custom(
            "a secret's value is never written in the inventory (every copy of the file would hold it): write { file = \"PATH\" } or { env = \"VARIABLE\" } instead",
        )),
        v => v.try_into().map_err(|e| D::Error::custom(e.message())),
    }
}

fn some_secret_ref<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RawSecretRef>, D::Error> {
    secret_ref(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: String,
    pub address: String,
    pub os: String,
    #[serde(default)]
    pub transport: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default, deserialize_with = "some_secret_ref")]
    pub password: Option<RawSecretRef>,
    #[serde(default)]
    pub known_hosts: Option<String>,
    pub role: String,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub ports: RawPorts,
    #[serde(default)]
    pub paths: BTreeMap<String, String>,
    #[serde(default)]
    pub winrm: Option<RawWinrm>,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub rabbitmq_version: Option<String>,
    #[serde(default)]
    pub erlang_version: Option<String>,
    #[serde(default)]
    pub rabbitmq_package: Option<String>,
    #[serde(default)]
    pub erlang_package: Option<String>,
    #[serde(default)]
    pub rabbitmq_installer: Option<String>,
    #[serde(default)]
    pub erlang_installer: Option<String>,
}

/// `tls = { ca, cert, key, keep_plain }` of a host.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub keep_plain: Option<bool>,
}

/// `winrm = { scheme, auth, ca_file, insecure_skip_verify }` of a WinRM host.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWinrm {
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub host: String,
    pub exchange: String,
    pub queue: String,
    #[serde(default)]
    pub exchange_type: Option<String>,
    #[serde(default)]
    pub routing_key: Option<String>,
    #[serde(default)]
    pub mirrors: Option<Vec<String>>,
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default, deserialize_with = "some_secret_ref")]
    pub link_password: Option<RawSecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: String,
    #[serde(deserialize_with = "secret_ref")]
    pub password: RawSecretRef,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<RawPermission>,
    /// The site host whose user this is.
    #[serde(default)]
    pub site: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPermission {
    #[serde(default)]
    pub vhost: Option<String>,
    pub configure: String,
    pub write: String,
    pub read: String,
}
