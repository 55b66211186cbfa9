//! The streaming verifier: one forward pass over a bundle, a numbered checklist, structure and
//! limits before the signature, the signature before parsing, hashes before anything is trusted.
//!
//! 1. `bundle.json` is the first entry and within its size limit; its raw bytes are read.
//! 2. `bundle.sig` is the second entry and within its limit; it and any detached signature files
//!    are parsed (bounded lists of `{keyid, alg, sig}`).
//! 3. Signatures are checked over the raw bytes of `bundle.json`: any invalid signature by a
//!    trusted key rejects; at least `threshold` distinct trusted keys must have signed.
//! 4. Only now is `bundle.json` parsed, and its structure checked (schema, clean unique paths,
//!    blob names equal their hashes, images and charts point at listed blobs).
//! 5. Policy: expiry, expected name.
//! 6. Every further entry: a regular file, a clean path, listed, in listed order, seen once, of
//!    the listed size, with a canonical header (every header byte is fixed by path, size and
//!    `created`) and zero padding, with the listed sha256 (hashed while streaming, constant memory).
//! 7. The end: every listed file was seen; after the end-of-archive marker nothing but bounded
//!    zero padding; the gzip stream (if any) ends cleanly.
//! 8. `index.json` names every image and chart of `bundle.json` with the same digest.
//!
//! An archive of a release that carries only some of the listed files (a part, FORMAT.md §14)
//! is verified by the same pass with two rules relaxed: in step 6 a listed file may be skipped
//! (the files it does carry still come in listing order, each once), in step 7 the end may come
//! before the last listed file, and step 8 runs where `index.json` is carried. What was carried
//! is the [`Coverage`] of the result.

mod directory;
mod file_check;
mod head;
mod index;
mod rejection;
mod report;

use std::collections::HashMap;
use std::io::Read;

pub use directory::{verify_directory, verify_directory_in};
use file_check::FileChecks;
pub use head::{Head, read_head};
pub use index::check_index;
pub use rejection::{Rejection, VerifyError};
pub use report::Report;

use crate::archive::{
    BLOCK, Compression, EntryKind, Header, TarReader, header_field, open_stream, pipe,
};
use crate::content::Coverage;
use crate::digest::Digest;
use crate::manifest::{
    BundleManifest, FileEntry, MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_FILE, check_path,
    file_mode,
};
use crate::oci::INDEX_FILE;
use crate::progress::Reporter;
use crate::signature::{
    MAX_SIGNATURE_FILE_BYTES, SignatureCheck, SignatureEntry, SignatureSource, SignatureStatus,
    TrustedKey, check_signatures, parse_signature_file, trusted_signers,
};

/// What the caller trusts and requires.
#[derive(Debug, Clone)]
pub struct Policy {
    pub trusted: Vec<TrustedKey>,
    /// Distinct trusted signers required (at least 1).
    pub threshold: usize,
    /// Detached countersignature files: (label for messages, raw bytes, bounded by the caller).
    pub detached: Vec<(String, Vec<u8>)>,
    /// Reject a bundle of another name.
    pub expected_name: Option<String>,
    /// Reject an archive of another release: the sha256 of the `bundle.json` every archive of
    /// the release carries (FORMAT.md §14.3), checked right after the signatures.
    pub release: Option<Digest>,
    /// The time expiry is judged against.
    pub now: jiff::Timestamp,
}

/// Receives each file's verified bytes as they stream, e.g. to push blobs while verifying.
/// A file's bytes are only trustworthy once `file_end` reports it verified.
pub trait Visitor {
    fn file_start(&mut self, _entry: &FileEntry) {}
    fn file_chunk(&mut self, _entry: &FileEntry, _chunk: &[u8]) {}
    fn file_end(&mut self, _entry: &FileEntry) {}
}

impl Visitor for () {}

/// A bundle whose signature, structure and every byte checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: BundleManifest,
    pub manifest_bytes: Vec<u8>,
    pub report: Report,
    /// The listed files the archive carries: all of them, unless it is a part of its release.
    pub coverage: Coverage,
}

