#![allow(clippy::unwrap_used)]
//! Archives of a release that carry some of its files (FORMAT.md §14): a part verifies alone
//! and says what it carries; a whole-bundle verification still refuses it; what a part carries
//! is held to the listing as strictly as a whole bundle is.

use super::*;
use crate::archive::{OutputCompression, TarWriter};
use crate::content::Tally;
use crate::digest::Digest;
use crate::manifest::{Compat, MEDIA_TYPE, SCHEMA_VERSION};
use crate::progress::Silent;
use crate::signature::{PrivateKey, signature_file_bytes};

/// A small signed release: `bundle.json`, `bundle.sig` and the listed files with their bytes.
struct Release {
    manifest_bytes: Vec<u8>,
    signature: Vec<u8>,
    files: Vec<(FileEntry, Vec<u8>)>,
    key: PrivateKey,
}

const CREATED: u64 = 1_767_225_600;

impl Release {
    fn new() -> Self {
        Self::of_version(semver::Version::new(1, 2, 0))
    }

    fn of_version(version: semver::Version) -> Self {
        let mut bodies: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            (
                "index.json".into(),
                br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
            ),
        ];
        for body in [&b"layer one"[..], b"layer two", b"config"] {
            bodies.push((Digest::of(body).blob_path(), body.to_vec()));
        }
        bodies.push(("load-images.sh".into(), b"#!/bin/sh\n".to_vec()));
        let files: Vec<(FileEntry, Vec<u8>)> = bodies
            .into_iter()
            .map(|(path, body)| {
                let entry = FileEntry {
                    path,
                    size: body.len() as u64,
                    sha256: Digest::of(&body).hex(),
                };
                (entry, body)
            })
            .collect();
        let manifest = BundleManifest {
            schema_version: SCHEMA_VERSION,
            media_type: MEDIA_TYPE.into(),
            name: "sensei".into(),
            version,
            created: "2026-01-01T00:00:00Z".into(),
            expires: None,
            compat: Compat {
                upgrade_from: ">=1.1.0".into(),
            },
            images: vec![],
            charts: vec![],
            files: files.iter().map(|(f, _)| f.clone()).collect(),
        };
        let manifest_bytes = manifest.to_bytes();
        let key = PrivateKey::from_seed(&[9; 32]);
        let signature = signature_file_bytes(&[key.sign(&manifest_bytes)]);
        Self {
            manifest_bytes,
            signature,
            files,
            key,
        }
    }

    /// An archive of `bundle.json`, `bundle.sig` and the listed files at `picks`, in that order.
    fn archive(&self, picks: &[usize], compression: OutputCompression) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new(), compression, CREATED);
        for (path, body) in [
            (MANIFEST_FILE, &self.manifest_bytes),
            (SIGNATURE_FILE, &self.signature),
        ] {
            w.append(path, body.len() as u64, 0o644, &body[..], |_| {})
                .unwrap();
        }
        for &i in picks {
            let (f, body) = &self.files[i];
            w.append(&f.path, f.size, file_mode(&f.path), &body[..], |_| {})
                .unwrap();
        }
        w.finish().unwrap()
    }

    fn policy(&self) -> Policy {
        Policy {
            trusted: vec![TrustedKey {
                key: self.key.public(),
                label: "release".into(),
            }],
            threshold: 1,
            detached: vec![],
            expected_name: None,
            release: None,
            now: jiff::Timestamp::from_second(CREATED as i64).unwrap(),
        }
    }

    fn verify_part(&self, archive: &[u8]) -> Result<Verified, VerifyError> {
        verify_archive_in(Scope::Part, archive, &self.policy(), &Silent, &mut ())
    }

    fn verify_whole(&self, archive: &[u8]) -> Result<Verified, VerifyError> {
        verify_archive(archive, &self.policy(), &Silent, &mut ())
    }

    fn all(&self) -> Vec<usize> {
        (0..self.files.len()).collect()
    }
}

