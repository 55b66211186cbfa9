//! Errors of the bundler, split by what the user has to fix: the input, or the outside world.

use std::path::PathBuf;

use sensei_core::digest::Digest;

/// Something about the user's input (spec, layout, chart, flags, keys) is wrong: exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Spec(#[from] sensei_core::spec::SpecError),
    #[error("no version: give `version:` in {spec} or pass --version")]
    NoVersion { spec: PathBuf },
    #[error("{0}")]
    Chart(#[from] crate::chart::ChartError),
    #[error("OCI layout {dir}: {message}")]
    Layout { dir: PathBuf, message: String },
    #[error("image {reference}: {message}")]
    Image { reference: String, message: String },
    #[error("key {path}: {message}")]
    Key { path: PathBuf, message: String },
    /// The output path is unfit (a device, a link, an input, someone else's file).
    #[error(transparent)]
    Output(#[from] sensei_core::outfile::OutputError),
    #[error("{0}")]
    Other(String),
}

/// A source handed us bytes that are not what their descriptor says: never trusted.
#[derive(Debug, thiserror::Error)]
#[error(
    "{reference}: blob {digest} from {source_name} {problem}; the source is corrupt or changed during the build"
)]
pub struct IntegrityError {
    pub reference: String,
    pub digest: Digest,
    pub source_name: String,
    pub problem: String,
}

/// Everything `create`, `keygen` and `sign` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("interrupted; nothing was written to {0}")]
    Cancelled(PathBuf),
    /// A registry failed or sent bytes that don't match: exit 3.
    #[error("{reference}: {source}")]
    Registry {
        reference: String,
        source: Box<sensei_registry::RegistryError>,
    },
    /// A Helm repository failed or sent what it should not: exit 3.
    #[error(transparent)]
    Repo(Box<crate::chart::repo::RepoError>),
    /// The registry client could not be set up: a bad CA file (exit 2, an input), else exit 3.
    // Not transparent: the binary finds the SetupError in the chain to add its advice.
    #[error("{0}")]
    Client(#[from] sensei_registry::SetupError),
    /// Another outside failure (helm): exit 3.
    #[error("{0}")]
    Outside(String),
    /// The output's filesystem cannot hold the build, found before anything is downloaded.
    #[error(
        "not enough disk space in {dir}: writing {output} needs {needed} ({detail}), and {free} is free; free some space there or write to another disk with -o"
    )]
    NoSpace {
        dir: PathBuf,
        output: PathBuf,
        needed: Bytes,
        free: Bytes,
        detail: String,
    },
}

impl From<crate::chart::repo::RepoError> for BundleError {
    fn from(e: crate::chart::repo::RepoError) -> Self {
        BundleError::Repo(Box::new(e))
    }
}

impl BundleError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BundleError::Io { path, source }
    }
}

/// A byte count as people read it (`1.6 GB (1610612736 bytes)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = sensei_core::progress::human_bytes(self.0);
        if self.0 < 1000 {
            f.write_str(&short)
        } else {
            write!(f, "{short} ({} bytes)", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bytes;

    #[test]
    fn byte_counts_read_as_people_read_them() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 kB (1536 bytes)");
        assert_eq!(Bytes(3 << 30).to_string(), "3.2 GB (3221225472 bytes)");
    }
}
