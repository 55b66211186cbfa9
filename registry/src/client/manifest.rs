//! Manifests: bounded downloads of our own (oci-client reads a body whole, whatever its size),
//! digests checked, and byte-for-byte uploads.

use bytes::Bytes;
use futures_util::StreamExt;
use sensei_core::digest::Digest;
use sensei_core::oci;

use super::{Registry, Repo};
use crate::error::{ErrorKind, RegistryError, short};

/// Accept header for manifests: every kind a bundle may hold.
const MANIFEST_ACCEPT: [&str; 4] = [
    oci::OCI_INDEX,
    oci::OCI_MANIFEST,
    oci::DOCKER_MANIFEST_LIST,
    oci::DOCKER_MANIFEST,
];

/// A manifest or index as the registry sent it, its digest checked.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
}

impl Registry {
    /// Fetches a manifest or index by tag or digest, at most `limit` bytes (the descriptor's
    /// size when known, else the format's manifest limit), and checks its digest when it was
    /// asked for by digest or the registry named one.
    pub async fn manifest(
        &self,
        repo: &Repo,
        reference: &str,
        expected: Option<(Digest, u64)>,
    ) -> Result<FetchedManifest, RegistryError> {
        let action = format!("fetching manifest {}:{reference}", repo.path);
        let fail = self.fail(repo, action);
        let asked_digest = expected
            .map(|(d, _)| d)
            .or_else(|| reference.parse::<Digest>().ok());
        self.retried(&repo.host, |attempt| {
            self.manifest_once(repo, reference, expected, asked_digest, attempt > 0)
        })
        .await
        .map_err(fail)
    }

    async fn manifest_once(
        &self,
        repo: &Repo,
        reference: &str,
        expected: Option<(Digest, u64)>,
        asked_digest: Option<Digest>,
        fresh_auth: bool,
    ) -> Result<FetchedManifest, ErrorKind> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            self.scheme(&repo.host),
            repo.host,
            repo.path
        );
        let mut response = None;
        // One fresh token on a 401: tokens expire during long builds.
        for fresh in [fresh_auth, true] {
            let mut req = self
                .inner
                .http
                .get(&url)
                .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT.join(", "));
            if let Some(h) = self.authorization(repo, false, fresh).await? {
                req = req.header(reqwest::header::AUTHORIZATION, h);
            }
            let r = req.send().await.map_err(|e| ErrorKind::from_reqwest(&e))?;
            if r.status() == reqwest::StatusCode::UNAUTHORIZED && !fresh {
                continue;
            }
            response = Some(r);
            break;
        }
        let response = response.ok_or(ErrorKind::Unauthorized)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ErrorKind::from_status(status.as_u16(), short(&body)));
        }
        let header_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let limit = expected.map_or(sensei_core::oci::MAX_MANIFEST_BYTES, |(_, s)| s);
        if let Some(len) = response.content_length()
            && len > limit
        {
            return Err(too_large_or_size(expected, len));
        }
        let bytes = read_bounded(response, limit).await.map_err(|e| match e {
            Bounded::Over(n) => too_large_or_size(expected, n),
            Bounded::Net(k) => k,
        })?;
        if let Some((_, size)) = expected
            && bytes.len() as u64 != size
        {
            return Err(ErrorKind::Size {
                what: "manifest",
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let digest = Digest::of(&bytes);
        for want in [asked_digest, header_digest].into_iter().flatten() {
            if want != digest {
                return Err(ErrorKind::Integrity {
                    what: "manifest",
                    expected: want,
                    actual: digest,
                });
            }
        }
        // The body's own mediaType wins over Content-Type, which some registries get wrong.
        let media_type = serde_json::from_slice::<MediaTypeOnly>(&bytes)
            .ok()
            .and_then(|m| m.media_type)
            .or(header_type)
            .unwrap_or_default();
        Ok(FetchedManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Uploads a manifest or index byte for byte, under a tag or its digest.
    pub async fn push_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let fail = self.fail(
            repo,
            format!("uploading manifest {}:{reference}", repo.path),
        );
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let target = match reference.parse::<Digest>() {
            Ok(d) => repo.by_digest(&d),
            Err(_) => repo.by_tag(reference),
        };
        let content_type = http::HeaderValue::from_str(media_type)
            .map_err(|e| fail_kind_protocol(e.to_string()))
            .map_err(self.fail(
                repo,
                format!("uploading manifest {}:{reference}", repo.path),
            ))?;
        self.retried(&repo.host, |_| async {
            self.inner
                .oci
                .push_manifest_raw(&target, bytes.clone(), content_type.clone())
                .await
                .map(|_| ())
                .map_err(|e| ErrorKind::from_oci(&e))
        })
        .await
        .map_err(fail)
    }
}

fn fail_kind_protocol(message: String) -> ErrorKind {
    ErrorKind::Protocol(message)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaTypeOnly {
    media_type: Option<String>,
}

fn too_large_or_size(expected: Option<(Digest, u64)>, actual: u64) -> ErrorKind {
    match expected {
        Some((_, size)) => ErrorKind::Size {
            what: "manifest",
            expected: size,
            actual,
        },
        None => ErrorKind::TooLarge {
            what: "a manifest",
            limit: sensei_core::oci::MAX_MANIFEST_BYTES,
        },
    }
}

enum Bounded {
    Over(u64),
    Net(ErrorKind),
}

/// Reads a response body, stopping as soon as it passes `limit`.
async fn read_bounded(response: reqwest::Response, limit: u64) -> Result<Bytes, Bounded> {
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
