//! Spec + flags → a validated plan: every image and chart resolved to a digest, every blob known
//! by digest, size, kind and where its bytes come from. Nothing is written while planning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sensei_core::compat::CompatRule;
use sensei_core::digest::Digest;
use sensei_core::manifest::{ChartEntry, ImageEntry, format_time};
use sensei_core::oci::{self, ConfigPlatform, Descriptor, Index, Manifest, REF_NAME_ANNOTATION};
use sensei_core::spec::{BundleSpec, ChartSource, ImageSource, Platform};
use serde::Serialize;

use crate::chart::{self, CHART_CONFIG_MEDIA_TYPE, CHART_CONTENT_MEDIA_TYPE, PackagedChart};
use crate::error::{BundleError, InputError};
use crate::layout::Layout;

/// Nesting allowed for indexes of indexes.
const MAX_INDEX_DEPTH: u32 = 4;

/// Where a blob sits in the archive: children before parents, so one pass can load it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BlobKind {
    Layer,
    Config,
    Manifest,
    /// An index; the number is its nesting height (1 = lists manifests only).
    Index(u32),
}

/// Where a planned blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobData {
    /// A file whose contents must hash to the digest (checked while the archive is written).
    File(PathBuf),
    /// Bytes produced or already checked while planning (manifests, configs, charts).
    Bytes(Arc<[u8]>),
}

#[derive(Debug, Clone)]
pub struct PlannedBlob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub kind: BlobKind,
    pub data: BlobData,
    /// The first image or chart that needs it, for error messages.
    pub needed_by: String,
}

/// A fully resolved bundle, ready to write.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub version: semver::Version,
    pub created: jiff::Timestamp,
    pub expires: Option<jiff::Timestamp>,
    pub compat: CompatRule,
    pub images: Vec<ImageEntry>,
    pub charts: Vec<ChartEntry>,
    /// Descriptors for the bundle's `index.json`, one per image and chart.
    pub index: Vec<Descriptor>,
    pub blobs: BTreeMap<Digest, PlannedBlob>,
}

/// What the command line adds to the spec.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub version: Option<semver::Version>,
    /// Overrides the spec's `platforms` when not empty.
    pub platforms: Vec<Platform>,
    pub created: Option<jiff::Timestamp>,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.blobs.values().map(|b| b.size).sum()
    }

    /// Blobs in archive order: layers, configs, manifests, then indexes by height; by digest within each.
    pub fn ordered_blobs(&self) -> Vec<&PlannedBlob> {
        let mut v: Vec<&PlannedBlob> = self.blobs.values().collect();
        v.sort_by_key(|b| (b.kind, b.digest));
        v
    }

    fn add_blob(&mut self, blob: PlannedBlob) {
        self.blobs
            .entry(blob.digest)
            .and_modify(|b| b.kind = b.kind.min(blob.kind))
            .or_insert(blob);
    }
}

