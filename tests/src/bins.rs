//! The binaries under test, built from the current sources, and helpers to run them (a signed
//! bundle built from fixtures is `scene::Built`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;

use crate::rig::tools::missing_tool;

/// `target/<profile>/NAME`, built from the current sources by this test process's first call.
///
/// Why build rather than only check: a bare `cargo test` compiles the test binaries but not
/// `sensei-bundler`/`sensei-loader`, so after a source change the tests ran the old binaries
/// and passed or failed on code that was no longer there. A staleness check (source mtimes
/// against the binary's) would need to know which files the binary was built from: a changed
/// `#[cfg(test)]` file or dev-dependency rebuilds nothing, and such a check then fails forever
/// with a `cargo build` that does nothing. Cargo already knows exactly what is stale, so this
/// asks it, once per process (a `OnceLock`): when everything is built, as after
/// `scripts/test.sh`'s own `cargo build --workspace`, that is a no-op of about 0.2 s. Test
/// binaries running at the same time wait on cargo's build-directory lock, not on each other's
/// results, and the selection (`-p sensei-bundler -p sensei-loader --bins`) resolves the same
/// features as `--workspace`, so the two never rebuild each other's artifacts.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(build_binaries) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built, although cargo built the binaries: is {name} a binary of \
         sensei-bundler or sensei-loader?",
        path.display()
    );
    path
}

/// Where cargo puts the binaries for the profile (and target) this test executable was built
/// with, and the `cargo build` arguments that build them there.
fn build_plan(exe: &Path) -> Result<(PathBuf, Vec<OsString>), String> {
    // The test executable is `<target-dir>[/<triple>]/<profile>/deps/NAME-HASH`.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: not under target/<profile>/deps", exe.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no profile directory", exe.display()))?;
    let mut args: Vec<OsString> = ["build", "--locked", "--bins", "-p", "sensei-bundler"]
        .into_iter()
        .chain(["-p", "sensei-loader", "--profile"])
        .map(OsString::from)
        .collect();
    // Cargo's `dev` profile builds into `debug/`; every other profile into its own name.
    args.push(if profile == "debug" { "dev" } else { profile }.into());
    let above = profile_dir
        .parent()
        .ok_or_else(|| format!("{}: no target directory", exe.display()))?;
    // Cargo marks its target directory's root with CACHEDIR.TAG; one level lower, the
    // directory is a `--target` triple's.
    let target_dir = if above.join("CACHEDIR.TAG").is_file() {
        above
    } else {
        let triple = above.file_name().unwrap_or_default();
        args.extend(["--target".into(), triple.to_owned()]);
        above.parent().unwrap_or(above)
    };
    args.extend(["--target-dir".into(), target_dir.as_os_str().to_owned()]);
    Ok((profile_dir.to_path_buf(), args))
}

/// Runs `cargo build` for the binaries once; returns their directory, or the error to show.
fn build_binaries() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let (dir, args) = build_plan(&exe)?;
    // The cargo running these tests (`CARGO`), so a toolchain override applies here too.
    // `--locked`: the outer run already resolved Cargo.lock, and a test must never rewrite it.
    // `CARGO_NET_OFFLINE` and the other CARGO_* settings come through the environment.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new(".."));
    let shown = format!(
        "cd {} && {} {}",
        root.display(),
        Path::new(&cargo).display(),
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new(&cargo)
        .args(&args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run `{shown}` to build the binaries under test: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}), so the binaries under test may be stale:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir)
}

pub fn bundler() -> Command {
    Command::new(binary("sensei-bundler"))
}

pub fn loader() -> Command {
    Command::new(binary("sensei-loader"))
}

/// Runs a command, returning its output; panics only if it could not start, naming the
/// missing tool and how to get it when it is not installed.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            panic!("cannot run {cmd:?}: {}", missing_tool(cmd.get_program()))
        }
        panic!("cannot run {cmd:?}: {e}")
    })
}

/// A command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing stdout and stderr when it differs.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// Asserts what a command stopped by `signal` (`"SIGTERM"`) prints with `--json`: the
/// signal's exit code, `stopped by SIGNAL: ...` on stderr, and one JSON document on stdout with
/// the verdict `stopped`, the signal and the exit code. Returns the document and stderr, for
/// what each command adds.
pub fn assert_stopped(out: &Output, signal: &str, code: i32) -> (serde_json::Value, String) {
    assert_exit(out, code);
    let err = stderr(out);
    assert!(err.contains(&format!("stopped by {signal}: ")), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no single JSON document ({e}); stderr:\n{err}"));
    assert_eq!(doc["verdict"], "stopped", "{doc}");
    assert_eq!(doc["signal"], signal, "{doc}");
    assert_eq!(doc["exitCode"], code, "{doc}");
    (doc, err)
}

/// Runs and asserts success, returning stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sensei-bundler create --quiet -f SPEC --key KEY -o OUT`, reproducible (`SOURCE_DATE_EPOCH`);
/// add flags and environment to taste.
pub fn create(spec: &Path, key: &Path, out: &Path) -> Command {
    let mut cmd = bundler();
    cmd.env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["create", "--quiet", "-f"])
        .arg(spec)
        .arg("--key")
        .arg(key)
        .arg("-o")
        .arg(out);
    cmd
}

