//! `warren check`: every validation error, each naming its key and the fix, all of them
//! reported at once; through the library (table) and through the binary (CLI).

use std::path::Path;
use std::process::Command;
use warren::inventory::{self, InventoryError};

/// A small valid inventory; each case edits it.
const BASE: &str = r#"
[cluster]
name = "t"
cookie = { file = "cookie" }

[[hosts]]
name = "central"
address = "10.0.0.10"
os = "linux"
role = "central"

[[hosts]]
name = "a"
address = "10.0.0.11"
os = "windows"
password = { env = "WARREN_TEST_PW" }
role = "site"

[[hosts]]
name = "b"
address = "10.0.0.12"
os = "linux"
role = "site"

[[sites]]
host = "a"
exchange = "site.a"
queue = "site.a.data"

[[sites]]
host = "b"
exchange = "site.b"
queue = "site.b.data"
"#;

fn problems(text: &str) -> Vec<String> {
    match inventory::parse(text, Path::new("inv.toml")) {
        Ok(_) => vec![],
        Err(InventoryError::Invalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn base_inventory_is_valid() {
    assert_eq!(problems(BASE), Vec::<String>::new());
}

/// Version pins in `[cluster]` and a host's own, each kind where its OS uses it, are
/// valid; a `[cluster]` key's problem is reported once however many hosts inherit it.
#[test]
fn version_pins_are_valid_and_reported_once() {
    let pins = "name = \"t\"\nrabbitmq_version = \"3.10.25\"\nerlang_version = \"25.3\"\nrabbitmq_package = \"3.10.25-1\"\nerlang_package = \"1:25.3.2.8-1\"\nrabbitmq_installer = 'C:\\installers\\rabbitmq-server-3.10.25.exe'\nerlang_installer = \"https://example.com/otp_win64_25.3.2.8.exe\"";
    assert_eq!(
        problems(&BASE.replacen("name = \"t\"", pins, 1)),
        Vec::<String>::new()
    );
    let bad = BASE.replacen(
        "name = \"t\"",
        "name = \"t\"\nrabbitmq_version = \"3.10\"",
        1,
    );
    let found = problems(&bad);
    assert_eq!(found.len(), 1, "{found:#?}");
}

/// (what, edit as (from, to) on BASE, key expected, words expected in the message)
const CASES: &[(&str, (&str, &str), &str, &str)] = &[
    (
        "duplicate host name",
        ("name = \"b\"", "name = \"A\""),
        "hosts[2].name",
        "also the name of hosts[1]",
    ),
    (
        "duplicate address",
        ("10.0.0.12", "10.0.0.11"),
        "hosts[2].address",
        "also the address of hosts[1] (a)",
    ),
    (
        "site on an unknown host",
        ("host = \"b\"", "host = \"nowhere\""),
        "sites[1].host",
        "\"nowhere\" is not a host",
    ),
    (
        "site on the central host",
        ("host = \"b\"", "host = \"central\""),
        "sites[1].host",
        "is the central host",
    ),
    (
        "two sites on one host",
        ("host = \"b\"", "host = \"a\""),
        "sites[1].host",
        "already has a site",
    ),
    (
        "mirror on a missing host",
        (
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nmirrors = [\"gone\"]",
        ),
        "sites[1].mirrors[0]",
        "\"gone\" is not a host",
    ),
    (
        "mirror on the site's own host",
        (
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nmirrors = [\"b\"]",
        ),
        "sites[1].mirrors[0]",
        "the site's own host",
    ),
    (
        "empty mirror list",
        (
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nmirrors = []",
        ),
        "sites[1].mirrors",
        "no copy",
    ),
    (
        "reserved queue name",
        ("queue = \"site.a.data\"", "queue = \"amq.data\""),
        "sites[0].queue",
        "reserved for RabbitMQ",
    ),
    (
        "empty exchange name",
        ("exchange = \"site.a\"", "exchange = \"\""),
        "sites[0].exchange",
        "it is empty",
    ),
    (
        "duplicate queue",
        ("queue = \"site.b.data\"", "queue = \"site.a.data\""),
        "sites[1].queue",
        "also the queue of sites[0]",
    ),
    (
        "host name RabbitMQ cannot use in a node name",
        ("name = \"b\"", "name = \"b.example.com\""),
        "hosts[2].name",
        "short name",
    ),
    (
        "unknown replication",
        (
            "cookie = { file = \"cookie\" }",
            "cookie = { file = \"cookie\" }\nreplication = \"raft\"",
        ),
        "cluster.replication",
        "\"mirrored\", \"quorum\"",
    ),
    (
        "unknown join method",
        (
            "cookie = { file = \"cookie\" }",
            "cookie = { file = \"cookie\" }\njoin = \"shovel\"",
        ),
        "cluster.join",
        "\"cli\", \"config\"",
    ),
    (
        "unknown config format",
        (
            "cookie = { file = \"cookie\" }",
            "cookie = { file = \"cookie\" }\nconfig_format = \"yaml\"",
        ),
        "cluster.config_format",
        "\"rabbitmq.conf\", \"rabbitmq.config\"",
    ),
    (
        "unknown partition handling",
        (
            "cookie = { file = \"cookie\" }",
            "cookie = { file = \"cookie\" }\npartition_handling = \"pause_if_all_down\"",
        ),
        "cluster.partition_handling",
        "\"ignore\"",
    ),
    (
        "net tick time too short",
        (
            "cookie = { file = \"cookie\" }",
            "cookie = { file = \"cookie\" }\nnet_ticktime = 1",
        ),
        "cluster.net_ticktime",
        "use 5 to 600 seconds",
    ),
    (
        "bad plugin name",
        (
            "cookie = { file = \"cookie\" }",
            "cookie = { file = \"cookie\" }\nplugins = [\"Rabbit MQTT\"]",
        ),
        "cluster.plugins[0]",
        "not a plugin name",
    ),
    (
        "secret given by neither file nor env",
        ("cookie = { file = \"cookie\" }", "cookie = { }"),
        "cluster.cookie",
        "exactly one of file",
    ),
    (
        "no central host",
        ("role = \"central\"", "role = \"site\""),
        "hosts",
        "no host has role = \"central\"",
    ),
    (
        "second central host",
        ("os = \"linux\"\nrole = \"site\"", "os = \"linux\"\nrole = \"central\""),
        "hosts[2].role",
        "second central host",
    ),
    (
        "winrm to a linux host",
        (
            "os = \"linux\"\nrole = \"site\"",
            "os = \"linux\"\ntransport = \"winrm\"\nrole = \"site\"",
        ),
        "hosts[2].transport",
        "use \"ssh\"",
    ),
    (
        "systemd on windows",
        (
            "role = \"site\"\n\n[[hosts]]\nname = \"b\"",
            "role = \"site\"\nservice = \"systemd\"\n\n[[hosts]]\nname = \"b\"",
        ),
        "hosts[1].service",
        "Windows has no systemd",
    ),
    (
        "winrm settings on an ssh host",
        (
            "os = \"linux\"\nrole = \"site\"",
            "os = \"linux\"\nrole = \"site\"\nwinrm = { scheme = \"http\" }",
        ),
        "hosts[2].winrm",
        "apply only to transport = \"winrm\"",
    ),
    (
        "an unknown winrm scheme",
        (
            "role = \"site\"\n\n[[hosts]]\nname = \"b\"",
            "role = \"site\"\nwinrm = { scheme = \"ftp\" }\n\n[[hosts]]\nname = \"b\"",
        ),
        "hosts[1].winrm.scheme",
        "use \"https\" (port 5986) or \"http\"",
    ),
    (
        "basic authentication over plain http",
        (
            "role = \"site\"\n\n[[hosts]]\nname = \"b\"",
            "role = \"site\"\nwinrm = { scheme = \"http\", auth = \"basic\" }\n\n[[hosts]]\nname = \"b\"",
        ),
        "hosts[1].winrm.auth",
        "password in clear",
    ),
    (
        "a CA file and no certificate check at once",
        (
            "role = \"site\"\n\n[[hosts]]\nname = \"b\"",
            "role = \"site\"\nwinrm = { ca_file = \"ca.pem\", insecure_skip_verify = true }\n\n[[hosts]]\nname = \"b\"",
        ),
        "hosts[1].winrm.insecure_skip_verify",
        "keep one of them",
    ),
    (
        "windows host without a password",
        ("password = { env = \"WARREN_TEST_PW\" }\n", ""),
        "hosts[1].password",
        "needs a password reference",
    ),
    (
        "two listeners on one port",
        (
            "os = \"linux\"\nrole = \"site\"",
            "os = \"linux\"\nrole = \"site\"\nports = { amqp = 15672 }",
        ),
        "hosts[2].ports.management",
        "also the amqp port",
    ),
    (
        "the metrics port taken by another listener",
        (
            "os = \"linux\"\nrole = \"site\"",
            "os = \"linux\"\nrole = \"site\"\nports = { prometheus = 1883 }",
        ),
        "hosts[2].ports.prometheus",
        "port 1883 is also the mqtt port; give each listener its own port",
    ),
    (
        "metrics turned off while the plugin is listed",
        (
            "cookie = { file = \"cookie\" }",
            "cookie = { file = \"cookie\" }\nprometheus = false\nplugins = [\"rabbitmq_management\", \"rabbitmq_prometheus\"]",
        ),
        "cluster.plugins[1]",
        "\"rabbitmq_prometheus\" is listed while cluster.prometheus = false turns metrics off; remove one of the two",
    ),
    (
        "unknown path key",
        (
            "os = \"linux\"\nrole = \"site\"",
            "os = \"linux\"\nrole = \"site\"\npaths = { base = \"/x\" }",
        ),
        "hosts[2].paths.base",
        "unknown path for a linux host",
    ),
    (
        "central as a ram node",
        (
            "role = \"central\"",
            "role = \"central\"\nnode_type = \"ram\"",
        ),
        "hosts[0].node_type",
        "make it \"disc\"",
    ),
    (
        "guest user",
        (
            "[[sites]]\nhost = \"a\"",
            "[[users]]\nname = \"guest\"\npassword = { env = \"X\" }\n\n[[sites]]\nhost = \"a\"",
        ),
        "users[0].name",
        "built-in user",
    ),
    (
        "permission on another vhost",
        (
            "[[sites]]\nhost = \"a\"",
            "[[users]]\nname = \"u\"\npassword = { env = \"X\" }\npermissions = [{ vhost = \"other\", configure = \"\", write = \"\", read = \".*\" }]\n\n[[sites]]\nhost = \"a\"",
        ),
        "users[0].permissions[0].vhost",
        "one virtual host",
    ),
    (
        "site user on a host that is not a site",
        (
            "[[sites]]\nhost = \"a\"",
            "[[users]]\nname = \"u\"\npassword = { env = \"X\" }\nsite = \"central\"\n\n[[sites]]\nhost = \"a\"",
        ),
        "users[0].site",
        "\"central\" is not a site host; name one of \"a\", \"b\"",
    ),
    (
        "site user reaching another site",
        (
            "[[sites]]\nhost = \"a\"",
            "[[users]]\nname = \"u\"\npassword = { env = \"X\" }\nsite = \"a\"\npermissions = [{ configure = \"^$\", write = \"^site\\\\.\", read = \"^$\" }]\n\n[[sites]]\nhost = \"a\"",
        ),
        "users[0].permissions[0]",
        "u is the user of site a but may write on exchange site.b (site b), write on queue site.b.data (site b); narrow the patterns",
    ),
    (
        "site user pattern warren cannot evaluate",
        (
            "[[sites]]\nhost = \"a\"",
            "[[users]]\nname = \"u\"\npassword = { env = \"X\" }\nsite = \"a\"\npermissions = [{ configure = \"^$\", write = \"(?<=x)a\", read = \"^$\" }]\n\n[[sites]]\nhost = \"a\"",
        ),
        "users[0].permissions[0]",
        "write pattern \"(?<=x)a\" is not a regular expression warren can evaluate",
    ),
    (
        "unknown link",
        (
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nlink = \"vpn\"",
        ),
        "sites[1].link",
        "\"vpn\"",
    ),
    (
        "linked site without its link password",
        (
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nlink = \"shovel\"",
        ),
        "sites[1].link_password",
        "needs the password of its link user (warren-link-b): add link_password",
    ),
    (
        "link password on a cluster member",
        (
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nlink_password = { env = \"X\" }",
        ),
        "sites[1].link_password",
        "a cluster member has no link user",
    ),
    (
        "mirrors on a linked site",
        (
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nlink = \"federation\"\nlink_password = { env = \"X\" }\nmirrors = [\"central\"]",
        ),
        "sites[1].mirrors",
        "standalone broker",
    ),
    (
        "mirror on a linked site's host",
        (
            "queue = \"site.a.data\"\n\n[[sites]]\nhost = \"b\"\nexchange = \"site.b\"\nqueue = \"site.b.data\"",
            "queue = \"site.a.data\"\nmirrors = [\"b\"]\n\n[[sites]]\nhost = \"b\"\nexchange = \"site.b\"\nqueue = \"site.b.data\"\nlink = \"shovel\"\nlink_password = { env = \"X\" }",
        ),
        "sites[0].mirrors[0]",
        "\"b\" is a linked site's standalone broker",
    ),
    (
        "tls without its key",
        (
            "role = \"central\"",
            "role = \"central\"\ntls = { ca = \"ca.pem\", cert = \"c.pem\" }",
        ),
        "hosts[0].tls.key",
        "TLS needs the certificate's private key: add key = \"PATH\"",
    ),
    (
        "tls on some members only",
        (
            "role = \"central\"",
            "role = \"central\"\ntls = { ca = \"ca.pem\", cert = \"c.pem\", key = \"c.key\" }",
        ),
        "hosts[1].tls",
        "central has tls, so the cluster's nodes talk to each other over TLS, and a would not be able to",
    ),
    (
        "balancer on an unknown host",
        (
            "[[sites]]\nhost = \"a\"",
            "[load_balancer]\nhost = \"lb\"\n\n[[sites]]\nhost = \"a\"",
        ),
        "load_balancer.host",
        "no host is named \"lb\"; name a Linux host of [[hosts]] (central, b)",
    ),
    (
        "balancer on a Windows host",
        (
            "[[sites]]\nhost = \"a\"",
            "[load_balancer]\nhost = \"a\"\n\n[[sites]]\nhost = \"a\"",
        ),
        "load_balancer.host",
        "a is a Windows host, and warren runs HAProxy from Debian's package on Linux",
    ),
    (
        "balancer port taken by RabbitMQ on its host",
        (
            "[[sites]]\nhost = \"a\"",
            "[load_balancer]\nhost = \"central\"\nports = { amqp = 5672 }\n\n[[sites]]\nhost = \"a\"",
        ),
        "load_balancer.ports.amqp",
        "port 5672 is RabbitMQ's amqp port on central, where HAProxy runs; choose another",
    ),
    (
        "two balancer frontends on one port",
        (
            "[[sites]]\nhost = \"a\"",
            "[load_balancer]\nhost = \"b\"\nports = { amqp = 7000, mqtt = 7000 }\n\n[[sites]]\nhost = \"a\"",
        ),
        "load_balancer.ports.mqtt",
        "port 7000 is also the balancer's amqp port",
    ),
    (
        "unknown balancer key",
        (
            "[[sites]]\nhost = \"a\"",
            "[load_balancer]\nhost = \"b\"\nmode = \"http\"\n\n[[sites]]\nhost = \"a\"",
        ),
        "load_balancer.mode",
        "unknown key",
    ),
    (
        "a RabbitMQ version not as RabbitMQ reports it",
        ("name = \"t\"", "name = \"t\"\nrabbitmq_version = \"3.10\""),
        "cluster.rabbitmq_version",
        "\"3.10\" is not a RabbitMQ version; write it as RabbitMQ reports it, like \"3.10.8\"",
    ),
    (
        "a package of another release than the pinned one",
        (
            "name = \"t\"",
            "name = \"t\"\nrabbitmq_version = \"3.11.28\"\nrabbitmq_package = \"3.10.8-1.1+deb12u1\"",
        ),
        "cluster.rabbitmq_package",
        "is RabbitMQ 3.10.8, but cluster.rabbitmq_version says 3.11.28; make them name the same release",
    ),
    (
        "a package version that is not one",
        ("name = \"t\"", "name = \"t\"\nerlang_package = \"latest\""),
        "cluster.erlang_package",
        "\"latest\" is not a Debian package version",
    ),
    (
        "an Erlang the pinned RabbitMQ does not run on",
        (
            "name = \"t\"",
            "name = \"t\"\nrabbitmq_version = \"3.10.8\"\nerlang_version = \"26.1\"",
        ),
        "cluster.erlang_version",
        "RabbitMQ 3.10.8 runs on Erlang 24.2 to 25.2.x, not 26.1 (RabbitMQ's Erlang compatibility matrix); pin an Erlang version in that range",
    ),
    (
        "a RabbitMQ release warren has no rules for",
        ("name = \"t\"", "name = \"t\"\nrabbitmq_version = \"4.1.0\""),
        "cluster.rabbitmq_version",
        "warren knows the upgrade rules and Erlang requirements of RabbitMQ 3.9 to 4.0 only",
    ),
    (
        "an installer on a Linux host",
        (
            "address = \"10.0.0.12\"",
            "address = \"10.0.0.12\"\nrabbitmq_installer = 'C:\\rabbitmq.exe'",
        ),
        "hosts[2].rabbitmq_installer",
        "is for windows hosts, and this one runs linux; use rabbitmq_package / erlang_package",
    ),
    (
        "an apt package on a Windows host",
        (
            "address = \"10.0.0.11\"",
            "address = \"10.0.0.11\"\nerlang_package = \"1:25.2.3+dfsg-1+deb12u1\"",
        ),
        "hosts[1].erlang_package",
        "is for linux hosts, and this one runs windows; use rabbitmq_installer / erlang_installer",
    ),
];

/// One balancer frontend leads to every member: all TLS only, or all with their plain
/// listeners kept; the same hosts without a balancer are fine.
#[test]
fn a_balancer_needs_its_members_to_listen_alike() {
    let tls = |keep: &str| {
        format!("\ntls = {{ ca = \"ca.pem\", cert = \"c.pem\", key = \"c.key\"{keep} }}")
    };
    let text = BASE
        .replacen(
            "role = \"central\"",
            &format!("role = \"central\"{}", tls("")),
            1,
        )
        .replacen(
            "address = \"10.0.0.11\"",
            &format!("address = \"10.0.0.11\"{}", tls("")),
            1,
        )
        .replacen(
            "address = \"10.0.0.12\"",
            &format!("address = \"10.0.0.12\"{}", tls(", keep_plain = true")),
            1,
        );
    let keep_plain = |found: &[String]| -> Vec<String> {
        found
            .iter()
            .filter(|p| p.contains("keep_plain"))
            .cloned()
            .collect()
    };
    assert_eq!(keep_plain(&problems(&text)), Vec::<String>::new());
    let balanced = text.replacen(
        "[[sites]]\nhost = \"a\"",
        "[load_balancer]\nhost = \"central\"\n\n[[sites]]\nhost = \"a\"",
        1,
    );
    assert_eq!(
        keep_plain(&problems(&balanced)),
        ["hosts[2].tls.keep_plain: the load balancer leads clients to every member, and central, a listen with TLS only while b keeps its plain listeners, so a client could meet either; set keep_plain the same on every member"]
    );
}

#[test]
fn every_validation_error_names_its_key() {
    for (what, (from, to), key, words) in CASES {
        assert!(BASE.contains(from), "case {what}: BASE lacks {from:?}");
        let text = BASE.replacen(from, to, 1);
        let found = problems(&text);
        let hit = found
            .iter()
            .any(|p| p.starts_with(&format!("{key}: ")) && p.contains(words));
        assert!(
            hit,
            "case {what}: expected a problem at {key} mentioning {words:?}, got {found:#?}"
        );
    }
}

/// A link into a host whose plain listeners are closed needs a certificate at the
/// end that connects: the shovel on b cannot check central's without one.
#[test]
fn a_link_to_a_tls_only_host_needs_tls_at_its_other_end() {
    let text = BASE
        .replacen(
            "role = \"central\"",
            "role = \"central\"\ntls = { ca = \"ca.pem\", cert = \"c.pem\", key = \"c.key\" }",
            1,
        )
        .replacen(
            "role = \"site\"",
            "role = \"site\"\ntls = { ca = \"ca.pem\", cert = \"a.pem\", key = \"a.key\" }",
            1,
        )
        .replacen(
            "queue = \"site.b.data\"",
            "queue = \"site.b.data\"\nlink = \"shovel\"\nlink_password = { env = \"X\" }",
            1,
        );
    assert_eq!(
        problems(&text),
        vec!["sites[1].link: the shovel connects from b to central over TLS (its plain AMQP listener is closed), and b has no tls to check central's certificate with: give b tls, or keep_plain = true on central"]
    );
    let kept = text.replacen(
        "key = \"c.key\" }",
        "key = \"c.key\", keep_plain = true }",
        1,
    );
    assert_eq!(problems(&kept), Vec::<String>::new());
}

/// A WinRM host listens on 5986 (HTTPS) unless it says HTTP, then on 5985.
#[test]
fn winrm_ports_follow_the_scheme() {
    let https = inventory::parse(BASE, Path::new("inventory.toml")).unwrap();
    assert_eq!(
        (https.hosts[1].port, https.hosts[1].winrm.https),
        (5986, true)
    );
    let text = BASE.replace(
        "password = { env = \"WARREN_TEST_PW\" }",
        "password = { env = \"WARREN_TEST_PW\" }\nwinrm = { scheme = \"http\" }",
    );
    let http = inventory::parse(&text, Path::new("inventory.toml")).unwrap();
    assert_eq!(
        (http.hosts[1].port, http.hosts[1].winrm.https),
        (5985, false)
    );
}

#[test]
fn quorum_with_fewer_than_three_nodes_is_reported() {
    let start = BASE.find("[[hosts]]\nname = \"b\"").unwrap();
    let end = BASE.find("[[sites]]").unwrap();
    let mut text = format!("{}{}", &BASE[..start], &BASE[end..]);
    text = text.replace(
        "[[sites]]\nhost = \"b\"",
        "# b removed\n[[sites]]\nhost = \"a\"",
    );
    let text = text.replace(
        "cookie = { file = \"cookie\" }",
        "cookie = { file = \"cookie\" }\nreplication = \"quorum\"",
    );
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.starts_with("cluster.replication: ")
            && p.contains("at least three nodes")
            && p.contains("has 2")),
        "{found:#?}"
    );
}

#[test]
fn no_disc_node_is_reported() {
    let text = BASE
        .replace(
            "role = \"central\"",
            "role = \"central\"\nnode_type = \"ram\"",
        )
        .replace("role = \"site\"", "role = \"site\"\nnode_type = \"ram\"");
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("hosts: no host is a disc node")),
        "{found:#?}"
    );
}

#[test]
fn unknown_keys_are_refused_with_the_line() {
    let text = BASE.replace(
        "os = \"linux\"\nrole = \"central\"",
        "os = \"linux\"\nrole = \"central\"\nflavour = \"x\"",
    );
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("hosts[0].flavour: unknown key (line 11); a host takes name, address"),
        "{}",
        found[0]
    );
}

/// An unknown key no longer hides the other problems (issue 12): every unknown key,
/// nested ones included, and every other problem, at once.
#[test]
fn unknown_keys_and_other_problems_are_reported_together() {
    let text = BASE
        .replace(
            "os = \"linux\"\nrole = \"central\"",
            "os = \"linux\"\nrole = \"central\"\nflavour = \"x\"\nports = { amqp = 5672, smtp = 25 }",
        )
        .replace("host = \"b\"", "host = \"nowhere\"")
        .replace("[cluster]\n", "[cluster]\ncolour = \"blue\"\n");
    let found = problems(&text);
    for want in [
        "cluster.colour: unknown key (line 3)",
        "hosts[0].flavour: unknown key",
        "hosts[0].ports.smtp: unknown key",
        "sites[1].host: \"nowhere\" is not a host",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(want)),
            "{want} missing from {found:#?}"
        );
    }
}

