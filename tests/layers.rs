//! The layers import one way. Every file of `src/` belongs to a layer by its path, and
//! may import (`crate::...`, in `use` lines and in paths written inline) its own layer
//! and the layers below it, never one above. No file of `src/` is over 1,000 lines.
//! The map is README's "Where things live"; a new top-level module needs a row here.

use std::path::{Path, PathBuf};

/// The layers, bottom first, and the top-level modules (`src/NAME.rs` or `src/NAME/`)
/// of each. A cross-cutting feature (the balancer, TLS, links) has a part in each
/// layer it touches, never a module of its own beside them.
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &["util", "versions", "interrupt", "ui", "runlog"]),
    ("inventory", &["inventory"]),
    ("transport", &["transport"]),
    ("platform", &["platform"]),
    ("rabbitmq", &["rabbitmq", "lock"]),
    ("render", &["render"]),
    ("facts", &["facts"]),
    ("plan", &["plan"]),
    ("doctor", &["doctor"]),
    ("apply", &["apply"]),
    ("verify", &["verify", "drill"]),
    ("commands", &["commands", "cli", "main", "lib"]),
];

/// Modules beside the layers: (module, the highest layer it may import, the lowest
/// layer that may import it).
const ASIDE: &[(&str, &str, &str)] = &[
    // The namespace lab: hosts to run warren against, reached by `warren lab`.
    ("lab", "inventory", "commands"),
    // Syntax checks of the Windows scripts, compiled for tests only.
    ("pscheck", "base", "base"),
];

const MAX_LINES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Layer(usize),
    /// (may import up to this layer, may be imported from this layer up)
    Aside(usize, usize),
}

fn layer_index(name: &str) -> usize {
    LAYERS
        .iter()
        .position(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no layer named {name}"))
}

fn place(module: &str) -> Option<Place> {
    if let Some(i) = LAYERS.iter().position(|(_, ms)| ms.contains(&module)) {
        return Some(Place::Layer(i));
    }
    ASIDE
        .iter()
        .find(|(m, _, _)| *m == module)
        .map(|(_, up, from)| Place::Aside(layer_index(up), layer_index(from)))
}

/// The top-level module a file of `src/` belongs to: `inventory/model.rs` ->
/// `inventory`, `util.rs` -> `util`.
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a path under src/")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn describe(i: usize) -> String {
    format!("layer {} ({})", i + 1, LAYERS[i].0)
}

/// Why `from` (a module) may not import `to`, if it may not.
fn refusal(from: &str, to: &str) -> Option<String> {
    if from == to {
        return None;
    }
    let Some(target) = place(to) else {
        return Some(format!(
            "`{to}` is in no layer: add it to LAYERS in tests/layers.rs"
        ));
    };
    let own = place(from).expect("the importing module was placed");
    let (top, own_words) = match own {
        Place::Layer(i) => (i, format!("{from} is in {}", describe(i))),
        Place::Aside(up, _) => (
            up,
            format!("{from} sits aside, importing up to {}", describe(up)),
        ),
    };
    match target {
        Place::Layer(t) if t > top => Some(format!(
            "{own_words}, so it may import layers 1 to {} ({}) only; {to} is in {}",
            top + 1,
            LAYERS[..=top]
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            describe(t)
        )),
        Place::Layer(_) => None,
        Place::Aside(_, lowest) if top < lowest => Some(format!(
            "{to} sits aside, imported only from {} up; {own_words}",
            describe(lowest)
        )),
        Place::Aside(..) => None,
    }
}

