//! What a push did (or, with `--dry-run`, would do): as one JSON document, or as text.

use std::fmt::Write as _;

use serde::Serialize;

use super::upload::Counts;
use crate::mapping::{MappedChart, MappedImage};
use crate::render::human_bytes;

/// The result of `push` (and of `push --dry-run`, with `dry_run` set and nothing counted).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    /// True when nothing was sent.
    pub dry_run: bool,
    /// The registry already held every tag at its signed digest: nothing was sent, and the
    /// archive's layers were not read (only bundle.json, index.json and the manifests, each
    /// checked against the signed listing).
    pub up_to_date: bool,
    /// The bundle as given (archive or directory).
    pub bundle: String,
    pub name: String,
    pub version: String,
    pub trusted_signers: usize,
    /// `HOST[:PORT][/PREFIX]`: the value for `--set global.imageRegistry=`.
    pub registry: String,
    /// Every image: its reference in the bundle, its target reference, its digest (preserved).
    pub images: Vec<MappedImage>,
    /// Every chart: `REGISTRY[/PREFIX]/charts/NAME:VERSION`.
    pub charts: Vec<MappedChart>,
    /// `helm pull` (or `helm upgrade`) URL of each chart: `oci://REGISTRY[/PREFIX]/charts/NAME`.
    pub chart_urls: Vec<String>,
    /// Unique blobs in the bundle's images and charts, and their bytes.
    pub blobs: usize,
    pub blob_bytes: u64,
    /// What was sent and what was already there (all zero for a dry run).
    pub counts: Counts,
    /// Seconds spent verifying (when this push verified the bundle itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_seconds: Option<f64>,
    /// Seconds spent talking to the registry.
    pub push_seconds: f64,
}

/// The report as text: the mapping, then what was sent.
pub fn render(r: &PushReport) -> String {
    let mut s = String::new();
    if r.dry_run {
        let _ = writeln!(
            s,
            "DRY RUN  {} {} verified ({} trusted signature(s)); nothing was sent. It would push:",
            r.name, r.version, r.trusted_signers
        );
    } else if r.up_to_date {
        let _ = writeln!(
            s,
            "UP TO DATE  {} {} at {} ({} trusted signature(s)): every tag already names its signed digest; nothing was sent, and no layer of the archive was read (`sensei-loader verify` checks the whole file)",
            r.name, r.version, r.registry, r.trusted_signers
        );
    } else {
        let _ = writeln!(
            s,
            "PUSHED  {} {} to {} ({} trusted signature(s))",
            r.name, r.version, r.registry, r.trusted_signers
        );
    }
    for i in &r.images {
        let _ = writeln!(s, "  {} -> {}  {}", i.source, i.target, i.digest);
    }
    for c in &r.charts {
        let _ = writeln!(
            s,
            "  chart {} {} -> {}  {}",
            c.name, c.version, c.target, c.digest
        );
    }
    let c = &r.counts;
    if r.dry_run {
        let _ = writeln!(
            s,
            "{} blob(s), {} in all, are checked against the registry and sent where missing.",
            r.blobs,
            human_bytes(r.blob_bytes)
        );
    } else {
        let _ = writeln!(
            s,
            "blobs: {} uploaded, {} mounted, {} already there; manifests: {} pushed, {} already \
             there; tags: {} pushed, {} already there",
            c.blobs_uploaded,
            c.blobs_mounted,
            c.blobs_present,
            c.manifests_pushed,
            c.manifests_present,
            c.tags_pushed,
            c.tags_present
        );
        let verify = r
            .verify_seconds
            .map_or_else(String::new, |v| format!("verified in {v:.1} s, "));
        let _ = writeln!(
            s,
            "{} sent; {verify}pushed in {:.1} s",
            human_bytes(c.bytes_sent),
            r.push_seconds
        );
    }
    for url in &r.chart_urls {
        let _ = writeln!(
            s,
            "helm: {url} with --set global.imageRegistry={}",
            r.registry
        );
    }
    s
}