fn warren(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .current_dir(dir)
        .env_remove("WARREN_TEST_PW")
        .output()
        .unwrap()
}

#[test]
fn check_reports_every_problem_at_once_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE
        .replace("10.0.0.12", "10.0.0.11")
        .replace("host = \"b\"", "host = \"nowhere\"")
        .replace("queue = \"site.a.data\"", "queue = \"amq.a\"");
    std::fs::write(dir.path().join("inventory.toml"), text).unwrap();
    let out = warren(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["hosts[2].address", "sites[1].host", "sites[0].queue"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("error: inventory.toml: {key}: "))),
            "{key} missing from:\n{err}"
        );
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn check_reports_unreadable_secrets_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace(
        "name = \"b\"\naddress = \"10.0.0.12\"",
        "name = \"b\"\naddress = \"10.0.0.12\"\nkey = \"missing_key\"",
    );
    std::fs::write(dir.path().join("inventory.toml"), &text).unwrap();
    // The cookie path exists but is a folder: unreadable.
    std::fs::create_dir(dir.path().join("cookie")).unwrap();
    let out = warren(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("inventory.toml: cluster.cookie: cannot read"),
        "{err}"
    );
    assert!(
        err.contains(
            "inventory.toml: hosts[1].password: environment variable WARREN_TEST_PW is not set"
        ),
        "{err}"
    );
}

