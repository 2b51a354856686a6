//! `warren render`: golden (snapshot) tests of every file rendered for the user's
//! inventory and for a lab inventory, in every replication mode, join method and
//! config format; template overrides; determinism; the cookie only in cookie files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const COOKIE: &str = "GOLDENCOOKIE0123456789ABCDEFGHIJ";
const PASSWORDS: &[(&str, &str)] = &[
    ("WARREN_WINRM_PASSWORD", "winrm-secret-pw"),
    ("WARREN_BACKEND_PASSWORD", "backend-secret-pw"),
    ("WARREN_ADMIN_PASSWORD", "admin-secret-pw"),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn user_inventory() -> String {
    std::fs::read_to_string(repo().join("inventory.toml")).unwrap()
}

fn lab_inventory() -> String {
    let hosts: Vec<_> = (0..5).map(warren::lab::LabHost::new).collect();
    warren::lab::lab_inventory(&hosts)
}

/// A folder holding `inventory` with its secrets in place (the cookie at both paths
/// the two inventories name it by).
fn workspace(inventory: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("inventory.toml"), inventory).unwrap();
    std::fs::create_dir_all(p.join("secrets")).unwrap();
    std::fs::write(p.join("secrets/erlang.cookie"), COOKIE).unwrap();
    std::fs::write(p.join("erlang.cookie"), format!("{COOKIE}\n")).unwrap();
    std::fs::write(p.join("secrets/admin.password"), "lab-admin-pw").unwrap();
    std::fs::write(p.join("secrets/backend.password"), "lab-backend-pw").unwrap();
    for i in 1..=5 {
        std::fs::write(
            p.join(format!("secrets/producer-site{i}.password")),
            format!("lab-producer-site{i}-pw"),
        )
        .unwrap();
    }
    dir
}

fn warren(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    cmd.args(args).current_dir(dir);
    for (k, v) in PASSWORDS {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Renders into `dir/out` and returns every file by its path under `out`.
fn render(dir: &Path, extra: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let out_dir = dir.join("out");
    let mut args = vec!["render", "--out", out_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = warren(dir, &args);
    assert!(
        out.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(!all(&out).contains(COOKIE), "the cookie was printed");
    let mut files = BTreeMap::new();
    collect(&out_dir, &out_dir, &mut files);
    if let Some(defs) = files.get("cluster/definitions.json") {
        check_hashes(dir, defs);
    }
    files
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, files);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            files.insert(rel, std::fs::read(&p).unwrap());
        }
    }
}

/// One text holding every file, CRLF line ends shown as `\r`, so the snapshot
/// shows exactly what Windows hosts receive.
fn tree_text(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut s = String::new();
    for (path, bytes) in files {
        let text = String::from_utf8(bytes.clone()).unwrap();
        s.push_str(&format!(
            "===== {path}\n{}\n",
            text.replace("\r\n", "\\r\n")
        ));
    }
    s
}

/// The cookie appears in the cookie files, in full, and nowhere else; no password does.
fn assert_secrets_contained(files: &BTreeMap<String, Vec<u8>>) {
    let mut cookie_files = 0;
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(bytes);
        if path.ends_with(".erlang.cookie") {
            assert_eq!(text, COOKIE, "{path} must hold exactly the cookie");
            cookie_files += 1;
        } else {
            assert!(!text.contains(COOKIE), "the cookie leaked into {path}");
        }
        for (_, pw) in PASSWORDS {
            assert!(!text.contains(pw), "a password leaked into {path}");
        }
        assert!(!text.contains("lab-admin-pw") && !text.contains("lab-backend-pw"));
    }
    assert!(cookie_files > 0);
}

fn golden(name: &str, inventory: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = workspace(inventory);
    let files = render(dir.path(), &[]);
    assert_secrets_contained(&files);
    insta::assert_snapshot!(name, tree_text(&files));
    files
}

