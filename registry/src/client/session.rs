//! Blob uploads in two steps: an upload session opened and fed now ([`Registry::stage_blob`]),
//! committed later ([`Registry::commit_staged`]) or cancelled ([`Registry::cancel_staged`]).
//!
//! A session that was fed but not committed is invisible: the repository gets the blob (and a
//! registry starts listing the repository) only when the commit names the digest. So a big
//! blob can stream to the registry while its bundle is still being verified, and be committed
//! only once every byte of the bundle has been. The registry checks the digest at the commit.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use sensei_core::digest::Digest;

use super::{Registry, Repo, lock};
use crate::error::{ErrorKind, RegistryError, short};

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
    /// Opens an upload session in `repo` (POST) and streams the whole blob into it with one
    /// PATCH, without committing. `body` is called once per attempt and must give the blob's
    /// bytes from the start. A transient failure starts over with a new session; every session
    /// that failed is cancelled first. A body that fails (the bytes changed, or the caller gave
    /// up) is not retried.
    pub async fn stage_blob<F, S>(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        body: F,
    ) -> Result<Staged, RegistryError>
    where
        F: Fn() -> Result<S, std::io::Error>,
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let fail = self.fail(repo, format!("staging blob {digest} in {}", repo.path));
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        self.retried(&repo.host, |_| async {
            // The body first: a caller that gave up opens no session.
            let stream = body().map_err(|e| ErrorKind::Source(e.to_string()))?;
            let opened = self.open_session(repo).await?;
            match self.patch_stream(repo, &opened, size, stream).await {
                Ok(location) => Ok(Staged {
                    repo: repo.clone(),
                    digest: *digest,
                    location,
                }),
                Err(e) => {
                    self.delete_session(repo, &opened).await;
                    Err(e)
                }
            }
        })
        .await
        .map_err(fail)
    }

    /// Commits a staged blob: PUT with its digest and an empty body, retried on transient
    /// failures. The registry checks the digest against the bytes the session holds. A session
    /// the registry no longer knows (it restarted with another secret, or purged it) fails with
    /// a 404 or 400: upload the blob again.
    pub async fn commit_staged(&self, staged: &Staged) -> Result<(), RegistryError> {
        let repo = &staged.repo;
        let action = format!("committing blob {} in {}", staged.digest, repo.path);
        let mut url = url::Url::parse(&staged.location)
            .map_err(|e| ErrorKind::Protocol(format!("upload location {}: {e}", staged.location)))
            .map_err(self.fail(repo, action.clone()))?;
        url.query_pairs_mut()
            .append_pair("digest", &staged.digest.to_string());
        let url = url.to_string();
        let fail = self.fail(repo, action);
        self.retried(&repo.host, |_| async {
            let response = self
                .send_bodiless(repo, &url, |http| {
                    http.put(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, 0)
                })
                .await?;
            expect_success(response).await.map(|_| ())
        })
        .await
        .map_err(fail)
    }

    /// Cancels a staged blob's session (DELETE), once and on a best-effort basis: a session
    /// left behind is invisible, and registries purge abandoned uploads.
    pub async fn cancel_staged(&self, staged: &Staged) {
        self.delete_session(&staged.repo, &staged.location).await;
    }

    /// POST `/v2/<repo>/blobs/uploads/`: a new session's absolute location.
    async fn open_session(&self, repo: &Repo) -> Result<String, ErrorKind> {
        let base = format!(
            "{}://{}/v2/{}/blobs/uploads/",
            self.scheme(&repo.host),
            repo.host,
            repo.path
        );
        let response = self
            .send_bodiless(repo, &base, |http| {
                http.post(&base).header(CONTENT_LENGTH, 0)
            })
            .await?;
        let response = expect_success(response).await?;
        location(&response, &base)?.ok_or_else(|| {
            ErrorKind::Protocol("the upload session was opened without a Location".into())
        })
    }

    /// One PATCH carrying the whole blob; returns where the session continues.
    async fn patch_stream<S>(
        &self,
        repo: &Repo,
        at: &str,
        size: u64,
        stream: S,
    ) -> Result<String, ErrorKind>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        // A failure of the body itself is told apart from the network's: it is not retried.
        let body_failed: Arc<Mutex<Option<String>>> = Arc::default();
        let seen = body_failed.clone();
        let stream = stream.map(move |item| {
            if let Err(e) = &item {
                *lock(&seen) = Some(e.to_string());
            }
            item
        });
        let mut request = self
            .inner
            .http
            .patch(at)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
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
        let response = expect_success(response).await?;
        Ok(location(&response, at)?.unwrap_or_else(|| at.to_owned()))
    }

    /// One DELETE, best effort. (docker-registry 2.8 cannot cancel a session whose PATCH was
    /// cut short: the location's offset is then stale, and its stale-offset path closes the
    /// upload before cancelling it, so the partial upload stays under `_uploads`, never
    /// listed, until the registry's upload purging removes it.)
    async fn delete_session(&self, repo: &Repo, at: &str) {
        let _ = self.send_bodiless(repo, at, |http| http.delete(at)).await;
    }

    /// A request without a body, with push credentials for `repo` (when `url` is on its host),
    /// asked once more with a fresh token after a 401.
    async fn send_bodiless(
        &self,
        repo: &Repo,
        url: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ErrorKind> {
        let ours = same_host(url, &repo.host);
        for fresh in [false, true] {
            let mut request = build(&self.inner.http);
            if ours && let Some(h) = self.authorization(repo, true, fresh).await? {
                request = request.header(AUTHORIZATION, h);
            }
            let response = request
                .send()
                .await
                .map_err(|e| ErrorKind::from_reqwest(&e))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && !fresh && ours {
                continue;
            }
            return Ok(response);
        }
        Err(ErrorKind::Unauthorized)
    }
}

/// The response if it is a success; else its status as an error kind.
async fn expect_success(response: reqwest::Response) -> Result<reqwest::Response, ErrorKind> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(ErrorKind::from_status(status.as_u16(), short(&body)))
}

/// The response's `Location`, made absolute against the URL it answered (a registry may give a
/// path only).
fn location(response: &reqwest::Response, base: &str) -> Result<Option<String>, ErrorKind> {
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

/// Whether `url` points at `host` (`HOST[:PORT]`): credentials are only ever sent there.
fn same_host(url: &str, host: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        let at = match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return false,
        };
        at.eq_ignore_ascii_case(host)
            || u.port().is_none() && {
                // `host` may name the scheme's default port explicitly.
                let default = if u.scheme() == "http" { 80 } else { 443 };
                host.eq_ignore_ascii_case(&format!("{at}:{default}"))
            }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credentials_go_to_the_registry_host_only() {
        assert!(same_host(
            "http://127.0.0.1:5000/v2/x/blobs/uploads/1",
            "127.0.0.1:5000"
        ));
        assert!(same_host(
            "https://Registry.Internal/v2/x",
            "registry.internal"
        ));
        assert!(same_host(
            "https://registry.internal/v2/x",
            "registry.internal:443"
        ));
        assert!(!same_host(
            "https://elsewhere.example/v2/x",
            "registry.internal"
        ));
        assert!(!same_host("http://127.0.0.1:5001/v2/x", "127.0.0.1:5000"));
        assert!(!same_host("not a url", "registry.internal"));
    }

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