/// A key is needed to connect, not to validate: `check` passes and warns, naming the
/// host that will need it (issue 10: `warren check` of the shipped inventory on a
/// fresh machine).
#[test]
fn a_missing_ssh_key_is_a_warning_for_check() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE.replace(
        "name = \"b\"\naddress = \"10.0.0.12\"",
        "name = \"b\"\naddress = \"10.0.0.12\"\nkey = \"missing_key\"",
    );
    std::fs::write(dir.path().join("inventory.toml"), &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("check")
        .current_dir(dir.path())
        .env("WARREN_TEST_PW", "pw")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: inventory.toml: hosts[2].key: cannot read the SSH key")
            && err.contains("to log in to b"),
        "{err}"
    );
}

/// The shipped inventory checks on a machine with no SSH key at all, given the
/// variables its README names.
#[test]
fn the_shipped_inventory_checks_without_an_ssh_key() {
    let home = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args([
            "-i",
            &repo.join("inventory.toml").to_string_lossy(),
            "check",
        ])
        .env("HOME", home.path())
        .env("WARREN_BACKEND_PASSWORD", "b")
        .env("WARREN_ADMIN_PASSWORD", "a")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("cannot read the SSH key").count(), 5, "{err}");
}

#[test]
fn check_passes_and_does_not_create_the_cookie() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.toml"), BASE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("check")
        .current_dir(dir.path())
        .env("WARREN_TEST_PW", "pw")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok: cluster \"t\", 3 hosts (2 sites)"),
        "{stdout}"
    );
    assert!(!dir.path().join("cookie").exists());
}

