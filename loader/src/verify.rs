//! `sensei-loader verify`: trust from the operator's keys, then the core verifier's single pass;
//! for archives of a release (parts, FORMAT.md §14), each alone, then what they carry together.

use std::path::{Path, PathBuf};

use serde::Serialize;

use sensei_core::content::{Coverage, Tally};
use sensei_core::digest::Digest;
use sensei_core::manifest::BundleManifest;
use sensei_core::progress::{Reporter, human_bytes};
use sensei_core::verify::{
    Policy, Rejection, Report, Scope, Verified, Visitor, verify_archive_in, verify_directory_in,
};

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

/// Verifies a bundle archive or extracted directory in one streaming pass: every listed file
/// must be in it.
pub fn verify_bundle(
    bundle: &Path,
    trust: &TrustOptions,
    reporter: &dyn Reporter,
    visitor: &mut dyn Visitor,
) -> Result<Verified, LoaderError> {
    let policy = trust.policy(bundle)?;
    verify_at(bundle, &policy, Scope::Whole, reporter, visitor)
}

fn verify_at(
    bundle: &Path,
    policy: &Policy,
    scope: Scope,
    reporter: &dyn Reporter,
    visitor: &mut dyn Visitor,
) -> Result<Verified, LoaderError> {
    let meta = std::fs::metadata(bundle)
        .map_err(|e| LoaderError::input(bundle, format!("cannot open the bundle: {e}")))?;
    let result = if meta.is_dir() {
        verify_directory_in(scope, bundle, policy, reporter, visitor)
    } else {
        let file = std::fs::File::open(bundle)
            .map_err(|e| LoaderError::input(bundle, format!("cannot open the bundle: {e}")))?;
        verify_archive_in(scope, file, policy, reporter, visitor)
    };
    result.map_err(|e| LoaderError::from_verify(e, bundle))
}

/// One archive of a release, verified alone.
#[derive(Debug, Clone)]
pub struct ArchiveCheck {
    pub path: PathBuf,
    pub verified: Verified,
}

/// Archives of one release, each verified alone, and what they carry together (FORMAT.md
/// §14.3).
#[derive(Debug, Clone)]
pub struct ReleaseCheck {
    /// In the order given; never empty.
    pub archives: Vec<ArchiveCheck>,
    pub together: Coverage,
}

/// Verifies each archive (`.tar`, `.tar.gz` or extracted directory) of a release alone, each
/// may be a part; refuses archives of different releases, naming both, before the bodies of
/// the second are read. The first failure ends it.
///
/// With `require_complete`, the archives must carry the whole release together; one archive
/// alone is then verified as a bundle, so it fails at its first missing file as `verify`
/// always did.
pub fn verify_release(
    archives: &[PathBuf],
    trust: &TrustOptions,
    require_complete: bool,
    reporter: &dyn Reporter,
) -> Result<ReleaseCheck, LoaderError> {
    let several = archives.len() > 1;
    let scope = if require_complete && !several {
        Scope::Whole
    } else {
        Scope::Part
    };
    let mut checked: Vec<ArchiveCheck> = Vec::with_capacity(archives.len());
    let mut together: Option<Coverage> = None;
    for path in archives {
        let mut policy = trust.policy(path)?;
        policy.release = together.as_ref().map(Coverage::release);
        let verified = match verify_at(path, &policy, scope, reporter, &mut ()) {
            Ok(v) => v,
            Err(LoaderError::Rejected(Rejection::OtherRelease { found, .. })) => {
                return Err(mixed(&checked, path, found));
            }
            Err(LoaderError::Rejected(reason)) if several => {
                return Err(LoaderError::Rejected(Rejection::InArchive {
                    archive: path.display().to_string(),
                    reason: Box::new(reason),
                }));
            }
            Err(e) => return Err(e),
        };
        match &mut together {
            None => together = Some(verified.coverage.clone()),
            // The release was checked right after the signature; this one would be a file
            // that changed since.
            Some(t) => t
                .merge(&verified.coverage)
                .map_err(|e| mixed(&checked, path, e.theirs))?,
        }
        checked.push(ArchiveCheck {
            path: path.clone(),
            verified,
        });
    }
    let together =
        together.ok_or_else(|| LoaderError::input(".", "no archive given: name one or more"))?;
    let check = ReleaseCheck {
        archives: checked,
        together,
    };
    if require_complete {
        check.require_complete()?;
    }
    Ok(check)
}

