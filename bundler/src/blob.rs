//! A planned blob and where its bytes are: what the walkers produce, the plan collects, and the
//! writers read. A leaf: it imports no other module of the crate, so the walkers and the plan
//! that orchestrates them can all use it without importing one another back. What each blob is
//! to its images (its role, its place in the archive) is `sensei_core::content`'s.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::PathBuf;
use std::sync::Arc;

use sensei_core::content::Holdings;
use sensei_core::digest::Digest;
use sensei_registry::Repo;

/// A layer to fetch from a registry when the bundle is written.
#[derive(Debug, Clone)]
pub struct RemoteBlob {
    pub repo: Repo,
}

/// Where a planned blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobData {
    /// A file whose contents must hash to the digest (checked while the archive is written).
    File(PathBuf),
    /// Bytes produced or already checked while planning (manifests, configs, charts).
    Bytes(Arc<[u8]>),
    /// A layer still in a registry; fetched (and checked) before the archive is written.
    Remote(Arc<RemoteBlob>),
    /// A fetched layer in the build's temporary store, already checked against its digest.
    Stored(PathBuf),
}

#[derive(Debug, Clone)]
pub struct PlannedBlob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// A manifest or index: its bytes are what the content graph is walked through.
    pub is_manifest: bool,
    pub data: BlobData,
    /// The first image or chart that needs it, for error messages.
    pub needed_by: String,
}

/// Blobs by digest: one image's, or the whole plan's.
pub type Blobs = BTreeMap<Digest, PlannedBlob>;

/// Adds a blob; when two roles share one digest the bytes are the same, so the first is kept,
/// unless the second is a manifest (kept with its bytes, to be walked).
pub fn add_blob(blobs: &mut Blobs, blob: PlannedBlob) {
    match blobs.entry(blob.digest) {
        Entry::Vacant(v) => {
            v.insert(blob);
        }
        Entry::Occupied(mut o) if blob.is_manifest && !o.get().is_manifest => {
            o.insert(blob);
        }
        Entry::Occupied(_) => {}
    }
}

/// The plan's blobs as the content graph reads them.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a>(pub &'a Blobs);

impl Holdings for Held<'_> {
    fn size(&self, digest: &Digest) -> Option<u64> {
        self.0.get(digest).map(|b| b.size)
    }

    fn manifest(&self, digest: &Digest) -> Option<&[u8]> {
        match self.0.get(digest) {
            Some(PlannedBlob {
                is_manifest: true,
                data: BlobData::Bytes(b),
                ..
            }) => Some(b),
            _ => None,
        }
    }
}