/// `sensei-loader verify BUNDLE --key PUBLIC` plus extra args.
pub fn verify(bundle: &Path, public: &Path, extra: &[&str]) -> Output {
    verify_many(&[bundle], public, extra)
}

/// `sensei-loader verify ARCHIVE... --key PUBLIC` plus extra args: archives of one release.
pub fn verify_many(archives: &[&Path], public: &Path, extra: &[&str]) -> Output {
    run(loader()
        .arg("verify")
        .args(archives)
        .arg("--key")
        .arg(public)
        .args(extra))
}

/// SOURCE_DATE_EPOCH used by test builds, so bundles are reproducible.
pub const EPOCH: &str = "1767225600";

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(exe: &str) -> (PathBuf, Vec<String>) {
        let (dir, args) = build_plan(Path::new(exe)).unwrap_or_else(|e| panic!("{e}"));
        (
            dir,
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        )
    }

    #[test]
    fn builds_with_the_profile_and_target_dir_of_the_test_executable() {
        let (dir, args) = plan("/w/target/debug/deps/cli-0123");
        assert_eq!(dir, Path::new("/w/target/debug"));
        let args = args.join(" ");
        assert!(args.starts_with("build --locked --bins -p sensei-bundler -p sensei-loader"));
        assert!(args.contains("--profile dev"), "{args}");
        let (dir, args) = plan("/w/out/release/deps/cli-0123");
        assert_eq!(dir, Path::new("/w/out/release"));
        assert!(args.join(" ").contains("--profile release"), "{args:?}");
    }

    #[test]
    fn a_target_triple_directory_is_passed_as_target() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.path().join("CACHEDIR.TAG"), "").unwrap_or_else(|e| panic!("{e}"));
        let exe = root
            .path()
            .join("x86_64-unknown-linux-gnu/debug/deps/cli-0123");
        let (_, args) = plan(&exe.to_string_lossy());
        let args = args.join(" ");
        assert!(args.contains("--target x86_64-unknown-linux-gnu"), "{args}");
        let want = format!("--target-dir {}", root.path().display());
        assert!(args.ends_with(&want), "{args}");
        // Without the marker one level up, the directory above the profile is the target dir.
        let exe = root.path().join("debug/deps/cli-0123");
        let (_, args) = plan(&exe.to_string_lossy());
        assert!(!args.join(" ").contains("--target "), "{args:?}");
    }

    /// The binaries are never older than the sources they are built from: after this test
    /// process's first `binary()`, the bundler is at least as new as every source of it.
    #[test]
    fn the_binaries_are_built_from_the_current_sources() {
        let bundler = binary("sensei-bundler");
        let built = std::fs::metadata(&bundler)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{e}"));
        // Cargo's dep-info beside the binary lists every source file it was built from.
        let dep_info = std::fs::read_to_string(bundler.with_extension("d"))
            .unwrap_or_else(|e| panic!("{}.d: {e}", bundler.display()));
        let sources = dep_info
            .split_once(':')
            .map(|(_, deps)| deps)
            .unwrap_or_default();
        let mut checked = 0;
        for src in sources.split_whitespace().filter(|s| s.ends_with(".rs")) {
            let modified = std::fs::metadata(src).and_then(|m| m.modified());
            if let Ok(modified) = modified {
                checked += 1;
                assert!(
                    modified <= built,
                    "{src} is newer than {}",
                    bundler.display()
                );
            }
        }
        assert!(
            checked > 10,
            "only {checked} sources in {}.d",
            bundler.display()
        );
    }
}

/// A binary running in the background, killed if the test fails before it ends (no stray
/// process streaming into the next test's registry).
#[derive(Debug)]
pub struct Background(Option<Child>);

impl Background {
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")),
        ))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// `true` while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().is_ok_and(|status| status.is_none()))
    }

    /// Waits for the process and returns what it printed (where stdout and stderr are piped).
    pub fn output(mut self) -> Output {
        let child = self.0.take().unwrap_or_else(|| panic!("no process"));
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for the process: {e}"))
    }

    /// Kills the process and waits for it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.0.take() {
            child
                .kill()
                .unwrap_or_else(|e| panic!("killing the process: {e}"));
            let _ = child.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
