//! A failure that explains itself, and a run that shows itself. The two hosts'
//! bootstrap runs in a real terminal (tmux), its screen captured as it goes: each
//! host's line says what it does now, and the bar moves with the work.
//!
//! Then, on the bootstrapped two-host cluster, site1 is taken
//! out (`rabbitmqctl reset`) and its node restarted with another cookie than the one
//! in its cookie file (which holds the inventory's again): the next `apply` plans the
//! join, and the join fails for real, as it would for an operator whose node kept an
//! old cookie. warren's error then carries RabbitMQ's whole reason (the CLI's
//! diagnostics: the cookie named) and the last lines of site1's own log, read from
//! site1 ("Invalid challenge reply": the rejected connections); it names the run log
//! last, and that file holds every command of the run, with its host and exit code,
//! and no secret of the lab (`assert_no_secret_left` searches it, with the hosts).

mod common;

use common::*;

/// What an operator sees of a bootstrap in a terminal (`screens`, captured every half
/// second): each host's line saying what it does now and for how long, the overall
/// bar drawn from the start and moving with the work, its clock moving while a
/// long step runs, and at the end every host done, the bar full and the summary.
fn assert_terminal_display(screens: &[String], hosts: &[&str]) {
    let running = &screens[..screens.len() - 1];
    let all = running.join("\n=====\n");
    // A host's line at work: a spinner, the host, the step, its seconds.
    let working = |host: &str, step: &str| {
        running.iter().flat_map(|s| s.lines()).any(|l| {
            let mut w = l.split_whitespace();
            let spinner = w.next().unwrap_or("");
            let last = l.trim_end().rsplit(' ').next().unwrap_or("");
            !spinner.is_ascii()
                && w.next() == Some(host)
                && l.contains(step)
                && last.ends_with('s')
                && last[..last.len() - 1].parse::<u32>().is_ok()
        })
    };
    for h in hosts {
        assert!(working(h, "stopping RabbitMQ ("), "{h} stopping:\n{all}");
        assert!(working(h, "starting RabbitMQ"), "{h} starting:\n{all}");
    }
    // site1, fresh, boots blank into the cluster once the seed runs, as the line
    // printed above the bars says.
    assert!(
        all.contains("site1: joined rabbit@central's cluster at its first boot (peer discovery)"),
        "{all}"
    );
    // The bar: (percent, seconds) on each screen that has it.
    let bars: Vec<(u32, String)> = running
        .iter()
        .filter_map(|s| {
            let l = s.lines().find(|l| l.contains("% of the work"))?;
            let (head, clock) = l.split_once("% of the work")?;
            let percent = head.rsplit(' ').next()?.parse().ok()?;
            Some((percent, clock.trim().to_string()))
        })
        .collect();
    assert!(
        running
            .iter()
            .filter(|s| s.contains("starting RabbitMQ"))
            .all(|s| s.contains("% of the work")),
        "the bar is drawn from the start:\n{all}"
    );
    assert!(
        bars.windows(2).all(|w| w[0].0 <= w[1].0),
        "the bar never goes back: {bars:?}"
    );
    let mut percents: Vec<u32> = bars.iter().map(|b| b.0).collect();
    percents.dedup();
    assert!(
        percents.len() >= 4,
        "the bar moves with the work, not only at the end: {bars:?}"
    );
    assert!(
        bars.windows(2)
            .any(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1),
        "the bar's clock moves while a step runs: {bars:?}"
    );
    let last = screens.last().unwrap();
    assert!(last.contains("warren exited: 0"), "{last}");
    assert!(last.contains("100% of the work"), "{last}");
    assert!(last.contains("Applied: "), "{last}");
    for h in hosts {
        assert!(
            last.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w == [*h, "done"]
            }),
            "{h} done at the end:\n{last}"
        );
    }
}

