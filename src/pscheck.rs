//! Syntax checks for the scripts warren writes for Windows hosts, for tests only.
//!
//! No PowerShell or cmd.exe runs on the build machine, so a golden `.ps1` or `.bat` that
//! is not valid would otherwise only fail on a real Windows host. These functions parse a
//! script with a tree-sitter grammar (`tree-sitter-powershell`, `tree-sitter-batch`) and
//! list every ERROR and MISSING node in the tree: an empty list means the grammar accepts
//! the script.
//!
//! The grammars are close to, not the same as, the real parsers. Known differences of
//! tree-sitter-powershell 0.26 that matter when reading a failure (each pinned by
//! `known_powershell_false_positives` below):
//! - a script that is empty, only blank lines or only comments is reported;
//! - a script that is only a `param(...)` block, with no statement after it, is reported;
//! - script-level `begin { } process { } end { }` blocks are reported (inside a function
//!   they parse);
//! - the `L` (long) suffix on a number that is not the first operand (`1 + 5L`,
//!   `@(1, 5L)`) is reported;
//! - a variable name with a non-ASCII letter (`$é = 1`) is reported (`${é}` parses;
//!   non-ASCII text in strings and comments is fine);
//! - PowerShell 7 operators `??`, `??=`, `?.` and `? :` are reported (Windows PowerShell
//!   5.1 rejects them too), while `&&` and `||` are accepted (5.1 rejects those).
//!
//! It also accepts some scripts PowerShell rejects, e.g. `try { x }` with neither `catch`
//! nor `finally`. For batch files the grammar is stricter than cmd.exe in places:
//! `echo "unterminated` and `set "X=1` (no closing quote) are reported.

use tree_sitter::{Language, Node, Parser};

/// The longest snippet of source quoted in a problem line, in characters.
const SNIPPET_CHARS: usize = 40;

/// One line per syntax problem tree-sitter-powershell finds in `script`
/// (`line L col C: ERROR near `...`` or `line L col C: missing `X``), in source order;
/// empty when the script parses cleanly. Lines and columns count from 1, columns in
/// characters.
pub fn powershell_problems(script: &str) -> Vec<String> {
    problems(&tree_sitter_powershell::LANGUAGE.into(), script)
}

/// The same as [`powershell_problems`] for a Windows batch (cmd.exe `.bat`/`.cmd`) file,
/// parsed with tree-sitter-batch.
pub fn batch_problems(script: &str) -> Vec<String> {
    problems(&tree_sitter_batch::LANGUAGE.into(), script)
}

fn problems(language: &Language, script: &str) -> Vec<String> {
    let mut parser = Parser::new();
    parser
        .set_language(language)
        .expect("the grammar's ABI is one the tree-sitter crate supports");
    let tree = parser
        .parse(script, None)
        .expect("a parser with a language, no timeout and no cancellation returns a tree");

    // Pre-order walk of every node, ERROR subtrees included, so that a MISSING node deep
    // in an otherwise valid statement is reported as well as a top-level ERROR.
    let mut found = Vec::new();
    let mut cursor = tree.walk();
    loop {
        let node = cursor.node();
        if node.is_missing() {
            found.push(format!(
                "{}: missing `{}`",
                position(script, node),
                node.kind()
            ));
        } else if node.is_error() {
            found.push(format!(
                "{}: ERROR near `{}`",
                position(script, node),
                snippet(script, node)
            ));
        }
        if cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return found;
            }
        }
    }
}

/// `line L col C` of the node's start, both from 1, the column in characters.
fn position(script: &str, node: Node) -> String {
    let start = node.start_byte().min(script.len());
    let before = &script.as_bytes()[..start];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    format!("line {} col {col}", node.start_position().row + 1)
}

