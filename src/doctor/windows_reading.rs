//! The doctor on a Windows host, where nothing runs here: the scripts as sent are
//! pinned (a golden snapshot, parsed by a real PowerShell parser, each on one command
//! line, so reading writes nothing there), and what the checks make of the answers a
//! real server gives. The fixtures are what that script prints on Windows Server 2019, each value
//! from its source:
//!
//! - `@@powershell 5.1.17763.…`: Windows PowerShell 5.1 is the one Server 2019 ships
//!   (its build number is the OS build, 17763);
//! - `@@erlang_home machine C:\Program Files\Erlang OTP`: the OTP installer's default
//!   folder (`InstallDir "$PROGRAMFILES64\Erlang OTP"` in erlang/otp's
//!   `erts/etc/win32/nsis/erlang20.nsi`); ERLANG_HOME itself is written by RabbitMQ's
//!   installer (`findErlang` in rabbitmq-server's `rabbitmq_nsi.in`), so a session of
//!   an sshd started before it has none (Win32-OpenSSH #1329);
//! - `@@service Running Auto LocalSystem`: `Win32_Service`'s State, StartMode and
//!   StartName as Microsoft documents them, for the service `rabbitmq-service.bat
//!   install` creates;
//! - `@@erlsrv ...`: erlsrv's registry values `WorkDir`, `Env` and `SName`
//!   (`erts/etc/win32/erlsrv/erlsrv_registry.c`), as `rabbitmq-service.bat` sets them
//!   (`-workdir "!RABBITMQ_BASE!"`, `-env RABBITMQ_BASE=...`, `-sname` the node
//!   name); run by RabbitMQ's installer with no RABBITMQ_BASE, the base is the
//!   installing user's `%APPDATA%\RabbitMQ` and the node `rabbit@` the upper-case
//!   COMPUTERNAME;
//! - `@@folder ...`: a folder made under `C:\ProgramData` by hand inherits its ACL,
//!   whose `BUILTIN\Users:(CI)(WD,AD,WEA,WA)` lets every user create files in it
//!   (as `icacls C:\ProgramData` prints on a default install); Windows' own
//!   `drivers\etc` belongs to `NT SERVICE\TrustedInstaller`.

use super::host::{self, Reading};
use super::{Lines, Status};
use crate::inventory::{self, Inventory};
use crate::platform::{self, windows};

fn inventory(dir: &std::path::Path) -> Inventory {
    std::fs::write(dir.join("cookie"), "DOCTORCOOKIEDOCTORCOOKIE").unwrap();
    std::fs::write(
        dir.join("inventory.toml"),
        "[cluster]\nname = \"plant\"\ncookie = { file = \"cookie\" }\nhosts_file = true\n\n\
         [[hosts]]\nname = \"mgmt\"\naddress = \"10.0.0.10\"\nos = \"linux\"\nrole = \"central\"\n\n\
         [[hosts]]\nname = \"site1\"\naddress = \"10.0.0.11\"\nos = \"windows\"\ntransport = \"ssh\"\nrole = \"site\"\n\n\
         [[sites]]\nhost = \"site1\"\nexchange = \"site.site1\"\nqueue = \"site.site1.data\"\n",
    )
    .unwrap();
    inventory::load(&dir.join("inventory.toml"), inventory::Needs::Hosts).unwrap()
}

#[test]
fn the_windows_reading_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path());
    let rendered = crate::render::render(&inv, None).unwrap();
    let h = &inv.hosts[1];
    let folders = host::folders(h, &rendered.hosts[1]);
    let refs: Vec<&str> = folders.iter().map(String::as_str).collect();
    let p = platform::for_host(h);
    let mut shown = format!("folders: {folders:?}\n");
    for q in p.doctor_read(&refs) {
        let problems = crate::pscheck::powershell_problems(&windows::wrap(q.script()));
        assert!(problems.is_empty(), "{problems:?}\n{}", q.script());
        // On one command line each: no script file is written to read the host.
        let line = p.command_line(q.script()).expect("one command line");
        assert!(line.len() <= windows::COMMAND_LINE_MAX);
        shown.push_str(&format!(
            "--- one command line of {} characters:\n{}",
            line.len(),
            q.script()
        ));
    }
    insta::assert_snapshot!(shown);
}

