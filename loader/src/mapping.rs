//! Reference mapping on push (DESIGN.md): where each image and chart of a bundle lands in the
//! operator's registry.
//!
//! `HOST/PATH:TAG` (or `@DIGEST`) becomes `REGISTRY[/PREFIX]/PATH:TAG`, after Docker Hub short
//! names are normalised (`nginx:1.25` → `docker.io/library/nginx:1.25` →
//! `REGISTRY/library/nginx:1.25`). Charts go to `REGISTRY[/PREFIX]/charts/NAME:VERSION`. The
//! source host is dropped, so two images that differ only by source host map to one repository:
//! [`plan`] refuses that rather than let one overwrite the other's tag.
//!
//! The rules themselves (how an image and a chart are re-homed, the chart tag rule) are
//! `sensei_core::content::reference`'s; this module reads `--registry` and applies them to a
//! bundle.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub use sensei_core::content::{CHARTS_REPOSITORY, TargetRef};
use sensei_core::content::{ReferenceError, Target};
use sensei_core::digest::Digest;
use sensei_core::manifest::BundleManifest;
use sensei_core::spec::{validate_host, validate_reference};
use serde::Serialize;

/// Why a registry target or a reference cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("--registry {given:?}: {why}")]
    BadRegistry { given: String, why: String },
    #[error("the bundle's {what} {reference:?} cannot be mapped: {why}")]
    BadReference {
        what: &'static str,
        reference: String,
        why: String,
    },
    #[error(
        "images {first:?} and {second:?} would both be pushed to {target}: the target registry \
         keeps one repository per path, so one would overwrite the other (rename one in the spec)"
    )]
    Collision {
        first: String,
        second: String,
        target: String,
    },
}

/// The operator's registry: `HOST[:PORT][/PREFIX]`, as given to `--registry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registry {
    /// `registry.internal` or `127.0.0.1:5000`.
    pub host: String,
    /// Repository path every pushed repository is nested under (`mirror/sensei`), if any.
    pub prefix: Option<String>,
}

impl Registry {
    /// The target as core's reference rules take it.
    fn target(&self) -> Target<'_> {
        Target {
            host: &self.host,
            prefix: self.prefix.as_deref(),
        }
    }

    /// `HOST[:PORT][/PREFIX]`, the value for `--set global.imageRegistry=`.
    pub fn base(&self) -> String {
        self.target().base()
    }

    /// Where an image of the bundle lands: `REGISTRY[/PREFIX]/PATH[:TAG][@DIGEST]`.
    pub fn map_image(&self, reference: &str) -> Result<TargetRef, MappingError> {
        Ok(self.target().image(reference)?)
    }

    /// Where a chart lands: `REGISTRY[/PREFIX]/charts/NAME:TAG`, the tag by core's chart tag
    /// rule (`+` written `_`, as `helm push` does).
    pub fn map_chart(
        &self,
        name: &str,
        version: &semver::Version,
    ) -> Result<TargetRef, MappingError> {
        Ok(self.target().chart(name, version)?)
    }

    /// `oci://REGISTRY[/PREFIX]/charts/NAME`: what `helm upgrade` and `helm pull` are given.
    pub fn chart_url(&self, name: &str) -> String {
        self.target().chart_url(name)
    }
}

impl From<ReferenceError> for MappingError {
    fn from(e: ReferenceError) -> Self {
        Self::BadReference {
            what: e.what,
            reference: e.reference,
            why: e.why,
        }
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base())
    }
}

impl FromStr for Registry {
    type Err = MappingError;

