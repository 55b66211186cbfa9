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
        let b = Built::new();
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

#[test]
fn dry_run_runs_real_helm4_with_the_exact_arguments() {
    let r = Rig::new();
    let a = r.b.path().join("a.yaml");
    let b = r.b.path().join("b.yaml");
    std::fs::write(&a, "image:\n  tag: 1.2.0\n").unwrap();
    std::fs::write(&b, "replicas: 1\n").unwrap();
    let out = r.upgrade(
        &r.b.tgz,
        &helm4(),
        &[
            "--dry-run",
            "--json",
            "-f",
            a.to_str().unwrap(),
            "--set",
            "global.security.allowInsecureImages=true",
            "-f",
            b.to_str().unwrap(),
            "--set",
            "x=1",
        ],
    );
    assert_exit(&out, 0);
    let doc = json(&out);
    let report = &doc["report"];
    assert_eq!(doc["verdict"], "dryRun");
    let args: Vec<String> = report["helm"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    // The chart is the package taken from the verified bundle: no registry needed.
    assert!(args[3].ends_with("/demo-1.2.0.tgz"), "{args:?}");
    let mut expected: Vec<String> = [
        "upgrade",
        "--install",
        "demo",
        &args[3],
        "--version",
        "1.2.0",
    ]
    .map(String::from)
    .to_vec();
    expected.extend(
        [
            "-n",
            "sensei",
            "--set",
            "global.imageRegistry=127.0.0.1:5000/mirror",
            "-f",
            a.to_str().unwrap(),
            "-f",
            b.to_str().unwrap(),
            "--set",
            "global.security.allowInsecureImages=true",
            "--set",
            "x=1",
            "--wait",
            "--timeout",
            "15m",
            "--dry-run=client",
        ]
        .map(String::from),
    );
    assert_eq!(args, expected);
    // The command was announced before it ran, exactly as reported.
    let err = stderr(&out);
    let command = report["helm"]["command"].as_str().unwrap();
    assert!(err.contains(&format!("running: {command}")), "{err}");
    // Helm really rendered the chart, with every image at the internal registry.
    assert!(
        err.contains("image: \"127.0.0.1:5000/mirror/sensei/api:1.2.0\""),
        "{err}"
    );
    assert_eq!(report["compatibility"]["verdict"], "freshInstall");
    assert_eq!(report["revision"], 1);
    assert_eq!(
        report["rollbackCommand"],
        format!("{} uninstall demo -n sensei", helm4().display())
    );
    assert_eq!(
        report["chart"]["url"],
        "oci://127.0.0.1:5000/mirror/charts/demo"
    );
    // The dry run shows what a real run would install: the chart pinned by its signed digest.
    assert_eq!(
        report["chart"]["reference"],
        format!(
            "oci://127.0.0.1:5000/mirror/charts/demo@{}",
            r.chart_digest()
        )
    );
    let pushed = &report["push"];
    assert_eq!(pushed["pushed"], false);
    assert_eq!(
        pushed["charts"][0]["target"],
        "127.0.0.1:5000/mirror/charts/demo:1.2.0"
    );
    let targets: Vec<&str> = pushed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    assert!(
        targets.contains(&"127.0.0.1:5000/mirror/sensei/api:1.2.0"),
        "{targets:?}"
    );
    // A dry run records nothing.
    assert!(!r.state_dir().exists());
}

#[test]
fn dry_run_works_from_a_tar_and_an_extracted_directory() {
    let r = Rig::new();
    let dir = r.b.path().join("extracted");
    std::fs::create_dir(&dir).unwrap();
    let tar = run(Command::new("tar")
        .arg("-xzf")
        .arg(&r.b.tgz)
        .arg("-C")
        .arg(&dir));
    assert!(tar.status.success());
    for bundle in [&r.b.tar, &dir] {
        let out = r.upgrade(bundle, &helm4(), &["--dry-run", "--quiet"]);
        assert_exit(&out, 0);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("DRY RUN  demo 1.2.0"), "{text}");
        assert!(
            text.trim_end()
                .ends_with(&format!("{} uninstall demo -n sensei", helm4().display())),
            "{text}"
        );
        // --quiet keeps helm's own output off stderr.
        assert!(!stderr(&out).contains("helm|"), "{}", stderr(&out));
    }
}

