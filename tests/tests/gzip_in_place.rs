//! A `.tar.gz` written in place (`bundler::inplace`: every byte laid out first, blobs written at
//! their offsets) is the streaming writer's `.tar.gz` (`create::write_bundle`), byte for byte:
//! from a layout and from a registry, with layers of the sizes that matter to the framing
//! (stored blocks of 65 535 bytes, 512-byte tar blocks) next to the fixtures' images, chart and
//! JSON. And where in place cannot work (a layer that is not compressed, found before the write
//! or only as its bytes arrive), the build falls back to the streaming writer, with the same
//! result. Both ways are built from one plan through the library, so nothing but the writer
//! differs.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use sensei_bundler::build::{BuildOptions, build};
use sensei_bundler::create::{WriteOptions, write_bundle};
use sensei_bundler::fetch::fetch_remote;
use sensei_bundler::inplace::gzip_fits_in_place;
use sensei_bundler::plan::{Plan, PlanEnv, PlanOptions, plan};
use sensei_core::outfile::{Replace, check_output};
use sensei_core::progress::{Reporter, Silent};
use sensei_core::signature::PrivateKey;
use sensei_core::spec::BundleSpec;
use sensei_core::time::BundleTime;
use sensei_registry::{ClientSettings, Registry as Client};
use sensei_tests::rig::{self, Registry};
use sensei_tests::scene::Scene;
use serde_json::json;
use sha2::{Digest as _, Sha256};

