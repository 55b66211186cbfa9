//! The upgrade report: one document for `--json`, and the same facts as a human reads them,
//! ending with the command that undoes the upgrade.

use std::fmt::Write as _;

use serde::Serialize;

use super::deployed::DeployedRelease;
use super::push_step::PushOutcome;
use super::state::LoadedState;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeReport {
    pub dry_run: bool,
    pub bundle: BundleInfo,
    pub release: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// What was deployed before (None: a fresh install).
    pub deployed: Option<DeployedRelease>,
    /// The rollback guard's record before this run.
    pub last_loaded: Option<LoadedState>,
    pub compatibility: Compatibility,
    pub chart: ChartInfo,
    pub push: PushOutcome,
    pub helm: HelmInfo,
    /// The release's revision after the upgrade (for a dry run: the one it would get).
    pub revision: u64,
    /// Undoes the upgrade: `helm rollback RELEASE PREVIOUS` or, after a fresh install,
    /// `helm uninstall RELEASE`.
    pub rollback_command: String,
    /// The rollback-guard state written (not for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleInfo {
    pub path: String,
    pub name: String,
    pub version: semver::Version,
    pub upgrade_from: String,
    pub trusted_signers: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Compatibility {
    /// `freshInstall`, `allowed`, `sameVersion`, `majorJump`, `downgrade` or `outsideRule`.
    pub verdict: &'static str,
    pub message: String,
    /// The flag that let a refusable verdict through, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartInfo {
    pub name: String,
    pub version: semver::Version,
    /// `oci://REGISTRY[/PREFIX]/charts/NAME`: the repository a real run installs from.
    pub url: String,
    /// What a real run gives helm: `URL@DIGEST`, the chart pinned by the digest the bundle
    /// signed (Helm 3.18 and later), else the URL (helm then pulls it by its tag).
    pub reference: String,
    /// What this run gave helm: `reference`, or (dry run) the package taken from the bundle.
    pub installed_from: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmInfo {
    pub path: String,
    pub version: String,
    /// The `helm upgrade` arguments, exactly as run.
    pub args: Vec<String>,
    /// The same, shell-quoted, with the helm path first.
    pub command: String,
}

/// The report for a human: verdict line first, the undo command last.
pub fn render(r: &UpgradeReport) -> String {
    let mut s = String::new();
    let ns = r
        .namespace
        .as_deref()
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default();
    let _ = if r.dry_run {
        writeln!(
            s,
            "DRY RUN  {} {} → release {}{ns}: would be revision {} (nothing pushed, nothing changed)",
            r.bundle.name, r.bundle.version, r.release, r.revision
        )
    } else {
        writeln!(
            s,
            "UPGRADED  {} {} → release {}{ns}, revision {}",
            r.bundle.name, r.bundle.version, r.release, r.revision
        )
    };
    let _ = writeln!(
        s,
        "  bundle        {} (verified, {} trusted signature(s))",
        r.bundle.path, r.bundle.trusted_signers
    );
    match &r.deployed {
        Some(d) => {
            let _ = writeln!(
                s,
                "  deployed      {} {}, revision {} ({})",
                d.chart_name, d.chart_version, d.revision, d.status
            );
        }
        None => {
            let _ = writeln!(s, "  deployed      nothing (fresh install)");
        }
    }
    if let Some(l) = &r.last_loaded {
        let _ = writeln!(
            s,
            "  loaded here   {} {} at {}",
            l.name, l.version, l.loaded_at
        );
    }
    let _ = write!(s, "  compatibility {}", r.compatibility.message);
    if let Some(flag) = r.compatibility.overridden_by {
        let _ = write!(s, " (allowed by {flag})");
    }
    s.push('\n');
    let verb = if r.push.pushed {
        "pushed"
    } else {
        "would push"
    };
    let _ = writeln!(
        s,
        "  {verb:<13} {} image(s), {} chart(s):",
        r.push.images.len(),
        r.push.charts.len()
    );
    for i in &r.push.images {
        let _ = writeln!(s, "    {} → {}", i.source, i.target);
    }
    for c in &r.push.charts {
        let _ = writeln!(s, "    chart {} {} → {}", c.name, c.version, c.target);
    }
    let _ = writeln!(
        s,
        "  chart         {} --version {}",
        r.chart.reference, r.chart.version
    );
    if r.chart.installed_from != r.chart.reference {
        let _ = writeln!(
            s,
            "                (this dry run: {}, the same chart from the verified bundle)",
            r.chart.installed_from
        );
    }
    let _ = writeln!(s, "  helm          {} ({})", r.helm.command, r.helm.version);
    if let Some(state) = &r.state_file {
        let _ = writeln!(s, "  recorded in   {state}");
    }
    let undo = if r.dry_run {
        "to undo it after a real run"
    } else {
        "to undo"
    };
    let _ = writeln!(s, "{undo}: {}", r.rollback_command);
    s
}
