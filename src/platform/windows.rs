//! Windows Server 2019+: every script is PowerShell, sent as
//! `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand`
//! (UTF-16LE, base64), so no cmd.exe quoting layer (OpenSSH's default shell) can break
//! it; a script whose command line would pass cmd.exe's 8191 characters goes over
//! SFTP as a file under `C:\ProgramData\warren\run` and runs with `-File`, deleting
//! itself first. Every script starts with the same prelude: no progress stream (it
//! would arrive on stderr as CLIXML), errors stop the script and leave as one plain
//! line on stderr with exit code 1, output in UTF-8, and the exit code of the last
//! native command carried out.
//!
//! RabbitMQ runs as the `RabbitMQ` service (LocalSystem). Its CLI tools are the
//! `.bat` files in `paths.sbin`, or, when the inventory gives none, in the installed
//! version's folder that the RabbitMQ entry under the registry's Uninstall keys names
//! (RabbitMQ's own Chocolatey package finds it so).

use super::windows_scripts::*;
use super::{Platform, Query, ScriptFile, Setting, Tool};
use crate::inventory::{Host, Os, Paths, ServiceManager};
use base64::Engine;

/// cmd.exe's command-line limit (KB 830473): OpenSSH for Windows runs every command
/// through the default shell, cmd.exe unless changed.
pub const COMMAND_LINE_LIMIT: usize = 8191;

/// The longest command line warren sends: below `COMMAND_LINE_LIMIT` by a margin for
/// what goes around it on its way, `cmd.exe /c ` and the quoting sshd adds, or a
/// DefaultShell's own wrapper, which the limit counts too.
pub const COMMAND_LINE_MAX: usize = 8000;

/// The start of every command line; the encoded script follows.
pub const POWERSHELL: &str = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass";

/// Where scripts too long for a command line are put (machine-wide, Administrators).
pub const RUN_FOLDER: &str = r"C:\ProgramData\warren\run";

const SERVICE: &str = "RabbitMQ";

/// The lock of a run in progress (machine-wide, beside the run folder).
pub const LOCK_FILE: &str = r"C:\ProgramData\warren\warren.lock";

/// warren's own folder on a host: the run folder and the lock are in it.
pub const WARREN_FOLDER: &str = r"C:\ProgramData\warren";

pub struct Windows {
    base: String,
    /// `None`: found on the host (see `FIND_SBIN`).
    sbin: Option<String>,
    node: String,
    pid_file: String,
    user_profile: String,
}

impl Windows {
    pub fn new(h: &Host) -> Windows {
        let (base, sbin, user_profile) = match &h.paths {
            Paths::Windows {
                base,
                sbin,
                user_profile,
                ..
            } => (base.clone(), sbin.clone(), user_profile.clone()),
            Paths::Linux { .. } => (
                r"C:\ProgramData\RabbitMQ".into(),
                None,
                format!(r"C:\Users\{}", h.user),
            ),
        };
        Windows {
            pid_file: format!(r"{base}\db\{}.pid", h.node_name()),
            base,
            sbin,
            node: h.node_name(),
            user_profile,
        }
    }

    /// Sets `$Sbin`, ERLANG_HOME from the machine's environment (see `ERLANG_ENV`) and
    /// RABBITMQ_BASE for this process (so the CLI reads the node's
    /// rabbitmq-env-conf.bat) before a CLI or service call.
    fn cli_prelude(&self) -> String {
        self.cli_prelude_with(ERLANG_FATAL)
    }

    /// The same, throwing (for a `catch`) where Erlang is missing.
    fn cli_prelude_no_exit(&self) -> String {
        self.cli_prelude_with("    throw $Why\n")
    }

    fn cli_prelude_with(&self, fail: &str) -> String {
        let sbin = match &self.sbin {
            Some(s) => ps_quote(s),
            None => "(Find-Sbin)".into(),
        };
        let find = if self.sbin.is_none() { FIND_SBIN } else { "" };
        format!(
            "{find}$Sbin = {sbin}\n{}$env:RABBITMQ_BASE = {}\n",
            ERLANG_ENV.replace("{FAIL}", fail),
            ps_quote(&self.base)
        )
    }

    /// The folder made with `PROTECT_FOLDER` before `folder`: RABBITMQ_BASE for itself
    /// and what is under it, warren's own folder for the run folder and the lock.
    fn protected_root(&self, folder: &str) -> Option<&str> {
        let under = |root: &str| {
            let f = folder.to_ascii_lowercase();
            let r = root.to_ascii_lowercase();
            f == r || f.starts_with(&format!("{r}\\"))
        };
        if under(&self.base) {
            Some(&self.base)
        } else if under(WARREN_FOLDER) {
            Some(WARREN_FOLDER)
        } else {
            None
        }
    }

    fn cli_call(&self, tool: Tool, args: &[&str]) -> String {
        let mut line = format!(
            "Invoke-Native (Join-Path $Sbin '{}.bat') @({}, {}, '-q'",
            tool.name(),
            ps_quote("-n"),
            ps_quote(&self.node)
        );
        for a in args {
            line.push_str(", ");
            line.push_str(&ps_quote(a));
        }
        line.push_str(")\n");
        line
    }

