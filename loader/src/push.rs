//! `sensei-loader push`: a verified bundle into the operator's registry, digests preserved.
//!
//! [`push_bundle`] runs these steps, stopping at the first failure:
//!
//! 1. Trust: `bundle.json`'s signatures must hold before any connection to the registry.
//!    Then, for a `.tar` or a directory, the manifests are read straight from the bundle
//!    (each checked against the signed listing) and the registry is asked, with reads only,
//!    what it holds ([`check`]): its catalog where it offers one (a repository it does not
//!    list holds nothing), then the tags. When every tag already names its signed digest, the
//!    registry holds everything the signature covers and the push ends there, sending nothing
//!    and reading no layer: only `bundle.json`, `index.json` and the manifests (`verify` is
//!    the command that checks the file itself).
//! 2. Verify every byte in one streaming pass that keeps `index.json` and the manifests in
//!    memory ([`collect`]). Meanwhile, for a `.tar` or a directory, the rest of [`check`] asks
//!    about blobs and manifests, and then every blob of 1 MiB or more that no repository
//!    holds is streamed into an upload session ([`stage`]): a POST, then one PATCH with the
//!    whole blob, read by offset from the `.tar` (or from the directory's file) and hashed
//!    as it goes. The session is not committed, so nothing is visible yet: no repository
//!    gets the blob, none appears in the catalog. (A `.tar.gz` holds its manifests last, so
//!    nothing can be planned before its verification pass ends: it asks and sends only after.)
//! 3. Plan: every image and chart mapped onto the registry (`crate::mapping`), every blob with
//!    the repositories that need it, manifests children first, tags last ([`graph`]). A bundle
//!    whose manifests name blobs it does not hold is refused here.
//! 4. Only once the whole bundle has verified, write ([`upload`]): blobs first, in parallel:
//!    each staged session committed (a PUT naming the digest, which the registry checks; a
//!    session the registry no longer knows is uploaded again), every other missing blob
//!    uploaded in one streamed PUT, read straight from the bundle by [`source`] and hashed as
//!    it goes, and mounted into the other repositories that need it; then manifests by
//!    digest (children first), then tags, each as soon as every blob below it is in (so what
//!    needs no big blob does not wait for one).
//!
//! On every failure (verification, registry, the bundle changing on disk), the sessions still
//! open are cancelled (DELETE; a PATCH still streaming is cut first) before push exits:
//! nothing from a bundle that did not verify is ever committed.
//!
//! [`push_verified`] is steps 3–4 for a caller that has verified the bundle itself.

pub mod check;
pub mod collect;
pub mod graph;
pub mod kind;
pub mod report;
pub mod source;
pub mod stage;
pub mod upload;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sensei_core::content::BundleLayout;
use sensei_core::progress::Reporter;
use sensei_core::verify::{RawHead, Rejection, Verified, read_head};
use sensei_registry::{ClientSettings, RegistryError};
pub use sensei_registry::{
    CredentialSource, Credentials, DEFAULT_CONCURRENCY, RetryNotice, RetryPolicy,
};

pub use collect::{Collected, Collector, Tee};
pub use report::{PushReport, render};
pub use upload::Counts;

use kind::Kind;
use stage::Staging;

use crate::error::LoaderError;
use crate::mapping::{self, MappingError, Registry};
use crate::verify::{TrustOptions, verify_bundle};

/// Everything `push` was asked to do.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Where to push: `HOST[:PORT][/PREFIX]`.
    pub registry: Registry,
    pub trust: TrustOptions,
    /// PEM certificates to trust for the registry's TLS.
    pub ca_files: Vec<PathBuf>,
    /// Speak HTTP, not HTTPS, to the registry.
    pub plain_http: bool,
    /// A user name and password, else Docker's config.json.
    pub credentials: CredentialSource,
    /// Blobs in flight at once.
    pub concurrency: usize,
    /// Verify and print the mapping; send nothing.
    pub dry_run: bool,
    /// Verify every byte and check every blob even when every tag already names its signed
    /// digest (by default such a push ends after the tag checks, reading no layer).
    pub full_check: bool,
    pub retry: RetryPolicy,
    /// Told of every retry of a registry request, to show why a step takes long.
    pub on_retry: Option<RetryNotice>,
    /// Set by a stop signal: no new work starts, the uploads in flight are cut, the staged
    /// sessions are cancelled, and the push ends with [`LoaderError::Stopped`]. Tags are
    /// written only once everything below them is in, so none names an incomplete image.
    pub stop: Option<Arc<AtomicBool>>,
}

