//! Deterministic test fixtures: an OCI image layout, a Helm chart and a bundle spec, generated locally.
//!
//! The end-to-end tests, the demo script and the benchmarks need real images (OCI and Docker media
//! types, a multi-arch index, layers shared between images) without pulling anything from the
//! internet. Everything here is derived from [`FixtureOptions`] alone: the same options give
//! byte-identical files, so digests can be compared across runs and machines. That is why the tar
//! headers are written by hand (mtime 0, uid/gid 0, mode 0644), the gzip header carries no
//! timestamp or name, and every JSON document is serialised from structs (field order fixed by the
//! declaration, not by whichever map implementation serde_json was built with).
//!
//! Caveat: compressed layer bytes depend on the deflate implementation; the workspace pins flate2
//! to its `zlib-rs` backend, so digests change only if that dependency changes.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Registry and repository prefix of every reference in the generated bundle spec.
pub const REGISTRY_REPO_PREFIX: &str = "registry.example.com/sensei";

/// Media types written by the fixtures, so tests can compare against them.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI gzip layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// Annotation naming an image inside an OCI layout's `index.json`.
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// What to generate. `Default` gives the small set the tests use (well under 1 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FixtureOptions {
    /// Extra incompressible bytes in one big layer of image `big` (0 = no `big` image). For benchmarks (~1 GiB).
    pub big_layer_bytes: u64,
    /// Number of additional small images `small-NNN:1.0.0` sharing the base layer (for benchmarks; default 0).
    pub small_images: usize,
    /// Seed that varies the content of every layer (default 0); different seeds => different digests.
    pub seed: u64,
}

/// One image of the generated layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureImage {
    /// The reference the bundle spec gives it, e.g. `registry.example.com/sensei/api:1.2.0`.
    pub reference: String,
    /// The `org.opencontainers.image.ref.name` in the layout, e.g. `api:1.2.0`.
    pub layout_ref: String,
    /// `sha256:...` of the top manifest or index.
    pub digest: String,
    /// Media type of the top manifest or index.
    pub media_type: String,
    /// Platforms as `os/arch`, e.g. `["linux/amd64", "linux/arm64"]`.
    pub platforms: Vec<String>,
    /// Every blob digest reachable from the image, including its own, children before parents
    /// (layers, config, manifest, then index), each once.
    pub blobs: Vec<String>,
    /// A source skopeo can copy from: `oci:LAYOUT:REF` for OCI images; for the Docker media-type
    /// images `oci:ROOT/oci-docker/NAME`, a layout holding only that image, because skopeo's
    /// `oci:` transport does not resolve ref names of Docker media types.
    pub skopeo_source: String,
}

/// Everything [`write_fixtures`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureSet {
    /// `root/oci`: one OCI image layout holding every image.
    pub layout_dir: PathBuf,
    /// `root/charts/demo`: a Helm chart directory.
    pub chart_dir: PathBuf,
    /// `root/bundle.yaml`: a bundle spec naming the chart and every image.
    pub spec_path: PathBuf,
    /// The images, in the order the spec lists them (`api`, `worker`, `multi`, `legacy`,
    /// `legacy-list`, then `big` and `small-NNN` when asked for).
    pub images: Vec<FixtureImage>,
}

impl FixtureSet {
    /// The image whose layout ref name is `layout_ref` (e.g. `api:1.2.0`).
    pub fn image(&self, layout_ref: &str) -> Option<&FixtureImage> {
        self.images.iter().find(|i| i.layout_ref == layout_ref)
    }
}

