//! Spec + flags → a validated plan: every image and chart resolved to a digest, every blob known
//! by digest, size, kind and where its bytes come from. Nothing is written while planning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use sensei_core::compat::CompatRule;
use sensei_core::content::{ContentGraph, HELM_CHART_CONTENT, HELM_CONFIG};
use sensei_core::digest::Digest;
use sensei_core::manifest::{ChartEntry, ImageEntry};
use sensei_core::oci::{self, Descriptor, REF_NAME_ANNOTATION};
use sensei_core::spec::{BundleSpec, ChartSource, ImageRef, ImageSource, Platform, SpecError};
use sensei_core::time::BundleTime;
use sensei_registry::Registry;
use serde::Serialize;

use crate::blob::{BlobData, Blobs, Held, PlannedBlob, add_blob};
use crate::chart::{self, PackagedChart};
use crate::error::{BundleError, InputError};
use crate::layout::{Layout, LayoutImage};
use crate::remote::{self, RegistryImage};
use crate::walk::Walker;

/// A fully resolved bundle, ready to write.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub version: semver::Version,
    pub created: BundleTime,
    pub expires: Option<BundleTime>,
    pub compat: CompatRule,
    pub images: Vec<ImageEntry>,
    pub charts: Vec<ChartEntry>,
    /// Descriptors for the bundle's `index.json`, one per image and chart.
    pub index: Vec<Descriptor>,
    pub blobs: Blobs,
    /// What each blob is to the images and charts, and so the order they are written in
    /// (`sensei_core::content`): built from `blobs` once every image and chart is in.
    pub content: ContentGraph,
    /// Each image's own bytes (all its blobs, shared ones counted in every image), by reference.
    pub image_bytes: BTreeMap<String, u64>,
}

/// What the command line adds to the spec.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub version: Option<semver::Version>,
    /// Overrides the spec's `platforms` when not empty.
    pub platforms: Vec<Platform>,
    /// `SOURCE_DATE_EPOCH`, already a time `bundle.json` can hold; else now.
    pub created: Option<BundleTime>,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.blobs.values().map(|b| b.size).sum()
    }

    fn add_blob(&mut self, blob: PlannedBlob) {
        add_blob(&mut self.blobs, blob);
    }

    /// Blobs still to fetch from registries.
    pub fn remote_blobs(&self) -> usize {
        self.blobs
            .values()
            .filter(|b| matches!(b.data, BlobData::Remote(_)))
            .count()
    }

    /// Bytes still to fetch from registries.
    pub fn remote_bytes(&self) -> u64 {
        self.blobs
            .values()
            .filter(|b| matches!(b.data, BlobData::Remote(_)))
            .map(|b| b.size)
            .sum()
    }
}

/// What planning needs from the outside world.
#[derive(Debug)]
pub struct PlanEnv<'a> {
    /// For registries and Helm HTTP repositories alike.
    pub registry: &'a Registry,
    /// `helm`, for image discovery; found lazily when a spec asks for discovery.
    pub helm: Option<&'a Path>,
    /// Registry requests in flight at once.
    pub concurrency: usize,
}

/// An image to resolve, wherever its bytes are.
struct Wanted {
    reference: String,
    source: ImageSource,
    /// Set for images found by discovery: which chart, and how.
    found_by: Option<String>,
}

/// Builds the plan for a spec: charts fetched and packaged, images found by discovery added,
/// every image resolved to a digest (registry images in parallel). `created` defaults to now.
pub async fn plan(
    spec: &BundleSpec,
    spec_path: &Path,
    opts: &PlanOptions,
    env: &PlanEnv<'_>,
) -> Result<Plan, BundleError> {
    let version = opts
        .version
        .clone()
        .or_else(|| spec.version.clone())
        .ok_or_else(|| InputError::NoVersion {
            spec: spec_path.to_owned(),
        })?;
    // Only times bundle.json can hold (FORMAT.md §4.2): a clock before 1970 is refused here.
    let created = match opts.created {
        Some(created) => created,
        None => BundleTime::from_timestamp(jiff::Timestamp::now()).map_err(|e| {
            InputError::Other(format!(
                "the clock reads a time a bundle cannot hold ({e}): set the clock, or set \
                 SOURCE_DATE_EPOCH"
            ))
        })?,
    };
    let expires = spec
        .expires
        .as_ref()
        .map(|e| e.resolve(created))
        .transpose()
        .map_err(|message| SpecError::Invalid {
            path: spec_path.to_owned(),
            key: "expires".into(),
            message,
        })
        .map_err(InputError::from)?;
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
        expires,
        images: vec![],
        charts: vec![],
        index: vec![],
        blobs: Blobs::new(),
        content: ContentGraph::default(),
        image_bytes: BTreeMap::new(),
    };
    let mut wanted: Vec<Wanted> = spec
        .images
        .iter()
        .map(|source| Wanted {
            reference: source.reference().to_owned(),
            source: source.clone(),
            found_by: None,
        })
        .collect();
    let mut helm: Option<PathBuf> = None;
    for source in &spec.charts {
        let (packaged, origin) = fetch_chart(source, created, env).await?;
        if spec.discover_images {
            let helm = match &helm {
                Some(h) => h.clone(),
                None => helm
                    .insert(crate::discover::find_helm(env.helm).map_err(discover_error)?)
                    .clone(),
            };
            discover_into(&mut wanted, &helm, &packaged, source.values()).await?;
        }
        add_chart(&mut plan, packaged, origin)?;
    }
    let layouts = open_layouts(&wanted)?;
    let resolved: Vec<(ImageEntry, Descriptor, Blobs)> = futures_util::stream::iter(&wanted)
        .map(|w| resolve_image(w, &layouts, &platforms, spec, env))
        .buffer_unordered(env.concurrency.max(1))
        .try_collect()
        .await?;
    for (entry, desc, blobs) in resolved {
        plan.image_bytes.insert(
            entry.reference.clone(),
            blobs.values().map(|b| b.size).sum(),
        );
        plan.images.push(entry);
        plan.index.push(desc);
        for blob in blobs.into_values() {
            plan.add_blob(blob);
        }
    }
    plan.images.sort_by(|a, b| a.reference.cmp(&b.reference));
    plan.charts.sort_by(|a, b| a.reference.cmp(&b.reference));
    plan.index.sort_by(|a, b| a.ref_name().cmp(&b.ref_name()));
    plan.content = content_of(&plan)?;
    Ok(plan)
}

