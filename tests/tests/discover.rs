//! Image discovery and Helm repository charts through the bundler's library, with the real helm
//! (v3 and v4) and a real HTTP server on loopback: discovery finds the images a chart renders
//! with the spec's values and the ones it only declares in annotations, and a chart that
//! `helm package` and `helm repo index` published is fetched, checked and discovered.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use sensei_bundler::chart::package_dir;
use sensei_bundler::chart::repo::{RepoError, fetch_repo_chart};
use sensei_bundler::discover::{Discovered, discover_images};
use sensei_core::digest::Digest;
use sensei_tests::bins::run_ok;
use sensei_tests::charts::{
    API_IMAGE, DISCOVERY_CHART, DISCOVERY_VERSION, INIT_IMAGE, METRICS_IMAGE, MIGRATE_IMAGE,
    write_discovery_chart,
};
use sensei_tests::rig::{StaticServer, helm, helm4};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn assert_found(found: &Discovered, rendered: &[&str]) {
    assert_eq!(found.rendered, set(rendered));
    assert_eq!(
        found.declared,
        set(&[API_IMAGE, METRICS_IMAGE, MIGRATE_IMAGE]),
        "annotations are read whatever the values"
    );
}

#[test]
fn discovery_finds_rendered_and_declared_images_with_helm_3_and_4() {
    let dir = tempfile::tempdir().unwrap();
    write_discovery_chart(dir.path()).unwrap();
    let chart = package_dir(dir.path(), 0).unwrap();
    let metrics_on = serde_json::json!({"metrics": {"enabled": true}});
    for helm in [helm(), helm4()] {
        // Default values: the metrics image is not rendered, so only the annotation names it.
        let off = discover_images(&helm, &chart, None).unwrap();
        assert_found(&off, &[API_IMAGE, INIT_IMAGE]);
        assert!(!off.rendered.contains(METRICS_IMAGE) && off.declared.contains(METRICS_IMAGE));

        // The spec's values reach helm template: the optional feature's image renders too.
        let on = discover_images(&helm, &chart, Some(&metrics_on)).unwrap();
        assert_found(&on, &[API_IMAGE, INIT_IMAGE, METRICS_IMAGE]);
        assert_eq!(
            on.all(),
            [API_IMAGE, INIT_IMAGE, METRICS_IMAGE, MIGRATE_IMAGE]
                .into_iter()
                .collect(),
            "{}",
            helm.display()
        );
    }
}

/// `helm package` + `helm repo index` into `repo/`; returns the `.tgz` bytes.
fn publish(chart_dir: &Path, repo: &Path) -> Vec<u8> {
    run_ok(
        Command::new(helm())
            .arg("package")
            .arg(chart_dir)
            .arg("-d")
            .arg(repo),
    );
    run_ok(Command::new(helm()).args(["repo", "index"]).arg(repo));
    std::fs::read(repo.join(format!("{DISCOVERY_CHART}-{DISCOVERY_VERSION}.tgz"))).unwrap()
}

#[tokio::test]
async fn a_chart_from_a_helm_repository_is_checked_and_discovered() {
    let dir = tempfile::tempdir().unwrap();
    let chart_dir = dir.path().join("chart");
    let repo_dir = dir.path().join("repo");
    write_discovery_chart(&chart_dir).unwrap();
    let tgz = publish(&chart_dir, &repo_dir);
    let server = StaticServer::with_prefix(&repo_dir, "charts");
    let http = sensei_registry::Registry::new(sensei_registry::ClientSettings::default()).unwrap();
    let repo = url::Url::parse(&server.url()).unwrap();
    let version = semver::Version::parse(DISCOVERY_VERSION).unwrap();

    let fetched = fetch_repo_chart(&http, &repo, DISCOVERY_CHART, &version)
        .await
        .unwrap();
    assert_eq!(fetched.chart.content_tgz, tgz, "kept byte for byte");
    assert_eq!(
        fetched.index_digest,
        Some(Digest::of(&tgz)),
        "checked against helm's index"
    );
    assert_eq!(server.count("GET", "/charts/index.yaml"), 1);
    let found = discover_images(&helm(), &fetched.chart, None).unwrap();
    assert_found(&found, &[API_IMAGE, INIT_IMAGE]);

    // The repository changes the file under its index: refused, naming both digests.
    std::fs::write(
        repo_dir.join(format!("{DISCOVERY_CHART}-{DISCOVERY_VERSION}.tgz")),
        [&tgz[..], b"tampered"].concat(),
    )
    .unwrap();
    let err = fetch_repo_chart(&http, &repo, DISCOVERY_CHART, &version)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Integrity { .. }), "{err}");
    assert!(
        err.to_string().contains(&Digest::of(&tgz).to_string()),
        "{err}"
    );
}