    /// Parses `HOST[:PORT][/PREFIX]`. A scheme is refused (plain HTTP is `--plain-http`), and so
    /// is a bare one-word host such as `myregistry`: in an image reference Kubernetes would read
    /// it as a Docker Hub namespace, so every pushed image would be pulled from the internet.
    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| MappingError::BadRegistry {
            given: given.to_owned(),
            why,
        };
        if let Some((scheme, _)) = given.split_once("://") {
            return Err(bad(format!(
                "write the registry without \"{scheme}://\" (HOST[:PORT][/PREFIX]); for a registry \
                 served over plain HTTP add --plain-http"
            )));
        }
        let trimmed = given.trim_end_matches('/');
        let (host, prefix) = match trimmed.split_once('/') {
            Some((host, prefix)) => (host, Some(prefix)),
            None => (trimmed, None),
        };
        validate_host(host).map_err(bad)?;
        let looks_like_host = host.contains(['.', ':']) || host == "localhost";
        if !looks_like_host {
            return Err(bad(format!(
                "{host:?} has no dot and no port, so image references such as {host}/app:1 would \
                 be read as Docker Hub images; write its full name or HOST:PORT"
            )));
        }
        if let Some(prefix) = prefix {
            // Core's repository grammar, reached through a whole reference on a known host.
            let probe = format!("{host}/{prefix}:t");
            validate_reference(&probe).map_err(|e| {
                let lead = format!("image reference {probe:?}: ");
                let why = e.strip_prefix(&lead).unwrap_or(&e);
                bad(format!(
                    "the prefix {prefix:?} is not a repository path: {why}"
                ))
            })?;
        }
        Ok(Self {
            host: host.to_owned(),
            prefix: prefix.map(str::to_owned),
        })
    }
}

/// One image of the bundle and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappedImage {
    /// The reference the bundle carries.
    pub source: String,
    pub target: TargetRef,
    /// The manifest or index digest, preserved by the push.
    pub digest: Digest,
}

/// One chart of the bundle and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappedChart {
    pub name: String,
    pub version: semver::Version,
    pub target: TargetRef,
    pub digest: Digest,
}

/// Every image and chart of a bundle with its target reference: what `push --dry-run` prints
/// and what push pushes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub registry: Registry,
    pub images: Vec<MappedImage>,
    pub charts: Vec<MappedChart>,
}

impl Plan {
    /// The mapped chart named `name`.
    pub fn chart(&self, name: &str) -> Option<&MappedChart> {
        self.charts.iter().find(|c| c.name == name)
    }
}

