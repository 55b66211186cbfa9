//! `sensei-loader inspect`: what a bundle says it holds, read without a key and marked unverified.

use std::path::Path;

use sensei_core::archive::{EntryKind, TarReader, open_stream};
use sensei_core::manifest::{BundleManifest, MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_FILE};
use sensei_core::signature::{MAX_SIGNATURE_FILE_BYTES, SignatureEntry, parse_signature_file};
use sensei_core::verify::Rejection;
use serde::Serialize;

use crate::error::LoaderError;

/// The unverified contents of a bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// Always false: nothing here is checked against a key or a hash.
    pub verified: bool,
    pub manifest: BundleManifest,
    pub signatures: Vec<SignatureEntry>,
}

/// Reads `bundle.json` and `bundle.sig` (bounded) from an archive or directory.
pub fn inspect(bundle: &Path) -> Result<Inspection, LoaderError> {
    let (manifest_bytes, sig_bytes) = if bundle.is_dir() {
        let read = |name: &str, limit: u64| -> Result<Vec<u8>, LoaderError> {
            let p = bundle.join(name);
            let meta = std::fs::symlink_metadata(&p)
                .map_err(|e| LoaderError::input(&p, format!("cannot read: {e}")))?;
            if !meta.is_file() || meta.len() > limit {
                return Err(LoaderError::input(
                    &p,
                    format!("not a regular file of at most {limit} bytes"),
                ));
            }
            std::fs::read(&p).map_err(|source| LoaderError::Io { path: p, source })
        };
        (
            read(MANIFEST_FILE, MAX_MANIFEST_BYTES)?,
            read(SIGNATURE_FILE, MAX_SIGNATURE_FILE_BYTES).unwrap_or_default(),
        )
    } else {
        let file = std::fs::File::open(bundle)
            .map_err(|e| LoaderError::input(bundle, format!("cannot open the bundle: {e}")))?;
        let (stream, _) = open_stream(file).map_err(|source| LoaderError::Io {
            path: bundle.to_owned(),
            source,
        })?;
        let mut tar = TarReader::new(stream);
        let mut entry = |name: &str, limit: u64| -> Result<Vec<u8>, LoaderError> {
            let rejected = |r: Rejection| LoaderError::Rejected(r);
            let h = tar
                .next_header()
                .map_err(|e| rejected(Rejection::Archive(e)))?
                .ok_or_else(|| {
                    rejected(Rejection::ManifestNotFirst {
                        found: "(end of archive)".into(),
                    })
                })?;
            if h.path != name || h.kind != EntryKind::Regular {
                return Err(rejected(if name == MANIFEST_FILE {
                    Rejection::ManifestNotFirst { found: h.path }
                } else {
                    Rejection::SignatureNotSecond { found: h.path }
                }));
            }
            if h.size > limit {
                return Err(rejected(Rejection::ManifestTooLarge {
                    size: h.size,
                    limit,
                }));
            }
            tar.read_body_to_vec()
                .map_err(|e| rejected(Rejection::Archive(e)))
        };
        let m = entry(MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
        let s = entry(SIGNATURE_FILE, MAX_SIGNATURE_FILE_BYTES)?;
        (m, s)
    };
    let manifest =
        BundleManifest::from_slice(&manifest_bytes).map_err(|e| LoaderError::Rejected(e.into()))?;
    let signatures = parse_signature_file(&sig_bytes).unwrap_or_default();
    Ok(Inspection {
        verified: false,
        manifest,
        signatures,
    })
}
