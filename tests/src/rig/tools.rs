//! Where the rig's external tools are, and a hard failure when one is missing: the end-to-end
//! tests must fail, not skip, without the rig (CI runs `scripts/setup.sh` first).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The rig directory `scripts/setup.sh` installs into: `$SENSEI_RIG`, else `.rig` at the
/// workspace root (the parent of this crate's manifest dir).
pub fn rig_dir() -> PathBuf {
    match env::var_os("SENSEI_RIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or_else(|| Path::new(".."))
            .join(".rig"),
    }
}

/// The real Helm 3 (`<rig>/bin/helm`); panics if it is not installed.
pub fn helm() -> PathBuf {
    require(rig_dir().join("bin").join("helm"))
}

/// The real Helm 4 (`<rig>/bin/helm4`); panics if it is not installed.
pub fn helm4() -> PathBuf {
    require(rig_dir().join("bin").join("helm4"))
}

/// The path of `tool`: a path (anything with a `/`) that must be an executable file, or a name
/// looked up on `PATH`. Panics with the fix if it is missing.
pub fn require(tool: impl AsRef<Path>) -> PathBuf {
    let tool = tool.as_ref();
    let found = if tool.components().count() > 1 || tool.is_absolute() {
        is_executable(tool).then(|| tool.to_path_buf())
    } else {
        env::var_os("PATH").and_then(|path| {
            env::split_paths(&path)
                .map(|dir| dir.join(tool))
                .find(|p| is_executable(p))
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "{} not found: run scripts/setup.sh (the end-to-end tests need the real rig: \
             docker-registry, skopeo, curl, openssl, htpasswd, helm, helm4)",
            tool.display()
        )
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `PATH` with `dir` in front, for running a command that must find a tool the test wrote
/// (e.g. a `docker-credential-NAME` helper): `cmd.env("PATH", path_with(dir))`.
pub fn path_with(dir: &Path) -> OsString {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(path) = env::var_os("PATH") {
        dirs.extend(env::split_paths(&path));
    }
    env::join_paths(dirs).unwrap_or_else(|e| panic!("cannot put {} on PATH: {e}", dir.display()))
}
