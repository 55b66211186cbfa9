//! Writing a plan as a bundle: deterministic entries, signatures, and an atomic rename so a
//! failed or interrupted build never leaves a partial file under the output name.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sensei_core::archive::{OutputCompression, TarWriter};
use sensei_core::content::{Entry, entries};
use sensei_core::digest::Digest;
use sensei_core::manifest::{
    BundleManifest, Compat, FileEntry, MANIFEST_FILE, MEDIA_TYPE, SCHEMA_VERSION, SIGNATURE_FILE,
    file_mode,
};
use sensei_core::oci::{OCI_INDEX, OCI_LAYOUT_CONTENT};
use sensei_core::outfile::TempFile;
use sensei_core::progress::Reporter;
use sensei_core::signature::{KeyId, PrivateKey, signature_file_bytes};
use serde::Serialize;

use crate::blob::{BlobData, RemoteBlob};
use crate::error::{BundleError, InputError, IntegrityError};
use crate::hash_pipe::HashPipe;
use crate::plan::Plan;

/// The seed's manual path, shipped at the root of every bundle.
pub const LOAD_SCRIPT: &str = include_str!("load-images.sh");

#[derive(Debug, Default)]
pub struct WriteOptions<'a> {
    pub keys: &'a [PrivateKey],
    /// Set by a Ctrl-C handler: the write stops and the temporary file is removed.
    pub cancel: Option<&'a AtomicBool>,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    /// sha256 of `bundle.json`: what the signatures cover.
    pub manifest_digest: Digest,
    pub signers: Vec<KeyId>,
    pub files: usize,
    pub images: usize,
    pub charts: usize,
}

/// Where an entry's bytes come from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    /// Still in a registry: only the in-place writer takes these (it fetches them itself).
    Remote(&'a RemoteBlob),
}

pub(crate) struct PlannedFile<'a> {
    pub(crate) entry: FileEntry,
    pub(crate) source: Source<'a>,
    /// The image or chart that needs it, for error messages.
    pub(crate) needed_by: &'a str,
    /// Its media type (empty for the bundle's own files): whether a registry layer is
    /// compressed is predicted from it, before its bytes arrive.
    pub(crate) media_type: &'a str,
}

/// The bundle's `index.json`: one descriptor per image and chart, sorted by reference.
pub fn index_json(plan: &Plan) -> Vec<u8> {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": plan.index,
    });
    serde_json::to_vec(&index).unwrap_or_default()
}

/// The list of files in archive order (`sensei_core::content::entries`, the one definition of
/// it) with their sources (`bundle.json` and `bundle.sig`, which come first, aside).
pub(crate) fn layout_files<'a>(
    plan: &'a Plan,
    index: &'a [u8],
) -> Result<Vec<PlannedFile<'a>>, BundleError> {
    let bytes_file = |path: String, data: &'a [u8]| PlannedFile {
        entry: FileEntry {
            size: data.len() as u64,
            sha256: Digest::of(data).hex(),
            path,
        },
        source: Source::Bytes(data),
        needed_by: "",
        media_type: "",
    };
    entries(&plan.content)
        .into_iter()
        .map(|e| {
            let d = match e {
                Entry::OciLayout => return Ok(bytes_file(e.path(), OCI_LAYOUT_CONTENT)),
                Entry::IndexJson => return Ok(bytes_file(e.path(), index)),
                Entry::LoadScript => return Ok(bytes_file(e.path(), LOAD_SCRIPT.as_bytes())),
                Entry::Blob(d) => d,
            };
            let blob = plan.blobs.get(&d).ok_or_else(|| {
                InputError::Other(format!(
                    "internal error: blob {d} is ordered but not planned"
                ))
            })?;
            let source = match &blob.data {
                BlobData::Bytes(b) => Source::Bytes(b),
                BlobData::File(p) | BlobData::Stored(p) => Source::File(p),
                BlobData::Remote(r) => Source::Remote(r),
            };
            Ok(PlannedFile {
                entry: FileEntry {
                    path: e.path(),
                    size: blob.size,
                    sha256: blob.digest.hex(),
                },
                source,
                needed_by: &blob.needed_by,
                media_type: &blob.media_type,
            })
        })
        .collect()
}

