//! What push needs from a bundle besides its blobs: `index.json` and every manifest and index,
//! kept in memory (bounded) as the verifier streams past them (alone, or in a [`Tee`] beside
//! another visitor of the same pass).
//!
//! A file's bytes are kept only once the verifier reports them verified (`file_end`). Which
//! blobs are manifests is only known from their parents, which come later in the archive, so
//! every small blob that is a JSON object is buffered while it streams and kept if it has the
//! shape of an image manifest or index. [`Collected::read`] reads the same files straight from
//! a `.tar` or directory once the signature holds, so registry checks can start while the
//! verification pass is still running.

use std::collections::HashMap;
use std::path::Path;

use sensei_core::archive::{TarReader, open_stream};
use sensei_core::digest::{Digest, Hasher};
use sensei_core::manifest::FileEntry;
use sensei_core::oci::{INDEX_FILE, MAX_MANIFEST_BYTES};
use sensei_core::verify::Visitor;

use super::kind::Kind;

/// The most manifest and index bytes kept for one push: far more than any real product
/// (a manifest is a few KiB), small enough that a hostile bundle can't exhaust memory.
pub const MAX_KEPT_BYTES: u64 = 64 * 1024 * 1024;

const BLOB_PREFIX: &str = "blobs/sha256/";

/// `index.json` and the manifests and indexes of a verified bundle, by digest.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub index_json: Vec<u8>,
    pub manifests: HashMap<Digest, Vec<u8>>,
    /// Bytes held in `manifests`.
    pub kept_bytes: u64,
    /// Set when the bundle's manifests passed [`MAX_KEPT_BYTES`]: push refuses such a bundle.
    pub over_limit: bool,
}

/// The fields that tell an image manifest or index from any other JSON blob (configs).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    schema_version: Option<u32>,
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
}

fn is_manifest_like(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Shape>(bytes).is_ok_and(|s| {
        s.schema_version == Some(2)
            && (s.manifests.is_some() || (s.config.is_some() && s.layers.is_some()))
    })
}

impl Collected {
    /// Keeps a verified file if it is `index.json` or looks like a manifest.
    fn keep(&mut self, path: &str, bytes: Vec<u8>) {
        if path == INDEX_FILE {
            self.index_json = bytes;
            return;
        }
        let Some(digest) = path
            .strip_prefix(BLOB_PREFIX)
            .and_then(|hex| Digest::from_hex(hex).ok())
        else {
            return;
        };
        if !is_manifest_like(&bytes) {
            return;
        }
        self.kept_bytes += bytes.len() as u64;
        if self.kept_bytes > MAX_KEPT_BYTES {
            self.over_limit = true;
            self.manifests.clear();
            return;
        }
        self.manifests.insert(digest, bytes);
    }

    /// Reads `index.json` and every small JSON blob listed in `files` straight from the
    /// bundle: by offset from a `.tar`, file by file from a directory, in one decompressing
    /// pass from a `.tar.gz`. Each is checked against its listed size and sha256, so what is
    /// kept is authentic as soon as `files` is (a signed `bundle.json`'s).
    pub fn read(
        bundle: &Path,
        kind: Kind,
        files: &[FileEntry],
        offsets: &HashMap<String, u64>,
    ) -> std::io::Result<Self> {
        let mut collector = Collector::default();
        let mut keep = |entry: &FileEntry, bytes: Vec<u8>| -> std::io::Result<()> {
            let mut hasher = Hasher::new();
            hasher.update(&bytes);
            if hasher.len() != entry.size || hasher.finish().hex() != entry.sha256 {
                return Err(changed(&entry.path));
            }
            collector.file_start(entry);
            collector.file_chunk(entry, &bytes);
            collector.file_end(entry);
            Ok(())
        };
        let wanted = |e: &FileEntry| {
            e.size <= MAX_MANIFEST_BYTES
                && (e.path == INDEX_FILE || e.path.starts_with(BLOB_PREFIX))
        };
        match kind {
            Kind::Directory => {
                for entry in files.iter().filter(|e| wanted(e)) {
                    let path = bundle.join(&entry.path);
                    let meta = std::fs::symlink_metadata(&path)?;
                    if !meta.file_type().is_file() {
                        return Err(changed(&entry.path));
                    }
                    let file = std::fs::File::open(&path)?;
                    if let Some(bytes) = read_json_at(&file, 0, entry)? {
                        keep(entry, bytes)?;
                    }
                }
            }
            Kind::Tar => {
                let file = std::fs::File::open(bundle)?;
                for entry in files.iter().filter(|e| wanted(e)) {
                    let offset = *offsets
                        .get(&entry.path)
                        .ok_or_else(|| changed(&entry.path))?;
                    if let Some(bytes) = read_json_at(&file, offset, entry)? {
                        keep(entry, bytes)?;
                    }
                }
            }
            Kind::Gzip => {
                let listed: HashMap<&str, &FileEntry> =
                    files.iter().map(|f| (f.path.as_str(), f)).collect();
                let (stream, _) = open_stream(std::fs::File::open(bundle)?)?;
                let mut tar = TarReader::new(stream);
                let archive = |e: sensei_core::archive::ArchiveError| changed(&e.to_string());
                while let Some(h) = tar.next_header().map_err(archive)? {
                    let Some(entry) = listed.get(h.path.as_str()) else {
                        continue;
                    };
                    if wanted(entry) && h.size == entry.size {
                        keep(entry, tar.read_body_to_vec().map_err(archive)?)?;
                    }
                }
            }
        }
        Ok(collector.finish())
    }
}

