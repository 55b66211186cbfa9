//! The scanner behind `architecture`: each crate's modules, the paths between them, and the
//! cycles those paths make (see `main.rs` for what it reads and resolves).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use super::CRATES;

/// One module: its `use` paths and the other paths it writes, as segments.
#[derive(Debug, Default)]
pub(crate) struct Module {
    uses: Vec<Use>,
    paths: Vec<Vec<String>>,
    /// Child modules it declares (not under `#[cfg(test)]`).
    children: BTreeSet<String>,
}

/// One path of a `use` tree and the name it binds.
#[derive(Debug)]
struct Use {
    path: Vec<String>,
    name: Option<String>,
}

pub(crate) type ModPath = Vec<String>;

/// Comments, string and char literals blanked out (lengths kept), so nothing in prose or data
/// reads as a path.
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if rest.starts_with(b"r#") || rest.starts_with(b"r\"") || rest.starts_with(b"br") {
            // A raw string: r"…", r#"…"#, br#"…"#; else just an identifier starting with r.
            let start = i + usize::from(b[i] == b'b') + 1;
            let hashes = b[start..].iter().take_while(|&&c| c == b'#').count();
            let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
            if prev_ident || b.get(start + hashes) != Some(&b'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let mut end = vec![b'"'];
            end.extend(std::iter::repeat_n(b'#', hashes));
            let body = start + hashes + 1;
            let close = b[body..]
                .windows(end.len())
                .position(|w| w == end.as_slice())
                .map_or(b.len(), |p| body + p + end.len());
            for &c in &b[i..close] {
                blank(&mut out, c);
            }
            i = close;
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
            out.push(b' ');
            i += 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a): only the first is blanked.
            let len = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(3)
            } else {
                std::str::from_utf8(&b[i + 1..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .filter(|c| !c.is_ascii())
                    .map(|c| c.len_utf8() + 2)
                    .filter(|&n| b.get(i + n - 1) == Some(&b'\''))
            };
            match len {
                Some(n) => {
                    out.extend(std::iter::repeat_n(b' ', n));
                    i += n;
                }
                None => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The end of the item starting at `from`: its `;`, or its balanced `{…}`, whichever comes first.
fn item_end(s: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < s.len() {
        match s[i] {
            b';' => return i + 1,
            b'{' => {
                let mut depth = 0;
                while i < s.len() {
                    match s[i] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                return i + 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                return s.len();
            }
            _ => i += 1,
        }
    }
    s.len()
}

/// Removes every `#[cfg(test)]` item; returns the rest and the names of test modules declared
/// as files (`#[cfg(test)] mod tests;`).
fn strip_test_items(code: &str) -> (String, BTreeSet<String>) {
    let mut s = code.as_bytes().to_vec();
    let mut test_mods = BTreeSet::new();
    let marker = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(p) = s[from..].windows(marker.len()).position(|w| w == marker) {
        let start = from + p;
        let end = item_end(&s, start + marker.len());
        let item = String::from_utf8_lossy(&s[start + marker.len()..end]).into_owned();
        let words: Vec<&str> = item
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(i) = words.iter().position(|w| *w == "mod")
            && item.trim_end().ends_with(';')
            && let Some(name) = words.get(i + 1)
        {
            test_mods.insert((*name).to_owned());
        }
        for c in &mut s[start..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
    (String::from_utf8_lossy(&s).into_owned(), test_mods)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a `use` tree (`crate::a::{self, b::C as D, e::*}`) into paths and bound names.
fn expand_use(prefix: &[String], tree: &str, out: &mut Vec<Use>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    // Split at top-level commas when the tree is a brace group.
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(prefix, &inner[start..], out);
        return;
    }
    let (head, rest) = match tree.find("::") {
        Some(i) => (&tree[..i], Some(&tree[i + 2..])),
        None => (tree, None),
    };
    let head = head.trim();
    match rest {
        Some(rest) => {
            let mut p = prefix.to_vec();
            p.push(head.to_owned());
            expand_use(&p, rest, out);
        }
        None if head == "*" => out.push(Use {
            path: prefix.to_vec(),
            name: None,
        }),
        None => {
            let (segment, alias) = match head.split_once(" as ") {
                Some((s, a)) => (s.trim(), Some(a.trim())),
                None => (head, None),
            };
            let mut path = prefix.to_vec();
            let name = if segment == "self" {
                prefix.last().cloned()
            } else {
                path.push(segment.to_owned());
                Some(segment.to_owned())
            };
            out.push(Use {
                path,
                name: alias.map(str::to_owned).or(name),
            });
        }
    }
}

/// The module's `use` trees, the other paths it writes, and the child modules it declares.
fn parse_module(code: &str) -> Module {
    let mut m = Module::default();
    let mut rest = String::with_capacity(code.len());
    let mut i = 0;
    let b = code.as_bytes();
    while i < b.len() {
        let boundary = i == 0 || !is_ident(b[i - 1] as char);
        if boundary
            && code[i..].starts_with("use")
            && code[i + 3..].starts_with(char::is_whitespace)
        {
            let end = code[i..].find(';').map_or(code.len(), |p| i + p);
            expand_use(&[], &code[i + 3..end], &mut m.uses);
            rest.push_str(&" ".repeat(end - i));
            i = end;
            continue;
        }
        if boundary
            && code[i..].starts_with("mod")
            && code[i + 3..].starts_with(char::is_whitespace)
        {
            let name: String = code[i + 3..]
                .trim_start()
                .chars()
                .take_while(|&c| is_ident(c))
                .collect();
            if !name.is_empty() {
                m.children.insert(name);
            }
        }
        let c = code[i..].chars().next().unwrap_or(' ');
        rest.push(c);
        i += c.len_utf8();
    }
    // Paths in code: `a::b::c` not preceded by `::` (which would make it part of a longer one).
    let r = rest.as_bytes();
    let mut i = 0;
    while i < r.len() {
        let starts =
            is_ident(r[i] as char) && (i == 0 || !(is_ident(r[i - 1] as char) || r[i - 1] == b':'));
        if !starts {
            i += 1;
            continue;
        }
        let mut segs = vec![];
        let mut j = i;
        loop {
            let s = j;
            while j < r.len() && is_ident(r[j] as char) {
                j += 1;
            }
            segs.push(rest[s..j].to_owned());
            if rest[j..].starts_with("::") && rest[j + 2..].starts_with(is_ident) {
                j += 2;
            } else {
                break;
            }
        }
        if segs.len() > 1 {
            m.paths.push(segs);
        }
        i = j.max(i + 1);
    }
    m
}

/// Every non-test module of the crate in `src`, by module path (`[]` is the crate root).
pub(crate) fn crate_modules(src: &Path) -> BTreeMap<ModPath, Module> {
    let mut files = vec![];
    let mut todo = vec![src.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p != src.join("bin") {
                    todo.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") && p != src.join("main.rs") {
                files.push(p);
            }
        }
    }
    let mut modules = BTreeMap::new();
    let mut test_files = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap_or(file);
        let mut path: ModPath = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
            path.pop();
        }
        let text = fs::read_to_string(file).unwrap_or_default();
        let (code, test_mods) = strip_test_items(&strip_comments_and_strings(&text));
        for t in test_mods {
            let mut p = path.clone();
            p.push(t);
            test_files.insert(p);
        }
        modules.insert(path, parse_module(&code));
    }
    // Test modules, and everything under them.
    modules.retain(|p, _| !test_files.iter().any(|t| p.starts_with(t)));
    modules
}

/// The module a path written in `from` names (following `use` re-exports), if it is one of the
/// crate's.
fn resolve(
    modules: &BTreeMap<ModPath, Module>,
    from: &ModPath,
    segs: &[String],
    depth: u32,
) -> Option<ModPath> {
    let first = segs.first()?;
    let (mut base, mut rest): (ModPath, &[String]) = match first.as_str() {
        "crate" => (vec![], &segs[1..]),
        "self" => (from.clone(), &segs[1..]),
        "super" => {
            let mut base = from.clone();
            let mut rest = segs;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            (base, rest)
        }
        name if modules.get(from).is_some_and(|m| m.children.contains(name)) => {
            (from.clone(), segs)
        }
        _ => return None,
    };
    while let Some(next) = rest.first() {
        let mut candidate = base.clone();
        candidate.push(next.clone());
        if !modules.contains_key(&candidate) {
            break;
        }
        base = candidate;
        rest = &rest[1..];
    }
    // An item the module only imports: the module it comes from.
    if let Some(item) = rest.first()
        && depth < 8
        && let Some(module) = modules.get(&base)
        && let Some(u) = module.uses.iter().find(|u| u.name.as_ref() == Some(item))
        && let Some(origin) = resolve(modules, &base, &u.path, depth + 1)
    {
        return Some(origin);
    }
    Some(base)
}

/// Which modules each module uses.
pub(crate) fn edges(modules: &BTreeMap<ModPath, Module>) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mut out: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (path, m) in modules {
        let targets = out.entry(path.clone()).or_default();
        let written = m.uses.iter().map(|u| &u.path).chain(&m.paths);
        for segs in written {
            // A module's own ancestors are not edges: a child is part of its parent's
            // implementation (it sees the parent's private items by design), and the parent
            // declares it; what counts is modules reaching each other sideways.
            if let Some(t) = resolve(modules, path, segs, 0)
                && !path.starts_with(&t)
                && modules.contains_key(&t)
            {
                targets.insert(t);
            }
        }
    }
    out
}

fn name(p: &ModPath) -> String {
    if p.is_empty() {
        "crate".into()
    } else {
        p.join("::")
    }
}

/// One cycle per strongly connected group of modules, as `a -> b -> a`.
pub(crate) fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<String> {
    let mut found = vec![];
    let mut reported: BTreeSet<ModPath> = BTreeSet::new();
    for start in edges.keys() {
        if reported.contains(start) {
            continue;
        }
        // Breadth-first from `start` back to `start`: the shortest cycle through it.
        let mut prev: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closed = None;
        while let Some(at) = queue.pop_front() {
            for next in edges.get(at).into_iter().flatten() {
                if next == start {
                    closed = Some(at);
                    break;
                }
                if !prev.contains_key(next) {
                    prev.insert(next, at);
                    queue.push_back(next);
                }
            }
            if closed.is_some() {
                break;
            }
        }
        let Some(mut at) = closed else {
            continue;
        };
        // Back from the last module to `start`, then turned around: start -> … -> start.
        let mut cycle = vec![start.clone()];
        while at != start {
            cycle.push(at.clone());
            at = prev[at];
        }
        cycle.push(start.clone());
        cycle.reverse();
        reported.extend(cycle.iter().cloned());
        found.push(cycle.iter().map(name).collect::<Vec<_>>().join(" -> "));
    }
    found
}

/// Every import cycle of every crate under `root`, as `crate: a -> b -> a`.
pub(crate) fn import_cycles(root: &Path) -> (Vec<String>, usize) {
    let mut found = vec![];
    let mut checked = 0;
    for krate in CRATES {
        let modules = crate_modules(&root.join(krate).join("src"));
        checked += modules.len();
        for cycle in cycles(&edges(&modules)) {
            found.push(format!("{krate}: {cycle}"));
        }
    }
    (found, checked)
}
