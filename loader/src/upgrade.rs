//! `sensei-loader upgrade`: a verified bundle, checked against what is deployed, pushed to the
//! internal registry and handed to `helm upgrade --install`, with the command that undoes it.
//!
//! [`upgrade`] runs these steps, stopping at the first failure:
//!
//! 0. Inputs: release and namespace names, `--timeout`, `-f` files and `--set` pairs are checked,
//!    and helm is found and its major version read, so a missing helm fails in a second rather
//!    than after verifying gigabytes.
//! 1. Verify the bundle (signatures, then every byte, in one pass: `crate::verify`), keeping the
//!    charts' OCI manifests as they stream past. Pick the chart (`--chart`, else the one named like
//!    the bundle, else the only one) and map every reference onto the registry (`crate::mapping`).
//! 2. Rollback guard: a bundle older than the last version loaded on this machine (the state file
//!    under `--state-dir`) is refused unless `--allow-downgrade`.
//! 3. Compatibility: `helm list` gives the deployed chart version; `compat::check` compares it
//!    with the chart being installed under the bundle's rule. A major jump needs `--allow-major`,
//!    a downgrade `--allow-downgrade`; a version outside the rule has no override (the bundle's
//!    author says that path is unsupported: go through a release in the rule's range).
//! 4. Push, through the [`PushStep`] seam. A dry run only computes where everything would go.
//! 5. Helm: `helm upgrade --install RELEASE oci://REGISTRY[/PREFIX]/charts/NAME@DIGEST --version V
//!    --set global.imageRegistry=REGISTRY[/PREFIX] -f … --set … --wait --timeout T`, the user's
//!    `-f`/`--set` after ours so they can override it. The chart is pinned by the digest the
//!    bundle signed, so a tag moved after the push changes nothing (Helm before 3.18 pulls by
//!    tag only: it gets the plain URL and a warning). A dry run gives helm the chart package
//!    from the verified bundle (no registry needed) and helm's client-side `--dry-run`. The
//!    command is announced before it runs and helm's output streams to the observer.
//! 6. Report: the new revision, and `helm rollback RELEASE PREVIOUS` (or `helm uninstall` after
//!    a fresh install). After a real upgrade the state file records this bundle's version
//!    (written atomically).
//!
//! Exit codes (see [`Fault`]): 1 for refusals (verification, trust, rollback guard,
//! compatibility, a chart helm cannot install); 2 for bad input (flags, files, `--chart`);
//! 3 when something outside fails (helm missing or failing, the cluster unreachable, the
//! registry, the state directory).

mod chart;
mod deployed;
mod error;
mod helm;
mod inputs;
mod push_step;
mod report;
mod state;

use std::path::{Path, PathBuf};

use sensei_core::compat::{self, CompatRule, CompatVerdict};
use sensei_core::manifest::{BundleManifest, ChartEntry};
use sensei_core::progress::Reporter;

pub use deployed::DeployedRelease;
pub use error::{Fault, PushFailure, UpgradeError};
pub use helm::{Helm, KubeTarget, command_line, shell_quote};
pub use push_step::{DryRun, PushOptions, PushOutcome, PushRequest, PushStep, RegistryPush};
pub use report::{BundleInfo, ChartInfo, Compatibility, HelmInfo, UpgradeReport, render};
pub use state::{LoadedState, StateDir};

use crate::error::LoaderError;
use crate::mapping::{self, Registry};
use crate::push::{Collector, Tee};
use crate::verify::{TrustOptions, verify_bundle};

/// Helm's default wait is 5 minutes; an upgrade of a whole product rolls out longer.
pub const DEFAULT_TIMEOUT: &str = "15m";

