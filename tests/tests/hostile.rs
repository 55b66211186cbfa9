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

use sensei_tests::bins::{Built, bundler, loader, run, run_ok};
use sensei_tests::craft::{self, BLOCK, Entry, kind};

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
}

impl Case {
    /// The case whose message this one shares on purpose (the same failure reached another way),
    /// exempt from the distinctness check.
    fn shares_message_with(self) -> Option<Case> {
        match self {
            Case::TruncatedGzip => Some(Case::TruncatedTar),
            _ => None,
        }
    }

    const ALL: [Case; 36] = [
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
// Crafting

/// The entries of the valid `.tar`, checked to be in the documented order.
fn valid_entries(b: &Built) -> Vec<Entry> {
    let tar = std::fs::read(&b.tar).expect("read bundle.tar");
    let entries = craft::parse(&tar).expect("the bundler's .tar is plain ustar");
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths[..4],
        ["bundle.json", "bundle.sig", "oci-layout", "index.json"]
    );
    assert_eq!(paths.last(), Some(&"load-images.sh"));
    assert!(
        paths[4..paths.len() - 1]
            .iter()
            .all(|p| p.starts_with("blobs/sha256/")),
        "{paths:?}"
    );
    entries
}

fn index_of(entries: &[Entry], path: &str) -> usize {
    entries
        .iter()
        .position(|e| e.path == path)
        .unwrap_or_else(|| panic!("no entry {path:?}"))
}

/// The first layer blob: a blob whose body is gzip (configs and manifests are JSON).
fn layer(entries: &[Entry]) -> usize {
    entries
        .iter()
        .position(|e| e.path.starts_with("blobs/sha256/") && e.body.starts_with(&[0x1f, 0x8b]))
        .expect("the fixtures hold a gzip layer")
}

fn write_file(b: &Built, name: &str, bytes: &[u8]) -> PathBuf {
    let path = b.path().join(name);
    std::fs::write(&path, bytes).expect("write crafted bundle");
    path
}

/// Writes the entries as `hostile.tar` and returns its path.
fn write_tar(b: &Built, entries: &[Entry]) -> PathBuf {
    write_file(b, "hostile.tar", &craft::write(entries))
}

/// A new key pair (`PREFIX.key`, `PREFIX.pub`) and its key id, made by `sensei-bundler keygen`.
fn keygen(b: &Built, name: &str) -> (PathBuf, PathBuf, String) {
    let prefix = b.path().join(name);
    let out = run_ok(bundler().arg("keygen").arg("--out").arg(&prefix));
    let keyid = out
        .lines()
        .find_map(|l| l.strip_prefix("keyid "))
        .unwrap_or_else(|| panic!("keygen printed no keyid:\n{out}"))
        .trim()
        .to_owned();
    (
        prefix.with_extension("key"),
        prefix.with_extension("pub"),
        keyid,
    )
}

/// The key id of the (only) signature in the valid bundle's `bundle.sig`.
fn signer_keyid(entries: &[Entry]) -> String {
    let sigs: serde_json::Value =
        serde_json::from_slice(&entries[1].body).expect("bundle.sig is JSON");
    sigs[0]["keyid"]
        .as_str()
        .expect("bundle.sig names its key")
        .to_owned()
}

/// The 16-digit short form the verifier prints.
fn short(keyid: &str) -> &str {
    &keyid[..16]
}

/// A rejection message for an entry of the wrong type.
fn not_regular(path: &str, kind: &str) -> String {
    format!("entry {path:?} is a {kind}: only regular files are allowed")
}

/// Builds the hostile bundle for `case` from `b`'s valid bundle.
fn craft_case(case: Case, b: &Built) -> Attempt {
    let mut e = valid_entries(b);
    match case {
        Case::LayerBlobFlipped => {
            let i = layer(&e);
            let mid = e[i].body.len() / 2;
            e[i].body[mid] ^= 0xff;
            let expect = format!("entry {:?} has sha256", e[i].path);
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::IndexFlipped => {
            let i = index_of(&e, "index.json");
            // One bit in the middle: same size, still plausible text.
            let mid = e[i].body.len() / 2;
            e[i].body[mid] ^= 0x01;
            Attempt::new(b, write_tar(b, &e), "entry \"index.json\" has sha256")
        }
        Case::ManifestFlipped => {
            let mid = e[0].body.len() / 2;
            e[0].body[mid] ^= 0x01;
            Attempt::new(b, write_tar(b, &e), "bundle.json was changed after signing")
        }
        Case::UntrustedKey => {
            let (_, other, _) = keygen(b, "other");
            Attempt {
                keys: vec![other],
                ..Attempt::new(
                    b,
                    b.tar.clone(),
                    format!(
                        "no signature is by a trusted key: signed by {}",
                        short(&signer_keyid(&e))
                    ),
                )
            }
        }
        Case::NoSignature => {
            e[1].body = b"[]".to_vec();
            Attempt::new(b, write_tar(b, &e), "the bundle carries no signature")
        }
        Case::ThresholdNotMet => {
            let (_, other, _) = keygen(b, "other");
            Attempt {
                keys: vec![b.public.clone(), other],
                extra: vec!["--threshold".into(), "2".into()],
                ..Attempt::new(b, b.tar.clone(), "1 trusted signature(s), 2 required")
            }
        }
        Case::TruncatedTar => {
            let tar = std::fs::read(&b.tar).expect("read bundle.tar");
            let i = layer(&e);
            let cut = craft::header_offset(&e, i) + BLOCK + e[i].body.len() / 2;
            let path = write_file(b, "hostile.tar", &tar[..cut]);
            Attempt::new(b, path, format!("the archive is truncated at byte {cut}"))
        }
        Case::TruncatedGzip => {
            let tgz = std::fs::read(&b.tgz).expect("read bundle.tar.gz");
            let path = write_file(b, "hostile.tar.gz", &tgz[..tgz.len() / 2]);
            // The same failure as a cut `.tar` (an incomplete copy), so the same message; the
            // offset is in the decompressed stream, wherever the inflater ran dry.
            Attempt::new(b, path, "the archive is truncated at byte")
        }
        Case::UnlistedEntry => {
            let at = e.len();
            e.insert(
                at,
                Entry::file("extra.txt", b"added after signing\n".to_vec()),
            );
            Attempt::new(
                b,
                write_tar(b, &e),
                "entry \"extra.txt\" is not listed in bundle.json",
            )
        }
        Case::DuplicateEntry => {
            let copy = e[layer(&e)].clone();
            let expect = format!("entry {:?} appears twice", copy.path);
            e.push(copy);
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::MissingBlob => {
            let i = layer(&e);
            let dropped = e.remove(i);
            let expect = format!(
                "entry {:?} is out of order: bundle.json lists {:?} next",
                e[i].path, dropped.path
            );
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::MissingLastEntry => {
            e.pop();
            Attempt::new(
                b,
                write_tar(b, &e),
                "1 listed file(s) missing from the bundle, first \"load-images.sh\"",
            )
        }
        Case::DotDotPath => {
            e.push(Entry::file("../escape.sh", b"#!/bin/sh\n".to_vec()));
            Attempt::new(
                b,
                write_tar(b, &e),
                "entry \"../escape.sh\" has an unsafe path: `.` and `..` are not allowed",
            )
        }
        Case::AbsolutePath => {
            e.push(Entry::file(
                "/etc/passwd",
                b"root::0:0::/:/bin/sh\n".to_vec(),
            ));
            Attempt::new(
                b,
                write_tar(b, &e),
                "entry \"/etc/passwd\" has an unsafe path: absolute paths are not allowed",
            )
        }
        Case::Symlink => {
            // Named like a listed file, so a careless extractor would write through it.
            let mut link = Entry::special("oci-layout", kind::SYMLINK);
            link.link = "/etc/passwd".into();
            e.insert(2, link);
            let expect = not_regular("oci-layout", "symbolic link");
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::HardLink => {
            let mut link = Entry::special("oci-layout", kind::HARD_LINK);
            link.link = "bundle.json".into();
            e.insert(2, link);
            let expect = not_regular("oci-layout", "hard link");
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::CharDevice => {
            let mut dev = Entry::special("oci-layout", kind::CHAR_DEVICE);
            (dev.dev_major, dev.dev_minor) = (1, 3); // /dev/null
            e.insert(2, dev);
            let expect = not_regular("oci-layout", "character device");
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::BlockDevice => {
            let mut dev = Entry::special("oci-layout", kind::BLOCK_DEVICE);
            (dev.dev_major, dev.dev_minor) = (8, 0); // /dev/sda
            e.insert(2, dev);
            let expect = not_regular("oci-layout", "block device");
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::Fifo => {
            e.insert(2, Entry::special("oci-layout", kind::FIFO));
            let expect = not_regular("oci-layout", "FIFO");
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::SizeMismatch => {
            let i = layer(&e);
            let listed = e[i].body.len();
            e[i].body.pop();
            let expect = format!(
                "entry {:?} is {} bytes in the archive but bundle.json lists {listed}",
                e[i].path,
                listed - 1
            );
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::TrailingGarbage => {
            let mut tar = craft::write(&e);
            let end = tar.len();
            tar.extend_from_slice(b"appended after the end marker\n");
            let path = write_file(b, "hostile.tar", &tar);
            Attempt::new(
                b,
                path,
                format!("data after the end of the archive, at byte {end}"),
            )
        }
        Case::OversizedManifest => {
            // Only the header lies: the body stays small, so a verifier that read 16+ MiB before
            // checking the limit would fail with a different message (truncation).
            let claimed = 17 * 1024 * 1024;
            e[0].claimed_size = Some(claimed);
            Attempt::new(
                b,
                write_tar(b, &e),
                format!("bundle.json is {claimed} bytes, over the {MANIFEST_LIMIT}-byte limit"),
            )
        }
        Case::GzipBomb => {
            let path = b.path().join("hostile.tar.gz");
            write_bomb(&path, &craft::write(&e));
            Attempt::new(
                b,
                path,
                "bytes of padding after the end of the archive (a decompression bomb?)",
            )
        }
        Case::Expired => Attempt::new(b, build_expired(b), "the bundle expired at"),
        Case::ManifestNotFirst => {
            e.swap(0, 1);
            Attempt::new(
                b,
                write_tar(b, &e),
                "the first entry must be bundle.json, found \"bundle.sig\"",
            )
        }
        Case::PaxHeader => {
            // What `tar --format=pax` writes before an entry to override its path.
            let mut pax = Entry::file(
                "PaxHeaders.0/oci-layout",
                craft::pax_records(&[("path", "../../etc/cron.d/sensei")]),
            );
            pax.kind = kind::PAX;
            e.insert(2, pax);
            let expect = not_regular("PaxHeaders.0/oci-layout", "tar extension header (type 'x')");
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::Directory => {
            e.insert(2, Entry::special("blobs/", kind::DIRECTORY));
            let expect = not_regular("blobs/", "directory");
            Attempt::new(b, write_tar(b, &e), expect)
        }
        Case::WrongName => Attempt {
            extra: vec!["--name".into(), "other".into()],
            ..Attempt::new(
                b,
                b.tar.clone(),
                "the bundle is named \"demo\", expected \"other\"",
            )
        },
        Case::BadChecksum => {
            let mut tar = craft::write(&e);
            let at = craft::header_offset(&e, index_of(&e, "index.json"));
            tar[at] = b'X'; // "Xndex.json", checksum left as it was
            let path = write_file(b, "hostile.tar", &tar);
            Attempt::new(
                b,
                path,
                format!("corrupt tar header at byte {at}: header checksum does not match"),
            )
        }
        Case::BadMagic => {
            let mut tar = craft::write(&e);
            let i = index_of(&e, "index.json");
            let at = craft::header_offset(&e, i);
            let mut header = e[i].header();
            header[257..263].copy_from_slice(b"xstar\0");
            craft::set_checksum(&mut header);
            tar[at..at + BLOCK].copy_from_slice(&header);
            let path = write_file(b, "hostile.tar", &tar);
            Attempt::new(
                b,
                path,
                format!("corrupt tar header at byte {at}: not a ustar header (bad magic)"),
            )
        }
        Case::ResignedByUntrustedKey => {
            let (rogue_key, _, rogue_id) = keygen(b, "rogue");
            // A new listing with one more file, which would run on `tar -x && ./payload.sh`.
            let payload = b"#!/bin/sh\necho owned\n".to_vec();
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&e[0].body).expect("bundle.json is JSON");
            manifest["files"]
                .as_array_mut()
                .expect("files is a list")
                .push(serde_json::json!({
                    "path": "payload.sh",
                    "size": payload.len(),
                    "sha256": sha256_hex(&payload),
                }));
            e[0].body = serde_json::to_vec_pretty(&manifest).expect("serialise");
            e.push(Entry::file("payload.sh", payload));
            // Sign the new bundle.json with the real `sensei-bundler sign`, then embed that
            // signature in place of the original.
            let unsigned = write_file(b, "unsigned.tar", &craft::write(&e));
            let sig = b.path().join("rogue.sig");
            run_ok(
                bundler()
                    .arg("sign")
                    .arg(&unsigned)
                    .arg("--key")
                    .arg(&rogue_key)
                    .arg("-o")
                    .arg(&sig),
            );
            e[1].body = std::fs::read(&sig).expect("read rogue.sig");
            Attempt::new(
                b,
                write_tar(b, &e),
                format!(
                    "no signature is by a trusted key: signed by {}",
                    short(&rogue_id)
                ),
            )
        }
        Case::SignatureNotSecond => {
            e.remove(1);
            Attempt::new(
                b,
                write_tar(b, &e),
                "the second entry must be bundle.sig, found \"oci-layout\"",
            )
        }
        Case::MalformedSignatureFile => {
            e[1].body = b"{}".to_vec();
            Attempt::new(
                b,
                write_tar(b, &e),
                "signature file bundle.sig is not a JSON list of signatures",
            )
        }
        Case::OversizedSignatureFile => {
            let claimed = 2 * 1024 * 1024;
            e[1].claimed_size = Some(claimed);
            Attempt::new(
                b,
                write_tar(b, &e),
                format!(
                    "bundle.sig is {claimed} bytes, over the {SIGNATURE_LIMIT}-byte limit for a signature file"
                ),
            )
        }
        Case::EarlyEndMarker => {
            // Readers that stop at the first zero block would never see what follows it.
            let mut tar = craft::write(&e);
            let at = craft::header_offset(&e, e.len() - 1);
            tar.splice(at..at, [0u8; BLOCK]);
            let path = write_file(b, "hostile.tar", &tar);
            Attempt::new(
                b,
                path,
                format!("the end-of-archive marker at byte {at} is malformed"),
            )
        }
        Case::GzipAppendedGarbage => {
            let mut tgz = craft::gzip(&craft::write(&e));
            tgz.extend_from_slice(b"appended after the gzip stream\n");
            let path = write_file(b, "hostile.tar.gz", &tgz);
            Attempt::new(b, path, "the gzip stream is corrupt or has data appended")
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Gzips the valid tar followed by `BOMB_ZEROS` zero bytes into one gzip stream, in 1 MiB chunks
/// so this test stays in constant memory (zeros deflate ~1000:1: the file is ~2 MB).
fn write_bomb(path: &Path, tar: &[u8]) {
    let file = std::fs::File::create(path).expect("create bomb");
    let mut gz =
        flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::default());
    gz.write_all(tar).expect("write bomb");
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..BOMB_ZEROS / zeros.len() as u64 {
        gz.write_all(&zeros).expect("write bomb");
    }
    gz.finish()
        .expect("finish bomb")
        .flush()
        .expect("flush bomb");
}

/// Builds a bundle from the fixture spec plus `expires: 1h`, created two days ago.
fn build_expired(b: &Built) -> PathBuf {
    let mut spec = std::fs::read_to_string(&b.fixtures.spec_path).expect("read spec");
    if !spec.ends_with('\n') {
        spec.push('\n');
    }
    spec.push_str("expires: 1h\n");
    // Beside the original, so its relative paths still resolve.
    let spec_path = b.fixtures.spec_path.with_file_name("expiring.yaml");
    std::fs::write(&spec_path, spec).expect("write spec");
    let two_days_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        - 2 * 24 * 3600;
    let out = b.path().join("expired.tar");
    run_ok(
        bundler()
            .env("SOURCE_DATE_EPOCH", two_days_ago.to_string())
            .args(["create", "--quiet", "-f"])
            .arg(&spec_path)
            .arg("--key")
            .arg(&b.key)
            .arg("-o")
            .arg(&out),
    );
    out
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

// ---------------------------------------------------------------------------------------------
// Gaps found while writing this suite and closed in the verifier: no byte of a bundle escapes the
// signature, not padding (must be zero) and not header metadata (must be the canonical header).

#[test]
fn data_hidden_in_body_padding() {
    let b = Built::new();
    let e = valid_entries(&b);
    let mut tar = craft::write(&e);
    // oci-layout is 30 bytes: the other 482 bytes of its block are padding no signature covers.
    let i = index_of(&e, "oci-layout");
    let start = craft::header_offset(&e, i) + BLOCK + e[i].body.len();
    let end = craft::header_offset(&e, i + 1);
    assert!(end > start, "no padding to fill");
    tar[start..end].fill(b'X');
    let bundle = write_file(&b, "hostile.tar", &tar);
    let out = b.verify(&bundle, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unsigned data in padding was accepted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-zero bytes in the padding"));
}

#[test]
fn setuid_world_writable_script_owned_by_another_user() {
    let b = Built::new();
    let mut e = valid_entries(&b);
    // `tar -xzf` as root (the manual path) restores mode and owner: user 1000 could then rewrite
    // load-images.sh after it was verified and before root runs it.
    let script = e.last_mut().expect("entries");
    (script.mode, script.uid, script.gid) = (0o6777, 1000, 1000);
    let bundle = write_tar(&b, &e);
    let out = b.verify(&bundle, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a setuid, world-writable load-images.sh owned by uid 1000 was accepted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("non-canonical tar header (its mode field")
    );
}

#[test]
fn extracted_file_made_writable_by_others_is_rejected() {
    let b = Built::new();
    let dir = b.path().join("x");
    std::fs::create_dir(&dir).expect("mkdir");
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&b.tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar");
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("load-images.sh"),
        std::fs::Permissions::from_mode(0o777),
    )
    .expect("chmod");
    let out = b.verify(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has mode 777"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