#[test]
fn a_major_jump_is_refused_with_versions_rule_and_flag_then_allowed_with_allow_major() {
    let r = Rig::new();
    let deployed = r.deployed("0.9.0", 3);
    // The real helm list reads the pre-populated memory driver.
    let out = r.run_with_deployed(&deployed, &helm4(), &["--dry-run"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for part in [
        "0.9.0",
        "1.2.0",
        "revision 3",
        "\">=1.1.0, <1.3.0\"",
        "--allow-major",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    let out = r.run_with_deployed(&deployed, &helm4(), &["--dry-run", "--json"]);
    assert_exit(&out, 1);
    assert_eq!(json(&out)["verdict"], "rejected");

    let wrapper = r.helm_with_deployed(&deployed);
    let out = r.run_with_deployed(
        &deployed,
        &wrapper,
        &["--dry-run", "--allow-major", "--json"],
    );
    assert_exit(&out, 0);
    let report = &json(&out)["report"];
    assert_eq!(report["compatibility"]["verdict"], "majorJump");
    assert_eq!(report["compatibility"]["overriddenBy"], "--allow-major");
    assert_eq!(report["deployed"]["chartVersion"], "0.9.0");
    // What helm says is deployed, plus the one revision the upgrade adds.
    assert_eq!(report["revision"], r.helm_revision(&deployed) + 1);
    assert_eq!(
        report["rollbackCommand"],
        format!("{} rollback demo 3 -n sensei", wrapper.display())
    );
}

#[test]
fn a_downgrade_from_the_deployed_version_is_refused_then_allowed() {
    let r = Rig::new();
    let deployed = r.deployed("1.3.0", 5);
    let out = r.run_with_deployed(&deployed, &helm4(), &["--dry-run"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("1.3.0") && err.contains("1.2.0") && err.contains("--allow-downgrade"),
        "{err}"
    );
    let wrapper = r.helm_with_deployed(&deployed);
    let out = r.run_with_deployed(
        &deployed,
        &wrapper,
        &["--dry-run", "--allow-downgrade", "--json"],
    );
    assert_exit(&out, 0);
    let report = &json(&out)["report"];
    assert_eq!(report["compatibility"]["verdict"], "downgrade");
    assert_eq!(report["compatibility"]["overriddenBy"], "--allow-downgrade");
    assert_eq!(
        report["rollbackCommand"],
        format!("{} rollback demo 5 -n sensei", wrapper.display())
    );
}

#[test]
fn an_upgrade_within_the_rule_goes_through() {
    let r = Rig::new();
    let deployed = r.deployed("1.1.0", 2);
    let wrapper = r.helm_with_deployed(&deployed);
    let out = r.run_with_deployed(&deployed, &wrapper, &["--dry-run", "--json"]);
    assert_exit(&out, 0);
    let report = &json(&out)["report"];
    assert_eq!(report["compatibility"]["verdict"], "allowed");
    assert!(report["compatibility"].get("overriddenBy").is_none());
    assert_eq!(report["revision"], r.helm_revision(&deployed) + 1);
}

#[test]
fn a_bundle_older_than_the_last_one_loaded_here_is_refused_then_allowed() {
    let r = Rig::new();
    std::fs::create_dir_all(r.state_dir()).unwrap();
    let state = r.state_dir().join("demo.json");
    let recorded = r#"{"name": "demo", "version": "1.3.0", "loadedAt": "2026-03-01T00:00:00Z"}"#;
    std::fs::write(&state, recorded).unwrap();
    let out = r.upgrade(&r.b.tgz, &helm4(), &["--dry-run"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("version 1.2.0 is older than 1.3.0") && err.contains("--allow-downgrade"),
        "{err}"
    );
    let out = r.upgrade(
        &r.b.tgz,
        &helm4(),
        &["--dry-run", "--allow-downgrade", "--json"],
    );
    assert_exit(&out, 0);
    assert_eq!(json(&out)["report"]["lastLoaded"]["version"], "1.3.0");
    // A dry run leaves the record alone.
    assert_eq!(std::fs::read_to_string(&state).unwrap(), recorded);

    // A corrupt record stops the upgrade (exit 3) rather than being ignored.
    std::fs::write(&state, "{").unwrap();
    let out = r.upgrade(&r.b.tgz, &helm4(), &["--dry-run"]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let r = Rig::new();
    // No --release.
    let out = run(r
        .command(&r.b.tgz)
        .args(["--registry", REGISTRY, "--dry-run"]));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--release"), "{}", stderr(&out));

    let out = r.upgrade(&r.b.tgz, &helm4(), &["--dry-run", "--chart", "nope"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("--chart nope") && err.contains("demo 1.2.0"),
        "{err}"
    );

    let out = run(r.command(&r.b.tgz).args([
        "--registry",
        "https://registry.internal",
        "--release",
        "demo",
    ]));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--plain-http"), "{}", stderr(&out));

    let out = r.upgrade(
        &r.b.tgz,
        &helm4(),
        &["--dry-run", "-f", "/nonexistent/values.yaml"],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("/nonexistent/values.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_helm_path_exits_2_naming_the_path_and_the_flag() {
    // A path flag naming a missing file is an input error, as every other path flag's.
    let r = Rig::new();
    let missing = r.b.path().join("no-such-helm");
    let out = r.upgrade(&r.b.tgz, &missing, &["--dry-run"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("--helm"),
        "{err}"
    );
}

#[test]
fn an_unreachable_cluster_exits_3_and_says_so() {
    let r = Rig::new();
    let kubeconfig = r.b.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    \
         server: https://127.0.0.1:1\ncontexts:\n- name: x\n  context:\n    cluster: c\n    \
         user: u\ncurrent-context: x\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    // Without the memory driver helm must ask the cluster what is deployed.
    let out = run(r
        .release(&r.b.tgz, REGISTRY, &helm4())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--kube-context", "x", "--dry-run"])
        .env_remove("HELM_DRIVER"));
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("cannot reach the Kubernetes cluster"), "{err}");
    // The cluster flags were passed through to helm.
    assert!(
        err.contains(&format!(
            "--kube-context x --kubeconfig {}",
            kubeconfig.display()
        )),
        "{err}"
    );
}

#[test]
fn helm_3_is_driven_with_its_own_dry_run_flag() {
    // Helm 3 reads the memory driver for `list`, but its dry run needs a cluster: the upgrade
    // gets as far as helm and fails there, clearly, with Helm 3's spelling of --dry-run.
    let r = Rig::new();
    let out = r.upgrade(&r.b.tgz, &helm(), &["--dry-run"]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("cannot reach the Kubernetes cluster"), "{err}");
    let running = err
        .lines()
        .find(|l| l.starts_with("running: "))
        .unwrap_or_else(|| panic!("no command line announced: {err}"));
    assert!(
        running.ends_with("--wait --timeout 15m --dry-run"),
        "{running}"
    );
    assert!(running.contains("--set global.imageRegistry=127.0.0.1:5000/mirror"));
}

#[test]
fn a_real_upgrade_pushes_first_then_helm_pulls_the_pushed_chart() {
    use sensei_tests::rig::{FaultProxy, Registry};
    let r = Rig::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    // No cluster here: helm pulls the chart from the registry, then fails to reach the cluster.
    let out = run(r.sandboxed(
        r.release(&r.b.tgz, &proxy.host(), &helm4())
            .args(["--plain-http", "--quiet"]),
        &r.empty,
    ));
    assert_exit(&out, 3);
    let err = stderr(&out);
    // Pushed before helm ran: every image tag and the chart are at the target.
    for image in &r.b.fixtures.images {
        let path = image
            .reference
            .split_once('/')
            .map(|(_, p)| p)
            .unwrap()
            .to_owned();
        let (repo, tag) = path.rsplit_once(':').unwrap();
        assert!(
            registry.tags(repo).contains(&tag.to_owned()),
            "{repo}:{tag} not pushed; {err}"
        );
    }
    assert_eq!(registry.tags("charts/demo"), vec!["1.2.0".to_owned()]);
    // helm got the pushed chart pinned by the digest the bundle signed, and fetched it by that
    // digest, never by its tag (which could have moved since the push).
    let digest = r.chart_digest();
    assert_eq!(
        registry.manifest_digest("charts/demo:1.2.0").as_deref(),
        Some(digest.as_str())
    );
    assert!(
        err.contains(&format!(
            "oci://{}/charts/demo@{digest} --version 1.2.0",
            proxy.host()
        )),
        "{err}"
    );
    assert!(
        proxy.count("GET", &format!("/v2/charts/demo/manifests/{digest}")) >= 1
            && proxy.count("GET", "/v2/charts/demo/manifests/1.2.0") == 0
            && proxy.count("GET", "/v2/charts/demo/blobs/") >= 1,
        "{:?}",
        proxy.requests()
    );
    assert!(err.contains("uninstall demo -n sensei"), "{err}");
    // A failed upgrade records nothing in the state directory.
    assert!(!r.state_dir().join("demo.json").exists());
}

#[test]
fn upgrade_reaches_a_tls_registry_with_auth_through_a_docker_config_for_push_and_helm() {
    use sensei_tests::rig::{DockerConfig, Registry, make_tls};
    let r = Rig::new();
    let registry = Registry::tls_auth("deployer", "upgrade-pw");
    let config = DockerConfig::write(
        &r.b.path().join("docker"),
        &[(&registry.host(), "deployer", "upgrade-pw")],
    );
    // An unrelated CA first: push and helm must trust every --ca-file, not only the first.
    let other_ca = make_tls(&r.b.path().join("other-ca")).ca_cert;
    let out = run(r.sandboxed(
        r.release(&r.b.tgz, &registry.host(), &helm4())
            .arg("--ca-file")
            .arg(&other_ca)
            .arg("--ca-file")
            .arg(registry.ca_file().unwrap())
            .arg("--registry-config")
            .arg(&config),
        &r.empty,
    ));
    // Pushed with the config's credentials; helm pulled the chart with the same file and CA,
    // then stopped at the missing cluster.
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert_eq!(
        registry.tags("charts/demo"),
        vec!["1.2.0".to_owned()],
        "{err}"
    );
    // By the digest the bundle signed.
    let digest = r.chart_digest();
    assert!(
        err.contains(&format!("Pulled: {}/charts/demo@{digest}", registry.host())),
        "{err}"
    );
    assert!(err.contains("cannot reach the Kubernetes cluster"), "{err}");
    assert!(!err.contains("upgrade-pw"), "the password leaked: {err}");
}

/// A stand-in for `helm upgrade`, and for that command only: no Kubernetes cluster can run
/// here, so a real upgrade cannot succeed, yet the loader's success branch (the revision helm
/// reports afterwards, the state file, the rollback command) must be reached by a test. The
/// stand-in records its arguments and, as a successful upgrade would, leaves the memory driver
/// holding the release at `after` (written by the test). Every other command (`version`,
/// `list`, `registry login`, `history`) runs the real Helm 4 on that driver data.
fn helm_standin_for_upgrade(r: &Rig, before: &Path, after: &Path) -> (PathBuf, PathBuf) {
    let current = r.b.path().join("current-releases.yaml");
    std::fs::copy(before, &current).unwrap();
    let log = r.b.path().join("upgrade-args.txt");
    let script = r.b.path().join("helm-upgrade-standin");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = upgrade ]; then\n\
               printf '%s\\n' \"$@\" > '{log}'\n\
               cp '{after}' '{current}'\n\
               echo 'Release \"demo\" has been upgraded. (stand-in for helm upgrade)'\n\
               exit 0\n\
             fi\n\
             HELM_MEMORY_DRIVER_DATA='{current}' exec '{helm}' \"$@\"\n",
            log = log.display(),
            after = after.display(),
            current = current.display(),
            helm = helm4().display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

#[test]
fn a_successful_upgrade_reports_helms_revision_records_the_load_and_offers_the_rollback() {
    use sensei_tests::rig::Registry;
    let r = Rig::new();
    let registry = Registry::plain();
    let before = r.deployed("1.1.0", 3);
    // As if two failed attempts had come between (helm counts them too): the loader must report
    // the revision helm lists afterwards, not compute one.
    let after = r.b.path().join("after.yaml");
    std::fs::write(
        &after,
        std::fs::read_to_string(r.deployed("1.2.0", 6))
            .unwrap()
            .replace(
                "status: deployed",
                "status: deployed\n    description: Upgrade complete",
            ),
    )
    .unwrap();
    let previous = r.helm_revision(&before);
    let (standin, args_log) = helm_standin_for_upgrade(&r, &before, &after);
    let out = run(r.sandboxed(
        r.release(&r.b.tgz, &registry.host(), &standin)
            .args(["--plain-http", "--json"]),
        &before,
    ));
    assert_exit(&out, 0);
    let doc = json(&out);
    let report = &doc["report"];
    assert_eq!(doc["verdict"], "upgraded");
    assert_eq!(report["revision"], r.helm_revision(&after));
    assert_eq!(
        report["rollbackCommand"],
        format!("{} rollback demo {previous} -n sensei", standin.display())
    );
    // helm upgrade got the pushed chart, pinned by the signed digest, and the override.
    let args = std::fs::read_to_string(&args_log).unwrap();
    let digest = r.chart_digest();
    for expected in [
        "upgrade\n--install\ndemo\n".to_owned(),
        format!("oci://{}/charts/demo@{digest}\n", registry.host()),
        format!("global.imageRegistry={}\n", registry.host()),
        "--plain-http\n".to_owned(),
    ] {
        assert!(args.contains(&expected), "{expected:?} not in:\n{args}");
    }
    assert_eq!(
        registry.manifest_digest("charts/demo:1.2.0").as_deref(),
        Some(digest.as_str())
    );
    // The load is recorded: the next older bundle would be refused.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.state_dir().join("demo.json")).unwrap()).unwrap();
    assert_eq!(state["version"], "1.2.0");
}
