//! Hostile archives: a valid signed bundle, rewritten one way at a time, must be rejected by
//! `sensei-loader verify` with exit code 1, nothing on stdout, and a message naming that failure.
//!
//! Every case starts from a bundle built by the real `sensei-bundler` and rewrites it with the
//! independent tar writer in `sensei_tests::craft` (never the core's own), the way an attacker or a
//! broken copy would: flipped bytes, swapped, dropped, duplicated or appended entries, links,
//! devices, directories, PAX headers, lying sizes, truncation, trailing data, a decompression bomb,
//! and signatures by the wrong keys. Two control tests prove the harness sound: the unmodified
//! bundle verifies, and so does the unmodified bundle after a round trip through the writer, so
//! each rejection comes from its modification.
//!
//! Each case's outcome is computed once per test process and shared, so the per-case tests and the
//! test that checks every message is distinct (`each_rejection_has_its_own_message`) don't build
//! and verify everything twice. Each case builds its own bundle in its own temp dir, dropped as
//! soon as its verdict is known.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sensei_tests::bins::{bundler, loader, run, run_ok};
use sensei_tests::craft::{self, BLOCK, Entry, kind};
use sensei_tests::scene::Built;

mod craft_cases;
mod craft_precision;
mod gaps;
mod parts;
use craft_cases::{craft_case, index_of, valid_entries, write_file, write_tar};

/// `bundle.json`'s size limit in the verifier (16 MiB); the oversized cases claim more.
const MANIFEST_LIMIT: u64 = 16 * 1024 * 1024;
/// The signature file limit (1 MiB).
const SIGNATURE_LIMIT: u64 = 1024 * 1024;
/// Zeros appended inside the gzip stream of the bomb case.
const BOMB_ZEROS: u64 = 2 * 1024 * 1024 * 1024;
/// How long verifying the bomb may take: it must stop at the padding limit, not inflate 2 GiB.
const BOMB_DEADLINE: Duration = Duration::from_secs(20);

/// One way to break a bundle. Numbers in the comments are the brief's case numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    /// 1: one byte of a layer blob flipped.
    LayerBlobFlipped,
    /// 2: one byte of `index.json` flipped, size kept.
    IndexFlipped,
    /// 3: one byte of `bundle.json` flipped.
    ManifestFlipped,
    /// 4: verified with another key than the signer's.
    UntrustedKey,
    /// 5: `bundle.sig` is `[]`.
    NoSignature,
    /// 6: `--threshold 2`, only one of the two keys signed.
    ThresholdNotMet,
    /// 7: `.tar` cut in the middle of a blob.
    TruncatedTar,
    /// 8: `.tar.gz` cut in half.
    TruncatedGzip,
    /// 9: an extra entry before the end marker.
    UnlistedEntry,
    /// 10: a blob entry repeated at the end.
    DuplicateEntry,
    /// 11: a blob dropped from the middle.
    MissingBlob,
    /// 11: the last entry (`load-images.sh`) dropped.
    MissingLastEntry,
    /// 12: an entry named `../escape.sh`.
    DotDotPath,
    /// 13: an entry named `/etc/passwd`.
    AbsolutePath,
    /// 14: a symbolic link.
    Symlink,
    /// 15: a hard link.
    HardLink,
    /// 16: a character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A FIFO.
    Fifo,
    /// 17: a blob one byte shorter, header and body consistent.
    SizeMismatch,
    /// 18: bytes after the end-of-archive marker.
    TrailingGarbage,
    /// 19: `bundle.json`'s header claims 17 MiB.
    OversizedManifest,
    /// 20: 2 GiB of zeros after the end marker, inside the gzip stream.
    GzipBomb,
    /// 21: built with `expires: 1h` two days ago.
    Expired,
    /// 22: `bundle.sig` before `bundle.json`.
    ManifestNotFirst,
    /// 23: a PAX extended header.
    PaxHeader,
    /// 24: a directory entry.
    Directory,
    /// 25: verified with `--name other`.
    WrongName,
    /// 26: a header whose checksum does not match.
    BadChecksum,
    /// A header with a correct checksum but no ustar magic.
    BadMagic,
    /// 27: `bundle.json` rewritten and re-signed by an untrusted key, the signature replaced.
    ResignedByUntrustedKey,
    /// `bundle.sig` dropped, so `oci-layout` comes second.
    SignatureNotSecond,
    /// `bundle.sig` is JSON, but not a list of signatures.
    MalformedSignatureFile,
    /// `bundle.sig`'s header claims 2 MiB.
    OversizedSignatureFile,
    /// A zero block before the last entry: an early end marker hiding an entry behind it.
    EarlyEndMarker,
    /// Non-gzip bytes appended after the gzip stream.
    GzipAppendedGarbage,
    /// A checksum field `NNNNN\0XY`: the right value, then two bytes no rule covered.
    ChecksumSpareBytes,
    /// A checksum field in GNU base-256: 0x80, then the right value in seven bytes.
    ChecksumBase256,
    /// `bundle.json` re-signed with `"expires": null`.
    NullExpires,
    /// `bundle.json` re-signed with `created` written with a space for the `T`.
    CreatedWithSpace,
    /// `bundle.json` re-signed with `expires` on a leap second (`:60`).
    ExpiresOnLeapSecond,
    /// `index.json` naming one image twice in one annotations object, `bundle.json` re-signed
    /// to match: the last key named the image the bundle lists, a first-wins reader saw another.
    IndexDuplicateKey,
}

