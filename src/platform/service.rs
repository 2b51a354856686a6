//! Starting, stopping and reinstalling RabbitMQ, and the node commands warren runs,
//! for any platform: the scripts come from the host's `Platform`, the waiting and the
//! error messages are the same everywhere.

use super::{Probe, Read, Tool, Transport};
use crate::inventory::{Os, ServiceManager};
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

const STOP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a node may take to start (a member waits for its cluster mates' tables).
pub const START_TIMEOUT: Duration = Duration::from_secs(300);

fn must(t: &mut dyn Transport, script: &str, timeout: Duration, what: &str) -> Result<String> {
    let out = t.run(script, timeout)?;
    if !out.ok() {
        bail!("{}: {what} failed: {}", t.host(), out.last_line());
    }
    Ok(out.stdout)
}

/// How many of the node's log lines a failure shows.
const LOG_LINES: usize = 12;
/// How long a failure waits for the node's log to have its last lines.
const LOG_SETTLE: Duration = Duration::from_secs(3);

/// `r`, and when it failed, the last lines of the node's own log (read from its
/// host): RabbitMQ says there why a node would not start, join or stop.
pub fn explained<T>(t: &mut dyn Probe, r: Result<T>) -> Result<T> {
    let Err(e) = r else {
        return r;
    };
    // Erlang's file log handler writes with a delay (logger_std_h opens its file
    // with `delayed_write`: up to 2 s), so what the node logged about the failure
    // may not be in the file yet. Only a failure waits.
    std::thread::sleep(LOG_SETTLE);
    let q = t.platform().node_log(LOG_LINES * 4);
    let Ok(out) = t.query(&q, Duration::from_secs(30)) else {
        return Err(e);
    };
    let mut lines = out.stdout.lines().map(str::trim_end);
    let Some(path) = lines.next().and_then(|l| l.strip_prefix("@@log ")) else {
        return Err(e);
    };
    // An entry's continuation lines are its text, but RabbitMQ repeats the prefix on
    // each: a line with nothing after `[level] <pid>` says nothing.
    let said: Vec<&str> = lines
        .filter(|l| {
            let text = match l.find("] <") {
                Some(i) => l[i..].split_once('>').map_or("", |(_, text)| text),
                None => l,
            };
            !text.trim().is_empty()
        })
        .collect();
    if said.is_empty() {
        return Err(e);
    }
    let last = &said[said.len().saturating_sub(LOG_LINES)..];
    Err(anyhow::anyhow!(
        "{e:#}\nthe last lines of the node's log ({path}):\n  {}",
        last.join("\n  ")
    ))
}

/// Stops RabbitMQ and waits until its OS process is gone.
pub fn stop(t: &mut dyn Transport, m: ServiceManager) -> Result<()> {
    let script = t.platform().stop(m);
    let r = must(t, &script, STOP_TIMEOUT, "stopping RabbitMQ").map(|_| ());
    explained(t, r)
}

/// Deletes the database of a stopped node that holds nothing (see
/// `Platform::empty_database`).
pub fn empty_database(t: &mut dyn Transport) -> Result<()> {
    let script = t.platform().empty_database();
    must(
        t,
        &script,
        Duration::from_secs(120),
        "emptying the node's database",
    )
    .map(|_| ())
}

/// Separates a failed start's own error from the service manager's log lines that
/// follow it on stderr (systemd: the unit's journal).
pub const JOURNAL_MARK: &str = "@@journal";

/// Starts RabbitMQ and waits until it has finished booting.
pub fn start(t: &mut dyn Transport, m: ServiceManager, daemon_reload: bool) -> Result<()> {
    let script = t.platform().start(m, daemon_reload);
    let out = t.run(&script, STOP_TIMEOUT)?;
    if !out.ok() {
        let r = Err(anyhow::anyhow!("{}", start_failure(t.host(), &out)));
        return explained(t, r);
    }
    let r = await_startup(t, START_TIMEOUT);
    explained(t, r)
}

/// Why a start failed: the start command's reason and, where the platform printed
/// them after `JOURNAL_MARK`, the service's last log lines.
fn start_failure(host: &str, out: &crate::transport::Exec) -> String {
    let Some((own, journal)) = out.stderr.split_once(JOURNAL_MARK) else {
        return format!("{host}: starting RabbitMQ failed: {}", out.last_line());
    };
    // systemctl's last line only points at the journal, which follows.
    let reason = own
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("the start command failed");
    let lines: Vec<&str> = journal
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let mut msg = format!("{host}: starting RabbitMQ failed: {reason}");
    if lines.is_empty() {
        msg.push_str(" (its journal has no lines for it)");
    } else {
        msg.push_str("; the last lines of its journal (journalctl -u rabbitmq-server):");
        for l in &lines {
            msg.push_str("\n  ");
            msg.push_str(l);
        }
        // The unit's own process logs the why of a 217 through another stream than
        // systemd's, which may not be in the journal yet: the code says it too.
        if lines.iter().any(|l| l.contains("status=217/USER")) {
            msg.push_str("\n  (exit status 217/USER is systemd's: it could not find or switch to the unit's User=; systemd.exec(5), \"Process Exit Codes\")");
        }
    }
    msg
}

/// Reinstalls the RabbitMQ service (it reads its environment only then), starts it and
/// waits until it has booted. Where services are never reinstalled, starts it.
pub fn reinstall(t: &mut dyn Transport, m: ServiceManager) -> Result<()> {
    match t.platform().reinstall() {
        Some(script) => {
            let r = must(
                t,
                &script,
                STOP_TIMEOUT,
                "reinstalling the RabbitMQ service",
            )
            .and_then(|_| await_startup(t, START_TIMEOUT));
            explained(t, r)
        }
        None => start(t, m, false),
    }
}

/// Starts the rabbit application of a node whose Erlang VM runs without it, and waits
/// until it has booted.
pub fn start_app(t: &mut dyn Transport) -> Result<()> {
    let r = cli(t, Tool::Ctl, &["start_app"], START_TIMEOUT)
        .and_then(|_| await_startup(t, START_TIMEOUT));
    explained(t, r)
}

/// Waits until `rabbitmqctl await_startup` succeeds on the host, retrying while the
/// node registers with epmd.
pub fn await_startup(t: &mut dyn Probe, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    if let Some(q) = t.platform().await_registered() {
        // Not registered in time: the CLI below says why.
        let _ = t.query(&q, Duration::from_secs(90));
    }
    let q = t.platform().read(Read::AwaitStartup);
    loop {
        // The CLI waits up to 30 s itself, after its own VM has started.
        let out = t.query(&q, Duration::from_secs(120))?;
        if out.ok() {
            return Ok(());
        }
        if out.status == super::NO_CLI_EXIT {
            // The CLI cannot run at all (its own sentence says why): waiting cannot help.
            bail!("{}: {}", t.host(), out.last_line());
        }
        if Instant::now() > deadline {
            bail!(
                "{}: RabbitMQ did not finish starting within {} s: {}",
                t.host(),
                timeout.as_secs(),
                out.last_line()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn cli(t: &mut dyn Transport, tool: Tool, args: &[&str], timeout: Duration) -> Result<()> {
    let _slot = super::cli_slot();
    let script = t.platform().cli(tool, args);
    let what = format!("{} {}", tool.name(), args.first().copied().unwrap_or(""));
    must(t, &script, timeout, &what)?;
    Ok(())
}

/// Starts declared plugins that are enabled but stopped: `rabbitmq-plugins enable`
/// applies the plugin configuration to the running node, which starts them.
pub fn start_plugins(t: &mut dyn Transport, plugins: &[String]) -> Result<()> {
    let mut args = vec!["enable"];
    args.extend(plugins.iter().map(String::as_str));
    cli(t, Tool::Plugins, &args, START_TIMEOUT)
}

/// Makes a blank-able node a member of the seed's cluster. `rabbitmqctl`: stop_app,
/// reset, join_cluster, start_app. `config`: stop_app, reset, start_app, and peer
/// discovery (the node list in its config file) joins it at that boot. When a step
/// fails the node's app is started again, so the node is left running, standalone,
/// and a rerun can try again.
/// A join's first step: `rabbitmqctl stop_app`. When it fails the CLI cannot reach
/// the node (a cookie, a name): the error carries the node's log lines.
pub fn stop_app_to_join(t: &mut dyn Transport) -> Result<()> {
    let r = cli(t, Tool::Ctl, &["stop_app"], START_TIMEOUT);
    explained(t, r)
}

/// `stop_app` before another try of a join, whose failure the try's `reset` reports.
pub fn stop_app_again(t: &mut dyn Transport) {
    let _ = cli(t, Tool::Ctl, &["stop_app"], START_TIMEOUT);
}

/// A join's steps after `stop_app`: `reset`, `join_cluster` (unless peer discovery
/// joins the node from its config), and `start_app`, which runs whatever happened.
pub fn join_steps(t: &mut dyn Transport, seed: &str, ram: bool, by_config: bool) -> Result<()> {
    let timeout = START_TIMEOUT;
    let result = (|| -> Result<()> {
        cli(t, Tool::Ctl, &["reset"], timeout)?;
        if !by_config {
            let mut args = vec!["join_cluster"];
            if ram {
                args.push("--ram");
            }
            args.push(seed);
            cli(t, Tool::Ctl, &args, timeout)?;
        }
        Ok(())
    })();
    let started = cli(t, Tool::Ctl, &["start_app"], timeout);
    result?;
    started?;
    Ok(())
}

/// How long an upgrade's package installation may take (downloads included).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(1200);

/// Puts the node into maintenance mode (`rabbitmq-upgrade drain`): it stops taking
/// client connections, closes those it has, and hands its queue masters and quorum
/// leaders to other nodes, so its stop is the least disruptive it can be.
pub fn drain(t: &mut dyn Transport) -> Result<()> {
    cli(t, Tool::Upgrade, &["drain"], START_TIMEOUT)
}

/// Takes the node out of maintenance mode (`rabbitmq-upgrade revive`).
pub fn revive(t: &mut dyn Transport) -> Result<()> {
    cli(t, Tool::Upgrade, &["revive"], START_TIMEOUT)
}

/// Enables every stable feature flag (`rabbitmqctl enable_feature_flag all`): what
/// RabbitMQ's upgrade guide asks once every node runs the new version.
pub fn enable_feature_flags(t: &mut dyn Transport) -> Result<()> {
    cli(t, Tool::Ctl, &["enable_feature_flag", "all"], START_TIMEOUT)
}

/// Installs an upgrade's packages (or runs its installers) on a host whose node is
/// stopped.
pub fn install(t: &mut dyn Transport, what: &super::Install) -> Result<()> {
    let script = t.platform().install(what);
    must(t, &script, INSTALL_TIMEOUT, "installing the upgrade")?;
    Ok(())
}

/// Runs `rabbitmqctl -n NODE VERB` on the host: another node of the cluster, reached
/// through Erlang distribution with the cluster's cookie.
pub fn remote_node(t: &mut dyn Transport, node: &str, verb: &str) -> Result<()> {
    cli(t, Tool::Ctl, &["-n", node, verb], START_TIMEOUT)
}

/// Removes a stopped node from the cluster (`rabbitmqctl forget_cluster_node`).
pub fn forget(t: &mut dyn Transport, node: &str) -> Result<()> {
    cli(t, Tool::Ctl, &["forget_cluster_node", node], START_TIMEOUT)
}

/// Adds or removes a quorum queue member (rabbitmq-queues; 3.10 has no API for it).
pub fn queue_member(
    t: &mut dyn Transport,
    vhost: &str,
    queue: &str,
    node: &str,
    add: bool,
) -> Result<()> {
    let verb = if add { "add_member" } else { "delete_member" };
    let _slot = super::cli_slot();
    let script = t
        .platform()
        .cli(Tool::Queues, &[verb, "-p", vhost, queue, node]);
    must(
        t,
        &script,
        Duration::from_secs(120),
        &format!("rabbitmq-queues {verb} {queue} {node}"),
    )?;
    Ok(())
}

/// Checks, after a new cookie was written, that the CLI reads the file warren wrote
/// (`rabbitmq-diagnostics erlang_cookie_sources`).
pub fn check_cookie_source(t: &mut dyn Probe) -> Result<()> {
    let want = t.platform().cli_cookie();
    let q = t.platform().read(Read::CookieSources);
    let out = t.query(&q, Duration::from_secs(60))?;
    if !out.ok() {
        bail!(
            "{}: rabbitmq-diagnostics erlang_cookie_sources failed: {}",
            t.host(),
            out.last_line()
        );
    }
    let text = out.stdout.replace('\r', "");
    let path = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Cookie file path:"))
        .map(str::trim);
    let exists = text
        .lines()
        .any(|l| l.trim().starts_with("Cookie file exists?") && l.trim().ends_with("true"));
    let os = t.platform().os();
    match path {
        Some(p) if same_path(os, p, &want) && exists => Ok(()),
        Some(p) => bail!(
            "{}: the CLI tools read the cookie from {p}{}, not from {want}, which warren wrote; set the login user's profile in paths.user_profile (Windows) and rerun",
            t.host(),
            if exists { "" } else { " (which does not exist)" }
        ),
        None => bail!(
            "{}: rabbitmq-diagnostics erlang_cookie_sources did not name the cookie file: {}",
            t.host(),
            out.last_line()
        ),
    }
}

/// Whether two paths a host printed name the same file. On Windows case does not count,
/// and `\` and `/` are one separator: the CLI builds its cookie path with Elixir's
/// `Path.join`, which adds `/` to a home folder written with `\`
/// (`C:\Users\Administrator/.erlang.cookie`; `erlang_cookie_sources_command.ex` in
/// rabbitmq-server's `deps/rabbitmq_cli`).
fn same_path(os: Os, a: &str, b: &str) -> bool {
    match os {
        Os::Linux => a == b,
        Os::Windows => a
            .replace('\\', "/")
            .eq_ignore_ascii_case(&b.replace('\\', "/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Exec;

    #[test]
    fn the_cli_cookie_path_matches_with_either_separator_on_windows_only() {
        let printed = r"C:\Users\Administrator/.erlang.cookie";
        let written = r"C:\Users\Administrator\.erlang.cookie";
        assert!(same_path(Os::Windows, printed, written));
        assert!(same_path(Os::Windows, &printed.to_uppercase(), written));
        assert!(!same_path(
            Os::Windows,
            r"C:\Users\rabbit/.erlang.cookie",
            written
        ));
        assert!(same_path(
            Os::Linux,
            "/var/lib/rabbitmq/.erlang.cookie",
            "/var/lib/rabbitmq/.erlang.cookie"
        ));
        assert!(!same_path(
            Os::Linux,
            "/root/.erlang.cookie",
            "/ROOT/.erlang.cookie"
        ));
    }

    #[test]
    fn a_failed_systemd_start_is_reported_with_the_units_journal() {
        let out = Exec {
            status: 1,
            stdout: String::new(),
            stderr: format!(
                "Job for rabbitmq-server.service failed because the control process exited with error code.\n\
                 See \"systemctl status rabbitmq-server.service\" and \"journalctl -xeu rabbitmq-server.service\" for details.\n\
                 {JOURNAL_MARK}\n\
                 Dec 04 18:06:10 central systemd[1]: rabbitmq-server.service: Failed to determine user credentials: No such process\n\
                 Dec 04 18:06:10 central systemd[1]: Failed to start rabbitmq-server.service - RabbitMQ Messaging Server.\n"
            ),
        };
        assert_eq!(
            start_failure("central", &out),
            "central: starting RabbitMQ failed: Job for rabbitmq-server.service failed because the control process exited with error code.; \
             the last lines of its journal (journalctl -u rabbitmq-server):\n  \
             Dec 04 18:06:10 central systemd[1]: rabbitmq-server.service: Failed to determine user credentials: No such process\n  \
             Dec 04 18:06:10 central systemd[1]: Failed to start rabbitmq-server.service - RabbitMQ Messaging Server."
        );
        // As the lab's systemd 252 printed it on 2026-12-08, before the unit's process
        // had logged its reason: the exit code is explained.
        let out = Exec {
            status: 1,
            stdout: String::new(),
            stderr: format!(
                "Job for rabbitmq-server.service failed because the control process exited with error code.\n\
                 {JOURNAL_MARK}\n\
                 Dec 08 03:13:50 central systemd[1]: Starting rabbitmq-server.service - RabbitMQ Messaging Server...\n\
                 Dec 08 03:13:50 central systemd[1]: rabbitmq-server.service: Main process exited, code=exited, status=217/USER\n\
                 Dec 08 03:13:50 central systemd[1]: rabbitmq-server.service: Failed with result 'exit-code'.\n"
            ),
        };
        assert!(start_failure("central", &out).ends_with(
            "status=217/USER\n  Dec 08 03:13:50 central systemd[1]: rabbitmq-server.service: Failed with result 'exit-code'.\n  \
             (exit status 217/USER is systemd's: it could not find or switch to the unit's User=; systemd.exec(5), \"Process Exit Codes\")"
        ));
        // Without the mark (no service manager), the start command's own reason.
        let out = Exec {
            status: 1,
            stdout: String::new(),
            stderr: "rabbitmq-server: not found\n".into(),
        };
        assert_eq!(
            start_failure("site1", &out),
            "site1: starting RabbitMQ failed: rabbitmq-server: not found"
        );
    }
}
