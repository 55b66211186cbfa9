//! Writing a `.tar` bundle in place: once the plan is resolved, every entry's offset is known
//! (`bundle.json` lists every digest and size, so it and its signatures can be made first), so
//! the archive is laid out in its temporary file at once and each registry layer streams
//! straight to its offset, hashed once on the way, in parallel. No byte is written twice and
//! no download store is needed: peak disk use is the archive itself.
//!
//! The output still appears only when complete: the temporary file beside it is renamed over
//! it at the end (and removed on failure or interruption; a killed run's is swept by the next).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{StreamExt, TryStreamExt};
use sensei_core::archive::Header;
use sensei_core::content::{BundleLayout, Span};
use sensei_core::digest::{Digest, Hasher};
use sensei_core::manifest::{MANIFEST_FILE, SIGNATURE_FILE, file_mode};
use sensei_core::outfile::{TempFile, parent_dir};
use sensei_core::progress::Reporter;
use sensei_core::signature::signature_file_bytes;
use sensei_registry::{BlobSink, Registry};

use crate::blob::RemoteBlob;
use crate::create::{
    PlannedFile, Source, WriteOptions, Written, index_json, layout_files, manifest_bytes,
    set_readable, still_replaceable,
};
use crate::error::{BundleError, IntegrityError};
use crate::fetch::{Fetched, cancelled};
use crate::plan::Plan;

/// Bytes gathered before each positioned write: few syscalls, constant memory.
const WRITE_BUFFER: usize = 1 << 20;

/// Writes `plan` as a plain `.tar` at `out`, fetching its registry layers straight into place.
pub async fn write_tar_in_place(
    plan: &Plan,
    out: &Path,
    registry: &Registry,
    concurrency: usize,
    opts: &WriteOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<(Written, Fetched), BundleError> {
    let index = index_json(plan);
    let files = layout_files(plan, &index)?;
    let manifest = manifest_bytes(plan, &files)?;
    let signatures: Vec<_> = opts.keys.iter().map(|k| k.sign(&manifest)).collect();
    let sig_bytes = signature_file_bytes(&signatures);
    let layout = BundleLayout::new(
        manifest.len() as u64,
        sig_bytes.len() as u64,
        files.iter().map(|f| f.entry.size),
    );

    let dir = parent_dir(out);
    let name = out
        .file_name()
        .map_or_else(|| "bundle".into(), |n| n.to_string_lossy().into_owned());
    let tmp = TempFile::new_in(&dir, &name, ".partial").map_err(BundleError::io(&dir))?;
    let file = tmp.as_file();
    let io_err = BundleError::io(tmp.path());
    // Reserve the whole archive now: a disk that cannot hold it fails here, before any
    // download, and the file is laid out in one piece. (Where the filesystem cannot
    // preallocate, a sparse file of the right length does the same but for the early failure.)
    reserve(file, layout.total()).map_err(BundleError::io(tmp.path()))?;
    let mtime = plan.created.as_second().max(0) as u64;
    let header = |at: Span, path: &str, size: u64| -> io::Result<()> {
        let h = Header::encode_regular(path, size, file_mode(path), mtime);
        file.write_all_at(&h, at.header)
    };
    let head = [
        (layout.manifest(), MANIFEST_FILE, &manifest[..]),
        (layout.signature(), SIGNATURE_FILE, &sig_bytes[..]),
    ];
    for (at, path, bytes) in head {
        header(at, path, bytes.len() as u64).map_err(BundleError::io(tmp.path()))?;
        file.write_all_at(bytes, at.data)
            .map_err(BundleError::io(tmp.path()))?;
    }
    // The end marker and padding are the zeros the reserved file already holds.

    let total: u64 = files.iter().map(|f| f.entry.size).sum();
    reporter.start("write", Some(total));
    let mut remote = vec![];
    for (i, f) in files.iter().enumerate() {
        let at = layout.file(i);
        header(at, &f.entry.path, f.entry.size).map_err(BundleError::io(tmp.path()))?;
        match f.source {
            Source::Bytes(b) => {
                file.write_all_at(b, at.data)
                    .map_err(BundleError::io(tmp.path()))?;
                reporter.advance(f.entry.size);
            }
            Source::File(p) => copy_checked(f, p, file, at.data, opts.cancel, reporter)
                .map_err(|e| cancelled_or(e, opts.cancel, out))?,
            Source::Remote(r) => remote.push((f, r, at.data)),
        }
    }

    // The biggest first, so the longest transfer starts at once and the rest fill in around it.
    remote.sort_by_key(|r| std::cmp::Reverse(r.0.entry.size));
    let fetched = Fetched {
        blobs: remote.len(),
        bytes: remote.iter().map(|(f, _, _)| f.entry.size).sum(),
    };
    let fetches = futures_util::stream::iter(remote.iter())
        .map(|(f, r, offset)| fetch_at(registry, f, r, file, *offset, reporter))
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>();
    tokio::select! {
        r = fetches => r?,
        () = cancelled(opts.cancel) => return Err(BundleError::Cancelled(out.to_owned())),
    };
    reporter.finish();

    file.sync_all().map_err(BundleError::io(tmp.path()))?;
    set_readable(file).map_err(io_err)?;
    still_replaceable(out)?;
    tmp.persist(out).map_err(BundleError::io(out))?;
    Ok((
        Written {
            path: out.to_owned(),
            bytes: layout.total(),
            manifest_digest: Digest::of(&manifest),
            signers: opts.keys.iter().map(|k| k.public().id().clone()).collect(),
            files: files.len() + 2,
            images: plan.images.len(),
            charts: plan.charts.len(),
        },
        fetched,
    ))
}

/// Allocates `len` bytes for `file` (`fallocate`), or sets its length where that is not
/// supported.
fn reserve(file: &File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            file.set_len(len)
        }
        Err(e) => Err(e.into()),
    }
}

