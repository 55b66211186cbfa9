//! Blob uploads through an upload session: in one step, the whole blob streamed in the PUT
//! that commits it ([`Registry::push_blob`]), or in two: a session opened and fed now
//! ([`Registry::stage_blob`]), committed later ([`Registry::commit_staged`]) or cancelled
//! ([`Registry::cancel_staged`]).
//!
//! A session that was fed but not committed is invisible: the repository gets the blob (and a
//! registry starts listing the repository) only when the commit names the digest. So a big
//! blob can stream to the registry while its bundle is still being verified, and be committed
//! only once every byte of the bundle has been. The registry checks the digest at the commit.
//!
//! The attempts and what a failed one leaves to the next are `upload`'s; here are the
//! requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use sensei_core::digest::Digest;

use super::request::{expect_success, same_host};
use super::{Registry, Repo, lock};
use crate::error::{ErrorKind, RegistryError};

/// How an upload ends once the registry holds every byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finish {
    /// Committed with its digest: the blob is in the repository.
    Commit,
    /// Left open (staged), to be committed later.
    Leave,
}

/// An upload session holding every byte of one blob, not yet committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    repo: Repo,
    digest: Digest,
    /// The absolute URL the session continues at (the registry's latest `Location`).
    location: String,
}

impl Staged {
    /// The repository the blob lands in once committed.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }
}

impl Registry {
    /// Uploads a blob: opens an upload session (POST), then streams every byte in the PUT
    /// that commits it with its digest (a monolithic upload), which the registry checks.
    /// `body(from)` is called once per attempt and must give the blob's bytes from byte
    /// `from`: 0, unless the registry kept part of a failed attempt's (see `upload`). A
    /// transient failure goes again (the failed session continued, or cancelled and a new one
    /// opened), as long as attempts keep getting further or until the policy's attempts have
    /// failed without; a body that fails (the bytes changed, or the caller gave up) is not
    /// retried.
    pub async fn push_blob<F, S>(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        body: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn(u64) -> Result<S, std::io::Error>,
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let action = format!("uploading blob {digest} to {}", repo.path);
        self.upload(repo, digest, size, body, Finish::Commit, action)
            .await
            .map(|_| ())
    }

