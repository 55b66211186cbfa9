//! An OCI distribution client for Sensei bundles: credentials from Docker's config.json,
//! private CAs, plain HTTP only where asked, retries with backoff, bounded manifests, and blobs
//! streamed through a hasher in constant memory. Used by the bundler to pull (and to download
//! charts from Helm repositories, through the same client) and by the loader to push.
//!
//! Errors carry the facts (host, request, status, cause); advice that names a command-line
//! flag is the binaries' to add, as only they know their flags.
#![forbid(unsafe_code)]

pub mod client;
pub mod credentials;
pub mod error;
pub mod retry;

pub use client::{
    BlobSink, CaFile, ClientSettings, Download, FetchedManifest, FileSink, Registry, Repo,
    SetupError, Staged, read_ca_file,
};
pub use credentials::{CredentialSource, Credentials};
pub use error::{ErrorKind, RegistryError};
pub use retry::{RetryNotice, RetryPolicy, Retrying};

/// Parallel transfers when `--concurrency` is not given: enough to hide round trips on many
/// small blobs, few enough not to starve one big blob of bandwidth.
pub const DEFAULT_CONCURRENCY: usize = 8;