/// A local file (an OCI layout's blob) copied to `offset`, hashed on the way and checked
/// against the digest the plan lists: a layout is input, never trusted.
fn copy_checked(
    f: &PlannedFile<'_>,
    path: &Path,
    out: &File,
    offset: u64,
    cancel: Option<&AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<(), BundleError> {
    let mut src = File::open(path).map_err(BundleError::io(path))?;
    let mut buf = vec![0u8; WRITE_BUFFER];
    let mut hasher = Hasher::new();
    let mut written = 0u64;
    reporter.item(&f.entry.path, Some(f.entry.size));
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(BundleError::Cancelled(path.to_owned()));
        }
        let n = src.read(&mut buf).map_err(BundleError::io(path))?;
        if n == 0 {
            break;
        }
        if written + n as u64 > f.entry.size {
            break; // grew: caught by the size check below, never written past its entry
        }
        hasher.update(&buf[..n]);
        out.write_all_at(&buf[..n], offset + written)
            .map_err(BundleError::io(path))?;
        written += n as u64;
        reporter.item_advance(&f.entry.path, n as u64);
    }
    reporter.item_done(&f.entry.path);
    let actual = hasher.finish();
    let len = src.metadata().map_or(written, |m| m.len());
    if written != f.entry.size || len != f.entry.size || actual.hex() != f.entry.sha256 {
        return Err(IntegrityError {
            reference: f.needed_by.to_owned(),
            digest: Digest::from_hex(&f.entry.sha256).unwrap_or(actual),
            source_name: path.display().to_string(),
            problem: if len == f.entry.size {
                format!("hashes to {actual}")
            } else {
                format!("has {len} bytes, not {}", f.entry.size)
            },
        }
        .into());
    }
    Ok(())
}

/// One registry layer streamed to its offset (hashed and size-checked by the client; a
/// dropped connection resumes, or restarts the entry from its first byte).
async fn fetch_at(
    registry: &Registry,
    f: &PlannedFile<'_>,
    remote: &RemoteBlob,
    file: &File,
    offset: u64,
    reporter: &dyn Reporter,
) -> Result<(), BundleError> {
    let digest = Digest::from_hex(&f.entry.sha256)
        .map_err(|e| BundleError::Outside(format!("internal error: {}: {e}", f.entry.path)))?;
    let mut sink = OffsetSink {
        file,
        start: offset,
        written: 0,
        buf: Vec::with_capacity(WRITE_BUFFER),
    };
    reporter.item(&f.entry.path, Some(f.entry.size));
    let progress = |n: i64| {
        if let Ok(n) = u64::try_from(n) {
            reporter.item_advance(&f.entry.path, n);
        }
    };
    registry
        .pull_blob(&remote.repo, &digest, f.entry.size, &mut sink, &progress)
        .await
        .map_err(|source| BundleError::Registry {
            reference: f.needed_by.to_owned(),
            source: Box::new(source),
        })?;
    reporter.item_done(&f.entry.path);
    Ok(())
}

/// A blob's bytes written at their place in the archive; a restart starts the entry over.
struct OffsetSink<'a> {
    file: &'a File,
    start: u64,
    /// Bytes handed to the file so far (the buffer not included).
    written: u64,
    buf: Vec<u8>,
}

impl BlobSink for OffsetSink<'_> {
    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.buf.len() + chunk.len() > WRITE_BUFFER {
            self.flush()?;
        }
        if chunk.len() >= WRITE_BUFFER {
            self.file.write_all_at(chunk, self.start + self.written)?;
            self.written += chunk.len() as u64;
        } else {
            self.buf.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.written = 0;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file
                .write_all_at(&self.buf, self.start + self.written)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

fn cancelled_or(e: BundleError, cancel: Option<&AtomicBool>, out: &Path) -> BundleError {
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        BundleError::Cancelled(out.to_owned())
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_writes_at_its_offset_and_a_restart_starts_the_entry_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        file.set_len(16).unwrap();
        let mut sink = OffsetSink {
            file: &file,
            start: 4,
            written: 0,
            buf: vec![],
        };
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
}
