//! The bundle specs under `manifests/` and the spec's JSON schema, checked against the parser the
//! bundler uses (`sensei_core::spec`): every shipped spec parses and validates, and a table of
//! specs is accepted or rejected by both alike, so the schema and the parser can't drift apart
//! silently. The local example is also built into a bundle that verifies.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};

use sensei_core::spec::{BundleSpec, ChartSource};
use sensei_tests::bins::{bundler, loader, run_ok};
use sensei_tests::fixtures::{FixtureOptions, write_fixtures};

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn schema() -> serde_json::Value {
    let path = manifests_dir().join("bundle-spec.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).unwrap_or_else(|e| panic!("schema: {e}"))
}

/// The YAML as the JSON value a schema validates, read the way the parser reads it (merge keys
/// applied).
fn yaml_to_json(text: &str) -> serde_json::Value {
    let mut value: serde_norway::Value =
        serde_norway::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"));
    value.apply_merge().unwrap();
    serde_json::to_value(value).unwrap()
}

/// Schema errors as lines, empty when valid.
fn schema_errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    let json = yaml_to_json(text);
    validator
        .iter_errors(&json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The specs shipped in `manifests/` and `manifests/examples/` (not deeper: generated fixtures
/// may sit below the examples).
fn shipped_specs() -> Vec<PathBuf> {
    let mut specs = Vec::new();
    for dir in [manifests_dir(), manifests_dir().join("examples")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                specs.push(path);
            }
        }
    }
    specs.sort();
    specs
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    if let Err(e) = jsonschema::meta::validate(&schema()) {
        panic!("bundle-spec.schema.json is not a valid JSON schema: {e}");
    }
}

#[test]
fn every_shipped_spec_parses_and_validates() {
    let validator = validator();
    let specs = shipped_specs();
    assert!(
        specs.iter().any(|p| p.ends_with("manifests/sensei.yaml")),
        "{specs:?}"
    );
    assert!(
        specs.len() >= 2,
        "expected sensei.yaml and an example: {specs:?}"
    );
    for path in &specs {
        if let Err(e) = BundleSpec::from_path(path) {
            panic!("{e}");
        }
        let text = std::fs::read_to_string(path).unwrap();
        let errors = schema_errors(&validator, &text);
        assert!(
            errors.is_empty(),
            "{} fails the schema:\n{}",
            path.display(),
            errors.join("\n")
        );
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.starts_with("# yaml-language-server: $schema=")),
            "{} should name the schema on its first line for editors",
            path.display()
        );
    }
}

#[test]
fn the_product_spec_uses_every_remote_source() {
    let spec = BundleSpec::from_path(&manifests_dir().join("sensei.yaml")).unwrap();
    assert_eq!(spec.name, "sensei");
    assert!(spec.discover_images && spec.expires.is_some() && spec.compat.is_some());
    assert!(!spec.platforms.is_empty());
    let repo = spec
        .charts
        .iter()
        .filter(|c| matches!(c, ChartSource::Repo { .. }))
        .count();
    let oci = spec
        .charts
        .iter()
        .filter(|c| matches!(c, ChartSource::Oci { .. }))
        .count();
    assert!(repo >= 2 && oci >= 1, "{:?}", spec.charts);
    assert!(
        spec.charts
            .iter()
            .any(|c| c.values().is_some_and(|v| v["metrics"]["enabled"] == true)),
        "a chart renders its optional metrics image for discovery"
    );
}

