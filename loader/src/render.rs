//! Reports as a human reads them: the verdict first, then who signed, what is inside, what was checked.

use std::fmt::Write as _;

use sensei_core::content::Tally;
use sensei_core::signature::SignatureStatus;
use sensei_core::verify::Report;

use crate::inspect::Inspection;
use crate::verify::ReleaseReport;

pub use sensei_core::progress::human_bytes;

pub fn verify_report(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "VERIFIED  {} {}", r.name, r.version);
    dates(&mut s, r);
    signatures(&mut s, r, "");
    contents(&mut s, r);
    let _ = writeln!(s, "{}", checked(r));
    s
}

fn dates(s: &mut String, r: &Report) {
    let _ = writeln!(s, "  created       {}", r.created);
    let _ = writeln!(
        s,
        "  expires       {}",
        r.expires.as_deref().unwrap_or("never")
    );
    let _ = writeln!(s, "  upgrades from {}", r.upgrade_from);
}

/// Who signed, each line indented by `indent`.
fn signatures(s: &mut String, r: &Report, indent: &str) {
    let _ = writeln!(
        s,
        "{indent}signatures: {} trusted, {} required",
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
            "{indent}  [{mark:>3}] keyid {}  from {}  {}",
            c.keyid.short(),
            c.source,
            what
        );
    }
}

fn contents(s: &mut String, r: &Report) {
    let _ = writeln!(s, "images: {}", r.images.len());
    for i in &r.images {
        let _ = writeln!(s, "  {i}");
    }
    let _ = writeln!(s, "charts: {}", r.charts.len());
    for c in &r.charts {
        let _ = writeln!(s, "  {} {}  {}", c.name, c.version, c.digest);
    }
}

/// `checked N files, SIZE (CONTAINER): ...`, the line that says what was hashed.
fn checked(r: &Report) -> String {
    let container = match r.compression {
        Some(sensei_core::archive::Compression::Gzip) => "gzip archive",
        Some(sensei_core::archive::Compression::None) => "tar archive",
        None => "extracted directory",
    };
    format!(
        "checked {} files, {} ({}): every size and sha256 matched bundle.json",
        r.files_checked,
        human_bytes(r.bytes_checked),
        container
    )
}

/// `N files, SIZE`.
fn tally(t: &Tally) -> String {
    format!("{} files, {}", t.files, human_bytes(t.bytes))
}

/// Archives of a release (a part, or several archives): the verdict and what the release still
/// needs first, then each archive, then what they carry together.
pub fn release_report(rr: &ReleaseReport) -> String {
    let mut s = String::new();
    let id = &rr.release;
    let count = rr.archives.len();
    let archives = if count == 1 {
        "1 archive".to_owned()
    } else {
        format!("{count} archives")
    };
    if rr.complete {
        let _ = writeln!(
            s,
            "VERIFIED  {} {}  ({archives}, together the whole release)",
            id.name, id.version
        );
    } else {
        let _ = writeln!(
            s,
            "VERIFIED PART  {} {}  ({archives}, not the whole release: it still needs {} from \
             other archives)",
            id.name,
            id.version,
            tally(&rr.needs.tally)
        );
    }
    if let Some(first) = rr.archives.first() {
        dates(&mut s, &first.report);
    }
    let _ = writeln!(
        s,
        "  bundle.json   {}  (every archive of the release carries this one)",
        id.bundle_json
    );
    if let Some(first) = rr.archives.first() {
        contents(&mut s, &first.report);
    }
    for a in &rr.archives {
        let what = if a.complete {
            "the whole bundle"
        } else {
            "a part"
        };
        let _ = writeln!(s, "archive {}: {what}", a.path);
        signatures(&mut s, &a.report, "  ");
        let _ = writeln!(s, "  {}", checked(&a.report));
        let _ = writeln!(
            s,
            "  carries {} of the {} listed; the release needs {} beside it",
            tally(&a.carries),
            id.listed.files,
            tally(&a.needs)
        );
    }
    if rr.complete {
        let _ = writeln!(
            s,
            "together: every listed file ({}): the whole release",
            tally(&id.listed)
        );
    } else {
        let _ = writeln!(
            s,
            "together: {} of {} listed files; the release still needs {}:",
            id.listed.files.saturating_sub(rr.needs.tally.files),
            id.listed.files,
            tally(&rr.needs.tally)
        );
        for p in &rr.needs.paths {
            let _ = writeln!(s, "  {p}");
        }
        if rr.needs.more > 0 {
            let _ = writeln!(s, "  ... and {} more", rr.needs.more);
        }
    }
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