impl PushOptions {
    /// Defaults for everything but the target and the keys.
    pub fn new(registry: Registry, trust: TrustOptions) -> Self {
        Self {
            registry,
            trust,
            ca_files: vec![],
            plain_http: false,
            credentials: CredentialSource::docker_default(None),
            concurrency: DEFAULT_CONCURRENCY,
            dry_run: false,
            full_check: false,
            retry: RetryPolicy::default(),
            on_retry: None,
            stop: None,
        }
    }
}

/// Verifies `bundle` (archive or extracted directory) and pushes it: the steps of the module
/// docs. With `opts.dry_run`, verifies and returns the mapping without connecting.
pub fn push_bundle(
    bundle: &Path,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, LoaderError> {
    source::require_seekable(bundle)?;
    let started = Instant::now();
    let mut early = if opts.dry_run {
        None
    } else {
        Early::start(bundle, opts)
    };
    if let Some(e) = early.as_mut()
        && !opts.full_check
        && let Some(report) = e.up_to_date(bundle, opts)
    {
        e.staging.abandon_blocking(); // nothing was missing, so nothing was staged
        return Ok(report);
    }
    let mut collector = Collector::default();
    let verified = match verify_bundle(bundle, &opts.trust, reporter, &mut collector) {
        Ok(verified) => verified,
        Err(e) => {
            // Nothing was committed: the sessions staged meanwhile are cancelled.
            if let Some(early) = &early {
                early.staging.abandon_blocking();
            }
            return Err(e);
        }
    };
    let verify_seconds = started.elapsed().as_secs_f64();
    let mut report = push_with(
        bundle,
        &verified,
        &collector.finish(),
        opts,
        reporter,
        early.as_mut(),
    )?;
    report.verify_seconds = Some(verify_seconds);
    Ok(report)
}

/// Pushes a bundle that has just verified (steps 3–4). `collected` comes from a [`Collector`]
/// that ran in that verification (alone, or in a [`Tee`] with another visitor). Every blob's
/// bytes are hashed again as they are sent, as the bundle may have changed since.
pub fn push_verified(
    bundle: &Path,
    verified: &Verified,
    collected: &Collected,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, LoaderError> {
    push_with(bundle, verified, collected, opts, reporter, None)
}

/// The registry client, what it found while the bundle was still being verified, and the
/// big blobs it staged meanwhile.
struct Early {
    runtime: tokio::runtime::Runtime,
    client: sensei_registry::Registry,
    graph: Arc<graph::PushGraph>,
    checks: Option<tokio::task::JoinHandle<Result<check::Presence, RegistryError>>>,
    staging: Arc<Staging>,
    /// Bytes sent, the staged ones included.
    counters: Arc<source::Counters>,
    /// The tag check's answer, sent as soon as it is known (before the blob checks).
    tags: Option<tokio::sync::oneshot::Receiver<HashSet<(String, String)>>>,
    /// What the up-to-date report needs: the signed bundle.json, its plan, its signers.
    manifest: sensei_core::manifest::BundleManifest,
    plan: mapping::Plan,
    trusted_signers: usize,
}

impl Early {
    /// Steps 1 and the concurrent half of 2 for a `.tar` or a directory: once the signature
    /// holds, read the manifests from the bundle, start asking the registry what it has, then
    /// stage the big blobs it lacks. Any problem here just means no head start: the
    /// verification pass reports it properly.
    fn start(bundle: &Path, opts: &PushOptions) -> Option<Self> {
        let kind = kind::kind_of(bundle).ok()?;
        if kind == Kind::Gzip {
            return None; // the manifests come last in the stream: nothing to read early
        }
        // The client and runtime take a few milliseconds to build (the TLS roots): built
        // meanwhile on another thread; neither connects to anything.
        std::thread::scope(|s| {
            let setup = s.spawn(|| Some((client(opts).ok()?, runtime().ok()?)));
            let early = Self::prepare(bundle, opts, kind);
            let (client, runtime) = setup.join().ok()??;
            early.map(|e| e.run(bundle, opts, kind, client, runtime))?
        })
    }

    /// The parts of [`Early::start`] that need no client: trust, then the plan.
    fn prepare(bundle: &Path, opts: &PushOptions, kind: Kind) -> Option<Prepared> {
        let policy = opts.trust.policy(bundle).ok()?;
        let head = read_head(bundle).ok()?;
        let signed = RawHead::new(head.manifest_bytes, &head.signature_bytes, &policy)
            .ok()?
            .check(&policy)
            .ok()?;
        let offsets = offsets(
            kind,
            &signed.manifest_bytes,
            &head.signature_bytes,
            &signed.manifest,
        );
        let collected = Collected::read(bundle, kind, &signed.manifest.files, &offsets).ok()?;
        let plan = mapping::plan(&signed.manifest, &opts.registry).ok()?;
        let graph = Arc::new(graph::build(&signed.manifest, &collected, &plan).ok()?);
        Some(Prepared {
            signed,
            offsets,
            plan,
            graph,
        })
    }
}

/// What [`Early::prepare`] found: the signed bundle.json, where its files are, the plan.
struct Prepared {
    signed: sensei_core::verify::Signed,
    offsets: HashMap<String, u64>,
    plan: mapping::Plan,
    graph: Arc<graph::PushGraph>,
}

impl Prepared {
    /// Starts the checks, then the staging, on `runtime`.
    fn run(
        self,
        bundle: &Path,
        opts: &PushOptions,
        kind: Kind,
        client: sensei_registry::Registry,
        runtime: tokio::runtime::Runtime,
    ) -> Option<Early> {
        let Self {
            signed,
            offsets,
            plan,
            graph,
        } = self;
        let source = Arc::new(source::Source::new(bundle, kind, offsets, &[]).ok()?);
        let staging = Arc::new(Staging::new(client.clone(), runtime.handle().clone()));
        let counters = Arc::new(source::Counters::default());
        let (tags_tx, tags_rx) = tokio::sync::oneshot::channel();
        let (c, host, g, n, st, sent) = (
            client.clone(),
            opts.registry.host.clone(),
            graph.clone(),
            opts.concurrency,
            staging.clone(),
            counters.clone(),
        );
        let checks = runtime.spawn(async move {
            let listed = check::listed(&c, &host, &g).await;
            let tags =
                check::check_tags(c.clone(), host.clone(), g.clone(), n, listed.clone()).await?;
            let _ = tags_tx.send(tags.clone());
            let presence = check::check_rest(c, host.clone(), g.clone(), n, tags, listed).await?;
            st.start(&host, &g, &presence, &source, &sent, n);
            Ok(presence)
        });
        Some(Early {
            runtime,
            client,
            graph,
            checks: Some(checks),
            staging,
            counters,
            tags: Some(tags_rx),
            trusted_signers: sensei_core::signature::trusted_signers(&signed.signatures).len(),
            manifest: signed.manifest,
            plan,
        })
    }
}

impl Early {
    /// When every tag already names its signed digest, the registry holds everything: the
    /// report of a push that sends nothing and reads no layer. `None`
    /// when anything is missing (or the check failed: the full path reports that properly).
    fn up_to_date(&mut self, bundle: &Path, opts: &PushOptions) -> Option<PushReport> {
        let started = Instant::now();
        let tags = self.runtime.block_on(self.tags.take()?).ok()?;
        if !check::up_to_date(&self.graph, &tags) {
            return None;
        }
        let mut report = base_report(
            bundle,
            &self.manifest,
            self.trusted_signers,
            opts,
            self.plan.clone(),
            &self.graph,
        );
        report.up_to_date = true;
        report.counts.tags_present = self.graph.tags.len() as u64;
        report.counts.manifests_present = self.graph.manifests.len() as u64;
        report.counts.blobs_present = self.graph.blobs.len() as u64;
        report.push_seconds = started.elapsed().as_secs_f64();
        Some(report)
    }
}

fn offsets(
    kind: Kind,
    manifest_bytes: &[u8],
    signature_bytes: &[u8],
    manifest: &sensei_core::manifest::BundleManifest,
) -> HashMap<String, u64> {
    match kind {
        Kind::Directory => HashMap::new(),
        Kind::Tar | Kind::Gzip => BundleLayout::data_offsets(
            manifest_bytes.len() as u64,
            signature_bytes.len() as u64,
            &manifest.files,
        ),
    }
}

fn client(opts: &PushOptions) -> Result<sensei_registry::Registry, sensei_registry::SetupError> {
    sensei_registry::Registry::new(ClientSettings {
        ca_files: opts.ca_files.clone(),
        plain_http: if opts.plain_http {
            vec![opts.registry.host.clone()]
        } else {
            vec![]
        },
        credentials: opts.credentials.clone(),
        retry: opts.retry,
        on_retry: opts.on_retry.clone(),
    })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Steps 3–4, then, on every way out, the sessions staged early: a push that succeeded has
/// committed each of them, one that failed commits none.
fn push_with(
    bundle: &Path,
    verified: &Verified,
    collected: &Collected,
    opts: &PushOptions,
    reporter: &dyn Reporter,
    mut early: Option<&mut Early>,
) -> Result<PushReport, LoaderError> {
    let result = push_planned(
        bundle,
        verified,
        collected,
        opts,
        reporter,
        early.as_deref_mut(),
    );
    if let Some(early) = early {
        early.staging.abandon_blocking();
    }
    result
}

fn push_planned(
    bundle: &Path,
    verified: &Verified,
    collected: &Collected,
    opts: &PushOptions,
    reporter: &dyn Reporter,
    early: Option<&mut Early>,
) -> Result<PushReport, LoaderError> {
    let started = Instant::now();
    let manifest = &verified.manifest;
    if collected.over_limit {
        return Err(LoaderError::input(
            bundle,
            format!(
                "the bundle's manifests and indexes hold more than {} bytes, more than push keeps \
                 in memory",
                collect::MAX_KEPT_BYTES
            ),
        ));
    }
    let plan = mapping::plan(manifest, &opts.registry).map_err(|e| match e {
        MappingError::BadRegistry { .. } => LoaderError::input(bundle, e.to_string()),
        other => LoaderError::Rejected(Rejection::Inconsistent(other.to_string())),
    })?;
    let graph = graph::build(manifest, collected, &plan)
        .map_err(|e| LoaderError::Rejected(Rejection::Inconsistent(e.to_string())))?;
    let mut report = base_report(
        bundle,
        manifest,
        verified.report.trusted_signers,
        opts,
        plan,
        &graph,
    );
    if opts.dry_run {
        return Ok(report);
    }

    let io = |source| LoaderError::Io {
        path: bundle.to_owned(),
        source,
    };
    let kind = kind::kind_of(bundle).map_err(io)?;
    let offsets = if kind == Kind::Directory {
        HashMap::new()
    } else {
        let head = read_head(bundle).map_err(|e| LoaderError::from_verify(e, bundle))?;
        offsets(kind, &head.manifest_bytes, &head.signature_bytes, manifest)
    };
    let graph = Arc::new(graph);
    // The early checks and sessions count only if they were made for the very graph verified
    // now (else the sessions are cancelled on the way out).
    let fresh_runtime;
    let (runtime, client, early_checks, staging, counters) = match early {
        Some(e) if *e.graph == *graph => (
            e.runtime.handle().clone(),
            e.client.clone(),
            e.checks.take(),
            Some(e.staging.clone()),
            e.counters.clone(),
        ),
        _ => {
            fresh_runtime = runtime().map_err(io)?;
            (
                fresh_runtime.handle().clone(),
                client(opts)?,
                None,
                None,
                Arc::default(),
            )
        }
    };
    if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
        // Stopped while verifying: nothing was written; what was staged is cancelled.
        if let Some(staging) = &staging {
            runtime.block_on(async {
                let _ = tokio::time::timeout(STOP_BOUND, staging.abandon()).await;
            });
        }
        return Err(LoaderError::Stopped {
            tags_done: 0,
            tags_total: graph.tags.len() as u64,
        });
    }
    let host = opts.registry.host.clone();
    let presence = runtime.block_on(async {
        if let Some(handle) = early_checks
            && let Ok(found) = handle.await
        {
            return found;
        }
        // No head start (or the task was lost, which it cannot be by design): ask now.
        check::check(
            client.clone(),
            host.clone(),
            graph.clone(),
            opts.concurrency,
        )
        .await
    });
    let presence = presence?;
    // Only the blobs no repository has are read from the bundle (a `.tar.gz` pass stops
    // after the last of them, or never starts).
    let to_read: Vec<_> = graph
        .blobs
        .iter()
        .filter(|b| !presence.has_anywhere(b))
        .cloned()
        .collect();
    let source = source::Source::new(bundle, kind, offsets, &to_read).map_err(io)?;
    let uploader = upload::Uploader {
        registry: &client,
        host: &host,
        source: &source,
        concurrency: opts.concurrency,
        reporter,
        staging: staging.as_deref(),
        counters,
    };
    let stop = opts.stop.clone();
    let result = runtime.block_on(async {
        tokio::select! {
            r = uploader.write(&graph, &presence) => Some(r),
            () = stopped(stop) => None,
        }
    });
    source.close();
    let Some(result) = result else {
        // The uploads in flight were dropped (cut); the sessions staged and not committed
        // are cancelled, within a bound, so a stop never hangs on a slow registry.
        if let Some(staging) = &staging {
            runtime.block_on(async {
                let _ = tokio::time::timeout(STOP_BOUND, staging.abandon()).await;
            });
        }
        return Err(LoaderError::Stopped {
            tags_done: uploader.counters.tags_done.load(Ordering::SeqCst),
            tags_total: graph.tags.len() as u64,
        });
    };
    report.counts = result.map_err(|e| match e {
        upload::UploadError::Registry(e) => LoaderError::from(e),
        upload::UploadError::Changed(why) => {
            io(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
        }
    })?;
    report.push_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// How long a stopped push spends cancelling its staged sessions.
const STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(3);

/// Resolves once `stop` is set (never without one).
async fn stopped(stop: Option<Arc<AtomicBool>>) {
    let Some(stop) = stop else {
        return std::future::pending().await;
    };
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The report's description of the bundle and where it goes; counts still zero.
fn base_report(
    bundle: &Path,
    manifest: &sensei_core::manifest::BundleManifest,
    trusted_signers: usize,
    opts: &PushOptions,
    plan: mapping::Plan,
    graph: &graph::PushGraph,
) -> PushReport {
    PushReport {
        dry_run: opts.dry_run,
        up_to_date: false,
        bundle: bundle.display().to_string(),
        name: manifest.name.clone(),
        version: manifest.version.to_string(),
        trusted_signers,
        registry: opts.registry.base(),
        chart_urls: plan
            .charts
            .iter()
            .map(|c| opts.registry.chart_url(&c.name))
            .collect(),
        plain_http: opts.plain_http,
        images: plan.images,
        charts: plan.charts,
        blobs: graph.blobs.len(),
        blob_bytes: graph.blob_bytes(),
        counts: Counts::default(),
        verify_seconds: None,
        push_seconds: 0.0,
    }
}
