//! Chart.yaml: the fields we check, Helm's config blob, and the images a chart declares.

use serde_json::Value;

use super::{ChartError, PackagedChart};

/// Annotations that list a chart's images, in the order their entries are reported.
const IMAGE_ANNOTATIONS: [&str; 3] = ["images", "artifacthub.io/images", "helm.sh/images"];

/// What a valid Chart.yaml gives us; becomes a [`PackagedChart`] once the `.tgz` is known.
#[derive(Debug)]
pub(super) struct Metadata {
    pub(super) name: String,
    pub(super) version: semver::Version,
    pub(super) app_version: Option<String>,
    pub(super) config_json: Vec<u8>,
    pub(super) annotated_images: Vec<String>,
}

impl Metadata {
    pub(super) fn into_packaged(self, content_tgz: Vec<u8>) -> PackagedChart {
        PackagedChart {
            name: self.name,
            version: self.version,
            app_version: self.app_version,
            config_json: self.config_json,
            content_tgz,
            annotated_images: self.annotated_images,
        }
    }
}

/// Parses and validates Chart.yaml, and renders it as Helm's config blob.
pub(super) fn parse(bytes: &[u8], origin: &str) -> Result<Metadata, ChartError> {
    let mut doc: Value =
        serde_norway::from_slice(bytes).map_err(|source| ChartError::ChartYamlSyntax {
            origin: origin.to_owned(),
            source,
        })?;
    let Value::Object(fields) = &doc else {
        return Err(ChartError::NotAMapping {
            origin: origin.to_owned(),
        });
    };

    let name = required_scalar(fields, "name", origin)?;
    check_name(&name, origin)?;

    let version_text = required_scalar(fields, "version", origin)?;
    let version =
        semver::Version::parse(&version_text).map_err(|source| ChartError::InvalidVersion {
            origin: origin.to_owned(),
            version: version_text.clone(),
            source,
        })?;

    // Helm's loader treats a missing apiVersion as v1 (charts from the Helm 2 era), so do we.
    if let Some(api_version) = optional_scalar(fields, "apiVersion", origin)?
        && api_version != "v1"
        && api_version != "v2"
    {
        return Err(ChartError::UnsupportedApiVersion {
            origin: origin.to_owned(),
            api_version,
        });
    }

    let app_version = optional_scalar(fields, "appVersion", origin)?;
    let annotated_images = annotated_images(fields.get("annotations"), origin)?;

    // Sort explicitly: if any crate in the build enables serde_json's `preserve_order`, maps keep
    // YAML order instead of being sorted, and the config digest would depend on key order.
    doc.sort_all_objects();
    let config_json = serde_json::to_vec(&doc).map_err(|source| ChartError::ConfigJson {
        origin: origin.to_owned(),
        source,
    })?;

    Ok(Metadata {
        name,
        version,
        app_version,
        config_json,
        annotated_images,
    })
}

fn invalid(origin: &str, field: &'static str, problem: impl Into<String>) -> ChartError {
    ChartError::InvalidField {
        origin: origin.to_owned(),
        field,
        problem: problem.into(),
    }
}

fn required_scalar(
    fields: &serde_json::Map<String, Value>,
    field: &'static str,
    origin: &str,
) -> Result<String, ChartError> {
    optional_scalar(fields, field, origin)?.ok_or_else(|| ChartError::MissingField {
        origin: origin.to_owned(),
        field,
    })
}

/// A scalar field as text. Numbers are accepted because Helm accepts them (an unquoted
/// `appVersion: 1.16` is common); `null` and empty strings count as absent, as in Helm.
fn optional_scalar(
    fields: &serde_json::Map<String, Value>,
    field: &'static str,
    origin: &str,
) -> Result<Option<String>, ChartError> {
    let text = match fields.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(_) => return Err(invalid(origin, field, "must be a string")),
    };
    Ok((!text.is_empty()).then_some(text))
}

/// The name becomes the top-level directory of the archive and part of OCI references, so it
/// must be a single, ordinary path component (Helm checks `filepath.Base(name) == name`).
fn check_name(name: &str, origin: &str) -> Result<(), ChartError> {
    let problem = if name.contains(['/', '\\']) {
        "must not contain a path separator"
    } else if name == "." || name == ".." {
        "must not be `.` or `..`"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(invalid(origin, "name", format!("{name:?} {problem}")))
}

/// Collects the image references of the image-list annotations. Their values are YAML documents
/// inside strings (Helm annotations are string-valued): a list of plain references or of maps
/// with an `image` key (Artifact Hub's format). A malformed list is an error rather than being
/// skipped: an air-gapped install would otherwise miss images with no warning.
fn annotated_images(annotations: Option<&Value>, origin: &str) -> Result<Vec<String>, ChartError> {
    let annotations = match annotations {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid(origin, "annotations", "must be a mapping")),
    };
    let mut images: Vec<String> = Vec::new();
    for key in IMAGE_ANNOTATIONS {
        let bad = |problem: String| ChartError::InvalidAnnotation {
            origin: origin.to_owned(),
            key: key.to_owned(),
            problem,
        };
        let list = match annotations.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => serde_norway::from_str::<Value>(text)
                .map_err(|e| bad(format!("not valid YAML: {e}")))?,
            // Not Helm-valid (annotations are strings), but the intent is unambiguous.
            Some(list @ Value::Array(_)) => list.clone(),
            Some(_) => return Err(bad("not a string".to_owned())),
        };
        let items = match list {
            Value::Null => continue,
            Value::Array(items) => items,
            _ => return Err(bad("not a list".to_owned())),
        };
        for item in items {
            let reference = match &item {
                Value::String(s) => s.trim(),
                Value::Object(entry) => match entry.get("image") {
                    Some(Value::String(s)) => s.trim(),
                    _ => return Err(bad(format!("entry {item} has no string `image`"))),
                },
                _ => return Err(bad(format!("entry {item} is neither a string nor a map"))),
            };
            if !reference.is_empty() && !images.iter().any(|known| known == reference) {
                images.push(reference.to_owned());
            }
        }
    }
    Ok(images)
}
