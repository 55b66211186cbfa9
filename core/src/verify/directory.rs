//! Verifying a bundle extracted into a directory (`tar -xzf`): the same checks, file by file.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{
    FileChecks, Policy, RawHead, Rejection, Scope, Verified, VerifyError, Visitor,
    check_carried_index, finish,
};
use crate::content::Coverage;
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
    if meta.permissions().mode() & 0o7022 != 0 {
        let mode = meta.permissions().mode() & 0o7777;
        return Err(Rejection::BadMode {
            path: rel.to_owned(),
            mode: format!("{mode:o}"),
        }
        .into());
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

/// Each directory between `dir` and the listed file `rel` (`blobs/`, `blobs/sha256/`) must be a
/// real directory that only its owner can write: whoever can write a directory can swap the
/// verified files in it for others. (Setgid is not refused: a directory inherits it from its
/// parent.) `checked` keeps each directory to one look.
fn check_parents(dir: &Path, rel: &str, checked: &mut HashSet<String>) -> Result<(), VerifyError> {
    let components: Vec<&str> = rel.split('/').collect();
    let mut parent = String::new();
    for component in &components[..components.len() - 1] {
        if !parent.is_empty() {
            parent.push('/');
        }
        parent.push_str(component);
        if !checked.insert(parent.clone()) {
            continue;
        }
        let path = dir.join(&parent);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // The file under it is reported missing, by name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(VerifyError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let kind = meta.file_type();
        if !kind.is_dir() {
            let kind = if kind.is_symlink() {
                "symbolic link"
            } else {
                "non-directory"
            };
            return Err(Rejection::NotADirectory {
                path: format!("{parent}/"),
                kind: kind.to_owned(),
            }
            .into());
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(Rejection::BadDirectoryMode {
                path: format!("{parent}/"),
                mode: format!("{mode:o}"),
            }
            .into());
        }
    }
    Ok(())
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
    verify_directory_in(Scope::Whole, dir, policy, reporter, visitor)
}

/// Verifies an extracted directory; with [`Scope::Part`] it may be a part of its release
/// (FORMAT.md §14): a listed file that is not there is not carried, every one that is there is
/// checked as [`verify_directory`] checks it.
pub fn verify_directory_in(
    scope: Scope,
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
    let mut checked_dirs = HashSet::new();
    let mut coverage = Coverage::none(&signed.manifest_bytes, &signed.manifest.files);
    for (i, entry) in signed.manifest.files.iter().enumerate() {
        check_parents(dir, &entry.path, &mut checked_dirs)?;
        let (file, size) = match open_regular(dir, &entry.path, None) {
            Err(VerifyError::Rejected(Rejection::Missing { .. })) if scope == Scope::Part => {
                continue;
            }
            opened => opened?,
        };
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
        coverage.carry(i);
    }
    reporter.finish();
    check_carried_index(&signed.manifest, &coverage, &checks.index_json)?;
    Ok(finish(signed, None, policy, coverage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(dir: &Path, rel: &str) -> Result<(), VerifyError> {
        check_parents(dir, rel, &mut HashSet::new())
    }

    #[test]
    fn directories_on_a_listed_path_are_writable_by_their_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let sha = tmp.path().join("blobs/sha256");
        std::fs::create_dir_all(&sha).unwrap();
        let chmod = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        chmod(&tmp.path().join("blobs"), 0o755);
        chmod(&sha, 0o755);
        check(tmp.path(), "blobs/sha256/abc").unwrap();
        check(tmp.path(), "index.json").unwrap();
        // Setgid comes from a parent directory on its own; it grants no one a write.
        chmod(&sha, 0o2755);
        check(tmp.path(), "blobs/sha256/abc").unwrap();
        for (dir, mode, shown) in [
            ("blobs/sha256", 0o777, "blobs/sha256/"),
            ("blobs/sha256", 0o775, "blobs/sha256/"),
            ("blobs", 0o757, "blobs/"),
        ] {
            chmod(&sha, 0o755);
            chmod(&tmp.path().join("blobs"), 0o755);
            chmod(&tmp.path().join(dir), mode);
            match check(tmp.path(), "blobs/sha256/abc") {
                Err(VerifyError::Rejected(Rejection::BadDirectoryMode { path, mode: m })) => {
                    assert_eq!((path.as_str(), m), (shown, format!("{mode:o}")));
                }
                other => panic!("{dir} {mode:o}: {other:?}"),
            }
        }
        chmod(&tmp.path().join("blobs"), 0o755);
        // The directory given is the operator's choice and is not looked at.
        chmod(tmp.path(), 0o777);
        chmod(&sha, 0o755);
        check(tmp.path(), "blobs/sha256/abc").unwrap();
        chmod(tmp.path(), 0o700);
    }

    #[test]
    fn a_linked_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let bundle = tmp.path().join("b");
        std::fs::create_dir_all(bundle.join("blobs")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, bundle.join("blobs/sha256")).unwrap();
        assert!(matches!(
            check(&bundle, "blobs/sha256/abc"),
            Err(VerifyError::Rejected(Rejection::NotADirectory { path, kind }))
                if path == "blobs/sha256/" && kind == "symbolic link"
        ));
        // Missing directories are left for the missing file's own message.
        check(&bundle, "other/x").unwrap();
    }
}
