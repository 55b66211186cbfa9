//! The chart `.tgz` straight from a verified bundle, so `upgrade --dry-run` needs no registry.
//!
//! A chart is an OCI artifact in the bundle: a manifest whose one layer of media type
//! `application/vnd.cncf.helm.chart.content.v1.tar+gzip` is the packaged chart. Blobs are stored
//! children first, so the layer comes before the manifest that names it. Hence two steps:
//! [`ChartManifests`] keeps the chart manifests as the verifier streams past them (their digests
//! come from a pre-read of `bundle.json`; what is kept is checked against the verified one), then
//! [`extract`] reads the one layer again (from the extracted directory, or a second pass over
//! the archive that stops at it) and checks its sha256 before writing it out.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use sensei_core::archive::{TarReader, open_stream};
use sensei_core::content::HELM_CHART_CONTENT;
use sensei_core::digest::Digest;
use sensei_core::manifest::{BundleManifest, ChartEntry, FileEntry};
use sensei_core::oci::{MAX_MANIFEST_BYTES, Manifest};
use sensei_core::verify::{Verified, Visitor, read_head};

use super::error::UpgradeError;
use crate::error::LoaderError;

/// Largest packaged chart extracted (Helm itself refuses charts that expand past 100 MiB).
const MAX_CHART_BYTES: u64 = 100 * 1024 * 1024;

/// Keeps the bytes of the charts' OCI manifests while the verifier streams the bundle.
#[derive(Debug, Default)]
pub struct ChartManifests {
    wanted: HashSet<String>,
    current: Option<(String, Vec<u8>)>,
    found: HashMap<String, Vec<u8>>,
}

impl ChartManifests {
    /// Learns which blobs are chart manifests from an unverified read of `bundle.json`. Any
    /// failure here is left for the verifier to report: then nothing is wanted.
    pub fn for_bundle(bundle: &Path) -> Self {
        let wanted = read_head(bundle)
            .ok()
            .and_then(|h| BundleManifest::from_slice(&h.manifest_bytes).ok())
            .map(|m| m.charts.iter().map(|c| c.digest.blob_path()).collect())
            .unwrap_or_default();
        Self {
            wanted,
            ..Self::default()
        }
    }
}

impl Visitor for ChartManifests {
    fn file_start(&mut self, entry: &FileEntry) {
        self.current = (self.wanted.contains(&entry.path) && entry.size <= MAX_MANIFEST_BYTES)
            .then(|| (entry.path.clone(), Vec::new()));
    }

    fn file_chunk(&mut self, _entry: &FileEntry, chunk: &[u8]) {
        if let Some((_, bytes)) = &mut self.current {
            bytes.extend_from_slice(chunk);
        }
    }

    /// Called only once the file's size and sha256 matched `bundle.json`.
    fn file_end(&mut self, entry: &FileEntry) {
        if let Some((path, bytes)) = self.current.take()
            && path == entry.path
        {
            self.found.insert(path, bytes);
        }
    }
}

/// Writes `chart`'s packaged `.tgz` from the verified `bundle` into `dir` and returns its path.
pub fn extract(
    bundle: &Path,
    verified: &Verified,
    chart: &ChartEntry,
    manifests: &ChartManifests,
    dir: &Path,
) -> Result<PathBuf, UpgradeError> {
    let what = || format!("{} {}", chart.name, chart.version);
    let bytes = manifests
        .found
        .get(&chart.digest.blob_path())
        .filter(|b| Digest::of(b) == chart.digest)
        .ok_or_else(|| {
            changed(
                bundle,
                format!(
                    "the bundle changed while it was read (chart manifest {} of {} not seen); \
                     copy it again and re-run",
                    chart.digest,
                    what()
                ),
            )
        })?;
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
        UpgradeError::BadChart(format!("{}: its OCI manifest is not valid: {e}", what()))
    })?;
    let layers: Vec<_> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == HELM_CHART_CONTENT)
        .collect();
    let [layer] = layers.as_slice() else {
        return Err(UpgradeError::BadChart(format!(
            "{}: its OCI manifest has {} layers of type {HELM_CHART_CONTENT}; helm needs exactly one",
            what(),
            layers.len()
        )));
    };
    let path = layer.digest.blob_path();
    let listed = verified
        .manifest
        .files
        .iter()
        .find(|f| f.path == path && f.size == layer.size)
        .ok_or_else(|| {
            UpgradeError::BadChart(format!(
                "{}: its content layer {} ({} bytes) is not a file of the bundle",
                what(),
                layer.digest,
                layer.size
            ))
        })?;
    if listed.size > MAX_CHART_BYTES {
        return Err(UpgradeError::BadChart(format!(
            "{}: its package is {} bytes, over the {MAX_CHART_BYTES}-byte limit",
            what(),
            listed.size
        )));
    }
    let tgz = read_blob(bundle, listed).map_err(|e| {
        changed(
            bundle,
            format!("reading the chart {} from the bundle again: {e}", what()),
        )
    })?;
    if Digest::of(&tgz) != layer.digest {
        return Err(changed(
            bundle,
            format!(
                "the bundle changed after verification: blob {} no longer has its sha256",
                layer.digest
            ),
        ));
    }
    let out = dir.join(format!("{}-{}.tgz", chart.name, chart.version));
    std::fs::write(&out, &tgz).map_err(|source| LoaderError::Io {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

fn changed(bundle: &Path, message: String) -> UpgradeError {
    UpgradeError::BundleChanged {
        path: bundle.to_owned(),
        message,
    }
}

/// The bytes of one listed file, from a directory or by a forward pass over the archive.
fn read_blob(bundle: &Path, entry: &FileEntry) -> Result<Vec<u8>, String> {
    if bundle.is_dir() {
        let file = std::fs::File::open(bundle.join(&entry.path)).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        file.take(entry.size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        return Ok(bytes);
    }
    let file = std::fs::File::open(bundle).map_err(|e| e.to_string())?;
    let (stream, _) = open_stream(file).map_err(|e| e.to_string())?;
    let mut tar = TarReader::new(stream);
    while let Some(header) = tar.next_header().map_err(|e| e.to_string())? {
        if header.path == entry.path {
            if header.size != entry.size {
                return Err(format!("{} changed size", entry.path));
            }
            return tar.read_body_to_vec().map_err(|e| e.to_string());
        }
    }
    Err(format!("{} is no longer in the archive", entry.path))
}
