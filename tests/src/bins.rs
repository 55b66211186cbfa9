//! The built binaries, and a signed bundle built from fixtures, for tests that run the CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fixtures::{FixtureOptions, FixtureSet};
use crate::scene::Scene;

/// `target/<profile>/NAME`, found from this test executable's location (`target/<profile>/deps/`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace` first (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn bundler() -> Command {
    Command::new(binary("sensei-bundler"))
}

pub fn loader() -> Command {
    Command::new(binary("sensei-loader"))
}

/// Runs a command, returning its output; panics only if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
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
    run(loader()
        .arg("verify")
        .arg(bundle)
        .arg("--key")
        .arg(public)
        .args(extra))
}

/// A fixture set, a key pair and signed bundles (`.tar` and `.tar.gz`) built from it.
#[derive(Debug)]
pub struct Built {
    pub dir: tempfile::TempDir,
    pub fixtures: FixtureSet,
    pub key: PathBuf,
    pub public: PathBuf,
    pub tar: PathBuf,
    pub tgz: PathBuf,
}

/// SOURCE_DATE_EPOCH used by test builds, so bundles are reproducible.
pub const EPOCH: &str = "1767225600";

impl Built {
    pub fn new() -> Self {
        Self::with_options(&FixtureOptions::default())
    }

    pub fn with_options(opts: &FixtureOptions) -> Self {
        let Scene {
            dir,
            fixtures,
            key,
            public,
        } = Scene::with_options(opts);
        let tar = dir.path().join("bundle.tar");
        let tgz = dir.path().join("bundle.tar.gz");
        for out in [&tar, &tgz] {
            run_ok(&mut create(&fixtures.spec_path, &key, out));
        }
        Self {
            dir,
            fixtures,
            key,
            public,
            tar,
            tgz,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Verifies `bundle` with the release key, asserting success; returns the report.
    pub fn verifies(&self, bundle: &Path) -> String {
        let out = self.verify(bundle, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} should verify: {}",
            bundle.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sensei-loader verify BUNDLE --key <public>` plus extra args.
    pub fn verify(&self, bundle: &Path, extra: &[&str]) -> Output {
        verify(bundle, &self.public, extra)
    }
}

impl Default for Built {
    fn default() -> Self {
        Self::new()
    }
}
