//! Which blob goes to which repository, and which manifests and tags follow: the push worked
//! out from the verified `bundle.json`, the manifests kept during verification, and the
//! reference mapping, before any connection is made.
//!
//! Every image and chart is walked from its top digest: an index lists manifests (and nested
//! indexes), a manifest lists its config and layers. Each blob is listed once with every
//! repository that needs it, so it can be uploaded once and mounted into the others. Manifests
//! are ordered by height (image manifests 0, an index one more than its highest child) so
//! children always land before their parents; tops that carry a tag are pushed by that tag, last.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use sensei_core::digest::Digest;
use sensei_core::manifest::BundleManifest;
use sensei_core::oci::{self, Descriptor};

use super::collect::Collected;
use crate::mapping::Plan;

/// Deepest nesting of indexes followed (the bundler writes at most 4).
const MAX_DEPTH: u32 = 8;

/// A bundle whose manifests don't add up: signed, but not loadable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GraphError(pub String);

/// One blob of the bundle and the repositories that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobJob {
    pub digest: Digest,
    pub size: u64,
    /// `blobs/sha256/<hex>` in the bundle.
    pub path: String,
    /// Position in `bundle.json`'s `files`, which is the archive order.
    pub file_index: usize,
    /// Target repositories (paths inside the registry), in the order first needed.
    pub repos: Vec<String>,
}

/// A manifest or index to put into a repository by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestJob {
    pub repo: String,
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
    /// 0 for image manifests; an index is one more than its highest child.
    pub height: u32,
}

/// A top manifest to put under its tag, once everything below it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagJob {
    pub repo: String,
    pub tag: String,
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// The whole push, in order: blobs, then manifests by height, then tags.
#[derive(Debug, Clone, Default)]
pub struct PushGraph {
    pub blobs: Vec<BlobJob>,
    pub manifests: Vec<ManifestJob>,
    pub tags: Vec<TagJob>,
}

impl PushGraph {
    /// Bytes of every unique blob.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// (repository, blob) placements.
    pub fn placements(&self) -> usize {
        self.blobs.iter().map(|b| b.repos.len()).sum()
    }

    /// The distinct manifest heights, lowest first.
    pub fn heights(&self) -> Vec<u32> {
        let mut h: Vec<u32> = self.manifests.iter().map(|m| m.height).collect();
        h.sort_unstable();
        h.dedup();
        h
    }
}

/// Media types of layers a registry need not hold (Windows base layers and the like).
fn non_distributable(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaTypeOnly {
    media_type: Option<String>,
}

struct Builder<'a> {
    collected: &'a Collected,
    /// Blob path → (index in `files`, size).
    files: HashMap<String, (usize, u64)>,
    blobs: BTreeMap<Digest, BlobJob>,
    /// (repo, digest) → index in `manifests`, for manifests already walked in that repository.
    walked: HashMap<(String, Digest), usize>,
    manifests: Vec<ManifestJob>,
    /// (repo, digest) of manifests listed by an index: always pushed by digest.
    children: HashSet<(String, Digest)>,
}

