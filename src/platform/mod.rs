//! Starting and stopping RabbitMQ under each service manager, and the node commands
//! (rabbitmqctl) warren runs on a host.

use crate::inventory::{Host, Paths, ServiceManager};
use crate::transport::{sh_quote, Transport};
use anyhow::{bail, Result};
use std::time::Duration;

const STOP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a node may take to start (a member waits for its cluster mates' tables).
pub const START_TIMEOUT: Duration = Duration::from_secs(300);

fn pid_file(h: &Host) -> String {
    match &h.paths {
        Paths::Linux { data_dir, .. } => format!("{data_dir}/mnesia/{}.pid", h.node_name()),
        Paths::Windows { base, .. } => format!(r"{base}\db\{}.pid", h.node_name()),
    }
}

fn must(t: &mut dyn Transport, command: &str, timeout: Duration, what: &str) -> Result<String> {
    let out = t.run(command, timeout)?;
    if !out.ok() {
        bail!("{}: {what} failed: {}", t.host(), out.last_line());
    }
    Ok(out.stdout)
}

/// Stops RabbitMQ and waits until its OS process is gone.
pub fn stop(t: &mut dyn Transport, h: &Host, m: ServiceManager) -> Result<()> {
    match m {
        ServiceManager::Systemd => {
            must(
                t,
                "systemctl stop rabbitmq-server",
                STOP_TIMEOUT,
                "systemctl stop rabbitmq-server",
            )?;
        }
        ServiceManager::Direct | ServiceManager::Auto => {
            // SIGTERM is RabbitMQ's graceful shutdown (Erlang stops the node's
            // applications in order, as `rabbitmqctl stop` does), and it needs no CLI:
            // two CLI start-ups saved, and no hang when the cookie file was changed
            // under the node (the CLI then waits rather than fails).
            let pid = sh_quote(&pid_file(h));
            let script = format!(
                "p=$(cat {pid} 2>/dev/null) || exit 0\n\
                 [ \"$(cat /proc/$p/comm 2>/dev/null)\" = beam.smp ] || exit 0\n\
                 kill -TERM \"$p\" 2>/dev/null || exit 0\n\
                 for i in $(seq 1 1200); do [ -d /proc/$p ] || exit 0; sleep 0.1; done\n\
                 echo \"RabbitMQ (pid $p) did not stop within 120 s\" >&2; exit 1"
            );
            must(t, &script, STOP_TIMEOUT, "stopping RabbitMQ")?;
        }
        ServiceManager::Windows => {
            bail!("{}: stopping the Windows service is not built yet", h.name)
        }
    }
    Ok(())
}

/// Starts RabbitMQ and waits until it has finished booting.
pub fn start(
    t: &mut dyn Transport,
    h: &Host,
    m: ServiceManager,
    daemon_reload: bool,
) -> Result<()> {
    match m {
        ServiceManager::Systemd => {
            if daemon_reload {
                must(
                    t,
                    "systemctl daemon-reload",
                    STOP_TIMEOUT,
                    "systemctl daemon-reload",
                )?;
            }
            must(
                t,
                "systemctl start rabbitmq-server",
                START_TIMEOUT,
                "systemctl start rabbitmq-server",
            )?;
        }
        ServiceManager::Direct | ServiceManager::Auto => {
            // -detached daemonizes; its output must not hold the SSH channel open.
            must(
                t,
                "rabbitmq-server -detached > /dev/null 2>&1 < /dev/null",
                STOP_TIMEOUT,
                "rabbitmq-server -detached",
            )?;
        }
        ServiceManager::Windows => {
            bail!("{}: starting the Windows service is not built yet", h.name)
        }
    }
    crate::facts::await_startup(t, START_TIMEOUT)
}

/// Starts declared plugins that are enabled but stopped: `rabbitmq-plugins enable`
/// applies the plugin configuration to the running node, which starts them.
pub fn start_plugins(t: &mut dyn Transport, h: &Host, plugins: &[String]) -> Result<()> {
    if matches!(h.paths, Paths::Windows { .. }) {
        bail!("{}: starting plugins on Windows is not built yet", h.name);
    }
    let names: Vec<String> = plugins.iter().map(|p| sh_quote(p)).collect();
    must(
        t,
        &format!("rabbitmq-plugins -q enable {}", names.join(" ")),
        START_TIMEOUT,
        "rabbitmq-plugins enable",
    )?;
    Ok(())
}

/// Makes a blank-able node a member of the seed's cluster. `rabbitmqctl`: stop_app,
/// reset, join_cluster, start_app. `config`: stop_app, reset, start_app, and peer
/// discovery (the node list in its config file) joins it at that boot. When a step
/// fails the node's app is started again, so the node is left running, standalone,
/// and a rerun can try again.
pub fn join(t: &mut dyn Transport, seed: &str, ram: bool, by_config: bool) -> Result<()> {
    let timeout = START_TIMEOUT;
    must(
        t,
        "rabbitmqctl -q stop_app",
        timeout,
        "rabbitmqctl stop_app",
    )?;
    let result = (|| -> Result<()> {
        must(t, "rabbitmqctl -q reset", timeout, "rabbitmqctl reset")?;
        if !by_config {
            let ram_flag = if ram { " --ram" } else { "" };
            must(
                t,
                &format!("rabbitmqctl -q join_cluster{ram_flag} {}", sh_quote(seed)),
                timeout,
                "rabbitmqctl join_cluster",
            )?;
        }
        Ok(())
    })();
    let started = must(
        t,
        "rabbitmqctl -q start_app",
        timeout,
        "rabbitmqctl start_app",
    );
    result?;
    started?;
    Ok(())
}
