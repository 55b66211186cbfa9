//! Crafting each hostile case: the valid bundle's entries rewritten one way, written back with
//! the independent tar writer, and what the rejection must name.

use super::*;

/// The entries of the valid `.tar`, checked to be in the documented order.
pub(super) fn valid_entries(b: &Built) -> Vec<Entry> {
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

pub(super) fn index_of(entries: &[Entry], path: &str) -> usize {
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

pub(super) fn write_file(b: &Built, name: &str, bytes: &[u8]) -> PathBuf {
    let path = b.path().join(name);
    std::fs::write(&path, bytes).expect("write crafted bundle");
    path
}

/// Writes the entries as `hostile.tar` and returns its path.
pub(super) fn write_tar(b: &Built, entries: &[Entry]) -> PathBuf {
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
pub(super) fn craft_case(case: Case, b: &Built) -> Attempt {
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
        // A bundle with files missing is rejected, as it always was; `verify --partial`
        // takes it as a part of its release (FORMAT.md §14, tests/tests/hostile/parts.rs).
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
        Case::ChecksumSpareBytes
        | Case::ChecksumBase256
        | Case::NullExpires
        | Case::CreatedWithSpace
        | Case::ExpiresOnLeapSecond
        | Case::IndexDuplicateKey => craft_precision::craft_precision_case(case, b, e),
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
