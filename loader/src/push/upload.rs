//! The writing half of push: [`Uploader::write`] runs once the bundle has verified, given
//! what [`super::check`] found, in the order that keeps the target consistent at every moment:
//!
//! 1. Blobs, in parallel (`concurrency` at a time; biggest first, or in archive order for a
//!    `.tar.gz`). Where one is missing, it is mounted from a repository that has it, else
//!    its first copy is made (the session [`super::stage`] filled while the bundle was being
//!    verified, committed; or one streamed upload) and it is mounted into the rest (uploaded
//!    if the registry declines a mount). A mount also succeeds where the blob already is, so
//!    repositories not asked about are simply mounted into.
//! 2. Manifests and indexes by digest, byte for byte, children before parents (by height).
//! 3. Tags, last: each top manifest under its tag.
//!
//! Each manifest and tag waits only for the blobs below it: what needs none of the big blobs
//! (1 MiB or more, the slow ones) is put while those are still streaming, and only the rest
//! waits for them. (Not for a `.tar.gz`, whose blobs all come from one pass in archive order.)
//!
//! What is already there is left alone, so a second push writes nothing, and a push
//! interrupted anywhere completes on the next run by sending only what is missing. Retries
//! (connection errors, 5xx, 429) are the registry client's, each request and each blob with a
//! budget of its own. A blob that still fails does not stop the others: everything that does
//! not need it is pushed, so the next run has only it left to send, and the push then fails
//! naming it.

use std::collections::{BTreeSet, HashSet};
use std::future::ready;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use sensei_core::digest::Digest;
use sensei_core::progress::Reporter;
use sensei_registry::{ErrorKind, Registry, RegistryError, Repo};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::check::{BIG_BLOB, Presence};
use super::graph::{BlobJob, ManifestJob, PushGraph, TagJob};
use super::kind::Kind;
use super::source::{BlobStream, Checked, Counters, Source, lock};
use super::stage::Staging;

/// How often a running upload's progress is passed to the reporter.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// What failed while pushing.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The bundle's bytes no longer match what was verified.
    #[error("{0}")]
    Changed(String),
}

/// What the push did, counted per (repository, blob) placement, manifest and tag.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub blobs_uploaded: u64,
    pub blobs_mounted: u64,
    pub blobs_present: u64,
    pub manifests_pushed: u64,
    pub manifests_present: u64,
    pub tags_pushed: u64,
    pub tags_present: u64,
    /// Blob and manifest bytes sent, retries included.
    pub bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Tally {
    uploaded: AtomicU64,
    mounted: AtomicU64,
    present: AtomicU64,
    manifests_pushed: AtomicU64,
    manifests_present: AtomicU64,
    tags_pushed: AtomicU64,
    tags_present: AtomicU64,
    manifest_bytes: AtomicU64,
}

/// Blobs that gave up after their retries: what depends on them is not put, everything else
/// is, and the push then fails with the first one's error.
#[derive(Debug, Default)]
struct Failed {
    digests: Mutex<HashSet<Digest>>,
    first: Mutex<Option<RegistryError>>,
}

impl Failed {
    fn note(&self, digest: Digest, e: RegistryError) {
        lock(&self.digests).insert(digest);
        lock(&self.first).get_or_insert(e);
    }

    /// True if any of `blobs` failed.
    fn touches(&self, blobs: &BTreeSet<Digest>) -> bool {
        let failed = lock(&self.digests);
        !failed.is_empty() && blobs.iter().any(|d| failed.contains(d))
    }

    /// The first failure, saying how many other blobs failed too.
    fn into_error(self) -> Option<RegistryError> {
        let others = lock(&self.digests).len().saturating_sub(1);
        let mut e = self
            .first
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)?;
        e.action = match others {
            0 => format!("{} (everything not needing it was pushed)", e.action),
            n => format!(
                "{} ({n} other blob(s) failed too; everything not needing them was pushed)",
                e.action
            ),
        };
        Some(e)
    }
}

