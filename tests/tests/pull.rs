//! `sensei-bundler create` against real registries (Debian's docker-registry, started by the
//! rig), a Helm HTTP repository and the real helm: what it pulls must be what skopeo sees.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use sensei_tests::bins::{assert_exit, create, run, run_ok, stderr};
use sensei_tests::charts::{
    API_IMAGE, DISCOVERY_CHART, DISCOVERY_VERSION, INIT_IMAGE, METRICS_IMAGE, MIGRATE_IMAGE,
    write_discovery_chart,
};
use sensei_tests::rig::{self, DockerConfig, Failure, FaultProxy, Registry, StaticServer, seed};
use sensei_tests::scene::{Scene, bundle_json, tar_file};

/// The files of a tar, by name.
fn tar_entries(bundle: &Path) -> BTreeSet<String> {
    let out = run_ok(Command::new("tar").arg("-tf").arg(bundle));
    out.lines().map(str::to_owned).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Seeds every fixture image as `sensei/NAME:TAG`; returns the references.
fn seed_all(registry: &Registry, scene: &Scene) -> Vec<String> {
    rig::seed_fixtures(registry, &scene.fixtures, "sensei")
}

/// No temporary file or fetch store may be left beside an output.
fn assert_no_leftovers(dir: &Path, expected: &[&str]) {
    let names: BTreeSet<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(names, expected, "unexpected files in {}", dir.display());
}

#[test]
fn registry_images_match_what_skopeo_reports() {
    let scene = Scene::new();
    let registry = Registry::plain();
    let refs = seed_all(&registry, &scene);
    let spec = scene.spec("spec.yaml", &refs, "");
    let out_dir = scene.path("out");
    fs::create_dir(&out_dir).unwrap();
    let bundle = out_dir.join("b.tar");
    assert_exit(
        &scene.create(&spec, &bundle, &["--plain-http", &registry.host()]),
        0,
    );
    assert_no_leftovers(&out_dir, &["b.tar"]);
    scene.verifies(&bundle);
    // The .tar was written in place, each layer fetched straight to its offset; the .tar.gz
    // through the streaming writer. Decompressed, the second is the first, byte for byte.
    let tgz = out_dir.join("b.tar.gz");
    assert_exit(
        &scene.create(&spec, &tgz, &["--plain-http", &registry.host()]),
        0,
    );
    let gunzipped = Command::new("gzip").arg("-dc").arg(&tgz).output().unwrap();
    assert!(gunzipped.status.success());
    assert!(
        gunzipped.stdout == fs::read(&bundle).unwrap(),
        "the in-place .tar differs"
    );
    fs::remove_file(&tgz).unwrap();

    let manifest = bundle_json(&bundle);
    let ours: BTreeSet<String> = tar_entries(&bundle)
        .into_iter()
        .filter_map(|p| p.strip_prefix("blobs/sha256/").map(str::to_owned))
        .collect();
    // skopeo's view of the same images: `dir:` keeps every blob and manifest by digest.
    let mut theirs = BTreeSet::new();
    for (i, reference) in refs.iter().enumerate() {
        let raw = run_ok(
            Command::new("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{reference}")),
        );
        let digest = format!("sha256:{}", sha256_hex(raw.as_bytes()));
        let entry = manifest["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["reference"] == reference.as_str())
            .unwrap_or_else(|| panic!("{reference} not in bundle.json"));
        assert_eq!(entry["digest"], digest.as_str(), "{reference}");
        assert!(entry["filteredFrom"].is_null());

        let dest = scene.path(&format!("skopeo-{i}"));
        run_ok(
            Command::new("skopeo")
                .args(["copy", "-q", "--all", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("dir:{}", dest.display())),
        );
        theirs.insert(digest.trim_start_matches("sha256:").to_owned());
        for e in fs::read_dir(&dest).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".manifest.json").unwrap_or(&name);
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                theirs.insert(hex.to_owned());
            }
        }
    }
    assert_eq!(ours, theirs, "blob sets differ");

    // Reproducible from a registry too.
    let again = out_dir.join("again.tar");
    assert_exit(
        &scene.create(&spec, &again, &["--plain-http", &registry.host()]),
        0,
    );
    assert_eq!(fs::read(&bundle).unwrap(), fs::read(&again).unwrap());
}

