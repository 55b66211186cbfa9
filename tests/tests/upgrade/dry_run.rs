//! Dry runs through the real Helm 4 and Helm 3: the exact `helm upgrade` arguments, and
//! the same result from a `.tar`, a `.tar.gz` and an extracted directory.

use super::*;

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