/// Specs that both the parser and the schema must accept (`true`) or reject (`false`).
const AGREEMENT: &[(&str, bool, &str)] = &[
    ("minimal", true, "name: sensei\n"),
    (
        "everything",
        true,
        r#"
name: sensei
version: 1.2.0-rc.1+build.5
expires: 2026-03-01T00:00:00+02:00
compat: {upgradeFrom: ">=1.1.0, <1.3.0"}
platforms: [linux/amd64, linux/arm64/v8]
charts:
  - path: ./charts/sensei
  - {path: ./charts/x.tgz, values: {a: {b: [1, 2]}}}
  - {repo: "http://127.0.0.1:8080/charts", name: data-plane, version: 1.2.0}
  - {oci: oci://localhost:5000/charts/control-plane, version: "1.2.0", values: {metrics: {enabled: true}}}
images:
  - nginx:1.25
  - registry.example.com/sensei/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  - {ref: "[::1]:5000/sensei/worker:1.2.0", layout: ./build/oci, layoutRef: worker-1.2.0}
  - {ref: registry.example.com/sensei/web:1.2.0, layout: ./build/oci}
  - {ref: registry.example.com/sensei/plain:1.2.0}
discoverImages: false
mirrors: {docker.io: mirror.corp.example:5000, ghcr.io: "10.0.0.1"}
"#,
    ),
    ("expires as a duration", true, "name: s\nexpires: 2w\n"),
    ("no name", false, "version: 1.2.0\n"),
    ("unknown top-level key", false, "name: s\nimagez: []\n"),
    (
        "chart with path and repo",
        false,
        "name: s\ncharts:\n  - {path: ./c, repo: https://charts.example.com, name: c, version: 1.0.0}\n",
    ),
    (
        "chart with repo and oci",
        false,
        "name: s\ncharts:\n  - {repo: https://c.example.com, oci: oci://r.example.com/c/x, name: x, version: 1.0.0}\n",
    ),
    (
        "chart with no source",
        false,
        "name: s\ncharts:\n  - {values: {a: 1}}\n",
    ),
    (
        "unknown chart key",
        false,
        "name: s\ncharts:\n  - {repo: https://c.example.com, name: c, versoin: 1.0.0}\n",
    ),
    (
        "path chart with a version",
        false,
        "name: s\ncharts:\n  - {path: ./c, version: 1.0.0}\n",
    ),
    (
        "repo chart without name",
        false,
        "name: s\ncharts:\n  - {repo: https://c.example.com, version: 1.0.0}\n",
    ),
    (
        "repo chart without version",
        false,
        "name: s\ncharts:\n  - {repo: https://c.example.com, name: c}\n",
    ),
    (
        "repo that is not http",
        false,
        "name: s\ncharts:\n  - {repo: ftp://c.example.com, name: c, version: 1.0.0}\n",
    ),
    (
        "oci chart with a tag",
        false,
        "name: s\ncharts:\n  - {oci: oci://r.example.com/charts/c:1.0.0, version: 1.0.0}\n",
    ),
    (
        "oci chart with a name",
        false,
        "name: s\ncharts:\n  - {oci: oci://r.example.com/charts/c, name: c, version: 1.0.0}\n",
    ),
    (
        "oci chart without a path",
        false,
        "name: s\ncharts:\n  - {oci: oci://r.example.com, version: 1.0.0}\n",
    ),
    (
        "values not a mapping",
        false,
        "name: s\ncharts:\n  - {path: ./c, values: [1]}\n",
    ),
    ("bad bundle name", false, "name: Sensei\n"),
    ("bundle version with v", false, "name: s\nversion: v1.2.0\n"),
    ("zero expiry", false, "name: s\nexpires: 0d\n"),
    ("expiry in months", false, "name: s\nexpires: 6mo\n"),
    // Strict RFC 3339 (FORMAT.md §4.2): seconds and an offset, T not a space, no leap second.
    (
        "expiry with a fraction and lowercase t/z",
        true,
        "name: s\nexpires: 2026-03-01t00:00:00.5z\n",
    ),
    (
        "expiry with a space",
        false,
        "name: s\nexpires: 2026-03-01 00:00:00Z\n",
    ),
    (
        "expiry without seconds",
        false,
        "name: s\nexpires: 2026-03-01T00:00Z\n",
    ),
    (
        "expiry offset without a colon",
        false,
        "name: s\nexpires: 2026-03-01T00:00:00+0200\n",
    ),
    (
        "expiry offset of 24 hours",
        false,
        "name: s\nexpires: 2026-03-01T00:00:00+24:00\n",
    ),
    (
        "expiry on a leap second",
        false,
        "name: s\nexpires: 2016-12-31T23:59:60Z\n",
    ),
    (
        "expiry with a comma fraction",
        false,
        "name: s\nexpires: 2026-03-01T00:00:00,5Z\n",
    ),
    ("bad platform", false, "name: s\nplatforms: [linux]\n"),
    (
        "duplicate platform",
        false,
        "name: s\nplatforms: [linux/amd64, linux/amd64]\n",
    ),
    (
        "image without tag",
        false,
        "name: s\nimages: [registry.example.com/sensei/api]\n",
    ),
    (
        "image with uppercase path",
        false,
        "name: s\nimages: [registry.example.com/Sensei/api:1]\n",
    ),
    (
        "unknown image key",
        false,
        "name: s\nimages:\n  - {ref: a.example.com/b:1, layot: ./x}\n",
    ),
    (
        "image entry without ref",
        false,
        "name: s\nimages:\n  - {layout: ./x}\n",
    ),
    (
        "layoutRef without layout",
        false,
        "name: s\nimages:\n  - {ref: a.example.com/b:1, layoutRef: b}\n",
    ),
    ("image as a number", false, "name: s\nimages: [1]\n"),
    (
        "discoverImages not a boolean",
        false,
        "name: s\ndiscoverImages: yes please\n",
    ),
    (
        "mirror with a scheme",
        false,
        "name: s\nmirrors: {docker.io: \"https://m.example.com\"}\n",
    ),
    (
        "mirror with a path",
        false,
        "name: s\nmirrors: {docker.io: m.example.com/x}\n",
    ),
    (
        "unknown compat key",
        false,
        "name: s\ncompat: {upgradeTo: \"1\"}\n",
    ),
];

#[test]
fn the_parser_and_the_schema_agree() {
    let validator = validator();
    let mut disagreements = Vec::new();
    for (what, valid, text) in AGREEMENT {
        let parsed = BundleSpec::parse(text, Path::new("spec.yaml"));
        let errors = schema_errors(&validator, text);
        if parsed.is_ok() != *valid {
            disagreements.push(format!(
                "{what}: the parser {} it: {:?}",
                if *valid { "rejects" } else { "accepts" },
                parsed.err().map(|e| e.to_string())
            ));
        }
        if errors.is_empty() != *valid {
            disagreements.push(format!(
                "{what}: the schema {} it{}",
                if *valid { "rejects" } else { "accepts" },
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", errors.join("; "))
                }
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// `manifests/examples/local.yaml` builds, as its comment says, from the fixtures generated
/// beside it, into a bundle that verifies.
#[test]
fn the_local_example_builds_from_the_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("local.yaml");
    std::fs::copy(manifests_dir().join("examples/local.yaml"), &spec).unwrap();
    write_fixtures(&dir.path().join("fixtures"), &FixtureOptions::default()).unwrap();
    let prefix = dir.path().join("release");
    run_ok(bundler().arg("keygen").arg("--out").arg(&prefix));
    let out = dir.path().join("local.tar");
    run_ok(
        bundler()
            .args(["create", "--quiet", "-f"])
            .arg(&spec)
            .arg("--key")
            .arg(prefix.with_extension("key"))
            .arg("-o")
            .arg(&out),
    );
    let report = run_ok(
        loader()
            .arg("verify")
            .arg(&out)
            .arg("--key")
            .arg(prefix.with_extension("pub")),
    );
    assert!(
        report.starts_with("VERIFIED  sensei-local 1.2.0"),
        "{report}"
    );
    assert!(
        report.contains("registry.example.com/sensei/multi:1.2.0"),
        "{report}"
    );
}
