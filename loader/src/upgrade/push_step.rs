//! The seam between `upgrade` and `push`: upgrade hands over a verified bundle and the mapping
//! plan, and gets back where everything landed. [`DryRun`] computes the answer without touching
//! a registry; the real push implements [`PushStep`] in `crate::push`.

use std::path::{Path, PathBuf};

use sensei_core::progress::Reporter;
use sensei_core::verify::Verified;
use serde::Serialize;

use super::error::{Fault, PushFailure};
use crate::mapping::{MappedChart, MappedImage, Plan};

/// How to reach the target registry (the push flags `upgrade` accepts and forwards).
#[derive(Clone, Default)]
pub struct PushOptions {
    /// A PEM bundle of CAs to trust for the registry's TLS certificate (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Talk HTTP, not HTTPS, to the registry (`--plain-http`).
    pub plain_http: bool,
    /// `--username`, with the password read from stdin by the binary (`--password-stdin`).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Parallel uploads (`--concurrency`); `None` for the push's default.
    pub concurrency: Option<usize>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("ca_file", &self.ca_file)
            .field("plain_http", &self.plain_http)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// What upgrade hands the push step. The bundle has verified (`verified`) moments ago; a push
/// that streams from it must still check every byte it sends against `verified.manifest`, as the
/// file may change after verification.
pub struct PushRequest<'a> {
    /// The archive (`.tar`, `.tar.gz`) or the directory it was extracted into.
    pub bundle: &'a Path,
    pub verified: &'a Verified,
    /// Every image and chart with its target reference (`crate::mapping::plan`).
    pub plan: &'a Plan,
    pub options: &'a PushOptions,
    pub reporter: &'a dyn Reporter,
}

impl std::fmt::Debug for PushRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRequest")
            .field("bundle", &self.bundle)
            .field("bundle_name", &self.verified.manifest.name)
            .field("plan", &self.plan)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Where everything landed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushOutcome {
    /// False for a dry run: the references are where things *would* go.
    pub pushed: bool,
    pub images: Vec<MappedImage>,
    /// Charts as pushed: `REGISTRY[/PREFIX]/charts/NAME:VERSION`.
    pub charts: Vec<MappedChart>,
    /// Blobs and bytes actually uploaded (absent for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs_uploaded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_uploaded: Option<u64>,
}

impl PushOutcome {
    /// The mapping alone, nothing sent.
    pub fn planned(plan: &Plan) -> Self {
        Self {
            pushed: false,
            images: plan.images.clone(),
            charts: plan.charts.clone(),
            blobs_uploaded: None,
            bytes_uploaded: None,
        }
    }
}

/// Pushes a verified bundle's images and charts to the target registry.
pub trait PushStep {
    fn push(&self, request: &PushRequest<'_>) -> Result<PushOutcome, PushFailure>;
}

/// `--dry-run`: where everything would go, without a connection to the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRun;

impl PushStep for DryRun {
    fn push(&self, request: &PushRequest<'_>) -> Result<PushOutcome, PushFailure> {
        Ok(PushOutcome::planned(request.plan))
    }
}

/// Stands in where no push is built in: refuses with a message saying to use `--dry-run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unavailable;

impl PushStep for Unavailable {
    fn push(&self, request: &PushRequest<'_>) -> Result<PushOutcome, PushFailure> {
        Err(PushFailure {
            fault: Fault::Outside,
            registry: request.plan.registry.to_string(),
            source: "this sensei-loader cannot push yet; run `upgrade --dry-run` to check \
                     everything up to the push"
                .into(),
        })
    }
}
