//! `sensei-loader upgrade` against the real Helm: the exact `helm upgrade` arguments, the
//! compatibility check and rollback guard with their overrides, and the exit codes of bad input,
//! a missing helm and an unreachable cluster.
//!
//! There is no Kubernetes cluster here. Helm 4 runs `upgrade --install --dry-run=client` of a
//! release that does not exist yet with `HELM_DRIVER=memory`; a deployed release is simulated by
//! pre-populating the memory driver (`HELM_MEMORY_DRIVER_DATA`, a YAML list of releases) so that
//! the real `helm list` reports it. Helm 4's dry run of an *upgrade* (unlike an install) still
//! asks a cluster for its version, so tests that must get past the compatibility check with a
//! deployed release run helm through a two-line wrapper: `list` sees the deployed release, every
//! other command the empty store. Both are the real binary.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sensei_tests::bins::{assert_exit, loader, run, stderr};
use sensei_tests::rig::tools::{helm, helm4};
use sensei_tests::scene::Built;

/// Dry runs through the real Helm 4 and Helm 3: the exact arguments, from every bundle form.
mod dry_run;
/// Bad input (exit 2) and a cluster that cannot be reached (exit 3).
mod failures;
/// The compatibility check and the rollback guard: each refusal, then its override.
mod guard;
/// Real upgrades: the push first, then helm pulls the pushed chart by its signed digest (TLS
/// and auth too); the success branch through a stand-in for `helm upgrade`.
mod real;
/// A stand-in for `helm upgrade`, and for that command only (no cluster can run here).
mod standin;
/// SIGTERM, SIGINT and SIGHUP stop an upgrade: during its push helm upgrade never starts;
/// while helm upgrade runs, helm is sent the signal and the message gives the rollback.
mod stop;

const REGISTRY: &str = "127.0.0.1:5000/mirror";

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// A signed demo bundle (demo 1.2.0, chart demo 1.2.0) and a sandbox for helm and the state.
struct Rig {
    b: Built,
    /// The memory driver's data: empty, so helm sees no release.
    empty: PathBuf,
}

impl Rig {
    /// The demo chart's manifest digest, as the signed bundle.json lists it.
    fn chart_digest(&self) -> String {
        sensei_tests::scene::bundle_json(&self.b.tar)["charts"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn new() -> Self {
        Self::with(Built::new())
    }

    /// A rig around bundles the caller built (e.g. with a big layer).
    fn with(b: Built) -> Self {
        let empty = b.path().join("no-releases.yaml");
        std::fs::write(&empty, "").unwrap();
        Self { b, empty }
    }

    fn state_dir(&self) -> PathBuf {
        self.b.path().join("state")
    }

    /// `sensei-loader upgrade BUNDLE --key <public>`.
    fn command(&self, bundle: &Path) -> Command {
        let mut cmd = loader();
        cmd.arg("upgrade")
            .arg(bundle)
            .arg("--key")
            .arg(&self.b.public);
        cmd
    }

    /// [`Self::command`] to `registry`, release `demo` in namespace `sensei`, with `helm` and
    /// the state dir.
    fn release(&self, bundle: &Path, registry: &str, helm: &Path) -> Command {
        let mut cmd = self.command(bundle);
        cmd.args(["--registry", registry, "--release", "demo", "-n", "sensei"])
            .arg("--helm")
            .arg(helm)
            .arg("--state-dir")
            .arg(self.state_dir());
        cmd
    }

    /// Helm sandboxed: its own config/cache/data dirs, the memory driver reading `releases`, and
    /// a kubeconfig that reaches nothing.
    fn sandboxed<'c>(&self, cmd: &'c mut Command, releases: &Path) -> &'c mut Command {
        let home = self.b.path().join("helm-home");
        cmd.env("HELM_DRIVER", "memory")
            .env("HELM_MEMORY_DRIVER_DATA", releases)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("KUBECONFIG", self.b.path().join("no-kubeconfig"))
    }

    /// [`Self::release`] to [`REGISTRY`] plus `extra`, sandboxed with the memory driver reading
    /// `releases`.
    fn run(&self, bundle: &Path, helm: &Path, releases: &Path, extra: &[&str]) -> Output {
        run(self.sandboxed(self.release(bundle, REGISTRY, helm).args(extra), releases))
    }

    /// Upgrade with nothing deployed.
    fn upgrade(&self, bundle: &Path, helm: &Path, extra: &[&str]) -> Output {
        self.run(bundle, helm, &self.empty, extra)
    }

    /// Upgrade the `.tar.gz` with the memory driver holding `deployed`.
    fn run_with_deployed(&self, deployed: &Path, helm: &Path, extra: &[&str]) -> Output {
        self.run(&self.b.tgz, helm, deployed, extra)
    }

    /// A memory-driver file holding release `demo` at `revision`, running chart demo `version`.
    fn deployed(&self, version: &str, revision: u32) -> PathBuf {
        let path = self.b.path().join(format!("deployed-{version}.yaml"));
        std::fs::write(
            &path,
            format!(
                "- name: demo\n  namespace: sensei\n  version: {revision}\n  info:\n    \
                 status: deployed\n    first_deployed: \"2026-01-01T00:00:00Z\"\n    \
                 last_deployed: \"2026-01-02T00:00:00Z\"\n  chart:\n    metadata:\n      \
                 apiVersion: v2\n      name: demo\n      version: {version}\n      \
                 appVersion: \"{version}\"\n  manifest: \"\"\n"
            ),
        )
        .unwrap();
        path
    }

    /// The release's last revision as the real Helm 4 reports it (`helm history`) from the
    /// memory driver holding `releases`: the truth the loader's revisions are checked against.
    fn helm_revision(&self, releases: &Path) -> u64 {
        let mut cmd = Command::new(helm4());
        cmd.args(["history", "demo", "-n", "sensei", "-o", "json"]);
        let out = run(self.sandboxed(&mut cmd, releases));
        assert_exit(&out, 0);
        let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        history
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["revision"].as_u64().unwrap())
            .max()
            .unwrap()
    }

    /// The real Helm 4 where `list` reads `deployed` and everything else the empty store.
    fn helm_with_deployed(&self, deployed: &Path) -> PathBuf {
        let script = self.b.path().join("helm-deployed");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ \"$1\" = list ]; then HELM_MEMORY_DRIVER_DATA='{}' exec '{}' \"$@\"; fi\n\
                 HELM_MEMORY_DRIVER_DATA='{}' exec '{}' \"$@\"\n",
                deployed.display(),
                helm4().display(),
                self.empty.display(),
                helm4().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }
}