/// Everything `upgrade` was asked to do.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    pub bundle: PathBuf,
    pub trust: TrustOptions,
    pub registry: Registry,
    pub push: PushOptions,
    pub release: String,
    pub namespace: Option<String>,
    /// `-f`: values files (or URLs), in order.
    pub values: Vec<String>,
    /// `--set K=V`, in order.
    pub set: Vec<String>,
    pub helm: PathBuf,
    /// A Go duration for helm's `--timeout` (`15m`, `1h30m`).
    pub timeout: String,
    pub dry_run: bool,
    pub allow_major: bool,
    pub allow_downgrade: bool,
    pub state_dir: PathBuf,
    /// `--chart`: which chart of the bundle to install.
    pub chart: Option<String>,
    pub kube: KubeTarget,
}

/// Receives what a human should see while the upgrade runs (the binary prints it to stderr).
pub trait Observer: Sync {
    /// One line about a step that finished.
    fn step(&self, _message: &str) {}
    /// The exact command about to run, shell-quoted.
    fn command(&self, _line: &str) {}
    /// One line of helm's own output, as it comes.
    fn helm_output(&self, _line: &str) {}
}

impl Observer for () {}

/// Runs the upgrade (steps in the module docs). `push` is used unless `dry_run`.
pub fn upgrade(
    opts: &UpgradeOptions,
    push: &dyn PushStep,
    reporter: &dyn Reporter,
    observer: &dyn Observer,
) -> Result<UpgradeReport, UpgradeError> {
    // 0. Inputs and helm.
    inputs::check(opts)?;
    let helm = Helm::detect(&opts.helm)?;
    observer.step(&format!("helm {} at {}", helm.version, helm.path.display()));

    // 1. Verify.
    // One pass feeds both the chart lookup and the push's manifests: a `.tar.gz` is
    // decompressed once for verification, not once more to find its manifests.
    let mut visitor = Tee(
        chart::ChartManifests::for_bundle(&opts.bundle),
        Collector::default(),
    );
    let verified = verify_bundle(&opts.bundle, &opts.trust, reporter, &mut visitor)?;
    let Tee(manifests, collector) = visitor;
    let collected = collector.finish();
    let manifest = &verified.manifest;
    observer.step(&format!(
        "verified {} {} ({} trusted signature(s))",
        manifest.name, manifest.version, verified.report.trusted_signers
    ));
    let chart = select_chart(manifest, opts.chart.as_deref())?;
    let plan = mapping::plan(manifest, &opts.registry)?;

    // 2. Rollback guard.
    let states = StateDir::new(&opts.state_dir);
    let last_loaded = states.read(&manifest.name)?;
    state::check_rollback(
        last_loaded.as_ref(),
        &manifest.version,
        opts.allow_downgrade,
    )
    .map_err(LoaderError::Rejected)?;

    // 3. Compatibility with what is deployed.
    let deployed = deployed::find(
        &helm,
        &opts.release,
        opts.namespace.as_deref(),
        &opts.kube,
        &chart.name,
    )?;
    if let Some(d) = deployed.as_ref() {
        observer.step(&format!(
            "deployed: release {} runs {} (revision {}, {})",
            d.name, d.chart, d.revision, d.status
        ));
        if d.status.starts_with("pending") {
            // Helm refuses to upgrade over an operation in progress; say why before it does.
            observer.step(&format!(
                "warning: release {} is {}: helm will refuse until that operation ends or is \
                 rolled back",
                d.name, d.status
            ));
        }
    }
    let compatibility = check_compat(opts, manifest, chart, deployed.as_ref())?;
    observer.step(&format!("compatibility: {}", compatibility.message));

    // 4. Push.
    let request = PushRequest {
        bundle: &opts.bundle,
        verified: &verified,
        collected: &collected,
        plan: &plan,
        options: &opts.push,
        reporter,
    };
    let pushed = if opts.dry_run {
        DryRun.push(&request)?
    } else {
        push.push(&request)?
    };
    let chart_url = opts.registry.chart_url(&chart.name);
    if !pushed.charts.iter().any(|c| c.name == chart.name) {
        return Err(UpgradeError::Push(PushFailure {
            fault: Fault::Outside,
            registry: opts.registry.to_string(),
            source: format!("the push reported no chart {}", chart.name).into(),
        }));
    }
    if pushed.pushed {
        observer.step(&format!(
            "pushed {} image(s) and {} chart(s) to {}",
            pushed.images.len(),
            pushed.charts.len(),
            opts.registry
        ));
    }

    // 5. Helm. The temporary directory holds the dry run's chart package or the real run's
    // registry login, and lives until helm is done.
    let scratch = tempfile::Builder::new()
        .prefix("sensei-upgrade-")
        .tempdir()
        .map_err(|source| LoaderError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    // What a real run installs; a dry run shows it, and gives helm the bundle's own package.
    let reference = pinned_chart(&helm, &chart_url, chart, observer);
    let (chart_arg, registry_config, ca_file) = if opts.dry_run {
        let tgz = chart::extract(&opts.bundle, &verified, chart, &manifests, scratch.path())?;
        (tgz.display().to_string(), None, None)
    } else {
        let ca_file = helm_ca_file(&opts.push.ca_files, scratch.path())?;
        (
            reference.clone(),
            registry_login(opts, &helm, scratch.path(), ca_file.as_deref())?,
            ca_file,
        )
    };
    let args = upgrade_args(
        opts,
        &helm,
        &chart_arg,
        &chart.version,
        registry_config.as_deref(),
        ca_file.as_deref(),
    );
    let command = command_line(&helm.path, &args);
    let rollback_command = rollback_command(opts, deployed.as_ref());
    if opts.push.interrupts.as_ref().is_some_and(|i| i.is_set()) {
        return Err(UpgradeError::Stopped); // helm never starts after a stop signal
    }
    observer.command(&command);
    helm.streamed(&args, opts.push.interrupts.as_ref(), &|line| {
        observer.helm_output(line)
    })
    .map_err(|e| {
        // A dry run changed nothing, so there is nothing to undo.
        if opts.dry_run {
            e
        } else {
            UpgradeError::HelmUpgrade {
                source: Box::new(e),
                rollback: rollback_command.clone(),
            }
        }
    })?;

    // 6. Report, and record the load.
    let previous = deployed.as_ref().map_or(0, |d| d.revision);
    let (revision, state_file) = if opts.dry_run {
        (previous + 1, None)
    } else {
        // The upgrade succeeded; a failure to list it now only costs the exact revision number.
        let after = deployed::find(
            &helm,
            &opts.release,
            opts.namespace.as_deref(),
            &opts.kube,
            &chart.name,
        )
        .ok()
        .flatten();
        let written = states.write(&LoadedState {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            loaded_at: sensei_core::manifest::format_time(jiff::Timestamp::now()),
            release: Some(opts.release.clone()),
            namespace: opts.namespace.clone(),
        })?;
        (
            after.map_or(previous + 1, |d| d.revision),
            Some(written.display().to_string()),
        )
    };
    Ok(UpgradeReport {
        dry_run: opts.dry_run,
        bundle: BundleInfo {
            path: opts.bundle.display().to_string(),
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            upgrade_from: manifest.compat.upgrade_from.clone(),
            trusted_signers: verified.report.trusted_signers,
        },
        release: opts.release.clone(),
        namespace: opts.namespace.clone(),
        deployed,
        last_loaded,
        compatibility,
        chart: ChartInfo {
            name: chart.name.clone(),
            version: chart.version.clone(),
            url: chart_url,
            reference,
            installed_from: chart_arg,
        },
        push: pushed,
        helm: HelmInfo {
            path: helm.path.display().to_string(),
            version: helm.version.clone(),
            args,
            command,
        },
        revision,
        rollback_command,
        state_file,
    })
}

/// `--chart`, else the chart named like the bundle, else the only chart.
fn select_chart<'a>(
    manifest: &'a BundleManifest,
    wanted: Option<&str>,
) -> Result<&'a ChartEntry, UpgradeError> {
    let list = || {
        manifest
            .charts
            .iter()
            .map(|c| format!("{} {}", c.name, c.version))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = wanted {
        return manifest
            .charts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                UpgradeError::Usage(if manifest.charts.is_empty() {
                    format!("--chart {name}: the bundle holds no chart")
                } else {
                    format!(
                        "--chart {name}: the bundle holds no such chart; it holds {}",
                        list()
                    )
                })
            });
    }
    if let Some(c) = manifest.charts.iter().find(|c| c.name == manifest.name) {
        return Ok(c);
    }
    match manifest.charts.as_slice() {
        [only] => Ok(only),
        [] => Err(UpgradeError::Usage(format!(
            "bundle {} {} holds no chart to install; `sensei-loader push` loads its images",
            manifest.name, manifest.version
        ))),
        _ => Err(UpgradeError::Usage(format!(
            "bundle {} holds several charts ({}) and none is named like it: pick one with --chart NAME",
            manifest.name,
            list()
        ))),
    }
}

