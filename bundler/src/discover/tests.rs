//! Tests of image discovery: the YAML walk in memory, and whole discoveries with the real helm.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::chart::package_dir;

type TestResult = Result<(), Box<dyn Error>>;

/// The real helm for tests: `$SENSEI_HELM`, else the rig's (`scripts/setup.sh` installs it
/// under `$SENSEI_RIG/bin`, by default `.rig/bin`), else `helm` on PATH. Tests that need helm
/// fail without it, naming the fix: a skip would pass without checking anything.
pub(crate) fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os(HELM_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let rig_bin = std::env::var_os("SENSEI_RIG")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.rig"),
            PathBuf::from,
        )
        .join("bin");
    if rig_bin.join("helm").is_file() {
        return rig_bin.join("helm");
    }
    find_helm(None).unwrap_or_else(|e| {
        panic!(
            "helm not found ({e}). These tests need the real helm: run scripts/setup.sh, which \
             installs it under {dir}, and put that directory on PATH (export PATH={dir}:$PATH), \
             as scripts/test.sh does",
            dir = rig_bin.display()
        )
    })
}

const RENDERED: &str = r#"---
# Source: demo/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: busybox:1.36
      containers:
        - name: api
          image: "registry.example.com/sensei/api:1.2.0"
        - name: sidecar
          image: docker.io/library/busybox:1.36
---
# Source: demo/templates/cronjob.yaml
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - image: ghcr.io/sensei/backup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
---
# An operator's resource: `image` as a map is not a reference, and is skipped.
kind: Prometheus
spec:
  image: {repository: quay.io/prometheus/prometheus, tag: v3.0.0}
  workflow:
    image: "{{inputs.parameters.image}}"
  other:
    image: ""
---
"#;

#[test]
fn every_string_under_an_image_key_is_collected() -> TestResult {
    let mut raw = Vec::new();
    collect_rendered_images(RENDERED, &mut raw)?;
    assert_eq!(
        raw,
        [
            "busybox:1.36",
            "registry.example.com/sensei/api:1.2.0",
            "docker.io/library/busybox:1.36",
            "ghcr.io/sensei/backup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "{{inputs.parameters.image}}",
            "",
        ]
    );
    let normalised: BTreeSet<String> = raw
        .iter()
        .filter_map(|r| normalise(r).transpose())
        .collect::<Result<_, _>>()?;
    assert_eq!(
        normalised.into_iter().collect::<Vec<_>>(),
        [
            "docker.io/library/busybox:1.36",
            "ghcr.io/sensei/backup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "registry.example.com/sensei/api:1.2.0",
        ]
    );
    let mut none = Vec::new();
    collect_rendered_images("", &mut none)?;
    assert!(none.is_empty());
    assert!(collect_rendered_images("a: [unclosed\n", &mut none).is_err());
    Ok(())
}

#[test]
fn references_are_normalised_and_bad_ones_refused() {
    for (raw, want) in [
        ("nginx:1.25", Some("docker.io/library/nginx:1.25")),
        (" bitnami/redis:7 ", Some("docker.io/bitnami/redis:7")),
        (
            "index.docker.io/nginx:1.25",
            Some("docker.io/library/nginx:1.25"),
        ),
        ("127.0.0.1:5000/a/b:1", Some("127.0.0.1:5000/a/b:1")),
        ("${IMAGE}", None),
        ("$(IMAGE)", None),
        ("  ", None),
    ] {
        assert_eq!(normalise(raw), Ok(want.map(str::to_owned)), "{raw}");
    }
    for bad in ["nginx", "registry.example.com/sensei/api:", "sensei/Api:1"] {
        assert!(normalise(bad).is_err(), "{bad}");
    }
}

#[test]
fn find_helm_takes_the_explicit_path_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("helm");
    let err = find_helm(Some(&missing)).expect_err("missing");
    assert!(
        err.is_input() && err.to_string().contains("--helm"),
        "{err}"
    );
    fs::write(&missing, "#!/bin/sh\n")?;
    let err = find_helm(Some(&missing)).expect_err("not executable");
    assert!(err.to_string().contains("not executable"), "{err}");
    let real = helm();
    assert_eq!(find_helm(Some(&real))?, real);

    // PATH search finds an executable `helm`, and none in an empty PATH.
    let bin = real.parent().ok_or("helm has no directory")?;
    assert_eq!(
        find_on_path(&std::env::join_paths([dir.path(), bin])?),
        Some(bin.join("helm"))
    );
    assert_eq!(find_on_path(&OsString::new()), None);
    Ok(())
}

/// A chart whose template fails unless `tenant` is set, and whose image comes from `registry`.
fn chart_needing_values() -> Result<PackagedChart, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    fs::create_dir_all(dir.path().join("templates"))?;
    fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: needy\nversion: 0.3.0\n",
    )?;
    fs::write(
        dir.path().join("templates/pod.yaml"),
        "apiVersion: v1\nkind: Pod\n\
         metadata: {name: \"{{ required \"set tenant for this chart\" .Values.tenant }}\"}\n\
         spec: {containers: [{name: c, image: \"{{ .Values.registry }}/sensei/api:1\"}]}\n",
    )?;
    Ok(package_dir(dir.path(), 0)?)
}

#[test]
fn values_reach_helm_and_failures_name_the_chart() -> TestResult {
    let chart = chart_needing_values()?;
    let helm = helm();

    let err = discover_images(&helm, &chart, None).expect_err("helm fails");
    assert!(
        matches!(err, DiscoverError::HelmFailed { .. }) && !err.is_input(),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("needy 0.3.0") && text.contains("set tenant"),
        "{text}"
    );

    let values = serde_json::json!({"tenant": "t", "registry": "registry.example.com"});
    let found = discover_images(&helm, &chart, Some(&values))?;
    assert_eq!(
        found.rendered.iter().collect::<Vec<_>>(),
        ["registry.example.com/sensei/api:1"]
    );
    assert!(found.declared.is_empty());

    // An uppercase repository path renders an image no registry accepts.
    let values = serde_json::json!({"tenant": "t", "registry": "registry.example.com/Sensei"});
    let err = discover_images(&helm, &chart, Some(&values)).expect_err("bad image");
    assert!(
        matches!(
            &err,
            DiscoverError::InvalidImage {
                found_in: FoundIn::Rendered,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.is_input() && err.to_string().contains("chart needy 0.3.0 renders"),
        "{err}"
    );

    let err = discover_images(Path::new("/nonexistent/helm"), &chart, None).expect_err("no helm");
    assert!(matches!(err, DiscoverError::Spawn { .. }), "{err}");
    Ok(())
}
