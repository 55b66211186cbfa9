//! Where a blob's bytes come from during push, never by extracting the bundle to disk:
//!
//! * a `.tar`: the blob's region of the file, read at its offset (a fresh reader for each
//!   upload attempt, so uploads run in parallel and retries start over cleanly);
//! * an extracted directory: the blob's file;
//! * a `.tar.gz`: one more sequential pass of decompression, handing each blob that is to be
//!   uploaded to its upload as the pass reaches it (a retry decompresses again up to the blob).
//!
//! Every stream is hashed as it is sent ([`Checked`]): bytes that differ from the verified
//! digest (the file changed since verification) never complete an upload.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sensei_core::archive::{TarReader, open_stream};
use sensei_core::digest::{Digest, Hasher};
use tokio::sync::mpsc;

use super::graph::BlobJob;
use super::kind::Kind;

/// A blob's bytes as an upload body.
pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Bytes read per chunk: large enough for throughput, small enough that eight parallel
/// uploads stay well inside the memory budget.
const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the decompressing thread and an upload.
const CHANNEL_CHUNKS: usize = 4;

/// `push` and `upgrade` read each verified blob again to upload it (and again for a retry), so
/// the bundle must be a file or a directory; a pipe, a tape or a socket is an input error that
/// says so (it used to be read as a corrupt bundle). `verify` reads streams as they are.
pub fn require_seekable(bundle: &Path) -> Result<(), crate::error::LoaderError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(bundle) else {
        return Ok(()); // opening it names what is wrong
    };
    let t = meta.file_type();
    let what = if t.is_file() || t.is_dir() {
        return Ok(());
    } else if t.is_fifo() {
        "a pipe"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(crate::error::LoaderError::input(
        bundle,
        format!(
            "is {what}, and loading needs a seekable file: each verified blob is read again to \
             upload it (and again for a retry); save the stream to a file first (e.g. \
             `cat > bundle.tar`) and load that, or check the stream alone with \
             `sensei-loader verify`"
        ),
    ))
}

/// The blob bytes of one bundle.
#[derive(Debug)]
pub struct Source {
    bundle: PathBuf,
    kind: Kind,
    offsets: HashMap<String, u64>,
    feed: Option<Feed>,
}

/// The sequential pass over a `.tar.gz`: per blob path, the channel its job uses to tell the
/// pass whether to hand it the bytes (`Some(sender)`) or not (`None`).
#[derive(Debug)]
struct Feed {
    decisions: Mutex<HashMap<String, std::sync::mpsc::SyncSender<Decision>>>,
    cancel: Arc<AtomicBool>,
}

type Decision = Option<mpsc::Sender<io::Result<Bytes>>>;

/// The guarded value, also after a panic elsewhere (what it guards stays consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Source {
    /// Opens the bundle for reading the blobs in `jobs`. For a `.tar.gz` this starts the
    /// sequential pass, which then waits at each of those blobs for its job's decision
    /// ([`Source::open`] or [`Source::skip`]); jobs must therefore be started in archive order.
    /// Other blobs can still be opened: a `.tar.gz` is then decompressed again up to them.
    pub fn new(
        bundle: &Path,
        kind: Kind,
        offsets: HashMap<String, u64>,
        jobs: &[BlobJob],
    ) -> io::Result<Self> {
        let feed = if kind == Kind::Gzip && !jobs.is_empty() {
            let mut decisions = HashMap::new();
            let mut waits = HashMap::new();
            for job in jobs {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                decisions.insert(job.path.clone(), tx);
                waits.insert(job.path.clone(), rx);
            }
            let cancel = Arc::new(AtomicBool::new(false));
            let file = std::fs::File::open(bundle)?;
            let stop = cancel.clone();
            std::thread::Builder::new()
                .name("push-gunzip".into())
                .spawn(move || sequential_pass(file, waits, &stop))?;
            Some(Feed {
                decisions: Mutex::new(decisions),
                cancel,
            })
        } else {
            None
        };
        Ok(Self {
            bundle: bundle.to_owned(),
            kind,
            offsets,
            feed,
        })
    }

    /// The blob's bytes from its first byte: a fresh reader on each call.
    pub fn open(&self, job: &BlobJob) -> io::Result<BlobStream> {
        let missing = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not in the bundle", job.path),
            )
        };
        match self.kind {
            Kind::Directory => {
                let path = self.bundle.join(&job.path);
                let meta = std::fs::symlink_metadata(&path)?;
                if !meta.file_type().is_file() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is no longer a regular file", path.display()),
                    ));
                }
                region(std::fs::File::open(&path)?, 0, job.size)
            }
            Kind::Tar => {
                let offset = *self.offsets.get(&job.path).ok_or_else(missing)?;
                region(std::fs::File::open(&self.bundle)?, offset, job.size)
            }
            Kind::Gzip => {
                let decided = self
                    .feed
                    .as_ref()
                    .and_then(|f| lock(&f.decisions).remove(&job.path));
                if let Some(decision) = decided {
                    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
                    if decision.send(Some(tx)).is_ok() {
                        return Ok(receiver_stream(rx));
                    }
                }
                let offset = *self.offsets.get(&job.path).ok_or_else(missing)?;
                reopen_gzip(&self.bundle, offset, job.size)
            }
        }
    }

    /// Tells the `.tar.gz` pass that this blob needs no bytes (again): it is skipped or mounted.
    pub fn skip(&self, job: &BlobJob) {
        if let Some(feed) = &self.feed
            && let Some(decision) = lock(&feed.decisions).remove(&job.path)
        {
            let _ = decision.send(None);
        }
    }

    /// Ends the `.tar.gz` pass early (the push failed): it stops at its next entry.
    pub fn close(&self) {
        if let Some(feed) = &self.feed {
            feed.cancel.store(true, Ordering::SeqCst);
            lock(&feed.decisions).clear();
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.close();
    }
}

