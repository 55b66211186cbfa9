//! What an archive of a release carries, and what the release still needs from elsewhere
//! (FORMAT.md §14).
//!
//! Every archive of one release carries the same signed `bundle.json`; it lists every file of
//! the release, in the order of [`super::entries`]. An archive carries some of those files, in
//! that order. [`Coverage`] is which ones, by their place in the listing: the verifier marks a
//! file once its bytes have checked out, and the coverages of several archives of one release
//! add up to what they carry together. Pure: no I/O.

use serde::Serialize;

use crate::digest::Digest;
use crate::manifest::FileEntry;

use super::order::Entry;

/// A number of files and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub files: usize,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, size: u64) {
        self.files += 1;
        // A signed listing could claim sizes that overflow when added; they are only reported.
        self.bytes = self.bytes.saturating_add(size);
    }
}

/// Which of a release's listed files an archive (or a set of archives) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// sha256 of the release's `bundle.json`: what makes two archives archives of one release.
    release: Digest,
    /// Each listed file's size, in listing order.
    sizes: Vec<u64>,
    /// Whether the archive carries each listed file, in listing order.
    carried: Vec<bool>,
}

/// Two archives whose `bundle.json` differ: they belong to different releases (or one was
/// altered), and what one carries says nothing about what the other's release needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bundle.json sha256 {theirs} is another release's than {ours}: archives of one release \
     carry the same bundle.json"
)]
pub struct OtherRelease {
    pub ours: Digest,
    pub theirs: Digest,
}

impl Coverage {
    /// Nothing carried yet of the release whose `bundle.json` has these bytes and lists `files`.
    pub fn none(manifest_bytes: &[u8], files: &[FileEntry]) -> Self {
        Self {
            release: Digest::of(manifest_bytes),
            sizes: files.iter().map(|f| f.size).collect(),
            carried: vec![false; files.len()],
        }
    }

    /// Every listed file carried: a whole bundle.
    pub fn all(manifest_bytes: &[u8], files: &[FileEntry]) -> Self {
        let mut c = Self::none(manifest_bytes, files);
        c.carried.fill(true);
        c
    }

    /// Marks the `index`th listed file carried (its bytes checked out). Past the listing it is
    /// ignored: the verifier only marks files it found listed.
    pub fn carry(&mut self, index: usize) {
        if let Some(c) = self.carried.get_mut(index) {
            *c = true;
        }
    }

    /// Whether the `index`th listed file is carried.
    pub fn carries(&self, index: usize) -> bool {
        self.carried.get(index).copied().unwrap_or(false)
    }

    /// sha256 of the release's `bundle.json`.
    pub fn release(&self) -> Digest {
        self.release
    }

    /// Every listed file is carried: the archive (or set) is the whole release.
    pub fn is_complete(&self) -> bool {
        self.carried.iter().all(|&c| c)
    }

    /// The files listed, and their bytes.
    pub fn listed(&self) -> Tally {
        self.tally(|_| true)
    }

    /// The listed files carried, and their bytes.
    pub fn carried(&self) -> Tally {
        self.tally(|c| c)
    }

    /// The listed files not carried: what the release still needs from elsewhere.
    pub fn needed(&self) -> Tally {
        self.tally(|c| !c)
    }

    fn tally(&self, pick: impl Fn(bool) -> bool) -> Tally {
        let mut t = Tally::default();
        for (&size, _) in self
            .sizes
            .iter()
            .zip(&self.carried)
            .filter(|(_, c)| pick(**c))
        {
            t.add(size);
        }
        t
    }

