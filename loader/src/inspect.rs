//! `sensei-loader inspect`: what a bundle says it holds, read without a key and marked unverified.

use std::path::Path;

use sensei_core::manifest::BundleManifest;
use sensei_core::signature::{SignatureEntry, parse_signature_file};
use sensei_core::verify::read_head;
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
    std::fs::metadata(bundle)
        .map_err(|e| LoaderError::input(bundle, format!("cannot open the bundle: {e}")))?;
    let head = read_head(bundle).map_err(|e| LoaderError::from_verify(e, bundle))?;
    let (manifest_bytes, sig_bytes) = (head.manifest_bytes, head.signature_bytes);
    let manifest =
        BundleManifest::from_slice(&manifest_bytes).map_err(|e| LoaderError::Rejected(e.into()))?;
    let signatures = parse_signature_file(&sig_bytes).unwrap_or_default();
    Ok(Inspection {
        verified: false,
        manifest,
        signatures,
    })
}