/// The node's text (or, for an empty node, the text after it) on one line, shortened.
fn snippet(script: &str, node: Node) -> String {
    let bytes = script.as_bytes();
    let start = node.start_byte().min(bytes.len());
    let end = node.end_byte().clamp(start, bytes.len());
    let text = if end > start {
        &bytes[start..end]
    } else {
        &bytes[start..]
    };
    let text = String::from_utf8_lossy(text);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "<end of script>".to_string();
    }
    if one_line.chars().count() > SNIPPET_CHARS {
        let short: String = one_line.chars().take(SNIPPET_CHARS).collect();
        format!("{short}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script using the constructs warren's Windows scripts use, or may come to use.
    const VALID_POWERSHELL: &str = r#"# Managed by warren
param(
    [Parameter(Mandatory)][string]$Base,
    [int]$Port = 5672
)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version Latest

function Invoke-Native {
    param([string]$Exe, [string[]]$Arguments)
    & $Exe @Arguments 2>&1 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "$Exe failed with exit code $LASTEXITCODE" }
}

$Rules = @(
    @{ Name = 'warren-amqp'; Port = '5672' },
    @{ Name = 'warren-dist'; Port = '25672' }
)
foreach ($Rule in $Rules) {
    $Existing = Get-NetFirewallRule -Name $Rule.Name -ErrorAction SilentlyContinue
    if (-not $Existing) {
        New-NetFirewallRule -Name $Rule.Name -DisplayName "warren: $($Rule.Name)" -Direction Inbound `
            -Protocol TCP -LocalPort $Rule.Port -Action Allow | Out-Null
    } elseif ((($Existing | Get-NetFirewallPortFilter).LocalPort -join ',') -ne $Rule.Port) {
        Set-NetFirewallRule -Name $Rule.Name -LocalPort $Rule.Port
    }
}

$Config = @"
listeners.tcp.default = $Port
cluster_name = $($Rules[0].Name)
"@
$Literal = @'
no $expansion here, 'quotes' fine
'@
[System.IO.File]::WriteAllText((Join-Path $Base 'rabbitmq.conf'), $Config, [System.Text.Encoding]::UTF8)

$Command = 'Write-Output "it''s done"'
$Encoded = [Convert]::ToBase64String([System.Text.Encoding]::Unicode.GetBytes($Command))
powershell.exe -NoProfile -NonInteractive -EncodedCommand $Encoded
powershell.exe -NoProfile -EncodedCommand VwByAGkAdABlAC0ATwB1AHQAcAB1AHQAIAAxAA==

$Acl = Get-Acl -Path $Base
$Acl.SetAccessRuleProtection($true, $false)
$Acl.AddAccessRule([Security.AccessControl.FileSystemAccessRule]::new('SYSTEM', 'FullControl', 'Allow'))
Set-Acl -Path $Base -AclObject $Acl
Get-Acl -Path $Base | Set-Acl -Path $Literal

$Splat = @{ Path = $Base; ItemType = 'Directory'; Force = $true }
$null = New-Item @Splat
$Hash = [ordered]@{ a = 1; 'b c' = @(1, 2); d = @{ nested = $true } }

try {
    $Service = Get-Service -Name 'RabbitMQ'
    Invoke-Native -Exe (Join-Path $Base 'rabbitmq-service.bat') -Arguments @('start')
} catch [System.InvalidOperationException] {
    Write-Error $_.Exception.Message
    exit 2
} catch {
    Write-Error "unexpected: $_"
    exit 1
} finally {
    Write-Output ("{0} rules" -f $Rules.Count)
}

switch ($Service.Status) {
    'Running' { Write-Output 'running' }
    default { Write-Output "state: $($Service.Status)" }
}
& $Exe args; exit $LASTEXITCODE
"#;

    const VALID_BATCH: &str = "@echo off\r\n\
REM Managed by warren\r\n\
set NODENAME=rabbit@win1\r\n\
set USE_LONGNAME=false\r\n\
set CONFIG_FILE=C:\\Users\\Administrator\\AppData\\Roaming\\RabbitMQ\\rabbitmq.conf\r\n\
set \"SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_listen_min 25672\"\r\n\
if not exist \"%CONFIG_FILE%\" (\r\n\
  echo missing %CONFIG_FILE%\r\n\
  exit /b 1\r\n\
) else (\r\n\
  echo ok\r\n\
)\r\n\
for %%f in (a b) do echo %%f\r\n\
\"C:\\Program Files\\x.exe\" --flag >nul 2>&1 || exit /b %ERRORLEVEL%\r\n";

    #[test]
    fn valid_powershell_has_no_problems() {
        assert_eq!(powershell_problems(VALID_POWERSHELL), Vec::<String>::new());
    }

    #[test]
    fn valid_powershell_with_crlf_and_bom_has_no_problems() {
        let windows = format!("\u{feff}{}", VALID_POWERSHELL.replace('\n', "\r\n"));
        assert_eq!(powershell_problems(&windows), Vec::<String>::new());
    }

    #[test]
    fn unclosed_brace_is_reported() {
        let problems = powershell_problems("function F {\n    if ($x) {\n        1\n}\n");
        assert!(
            problems.iter().any(|p| p.contains("missing `}`")),
            "{problems:?}"
        );
    }

    #[test]
    fn unterminated_string_is_reported() {
        for script in [
            "$x = \"abc\n$y = 1\n",
            "$x = 'abc\n$y = 1\n",
            "$h = @\"\nbody\n",
        ] {
            assert!(!powershell_problems(script).is_empty(), "{script:?}");
        }
    }

    #[test]
    fn unclosed_condition_is_reported() {
        let problems = powershell_problems("if ($x -eq 1 {\n    1\n}\n");
        assert!(!problems.is_empty());
        assert!(problems[0].contains("ERROR near `"), "{problems:?}");
    }

    #[test]
    fn other_broken_powershell_is_reported() {
        for script in [
            "$x = ",
            "foreach ($x $y) {}",
            "}\n",
            "$x = @{ a = }",
            "$x = (1 + 2",
            "$a[0",
            "& ",
        ] {
            assert!(!powershell_problems(script).is_empty(), "{script:?}");
        }
    }

    #[test]
    fn problems_give_the_line_and_column() {
        let problems = powershell_problems("$a = 1\n  $x = (1 + 2\n$b = 2\n");
        assert!(!problems.is_empty());
        assert!(problems[0].starts_with("line 2 col 3: "), "{problems:?}");

        // Columns count characters, not bytes: `ü` is two bytes in UTF-8.
        let problems = powershell_problems("$x = 'ü'\n$y = 'ü'; )");
        assert_eq!(problems, ["line 2 col 11: ERROR near `)`"]);
    }

    /// Valid PowerShell the grammar rejects. When an upgrade of tree-sitter-powershell
    /// fixes one, drop it here and from the module's doc.
    #[test]
    fn known_powershell_false_positives() {
        for script in [
            "",
            "# only a comment\n",
            "param([string]$Path)\n",
            "begin { } process { $_ } end { }\n",
            "$x = 1 + 5L\n",
            "$é = 1\n",
        ] {
            assert!(!powershell_problems(script).is_empty(), "{script:?}");
        }
    }

    #[test]
    fn valid_batch_has_no_problems() {
        assert_eq!(batch_problems(VALID_BATCH), Vec::<String>::new());
    }

    #[test]
    fn broken_batch_is_reported() {
        for script in [
            "if \"%A%\"==\"1\" (\r\n  echo hi\r\n",
            "for %%i in (a b) do (\r\n  echo %%i\r\n",
            ")\r\n",
            "if \"%A%\"==\"1\"\r\n",
        ] {
            assert!(!batch_problems(script).is_empty(), "{script:?}");
        }
    }
}
