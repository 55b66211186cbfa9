//! The entry order of a bundle and each entry's place in the archive (FORMAT.md §3).
//!
//! [`entries`] is the one definition of the order the bundler writes: `oci-layout`,
//! `index.json`, every blob children first (layers, configs, manifests, then indexes by height;
//! by digest within a group), `load-images.sh`. `bundle.json` lists the entries in that order,
//! and the verifier holds the archive to the listing, so a reader may rely on it: the loader's
//! `.tar.gz` push decompresses the archive once and hands each blob to its upload as the pass
//! reaches it, so it starts its uploads in listing order, which is this order.
//!
//! [`BundleLayout`] is where each entry of a plain `.tar` lies, by the writer's own rule
//! ([`PlainLayout`]): the bundler writes a `.tar` in place from it, the loader reads a verified
//! `.tar`'s blobs by offset from it.

use std::collections::HashMap;

use crate::archive::PlainLayout;
use crate::digest::Digest;
use crate::manifest::{FileEntry, LOAD_SCRIPT_FILE};
use crate::oci::{INDEX_FILE, OCI_LAYOUT_FILE};

use super::graph::{ContentGraph, Node};

/// One entry of the archive after `bundle.json` and `bundle.sig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    OciLayout,
    IndexJson,
    Blob(Digest),
    LoadScript,
}

impl Entry {
    /// The entry's path in the archive.
    pub fn path(&self) -> String {
        match self {
            Self::OciLayout => OCI_LAYOUT_FILE.to_owned(),
            Self::IndexJson => INDEX_FILE.to_owned(),
            Self::Blob(d) => d.blob_path(),
            Self::LoadScript => LOAD_SCRIPT_FILE.to_owned(),
        }
    }

    /// The entry at this path in a bundle, if it is one of the kinds the writer lists (a blob
    /// is named by its own digest).
    pub fn of_path(path: &str) -> Option<Self> {
        match path {
            OCI_LAYOUT_FILE => Some(Self::OciLayout),
            INDEX_FILE => Some(Self::IndexJson),
            LOAD_SCRIPT_FILE => Some(Self::LoadScript),
            _ => path
                .strip_prefix(BLOB_DIR)
                .and_then(|hex| Digest::from_hex(hex).ok())
                .map(Self::Blob),
        }
    }
}

/// Where the blobs lie in a bundle (`Digest::blob_path`).
const BLOB_DIR: &str = "blobs/sha256/";

impl ContentGraph {
    /// Every blob in archive order: by (group, digest), a blob with several roles with its
    /// lowest group, so children always come before their parents.
    pub fn blob_order(&self) -> Vec<&Node> {
        let mut v: Vec<&Node> = self.nodes().collect();
        v.sort_by_key(|n| (n.kind(), n.digest));
        v
    }
}

/// The entries after `bundle.json` and `bundle.sig`, in the order the bundler writes them and
/// `bundle.json` lists them (FORMAT.md §3).
pub fn entries(graph: &ContentGraph) -> Vec<Entry> {
    let mut out = Vec::with_capacity(graph.len() + 3);
    out.extend([Entry::OciLayout, Entry::IndexJson]);
    out.extend(
        graph
            .blob_order()
            .into_iter()
            .map(|n| Entry::Blob(n.digest)),
    );
    out.push(Entry::LoadScript);
    out
}

/// Where each entry of a plain `.tar` bundle lies: `bundle.json`, `bundle.sig`, then the listed
/// files in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleLayout {
    plain: PlainLayout,
}

/// Entries before the listed files: `bundle.json` and `bundle.sig`.
const HEAD: usize = 2;

/// Where one entry lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of its header block.
    pub header: u64,
    /// Offset of its first byte.
    pub data: u64,
}

impl BundleLayout {
    /// The layout of a `.tar` with a `bundle.json` and a `bundle.sig` of these lengths, then
    /// listed files of these sizes, in order.
    pub fn new(
        manifest_len: u64,
        signature_len: u64,
        sizes: impl IntoIterator<Item = u64>,
    ) -> Self {
        Self {
            plain: PlainLayout::of([manifest_len, signature_len].into_iter().chain(sizes)),
        }
    }

    fn span(&self, i: usize) -> Span {
        Span {
            header: self.plain.headers[i],
            data: self.plain.data(i),
        }
    }

    /// `bundle.json`.
    pub fn manifest(&self) -> Span {
        self.span(0)
    }

    /// `bundle.sig`.
    pub fn signature(&self) -> Span {
        self.span(1)
    }

    /// The `i`th listed file. Panics past the last, like indexing.
    pub fn file(&self, i: usize) -> Span {
        self.span(HEAD + i)
    }

    /// The archive's length, end marker included.
    pub fn total(&self) -> u64 {
        self.plain.total
    }

    /// Where each listed file's data starts, by path, for the files `bundle.json` lists.
    /// Verification has checked that a `.tar` is exactly that (canonical headers, bodies padded
    /// to 512 bytes), so the offsets follow from the sizes alone; a mistake would fail the hash
    /// check of the bytes read.
    pub fn data_offsets(
        manifest_len: u64,
        signature_len: u64,
        files: &[FileEntry],
    ) -> HashMap<String, u64> {
        let layout = Self::new(manifest_len, signature_len, files.iter().map(|f| f.size));
        files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), layout.file(i).data))
            .collect()
    }
}