impl Case {
    /// The case whose message this one shares on purpose (the same failure reached another way),
    /// exempt from the distinctness check.
    fn shares_message_with(self) -> Option<Case> {
        match self {
            Case::TruncatedGzip => Some(Case::TruncatedTar),
            Case::ChecksumBase256 => Some(Case::ChecksumSpareBytes),
            _ => None,
        }
    }

    const ALL: [Case; 42] = [
        Case::LayerBlobFlipped,
        Case::IndexFlipped,
        Case::ManifestFlipped,
        Case::UntrustedKey,
        Case::NoSignature,
        Case::ThresholdNotMet,
        Case::TruncatedTar,
        Case::TruncatedGzip,
        Case::UnlistedEntry,
        Case::DuplicateEntry,
        Case::MissingBlob,
        Case::MissingLastEntry,
        Case::DotDotPath,
        Case::AbsolutePath,
        Case::Symlink,
        Case::HardLink,
        Case::CharDevice,
        Case::BlockDevice,
        Case::Fifo,
        Case::SizeMismatch,
        Case::TrailingGarbage,
        Case::OversizedManifest,
        Case::GzipBomb,
        Case::Expired,
        Case::ManifestNotFirst,
        Case::PaxHeader,
        Case::Directory,
        Case::WrongName,
        Case::BadChecksum,
        Case::BadMagic,
        Case::ResignedByUntrustedKey,
        Case::SignatureNotSecond,
        Case::MalformedSignatureFile,
        Case::OversizedSignatureFile,
        Case::EarlyEndMarker,
        Case::GzipAppendedGarbage,
        Case::ChecksumSpareBytes,
        Case::ChecksumBase256,
        Case::NullExpires,
        Case::CreatedWithSpace,
        Case::ExpiresOnLeapSecond,
        Case::IndexDuplicateKey,
    ];
}

/// A crafted bundle and how to verify it.
#[derive(Debug)]
struct Attempt {
    bundle: PathBuf,
    /// Trusted public keys, each passed with `--key`.
    keys: Vec<PathBuf>,
    extra: Vec<String>,
    /// The part of the message that names this case's failure.
    expect: String,
}

impl Attempt {
    /// Verify `bundle` with the signer's key and no other option.
    fn new(b: &Built, bundle: PathBuf, expect: impl Into<String>) -> Self {
        Self {
            bundle,
            keys: vec![b.public.clone()],
            extra: vec![],
            expect: expect.into(),
        }
    }

    fn run(&self, extra: &[&str]) -> (std::process::Output, Duration) {
        let mut cmd = loader();
        cmd.arg("verify").arg(&self.bundle);
        for key in &self.keys {
            cmd.arg("--key").arg(key);
        }
        cmd.args(&self.extra).args(extra);
        let start = Instant::now();
        let out = run(&mut cmd);
        (out, start.elapsed())
    }
}

/// What `sensei-loader verify` did with a case's bundle.
#[derive(Debug)]
struct Outcome {
    case: Case,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    expect: String,
    elapsed: Duration,
    /// Size of the crafted bundle file.
    bundle_bytes: u64,
}