/// `code` with comments, strings and character literals blanked out (newlines kept,
/// so offsets keep their lines): a path in a doc comment or a message is no import.
fn code_only(source: &str) -> String {
    let s: Vec<char> = source.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        let prev_ident = i > 0 && ident(s[i - 1]);
        if c == '/' && next == Some('/') {
            while i < s.len() && s[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(s[i]));
                    i += 1;
                }
            }
        } else if !prev_ident && (c == 'r' || (c == 'b' && next == Some('r'))) && {
            let mut j = i + if c == 'b' { 2 } else { 1 };
            while s.get(j) == Some(&'#') {
                j += 1;
            }
            s.get(j) == Some(&'"')
        } {
            // A raw string: r"..." or r#"..."#, with as many '#' at its end.
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while s[j] == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            while j < s.len() {
                if s[j] == '"' && (0..hashes).all(|k| s.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &x in &s[i..j.min(s.len())] {
                out.push(blank(x));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < s.len() && s[i] != '"' {
                if s[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < s.len() {
                    out.push(blank(s[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || s.get(i + 2) == Some(&'\'')) {
            // A character literal ('"', '\n', '\''); a lifetime ('a) is code.
            let mut j = i + 1;
            if s[j] == '\\' {
                j += 2;
            }
            while j < s.len() && s[j] != '\'' {
                j += 1;
            }
            for _ in i..=j.min(s.len() - 1) {
                out.push(' ');
            }
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every `crate::` import in `source`: (line, the top-level module, the path as
/// written up to it). `use crate::{a, b::{c, d}}` imports `a` and `b`.
fn imports(source: &str) -> Vec<(usize, String, String)> {
    let code: Vec<char> = code_only(source).chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let line_at = |at: usize| code[..at].iter().filter(|c| **c == '\n').count() + 1;
    let skip_ws = |mut i: usize| {
        while i < code.len() && code[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let word = |i: usize| {
        let mut j = i;
        while j < code.len() && ident(code[j]) {
            j += 1;
        }
        (code[i..j].iter().collect::<String>(), j)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i + 5 <= code.len() {
        let is_crate = code[i..i + 5].iter().collect::<String>() == "crate"
            && (i == 0 || !(ident(code[i - 1]) || code[i - 1] == '$'))
            && code.get(i + 5).is_none_or(|c| !ident(*c));
        if !is_crate {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = skip_ws(i + 5);
        if code.get(j) != Some(&':') || code.get(j + 1) != Some(&':') {
            i += 5;
            continue;
        }
        j = skip_ws(j + 2);
        if code.get(j) == Some(&'{') {
            // A group: the first word of each item, at every depth of bare groups.
            let mut depth = 0;
            let mut item_start = true;
            while j < code.len() {
                match code[j] {
                    '{' => {
                        depth += 1;
                        item_start = true;
                        j += 1;
                    }
                    '}' => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        item_start = true;
                        j += 1;
                    }
                    c if item_start && ident(c) && depth == 1 => {
                        let (w, end) = word(j);
                        if w != "self" {
                            out.push((line_at(j), w.clone(), format!("crate::{w}")));
                        }
                        item_start = false;
                        j = end;
                    }
                    c if c.is_whitespace() => j += 1,
                    _ => {
                        if depth == 1 {
                            item_start = false;
                        }
                        j += 1;
                    }
                }
            }
        } else {
            let (w, end) = word(j);
            if !w.is_empty() {
                out.push((line_at(start), w.clone(), format!("crate::{w}")));
            }
            j = end;
        }
        i = j.max(i + 5);
    }
    out
}

/// What is wrong with `source`, the file at `relative` under `src/`: one sentence per
/// import of a higher layer, naming the file and line, the import and the rule.
fn violations(relative: &Path, source: &str) -> Vec<String> {
    let from = module_of(relative);
    let shown = Path::new("src").join(relative).display().to_string();
    if place(&from).is_none() {
        return vec![format!(
            "{shown}: module `{from}` is in no layer: add it to LAYERS (or ASIDE) in tests/layers.rs"
        )];
    }
    imports(source)
        .into_iter()
        .filter_map(|(line, to, path)| {
            refusal(&from, &to).map(|why| format!("{shown}:{line} imports {path}: {why}"))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "src/ holds only {} files", files.len());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.strip_prefix(src()).unwrap().to_path_buf(), text)
        })
        .collect()
}

#[test]
fn every_file_imports_only_its_own_layer_and_those_below() {
    let mut wrong = Vec::new();
    for (relative, text) in sources() {
        wrong.extend(violations(&relative, &text));
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers (bottom first: {}):\n{}",
        LAYERS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(" < "),
        wrong.join("\n")
    );
}

#[test]
fn no_file_is_over_a_thousand_lines() {
    let mut wrong = Vec::new();
    for (relative, text) in sources() {
        let shown = format!("src/{}", relative.display());
        let lines = text.lines().count();
        if lines > MAX_LINES {
            wrong.push(format!(
                "{shown} has {lines} lines, over {MAX_LINES}: split it by what a reader looks for in it"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn an_import_of_a_higher_layer_is_named_with_its_rule() {
    let source = "use crate::inventory::Host;\nuse crate::{render, plan::Plan};\nfn f() { crate::facts::gather(); }\n";
    let found = violations(Path::new("platform/remote.rs"), source);
    assert_eq!(
        found,
        [
            "src/platform/remote.rs:2 imports crate::render: platform is in layer 4 (platform), so it may import layers 1 to 4 (base, inventory, transport, platform) only; render is in layer 6 (render)",
            "src/platform/remote.rs:2 imports crate::plan: platform is in layer 4 (platform), so it may import layers 1 to 4 (base, inventory, transport, platform) only; plan is in layer 8 (plan)",
            "src/platform/remote.rs:3 imports crate::facts: platform is in layer 4 (platform), so it may import layers 1 to 4 (base, inventory, transport, platform) only; facts is in layer 7 (facts)",
        ]
    );
    // The lab sits aside: it imports the inventory, and only the commands import it.
    assert_eq!(
        violations(Path::new("plan/mod.rs"), "use crate::lab::Lab;").len(),
        1
    );
    assert!(violations(Path::new("commands/lab.rs"), "use crate::lab::Lab;").is_empty());
    assert_eq!(
        violations(Path::new("lab/mod.rs"), "use crate::platform::connect;").len(),
        1
    );
    assert_eq!(
        violations(Path::new("newthing.rs"), "").len(),
        1,
        "a module in no layer is refused"
    );
}

#[test]
fn imports_are_read_from_code_only() {
    let source = r##"
//! Uses `crate::plan::Plan` in a doc comment: no import.
use crate::{
    inventory::{self, Host},
    platform,
};
use crate :: render :: sha; /* crate::facts in a block comment */
fn f<'a>(x: &'a str) -> char {
    let _ = "crate::apply in a string";
    let _ = r#"crate::verify in a raw "string""#;
    let _ = $crate::nothing;
    let _ = '"';
    crate::transport::sh_quote(x);
    '\''
}
"##;
    let found: Vec<(usize, String)> = imports(source)
        .into_iter()
        .map(|(line, m, _)| (line, m))
        .collect();
    assert_eq!(
        found,
        [
            (4, "inventory".to_string()),
            (5, "platform".to_string()),
            (7, "render".to_string()),
            (13, "transport".to_string()),
        ]
    );
}
