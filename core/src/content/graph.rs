//! The blob and manifest graph of a bundle: every blob its images and charts reach, by digest,
//! with its size, media type, roles, children and height. Built the same way by the bundler
//! (from its plan) and by the loader (from a verified bundle), so both agree on what is below
//! what: the archive order and the push order are read off it.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::oci::{self, Descriptor};

use super::reference::{HELM_CHART_CONTENT, HELM_CONFIG};

/// Deepest nesting of indexes followed. The bundler walks at most 4 levels of a publisher's
/// images; anything deeper in a bundle is hostile, and the bound keeps the walk small.
pub const MAX_DEPTH: u32 = 8;

/// What a blob is to the manifests that list it. The variants are in archive order (FORMAT.md
/// §3): a blob with several roles sorts with its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobRole {
    /// An image layer.
    Layer,
    /// A Helm chart's packaged `.tgz` ([`HELM_CHART_CONTENT`]), a layer of its manifest.
    ChartContent,
    /// A blob an index lists that is not a manifest (an artifact's): opaque, like a layer.
    Listed,
    /// An image config.
    Config,
    /// A Helm chart's config ([`HELM_CONFIG`]).
    ChartConfig,
    /// An image (or chart) manifest.
    Manifest,
    /// An index or manifest list.
    Index,
}

/// A blob's group in the archive order, lowest first: layers, configs, manifests, then indexes
/// by height (FORMAT.md §3). `Ord` is that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobKind {
    Layer,
    Config,
    Manifest,
    /// An index; the number is its height (1 = lists manifests only).
    Index(u32),
}

/// One blob of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub digest: Digest,
    pub size: u64,
    /// A manifest's or index's own `mediaType`, else the type its first parent (or the bundle's
    /// listing) gives it.
    pub media_type: String,
    pub roles: BTreeSet<BlobRole>,
    /// Blob children, in document order: a manifest's config and layers, the non-manifest
    /// blobs an index lists. Only blobs the bundle holds.
    pub blobs: Vec<Digest>,
    /// Manifest children: the manifests and indexes an index lists, in document order.
    pub manifests: Vec<Digest>,
    /// 0 for blobs and manifests; an index is one more than its highest manifest child. A
    /// parent is always higher than its manifest children: the push order.
    pub height: u32,
}

impl Node {
    /// True for a manifest or index (something put to a registry as a manifest).
    pub fn is_manifest(&self) -> bool {
        self.roles.contains(&BlobRole::Manifest) || self.roles.contains(&BlobRole::Index)
    }

    /// The node's group in the archive order.
    pub fn kind(&self) -> BlobKind {
        match self.roles.first() {
            Some(BlobRole::Layer | BlobRole::ChartContent | BlobRole::Listed) | None => {
                BlobKind::Layer
            }
            Some(BlobRole::Config | BlobRole::ChartConfig) => BlobKind::Config,
            Some(BlobRole::Manifest) => BlobKind::Manifest,
            Some(BlobRole::Index) => BlobKind::Index(self.height),
        }
    }
}

/// What a bundle (or a plan for one) holds, as the graph asks for it.
pub trait Holdings {
    /// The size of the blob held under `digest`, if one is.
    fn size(&self, digest: &Digest) -> Option<u64>;
    /// The bytes of the manifest or index held under `digest`, if one is (already bounded and
    /// checked against its digest by whoever read it).
    fn manifest(&self, digest: &Digest) -> Option<&[u8]>;
}

/// A bundle whose manifests don't add up: it names what is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(
        "manifest {parent} references blob {digest} ({media_type}), which the bundle does not \
         hold: the bundle is incomplete; rebuild it"
    )]
    MissingBlob {
        parent: Digest,
        digest: Digest,
        media_type: String,
    },
    #[error(
        "manifest {parent} gives blob {digest} a size of {listed} bytes, but the bundle holds {held}"
    )]
    SizeMismatch {
        parent: Digest,
        digest: Digest,
        listed: u64,
        held: u64,
    },
    #[error(
        "manifest {digest} ({media_type}) is not in the bundle as a manifest: the bundle is \
         incomplete; rebuild it"
    )]
    MissingManifest { digest: Digest, media_type: String },
    #[error("index {digest} nests more than {MAX_DEPTH} levels deep")]
    TooDeep { digest: Digest },
    #[error("manifest {digest} is not valid: {source}")]
    Invalid {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
}

/// Every blob reachable from a bundle's tops, by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentGraph {
    nodes: BTreeMap<Digest, Node>,
    /// The tops walked from, each once, in the order given.
    tops: Vec<Digest>,
}

