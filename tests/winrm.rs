//! warren's WinRM client against a WS-Management endpoint of the suite's own
//! (`tests/winrm/endpoint.py`: MS-WSMV's shell operations, NTLM and message sealing
//! from pyspnego as the acceptor, HTTPS with a test CA, commands run with /bin/sh).
//! No Windows machine runs here, so the endpoint is proven first with an independent
//! client, pywinrm (`tests/winrm/test_endpoint_with_pywinrm.py`), and only then
//! trusted to judge warren's client: commands with large output and exit codes, a
//! 5 MB file through stdin with its hash checked, a wrong password, sealing over
//! plain HTTP, certificates over HTTPS, and no shell left open.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use warren::platform::{self, Remote, Transport};
use warren::transport::winrm::{Auth, Endpoint, Trust, WinRm};
use warren::transport::Connection;

const USER: &str = "warren";
const PASSWORD: &str = "Winrm-Test-Pw-7Q";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with the endpoint's packages: the venv `make setup` makes.
fn python() -> PathBuf {
    let venv = repo().join("target/winrm-venv/bin/python3");
    assert!(
        venv.exists(),
        "{} is missing: run `make setup` (scripts/setup.sh installs tests/winrm/requirements.txt there)",
        venv.display()
    );
    venv
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start(dir: &Path, extra: &[&str], path_prefix: Option<&Path>) -> Server {
    let users = dir.join("users");
    std::fs::write(&users, format!("WORKGROUP:{USER}:{PASSWORD}\n")).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("tests/winrm/endpoint.py"))
        .args(["--port", "0", "--user-file"])
        .arg(&users)
        .args(["--max-operation-timeout", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(p) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", p.display()));
    }
    let mut child = cmd.spawn().expect("the venv's python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            panic!("the endpoint did not start ({line:?}); are the packages of tests/winrm/requirements.txt installed (make setup)?")
        });
    Server { child, port }
}

/// The endpoint's own bookkeeping (plain HTTP, no authentication).
fn stats(port: u16) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /stats HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

fn endpoint(port: u16, https: bool, trust: Trust, auth: Auth) -> Endpoint {
    Endpoint {
        host: "win1".into(),
        address: "127.0.0.1".into(),
        port,
        https,
        trust,
        auth,
    }
}

fn ntlm(password: &str) -> Auth {
    Auth::Ntlm {
        user: USER.into(),
        domain: None,
        password: password.into(),
    }
}

/// warren's client over plain HTTP (NTLM, sealed) as `warren` with `password`.
fn connect_http(port: u16, password: &str) -> warren::transport::Result<WinRm> {
    WinRm::connect(&endpoint(
        port,
        false,
        Trust::Verify { ca_file: None },
        ntlm(password),
    ))
}

fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=warren test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&a);
    let mut b = vec!["req"];
    b.extend(ec);
    b.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&b);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "0x1f2e3d4c",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-sha256",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// The endpoint answers pywinrm as Windows would: only then does it judge warren.
#[test]
fn the_endpoint_passes_pywinrm() {
    let out = Command::new(python())
        .arg(repo().join("tests/winrm/test_endpoint_with_pywinrm.py"))
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("all checks passed"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn commands_over_http_are_sealed_and_every_shell_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], None);
    let mut w = connect_http(server.port, PASSWORD).unwrap();
    let t = Duration::from_secs(60);
    let hello = w.exec("echo hello", t).unwrap();
    assert_eq!((hello.status, hello.stdout.as_str()), (0, "hello\n"));
    let failed = w.exec("echo oops >&2; exit 3", t).unwrap();
    assert_eq!((failed.status, failed.stderr.as_str()), (3, "oops\n"));
    // About 1.3 MB, over many Receives.
    let big = w.exec("seq 1 200000", t).unwrap();
    let want: String = (1..=200000).map(|n| format!("{n}\n")).collect();
    assert_eq!(big.status, 0);
    assert!(
        big.stdout == want,
        "large output differs ({} bytes, want {})",
        big.stdout.len(),
        want.len()
    );
    let s = stats(server.port);
    assert_eq!(s["open_shells"], 0, "{s}");
    assert_eq!(s["shells_created"], s["shells_deleted"], "{s}");
    // Every message after NTLM was sealed: the endpoint refused none in clear.
    assert_eq!(s["unencrypted_refused"], 0, "{s}");
    assert!(s["encrypted_requests"].as_u64().unwrap() > 10, "{s}");
}

