#![allow(clippy::unwrap_used)]
//! The model on small hand-made bundles: heights, roles, order, the errors a bad bundle gets,
//! and a round trip through core's own tar writer and reader.

use std::collections::HashMap;

use super::*;
use crate::archive::{OutputCompression, TarReader, TarWriter};
use crate::digest::Digest;
use crate::manifest::FileEntry;
use crate::oci;

/// A tiny bundle: blobs by digest, and which of them are manifests.
#[derive(Default)]
struct Fake {
    blobs: HashMap<Digest, Vec<u8>>,
    manifests: HashMap<Digest, Vec<u8>>,
}

impl Holdings for Fake {
    fn size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).map(|b| b.len() as u64)
    }
    fn manifest(&self, digest: &Digest) -> Option<&[u8]> {
        self.manifests.get(digest).map(Vec::as_slice)
    }
}

impl Fake {
    fn blob(&mut self, media_type: &str, bytes: &[u8]) -> serde_json::Value {
        let d = Digest::of(bytes);
        self.blobs.insert(d, bytes.to_vec());
        serde_json::json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
    }

    fn put_manifest(&mut self, value: serde_json::Value) -> (Digest, serde_json::Value) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let desc = self.blob(value["mediaType"].as_str().unwrap(), &bytes);
        let d = Digest::of(&bytes);
        self.manifests.insert(d, bytes);
        (d, desc)
    }

    fn image(&mut self, layers: &[&[u8]]) -> (Digest, serde_json::Value) {
        let config = self.blob(oci::OCI_CONFIG, format!("config {layers:?}").as_bytes());
        let layers: Vec<_> = layers
            .iter()
            .map(|l| self.blob("application/vnd.oci.image.layer.v1.tar+gzip", l))
            .collect();
        self.put_manifest(serde_json::json!({"schemaVersion": 2,
            "mediaType": oci::OCI_MANIFEST, "config": config, "layers": layers}))
    }

    fn index(&mut self, children: &[serde_json::Value]) -> (Digest, serde_json::Value) {
        self.put_manifest(serde_json::json!({"schemaVersion": 2,
            "mediaType": oci::OCI_INDEX, "manifests": children}))
    }

    fn chart(&mut self) -> Digest {
        let config = self.blob(HELM_CONFIG, br#"{"name":"demo","version":"1.0.0"}"#);
        let content = self.blob(HELM_CHART_CONTENT, b"\x1f\x8bchart");
        self.put_manifest(serde_json::json!({"schemaVersion": 2,
            "mediaType": oci::OCI_MANIFEST, "config": config, "layers": [content]}))
            .0
    }

    /// Two images in a nested index, one alone, a chart.
    fn sample() -> (Self, Vec<(Digest, &'static str)>) {
        let mut f = Self::default();
        let (_, amd) = f.image(&[b"base", b"amd"]);
        let (_, arm) = f.image(&[b"base", b"arm"]);
        let (_, inner) = f.index(&[amd, arm]);
        let (outer, _) = f.index(&[inner]);
        let (single, _) = f.image(&[b"base", b"worker"]);
        let chart = f.chart();
        let tops = vec![
            (outer, oci::OCI_INDEX),
            (single, oci::OCI_MANIFEST),
            (chart, oci::OCI_MANIFEST),
        ];
        (f, tops)
    }
}

#[test]
fn heights_roles_and_children() {
    let (f, tops) = Fake::sample();
    let g = ContentGraph::build(tops.clone(), &f).unwrap();
    assert_eq!(g.len(), f.blobs.len(), "every blob reached once");
    let outer = g.node(&tops[0].0).unwrap();
    assert_eq!((outer.height, outer.kind()), (2, BlobKind::Index(2)));
    let inner = g.node(&outer.manifests[0]).unwrap();
    assert_eq!((inner.height, inner.kind()), (1, BlobKind::Index(1)));
    let amd = g.node(&inner.manifests[0]).unwrap();
    assert_eq!((amd.height, amd.kind()), (0, BlobKind::Manifest));
    assert_eq!(amd.blobs.len(), 3, "config and two layers");
    let base = g.node(&Digest::of(b"base")).unwrap();
    assert_eq!((base.kind(), base.height), (BlobKind::Layer, 0));
    let chart = g.node(&tops[2].0).unwrap();
    let roles: Vec<_> = chart
        .blobs
        .iter()
        .flat_map(|d| g.node(d).unwrap().roles.iter().copied())
        .collect();
    assert_eq!(roles, [BlobRole::ChartConfig, BlobRole::ChartContent]);
    // What the outer index waits for: every blob of both images, no manifest.
    let below = g.blobs_below(&tops[0].0);
    assert_eq!(below.len(), 5, "base, amd, arm and two configs");
    assert!(below.contains(&Digest::of(b"arm")) && !below.contains(&amd.digest));
}

#[test]
fn order_is_layers_configs_manifests_then_indexes_by_height_then_digest() {
    let (f, tops) = Fake::sample();
    let g = ContentGraph::build(tops, &f).unwrap();
    let order = g.blob_order();
    let keys: Vec<_> = order.iter().map(|n| (n.kind(), n.digest)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let kinds: Vec<_> = order.iter().map(|n| n.kind()).collect();
    let count = |k| kinds.iter().filter(|&&x| x == k).count();
    assert_eq!(
        (count(BlobKind::Layer), count(BlobKind::Config)),
        (5, 4),
        "chart content with the layers, its config with the configs"
    );
    assert_eq!(kinds.last(), Some(&BlobKind::Index(2)));
    // Children always before parents.
    let at: HashMap<Digest, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.digest, i))
        .collect();
    for n in &order {
        for c in n.blobs.iter().chain(&n.manifests) {
            assert!(at[c] < at[&n.digest], "{c} after its parent {}", n.digest);
        }
    }
    let e = entries(&g);
    assert_eq!(e.first(), Some(&Entry::OciLayout));
    assert_eq!(e[1], Entry::IndexJson);
    assert_eq!(e.last(), Some(&Entry::LoadScript));
    assert_eq!(e.len(), order.len() + 3);
}

