//! Our own requests to a registry: where they go, the credentials they carry (to the registry's
//! host only), and what an answer means: success, or the error it says, read within bounds and
//! with the wait a busy registry asks for (`Retry-After`).

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::AUTHORIZATION;

use super::{Registry, Repo};
use crate::error::{ErrorKind, short};

/// Bytes of an error answer's body read at most: the message is cut to a line anyway, and an
/// endless body must not fill memory.
const ERROR_BODY_LIMIT: u64 = 16 * 1024;

impl Registry {
    /// `SCHEME://HOST/v2/REPOSITORY/TAIL`.
    pub(super) fn url(&self, repo: &Repo, tail: &str) -> String {
        format!(
            "{}://{}/v2/{}/{tail}",
            self.scheme(&repo.host),
            repo.host,
            repo.path
        )
    }

    /// A request built by `build` (called again for a second try, so any body must be cheap to
    /// clone), with credentials for `repo` (to push, or only to pull) when `url` is on its
    /// host, asked once more with a fresh token after a 401. Returns whatever the registry
    /// answered.
    pub(super) async fn send_authorized(
        &self,
        repo: &Repo,
        url: &str,
        push: bool,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ErrorKind> {
        let ours = same_host(url, &repo.host);
        for fresh in [false, true] {
            let mut request = build(&self.inner.http);
            if ours && let Some(h) = self.authorization(repo, push, fresh).await? {
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

/// The response if it is a success; else its status, `Retry-After` and the start of its body,
/// as an error kind.
pub(super) async fn expect_success(
    response: reqwest::Response,
) -> Result<reqwest::Response, ErrorKind> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = match read_bounded(response, ERROR_BODY_LIMIT).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(_) => String::new(), // too long or cut off: the status says enough
    };
    Err(ErrorKind::from_response(
        status.as_u16(),
        &headers,
        short(&body),
    ))
}

/// Why [`read_bounded`] stopped.
pub(super) enum Bounded {
    /// The body passed the limit: this many bytes had arrived.
    Over(u64),
    Net(ErrorKind),
}

/// Reads a response body, stopping as soon as it passes `limit`.
pub(super) async fn read_bounded(
    response: reqwest::Response,
    limit: u64,
) -> Result<Bytes, Bounded> {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Bounded::Net(ErrorKind::from_reqwest(&e)))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(Bounded::Over((out.len() + chunk.len()) as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

/// Whether `url` points at `host` (`HOST[:PORT]`): credentials are only ever sent there.
pub(super) fn same_host(url: &str, host: &str) -> bool {
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
}