    fn cli_script(&self, tool: Tool, args: &[&str]) -> String {
        format!("{}{}", self.cli_prelude(), self.cli_call(tool, args))
    }
}

pub use super::windows_scripts::ps_quote;

/// The whole script as sent: the prelude, then `body`.
pub fn wrap(body: &str) -> String {
    format!("{PRELUDE}try {{\n{body}}} catch {{\n    [Console]::Error.WriteLine($_.Exception.Message)\n    exit 1\n}}\nexit $LASTEXITCODE\n")
}

/// The command line that runs `script`: `-EncodedCommand` with UTF-16LE in base64.
pub fn encode(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    format!(
        "{POWERSHELL} -EncodedCommand {}",
        base64::engine::general_purpose::STANDARD.encode(utf16)
    )
}

/// The script inside an `-EncodedCommand` command line (for transcripts and tests).
pub fn decode(command_line: &str) -> Option<String> {
    let b64 = command_line.strip_prefix(&format!("{POWERSHELL} -EncodedCommand "))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    String::from_utf16(&units).ok()
}

/// Every script's start. `Invoke-Native` runs a CLI tool with its stderr passed
/// through as plain text (Windows PowerShell would otherwise turn each line into an
/// error record, which `Stop` makes fatal) and leaves its exit code in $LASTEXITCODE.
/// Setting `[Console]::OutputEncoding` throws "The handle is invalid" where the process
/// has no console (a WinRM shell, some remote sessions: posh-git #708, PSWinVitals #5),
/// so it is tried, never fatal; output then keeps the session's code page (WinRM's
/// shell is opened with 65001 already).
pub const PRELUDE: &str = r#"$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
try { [Console]::OutputEncoding = [System.Text.Encoding]::UTF8 } catch { }
$global:LASTEXITCODE = 0
function Invoke-Native([string]$Exe, [string[]]$Arguments) {
    $ErrorActionPreference = 'Continue'
    & $Exe @Arguments 2>&1 | ForEach-Object {
        if ($_ -is [System.Management.Automation.ErrorRecord]) {
            [Console]::Error.WriteLine($_.ToString())
        } else {
            $_
        }
    }
}
"#;

/// The SIDs of the well-known accounts, so localized Windows names do not matter.
fn account(name: &str) -> String {
    match name {
        "SYSTEM" => "New-Object System.Security.Principal.SecurityIdentifier('S-1-5-18')".into(),
        "Administrators" => {
            "New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')".into()
        }
        other => format!(
            "New-Object System.Security.Principal.NTAccount({})",
            ps_quote(other)
        ),
    }
}

impl Platform for Windows {
    fn os(&self) -> Os {
        Os::Windows
    }

    fn node_log(&self, lines: usize) -> Query {
        // RabbitMQ's default RABBITMQ_LOG_BASE is RABBITMQ_BASE\log, which warren's
        // environment file leaves as it is.
        Query::new(format!(
            "$Log = Join-Path {} 'log\\{}.log'\nif (Test-Path -LiteralPath $Log) {{\n    '@@log ' + $Log\n    Get-Content -LiteralPath $Log -Tail {lines}\n}}\n",
            ps_quote(&self.base),
            self.node
        ))
    }

    fn doctor_read(&self, folders: &[&str]) -> Vec<Query> {
        super::doctor::windows(&self.base, folders)
            .into_iter()
            .map(Query::new)
            .collect()
    }

    fn command_line(&self, script: &str) -> Option<String> {
        let line = encode(&wrap(script));
        (line.len() <= COMMAND_LINE_MAX).then_some(line)
    }

    fn script_file(&self, script: &str, name: &str) -> ScriptFile {
        let path = format!(r"{RUN_FOLDER}\warren-{name}.ps1");
        // The file removes itself first: PowerShell has read the whole script by then.
        let content = wrap(&format!(
            "Remove-Item -LiteralPath $PSCommandPath -Force -ErrorAction SilentlyContinue\n{script}"
        ));
        ScriptFile {
            folder: RUN_FOLDER.into(),
            path: path.clone(),
            // A UTF-8 byte order mark: Windows PowerShell reads a file without one in
            // the system's ANSI code page.
            content: format!("\u{feff}{content}"),
            command_line: format!("{POWERSHELL} -File \"{path}\""),
        }
    }

    fn make_folder(&self, folder: &str) -> String {
        let make = format!(
            "New-Item -ItemType Directory -Force -Path {} | Out-Null\n",
            ps_quote(folder)
        );
        match self.protected_root(folder) {
            Some(root) => format!("{PROTECT_FOLDER}Protect-Folder {}\n{make}", ps_quote(root)),
            None => make,
        }
    }