#[test]
fn golden_user_inventory_mirrored() {
    let files = golden("user_mirrored", &user_inventory());
    // Windows and Linux both present, at their target paths with the colon dropped.
    assert!(files.contains_key("win1/C/Windows/System32/config/systemprofile/.erlang.cookie"));
    assert!(files.contains_key("win1/C/Users/Administrator/.erlang.cookie"));
    assert!(files.contains_key("mgmt/etc/rabbitmq/rabbitmq.conf"));
    assert!(files.contains_key("mgmt/var/lib/rabbitmq/.erlang.cookie"));
    assert!(files.contains_key("cluster/definitions.json"));
}

#[test]
fn golden_user_inventory_quorum() {
    let inv = user_inventory().replace("replication = \"mirrored\"", "replication = \"quorum\"");
    golden("user_quorum", &inv);
}

/// win3 shovelled and win4 federated: standalone brokers with a cookie of their own
/// (derived, never the cluster's), no peer discovery, no join, the link's plugin; the
/// members' files as ever, central with the federation plugin.
#[test]
fn golden_user_inventory_linked_sites() {
    let inv = user_inventory()
        .replace(
            "queue = \"site.win3.data\"\n",
            "queue = \"site.win3.data\"\nlink = \"shovel\"\nlink_password = { file = \"secrets/link-win3.password\" }\n",
        )
        .replace(
            "queue = \"site.win4.data\"\n",
            "queue = \"site.win4.data\"\nlink = \"federation\"\nlink_password = { env = \"WARREN_ADMIN_PASSWORD\" }\n",
        );
    let dir = workspace(&inv);
    std::fs::write(
        dir.path().join("secrets/link-win3.password"),
        "link-win3-pw",
    )
    .unwrap();
    let files = render(dir.path(), &[]);
    let text = |path: &str| {
        String::from_utf8(
            files
                .get(path)
                .unwrap_or_else(|| panic!("{path} not rendered"))
                .clone(),
        )
        .unwrap()
    };
    let cookies: Vec<String> = ["win3", "win4"]
        .iter()
        .map(|h| text(&format!("{h}/C/Users/Administrator/.erlang.cookie")))
        .collect();
    for c in &cookies {
        assert_eq!(c.len(), 32, "{c}");
        assert_ne!(c, COOKIE);
    }
    assert_ne!(cookies[0], cookies[1]);
    assert_eq!(text("win1/C/Users/Administrator/.erlang.cookie"), COOKIE);
    for (path, bytes) in &files {
        let t = String::from_utf8_lossy(bytes);
        assert!(
            !t.contains(COOKIE) || path.ends_with(".erlang.cookie"),
            "{path}"
        );
        assert!(
            !t.contains("link-win3-pw"),
            "the link password leaked into {path}"
        );
    }
    let win3 = text("win3/C/ProgramData/RabbitMQ/rabbitmq.conf");
    assert!(!win3.contains("cluster_formation"), "{win3}");
    assert!(
        win3.contains("cluster_name = user-cluster-win3") || win3.contains("-win3"),
        "{win3}"
    );
    assert!(text("win3/C/ProgramData/RabbitMQ/enabled_plugins").contains("rabbitmq_shovel"));
    assert!(text("mgmt/etc/rabbitmq/enabled_plugins").contains("rabbitmq_federation"));
    insta::assert_snapshot!("user_linked_sites", tree_text(&files));
}