#[test]
fn platform_filter_on_a_registry_index_says_what_it_dropped() {
    let scene = Scene::new();
    let registry = Registry::plain();
    let multi = scene.seed(&registry, "multi:1.2.0");
    let reference = format!("{}/sensei/multi:1.2.0", registry.host());
    let spec = scene.spec_of(&reference);
    let bundle = scene.path("b.tar.gz");
    let out = scene.create(
        &spec,
        &bundle,
        &[
            "--plain-http",
            &registry.host(),
            "--platform",
            "linux/arm64",
        ],
    );
    assert_exit(&out, 0);
    let entry = &bundle_json(&bundle)["images"][0];
    assert_eq!(entry["platforms"], serde_json::json!(["linux/arm64"]));
    assert_eq!(entry["filteredFrom"], multi.digest.as_str());
    assert_ne!(entry["digest"], multi.digest.as_str());
    scene.verifies(&bundle);
}

#[test]
fn tls_and_auth_need_the_ca_and_credentials() {
    let scene = Scene::new();
    let registry = Registry::tls_auth("builder", "s3cret-pw");
    scene.seed(&registry, "api:1.2.0");
    let reference = format!("{}/sensei/api:1.2.0", registry.host());
    let spec = scene.spec_of(&reference);
    let ca = registry.ca_file().expect("ca").to_str().unwrap().to_owned();
    let config = DockerConfig::write(
        &scene.path("docker"),
        &[(&registry.host(), "builder", "s3cret-pw")],
    );
    let config = config.to_str().unwrap();

    let bundle = scene.path("ok.tar");
    let out = scene.create(
        &spec,
        &bundle,
        &["--ca-file", &ca, "--registry-config", config],
    );
    assert_exit(&out, 0);
    scene.verifies(&bundle);

    // The same credentials through a credential helper, found via DOCKER_CONFIG.
    let helper_dir = scene.path("helper");
    let helper = DockerConfig::write_with_helper(
        &helper_dir,
        "senseitest",
        &[(&registry.host(), "builder", "s3cret-pw")],
    );
    let out = run(create(&spec, &scene.key, &scene.path("helper.tar"))
        .env("DOCKER_CONFIG", &helper_dir)
        .env("PATH", helper.path_env())
        .args(["--ca-file", &ca]));
    assert_exit(&out, 0);
    assert!(!helper.calls().is_empty(), "the helper was never asked");

    let no_ca = scene.path("no-ca.tar");
    let out = scene.create(&spec, &no_ca, &["--registry-config", config]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains(&registry.host()), "{err}");
    assert!(err.contains("TLS") && err.contains("--ca-file"), "{err}");
    assert!(!no_ca.exists());

    let no_creds = scene.path("no-creds.tar");
    let out = scene.create(&spec, &no_creds, &["--ca-file", &ca]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains(&registry.host()) && err.contains("401"),
        "{err}"
    );
    assert!(err.contains(&reference), "{err}");
    assert!(err.contains("no credentials were found"), "{err}");
    assert!(!no_creds.exists());

    let wrong = DockerConfig::write(
        &scene.path("docker-wrong"),
        &[(&registry.host(), "builder", "not-the-password")],
    );
    let out = scene.create(
        &spec,
        &scene.path("wrong.tar"),
        &[
            "--ca-file",
            &ca,
            "--registry-config",
            wrong.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains("rejected the credentials") && err.contains("builder"),
        "{err}"
    );
}

#[test]
fn a_corrupted_blob_fails_with_exit_3_and_leaves_nothing() {
    let scene = Scene::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let api = scene.seed(&registry, "api:1.2.0");
    let layer = api.blobs[0].clone();
    proxy.corrupt_blob(&layer);
    let reference = format!("{}/sensei/api:1.2.0", proxy.host());
    let spec = scene.spec_of(&reference);
    let out_dir = scene.path("out");
    fs::create_dir(&out_dir).unwrap();
    let out = scene.create(
        &spec,
        &out_dir.join("b.tar"),
        &["--plain-http", &proxy.host()],
    );
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains(&reference) && err.contains(&layer), "{err}");
    assert_no_leftovers(&out_dir, &[]);
}

