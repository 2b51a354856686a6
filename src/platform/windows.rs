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

/// Quotes `s` as a PowerShell single-quoted string.
pub fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

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

/// ERLANG_HOME for the `.bat` tools, from the machine's environment: Win32-OpenSSH 7.7
/// (Windows Server 2019) gives a session sshd's own environment (Win32-OpenSSH #1329,
/// fixed by openssh-portable #509), so a value written after sshd started (RabbitMQ's
/// installer writes ERLANG_HOME, `findErlang` in its `rabbitmq_nsi.in`) is missing or
/// stale there. Without it `rabbitmqctl.bat` fails and `rabbitmq-service.bat` prints
/// "ERLANG_HOME not set correctly" and exits 0 having done nothing
/// (`deps/rabbit/scripts/rabbitmq-service.bat`), which warren would see only when the
/// node never came up. So a missing erl.exe ends the script at once, in one sentence,
/// with exit code `platform::NO_CLI_EXIT`, which nothing retries ({FAIL}: that exit,
/// or a `throw` where the caller goes on without the CLI).
pub const ERLANG_ENV: &str = r#"$ErlangHome = [Environment]::GetEnvironmentVariable('ERLANG_HOME', 'Machine')
if (-not $ErlangHome -or -not (Test-Path -LiteralPath (Join-Path $ErlangHome 'bin\erl.exe') -PathType Leaf)) {
    $Why = "Erlang is not where the machine's ERLANG_HOME points (no bin\erl.exe under '$ErlangHome'): install Erlang/OTP or set ERLANG_HOME machine-wide to its folder, then rerun"
{FAIL}}
$env:ERLANG_HOME = $ErlangHome
"#;

const ERLANG_FATAL: &str = "    [Console]::Error.WriteLine($Why)\n    exit 127\n";

/// `s` with every line indented by `by` (PowerShell source without here-strings).
fn indent(s: &str, by: &str) -> String {
    s.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{by}{l}\n")
            }
        })
        .collect()
}

/// Finds RabbitMQ's sbin folder from the installer's Uninstall entry.
pub const FIND_SBIN: &str = r#"function Find-Sbin {
    $Keys = @(
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\RabbitMQ',
        'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\RabbitMQ'
    )
    foreach ($Key in $Keys) {
        $Entry = Get-ItemProperty -LiteralPath $Key -ErrorAction SilentlyContinue
        if ($Entry -and $Entry.UninstallString) {
            $Dir = Split-Path -Parent $Entry.UninstallString.Trim('"')
            $Found = Join-Path $Dir ('rabbitmq_server-' + $Entry.DisplayVersion + '\sbin')
            if (Test-Path -LiteralPath (Join-Path $Found 'rabbitmqctl.bat')) {
                return $Found
            }
        }
    }
    throw 'RabbitMQ Server is not installed here (no RabbitMQ entry under the Uninstall keys of the registry); install it, or set paths.sbin in the inventory'
}
"#;

