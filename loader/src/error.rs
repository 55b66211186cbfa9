//! Errors of the loader, by what the operator has to do about them (and so by exit code).

use std::path::PathBuf;

use sensei_core::verify::{Rejection, VerifyError};

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
}

impl LoaderError {
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
