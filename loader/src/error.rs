//! Errors of the loader, by what the operator has to do about them (and so by exit code).

use std::path::PathBuf;

use sensei_core::verify::{Rejection, VerifyError};
use sensei_registry::{RegistryError, SetupError};

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The bundle failed verification or trust: exit 1.
    #[error("bundle rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The operator's input is wrong (missing file, bad key, bad flag): exit 2.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    /// The machine failed (disk, I/O): exit 3.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The registry failed (network, TLS, credentials, a refusal): exit 3. Kept as the
    /// registry client's own error, so the binary can tell what to do about its kind.
    #[error("registry {}", registry_message(.0))]
    Registry(#[source] Box<RegistryError>),
    /// The registry client could not be set up: a CA file that holds no certificate (exit 2),
    /// or the TLS setup itself (exit 3).
    // Not transparent: the binary finds the SetupError in the chain to add its advice.
    #[error("{0}")]
    Client(#[from] SetupError),
    /// A stop signal arrived (the binary exits with that signal's code): what was written is
    /// whole, `tags_done` of `tags_total` tags name it, and nothing incomplete is tagged.
    #[error(
        "stopped: {tags_done} of {tags_total} tags in place; nothing incomplete is tagged; \
         blobs already uploaded stay, so running the same push again continues"
    )]
    Stopped { tags_done: u64, tags_total: u64 },
}

impl From<RegistryError> for LoaderError {
    fn from(e: RegistryError) -> Self {
        LoaderError::Registry(Box::new(e))
    }
}

/// `HOST: ACTION: KIND`, without an empty action.
fn registry_message(e: &RegistryError) -> String {
    if e.action.is_empty() {
        format!("{}: {}", e.registry, e.kind)
    } else {
        e.to_string()
    }
}

impl LoaderError {
    /// True when the operator's input is at fault (exit 2), as opposed to a rejected bundle
    /// (exit 1) or an outside failure (exit 3).
    pub fn is_input(&self) -> bool {
        match self {
            LoaderError::Input { .. } => true,
            LoaderError::Client(e) => e.is_ca_file(),
            LoaderError::Rejected(_)
            | LoaderError::Io { .. }
            | LoaderError::Registry(_)
            | LoaderError::Stopped { .. } => false,
        }
    }

    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        LoaderError::Input {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl LoaderError {
    pub fn from_verify(e: VerifyError, bundle: &std::path::Path) -> Self {
        match e {
            VerifyError::Rejected(r) => LoaderError::Rejected(r),
            VerifyError::Io { path, source } => LoaderError::Io {
                path: format!("{} ({path})", bundle.display()).into(),
                source,
            },
        }
    }
}