fn rejection(result: Result<Verified, VerifyError>) -> Rejection {
    match result {
        Err(VerifyError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_whole_bundle_is_complete_either_way_and_reports_what_it_always_did() {
    let r = Release::new();
    for compression in [OutputCompression::None, OutputCompression::Gzip] {
        let tar = r.archive(&r.all(), compression);
        let whole = r.verify_whole(&tar).unwrap();
        let part = r.verify_part(&tar).unwrap();
        assert!(whole.coverage.is_complete() && part.coverage.is_complete());
        assert_eq!(whole.coverage, part.coverage);
        let listed: u64 = r.files.iter().map(|(f, _)| f.size).sum();
        assert_eq!(whole.report.files_checked, r.files.len() + 2);
        assert_eq!(
            whole.report.bytes_checked,
            listed + r.manifest_bytes.len() as u64
        );
        assert_eq!(part.report.files_checked, whole.report.files_checked);
        assert_eq!(
            whole.coverage.release(),
            Digest::of(&r.manifest_bytes),
            "a release is named by its bundle.json"
        );
    }
}

#[test]
fn a_part_verifies_alone_and_says_what_it_carries_and_what_the_release_needs() {
    let r = Release::new();
    // The first part: the layout and the first layer; the second: the rest.
    let first = r.archive(&[0, 1, 2], OutputCompression::Gzip);
    let second = r.archive(&[3, 4, 5], OutputCompression::None);
    let one = r.verify_part(&first).unwrap();
    let two = r.verify_part(&second).unwrap();
    let size = |range: std::ops::Range<usize>| r.files[range].iter().map(|(f, _)| f.size).sum();
    assert_eq!(
        one.coverage.carried(),
        Tally {
            files: 3,
            bytes: size(0..3)
        }
    );
    assert_eq!(
        one.coverage.needed(),
        Tally {
            files: 3,
            bytes: size(3..6)
        }
    );
    assert_eq!(one.report.files_checked, 3 + 2);
    let needed: Vec<_> = two
        .coverage
        .needed_files(&two.manifest.files)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        needed,
        [
            r.files[0].0.path.as_str(),
            &r.files[1].0.path,
            &r.files[2].0.path
        ]
    );
    let mut together = one.coverage.clone();
    together.merge(&two.coverage).unwrap();
    assert!(together.is_complete());
    // A part that skips files in the middle is still in listing order.
    let sparse = r
        .verify_part(&r.archive(&[1, 4], OutputCompression::None))
        .unwrap();
    assert!(sparse.coverage.carries(1) && sparse.coverage.carries(4));
    assert_eq!(sparse.coverage.carried().files, 2);
    // bundle.json and bundle.sig alone: a part that carries nothing else.
    let head = r
        .verify_part(&r.archive(&[], OutputCompression::None))
        .unwrap();
    assert_eq!(head.coverage.carried(), Tally::default());
}

#[test]
fn a_whole_bundle_verification_refuses_a_part_as_before() {
    let r = Release::new();
    // A file missing in the middle: the next one comes out of order.
    let middle = r.archive(&[0, 1, 3, 4, 5], OutputCompression::None);
    assert!(matches!(
        rejection(r.verify_whole(&middle)),
        Rejection::OutOfOrder { path, expected } if path == r.files[3].0.path && expected == r.files[2].0.path
    ));
    // Files missing at the end.
    let end = r.archive(&[0, 1, 2], OutputCompression::None);
    assert!(matches!(
        rejection(r.verify_whole(&end)),
        Rejection::Missing { first, count: 3 } if first == r.files[3].0.path
    ));
}

#[test]
fn a_part_out_of_listing_order_duplicated_or_unlisted_is_refused() {
    let r = Release::new();
    let swapped = r.archive(&[0, 3, 2], OutputCompression::None);
    assert!(matches!(
        rejection(r.verify_part(&swapped)),
        Rejection::OutOfListingOrder { path, after } if path == r.files[2].0.path && after == r.files[3].0.path
    ));
    let twice = r.archive(&[0, 2, 2], OutputCompression::None);
    assert!(matches!(
        rejection(r.verify_part(&twice)),
        Rejection::Duplicate { path } if path == r.files[2].0.path
    ));
    // An unlisted file: written after the head by hand, as a listed one would be.
    let mut w = TarWriter::new(Vec::new(), OutputCompression::None, CREATED);
    for (path, body) in [
        (MANIFEST_FILE, &r.manifest_bytes),
        (SIGNATURE_FILE, &r.signature),
    ] {
        w.append(path, body.len() as u64, 0o644, &body[..], |_| {})
            .unwrap();
    }
    let extra = Digest::of(b"payload");
    w.append(&extra.blob_path(), 7, 0o644, &b"payload"[..], |_| {})
        .unwrap();
    assert!(matches!(
        rejection(r.verify_part(&w.finish().unwrap())),
        Rejection::Unlisted { path } if path == extra.blob_path()
    ));
}

#[test]
fn what_a_part_carries_must_have_the_listed_bytes() {
    let mut r = Release::new();
    let good = r.files[2].1.clone();
    r.files[2].1 = b"layer ONE".to_vec();
    assert_eq!(good.len(), r.files[2].1.len());
    assert!(matches!(
        rejection(r.verify_part(&r.archive(&[2], OutputCompression::Gzip))),
        Rejection::HashMismatch { path, .. } if path == r.files[2].0.path
    ));
}

#[test]
fn index_json_is_checked_by_the_part_that_carries_it() {
    let mut r = Release::new();
    // Same size, hash listed for the broken document: only step 8 can refuse it.
    let broken = br#"{"schemaVersion":2,"manifests":{}}"#.to_vec();
    r.files[1].0.size = broken.len() as u64;
    r.files[1].0.sha256 = Digest::of(&broken).hex();
    r.files[1].1 = broken;
    let mut manifest = BundleManifest::from_slice(&r.manifest_bytes).unwrap();
    manifest.files[1] = r.files[1].0.clone();
    r.manifest_bytes = manifest.to_bytes();
    r.signature = signature_file_bytes(&[r.key.sign(&r.manifest_bytes)]);
    assert!(matches!(
        rejection(r.verify_part(&r.archive(&[0, 1], OutputCompression::None))),
        Rejection::BadIndex(_)
    ));
    // A part without index.json leaves step 8 to the part that carries it.
    r.verify_part(&r.archive(&[2, 3], OutputCompression::None))
        .unwrap();
}

#[test]
fn an_extracted_part_carries_the_listed_files_that_are_there() {
    let r = Release::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, body: &[u8]| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    write(MANIFEST_FILE, &r.manifest_bytes);
    write(SIGNATURE_FILE, &r.signature);
    for &i in &[0, 1, 4] {
        write(&r.files[i].0.path, &r.files[i].1);
    }
    let v = verify_directory_in(Scope::Part, dir.path(), &r.policy(), &Silent, &mut ()).unwrap();
    assert_eq!(v.coverage.carried().files, 3);
    assert!(v.coverage.carries(4) && !v.coverage.carries(2));
    // As a whole bundle, the directory lacks a file.
    assert!(matches!(
        verify_directory(dir.path(), &r.policy(), &Silent, &mut ()),
        Err(VerifyError::Rejected(Rejection::Missing { .. }))
    ));
}

#[test]
fn an_archive_of_another_release_is_refused_right_after_its_signature() {
    let ours = Release::new();
    let theirs = Release::of_version(semver::Version::new(1, 2, 1));
    let mut policy = ours.policy();
    policy.release = Some(Digest::of(&ours.manifest_bytes));
    verify_archive_in(
        Scope::Part,
        &ours.archive(&[0], OutputCompression::None)[..],
        &policy,
        &Silent,
        &mut (),
    )
    .unwrap();
    // Its bodies are never read: one of them is corrupt, and the refusal is still the release.
    let mut other = theirs.archive(&theirs.all(), OutputCompression::None);
    let last = other.len() - 3 * BLOCK;
    other[last] ^= 0xff;
    let r = rejection(verify_archive_in(
        Scope::Part,
        &other[..],
        &policy,
        &Silent,
        &mut (),
    ));
    assert!(matches!(
        r,
        Rejection::OtherRelease { expected, found }
            if expected == Digest::of(&ours.manifest_bytes) && found == Digest::of(&theirs.manifest_bytes)
    ));
}