/// Whether an archive must carry every listed file (a bundle, as format v1 always had it) or
/// may carry some of them (any archive of a release: the whole bundle or a part, FORMAT.md §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Whole,
    Part,
}

/// Steps 1–2 done: the raw head of a bundle, read under limits, not yet trusted.
#[derive(Debug)]
pub struct RawHead {
    pub manifest_bytes: Vec<u8>,
    pub signatures: Vec<(SignatureSource, SignatureEntry)>,
}

/// Steps 3–5 done: the signature holds, `bundle.json` is parsed and its structure checked; the
/// files it lists are not yet hashed.
#[derive(Debug)]
pub struct Signed {
    pub manifest: BundleManifest,
    pub manifest_bytes: Vec<u8>,
    pub signatures: Vec<SignatureCheck>,
}

impl RawHead {
    /// Adds the detached signatures to the embedded ones.
    pub fn new(
        manifest_bytes: Vec<u8>,
        embedded: &[u8],
        policy: &Policy,
    ) -> Result<Self, Rejection> {
        let mut signatures = vec![];
        let sources = std::iter::once((SignatureSource::Embedded, embedded)).chain(
            policy
                .detached
                .iter()
                .map(|(label, bytes)| (SignatureSource::Detached(label.clone()), bytes.as_slice())),
        );
        for (source, bytes) in sources {
            let entries =
                parse_signature_file(bytes).map_err(|error| Rejection::BadSignatureFile {
                    source_name: source.to_string(),
                    error,
                })?;
            signatures.extend(entries.into_iter().map(|e| (source.clone(), e)));
        }
        Ok(Self {
            manifest_bytes,
            signatures,
        })
    }

    /// Steps 3–5.
    pub fn check(self, policy: &Policy) -> Result<Signed, Rejection> {
        if self.signatures.is_empty() {
            return Err(Rejection::NoSignatures);
        }
        let checks = check_signatures(&self.manifest_bytes, &self.signatures, &policy.trusted);
        if let Some(bad) = checks
            .iter()
            .find(|c| matches!(c.status, SignatureStatus::Invalid { .. }))
        {
            let key = match &bad.status {
                SignatureStatus::Invalid { key } => key.clone(),
                _ => String::new(),
            };
            return Err(Rejection::InvalidSignature {
                source_name: bad.source.to_string(),
                keyid: bad.keyid.clone(),
                key,
            });
        }
        let signers = trusted_signers(&checks);
        if signers.is_empty() {
            let mut keyids: Vec<_> = checks.iter().map(|c| c.keyid.clone()).collect();
            keyids.dedup();
            return Err(Rejection::UntrustedOnly { keyids });
        }
        let need = policy.threshold.max(1);
        if signers.len() < need {
            return Err(Rejection::ThresholdNotMet {
                need,
                have: signers.len(),
            });
        }
        // Before parsing: an archive of another release has nothing more to say here.
        if let Some(expected) = policy.release {
            let found = Digest::of(&self.manifest_bytes);
            if found != expected {
                return Err(Rejection::OtherRelease { expected, found });
            }
        }
        let manifest = BundleManifest::from_slice(&self.manifest_bytes)?;
        if let Some(expires) = manifest.expires_at()?
            && expires.is_reached_at(policy.now)
        {
            return Err(Rejection::Expired {
                expires: expires.to_string(),
                now: crate::manifest::format_time(policy.now),
            });
        }
        if let Some(expected) = &policy.expected_name
            && expected != &manifest.name
        {
            return Err(Rejection::WrongName {
                expected: expected.clone(),
                found: manifest.name.clone(),
            });
        }
        Ok(Signed {
            manifest,
            manifest_bytes: self.manifest_bytes,
            signatures: checks,
        })
    }
}

/// Reads one bounded metadata entry that must come at a fixed position; returns its bytes and
/// raw header block (checked once `created` is known).
fn read_fixed_entry<R: Read>(
    tar: &mut TarReader<R>,
    name: &str,
    limit: u64,
    misplaced: impl Fn(String) -> Rejection,
    too_large: impl Fn(u64) -> Rejection,
) -> Result<RawEntry, VerifyError> {
    let Some(h) = tar.next_header()? else {
        return Err(misplaced("(end of archive)".into()).into());
    };
    if h.path != name {
        return Err(misplaced(h.path).into());
    }
    if h.kind != EntryKind::Regular {
        return Err(Rejection::NotRegular {
            path: h.path,
            kind: h.kind.describe(),
        }
        .into());
    }
    if h.size > limit {
        return Err(too_large(h.size).into());
    }
    let block = *tar.header_block();
    Ok((tar.read_body_to_vec()?, block))
}

