//! The reference rules: Helm's media types, the chart tag rule, and where each image and chart
//! of a bundle lands in a target registry (FORMAT.md §11.3, §12). The bundler uses the first two
//! to store and fetch charts, the loader all of them to push; each rule is written here once.

use std::fmt;

use serde::Serialize;

use crate::digest::Digest;
use crate::spec::{ImageRef, validate_reference};

/// Media type of a Helm chart's OCI config blob (Chart.yaml as JSON), as `helm push` writes it.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Media type of a Helm chart's OCI content layer (the packaged `.tgz`).
pub const HELM_CHART_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Repository (under the target's prefix) that charts are pushed to: `charts/NAME`.
pub const CHARTS_REPOSITORY: &str = "charts";

/// The OCI tag a chart version is stored under. OCI tags may not hold `+`, so SemVer build
/// metadata is written with `_`, as `helm push` does (and `helm pull --version` undoes).
pub fn chart_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// Why a bundle's image or chart has no place in the target registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the bundle's {what} {reference:?} cannot be mapped: {why}")]
pub struct ReferenceError {
    pub what: &'static str,
    pub reference: String,
    pub why: String,
}

/// A registry to push into: `HOST[:PORT]` and the repository path everything is nested under.
/// Checking what an operator typed is the caller's business; this only re-homes references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub host: &'a str,
    pub prefix: Option<&'a str>,
}

impl Target<'_> {
    /// `HOST[:PORT][/PREFIX]`.
    pub fn base(&self) -> String {
        match self.prefix {
            Some(p) => format!("{}/{p}", self.host),
            None => self.host.to_owned(),
        }
    }

    /// A repository path in the target: the prefix (if any) joined with `path`.
    pub fn repository(&self, path: &str) -> String {
        match self.prefix {
            Some(p) => format!("{p}/{path}"),
            None => path.to_owned(),
        }
    }

    /// Where an image lands: `HOST/[PREFIX/]PATH[:TAG][@DIGEST]`, the source host dropped
    /// after Docker Hub short names are normalised (`nginx:1.25` → `library/nginx:1.25`).
    pub fn image(&self, reference: &str) -> Result<TargetRef, ReferenceError> {
        let source = ImageRef::parse(reference).map_err(|why| ReferenceError {
            what: "image",
            reference: reference.to_owned(),
            why,
        })?;
        Ok(TargetRef {
            registry: self.host.to_owned(),
            repository: self.repository(&source.path),
            tag: source.tag,
            digest: source.digest,
        })
    }

    /// Where a chart lands: `HOST/[PREFIX/]charts/NAME:TAG`, the tag by [`chart_tag`].
    pub fn chart(
        &self,
        name: &str,
        version: &semver::Version,
    ) -> Result<TargetRef, ReferenceError> {
        let target = TargetRef {
            registry: self.host.to_owned(),
            repository: self.repository(&format!("{CHARTS_REPOSITORY}/{name}")),
            tag: Some(chart_tag(&version.to_string())),
            digest: None,
        };
        validate_reference(&target.to_string()).map_err(|why| ReferenceError {
            what: "chart",
            reference: format!("{name} {version}"),
            why,
        })?;
        Ok(target)
    }

    /// `oci://HOST/[PREFIX/]charts/NAME`: what `helm upgrade` and `helm pull` are given.
    pub fn chart_url(&self, name: &str) -> String {
        format!("oci://{}/{CHARTS_REPOSITORY}/{name}", self.base())
    }
}

/// A reference in the target registry, in parts (what a registry client needs) and as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TargetRef {
    /// `HOST[:PORT]`.
    pub registry: String,
    /// Repository path inside the registry, prefix included (`mirror/sensei/api`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl TargetRef {
    /// `HOST[:PORT]/REPOSITORY`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for TargetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl Serialize for TargetRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chart_tags_replace_build_metadata_plus() {
        assert_eq!(chart_tag("1.2.0"), "1.2.0");
        assert_eq!(chart_tag("1.2.0-rc.1+build.5"), "1.2.0-rc.1_build.5");
        assert_eq!(chart_tag("1.0.0+a+b"), "1.0.0_a_b");
    }

    #[test]
    fn images_and_charts_are_rehomed_under_the_prefix() {
        let t = Target {
            host: "10.0.0.1:5000",
            prefix: Some("mirror"),
        };
        assert_eq!(
            t.image("nginx:1.25").unwrap().to_string(),
            "10.0.0.1:5000/mirror/library/nginx:1.25"
        );
        let v = semver::Version::parse("1.0.0+x").unwrap();
        let chart = t.chart("demo", &v).unwrap();
        assert_eq!(
            chart.to_string(),
            "10.0.0.1:5000/mirror/charts/demo:1.0.0_x"
        );
        assert_eq!(chart.name(), "10.0.0.1:5000/mirror/charts/demo");
        assert_eq!(
            t.chart_url("demo"),
            "oci://10.0.0.1:5000/mirror/charts/demo"
        );
        let err = t.image("ghcr.io/a").unwrap_err().to_string();
        assert!(err.contains("no tag or digest"), "{err}");
        assert!(t.chart("Bad_Name", &v).is_err());
    }
}
