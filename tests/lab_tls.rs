//! TLS everywhere, with a CA and certificates the test makes with openssl: every
//! host's AMQP, management and MQTT listen with TLS and their plain listeners are
//! closed, the nodes and their CLI tools talk over TLS distribution, and the private
//! keys are readable by RabbitMQ only. Checked from this machine with TLS clients of
//! their own (openssl s_client, Python's ssl), and through rabbitmqctl on the hosts.
//! site2 is a shovelled site whose shovel reaches central over AMQPS. A
//! certificate about to expire fails verify; renewing it restarts that host only.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn tls_listeners_and_distribution_with_a_renewal() {
    let dir = workdir("lab_tls");
    let mut phases = Phases::new("lab_tls");
    let hosts = fresh_lab(&dir, 3);
    phases.done("lab up");

    let tls = lab_dir(&dir).join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    openssl(
        &tls,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=warren lab test CA",
        ],
    );
    for h in &hosts {
        // site1's first certificate is about to expire: verify must say so.
        let days = if h.name == "site1" { 10 } else { 365 };
        certificate(&tls, h, days);
        add_tls(&dir, &h.name);
    }
    edit_inventory(
        &dir,
        "queue = \"site.site2.data\"\n",
        "queue = \"site.site2.data\"\nlink = \"shovel\"\nlink_password = { file = \"secrets/link-site2.password\" }\n",
    );
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(plan.contains("/etc/rabbitmq/tls-key.pem"), "{plan}");
    assert!(plan.contains("(sensitive value)"), "{plan}");
    assert!(
        !plan.contains("PRIVATE KEY"),
        "the key's value is in the plan"
    );

    let (code, out, err) = lab_warren(&dir, &["apply", "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    let (_, v) = verify_json(&dir);
    let failing = failing(&v);
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(
        (failing[0].0.as_str(), failing[0].1.as_str()),
        ("certificates", "site1")
    );
    assert!(failing[0].2.contains("expires in 9 days"), "{failing:?}");
    // doctor checks the same files before anything is sent: site1's certificate
    // verifies now but not in 30 days, central's fully; a key that is not the
    // certificate's fails.
    assert_eq!(
        doctor_tls(&dir, "central"),
        ("ok".to_string(), String::new())
    );
    let (status, found) = doctor_tls(&dir, "site1");
    assert_eq!(status, "warn", "{found}");
    assert!(found.contains("not in 30 days"), "{found}");
    let (own, other) = (
        "cert = \"tls/site1.pem\", key = \"tls/site1.key\"",
        "cert = \"tls/site1.pem\", key = \"tls/central.key\"",
    );
    edit_inventory(&dir, own, other);
    let (status, found) = doctor_tls(&dir, "site1");
    assert_eq!(status, "fail", "{found}");
    assert!(
        found.contains("is not the key of the certificate"),
        "{found}"
    );
    edit_inventory(&dir, other, own);
    phases.done("bootstrap over TLS");

    // Each listener, from this machine, with the CA as the only trust: AMQPS, MQTTS
    // and the distribution port (presenting a certificate, as a peer node must)
    // verify; the plain ports are closed (management's listens on the loopback only).
    let ca = tls.join("ca.pem");
    for h in &hosts {
        for port in [5671, 8883] {
            let out = s_client(&ca, h, port, None);
            assert!(
                out.contains("Verify return code: 0 (ok)"),
                "{} {port}: {out}",
                h.name
            );
            assert!(
                out.contains(&format!("CN = {}", h.name)),
                "{} {port}: {out}",
                h.name
            );
        }
        let me = (tls.join("central.pem"), tls.join("central.key"));
        let out = s_client(&ca, h, 25672, Some((&me.0, &me.1)));
        assert!(
            out.contains("Verify return code: 0 (ok)"),
            "{} dist: {out}",
            h.name
        );
        for port in [5672, 1883, 15672] {
            assert!(
                std::net::TcpStream::connect((h.address.as_str(), port)).is_err(),
                "{} answers on plain port {port}",
                h.name
            );
        }
    }
    // The management API over HTTPS, through Python's TLS client.
    for (h, name) in hosts.iter().zip(["lab", "lab", "lab-site2"]) {
        let overview = https_get(&dir, &ca, h, "/api/overview");
        assert_eq!(overview["cluster_name"], name, "{overview}");
    }
    // site2's shovel runs, to central's AMQPS listener.
    let shovels = https_get(&dir, &ca, &hosts[2], "/api/shovels");
    assert_eq!(shovels[0]["state"], "running", "{shovels}");
    let shovel = https_get(
        &dir,
        &ca,
        &hosts[2],
        "/api/parameters/shovel/%2F/warren-site2",
    );
    assert!(
        shovel["value"]["dest-uri"]
            .as_str()
            .unwrap()
            .starts_with("amqps://warren-link-site2:"),
        "{shovel}"
    );

    // The nodes speak TLS distribution, and over it they are one cluster; the CLI
    // tools (rabbitmqctl here) reach their node over TLS too.
    for h in &hosts {
        let arg = ssh_ok(
            &dir,
            h,
            "rabbitmqctl -q eval 'init:get_argument(proto_dist).'",
        );
        assert!(arg.contains("inet_tls"), "{}: {arg}", h.name);
    }
    assert_all_see_all(&dir, &hosts[..2]);
    assert_eq!(
        running_nodes(&dir, &hosts[2]),
        vec!["rabbit@site2".to_string()]
    );
    for h in &hosts {
        assert_eq!(
            ssh_ok(&dir, h, "stat -c '%a %U' /etc/rabbitmq/tls-key.pem"),
            "400 rabbitmq",
            "{}",
            h.name
        );
    }
    phases.done("listeners and distribution checked");

    // The renewal: a new certificate for site1 restarts site1 alone, and verify
    // passes, the message paths included (site2's through its shovel over AMQPS).
    let pids = all_pids(&dir, &hosts);
    certificate(&tls, &hosts[1], 365);
    let plan = lab_warren_ok(&dir, &["plan"]);
    assert!(plan.contains("~ /etc/rabbitmq/tls-cert.pem"), "{plan}");
    for other in ["central", "site2"] {
        assert!(
            plan.contains(&format!(
                "{other} (rabbit@{other}, direct):\n  = no changes"
            )),
            "{plan}"
        );
    }
    let out = apply_verified(&dir);
    assert!(out.contains("restarted site1;"), "{out}");
    let now = all_pids(&dir, &hosts);
    assert_eq!((&pids[0], &pids[2]), (&now[0], &now[2]));
    assert_ne!(pids[1], now[1]);
    let (code, out, _) = lab_warren(&dir, &["plan", "--exit-code"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(doctor_tls(&dir, "site1").0, "ok");
    phases.done("renewal");

    // HAProxy in front of the TLS-only members (central, site1): it passes TLS
    // through, so a client checks the certificate of whichever node it reached.
    // verify probes through TLS; from this machine, openssl s_client with the CA as
    // the only trust meets both nodes' certificates on every frontend.
    append_inventory(&dir, "\n[load_balancer]\nhost = \"central\"\n");
    apply_verified(&dir);
    let (code, v) = verify_json(&dir);
    assert_eq!(code, 0, "{v}");
    let serves = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "balancer serves")
        .unwrap_or_else(|| panic!("{v}"));
    let detail = serves["detail"].as_str().unwrap();
    for part in [
        "AMQPS 4 of 4 connections answered",
        "MQTTS 4 of 4 connections answered",
        "HTTPS management 4 of 4 connections answered",
        "each node's certificate checked against /etc/rabbitmq/tls-ca.pem",
    ] {
        assert!(detail.contains(part), "{part}: {serves}");
    }
    for port in [5673, 1884, 15673] {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let out = s_client_to(&ca, &hosts[0].address, port, &[]);
            assert!(out.contains("Verify return code: 0 (ok)"), "{port}: {out}");
            let cn = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("subject=CN = "))
                .unwrap_or_else(|| panic!("{port}: {out}"));
            seen.insert(cn.to_string());
        }
        assert_eq!(
            seen,
            ["central", "site1"].map(String::from).into(),
            "through port {port}"
        );
    }
    phases.done("HAProxy passes TLS through");
    // Passed: the lab goes (a failed story keeps its lab for inspection).
    lab_ok(&dir, &["down"]);
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A key (kept once made) and a certificate for `h` signed by the test's CA, valid
/// for `days`, naming the host as the nodes and clients know it.
/// doctor's tls line for `host`: its status and, when not ok, what it found.
fn doctor_tls(dir: &Path, host: &str) -> (String, String) {
    let (_, out, err) = lab_warren(dir, &["doctor", "--json", "--host", host]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let line = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "tls" && c["host"] == host)
        .unwrap_or_else(|| panic!("no tls line for {host}: {out}"));
    let status = line["status"].as_str().unwrap().to_string();
    let found = if status == "ok" {
        String::new()
    } else {
        line["found"].as_str().unwrap().to_string()
    };
    (status, found)
}

fn certificate(dir: &Path, h: &Host, days: u32) {
    let (key, csr, pem) = (
        format!("{}.key", h.name),
        format!("{}.csr", h.name),
        format!("{}.pem", h.name),
    );
    if !dir.join(&key).exists() {
        openssl(dir, &["genrsa", "-out", &key, "2048"]);
    }
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={}", h.name),
        ],
    );
    let ext = dir.join(format!("{}.ext", h.name));
    std::fs::write(
        &ext,
        format!(
            "subjectAltName = DNS:{}, IP:{}\nextendedKeyUsage = serverAuth, clientAuth\n",
            h.name, h.address
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            &days.to_string(),
            "-extfile",
            ext.to_str().unwrap(),
        ],
    );
}