/// An entry's bytes and its raw header block.
type RawEntry = (Vec<u8>, [u8; BLOCK]);

/// Steps 1–2 on an archive: `bundle.json` then `bundle.sig`, each with its raw header block.
fn read_head_entries<R: Read>(tar: &mut TarReader<R>) -> Result<(RawEntry, RawEntry), VerifyError> {
    let manifest = read_fixed_entry(
        tar,
        MANIFEST_FILE,
        MAX_MANIFEST_BYTES,
        |found| Rejection::ManifestNotFirst { found },
        |size| Rejection::ManifestTooLarge {
            size,
            limit: MAX_MANIFEST_BYTES,
        },
    )?;
    let signature = read_fixed_entry(
        tar,
        SIGNATURE_FILE,
        MAX_SIGNATURE_FILE_BYTES,
        |found| Rejection::SignatureNotSecond { found },
        |size| Rejection::SignatureFileTooLarge {
            source_name: SIGNATURE_FILE.into(),
            size,
            limit: MAX_SIGNATURE_FILE_BYTES,
        },
    )?;
    Ok((manifest, signature))
}

/// Every header must be exactly the one the format prescribes for its path, size and the
/// bundle's `created` time, so no header byte (mode, owner, link name, ...) escapes the signature.
fn check_canonical_header(
    block: &[u8; BLOCK],
    path: &str,
    size: u64,
    mtime: u64,
) -> Result<(), Rejection> {
    let expected = Header::encode_regular(path, size, file_mode(path), mtime);
    // All 512 bytes, the checksum field too (its one form was already required on decoding).
    match block.iter().zip(expected.iter()).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(Rejection::NonCanonicalHeader {
            path: path.to_owned(),
            field: header_field(i),
        }),
    }
}

/// Verifies a bundle archive (`.tar` or `.tar.gz`) from a stream, in one pass: every listed file
/// must be in it. A gzip stream is decompressed on a second thread while this one hashes.
pub fn verify_archive(
    raw: impl Read + Send,
    policy: &Policy,
    reporter: &dyn Reporter,
    visitor: &mut dyn Visitor,
) -> Result<Verified, VerifyError> {
    verify_archive_in(Scope::Whole, raw, policy, reporter, visitor)
}

/// Verifies an archive in one pass; with [`Scope::Part`] it may carry only some of the listed
/// files (FORMAT.md §14): everything it carries is checked as [`verify_archive`] checks it, and
/// [`Verified::coverage`] says what it carries.
pub fn verify_archive_in(
    scope: Scope,
    raw: impl Read + Send,
    policy: &Policy,
    reporter: &dyn Reporter,
    visitor: &mut dyn Visitor,
) -> Result<Verified, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: "the archive".into(),
        source,
    };
    let (stream, compression) = open_stream(raw).map_err(io_err)?;
    match compression {
        Compression::Gzip => std::thread::scope(|s| {
            verify_stream(
                scope,
                TarReader::new(pipe(s, stream)),
                compression,
                policy,
                reporter,
                visitor,
            )
        }),
        Compression::None => verify_stream(
            scope,
            TarReader::new(stream),
            compression,
            policy,
            reporter,
            visitor,
        ),
    }
}