/// Builds the plan for a spec. `created` defaults to now.
pub fn plan(spec: &BundleSpec, spec_path: &Path, opts: &PlanOptions) -> Result<Plan, BundleError> {
    let version = opts
        .version
        .clone()
        .or_else(|| spec.version.clone())
        .ok_or_else(|| InputError::NoVersion {
            spec: spec_path.to_owned(),
        })?;
    let created = opts.created.unwrap_or_else(jiff::Timestamp::now);
    let created = jiff::Timestamp::from_second(created.as_second())
        .map_err(|e| InputError::Other(e.to_string()))?;
    let platforms = if opts.platforms.is_empty() {
        spec.platforms.clone()
    } else {
        opts.platforms.clone()
    };
    let mut plan = Plan {
        name: spec.name.clone(),
        compat: spec.compat_rule_for(&version),
        version,
        created,
        expires: spec.expires.as_ref().map(|e| e.resolve(created)),
        images: vec![],
        charts: vec![],
        index: vec![],
        blobs: BTreeMap::new(),
    };
    for chart in &spec.charts {
        plan_chart(&mut plan, chart)?;
    }
    let mut layouts: BTreeMap<PathBuf, Layout> = BTreeMap::new();
    for image in &spec.images {
        match image {
            ImageSource::Layout {
                reference,
                layout,
                layout_ref,
            } => {
                if !layouts.contains_key(layout) {
                    layouts.insert(layout.clone(), Layout::open(layout)?);
                }
                let layout = &layouts[layout];
                let desc = layout.find(layout_ref.as_deref(), reference)?;
                let walker = Walker {
                    layout,
                    reference,
                    platforms: &platforms,
                };
                let resolved = walker.resolve(&mut plan, &desc, 0)?;
                plan.images.push(ImageEntry {
                    reference: reference.clone(),
                    digest: resolved.digest,
                    media_type: resolved.media_type.clone(),
                    size: resolved.size,
                    platforms: resolved.platforms.iter().map(ToString::to_string).collect(),
                    filtered_from: resolved.filtered_from,
                    source: Some(format!(
                        "oci-layout:{}:{}",
                        layout.dir().display(),
                        layout_ref.as_deref().unwrap_or("")
                    )),
                });
                plan.index.push(index_descriptor(
                    &resolved.media_type,
                    resolved.digest,
                    resolved.size,
                    reference,
                ));
            }
            ImageSource::Registry { reference } => {
                return Err(InputError::Image {
                    reference: reference.clone(),
                    message: "pulling from registries is not in this build yet; give `layout:` (a local OCI layout, e.g. from `skopeo copy docker://REF oci:DIR:NAME`)".into(),
                }
                .into());
            }
        }
    }
    plan.images.sort_by(|a, b| a.reference.cmp(&b.reference));
    plan.charts.sort_by(|a, b| a.reference.cmp(&b.reference));
    plan.index.sort_by(|a, b| a.ref_name().cmp(&b.ref_name()));
    Ok(plan)
}

fn index_descriptor(media_type: &str, digest: Digest, size: u64, reference: &str) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size,
        platform: None,
        annotations: [(REF_NAME_ANNOTATION.to_owned(), reference.to_owned())].into(),
        artifact_type: None,
    }
}

fn plan_chart(plan: &mut Plan, source: &ChartSource) -> Result<(), BundleError> {
    let (packaged, origin): (PackagedChart, String) = match source {
        ChartSource::Path { path, .. } => {
            let packaged = if path.is_dir() {
                chart::package_dir(path, plan.created.as_second().max(0) as u64)
                    .map_err(InputError::from)?
            } else {
                chart::read_tgz(path).map_err(InputError::from)?
            };
            (packaged, path.display().to_string())
        }
        ChartSource::Repo { repo, name, .. } => {
            return Err(InputError::Other(format!(
                "chart {name} from {repo}: Helm repositories are not in this build yet; give `path:` to a chart directory or .tgz"
            ))
            .into());
        }
        ChartSource::Oci { oci, .. } => {
            return Err(InputError::Other(format!(
                "chart {oci}: OCI chart sources are not in this build yet; give `path:` to a chart directory or .tgz"
            ))
            .into());
        }
    };
    add_chart(plan, packaged, origin)
}

/// Stores a packaged chart as a Helm OCI artifact (config + content + manifest).
pub fn add_chart(plan: &mut Plan, chart: PackagedChart, origin: String) -> Result<(), BundleError> {
    let reference = ChartEntry::reference_for(&chart.name, &chart.version);
    if plan.charts.iter().any(|c| c.reference == reference) {
        return Err(InputError::Other(format!(
            "chart {} {} is listed twice in the spec",
            chart.name, chart.version
        ))
        .into());
    }
    let config = blob_bytes(
        chart.config_json,
        CHART_CONFIG_MEDIA_TYPE,
        BlobKind::Config,
        &reference,
    );
    let content = blob_bytes(
        chart.content_tgz,
        CHART_CONTENT_MEDIA_TYPE,
        BlobKind::Layer,
        &reference,
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": CHART_CONFIG_MEDIA_TYPE, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": CHART_CONTENT_MEDIA_TYPE, "digest": content.digest, "size": content.size}],
        "annotations": {
            "org.opencontainers.image.title": chart.name,
            "org.opencontainers.image.version": chart.version.to_string(),
        },
    });
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| InputError::Other(e.to_string()))?;
    let manifest = blob_bytes(
        manifest_bytes,
        oci::OCI_MANIFEST,
        BlobKind::Manifest,
        &reference,
    );
    plan.index.push(index_descriptor(
        oci::OCI_MANIFEST,
        manifest.digest,
        manifest.size,
        &reference,
    ));
    plan.charts.push(ChartEntry {
        name: chart.name,
        version: chart.version,
        reference,
        digest: manifest.digest,
        source: Some(origin),
    });
    for b in [config, content, manifest] {
        plan.add_blob(b);
    }
    Ok(())
}