/// TLS on every host: the TLS listeners, the plain ones closed (management's on the
/// loopback), TLS distribution for the node and the CLI tools, the firewall rules
/// for the TLS ports; the key only in the key file, private.
#[test]
fn golden_user_inventory_tls() {
    let mut inv = user_inventory();
    for h in ["mgmt", "win1", "win2", "win3", "win4"] {
        let from = format!("[[hosts]]\nname = \"{h}\"\n");
        assert!(inv.contains(&from), "{from}");
        inv = inv.replace(
            &from,
            &format!("{from}tls = {{ ca = \"tls/ca.pem\", cert = \"tls/{h}.pem\", key = \"tls/{h}.key\" }}\n"),
        );
    }
    let dir = workspace(&inv);
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let pem =
        |kind: &str, body: &str| format!("-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n");
    std::fs::write(
        tls.join("ca.pem"),
        pem("CERTIFICATE", "Q0EgY2VydGlmaWNhdGU="),
    )
    .unwrap();
    for h in ["mgmt", "win1", "win2", "win3", "win4"] {
        std::fs::write(
            tls.join(format!("{h}.pem")),
            pem("CERTIFICATE", &format!("Y2VydCBvZiB{h}")),
        )
        .unwrap();
        std::fs::write(
            tls.join(format!("{h}.key")),
            pem("PRIVATE KEY", &format!("U0VDUkVUS0VZ{h}")),
        )
        .unwrap();
    }
    let files = render(dir.path(), &[]);
    assert_secrets_contained(&files);
    for (path, bytes) in &files {
        let t = String::from_utf8_lossy(bytes);
        if t.contains("U0VDUkVUS0VZ") {
            assert!(path.ends_with("tls-key.pem"), "the key leaked into {path}");
        }
    }
    let conf =
        String::from_utf8(files["win1/C/ProgramData/RabbitMQ/rabbitmq.conf"].clone()).unwrap();
    assert!(conf.contains("listeners.tcp = none"), "{conf}");
    assert!(
        conf.contains("ssl_options.keyfile = C:/ProgramData/RabbitMQ/tls-key.pem"),
        "{conf}"
    );
    insta::assert_snapshot!("user_tls", tree_text(&files));

    // keep_plain = true keeps the plain listeners beside the TLS ones, management's
    // on every address, and their firewall rules.
    let kept = inv.replace(
        "key = \"tls/win1.key\" }",
        "key = \"tls/win1.key\", keep_plain = true }",
    );
    std::fs::write(dir.path().join("inventory.toml"), kept).unwrap();
    let files = render(dir.path(), &[]);
    let conf =
        String::from_utf8(files["win1/C/ProgramData/RabbitMQ/rabbitmq.conf"].clone()).unwrap();
    for line in [
        "listeners.tcp.default = 5672",
        "listeners.ssl.default = 5671",
        "mqtt.listeners.tcp.default = 1883",
        "mqtt.listeners.ssl.default = 8883",
        "management.ssl.port = 15671",
        "management.tcp.port = 15672",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} missing:\n{conf}");
    }
    assert!(!conf.contains("management.tcp.ip"), "{conf}");
    let script = String::from_utf8(files["win1/bootstrap.ps1"].clone()).unwrap();
    assert!(
        script.contains("warren-amqp'") && script.contains("warren-amqps'"),
        "{script}"
    );
}

#[test]
fn golden_user_inventory_config_join() {
    let inv = user_inventory().replace("join = \"cli\"", "join = \"config\"");
    golden("user_config_join", &inv);
}

#[test]
fn golden_user_inventory_erlang_terms() {
    let inv = user_inventory().replace(
        "config_format = \"rabbitmq.conf\"",
        "config_format = \"rabbitmq.config\"",
    );
    let files = golden("user_erlang_terms", &inv);
    assert!(files.contains_key("mgmt/etc/rabbitmq/rabbitmq.config"));
    assert!(!files.contains_key("mgmt/etc/rabbitmq/rabbitmq.conf"));
}

#[test]
fn golden_user_inventory_erlang_terms_config_join() {
    let inv = user_inventory()
        .replace("join = \"cli\"", "join = \"config\"")
        .replace(
            "config_format = \"rabbitmq.conf\"",
            "config_format = \"rabbitmq.config\"",
        );
    let files = golden("user_erlang_terms_config_join", &inv);
    let conf =
        String::from_utf8_lossy(&files["win2/C/ProgramData/RabbitMQ/rabbitmq.config"]).into_owned();
    assert!(conf.contains("{cluster_nodes, {['rabbit@mgmt', 'rabbit@win1', 'rabbit@win2', 'rabbit@win3', 'rabbit@win4'], disc}}"), "{conf}");
}