impl Builder<'_> {
    fn blob(&mut self, repo: &str, d: &Descriptor, parent: &Digest) -> Result<(), GraphError> {
        let path = d.digest.blob_path();
        let Some(&(file_index, size)) = self.files.get(&path) else {
            if non_distributable(&d.media_type) {
                return Ok(());
            }
            return Err(GraphError(format!(
                "manifest {parent} references blob {} ({}), which the bundle does not hold: the \
                 bundle is incomplete; rebuild it",
                d.digest, d.media_type
            )));
        };
        if size != d.size {
            return Err(GraphError(format!(
                "manifest {parent} gives blob {} a size of {} bytes, but the bundle holds {size}",
                d.digest, d.size
            )));
        }
        let job = self.blobs.entry(d.digest).or_insert_with(|| BlobJob {
            digest: d.digest,
            size,
            path,
            file_index,
            repos: vec![],
        });
        if !job.repos.iter().any(|r| r == repo) {
            job.repos.push(repo.to_owned());
        }
        Ok(())
    }

    /// Walks a manifest or index into `repo`, children first; returns its index in `manifests`.
    fn walk(
        &mut self,
        repo: &str,
        digest: &Digest,
        declared_type: &str,
        depth: u32,
    ) -> Result<usize, GraphError> {
        if let Some(&i) = self.walked.get(&(repo.to_owned(), *digest)) {
            return Ok(i);
        }
        if depth > MAX_DEPTH {
            return Err(GraphError(format!(
                "index {digest} nests more than {MAX_DEPTH} levels deep"
            )));
        }
        let bytes = self.collected.manifests.get(digest).ok_or_else(|| {
            GraphError(format!(
                "manifest {digest} ({declared_type}) is not in the bundle as a manifest: the \
                 bundle is incomplete; rebuild it"
            ))
        })?;
        let bytes = Bytes::copy_from_slice(bytes);
        // The body's own mediaType is what the registry checks the upload's Content-Type against.
        let media_type = serde_json::from_slice::<MediaTypeOnly>(&bytes)
            .ok()
            .and_then(|m| m.media_type)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| declared_type.to_owned());
        let bad = |e: serde_json::Error| GraphError(format!("manifest {digest} is not valid: {e}"));
        let is_index = oci::is_index(&media_type)
            || (!oci::is_manifest(&media_type)
                && serde_json::from_slice::<oci::Index>(&bytes).is_ok());
        let height = if is_index {
            let index: oci::Index = serde_json::from_slice(&bytes).map_err(bad)?;
            let mut height = 1;
            for child in &index.manifests {
                if oci::is_index(&child.media_type)
                    || oci::is_manifest(&child.media_type)
                    || self.collected.manifests.contains_key(&child.digest)
                {
                    let i = self.walk(repo, &child.digest, &child.media_type, depth + 1)?;
                    height = height.max(self.manifests[i].height + 1);
                    self.children.insert((repo.to_owned(), child.digest));
                } else {
                    self.blob(repo, child, digest)?;
                }
            }
            height
        } else {
            let manifest: oci::Manifest = serde_json::from_slice(&bytes).map_err(bad)?;
            self.blob(repo, &manifest.config, digest)?;
            for layer in &manifest.layers {
                self.blob(repo, layer, digest)?;
            }
            0
        };
        self.manifests.push(ManifestJob {
            repo: repo.to_owned(),
            digest: *digest,
            media_type,
            bytes,
            height,
        });
        let i = self.manifests.len() - 1;
        self.walked.insert((repo.to_owned(), *digest), i);
        Ok(i)
    }
}

/// Works out the push of every image and chart in `plan`. Fails, before anything is sent,
/// if a manifest or blob the images need is missing from the bundle.
pub fn build(
    manifest: &BundleManifest,
    collected: &Collected,
    plan: &Plan,
) -> Result<PushGraph, GraphError> {
    let mut b = Builder {
        collected,
        files: manifest
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), (i, f.size)))
            .collect(),
        blobs: BTreeMap::new(),
        walked: HashMap::new(),
        manifests: vec![],
        children: HashSet::new(),
    };
    let image_types: HashMap<Digest, &str> = manifest
        .images
        .iter()
        .map(|i| (i.digest, i.media_type.as_str()))
        .collect();
    let tops = plan
        .images
        .iter()
        .map(|i| (&i.target, i.digest))
        .chain(plan.charts.iter().map(|c| (&c.target, c.digest)));
    let mut tags: Vec<TagJob> = vec![];
    for (target, digest) in tops {
        let declared = image_types
            .get(&digest)
            .copied()
            .unwrap_or(oci::OCI_MANIFEST);
        let i = b.walk(&target.repository, &digest, declared, 0)?;
        if let Some(tag) = &target.tag
            && !tags
                .iter()
                .any(|t| t.repo == target.repository && &t.tag == tag)
        {
            let m = &b.manifests[i];
            tags.push(TagJob {
                repo: m.repo.clone(),
                tag: tag.clone(),
                digest,
                media_type: m.media_type.clone(),
                bytes: m.bytes.clone(),
            });
        }
    }
    // A tagged top is put once, by its tag, unless an index also lists it.
    let by_tag: HashSet<(String, Digest)> =
        tags.iter().map(|t| (t.repo.clone(), t.digest)).collect();
    let mut manifests: Vec<ManifestJob> = b
        .manifests
        .into_iter()
        .filter(|m| {
            let key = (m.repo.clone(), m.digest);
            !by_tag.contains(&key) || b.children.contains(&key)
        })
        .collect();
    manifests.sort_by_key(|m| m.height);
    Ok(PushGraph {
        blobs: b.blobs.into_values().collect(),
        manifests,
        tags,
    })
}
