//! The docs cite source and test files as evidence (`tests/tests/pull.rs::name`, THREATS.md's
//! "tested by" column): every such citation in README.md and docs/*.md must name a file that
//! exists and, when it names an item, a file that defines it. Files get split and tests renamed;
//! a citation that points nowhere proves nothing.
//!
//! Forms understood: `dir/file.rs`, `dir/file.rs::item`, `dir/{a,b}.rs`, a bare `::item` after a
//! citation in the same table row or paragraph (it refers to that file), and paths relative to
//! some crate directory (`verify/mod.rs`, `signature.rs`), which must match at least one file.

use std::fs;
use std::path::{Path, PathBuf};

/// One citation: where it is written, the path as written (empty for a `::item` that follows
/// no file), and the item it names, if any.
#[derive(Debug)]
struct Citation {
    at: String,
    path: String,
    item: Option<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new(".."))
        .to_path_buf()
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | '{' | '}' | ',')
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !is_ident_char(c)).unwrap_or(s.len());
    &s[..end]
}

/// Every citation in `text` (a Markdown file), in order.
fn citations(file: &str, text: &str) -> Vec<Citation> {
    let mut out = Vec::new();
    // The file a bare `::item` refers to: the last one cited in this paragraph or table row.
    let mut last: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('|') {
            last = None;
        }
        let at = format!("{file}:{}", n + 1);
        let mut i = 0;
        while i < line.len() {
            let rest = &line[i..];
            if let Some(item) = rest
                .strip_prefix("`::")
                .map(ident)
                .filter(|s| !s.is_empty())
            {
                // With no file before it, the citation is broken: the path stays empty.
                out.push(Citation {
                    at: at.clone(),
                    path: last.clone().unwrap_or_default(),
                    item: Some(item.to_owned()),
                });
                i += 3 + item.len();
                continue;
            }
            // `.rs` ending a word: the end of a path.
            let ends_path = rest.starts_with(".rs")
                && !rest[3..].starts_with(|c: char| is_ident_char(c) || c == '/' || c == '-');
            if !ends_path {
                i += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            }
            let start = line[..i]
                .rfind(|c: char| !is_path_char(c))
                .map_or(0, |p| p + 1);
            let path = line[start..i + 3].trim_start_matches("./").to_owned();
            i += 3;
            let item = line[i..]
                .strip_prefix("::")
                .map(ident)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            i += item.as_ref().map_or(0, |s| 2 + s.len());
            if !path.trim_end_matches(".rs").chars().any(is_ident_char) {
                continue; // a glob like `*.rs`
            }
            for path in expand_braces(&path) {
                last = Some(path.clone());
                out.push(Citation {
                    at: at.clone(),
                    path,
                    item: item.clone(),
                });
            }
        }
    }
    out
}

/// `a/{b,c}.rs` → `a/b.rs`, `a/c.rs` (one group, as the docs write them).
fn expand_braces(path: &str) -> Vec<String> {
    match (path.find('{'), path.find('}')) {
        (Some(open), Some(close)) if open < close => path[open + 1..close]
            .split(',')
            .map(|alt| format!("{}{alt}{}", &path[..open], &path[close + 1..]))
            .collect(),
        _ => vec![path.to_owned()],
    }
}

/// Every `.rs` file of the workspace, relative to its root (no `target/`, no hidden dirs).
fn rust_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs")
                && let Ok(rel) = path.strip_prefix(root)
            {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The files a citation can mean: the path itself when it starts at the workspace root, else
/// every file whose path ends with it.
fn resolve<'a>(path: &str, root: &Path, all: &'a [String]) -> Vec<&'a String> {
    let suffix = format!("/{path}");
    all.iter()
        .filter(|f| {
            if root.join(path.split('/').next().unwrap_or("")).is_dir() {
                f.as_str() == path
            } else {
                f.ends_with(&suffix)
            }
        })
        .collect()
}

/// Where an item cited on `file` may be defined: the file, plus its module's other files
/// (for `main.rs`/`mod.rs`/`lib.rs`, the directory they head; for `x.rs`, a sibling `x/`).
fn module_files<'a>(file: &str, all: &'a [String]) -> Vec<&'a String> {
    let path = Path::new(file);
    let dir = match path.file_name().and_then(|n| n.to_str()) {
        Some("main.rs" | "mod.rs" | "lib.rs") => path.parent().map(Path::to_path_buf),
        _ => Some(path.with_extension("")),
    };
    all.iter()
        .filter(|f| {
            f.as_str() == file
                || dir
                    .as_ref()
                    .is_some_and(|d| Path::new(f.as_str()).starts_with(d))
        })
        .collect()
}