    /// Opens an upload session in `repo` (POST) and streams the whole blob into it with one
    /// PATCH, without committing. `body` and the retries are as for [`Registry::push_blob`];
    /// every session that failed is cancelled.
    pub async fn stage_blob<F, S>(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        body: F,
    ) -> Result<Staged, RegistryError>
    where
        F: Fn(u64) -> Result<S, std::io::Error>,
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let action = format!("staging blob {digest} in {}", repo.path);
        let location = self
            .upload(repo, digest, size, body, Finish::Leave, action)
            .await?;
        Ok(Staged {
            repo: repo.clone(),
            digest: *digest,
            location,
        })
    }

    /// Commits a staged blob: PUT with its digest and an empty body, retried on transient
    /// failures. The registry checks the digest against the bytes the session holds. A session
    /// the registry no longer knows (it restarted with another secret, or purged it) fails with
    /// a 404 or 400: upload the blob again. Unless the blob is there: a commit that went
    /// through but whose answer was lost leaves its retry a 404 (the session is used up), and
    /// is then a success.
    pub async fn commit_staged(&self, staged: &Staged) -> Result<(), RegistryError> {
        let repo = &staged.repo;
        let action = format!("committing blob {} in {}", staged.digest, repo.path);
        let url = with_digest(&staged.location, &staged.digest)
            .map_err(self.fail(repo, action.clone()))?;
        let fail = self.fail(repo, action);
        let committed = self
            .retried(&repo.host, |_| self.commit_at(repo, &url))
            .await;
        match committed {
            Ok(()) => Ok(()),
            Err(_)
                if self
                    .blob_exists(repo, &staged.digest)
                    .await
                    .unwrap_or(false) =>
            {
                Ok(())
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// One PUT with an empty body at `url` (a session's location with `digest=`).
    pub(super) async fn commit_at(&self, repo: &Repo, url: &str) -> Result<(), ErrorKind> {
        let response = self
            .send_authorized(repo, url, true, |http| {
                http.put(url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        expect_success(response).await.map(|_| ())
    }

    /// Cancels a staged blob's session (DELETE), once and on a best-effort basis: a session
    /// left behind is invisible, and registries purge abandoned uploads.
    pub async fn cancel_staged(&self, staged: &Staged) {
        self.delete_session(&staged.repo, &staged.location).await;
    }

    /// POST `/v2/<repo>/blobs/uploads/`: a new session's absolute location.
    pub(super) async fn open_session(&self, repo: &Repo) -> Result<String, ErrorKind> {
        let base = self.url(repo, "blobs/uploads/");
        let response = self
            .send_authorized(repo, &base, true, |http| {
                http.post(&base).header(CONTENT_LENGTH, 0)
            })
            .await?;
        let response = expect_success(response).await?;
        location(&response, &base)?.ok_or_else(|| {
            ErrorKind::Protocol("the upload session was opened without a Location".into())
        })
    }

    /// One request whose body is the blob, or the part of it `part` says, streamed; the
    /// successful answer.
    pub(super) async fn send_stream<S>(
        &self,
        repo: &Repo,
        method: Method,
        at: &str,
        part: Part<'_>,
        stream: S,
    ) -> Result<reqwest::Response, ErrorKind>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        // A failure of the body itself is told apart from the network's: it is not retried.
        let body_failed: Arc<Mutex<Option<String>>> = Arc::default();
        let seen = body_failed.clone();
        let counted = part.moved.clone();
        let stream = stream.map(move |item| {
            match &item {
                Ok(chunk) => {
                    counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Err(e) => *lock(&seen) = Some(e.to_string()),
            }
            item
        });
        let mut request = self
            .inner
            .http
            .request(method, at)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, part.len);
        if let Some((first, last)) = part.range {
            request = request.header(CONTENT_RANGE, format!("{first}-{last}"));
        }
        let mut request = request.body(reqwest::Body::wrap_stream(stream));
        if same_host(at, &repo.host)
            && let Some(h) = self.authorization(repo, true, false).await?
        {
            request = request.header(AUTHORIZATION, h);
        }
        let sent = request.send().await;
        if let Some(why) = lock(&body_failed).take() {
            return Err(ErrorKind::Source(why));
        }
        let response = sent.map_err(|e| ErrorKind::from_reqwest(&e))?;
        expect_success(response).await
    }

    /// One DELETE, best effort. (docker-registry 2.8 cannot cancel a session whose PATCH was
    /// cut short: the location's offset is then stale, and its stale-offset path closes the
    /// upload before cancelling it, so the partial upload stays under `_uploads`, never
    /// listed, until the registry's upload purging removes it.)
    pub(super) async fn delete_session(&self, repo: &Repo, at: &str) {
        let _ = self
            .send_authorized(repo, at, true, |http| http.delete(at))
            .await;
    }
}

/// What one request of a blob upload sends.
#[derive(Debug, Clone, Copy)]
pub(super) struct Part<'a> {
    /// First and last byte, for a request that continues a session (`Content-Range`); `None`
    /// for the whole blob.
    pub range: Option<(u64, u64)>,
    /// Bytes in the body.
    pub len: u64,
    /// Counts the bytes handed to the network.
    pub moved: &'a Arc<AtomicU64>,
}

/// A session's location with `digest=` added: where the PUT that commits it goes.
pub(super) fn with_digest(location: &str, digest: &Digest) -> Result<String, ErrorKind> {
    let mut url = url::Url::parse(location)
        .map_err(|e| ErrorKind::Protocol(format!("upload location {location}: {e}")))?;
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    Ok(url.to_string())
}

/// The response's `Location`, made absolute against the URL it answered (a registry may give a
/// path only).
pub(super) fn location(
    response: &reqwest::Response,
    base: &str,
) -> Result<Option<String>, ErrorKind> {
    let Some(value) = response.headers().get(LOCATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|e| ErrorKind::Protocol(format!("upload Location is not text: {e}")))?;
    resolve(base, value).map(Some)
}

/// `value` (absolute, or a path) made absolute against `base`.
fn resolve(base: &str, value: &str) -> Result<String, ErrorKind> {
    let base = url::Url::parse(base)
        .map_err(|e| ErrorKind::Protocol(format!("upload URL {base}: {e}")))?;
    let joined = base
        .join(value)
        .map_err(|e| ErrorKind::Protocol(format!("upload Location {value:?}: {e}")))?;
    Ok(joined.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn locations_resolve_against_the_registry() {
        let base = "http://127.0.0.1:5000/v2/a/b/blobs/uploads/";
        assert_eq!(
            resolve(base, "/v2/a/b/blobs/uploads/u1?_state=x").unwrap(),
            "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=x"
        );
        assert_eq!(
            resolve(base, "https://other.example/up/u2").unwrap(),
            "https://other.example/up/u2"
        );
    }
}
