#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The example spec from DESIGN.md, verbatim.
const DESIGN_EXAMPLE: &str = r#"
name: sensei
version: 1.2.0                 # --version overrides
expires: 180d                  # optional: a duration after `created`, or an RFC 3339 time
compat:
  upgradeFrom: ">=1.1.0, <1.3.0"   # default: the seed's policy, same major and at most one minor back
platforms: [linux/amd64]       # optional; default: every platform an image has
charts:
  - path: ./charts/sensei      # a chart directory or a packaged .tgz
  - repo: https://charts.example.com   # a Helm HTTP repository (index.yaml)
    name: data-plane
    version: 1.2.0
  - oci: oci://registry.example.com/charts/control-plane
    version: 1.2.0
    values: {metrics: {enabled: true}}   # used when rendering for image discovery
images:
  - registry.example.com/sensei/api:1.2.0          # pulled from its registry
  - ref: registry.example.com/sensei/worker:1.2.0  # the name it will carry
    layout: ./build/oci                            # bytes from a local OCI image layout instead
    layoutRef: worker-1.2.0                        # that layout's ref.name; optional if it holds one image
discoverImages: true           # also bundle every image the charts render or declare in annotations
mirrors:                       # where to pull from; the bundle keeps the canonical names
  docker.io: mirror.corp.example:5000
"#;

const SPEC_PATH: &str = "/work/repo/manifests/sensei.yaml";

fn parse(text: &str) -> Result<BundleSpec, SpecError> {
    BundleSpec::parse(text, Path::new(SPEC_PATH))
}

/// Parses `text`, expecting an `Invalid` error; returns its key and message.
fn invalid(text: &str) -> (String, String) {
    match parse(text) {
        Err(SpecError::Invalid { key, message, .. }) => (key, message),
        other => panic!("expected an Invalid error for {text:?}, got {other:?}"),
    }
}

#[test]
fn design_example_parses() {
    let spec = parse(DESIGN_EXAMPLE).unwrap();
    let dir = PathBuf::from("/work/repo/manifests");
    assert_eq!(spec.name, "sensei");
    assert_eq!(spec.version, Some(Version::new(1, 2, 0)));
    assert_eq!(
        spec.expires,
        Some(Expiry::After(Duration::from_secs(180 * 86_400)))
    );
    assert_eq!(spec.compat.as_ref().unwrap().as_str(), ">=1.1.0, <1.3.0");
    assert_eq!(
        spec.platforms,
        vec!["linux/amd64".parse::<Platform>().unwrap()]
    );
    assert_eq!(
        spec.charts,
        vec![
            ChartSource::Path {
                path: dir.join("charts/sensei"),
                values: None
            },
            ChartSource::Repo {
                repo: "https://charts.example.com".into(),
                name: "data-plane".into(),
                version: "1.2.0".into(),
                values: None
            },
            ChartSource::Oci {
                oci: "oci://registry.example.com/charts/control-plane".into(),
                version: "1.2.0".into(),
                values: Some(serde_json::json!({"metrics": {"enabled": true}}))
            },
        ]
    );
    assert_eq!(
        spec.images,
        vec![
            ImageSource::Registry {
                reference: "registry.example.com/sensei/api:1.2.0".into()
            },
            ImageSource::Layout {
                reference: "registry.example.com/sensei/worker:1.2.0".into(),
                layout: dir.join("build/oci"),
                layout_ref: Some("worker-1.2.0".into())
            },
        ]
    );
    assert!(spec.discover_images);
    assert_eq!(
        spec.mirrors.get("docker.io").map(String::as_str),
        Some("mirror.corp.example:5000")
    );
    assert_eq!(spec.base_dir, dir);
}

#[test]
fn minimal_spec_and_defaults() {
    let spec = parse("name: sensei\n").unwrap();
    assert_eq!(spec.version, None);
    assert!(spec.charts.is_empty() && spec.images.is_empty() && spec.platforms.is_empty());
    assert!(!spec.discover_images);
    assert_eq!(
        spec.compat_rule_for(&Version::new(1, 2, 0)).as_str(),
        ">=1.1.0, <1.3.0"
    );
    // Keys left empty (`charts:` with every entry commented out) count as absent.
    let spec = parse("name: sensei\ncharts:\nimages:\ncompat:\n").unwrap();
    assert!(spec.charts.is_empty() && spec.compat.is_none());
}

#[test]
fn typo_is_reported_by_name_and_index() {
    let text = "name: sensei\ncharts:\n  - path: ./a\n  - repo: https://c.example.com\n    \
                name: x\n    versoin: 1.2.0\n";
    let err = parse(text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/work/repo/manifests/sensei.yaml: charts[1]: unknown key \"versoin\" (expected one of: \
         path, repo, oci, name, version, values)"
    );
    let (key, message) = invalid("nmae: sensei\n");
    assert_eq!(key, "");
    assert!(
        message.starts_with("unknown key \"nmae\" (expected one of: name, version"),
        "{message}"
    );
    assert_eq!(
        invalid("name: s\nimages:\n  - {ref: a/b:1, layotu: ./x}\n").0,
        "images[0]"
    );
    assert_eq!(
        invalid("name: s\ncompat: {upgradefrom: \">=1.0.0\"}\n").0,
        "compat"
    );
}