#[test]
fn a_failed_join_says_why_and_leaves_a_run_log() {
    let dir = workdir("lab_explain");
    let mut phases = Phases::new("lab_explain");
    let hosts = fresh_lab(&dir, 2);
    let site1 = &hosts[1];
    // The bootstrap in a real terminal, as an operator watches it.
    let (screens, code) = in_terminal(&dir, &["apply", "--yes"], 120, 40);
    let bootstrap = screens.concat();
    assert_eq!(code, 0, "{}", screens.last().unwrap());
    assert_terminal_display(&screens, &["central", "site1"]);
    assert_eq!(run_logs(&dir).len(), 1, "the bootstrap's run log");
    phases.done("bootstrap, watched in a terminal");

    // Reset, then stopped without starting its application again: with peer
    // discovery in its config, a reset node's next start would join it back.
    ssh_ok(
        &dir,
        site1,
        "rabbitmqctl -q stop_app && rabbitmqctl -q reset",
    );
    stop_rabbit(&dir, site1);
    let cookie = "/var/lib/rabbitmq/.erlang.cookie";
    ssh_ok(
        &dir,
        site1,
        &format!("cp -p {cookie} /var/lib/rabbitmq/cookie.kept && chmod 600 {cookie} && printf OLDCOOKIEOLDCOOKIEOLD > {cookie} && chmod 400 {cookie}"),
    );
    start_rabbit(&dir, site1);
    ssh_ok(
        &dir,
        site1,
        &format!("mv -f /var/lib/rabbitmq/cookie.kept {cookie}"),
    );
    // warren reads a node its CLI cannot reach through its management API: wait until
    // the node's statistics list it (a reset node has only guest, local logins only).
    ssh_ok(
        &dir,
        site1,
        "for i in $(seq 1 60); do curl -sf -u guest:guest http://127.0.0.1:15672/api/nodes | grep -q '\"partitions\"' && exit 0; sleep 1; done; exit 1",
    );

    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    // RabbitMQ's reason, diagnostics included.
    assert!(
        err.contains("site1: rabbitmqctl stop_app failed")
            && err.contains("Erlang distribution failed")
            && err.contains("Erlang cookie is identical"),
        "{err}"
    );
    // site1's own log, from site1.
    let log = err
        .split("the last lines of the node's log (/var/log/rabbitmq/rabbit@site1.log):")
        .nth(1)
        .unwrap_or_else(|| panic!("no log lines: {err}"));
    assert!(log.contains("Invalid challenge reply"), "{err}");
    // The run log, named last.
    let last = err.lines().last().unwrap();
    let logs = run_logs(&dir);
    assert_eq!(logs.len(), 2);
    assert_eq!(
        last,
        format!(
            "error: every command of this run, with its output: {}",
            logs[1].display()
        )
    );
    let text = std::fs::read_to_string(&logs[1]).unwrap();
    assert!(text.starts_with("warren -i "), "{text}");
    assert!(
        text.contains("site1: exit 69") || text.contains("site1: exit 70"),
        "{text}"
    );
    assert!(text.contains("stop_app"), "{text}");
    assert!(text.contains("HTTP GET /api/overview"), "{text}");
    assert!(text.contains("\nfailed:\n"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&logs[1]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    phases.done("the failed join explained, its run log written");

    // Fixed (the node stopped with its old cookie, started with the inventory's):
    // the rerun joins.
    ssh_ok(
        &dir,
        site1,
        "rabbitmqctl --erlang-cookie OLDCOOKIEOLDCOOKIEOLD -q stop /var/lib/rabbitmq/mnesia/rabbit@site1.pid",
    );
    start_rabbit(&dir, site1);
    let fixed = apply_verified(&dir);
    assert_all_see_all(&dir, &hosts);
    assert_no_secret_left(&dir, &hosts, &format!("{bootstrap}{out}{err}{fixed}"));
    phases.done("fixed and joined; no secret in any run log");
    lab_ok(&dir, &["down"]);
}