pub(crate) fn manifest_bytes(
    plan: &Plan,
    files: &[PlannedFile<'_>],
) -> Result<Vec<u8>, BundleError> {
    let manifest = BundleManifest {
        schema_version: SCHEMA_VERSION,
        media_type: MEDIA_TYPE.to_owned(),
        name: plan.name.clone(),
        version: plan.version.clone(),
        created: plan.created.to_string(),
        expires: plan.expires.map(|e| e.to_string()),
        compat: Compat {
            upgrade_from: plan.compat.as_str().to_owned(),
        },
        images: plan.images.clone(),
        charts: plan.charts.clone(),
        files: files.iter().map(|f| f.entry.clone()).collect(),
    };
    // A plan that breaks the format's own rules is a bug here, but say so rather than write it.
    manifest.check().map_err(|e| {
        InputError::Other(format!(
            "internal error: the bundle would be malformed: {e}"
        ))
    })?;
    Ok(manifest.to_bytes())
}

/// Writes `plan` to `out` (compression from its extension), signed by every key given.
pub fn write_bundle(
    plan: &Plan,
    out: &Path,
    opts: &WriteOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<Written, BundleError> {
    let index = index_json(plan);
    let files = layout_files(plan, &index)?;
    if let Some(f) = files.iter().find(|f| matches!(f.source, Source::Remote(_))) {
        return Err(InputError::Other(format!(
            "internal error: blob {} of {} was planned but never fetched",
            f.entry.path, f.needed_by
        ))
        .into());
    }
    let manifest = manifest_bytes(plan, &files)?;
    let signatures: Vec<_> = opts.keys.iter().map(|k| k.sign(&manifest)).collect();
    let sig_bytes = signature_file_bytes(&signatures);

    let dir = sensei_core::outfile::parent_dir(out);
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    // Named after the output and this process, and locked: a run killed outright leaves it to
    // the next run's sweep (`outfile::sweep_stale`), which never takes a live run's file.
    let tmp = TempFile::new_in(&dir, &name, ".partial").map_err(BundleError::io(&dir))?;
    let compression = OutputCompression::from_path(out);
    let mtime = plan.created.as_second().max(0) as u64;
    let mut tar = TarWriter::new(
        BufWriter::with_capacity(1024 * 1024, tmp.as_file()),
        compression,
        mtime,
    );
    let write_err = BundleError::io(tmp.path());

    reporter.start("write", Some(files.iter().map(|f| f.entry.size).sum()));
    let cancelled = || opts.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    tar.append(
        MANIFEST_FILE,
        manifest.len() as u64,
        file_mode(MANIFEST_FILE),
        &manifest[..],
        |_| {},
    )
    .map_err(BundleError::io(tmp.path()))?;
    tar.append(
        SIGNATURE_FILE,
        sig_bytes.len() as u64,
        file_mode(SIGNATURE_FILE),
        &sig_bytes[..],
        |_| {},
    )
    .map_err(BundleError::io(tmp.path()))?;
    // sha256 of each source file runs on its own thread, beside this one's CRC-32 and write;
    // every digest is still checked below, before the output is renamed into place.
    std::thread::scope(|scope| -> Result<(), BundleError> {
        let mut pipe = HashPipe::spawn(scope);
        for f in &files {
            if cancelled() {
                return Err(BundleError::Cancelled(out.to_owned()));
            }
            reporter.item(&f.entry.path, Some(f.entry.size));
            let result = match f.source {
                Source::Bytes(b) => tar.append(
                    &f.entry.path,
                    f.entry.size,
                    file_mode(&f.entry.path),
                    b,
                    |_| {},
                ),
                Source::Remote(_) => continue, // refused above
                Source::File(p) => {
                    let file = File::open(p).map_err(BundleError::io(p))?;
                    let reader = Cancellable {
                        inner: file,
                        cancel: opts.cancel,
                    };
                    tar.append(
                        &f.entry.path,
                        f.entry.size,
                        file_mode(&f.entry.path),
                        reader,
                        |chunk| {
                            pipe.update(chunk);
                            reporter.advance(chunk.len() as u64);
                        },
                    )
                }
            };
            if let Err(e) = result {
                if cancelled() {
                    return Err(BundleError::Cancelled(out.to_owned()));
                }
                return Err(match f.source {
                    Source::File(p) => BundleError::Io {
                        path: p.to_owned(),
                        source: e,
                    },
                    Source::Bytes(_) | Source::Remote(_) => BundleError::Io {
                        path: tmp.path().to_owned(),
                        source: e,
                    },
                });
            }
            if let Source::File(p) = f.source {
                let actual = pipe.finish().ok_or_else(|| BundleError::Io {
                    path: p.to_owned(),
                    source: io::Error::other("the sha256 thread stopped; the file is unverified"),
                })?;
                if actual.hex() != f.entry.sha256 {
                    return Err(IntegrityError {
                        reference: f.needed_by.to_owned(),
                        digest: Digest::from_hex(&f.entry.sha256).unwrap_or(actual),
                        source_name: p.display().to_string(),
                        problem: format!("hashes to {actual}"),
                    }
                    .into());
                }
            } else {
                reporter.advance(f.entry.size);
            }
            reporter.item_done(&f.entry.path);
        }
        Ok(())
    })?;
    let mut buffered = tar.finish().map_err(write_err)?;
    buffered.flush().map_err(BundleError::io(tmp.path()))?;
    drop(buffered);
    tmp.as_file()
        .sync_all()
        .map_err(BundleError::io(tmp.path()))?;
    let bytes = tmp
        .as_file()
        .metadata()
        .map_err(BundleError::io(tmp.path()))?
        .len();
    set_readable(tmp.as_file()).map_err(BundleError::io(tmp.path()))?;
    // The output was checked before the build; check again that nothing but a regular file
    // took its place meanwhile (a rename would replace a device, FIFO or link).
    still_replaceable(out)?;
    tmp.persist(out).map_err(BundleError::io(out))?;
    reporter.finish();
    Ok(Written {
        path: out.to_owned(),
        bytes,
        manifest_digest: Digest::of(&manifest),
        signers: opts.keys.iter().map(|k| k.public().id().clone()).collect(),
        files: files.len() + 2,
        images: plan.images.len(),
        charts: plan.charts.len(),
    })
}

/// Refuses an output path that became something other than a regular file during the build.
pub fn still_replaceable(out: &Path) -> Result<(), BundleError> {
    match std::fs::symlink_metadata(out) {
        Ok(m) if !m.file_type().is_file() => Err(InputError::Other(format!(
            "-o {}: became something other than a regular file during the build; refusing to replace it",
            out.display()
        ))
        .into()),
        _ => Ok(()),
    }
}

/// How many bytes the archive of `plan` takes at most: every file with its 512-byte header and
/// padding, the signed head, the end blocks, and for gzip the stored blocks' framing (5 bytes
/// per 64 KiB) and member headers. Used to check free space before anything is downloaded.
pub fn estimated_size(plan: &Plan) -> u64 {
    const BLOCK: u64 = 512;
    let padded = |n: u64| BLOCK + n.div_ceil(BLOCK) * BLOCK;
    let blobs: u64 = plan.blobs.values().map(|b| padded(b.size)).sum();
    // bundle.json grows with the number of files (about 150 bytes each), index.json with the
    // images; the rest (oci-layout, load-images.sh, bundle.sig) is a few KiB.
    let head = plan.blobs.len() as u64 * 256 + 1024 * 1024;
    let tar = blobs + head + 20 * BLOCK;
    tar + tar / 10_000 + 64 * 1024
}

/// Temporary files are created 0600; a bundle is meant to be shared.
pub(crate) fn set_readable(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

/// A reader that fails once the cancel flag is set, so a long copy stops promptly.
struct Cancellable<'a, R> {
    inner: R,
    cancel: Option<&'a AtomicBool>,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        self.inner.read(buf)
    }
}

/// The plan as a human reads it (`create --dry-run`).
pub fn render_plan(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "plan for {} {} (nothing written: --dry-run)",
        plan.name, plan.version
    );
    let _ = writeln!(s, "  created       {}", plan.created);
    if let Some(e) = plan.expires {
        let _ = writeln!(s, "  expires       {e}");
    }
    let _ = writeln!(s, "  upgrade from  {}", plan.compat.as_str());
    let _ = writeln!(s, "images ({}):", plan.images.len());
    for i in &plan.images {
        let _ = writeln!(s, "  {i}");
        let bytes = plan.image_bytes.get(&i.reference).copied().unwrap_or(0);
        match &i.source {
            Some(source) => {
                let _ = writeln!(s, "      {bytes} bytes, from {source}");
            }
            None => {
                let _ = writeln!(s, "      {bytes} bytes");
            }
        }
    }
    let _ = writeln!(s, "charts ({}):", plan.charts.len());
    for c in &plan.charts {
        let _ = writeln!(s, "  {} {} @ {}", c.name, c.version, c.digest);
        if let Some(source) = &c.source {
            let _ = writeln!(s, "      from {source}");
        }
    }
    let _ = writeln!(
        s,
        "blobs: {} unique, {} bytes; to fetch from registries: {} blobs, {} bytes",
        plan.blobs.len(),
        plan.total_bytes(),
        plan.remote_blobs(),
        plan.remote_bytes()
    );
    s
}