#[test]
fn each_kind_of_error_names_its_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("version: 1.2.0\n", "name", "missing"),
        ("name: Sensei\n", "name", "lowercase"),
        ("name: ''\n", "name", "empty"),
        ("name: ../x\n", "name", "starting with a letter or digit"),
        ("name: s\nversion: 1.2\n", "version", "e.g. version: 1.2.0"),
        (
            "name: s\nversion: v1.2.0\n",
            "version",
            "drop the leading \"v\"",
        ),
        ("name: s\nexpires: 6 months\n", "expires", "180d"),
        (
            "name: s\ncompat: {upgradeFrom: banana}\n",
            "compat.upgradeFrom",
            ">=1.1.0, <1.3.0",
        ),
        ("name: s\nplatforms: [linux]\n", "platforms[0]", "OS/ARCH"),
        (
            "name: s\nplatforms: [linux/amd64, linux/amd64]\n",
            "platforms[1]",
            "twice",
        ),
        (
            "name: s\nplatforms: linux/amd64\n",
            "platforms",
            "expected a list",
        ),
        (
            "name: s\ncharts: [{values: {a: 1}}]\n",
            "charts[0]",
            "needs one of path",
        ),
        (
            "name: s\ncharts: [{path: ./a, oci: oci://r.io/c/x, version: '1'}]\n",
            "charts[0]",
            "only one of",
        ),
        (
            "name: s\ncharts: [{path: ./a, version: 1.0.0}]\n",
            "charts[0].version",
            "Chart.yaml",
        ),
        (
            "name: s\ncharts: [{repo: https://c.io, version: 1.0.0}]\n",
            "charts[0].name",
            "missing",
        ),
        (
            "name: s\ncharts: [{repo: https://c.io, name: x}]\n",
            "charts[0].version",
            "missing",
        ),
        (
            "name: s\ncharts: [{repo: c.io, name: x, version: 1.0.0}]\n",
            "charts[0].repo",
            "http(s)",
        ),
        (
            "name: s\ncharts: [{repo: 'oci://r.io/c', name: x, version: 1.0.0}]\n",
            "charts[0].repo",
            "oci:",
        ),
        (
            "name: s\ncharts: [{oci: r.io/c/x, version: 1.0.0}]\n",
            "charts[0].oci",
            "oci://",
        ),
        (
            "name: s\ncharts: [{oci: 'oci://r.io/c/x:1.0.0', version: 1.0.0}]\n",
            "charts[0].oci",
            "version:",
        ),
        (
            "name: s\ncharts: [{oci: oci://r.io/c/x}]\n",
            "charts[0].version",
            "missing",
        ),
        (
            "name: s\ncharts: [{oci: oci://r.io/c/x, name: x, version: 1.0.0}]\n",
            "charts[0].name",
            "last component",
        ),
        (
            "name: s\ncharts: [{path: ./a, values: [1]}]\n",
            "charts[0].values",
            "mapping",
        ),
        (
            "name: s\nimages: [a/b:1, 'r.io/A/b:1']\n",
            "images[1]",
            "lowercase",
        ),
        (
            "name: s\nimages: [r.io/a/b]\n",
            "images[0]",
            "no tag or digest",
        ),
        (
            "name: s\nimages: [nginx:1.25, docker.io/library/nginx:1.25]\n",
            "images[1]",
            "first as images[0]",
        ),
        (
            "name: s\nimages: [{ref: a/b:1, layoutRef: x}]\n",
            "images[0].layoutRef",
            "add layout:",
        ),
        (
            "name: s\nimages: [{layout: ./x}]\n",
            "images[0].ref",
            "missing",
        ),
        (
            "name: s\nimages: [{ref: 'a/b:1', layout: ./x}, {ref: 'r.io/a b:1'}]\n",
            "images[1].ref",
            "image reference",
        ),
        ("name: s\nimages: [42]\n", "images[0]", "found a number"),
        (
            "name: s\ndiscoverImages: yes please\n",
            "discoverImages",
            "true or false",
        ),
        (
            "name: s\nmirrors: {docker.io: 'https://m.io'}\n",
            "mirrors.docker.io",
            "without a scheme",
        ),
        (
            "name: s\nmirrors: {'docker io': m.io}\n",
            "mirrors.docker io",
            "host",
        ),
        ("name: s\nmirrors: [docker.io]\n", "mirrors", "mapping"),
        ("- name: s\n", "", "expected a mapping"),
        ("", "", "empty"),
    ];
    for (text, want_key, want_message) in cases {
        let (key, message) = invalid(text);
        assert_eq!(key, *want_key, "{text:?}: {message}");
        assert!(
            message.contains(want_message),
            "{text:?}: {message:?} lacks {want_message:?}"
        );
    }
}