/// `size` bytes of `file` from `offset`, read in chunks on tokio's blocking pool.
fn region(mut file: std::fs::File, offset: u64, size: u64) -> io::Result<BlobStream> {
    file.seek(SeekFrom::Start(offset))?;
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), size);
    Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
        reader, CHUNK,
    )))
}

fn receiver_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> BlobStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A retry of a `.tar.gz` blob: decompress again from the start up to the blob.
fn reopen_gzip(bundle: &Path, offset: u64, size: u64) -> io::Result<BlobStream> {
    let file = std::fs::File::open(bundle)?;
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    std::thread::Builder::new()
        .name("push-gunzip-retry".into())
        .spawn(move || {
            let result = (|| -> io::Result<()> {
                let (mut stream, _) = open_stream(file)?;
                let skipped = io::copy(&mut (&mut stream).take(offset), &mut io::sink())?;
                if skipped < offset {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let mut body = stream.take(size);
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = body.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return Ok(()); // the upload gave up
                    }
                }
            })();
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        })?;
    Ok(receiver_stream(rx))
}

/// The sequential pass: walks the archive once; at each blob some job waits for, asks it
/// whether to send the bytes, and streams them to its upload if so.
fn sequential_pass(
    file: std::fs::File,
    mut waits: HashMap<String, std::sync::mpsc::Receiver<Decision>>,
    cancel: &AtomicBool,
) {
    let Ok((stream, _)) = open_stream(file) else {
        return; // every upload then fails on its own reading of the bundle
    };
    let mut tar = TarReader::new(stream);
    let mut buf = vec![0u8; CHUNK];
    while !waits.is_empty() && !cancel.load(Ordering::SeqCst) {
        let header = match tar.next_header() {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => return,
        };
        let Some(wait) = waits.remove(&header.path) else {
            continue;
        };
        let Ok(Some(tx)) = wait.recv() else {
            continue;
        };
        let mut sender = Some(tx);
        let streamed = tar.stream_body(&mut buf, |chunk| {
            if let Some(tx) = &sender
                && tx.blocking_send(Ok(Bytes::copy_from_slice(chunk))).is_err()
            {
                sender = None; // that attempt failed; its retry reads the bundle again
            }
        });
        if let Err(e) = streamed {
            if let Some(tx) = &sender {
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
            return;
        }
    }
}

/// Counters shared by every upload of one push.
#[derive(Debug, Default)]
pub struct Counters {
    /// Blob bytes handed to the network, retries included.
    pub bytes_sent: AtomicU64,
    /// Tags that name their manifest (written, or found in place): what a stopped push says.
    pub tags_done: AtomicU64,
}

/// Hashes a blob's bytes as they go out. The final chunk is held back unless the whole blob
/// has the verified size and digest, so a changed bundle can never complete an upload; the
/// failure is also recorded in `changed` for a clear message (and no retry).
pub struct Checked {
    inner: BlobStream,
    hasher: Hasher,
    digest: Digest,
    size: u64,
    /// Bytes read and hashed but not passed on: the registry kept them from an earlier attempt.
    skip: u64,
    /// Every byte arrived and matched.
    verified: bool,
    /// Nothing more will be yielded.
    ended: bool,
    counters: Arc<Counters>,
    progress: Arc<AtomicU64>,
    changed: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("sent", &self.hasher.len())
            .finish_non_exhaustive()
    }
}

impl Checked {
    pub fn new(
        inner: BlobStream,
        job: &BlobJob,
        counters: Arc<Counters>,
        progress: Arc<AtomicU64>,
        changed: Arc<Mutex<Option<String>>>,
    ) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            digest: job.digest,
            size: job.size,
            skip: 0,
            verified: false,
            ended: false,
            counters,
            progress,
            changed,
        }
    }

    /// Passes on only the bytes from `offset` on (an upload continuing where the registry says
    /// it kept the earlier ones). Every byte is still read and hashed: the digest check covers
    /// the whole blob, as for any other attempt.
    pub fn from_offset(mut self, offset: u64) -> Self {
        self.skip = offset;
        self
    }

    fn fail(&mut self, why: &str) -> Poll<Option<io::Result<Bytes>>> {
        self.ended = true;
        let message = format!(
            "blob {} {why}: the bundle changed on disk since it was verified; copy it again and \
             re-run (nothing was tagged)",
            self.digest
        );
        *lock(&self.changed) = Some(message.clone());
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            message,
        ))))
    }

    /// All bytes are in: the digest must be the verified one.
    fn complete(&mut self) -> bool {
        let actual = std::mem::take(&mut self.hasher).finish();
        self.verified = actual == self.digest;
        self.verified
    }
}