/// A Server 2019 whose RabbitMQ and Erlang came from their installers, with
/// C:\ProgramData\RabbitMQ made by hand, seen through OpenSSH 7.7.
const SERVER_2019: &str = "@@admin yes\r\n@@powershell 5.1.17763.1\r\n@@clock 1796000003\r\n@@dnsname site1\r\n@@disk 42949672960\r\n@@memory 8589398016\r\n@@erlang_home session \r\n@@erlang_home machine C:\\Program Files\\Erlang OTP\r\n@@erl yes\r\n@@service Running Auto LocalSystem\r\n@@erlsrv workdir C:\\Users\\Administrator\\AppData\\Roaming\\RabbitMQ\r\n@@erlsrv base C:\\Users\\Administrator\\AppData\\Roaming\\RabbitMQ\r\n@@erlsrv node rabbit@SITE1\r\n@@folder Administrators SYSTEM,Administrators,CREATOR_OWNER,Users C:\\ProgramData\\RabbitMQ\r\n@@folder - - C:\\ProgramData\\warren\\run\r\n@@folder SYSTEM SYSTEM,Administrators C:\\Windows\\System32\\config\\systemprofile\r\n@@folder NT_SERVICE\\TrustedInstaller SYSTEM,Administrators,NT_SERVICE\\TrustedInstaller C:\\Windows\\System32\\drivers\\etc\r\n";

/// The same host once warren has made it its own.
const CONVERGED: &str = "@@admin yes\r\n@@powershell 5.1.17763.1\r\n@@clock 1796000001\r\n@@dnsname site1\r\n@@disk 42949672960\r\n@@memory 8589398016\r\n@@erlang_home session C:\\Program Files\\Erlang OTP\r\n@@erlang_home machine C:\\Program Files\\Erlang OTP\r\n@@erl yes\r\n@@service Running Auto LocalSystem\r\n@@erlsrv workdir C:\\ProgramData\\RabbitMQ\r\n@@erlsrv base C:\\ProgramData\\RabbitMQ\r\n@@erlsrv node rabbit@site1\r\n@@folder Administrators SYSTEM,Administrators C:\\ProgramData\\RabbitMQ\r\n@@folder Administrators SYSTEM,Administrators C:\\ProgramData\\warren\\run\r\n@@folder SYSTEM SYSTEM,Administrators C:\\Windows\\System32\\config\\systemprofile\r\n@@folder NT_SERVICE\\TrustedInstaller SYSTEM,Administrators,NT_SERVICE\\TrustedInstaller C:\\Windows\\System32\\drivers\\etc\r\n";

fn lines(reading: &str) -> Vec<(Status, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path());
    let h = &inv.hosts[1];
    let r = Reading::parse(reading);
    let mut l = Lines::default();
    host::windows_shell(&mut l, h, &r);
    host::service(&mut l, h, &r);
    host::resources(&mut l, h, &r, 1_796_000_000);
    host::folders_checked(&mut l, h, &r);
    l.0.into_iter()
        .map(|x| (x.status, x.check, x.found))
        .collect()
}

fn status_of(lines: &[(Status, String, String)], check: &str) -> Status {
    lines
        .iter()
        .find(|l| l.1 == check)
        .unwrap_or_else(|| panic!("no {check} line"))
        .0
}

#[test]
fn a_server_2019_as_installed_reads_as_the_operator_needs() {
    let got = lines(SERVER_2019);
    // Works, but the session's ERLANG_HOME is stale: warren takes the machine's.
    assert_eq!(status_of(&got, "erlang"), Status::Warn);
    assert_eq!(status_of(&got, "powershell"), Status::Ok);
    assert_eq!(status_of(&got, "service"), Status::Ok);
    // Installed by RabbitMQ's installer for the user's roaming profile: apply reinstalls.
    assert_eq!(status_of(&got, "service install"), Status::Warn);
    // Users may create files in the base, which RabbitMQ runs as SYSTEM.
    let folders = got.iter().find(|l| l.1 == "folders").unwrap();
    assert_eq!(folders.0, Status::Fail, "{folders:?}");
    assert!(
        folders.2.contains(r"C:\ProgramData\RabbitMQ"),
        "{folders:?}"
    );
    assert!(!folders.2.contains("drivers"), "{folders:?}");
    assert_eq!(status_of(&got, "clock"), Status::Ok);
    insta::assert_debug_snapshot!(got);
}

#[test]
fn the_converged_server_passes() {
    let got = lines(CONVERGED);
    assert!(got.iter().all(|l| l.0 == Status::Ok), "{got:#?}");
}

#[test]
fn a_missing_erlang_and_a_service_of_another_account_fail() {
    let broken = SERVER_2019
        .replace("@@erl yes", "@@erl no")
        .replace("Running Auto LocalSystem", "Running Auto .\\rabbit");
    let got = lines(&broken);
    assert_eq!(status_of(&got, "erlang"), Status::Fail);
    assert_eq!(status_of(&got, "service"), Status::Fail);
}