#[test]
fn invalid_display_starts_with_path_and_key() {
    let err = parse("name: s\nimages: [{ref: a/b:1, layoutRef: x}]\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/work/repo/manifests/sensei.yaml: images[0].layoutRef: names an image"),
        "{err}"
    );
}

#[test]
fn yaml_syntax_errors_carry_line_and_column() {
    let err = parse("name: sensei\ncharts:\n  - path: ./a\n   oops: [\n").unwrap_err();
    let SpecError::Yaml {
        line,
        column,
        ref message,
        ..
    } = err
    else {
        panic!("expected a YAML error, got {err:?}");
    };
    assert!(line >= 3 && column > 0, "{line}:{column}");
    // The location is in the fields, not repeated in the message (a context mark may remain).
    assert!(
        !message.contains(&format!("at line {line} column {column}")),
        "{message}"
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{SPEC_PATH}:{line}:{column}: invalid YAML: ")),
        "{shown}"
    );
    // Duplicate keys are a YAML-level error too; the location is that of the mapping holding them.
    let err = parse("name: a\nname: b\n").unwrap_err();
    assert!(
        matches!(&err, SpecError::Yaml { line: 1, message, .. }
            if message.contains("duplicate entry with key \"name\"")),
        "{err:?}"
    );
}

#[test]
fn relative_paths_resolve_against_the_spec_directory() {
    let text = "name: s\ncharts: [{path: ./charts/a}, {path: ../shared/b.tgz}, {path: /abs/c}]\n\
                images: [{ref: 'a/b:1', layout: oci}]\n";
    let spec = BundleSpec::parse(text, Path::new("manifests/sensei.yaml")).unwrap();
    let paths: Vec<PathBuf> = spec
        .charts
        .iter()
        .map(|c| match c {
            ChartSource::Path { path, .. } => path.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [
            PathBuf::from("manifests/charts/a"),
            PathBuf::from("manifests/../shared/b.tgz"),
            PathBuf::from("/abs/c")
        ]
    );
    assert!(
        matches!(&spec.images[0], ImageSource::Layout { layout, layout_ref: None, .. }
        if layout == Path::new("manifests/oci"))
    );
    // A bare file name is relative to the current directory.
    let spec = BundleSpec::parse("name: s\n", Path::new("sensei.yaml")).unwrap();
    assert_eq!(spec.base_dir, PathBuf::from("."));
}

#[test]
fn from_path_reads_resolves_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sensei.yaml");
    std::fs::write(&file, "name: s\ncharts: [{path: ./charts/a}]\n").unwrap();
    let spec = BundleSpec::from_path(&file).unwrap();
    assert_eq!(spec.base_dir, dir.path());
    assert_eq!(
        spec.charts[0],
        ChartSource::Path {
            path: dir.path().join("charts/a"),
            values: None
        }
    );

    let missing = dir.path().join("nope.yaml");
    let err = BundleSpec::from_path(&missing).unwrap_err();
    assert!(matches!(err, SpecError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );

    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; MAX_SPEC_BYTES as usize + 1]).unwrap();
    let err = BundleSpec::from_path(&big).unwrap_err();
    assert!(
        matches!(err, SpecError::TooLarge { size, .. } if size == MAX_SPEC_BYTES + 1),
        "{err:?}"
    );

    let binary = dir.path().join("bin.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        BundleSpec::from_path(&binary),
        Err(SpecError::Read { .. })
    ));
}

#[test]
fn expiry_forms_in_a_spec() {
    let spec = parse("name: s\nexpires: 2026-03-01T02:00:00+02:00\n").unwrap();
    let at = crate::time::BundleTime::parse("2026-03-01T00:00:00Z").unwrap();
    assert_eq!(spec.expires, Some(Expiry::At(at)));
    let spec = parse("name: s\nexpires: 12h\n").unwrap();
    assert_eq!(
        spec.expires,
        Some(Expiry::After(Duration::from_secs(12 * 3600)))
    );
}

#[test]
fn merge_keys_share_values() {
    let text = "name: s\ncharts:\n  - path: ./a\n    values: &v {replicas: 2}\n  \
                - path: ./b\n    values: {<<: *v, extra: true}\n";
    let spec = parse(text).unwrap();
    assert_eq!(
        spec.charts[1].values(),
        Some(&serde_json::json!({"replicas": 2, "extra": true}))
    );
}

#[test]
fn platform_variants_and_versions_parse() {
    let spec =
        parse("name: s\nversion: 2.0.0-rc.1\nplatforms: [linux/amd64, linux/arm64/v8]\n").unwrap();
    assert_eq!(spec.version, Some(Version::parse("2.0.0-rc.1").unwrap()));
    let shown: Vec<String> = spec.platforms.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["linux/amd64", "linux/arm64/v8"]);
}