#[test]
fn unknown_repositories_and_tags_exit_3_naming_the_reference() {
    let scene = Scene::new();
    let registry = Registry::plain();
    scene.seed(&registry, "api:1.2.0");
    for reference in [
        format!("{}/sensei/nothing:1.2.0", registry.host()),
        format!("{}/sensei/api:9.9.9", registry.host()),
    ] {
        let spec = scene.spec_of(&reference);
        let bundle = scene.path("b.tar");
        let out = scene.create(&spec, &bundle, &["--plain-http", &registry.host()]);
        assert_exit(&out, 3);
        let err = stderr(&out);
        assert!(
            err.contains(&reference) && err.contains("not found"),
            "{err}"
        );
        assert!(!bundle.exists());
    }
}

#[test]
fn rides_through_503s_and_resumes_a_dropped_blob_with_range() {
    let scene = Scene::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let api = scene.seed(&registry, "api:1.2.0");
    let layer = api.blobs[0].clone();
    proxy.fail_with(503, 3, "/blobs/");
    // A rate limiter's 429 says how long to wait (longer than any backoff these retries
    // could reach): that wait is kept.
    proxy.fail(Failure::new(429, 1, "/blobs/").method("GET").retry_after(3));
    proxy.drop_connection_after(100, &layer);
    let reference = format!("{}/sensei/api:1.2.0", proxy.host());
    let spec = scene.spec_of(&reference);
    let bundle = scene.path("b.tar");
    let out = scene.create(&spec, &bundle, &["--plain-http", &proxy.host()]);
    assert_exit(&out, 0);
    scene.verifies(&bundle);
    let resumed = proxy
        .requests()
        .iter()
        .any(|r| r.path.contains(&layer) && r.range.as_deref() == Some("bytes=100-"));
    assert!(
        resumed,
        "no Range request resumed the layer: {:?}",
        proxy.requests()
    );
    let refused = proxy.requests().iter().filter(|r| r.status == 503).count();
    assert_eq!(refused, 3, "{:?}", proxy.requests());
    let log = proxy.requests();
    let limited = log.iter().position(|r| r.status == 429).expect("no 429");
    let again = log[limited + 1..]
        .iter()
        .find(|r| r.path == log[limited].path)
        .expect("the blob was not asked for again");
    let waited = again.at.duration_since(log[limited].at);
    assert!(
        waited >= std::time::Duration::from_millis(2900),
        "retried after {waited:?}, not the 3 s asked for"
    );
}

#[test]
fn discovery_finds_rendered_and_declared_images_and_pulls_through_mirrors() {
    let scene = Scene::new();
    let sensei = Registry::plain();
    let hub_mirror = Registry::plain();
    let api = scene.fixtures.image("api:1.2.0").unwrap();
    let worker = scene.fixtures.image("worker:1.2.0").unwrap();
    seed(&sensei, &api.skopeo_source, "sensei/api:0.3.0");
    seed(&sensei, &worker.skopeo_source, "sensei/metrics:0.3.0");
    seed(&sensei, &api.skopeo_source, "sensei/migrate:0.3.0");
    seed(&hub_mirror, &worker.skopeo_source, "library/busybox:1.36");
    let chart = scene.path("discovery");
    write_discovery_chart(&chart).unwrap();
    let extra = format!(
        "discoverImages: true\nmirrors:\n  registry.example.com: {}\n  docker.io: {}\ncharts:\n  - path: {}\n",
        sensei.host(),
        hub_mirror.host(),
        chart.display()
    );
    let spec = scene.spec("spec.yaml", &[], &extra);
    let bundle = scene.path("b.tar");
    let out = scene.create(
        &spec,
        &bundle,
        &[
            "--plain-http",
            &sensei.host(),
            "--plain-http",
            &hub_mirror.host(),
            "--helm",
            rig::helm().to_str().unwrap(),
        ],
    );
    assert_exit(&out, 0);
    scene.verifies(&bundle);
    let manifest = bundle_json(&bundle);
    let names: BTreeSet<&str> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reference"].as_str().unwrap())
        .collect();
    // metrics is off by default: it comes from the annotation; migrate only from it.
    let want: BTreeSet<&str> = [API_IMAGE, METRICS_IMAGE, MIGRATE_IMAGE, INIT_IMAGE].into();
    assert_eq!(names, want);
    let busybox = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reference"] == INIT_IMAGE)
        .unwrap();
    assert_eq!(busybox["digest"], worker.digest.as_str());
    let source = busybox["source"].as_str().unwrap();
    assert!(source.contains(&hub_mirror.host()), "{source}");
    assert_eq!(manifest["charts"][0]["name"], DISCOVERY_CHART);
    assert_eq!(manifest["charts"][0]["version"], DISCOVERY_VERSION);
}