/// The content graph of a plan, walked from its `index.json` like a loader walks the bundle.
/// Every blob planned must be reached, or it would not be written: a mismatch is our bug.
fn content_of(plan: &Plan) -> Result<ContentGraph, BundleError> {
    let internal = |e: String| InputError::Other(format!("internal error: the plan {e}"));
    let tops = plan.index.iter().map(|d| (d.digest, d.media_type.as_str()));
    let content = ContentGraph::build(tops, &Held(&plan.blobs))
        .map_err(|e| internal(format!("does not add up: {e}")))?;
    if content.len() != plan.blobs.len() {
        return Err(internal(format!(
            "holds {} blobs, but its images and charts reach {}",
            plan.blobs.len(),
            content.len()
        ))
        .into());
    }
    Ok(content)
}

fn discover_error(e: crate::discover::DiscoverError) -> BundleError {
    if e.is_input() {
        InputError::Other(e.to_string()).into()
    } else {
        BundleError::Outside(e.to_string())
    }
}

/// Renders a chart and adds the images it uses that the spec does not already list.
async fn discover_into(
    wanted: &mut Vec<Wanted>,
    helm: &Path,
    chart: &PackagedChart,
    values: Option<&serde_json::Value>,
) -> Result<(), BundleError> {
    let (helm, chart_owned, values) = (helm.to_owned(), chart.clone(), values.cloned());
    let found = tokio::task::spawn_blocking(move || {
        crate::discover::discover_images(&helm, &chart_owned, values.as_ref())
    })
    .await
    .map_err(|e| BundleError::Outside(e.to_string()))?
    .map_err(discover_error)?;
    let label = format!("chart {} {}", chart.name, chart.version);
    for (image, how) in found
        .rendered
        .iter()
        .map(|i| (i, "renders it"))
        .chain(found.declared.iter().map(|i| (i, "declares it")))
    {
        let canonical = ImageRef::parse(image).map_err(|e| InputError::Image {
            reference: image.clone(),
            message: format!("{label} {how}, but it is not a valid reference: {e}"),
        })?;
        let already = wanted
            .iter()
            .any(|w| ImageRef::parse(&w.reference).is_ok_and(|r| r == canonical));
        if !already {
            wanted.push(Wanted {
                reference: image.clone(),
                source: ImageSource::Registry {
                    reference: image.clone(),
                },
                found_by: Some(format!("{label} {how}")),
            });
        }
    }
    Ok(())
}

fn open_layouts(wanted: &[Wanted]) -> Result<BTreeMap<PathBuf, Layout>, BundleError> {
    let mut layouts = BTreeMap::new();
    for w in wanted {
        if let ImageSource::Layout { layout, .. } = &w.source
            && !layouts.contains_key(layout)
        {
            layouts.insert(layout.clone(), Layout::open(layout)?);
        }
    }
    Ok(layouts)
}