/// Reading files: content in base64 or a SHA-256, and who may access them.
const READ_FUNCTIONS: &str = r#"function Get-Access([string]$Path) {
    $Names = foreach ($Rule in (Get-Acl -LiteralPath $Path).Access) {
        $Sid = ''
        try {
            $Sid = $Rule.IdentityReference.Translate([System.Security.Principal.SecurityIdentifier]).Value
        } catch {
        }
        switch ($Sid) {
            'S-1-5-18' { 'SYSTEM' }
            'S-1-5-32-544' { 'Administrators' }
            default { $Rule.IdentityReference.Value }
        }
    }
    @($Names) -join ','
}
function Read-Leftover([string]$Path) {
    if (Test-Path -LiteralPath ($Path + '.warren-new')) {
        '@@leftover ' + $Path + '.warren-new'
    }
}
function Read-Text([string]$Path) {
    if (Test-Path -LiteralPath $Path -PathType Leaf) {
        '@@file 0:' + (Get-Access $Path) + "`t" + $Path
        [Convert]::ToBase64String([System.IO.File]::ReadAllBytes($Path))
    } else {
        '@@missing - ' + $Path
    }
    Read-Leftover $Path
}
function Read-Hash([string]$Path) {
    if (Test-Path -LiteralPath $Path -PathType Leaf) {
        '@@hash 0:' + (Get-Access $Path) + "`t" + $Path
        (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()
    } else {
        '@@missing - ' + $Path
    }
    Read-Leftover $Path
}
"#;

/// The installed versions: RabbitMQ's from its installer's Uninstall entry (as
/// `Find-Sbin` reads it), Erlang/OTP's from the `OTP_VERSION` file of the release its
/// installer registered under `HKLM:\SOFTWARE\Ericsson\Erlang` (the newest one), in
/// the 64-bit and the 32-bit (`WOW6432Node`) registry views. Only keys named as
/// versions count: erlsrv keeps its services under `Ericsson\Erlang\ErlSrv` (made by
/// `rabbitmq-service.bat install`), which RabbitMQ's own installer skips too (`findErlang`
/// in rabbitmq-server's `packaging/windows-exe/rabbitmq_nsi.in`); cast to `[version]`,
/// that name threw and stopped the whole fact reading. Versions sort by their parts
/// padded, since `[version]` takes neither one part nor more than four.
const READ_VERSIONS: &str = r#"foreach ($Key in @('HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\RabbitMQ', 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\RabbitMQ')) {
    $Entry = Get-ItemProperty -LiteralPath $Key -ErrorAction SilentlyContinue
    if ($Entry -and $Entry.DisplayVersion) {
        '@@package rabbitmq ' + $Entry.DisplayVersion
        break
    }
}
$Erts = @(@(foreach ($Root in @('HKLM:\SOFTWARE\Ericsson\Erlang', 'HKLM:\SOFTWARE\WOW6432Node\Ericsson\Erlang')) {
    Get-ChildItem -LiteralPath $Root -ErrorAction SilentlyContinue | Where-Object { $_.PSChildName -match '^[0-9]+(\.[0-9]+)*$' }
}) | Sort-Object { (($_.PSChildName -split '\.') | ForEach-Object { $_.PadLeft(6, '0') }) -join '.' })
if ($Erts.Count -gt 0) {
    $OtpRoot = (Get-ItemProperty -LiteralPath $Erts[-1].PSPath).'(default)'
    $Otp = @(Get-ChildItem -Path (Join-Path $OtpRoot 'releases\*\OTP_VERSION') -ErrorAction SilentlyContinue)
    if ($Otp.Count -gt 0) { '@@package erlang ' + (Get-Content -LiteralPath $Otp[-1].FullName -Raw).Trim() }
}
"#;

/// Runs an installer silently, from a path on the host or downloaded from a URL.
///
/// Windows PowerShell 5.1 runs on .NET Framework, whose web requests may offer only
/// TLS 1.0 (learn.microsoft.com/security/engineering/solving-tls1-problem): TLS 1.2 is
/// added to what the process offers before a download.
///
/// The installer runs with this process's environment: RabbitMQ's installer uninstalls
/// the old version, then runs `rabbitmq-service.bat install` and `start` itself
/// (rabbitmq-server's `packaging/windows-exe/rabbitmq_nsi.in`, section "RabbitMQ
/// Service"), and that service takes RABBITMQ_BASE from the installer's environment.
/// Without the host's RABBITMQ_BASE, a default node on the login user's roaming
/// profile would run until warren's reinstall; ERLANG_HOME is read afresh from the
/// machine's environment (an SSH session may hold sshd's stale one). {BASE} is the
/// inventory's RABBITMQ_BASE.
const INSTALL_FROM: &str = r#"function Install-From([string]$Source, [string]$Name) {
    $File = $Source
    if ($Source -match '^https?://') {
        New-Item -ItemType Directory -Force -Path 'C:\ProgramData\warren\run' | Out-Null
        $File = Join-Path 'C:\ProgramData\warren\run' ([System.IO.Path]::GetFileName(([uri]$Source).AbsolutePath))
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        Invoke-WebRequest -Uri $Source -OutFile $File -UseBasicParsing
    }
    if (-not (Test-Path -LiteralPath $File -PathType Leaf)) {
        throw "the $Name installer $File is not on this host; put it there or name a URL"
    }
    $env:RABBITMQ_BASE = {BASE}
    $env:ERLANG_HOME = [Environment]::GetEnvironmentVariable('ERLANG_HOME', 'Machine')
    $Run = Start-Process -FilePath $File -ArgumentList '/S' -Wait -PassThru
    if ($Run.ExitCode -ne 0) {
        throw "the $Name installer $File exited with code $($Run.ExitCode)"
    }
}
"#;

