//! Never destroy what is not ours: what `create -o` and `sign -o` refuse to replace, what an
//! interrupted or killed build leaves (nothing, or locked files the next run sweeps), the disk
//! preflight on a small tmpfs, path flags that exit 2 naming the flag, and a pipe given to push.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sensei_tests::bins::{assert_exit, bundler, create, loader, run, run_ok, stderr};
use sensei_tests::fixtures::FixtureOptions;
use sensei_tests::rig::{FaultProxy, Registry};
use sensei_tests::scene::{Scene, temporary_leftovers};

/// A full disk found by the preflight, before any layer is downloaded.
mod disk;
/// Path flags that name directories or missing files, and a pipe given to push.
mod inputs;
/// What `create -o` and `sign -o` refuse to replace, and the bundle they may.
mod refused;
/// Builds stopped by a signal (nothing left) or killed (locked files the next run sweeps).
mod stops;

const MIB: u64 = 1024 * 1024;

fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(fs::read(path).unwrap()))
}

/// Every name in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Tests that make device nodes or mount a tmpfs say so when they cannot, instead of passing.
fn require_root(what: &str) {
    let uid = run_ok(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "this test needs root to {what}; run it as root (scripts/test.sh does in CI)"
    );
}

fn create_cmd(scene: &Scene, spec: &Path, out: &Path) -> Command {
    let mut cmd = create(spec, &scene.key, out);
    cmd.env("DOCKER_CONFIG", scene.path("no-docker-config"));
    cmd
}
