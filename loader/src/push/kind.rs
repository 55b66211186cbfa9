//! How a bundle is stored (a `.tar`, a `.tar.gz`, an extracted directory), told by content as
//! the verifier does. A leaf: reading manifests early (`collect`) and reading blobs to upload
//! (`source`) both ask it, without importing each other.

use std::io::{self, Read};
use std::path::Path;

/// How the bundle is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tar,
    Gzip,
    Directory,
}

/// Detects the storage by content (gzip magic), as the verifier does, not by file name.
pub fn kind_of(bundle: &Path) -> io::Result<Kind> {
    if std::fs::metadata(bundle)?.is_dir() {
        return Ok(Kind::Directory);
    }
    let mut magic = [0u8; 2];
    let mut f = std::fs::File::open(bundle)?;
    let n = f.read(&mut magic)?;
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Kind::Gzip
    } else {
        Kind::Tar
    })
}
