//! Where a blob's bytes go in an archive written in place, and the two ways they get there: a
//! local file copied and checked, a registry layer streamed. In a `.tar` a blob is its bytes
//! from an offset; in a `.tar.gz` it is framed into a stored gzip member ([`BodySlot`]: 5-byte
//! block headers at fixed places), and what the member's trailer needs, the body's CRC-32, is
//! computed on the way, with a check that the body is compressed as the layout assumed.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sensei_core::archive::{BodySlot, Crc32, looks_compressed};
use sensei_core::digest::{Digest, Hasher};
use sensei_core::progress::Reporter;
use sensei_registry::{BlobSink, Registry};

use crate::blob::RemoteBlob;
use crate::create::PlannedFile;
use crate::error::{BundleError, IntegrityError};

/// Body bytes gathered before each positioned write: few syscalls, constant memory.
const WRITE_BUFFER: u64 = 1 << 20;
/// Room for the block headers framing adds to `WRITE_BUFFER` bytes (one per 65 535, and one
/// more where the range starts mid-block).
const FRAMING: u64 = 5 * (WRITE_BUFFER / 65_535 + 2);

/// Where one blob's bytes go.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place {
    /// As they are, from this offset (a `.tar`).
    Plain(u64),
    /// Framed into a stored gzip member (a `.tar.gz`).
    Stored(BodySlot),
}

/// Why a blob did not reach its place.
#[derive(Debug)]
pub(crate) enum Stop {
    Failed(BundleError),
    /// A `.tar.gz` body that was expected compressed (its media type said so) is not: the
    /// layout is wrong for it, and the archive must be written the streaming way.
    NotCompressed,
}

impl From<BundleError> for Stop {
    fn from(e: BundleError) -> Self {
        Stop::Failed(e)
    }
}

/// A blob on its way to its place: the framing, and for a stored body its CRC-32 and the check
/// of its first bytes.
#[derive(Debug)]
pub(crate) struct Framer {
    place: Place,
    crc: Crc32,
    head: [u8; 8],
    head_len: usize,
    head_want: usize,
    not_compressed: bool,
}

impl Framer {
    pub(crate) fn new(place: Place, size: u64) -> Self {
        Self {
            place,
            crc: Crc32::new(),
            head: [0; 8],
            head_len: 0,
            head_want: size.min(8) as usize,
            not_compressed: false,
        }
    }

    /// Where the framed bytes of body bytes `rel..` start.
    fn offset(&self, rel: u64) -> u64 {
        match self.place {
            Place::Plain(at) => at + rel,
            Place::Stored(slot) => slot.offset(rel),
        }
    }

