//! The attempts of one blob upload, and what a failed attempt leaves to the next.
//!
//! After a transient failure the registry is asked what it kept of the session (`GET` on the
//! session's location: `204` with `Range: 0-LAST`, the OCI distribution spec's upload status),
//! and where it holds a useful part the next attempt continues the session from there (a
//! PATCH with `Content-Range`, then the commit). docker-registry 2.8 (the test registry) keeps
//! the bytes of a PATCH cut short but then refuses the session (`BLOB_UPLOAD_INVALID`), so
//! against it every retry starts over in a fresh session from byte 0, the failed one
//! cancelled.
//!
//! A request the registry answered with an error (a 5xx) leaves the session as it was: the
//! next attempt sends the blob again in the same session, from byte 0.
//!
//! The budget counts attempts without progress ([`ProgressBudget`]): a big blob over a
//! connection that keeps breaking goes on while its attempts get further. A commit whose answer
//! was lost may have gone through: when an attempt had sent every byte, the blob being in the
//! repository (HEAD) ends the upload as a success instead of sending it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::Stream;
use reqwest::Method;
use reqwest::header::RANGE;
use sensei_core::digest::Digest;

use super::session::{Finish, Part, location, with_digest};
use super::{Registry, Repo};
use crate::error::{ErrorKind, RegistryError};
use crate::retry::{ProgressBudget, Resend, Retrying, progress_step};

/// The least a registry must say it kept of a session for the next attempt to continue it:
/// less is not worth a request more, and docker-registry's `Range: 0-0` for an empty session
/// can't be told from one byte.
const RESUME_MIN: u64 = 1 << 20;

