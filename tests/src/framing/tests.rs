//! The checker accepts the bundle writer's framing and rejects the framings that break the
//! promise: a writer that deflates the whole tar (recompressing every layer), and one that
//! stores everything (JSON and headers left uncompressed).

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use sensei_core::archive::{OutputCompression, TarWriter};
use sha2::{Digest, Sha256};

use super::*;

fn gzip(level: u32, data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    e.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn blob_name(body: &[u8]) -> String {
    format!("blobs/sha256/{}", hex::encode(Sha256::digest(body)))
}

/// A tiny bundle-shaped archive: `bundle.json`, `index.json`, a manifest and its gzip layer.
/// The layer is gzip at level 0 of text, so a second deflate pass could still shrink it: a
/// recompressing writer cannot hide behind deflate choosing stored blocks for random bytes.
fn entries() -> (Vec<(String, Vec<u8>)>, String) {
    let text: Vec<u8> = (0..10_000u32)
        .flat_map(|i| format!("line {} of a layer file\n", i % 97).into_bytes())
        .collect();
    let layer = gzip(0, &text);
    let layer_name = blob_name(&layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{}", layer_name.trim_start_matches("blobs/sha256/")),
            "size": layer.len(),
        }],
    })
    .to_string()
    .into_bytes();
    let json = |s: &str| s.repeat(40).into_bytes();
    (
        vec![
            (
                "bundle.json".into(),
                json("{\"name\":\"demo\",\"version\":\"1.2.0\"}"),
            ),
            ("index.json".into(), json("{\"manifests\":[]}")),
            (blob_name(&manifest), manifest),
            (layer_name.clone(), layer),
        ],
        layer_name,
    )
}

fn write(compression: OutputCompression, entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new(), compression, 1_767_225_600);
    for (name, body) in entries {
        w.append(name, body.len() as u64, 0o644, &body[..], |_| {})
            .unwrap_or_else(|e| panic!("{e}"));
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn checked(tgz: &[u8]) -> Framing {
    check(tgz).unwrap_or_else(|e| panic!("cannot decode: {e}"))
}

#[test]
fn the_bundle_writer_framing_holds() {
    let (entries, layer) = entries();
    let tgz = write(OutputCompression::Gzip, &entries);
    let f = checked(&tgz);
    f.assert_holds("TarWriter");
    assert_eq!(f.layers, BTreeSet::from([layer]));
    // The decoded stream is the plain tar, byte for byte.
    assert_eq!(f.walk.output, write(OutputCompression::None, &entries));
    let names: Vec<&str> = f.entries.iter().map(|e| e.name.as_str()).collect();
    let want: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, want);
}

#[test]
fn a_writer_that_recompresses_the_layer_is_caught() {
    let (entries, layer) = entries();
    let tar = write(OutputCompression::None, &entries);
    for level in [1, 6, 9] {
        let f = checked(&gzip(level, &tar));
        assert!(
            f.violations
                .iter()
                .any(|v| v.starts_with(&format!("layer {layer}: "))),
            "level {level}: a deflated layer passed: {:?}",
            f.violations
        );
    }
}

#[test]
fn a_writer_that_stores_everything_is_caught() {
    let (entries, _) = entries();
    let f = checked(&gzip(0, &write(OutputCompression::None, &entries)));
    for what in ["bundle.json:", "index.json:", "tar header of bundle.json:"] {
        assert!(
            f.violations.iter().any(|v| v.starts_with(what)),
            "{what} stored but not reported: {:?}",
            f.violations
        );
    }
    assert!(
        f.violations
            .iter()
            .any(|v| v.starts_with("end-of-archive marker:"))
    );
}

#[test]
fn a_blob_that_looks_gzip_is_held_to_stored_even_if_no_manifest_lists_it() {
    let (mut entries, _) = entries();
    entries.retain(|(n, _)| !n.starts_with("blobs/"));
    let loose = gzip(0, &vec![b'x'; 10_000]);
    entries.push((blob_name(&loose), loose.clone()));
    let tar = write(OutputCompression::None, &entries);
    let f = checked(&gzip(6, &tar));
    assert_eq!(f.layers, BTreeSet::from([blob_name(&loose)]));
    assert!(!f.violations.is_empty());
    checked(&write(OutputCompression::Gzip, &entries)).assert_holds("TarWriter");
}

#[test]
fn tar_entries_follow_the_headers() {
    let (entries, _) = entries();
    let tar = write(OutputCompression::None, &entries);
    let (found, end) = tar_entries(&tar).unwrap_or_else(|e| panic!("{e}"));
    let mut at = 0;
    for ((name, body), e) in entries.iter().zip(&found) {
        assert_eq!(&e.name, name);
        assert_eq!(e.header, at..at + 512);
        assert_eq!(&tar[e.data.start as usize..e.data.end as usize], &body[..]);
        at = e.data.end.div_ceil(512) * 512;
    }
    assert_eq!(end, at..tar.len() as u64);
    assert!(
        tar_entries(&tar[..tar.len() - 1024]).is_err(),
        "no end marker"
    );
}
