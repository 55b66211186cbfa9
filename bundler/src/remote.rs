//! Images and charts that come from registries: where to pull each from (its own registry, or
//! the mirror the spec names), and the walker's view of a registry image.

use std::collections::BTreeMap;
use std::sync::Arc;

use sensei_core::content::{HELM_CHART_CONTENT, chart_tag};
use sensei_core::oci::{Descriptor, MAX_MANIFEST_BYTES, Manifest};
use sensei_core::spec::ImageRef;
use sensei_registry::{FetchedManifest, Registry, Repo};

use crate::blob::{BlobData, RemoteBlob};
use crate::chart::{MAX_CHART_BYTES, PackagedChart};
use crate::error::{BundleError, InputError};
use crate::walk::ImageSource;

/// Docker Hub's API host; `docker.io` itself only redirects.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Where to pull `image` from: a mirror named in the spec for its registry, else the registry.
pub fn pull_repo(image: &ImageRef, mirrors: &BTreeMap<String, String>) -> Repo {
    let host = match mirrors.get(&image.host) {
        Some(mirror) => mirror.clone(),
        None if image.host == "docker.io" => DOCKER_HUB_API.to_owned(),
        None => image.host.clone(),
    };
    Repo::new(host, image.path.clone())
}

/// Resolves a tag or digest to the top manifest or index.
pub async fn resolve_top(
    registry: &Registry,
    repo: &Repo,
    image: &ImageRef,
) -> Result<FetchedManifest, BundleError> {
    let reference = match (&image.digest, &image.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            return Err(InputError::Image {
                reference: image.to_string(),
                message: "has neither tag nor digest".into(),
            }
            .into());
        }
    };
    registry
        .manifest(repo, &reference, None)
        .await
        .map_err(|e| BundleError::Registry {
            reference: image.to_string(),
            source: Box::new(e),
        })
}

/// One registry image, as the walker reads it.
#[derive(Debug)]
pub struct RegistryImage<'a> {
    pub registry: &'a Registry,
    pub repo: Repo,
    pub reference: &'a str,
    /// The top manifest, fetched while resolving the tag: not fetched twice.
    pub top: FetchedManifest,
}

impl RegistryImage<'_> {
    fn registry_error(&self) -> impl FnOnce(sensei_registry::RegistryError) -> BundleError {
        let reference = self.reference.to_owned();
        move |source| BundleError::Registry {
            reference,
            source: Box::new(source),
        }
    }
}

impl ImageSource for RegistryImage<'_> {
    async fn manifest(&self, desc: &Descriptor) -> Result<Vec<u8>, BundleError> {
        if desc.digest == self.top.digest {
            return Ok(self.top.bytes.to_vec());
        }
        let fetched = self
            .registry
            .manifest(
                &self.repo,
                &desc.digest.to_string(),
                Some((desc.digest, desc.size)),
            )
            .await
            .map_err(self.registry_error())?;
        Ok(fetched.bytes.to_vec())
    }

    async fn config(&self, desc: &Descriptor) -> Result<Vec<u8>, BundleError> {
        if desc.size > MAX_MANIFEST_BYTES {
            return Err(InputError::Image {
                reference: self.reference.to_owned(),
                message: format!(
                    "config {} is {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
                    desc.digest, desc.size
                ),
            }
            .into());
        }
        let bytes = self
            .registry
            .pull_small_blob(&self.repo, &desc.digest, desc.size)
            .await
            .map_err(self.registry_error())?;
        Ok(bytes.to_vec())
    }

    fn layer(&self, _desc: &Descriptor) -> Result<BlobData, BundleError> {
        Ok(BlobData::Remote(Arc::new(RemoteBlob {
            repo: self.repo.clone(),
        })))
    }
}

/// The top descriptor of a fetched manifest.
pub fn top_descriptor(top: &FetchedManifest) -> Descriptor {
    Descriptor {
        media_type: top.media_type.clone(),
        digest: top.digest,
        size: top.bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
        artifact_type: None,
    }
}

/// Fetches a chart stored in a registry as an OCI artifact (`oci://HOST/PATH`, `helm push`'s
/// layout): the manifest at the version's tag, then its chart content layer.
pub async fn fetch_oci_chart(
    registry: &Registry,
    oci: &str,
    version: &str,
) -> Result<PackagedChart, BundleError> {
    let label = format!("{oci}:{version}");
    let bad = |message: String| InputError::Other(format!("chart {label}: {message}"));
    let rest = oci
        .strip_prefix("oci://")
        .ok_or_else(|| bad("does not start with oci://".into()))?;
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("has no repository path after the host".into()))?;
    let repo = Repo::new(host, path.trim_end_matches('/'));
    let tag = chart_tag(version);
    let registry_error = |source| BundleError::Registry {
        reference: label.clone(),
        source: Box::new(source),
    };
    let top = registry
        .manifest(&repo, &tag, None)
        .await
        .map_err(registry_error)?;
    let manifest: Manifest = serde_json::from_slice(&top.bytes).map_err(|e| {
        bad(format!(
            "its manifest {} is not an OCI manifest: {e}",
            top.digest
        ))
    })?;
    let content = manifest
        .layers
        .iter()
        .find(|l| l.media_type == HELM_CHART_CONTENT)
        .ok_or_else(|| {
            bad(format!(
                "manifest {} has no layer of type {HELM_CHART_CONTENT}; is it a Helm chart?",
                top.digest
            ))
        })?;
    if content.size > MAX_CHART_BYTES {
        return Err(bad(format!(
            "the chart is {} bytes, over the {MAX_CHART_BYTES}-byte limit",
            content.size
        ))
        .into());
    }
    let bytes = registry
        .pull_small_blob(&repo, &content.digest, content.size)
        .await
        .map_err(registry_error)?;
    let chart = crate::chart::from_tgz_bytes(bytes.to_vec(), &label).map_err(InputError::from)?;
    if chart.version.to_string() != version {
        return Err(bad(format!(
            "the chart inside says version {}; the tag and the chart disagree",
            chart.version
        ))
        .into());
    }
    Ok(chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_change_where_not_what() {
        let mirrors: BTreeMap<String, String> =
            [("docker.io".to_owned(), "127.0.0.1:5001".to_owned())].into();
        let hub = ImageRef::parse("nginx:1.25").unwrap();
        assert_eq!(
            pull_repo(&hub, &mirrors),
            Repo::new("127.0.0.1:5001", "library/nginx")
        );
        assert_eq!(
            pull_repo(&hub, &BTreeMap::new()),
            Repo::new("registry-1.docker.io", "library/nginx")
        );
        let other = ImageRef::parse("ghcr.io/sensei/api:1").unwrap();
        assert_eq!(
            pull_repo(&other, &mirrors),
            Repo::new("ghcr.io", "sensei/api")
        );
    }
}