/// A registry failure that came after the retries ran out (rather than one no retry could
/// help, like access refused): one blob's bad luck, not a reason to stop the others.
fn gave_up(e: &RegistryError) -> bool {
    e.kind.is_transient() || matches!(e.kind, ErrorKind::Stalled { .. } | ErrorKind::GaveUp { .. })
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// One push's connection to the target, its source of bytes and its progress.
pub struct Uploader<'a> {
    pub registry: &'a Registry,
    /// `HOST[:PORT]` of the target.
    pub host: &'a str,
    pub source: &'a Source,
    pub concurrency: usize,
    pub reporter: &'a dyn Reporter,
    /// The sessions staged while the bundle was being verified, committed here.
    pub staging: Option<&'a Staging>,
    /// Blob bytes sent, staged ones included.
    pub counters: Arc<Counters>,
}

impl std::fmt::Debug for Uploader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("host", &self.host)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Uploader<'_> {
    /// Writes what `presence` says is missing, in the order of the module docs.
    pub async fn write(
        &self,
        graph: &PushGraph,
        presence: &Presence,
    ) -> Result<Counts, UploadError> {
        let tally = Tally::default();
        let counters = &self.counters;
        let n = self.concurrency.max(1);

        let mut order: Vec<&BlobJob> = graph.blobs.iter().collect();
        if self.source.kind() == Kind::Gzip {
            // The sequential decompression reaches blobs in archive order (the listing's,
            // `sensei_core::content::entries`): so must the jobs.
            order.sort_by_key(|b| b.file_index);
        } else {
            // The biggest blob takes longest: start it first so the rest hide behind it.
            order.sort_by_key(|b| (std::cmp::Reverse(b.size), b.file_index));
        }
        // The big blobs take longest: what needs none of them is put while they are still
        // going, so only what does waits for them. (A `.tar.gz` reaches its blobs in one pass:
        // its jobs keep one order.)
        let slow: HashSet<Digest> = if self.source.kind() == Kind::Gzip {
            HashSet::new()
        } else {
            order
                .iter()
                .filter(|b| b.size >= BIG_BLOB)
                .map(|b| b.digest)
                .collect()
        };
        let waits = |blobs: &BTreeSet<Digest>| blobs.iter().any(|d| slow.contains(d));
        let (late, early): (Vec<&BlobJob>, Vec<&BlobJob>) =
            order.into_iter().partition(|b| slow.contains(&b.digest));
        // One limit for the blobs of both.
        let slots = Semaphore::new(n);
        let failed = Failed::default();
        self.reporter.start("push", Some(graph.blob_bytes()));
        let early_part = async {
            self.blobs(early, &slots, presence, &tally, &failed).await?;
            self.manifests_and_tags(graph, presence, &tally, |b| !waits(b) && !failed.touches(b))
                .await
        };
        futures_util::try_join!(
            self.blobs(late, &slots, presence, &tally, &failed),
            early_part
        )?;
        self.reporter.finish();
        self.manifests_and_tags(graph, presence, &tally, |b| waits(b) && !failed.touches(b))
            .await?;
        if let Some(e) = failed.into_error() {
            return Err(e.into());
        }

        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Ok(Counts {
            blobs_uploaded: get(&tally.uploaded),
            blobs_mounted: get(&tally.mounted),
            blobs_present: get(&tally.present),
            manifests_pushed: get(&tally.manifests_pushed),
            manifests_present: get(&tally.manifests_present),
            tags_pushed: get(&tally.tags_pushed),
            tags_present: get(&tally.tags_present),
            bytes_sent: get(&counters.bytes_sent) + get(&tally.manifest_bytes),
        })
    }

    /// `jobs` in parallel, each holding one of `slots` while it runs. A blob that gave up after
    /// its retries is noted in `failed` and the others go on; any other failure (the bundle
    /// changed, access refused) stops them all.
    async fn blobs(
        &self,
        jobs: Vec<&BlobJob>,
        slots: &Semaphore,
        presence: &Presence,
        tally: &Tally,
        failed: &Failed,
    ) -> Result<(), UploadError> {
        stream::iter(jobs)
            .map(|job| async move {
                let _slot = slots.acquire().await.ok(); // never closed
                match self.blob(job, presence, tally, &self.counters).await {
                    Err(UploadError::Registry(e)) if gave_up(&e) => {
                        self.source.skip(job); // a `.tar.gz` pass must not wait for it
                        failed.note(job.digest, e);
                        Ok(())
                    }
                    other => other,
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_for_each(|()| ready(Ok(())))
            .await
    }

    /// The manifests (children before parents) and then the tags whose blobs `pick` selects.
    async fn manifests_and_tags(
        &self,
        graph: &PushGraph,
        presence: &Presence,
        tally: &Tally,
        pick: impl Fn(&BTreeSet<Digest>) -> bool,
    ) -> Result<(), UploadError> {
        let n = self.concurrency.max(1);
        for height in graph.heights() {
            stream::iter(
                graph
                    .manifests
                    .iter()
                    .filter(|m| m.height == height && pick(&m.blobs)),
            )
            .map(|m| self.manifest(m, presence, tally))
            .buffer_unordered(n)
            .try_for_each(|()| ready(Ok(())))
            .await?;
        }
        stream::iter(graph.tags.iter().filter(|t| pick(&t.blobs)))
            .map(|t| self.tag(t, presence, tally))
            .buffer_unordered(n)
            .try_for_each(|()| ready(Ok(())))
            .await
    }

    fn repo(&self, path: &str) -> Repo {
        Repo::new(self.host, path)
    }

    /// One blob into every repository that lacks it.
    async fn blob(
        &self,
        job: &BlobJob,
        presence: &Presence,
        tally: &Tally,
        counters: &Arc<Counters>,
    ) -> Result<(), UploadError> {
        let mut missing: Vec<Repo> = vec![];
        let mut holder: Option<Repo> = None;
        for path in &job.repos {
            if presence.blobs.contains(&(path.clone(), job.digest)) {
                add(&tally.present, 1);
                holder = holder.or_else(|| Some(self.repo(path)));
            } else {
                missing.push(self.repo(path));
            }
        }
        let holder = match holder {
            Some(h) => {
                self.source.skip(job);
                self.reporter.advance(job.size);
                h
            }
            None if missing.is_empty() => {
                self.source.skip(job);
                return Ok(());
            }
            None => {
                let first = self.first_copy(job, &mut missing, counters).await?;
                add(&tally.uploaded, 1);
                first
            }
        };
        let holder = &holder;
        stream::iter(&missing)
            .map(|repo| async move {
                if self
                    .registry
                    .mount_blob(repo, &holder.path, &job.digest)
                    .await
                {
                    add(&tally.mounted, 1);
                } else {
                    self.upload(repo, job, counters).await?;
                    add(&tally.uploaded, 1);
                }
                Ok::<(), UploadError>(())
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_for_each(|()| ready(Ok(())))
            .await?;
        self.source.skip(job);
        Ok(())
    }

    /// The blob's first copy in the registry, into one of `missing` (taken out of it): its
    /// staged session committed, else one upload. A session the registry no longer knows (it
    /// restarted with another secret, or purged it) means an upload after all; a staging
    /// whose attempts stopped getting anywhere fails the blob (an upload would repeat them).
    async fn first_copy(
        &self,
        job: &BlobJob,
        missing: &mut Vec<Repo>,
        counters: &Arc<Counters>,
    ) -> Result<Repo, UploadError> {
        let waited = match self.staging {
            Some(staging) => staging.wait(&job.digest).await,
            None => None,
        };
        if let Some(Err(stalled)) = waited {
            return Err(stalled.into());
        }
        if let Some(staging) = self.staging
            && let Some(Ok(staged)) = waited
            && let Some(i) = missing.iter().position(|r| r == staged.repo())
        {
            let repo = missing.remove(i);
            self.reporter.item(&job.path, Some(job.size));
            let committed = self.registry.commit_staged(&staged).await;
            self.reporter.item_done(&job.path);
            match committed {
                Ok(()) => {
                    staging.done(&job.digest);
                    self.reporter.advance(job.size);
                    return Ok(repo);
                }
                // Left in the set: the push fails, and its sessions are cancelled.
                Err(e) if e.kind.is_transient() => return Err(e.into()),
                Err(_) => {
                    self.registry.cancel_staged(&staged).await;
                    staging.done(&job.digest);
                    self.upload(&repo, job, counters).await?;
                    return Ok(repo);
                }
            }
        }
        let first = missing.remove(0);
        self.upload(&first, job, counters).await?;
        Ok(first)
    }

    /// A streamed, hashed upload of one blob, its progress passed to the reporter.
    async fn upload(
        &self,
        repo: &Repo,
        job: &BlobJob,
        counters: &Arc<Counters>,
    ) -> Result<(), UploadError> {
        let changed: Arc<Mutex<Option<String>>> = Arc::default();
        let progress = Arc::new(AtomicU64::new(0));
        // Opened again from the bundle for every attempt, passing on the bytes from where the
        // attempt starts (the registry may have kept the earlier ones).
        let body = |from: u64| -> std::io::Result<BlobStream> {
            // A blob that changed fails for good: a retry would only read the same bytes.
            if let Some(why) = lock(&changed).clone() {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
            }
            let inner = self.source.open(job)?;
            Ok(Box::pin(
                Checked::new(
                    inner,
                    job,
                    counters.clone(),
                    progress.clone(),
                    changed.clone(),
                )
                .from_offset(from),
            ))
        };
        self.reporter.item(&job.path, Some(job.size));
        let push = self.registry.push_blob(repo, &job.digest, job.size, body);
        tokio::pin!(push);
        let mut tick = tokio::time::interval(PROGRESS_TICK);
        let result = loop {
            tokio::select! {
                r = &mut push => break r,
                _ = tick.tick() => self.pass_progress(job, &progress),
            }
        };
        self.pass_progress(job, &progress);
        self.reporter.item_done(&job.path);
        let why = lock(&changed).clone();
        match (result, why) {
            (Err(_), Some(why)) => Err(UploadError::Changed(why)),
            (result, _) => Ok(result?),
        }
    }

    fn pass_progress(&self, job: &BlobJob, progress: &AtomicU64) {
        let n = progress.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.reporter.item_advance(&job.path, n);
        }
    }

    /// A manifest or index by digest, unless the repository has it.
    async fn manifest(
        &self,
        m: &ManifestJob,
        presence: &Presence,
        tally: &Tally,
    ) -> Result<(), UploadError> {
        if presence.manifests.contains(&(m.repo.clone(), m.digest)) {
            add(&tally.manifests_present, 1);
            return Ok(());
        }
        self.registry
            .push_manifest(
                &self.repo(&m.repo),
                &m.digest.to_string(),
                m.bytes.clone(),
                &m.media_type,
            )
            .await?;
        add(&tally.manifests_pushed, 1);
        add(&tally.manifest_bytes, m.bytes.len() as u64);
        Ok(())
    }

    /// A top manifest under its tag, unless the tag already names it.
    async fn tag(&self, t: &TagJob, presence: &Presence, tally: &Tally) -> Result<(), UploadError> {
        if presence.tags.contains(&(t.repo.clone(), t.tag.clone())) {
            add(&tally.tags_present, 1);
            add(&self.counters.tags_done, 1);
            return Ok(());
        }
        self.registry
            .push_manifest(&self.repo(&t.repo), &t.tag, t.bytes.clone(), &t.media_type)
            .await?;
        add(&tally.tags_pushed, 1);
        add(&self.counters.tags_done, 1);
        add(&tally.manifest_bytes, t.bytes.len() as u64);
        Ok(())
    }
}