/// Writes, under `root`: `root/oci/` (one OCI image layout holding every image), `root/charts/demo/` (a Helm chart dir), `root/bundle.yaml` (a bundle spec using them). Returns what it wrote.
///
/// Also writes `root/oci-docker/NAME/` for each Docker media-type image: the same bytes in a
/// layout of its own, the only way skopeo's `oci:` transport reads them (see
/// [`FixtureImage::skopeo_source`]). The spec and the bundler use `root/oci/`.
///
/// Existing files with the same names are overwritten; nothing else under `root` is touched, so
/// write into an empty directory if stale blobs from another seed would matter.
pub fn write_fixtures(root: &Path, opts: &FixtureOptions) -> io::Result<FixtureSet> {
    let layout_dir = root.join("oci");
    let mut w = LayoutWriter::create(&layout_dir, opts.seed)?;

    // The base layers are shared on purpose: the bundle must store each blob once, and pushes
    // must skip (or mount) what the registry already has.
    let base_amd64 = w.put_layer(&base_files(opts.seed, AMD64))?;
    let base_arm64 = w.put_layer(&base_files(opts.seed, ARM64))?;

    let mut built: Vec<(&str, &str, Built)> = Vec::new();
    let api = w.app_image(OCI, AMD64, &base_amd64, "api", 4096)?;
    built.push(("api", "1.2.0", api));
    let worker = w.app_image(OCI, AMD64, &base_amd64, "worker", 4096)?;
    built.push(("worker", "1.2.0", worker));

    let multi_amd64 = w.app_image(OCI, AMD64, &base_amd64, "multi", 2048)?;
    let multi_arm64 = w.app_image(OCI, ARM64, &base_arm64, "multi", 2048)?;
    let multi = w.put_index(OCI, &[multi_amd64, multi_arm64])?;
    built.push(("multi", "1.2.0", multi));

    // The Docker images reuse the OCI base layer bytes: same blob under two media types, as
    // happens in real registries.
    let legacy = w.app_image(DOCKER, AMD64, &base_amd64, "legacy", 2048)?;
    built.push(("legacy", "1.2.0", legacy));
    let list_amd64 = w.app_image(DOCKER, AMD64, &base_amd64, "legacy-list", 1024)?;
    let list_arm64 = w.app_image(DOCKER, ARM64, &base_arm64, "legacy-list", 1024)?;
    let legacy_list = w.put_index(DOCKER, &[list_amd64, list_arm64])?;
    built.push(("legacy-list", "1.2.0", legacy_list));

    if opts.big_layer_bytes > 0 {
        let big_layer = w.put_big_layer(opts.big_layer_bytes)?;
        let big = w.put_image(OCI, AMD64, &[&base_amd64, &big_layer], "big")?;
        built.push(("big", "1.0.0", big));
    }

    let small_names: Vec<String> = (0..opts.small_images)
        .map(|i| format!("small-{i:03}"))
        .collect();
    for name in &small_names {
        let small = w.app_image(OCI, AMD64, &base_amd64, name, 256)?;
        built.push((name, "1.0.0", small));
    }

    let mut images: Vec<FixtureImage> = built
        .iter()
        .map(|(name, tag, b)| FixtureImage {
            reference: format!("{REGISTRY_REPO_PREFIX}/{name}:{tag}"),
            layout_ref: format!("{name}:{tag}"),
            digest: b.blob.digest.clone(),
            media_type: b.media_type.to_string(),
            platforms: b.platforms.iter().map(Platform::name).collect(),
            blobs: b.blobs.clone(),
            skopeo_source: format!("oci:{}:{name}:{tag}", layout_dir.display()),
        })
        .collect();

    write_layout_index(
        &layout_dir,
        images
            .iter()
            .map(|i| i.layout_ref.as_str())
            .zip(built.iter().map(|(_, _, b)| b))
            .collect(),
    )?;

    for (image, (name, _, b)) in images.iter_mut().zip(&built) {
        if b.media_type == DOCKER.manifest || b.media_type == DOCKER.index {
            let single = root.join("oci-docker").join(name);
            write_single_image_layout(&w.blobs_dir, &single, &image.layout_ref, b)?;
            image.skopeo_source = format!("oci:{}", single.display());
        }
    }

    let chart_dir = root.join("charts").join("demo");
    write_chart(&chart_dir)?;

    let spec_path = root.join("bundle.yaml");
    fs::write(&spec_path, spec_yaml(&images))?;

    Ok(FixtureSet {
        layout_dir,
        chart_dir,
        spec_path,
        images,
    })
}

/// Builds gzip bytes of a deterministic tar containing the given (path, contents) files (no mtime in gzip header, tar mtime 0, mode 0644, uid/gid 0).
///
/// Paths longer than the 100 bytes of a ustar name field get a PAX `path` record, so any path works.
pub fn tar_gz_layer(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let tar = tar_bytes(files);
    // Writing into a Vec cannot fail, and this signature is shared with callers that build
    // layers inline, so an io::Result here would only add noise.
    gzip(&tar, Compression::default()).expect("gzip into a Vec<u8> is infallible")
}

// ---------------------------------------------------------------------------------------------
// Image construction

/// The media types that make an image OCI or Docker schema 2.
#[derive(Clone, Copy)]
struct Flavor {
    manifest: &'static str,
    index: &'static str,
    config: &'static str,
    layer: &'static str,
}

const OCI: Flavor = Flavor {
    manifest: media_types::OCI_MANIFEST,
    index: media_types::OCI_INDEX,
    config: media_types::OCI_CONFIG,
    layer: media_types::OCI_LAYER_GZIP,
};

const DOCKER: Flavor = Flavor {
    manifest: media_types::DOCKER_MANIFEST,
    index: media_types::DOCKER_MANIFEST_LIST,
    config: media_types::DOCKER_CONFIG,
    layer: media_types::DOCKER_LAYER_GZIP,
};

/// Field order is the order of the OCI spec's examples.
#[derive(Clone, Copy, Serialize)]
struct Platform {
    architecture: &'static str,
    os: &'static str,
}

const AMD64: Platform = Platform {
    architecture: "amd64",
    os: "linux",
};

const ARM64: Platform = Platform {
    architecture: "arm64",
    os: "linux",
};