#[test]
fn a_5_mb_file_travels_through_stdin_with_its_hash_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], None);
    let conn = connect_http(server.port, PASSWORD).unwrap();
    // The endpoint's shell is /bin/sh: the Linux platform's receiving script.
    let inv = warren::inventory::parse(
        "[cluster]\nname = \"t\"\ncookie = { file = \"c\" }\n[[hosts]]\nname = \"h\"\naddress = \"127.0.0.1\"\nos = \"linux\"\nrole = \"central\"\n",
        Path::new("inventory.toml"),
    )
    .unwrap();
    let mut remote = Remote::new(Box::new(conn), platform::for_host(&inv.hosts[0]));
    let bytes: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let target = dir.path().join("received.bin");
    remote
        .upload(target.to_str().unwrap(), &bytes, None, Some(0o640), false)
        .unwrap();
    let got = std::fs::read(&target).unwrap();
    assert_eq!(Sha256::digest(&got), Sha256::digest(&bytes));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(stats(server.port)["open_shells"], 0);
}

#[test]
fn a_wrong_password_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], None);
    let err = connect_http(server.port, "not-the-password")
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.starts_with("win1: login as warren refused: ") && text.contains("password"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(stats(server.port)["auth_failures"].as_u64().unwrap() >= 1);
}

#[test]
fn https_checks_the_listener_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let server = start(
        dir.path(),
        &[
            "--https",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        None,
    );
    let t = Duration::from_secs(60);
    let mut w = WinRm::connect(&endpoint(
        server.port,
        true,
        Trust::Verify {
            ca_file: Some(ca.clone()),
        },
        ntlm(PASSWORD),
    ))
    .unwrap();
    assert_eq!(w.exec("echo tls", t).unwrap().stdout, "tls\n");
    let mut basic = WinRm::connect(&endpoint(
        server.port,
        true,
        Trust::Verify { ca_file: Some(ca) },
        Auth::Basic {
            user: USER.into(),
            password: PASSWORD.into(),
        },
    ))
    .unwrap();
    assert_eq!(basic.exec("exit 7", t).unwrap().status, 7);
    // Without the test CA, the system's roots do not vouch for it.
    let err = WinRm::connect(&endpoint(
        server.port,
        true,
        Trust::Verify { ca_file: None },
        ntlm(PASSWORD),
    ))
    .err()
    .expect("refused");
    assert!(err.to_string().contains("certificate"), "{err}");
    // Only the explicit flag skips the check.
    let mut insecure = WinRm::connect(&endpoint(
        server.port,
        true,
        Trust::Insecure,
        ntlm(PASSWORD),
    ))
    .unwrap();
    assert_eq!(insecure.exec("echo ok", t).unwrap().status, 0);
}

#[test]
fn basic_over_plain_http_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], None);
    let err = WinRm::connect(&endpoint(
        server.port,
        false,
        Trust::Verify { ca_file: None },
        Auth::Basic {
            user: USER.into(),
            password: PASSWORD.into(),
        },
    ))
    .err()
    .expect("refused");
    assert!(err.to_string().contains("in clear"), "{err}");
    let s = stats(server.port);
    assert_eq!(s["auth_failures"], 0, "a request was sent: {s}");
}