fn changed(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{what}: the bundle changed since it was verified; copy it again"),
    )
}

/// A file's bytes at `offset` if they start like a JSON object (`index.json` always).
fn read_json_at(
    file: &std::fs::File,
    offset: u64,
    entry: &FileEntry,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt as _;
    let size = usize::try_from(entry.size).map_err(|_| changed(&entry.path))?;
    let mut head = [0u8; 64];
    let head = &mut head[..size.min(64)];
    file.read_exact_at(head, offset)?;
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    if entry.path != INDEX_FILE && first.is_some_and(|&b| b != b'{') {
        return Ok(None);
    }
    let mut bytes = vec![0u8; size];
    file.read_exact_at(&mut bytes, offset)?;
    Ok(Some(bytes))
}

/// A verifier [`Visitor`] that collects `index.json` and the manifests for push.
#[derive(Debug, Default)]
pub struct Collector {
    current: Option<Vec<u8>>,
    collected: Collected,
}

impl Collector {
    pub fn finish(self) -> Collected {
        self.collected
    }
}

impl Visitor for Collector {
    fn file_start(&mut self, entry: &FileEntry) {
        let candidate = entry.size <= MAX_MANIFEST_BYTES
            && (entry.path == INDEX_FILE || entry.path.starts_with(BLOB_PREFIX))
            && !self.collected.over_limit;
        self.current = candidate.then(Vec::new);
    }

    fn file_chunk(&mut self, entry: &FileEntry, chunk: &[u8]) {
        let Some(buf) = &mut self.current else {
            return;
        };
        // Layers are binary: drop them at their first byte rather than buffer up to 4 MiB.
        if buf.is_empty() && entry.path != INDEX_FILE {
            let first = chunk.iter().find(|b| !b.is_ascii_whitespace());
            if first.is_some_and(|&b| b != b'{') {
                self.current = None;
                return;
            }
        }
        buf.extend_from_slice(chunk);
    }

    /// Called only once the file's size and sha256 matched `bundle.json`.
    fn file_end(&mut self, entry: &FileEntry) {
        if let Some(bytes) = self.current.take() {
            self.collected.keep(&entry.path, bytes);
        }
    }
}

/// Two visitors fed the same stream: e.g. upgrade's chart collector and push's [`Collector`]
/// in one verification pass.
#[derive(Debug)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: Visitor, B: Visitor> Visitor for Tee<A, B> {
    fn file_start(&mut self, entry: &FileEntry) {
        self.0.file_start(entry);
        self.1.file_start(entry);
    }

    fn file_chunk(&mut self, entry: &FileEntry, chunk: &[u8]) {
        self.0.file_chunk(entry, chunk);
        self.1.file_chunk(entry, chunk);
    }

    fn file_end(&mut self, entry: &FileEntry) {
        self.0.file_end(entry);
        self.1.file_end(entry);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(path: &str, bytes: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: bytes.len() as u64,
            sha256: Digest::of(bytes).hex(),
        }
    }

    fn feed(c: &mut Collector, path: &str, bytes: &[u8], verified: bool) {
        let e = entry(path, bytes);
        c.file_start(&e);
        for chunk in bytes.chunks(7) {
            c.file_chunk(&e, chunk);
        }
        if verified {
            c.file_end(&e);
        }
    }

    #[test]
    fn keeps_index_and_manifests_only_once_verified() {
        let manifest = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let layer = b"\x1f\x8b binary";
        let mut c = Collector::default();
        feed(&mut c, "index.json", b"{\"manifests\":[]}", true);
        for bytes in [&manifest[..], &index[..], &config[..], &layer[..]] {
            feed(&mut c, &Digest::of(bytes).blob_path(), bytes, true);
        }
        let unverified = br#"{"schemaVersion":2,"manifests":[1]}"#;
        feed(
            &mut c,
            &Digest::of(unverified).blob_path(),
            unverified,
            false,
        );
        let got = c.finish();
        assert_eq!(got.index_json, b"{\"manifests\":[]}");
        let mut keys: Vec<_> = got.manifests.keys().copied().collect();
        keys.sort();
        let mut want = vec![Digest::of(manifest), Digest::of(index)];
        want.sort();
        assert_eq!(keys, want);
        assert!(!got.over_limit);
    }

    #[test]
    fn tee_feeds_both() {
        let mut t = Tee(Collector::default(), Collector::default());
        let m = br#"{"schemaVersion":2,"manifests":[]}"#;
        feed_tee(&mut t, &Digest::of(m).blob_path(), m);
        assert_eq!(t.0.finish().manifests.len(), 1);
        assert_eq!(t.1.finish().manifests.len(), 1);
    }

    fn feed_tee(t: &mut Tee<Collector, Collector>, path: &str, bytes: &[u8]) {
        let e = entry(path, bytes);
        t.file_start(&e);
        t.file_chunk(&e, bytes);
        t.file_end(&e);
    }
}