#[test]
fn a_bad_cookie_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.toml"), BASE).unwrap();
    std::fs::write(dir.path().join("cookie"), "has spaces in it\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("check")
        .current_dir(dir.path())
        .env("WARREN_TEST_PW", "pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster.cookie: the cookie in file"), "{err}");
    assert!(!err.contains("has spaces"), "the cookie leaked: {err}");
}

/// A secret's value written in the inventory is refused with the fix, for the cookie
/// and for a user's password alike.
#[test]
fn a_secret_written_inline_is_refused_with_the_fix() {
    for (from, to) in [
        (
            r#"cookie = { file = "cookie" }"#,
            r#"cookie = "NOTACOOKIE""#,
        ),
        (
            r#"password = { env = "WARREN_TEST_PW" }"#,
            r#"password = "hunter2hunter2""#,
        ),
    ] {
        assert!(BASE.contains(from), "{from}");
        let found = problems(&BASE.replace(from, to));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("a secret's value is never written in the inventory")
                && found[0].contains(r#"write { file = "PATH" } or { env = "VARIABLE" } instead"#),
            "{}",
            found[0]
        );
    }
}

/// `plan --backup FILE` refuses a file it cannot compare before contacting any host,
/// naming the file and what to give instead.
#[test]
fn a_backup_that_cannot_be_compared_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inventory.toml"), BASE).unwrap();
    std::fs::write(dir.path().join("notes.json"), "{\"name\": \"x\"}").unwrap();
    std::fs::write(dir.path().join("cut.json"), "{\"queues\": [").unwrap();
    for (file, words) in [
        ("gone.json", "--backup gone.json: cannot read it ("),
        (
            "notes.json",
            "--backup notes.json: not RabbitMQ definitions (it has none of the lists users, vhosts, queues, exchanges)",
        ),
        ("cut.json", "--backup cut.json: not JSON ("),
    ] {
        let out = warren(dir.path(), &["plan", "--backup", file]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: {words}"))
                && err.trim_end().ends_with("; name a file `warren backup` wrote"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}