impl Platform {
    fn name(&self) -> String {
        format!("{}/{}", self.os, self.architecture)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// The subset of the image config both OCI and Docker share; enough for runtimes and skopeo.
#[derive(Serialize)]
struct ImageConfig {
    architecture: &'static str,
    os: &'static str,
    config: RunConfig,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RunConfig {
    #[serde(rename = "Env")]
    env: Vec<String>,
    #[serde(rename = "Cmd")]
    cmd: Vec<String>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Clone)]
struct Blob {
    digest: String,
    size: u64,
}

/// A stored layer: its compressed blob and the digest of its uncompressed tar (the config's diff_id).
struct Layer {
    blob: Blob,
    diff_id: String,
}

/// A stored manifest or index, with what the layout index and [`FixtureImage`] need to know.
struct Built {
    blob: Blob,
    media_type: &'static str,
    platforms: Vec<Platform>,
    blobs: Vec<String>,
}

/// Writes blobs into one OCI image layout, each once.
struct LayoutWriter {
    blobs_dir: PathBuf,
    written: HashSet<String>,
    /// Varies every generated file, hence every digest.
    seed: u64,
}

impl LayoutWriter {
    fn create(layout_dir: &Path, seed: u64) -> io::Result<Self> {
        let blobs_dir = layout_dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs_dir)?;
        Ok(Self {
            blobs_dir,
            written: HashSet::new(),
            seed,
        })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.blobs_dir.join(hex)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<Blob> {
        let digest = sha256_digest(bytes);
        // Rewriting on every run (rather than trusting an existing file) heals a truncated blob
        // left by an interrupted earlier run.
        if self.written.insert(digest.clone()) {
            fs::write(self.blob_path(&digest), bytes)?;
        }
        Ok(Blob {
            digest,
            size: bytes.len() as u64,
        })
    }

    fn put_json<T: Serialize>(&mut self, value: &T) -> io::Result<Blob> {
        let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
        self.put(&bytes)
    }

    fn put_layer<S: AsRef<str>>(&mut self, files: &[(S, Vec<u8>)]) -> io::Result<Layer> {
        let tar = tar_bytes(files);
        let diff_id = sha256_digest(&tar);
        let blob = self.put(&gzip(&tar, Compression::default())?)?;
        Ok(Layer { blob, diff_id })
    }

    /// Streams a layer holding one `len`-byte pseudo-random file straight to its blob file, so a
    /// 1 GiB benchmark layer never sits in memory. Stored (level 0) deflate blocks: the data is
    /// incompressible anyway, and this keeps generation at disk speed.
    fn put_big_layer(&mut self, len: u64) -> io::Result<Layer> {
        let tmp = tempfile::Builder::new()
            .prefix(".big-layer-")
            .tempfile_in(&self.blobs_dir)?;
        let compressed = HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp));
        let mut tar = HashingWriter::new(GzEncoder::new(compressed, Compression::none()));

        write_tar_header(&mut tar, "data/big.bin", len)?;
        let mut rng = SplitMix64::new(stream_seed(self.seed, "big/data"));
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            rng.fill(&mut buf[..n]);
            tar.write_all(&buf[..n])?;
            left -= n as u64;
        }
        tar.write_all(&tar_padding(len))?;
        tar.write_all(&[0u8; 1024])?;

        let (gz, diff_id, _) = tar.finish();
        let (buffered, digest, size) = gz.finish()?.finish();
        let tmp = buffered.into_inner().map_err(|e| e.into_error())?;
        let path = self.blob_path(&digest);
        tmp.persist(&path).map_err(|e| e.error)?;
        // The temp file is created 0600; other blobs get the umask's default, so match them.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        }
        self.written.insert(digest.clone());
        Ok(Layer {
            blob: Blob { digest, size },
            diff_id,
        })
    }

    /// The usual image: a base layer plus one layer of the application's own files.
    fn app_image(
        &mut self,
        flavor: Flavor,
        platform: Platform,
        base: &Layer,
        name: &str,
        payload_bytes: usize,
    ) -> io::Result<Built> {
        let app = self.put_layer(&app_files(self.seed, name, platform, payload_bytes))?;
        self.put_image(flavor, platform, &[base, &app], name)
    }

    fn put_image(
        &mut self,
        flavor: Flavor,
        platform: Platform,
        layers: &[&Layer],
        name: &str,
    ) -> io::Result<Built> {
        let config = ImageConfig {
            architecture: platform.architecture,
            os: platform.os,
            config: RunConfig {
                env: vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ],
                cmd: vec![format!("/app/{name}.bin")],
            },
            rootfs: RootFs {
                kind: "layers",
                diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
        };
        let config_blob = self.put_json(&config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: flavor.manifest,
            config: descriptor(flavor.config, &config_blob),
            layers: layers
                .iter()
                .map(|l| descriptor(flavor.layer, &l.blob))
                .collect(),
        };
        let blob = self.put_json(&manifest)?;

        let mut blobs: Vec<String> = Vec::new();
        for digest in layers
            .iter()
            .map(|l| &l.blob.digest)
            .chain([&config_blob.digest, &blob.digest])
        {
            push_unique(&mut blobs, digest);
        }
        Ok(Built {
            blob,
            media_type: flavor.manifest,
            platforms: vec![platform],
            blobs,
        })
    }

    fn put_index(&mut self, flavor: Flavor, children: &[Built]) -> io::Result<Built> {
        let index = Index {
            schema_version: 2,
            media_type: flavor.index,
            manifests: children
                .iter()
                .map(|c| Descriptor {
                    platform: c.platforms.first().copied(),
                    ..descriptor(c.media_type, &c.blob)
                })
                .collect(),
        };
        let blob = self.put_json(&index)?;
        let mut blobs = Vec::new();
        for digest in children.iter().flat_map(|c| &c.blobs).chain([&blob.digest]) {
            push_unique(&mut blobs, digest);
        }
        Ok(Built {
            blob,
            media_type: flavor.index,
            platforms: children.iter().flat_map(|c| c.platforms.clone()).collect(),
            blobs,
        })
    }
}

