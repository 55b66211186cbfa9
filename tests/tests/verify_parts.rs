//! `sensei-loader verify` on archives of a release (FORMAT.md §14, README's `verify`): each part
//! verifies alone and says what it carries and what the release still needs; given together, in
//! any order, the parts are the whole release; less is rejected unless `--partial` is given; one
//! whole bundle is reported exactly as before.
//!
//! Parts are written from a bundle built by the real `sensei-bundler`, with the core's own tar
//! writer (`sensei_tests::parts`), until `create` writes them itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sensei_tests::bins::{assert_exit, verify_many};
use sensei_tests::parts::Release;
use sensei_tests::scene::Built;

fn verify_all(b: &Built, archives: &[PathBuf], extra: &[&str]) -> Output {
    let archives: Vec<&Path> = archives.iter().map(PathBuf::as_path).collect();
    verify_many(&archives, &b.public, extra)
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The sum of the sizes of the listed files at `range`.
fn bytes(r: &Release, range: std::ops::Range<usize>) -> u64 {
    r.files[range].iter().map(|f| f.body.len() as u64).sum()
}

#[test]
fn each_part_verifies_alone_and_says_what_it_carries_and_what_the_release_needs() {
    let b = Built::new();
    let r = Release::read(&b.tar);
    let n = r.files.len();
    let parts = r.split(b.path(), "sensei-1.2.0", "tar.gz", 3);
    let total = bytes(&r, 0..n);
    let mut carried = 0;
    for (k, part) in parts.iter().enumerate() {
        let out = verify_all(&b, std::slice::from_ref(part), &["--partial", "--json"]);
        assert_exit(&out, 0);
        let doc = json(&out);
        assert_eq!(doc["verdict"], "partial");
        assert_eq!(doc["complete"], false);
        assert_eq!(doc["release"]["name"], "demo");
        assert_eq!(doc["release"]["listed"]["files"], n);
        let archive = &doc["archives"][0];
        let (from, to) = (k * n / 3, (k + 1) * n / 3);
        assert_eq!(archive["carries"]["files"], to - from);
        assert_eq!(archive["carries"]["bytes"], bytes(&r, from..to));
        assert_eq!(archive["needs"]["bytes"], total - bytes(&r, from..to));
        // What the release needs is named, in listing order, from the first file it lacks.
        let first_needed = if from == 0 { to } else { 0 };
        assert_eq!(
            doc["needs"]["paths"][0],
            r.files[first_needed].path.as_str()
        );
        assert_eq!(
            archive["report"]["filesChecked"],
            to - from + 2,
            "bundle.json and bundle.sig are checked too"
        );
        carried += to - from;
    }
    assert_eq!(carried, n);
    // The human report: the verdict, then each archive, then what is still needed.
    let out = verify_all(&b, &parts[1..2], &["--partial"]);
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("VERIFIED PART  demo 1.2.0  (1 archive, not the whole release"));
    assert!(text.contains(&format!("archive {}: a part", parts[1].display())));
    assert!(text.contains("the release still needs"), "{text}");
}

#[test]
fn the_parts_together_in_any_order_are_the_whole_release() {
    let b = Built::new();
    let r = Release::read(&b.tar);
    let mut parts = r.split(b.path(), "sensei-1.2.0", "tar.gz", 3);
    parts.reverse();
    // A plain .tar part and an extracted directory can be in the set too.
    parts[0] = r.write(
        &b.path().join("last.tar"),
        &(2 * r.files.len() / 3..r.files.len()).collect::<Vec<_>>(),
    );
    parts[1] = extract(&parts[1], &b.path().join("middle"));
    let out = verify_all(&b, &parts, &["--json"]);
    assert_exit(&out, 0);
    let doc = json(&out);
    assert_eq!(doc["verdict"], "verified");
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["needs"]["files"], 0);
    assert_eq!(doc["archives"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        doc["archives"][1]["report"]["compression"],
        serde_json::Value::Null
    );
    let text = String::from_utf8_lossy(&verify_all(&b, &parts, &[]).stdout).into_owned();
    assert!(
        text.starts_with("VERIFIED  demo 1.2.0  (3 archives, together the whole release)"),
        "{text}"
    );
    assert!(text.contains("together: every listed file"), "{text}");
    // A part beside the whole bundle adds nothing, and is no error.
    let out = verify_all(&b, &[b.tgz.clone(), parts[2].clone()], &["--json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["archives"][0]["complete"], true);
}

#[test]
fn less_than_the_whole_release_is_rejected_naming_what_it_lacks_unless_partial() {
    let b = Built::new();
    let r = Release::read(&b.tar);
    let parts = r.split(b.path(), "sensei-1.2.0", "tar", 2);
    let first_of_second = &r.files[r.files.len() / 2].path;
    let out = verify_all(&b, &parts[..1], &["--json"]);
    assert_exit(&out, 1);
    assert_eq!(json(&out)["verdict"], "rejected");
    let out = verify_all(&b, &parts[..1], &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "listed file(s) missing from the bundle, first {first_of_second:?}"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Several archives that still lack a file: the set is refused, naming it.
    let all_but_last: Vec<usize> = (0..r.files.len() - 1).collect();
    let most = r.write(&b.path().join("most.tar"), &all_but_last);
    let out = verify_all(&b, &[parts[0].clone(), most], &[]);
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("it still needs 1 file(s)") && stderr.contains("\"load-images.sh\""),
        "{stderr}"
    );
    let out = verify_all(&b, &parts, &[]);
    assert_exit(&out, 0);
    // --partial: the same archives are verified as parts, each naming what the release needs.
    let out = verify_all(&b, &parts[..1], &["--partial", "--json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["verdict"], "partial");
}

#[test]
fn one_whole_bundle_is_reported_exactly_as_before() {
    let b = Built::new();
    for bundle in [&b.tar, &b.tgz] {
        let out = verify_all(&b, std::slice::from_ref(bundle), &["--json"]);
        assert_exit(&out, 0);
        let doc = json(&out);
        let keys: Vec<&str> = doc
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["report", "verdict"]);
        assert_eq!(doc["verdict"], "verified");
        let text = b.verifies(bundle);
        assert!(text.starts_with("VERIFIED  demo "), "{text}");
        assert!(!text.contains("together"), "{text}");
    }
}

#[test]
fn a_missing_archive_is_a_usage_error_naming_it() {
    let b = Built::new();
    let out = verify_all(&b, &[b.tar.clone(), b.path().join("nowhere.tar.gz")], &[]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.tar.gz"));
}

/// `tar -xf ARCHIVE -C DIR` with umask 022 (FORMAT.md §8: directories others can write are
/// refused).
fn extract(archive: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir(dir).expect("mkdir");
    let status = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && tar -xf \"$1\" -C \"$2\"")
        .arg("sh")
        .arg(archive)
        .arg(dir)
        .status()
        .expect("tar");
    assert!(status.success());
    dir.to_path_buf()
}