const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Layer bodies of every size that matters to the framing. Their first bytes are the gzip
/// magic, which is all the writer looks at; the rest differs per layer.
fn sized_layers() -> Vec<(Vec<u8>, &'static str)> {
    [
        2usize, 3, 511, 512, 1024, 65_535, 65_536, 131_070, 200_003, 1_048_577,
    ]
    .iter()
    .enumerate()
    .map(|(i, &n)| {
        let mut body: Vec<u8> = (0..n)
            .map(|j| (j as u8).wrapping_mul(29).wrapping_add(i as u8))
            .collect();
        body[..2].copy_from_slice(&[0x1f, 0x8b]);
        (body, OCI_LAYER_GZIP)
    })
    .collect()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes an OCI layout at `dir` holding one image `NAME:1.0.0` of these layers.
fn write_layout(dir: &Path, name: &str, layers: &[(Vec<u8>, &str)]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
        digest
    };
    let diff_ids: Vec<String> = layers.iter().map(|(b, _)| sha256(b)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let descriptors: Vec<_> = layers
        .iter()
        .map(|(b, media_type)| json!({"mediaType": media_type, "digest": put(b), "size": b.len()}))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(&config), "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": format!("{name}:1.0.0")},
    }]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Records the phases a build goes through: an in-place build has no `fetch` phase (nothing is
/// downloaded to a store first).
#[derive(Default)]
struct Phases(Mutex<Vec<String>>);

impl Reporter for Phases {
    fn start(&self, phase: &str, _: Option<u64>) {
        self.0.lock().unwrap().push(phase.to_owned());
    }
}

struct Bench {
    scene: Scene,
    client: Client,
    runtime: tokio::runtime::Runtime,
    key: PrivateKey,
}

impl Bench {
    fn new(plain_http: Vec<String>) -> Self {
        let scene = Scene::new();
        let key = sensei_bundler::keys::read_private_key(&scene.key).unwrap();
        Self {
            scene,
            client: Client::new(ClientSettings {
                plain_http,
                ..ClientSettings::default()
            })
            .unwrap(),
            runtime: tokio::runtime::Runtime::new().unwrap(),
            key,
        }
    }

    /// A spec beside the fixture spec: its chart and images, then `extra` image entries.
    fn spec(&self, name: &str, extra: &str) -> PathBuf {
        let fixture = std::fs::read_to_string(&self.scene.fixtures.spec_path).unwrap();
        let path = self.scene.fixtures.spec_path.with_file_name(name);
        std::fs::write(&path, format!("{fixture}{extra}")).unwrap();
        path
    }

    fn plan(&self, spec_path: &Path) -> Plan {
        let spec = BundleSpec::from_path(spec_path).unwrap();
        let opts = PlanOptions {
            created: Some(BundleTime::from_second(1_767_225_600).unwrap()),
            ..PlanOptions::default()
        };
        let env = PlanEnv {
            registry: &self.client,
            helm: None,
            concurrency: 4,
        };
        self.runtime
            .block_on(plan(&spec, spec_path, &opts, &env))
            .unwrap()
    }

    /// `build` (in place when it can), its bytes and the phases it went through.
    fn built(&self, plan: &mut Plan, name: &str) -> (Vec<u8>, Vec<String>) {
        let out = self.scene.path(name);
        let checked = check_output("-o", &out, &[], Replace::Force).unwrap();
        let phases = Phases::default();
        let cancel = AtomicBool::new(false);
        let opts = BuildOptions {
            keys: std::slice::from_ref(&self.key),
            concurrency: 4,
            cancel: &cancel,
        };
        build(plan, &checked, &self.client, &self.runtime, &opts, &phases).unwrap();
        let phases = phases.0.into_inner().unwrap();
        (std::fs::read(&out).unwrap(), phases)
    }

    /// The streaming writer's bytes: registry layers fetched to a store, then `write_bundle`.
    fn streamed(&self, plan: &mut Plan, name: &str) -> Vec<u8> {
        let store = tempfile::tempdir().unwrap();
        self.runtime
            .block_on(fetch_remote(
                plan,
                &self.client,
                store.path(),
                4,
                None,
                &Silent,
            ))
            .unwrap();
        let out = self.scene.path(name);
        let opts = WriteOptions {
            keys: std::slice::from_ref(&self.key),
            cancel: None,
        };
        write_bundle(plan, &out, &opts, &Silent).unwrap();
        std::fs::read(&out).unwrap()
    }
}

fn assert_same(what: &str, in_place: &[u8], streamed: &[u8]) {
    assert!(
        in_place == streamed,
        "{what}: the in-place .tar.gz ({} bytes) differs from the streaming writer's ({} bytes), first at byte {:?}",
        in_place.len(),
        streamed.len(),
        in_place.iter().zip(streamed).position(|(a, b)| a != b)
    );
}

#[test]
fn from_a_layout_the_in_place_tgz_is_the_streaming_one() {
    let bench = Bench::new(vec![]);
    let layout = bench.scene.path("sized");
    write_layout(&layout, "sized", &sized_layers());
    let spec = bench.spec(
        "sized.yaml",
        &format!(
            "  - ref: registry.example.com/gz/sized:1.0.0\n    layout: {}\n    layoutRef: sized:1.0.0\n",
            layout.display()
        ),
    );
    let mut plan = bench.plan(&spec);
    assert!(gzip_fits_in_place(&plan));
    let (in_place, phases) = bench.built(&mut plan, "in-place.tar.gz");
    assert_eq!(phases, ["write"]);
    let streamed = bench.streamed(&mut plan, "streamed.tar.gz");
    assert_same("from a layout", &in_place, &streamed);
    bench.scene.verifies(&bench.scene.path("in-place.tar.gz"));
}

#[test]
fn from_a_registry_the_in_place_tgz_is_the_streaming_one_and_needs_no_store() {
    let registry = Registry::plain();
    let bench = Bench::new(vec![registry.host()]);
    let mut refs = rig::seed_fixtures(&registry, &bench.scene.fixtures, "sensei");
    let layout = bench.scene.path("sized");
    write_layout(&layout, "sized", &sized_layers());
    let source = format!("oci:{}:sized:1.0.0", layout.display());
    rig::seed(&registry, &source, "gz/sized:1.0.0");
    refs.push(format!("{}/gz/sized:1.0.0", registry.host()));
    let spec = bench.scene.spec("registry.yaml", &refs, "");
    let mut plan = bench.plan(&spec);
    assert!(
        plan.remote_blobs() > 10,
        "the layers come from the registry"
    );
    assert!(gzip_fits_in_place(&plan));
    let (in_place, phases) = bench.built(&mut plan, "in-place.tar.gz");
    // Fetched straight into the archive: no download store, no `fetch` phase before the write.
    assert_eq!(phases, ["write"]);
    let streamed = bench.streamed(&mut plan, "streamed.tar.gz");
    assert_same("from a registry", &in_place, &streamed);
    bench.scene.verifies(&bench.scene.path("in-place.tar.gz"));
}

#[test]
fn a_local_layer_that_is_not_compressed_is_written_the_streaming_way() {
    let bench = Bench::new(vec![]);
    let mut layers = sized_layers();
    layers.insert(
        3,
        (
            b"plain tar bytes, deflated by the writer".repeat(100),
            OCI_LAYER_TAR,
        ),
    );
    let layout = bench.scene.path("plain");
    write_layout(&layout, "plain", &layers);
    let spec = bench.spec(
        "plain.yaml",
        &format!(
            "  - ref: registry.example.com/gz/plain:1.0.0\n    layout: {}\n    layoutRef: plain:1.0.0\n",
            layout.display()
        ),
    );
    let mut plan = bench.plan(&spec);
    assert!(!gzip_fits_in_place(&plan));
    let (built, _) = bench.built(&mut plan, "built.tar.gz");
    let streamed = bench.streamed(&mut plan, "streamed.tar.gz");
    assert_same("an uncompressed local layer", &built, &streamed);
    bench.scene.verifies(&bench.scene.path("built.tar.gz"));
}

#[test]
fn a_registry_layer_whose_bytes_contradict_its_media_type_falls_back_to_the_streaming_way() {
    let registry = Registry::plain();
    let bench = Bench::new(vec![registry.host()]);
    // Declared gzip, but a plain tar: Docker accepts such layers (it sniffs the bytes), and the
    // streaming writer deflates it; only its bytes can tell, once it arrives.
    let mut layers = sized_layers();
    layers.insert(0, (b"ustar-like plain bytes ".repeat(5000), OCI_LAYER_GZIP));
    let layout = bench.scene.path("liar");
    write_layout(&layout, "liar", &layers);
    let source = format!("oci:{}:liar:1.0.0", layout.display());
    rig::seed(&registry, &source, "gz/liar:1.0.0");
    let spec = bench.scene.spec(
        "liar.yaml",
        &[format!("{}/gz/liar:1.0.0", registry.host())],
        "",
    );
    let mut plan = bench.plan(&spec);
    assert!(gzip_fits_in_place(&plan), "the media types promise it");
    let mut again = plan.clone();
    let (built, phases) = bench.built(&mut plan, "built.tar.gz");
    // The in-place write began, found out, and the layers went through the store after all.
    assert_eq!(phases, ["write", "fetch", "write"], "{phases:?}");
    let streamed = bench.streamed(&mut again, "streamed.tar.gz");
    assert_same(
        "a layer that is not what its media type says",
        &built,
        &streamed,
    );
    bench.scene.verifies(&bench.scene.path("built.tar.gz"));
    assert!(
        sensei_tests::scene::temporary_leftovers(bench.scene.dir.path()).is_empty(),
        "the abandoned in-place file is gone"
    );
}
