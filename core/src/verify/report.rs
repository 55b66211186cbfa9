//! The verification report: what a human (or a script, as JSON) needs to decide to trust a bundle.

use serde::Serialize;

use super::Signed;
use crate::archive::Compression;
use crate::content::Coverage;
use crate::manifest::{ChartEntry, ImageEntry};
use crate::signature::SignatureCheck;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub name: String,
    pub version: String,
    pub created: String,
    pub expires: Option<String>,
    pub upgrade_from: String,
    /// `None` when verified from an extracted directory.
    pub compression: Option<Compression>,
    pub signatures: Vec<SignatureCheck>,
    pub trusted_signers: usize,
    pub threshold: usize,
    pub images: Vec<ImageEntry>,
    pub charts: Vec<ChartEntry>,
    pub files_checked: usize,
    pub bytes_checked: u64,
}

impl Report {
    /// What was checked is what `coverage` says the archive carries.
    pub fn new(
        signed: &Signed,
        compression: Option<Compression>,
        threshold: usize,
        coverage: &Coverage,
    ) -> Self {
        let carried = coverage.carried();
        let m = &signed.manifest;
        Self {
            name: m.name.clone(),
            version: m.version.to_string(),
            created: m.created.clone(),
            expires: m.expires.clone(),
            upgrade_from: m.compat.upgrade_from.clone(),
            compression,
            trusted_signers: crate::signature::trusted_signers(&signed.signatures).len(),
            signatures: signed.signatures.clone(),
            threshold,
            images: m.images.clone(),
            charts: m.charts.clone(),
            // bundle.json and bundle.sig are checked too.
            files_checked: carried.files + 2,
            bytes_checked: carried
                .bytes
                .saturating_add(signed.manifest_bytes.len() as u64),
        }
    }
}
