//! Which blob goes to which repository, and which manifests and tags follow: the push worked
//! out from the verified `bundle.json`, the manifests kept during verification, and the
//! reference mapping, before any connection is made.
//!
//! Every image and chart is walked from its top digest: an index lists manifests (and nested
//! indexes), a manifest lists its config and layers. Each blob is listed once with every
//! repository that needs it, so it can be uploaded once and mounted into the others. Manifests
//! are ordered by height (image manifests 0, an index one more than its highest child) so
//! children always land before their parents; tops that carry a tag are pushed by that tag, last.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
    /// An image of the bundle named by digest only (no tag): nothing else shows it is there.
    pub top: bool,
    /// Every blob below it (through the manifests an index lists, too): what must be in before
    /// it is put.
    pub blobs: BTreeSet<Digest>,
}

/// A top manifest to put under its tag, once everything below it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagJob {
    pub repo: String,
    pub tag: String,
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
    /// Every blob below the tagged manifest.
    pub blobs: BTreeSet<Digest>,
}

/// The whole push, in order: blobs, then manifests by height, then tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    /// Adds `d` to `blobs` if the bundle holds it (a non-distributable layer it may lack is
    /// not pushed, so nothing waits for it).
    fn held(&self, blobs: &mut BTreeSet<Digest>, d: &Descriptor) {
        if self.blobs.contains_key(&d.digest) {
            blobs.insert(d.digest);
        }
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
        let mut blobs = BTreeSet::new();
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
                    blobs.extend(self.manifests[i].blobs.iter().copied());
                    self.children.insert((repo.to_owned(), child.digest));
                } else {
                    self.blob(repo, child, digest)?;
                    self.held(&mut blobs, child);
                }
            }
            height
        } else {
            let manifest: oci::Manifest = serde_json::from_slice(&bytes).map_err(bad)?;
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                self.blob(repo, d, digest)?;
                self.held(&mut blobs, d);
            }
            0
        };
        self.manifests.push(ManifestJob {
            repo: repo.to_owned(),
            digest: *digest,
            media_type,
            bytes,
            height,
            top: false,
            blobs,
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
    let mut untagged: HashSet<(String, Digest)> = HashSet::new();
    for (target, digest) in tops {
        let declared = image_types
            .get(&digest)
            .copied()
            .unwrap_or(oci::OCI_MANIFEST);
        let i = b.walk(&target.repository, &digest, declared, 0)?;
        if target.tag.is_none() {
            untagged.insert((target.repository.clone(), digest));
        }
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
                blobs: m.blobs.clone(),
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
        .map(|mut m| {
            m.top = untagged.contains(&(m.repo.clone(), m.digest));
            m
        })
        .collect();
    manifests.sort_by_key(|m| m.height);
    Ok(PushGraph {
        blobs: b.blobs.into_values().collect(),
        manifests,
        tags,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mapping;
    use sensei_core::manifest::{ChartEntry, Compat, FileEntry, ImageEntry, MEDIA_TYPE};

    /// A tiny bundle: blobs, manifests and the `bundle.json` listing them.
    #[derive(Default)]
    struct Fake {
        files: Vec<FileEntry>,
        collected: Collected,
        images: Vec<ImageEntry>,
        charts: Vec<ChartEntry>,
    }

    impl Fake {
        fn blob(&mut self, bytes: &[u8]) -> serde_json::Value {
            let d = Digest::of(bytes);
            self.files.push(FileEntry {
                path: d.blob_path(),
                size: bytes.len() as u64,
                sha256: d.hex(),
            });
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d.to_string(), "size": bytes.len()})
        }

        fn manifest(&mut self, value: serde_json::Value) -> (Digest, serde_json::Value) {
            let bytes = serde_json::to_vec(&value).unwrap();
            let desc = self.blob(&bytes);
            let d = Digest::of(&bytes);
            self.collected.manifests.insert(d, bytes);
            let media_type = value["mediaType"].clone();
            (
                d,
                serde_json::json!({"mediaType": media_type, "digest": d.to_string(),
                "size": desc["size"]}),
            )
        }

        fn image(&mut self, layers: &[&[u8]]) -> (Digest, serde_json::Value) {
            let config = self.blob(format!("config {}", layers.len()).as_bytes());
            let layers: Vec<_> = layers.iter().map(|l| self.blob(l)).collect();
            self.manifest(serde_json::json!({"schemaVersion": 2,
                "mediaType": oci::OCI_MANIFEST, "config": config, "layers": layers}))
        }

        fn bundle(&self) -> BundleManifest {
            BundleManifest {
                schema_version: 1,
                media_type: MEDIA_TYPE.into(),
                name: "demo".into(),
                version: semver::Version::new(1, 0, 0),
                created: "2026-01-01T00:00:00Z".into(),
                expires: None,
                compat: Compat {
                    upgrade_from: ">=0.1.0".into(),
                },
                images: self.images.clone(),
                charts: self.charts.clone(),
                files: self.files.clone(),
            }
        }

        fn add_image(&mut self, reference: &str, digest: Digest, media_type: &str) {
            self.images.push(ImageEntry {
                reference: reference.into(),
                digest,
                media_type: media_type.into(),
                size: 1,
                platforms: vec![],
                filtered_from: None,
                source: None,
            });
        }

        fn graph(&self) -> Result<PushGraph, GraphError> {
            let bundle = self.bundle();
            let registry: mapping::Registry = "registry.internal".parse().unwrap();
            let plan = mapping::plan(&bundle, &registry).unwrap();
            build(&bundle, &self.collected, &plan)
        }
    }

    #[test]
    fn shared_blobs_are_listed_once_with_every_repository_and_children_come_first() {
        let mut f = Fake::default();
        let (amd, amd_desc) = f.image(&[b"base", b"app-amd64"]);
        let (arm, arm_desc) = f.image(&[b"base", b"app-arm64"]);
        let (index, _) = f.manifest(serde_json::json!({"schemaVersion": 2,
            "mediaType": oci::OCI_INDEX, "manifests": [amd_desc, arm_desc]}));
        let (single, _) = f.image(&[b"base", b"worker"]);
        f.add_image("ghcr.io/acme/multi:1", index, oci::OCI_INDEX);
        f.add_image("ghcr.io/acme/worker:1", single, oci::OCI_MANIFEST);
        f.add_image("ghcr.io/acme/worker:2", single, oci::OCI_MANIFEST);
        let (chart, _) = f.image(&[b"chart.tgz"]);
        f.charts.push(ChartEntry {
            name: "demo".into(),
            version: semver::Version::new(1, 0, 0),
            reference: "charts/demo:1.0.0".into(),
            digest: chart,
            source: None,
        });
        let g = f.graph().unwrap();

        let base = g
            .blobs
            .iter()
            .find(|b| b.digest == Digest::of(b"base"))
            .unwrap();
        assert_eq!(base.repos, ["acme/multi", "acme/worker"]);
        assert_eq!(
            g.blobs
                .iter()
                .filter(|b| b.digest == Digest::of(b"base"))
                .count(),
            1
        );
        assert!(g.blobs.iter().any(|b| b.repos == ["charts/demo"]));
        // The index's children by digest, at height 0; every top only by its tag.
        let by_digest: Vec<_> = g.manifests.iter().map(|m| (m.digest, m.height)).collect();
        assert_eq!(by_digest.len(), 2);
        assert!(by_digest.contains(&(amd, 0)) && by_digest.contains(&(arm, 0)));
        let tags: Vec<_> = g
            .tags
            .iter()
            .map(|t| format!("{}:{}", t.repo, t.tag))
            .collect();
        assert_eq!(
            tags,
            [
                "acme/multi:1",
                "acme/worker:1",
                "acme/worker:2",
                "charts/demo:1.0.0"
            ]
        );
        assert_eq!(g.tags[0].media_type, oci::OCI_INDEX);
        // What each must wait for: an index every blob of its children.
        let of = |bytes: &[&[u8]]| bytes.iter().map(|b| Digest::of(b)).collect::<BTreeSet<_>>();
        assert!(
            g.tags[0]
                .blobs
                .is_superset(&of(&[b"base", b"app-amd64", b"app-arm64"]))
        );
        assert_eq!(
            g.tags[0].blobs.len(),
            4,
            "3 layers and the config both images share"
        );
        assert!(g.tags[1].blobs.contains(&Digest::of(b"worker")));
        assert!(!g.tags[1].blobs.contains(&Digest::of(b"app-amd64")));
        assert_eq!(
            g.placements(),
            g.blobs.iter().map(|b| b.repos.len()).sum::<usize>()
        );
    }

    #[test]
    fn an_untagged_top_is_pushed_by_digest_after_its_children() {
        let mut f = Fake::default();
        let (amd, amd_desc) = f.image(&[b"l1"]);
        let (index, _) = f.manifest(serde_json::json!({"schemaVersion": 2,
            "mediaType": oci::DOCKER_MANIFEST_LIST, "manifests": [amd_desc]}));
        f.add_image(
            &format!("quay.io/x/y@{index}"),
            index,
            oci::DOCKER_MANIFEST_LIST,
        );
        let g = f.graph().unwrap();
        let order: Vec<_> = g.manifests.iter().map(|m| (m.digest, m.height)).collect();
        assert_eq!(order, [(amd, 0), (index, 1)]);
        assert!(!g.manifests[0].top && g.manifests[1].top);
        assert_eq!(g.heights(), [0, 1]);
        assert!(g.tags.is_empty());
    }

    #[test]
    fn an_incomplete_bundle_is_refused_naming_what_is_missing() {
        let mut f = Fake::default();
        let (top, _) = f.image(&[b"present", b"gone"]);
        f.add_image("ghcr.io/acme/app:1", top, oci::OCI_MANIFEST);
        let gone = Digest::of(b"gone");
        f.files.retain(|e| e.path != gone.blob_path());
        let err = f.graph().unwrap_err().to_string();
        assert!(
            err.contains(&gone.to_string()) && err.contains("incomplete"),
            "{err}"
        );

        let mut f = Fake::default();
        let (top, _) = f.image(&[b"a"]);
        f.add_image("ghcr.io/acme/app:1", top, oci::OCI_MANIFEST);
        f.collected.manifests.clear();
        let err = f.graph().unwrap_err().to_string();
        assert!(err.contains(&top.to_string()), "{err}");

        let mut f = Fake::default();
        let (top, _) = f.image(&[b"sized"]);
        f.add_image("ghcr.io/acme/app:1", top, oci::OCI_MANIFEST);
        let sized = Digest::of(b"sized").blob_path();
        f.files.iter_mut().find(|e| e.path == sized).unwrap().size = 99;
        let err = f.graph().unwrap_err().to_string();
        assert!(err.contains("size"), "{err}");
    }
}
