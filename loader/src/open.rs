//! Opening what the operator points at: an archive or an extracted directory, its trusted keys,
//! and its countersignature files (`BUNDLE.sig` beside it is read automatically).

use std::io::Read;
use std::path::{Path, PathBuf};

use sensei_core::signature::{
    MAX_SIGNATURE_FILE_BYTES, PublicKey, TrustedKey, countersignature_path,
};

use crate::error::LoaderError;

const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads a file of at most `limit` bytes, refusing larger ones before reading them whole.
fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, LoaderError> {
    let file = std::fs::File::open(path)
        .map_err(|e| LoaderError::input(path, format!("cannot read {what}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoaderError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(LoaderError::input(
            path,
            format!("{what} is larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Loads `--key` files as trusted keys, labelled by file name.
pub fn trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>, LoaderError> {
    paths
        .iter()
        .map(|p| {
            let bytes = read_bounded(p, MAX_KEY_FILE_BYTES, "public key")?;
            let text = String::from_utf8(bytes)
                .map_err(|_| LoaderError::input(p, "not a PEM text file"))?;
            let key =
                PublicKey::from_pem(&text).map_err(|e| LoaderError::input(p, e.to_string()))?;
            let label = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok(TrustedKey { key, label })
        })
        .collect()
}

/// Detached signature files: each `--signature`, then `BUNDLE.sig` if it exists and was not named.
pub fn detached_signatures(
    bundle: &Path,
    explicit: &[PathBuf],
) -> Result<Vec<(String, Vec<u8>)>, LoaderError> {
    let mut out = vec![];
    for p in explicit {
        let bytes = read_limited(p)?;
        out.push((p.display().to_string(), bytes));
    }
    let sibling = countersignature_path(bundle);
    if !explicit.iter().any(|p| p == &sibling) && sibling.is_file() {
        out.push((sibling.display().to_string(), read_limited(&sibling)?));
    }
    Ok(out)
}

/// Reads a signature file, at most one byte past the limit: the verifier names over-limit files.
fn read_limited(path: &Path) -> Result<Vec<u8>, LoaderError> {
    let file = std::fs::File::open(path)
        .map_err(|e| LoaderError::input(path, format!("cannot read signature file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_SIGNATURE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoaderError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(bytes)
}
