//! Manifests: bounded downloads (oci-client would read a body whole, whatever its size),
//! digests checked, and byte-for-byte uploads.

use bytes::Bytes;
use sensei_core::digest::Digest;
use sensei_core::oci;

use super::request::{Bounded, expect_success, read_bounded};
use super::{Registry, Repo};
use crate::error::{ErrorKind, RegistryError};

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
        self.retried(&repo.host, |_| {
            self.manifest_once(repo, reference, expected, asked_digest)
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
    ) -> Result<FetchedManifest, ErrorKind> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        // Pull credentials; one fresh token after a 401 (tokens expire during long builds).
        let response = self
            .send_authorized(repo, &url, false, |http| {
                http.get(&url)
                    .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT.join(", "))
            })
            .await?;
        let response = expect_success(response).await?;
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
        let content_type = http::HeaderValue::from_str(media_type)
            .map_err(|e| ErrorKind::Protocol(format!("media type {media_type:?}: {e}")))
            .map_err(self.fail(
                repo,
                format!("uploading manifest {}:{reference}", repo.path),
            ))?;
        let url = self.url(repo, &format!("manifests/{reference}"));
        self.retried(&repo.host, |_| async {
            let response = self
                .send_authorized(repo, &url, true, |http| {
                    http.put(&url)
                        .header(reqwest::header::CONTENT_TYPE, content_type.clone())
                        .body(bytes.clone())
                })
                .await?;
            expect_success(response).await.map(|_| ())
        })
        .await
        .map_err(fail)
    }
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