    /// Frames body bytes `rel..rel + n` into `out`, `fill` giving each run of them in order;
    /// returns the bytes used.
    fn frame(
        &mut self,
        rel: u64,
        n: u64,
        out: &mut [u8],
        mut fill: impl FnMut(&mut [u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        match self.place {
            Place::Plain(_) => {
                let n = usize::try_from(n).map_err(io::Error::other)?;
                fill(&mut out[..n])?;
                Ok(n)
            }
            Place::Stored(slot) => slot.frame(rel, n, out, |run| {
                fill(run)?;
                self.crc.update(run);
                self.check_head(run)
            }),
        }
    }

    /// The stored framing follows the streaming writer's choice, made on the body's first
    /// bytes: a body that is not compressed would have been deflated, not stored.
    fn check_head(&mut self, run: &[u8]) -> io::Result<()> {
        if self.head_len < self.head_want {
            let take = (self.head_want - self.head_len).min(run.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&run[..take]);
            self.head_len += take;
            if self.head_len == self.head_want && !looks_compressed(&self.head[..self.head_len]) {
                self.not_compressed = true;
                return Err(io::Error::other("the blob is not compressed"));
            }
        }
        Ok(())
    }

    fn restart(&mut self) {
        self.crc = Crc32::new();
        self.head_len = 0;
    }

    /// The body's CRC-32, for its member's trailer (`None` in a `.tar`).
    pub(crate) fn crc(self) -> Option<Crc32> {
        matches!(self.place, Place::Stored(_)).then_some(self.crc)
    }
}

/// A local file (an OCI layout's blob) copied to its place, hashed on the way and checked
/// against the digest the plan lists: a layout is input, never trusted.
pub(crate) fn copy_checked(
    f: &PlannedFile<'_>,
    path: &Path,
    out: &File,
    framer: &mut Framer,
    cancel: Option<&AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<(), Stop> {
    let mut src = File::open(path).map_err(BundleError::io(path))?;
    let mut buf = vec![0u8; (WRITE_BUFFER + FRAMING) as usize];
    let mut hasher = Hasher::new();
    let size = f.entry.size;
    let mut rel = 0u64;
    let mut short = false;
    reporter.item(&f.entry.path, Some(size));
    while rel < size {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(BundleError::Cancelled(path.to_owned()).into());
        }
        let n = (size - rel).min(WRITE_BUFFER);
        // Read straight into the framed buffer, between the block headers: no extra copy.
        let framed = framer.frame(rel, n, &mut buf, |run| {
            io::Read::read_exact(&mut src, run)?;
            hasher.update(run);
            Ok(())
        });
        let used = match framed {
            Ok(used) => used,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                short = true; // shrank: caught by the size check below
                break;
            }
            Err(_) if framer.not_compressed => {
                return Err(integrity(
                    f,
                    path,
                    "changed during the build: it is no longer compressed",
                ));
            }
            Err(e) => return Err(BundleError::io(path)(e).into()),
        };
        out.write_all_at(&buf[..used], framer.offset(rel))
            .map_err(BundleError::io(path))?;
        rel += n;
        reporter.item_advance(&f.entry.path, n);
    }
    reporter.item_done(&f.entry.path);
    let actual = hasher.finish();
    let len = src.metadata().map_or(rel, |m| m.len());
    if short || len != size {
        return Err(integrity(f, path, &format!("has {len} bytes, not {size}")));
    }
    if actual.hex() != f.entry.sha256 {
        return Err(integrity(f, path, &format!("hashes to {actual}")));
    }
    Ok(())
}

fn integrity(f: &PlannedFile<'_>, path: &Path, problem: &str) -> Stop {
    let digest = Digest::from_hex(&f.entry.sha256).unwrap_or_else(|_| Digest::of(b""));
    Stop::Failed(
        IntegrityError {
            reference: f.needed_by.to_owned(),
            digest,
            source_name: path.display().to_string(),
            problem: problem.to_owned(),
        }
        .into(),
    )
}

/// One registry layer streamed to its place (hashed and size-checked by the client; a dropped
/// connection resumes, or restarts the blob from its first byte). Returns its CRC-32 in a
/// `.tar.gz`.
pub(crate) async fn fetch_to(
    registry: &Registry,
    f: &PlannedFile<'_>,
    remote: &RemoteBlob,
    file: &File,
    place: Place,
    reporter: &dyn Reporter,
) -> Result<Option<Crc32>, Stop> {
    let digest = Digest::from_hex(&f.entry.sha256)
        .map_err(|e| BundleError::Outside(format!("internal error: {}: {e}", f.entry.path)))?;
    let mut sink = PlaceSink {
        file,
        framer: Framer::new(place, f.entry.size),
        buf: vec![],
        used: 0,
        start: 0,
        rel: 0,
    };
    reporter.item(&f.entry.path, Some(f.entry.size));
    let progress = |n: i64| {
        if let Ok(n) = u64::try_from(n) {
            reporter.item_advance(&f.entry.path, n);
        }
    };
    let pulled = registry
        .pull_blob(&remote.repo, &digest, f.entry.size, &mut sink, &progress)
        .await;
    if sink.framer.not_compressed {
        return Err(Stop::NotCompressed);
    }
    pulled.map_err(|source| BundleError::Registry {
        reference: f.needed_by.to_owned(),
        source: Box::new(source),
    })?;
    reporter.item_done(&f.entry.path);
    Ok(sink.framer.crc())
}

/// A blob's bytes written at their place in the archive as they arrive; a restart starts the
/// blob over.
struct PlaceSink<'a> {
    file: &'a File,
    framer: Framer,
    /// Framed bytes waiting for one positioned write (allocated at the first chunk).
    buf: Vec<u8>,
    used: usize,
    /// The body byte `buf` starts with, and the next one to arrive.
    start: u64,
    rel: u64,
}

