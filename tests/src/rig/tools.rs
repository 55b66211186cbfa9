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
    found.unwrap_or_else(|| panic!("{}", missing_tool(tool)))
}

/// What to say when `tool` (a name or a path) is missing: which tool, and how to get it.
/// Tests that need a tool fail with this rather than skip, so a machine without the rig cannot
/// pass them without checking anything.
pub fn missing_tool(tool: impl AsRef<Path>) -> String {
    let tool = tool.as_ref();
    let name = tool.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // Debian package for the tools scripts/setup.sh installs; base-system tools otherwise.
    let package = match name {
        "skopeo" | "docker-registry" | "openssl" | "curl" | "tar" | "gzip" | "hyperfine" => name,
        "htpasswd" => "apache2-utils",
        "mknod" | "mkfifo" | "id" => "coreutils",
        "kill" => "procps",
        "mount" | "umount" => "mount",
        _ => "",
    };
    let how = match name {
        "helm" | "helm4" => format!(
            "run scripts/setup.sh, which installs helm and helm4 under {}, and put that \
             directory on PATH (export PATH={}:$PATH), as scripts/test.sh does",
            rig_dir().join("bin").display(),
            rig_dir().join("bin").display()
        ),
        _ if !package.is_empty() => format!(
            "run scripts/setup.sh (it installs the rig: docker-registry, skopeo, curl, openssl, \
             htpasswd, tar, gzip, helm, helm4), or `apt-get install {package}`"
        ),
        _ => "run scripts/setup.sh (the end-to-end tests need the real rig: docker-registry, \
              skopeo, curl, openssl, htpasswd, helm, helm4)"
            .to_owned(),
    };
    format!("{} not found: {how}", tool.display())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_the_way_to_get_it() {
        let helm = missing_tool(rig_dir().join("bin/helm"));
        assert!(helm.contains("helm not found"), "{helm}");
        assert!(
            helm.contains("scripts/setup.sh") && helm.contains("PATH="),
            "{helm}"
        );
        let htpasswd = missing_tool("htpasswd");
        assert!(htpasswd.starts_with("htpasswd not found"), "{htpasswd}");
        assert!(
            htpasswd.contains("apt-get install apache2-utils"),
            "{htpasswd}"
        );
        assert!(missing_tool("tar").contains("apt-get install tar"));
        let panicked = std::panic::catch_unwind(|| require("sensei-no-such-tool"));
        let message = panicked
            .err()
            .and_then(|p| p.downcast::<String>().ok())
            .map(|m| *m)
            .unwrap_or_default();
        assert!(
            message.starts_with("sensei-no-such-tool not found: run scripts/setup.sh"),
            "{message}"
        );
    }
}