#[test]
fn golden_lab_inventory() {
    let files = golden("lab", &lab_inventory());
    assert!(files.contains_key("central/etc/hosts"));
    // Lab hosts have no systemd: no drop-in.
    assert!(!files.keys().any(|k| k.contains("systemd")));
}

/// Where each site queue lives and where its copies are: the placement that the
/// rendered files cannot show, because definitions name no nodes for quorum members.
#[test]
fn golden_placement() {
    let mut s = String::new();
    for (name, text) in [
        ("mirrored", user_inventory()),
        (
            "quorum",
            user_inventory().replace("replication = \"mirrored\"", "replication = \"quorum\""),
        ),
        (
            "lab quorum",
            lab_inventory().replace("replication = \"mirrored\"", "replication = \"quorum\""),
        ),
    ] {
        let inv = warren::inventory::parse(&text, Path::new("inventory.toml")).unwrap();
        s.push_str(&format!("{name}:\n"));
        for site in &inv.sites {
            let copies: Vec<String> = site
                .mirrors
                .iter()
                .map(|&m| inv.hosts[m].node_name())
                .collect();
            s.push_str(&format!(
                "  {} on {}, copies on {}\n",
                site.queue,
                inv.hosts[site.host].node_name(),
                copies.join(", ")
            ));
        }
    }
    insta::assert_snapshot!("placement", s);
}

#[test]
fn rendering_is_deterministic() {
    let a = workspace(&user_inventory());
    let b = workspace(&user_inventory());
    let first = render(a.path(), &[]);
    let again = render(a.path(), &[]);
    let elsewhere = render(b.path(), &[]);
    assert_eq!(first, again);
    assert_eq!(first, elsewhere);
}