impl BlobSink for PlaceSink<'_> {
    fn write_chunk(&mut self, mut chunk: &[u8]) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; (WRITE_BUFFER + FRAMING) as usize];
        }
        while !chunk.is_empty() {
            // What fits in the room left, framing included (a block header per 65 535 bytes,
            // one more for a range that starts mid-block).
            let room = (self.buf.len() - self.used) as u64;
            let headers = 5 * (room / 65_535 + 2);
            if room <= headers {
                self.flush()?;
                continue;
            }
            let n = (chunk.len() as u64).min(room - headers);
            let (now, later) = chunk.split_at(n as usize);
            let mut rest = now;
            let used = self
                .framer
                .frame(self.rel, n, &mut self.buf[self.used..], |run| {
                    let (here, next) = rest.split_at(run.len());
                    run.copy_from_slice(here);
                    rest = next;
                    Ok(())
                })?;
            self.used += used;
            self.rel += n;
            chunk = later;
        }
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.used = 0;
        self.start = 0;
        self.rel = 0;
        self.framer.restart();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.used > 0 {
            self.file
                .write_all_at(&self.buf[..self.used], self.framer.offset(self.start))?;
            self.used = 0;
            self.start = self.rel;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sensei_core::archive::{Body, GzipLayout, LayoutEntry, OutputCompression, TarWriter};
    use sensei_core::manifest::FileEntry;
    use sensei_core::progress::Silent;

    use super::*;
    use crate::create::Source;

    fn sink(file: &File, place: Place, size: u64) -> PlaceSink<'_> {
        PlaceSink {
            file,
            framer: Framer::new(place, size),
            buf: vec![],
            used: 0,
            start: 0,
            rel: 0,
        }
    }

    fn scratch(dir: &Path, len: u64) -> File {
        let file = File::options()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(dir.join("archive"))
            .unwrap();
        file.set_len(len).unwrap();
        file
    }

    /// A body the streaming writer stores: it starts with the gzip magic.
    fn compressed(len: usize, seed: u8) -> Vec<u8> {
        let mut b: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
            .collect();
        b[..2].copy_from_slice(&[0x1f, 0x8b]);
        b
    }

    #[test]
    fn the_sink_writes_at_its_place_and_a_restart_starts_the_blob_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = scratch(dir.path(), 16);
        let mut sink = sink(&file, Place::Plain(4), 4);
        sink.write_chunk(b"xxxx").unwrap();
        sink.flush().unwrap();
        sink.restart().unwrap();
        sink.write_chunk(b"ab").unwrap();
        sink.write_chunk(b"cd").unwrap();
        sink.flush().unwrap();
        let mut got = vec![0u8; 16];
        file.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(&got, b"\0\0\0\0abcd\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn a_copied_file_and_a_streamed_blob_land_as_the_streaming_writer_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let json = b"{\"schemaVersion\":2}".to_vec();
        let local = compressed(3 * 1024 * 1024 + 17, 1); // more than one copy buffer
        let remote = compressed(200_001, 2);
        let local_path = dir.path().join("local");
        std::fs::write(&local_path, &local).unwrap();
        let entries = [
            ("index.json", &json, false),
            ("blobs/sha256/a", &local, true),
            ("blobs/sha256/b", &remote, true),
        ];
        let mut want = TarWriter::new(Vec::new(), OutputCompression::Gzip, 7);
        for (path, body, _) in entries {
            want.append(path, body.len() as u64, 0o644, &body[..], |_| {})
                .unwrap();
        }
        let want = want.finish().unwrap();

        let list: Vec<LayoutEntry<'_>> = entries
            .iter()
            .map(|(path, body, later)| LayoutEntry {
                path,
                size: body.len() as u64,
                mode: 0o644,
                body: if *later {
                    Body::Compressed
                } else {
                    Body::Bytes(body)
                },
            })
            .collect();
        let layout = GzipLayout::new(&list, 7).unwrap();
        let file = scratch(dir.path(), layout.total());
        let write_at = |at: u64, b: &[u8]| file.write_all_at(b, at);
        layout.write_known(write_at).unwrap();
        let slots = layout.slots();
        assert_eq!(slots.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2]);

        // The local file, copied and checked.
        let planned = PlannedFile {
            entry: FileEntry {
                path: "blobs/sha256/a".into(),
                size: local.len() as u64,
                sha256: Digest::of(&local).hex(),
            },
            source: Source::File(&local_path),
            needed_by: "test",
            media_type: "",
        };
        let mut framer = Framer::new(Place::Stored(slots[0].1), local.len() as u64);
        copy_checked(&planned, &local_path, &file, &mut framer, None, &Silent).unwrap();
        let local_crc = framer.crc();

        // The download: a false start thrown away, then chunks of every size.
        let mut s = sink(&file, Place::Stored(slots[1].1), remote.len() as u64);
        s.write_chunk(&remote[..70_000]).unwrap();
        s.flush().unwrap();
        s.restart().unwrap();
        let mut at = 0;
        for n in [1, 7, 65_536, 2, 65_535, 1 << 20] {
            let end = (at + n).min(remote.len());
            s.write_chunk(&remote[at..end]).unwrap();
            at = end;
        }
        s.flush().unwrap();
        assert_eq!(at, remote.len());
        let remote_crc = s.framer.crc();

        let crcs = [None, local_crc, remote_crc];
        layout
            .write_trailers(|e| crcs[e].clone(), write_at)
            .unwrap();
        let mut got = vec![0u8; want.len()];
        file.read_exact_at(&mut got, 0).unwrap();
        assert!(
            got == want,
            "the in-place bytes differ from the streaming writer's"
        );
    }

    #[test]
    fn a_body_that_is_not_compressed_stops_the_stored_framing() {
        let dir = tempfile::tempdir().unwrap();
        let plain = vec![b'{'; 1000];
        let list = [LayoutEntry {
            path: "blobs/sha256/c",
            size: 1000,
            mode: 0o644,
            body: Body::Compressed,
        }];
        let layout = GzipLayout::new(&list, 0).unwrap();
        let file = scratch(dir.path(), layout.total());
        let mut s = sink(&file, Place::Stored(layout.slots()[0].1), 1000);
        // The head is judged once its 8 bytes are in, whatever the chunks.
        s.write_chunk(&plain[..3]).unwrap();
        assert!(s.write_chunk(&plain[3..]).is_err());
        assert!(s.framer.not_compressed);

        let path = dir.path().join("plain");
        std::fs::write(&path, &plain).unwrap();
        let planned = PlannedFile {
            entry: FileEntry {
                path: "blobs/sha256/c".into(),
                size: 1000,
                sha256: Digest::of(&plain).hex(),
            },
            source: Source::File(&path),
            needed_by: "test",
            media_type: "",
        };
        let mut framer = Framer::new(Place::Stored(layout.slots()[0].1), 1000);
        let err = copy_checked(&planned, &path, &file, &mut framer, None, &Silent).unwrap_err();
        assert!(
            matches!(&err, Stop::Failed(BundleError::Integrity(e)) if e.problem.contains("no longer compressed")),
            "{err:?}"
        );
    }
}
