//! Walks one image, from its top manifest or index down to configs and layers, whatever holds
//! its bytes (a local OCI layout or a registry): applies the platform filter, keeps the
//! publisher's index bytes when every platform is kept, and lists every blob the image needs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sensei_core::digest::Digest;
use sensei_core::oci::{self, ConfigPlatform, Descriptor, Index, Manifest};
use sensei_core::spec::Platform;

use crate::blob::{BlobData, Blobs, PlannedBlob, add_blob};
use crate::error::{BundleError, InputError};

/// Nesting allowed for indexes of indexes.
const MAX_INDEX_DEPTH: u32 = 4;

/// Where an image's bytes are: small documents are read now (to walk them), layers later.
pub trait ImageSource: Sync {
    /// A manifest or index, checked against its descriptor (size, digest).
    fn manifest(
        &self,
        desc: &Descriptor,
    ) -> impl Future<Output = Result<Vec<u8>, BundleError>> + Send;
    /// A config blob, checked against its descriptor.
    fn config(
        &self,
        desc: &Descriptor,
    ) -> impl Future<Output = Result<Vec<u8>, BundleError>> + Send;
    /// Where a layer's bytes will come from (checked for presence where that is cheap).
    fn layer(&self, desc: &Descriptor) -> Result<BlobData, BundleError>;
}

/// What an image resolved to.
#[derive(Debug)]
pub struct Resolved {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub platforms: Vec<oci::Platform>,
    /// Set when the platform filter dropped some of the publisher's index.
    pub filtered_from: Option<Digest>,
}

#[derive(Debug)]
pub struct Walker<'a, S> {
    pub source: &'a S,
    pub reference: &'a str,
    pub platforms: &'a [Platform],
}

fn platform_matches(filter: &Platform, p: &oci::Platform) -> bool {
    filter.os == p.os
        && filter.architecture == p.architecture
        && filter
            .variant
            .as_ref()
            .is_none_or(|v| p.variant.as_ref() == Some(v))
}

type Walk<'f> = Pin<Box<dyn Future<Output = Result<Resolved, BundleError>> + Send + 'f>>;