/// Each case's outcome, computed once per process whichever test asks first.
fn outcome(case: Case) -> Arc<Outcome> {
    type Cell = Arc<OnceLock<Arc<Outcome>>>;
    static MEMO: OnceLock<Mutex<HashMap<Case, Cell>>> = OnceLock::new();
    let cell = MEMO
        .get_or_init(Default::default)
        .lock()
        .expect("memo lock")
        .entry(case)
        .or_default()
        .clone();
    // Outside the map's lock, so different cases run in parallel; callers of the same case wait.
    cell.get_or_init(|| {
        let b = Built::new();
        let attempt = craft_case(case, &b);
        let (out, elapsed) = attempt.run(&[]);
        let bundle_bytes = std::fs::metadata(&attempt.bundle)
            .expect("crafted bundle")
            .len();
        Arc::new(Outcome {
            case,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            expect: attempt.expect,
            elapsed,
            bundle_bytes,
        })
    })
    .clone()
}

/// Asserts the contract for a rejection: exit 1, its own message on stderr, nothing on stdout.
fn assert_rejected(case: Case) -> Arc<Outcome> {
    let o = outcome(case);
    assert_eq!(
        o.code,
        Some(1),
        "{case:?}: expected exit 1 (rejected); stderr:\n{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("bundle rejected: ") && o.stderr.contains(&o.expect),
        "{case:?}: expected a rejection naming {:?}; stderr:\n{}",
        o.expect,
        o.stderr
    );
    assert!(
        o.stdout.is_empty(),
        "{case:?}: a rejection must print no report on stdout, got:\n{}",
        o.stdout
    );
    o
}

// ---------------------------------------------------------------------------------------------
// Controls: the harness itself is sound.

#[test]
fn the_unmodified_bundle_verifies() {
    let b = Built::new();
    for bundle in [&b.tar, &b.tgz] {
        assert!(b.verifies(bundle).contains("VERIFIED"));
    }
}