    /// The listed files not carried, in listing order. `files` is the listing this coverage
    /// was made from (`bundle.json`'s `files`).
    pub fn needed_files<'f>(&self, files: &'f [FileEntry]) -> impl Iterator<Item = &'f FileEntry> {
        files
            .iter()
            .zip(&self.carried)
            .filter(|(_, c)| !**c)
            .map(|(f, _)| f)
    }

    /// The blobs among the files not carried, by digest: what a registry may already hold.
    pub fn needed_blobs(&self, files: &[FileEntry]) -> Vec<Digest> {
        self.needed_files(files)
            .filter_map(|f| match Entry::of_path(&f.path) {
                Some(Entry::Blob(d)) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// Adds what another archive of the same release carries.
    pub fn merge(&mut self, other: &Coverage) -> Result<(), OtherRelease> {
        // One bundle.json lists one set of files, so equal digests mean equal listings.
        if other.release != self.release || other.carried.len() != self.carried.len() {
            return Err(OtherRelease {
                ours: self.release,
                theirs: other.release,
            });
        }
        for (mine, &theirs) in self.carried.iter_mut().zip(&other.carried) {
            *mine |= theirs;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(path: &str, size: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            sha256: "0".repeat(64),
        }
    }

    fn listing() -> (Vec<FileEntry>, Digest) {
        let blob = Digest::of(b"layer");
        let files = vec![
            file("oci-layout", 30),
            file("index.json", 200),
            file(&blob.blob_path(), 5000),
            file("load-images.sh", 1000),
        ];
        (files, blob)
    }

    #[test]
    fn an_archive_carries_what_was_marked_and_the_release_needs_the_rest() {
        let (files, blob) = listing();
        let mut part = Coverage::none(b"bundle.json", &files);
        assert_eq!(part.release(), Digest::of(b"bundle.json"));
        assert_eq!(
            part.listed(),
            Tally {
                files: 4,
                bytes: 6230
            }
        );
        assert_eq!(part.carried(), Tally::default());
        part.carry(0);
        part.carry(1);
        // An index past the listing is no file: nothing changes, nothing panics.
        part.carry(99);
        assert!(part.carries(1) && !part.carries(2) && !part.carries(99));
        assert_eq!(
            part.carried(),
            Tally {
                files: 2,
                bytes: 230
            }
        );
        assert_eq!(
            part.needed(),
            Tally {
                files: 2,
                bytes: 6000
            }
        );
        let needed: Vec<_> = part.needed_files(&files).map(|f| f.path.as_str()).collect();
        assert_eq!(needed, [blob.blob_path().as_str(), "load-images.sh"]);
        assert_eq!(part.needed_blobs(&files), [blob]);
        assert!(!part.is_complete());
        let whole = Coverage::all(b"bundle.json", &files);
        assert!(whole.is_complete());
        assert_eq!(whole.needed(), Tally::default());
        assert_eq!(whole.carried(), whole.listed());
    }

    #[test]
    fn parts_of_one_release_add_up_and_overlaps_count_once() {
        let (files, _) = listing();
        let mut first = Coverage::none(b"bundle.json", &files);
        first.carry(0);
        first.carry(1);
        let mut second = Coverage::none(b"bundle.json", &files);
        second.carry(1);
        second.carry(2);
        first.merge(&second).unwrap();
        assert_eq!(
            first.carried(),
            Tally {
                files: 3,
                bytes: 5230
            }
        );
        assert!(!first.is_complete());
        let mut last = Coverage::none(b"bundle.json", &files);
        last.carry(3);
        first.merge(&last).unwrap();
        assert!(first.is_complete());
    }

    #[test]
    fn an_archive_of_another_release_is_refused_naming_both_digests() {
        let (files, _) = listing();
        let mut ours = Coverage::none(b"bundle.json of 1.2.0", &files);
        let theirs = Coverage::all(b"bundle.json of 1.2.1", &files);
        let e = ours.merge(&theirs).unwrap_err();
        assert_eq!(
            e,
            OtherRelease {
                ours: Digest::of(b"bundle.json of 1.2.0"),
                theirs: Digest::of(b"bundle.json of 1.2.1"),
            }
        );
        assert!(
            e.to_string()
                .contains(&Digest::of(b"bundle.json of 1.2.1").to_string())
        );
        // Nothing of the other release was added.
        assert_eq!(ours.carried(), Tally::default());
    }

    #[test]
    fn sizes_that_overflow_are_counted_without_panicking() {
        let files = vec![file("oci-layout", u64::MAX), file("index.json", u64::MAX)];
        let c = Coverage::all(b"x", &files);
        assert_eq!(
            c.carried(),
            Tally {
                files: 2,
                bytes: u64::MAX
            }
        );
    }
}