/// Whether `source` defines `item`: a function (the usual case: a test), or a const, static,
/// type, trait or module of that name (`push/graph.rs::MAX_DEPTH`, `::MultiGzipReader`).
fn defines(source: &str, item: &str) -> bool {
    const KEYWORDS: [&str; 9] = [
        "fn",
        "const",
        "static",
        "struct",
        "enum",
        "trait",
        "type",
        "mod",
        "macro_rules!",
    ];
    KEYWORDS.iter().any(|kw| {
        let needle = format!("{kw} {item}");
        source.match_indices(&needle).any(|(at, _)| {
            let before = source[..at].chars().next_back();
            let after = source[at + needle.len()..].chars().next();
            !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
        })
    })
}

/// Every broken citation in README.md and docs/*.md, and how many were checked.
fn broken_citations(root: &Path) -> (Vec<String>, usize) {
    let mut docs = vec![root.join("README.md")];
    let mut more: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .unwrap_or_else(|e| panic!("docs/: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    let all = rust_files(root);
    let (mut broken, mut checked) = (Vec::new(), 0);
    for doc in &docs {
        let text = fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let name = doc.strip_prefix(root).unwrap_or(doc).display().to_string();
        for c in citations(&name, &text) {
            checked += 1;
            if c.path.is_empty() {
                let item = c.item.unwrap_or_default();
                broken.push(format!(
                    "{}: `::{item}` follows no file in its row or paragraph",
                    c.at
                ));
                continue;
            }
            let files = resolve(&c.path, root, &all);
            let cited = match &c.item {
                Some(item) => format!("{}::{item}", c.path),
                None => c.path.clone(),
            };
            if files.is_empty() {
                broken.push(format!("{}: {cited}: no such file", c.at));
                continue;
            }
            let Some(item) = &c.item else { continue };
            let found = files.iter().any(|f| {
                module_files(f, &all).iter().any(|m| {
                    fs::read_to_string(root.join(m.as_str())).is_ok_and(|s| defines(&s, item))
                })
            });
            if !found {
                broken.push(format!(
                    "{}: {cited}: no `fn {item}` (or other item) there",
                    c.at
                ));
            }
        }
    }
    (broken, checked)
}

#[test]
fn every_cited_file_and_function_exists() {
    let (broken, checked) = broken_citations(&root());
    // The docs cite well over a hundred files and tests; finding few means the scanner broke.
    assert!(
        checked > 100,
        "only {checked} citations found: is the scanner broken?"
    );
    assert!(
        broken.is_empty(),
        "{} of {checked} citations point nowhere:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_scanner_reads_every_form_the_docs_use() {
    let text = "| a | `tests/tests/x.rs::one`, `::two` and `core/src/{a,b}.rs` |\n\
                see `verify/mod.rs::check` and docs.rs/foo, `*.rs` globs\n\
                \n\
                `bundler/src/plan.rs` (`ordered_blobs`)\n";
    let got: Vec<(String, Option<String>)> = citations("t.md", text)
        .into_iter()
        .map(|c| (c.path, c.item))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        got,
        [
            ("tests/tests/x.rs".into(), some("one")),
            ("tests/tests/x.rs".into(), some("two")),
            ("core/src/a.rs".into(), None),
            ("core/src/b.rs".into(), None),
            ("verify/mod.rs".into(), some("check")),
            ("bundler/src/plan.rs".into(), None),
        ]
    );
    assert!(defines(
        "fn main() {}\npub(crate) const MAX_DEPTH: usize = 8;",
        "MAX_DEPTH"
    ));
    assert!(defines("async fn truncated_gzip() {}", "truncated_gzip"));
    assert!(!defines("fn truncated_gzip_2() {}", "truncated_gzip"));
    assert!(!defines("// calls truncated_gzip()", "truncated_gzip"));
}

#[test]
fn a_moved_file_or_renamed_test_is_reported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path();
    fs::create_dir_all(root.join("docs")).unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir_all(root.join("tests/tests/hostile")).unwrap_or_else(|e| panic!("{e}"));
    fs::write(
        root.join("tests/tests/hostile/main.rs"),
        "mod craft;\nfn a() {}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    fs::write(root.join("tests/tests/hostile/craft.rs"), "fn b() {}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    fs::write(
        root.join("README.md"),
        "`tests/tests/hostile.rs::a` | `tests/tests/hostile/main.rs::a`, `::b`, `::c`\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (broken, checked) = broken_citations(root);
    assert_eq!(checked, 4);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(
        broken[0].contains("tests/tests/hostile.rs::a: no such file"),
        "{broken:?}"
    );
    assert!(broken[1].contains("main.rs::c: no `fn c`"), "{broken:?}");
}
