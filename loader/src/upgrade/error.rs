//! Why an upgrade stopped, grouped by what the operator has to do about it ([`Fault`], which the
//! binary turns into the exit-code contract).

use std::path::PathBuf;

use crate::error::LoaderError;
use crate::mapping::MappingError;

/// The three kinds of failure the exit-code contract distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Fault {
    /// The bundle, or this upgrade, was refused: verification, trust, rollback or compatibility
    /// (exit 1). Overridable refusals name their flag.
    Rejected,
    /// The operator's input is wrong: a flag, a file, a chart name (exit 2).
    Input,
    /// Something outside failed: helm, the cluster, the registry, the disk (exit 3).
    Outside,
}

/// A failure of the push step, as the push implementation classifies it.
#[derive(Debug, thiserror::Error)]
#[error("push to {registry} failed: {source}")]
pub struct PushFailure {
    pub fault: Fault,
    pub registry: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Verification, trust, the rollback guard, or reading the operator's files.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A flag or input that is wrong in a way only the upgrade can tell.
    #[error("{0}")]
    Usage(String),
    /// A stop signal arrived after the push and before `helm upgrade` started: helm was not
    /// run, the release is as it was.
    #[error("stopped before helm upgrade ran: the release is unchanged")]
    Stopped,
    /// The compatibility check refused the upgrade.
    #[error("upgrade refused: {0}")]
    Refused(String),
    #[error(
        "cannot run helm at {}: {source}; install Helm 3 or 4, or pass its path with --helm",
        path.display()
    )]
    HelmMissing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is {version}, which this loader does not drive: use Helm 3 or 4 (--helm PATH)",
        path.display()
    )]
    HelmUnsupported { path: PathBuf, version: String },
    #[error(
        "helm cannot reach the Kubernetes cluster (check KUBECONFIG, --kubeconfig or \
         --kube-context) while running `{command}`:\n{stderr}"
    )]
    ClusterUnreachable { command: String, stderr: String },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Helm {
        command: String,
        status: String,
        stderr: String,
    },
    /// `helm upgrade` itself failed; the release may be partly changed.
    #[error("{source}\nto return to the release as it was: {rollback}")]
    HelmUpgrade {
        source: Box<UpgradeError>,
        rollback: String,
    },
    #[error("`{command}` printed output this loader cannot read: {why}")]
    HelmOutput { command: String, why: String },
    #[error("{}: {message}", path.display())]
    State { path: PathBuf, message: String },
    /// The chart artifact inside a verified bundle is not one helm can install.
    #[error("the bundle's chart {0}")]
    BadChart(String),
    /// The bundle changed on disk between verification and a later read of it.
    #[error("{}: {message}", path.display())]
    BundleChanged { path: PathBuf, message: String },
    #[error(transparent)]
    Push(#[from] PushFailure),
}

impl UpgradeError {
    pub fn fault(&self) -> Fault {
        match self {
            UpgradeError::Loader(LoaderError::Rejected(_))
            | UpgradeError::Refused(_)
            | UpgradeError::BadChart(_) => Fault::Rejected,
            UpgradeError::Loader(e) if e.is_input() => Fault::Input,
            UpgradeError::Usage(_) => Fault::Input,
            // A reference that cannot be mapped is in the bundle itself: the signed content
            // holds something this loader cannot load.
            UpgradeError::Mapping(MappingError::BadRegistry { .. }) => Fault::Input,
            UpgradeError::Mapping(_) => Fault::Rejected,
            UpgradeError::Push(p) => p.fault,
            UpgradeError::HelmUpgrade { source, .. } => source.fault(),
            UpgradeError::Loader(_)
            | UpgradeError::HelmMissing { .. }
            | UpgradeError::HelmUnsupported { .. }
            | UpgradeError::ClusterUnreachable { .. }
            | UpgradeError::Helm { .. }
            | UpgradeError::HelmOutput { .. }
            | UpgradeError::State { .. }
            | UpgradeError::BundleChanged { .. }
            | UpgradeError::Stopped => Fault::Outside,
        }
    }
}
