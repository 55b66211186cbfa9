//! What README promises about a `.tar.gz` bundle, checked on its bytes: every layer (already
//! compressed) lies in deflate stored blocks, never recompressed, while `bundle.json`,
//! `index.json`, tar headers and the end marker lie in Huffman-coded blocks.
//!
//! The tar entries are found by walking the uncompressed stream's own 512-byte headers, and the
//! layers by reading the image manifests inside the bundle, so nothing here trusts the writer or
//! the bundle reader: the blocks come from [`crate::deflate_blocks`], written from the RFCs.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;

use crate::deflate_blocks::{BlockKind, Walk, walk_gzip};

const BLOCK: u64 = 512;

/// One tar entry: its name and where its header and data lie in the uncompressed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub name: String,
    pub header: Range<u64>,
    pub data: Range<u64>,
}

/// A tar stream's entries, and the range from the end-of-archive marker to the stream's end.
pub fn tar_entries(tar: &[u8]) -> Result<(Vec<TarEntry>, Range<u64>), String> {
    let mut entries = Vec::new();
    let mut at = 0u64;
    loop {
        let h = tar
            .get(at as usize..(at + BLOCK) as usize)
            .ok_or_else(|| format!("no end-of-archive marker (stream ends at {at})"))?;
        if h.iter().all(|&b| b == 0) {
            return Ok((entries, at..tar.len() as u64));
        }
        let name = header_name(h);
        let size = header_size(h).ok_or_else(|| format!("{name}: bad size field"))?;
        let data = at + BLOCK..at + BLOCK + size;
        if data.end > tar.len() as u64 {
            return Err(format!("{name}: data runs past the stream"));
        }
        entries.push(TarEntry {
            name,
            header: at..at + BLOCK,
            data: data.clone(),
        });
        at = data.end.div_ceil(BLOCK) * BLOCK;
    }
}

/// ustar name: `prefix/name` when the prefix field (345..500) is set.
fn header_name(h: &[u8]) -> String {
    let field = |r: Range<usize>| {
        let f = &h[r];
        let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
        String::from_utf8_lossy(&f[..end]).into_owned()
    };
    let (name, prefix) = (field(0..100), field(345..500));
    if &h[257..262] == b"ustar" && !prefix.is_empty() {
        format!("{prefix}/{name}")
    } else {
        name
    }
}

/// The size field: octal, or GNU base-256 when its first byte has the high bit set.
fn header_size(h: &[u8]) -> Option<u64> {
    let f = &h[124..136];
    if f[0] & 0x80 != 0 {
        return Some(f[4..].iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)));
    }
    let digits: String = f
        .iter()
        .map(|&b| b as char)
        .filter(|c| !matches!(c, '\0' | ' '))
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(&digits, 8).ok()
}

/// The blobs that image manifests in the bundle list as gzip layers (media type ending in
/// `gzip`: OCI `tar+gzip`, Docker `tar.gzip`, Helm's `content.v1.tar+gzip`), by entry name.
pub fn gzip_layers_listed(tar: &[u8], entries: &[TarEntry]) -> BTreeSet<String> {
    let mut layers = BTreeSet::new();
    for e in entries
        .iter()
        .filter(|e| e.name.starts_with("blobs/sha256/"))
    {
        let body = &tar[e.data.start as usize..e.data.end as usize];
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
            continue;
        };
        for layer in doc["layers"].as_array().into_iter().flatten() {
            let media_type = layer["mediaType"].as_str().unwrap_or("");
            if let Some(hex) = layer["digest"]
                .as_str()
                .and_then(|d| d.strip_prefix("sha256:"))
                .filter(|_| media_type.ends_with("gzip"))
            {
                layers.insert(format!("blobs/sha256/{hex}"));
            }
        }
    }
    layers
}

/// What [`check`] found: the decoded stream and its entries, which entries it held to stored
/// blocks, and every broken promise (empty when the framing is as README says).
#[derive(Debug)]
pub struct Framing {
    pub walk: Walk,
    pub entries: Vec<TarEntry>,
    /// Entries whose data must be stored: listed gzip layers and any blob of at least 4 KiB
    /// that starts with the gzip magic.
    pub layers: BTreeSet<String>,
    pub violations: Vec<String>,
}

impl Framing {
    /// Panics listing every violation.
    pub fn assert_holds(&self, what: &str) {
        assert!(
            self.violations.is_empty(),
            "{what}: the gzip framing breaks README's promise:\n{}",
            self.violations.join("\n")
        );
    }
}

/// Checks a `.tar.gz` bundle's bytes; `Err` only when it cannot be decoded at all.
pub fn check(tgz: &[u8]) -> Result<Framing, String> {
    let walk = walk_gzip(tgz)?;
    let (entries, end_marker) = tar_entries(&walk.output)?;
    let tar = &walk.output;
    let listed = gzip_layers_listed(tar, &entries);
    let mut violations = Vec::new();
    let present: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    for missing in listed.iter().filter(|l| !present.contains(l.as_str())) {
        violations.push(format!(
            "{missing}: listed as a layer but not in the archive"
        ));
    }
    let mut layers = listed;
    for e in entries
        .iter()
        .filter(|e| e.name.starts_with("blobs/sha256/"))
    {
        let body = &tar[e.data.start as usize..e.data.end as usize];
        if body.len() >= 4096 && body.starts_with(&[0x1f, 0x8b]) {
            layers.insert(e.name.clone());
        }
    }

    let mut expect = |what: String, range: Range<u64>, stored: bool| {
        let bad = walk.outside(range.clone(), |k| {
            if stored {
                k == BlockKind::Stored
            } else {
                k.is_compressed()
            }
        });
        if !bad.is_empty() {
            let len = range.end - range.start;
            let n: u64 = bad.iter().map(|r| r.end - r.start).sum();
            let mut msg = format!(
                "{what}: {n} of {len} bytes are in {} blocks, at stream offsets",
                if stored { "Huffman-coded" } else { "stored" },
            );
            for r in bad.iter().take(5) {
                let _ = write!(msg, " {}..{}", r.start, r.end);
            }
            violations.push(msg);
        }
    };
    for e in &entries {
        if layers.contains(&e.name) {
            expect(format!("layer {}", e.name), e.data.clone(), true);
            // Its header shares the layer's stored member (FORMAT.md 2.3): 512 bytes, by design.
            continue;
        }
        expect(format!("tar header of {}", e.name), e.header.clone(), false);
        if e.name == "bundle.json" || e.name == "index.json" {
            expect(e.name.clone(), e.data.clone(), false);
        }
    }
    expect("end-of-archive marker".into(), end_marker, false);
    for name in ["bundle.json", "index.json"] {
        if !present.contains(name) {
            violations.push(format!("{name}: not in the archive"));
        }
    }
    Ok(Framing {
        walk,
        entries,
        layers,
        violations,
    })
}

#[cfg(test)]
mod tests;