/// The TLS versions a handshake offers, given explicitly: the one-argument
/// `AuthenticateAsClient` of .NET Framework may offer only TLS 1.0
/// (learn.microsoft.com/dotnet/framework/network-programming/tls). TLS 1.2, and 1.3
/// where .NET names it and Schannel has it (Windows Server 2022, build 20348, onwards:
/// learn.microsoft.com/windows/win32/secauthn/protocols-in-tls-ssl--schannel-ssp-);
/// asked of an older Schannel, 1.3 makes the handshake fail.
pub const TLS_PROTOCOLS: &str = r#"$Protocols = [System.Security.Authentication.SslProtocols]::Tls12
if ([enum]::GetNames([System.Security.Authentication.SslProtocols]) -contains 'Tls13' -and [Environment]::OSVersion.Version.Build -ge 20348) {
    $Protocols = $Protocols -bor [System.Security.Authentication.SslProtocols]'Tls13'
}
"#;

/// Writes base64 lines from stdin to {PATH}, then checks its SHA-256.
const RECEIVE_FILE: &str = r#"$Path = {PATH}
$Stream = [System.IO.File]::Create($Path)
try {
    while ($null -ne ($Line = [Console]::In.ReadLine())) {
        if ($Line.Length -gt 0) {
            $Bytes = [Convert]::FromBase64String($Line)
            $Stream.Write($Bytes, 0, $Bytes.Length)
        }
    }
} finally {
    $Stream.Close()
}
if ((Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant() -ne '{SHA256}') {
    Remove-Item -LiteralPath $Path -Force
    throw 'the file arrived damaged (its SHA-256 differs)'
}
"#;

/// An HTTP request to 127.0.0.1:{PORT}, described by JSON on stdin. Plain HTTP on the
/// loopback only, so no TLS version is asked for here.
const LOCAL_HTTP: &str = r#"$Ask = [Console]::In.ReadToEnd() | ConvertFrom-Json
$Request = [System.Net.HttpWebRequest]::Create('http://127.0.0.1:{PORT}' + $Ask.path)
$Request.Method = $Ask.method
$Request.Accept = 'application/json, */*;q=0.5'
if ($Ask.auth) { $Request.Headers.Add('Authorization', 'Basic ' + $Ask.auth) }
if ($null -ne $Ask.body -or $Ask.method -ne 'GET') {
    $Bytes = [System.Text.Encoding]::UTF8.GetBytes([string]$Ask.body)
    $Request.ContentType = 'application/json'
    $Request.ContentLength = $Bytes.Length
    $Out = $Request.GetRequestStream()
    $Out.Write($Bytes, 0, $Bytes.Length)
    $Out.Close()
}
try {
    $Response = $Request.GetResponse()
} catch [System.Net.WebException] {
    $Response = $_.Exception.Response
    if (-not $Response) { throw }
}
'status ' + [int]$Response.StatusCode
$Reader = New-Object System.IO.StreamReader($Response.GetResponseStream())
[Convert]::ToBase64String([System.Text.Encoding]::UTF8.GetBytes($Reader.ReadToEnd()))
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

    fn command_line(&self, script: &str) -> Option<String> {
        let line = encode(&wrap(script));
        (line.len() <= COMMAND_LINE_MAX).then_some(line)
    }

    fn script_file(&self, script: &str, n: u64) -> ScriptFile {
        let path = format!(r"{RUN_FOLDER}\warren-{n}.ps1");
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
        format!(
            "New-Item -ItemType Directory -Force -Path {} | Out-Null\n",
            ps_quote(folder)
        )
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
        for (path, secret) in files {
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
        let mut s = INSTALL_FROM.replace("{BASE}", &ps_quote(&self.base));
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
            "$Lock = {f}\n\
             New-Item -ItemType Directory -Force -Path (Split-Path -Parent $Lock) | Out-Null\n\
             try {{\n{write}}} catch [System.IO.IOException] {{\n    '@@held'\n    [System.IO.File]::ReadAllText($Lock)\n}}\n"
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

    #[test]
    fn encoding_round_trips_and_paths_convert() {
        let script = wrap("'héllo' | Write-Output\n");
        let line = encode(&script);
        assert!(line.starts_with(POWERSHELL));
        assert_eq!(decode(&line).as_deref(), Some(script.as_str()));
        assert_eq!(ps_quote("it's"), "'it''s'");
    }
}
