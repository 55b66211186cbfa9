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
    /// `--plain-http`: helm needs it too.
    #[serde(skip)]
    pub plain_http: bool,
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
    // The operator's next step, ready to paste: the chart pinned by the digest the bundle
    // signed, so a tag moved since cannot change what is installed.
    for (url, chart) in r.chart_urls.iter().zip(&r.charts) {
        let _ = writeln!(
            s,
            "then: helm upgrade --install RELEASE {url}@{} --version {} --set global.imageRegistry={}{}",
            chart.digest,
            chart.version,
            r.registry,
            if r.plain_http { " --plain-http" } else { "" }
        );
    }
    if !r.charts.is_empty() {
        let _ = writeln!(
            s,
            "      (by digest: Helm 3.18 and later; older ones take {} without @sha256:...; \
             `sensei-loader upgrade` does all of it, checks the version first and prints the rollback)",
            if r.chart_urls.len() == 1 {
                "the URL"
            } else {
                "each URL"
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Registry;

    fn report(plain_http: bool) -> PushReport {
        let registry: Registry = "registry.internal:5000/mirror".parse().unwrap();
        let digest: sensei_core::digest::Digest =
            format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let chart = MappedChart {
            name: "sensei".into(),
            version: semver::Version::new(1, 2, 0),
            target: registry
                .map_chart("sensei", &semver::Version::new(1, 2, 0))
                .unwrap(),
            digest,
        };
        PushReport {
            dry_run: false,
            up_to_date: false,
            bundle: "b.tar".into(),
            name: "sensei".into(),
            version: "1.2.0".into(),
            trusted_signers: 1,
            registry: registry.base(),
            images: vec![],
            charts: vec![chart],
            chart_urls: vec![registry.chart_url("sensei")],
            plain_http,
            blobs: 0,
            blob_bytes: 0,
            counts: Counts::default(),
            verify_seconds: None,
            push_seconds: 0.0,
        }
    }

    #[test]
    fn the_text_ends_with_the_helm_command_pinned_by_digest() {
        let text = render(&report(false));
        let want = format!(
            "then: helm upgrade --install RELEASE oci://registry.internal:5000/mirror/charts/sensei@sha256:{} --version 1.2.0 --set global.imageRegistry=registry.internal:5000/mirror\n",
            "ab".repeat(32)
        );
        assert!(text.contains(&want), "{text}");
        assert!(text.contains("Helm 3.18"), "{text}");
        let plain = render(&report(true));
        assert!(
            plain.contains(
                "--set global.imageRegistry=registry.internal:5000/mirror --plain-http\n"
            ),
            "{plain}"
        );
    }
}