impl<S: ImageSource> Walker<'_, S> {
    fn input_error(&self, message: String) -> BundleError {
        InputError::Image {
            reference: self.reference.to_owned(),
            message,
        }
        .into()
    }

    fn wanted(&self, p: Option<&oci::Platform>) -> bool {
        self.platforms.is_empty()
            || p.is_some_and(|p| self.platforms.iter().any(|f| platform_matches(f, p)))
    }

    /// Resolves the image whose top descriptor is `desc`, adding every blob it needs.
    pub fn resolve<'f>(
        &'f self,
        blobs: &'f mut Blobs,
        desc: &'f Descriptor,
        depth: u32,
    ) -> Walk<'f> {
        Box::pin(async move {
            if oci::is_index(&desc.media_type) {
                self.resolve_index(blobs, desc, depth).await
            } else if oci::is_manifest(&desc.media_type) {
                self.resolve_manifest(blobs, desc).await
            } else {
                Err(self.input_error(format!(
                    "unsupported media type {:?} for {}",
                    desc.media_type, desc.digest
                )))
            }
        })
    }

    async fn resolve_index(
        &self,
        blobs: &mut Blobs,
        desc: &Descriptor,
        depth: u32,
    ) -> Result<Resolved, BundleError> {
        if depth >= MAX_INDEX_DEPTH {
            return Err(
                self.input_error(format!("indexes nest deeper than {MAX_INDEX_DEPTH} levels"))
            );
        }
        let bytes = self.source.manifest(desc).await?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| self.input_error(format!("index {} is not valid: {e}", desc.digest)))?;
        let kept: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|d| oci::is_index(&d.media_type) || self.wanted(d.platform.as_ref()))
            .collect();
        if kept.is_empty() {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect();
            let want: Vec<String> = self.platforms.iter().map(ToString::to_string).collect();
            return Err(self.input_error(format!(
                "has no manifest for {} (it has: {}); change `platforms:` or --platform",
                want.join(", "),
                have.join(", ")
            )));
        }
        let mut platforms = vec![];
        for child in &kept {
            let r = self.resolve(blobs, child, depth + 1).await?;
            match &child.platform {
                Some(p) if p.os != "unknown" => platforms.push(p.clone()),
                Some(_) => {}
                None => platforms.extend(r.platforms),
            }
        }
        let (bytes, filtered_from) = if kept.len() == index.manifests.len() {
            // Every platform kept: the original bytes, so the digest stays the publisher's.
            (bytes, None)
        } else {
            (self.filtered_index(&bytes, &kept, desc)?, Some(desc.digest))
        };
        let digest = Digest::of(&bytes);
        let size = bytes.len() as u64;
        add_blob(
            blobs,
            PlannedBlob {
                digest,
                size,
                media_type: desc.media_type.clone(),
                is_manifest: true,
                data: BlobData::Bytes(bytes.into()),
                needed_by: self.reference.to_owned(),
            },
        );
        platforms.sort_by_key(ToString::to_string);
        platforms.dedup();
        Ok(Resolved {
            digest,
            size,
            media_type: desc.media_type.clone(),
            platforms,
            filtered_from,
        })
    }

    /// The publisher's index with only the kept entries, every other field as it was.
    fn filtered_index(
        &self,
        bytes: &[u8],
        kept: &[&Descriptor],
        desc: &Descriptor,
    ) -> Result<Vec<u8>, BundleError> {
        let mut value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| self.input_error(format!("index {}: {e}", desc.digest)))?;
        let originals = value
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        let kept_digests: Vec<String> = kept.iter().map(|d| d.digest.to_string()).collect();
        let filtered: Vec<serde_json::Value> = originals
            .into_iter()
            .filter(|m| {
                m.get("digest")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| kept_digests.iter().any(|k| k == d))
            })
            .collect();
        value["manifests"] = serde_json::Value::Array(filtered);
        serde_json::to_vec(&value).map_err(|e| self.input_error(e.to_string()))
    }

    async fn resolve_manifest(
        &self,
        blobs: &mut Blobs,
        desc: &Descriptor,
    ) -> Result<Resolved, BundleError> {
        let bytes = self.source.manifest(desc).await?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| self.input_error(format!("manifest {} is not valid: {e}", desc.digest)))?;
        let config_bytes = self.source.config(&manifest.config).await?;
        // Artifacts (charts, signatures) have configs without a platform; that's fine.
        let platform = serde_json::from_slice::<ConfigPlatform>(&config_bytes)
            .ok()
            .filter(|c| !c.os.is_empty() && !c.architecture.is_empty())
            .map(|c| c.to_platform());
        if desc.platform.is_none() && !self.platforms.is_empty() && !self.wanted(platform.as_ref())
        {
            let have = platform
                .as_ref()
                .map_or("an unknown platform".to_owned(), ToString::to_string);
            return Err(self.input_error(format!(
                "is a single-platform image for {have}, which the platform filter excludes"
            )));
        }
        for layer in &manifest.layers {
            let data = self.source.layer(layer)?;
            add_blob(
                blobs,
                PlannedBlob {
                    digest: layer.digest,
                    size: layer.size,
                    media_type: layer.media_type.clone(),
                    is_manifest: false,
                    data,
                    needed_by: self.reference.to_owned(),
                },
            );
        }
        add_blob(
            blobs,
            PlannedBlob {
                digest: manifest.config.digest,
                size: manifest.config.size,
                media_type: manifest.config.media_type.clone(),
                is_manifest: false,
                data: BlobData::Bytes(Arc::from(config_bytes)),
                needed_by: self.reference.to_owned(),
            },
        );
        add_blob(
            blobs,
            PlannedBlob {
                digest: desc.digest,
                size: desc.size,
                media_type: desc.media_type.clone(),
                is_manifest: true,
                data: BlobData::Bytes(bytes.into()),
                needed_by: self.reference.to_owned(),
            },
        );
        Ok(Resolved {
            digest: desc.digest,
            size: desc.size,
            media_type: desc.media_type.clone(),
            platforms: platform.into_iter().collect(),
            filtered_from: None,
        })
    }
}
