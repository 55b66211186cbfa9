//! Local OCI image layouts as an image source: `index.json` and `blobs/`, read bounded and hashed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sensei_core::digest::{Digest, digest_reader};
use sensei_core::oci::{Descriptor, INDEX_FILE, Index, MAX_MANIFEST_BYTES};

use crate::blob::BlobData;
use crate::error::{BundleError, InputError, IntegrityError};
use crate::walk::ImageSource;

/// An opened OCI image layout directory.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
    index: Index,
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Self, BundleError> {
        let bad = |message: String| InputError::Layout {
            dir: dir.to_owned(),
            message,
        };
        let index_path = dir.join(INDEX_FILE);
        let file = File::open(&index_path).map_err(|e| {
            bad(format!("cannot open {INDEX_FILE} ({e}); is this an OCI image layout (e.g. written by `skopeo copy ... oci:DIR:REF`)?"))
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(BundleError::io(&index_path))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "{INDEX_FILE} is larger than {MAX_MANIFEST_BYTES} bytes"
            ))
            .into());
        }
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("{INDEX_FILE} is not an OCI index: {e}")))?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The descriptor named `layout_ref`, or the only one if the layout holds exactly one.
    pub fn find(
        &self,
        layout_ref: Option<&str>,
        reference: &str,
    ) -> Result<Descriptor, InputError> {
        let names = || {
            let v: Vec<&str> = self
                .index
                .manifests
                .iter()
                .filter_map(Descriptor::ref_name)
                .collect();
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let bad = |message: String| InputError::Image {
            reference: reference.to_owned(),
            message,
        };
        match layout_ref {
            Some(name) => {
                let mut hits = self
                    .index
                    .manifests
                    .iter()
                    .filter(|d| d.ref_name() == Some(name));
                let first = hits.next().ok_or_else(|| {
                    bad(format!(
                        "layout {} has no image named {name:?} (it has: {})",
                        self.dir.display(),
                        names()
                    ))
                })?;
                if hits.next().is_some() {
                    return Err(bad(format!(
                        "layout {} names {name:?} more than once",
                        self.dir.display()
                    )));
                }
                Ok(first.clone())
            }
            None => match self.index.manifests.as_slice() {
                [only] => Ok(only.clone()),
                many => Err(bad(format!(
                    "layout {} holds {} images; say which with `layoutRef:` (it has: {})",
                    self.dir.display(),
                    many.len(),
                    names()
                ))),
            },
        }
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.blob_path())
    }

    /// Reads a small blob (manifest, index, config) whole, checking size and digest.
    pub fn read_small(&self, desc: &Descriptor, reference: &str) -> Result<Vec<u8>, BundleError> {
        let path = self.blob_path(&desc.digest);
        let integrity = |problem: String| IntegrityError {
            reference: reference.to_owned(),
            digest: desc.digest,
            source_name: self.dir.display().to_string(),
            problem,
        };
        if desc.size > MAX_MANIFEST_BYTES {
            return Err(integrity(format!(
                "is {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit for manifests and configs",
                desc.size
            ))
            .into());
        }
        let file = File::open(&path).map_err(|e| InputError::Layout {
            dir: self.dir.clone(),
            message: format!(
                "blob {} is missing ({e}); the layout is incomplete",
                desc.digest
            ),
        })?;
        let mut bytes = Vec::new();
        file.take(desc.size + 1)
            .read_to_end(&mut bytes)
            .map_err(BundleError::io(&path))?;
        if bytes.len() as u64 != desc.size {
            return Err(integrity(format!(
                "is {} bytes, the descriptor says {}",
                bytes.len(),
                desc.size
            ))
            .into());
        }
        if Digest::of(&bytes) != desc.digest {
            return Err(integrity("does not hash to its digest".into()).into());
        }
        Ok(bytes)
    }

    /// Checks a (possibly large) blob's presence, size and digest by streaming it.
    pub fn check_blob(&self, desc: &Descriptor, reference: &str) -> Result<(), BundleError> {
        let path = self.blob_path(&desc.digest);
        let file = File::open(&path).map_err(|e| InputError::Layout {
            dir: self.dir.clone(),
            message: format!(
                "blob {} of {reference} is missing ({e}); the layout is incomplete",
                desc.digest
            ),
        })?;
        let (digest, size) =
            digest_reader(file.take(desc.size + 1)).map_err(BundleError::io(&path))?;
        if size != desc.size || digest != desc.digest {
            return Err(IntegrityError {
                reference: reference.to_owned(),
                digest: desc.digest,
                source_name: self.dir.display().to_string(),
                problem: format!("has {size} bytes hashing to {digest}"),
            }
            .into());
        }
        Ok(())
    }
}

/// One image of a layout, as the walker reads it.
#[derive(Debug)]
pub struct LayoutImage<'a> {
    pub layout: &'a Layout,
    pub reference: &'a str,
}

impl ImageSource for LayoutImage<'_> {
    async fn manifest(&self, desc: &Descriptor) -> Result<Vec<u8>, BundleError> {
        self.layout.read_small(desc, self.reference)
    }

    async fn config(&self, desc: &Descriptor) -> Result<Vec<u8>, BundleError> {
        self.layout.read_small(desc, self.reference)
    }

    fn layer(&self, layer: &Descriptor) -> Result<BlobData, BundleError> {
        let path = self.layout.blob_path(&layer.digest);
        let meta = std::fs::metadata(&path).map_err(|e| InputError::Layout {
            dir: self.layout.dir().to_owned(),
            message: format!(
                "layer {} of {} is missing ({e}); the layout is incomplete",
                layer.digest, self.reference
            ),
        })?;
        if meta.len() != layer.size {
            return Err(IntegrityError {
                reference: self.reference.to_owned(),
                digest: layer.digest,
                source_name: self.layout.dir().display().to_string(),
                problem: format!(
                    "is {} bytes on disk, the manifest says {}",
                    meta.len(),
                    layer.size
                ),
            }
            .into());
        }
        Ok(BlobData::File(path))
    }
}