#[test]
fn a_template_beside_the_inventory_overrides_the_builtin_one() {
    let plain = render(workspace(&user_inventory()).path(), &[]);
    let dir = workspace(&user_inventory());
    let tdir = dir.path().join("templates/common");
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::write(
        tdir.join("enabled_plugins.tera"),
        "%% site-specific: {{ host.name }}\n[{{ cluster.plugins | join(sep=\",\") }},rabbitmq_shovel].\n",
    )
    .unwrap();
    let out = warren(dir.path(), &["render", "--out", "out"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("template common/enabled_plugins.tera: using"),
        "{stderr}"
    );
    let mut files = BTreeMap::new();
    collect(&dir.path().join("out"), &dir.path().join("out"), &mut files);
    check_hashes(dir.path(), &files["cluster/definitions.json"]);
    assert_eq!(files.len(), plain.len());
    for (path, bytes) in &files {
        if path.ends_with("enabled_plugins") {
            let host = path.split('/').next().unwrap();
            let text = String::from_utf8_lossy(bytes);
            assert_eq!(
                text,
                format!("%% site-specific: {host}\n[rabbitmq_management,rabbitmq_mqtt,rabbitmq_prometheus,rabbitmq_shovel].\n")
            );
        } else {
            assert_eq!(
                bytes, &plain[path],
                "{path} changed although its template was not overridden"
            );
        }
    }
}

#[test]
fn a_broken_override_is_named() {
    let dir = workspace(&user_inventory());
    let tdir = dir.path().join("templates/linux");
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::write(
        tdir.join("rabbitmq-env.conf.tera"),
        "NODENAME={{ host.name\n",
    )
    .unwrap();
    let out = warren(dir.path(), &["render", "--out", "out"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("templates/linux/rabbitmq-env.conf.tera: the template does not parse"),
        "{stderr}"
    );
    assert!(stderr.lines().count() <= 3, "{stderr}");
}

#[test]
fn render_one_host() {
    let dir = workspace(&user_inventory());
    let files = render(dir.path(), &["--host", "win3"]);
    assert!(!files.is_empty());
    assert!(
        files.keys().all(|k| k.starts_with("win3/")),
        "{:?}",
        files.keys()
    );
    let out = warren(dir.path(), &["render", "--host", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--host nope: no such host"));
}

#[test]
fn render_creates_a_missing_cookie_file_privately() {
    let dir = workspace(&user_inventory());
    std::fs::remove_file(dir.path().join("secrets/erlang.cookie")).unwrap();
    let files = render(dir.path(), &[]);
    let made = std::fs::read_to_string(dir.path().join("secrets/erlang.cookie")).unwrap();
    assert_eq!(made.len(), 32);
    assert_eq!(
        files["mgmt/var/lib/rabbitmq/.erlang.cookie"],
        made.as_bytes()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("secrets/erlang.cookie"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let rendered_mode =
        std::fs::metadata(dir.path().join("out/mgmt/var/lib/rabbitmq/.erlang.cookie"))
            .unwrap()
            .permissions()
            .mode();
    assert_eq!(
        rendered_mode & 0o077,
        0,
        "the rendered cookie must not be readable by others"
    );
    // definitions.json holds the users' password hashes: private too, also when
    // an earlier render left it readable.
    let defs = dir.path().join("out/cluster/definitions.json");
    std::fs::set_permissions(&defs, std::fs::Permissions::from_mode(0o644)).unwrap();
    render(dir.path(), &[]);
    let mode = std::fs::metadata(&defs).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "definitions.json is not private");
}

/// Every Erlang-terms file (rabbitmq.config, enabled_plugins) is read back by Erlang
/// itself, the way RabbitMQ reads it: `file:consult/1`.
#[test]
fn erlang_terms_files_parse_in_erlang() {
    let erl =
        which::which("erl").expect("erl is installed with rabbitmq-server (make test installs it)");
    let inv = user_inventory()
        .replace("join = \"cli\"", "join = \"config\"")
        .replace(
            "config_format = \"rabbitmq.conf\"",
            "config_format = \"rabbitmq.config\"",
        )
        .replace("[cluster]\n", "[cluster]\nnet_ticktime = 30\n");
    let dir = workspace(&inv);
    let files = render(dir.path(), &[]);
    assert!(
        files
            .values()
            .any(|f| String::from_utf8_lossy(f).contains("{kernel, [{net_ticktime, 30}]},")),
        "net_ticktime is not rendered"
    );
    let mut checked = 0;
    for path in files
        .keys()
        .filter(|p| p.ends_with("rabbitmq.config") || p.ends_with("enabled_plugins"))
    {
        let full = dir.path().join("out").join(path);
        let expr = format!(
            "case file:consult(\"{}\") of {{ok, [_]}} -> halt(0); Other -> io:format(\"~p~n\", [Other]), halt(1) end.",
            full.display()
        );
        let out = Command::new(&erl)
            .args(["-noshell", "-eval", &expr])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path} does not parse as Erlang terms: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
}

/// Checks each of definitions.json's password hashes against the user's password. The
/// hashes stay in the snapshots: their salts derive from the secrets, so the same
/// fixture renders the same hash.
fn check_hashes(dir: &Path, defs: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(defs).unwrap();
    for u in v["users"].as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let hash = u["password_hash"].as_str().unwrap();
        // The password as the inventory names it: a file, or one of PASSWORDS.
        let text = std::fs::read_to_string(dir.join("inventory.toml")).unwrap();
        let inv = warren::inventory::parse(&text, &dir.join("inventory.toml")).unwrap();
        let user = inv.users.iter().find(|x| x.name == name).unwrap();
        let password = match &user.password {
            warren::inventory::SecretRef::Env(var) => PASSWORDS
                .iter()
                .find(|(k, _)| k == var)
                .unwrap()
                .1
                .to_string(),
            file => file.read().unwrap().expose().to_string(),
        };
        assert!(
            warren::plan::cluster::password_matches(
                hash,
                u["hashing_algorithm"].as_str().unwrap(),
                &password
            ),
            "the hash of {name} does not check against its password"
        );
    }
}

/// The salts (the first 4 bytes) of definitions.json's password hashes, by user.
fn salts(defs: &[u8]) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(defs).unwrap();
    v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(u["password_hash"].as_str().unwrap())
                .unwrap();
            (u["name"].as_str().unwrap().to_string(), raw[..4].to_vec())
        })
        .collect()
}

/// The same inventory and secrets render byte-identical trees, so a rendered tree kept
/// in git changes only with a real change. The password hashes' salts are still one per
/// user, and another cluster (another cookie) gets other salts for the same users and
/// passwords (`render` checks each hash against its password).
#[test]
fn render_is_reproducible_and_salts_stay_unique() {
    let dir = workspace(&user_inventory());
    let (a, b) = (render(dir.path(), &[]), render(dir.path(), &[]));
    assert!(a.len() > 20, "{:?}", a.keys());
    assert_eq!(a, b, "two renders of the same inventory and secrets differ");
    let ours = salts(&a["cluster/definitions.json"]);
    let distinct: BTreeSet<&Vec<u8>> = ours.values().collect();
    assert_eq!(
        distinct.len(),
        ours.len(),
        "two users share a salt: {ours:?}"
    );

    let other = workspace(&user_inventory());
    let cookie = "ANOTHERCLUSTERCOOKIEOFTWENTYCHARS";
    std::fs::write(other.path().join("secrets/erlang.cookie"), cookie).unwrap();
    std::fs::write(other.path().join("erlang.cookie"), format!("{cookie}\n")).unwrap();
    let theirs = salts(&render(other.path(), &[])["cluster/definitions.json"]);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (user, salt) in &ours {
        assert_ne!(
            salt, &theirs[user],
            "{user} has the same salt in two clusters"
        );
    }
}

/// `[load_balancer]` on the central host adds HAProxy's configuration there and
/// changes no other file: each frontend lists every cluster member, and a linked
/// site's broker (another broker) is in none.
#[test]
fn golden_user_inventory_balancer() {
    let plain = render(workspace(&user_inventory()).path(), &[]);
    let inv = format!("{}\n[load_balancer]\nhost = \"mgmt\"\n", user_inventory());
    let dir = workspace(&inv);
    let mut files = render(dir.path(), &[]);
    assert_secrets_contained(&files);
    let cfg = files
        .remove("mgmt/etc/haproxy/haproxy.cfg")
        .expect("haproxy.cfg rendered on the balancer's host");
    assert_eq!(files, plain, "only haproxy.cfg differs");
    let cfg = String::from_utf8(cfg).unwrap();
    insta::assert_snapshot!("user_balancer_haproxy_cfg", cfg);
    // HAProxy itself (Debian's, which scripts/setup.sh installs) accepts it.
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, &cfg).unwrap();
    let check = Command::new("haproxy")
        .args(["-c", "-f", file.to_str().unwrap()])
        .output()
        .expect("haproxy runs (scripts/setup.sh installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // win4 shovelled: out of every backend.
    let linked = inv.replace(
        "queue = \"site.win4.data\"\n",
        "queue = \"site.win4.data\"\nlink = \"shovel\"\nlink_password = { env = \"WARREN_ADMIN_PASSWORD\" }\n",
    );
    let files = render(workspace(&linked).path(), &[]);
    let cfg = String::from_utf8(files["mgmt/etc/haproxy/haproxy.cfg"].clone()).unwrap();
    assert!(cfg.contains("server win3 "), "{cfg}");
    assert!(!cfg.contains("server win4 "), "{cfg}");
}

/// The scrape configuration read back with an independent YAML parser (yaml-rust2):
/// a job of node totals and a job of per-queue numbers per broker, every member of the
/// cluster in the cluster's jobs with its host and role, each linked site's broker in
/// jobs of its own.
#[test]
fn the_scrape_configuration_lists_every_broker_node() {
    use yaml_rust2::YamlLoader;
    let inv = user_inventory().replace(
        "queue = \"site.win4.data\"\n",
        "queue = \"site.win4.data\"\nlink = \"shovel\"\nlink_password = { env = \"WARREN_ADMIN_PASSWORD\" }\n",
    );
    let dir = workspace(&inv);
    let files = render(dir.path(), &[]);
    let text = String::from_utf8(files["cluster/prometheus.yml"].clone()).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(docs.len(), 1, "{text}");
    let jobs = docs[0]["scrape_configs"].as_vec().expect("scrape_configs");
    let mut seen = Vec::new();
    for job in jobs {
        let name = job["job_name"].as_str().unwrap();
        let path = job["metrics_path"].as_str().unwrap();
        assert_eq!(job["scheme"].as_str(), Some("http"), "{name}");
        if name.ends_with("-queues") {
            assert_eq!(path, "/metrics/detailed", "{name}");
            let family: Vec<&str> = job["params"]["family"]
                .as_vec()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(family, ["queue_coarse_metrics", "queue_consumer_count"]);
            assert_eq!(job["params"]["vhost"][0].as_str(), Some("/"));
        } else {
            assert_eq!(path, "/metrics", "{name}");
        }
        for sc in job["static_configs"].as_vec().unwrap() {
            let targets = sc["targets"].as_vec().unwrap();
            assert_eq!(targets.len(), 1);
            let l = &sc["labels"];
            seen.push(format!(
                "{name} {} {} {} {} {}",
                targets[0].as_str().unwrap(),
                l["cluster"].as_str().unwrap(),
                l["host"].as_str().unwrap(),
                l["role"].as_str().unwrap(),
                l["link"].as_str().unwrap(),
            ));
        }
    }
    let mut want = Vec::new();
    for job in ["rabbitmq-plant", "rabbitmq-plant-queues"] {
        want.push(format!("{job} 192.0.2.10:15692 plant mgmt central cluster"));
        for i in 1..=3 {
            want.push(format!(
                "{job} 192.0.2.1{i}:15692 plant win{i} site cluster"
            ));
        }
    }
    for job in ["rabbitmq-plant-win4", "rabbitmq-plant-win4-queues"] {
        want.push(format!(
            "{job} 192.0.2.14:15692 plant-win4 win4 site shovel"
        ));
    }
    assert_eq!(seen, want);
}

/// `prometheus = false`: no plugin, no listener, no firewall rule, no scrape
/// configuration; the other files as before.
#[test]
fn prometheus_false_turns_metrics_off() {
    let inv = user_inventory().replace("[cluster]\n", "[cluster]\nprometheus = false\n");
    let dir = workspace(&inv);
    let files = render(dir.path(), &[]);
    assert!(!files.contains_key("cluster/prometheus.yml"));
    for (path, bytes) in &files {
        let t = String::from_utf8_lossy(bytes);
        assert!(!t.contains("prometheus"), "{path}: {t}");
    }
    let on = render(workspace(&user_inventory()).path(), &[]);
    assert!(on.contains_key("cluster/prometheus.yml"));
    assert!(
        String::from_utf8_lossy(&on["win1/C/ProgramData/RabbitMQ/enabled_plugins"])
            .contains("rabbitmq_prometheus")
    );
}

/// A syntax check of the rendered PowerShell (tree-sitter-powershell), shared with the
/// library's own tests.
#[path = "../src/pscheck.rs"]
#[allow(dead_code)]
mod pscheck;

/// What in bootstrap.ps1 changes the host, line by line: cmdlets and .NET calls that
/// write, the service script, the CLI verbs that stop or reset the node, and the
/// script's own helper that rewrites a folder's ACL.
fn mutation(line: &str) -> Option<&'static str> {
    // Strings removed, so a message that names a cmdlet is not taken for a call; the
    // CLI's verbs are strings, so they are matched on the whole line.
    let code = regex::Regex::new(r#"'[^']*'|"[^"]*""#)
        .unwrap()
        .replace_all(line, "''")
        .into_owned();
    const CALLS: &[&str] = &[
        "Set-Content",
        "Copy-Item",
        "New-Item",
        "Remove-Item",
        "Set-Acl",
        "Start-Service",
        "Stop-Service",
        "SetEnvironmentVariable",
        "New-NetFirewallRule",
        "Set-NetFirewallRule",
        "WriteAllBytes",
        "[System.IO.File]::Replace(",
        "[System.IO.File]::Move(",
        "Protect-Folder ",
        "Invoke-Native $Bat",
    ];
    if let Some(c) = CALLS.iter().find(|c| code.contains(*c)) {
        return Some(c);
    }
    const VERBS: &[&str] = &["'stop_app'", "'reset'", "'join_cluster'", "'start_app'"];
    if line.trim_start().starts_with("Invoke-Ctl") {
        return VERBS.iter().find(|v| line.contains(*v)).copied();
    }
    None
}

/// The mutating lines of `script` that sit outside every `-WhatIf` guard (a block
/// opened by `if (Should-Change ...)` or `if (-not $WhatIf)`); a function's body is
/// its definition, checked where it is called. Braces are counted per line, outside
/// strings (the script has no here-strings).
fn unguarded(script: &str) -> (Vec<String>, usize) {
    #[derive(Clone, Copy, PartialEq)]
    enum Block {
        Guard,
        Function,
        Other,
    }
    let strings = regex::Regex::new(r#"'[^']*'|"[^"]*""#).unwrap();
    let mut stack: Vec<Block> = Vec::new();
    let mut found = Vec::new();
    let mut mutations = 0;
    for (n, line) in script.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        let kind = if t.starts_with("function ") {
            Block::Function
        } else if t.starts_with("if (Should-Change ") || t.starts_with("if (-not $WhatIf)") {
            Block::Guard
        } else {
            Block::Other
        };
        if let Some(what) = mutation(line) {
            mutations += 1;
            // A guard or a definition opened on this very line counts too.
            let inside = stack
                .iter()
                .chain([&kind])
                .any(|b| *b == Block::Guard || *b == Block::Function);
            if !inside {
                found.push(format!("line {}: {what}: {}", n + 1, t));
            }
        }
        let mut first = true;
        for c in strings.replace_all(line, "''").chars() {
            match c {
                '{' => {
                    stack.push(if first { kind } else { Block::Other });
                    first = false;
                }
                '}' => {
                    stack.pop().expect("a closing brace without an opening one");
                }
                _ => {}
            }
        }
    }
    assert!(stack.is_empty(), "unbalanced braces");
    (found, mutations)
}

/// bootstrap.ps1 -WhatIf changes nothing: every line that changes the host sits inside
/// a guard, in each variant of the rendered script; and the script parses.
#[test]
fn bootstrap_whatif_guards_every_change() {
    // The check itself: an unguarded change is found, a guarded one is not.
    let sample = "function F { Set-Acl -LiteralPath $P -AclObject $A }\n\
                  if (Should-Change 'x') {\n    Stop-Service -Name 'RabbitMQ'\n} else {\n    Start-Service -Name 'RabbitMQ'\n}\n\
                  Write-Output 'Set-Content'\nInvoke-Ctl @('reset') | Out-Null\n";
    let (found, n) = unguarded(sample);
    assert_eq!(n, 4);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("Start-Service") && found[1].contains("'reset'"));

    let mut checked = 0;
    for (name, inv) in [
        ("mirrored", user_inventory()),
        (
            "config join",
            user_inventory().replace("join = \"cli\"", "join = \"config\""),
        ),
    ] {
        let dir = workspace(&inv);
        let files = render(dir.path(), &[]);
        for (path, bytes) in files.iter().filter(|(p, _)| p.ends_with("bootstrap.ps1")) {
            let script = String::from_utf8(bytes.clone()).unwrap();
            assert!(script.contains("param([switch]$WhatIf)"), "{name} {path}");
            let problems = pscheck::powershell_problems(&script);
            assert!(problems.is_empty(), "{name} {path}: {problems:?}");
            let (found, mutations) = unguarded(&script);
            assert!(found.is_empty(), "{name} {path}: unguarded: {found:#?}");
            assert!(
                mutations >= 20,
                "{name} {path}: only {mutations} changes found"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "{checked} scripts checked");
}
