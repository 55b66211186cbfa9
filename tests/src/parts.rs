//! Archives of one release for tests (FORMAT.md §14), until `sensei-bundler create` writes parts:
//! a whole `.tar` bundle is read back with the independent reader of [`crate::craft`], and
//! archives of the same release are written from its entries with the core's own
//! `TarWriter`, the way the bundler writes bundles: `bundle.json`, `bundle.sig`, then the
//! listed files picked.

use std::fs;
use std::path::{Path, PathBuf};

use sensei_core::archive::{OutputCompression, TarWriter};
use sensei_core::manifest::file_mode;

use crate::craft;

/// A whole bundle's entries: `bundle.json`, `bundle.sig`, and the listed files in listing order.
#[derive(Debug, Clone)]
pub struct Release {
    /// The tar mtime of every entry: `created`.
    pub mtime: u64,
    pub manifest: craft::Entry,
    pub signature: craft::Entry,
    /// The listed files, in listing order.
    pub files: Vec<craft::Entry>,
}

impl Release {
    /// Reads a whole bundle written as a plain `.tar`.
    pub fn read(bundle: &Path) -> Self {
        let bytes = fs::read(bundle).unwrap_or_else(|e| panic!("{}: {e}", bundle.display()));
        let mut entries = craft::parse(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", bundle.display()))
            .into_iter();
        let (Some(manifest), Some(signature)) = (entries.next(), entries.next()) else {
            panic!("{}: no bundle.json and bundle.sig", bundle.display())
        };
        assert_eq!(
            (manifest.path.as_str(), signature.path.as_str()),
            ("bundle.json", "bundle.sig")
        );
        Self {
            mtime: manifest.mtime,
            manifest,
            signature,
            files: entries.collect(),
        }
    }

    /// The index of the listed file at `path`.
    pub fn index(&self, path: &str) -> usize {
        self.files
            .iter()
            .position(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} is not listed"))
    }

    /// Writes `bundle.json`, `bundle.sig`, then the listed files at `picks` in the order given
    /// (listing order for a part; any other for a hostile one). `.gz` in `out` gzips it.
    pub fn write(&self, out: &Path, picks: &[usize]) -> PathBuf {
        let files: Vec<(&str, &[u8])> = picks
            .iter()
            .map(|&i| (self.files[i].path.as_str(), self.files[i].body.as_slice()))
            .collect();
        self.write_entries(out, &files)
    }

    /// Writes `bundle.json`, `bundle.sig`, then these entries as given: listed or not.
    pub fn write_entries(&self, out: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let compression = OutputCompression::from_path(out);
        let mut w = TarWriter::new(Vec::new(), compression, self.mtime);
        let head = [&self.manifest, &self.signature];
        let all = head
            .iter()
            .map(|e| (e.path.as_str(), e.body.as_slice()))
            .chain(files.iter().copied());
        for (path, body) in all {
            w.append(path, body.len() as u64, file_mode(path), body, |_| {})
                .unwrap_or_else(|e| panic!("writing {path}: {e}"));
        }
        let bytes = w.finish().expect("finish the archive");
        fs::write(out, bytes).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        out.to_path_buf()
    }

    /// The listing cut into `n` runs of consecutive files, each written as
    /// `DIR/STEM.part-K-of-N.EXT` (`EXT` `tar` or `tar.gz`).
    pub fn split(&self, dir: &Path, stem: &str, ext: &str, n: usize) -> Vec<PathBuf> {
        let len = self.files.len();
        (0..n)
            .map(|k| {
                let picks: Vec<usize> = (k * len / n..(k + 1) * len / n).collect();
                let out = dir.join(format!("{stem}.part-{}-of-{n}.{ext}", k + 1));
                self.write(&out, &picks)
            })
            .collect()
    }
}
