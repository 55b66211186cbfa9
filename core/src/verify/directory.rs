//! Verifying a bundle extracted into a directory (`tar -xzf`): the same checks, file by file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{
    FileChecks, Policy, RawHead, Rejection, Verified, VerifyError, Visitor, check_index, finish_dir,
};
use crate::manifest::{MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_FILE};

use crate::progress::Reporter;
use crate::signature::MAX_SIGNATURE_FILE_BYTES;

/// Opens `dir/rel` as a regular file (never through a symlink) whose size is at most `limit`.
fn open_regular(dir: &Path, rel: &str, limit: Option<u64>) -> Result<(File, u64), VerifyError> {
    let path = dir.join(rel);
    let io = |source| VerifyError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Rejection::Missing {
                first: rel.to_owned(),
                count: 1,
            }
            .into());
        }
        Err(e) => return Err(io(e)),
    };
    if !meta.file_type().is_file() {
        let kind = if meta.file_type().is_symlink() {
            "symbolic link"
        } else {
            "non-regular file"
        };
        return Err(Rejection::NotRegular {
            path: rel.to_owned(),
            kind: kind.to_owned(),
        }
        .into());
    }
    // An extracted file can only have lost mode bits (umask); extra ones mean someone changed it.
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o7022 != 0 {
            let mode = meta.permissions().mode() & 0o7777;
            return Err(Rejection::BadMode {
                path: rel.to_owned(),
                mode: format!("{mode:o}"),
            }
            .into());
        }
    }
    if let Some(limit) = limit
        && meta.len() > limit
    {
        return Err(if rel == MANIFEST_FILE {
            Rejection::ManifestTooLarge {
                size: meta.len(),
                limit,
            }
        } else {
            Rejection::SignatureFileTooLarge {
                source_name: rel.to_owned(),
                size: meta.len(),
                limit,
            }
        }
        .into());
    }
    let file = File::open(&path).map_err(io)?;
    Ok((file, meta.len()))
}

pub(super) fn read_bounded(dir: &Path, rel: &str, limit: u64) -> Result<Vec<u8>, VerifyError> {
    let (file, _) = open_regular(dir, rel, Some(limit))?;
    let mut out = Vec::new();
    // Bounded even if the file grows after the size check.
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| VerifyError::Io {
            path: dir.join(rel).display().to_string(),
            source,
        })?;
    Ok(out)
}

/// Verifies an extracted bundle directory. Files not listed in `bundle.json` are ignored (an
/// operator may extract into a directory that holds other things); every listed one is checked.
pub fn verify_directory(
    dir: &Path,
    policy: &Policy,
    reporter: &dyn Reporter,
    visitor: &mut dyn Visitor,
) -> Result<Verified, VerifyError> {
    let manifest_bytes = read_bounded(dir, MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
    let embedded = read_bounded(dir, SIGNATURE_FILE, MAX_SIGNATURE_FILE_BYTES)?;
    let signed = RawHead::new(manifest_bytes, &embedded, policy)?.check(policy)?;
    let mut buf = vec![0u8; 1024 * 1024];
    reporter.start("verify", Some(signed.manifest.total_bytes()));
    let mut checks = FileChecks::new(reporter, visitor);
    for entry in &signed.manifest.files {
        let (file, size) = open_regular(dir, &entry.path, None)?;
        if size != entry.size {
            return Err(Rejection::SizeMismatch {
                path: entry.path.clone(),
                listed: entry.size,
                actual: size,
            }
            .into());
        }
        let mut hasher = checks.begin(entry);
        // One byte past the listed size, so a file that grew since the size check is caught.
        let mut limited = file.take(entry.size + 1);
        loop {
            let n = limited.read(&mut buf).map_err(|source| VerifyError::Io {
                path: dir.join(&entry.path).display().to_string(),
                source,
            })?;
            if n == 0 {
                break;
            }
            checks.chunk(entry, &mut hasher, &buf[..n]);
        }
        checks.end(entry, hasher)?;
    }
    reporter.finish();
    check_index(&signed.manifest, &checks.index_json)?;
    Ok(finish_dir(signed, policy))
}