/// Writes a layout's `index.json` (entries sorted by ref name) and `oci-layout`. They go last: a
/// layout whose index exists has all its blobs.
fn write_layout_index(layout_dir: &Path, mut entries: Vec<(&str, &Built)>) -> io::Result<()> {
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let index = Index {
        schema_version: 2,
        media_type: media_types::OCI_INDEX,
        manifests: entries
            .into_iter()
            .map(|(layout_ref, b)| Descriptor {
                annotations: Some(BTreeMap::from([(
                    REF_NAME_ANNOTATION,
                    layout_ref.to_string(),
                )])),
                ..descriptor(b.media_type, &b.blob)
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&index).map_err(io::Error::other)?;
    fs::write(layout_dir.join("index.json"), bytes)?;
    fs::write(
        layout_dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
}

/// Copies one image into a layout of its own. skopeo's `oci:` transport (containers/image, as in
/// skopeo 1.9) resolves `oci:DIR:REF` only among descriptors of OCI media types, so it cannot name
/// the Docker images of the shared layout; with `oci:DIR` and no ref it takes a layout's single
/// image whatever its media type.
fn write_single_image_layout(
    from_blobs: &Path,
    layout_dir: &Path,
    layout_ref: &str,
    built: &Built,
) -> io::Result<()> {
    let blobs_dir = layout_dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs_dir)?;
    for digest in &built.blobs {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        fs::copy(from_blobs.join(hex), blobs_dir.join(hex))?;
    }
    write_layout_index(layout_dir, vec![(layout_ref, built)])
}

fn descriptor(media_type: &'static str, blob: &Blob) -> Descriptor {
    Descriptor {
        media_type,
        digest: blob.digest.clone(),
        size: blob.size,
        platform: None,
        annotations: None,
    }
}

fn push_unique(list: &mut Vec<String>, digest: &str) {
    if !list.iter().any(|d| d == digest) {
        list.push(digest.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Layer contents

fn base_files(seed: u64, platform: Platform) -> Vec<(String, Vec<u8>)> {
    let arch = platform.architecture;
    vec![
        (
            "etc/os-release".into(),
            format!(
                "NAME=\"Sensei Fixture Linux\"\nID=sensei-fixture\nVERSION_ID=1.0\n\
                 ARCH={arch}\nFIXTURE_SEED={seed}\n"
            )
            .into_bytes(),
        ),
        (
            "etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec(),
        ),
        (
            "bin/busybox".into(),
            prng_bytes(stream_seed(seed, &format!("base/{arch}/busybox")), 8192),
        ),
    ]
}

fn app_files(
    seed: u64,
    name: &str,
    platform: Platform,
    payload_bytes: usize,
) -> Vec<(String, Vec<u8>)> {
    let arch = platform.architecture;
    vec![
        (
            format!("app/{name}.bin"),
            prng_bytes(
                stream_seed(seed, &format!("app/{name}/{arch}")),
                payload_bytes,
            ),
        ),
        (
            "app/VERSION".into(),
            format!("{name} {arch}\n").into_bytes(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Chart and spec

const CHART_YAML: &str = r#"apiVersion: v2
name: demo
description: Demo chart of the Sensei fixture bundle.
type: application
version: 1.2.0
appVersion: "1.2.0"
annotations:
  artifacthub.io/images: |
    - name: api
      image: registry.example.com/sensei/api:1.2.0
    - name: worker
      image: registry.example.com/sensei/worker:1.2.0
"#;

const VALUES_YAML: &str = r#"global:
  imageRegistry: ""
image:
  repository: sensei/api
  tag: 1.2.0
"#;

const HELPERS_TPL: &str = r#"{{/* Name of every object of the release. */}}
{{- define "demo.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by the Deployment and its pods. */}}
{{- define "demo.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
"#;

const DEPLOYMENT_YAML: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "demo.fullname" . }}
  labels:
    {{- include "demo.labels" . | nindent 4 }}
spec:
  replicas: 1
  selector:
    matchLabels:
      {{- include "demo.labels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "demo.labels" . | nindent 8 }}
    spec:
      containers:
        - name: api
          image: "{{ with .Values.global.imageRegistry }}{{ . }}/{{ end }}{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"#;

const HELMIGNORE: &str = "# Backup files must not end up in the packaged chart.\n*.bak\n";

const NOTES_BAK: &str =
    "Ignored by .helmignore: this file must not appear in the packaged chart.\n";

fn write_chart(chart_dir: &Path) -> io::Result<()> {
    let templates = chart_dir.join("templates");
    fs::create_dir_all(&templates)?;
    fs::write(chart_dir.join("Chart.yaml"), CHART_YAML)?;
    fs::write(chart_dir.join("values.yaml"), VALUES_YAML)?;
    fs::write(chart_dir.join(".helmignore"), HELMIGNORE)?;
    fs::write(chart_dir.join("notes.bak"), NOTES_BAK)?;
    fs::write(templates.join("_helpers.tpl"), HELPERS_TPL)?;
    fs::write(templates.join("deployment.yaml"), DEPLOYMENT_YAML)
}

fn spec_yaml(images: &[FixtureImage]) -> String {
    let mut spec = String::from(
        "# Generated by sensei-tests fixtures; relative paths are relative to this file.\n\
         name: demo\nversion: 1.2.0\ncharts:\n  - path: ./charts/demo\nimages:\n",
    );
    for image in images {
        spec.push_str(&format!(
            "  - ref: {}\n    layout: ./oci\n    layoutRef: {}\n",
            image.reference, image.layout_ref
        ));
    }
    spec
}

// ---------------------------------------------------------------------------------------------
// Tar, gzip, hashing, PRNG

const TAR_BLOCK: usize = 512;
/// Largest size an 11-digit octal ustar field holds; bigger files need a PAX `size` record.
const USTAR_MAX_SIZE: u64 = 0o777_7777_7777;

fn tar_bytes<S: AsRef<str>>(files: &[(S, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, contents) in files {
        let len = contents.len() as u64;
        push_tar_header(&mut out, path.as_ref(), len);
        out.extend_from_slice(contents);
        out.extend_from_slice(&tar_padding(len));
    }
    // End of archive: two zero blocks.
    out.extend_from_slice(&[0u8; 2 * TAR_BLOCK]);
    out
}

fn write_tar_header<W: Write>(w: &mut W, path: &str, size: u64) -> io::Result<()> {
    let mut header = Vec::with_capacity(3 * TAR_BLOCK);
    push_tar_header(&mut header, path, size);
    w.write_all(&header)
}

/// Appends the header block(s) of one regular file: a PAX extended header first when the path
/// or size does not fit ustar's fields.
fn push_tar_header(out: &mut Vec<u8>, path: &str, size: u64) {
    let mut pax = String::new();
    if path.len() > 100 {
        pax.push_str(&pax_record("path", path));
    }
    if size > USTAR_MAX_SIZE {
        pax.push_str(&pax_record("size", &size.to_string()));
    }
    if !pax.is_empty() {
        let records = pax.into_bytes();
        let len = records.len() as u64;
        out.extend_from_slice(&ustar_block("././@PaxHeader", len, b'x'));
        out.extend_from_slice(&records);
        out.extend_from_slice(&tar_padding(len));
    }
    // With a PAX record the ustar fields are only fallbacks, so truncation is harmless.
    let name = truncate_to_boundary(path, 100);
    out.extend_from_slice(&ustar_block(name, size.min(USTAR_MAX_SIZE), b'0'));
}

fn ustar_block(name: &str, size: u64, typeflag: u8) -> [u8; TAR_BLOCK] {
    let mut h = [0u8; TAR_BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal_field(&mut h[100..108], 0o644);
    octal_field(&mut h[108..116], 0);
    octal_field(&mut h[116..124], 0);
    octal_field(&mut h[124..136], size);
    octal_field(&mut h[136..148], 0);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal_field(&mut h[329..337], 0);
    octal_field(&mut h[337..345], 0);
    // The checksum is computed with its own field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal_field(&mut h[148..155], sum);
    h
}

/// Zero-padded octal digits filling all but the last byte of `field`, then NUL.
fn octal_field(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    // Callers keep values in range (sizes are capped at USTAR_MAX_SIZE); keep the low digits
    // rather than overflow the field if that ever changes.
    let text = &text.as_bytes()[text.len() - digits..];
    field[..digits].copy_from_slice(text);
    field[digits] = 0;
}

/// A PAX record: `LEN key=value\n`, where LEN counts the whole record including its own digits.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len != body.len() + len.to_string().len() {
        len = body.len() + len.to_string().len();
    }
    format!("{len}{body}")
}

fn truncate_to_boundary(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn tar_padding(len: u64) -> Vec<u8> {
    let rem = (len % TAR_BLOCK as u64) as usize;
    vec![0u8; if rem == 0 { 0 } else { TAR_BLOCK - rem }]
}

/// flate2's gzip header has mtime 0, no file name and OS byte 255 unless told otherwise, so the
/// output depends only on the input and the level.
fn gzip(data: &[u8], level: Compression) -> io::Result<Vec<u8>> {
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
    gz.write_all(data)?;
    gz.finish()
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Passes writes through while hashing and counting them (sha2 0.11 hashers are not `io::Write`).
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, the `sha256:` digest and the byte count of everything written.
    fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// splitmix64: tiny, fast, and good enough to make bytes incompressible. Not cryptographic, and it
/// need not be: it only has to be fast and reproducible.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn prng_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    SplitMix64::new(seed).fill(&mut buf);
    buf
}

/// A per-stream seed: FNV-1a of the label mixed with the user's seed, so every file differs and
/// every file changes with the seed.
fn stream_seed(seed: u64, label: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in label.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::Read;
    use std::process::Command;

    use flate2::read::GzDecoder;
    use serde_json::Value;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Small but exercising every code path, the streamed big layer included.
    const OPTS: FixtureOptions = FixtureOptions {
        big_layer_bytes: 100_003,
        small_images: 2,
        seed: 0,
    };

    /// Every file under `dir`, by relative path.
    fn read_tree(dir: &Path) -> io::Result<BTreeMap<PathBuf, Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(dir).map_err(io::Error::other)?;
                    out.insert(rel.to_path_buf(), fs::read(&path)?);
                }
            }
        }
        Ok(out)
    }

    fn blob(set: &FixtureSet, digest: &str) -> io::Result<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        fs::read(set.layout_dir.join("blobs/sha256").join(hex))
    }

    fn blob_json(set: &FixtureSet, digest: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Ok(serde_json::from_slice(&blob(set, digest)?)?)
    }

    fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
        v[key]
            .as_str()
            .ok_or_else(|| format!("missing string {key} in {v}"))
    }

    fn array<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
        v[key]
            .as_array()
            .ok_or_else(|| format!("missing array {key} in {v}"))
    }

    fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Every image manifest reachable from the set's images (children of indexes included).
    fn image_manifests(set: &FixtureSet) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        for image in &set.images {
            let top = blob_json(set, &image.digest)?;
            if top.get("manifests").is_some() {
                for child in array(&top, "manifests")? {
                    out.push(blob_json(set, str_field(child, "digest")?)?);
                }
            } else {
                out.push(top);
            }
        }
        Ok(out)
    }

    #[test]
    fn same_options_give_identical_bytes() -> TestResult {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let set_a = write_fixtures(a.path(), &OPTS)?;
        let set_b = write_fixtures(b.path(), &OPTS)?;
        let (tree_a, tree_b) = (read_tree(a.path())?, read_tree(b.path())?);
        assert_eq!(
            tree_a.keys().collect::<Vec<_>>(),
            tree_b.keys().collect::<Vec<_>>()
        );
        for (path, bytes) in &tree_a {
            assert!(
                tree_b.get(path) == Some(bytes),
                "{} differs",
                path.display()
            );
        }
        let digests = |s: &FixtureSet| {
            s.images
                .iter()
                .map(|i| (i.digest.clone(), i.blobs.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(digests(&set_a), digests(&set_b));

        // Writing again over existing files changes nothing either.
        write_fixtures(a.path(), &OPTS)?;
        assert_eq!(read_tree(a.path())?, tree_a);
        Ok(())
    }

    #[test]
    fn default_set_is_small() -> TestResult {
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &FixtureOptions::default())?;
        let total: usize = read_tree(dir.path())?.values().map(Vec::len).sum();
        assert!(total < 1_000_000, "default fixtures take {total} bytes");
        let refs: Vec<&str> = set.images.iter().map(|i| i.layout_ref.as_str()).collect();
        assert_eq!(
            refs,
            [
                "api:1.2.0",
                "worker:1.2.0",
                "multi:1.2.0",
                "legacy:1.2.0",
                "legacy-list:1.2.0"
            ]
        );
        Ok(())
    }

    #[test]
    fn another_seed_changes_every_blob() -> TestResult {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let set_a = write_fixtures(a.path(), &OPTS)?;
        let set_b = write_fixtures(b.path(), &FixtureOptions { seed: 1, ..OPTS })?;
        let blobs = |s: &FixtureSet| -> BTreeSet<String> {
            s.images.iter().flat_map(|i| i.blobs.clone()).collect()
        };
        let (blobs_a, blobs_b) = (blobs(&set_a), blobs(&set_b));
        assert_eq!(blobs_a.len(), blobs_b.len());
        assert!(blobs_a.is_disjoint(&blobs_b));
        Ok(())
    }

    #[test]
    fn blob_names_are_their_sha256() -> TestResult {
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &OPTS)?;
        let mut stored = BTreeSet::new();
        for (path, bytes) in read_tree(dir.path())? {
            if path.parent().is_some_and(|p| p.ends_with("blobs/sha256")) {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                assert_eq!(
                    name,
                    hex::encode(Sha256::digest(&bytes)),
                    "{}",
                    path.display()
                );
                if path.starts_with("oci") && !path.starts_with("oci-docker") {
                    stored.insert(format!("sha256:{name}"));
                }
            }
        }
        // The shared layout holds exactly the blobs the images reach: nothing stale, none missing.
        let reachable: BTreeSet<String> = set.images.iter().flat_map(|i| i.blobs.clone()).collect();
        assert_eq!(stored, reachable);
        Ok(())
    }

    #[test]
    fn base_layer_is_stored_once_and_shared() -> TestResult {
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &OPTS)?;
        let first_layer = |layout_ref: &str| -> Result<String, Box<dyn std::error::Error>> {
            let image = set.image(layout_ref).ok_or(layout_ref.to_string())?;
            let manifest = blob_json(&set, &image.digest)?;
            Ok(str_field(&array(&manifest, "layers")?[0], "digest")?.to_string())
        };
        let base = first_layer("api:1.2.0")?;
        for other in [
            "worker:1.2.0",
            "legacy:1.2.0",
            "big:1.0.0",
            "small-001:1.0.0",
        ] {
            assert_eq!(first_layer(other)?, base, "{other}");
        }
        // Each image's own layer is its own.
        let own_layer = |layout_ref: &str| -> Result<String, Box<dyn std::error::Error>> {
            let image = set.image(layout_ref).ok_or(layout_ref.to_string())?;
            let manifest = blob_json(&set, &image.digest)?;
            Ok(str_field(&array(&manifest, "layers")?[1], "digest")?.to_string())
        };
        assert_ne!(own_layer("api:1.2.0")?, own_layer("worker:1.2.0")?);
        // Listed once per image, stored once in the layout.
        let api = set.image("api:1.2.0").ok_or("api")?;
        assert_eq!(api.blobs.iter().filter(|d| **d == base).count(), 1);
        assert!(api.blobs.last() == Some(&api.digest));
        Ok(())
    }

    #[test]
    fn index_lists_every_ref_with_its_descriptor() -> TestResult {
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &OPTS)?;
        assert_eq!(
            fs::read(set.layout_dir.join("oci-layout"))?,
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let index: Value = serde_json::from_slice(&fs::read(set.layout_dir.join("index.json"))?)?;
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], media_types::OCI_INDEX);
        let mut listed = Vec::new();
        for d in array(&index, "manifests")? {
            let name = d["annotations"][REF_NAME_ANNOTATION]
                .as_str()
                .ok_or("no ref name")?;
            let image = set.image(name).ok_or(format!("unknown ref {name}"))?;
            assert_eq!(str_field(d, "digest")?, image.digest);
            assert_eq!(str_field(d, "mediaType")?, image.media_type);
            assert_eq!(
                d["size"].as_u64(),
                Some(blob(&set, &image.digest)?.len() as u64)
            );
            listed.push(name.to_string());
        }
        let mut expected: Vec<String> = set.images.iter().map(|i| i.layout_ref.clone()).collect();
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(expected.len(), 5 + 1 + 2);

        let spec = fs::read_to_string(&set.spec_path)?;
        for image in &set.images {
            assert!(spec.contains(&format!(
                "  - ref: {}\n    layout: ./oci\n    layoutRef: {}\n",
                image.reference, image.layout_ref
            )));
        }
        for file in ["Chart.yaml", "values.yaml", ".helmignore", "notes.bak"] {
            assert!(set.chart_dir.join(file).is_file(), "{file}");
        }
        Ok(())
    }

    #[test]
    fn media_types_and_platforms() -> TestResult {
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &OPTS)?;
        let cases = [
            ("api:1.2.0", media_types::OCI_MANIFEST, vec!["linux/amd64"]),
            (
                "multi:1.2.0",
                media_types::OCI_INDEX,
                vec!["linux/amd64", "linux/arm64"],
            ),
            (
                "legacy:1.2.0",
                media_types::DOCKER_MANIFEST,
                vec!["linux/amd64"],
            ),
            (
                "legacy-list:1.2.0",
                media_types::DOCKER_MANIFEST_LIST,
                vec!["linux/amd64", "linux/arm64"],
            ),
        ];
        for (layout_ref, media_type, platforms) in cases {
            let image = set.image(layout_ref).ok_or(layout_ref)?;
            assert_eq!(image.media_type, media_type);
            assert_eq!(image.platforms, platforms);
            let top = blob_json(&set, &image.digest)?;
            assert_eq!(top["mediaType"], media_type);
            assert_eq!(top["schemaVersion"], 2);
        }
        let legacy = blob_json(&set, &set.image("legacy:1.2.0").ok_or("legacy")?.digest)?;
        assert_eq!(legacy["config"]["mediaType"], media_types::DOCKER_CONFIG);
        assert_eq!(
            legacy["layers"][0]["mediaType"],
            media_types::DOCKER_LAYER_GZIP
        );
        let list = blob_json(&set, &set.image("legacy-list:1.2.0").ok_or("list")?.digest)?;
        for (child, arch) in array(&list, "manifests")?.iter().zip(["amd64", "arm64"]) {
            assert_eq!(child["mediaType"], media_types::DOCKER_MANIFEST);
            assert_eq!(child["platform"]["architecture"], arch);
            assert_eq!(child["platform"]["os"], "linux");
        }
        Ok(())
    }

    #[test]
    fn configs_name_the_uncompressed_layers() -> TestResult {
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &OPTS)?;
        let manifests = image_manifests(&set)?;
        assert_eq!(manifests.len(), 2 + 2 + 1 + 2 + 1 + 2);
        for manifest in manifests {
            let config = blob_json(&set, str_field(&manifest["config"], "digest")?)?;
            assert_eq!(config["os"], "linux");
            let diff_ids = array(&config["rootfs"], "diff_ids")?;
            let layers = array(&manifest, "layers")?;
            assert_eq!(diff_ids.len(), layers.len());
            for (layer, diff_id) in layers.iter().zip(diff_ids) {
                let gz = blob(&set, str_field(layer, "digest")?)?;
                assert_eq!(layer["size"].as_u64(), Some(gz.len() as u64));
                let tar = gunzip(&gz)?;
                assert_eq!(diff_id.as_str(), Some(sha256_digest(&tar).as_str()));
            }
        }
        Ok(())
    }

    #[test]
    fn big_layer_holds_the_requested_bytes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &OPTS)?;
        let big = blob_json(&set, &set.image("big:1.0.0").ok_or("big")?.digest)?;
        let tar = gunzip(&blob(&set, str_field(&big["layers"][1], "digest")?)?)?;
        let header = &tar[..TAR_BLOCK];
        assert!(header.starts_with(b"data/big.bin\0"));
        assert_eq!(
            &header[124..136],
            format!("{:011o}\0", OPTS.big_layer_bytes).as_bytes()
        );
        let end = TAR_BLOCK + OPTS.big_layer_bytes as usize;
        assert_eq!(
            tar.len(),
            end.div_ceil(TAR_BLOCK) * TAR_BLOCK + 2 * TAR_BLOCK
        );
        // Incompressible and stored: the gzip is barely larger than the data.
        let gz_len = big["layers"][1]["size"].as_u64().ok_or("size")?;
        assert!(gz_len > OPTS.big_layer_bytes && gz_len < OPTS.big_layer_bytes + 4096);
        // No temp file left behind.
        let leftovers = fs::read_dir(set.layout_dir.join("blobs/sha256"))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0);
        Ok(())
    }

    #[test]
    fn tar_gz_layer_is_deterministic_and_plain() -> TestResult {
        let long = format!("deep/{}/file.txt", "d".repeat(120));
        let files = [
            ("etc/hello.txt", b"hello\n".to_vec()),
            ("empty", Vec::new()),
            (long.as_str(), vec![7u8; 1000]),
        ];
        let gz = tar_gz_layer(&files);
        assert_eq!(gz, tar_gz_layer(&files));
        // gzip header: magic, deflate, no flags (no name), mtime 0.
        assert_eq!(&gz[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);

        let tar = gunzip(&gz)?;
        let first = &tar[..TAR_BLOCK];
        assert!(first.starts_with(b"etc/hello.txt\0"));
        assert_eq!(&first[100..108], b"0000644\0");
        assert_eq!(&first[108..124], b"0000000\x000000000\0");
        assert_eq!(&first[136..148], b"00000000000\0");
        assert_eq!(first[156], b'0');

        // An independent reader agrees, long (PAX) path included.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("layer.tar.gz");
        fs::write(&path, &gz)?;
        let Ok(out) = Command::new("tar").arg("-tvzf").arg(&path).output() else {
            return Ok(()); // no tar(1) here: the byte checks above stand
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout)?;
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 3, "{listing}");
        assert!(lines[0].starts_with("-rw-r--r-- 0/0"), "{listing}");
        assert!(lines[0].contains("1970-01-01"), "{listing}");
        assert!(lines[2].ends_with(&long), "{listing}");
        Ok(())
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for value in ["x", &"y".repeat(90), &"z".repeat(995)] {
            let record = pax_record("path", value);
            let (len, _) = record.split_once(' ').unwrap_or_default();
            assert_eq!(len.parse::<usize>().ok(), Some(record.len()), "{record}");
        }
    }

    fn skopeo_available() -> bool {
        let found = Command::new("skopeo")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            {
                eprintln!("note: skopeo not found on PATH; skipping the skopeo check");
            }
        }
        found
    }

    fn skopeo(args: &[&str]) -> Result<Vec<u8>, String> {
        let out = Command::new("skopeo")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "skopeo {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// An independent implementation reads every image: inspect returns our exact manifest
    /// bytes, and a full copy (which checks every blob against its digest) succeeds.
    #[test]
    fn skopeo_reads_every_image() -> TestResult {
        if !skopeo_available() {
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let set = write_fixtures(dir.path(), &FixtureOptions::default())?;
        let layout = set.layout_dir.display().to_string();
        for name in ["api:1.2.0", "multi:1.2.0"] {
            let raw = skopeo(&["inspect", "--raw", &format!("oci:{layout}:{name}")])?;
            let image = set.image(name).ok_or(name)?;
            assert_eq!(sha256_digest(&raw), image.digest, "{name}");
        }
        let dest = dir.path().join("copy");
        for image in &set.images {
            let raw = skopeo(&["inspect", "--raw", &image.skopeo_source])?;
            assert_eq!(sha256_digest(&raw), image.digest, "{}", image.layout_ref);
            let to = format!("oci:{}:{}", dest.display(), image.layout_ref);
            skopeo(&[
                "copy",
                "--quiet",
                "--insecure-policy",
                "--all",
                &image.skopeo_source,
                &to,
            ])?;
        }
        Ok(())
    }
}
