//! Which blob goes to which repository, and which manifests and tags follow: the push worked
//! out from the verified `bundle.json`, the manifests kept during verification, and the
//! reference mapping, before any connection is made.
//!
//! What is below what is the bundle's content graph (`sensei_core::content::ContentGraph`),
//! walked from every image's and chart's top digest; this module places it into the target's
//! repositories. Each blob is listed once with every repository that needs it, so it can be
//! uploaded once and mounted into the others. Manifests are ordered by the graph's height
//! (image manifests 0, an index one more than its highest child) so children always land
//! before their parents; tops that carry a tag are pushed by that tag, last.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use sensei_core::content::{ContentError, ContentGraph, Holdings};
use sensei_core::digest::Digest;
use sensei_core::manifest::BundleManifest;
use sensei_core::oci;

use super::collect::Collected;
use crate::mapping::Plan;

/// A bundle whose manifests don't add up: signed, but not loadable.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct GraphError(#[from] pub ContentError);

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

/// The verified bundle as the content graph reads it: blobs by digest from `bundle.json`'s
/// files (with their position, the archive order), manifests from the verification pass.
struct Held<'a> {
    /// Blob digest → (index in `files`, size).
    files: HashMap<Digest, (usize, u64)>,
    collected: &'a Collected,
}

impl Holdings for Held<'_> {
    fn size(&self, digest: &Digest) -> Option<u64> {
        self.files.get(digest).map(|&(_, size)| size)
    }

    fn manifest(&self, digest: &Digest) -> Option<&[u8]> {
        self.collected.manifests.get(digest).map(Vec::as_slice)
    }
}

struct Placer<'a> {
    content: &'a ContentGraph,
    held: &'a Held<'a>,
    blobs: BTreeMap<Digest, BlobJob>,
    /// (repo, digest) → index in `manifests`, for manifests already placed in that repository.
    placed: HashMap<(String, Digest), usize>,
    manifests: Vec<ManifestJob>,
    /// (repo, digest) of manifests listed by an index: always pushed by digest.
    children: HashSet<(String, Digest)>,
}

impl Placer<'_> {
    fn blob(&mut self, repo: &str, digest: &Digest) {
        let Some(&(file_index, size)) = self.held.files.get(digest) else {
            return; // the graph holds only what the bundle does
        };
        let job = self.blobs.entry(*digest).or_insert_with(|| BlobJob {
            digest: *digest,
            size,
            path: digest.blob_path(),
            file_index,
            repos: vec![],
        });
        if !job.repos.iter().any(|r| r == repo) {
            job.repos.push(repo.to_owned());
        }
    }

    /// Places a manifest or index and everything below it into `repo`, children first;
    /// returns its index in `manifests`.
    fn place(&mut self, repo: &str, digest: &Digest) -> Result<usize, GraphError> {
        if let Some(&i) = self.placed.get(&(repo.to_owned(), *digest)) {
            return Ok(i);
        }
        let content = self.content;
        let node = content
            .node(digest)
            .ok_or_else(|| ContentError::MissingManifest {
                digest: *digest,
                media_type: oci::OCI_MANIFEST.to_owned(),
            })?;
        for child in &node.manifests {
            self.place(repo, child)?;
            self.children.insert((repo.to_owned(), *child));
        }
        for blob in &node.blobs {
            self.blob(repo, blob);
        }
        let bytes = self.held.manifest(digest).unwrap_or_default();
        self.manifests.push(ManifestJob {
            repo: repo.to_owned(),
            digest: *digest,
            media_type: node.media_type.clone(),
            bytes: Bytes::copy_from_slice(bytes),
            height: node.height,
            top: false,
            blobs: content.blobs_below(digest),
        });
        let i = self.manifests.len() - 1;
        self.placed.insert((repo.to_owned(), *digest), i);
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
    let held = Held {
        files: manifest
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let hex = f.path.strip_prefix("blobs/sha256/")?;
                Some((Digest::from_hex(hex).ok()?, (i, f.size)))
            })
            .collect(),
        collected,
    };
    let image_types: HashMap<Digest, &str> = manifest
        .images
        .iter()
        .map(|i| (i.digest, i.media_type.as_str()))
        .collect();
    let tops: Vec<_> = plan
        .images
        .iter()
        .map(|i| (&i.target, i.digest))
        .chain(plan.charts.iter().map(|c| (&c.target, c.digest)))
        .collect();
    let content = ContentGraph::build(
        tops.iter().map(|&(_, digest)| {
            let declared = image_types.get(&digest).copied();
            (digest, declared.unwrap_or(oci::OCI_MANIFEST))
        }),
        &held,
    )?;
    let mut b = Placer {
        content: &content,
        held: &held,
        blobs: BTreeMap::new(),
        placed: HashMap::new(),
        manifests: vec![],
        children: HashSet::new(),
    };
    let mut tags: Vec<TagJob> = vec![];
    let mut untagged: HashSet<(String, Digest)> = HashSet::new();
    for (target, digest) in tops {
        let i = b.place(&target.repository, &digest)?;
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