#[test]
fn charts_from_a_helm_repository_and_from_oci_land_as_helm_artifacts() {
    let scene = Scene::new();
    let registry = Registry::plain();
    let helm = rig::require(rig::helm());
    // A Helm HTTP repository holding the demo chart, indexed by the real helm.
    let repo_dir = scene.path("repo");
    fs::create_dir(&repo_dir).unwrap();
    run_ok(
        Command::new(&helm)
            .arg("package")
            .arg(&scene.fixtures.chart_dir)
            .arg("-d")
            .arg(&repo_dir),
    );
    let server = StaticServer::new(&repo_dir);
    run_ok(
        Command::new(&helm)
            .args(["repo", "index"])
            .arg(&repo_dir)
            .args(["--url", &server.url()]),
    );
    // An OCI chart pushed by the real helm.
    let chart_src = scene.path("discovery");
    write_discovery_chart(&chart_src).unwrap();
    let pkg_dir = scene.path("pkg");
    run_ok(
        Command::new(&helm)
            .arg("package")
            .arg(&chart_src)
            .arg("-d")
            .arg(&pkg_dir),
    );
    let tgz = pkg_dir.join(format!("{DISCOVERY_CHART}-{DISCOVERY_VERSION}.tgz"));
    run_ok(
        Command::new(&helm)
            .arg("push")
            .arg(&tgz)
            .arg(format!("oci://{}/charts", registry.host()))
            .arg("--plain-http"),
    );
    let demo_version = "1.2.0";
    let extra = format!(
        "charts:\n  - repo: {}\n    name: demo\n    version: {demo_version}\n  - oci: oci://{}/charts/{DISCOVERY_CHART}\n    version: {DISCOVERY_VERSION}\n",
        server.url(),
        registry.host()
    );
    let spec = scene.spec("spec.yaml", &[], &extra);
    let bundle = scene.path("b.tar");
    let out = scene.create(&spec, &bundle, &["--plain-http", &registry.host()]);
    assert_exit(&out, 0);
    scene.verifies(&bundle);
    assert!(server.count("GET", "index.yaml") >= 1);

    let manifest = bundle_json(&bundle);
    let charts = manifest["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 2, "{charts:?}");
    for chart in charts {
        let digest = chart["digest"].as_str().unwrap();
        let m: serde_json::Value = serde_json::from_slice(&tar_file(
            &bundle,
            &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
        ))
        .unwrap();
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.cncf.helm.config.v1+json"
        );
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
        );
    }
    // The chart from the repository is the one helm packaged, byte for byte.
    let demo = charts.iter().find(|c| c["name"] == "demo").unwrap();
    let m: serde_json::Value = serde_json::from_slice(&tar_file(
        &bundle,
        &format!(
            "blobs/sha256/{}",
            demo["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        ),
    ))
    .unwrap();
    let packaged = fs::read(repo_dir.join(format!("demo-{demo_version}.tgz"))).unwrap();
    assert_eq!(
        m["layers"][0]["digest"],
        format!("sha256:{}", sha256_hex(&packaged)).as_str()
    );
}

#[test]
fn dry_run_resolves_every_digest_and_size_and_fetches_no_layer() {
    let scene = Scene::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let api = scene.seed(&registry, "api:1.2.0");
    let reference = format!("{}/sensei/api:1.2.0", proxy.host());
    let spec = scene.spec_of(&reference);
    let bundle = scene.path("never.tar");
    let out = scene.create(
        &spec,
        &bundle,
        &["--plain-http", &proxy.host(), "--dry-run", "--json"],
    );
    assert_exit(&out, 0);
    assert!(!bundle.exists());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json plan");
    assert_eq!(plan["images"][0]["digest"], api.digest.as_str());
    let layers: Vec<&String> = api.blobs.iter().take(api.blobs.len() - 2).collect();
    assert!(plan["fetchBytes"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(
        plan["fetchBlobs"].as_u64().unwrap() as usize,
        layers.len(),
        "{plan}"
    );
    assert!(
        plan["imageBytes"][&reference].as_u64().unwrap() > plan["fetchBytes"].as_u64().unwrap()
    );
    // Manifests and the config were read to plan; no layer was downloaded.
    for layer in layers {
        assert_eq!(proxy.count("GET", layer), 0, "{layer} fetched in a dry run");
    }
}