fn blob_bytes(bytes: Vec<u8>, media_type: &str, kind: BlobKind, needed_by: &str) -> PlannedBlob {
    PlannedBlob {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        media_type: media_type.to_owned(),
        kind,
        data: BlobData::Bytes(bytes.into()),
        needed_by: needed_by.to_owned(),
    }
}

struct Resolved {
    digest: Digest,
    size: u64,
    media_type: String,
    platforms: Vec<oci::Platform>,
    filtered_from: Option<Digest>,
    height: u32,
}

/// Walks one image in a layout: index → manifests → config and layers.
struct Walker<'a> {
    layout: &'a Layout,
    reference: &'a str,
    platforms: &'a [Platform],
}

fn platform_matches(filter: &Platform, p: &oci::Platform) -> bool {
    filter.os == p.os
        && filter.architecture == p.architecture
        && filter
            .variant
            .as_ref()
            .is_none_or(|v| p.variant.as_ref() == Some(v))
}

impl Walker<'_> {
    fn input_error(&self, message: String) -> BundleError {
        InputError::Image {
            reference: self.reference.to_owned(),
            message,
        }
        .into()
    }

    fn wanted(&self, p: Option<&oci::Platform>) -> bool {
        self.platforms.is_empty()
            || p.is_some_and(|p| self.platforms.iter().any(|f| platform_matches(f, p)))
    }

    fn resolve(
        &self,
        plan: &mut Plan,
        desc: &Descriptor,
        depth: u32,
    ) -> Result<Resolved, BundleError> {
        if oci::is_index(&desc.media_type) {
            self.resolve_index(plan, desc, depth)
        } else if oci::is_manifest(&desc.media_type) {
            self.resolve_manifest(plan, desc)
        } else {
            Err(self.input_error(format!(
                "unsupported media type {:?} for {}",
                desc.media_type, desc.digest
            )))
        }
    }

    fn resolve_index(
        &self,
        plan: &mut Plan,
        desc: &Descriptor,
        depth: u32,
    ) -> Result<Resolved, BundleError> {
        if depth >= MAX_INDEX_DEPTH {
            return Err(
                self.input_error(format!("indexes nest deeper than {MAX_INDEX_DEPTH} levels"))
            );
        }
        let bytes = self.layout.read_small(desc, self.reference)?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| self.input_error(format!("index {} is not valid: {e}", desc.digest)))?;
        let kept: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|d| oci::is_index(&d.media_type) || self.wanted(d.platform.as_ref()))
            .collect();
        if kept.is_empty() {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect();
            let want: Vec<String> = self.platforms.iter().map(ToString::to_string).collect();
            return Err(self.input_error(format!(
                "has no manifest for {} (it has: {}); change `platforms:` or --platform",
                want.join(", "),
                have.join(", ")
            )));
        }
        let mut platforms = vec![];
        let mut height = 1;
        for child in &kept {
            let r = self.resolve(plan, child, depth + 1)?;
            height = height.max(r.height + 1);
            match &child.platform {
                Some(p) if p.os != "unknown" => platforms.push(p.clone()),
                Some(_) => {}
                None => platforms.extend(r.platforms),
            }
        }
        let (bytes, filtered_from) = if kept.len() == index.manifests.len() {
            // Every platform kept: the original bytes, so the digest stays the publisher's.
            (bytes, None)
        } else {
            let mut value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| self.input_error(format!("index {}: {e}", desc.digest)))?;
            let originals = value
                .get("manifests")
                .and_then(|m| m.as_array())
                .cloned()
                .unwrap_or_default();
            let kept_digests: Vec<String> = kept.iter().map(|d| d.digest.to_string()).collect();
            let filtered: Vec<serde_json::Value> = originals
                .into_iter()
                .filter(|m| {
                    m.get("digest")
                        .and_then(|d| d.as_str())
                        .is_some_and(|d| kept_digests.iter().any(|k| k == d))
                })
                .collect();
            value["manifests"] = serde_json::Value::Array(filtered);
            (
                serde_json::to_vec(&value).map_err(|e| self.input_error(e.to_string()))?,
                Some(desc.digest),
            )
        };
        let digest = Digest::of(&bytes);
        let size = bytes.len() as u64;
        plan.add_blob(PlannedBlob {
            digest,
            size,
            media_type: desc.media_type.clone(),
            kind: BlobKind::Index(height),
            data: BlobData::Bytes(bytes.into()),
            needed_by: self.reference.to_owned(),
        });
        platforms.sort_by_key(ToString::to_string);
        platforms.dedup();
        Ok(Resolved {
            digest,
            size,
            media_type: desc.media_type.clone(),
            platforms,
            filtered_from,
            height,
        })
    }

    fn resolve_manifest(
        &self,
        plan: &mut Plan,
        desc: &Descriptor,
    ) -> Result<Resolved, BundleError> {
        let bytes = self.layout.read_small(desc, self.reference)?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| self.input_error(format!("manifest {} is not valid: {e}", desc.digest)))?;
        let config_bytes = self.layout.read_small(&manifest.config, self.reference)?;
        // Artifacts (charts, signatures) have configs without a platform; that's fine.
        let platform = serde_json::from_slice::<ConfigPlatform>(&config_bytes)
            .ok()
            .filter(|c| !c.os.is_empty() && !c.architecture.is_empty())
            .map(|c| c.to_platform());
        if desc.platform.is_none() && !self.platforms.is_empty() && !self.wanted(platform.as_ref())
        {
            let have = platform
                .as_ref()
                .map_or("an unknown platform".to_owned(), ToString::to_string);
            return Err(self.input_error(format!(
                "is a single-platform image for {have}, which the platform filter excludes"
            )));
        }
        for layer in &manifest.layers {
            let path = self.layout.blob_path(&layer.digest);
            let meta = std::fs::metadata(&path).map_err(|e| InputError::Layout {
                dir: self.layout.dir().to_owned(),
                message: format!(
                    "layer {} of {} is missing ({e}); the layout is incomplete",
                    layer.digest, self.reference
                ),
            })?;
            if meta.len() != layer.size {
                return Err(crate::error::IntegrityError {
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
            plan.add_blob(PlannedBlob {
                digest: layer.digest,
                size: layer.size,
                media_type: layer.media_type.clone(),
                kind: BlobKind::Layer,
                data: BlobData::File(path),
                needed_by: self.reference.to_owned(),
            });
        }
        plan.add_blob(PlannedBlob {
            digest: manifest.config.digest,
            size: manifest.config.size,
            media_type: manifest.config.media_type.clone(),
            kind: BlobKind::Config,
            data: BlobData::Bytes(config_bytes.into()),
            needed_by: self.reference.to_owned(),
        });
        plan.add_blob(PlannedBlob {
            digest: desc.digest,
            size: desc.size,
            media_type: desc.media_type.clone(),
            kind: BlobKind::Manifest,
            data: BlobData::Bytes(bytes.into()),
            needed_by: self.reference.to_owned(),
        });
        Ok(Resolved {
            digest: desc.digest,
            size: desc.size,
            media_type: desc.media_type.clone(),
            platforms: platform.into_iter().collect(),
            filtered_from: None,
            height: 0,
        })
    }
}

/// A summary of the plan for `--dry-run` and `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary<'a> {
    pub name: &'a str,
    pub version: String,
    pub created: String,
    pub expires: Option<String>,
    pub upgrade_from: &'a str,
    pub images: &'a [ImageEntry],
    pub charts: &'a [ChartEntry],
    pub blobs: usize,
    pub bytes: u64,
}

impl Plan {
    pub fn summary(&self) -> PlanSummary<'_> {
        PlanSummary {
            name: &self.name,
            version: self.version.to_string(),
            created: format_time(self.created),
            expires: self.expires.map(format_time),
            upgrade_from: self.compat.as_str(),
            images: &self.images,
            charts: &self.charts,
            blobs: self.blobs.len(),
            bytes: self.total_bytes(),
        }
    }
}
