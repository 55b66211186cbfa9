//! Every reason a bundle is rejected, each with its own message saying what failed and what to do.

use crate::archive::ArchiveError;
use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::signature::{KeyId, SignatureFileError};

/// Why the verifier refused a bundle (exit code 1 in both binaries).
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(
        "extracted file {path:?} has mode {mode}: writable by group or others, or setuid, though the bundle ships 0644/0755 (it was changed after extraction)"
    )]
    BadMode { path: String, mode: String },
    #[error(
        "extracted directory {path:?} has mode {mode}: writable by group or others, who could swap the verified files in it (chmod go-w it, or extract the bundle again with umask 022)"
    )]
    BadDirectoryMode { path: String, mode: String },
    #[error(
        "extracted {path:?} is a {kind}, not a directory: the bundle's files must lie in the bundle directory itself (extract the bundle again)"
    )]
    NotADirectory { path: String, kind: String },
    #[error(
        "entry {path:?} has a non-canonical tar header (its {field} field was altered; headers carry no data of their own)"
    )]
    NonCanonicalHeader { path: String, field: &'static str },
    #[error(
        "the first entry must be bundle.json, found {found:?}: this is not a Sensei bundle, or it was repacked"
    )]
    ManifestNotFirst { found: String },
    #[error("bundle.json is {size} bytes, over the {limit}-byte limit: refusing to read it")]
    ManifestTooLarge { size: u64, limit: u64 },
    #[error("the second entry must be bundle.sig, found {found:?}")]
    SignatureNotSecond { found: String },
    #[error("{source_name} is {size} bytes, over the {limit}-byte limit for a signature file")]
    SignatureFileTooLarge {
        source_name: String,
        size: u64,
        limit: u64,
    },
    #[error("signature file {source_name} {error}")]
    BadSignatureFile {
        source_name: String,
        error: SignatureFileError,
    },
    #[error(
        "the bundle carries no signature (built without --key?): sign it with `sensei-bundler sign BUNDLE --key KEY`"
    )]
    NoSignatures,
    #[error(
        "the signature in {source_name} by key {keyid} ({key}) does not match bundle.json: bundle.json was changed after signing, or the signature is forged"
    )]
    InvalidSignature {
        source_name: String,
        keyid: KeyId,
        key: String,
    },
    #[error(
        "no signature is by a trusted key: signed by {} — pass the signer's public key with --key if you trust it",
        .keyids.iter().map(|k| k.short()).collect::<Vec<_>>().join(", ")
    )]
    UntrustedOnly { keyids: Vec<KeyId> },
    #[error(
        "{have} trusted signature(s), {need} required (--threshold {need}): get a countersignature with `sensei-bundler sign`"
    )]
    ThresholdNotMet { need: usize, have: usize },
    #[error("bundle.json is malformed: {0}")]
    Manifest(#[from] ManifestError),
    #[error("the bundle expired at {expires} (now {now}): ask for a fresh bundle")]
    Expired { expires: String, now: String },
    #[error("the bundle is named {found:?}, expected {expected:?}")]
    WrongName { expected: String, found: String },
    #[error(
        "version {bundle} is older than {loaded}, the last version loaded here: pass --allow-downgrade if this rollback is intended"
    )]
    Rollback { bundle: String, loaded: String },
    #[error("entry {path:?} is a {kind}: only regular files are allowed in a bundle")]
    NotRegular { path: String, kind: String },
    #[error("entry {path:?} has an unsafe path: {why}")]
    UnsafePath { path: String, why: String },
    #[error("entry {path:?} is not listed in bundle.json (something was added after signing)")]
    Unlisted { path: String },
    #[error("entry {path:?} appears twice")]
    Duplicate { path: String },
    #[error("entry {path:?} is out of order: bundle.json lists {expected:?} next")]
    OutOfOrder { path: String, expected: String },
    #[error("entry {path:?} is {actual} bytes in the archive but bundle.json lists {listed}")]
    SizeMismatch {
        path: String,
        listed: u64,
        actual: u64,
    },
    #[error(
        "entry {path:?} has sha256 {actual}, but bundle.json lists {listed}: the file was modified or corrupted"
    )]
    HashMismatch {
        path: String,
        listed: String,
        actual: String,
    },
    #[error("{} listed file(s) missing from the bundle, first {first:?}", .count)]
    Missing { first: String, count: usize },
    #[error(
        "entry {path:?} is out of listing order: bundle.json lists it before {after:?}, which \
         came earlier in the archive (an archive carries its files in listing order; it was \
         repacked or altered)"
    )]
    OutOfListingOrder { path: String, after: String },
    #[error(
        "{first} and {second} are archives of different releases (their signed bundle.json \
         differ): verify each release's archives in a call of their own"
    )]
    MixedReleases { first: String, second: String },
    #[error(
        "this archive carries bundle.json sha256 {found}, not {expected}: it is an archive of \
         another release"
    )]
    OtherRelease { expected: Digest, found: Digest },
    #[error(
        "the archive(s) given carry {carried} of the release's {listed} listed files; it still \
         needs {needed} file(s), {bytes}, first {first:?}: add the archives that carry them, \
         or pass --partial to verify only what is here"
    )]
    Incomplete {
        carried: usize,
        listed: usize,
        needed: usize,
        bytes: String,
        first: String,
    },
    #[error("{0}")]
    Archive(ArchiveError),
    /// One archive of several given at once failed: which one, and why.
    #[error("{archive}: {reason}")]
    InArchive {
        archive: String,
        reason: Box<Rejection>,
    },
    #[error("index.json does not match bundle.json: {0}")]
    Inconsistent(String),
    #[error("index.json is not an OCI index as format v1 reads it (FORMAT.md §8 step 8): {0}")]
    BadIndex(String),
}

/// A verification that could not finish: the bundle was rejected, or the machine failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("bundle rejected: {0}")]
    Rejected(#[from] Rejection),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<ArchiveError> for VerifyError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Io(source) => VerifyError::Io {
                path: "the archive".into(),
                source,
            },
            other => VerifyError::Rejected(Rejection::Archive(other)),
        }
    }
}

impl From<ManifestError> for VerifyError {
    fn from(e: ManifestError) -> Self {
        VerifyError::Rejected(Rejection::Manifest(e))
    }
}
