//! Writing a bundle in place, `.tar` or `.tar.gz`: once the plan is resolved, every entry's
//! offset is known (`bundle.json` lists every digest and size, so it and its signatures can be
//! made first), so the archive is laid out in its temporary file at once and each blob goes
//! straight to its place (`place`): local files copied and hashed, registry layers streamed in
//! parallel, hashed once on the way. No byte is written twice and no download store is needed:
//! peak disk use is the archive itself.
//!
//! A `.tar` is laid out by `BundleLayout`. A `.tar.gz` is laid out by `GzipLayout`, which needs
//! every blob that is not in memory to be compressed (stored blocks have an exact length,
//! deflated ones do not): local blobs are checked by their first bytes, registry layers
//! predicted by their media type and checked as they arrive. When that does not hold, the
//! streaming writer does the job instead (`build`), and writes the same bytes.
//!
//! The output still appears only when complete: the temporary file beside it is renamed over
//! it at the end (and removed on failure or interruption; a killed run's is swept by the next).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{StreamExt, TryStreamExt};
use sensei_core::archive::{
    Body, BodySlot, Crc32, GzipLayout, Header, LayoutEntry, OutputCompression, looks_compressed,
};
use sensei_core::content::BundleLayout;
use sensei_core::digest::Digest;
use sensei_core::manifest::{MANIFEST_FILE, SIGNATURE_FILE, file_mode};
use sensei_core::oci::declares_compressed;
use sensei_core::outfile::{TempFile, parent_dir};
use sensei_core::progress::Reporter;
use sensei_core::signature::signature_file_bytes;
use sensei_registry::Registry;

use crate::blob::BlobData;
use crate::create::{
    PlannedFile, Source, WriteOptions, Written, index_json, layout_files, manifest_bytes,
    set_readable, still_replaceable,
};
use crate::error::BundleError;
use crate::fetch::{Fetched, cancelled};
use crate::place::{Framer, Place, Stop, copy_checked, fetch_to};
use crate::plan::Plan;

/// The archive laid out: where each listed file goes.
enum Laid<'a> {
    Tar(BundleLayout),
    /// With each listed file's slot, if its body is written later (not in memory).
    TarGz(GzipLayout<'a>, Vec<Option<BodySlot>>),
}

/// Entries before the listed files: `bundle.json` and `bundle.sig`.
const HEAD: usize = 2;

