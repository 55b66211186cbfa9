//! `sensei-loader verify`: trust from the operator's keys, then the core verifier's single pass.

use std::path::{Path, PathBuf};

use sensei_core::progress::Reporter;
use sensei_core::verify::{Policy, Verified, Visitor, verify_archive, verify_directory};

use crate::error::LoaderError;
use crate::open::{detached_signatures, trusted_keys};

/// What the operator asked to trust and require.
#[derive(Debug, Clone, Default)]
pub struct TrustOptions {
    pub keys: Vec<PathBuf>,
    pub signatures: Vec<PathBuf>,
    pub threshold: usize,
    pub expected_name: Option<String>,
}

impl TrustOptions {
    /// Reads the keys and signature files into a verification policy.
    pub fn policy(&self, bundle: &Path) -> Result<Policy, LoaderError> {
        if self.keys.is_empty() {
            return Err(LoaderError::input(
                bundle,
                "no trusted key: pass the release public key with --key release.pub",
            ));
        }
        let trusted = trusted_keys(&self.keys)?;
        if self.threshold > trusted.len() {
            return Err(LoaderError::input(
                bundle,
                format!(
                    "--threshold {} can never be met with {} --key file(s)",
                    self.threshold,
                    trusted.len()
                ),
            ));
        }
        Ok(Policy {
            trusted,
            threshold: self.threshold.max(1),
            detached: detached_signatures(bundle, &self.signatures)?,
            expected_name: self.expected_name.clone(),
            release: None,
            now: jiff::Timestamp::now(),
        })
    }
}

/// Verifies a bundle archive or extracted directory in one streaming pass.
pub fn verify_bundle(
    bundle: &Path,
    trust: &TrustOptions,
    reporter: &dyn Reporter,
    visitor: &mut dyn Visitor,
) -> Result<Verified, LoaderError> {
    let policy = trust.policy(bundle)?;
    let meta = std::fs::metadata(bundle)
        .map_err(|e| LoaderError::input(bundle, format!("cannot open the bundle: {e}")))?;
    let result = if meta.is_dir() {
        verify_directory(bundle, &policy, reporter, visitor)
    } else {
        let file = std::fs::File::open(bundle)
            .map_err(|e| LoaderError::input(bundle, format!("cannot open the bundle: {e}")))?;
        verify_archive(file, &policy, reporter, visitor)
    };
    result.map_err(|e| LoaderError::from_verify(e, bundle))
}
