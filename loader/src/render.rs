//! Reports as a human reads them: the verdict first, then who signed, what is inside, what was checked.

use std::fmt::Write as _;

use sensei_core::signature::SignatureStatus;
use sensei_core::verify::Report;

use crate::inspect::Inspection;

pub use sensei_core::progress::human_bytes;

pub fn verify_report(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "VERIFIED  {} {}", r.name, r.version);
    let _ = writeln!(s, "  created       {}", r.created);
    let _ = writeln!(
        s,
        "  expires       {}",
        r.expires.as_deref().unwrap_or("never")
    );
    let _ = writeln!(s, "  upgrades from {}", r.upgrade_from);
    let _ = writeln!(
        s,
        "signatures: {} trusted, {} required",
        r.trusted_signers, r.threshold
    );
    for c in &r.signatures {
        let (mark, what) = match &c.status {
            SignatureStatus::Trusted { key } => ("ok", format!("valid, trusted key {key}")),
            SignatureStatus::Invalid { key } => ("BAD", format!("INVALID for trusted key {key}")),
            SignatureStatus::Untrusted => (
                "--",
                "key not trusted (not passed with --key); not counted".to_owned(),
            ),
            SignatureStatus::Unsupported { alg } => {
                ("--", format!("unsupported algorithm {alg}; not counted"))
            }
        };
        let _ = writeln!(
            s,
            "  [{mark:>3}] keyid {}  from {}  {}",
            c.keyid.short(),
            c.source,
            what
        );
    }
    let _ = writeln!(s, "images: {}", r.images.len());
    for i in &r.images {
        let _ = writeln!(s, "  {i}");
    }
    let _ = writeln!(s, "charts: {}", r.charts.len());
    for c in &r.charts {
        let _ = writeln!(s, "  {} {}  {}", c.name, c.version, c.digest);
    }
    let container = match r.compression {
        Some(sensei_core::archive::Compression::Gzip) => "gzip archive",
        Some(sensei_core::archive::Compression::None) => "tar archive",
        None => "extracted directory",
    };
    let _ = writeln!(
        s,
        "checked {} files, {} ({}): every size and sha256 matched bundle.json",
        r.files_checked,
        human_bytes(r.bytes_checked),
        container
    );
    s
}

pub fn inspection(i: &Inspection) -> String {
    let m = &i.manifest;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "UNVERIFIED  {} {}  (inspect checks no signature and no hash: run `sensei-loader verify` before trusting it)",
        m.name, m.version
    );
    let _ = writeln!(s, "  created       {}", m.created);
    let _ = writeln!(
        s,
        "  expires       {}",
        m.expires.as_deref().unwrap_or("never")
    );
    let _ = writeln!(s, "  upgrades from {}", m.compat.upgrade_from);
    let _ = writeln!(s, "signatures claimed: {}", i.signatures.len());
    for sig in &i.signatures {
        let _ = writeln!(s, "  keyid {} ({})", sig.keyid, sig.alg);
    }
    let _ = writeln!(s, "images: {}", m.images.len());
    for img in &m.images {
        let _ = writeln!(s, "  {img}");
    }
    let _ = writeln!(s, "charts: {}", m.charts.len());
    for c in &m.charts {
        let _ = writeln!(s, "  {} {}  {}", c.name, c.version, c.digest);
    }
    let _ = writeln!(
        s,
        "files: {} ({})",
        m.files.len(),
        human_bytes(m.total_bytes())
    );
    s
}