impl Registry {
    /// A blob's upload, attempt after attempt (see the module docs); the session's location
    /// once every byte is in (and, for [`Finish::Commit`], committed).
    pub(super) async fn upload<F, S>(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        body: F,
        finish: Finish,
        action: String,
    ) -> Result<String, RegistryError>
    where
        F: Fn(u64) -> Result<S, std::io::Error>,
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let fail = |kind| self.fail(repo, action.clone())(kind);
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let policy = self.inner.settings.retry;
        let mut budget = ProgressBudget::new(&policy, size);
        // Where the next attempt continues: a session, and the bytes the registry holds in it.
        let mut resume: Option<(String, u64)> = None;
        // The furthest any attempt got, progress or not (for the final error).
        let mut furthest = 0;
        loop {
            let from = resume.as_ref().map_or(0, |(_, kept)| *kept);
            let reused = resume.is_some();
            // The body first: a caller that gave up opens no session.
            let stream = body(from).map_err(|e| fail(ErrorKind::Source(e.to_string())))?;
            let session = match resume.take() {
                Some((at, _)) => at,
                None => self
                    .retried(&repo.host, |_| self.open_session(repo))
                    .await
                    .map_err(fail)?,
            };
            let moved = Arc::new(AtomicU64::new(0));
            let error = match self
                .attempt(repo, &session, digest, size, from, stream, finish, &moved)
                .await
            {
                Ok(at) => return Ok(at),
                Err(e) => e,
            };
            if !error.is_transient() {
                self.delete_session(repo, &session).await;
                if reused && !matches!(error, ErrorKind::Source(_)) {
                    // The registry would not go on with a session it seemed to hold: start
                    // over at once, in a fresh one (counted when that one fails).
                    continue;
                }
                return Err(fail(error));
            }
            let reached = from + moved.load(Ordering::Relaxed);
            furthest = furthest.max(reached);
            let go_on = budget.failed(reached);
            // Every byte went: the commit may have gone through with its answer lost. Worth a
            // HEAD when there was no answer at all, or when sending again costs more than
            // asking. (An answered 5xx means it failed; if the registry did commit after all,
            // the next attempt's PUT lands on the blob already there.)
            if finish == Finish::Commit
                && reached >= size
                && (matches!(error, ErrorKind::Interrupted(_)) || size >= RESUME_MIN)
                && self.blob_exists(repo, digest).await.unwrap_or(false)
            {
                return Ok(session);
            }
            if !go_on {
                self.delete_session(repo, &session).await;
                if size < progress_step(size) && budget.best() == 0 {
                    return Err(fail(error)); // a small blob: as any request that gave up
                }
                return Err(fail(ErrorKind::Stalled {
                    tried: budget.tried(),
                    stalled: budget.stalled(),
                    best: furthest,
                    size,
                    last: Box::new(error),
                }));
            }
            if size >= RESUME_MIN {
                resume = self.received(repo, &session, size).await;
            }
            if resume.is_none() && matches!(error, ErrorKind::Status { .. }) {
                // The registry answered: it refused the request, so the session is as it
                // was and the next attempt can have it (a POST and a DELETE fewer). Where
                // it did take some bytes after all, it refuses the session's state then.
                resume = Some((session.clone(), 0));
            }
            if resume.is_none() {
                self.delete_session(repo, &session).await;
            }
            let delay = budget.wait_before(&policy, &error);
            self.tell(&Retrying {
                server: "registry",
                host: &repo.host,
                error: &error,
                attempt: budget.tried() + 1,
                attempts: budget.attempts(),
                delay,
                resend: Some(Resend {
                    digest: *digest,
                    size,
                    from: resume.as_ref().map_or(0, |(_, kept)| *kept),
                    reached,
                    stalled: budget.stalled(),
                }),
            });
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: from byte 0 into a fresh session, the whole blob in the PUT that commits
    /// it or in one PATCH; or, continuing a session that holds `from` bytes, the rest in a
    /// PATCH with its `Content-Range`, then the commit. Where the session continues.
    #[allow(clippy::too_many_arguments)] // one attempt's whole state, passed by the loop above
    async fn attempt<S>(
        &self,
        repo: &Repo,
        session: &str,
        digest: &Digest,
        size: u64,
        from: u64,
        stream: S,
        finish: Finish,
        moved: &Arc<AtomicU64>,
    ) -> Result<String, ErrorKind>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        if from == 0 {
            let (method, url) = match finish {
                Finish::Commit => (Method::PUT, with_digest(session, digest)?),
                Finish::Leave => (Method::PATCH, session.to_owned()),
            };
            let whole = Part {
                range: None,
                len: size,
                moved,
            };
            let response = self.send_stream(repo, method, &url, whole, stream).await?;
            return Ok(location(&response, &url)?.unwrap_or_else(|| session.to_owned()));
        }
        let mut at = session.to_owned();
        if from < size {
            let rest = Part {
                range: Some((from, size - 1)),
                len: size - from,
                moved,
            };
            let response = self
                .send_stream(repo, Method::PATCH, &at, rest, stream)
                .await?;
            at = location(&response, &at)?.unwrap_or(at);
        }
        if finish == Finish::Commit {
            self.commit_at(repo, &with_digest(&at, digest)?).await?;
        }
        Ok(at)
    }

    /// What the registry kept of a session, where it says so (`GET` on it: a success with
    /// `Range: 0-LAST`): the location to continue at and the bytes it holds. `None` when it
    /// does not say, refuses the session, or holds less than [`RESUME_MIN`]: then the next
    /// attempt starts over. One request, no retry: not knowing only costs bytes.
    async fn received(&self, repo: &Repo, session: &str, size: u64) -> Option<(String, u64)> {
        let response = self
            .send_authorized(repo, session, true, |http| http.get(session))
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let kept = response
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(range_end)?
            .checked_add(1)?;
        if !(RESUME_MIN..=size).contains(&kept) {
            return None;
        }
        let at = location(&response, session)
            .ok()?
            .unwrap_or_else(|| session.to_owned());
        Some((at, kept))
    }
}

/// The last byte of an upload status's `Range: 0-LAST` (some registries write `bytes=0-LAST`).
fn range_end(value: &str) -> Option<u64> {
    let value = value.trim();
    let value = value.strip_prefix("bytes=").unwrap_or(value);
    let (first, last) = value.split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    last.trim().parse().ok()
}

#[cfg(test)]
mod tests;
