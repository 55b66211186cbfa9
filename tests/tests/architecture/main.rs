//! No module of any crate imports a module that imports it back: each crate's modules form a
//! graph without cycles, so every module can be read, tested and moved with what it uses and
//! nothing that uses it (docs/ARCHITECTURE.md, "Crates and their direction").
//!
//! The scanner reads each crate's `src/**/*.rs` (not its binaries' roots, not `#[cfg(test)]`
//! items or test modules), finds every path into the crate (`use crate::…`, `use super::…`,
//! `self::…`, a child module's name, `use` trees with braces, and the same paths in code), and
//! resolves each to the module that defines the item, following `use` re-exports. An edge goes
//! from the module that writes the path to that module; a cycle fails the test, named.
//!
//! `SENSEI_ARCHITECTURE_ROOT=/path/to/checkout` runs the check on another tree (e.g. an older
//! commit, to see that it finds the cycles that were there).

mod scan;

use std::fs;
use std::path::{Path, PathBuf};

use scan::{crate_modules, cycles, edges, import_cycles};

/// The crates whose modules are checked, by directory.
const CRATES: &[&str] = &["core", "cli", "registry", "bundler", "loader", "tests"];

/// Cycles known and left to their owners, each as the test reports it. The test fails when one
/// is fixed as well as when one appears, so this list only ever shrinks. (The last one,
/// `registry: client::session -> client::upload -> client::session`, went when `Finish` moved
/// to `session`, which `upload` already used.)
const KNOWN: &[&str] = &[];

fn root() -> PathBuf {
    match std::env::var_os("SENSEI_ARCHITECTURE_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or_else(|| Path::new(".."))
            .to_path_buf(),
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let root = root();
    let (found, checked) = import_cycles(&root);
    assert!(
        checked > 50,
        "only {checked} modules found under {}: is the scanner broken?",
        root.display()
    );
    let new: Vec<&String> = found
        .iter()
        .filter(|c| !KNOWN.contains(&c.as_str()))
        .collect();
    let fixed: Vec<&&str> = KNOWN
        .iter()
        .filter(|k| !found.iter().any(|c| c == *k))
        .collect();
    assert!(
        new.is_empty(),
        "import cycles between modules (move what both need into a leaf module, or into \
         sensei-core's content model):\n{}",
        new.iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        fixed.is_empty(),
        "known cycles no longer found, remove them from KNOWN: {fixed:?}"
    );
}

#[test]
fn the_scanner_finds_a_cycle_through_use_trees_re_exports_and_code_paths() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = dir.path().join("demo/src");
    fs::create_dir_all(src.join("push")).unwrap_or_else(|e| panic!("{e}"));
    let files = [
        (
            "lib.rs",
            "pub mod push;\npub mod plan;\npub mod walk;\npub mod leaf;\n",
        ),
        // plan -> walk through a brace tree; walk -> plan through a code path.
        ("plan.rs", "use crate::{leaf, walk::{Walker}};\n"),
        (
            "walk.rs",
            "// crate::leaf in a comment is no edge\nfn f() -> crate::plan::Plan { todo!() }\n\
             const S: &str = \"crate::leaf\";\n",
        ),
        (
            "leaf.rs",
            "pub struct Leaf;\n#[cfg(test)]\nmod tests { use crate::plan; }\n",
        ),
        // A re-export: source imports push's Graph, which push re-exports from graph.
        (
            "push.rs",
            "pub mod graph;\npub mod source;\npub use graph::Graph;\n",
        ),
        (
            "push/graph.rs",
            "use super::source::Kind;\npub struct Graph;\n",
        ),
        ("push/source.rs", "use super::Graph;\npub enum Kind {}\n"),
    ];
    for (path, text) in files {
        fs::write(src.join(path), text).unwrap_or_else(|e| panic!("{e}"));
    }
    let modules = crate_modules(&src);
    let found = cycles(&edges(&modules));
    assert_eq!(
        found,
        [
            "plan -> walk -> plan",
            "push::graph -> push::source -> push::graph",
        ],
        "{modules:#?}"
    );
}
