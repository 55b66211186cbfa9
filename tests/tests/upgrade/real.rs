//! Real upgrades against a registry: the push first, then helm pulls the pushed chart by its
//! signed digest (plain, and TLS with auth through a Docker config); the success branch
//! (revision, state file, rollback command) through the stand-in for `helm upgrade`.

use super::standin::{Upgrade, helm_standin_for_upgrade};
use super::*;

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
    let standin = helm_standin_for_upgrade(&r, &before, Upgrade::Succeeds { after: &after });
    let out = run(r.sandboxed(
        r.release(&r.b.tgz, &registry.host(), &standin.script)
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
        format!(
            "{} rollback demo {previous} -n sensei",
            standin.script.display()
        )
    );
    // helm upgrade got the pushed chart, pinned by the signed digest, and the override.
    let args = std::fs::read_to_string(&standin.upgrade_args).unwrap();
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