/// Step 3: the compat rule against the deployed chart version; refusals name both versions,
/// the rule, and the flag that overrides (if any).
fn check_compat(
    opts: &UpgradeOptions,
    manifest: &BundleManifest,
    chart: &ChartEntry,
    deployed: Option<&DeployedRelease>,
) -> Result<Compatibility, UpgradeError> {
    let rule = CompatRule::parse(&manifest.compat.upgrade_from).map_err(|e| {
        UpgradeError::Refused(format!(
            "bundle {} {} carries a compat rule this loader cannot read: {e}",
            manifest.name, manifest.version
        ))
    })?;
    let verdict = compat::check(&rule, deployed.map(|d| &d.chart_version), &chart.version);
    let (name, flag) = match &verdict {
        CompatVerdict::FreshInstall => ("freshInstall", None),
        CompatVerdict::Allowed => ("allowed", None),
        CompatVerdict::SameVersion => ("sameVersion", None),
        CompatVerdict::MajorJump { .. } => ("majorJump", Some("--allow-major")),
        CompatVerdict::Downgrade { .. } => ("downgrade", Some("--allow-downgrade")),
        CompatVerdict::OutsideRule { .. } => ("outsideRule", None),
    };
    if !verdict.is_permitted(opts.allow_major, opts.allow_downgrade) {
        let from = deployed.map_or_else(String::new, |d| {
            format!(
                "release {} runs {} {} (revision {}); ",
                opts.release, d.chart_name, d.chart_version, d.revision
            )
        });
        return Err(UpgradeError::Refused(format!(
            "{from}bundle {} {} installs chart {} {} and accepts upgrades from \"{rule}\": {verdict}",
            manifest.name, manifest.version, chart.name, chart.version
        )));
    }
    Ok(Compatibility {
        verdict: name,
        message: verdict.to_string(),
        overridden_by: flag,
    })
}