/// Writes `plan` at `out` in place, fetching its registry layers straight into the archive.
/// `None` for a `.tar.gz` whose blobs are not all compressed (before anything is written, or
/// when a layer's bytes contradict its media type): the temporary file is gone, and the caller
/// writes it the streaming way.
pub async fn write_in_place(
    plan: &Plan,
    out: &Path,
    registry: &Registry,
    concurrency: usize,
    opts: &WriteOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<Option<(Written, Fetched)>, BundleError> {
    let index = index_json(plan);
    let files = layout_files(plan, &index)?;
    let manifest = manifest_bytes(plan, &files)?;
    let signatures: Vec<_> = opts.keys.iter().map(|k| k.sign(&manifest)).collect();
    let sig_bytes = signature_file_bytes(&signatures);
    let mtime = plan.created.as_second().max(0) as u64;
    let laid = match OutputCompression::from_path(out) {
        OutputCompression::None => Laid::Tar(BundleLayout::new(
            manifest.len() as u64,
            sig_bytes.len() as u64,
            files.iter().map(|f| f.entry.size),
        )),
        OutputCompression::Gzip => match gzip_entries(&manifest, &sig_bytes, &files)? {
            Some(entries) => {
                let layout = GzipLayout::new(&entries, mtime).map_err(BundleError::io(out))?;
                let mut slots = vec![None; files.len()];
                for (entry, slot) in layout.slots() {
                    if let Some(s) = entry.checked_sub(HEAD).and_then(|i| slots.get_mut(i)) {
                        *s = Some(slot);
                    }
                }
                Laid::TarGz(layout, slots)
            }
            None => return Ok(None),
        },
    };
    let total = match &laid {
        Laid::Tar(layout) => layout.total(),
        Laid::TarGz(layout, _) => layout.total(),
    };

    let dir = parent_dir(out);
    let name = out
        .file_name()
        .map_or_else(|| "bundle".into(), |n| n.to_string_lossy().into_owned());
    let tmp = TempFile::new_in(&dir, &name, ".partial").map_err(BundleError::io(&dir))?;
    let file = tmp.as_file();
    let io_err = || BundleError::io(tmp.path());
    // Reserve the whole archive now: a disk that cannot hold it fails here, before any
    // download, and the file is laid out in one piece. (Where the filesystem cannot
    // preallocate, a sparse file of the right length does the same but for the early failure.)
    reserve(file, total).map_err(io_err())?;
    let write_at = |at: u64, bytes: &[u8]| file.write_all_at(bytes, at);
    match &laid {
        Laid::Tar(layout) => {
            let header = |at: u64, path: &str, size: u64| {
                write_at(
                    at,
                    &Header::encode_regular(path, size, file_mode(path), mtime),
                )
            };
            let head = [
                (layout.manifest(), MANIFEST_FILE, &manifest[..]),
                (layout.signature(), SIGNATURE_FILE, &sig_bytes[..]),
            ];
            for (at, path, bytes) in head {
                header(at.header, path, bytes.len() as u64).map_err(io_err())?;
                write_at(at.data, bytes).map_err(io_err())?;
            }
            for (i, f) in files.iter().enumerate() {
                let at = layout.file(i);
                header(at.header, &f.entry.path, f.entry.size).map_err(io_err())?;
                if let Source::Bytes(b) = f.source {
                    write_at(at.data, b).map_err(io_err())?;
                }
            }
            // The end marker and padding are the zeros the reserved file already holds.
        }
        // Deflated members, stored members' headers and what they hold in memory.
        Laid::TarGz(layout, _) => layout.write_known(write_at).map_err(io_err())?,
    }
    let place = |i: usize| match &laid {
        Laid::Tar(layout) => Some(Place::Plain(layout.file(i).data)),
        Laid::TarGz(_, slots) => slots[i].map(Place::Stored),
    };

    reporter.start("write", Some(files.iter().map(|f| f.entry.size).sum()));
    let mut crcs: Vec<Option<Crc32>> = vec![None; files.len()];
    let mut remote = vec![];
    for (i, f) in files.iter().enumerate() {
        match (f.source, place(i)) {
            (Source::Bytes(_), _) => reporter.advance(f.entry.size),
            (Source::File(p), Some(place)) => {
                let mut framer = Framer::new(place, f.entry.size);
                match copy_checked(f, p, file, &mut framer, opts.cancel, reporter) {
                    Ok(()) => crcs[i] = framer.crc(),
                    Err(Stop::Failed(e)) => return Err(cancelled_or(e, opts.cancel, out)),
                    Err(Stop::NotCompressed) => return Ok(None),
                }
            }
            (Source::Remote(r), Some(place)) => remote.push((i, f, r, place)),
            (Source::File(_) | Source::Remote(_), None) => {
                return Err(BundleError::Outside(format!(
                    "internal error: {} has no place in the archive",
                    f.entry.path
                )));
            }
        }
    }

    // The biggest first, so the longest transfer starts at once and the rest fill in around it.
    remote.sort_by_key(|r| std::cmp::Reverse(r.1.entry.size));
    let fetched = Fetched {
        blobs: remote.len(),
        bytes: remote.iter().map(|(_, f, _, _)| f.entry.size).sum(),
    };
    let fetches = futures_util::stream::iter(remote.iter())
        .map(|&(i, f, r, place)| async move {
            fetch_to(registry, f, r, file, place, reporter)
                .await
                .map(|crc| (i, crc))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<_>>();
    let landed = tokio::select! {
        r = fetches => r,
        () = cancelled(opts.cancel) => return Err(BundleError::Cancelled(out.to_owned())),
    };
    match landed {
        Ok(landed) => landed.into_iter().for_each(|(i, crc)| crcs[i] = crc),
        Err(Stop::Failed(e)) => return Err(e),
        Err(Stop::NotCompressed) => return Ok(None),
    }
    reporter.finish();

    if let Laid::TarGz(layout, _) = &laid {
        // Each stored member's CRC-32, combined from its bodies' now that all are in.
        let crc = |entry: usize| entry.checked_sub(HEAD).and_then(|i| crcs[i].clone());
        layout.write_trailers(crc, write_at).map_err(io_err())?;
    }
    file.sync_all().map_err(io_err())?;
    set_readable(file).map_err(io_err())?;
    still_replaceable(out)?;
    tmp.persist(out).map_err(BundleError::io(out))?;
    let written = Written {
        path: out.to_owned(),
        bytes: total,
        manifest_digest: Digest::of(&manifest),
        signers: opts.keys.iter().map(|k| k.public().id().clone()).collect(),
        files: files.len() + HEAD,
        images: plan.images.len(),
        charts: plan.charts.len(),
    };
    Ok(Some((written, fetched)))
}

/// The entries of a `.tar.gz` for `GzipLayout`, or `None` if a blob that is not in memory is
/// not compressed (its deflated length cannot be known before it is written).
fn gzip_entries<'a>(
    manifest: &'a [u8],
    sig_bytes: &'a [u8],
    files: &'a [PlannedFile<'a>],
) -> Result<Option<Vec<LayoutEntry<'a>>>, BundleError> {
    let mut entries = vec![
        LayoutEntry {
            path: MANIFEST_FILE,
            size: manifest.len() as u64,
            mode: file_mode(MANIFEST_FILE),
            body: Body::Bytes(manifest),
        },
        LayoutEntry {
            path: SIGNATURE_FILE,
            size: sig_bytes.len() as u64,
            mode: file_mode(SIGNATURE_FILE),
            body: Body::Bytes(sig_bytes),
        },
    ];
    for f in files {
        let compressed = match f.source {
            Source::Bytes(b) => {
                entries.push(LayoutEntry {
                    path: &f.entry.path,
                    size: f.entry.size,
                    mode: file_mode(&f.entry.path),
                    body: Body::Bytes(b),
                });
                continue;
            }
            // Checked again on the bytes as they are copied.
            Source::File(p) => file_is_compressed(p, f.entry.size).map_err(BundleError::io(p))?,
            // A prediction, checked on the bytes as they arrive.
            Source::Remote(_) => declares_compressed(f.media_type),
        };
        if !compressed {
            return Ok(None);
        }
        entries.push(LayoutEntry {
            path: &f.entry.path,
            size: f.entry.size,
            mode: file_mode(&f.entry.path),
            body: Body::Compressed,
        });
    }
    Ok(Some(entries))
}

/// Whether a local file's first bytes (as many as the streaming writer looks at) are a
/// compression magic.
fn file_is_compressed(path: &Path, size: u64) -> io::Result<bool> {
    let mut head = Vec::with_capacity(8);
    File::open(path)?.take(size.min(8)).read_to_end(&mut head)?;
    Ok(looks_compressed(&head))
}

/// Whether a `.tar.gz` of `plan` can be written in place, as far as can be known before any
/// layer is fetched: every local blob is compressed, every registry layer's media type says it
/// is. (Otherwise its layers are fetched to a store first: the disk check counts it.)
pub fn gzip_fits_in_place(plan: &Plan) -> bool {
    plan.blobs.values().all(|b| match &b.data {
        BlobData::Bytes(_) => true,
        BlobData::File(p) | BlobData::Stored(p) => file_is_compressed(p, b.size).unwrap_or(false),
        BlobData::Remote(_) => declares_compressed(&b.media_type),
    })
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

fn cancelled_or(e: BundleError, cancel: Option<&AtomicBool>, out: &Path) -> BundleError {
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        BundleError::Cancelled(out.to_owned())
    } else {
        e
    }
}