#[test]
fn a_blob_with_two_roles_sorts_with_its_lowest() {
    let mut f = Fake::default();
    // One image's config is another's layer.
    let shared = b"{\"shared\":true}";
    let config = f.blob(oci::OCI_CONFIG, shared);
    let layer = f.blob("application/vnd.oci.image.layer.v1.tar", shared);
    let (a, _) = f.put_manifest(serde_json::json!({"schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST, "config": config, "layers": []}));
    let other = f.blob(oci::OCI_CONFIG, b"{}");
    let (b, _) = f.put_manifest(serde_json::json!({"schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST, "config": other, "layers": [layer]}));
    let g = ContentGraph::build([(a, oci::OCI_MANIFEST), (b, oci::OCI_MANIFEST)], &f).unwrap();
    let n = g.node(&Digest::of(shared)).unwrap();
    assert_eq!(n.roles.len(), 2);
    assert_eq!(n.kind(), BlobKind::Layer);
}

#[test]
fn a_bad_bundle_is_named() {
    let (mut f, tops) = Fake::sample();
    let gone = Digest::of(b"arm");
    f.blobs.remove(&gone);
    let err = ContentGraph::build(tops.clone(), &f)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&gone.to_string()) && err.contains("incomplete"),
        "{err}"
    );

    let (mut f, tops) = Fake::sample();
    f.blobs.insert(Digest::of(b"base"), b"bas".to_vec());
    let err = ContentGraph::build(tops.clone(), &f)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a size of 4 bytes, but the bundle holds 3"),
        "{err}"
    );

    let (mut f, tops) = Fake::sample();
    f.manifests.remove(&tops[1].0);
    let err = ContentGraph::build(tops.clone(), &f).unwrap_err();
    assert!(matches!(err, ContentError::MissingManifest { .. }), "{err}");

    // Indexes nested past the bound.
    let mut f = Fake::default();
    let (mut top, mut desc) = f.image(&[b"x"]);
    for _ in 0..=graph::MAX_DEPTH {
        (top, desc) = f.index(&[desc]);
    }
    let err = ContentGraph::build([(top, oci::OCI_INDEX)], &f).unwrap_err();
    assert!(matches!(err, ContentError::TooDeep { .. }), "{err}");

    // A foreign layer the bundle leaves out is left out of the graph, not an error.
    let mut f = Fake::default();
    let config = f.blob(oci::OCI_CONFIG, b"{}");
    let foreign = serde_json::json!({"mediaType":
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": Digest::of(b"windows").to_string(), "size": 7});
    let (top, _) = f.put_manifest(serde_json::json!({"schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST, "config": config, "layers": [foreign]}));
    let g = ContentGraph::build([(top, oci::OCI_MANIFEST)], &f).unwrap();
    assert_eq!(g.node(&top).unwrap().blobs.len(), 1);
}

/// What the bundler writes (entries in the model's order, by core's writer) is what the loader
/// reads back (core's reader): the same paths in the same order, each at the offset
/// [`BundleLayout`] gives, and the graph rebuilt from the read files orders them the same way.
#[test]
fn writer_order_is_reader_order() {
    let (f, tops) = Fake::sample();
    let g = ContentGraph::build(tops.clone(), &f).unwrap();
    let body = |e: &Entry| -> Vec<u8> {
        match e {
            Entry::Blob(d) => f.blobs[d].clone(),
            other => other.path().into_bytes(),
        }
    };
    let (manifest, signature) = (b"{\"bundle\":1}".to_vec(), b"sig\n".to_vec());
    let written = entries(&g);
    let mut w = TarWriter::new(Vec::new(), OutputCompression::None, 0);
    w.append(
        "bundle.json",
        manifest.len() as u64,
        0o644,
        &manifest[..],
        |_| {},
    )
    .unwrap();
    w.append(
        "bundle.sig",
        signature.len() as u64,
        0o644,
        &signature[..],
        |_| {},
    )
    .unwrap();
    let files: Vec<FileEntry> = written
        .iter()
        .map(|e| {
            let b = body(e);
            w.append(&e.path(), b.len() as u64, 0o644, &b[..], |_| {})
                .unwrap();
            FileEntry {
                path: e.path(),
                size: b.len() as u64,
                sha256: Digest::of(&b).hex(),
            }
        })
        .collect();
    let tar = w.finish().unwrap();

    let layout = BundleLayout::new(
        manifest.len() as u64,
        signature.len() as u64,
        files.iter().map(|f| f.size),
    );
    assert_eq!(layout.total(), tar.len() as u64);
    let offsets = BundleLayout::data_offsets(manifest.len() as u64, signature.len() as u64, &files);
    let mut reader = TarReader::new(&tar[..]);
    let mut read = Fake::default();
    let mut read_order = vec![];
    let mut i = 0;
    while let Some(h) = reader.next_header().unwrap() {
        let bytes = reader.read_body_to_vec().unwrap();
        if i >= 2 {
            assert_eq!(reader.offset() - h.size, offsets[&h.path], "{}", h.path);
            assert_eq!(layout.file(i - 2).data, offsets[&h.path]);
            if let Some(hex) = h.path.strip_prefix("blobs/sha256/") {
                let d = Digest::from_hex(hex).unwrap();
                // As the loader does: a manifest is known by its shape, not by the writer.
                let shape = serde_json::from_slice::<serde_json::Value>(&bytes);
                if shape.is_ok_and(|v| v.get("schemaVersion").is_some()) {
                    read.manifests.insert(d, bytes.clone());
                }
                read.blobs.insert(d, bytes);
            }
            read_order.push(h.path);
        } else {
            assert_eq!(
                reader.offset() - h.size,
                [layout.manifest(), layout.signature()][i].data
            );
        }
        i += 1;
    }
    let reread = ContentGraph::build(tops, &read).unwrap();
    assert_eq!(reread, g);
    let expected: Vec<String> = entries(&reread).iter().map(Entry::path).collect();
    assert_eq!(read_order, expected);
}

#[test]
fn offsets_follow_from_the_sizes_of_a_canonical_archive() {
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("bundle.json", b"{}".to_vec()),
        ("bundle.sig", vec![b's'; 512]),
        ("oci-layout", vec![b'o'; 30]),
        ("blobs/sha256/a", vec![7u8; 1500]),
        ("blobs/sha256/b", vec![]),
        ("blobs/sha256/c", vec![9u8; 513]),
    ];
    let mut w = TarWriter::new(Vec::new(), OutputCompression::None, 0);
    for (path, body) in &bodies {
        w.append(path, body.len() as u64, 0o644, &body[..], |_| {})
            .unwrap();
    }
    let tar = w.finish().unwrap();
    let files: Vec<FileEntry> = bodies[2..]
        .iter()
        .map(|(p, b)| FileEntry {
            path: (*p).into(),
            size: b.len() as u64,
            sha256: Digest::of(b).hex(),
        })
        .collect();
    let offsets = BundleLayout::data_offsets(2, 512, &files);
    for (path, body) in &bodies[2..] {
        let at = usize::try_from(offsets[*path]).unwrap();
        assert_eq!(&tar[at..at + body.len()], &body[..], "{path}");
        assert_eq!(&tar[at - 512..at - 512 + path.len()], path.as_bytes());
    }
}