/// Maps every image and chart of `manifest` onto `registry`, refusing two sources that would
/// land on the same tag (or the same digest-only name) with different content.
pub fn plan(manifest: &BundleManifest, registry: &Registry) -> Result<Plan, MappingError> {
    let mut images = Vec::with_capacity(manifest.images.len());
    let mut seen: BTreeMap<String, (&str, Digest)> = BTreeMap::new();
    for image in &manifest.images {
        let target = registry.map_image(&image.reference)?;
        let key = target.to_string();
        if let Some((first, digest)) = seen.get(&key)
            && *digest != image.digest
        {
            return Err(MappingError::Collision {
                first: (*first).to_owned(),
                second: image.reference.clone(),
                target: key,
            });
        }
        seen.insert(key, (&image.reference, image.digest));
        images.push(MappedImage {
            source: image.reference.clone(),
            target,
            digest: image.digest,
        });
    }
    let charts = manifest
        .charts
        .iter()
        .map(|c| {
            Ok(MappedChart {
                name: c.name.clone(),
                version: c.version.clone(),
                target: registry.map_chart(&c.name, &c.version)?,
                digest: c.digest,
            })
        })
        .collect::<Result<_, MappingError>>()?;
    Ok(Plan {
        registry: registry.clone(),
        images,
        charts,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn reg(s: &str) -> Registry {
        s.parse().unwrap()
    }

    #[test]
    fn parses_registry_targets() {
        let r = reg("registry.internal");
        assert_eq!(
            (r.host.as_str(), r.prefix.as_deref()),
            ("registry.internal", None)
        );
        let r = reg("127.0.0.1:5000/mirror/sensei/");
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.prefix.as_deref(), Some("mirror/sensei"));
        assert_eq!(r.base(), "127.0.0.1:5000/mirror/sensei");
        assert_eq!(reg("localhost/x").base(), "localhost/x");
        assert_eq!(reg("[::1]:5000").host, "[::1]:5000");
    }

    #[test]
    fn refuses_bad_registry_targets_with_the_fix() {
        for (bad, why) in [
            ("https://registry.internal", "--plain-http"),
            ("oci://registry.internal", "without \"oci://\""),
            ("myregistry", "Docker Hub"),
            ("myregistry/x", "Docker Hub"),
            ("registry.internal/Upper", "lowercase"),
            ("registry.internal//x", "empty component"),
            ("registry.internal:0", "port"),
            ("", "empty"),
        ] {
            let err = bad.parse::<Registry>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.starts_with("--registry"), "{err}");
        }
    }

    #[test]
    fn maps_images_as_design_md_says() {
        let r = reg("registry.internal");
        let cases = [
            (
                "ghcr.io/sensei/api:1.2.0",
                "registry.internal/sensei/api:1.2.0",
            ),
            ("nginx:1.25", "registry.internal/library/nginx:1.25"),
            (
                "docker.io/nginx:1.25",
                "registry.internal/library/nginx:1.25",
            ),
            (
                "index.docker.io/library/nginx:1.25",
                "registry.internal/library/nginx:1.25",
            ),
            ("bitnami/redis:7", "registry.internal/bitnami/redis:7"),
            ("localhost:5000/a/b:1", "registry.internal/a/b:1"),
        ];
        for (source, target) in cases {
            assert_eq!(r.map_image(source).unwrap().to_string(), target, "{source}");
        }
        let t = reg("10.0.0.1:5000/mirror")
            .map_image(&format!("quay.io/x/y@{DIGEST}"))
            .unwrap();
        assert_eq!(t.to_string(), format!("10.0.0.1:5000/mirror/x/y@{DIGEST}"));
        assert_eq!(
            (t.registry.as_str(), t.repository.as_str()),
            ("10.0.0.1:5000", "mirror/x/y")
        );
        assert_eq!(t.tag, None);
        assert_eq!(t.name(), "10.0.0.1:5000/mirror/x/y");
        let t = r.map_image(&format!("ghcr.io/a:1@{DIGEST}")).unwrap();
        assert_eq!(t.to_string(), format!("registry.internal/a:1@{DIGEST}"));
        let err = r.map_image("ghcr.io/a").unwrap_err().to_string();
        assert!(err.contains("no tag or digest"), "{err}");
    }

    #[test]
    fn maps_charts_under_charts() {
        let v = semver::Version::parse("1.2.0").unwrap();
        let r = reg("registry.internal/mirror");
        assert_eq!(
            r.map_chart("sensei", &v).unwrap().to_string(),
            "registry.internal/mirror/charts/sensei:1.2.0"
        );
        assert_eq!(
            r.chart_url("sensei"),
            "oci://registry.internal/mirror/charts/sensei"
        );
        let v = semver::Version::parse("1.2.0-rc.1+build.5").unwrap();
        assert_eq!(
            r.map_chart("sensei", &v).unwrap().tag.as_deref(),
            Some("1.2.0-rc.1_build.5")
        );
        assert!(r.map_chart("Bad_Name", &v).is_err());
    }

    #[test]
    fn plan_refuses_two_sources_on_one_tag() {
        let d1: Digest = DIGEST.parse().unwrap();
        let d2 = Digest::of(b"other");
        let image = |reference: &str, digest| sensei_core::manifest::ImageEntry {
            reference: reference.into(),
            digest,
            media_type: sensei_core::oci::OCI_MANIFEST.into(),
            size: 1,
            platforms: vec![],
            filtered_from: None,
            source: None,
        };
        let manifest = |images| BundleManifest {
            schema_version: 1,
            media_type: sensei_core::manifest::MEDIA_TYPE.into(),
            name: "demo".into(),
            version: semver::Version::new(1, 2, 0),
            created: "2026-01-01T00:00:00Z".into(),
            expires: None,
            compat: sensei_core::manifest::Compat {
                upgrade_from: ">=1.1.0, <1.3.0".into(),
            },
            images,
            charts: vec![sensei_core::manifest::ChartEntry {
                name: "demo".into(),
                version: semver::Version::new(1, 2, 0),
                reference: "charts/demo:1.2.0".into(),
                digest: d1,
                source: None,
            }],
            files: vec![],
        };
        let r = reg("registry.internal");
        let ok = plan(
            &manifest(vec![image("a.io/x:1", d1), image("b.io/x:1", d1)]),
            &r,
        )
        .unwrap();
        assert_eq!(ok.images.len(), 2);
        assert_eq!(
            ok.chart("demo").unwrap().target.to_string(),
            "registry.internal/charts/demo:1.2.0"
        );
        let err = plan(
            &manifest(vec![image("a.io/x:1", d1), image("b.io/x:1", d2)]),
            &r,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a.io/x:1") && err.contains("b.io/x:1"),
            "{err}"
        );
        assert!(err.contains("registry.internal/x:1"), "{err}");
    }
}
