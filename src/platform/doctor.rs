//! The doctor's reading of a host: what warren assumes of it beyond its managed files,
//! read without changing anything. One script per OS; both print `@@KEY VALUE` lines
//! that `doctor` parses the same way:
//!
//! - `@@admin yes|no`: the commands run with administrator rights (root, `sudo -n`,
//!   or a Windows token in the Administrators group);
//! - `@@clock SECONDS`: the host's time (Unix seconds), against the operator's;
//! - `@@dnsname NAME`: the host's own name as DNS knows it (not Windows' 15-character
//!   NetBIOS name);
//! - `@@disk BYTES` and `@@memory BYTES`: free space where RabbitMQ keeps its data,
//!   and the memory installed;
//! - `@@folder OWNER ACCESS PATH`: a folder warren writes to, its owner and who may
//!   write to it (Linux: the octal mode; Windows: the accounts with write rights),
//!   `- - PATH` when missing;
//! - `@@service STATE STARTTYPE ACCOUNT`: the RabbitMQ service (systemd's unit or
//!   the Windows service), `@@service missing` without one;
//! - Windows only: `@@powershell VERSION`; `@@erlang_home session|machine PATH` and
//!   `@@erl yes|no` (erl.exe under the machine's ERLANG_HOME); `@@erlsrv KEY VALUE`
//!   for what the service was installed with (erlsrv's registry entry: `workdir`,
//!   `base` from its environment, `node`).

/// The Linux reading. `data_dir` is where RabbitMQ keeps its data (the disk to check).
pub fn linux(data_dir: &str, folders: &[&str]) -> Vec<String> {
    use crate::transport::sh_quote;
    let mut s = format!(
        "echo \"@@admin $([ \"$(id -u)\" = 0 ] && echo yes || echo no)\"\n\
         echo \"@@clock $(date +%s)\"\n\
         echo \"@@dnsname $(hostname -f 2>/dev/null || hostname)\"\n\
         d={d}; while [ ! -d \"$d\" ] && [ \"$d\" != / ]; do d=$(dirname \"$d\"); done\n\
         df -Pk \"$d\" | awk 'NR==2 {{printf \"@@disk %.0f\\n\", $4 * 1024}}'\n\
         awk '/^MemTotal:/ {{printf \"@@memory %.0f\\n\", $2 * 1024}}' /proc/meminfo\n",
        d = sh_quote(data_dir)
    );
    for f in folders {
        s.push_str(&format!(
            "if [ -d {q} ]; then echo \"@@folder $(stat -c '%U %a' {q}) \"{q}; else echo '@@folder - - '{q}; fi\n",
            q = sh_quote(f)
        ));
    }
    s.push_str(
        "if [ -d /run/systemd/system ]; then\n\
         \x20   if systemctl cat rabbitmq-server.service >/dev/null 2>&1; then\n\
         \x20       echo \"@@service $(systemctl show -p ActiveState --value rabbitmq-server) $(systemctl is-enabled rabbitmq-server 2>/dev/null) $(systemctl show -p User --value rabbitmq-server)\"\n\
         \x20   else echo '@@service missing'; fi\n\
         fi\n",
    );
    vec![s]
}

/// The Windows reading, in two scripts that each fit on one command line, so that
/// nothing is written to the host to run them (a longer script would travel as a
/// file). `base` is RABBITMQ_BASE (the disk to check).
pub fn windows(base: &str, folders: &[&str]) -> Vec<String> {
    use super::windows_scripts::ps_quote;
    let mut access = String::from(WINDOWS_FOLDERS);
    for f in folders {
        access.push_str(&format!("Read-Folder {}\n", ps_quote(f)));
    }
    vec![WINDOWS_READING.replace("{BASE}", &ps_quote(base)), access]
}

