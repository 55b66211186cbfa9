//! Bad input exits 2 naming what is wrong (a flag, `--chart`, `--registry`, a values file, the
//! helm path); a cluster that cannot be reached exits 3 and says so.

use super::*;

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
