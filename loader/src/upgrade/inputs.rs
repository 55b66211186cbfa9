//! Step 0 of the upgrade: the operator's names, durations, files and values, checked before
//! the bundle is read or the cluster asked, so a typo costs a second, not a verification.

use std::path::Path;

use super::{UpgradeError, UpgradeOptions};
use crate::error::LoaderError;

/// Step 0: what can be checked before touching the bundle or the cluster.
pub(super) fn check(opts: &UpgradeOptions) -> Result<(), UpgradeError> {
    if !is_dns_subdomain(&opts.release, 53) {
        return Err(UpgradeError::Usage(format!(
            "--release {:?} is not a Helm release name: lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit, at most 53 characters",
            opts.release
        )));
    }
    if let Some(ns) = &opts.namespace
        && (!is_dns_subdomain(ns, 63) || ns.contains('.'))
    {
        return Err(UpgradeError::Usage(format!(
            "-n {ns:?} is not a Kubernetes namespace name: lowercase letters, digits and '-', \
             at most 63 characters"
        )));
    }
    if !is_go_duration(&opts.timeout) {
        return Err(UpgradeError::Usage(format!(
            "--timeout {:?} is not a duration helm reads: write e.g. 15m, 90s or 1h30m",
            opts.timeout
        )));
    }
    crate::push::source::require_seekable(&opts.bundle).map_err(UpgradeError::Loader)?;
    for f in &opts.values {
        let remote = f.starts_with("http://") || f.starts_with("https://");
        if !remote && !Path::new(f).is_file() {
            return Err(UpgradeError::Loader(LoaderError::input(
                f,
                "values file (-f) not found or not a file",
            )));
        }
    }
    if let Some(bad) = opts.set.iter().find(|s| !s.contains('=')) {
        return Err(UpgradeError::Usage(format!(
            "--set {bad:?} has no value: write KEY=VALUE"
        )));
    }
    Ok(())
}

/// RFC 1123 subdomain (what Helm requires of release names), at most `max` characters.
fn is_dns_subdomain(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A Go `time.ParseDuration` string with units (`15m`, `1h30m`, `2.5s`).
pub(super) fn is_go_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            // Longest first where one unit prefixes another ("ms" before "m").
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}
