//! Big blobs streamed to the registry while the bundle is still being verified, without being
//! committed: an upload session that was fed but not committed is invisible (no repository
//! gets the blob, none appears in the catalog). The uploader commits each session once every
//! byte of the bundle has verified ([`Staging::wait`], then `commit_staged`); when anything
//! fails instead, [`Staging::abandon`] stops the streams and cancels every session (DELETE).
//!
//! Only blobs of at least [`BIG_BLOB`] bytes are staged: a session fed by PATCH and committed
//! by an empty PUT costs the registry one request more than a monolithic upload, worth it only
//! where the bytes take longer to send than the request takes to serve.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared, join_all};
use futures_util::{StreamExt, stream};
use sensei_core::digest::Digest;
use sensei_registry::{ErrorKind, Registry, RegistryError, Repo, Staged};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::check::{BIG_BLOB, Presence};
use super::graph::{BlobJob, PushGraph};
use super::source::{BlobStream, Checked, Counters, Source, lock};

/// One blob's staging, once its stream has ended. Shared, so the uploader and
/// [`Staging::abandon`] can both wait for it while a task of its own drives it.
type Session = Shared<BoxFuture<'static, Outcome>>;

/// How a blob's staging ended.
#[derive(Debug, Clone)]
enum Outcome {
    Staged(Staged),
    /// Not staged (stopped, or a failure an upload may not meet): the uploader uploads it the
    /// usual way.
    Failed,
    /// Its attempts kept failing without getting any further, until its budget ran out: an
    /// upload would only repeat them, so the uploader fails with this (taken once).
    Stalled(Arc<Mutex<Option<RegistryError>>>),
}

/// The sessions of one push.
pub struct Staging {
    registry: Registry,
    runtime: Handle,
    stop: CancellationToken,
    /// Blobs being staged or staged, and not yet committed or cancelled.
    sessions: Mutex<HashMap<Digest, Session>>,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("sessions", &lock(&self.sessions).len())
            .field("stopped", &self.stop.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Staging {
    pub fn new(registry: Registry, runtime: Handle) -> Self {
        Self {
            registry,
            runtime,
            stop: CancellationToken::new(),
            sessions: Mutex::default(),
        }
    }

    /// Starts staging every big blob that no repository holds, biggest first, `concurrency`
    /// at a time, each into the first repository that needs it, read from `source` and hashed
    /// as it goes. Does nothing once [`Staging::abandon`] has begun.
    pub fn start(
        &self,
        host: &str,
        graph: &PushGraph,
        presence: &Presence,
        source: &Arc<Source>,
        counters: &Arc<Counters>,
        concurrency: usize,
    ) {
        let mut jobs: Vec<&BlobJob> = graph
            .blobs
            .iter()
            .filter(|b| b.size >= BIG_BLOB && !presence.has_anywhere(b) && !b.repos.is_empty())
            .collect();
        jobs.sort_by_key(|b| (std::cmp::Reverse(b.size), b.file_index));
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut sessions = lock(&self.sessions);
        if self.stop.is_cancelled() {
            return;
        }
        for job in jobs {
            let session = stage(
                self.registry.clone(),
                Repo::new(host, job.repos[0].as_str()),
                job.clone(),
                source.clone(),
                counters.clone(),
                slots.clone(),
                self.stop.clone(),
            )
            .boxed()
            .shared();
            // The task drives the stream whether or not anyone waits for it yet.
            self.runtime.spawn(session.clone());
            sessions.insert(job.digest, session);
        }
    }

    /// The blob's staged session, once its stream has ended; `None` if it was not staged or
    /// staging failed, and the error if it failed for good: its attempts stopped getting any
    /// further (an upload would only repeat them). A session stays in the set (so
    /// [`Staging::abandon`] would cancel it) until [`Staging::done`].
    pub async fn wait(&self, digest: &Digest) -> Option<Result<Staged, RegistryError>> {
        let session = lock(&self.sessions).get(digest).cloned()?;
        match session.await {
            Outcome::Staged(staged) => Some(Ok(staged)),
            Outcome::Failed => None,
            Outcome::Stalled(error) => lock(&error).take().map(Err),
        }
    }

    /// The blob's session was committed, or cancelled by the caller: forget it.
    pub fn done(&self, digest: &Digest) {
        lock(&self.sessions).remove(digest);
    }

    /// Stops every stream and cancels every session still in the set, waiting until each is
    /// gone; staging started later does nothing. Call it on every way out of a push that
    /// staged (after a success it finds nothing left).
    pub async fn abandon(&self) {
        let sessions: Vec<Session> = {
            let mut sessions = lock(&self.sessions);
            self.stop.cancel();
            sessions.drain().map(|(_, s)| s).collect()
        };
        join_all(sessions.into_iter().map(|session| async move {
            if let Outcome::Staged(staged) = session.await {
                self.registry.cancel_staged(&staged).await;
            }
        }))
        .await;
    }

    /// [`Staging::abandon`] from outside the runtime.
    pub fn abandon_blocking(&self) {
        self.runtime.block_on(self.abandon());
    }
}

/// One blob into a session of `repo`: the stream ends with an error as soon as `stop` fires,
/// and the registry client cancels the session it opened when its stream fails.
async fn stage(
    registry: Registry,
    repo: Repo,
    job: BlobJob,
    source: Arc<Source>,
    counters: Arc<Counters>,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
) -> Outcome {
    let _slot = tokio::select! {
        slot = slots.acquire_owned() => match slot {
            Ok(slot) => slot,
            Err(_) => return Outcome::Failed,
        },
        () = stop.cancelled() => return Outcome::Failed,
    };
    let changed: Arc<Mutex<Option<String>>> = Arc::default();
    let body = |from: u64| -> io::Result<BlobStream> {
        if stop.is_cancelled() {
            return Err(abandoned());
        }
        if let Some(why) = lock(&changed).clone() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        let checked = Checked::new(
            source.open(&job)?,
            &job,
            counters.clone(),
            Arc::new(AtomicU64::new(0)),
            changed.clone(),
        )
        .from_offset(from);
        Ok(until(Box::pin(checked), stop.clone()))
    };
    match registry
        .stage_blob(&repo, &job.digest, job.size, body)
        .await
    {
        Ok(staged) => Outcome::Staged(staged),
        Err(e) if matches!(e.kind, ErrorKind::Stalled { .. }) => {
            Outcome::Stalled(Arc::new(Mutex::new(Some(e))))
        }
        Err(_) => Outcome::Failed,
    }
}

fn abandoned() -> io::Error {
    io::Error::other("the push was abandoned")
}

/// `inner`, ending with an error as soon as `stop` fires.
fn until(inner: BlobStream, stop: CancellationToken) -> BlobStream {
    Box::pin(stream::unfold(Some((inner, stop)), |state| async move {
        let (mut inner, stop) = state?;
        tokio::select! {
            biased;
            () = stop.cancelled() => Some((Err(abandoned()), None)),
            item = inner.next() => item.map(|item| (item, Some((inner, stop)))),
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn a_stopped_stream_ends_with_an_error() {
        let stop = CancellationToken::new();
        let inner: BlobStream = Box::pin(stream::iter(vec![Ok(Bytes::from_static(b"a"))]).chain(
            stream::pending(), // a body that would never end on its own
        ));
        let mut s = until(inner, stop.clone());
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from_static(b"a"));
        stop.cancel();
        assert!(s.next().await.unwrap().is_err());
        assert!(s.next().await.is_none());
    }
}