/// Resolves one image to its entry in bundle.json, its descriptor in index.json and its blobs.
async fn resolve_image(
    w: &Wanted,
    layouts: &BTreeMap<PathBuf, Layout>,
    platforms: &[Platform],
    spec: &BundleSpec,
    env: &PlanEnv<'_>,
) -> Result<(ImageEntry, Descriptor, Blobs), BundleError> {
    let reference = w.reference.as_str();
    let mut blobs = Blobs::new();
    let (resolved, source) = match &w.source {
        ImageSource::Layout {
            layout, layout_ref, ..
        } => {
            let layout = &layouts[layout];
            let desc = layout.find(layout_ref.as_deref(), reference)?;
            let image = LayoutImage { layout, reference };
            let walker = Walker {
                source: &image,
                reference,
                platforms,
            };
            let resolved = walker.resolve(&mut blobs, &desc, 0).await?;
            let source = format!(
                "oci-layout:{}:{}",
                layout.dir().display(),
                layout_ref.as_deref().unwrap_or("")
            );
            (resolved, source)
        }
        ImageSource::Registry { .. } => {
            let name = ImageRef::parse(reference).map_err(|message| InputError::Image {
                reference: reference.to_owned(),
                message,
            })?;
            let repo = remote::pull_repo(&name, &spec.mirrors);
            let top = remote::resolve_top(env.registry, &repo, &name).await?;
            let desc = remote::top_descriptor(&top);
            let image = RegistryImage {
                registry: env.registry,
                repo: repo.clone(),
                reference,
                top,
            };
            let walker = Walker {
                source: &image,
                reference,
                platforms,
            };
            let resolved = walker.resolve(&mut blobs, &desc, 0).await?;
            let mut source = format!("docker://{repo}");
            if let Some(by) = &w.found_by {
                source = format!("{source} ({by})");
            }
            (resolved, source)
        }
    };
    let entry = ImageEntry {
        reference: reference.to_owned(),
        digest: resolved.digest,
        media_type: resolved.media_type.clone(),
        size: resolved.size,
        platforms: resolved.platforms.iter().map(ToString::to_string).collect(),
        filtered_from: resolved.filtered_from,
        source: Some(source),
    };
    let desc = index_descriptor(
        &resolved.media_type,
        resolved.digest,
        resolved.size,
        reference,
    );
    Ok((entry, desc, blobs))
}

/// A chart from wherever the spec says, packaged, with where it came from.
async fn fetch_chart(
    source: &ChartSource,
    created: BundleTime,
    env: &PlanEnv<'_>,
) -> Result<(PackagedChart, String), BundleError> {
    match source {
        ChartSource::Path { path, .. } => {
            let packaged = if path.is_dir() {
                chart::package_dir(path, created.as_second().max(0) as u64)
                    .map_err(InputError::from)?
            } else {
                chart::read_tgz(path).map_err(InputError::from)?
            };
            Ok((packaged, path.display().to_string()))
        }
        ChartSource::Repo {
            repo,
            name,
            version,
            ..
        } => {
            let bad =
                |message: String| InputError::Other(format!("chart {name} from {repo}: {message}"));
            let url = url::Url::parse(repo).map_err(|e| bad(format!("not a URL: {e}")))?;
            let version = semver::Version::parse(version)
                .map_err(|e| bad(format!("version {version:?} is not SemVer: {e}")))?;
            let fetched = chart::repo::fetch_repo_chart(env.registry, &url, name, &version)
                .await
                .map_err(BundleError::from)?;
            let origin = match fetched.index_digest {
                Some(_) => fetched.url,
                // Said in bundle.json and the plan: nothing vouched for these bytes but TLS.
                None => format!(
                    "{} (the repository index gives no digest: unchecked)",
                    fetched.url
                ),
            };
            Ok((fetched.chart, origin))
        }
        ChartSource::Oci { oci, version, .. } => {
            let chart = remote::fetch_oci_chart(env.registry, oci, version).await?;
            Ok((chart, format!("{oci}:{version}")))
        }
    }
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
    let config = blob_bytes(chart.config_json, HELM_CONFIG, false, &reference);
    let content = blob_bytes(chart.content_tgz, HELM_CHART_CONTENT, false, &reference);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": HELM_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": HELM_CHART_CONTENT, "digest": content.digest, "size": content.size}],
        "annotations": {
            "org.opencontainers.image.title": chart.name,
            "org.opencontainers.image.version": chart.version.to_string(),
        },
    });
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| InputError::Other(e.to_string()))?;
    let manifest = blob_bytes(manifest_bytes, oci::OCI_MANIFEST, true, &reference);
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

fn blob_bytes(bytes: Vec<u8>, media_type: &str, is_manifest: bool, needed_by: &str) -> PlannedBlob {
    PlannedBlob {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        media_type: media_type.to_owned(),
        is_manifest,
        data: BlobData::Bytes(bytes.into()),
        needed_by: needed_by.to_owned(),
    }
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
    /// Each image's bytes, by reference.
    pub image_bytes: &'a BTreeMap<String, u64>,
    pub charts: &'a [ChartEntry],
    pub blobs: usize,
    pub bytes: u64,
    /// What `create` would download (layers; manifests and configs are already read).
    pub fetch_blobs: usize,
    pub fetch_bytes: u64,
}

impl Plan {
    pub fn summary(&self) -> PlanSummary<'_> {
        PlanSummary {
            name: &self.name,
            version: self.version.to_string(),
            created: self.created.to_string(),
            expires: self.expires.map(|e| e.to_string()),
            upgrade_from: self.compat.as_str(),
            images: &self.images,
            image_bytes: &self.image_bytes,
            charts: &self.charts,
            blobs: self.blobs.len(),
            bytes: self.total_bytes(),
            fetch_blobs: self.remote_blobs(),
            fetch_bytes: self.remote_bytes(),
        }
    }
}
