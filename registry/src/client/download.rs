//! Plain HTTP(S) downloads outside the distribution protocol (a Helm repository's `index.yaml`
//! and chart packages), through the same client as every registry request: the same CAs,
//! proxies, timeouts and user agent, and the same retries, `Retry-After` included.

use sensei_core::digest::Digest;

use super::Registry;
use super::request::{Bounded, expect_success, read_bounded};
use crate::error::ErrorKind;

/// A file downloaded whole, with its sha256.
#[derive(Debug, Clone)]
pub struct Download {
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

impl Registry {
    /// GETs `url` into memory, at most `limit` bytes of `what` (the declared length is checked
    /// first, but not trusted), retrying what passes as a registry request is retried. No
    /// registry credentials are sent: a password in the URL (`https://USER:TOKEN@host/`) is
    /// the only one, and reqwest drops it when a redirect leaves the host.
    pub async fn download(
        &self,
        url: &url::Url,
        limit: u64,
        what: &'static str,
    ) -> Result<Download, ErrorKind> {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(ErrorKind::Protocol(format!("{url} names no host"))),
        };
        let too_large = || ErrorKind::TooLarge { what, limit };
        self.retried_as("Helm repository", &host, |_| async {
            let response = self
                .inner
                .http
                .get(url.clone())
                .send()
                .await
                .map_err(|e| ErrorKind::from_reqwest(&e))?;
            let response = expect_success(response).await?;
            if response.content_length().is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let bytes = read_bounded(response, limit)
                .await
                .map_err(|e| match e {
                    Bounded::Over(_) => too_large(),
                    Bounded::Net(kind) => kind,
                })?
                .to_vec();
            let digest = Digest::of(&bytes);
            Ok(Download { bytes, digest })
        })
        .await
    }
}