/// Media types of layers a registry need not hold (Windows base layers and the like): a bundle
/// may leave them out.
pub fn non_distributable(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaTypeOnly {
    media_type: Option<String>,
}

impl ContentGraph {
    /// Walks each top (a digest and the media type the bundle declares for it) down through
    /// the manifests `held` holds. Fails, naming it, on a manifest or blob that is missing, a
    /// size that disagrees, a document that does not parse, or nesting past [`MAX_DEPTH`].
    /// A non-distributable layer the bundle lacks is left out, as a registry may lack it too.
    pub fn build<'t>(
        tops: impl IntoIterator<Item = (Digest, &'t str)>,
        held: &impl Holdings,
    ) -> Result<Self, ContentError> {
        let mut graph = Self::default();
        for (digest, media_type) in tops {
            graph.walk(held, &digest, media_type, 0)?;
            if !graph.tops.contains(&digest) {
                graph.tops.push(digest);
            }
        }
        Ok(graph)
    }

    pub fn node(&self, digest: &Digest) -> Option<&Node> {
        self.nodes.get(digest)
    }

    /// Every node, by digest.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The tops the graph was built from, each once, in the order given.
    pub fn tops(&self) -> &[Digest] {
        &self.tops
    }

    /// Every blob below `digest` (through the manifests an index lists too): what must be in a
    /// registry before it can be put there. Manifests themselves are not included.
    pub fn blobs_below(&self, digest: &Digest) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        let mut todo = vec![*digest];
        let mut seen = BTreeSet::new();
        while let Some(d) = todo.pop() {
            if !seen.insert(d) {
                continue;
            }
            if let Some(node) = self.nodes.get(&d) {
                out.extend(node.blobs.iter().copied());
                todo.extend(node.manifests.iter().copied());
            }
        }
        out
    }

    fn add_blob(
        &mut self,
        held: &impl Holdings,
        d: &Descriptor,
        role: BlobRole,
        parent: &Digest,
    ) -> Result<Option<Digest>, ContentError> {
        let Some(size) = held.size(&d.digest) else {
            if non_distributable(&d.media_type) {
                return Ok(None);
            }
            return Err(ContentError::MissingBlob {
                parent: *parent,
                digest: d.digest,
                media_type: d.media_type.clone(),
            });
        };
        if size != d.size {
            return Err(ContentError::SizeMismatch {
                parent: *parent,
                digest: d.digest,
                listed: d.size,
                held: size,
            });
        }
        self.nodes
            .entry(d.digest)
            .or_insert_with(|| Node {
                digest: d.digest,
                size,
                media_type: d.media_type.clone(),
                roles: BTreeSet::new(),
                blobs: vec![],
                manifests: vec![],
                height: 0,
            })
            .roles
            .insert(role);
        Ok(Some(d.digest))
    }

    /// Walks a manifest or index, children first; returns its height.
    fn walk(
        &mut self,
        held: &impl Holdings,
        digest: &Digest,
        declared_type: &str,
        depth: u32,
    ) -> Result<u32, ContentError> {
        if let Some(node) = self.nodes.get(digest)
            && node.is_manifest()
        {
            return Ok(node.height);
        }
        if depth > MAX_DEPTH {
            return Err(ContentError::TooDeep { digest: *digest });
        }
        let bytes = held
            .manifest(digest)
            .ok_or_else(|| ContentError::MissingManifest {
                digest: *digest,
                media_type: declared_type.to_owned(),
            })?;
        // The body's own mediaType is what a registry checks an upload's Content-Type against.
        let media_type = serde_json::from_slice::<MediaTypeOnly>(bytes)
            .ok()
            .and_then(|m| m.media_type)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| declared_type.to_owned());
        let invalid = |source| ContentError::Invalid {
            digest: *digest,
            source,
        };
        let is_index = oci::is_index(&media_type)
            || (!oci::is_manifest(&media_type)
                && serde_json::from_slice::<oci::Index>(bytes).is_ok());
        let size = held.size(digest).unwrap_or(bytes.len() as u64);
        let (role, blobs, manifests, height) = if is_index {
            let index: oci::Index = serde_json::from_slice(bytes).map_err(invalid)?;
            let (mut blobs, mut manifests, mut height) = (vec![], vec![], 1);
            for child in &index.manifests {
                if oci::is_index(&child.media_type)
                    || oci::is_manifest(&child.media_type)
                    || held.manifest(&child.digest).is_some()
                {
                    let h = self.walk(held, &child.digest, &child.media_type, depth + 1)?;
                    height = height.max(h + 1);
                    manifests.push(child.digest);
                } else if let Some(d) = self.add_blob(held, child, BlobRole::Listed, digest)? {
                    blobs.push(d);
                }
            }
            (BlobRole::Index, blobs, manifests, height)
        } else {
            let manifest: oci::Manifest = serde_json::from_slice(bytes).map_err(invalid)?;
            let mut blobs = vec![];
            let config_role = if manifest.config.media_type == HELM_CONFIG {
                BlobRole::ChartConfig
            } else {
                BlobRole::Config
            };
            if let Some(d) = self.add_blob(held, &manifest.config, config_role, digest)? {
                blobs.push(d);
            }
            for layer in &manifest.layers {
                let role = if layer.media_type == HELM_CHART_CONTENT {
                    BlobRole::ChartContent
                } else {
                    BlobRole::Layer
                };
                if let Some(d) = self.add_blob(held, layer, role, digest)? {
                    blobs.push(d);
                }
            }
            (BlobRole::Manifest, blobs, vec![], 0)
        };
        let node = self.nodes.entry(*digest).or_insert_with(|| Node {
            digest: *digest,
            size,
            media_type: media_type.clone(),
            roles: BTreeSet::new(),
            blobs: vec![],
            manifests: vec![],
            height: 0,
        });
        node.media_type = media_type;
        node.roles.insert(role);
        node.blobs = blobs;
        node.manifests = manifests;
        node.height = height;
        Ok(height)
    }
}