    fn parent<'a>(&self, path: &'a str) -> &'a str {
        path.rsplit_once('\\').map(|(d, _)| d).unwrap_or(path)
    }

    fn receive_file(&self, path: &str, sha256: &str) -> String {
        // Base64 lines on stdin, as Ansible's WinRM put_file sends them; the hash
        // is checked before anyone uses the file.
        RECEIVE_FILE
            .replace("{PATH}", &ps_quote(path))
            .replace("{SHA256}", sha256)
    }

    fn local_http(&self, port: u16) -> Option<String> {
        Some(LOCAL_HTTP.replace("{PORT}", &port.to_string()))
    }

    fn place_file(
        &self,
        tmp: &str,
        path: &str,
        owner: Option<&str>,
        _mode: Option<u32>,
        in_place: bool,
    ) -> String {
        let mut s = format!(
            "$Tmp = {}\n$Path = {}\ntry {{\n",
            ps_quote(tmp),
            ps_quote(path)
        );
        if in_place {
            s.push_str(
                "    [System.IO.File]::WriteAllBytes($Path, [System.IO.File]::ReadAllBytes($Tmp))\n    Remove-Item -LiteralPath $Tmp -Force\n",
            );
        } else {
            // ReplaceFile swaps the content in one step and keeps the target's ACL;
            // a new file takes its folder's, which for the profiles is private.
            s.push_str(
                "    if (Test-Path -LiteralPath $Path) {\n        [System.IO.File]::Replace($Tmp, $Path, [NullString]::Value)\n    } else {\n        [System.IO.File]::Move($Tmp, $Path)\n    }\n",
            );
        }
        if let Some(accounts) = owner {
            // Only these accounts, nothing inherited.
            s.push_str(
                "    $Acl = New-Object System.Security.AccessControl.FileSecurity\n    $Acl.SetAccessRuleProtection($true, $false)\n",
            );
            for a in accounts.split(',') {
                s.push_str(&format!(
                    "    $Acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule(({}), 'FullControl', 'Allow')))\n",
                    account(a)
                ));
            }
            s.push_str("    Set-Acl -LiteralPath $Path -AclObject $Acl\n");
        }
        s.push_str(
            "} catch {\n    Remove-Item -LiteralPath $Tmp -Force -ErrorAction SilentlyContinue\n    throw\n}\n",
        );
        s
    }

    fn read_host(&self, files: &[(&str, bool)], settings: &[Setting]) -> Query {
        let mut s = String::from(READ_FUNCTIONS);
        if self.sbin.is_none() {
            s.push_str(FIND_SBIN);
        }
        s.push_str(ASSERT_OWNER);
        for (path, secret) in files {
            if self.protected_root(self.parent(path)) == Some(&self.base) {
                s.push_str(&format!("Assert-Owner {}\n", ps_quote(path)));
            }
            let f = if *secret { "Read-Hash" } else { "Read-Text" };
            s.push_str(&format!("{f} {}\n", ps_quote(path)));
        }
        // The DNS host name, not COMPUTERNAME: that is the NetBIOS name, cut to 15
        // characters (learn.microsoft.com/troubleshoot/windows-server/identity/naming-conventions-for-computer-domain-site-ou).
        s.push_str("'@@hostname ' + [System.Net.Dns]::GetHostName()\n'@@manager windows'\n");
        for set in settings {
            if let Some(name) = set.key.strip_prefix("env:") {
                s.push_str(&format!(
                    "$Value = [Environment]::GetEnvironmentVariable({}, 'Machine')\nif ($Value) {{ '@@setting {} ' + $Value }}\n",
                    ps_quote(name),
                    set.key
                ));
            }
        }
        if settings.iter().any(|x| x.key.starts_with("firewall:")) {
            s.push_str(
                "foreach ($Rule in @(Get-NetFirewallRule -Name 'warren-*' -ErrorAction SilentlyContinue)) {\n    $Filter = $Rule | Get-NetFirewallPortFilter\n    '@@setting firewall:' + $Rule.Name + ' ' + $Filter.Protocol + ' ' + ($Filter.LocalPort -join ',') + ' ' + $Rule.Direction + ' ' + $Rule.Action + ' ' + $Rule.Enabled\n}\n",
            );
        }
        // The node's pid: its pid file, else the erl.exe that erlsrv started. The
        // service's own ProcessId is erlsrv's, which outlives the node it supervises
        // (erlsrv runs the emulator as its child: `Machine` in erlsrv's reference).
        s.push_str(&format!(
            "$Stamp = Join-Path {} 'warren-service.sha256'\n\
             $Service = Get-Service -Name '{SERVICE}' -ErrorAction SilentlyContinue\n\
             if ($Service -and (Test-Path -LiteralPath $Stamp)) {{ '@@stamp ' + (Get-Content -LiteralPath $Stamp -Raw).Trim() }} else {{ '@@stamp none' }}\n\
             $NodePid = $null\n\
             $PidFile = {}\n\
             if (Test-Path -LiteralPath $PidFile) {{\n    $Id = (Get-Content -LiteralPath $PidFile -Raw).Trim()\n    $Process = Get-Process -Id $Id -ErrorAction SilentlyContinue\n    if ($Process -and $Process.ProcessName -eq 'erl') {{ $NodePid = $Id }}\n}}\n\
             if (-not $NodePid -and $Service -and $Service.Status -eq 'Running') {{\n    $Erlsrv = (Get-CimInstance -ClassName Win32_Service -Filter \"Name='{SERVICE}'\").ProcessId\n    $Erl = @(Get-CimInstance -ClassName Win32_Process -Filter \"ParentProcessId=$Erlsrv\" | Where-Object {{ $_.Name -eq 'erl.exe' }})\n    if ($Erl.Count -gt 0) {{ $NodePid = $Erl[0].ProcessId }}\n}}\n\
             if ($NodePid) {{ '@@pid ' + $NodePid }} else {{ '@@pid none' }}\n",
            ps_quote(&self.base),
            ps_quote(&self.pid_file),
        ));
        match &self.sbin {
            Some(sbin) => s.push_str(&format!(
                "if (Test-Path -LiteralPath (Join-Path {q} 'rabbitmqctl.bat')) {{ '@@sbin ' + {q} }} else {{ '@@sbin none' }}\n",
                q = ps_quote(sbin)
            )),
            None => s.push_str("try { '@@sbin ' + (Find-Sbin) } catch { '@@sbin none' }\n"),
        }
        s.push_str(READ_VERSIONS);
        s.push_str(
            "$Shell = (Get-ItemProperty -LiteralPath 'HKLM:\\SOFTWARE\\OpenSSH' -ErrorAction SilentlyContinue).DefaultShell\nif ($Shell) { '@@shell ' + $Shell } else { '@@shell none' }\n",
        );
        Query::new(s)
    }

    fn resolve(&self, name: &str) -> Query {
        Query::new(format!(
            "try {{\n    [System.Net.Dns]::GetHostAddresses({}) | Where-Object {{ $_.AddressFamily -eq 'InterNetwork' }} | ForEach-Object {{ $_.IPAddressToString }} | Select-Object -Unique\n}} catch {{\n}}\n",
            ps_quote(name)
        ))
    }

    fn probe_ports(&self, targets: &[(String, u16)]) -> Query {
        // Every connection at once, then 5 s for all of them.
        // A list, not an array literal: PowerShell flattens @(@(a, b)) into one.
        let mut s = String::from("$Targets = New-Object System.Collections.ArrayList\n");
        for (addr, port) in targets {
            s.push_str(&format!(
                "[void]$Targets.Add(@({}, {port}))\n",
                ps_quote(addr)
            ));
        }
        s.push_str(
            "$Probes = foreach ($Target in $Targets) {\n    $Client = New-Object System.Net.Sockets.TcpClient\n    @{ Client = $Client; Task = $Client.ConnectAsync($Target[0], [int]$Target[1]) }\n}\n\
             $Deadline = (Get-Date).AddSeconds(5)\n\
             for ($K = 0; $K -lt @($Probes).Count; $K++) {\n    $Left = [int][Math]::Max(0, ($Deadline - (Get-Date)).TotalMilliseconds)\n    try {\n        if (@($Probes)[$K].Task.Wait($Left)) { 'open ' + $K }\n    } catch {\n    }\n    @($Probes)[$K].Client.Dispose()\n}\n",
        );
        Query::new(s)
    }

    fn probe_tls(&self, targets: &[super::TlsTarget], _client: Option<(&str, &str)>) -> Query {
        // .NET's SslStream, accepting any certificate: the point is to read the one
        // presented, which warren compares with the inventory's. (Windows' client
        // certificates live in its certificate store, not in PEM files: a listener
        // that requires one, TLS distribution, is probed without.)
        // A list, not an array literal: PowerShell flattens @(@(a, b, c)) into one.
        let mut s = format!("{TLS_PROTOCOLS}$Targets = New-Object System.Collections.ArrayList\n");
        for (addr, port, name) in targets {
            s.push_str(&format!(
                "[void]$Targets.Add(@({}, {port}, {}))\n",
                ps_quote(addr),
                ps_quote(name)
            ));
        }
        s.push_str(
            "for ($K = 0; $K -lt $Targets.Count; $K++) {\n    $T = $Targets[$K]\n    $Client = New-Object System.Net.Sockets.TcpClient\n    try {\n        if (-not $Client.ConnectAsync($T[0], [int]$T[1]).Wait(5000)) { continue }\n        $Ssl = New-Object System.Net.Security.SslStream($Client.GetStream(), $false, { $true })\n        $Ssl.ReadTimeout = 10000\n        try { $Ssl.AuthenticateAsClient($T[2], $null, $Protocols, $false) } catch { }\n        if ($Ssl.RemoteCertificate) {\n            $Cert = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2($Ssl.RemoteCertificate)\n            $Hash = -join ([System.Security.Cryptography.SHA256]::Create().ComputeHash($Cert.RawData) | ForEach-Object { $_.ToString('x2') })\n            $End = ([DateTimeOffset]$Cert.NotAfter.ToUniversalTime()).ToUnixTimeSeconds()\n            'tls ' + $K + ' ' + $Hash + ' ' + $End\n        }\n    } catch {\n    } finally {\n        $Client.Dispose()\n    }\n}\n",
        );
        Query::new(s)
    }

    fn stop(&self, _m: ServiceManager) -> String {
        // erlsrv gives the emulator 30 s to stop, then reports the service still
        // running (erlsrv's StopAction in the ERTS reference manual), and Stop-Service
        // fails while a node with many queues is still stopping. So the rabbit app
        // is stopped first through the CLI (its own wait, not erlsrv's), which leaves
        // only the VM for the service stop; a failed stop_app (node not running, CLI
        // unable to run) or Stop-Service is not the end: the node's pid file then
        // says when its erl.exe has gone.
        format!(
            "$Service = Get-Service -Name '{SERVICE}' -ErrorAction SilentlyContinue\n\
             if ($Service -and $Service.Status -ne 'Stopped') {{\n    try {{\n{prelude}        {stop_app}        if ($LASTEXITCODE -ne 0) {{ [Console]::Error.WriteLine(\"rabbitmqctl stop_app exited with code $LASTEXITCODE; stopping the service\") }}\n    }} catch {{\n        [Console]::Error.WriteLine('rabbitmqctl stop_app: ' + $_.Exception.Message)\n    }}\n    $global:LASTEXITCODE = 0\n    try {{\n        Stop-Service -Name '{SERVICE}' -Force\n        $Service.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(120))\n    }} catch {{\n        [Console]::Error.WriteLine('Stop-Service: ' + $_.Exception.Message + '; waiting for the node''s process')\n    }}\n}}\n\
             $PidFile = {}\n\
             if (Test-Path -LiteralPath $PidFile) {{\n    $Id = (Get-Content -LiteralPath $PidFile -Raw).Trim()\n    $Process = Get-Process -Id $Id -ErrorAction SilentlyContinue\n    if ($Process -and $Process.ProcessName -eq 'erl' -and -not $Process.WaitForExit(120000)) {{\n        throw \"RabbitMQ (erl.exe, pid $Id) did not stop within 120 s\"\n    }}\n}}\n\
             if ($Service) {{\n    $Service.Refresh()\n    if ($Service.Status -ne 'Stopped') {{ $Service.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(60)) }}\n}}\n",
            ps_quote(&self.pid_file),
            prelude = indent(&self.cli_prelude_no_exit(), "        "),
            stop_app = self.cli_call(Tool::Ctl, &["stop_app"]),
        )
    }

    fn empty_database(&self) -> String {
        // RabbitMQ's own defaults under RABBITMQ_BASE, which warren's environment
        // file leaves as they are: db\NODE-mnesia and db\NODE-feature_flags
        // (rabbit_env; its Windows defaults in rabbitmq-server's rabbit_env_SUITE).
        format!(
            "$Service = Get-Service -Name '{SERVICE}' -ErrorAction SilentlyContinue\n\
             if ($Service -and $Service.Status -ne 'Stopped') {{ throw 'RabbitMQ still runs: its database was not deleted' }}\n\
             foreach ($Name in @('{node}-mnesia', '{node}-feature_flags')) {{\n    $Path = Join-Path {base} ('db\\' + $Name)\n    if (Test-Path -LiteralPath $Path) {{ Remove-Item -LiteralPath $Path -Recurse -Force }}\n}}\n",
            node = self.node,
            base = ps_quote(&self.base),
        )
    }

    fn start(&self, _m: ServiceManager, _daemon_reload: bool) -> String {
        format!("Start-Service -Name '{SERVICE}'\n")
    }

    fn reinstall(&self) -> Option<String> {
        // rabbitmq-service.bat reads rabbitmq-env-conf.bat (under RABBITMQ_BASE) at
        // install only; the stamp records which one, so an interrupted reinstall is
        // seen and finished by the next run.
        Some(format!(
            "{prelude}$Base = {base}\n\
             $Bat = Join-Path $Sbin 'rabbitmq-service.bat'\n\
             if (Get-Service -Name '{SERVICE}' -ErrorAction SilentlyContinue) {{\n    Invoke-Native $Bat @('stop') | Out-Null\n    Invoke-Native $Bat @('remove')\n    if ($LASTEXITCODE -ne 0) {{ throw \"rabbitmq-service.bat remove failed (exit code $LASTEXITCODE)\" }}\n}}\n\
             Invoke-Native $Bat @('install')\n\
             if ($LASTEXITCODE -ne 0) {{ throw \"rabbitmq-service.bat install failed (exit code $LASTEXITCODE)\" }}\n\
             $Hash = (Get-FileHash -LiteralPath (Join-Path $Base 'rabbitmq-env-conf.bat') -Algorithm SHA256).Hash.ToLowerInvariant()\n\
             Set-Content -LiteralPath (Join-Path $Base 'warren-service.sha256') -Value $Hash -NoNewline\n\
             Invoke-Native $Bat @('start')\n\
             if ($LASTEXITCODE -ne 0) {{ throw \"rabbitmq-service.bat start failed (exit code $LASTEXITCODE)\" }}\n",
            prelude = self.cli_prelude(),
            base = ps_quote(&self.base),
        ))
    }

    fn cli(&self, tool: Tool, args: &[&str]) -> String {
        self.cli_script(tool, args)
    }

    fn install(&self, what: &super::Install) -> String {
        // Erlang first: the new RabbitMQ may need it. Both installers are NSIS
        // installers, silent with /S; a URL is downloaded into the run folder first.
        let mut s = format!(
            "{PROTECT_FOLDER}{}",
            INSTALL_FROM.replace("{BASE}", &ps_quote(&self.base))
        );
        for (name, source) in [("Erlang", &what.erlang), ("RabbitMQ", &what.rabbitmq)] {
            if let Some(src) = source {
                s.push_str(&format!("Install-From {} '{name}'\n", ps_quote(src)));
            }
        }
        s
    }

    fn apply_setting(&self, s: &Setting) -> String {
        if let Some(name) = s.key.strip_prefix("env:") {
            return format!(
                "[Environment]::SetEnvironmentVariable({}, {}, 'Machine')\n",
                ps_quote(name),
                ps_quote(&s.value)
            );
        }
        let Some(rule) = s.key.strip_prefix("firewall:") else {
            return format!(
                "throw {}\n",
                ps_quote(&format!("unknown setting {}", s.key))
            );
        };
        // The value reads "TCP PORTS Inbound Allow True", as the facts report it.
        let ports = s.value.split_whitespace().nth(1).unwrap_or("");
        format!(
            "$Name = {n}\n$Port = {p}\n\
             if (Get-NetFirewallRule -Name $Name -ErrorAction SilentlyContinue) {{\n    Set-NetFirewallRule -Name $Name -Direction Inbound -Protocol TCP -LocalPort $Port -Action Allow -Enabled True\n}} else {{\n    New-NetFirewallRule -Name $Name -DisplayName ('warren: ' + $Name) -Direction Inbound -Protocol TCP -LocalPort $Port -Action Allow | Out-Null\n}}\n",
            n = ps_quote(rule),
            p = ps_quote(ports)
        )
    }

    fn cli_cookie(&self) -> String {
        format!(r"{}\.erlang.cookie", self.user_profile)
    }

    fn remove_file(&self, path: &str) -> String {
        format!(
            "Remove-Item -LiteralPath {} -Force -ErrorAction SilentlyContinue\n",
            ps_quote(path)
        )
    }

    fn lock_path(&self) -> String {
        LOCK_FILE.into()
    }

    fn take_lock(&self, content: &str, replacing: Option<&str>) -> String {
        let f = ps_quote(LOCK_FILE);
        let new = ps_quote(content);
        let write = match replacing {
            // CreateNew: the file is created only if it does not exist.
            None => format!(
                "$Stream = [System.IO.File]::Open($Lock, 'CreateNew', 'Write')\n\
                 $Bytes = [System.Text.Encoding]::UTF8.GetBytes({new} + \"`n\")\n\
                 $Stream.Write($Bytes, 0, $Bytes.Length)\n\
                 $Stream.Close()\n\
                 '@@taken'\n"
            ),
            Some(old) => format!(
                "if ((Test-Path -LiteralPath $Lock) -and ([System.IO.File]::ReadAllText($Lock).TrimEnd() -ne {old})) {{ throw [System.IO.IOException]::new('held') }}\n\
                 [System.IO.File]::WriteAllText($Lock + '.new', {new} + \"`n\")\n\
                 Move-Item -LiteralPath ($Lock + '.new') -Destination $Lock -Force\n\
                 '@@taken'\n",
                old = ps_quote(old)
            ),
        };
        format!(
            "{PROTECT_FOLDER}$Lock = {f}\n\
             Protect-Folder {}\n\
             try {{\n{write}}} catch [System.IO.IOException] {{\n    '@@held'\n    [System.IO.File]::ReadAllText($Lock)\n}}\n",
            ps_quote(WARREN_FOLDER)
        )
    }

    fn release_lock(&self, token: &str) -> String {
        format!(
            "$Lock = {}\n\
             if ((Test-Path -LiteralPath $Lock) -and [System.IO.File]::ReadAllText($Lock).Contains({})) {{ Remove-Item -LiteralPath $Lock -Force }}\n",
            ps_quote(LOCK_FILE),
            ps_quote(token)
        )
    }

    fn read_lock(&self) -> Query {
        Query::new(format!(
            "$Lock = {}\nif (Test-Path -LiteralPath $Lock) {{ [System.IO.File]::ReadAllText($Lock) }}\n",
            ps_quote(LOCK_FILE)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a real server has under `HKLM:\SOFTWARE\Ericsson\Erlang` once the
    /// RabbitMQ service is installed: one per ERTS version the OTP installers put there,
    /// and erlsrv's `ErlSrv`. The fact script's own filter (read out of it, applied
    /// here with the regex crate: PowerShell's `-match` reads this pattern the same
    /// way, though no PowerShell runs here) keeps the versions and drops `ErlSrv`.
    #[test]
    fn the_erlang_version_read_skips_erlsrvs_key() {
        let pattern = READ_VERSIONS
            .split("PSChildName -match '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("the fact script filters the keys by name");
        let re = regex::Regex::new(pattern).unwrap();
        let keys = ["10.7", "13.2.2.5", "14.2.5", "ErlSrv"];
        let kept: Vec<&str> = keys.iter().copied().filter(|k| re.is_match(k)).collect();
        assert_eq!(kept, ["10.7", "13.2.2.5", "14.2.5"]);
        // Both registry views are read.
        assert!(READ_VERSIONS.contains(r"HKLM:\SOFTWARE\WOW6432Node\Ericsson\Erlang"));
        assert!(!READ_VERSIONS.contains("[version]"));
    }

    fn host() -> Windows {
        Windows {
            base: r"C:\ProgramData\RabbitMQ".into(),
            sbin: None,
            node: "rabbit@win1".into(),
            pid_file: r"C:\ProgramData\RabbitMQ\db\rabbit@win1.pid".into(),
            user_profile: r"C:\Users\Administrator".into(),
        }
    }

    /// A failure's log lines come from the node's own file under RABBITMQ_BASE\log
    /// (RabbitMQ's default RABBITMQ_LOG_BASE on Windows), its path first.
    #[test]
    fn the_node_log_is_read_from_rabbitmq_base() {
        let q = host().node_log(48);
        let script = q.script();
        assert!(
            script.contains(r"Join-Path 'C:\ProgramData\RabbitMQ' 'log\rabbit@win1.log'"),
            "{script}"
        );
        assert!(
            script.contains("Get-Content -LiteralPath $Log -Tail 48"),
            "{script}"
        );
        assert!(script.contains("'@@log ' + $Log"), "{script}");
        let problems = crate::pscheck::powershell_problems(&wrap(script));
        assert!(problems.is_empty(), "{problems:?}");
    }

    /// Where there is no console, setting the output encoding throws; it must not end
    /// the script.
    #[test]
    fn the_output_encoding_is_tried_not_required() {
        let line = PRELUDE
            .lines()
            .find(|l| l.contains("[Console]::OutputEncoding"))
            .unwrap();
        assert!(
            line.starts_with("try {") && line.ends_with("} catch { }"),
            "{line}"
        );
    }

    /// Every script that runs a `.bat` tool takes ERLANG_HOME from the machine's
    /// environment and stops at once, exit code 127, without erl.exe; the prelude of
    /// every other script does not pay for it.
    #[test]
    fn cli_scripts_take_erlang_home_from_the_machine() {
        let w = host();
        assert!(!PRELUDE.contains("ERLANG_HOME"));
        for script in [
            w.cli(Tool::Ctl, &["status"]),
            w.reinstall().unwrap(),
            w.read(super::super::Read::AwaitStartup).script,
        ] {
            let at = script
                .find("[Environment]::GetEnvironmentVariable('ERLANG_HOME', 'Machine')")
                .expect("ERLANG_HOME from the machine");
            assert!(script[at..].contains(r"'bin\erl.exe'"));
            assert!(script[at..].contains("exit 127\n"));
            assert_eq!(super::super::NO_CLI_EXIT, 127);
            let bat = script.find("Invoke-Native ").unwrap();
            assert!(at < bat, "the check comes before the first .bat");
        }
    }

    /// The stop: the app through the CLI first, tolerated when it fails, then the
    /// service, tolerated when erlsrv gives up after its 30 s, then the pid file.
    #[test]
    fn the_stop_stops_the_app_first_and_falls_back_to_the_pid_file() {
        let s = host().stop(ServiceManager::Windows);
        let app = s.find("'stop_app'").unwrap();
        let service = s.find("Stop-Service").unwrap();
        let pid = s.find("$PidFile = ").unwrap();
        assert!(app < service && service < pid);
        assert!(s.contains("'-n', 'rabbit@win1'"));
        // Inside the stop, a missing Erlang throws (caught) instead of ending the script.
        assert!(!s.contains("exit 127"));
        assert!(s[..service].contains("throw $Why"));
        assert!(crate::pscheck::powershell_problems(&wrap(&s)).is_empty());
    }

    /// Installers run with the host's RABBITMQ_BASE and the machine's ERLANG_HOME,
    /// and a download asks for TLS 1.2.
    #[test]
    fn installers_get_the_hosts_base_and_tls12() {
        let s = host().install(&super::super::Install {
            erlang: None,
            rabbitmq: Some("https://example.org/rabbitmq-server-3.13.7.exe".into()),
        });
        let env = s
            .find(r"$env:RABBITMQ_BASE = 'C:\ProgramData\RabbitMQ'")
            .unwrap();
        let erl = s
            .find("$env:ERLANG_HOME = [Environment]::GetEnvironmentVariable('ERLANG_HOME', 'Machine')")
            .unwrap();
        let run = s.find("Start-Process").unwrap();
        assert!(env < run && erl < run);
        let tls = s.find("[Net.SecurityProtocolType]::Tls12").unwrap();
        assert!(tls < s.find("Invoke-WebRequest").unwrap());
        assert!(crate::pscheck::powershell_problems(&wrap(&s)).is_empty());
    }

    /// The TLS probe names its protocols (the four-argument AuthenticateAsClient).
    #[test]
    fn the_tls_probe_asks_for_tls12_explicitly() {
        let q = host().probe_tls(&[("10.0.0.1".into(), 5671, "win1".into())], None);
        assert!(q
            .script
            .contains("AuthenticateAsClient($T[2], $null, $Protocols, $false)"));
        assert!(q.script.starts_with(TLS_PROTOCOLS));
        assert!(!q.script.contains("AuthenticateAsClient($T[2])"));
    }

    /// A command line is used up to `COMMAND_LINE_MAX` characters, one more goes as a
    /// file, well before cmd.exe's 8191.
    #[test]
    fn the_command_line_keeps_a_margin_below_cmds_limit() {
        let w = host();
        let len = |n: usize| encode(&wrap(&"#".repeat(n))).len();
        let n = (0..4000)
            .rev()
            .find(|&n| len(n) <= COMMAND_LINE_MAX)
            .unwrap();
        assert!(w.command_line(&"#".repeat(n)).is_some());
        assert!(len(n + 1) > COMMAND_LINE_MAX);
        assert!(w.command_line(&"#".repeat(n + 1)).is_none());
        assert!(len(n + 1) < COMMAND_LINE_LIMIT, "the margin is a margin");
        const { assert!(COMMAND_LINE_LIMIT - COMMAND_LINE_MAX >= 150) };
    }

    /// The node's pid is erl.exe's: the service's ProcessId is erlsrv's.
    #[test]
    fn the_node_pid_is_erlsrvs_child_not_erlsrv() {
        let q = host().read_host(&[], &[]);
        assert!(q.script.contains("ParentProcessId=$Erlsrv"));
        assert!(q.script.contains("$_.Name -eq 'erl.exe'"));
        assert!(!q.script.contains("$NodePid = (Get-CimInstance"));
        assert!(q.script.contains("[System.Net.Dns]::GetHostName()"));
        assert!(!q.script.contains("COMPUTERNAME"));
    }

    /// RABBITMQ_BASE and warren's folder are made with a protected ACL before anything
    /// is made in them; the profiles and other system folders keep theirs.
    #[test]
    fn folders_users_could_write_are_protected() {
        let w = host();
        let protects = |folder: &str| -> Option<String> {
            let s = w.make_folder(folder);
            s.lines()
                .find_map(|l| l.strip_prefix("Protect-Folder "))
                .map(str::to_string)
        };
        let base = r"'C:\ProgramData\RabbitMQ'";
        assert_eq!(protects(r"C:\ProgramData\RabbitMQ").as_deref(), Some(base));
        assert_eq!(
            protects(r"c:\programdata\rabbitmq\tls").as_deref(),
            Some(base)
        );
        let warren = r"'C:\ProgramData\warren'";
        assert_eq!(protects(RUN_FOLDER).as_deref(), Some(warren));
        assert_eq!(protects(r"C:\ProgramData\RabbitMQ2"), None);
        assert_eq!(protects(r"C:\Users\Administrator"), None);
        assert_eq!(protects(r"C:\Windows\System32\config\systemprofile"), None);
        for s in [
            PROTECT_FOLDER,
            &w.take_lock("{}", None),
            &w.install(&super::super::Install {
                erlang: None,
                rabbitmq: Some("https://example.org/r.exe".into()),
            }),
        ] {
            assert!(s.contains("SetAccessRuleProtection($true, $false)"));
            assert!(s.contains("'ContainerInherit,ObjectInherit'"));
        }
        assert!(w
            .take_lock("{}", None)
            .contains(&format!("Protect-Folder {warren}")));
    }

    /// The fact reading refuses a file under RABBITMQ_BASE owned by someone else than
    /// SYSTEM, Administrators or the login user, naming the file and the fix.
    #[test]
    fn files_under_the_base_that_others_own_are_refused() {
        let w = host();
        let conf = r"C:\ProgramData\RabbitMQ\rabbitmq-env-conf.bat";
        let cookie = r"C:\Users\Administrator\.erlang.cookie";
        let q = w.read_host(&[(conf, false), (cookie, true)], &[]);
        let check = q.script.find(&format!("Assert-Owner '{conf}'")).unwrap();
        assert!(check < q.script.find(&format!("Read-Text '{conf}'")).unwrap());
        assert!(!q.script.contains(&format!("Assert-Owner '{cookie}'")));
        for sid in ["'S-1-5-18'", "'S-1-5-32-544'", "GetCurrent().User.Value"] {
            assert!(ASSERT_OWNER.contains(sid));
        }
        assert!(ASSERT_OWNER.contains("takeown /A /F"));
    }

    #[test]
    fn encoding_round_trips_and_paths_convert() {
        let script = wrap("'héllo' | Write-Output\n");
        let line = encode(&script);
        assert!(line.starts_with(POWERSHELL));
        assert_eq!(decode(&line).as_deref(), Some(script.as_str()));
        assert_eq!(ps_quote("it's"), "'it''s'");
    }
}