fn verify_stream<R: Read>(
    scope: Scope,
    mut tar: TarReader<R>,
    compression: Compression,
    policy: &Policy,
    reporter: &dyn Reporter,
    visitor: &mut dyn Visitor,
) -> Result<Verified, VerifyError> {
    // Steps 1–2.
    let ((manifest_bytes, manifest_block), (embedded, sig_block)) = read_head_entries(&mut tar)?;
    // Steps 3–5.
    let signed = RawHead::new(manifest_bytes, &embedded, policy)?.check(policy)?;
    let mtime = signed.manifest.created_at()?.as_second().max(0) as u64;
    check_canonical_header(
        &manifest_block,
        MANIFEST_FILE,
        signed.manifest_bytes.len() as u64,
        mtime,
    )?;
    check_canonical_header(&sig_block, SIGNATURE_FILE, embedded.len() as u64, mtime)?;

    // Step 6.
    let files = &signed.manifest.files;
    let position: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), i))
        .collect();
    // The listed file expected next: one past the last one carried.
    let mut next = 0usize;
    let mut coverage = Coverage::none(&signed.manifest_bytes, files);
    let mut buf = vec![0u8; 1024 * 1024];
    reporter.start("verify", Some(signed.manifest.total_bytes()));
    let mut checks = FileChecks::new(reporter, visitor);
    while let Some(h) = tar.next_header()? {
        if h.kind != EntryKind::Regular {
            return Err(Rejection::NotRegular {
                path: h.path,
                kind: h.kind.describe(),
            }
            .into());
        }
        if let Err(e) = check_path(&h.path) {
            let why = match e {
                crate::manifest::ManifestError::BadPath { why, .. } => why.to_owned(),
                other => other.to_string(),
            };
            return Err(Rejection::UnsafePath { path: h.path, why }.into());
        }
        let (i, entry) = match position.get(h.path.as_str()) {
            None if h.path == MANIFEST_FILE || h.path == SIGNATURE_FILE => {
                return Err(Rejection::Duplicate { path: h.path }.into());
            }
            None => return Err(Rejection::Unlisted { path: h.path }.into()),
            Some(&i) if coverage.carries(i) => {
                return Err(Rejection::Duplicate { path: h.path }.into());
            }
            // A part skipped this file and now carries it after a later one.
            Some(&i) if i < next => {
                return Err(Rejection::OutOfListingOrder {
                    path: h.path,
                    after: files[next - 1].path.clone(),
                }
                .into());
            }
            Some(&i) if i > next && scope == Scope::Whole => {
                return Err(Rejection::OutOfOrder {
                    path: h.path,
                    expected: files[next].path.clone(),
                }
                .into());
            }
            Some(&i) => (i, &files[i]),
        };
        if h.size != entry.size {
            return Err(Rejection::SizeMismatch {
                path: h.path,
                listed: entry.size,
                actual: h.size,
            }
            .into());
        }
        check_canonical_header(tar.header_block(), &entry.path, entry.size, mtime)?;
        let mut hasher = checks.begin(entry);
        tar.stream_body(&mut buf, |chunk| checks.chunk(entry, &mut hasher, chunk))?;
        checks.end(entry, hasher)?;
        coverage.carry(i);
        next = i + 1;
    }
    // Step 7.
    if scope == Scope::Whole && next < files.len() {
        return Err(Rejection::Missing {
            first: files[next].path.clone(),
            count: files.len() - next,
        }
        .into());
    }
    tar.finish()?;
    reporter.finish();
    // Step 8, by the archive that carries index.json (always, in a whole bundle).
    check_carried_index(&signed.manifest, &coverage, &checks.index_json)?;
    Ok(finish(signed, Some(compression), policy, coverage))
}

/// Step 8 where `index.json` is carried: a part without it leaves the check to the part that
/// carries it (step 4 made sure it is listed).
fn check_carried_index(
    manifest: &BundleManifest,
    coverage: &Coverage,
    index_json: &[u8],
) -> Result<(), Rejection> {
    let carried = manifest
        .files
        .iter()
        .position(|f| f.path == INDEX_FILE)
        .is_some_and(|i| coverage.carries(i));
    if carried {
        check_index(manifest, index_json)?;
    }
    Ok(())
}

/// `compression` is `None` for an extracted directory.
fn finish(
    signed: Signed,
    compression: Option<Compression>,
    policy: &Policy,
    coverage: Coverage,
) -> Verified {
    let report = Report::new(&signed, compression, policy.threshold.max(1), &coverage);
    Verified {
        manifest: signed.manifest,
        manifest_bytes: signed.manifest_bytes,
        report,
        coverage,
    }
}

#[cfg(test)]
mod tests;
