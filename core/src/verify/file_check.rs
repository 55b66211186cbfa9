//! Step 6's per-file work, shared by archive and directory verification: hash the bytes as they
//! stream, keep `index.json` for step 8, feed the visitor and the reporter, then compare.

use super::{Rejection, Visitor};
use crate::digest::Hasher;
use crate::manifest::FileEntry;
use crate::oci::{INDEX_FILE, MAX_MANIFEST_BYTES as MAX_INDEX_BYTES};
use crate::progress::Reporter;

pub(super) struct FileChecks<'a> {
    reporter: &'a dyn Reporter,
    visitor: &'a mut dyn Visitor,
    /// The bytes of `index.json` (if within its limit), for step 8.
    pub(super) index_json: Vec<u8>,
}

impl<'a> FileChecks<'a> {
    pub(super) fn new(reporter: &'a dyn Reporter, visitor: &'a mut dyn Visitor) -> Self {
        Self {
            reporter,
            visitor,
            index_json: Vec::new(),
        }
    }

    pub(super) fn begin(&mut self, entry: &FileEntry) -> Hasher {
        self.reporter.item(&entry.path, Some(entry.size));
        self.visitor.file_start(entry);
        Hasher::new()
    }

    pub(super) fn chunk(&mut self, entry: &FileEntry, hasher: &mut Hasher, chunk: &[u8]) {
        hasher.update(chunk);
        if entry.path == INDEX_FILE && entry.size <= MAX_INDEX_BYTES {
            self.index_json.extend_from_slice(chunk);
        }
        self.visitor.file_chunk(entry, chunk);
        self.reporter.advance(chunk.len() as u64);
    }

    /// The file's size and sha256 must be the listed ones; only then is it passed on as verified.
    pub(super) fn end(&mut self, entry: &FileEntry, hasher: Hasher) -> Result<(), Rejection> {
        if hasher.len() != entry.size {
            return Err(Rejection::SizeMismatch {
                path: entry.path.clone(),
                listed: entry.size,
                actual: hasher.len(),
            });
        }
        let actual = hasher.finish().hex();
        if actual != entry.sha256 {
            return Err(Rejection::HashMismatch {
                path: entry.path.clone(),
                listed: entry.sha256.clone(),
                actual,
            });
        }
        self.visitor.file_end(entry);
        self.reporter.item_done(&entry.path);
        Ok(())
    }
}