/// For a real run with `--username`: `helm registry login` into a registry config of our own
/// (password on stdin, never on a command line), so helm can pull the chart and the operator's
/// own helm configuration is left alone.
fn registry_login(
    opts: &UpgradeOptions,
    helm: &Helm,
    scratch: &Path,
    ca_file: Option<&Path>,
) -> Result<Option<PathBuf>, UpgradeError> {
    let (Some(user), Some(password)) = (&opts.push.username, &opts.push.password) else {
        // The operator's own Docker config, if named, serves helm as it serves push.
        return Ok(opts.push.registry_config.clone());
    };
    let config = scratch.join("registry-config.json");
    let mut args: Vec<String> = vec![
        "registry".into(),
        "login".into(),
        opts.registry.host.clone(),
        "--username".into(),
        user.clone(),
        "--password-stdin".into(),
        "--registry-config".into(),
        config.display().to_string(),
    ];
    args.extend(registry_flags(opts, ca_file));
    helm.captured(&args, Some(password.as_bytes()))?;
    Ok(Some(config))
}

/// The one file helm's `--ca-file` takes: none, the operator's only one, or every `--ca-file`
/// concatenated into `scratch` (helm trusts every certificate in the PEM it is given).
fn helm_ca_file(files: &[PathBuf], scratch: &Path) -> Result<Option<PathBuf>, LoaderError> {
    let many = match files {
        [] => return Ok(None),
        [one] => return Ok(Some(one.clone())),
        many => many,
    };
    let mut pem = Vec::new();
    for file in many {
        let bytes = std::fs::read(file).map_err(|source| LoaderError::Io {
            path: file.clone(),
            source,
        })?;
        pem.extend_from_slice(&bytes);
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
    }
    let path = scratch.join("ca-files.pem");
    std::fs::write(&path, pem).map_err(|source| LoaderError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(Some(path))
}

/// The pushed chart as helm is to pull it: by its digest where helm can (3.18 and later), so
/// a tag moved between the push and helm's pull cannot change what is installed; else by the
/// tag `--version` names, which the observer is told.
fn pinned_chart(
    helm: &Helm,
    chart_url: &str,
    chart: &ChartEntry,
    observer: &dyn Observer,
) -> String {
    if helm.pulls_oci_by_digest() {
        format!("{chart_url}@{}", chart.digest)
    } else {
        observer.step(&format!(
            "warning: helm {} pulls charts by tag only (by digest from Helm 3.18): it gets {} \
             by its tag {}",
            helm.version, chart.name, chart.version
        ));
        chart_url.to_owned()
    }
}

/// How helm reaches the registry: `--plain-http`, `--ca-file` (from [`helm_ca_file`]).
fn registry_flags(opts: &UpgradeOptions, ca_file: Option<&Path>) -> Vec<String> {
    let mut args = vec![];
    if opts.push.plain_http {
        args.push("--plain-http".to_owned());
    }
    if let Some(ca) = ca_file {
        args.extend(["--ca-file".to_owned(), ca.display().to_string()]);
    }
    args
}

/// Step 5's arguments: ours first, then the user's `-f` and `--set` in their order.
fn upgrade_args(
    opts: &UpgradeOptions,
    helm: &Helm,
    chart: &str,
    version: &semver::Version,
    registry_config: Option<&Path>,
    ca_file: Option<&Path>,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "upgrade".into(),
        "--install".into(),
        opts.release.clone(),
        chart.to_owned(),
        "--version".into(),
        version.to_string(),
    ];
    if let Some(ns) = &opts.namespace {
        args.extend(["-n".to_owned(), ns.clone()]);
    }
    args.extend(opts.kube.args());
    args.extend([
        "--set".to_owned(),
        format!("global.imageRegistry={}", opts.registry.base()),
    ]);
    // A chart package from the bundle is read from disk; registry flags only matter for oci://.
    if !opts.dry_run {
        args.extend(registry_flags(opts, ca_file));
    }
    if let Some(config) = registry_config {
        args.extend(["--registry-config".to_owned(), config.display().to_string()]);
    }
    for f in &opts.values {
        args.extend(["-f".to_owned(), f.clone()]);
    }
    for s in &opts.set {
        args.extend(["--set".to_owned(), s.clone()]);
    }
    args.extend([
        "--wait".to_owned(),
        "--timeout".to_owned(),
        opts.timeout.clone(),
    ]);
    if opts.dry_run {
        args.push(helm.dry_run_flag().to_owned());
    }
    args
}

/// The command that undoes the upgrade: back to the deployed revision, or uninstall.
fn rollback_command(opts: &UpgradeOptions, deployed: Option<&DeployedRelease>) -> String {
    let mut args: Vec<String> = match deployed {
        Some(d) => vec![
            "rollback".into(),
            opts.release.clone(),
            d.revision.to_string(),
        ],
        None => vec!["uninstall".into(), opts.release.clone()],
    };
    if let Some(ns) = &opts.namespace {
        args.extend(["-n".to_owned(), ns.clone()]);
    }
    args.extend(opts.kube.args());
    command_line(&opts.helm, &args)
}

#[cfg(test)]
mod tests;
