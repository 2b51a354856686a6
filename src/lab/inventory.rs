//! The lab's inventory: the user's layout on the lab's hosts, written by `lab up`,
//! extended when the lab grows, written anew by `lab reset`.

use super::{Lab, LabHost};
use anyhow::{Context, Result};

impl Lab {
    pub(super) fn write_inventory(&self, hosts: &[LabHost]) -> Result<()> {
        let secrets = self.dir.join("secrets");
        std::fs::create_dir_all(&secrets)?;
        let producers: Vec<String> = hosts.iter().skip(1).map(|h| producer(&h.name)).collect();
        let users = ["admin", "backend"]
            .into_iter()
            .chain(producers.iter().map(String::as_str));
        for user in users {
            let file = secrets.join(format!("{user}.password"));
            if !file.exists() {
                crate::inventory::SecretRef::File(file)
                    .read_or_create_random()
                    .map_err(anyhow::Error::msg)?;
            }
        }
        let path = self.dir.join("inventory.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(existing) => extend_inventory(&existing, hosts)?,
            Err(_) => lab_inventory(hosts),
        };
        std::fs::write(&path, text)?;
        Ok(())
    }
}

/// The inventory of the user's layout on lab hosts: the first host central, the
/// others sites, each with its own exchange and queue mirrored on the central host.
pub fn lab_inventory(hosts: &[LabHost]) -> String {
    let mut s = String::from(
        "# Written by `warren lab up`: the user's layout (sites with their own exchange and\n\
         # queue, a mirror of each on the central host) on the lab's hosts. Edit it freely:\n\
         # `lab up --hosts N` only appends the hosts it adds; `lab down` removes it.\n\n\
         [cluster]\n\
         name = \"lab\"\n\
         cookie = { file = \"erlang.cookie\" }\n\
         replication = \"mirrored\"\n\
         partition_handling = \"ignore\"\n\
         # A lost host is noticed in about 20 s, not Erlang's 60-75 s: the lab's tests\n\
         # cut hosts off on purpose.\n\
         net_ticktime = 20\n\
         plugins = [\"rabbitmq_management\", \"rabbitmq_mqtt\"]\n\
         join = \"config\"\n\
         config_format = \"rabbitmq.conf\"\n\
         hosts_file = true\n\n\
         [[users]]\n\
         name = \"admin\"\n\
         password = { file = \"secrets/admin.password\" }\n\
         tags = [\"administrator\"]\n\
         permissions = [{ configure = \".*\", write = \".*\", read = \".*\" }]\n\n\
         # The backend reads every site queue and nothing else.\n\
         [[users]]\n\
         name = \"backend\"\n\
         password = { file = \"secrets/backend.password\" }\n\
         permissions = [{ configure = \"^$\", write = \"^$\", read = \"^site\\\\.[^.]+\\\\.data$\" }]\n",
    );
    for (i, h) in hosts.iter().enumerate() {
        s.push_str(&host_entry(h, i == 0));
    }
    s
}

/// A lab host's [[hosts]] table, and for a site its [[sites]] table.
fn host_entry(h: &LabHost, central: bool) -> String {
    let mut s = format!(
        "\n[[hosts]]\nname = \"{}\"\naddress = \"{}\"\nos = \"linux\"\ntransport = \"ssh\"\n\
         user = \"root\"\nkey = \"id_ed25519\"\nknown_hosts = \"known_hosts\"\n\
         role = \"{}\"\nservice = \"{}\"\n",
        h.name,
        h.address,
        if central { "central" } else { "site" },
        if h.systemd { "systemd" } else { "direct" }
    );
    if !central {
        s.push_str(&format!(
            "\n[[sites]]\nhost = \"{n}\"\nexchange = \"site.{n}\"\nqueue = \"site.{n}.data\"\n\n\
             # The site's producer publishes to its own exchange and reaches no other site.\n\
             [[users]]\nname = \"{p}\"\npassword = {{ file = \"secrets/{p}.password\" }}\n\
             site = \"{n}\"\n\
             permissions = [{{ configure = \"^$\", write = \"^site\\\\.{n}$\", read = \"^$\" }}]\n",
            n = h.name,
            p = producer(&h.name)
        ));
    }
    s
}

/// The lab's user for a site's producer.
fn producer(site: &str) -> String {
    format!("producer-{site}")
}

/// Appends the lab hosts that `existing` (an inventory's text) does not list yet.
pub fn extend_inventory(existing: &str, hosts: &[LabHost]) -> Result<String> {
    let parsed: toml::Value = toml::from_str(existing)
        .context("lab/inventory.toml is not valid TOML; fix it or delete it, then rerun")?;
    let listed: Vec<&str> = parsed
        .get("hosts")
        .and_then(|h| h.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|h| h.get("name").and_then(|n| n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut s = existing.to_string();
    for (i, h) in hosts.iter().enumerate() {
        if !listed.contains(&h.name.as_str()) {
            s.push_str(&host_entry(h, i == 0));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_the_lab_keeps_the_operators_edits() {
        let five: Vec<LabHost> = (0..5).map(LabHost::new).collect();
        let edited =
            lab_inventory(&five).replace("replication = \"mirrored\"", "replication = \"quorum\"");
        let six: Vec<LabHost> = (0..6).map(LabHost::new).collect();
        let grown = extend_inventory(&edited, &six).unwrap();
        assert!(grown.starts_with(&edited));
        assert!(grown.contains("name = \"site5\"\naddress = \"10.231.77.15\""));
        assert!(grown.contains("queue = \"site.site5.data\""));
        let inv = crate::inventory::parse(&grown, std::path::Path::new("inventory.toml")).unwrap();
        assert_eq!(inv.hosts.len(), 6);
        assert_eq!(inv.sites.len(), 5);
        assert_eq!(
            inv.cluster.replication,
            crate::inventory::Replication::Quorum
        );
        assert_eq!(extend_inventory(&grown, &six).unwrap(), grown);
    }
}