#[test]
fn rewriting_the_unmodified_entries_still_verifies() {
    let b = Built::new();
    let entries = valid_entries(&b);
    let tar = craft::write(&entries);
    assert_eq!(craft::parse(&tar).expect("reparse"), entries);
    let plain = write_file(&b, "rewritten.tar", &tar);
    let gz = write_file(&b, "rewritten.tar.gz", &craft::gzip(&tar));
    for bundle in [&plain, &gz] {
        let out = b.verify(bundle, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            bundle.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Output contract on rejection

#[test]
fn a_rejection_with_json_prints_one_json_document() {
    let b = Built::new();
    let attempt = craft_case(Case::LayerBlobFlipped, &b);
    let (out, _) = attempt.run(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(doc["verdict"], "rejected", "{doc}");
    assert_eq!(doc["exitCode"], 1, "{doc}");
    let error = doc["error"].as_str().expect("error is a string");
    assert!(error.contains(&attempt.expect), "{error}");
}

#[test]
fn each_rejection_has_its_own_message() {
    let outcomes: Vec<_> = Case::ALL.iter().map(|&c| assert_rejected(c)).collect();
    for a in &outcomes {
        for b in &outcomes {
            let shared = |x: &Outcome, y: &Outcome| x.case.shares_message_with() == Some(y.case);
            if a.case == b.case || shared(a, b) || shared(b, a) {
                continue;
            }
            assert_ne!(a.expect, b.expect, "{:?} and {:?}", a.case, b.case);
            assert!(
                !b.stderr.contains(&a.expect),
                "{:?}'s message {:?} also appears for {:?}:\n{}",
                a.case,
                a.expect,
                b.case,
                b.stderr
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The cases

#[test]
fn layer_blob_byte_flipped() {
    assert_rejected(Case::LayerBlobFlipped);
}

#[test]
fn index_json_byte_flipped() {
    assert_rejected(Case::IndexFlipped);
}

#[test]
fn bundle_json_byte_flipped() {
    assert_rejected(Case::ManifestFlipped);
}

#[test]
fn signed_by_an_untrusted_key() {
    assert_rejected(Case::UntrustedKey);
}

#[test]
fn no_signature() {
    assert_rejected(Case::NoSignature);
}

#[test]
fn threshold_not_met() {
    assert_rejected(Case::ThresholdNotMet);
}

#[test]
fn truncated_tar() {
    assert_rejected(Case::TruncatedTar);
}

#[test]
fn truncated_gzip() {
    assert_rejected(Case::TruncatedGzip);
}

#[test]
fn unlisted_entry() {
    assert_rejected(Case::UnlistedEntry);
}

#[test]
fn duplicate_entry() {
    assert_rejected(Case::DuplicateEntry);
}

#[test]
fn missing_blob() {
    assert_rejected(Case::MissingBlob);
}

#[test]
fn missing_last_entry() {
    assert_rejected(Case::MissingLastEntry);
}

#[test]
fn dot_dot_path() {
    assert_rejected(Case::DotDotPath);
}

#[test]
fn absolute_path() {
    assert_rejected(Case::AbsolutePath);
}

#[test]
fn symbolic_link() {
    assert_rejected(Case::Symlink);
}

#[test]
fn hard_link() {
    assert_rejected(Case::HardLink);
}

#[test]
fn character_device() {
    assert_rejected(Case::CharDevice);
}

#[test]
fn block_device() {
    assert_rejected(Case::BlockDevice);
}

#[test]
fn fifo() {
    assert_rejected(Case::Fifo);
}

#[test]
fn header_size_differs_from_bundle_json() {
    assert_rejected(Case::SizeMismatch);
}

#[test]
fn trailing_garbage() {
    assert_rejected(Case::TrailingGarbage);
}

#[test]
fn oversized_bundle_json() {
    assert_rejected(Case::OversizedManifest);
}

#[test]
fn gzip_bomb_is_refused_quickly() {
    let o = assert_rejected(Case::GzipBomb);
    // Deflate expands at most ~1032:1, so this size proves the 2 GiB of zeros are really inside.
    assert!(
        o.bundle_bytes > BOMB_ZEROS / 1100,
        "the bomb is only {} bytes",
        o.bundle_bytes
    );
    assert!(
        o.elapsed < BOMB_DEADLINE,
        "verifying the bomb took {:?}",
        o.elapsed
    );
}

#[test]
fn expired() {
    assert_rejected(Case::Expired);
}

#[test]
fn bundle_json_not_first() {
    assert_rejected(Case::ManifestNotFirst);
}

#[test]
fn pax_extension_header() {
    assert_rejected(Case::PaxHeader);
}

#[test]
fn directory_entry() {
    assert_rejected(Case::Directory);
}

#[test]
fn wrong_name() {
    assert_rejected(Case::WrongName);
}

#[test]
fn corrupt_header_checksum() {
    assert_rejected(Case::BadChecksum);
}

#[test]
fn bad_header_magic() {
    assert_rejected(Case::BadMagic);
}

#[test]
fn resigned_by_an_untrusted_key() {
    assert_rejected(Case::ResignedByUntrustedKey);
}

#[test]
fn bundle_sig_not_second() {
    assert_rejected(Case::SignatureNotSecond);
}

#[test]
fn malformed_signature_file() {
    assert_rejected(Case::MalformedSignatureFile);
}

#[test]
fn oversized_signature_file() {
    assert_rejected(Case::OversizedSignatureFile);
}

#[test]
fn early_end_of_archive_marker() {
    assert_rejected(Case::EarlyEndMarker);
}

#[test]
fn garbage_after_the_gzip_stream() {
    assert_rejected(Case::GzipAppendedGarbage);
}

// One rule per field (issue 10, format precision): what the doc allows, the code allows.

#[test]
fn checksum_field_with_spare_bytes_after_its_nul() {
    assert_rejected(Case::ChecksumSpareBytes);
}

#[test]
fn checksum_field_in_base_256() {
    assert_rejected(Case::ChecksumBase256);
}

#[test]
fn null_for_an_optional_field_in_a_signed_bundle_json() {
    assert_rejected(Case::NullExpires);
}

#[test]
fn created_with_a_space_in_a_signed_bundle_json() {
    assert_rejected(Case::CreatedWithSpace);
}

#[test]
fn expires_on_a_leap_second_in_a_signed_bundle_json() {
    assert_rejected(Case::ExpiresOnLeapSecond);
}

#[test]
fn a_key_twice_in_a_signed_index_json() {
    assert_rejected(Case::IndexDuplicateKey);
}
