//! The seam between `upgrade` and `push`: upgrade hands over a verified bundle and the mapping
//! plan, and gets back where everything landed. [`DryRun`] computes the answer without touching
//! a registry; the real push implements [`PushStep`] in `crate::push`.

use std::path::{Path, PathBuf};

use sensei_core::progress::Reporter;
use sensei_core::verify::Verified;
use serde::Serialize;

use super::error::{Fault, PushFailure};
use crate::mapping::{MappedChart, MappedImage, Plan};
use crate::push::Collected;

/// How to reach the target registry (the push flags `upgrade` accepts and forwards).
#[derive(Clone, Default)]
pub struct PushOptions {
    /// PEM files of CAs to trust for the registry's TLS certificate (`--ca-file`, repeatable).
    pub ca_files: Vec<PathBuf>,
    /// Talk HTTP, not HTTPS, to the registry (`--plain-http`).
    pub plain_http: bool,
    /// `--username`, with the password read from stdin by the binary (`--password-stdin`).
    pub username: Option<String>,
    pub password: Option<zeroize::Zeroizing<String>>,
    /// `--registry-config`: a Docker config.json with the registry's credentials, for push and
    /// for helm; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub registry_config: Option<PathBuf>,
    /// Parallel uploads (`--concurrency`); `None` for the push's default.
    pub concurrency: Option<usize>,
    /// Told of every retry of a registry request.
    pub on_retry: Option<crate::push::RetryNotice>,
    /// SIGINT, SIGTERM and SIGHUP as the binary watches them: the push stops on the first,
    /// helm is not started after it, and a helm already running is sent the same signal.
    pub interrupts: Option<sensei_cli::Interrupts>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("ca_files", &self.ca_files)
            .field("plain_http", &self.plain_http)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("registry_config", &self.registry_config)
            .field("concurrency", &self.concurrency)
            .field("on_retry", &self.on_retry)
            .field("interrupts", &self.interrupts)
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
    /// `index.json` and the manifests, kept by a [`crate::push::Collector`] in that
    /// verification.
    pub collected: &'a Collected,
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

/// The real push: streams the verified bundle to the registry with [`crate::push`], checking
/// every byte it sends again (the file may have changed since it verified).
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryPush;

impl PushStep for RegistryPush {
    fn push(&self, request: &PushRequest<'_>) -> Result<PushOutcome, PushFailure> {
        use crate::error::LoaderError;
        let registry = request.plan.registry.to_string();
        let failure = |e: LoaderError| PushFailure {
            fault: match &e {
                LoaderError::Rejected(_) => Fault::Rejected,
                e if e.is_input() => Fault::Input,
                _ => Fault::Outside,
            },
            registry: registry.clone(),
            source: Box::new(e),
        };
        let o = request.options;
        let mut opts = crate::push::PushOptions::new(
            request.plan.registry.clone(),
            crate::verify::TrustOptions::default(),
        );
        opts.ca_files = o.ca_files.clone();
        opts.plain_http = o.plain_http;
        opts.credentials = match (&o.username, &o.password) {
            (Some(username), Some(password)) => {
                crate::push::CredentialSource::Explicit(crate::push::Credentials {
                    username: username.clone(),
                    password: password.clone(),
                })
            }
            _ => crate::push::CredentialSource::docker_default(o.registry_config.as_deref()),
        };
        if let Some(n) = o.concurrency {
            opts.concurrency = n;
        }
        opts.on_retry = o.on_retry.clone();
        opts.stop = o
            .interrupts
            .as_ref()
            .map(sensei_cli::Interrupts::shared_flag);
        let report = crate::push::push_verified(
            request.bundle,
            request.verified,
            request.collected,
            &opts,
            request.reporter,
        )
        .map_err(failure)?;
        Ok(PushOutcome {
            pushed: true,
            images: report.images,
            charts: report.charts,
            blobs_uploaded: Some(report.counts.blobs_uploaded),
            bytes_uploaded: Some(report.counts.bytes_sent),
        })
    }
}
