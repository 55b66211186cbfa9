//! Tests of image discovery: the YAML walk in memory, and whole discoveries with the real helm.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::chart::package_dir;

type TestResult = Result<(), Box<dyn Error>>;

/// The real helm for tests: `$SENSEI_HELM`, else the rig's (`scripts/setup.sh` installs it
/// under `.rig/bin`), else `helm` on PATH.
pub(crate) fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os(HELM_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let rig = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.rig/bin/helm");
    if rig.is_file() {
        return rig;
    }
    find_helm(None).unwrap_or_else(|e| panic!("these tests need the real helm: {e}"))
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

/// A chart that renders `api` always and `metrics` only with `metrics.enabled`, declares
/// `metrics` and `migrate` in `artifacthub.io/images`, and `api` in `images`.
pub(crate) fn write_discovery_chart(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir.join("templates"))?;
    fs::write(
        dir.join("Chart.yaml"),
        r#"apiVersion: v2
name: discovery
version: 0.3.0
annotations:
  artifacthub.io/images: |
    - name: metrics
      image: registry.example.com/sensei/metrics:0.3.0
    - name: migrate
      image: registry.example.com/sensei/migrate:0.3.0
  images: |
    - registry.example.com/sensei/api:0.3.0
"#,
    )?;
    fs::write(
        dir.join("values.yaml"),
        "registry: registry.example.com\nmetrics:\n  enabled: false\n",
    )?;
    fs::write(
        dir.join("templates/deployment.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: {{ .Values.registry }}/sensei/api:{{ .Chart.Version }}
        {{- if .Values.metrics.enabled }}
        - name: metrics
          image: {{ .Values.registry }}/sensei/metrics:{{ .Chart.Version }}
        {{- end }}
"#,
    )
}

fn discovery_chart() -> Result<PackagedChart, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    write_discovery_chart(dir.path())?;
    Ok(package_dir(dir.path(), 0)?)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn helm_renders_what_the_values_enable_and_annotations_add_the_rest() -> TestResult {
    let chart = discovery_chart()?;
    let helm = helm();

    let off = discover_images(&helm, &chart, None)?;
    assert_eq!(
        off.rendered,
        set(&["registry.example.com/sensei/api:0.3.0"])
    );
    assert_eq!(
        off.declared,
        set(&[
            "registry.example.com/sensei/api:0.3.0",
            "registry.example.com/sensei/metrics:0.3.0",
            "registry.example.com/sensei/migrate:0.3.0",
        ])
    );

    let values =
        serde_json::json!({"metrics": {"enabled": true}, "registry": "mirror.example.com:5000"});
    let on = discover_images(&helm, &chart, Some(&values))?;
    assert_eq!(
        on.rendered,
        set(&[
            "mirror.example.com:5000/sensei/api:0.3.0",
            "mirror.example.com:5000/sensei/metrics:0.3.0",
        ])
    );
    assert_eq!(
        on.declared, off.declared,
        "annotations don't depend on values"
    );
    assert_eq!(on.all().len(), 5);
    Ok(())
}

#[test]
fn helm_failures_and_bad_images_name_the_chart() -> TestResult {
    let chart = discovery_chart()?;
    let helm = helm();

    // An uppercase repository path renders images no registry accepts.
    let values = serde_json::json!({"registry": "registry.example.com/Sensei"});
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
        err.to_string().contains("chart discovery 0.3.0 renders"),
        "{err}"
    );

    let dir = tempfile::tempdir()?;
    write_discovery_chart(dir.path())?;
    fs::write(
        dir.path().join("templates/fail.yaml"),
        "{{ required \"set tenant.id for this chart\" .Values.tenant }}\n",
    )?;
    let failing = package_dir(dir.path(), 0)?;
    let err = discover_images(&helm, &failing, None).expect_err("helm fails");
    assert!(
        matches!(err, DiscoverError::HelmFailed { .. }) && !err.is_input(),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("discovery 0.3.0") && text.contains("set tenant.id"),
        "{text}"
    );

    let err = discover_images(Path::new("/nonexistent/helm"), &chart, None).expect_err("no helm");
    assert!(matches!(err, DiscoverError::Spawn { .. }), "{err}");
    Ok(())
}
