//! Step 8: `index.json`, read exactly as FORMAT.md §8 types it, must name every image and chart
//! of `bundle.json` with the same digest.
//!
//! The type here is the verifier's own, not [`crate::oci::Index`] (which reads registries and
//! layouts leniently): what it types, and how, is the rule an independent verifier follows.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer};

use super::Rejection;
use crate::digest::Digest;
use crate::json::{Step, check_document, present};
use crate::manifest::BundleManifest;
use crate::oci::REF_NAME_ANNOTATION;

/// Where `index.json`'s types read a struct, which must be a JSON object there.
const OBJECTS: &[&[Step]] = &[
    &[],
    &[Step::Key("manifests"), Step::Each],
    &[Step::Key("manifests"), Step::Each, Step::Key("platform")],
];

/// `index.json` as the verifier types it. Members not named here may hold any JSON value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutIndex {
    /// Typed (an integer that fits u32), not compared: the writer's is 2, as OCI says.
    #[allow(dead_code)]
    schema_version: u32,
    #[allow(dead_code)]
    #[serde(default, deserialize_with = "index_media_type")]
    media_type: Option<String>,
    manifests: Vec<LayoutDescriptor>,
    #[allow(dead_code)]
    #[serde(default, deserialize_with = "index_annotations")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutDescriptor {
    #[allow(dead_code)]
    media_type: String,
    digest: Digest,
    #[allow(dead_code)]
    size: u64,
    #[serde(default, deserialize_with = "descriptor_annotations")]
    annotations: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    #[serde(default, deserialize_with = "descriptor_platform")]
    platform: Option<LayoutPlatform>,
    #[allow(dead_code)]
    #[serde(default, deserialize_with = "descriptor_artifact_type")]
    artifact_type: Option<String>,
}

/// Typed for the tools that read the layout after the verifier, not read here.
#[allow(dead_code)]
#[derive(Deserialize)]
struct LayoutPlatform {
    architecture: String,
    os: String,
    #[serde(default, deserialize_with = "platform_variant")]
    variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        deserialize_with = "platform_os_version"
    )]
    os_version: Option<String>,
}

/// `fn NAME(d)`: an optional member of type `T` that, when present, is not `null`.
macro_rules! optional {
    ($name:ident, $t:ty, $field:literal) => {
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
            present(d, $field)
        }
    };
}

optional!(index_media_type, String, "mediaType");
optional!(index_annotations, BTreeMap<String, String>, "annotations");
optional!(
    descriptor_annotations,
    BTreeMap<String, String>,
    "manifests[].annotations"
);
optional!(descriptor_platform, LayoutPlatform, "manifests[].platform");
optional!(descriptor_artifact_type, String, "manifests[].artifactType");
optional!(platform_variant, String, "manifests[].platform.variant");
optional!(
    platform_os_version,
    String,
    "manifests[].platform.os.version"
);

/// Step 8: `index.json` has one reading, and it names every image and chart of `bundle.json`
/// with its digest.
pub fn check_index(manifest: &BundleManifest, index_json: &[u8]) -> Result<(), Rejection> {
    let bad = |e: serde_json::Error| Rejection::BadIndex(e.to_string());
    check_document(index_json, OBJECTS).map_err(bad)?;
    let index: LayoutIndex = serde_json::from_slice(index_json).map_err(bad)?;
    // A ref name given twice: the last wins (FORMAT.md §8 step 3; writers never repeat one).
    let named: HashMap<&str, &Digest> = index
        .manifests
        .iter()
        .filter_map(|d| {
            let name = d.annotations.as_ref()?.get(REF_NAME_ANNOTATION)?;
            Some((name.as_str(), &d.digest))
        })
        .collect();
    let wanted = manifest
        .images
        .iter()
        .map(|i| (&i.reference, &i.digest))
        .chain(manifest.charts.iter().map(|c| (&c.reference, &c.digest)));
    for (reference, digest) in wanted {
        match named.get(reference.as_str()) {
            Some(d) if *d == digest => {}
            Some(d) => {
                return Err(Rejection::Inconsistent(format!(
                    "{reference} is {d} in index.json but {digest} in bundle.json"
                )));
            }
            None => {
                return Err(Rejection::Inconsistent(format!(
                    "{reference} is missing from index.json"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
