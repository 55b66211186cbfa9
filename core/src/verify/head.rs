//! A bundle's head, `bundle.json` and `bundle.sig`, read under the verifier's limits but not
//! verified: for looking at a bundle (`inspect`) and for countersigning it.

use std::path::Path;

use super::directory::read_bounded;
use super::{Rejection, VerifyError, read_head_entries};
use crate::archive::{TarReader, open_stream};
use crate::manifest::{MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_FILE};
use crate::signature::MAX_SIGNATURE_FILE_BYTES;

/// The raw bytes of `bundle.json` and `bundle.sig`. Nothing here is trusted yet.
#[derive(Debug, Clone)]
pub struct Head {
    pub manifest_bytes: Vec<u8>,
    pub signature_bytes: Vec<u8>,
}

/// Reads the head of an archive (steps 1–2 of the checklist) or of an extracted directory. A
/// directory that lost its `bundle.sig` gives an empty signature file: looking needs none, and
/// verification rejects the bundle for it.
pub fn read_head(bundle: &Path) -> Result<Head, VerifyError> {
    if bundle.is_dir() {
        let manifest_bytes = read_bounded(bundle, MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
        let signature_bytes = match read_bounded(bundle, SIGNATURE_FILE, MAX_SIGNATURE_FILE_BYTES) {
            Err(VerifyError::Rejected(Rejection::Missing { .. })) => Vec::new(),
            other => other?,
        };
        return Ok(Head {
            manifest_bytes,
            signature_bytes,
        });
    }
    let io = |source| VerifyError::Io {
        path: bundle.display().to_string(),
        source,
    };
    let file = std::fs::File::open(bundle).map_err(io)?;
    let (stream, _) = open_stream(file).map_err(io)?;
    let ((manifest_bytes, _), (signature_bytes, _)) =
        read_head_entries(&mut TarReader::new(stream))?;
    Ok(Head {
        manifest_bytes,
        signature_bytes,
    })
}