/// Archives of two releases given together: each named with what identifies its release.
fn mixed(checked: &[ArchiveCheck], second: &Path, found: Digest) -> LoaderError {
    let first = checked.first().map_or_else(String::new, |a| {
        let m = &a.verified.manifest;
        format!(
            "{} ({} {}, bundle.json {})",
            a.path.display(),
            m.name,
            m.version,
            a.verified.coverage.release()
        )
    });
    LoaderError::Rejected(Rejection::MixedReleases {
        first,
        second: format!("{} (bundle.json {found})", second.display()),
    })
}

impl ReleaseCheck {
    /// The signed `bundle.json` all the archives carry.
    pub fn manifest(&self) -> &BundleManifest {
        &self.archives[0].verified.manifest
    }

    /// The one archive given, when it carries every listed file: a bundle, reported as
    /// `verify` always reported one.
    pub fn single_bundle(&self) -> Option<&Verified> {
        match self.archives.as_slice() {
            [one] if one.verified.coverage.is_complete() => Some(&one.verified),
            _ => None,
        }
    }

    /// The archives must carry the whole release together (what `verify` asks unless told
    /// that parts are expected).
    pub fn require_complete(&self) -> Result<(), Rejection> {
        if self.together.is_complete() {
            return Ok(());
        }
        let needed = self.together.needed();
        Err(Rejection::Incomplete {
            carried: self.together.carried().files,
            listed: self.together.listed().files,
            needed: needed.files,
            bytes: human_bytes(needed.bytes),
            first: self
                .together
                .needed_files(&self.manifest().files)
                .next()
                .map(|f| f.path.clone())
                .unwrap_or_default(),
        })
    }

    /// The report of `verify --json` for anything but one whole bundle.
    pub fn report(&self) -> ReleaseReport {
        let files = &self.manifest().files;
        let needed: Vec<String> = self
            .together
            .needed_files(files)
            .map(|f| f.path.clone())
            .collect();
        let m = self.manifest();
        ReleaseReport {
            verdict: if self.together.is_complete() {
                "verified"
            } else {
                "partial"
            },
            complete: self.together.is_complete(),
            release: ReleaseId {
                name: m.name.clone(),
                version: m.version.to_string(),
                bundle_json: self.together.release(),
                listed: self.together.listed(),
            },
            archives: self
                .archives
                .iter()
                .map(|a| ArchiveReport {
                    path: a.path.display().to_string(),
                    complete: a.verified.coverage.is_complete(),
                    carries: a.verified.coverage.carried(),
                    needs: a.verified.coverage.needed(),
                    report: a.verified.report.clone(),
                })
                .collect(),
            needs: Needs {
                tally: self.together.needed(),
                more: needed.len().saturating_sub(NEEDED_SHOWN),
                paths: needed.into_iter().take(NEEDED_SHOWN).collect(),
            },
        }
    }
}

/// How many of the files a release still needs are named in a report (the count says the rest).
pub const NEEDED_SHOWN: usize = 20;

/// What `verify` reports on archives of a release (FORMAT.md §14; README's `verify`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseReport {
    /// `verified` when the archives carry the whole release together, else `partial`.
    pub verdict: &'static str,
    pub complete: bool,
    pub release: ReleaseId,
    pub archives: Vec<ArchiveReport>,
    /// What the release still needs from other archives, together.
    pub needs: Needs,
}

/// Which release: its name and version, and the sha256 of its `bundle.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseId {
    pub name: String,
    pub version: String,
    #[serde(rename = "bundleJson")]
    pub bundle_json: Digest,
    /// The files `bundle.json` lists, and their bytes.
    pub listed: Tally,
}

/// One archive: what it carries, what its release needs beside it, and its verification.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveReport {
    pub path: String,
    /// It carries every listed file: a whole bundle.
    pub complete: bool,
    pub carries: Tally,
    pub needs: Tally,
    pub report: Report,
}

/// Files and bytes still needed, the first [`NEEDED_SHOWN`] by path, and how many more.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Needs {
    #[serde(flatten)]
    pub tally: Tally,
    pub paths: Vec<String>,
    pub more: usize,
}
