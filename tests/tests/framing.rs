//! README's promise about `.tar.gz` output, checked block by block: layers are stored (deflate
//! BTYPE 00), never recompressed; `bundle.json`, `index.json` and the other entries' tar headers
//! are deflated. Bundles built from an OCI layout and from a real registry, with an independent
//! deflate walker (`sensei_tests::deflate_blocks`) and the bundle's own manifests to find the
//! layers. A size comparison cannot prove this: a writer that deflated every layer would stay
//! within 1 % of the `.tar` too.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;

use sensei_tests::bins::assert_exit;
use sensei_tests::fixtures::FixtureSet;
use sensei_tests::framing::{Framing, check};
use sensei_tests::rig::{self, Registry};
use sensei_tests::scene::{Built, Scene};

fn checked(bytes: &[u8]) -> Framing {
    check(bytes).unwrap_or_else(|e| panic!("the .tar.gz does not decode: {e}"))
}

/// Every blob of the fixture images that is gzip, as the bundle names it: read from the
/// fixture layout, not from the bundle, so the checker cannot miss a layer the bundle hides.
fn fixture_gzip_blobs(fixtures: &FixtureSet) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for image in &fixtures.images {
        for digest in &image.blobs {
            let hex = digest.trim_start_matches("sha256:");
            let path = fixtures.layout_dir.join("blobs/sha256").join(hex);
            let body = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if body.starts_with(&[0x1f, 0x8b]) {
                out.insert(format!("blobs/sha256/{hex}"));
            }
        }
    }
    out
}

/// The checks shared by both sources: the promise holds, every fixture layer was held to it,
/// and the same check on the same tar deflated whole (a recompressing writer) fails.
fn assert_layers_stored(what: &str, tgz: &[u8], fixtures: &FixtureSet) -> Framing {
    let f = checked(tgz);
    f.assert_holds(what);
    let want = fixture_gzip_blobs(fixtures);
    assert!(want.len() >= 5, "fixtures have too few layers: {want:?}");
    let missed: Vec<&String> = want.difference(&f.layers).collect();
    assert!(missed.is_empty(), "{what}: layers not checked: {missed:?}");

    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&f.walk.output)
        .unwrap_or_else(|e| panic!("{e}"));
    let recompressed = checked(&e.finish().unwrap_or_else(|e| panic!("{e}")));
    assert!(
        recompressed
            .violations
            .iter()
            .any(|v| v.starts_with("layer ")),
        "{what}: the check passes a writer that deflates every layer: {:?}",
        recompressed.violations
    );
    f
}

/// An entry of the decoded stream, parsed as JSON.
fn entry_json(f: &Framing, name: &str) -> serde_json::Value {
    let e = f
        .entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in the bundle"));
    let body = &f.walk.output[e.data.start as usize..e.data.end as usize];
    serde_json::from_slice(body).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn a_bundle_from_a_layout_stores_layers_and_deflates_json_and_headers() {
    let b = Built::new();
    let f = assert_layers_stored(
        "from a layout",
        &fs::read(&b.tgz).unwrap_or_default(),
        &b.fixtures,
    );
    // The .tar.gz holds the .tar, byte for byte.
    assert!(
        f.walk.output == fs::read(&b.tar).unwrap_or_default(),
        "the .tar.gz is not the .tar"
    );
    // The chart's .tgz (Helm's `content.v1.tar+gzip`, not a fixture layer) was held too.
    let manifest = entry_json(&f, "bundle.json");
    let chart = manifest["charts"][0]["digest"].as_str().unwrap_or_default();
    let chart_manifest = entry_json(
        &f,
        &format!("blobs/sha256/{}", chart.trim_start_matches("sha256:")),
    );
    let content = chart_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap_or_default();
    let name = format!("blobs/sha256/{}", content.trim_start_matches("sha256:"));
    assert!(
        f.layers.contains(&name),
        "the chart {name} was not held to stored blocks"
    );
}

#[test]
fn a_bundle_from_a_registry_stores_layers_and_deflates_json_and_headers() {
    let scene = Scene::new();
    let registry = Registry::plain();
    let refs = rig::seed_fixtures(&registry, &scene.fixtures, "sensei");
    let spec = scene.spec("spec.yaml", &refs, "");
    let bundle = scene.path("b.tar.gz");
    assert_exit(
        &scene.create(&spec, &bundle, &["--plain-http", &registry.host()]),
        0,
    );
    let tgz = fs::read(&bundle).unwrap_or_default();
    assert_layers_stored("from a registry", &tgz, &scene.fixtures);
}
