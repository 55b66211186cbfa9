//! Chart and image entries of a spec: the two lists whose entries come in several shapes.

use std::collections::HashMap;

use serde_norway::Value;

use super::{CHART_KEYS, IMAGE_KEYS, Walker, kind};
use crate::spec::reference::{self, validate_reference};
use crate::spec::{ChartSource, ImageSource, SpecError};

impl Walker<'_> {
    pub(super) fn chart(&self, entry: &Value, key: &str) -> Result<ChartSource, SpecError> {
        let fields = self.fields(entry, key, CHART_KEYS)?;
        let values = match fields.get("values") {
            None => None,
            Some(Value::Mapping(m)) => Some(serde_json::to_value(m).map_err(|e| {
                self.invalid(
                    &fields.child("values"),
                    format!("cannot be used as chart values ({e}); keys must be strings"),
                )
            })?),
            Some(other) => {
                return Err(self.invalid(
                    &fields.child("values"),
                    format!(
                        "expected a mapping, found {}; write e.g. \
                         values: {{metrics: {{enabled: true}}}}",
                        kind(other)
                    ),
                ));
            }
        };
        let sources: Vec<(&str, &Value)> = ["path", "repo", "oci"]
            .into_iter()
            .filter_map(|k| fields.get(k).map(|v| (k, v)))
            .collect();
        let [(source, source_value)] = sources[..] else {
            let sources: Vec<&str> = sources.iter().map(|(k, _)| *k).collect();
            let message = if sources.is_empty() {
                "a chart needs one of path (a chart directory or .tgz), \
                 repo (a Helm repository URL) or oci (an oci:// reference)"
                    .to_owned()
            } else {
                format!(
                    "give only one of path, repo, oci (found {})",
                    sources.join(" and ")
                )
            };
            return Err(self.invalid(key, message));
        };
        // Name and version belong to repo charts; elsewhere they would be silently ignored.
        let forbid = |name: &str, why: &str| match fields.get(name) {
            Some(_) => Err(self.invalid(&fields.child(name), format!("{why}; remove {name}:"))),
            None => Ok(()),
        };
        let version = |example: &str| -> Result<String, SpecError> {
            let key = fields.child("version");
            let value = fields.get("version").ok_or_else(|| {
                self.invalid(
                    &key,
                    format!("is missing; a {source} chart needs one, e.g. version: {example}"),
                )
            })?;
            let text = self.string(value, &key, &format!("version: \"{example}\""))?;
            if text.contains(char::is_whitespace) {
                return Err(self.invalid(&key, format!("{text:?} contains whitespace")));
            }
            Ok(text.to_owned())
        };
        match source {
            "path" => {
                let why = "a path chart's name and version come from its Chart.yaml";
                forbid("name", why)?;
                forbid("version", why)?;
                let path =
                    self.local_path(source_value, &fields.child("path"), "path: ./charts/sensei")?;
                Ok(ChartSource::Path { path, values })
            }
            "repo" => {
                let key = fields.child("repo");
                let repo = self.string(source_value, &key, "repo: https://charts.example.com")?;
                if repo.starts_with("oci://") {
                    return Err(self.invalid(
                        &key,
                        "is an OCI reference; write it as oci: (with version:) instead of repo:",
                    ));
                }
                if !(repo.starts_with("https://") || repo.starts_with("http://")) {
                    return Err(self.invalid(
                        &key,
                        format!(
                            "{repo:?} is not an http(s) URL of a Helm repository, \
                             e.g. https://charts.example.com"
                        ),
                    ));
                }
                let name_key = fields.child("name");
                let name = fields.get("name").ok_or_else(|| {
                    self.invalid(
                        &name_key,
                        "is missing; a repo chart needs the chart's name in the repository, \
                         e.g. name: data-plane",
                    )
                })?;
                let name = self.string(name, &name_key, "name: data-plane")?.to_owned();
                Ok(ChartSource::Repo {
                    repo: repo.to_owned(),
                    name,
                    version: version("1.2.0")?,
                    values,
                })
            }
            _ => {
                forbid(
                    "name",
                    "an oci chart's name is the last component of its reference",
                )?;
                let key = fields.child("oci");
                let oci = self.string(
                    source_value,
                    &key,
                    "oci: oci://registry.example.com/charts/sensei",
                )?;
                self.oci_reference(oci, &key)?;
                Ok(ChartSource::Oci {
                    oci: oci.to_owned(),
                    version: version("1.2.0")?,
                    values,
                })
            }
        }
    }

    fn oci_reference(&self, oci: &str, key: &str) -> Result<(), SpecError> {
        let example = "e.g. oci://registry.example.com/charts/control-plane";
        let Some(rest) = oci.strip_prefix("oci://") else {
            return Err(self.invalid(key, format!("{oci:?} must start with oci://, {example}")));
        };
        if !rest.contains('/') {
            return Err(self.invalid(
                key,
                format!("{oci:?} needs a registry host and a chart path, {example}"),
            ));
        }
        let last = rest.rsplit('/').next().unwrap_or(rest);
        if last.contains([':', '@']) {
            return Err(self.invalid(
                key,
                format!(
                    "{oci:?} carries a tag or digest; put the chart's version in version: instead"
                ),
            ));
        }
        reference::validate_repository(rest).map_err(|e| self.invalid(key, format!("{oci:?}: {e}")))
    }

    pub(super) fn images(&self, value: Option<&Value>) -> Result<Vec<ImageSource>, SpecError> {
        let mut out = Vec::new();
        // Canonical form → index, so `nginx:1.25` and `docker.io/library/nginx:1.25` collide.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let example = "images: [registry.example.com/sensei/api:1.2.0]";
        for (i, entry) in self.list(value, "images", example)?.iter().enumerate() {
            let key = format!("images[{i}]");
            let image = match entry {
                Value::String(_) => {
                    let reference = self.image_reference(entry, &key)?;
                    ImageSource::Registry { reference }
                }
                Value::Mapping(_) => self.image_entry(entry, &key)?,
                other => {
                    return Err(self.invalid(
                        &key,
                        format!(
                            "expected an image reference or a mapping with ref, layout, \
                             layoutRef; found {}",
                            kind(other)
                        ),
                    ));
                }
            };
            if let Some(first) = seen.insert(reference::canonical(image.reference()), i) {
                return Err(self.invalid(
                    &key,
                    format!(
                        "image {:?} is listed twice (first as images[{first}]); remove one",
                        image.reference()
                    ),
                ));
            }
            out.push(image);
        }
        Ok(out)
    }

    fn image_entry(&self, entry: &Value, key: &str) -> Result<ImageSource, SpecError> {
        let fields = self.fields(entry, key, IMAGE_KEYS)?;
        let ref_key = fields.child("ref");
        let reference = match fields.get("ref") {
            Some(value) => self.image_reference(value, &ref_key)?,
            None => return Err(self.invalid(
                &ref_key,
                "is missing; name the image, e.g. ref: registry.example.com/sensei/worker:1.2.0",
            )),
        };
        let layout_ref = match fields.get("layoutRef") {
            None => None,
            Some(value) => Some(
                self.string(value, &fields.child("layoutRef"), "layoutRef: worker-1.2.0")?
                    .to_owned(),
            ),
        };
        match fields.get("layout") {
            Some(value) => {
                let layout =
                    self.local_path(value, &fields.child("layout"), "layout: ./build/oci")?;
                Ok(ImageSource::Layout {
                    reference,
                    layout,
                    layout_ref,
                })
            }
            None if layout_ref.is_some() => Err(self.invalid(
                &fields.child("layoutRef"),
                "names an image inside a local OCI layout, but there is no layout:; \
                 add layout: (the layout directory) or remove layoutRef:",
            )),
            None => Ok(ImageSource::Registry { reference }),
        }
    }

    fn image_reference(&self, value: &Value, key: &str) -> Result<String, SpecError> {
        let text = self.string(value, key, "registry.example.com/sensei/api:1.2.0")?;
        validate_reference(text).map_err(|e| self.invalid(key, e))?;
        Ok(text.to_owned())
    }
}
