//! Countersigning: a detached signature file over an existing bundle's `bundle.json`, so a second
//! person can sign without rewriting the archive (the two-person rule).

use std::io::Write;
use std::path::{Path, PathBuf};

use sensei_core::digest::Digest;
use sensei_core::manifest::BundleManifest;
use sensei_core::outfile::{Input, Replace, TempFile, check_output, parent_dir};
use sensei_core::signature::{
    KeyId, MAX_SIGNATURE_FILE_BYTES, PrivateKey, parse_signature_file, signature_file_bytes,
};

use sensei_core::verify::{VerifyError, read_head};

use crate::error::{BundleError, InputError};

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Countersigned {
    pub signature_file: PathBuf,
    pub keyid: KeyId,
    pub manifest_digest: Digest,
    pub name: String,
    pub version: String,
    /// Signatures now in the file (earlier countersignatures are kept).
    pub signatures: usize,
}

/// Reads the exact bytes of `bundle.json` from an archive or an extracted directory.
pub fn read_manifest_bytes(bundle: &Path) -> Result<Vec<u8>, BundleError> {
    let bad = |message: String| InputError::Other(format!("{}: {message}", bundle.display()));
    std::fs::metadata(bundle).map_err(|e| bad(format!("cannot open: {e}")))?;
    match read_head(bundle) {
        Ok(head) => Ok(head.manifest_bytes),
        Err(VerifyError::Rejected(r)) => Err(bad(format!("not a Sensei bundle: {r}")).into()),
        Err(VerifyError::Io { path, source }) => Err(BundleError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Signs `bundle`'s `bundle.json` with `key`, adding the signature to `out` (created if needed;
/// a previous signature by the same key is replaced). Written atomically.
pub fn countersign(
    bundle: &Path,
    key: &PrivateKey,
    key_path: &Path,
    out: &Path,
) -> Result<Countersigned, BundleError> {
    // Never a device, link or input at the output; an existing file is merged into below only
    // if it reads as a signature file.
    check_output(
        "-o",
        out,
        &[
            Input {
                flag: "BUNDLE",
                path: bundle,
            },
            Input {
                flag: "--key",
                path: key_path,
            },
        ],
        Replace::Force,
    )
    .map_err(InputError::from)?;
    let manifest_bytes = read_manifest_bytes(bundle)?;
    // Refuse to sign something that is not a well-formed bundle manifest.
    let manifest = BundleManifest::from_slice(&manifest_bytes)
        .map_err(|e| InputError::Other(format!("{}: refusing to sign: {e}", bundle.display())))?;
    let mut entries = match std::fs::read(out) {
        Ok(bytes) if bytes.len() as u64 <= MAX_SIGNATURE_FILE_BYTES => parse_signature_file(&bytes)
            .map_err(|e| {
                InputError::Other(format!("{}: existing signature file {e}", out.display()))
            })?,
        Ok(_) => {
            return Err(InputError::Other(format!(
                "{}: existing signature file is too large",
                out.display()
            ))
            .into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => {
            return Err(BundleError::Io {
                path: out.to_owned(),
                source: e,
            });
        }
    };
    let entry = key.sign(&manifest_bytes);
    entries.retain(|e| e.keyid != entry.keyid);
    entries.push(entry);
    let bytes = signature_file_bytes(&entries);
    let dir = parent_dir(out);
    let label = out
        .file_name()
        .map_or_else(|| "bundle.sig".into(), |n| n.to_string_lossy().into_owned());
    let tmp = TempFile::new_in(&dir, &label, ".partial").map_err(BundleError::io(&dir))?;
    tmp.as_file()
        .write_all(&bytes)
        .map_err(BundleError::io(tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(BundleError::io(tmp.path()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(BundleError::io(tmp.path()))?;
    }
    crate::create::still_replaceable(out)?;
    tmp.persist(out).map_err(BundleError::io(out))?;
    Ok(Countersigned {
        signature_file: out.to_owned(),
        keyid: key.public().id().clone(),
        manifest_digest: Digest::of(&manifest_bytes),
        name: manifest.name,
        version: manifest.version.to_string(),
        signatures: entries.len(),
    })
}