impl Stream for Checked {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if self.verified || (self.size == 0 && self.complete()) {
                        self.ended = true;
                        return Poll::Ready(None);
                    }
                    let why = format!(
                        "ended after {} of its {} bytes",
                        self.hasher.len(),
                        self.size
                    );
                    return self.fail(&why);
                }
                Poll::Ready(Some(Ok(mut chunk))) => {
                    if chunk.is_empty() {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    let start = self.hasher.len();
                    if self.verified || start + chunk.len() as u64 > self.size {
                        return self.fail("is longer than its verified size");
                    }
                    self.hasher.update(&chunk);
                    if self.hasher.len() == self.size && !self.complete() {
                        return self.fail("has different bytes than when it was verified");
                    }
                    if start < self.skip {
                        // Hashed, not sent: the registry holds these already.
                        let drop = (self.skip - start).min(chunk.len() as u64);
                        let _ = chunk.split_to(usize::try_from(drop).unwrap_or(chunk.len()));
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    let n = chunk.len() as u64;
                    self.counters.bytes_sent.fetch_add(n, Ordering::Relaxed);
                    self.progress.fetch_add(n, Ordering::Relaxed);
                    return Poll::Ready(Some(Ok(chunk)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn job(bytes: &[u8]) -> BlobJob {
        let digest = Digest::of(bytes);
        BlobJob {
            digest,
            size: bytes.len() as u64,
            path: digest.blob_path(),
            file_index: 0,
            repos: vec![],
        }
    }

    fn checked(
        chunks: Vec<&'static [u8]>,
        job: &BlobJob,
    ) -> (Vec<io::Result<Bytes>>, Option<String>) {
        let inner: BlobStream = Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ));
        let changed = Arc::default();
        let stream = Checked::new(
            inner,
            job,
            Arc::default(),
            Arc::default(),
            Arc::clone(&changed),
        );
        let items = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(stream.collect::<Vec<_>>());
        let why = lock(&changed).clone();
        (items, why)
    }

    #[test]
    fn checked_streams_pass_verified_bytes_and_hold_back_the_last_chunk_of_changed_ones() {
        let good = job(b"hello world");
        let (items, why) = checked(vec![b"hello ", b"world"], &good);
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok) && why.is_none());

        // Same size, other bytes: the final chunk is replaced by an error.
        let (items, why) = checked(vec![b"hello ", b"WORLD"], &good);
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok() && items[1].is_err());
        assert!(why.unwrap().contains("different bytes"));

        // Shorter and longer.
        let (items, why) = checked(vec![b"hello"], &good);
        assert!(items.last().unwrap().is_err());
        assert!(why.unwrap().contains("ended after 5 of its 11 bytes"));
        let (items, why) = checked(vec![b"hello world", b"!"], &good);
        assert!(items.last().unwrap().is_err());
        assert!(why.unwrap().contains("longer"));

        // An empty blob is checked too.
        let (items, why) = checked(vec![], &job(b""));
        assert!(items.is_empty() && why.is_none());
    }

    #[test]
    fn a_continued_upload_sends_only_the_rest_but_hashes_it_all() {
        let good = job(b"hello world");
        let run = |chunks: Vec<&'static [u8]>, offset| {
            let inner: BlobStream = Box::pin(futures_util::stream::iter(
                chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
            ));
            let counters = Arc::new(Counters::default());
            let changed = Arc::default();
            let stream = Checked::new(inner, &good, counters.clone(), Arc::default(), changed)
                .from_offset(offset);
            let items = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(stream.collect::<Vec<_>>());
            let sent: Vec<u8> = items
                .iter()
                .filter_map(|i| i.as_ref().ok())
                .flat_map(|b| b.to_vec())
                .collect();
            let failed = items.iter().any(Result::is_err);
            (sent, failed, counters.bytes_sent.load(Ordering::Relaxed))
        };
        // From inside a chunk, from a chunk's end, from the very end.
        assert_eq!(
            run(vec![b"hello ", b"world"], 3),
            (b"lo world".to_vec(), false, 8)
        );
        assert_eq!(
            run(vec![b"hello ", b"world"], 6),
            (b"world".to_vec(), false, 5)
        );
        assert_eq!(run(vec![b"hello ", b"world"], 11), (vec![], false, 0));
        // The skipped part changed: the digest check still fails the stream.
        let (_, failed, _) = run(vec![b"HELLO ", b"world"], 6);
        assert!(failed);
    }
}