/// The exact WinRM requests for one plan step of a Windows host (rabbitmq.conf
/// written: its folder made, the file sent through stdin and checked, moved into
/// place), message and shell ids masked. The endpoint runs commands with /bin/sh,
/// so a stand-in `powershell.exe` on its PATH (reads its stdin, exits 0) lets the
/// step run to its end; what is pinned is what warren sends.
#[test]
fn golden_winrm_requests_for_writing_a_file_on_windows() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let stand_in = bin.join("powershell.exe");
    std::fs::write(&stand_in, "#!/bin/sh\ncat > /dev/null\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A long poll, so the stand-in is always done by the first Receive.
    let server = start(dir.path(), &["--max-operation-timeout", "10"], Some(&bin));
    let mut conn = connect_http(server.port, PASSWORD).unwrap();
    conn.record();
    let inv = warren::inventory::parse(
        "[cluster]\nname = \"t\"\ncookie = { file = \"c\" }\n[[hosts]]\nname = \"c\"\naddress = \"10.0.0.10\"\nos = \"linux\"\nrole = \"central\"\n[[hosts]]\nname = \"win1\"\naddress = \"127.0.0.1\"\nos = \"windows\"\nrole = \"site\"\npassword = { env = \"X\" }\n",
        Path::new("inventory.toml"),
    )
    .unwrap();
    let rendered = b"cluster_name = t\r\n";
    let mut shared = SharedConn(std::sync::Arc::new(std::sync::Mutex::new(conn)));
    let mut remote = Remote::new(Box::new(shared.clone()), platform::for_host(&inv.hosts[1]));
    remote
        .upload(
            r"C:\ProgramData\RabbitMQ\rabbitmq.conf",
            rendered,
            None,
            None,
            false,
        )
        .unwrap();
    // warren's requests; the endpoint's answers are not Windows' and not pinned.
    let trace: Vec<String> = shared
        .0
        .lock()
        .unwrap()
        .take_trace()
        .into_iter()
        .filter(|m| m.starts_with("POST "))
        .collect();
    let mut text = trace.join("\n---\n");
    text = mask(&text, "uuid:", 36);
    text = text.replace(&format!("127.0.0.1:{}", server.port), "127.0.0.1:PORT");
    for tag in [
        "ShellId\">",
        "<rsp:ShellId>",
        "<rsp:CommandId>",
        "CommandId=\"",
    ] {
        text = mask(&text, tag, 36);
    }
    assert!(!text.contains(PASSWORD));
    assert_eq!(stats(server.port)["open_shells"], 0);
    let _ = &mut shared;
    insta::assert_snapshot!("winrm_write_file_on_windows", text);
}

/// Replaces the `n` characters after each `tag` with `X`s.
fn mask(text: &str, tag: &str, n: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(tag) {
        let end = (i + tag.len() + n).min(rest.len());
        out.push_str(&rest[..i + tag.len()]);
        out.push_str(&"X".repeat(end - i - tag.len()));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// One WinRM connection shared by the Remote and the test (to read its trace).
#[derive(Clone)]
struct SharedConn(std::sync::Arc<std::sync::Mutex<WinRm>>);

impl Connection for SharedConn {
    fn host(&self) -> &str {
        "win1"
    }
    fn exec(
        &mut self,
        line: &str,
        t: Duration,
    ) -> warren::transport::Result<warren::transport::Exec> {
        self.0.lock().unwrap().exec(line, t)
    }
    fn exec_input(
        &mut self,
        line: &str,
        input: &[u8],
        t: Duration,
    ) -> warren::transport::Result<warren::transport::Exec> {
        self.0.lock().unwrap().exec_input(line, input, t)
    }
    fn can_put(&self) -> bool {
        false
    }
    fn can_tunnel(&self) -> bool {
        false
    }
    fn put(&mut self, path: &str, bytes: &[u8]) -> warren::transport::Result<()> {
        self.0.lock().unwrap().put(path, bytes)
    }
    fn http(
        &mut self,
        port: u16,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<&str>,
    ) -> warren::transport::Result<warren::transport::HttpResponse> {
        self.0.lock().unwrap().http(port, method, path, auth, body)
    }
}
