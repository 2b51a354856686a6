//! A failure that explains itself. On a bootstrapped two-host cluster, site1 is taken
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

#[test]
fn a_failed_join_says_why_and_leaves_a_run_log() {
    let dir = workdir("lab_explain");
    let mut phases = Phases::new("lab_explain");
    let hosts = fresh_lab(&dir, 2);
    let site1 = &hosts[1];
    let bootstrap = apply_verified(&dir);
    assert_eq!(run_logs(&dir).len(), 1, "the bootstrap's run log");
    phases.done("bootstrap");

    ssh_ok(
        &dir,
        site1,
        "rabbitmqctl -q stop_app && rabbitmqctl -q reset && rabbitmqctl -q start_app",
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