/// Who may write (Windows): accounts whose rules allow writing or more, by SID where
/// the account is well known, so a localized Windows reads the same.
const WINDOWS_READING: &str = r#"$Identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
$Admins = New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')
'@@admin ' + $(if ((New-Object System.Security.Principal.WindowsPrincipal($Identity)).IsInRole($Admins)) { 'yes' } else { 'no' })
'@@powershell ' + $PSVersionTable.PSVersion.ToString()
'@@clock ' + [DateTimeOffset]::UtcNow.ToUnixTimeSeconds()
'@@dnsname ' + [System.Net.Dns]::GetHostName()
$Root = [System.IO.Path]::GetPathRoot({BASE})
'@@disk ' + (New-Object System.IO.DriveInfo($Root)).AvailableFreeSpace
'@@memory ' + ([uint64](Get-CimInstance -ClassName Win32_ComputerSystem).TotalPhysicalMemory)
'@@erlang_home session ' + $env:ERLANG_HOME
$Machine = [Environment]::GetEnvironmentVariable('ERLANG_HOME', 'Machine')
'@@erlang_home machine ' + $Machine
'@@erl ' + $(if ($Machine -and (Test-Path -LiteralPath (Join-Path $Machine 'bin\erl.exe'))) { 'yes' } else { 'no' })
$Service = Get-CimInstance -ClassName Win32_Service -Filter "Name='RabbitMQ'"
if ($Service) { '@@service ' + $Service.State + ' ' + $Service.StartMode + ' ' + $Service.StartName } else { '@@service missing' }
foreach ($Key in @('HKLM:\SOFTWARE\Ericsson\Erlang\ErlSrv\1.1\RabbitMQ', 'HKLM:\SOFTWARE\WOW6432Node\Ericsson\Erlang\ErlSrv\1.1\RabbitMQ')) {
    $Entry = Get-ItemProperty -LiteralPath $Key -ErrorAction SilentlyContinue
    if ($Entry) {
        '@@erlsrv workdir ' + $Entry.WorkDir
        foreach ($Pair in @($Entry.Env)) {
            if ($Pair -like 'RABBITMQ_BASE=*') { '@@erlsrv base ' + $Pair.Substring(14) }
        }
        if ($Entry.SName) { '@@erlsrv node ' + $Entry.SName } elseif ($Entry.Name) { '@@erlsrv node ' + $Entry.Name }
        break
    }
}
"#;

/// Who may write to each folder, and its owner.
const WINDOWS_FOLDERS: &str = r#"function Read-Folder([string]$Path) {
    if (-not (Test-Path -LiteralPath $Path -PathType Container)) {
        '@@folder - - ' + $Path
        return
    }
    $Acl = Get-Acl -LiteralPath $Path
    $Write = [System.Security.AccessControl.FileSystemRights]'Write, AppendData, CreateFiles, CreateDirectories'
    $Names = foreach ($Rule in $Acl.Access) {
        if ($Rule.AccessControlType -ne 'Allow' -or -not ($Rule.FileSystemRights -band $Write)) { continue }
        $Sid = ''
        try { $Sid = $Rule.IdentityReference.Translate([System.Security.Principal.SecurityIdentifier]).Value } catch { }
        switch ($Sid) {
            'S-1-5-18' { 'SYSTEM' }
            'S-1-5-32-544' { 'Administrators' }
            'S-1-5-32-545' { 'Users' }
            'S-1-5-11' { 'Authenticated Users' }
            'S-1-1-0' { 'Everyone' }
            'S-1-3-0' { 'CREATOR OWNER' }
            default { $Rule.IdentityReference.Value }
        }
    }
    $Owner = $Acl.Owner
    try {
        $OwnerSid = (New-Object System.Security.Principal.NTAccount($Acl.Owner)).Translate([System.Security.Principal.SecurityIdentifier]).Value
        if ($OwnerSid -eq 'S-1-5-32-544') { $Owner = 'Administrators' } elseif ($OwnerSid -eq 'S-1-5-18') { $Owner = 'SYSTEM' }
    } catch { }
    '@@folder ' + $Owner.Replace(' ', '_') + ' ' + ((@($Names) | Select-Object -Unique) -join ',').Replace(' ', '_') + ' ' + $Path
}
"#;