/// Gives host `name` its tls table in the lab's inventory.
fn add_tls(dir: &Path, name: &str) {
    let from = format!("[[hosts]]\nname = \"{name}\"\n");
    edit_inventory(
        dir,
        &from,
        &format!(
            "{from}tls = {{ ca = \"tls/ca.pem\", cert = \"tls/{name}.pem\", key = \"tls/{name}.key\" }}\n"
        ),
    );
}

/// `openssl s_client` from this machine to `h:port`, trusting only `ca`, asking for
/// the host's name, presenting `client` (certificate, key) when given; its output.
fn s_client(ca: &Path, h: &Host, port: u16, client: Option<(&Path, &Path)>) -> String {
    let mut args: Vec<&std::ffi::OsStr> = ["-servername", &h.name, "-verify_hostname", &h.name]
        .map(std::ffi::OsStr::new)
        .into();
    if let Some((c, k)) = client {
        args.extend([
            std::ffi::OsStr::new("-cert"),
            c.as_os_str(),
            std::ffi::OsStr::new("-key"),
            k.as_os_str(),
        ]);
    }
    s_client_to(ca, &h.address, port, &args)
}

/// `openssl s_client` from this machine to `address:port`, trusting only `ca`, with
/// `more` arguments (none for a balancer's frontend: any node may answer, so no
/// name is asked for); its output.
fn s_client_to(ca: &Path, address: &str, port: u16, more: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect"])
        .arg(format!("{address}:{port}"))
        .arg("-CAfile")
        .arg(ca)
        .args(more)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A GET on the management API over HTTPS with Python's ssl module (the CA as the
/// only trust, the address checked against the certificate), as the lab's administrator.
fn https_get(dir: &Path, ca: &Path, h: &Host, path: &str) -> serde_json::Value {
    let password = std::fs::read_to_string(lab_dir(dir).join("secrets/admin.password")).unwrap();
    let script = "import base64, json, ssl, sys, urllib.request\n\
        ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
        req = urllib.request.Request(sys.argv[2])\n\
        req.add_header('Authorization', 'Basic ' + base64.b64encode(('admin:' + sys.stdin.read().strip()).encode()).decode())\n\
        print(urllib.request.urlopen(req, context=ctx, timeout=30).read().decode())\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(ca)
        .arg(format!("https://{}:15671{path}", h.address))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "https {} {path}: {}",
        h.name,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
