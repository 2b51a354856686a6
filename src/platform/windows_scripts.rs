//! The longer PowerShell pieces of `windows.rs`'s scripts, each with why it reads
//! as it does.

/// Quotes `s` as a PowerShell single-quoted string.
pub fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Makes a folder that only SYSTEM and Administrators may change, and its children
/// after it: a folder made under ProgramData inherits an ACL that lets Users create
/// files (OTP's installer removes inheritance on its own folder for that reason), and
/// RabbitMQ's service runs `rabbitmq-env-conf.bat` under RABBITMQ_BASE as SYSTEM at
/// every start, as warren runs its scripts from the run folder. The rules are set
/// explicitly, nothing inherited, and inherited by what is inside
/// (ContainerInherit, ObjectInherit); an existing folder's ACL is replaced the same way.
pub const PROTECT_FOLDER: &str = r#"function Protect-Folder([string]$Path) {
    New-Item -ItemType Directory -Force -Path $Path | Out-Null
    $Acl = New-Object System.Security.AccessControl.DirectorySecurity
    $Acl.SetAccessRuleProtection($true, $false)
    foreach ($Sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $Id = New-Object System.Security.Principal.SecurityIdentifier($Sid)
        $Acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($Id, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')))
    }
    Set-Acl -LiteralPath $Path -AclObject $Acl
}
"#;

/// Refuses a file under RABBITMQ_BASE that neither SYSTEM, Administrators nor the
/// login user (who placed warren's own files) owns: someone else put it there, and
/// the service may run it as SYSTEM.
pub(super) const ASSERT_OWNER: &str = r#"function Assert-Owner([string]$Path) {
    if (-not (Test-Path -LiteralPath $Path)) { return }
    $Acl = Get-Acl -LiteralPath $Path
    $Owner = $Acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    $Me = [System.Security.Principal.WindowsIdentity]::GetCurrent().User.Value
    if ($Owner -ne 'S-1-5-18' -and $Owner -ne 'S-1-5-32-544' -and $Owner -ne $Me) {
        throw ($Path + ' is owned by ' + $Acl.Owner + ', not by SYSTEM or Administrators, so warren did not place it and RabbitMQ may run it as SYSTEM: find out who wrote it, then delete it (or make Administrators its owner: takeown /A /F "' + $Path + '") and rerun')
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

pub(super) const ERLANG_FATAL: &str = "    [Console]::Error.WriteLine($Why)\n    exit 127\n";

/// `s` with every line indented by `by` (PowerShell source without here-strings).
pub(super) fn indent(s: &str, by: &str) -> String {
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
pub(super) const READ_FUNCTIONS: &str = r#"function Get-Access([string]$Path) {
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
pub(super) const READ_VERSIONS: &str = r#"foreach ($Key in @('HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\RabbitMQ', 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\RabbitMQ')) {
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
pub(super) const INSTALL_FROM: &str = r#"function Install-From([string]$Source, [string]$Name) {
    $File = $Source
    if ($Source -match '^https?://') {
        Protect-Folder 'C:\ProgramData\warren'
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
pub(super) const RECEIVE_FILE: &str = r#"$Path = {PATH}
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
pub(super) const LOCAL_HTTP: &str = r#"$Ask = [Console]::In.ReadToEnd() | ConvertFrom-Json
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
