//! Image discovery (`discoverImages: true`): the images a chart would run, from two sources.
//!
//! 1. What it renders: the real `helm template` with the values the spec gives the chart, and
//!    every string under a key named `image`, at any depth of any rendered object (containers,
//!    init containers, cron job templates, operators' custom resources).
//! 2. What it declares: the Chart.yaml annotations `images`, `artifacthub.io/images` and
//!    `helm.sh/images` (already read into [`PackagedChart::annotated_images`]). Rendering with
//!    default values misses images that only optional features use; charts list those here.
//!
//! References come back normalised ([`ImageRef`]: Docker Hub short names expanded, digests
//! kept), so the same image spelled two ways is found once. A reference that isn't valid is an
//! error, not skipped: an air-gapped cluster would fail to pull it with no warning at build time.

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use sensei_core::spec::ImageRef;
use serde::Deserialize;
use serde_norway::Value;

use crate::chart::PackagedChart;

/// Upper bound on `helm template`'s output. Real charts render to a few hundred KiB.
pub const MAX_RENDER_BYTES: u64 = 64 * 1024 * 1024;
/// How much of helm's stderr is kept for the error message; the rest is read and dropped.
const MAX_STDERR_BYTES: u64 = 64 * 1024;
/// The release name charts are rendered under; some charts put it in image names' neighbours
/// (labels, object names), never in images, so any fixed name does.
const RELEASE_NAME: &str = "sensei-discovery";
/// The environment variable naming the helm binary when `--helm` is not given.
pub const HELM_ENV: &str = "SENSEI_HELM";

/// The images found in one chart, normalised (`docker.io/library/nginx:1.25`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Found in the output of `helm template` with the spec's values.
    pub rendered: BTreeSet<String>,
    /// Listed in the chart's image annotations.
    pub declared: BTreeSet<String>,
}

impl Discovered {
    /// Every image found, once.
    pub fn all(&self) -> BTreeSet<&str> {
        self.rendered
            .iter()
            .chain(&self.declared)
            .map(String::as_str)
            .collect()
    }
}

/// Where an invalid reference was found, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundIn {
    Rendered,
    Declared,
}

impl std::fmt::Display for FoundIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rendered => "renders (helm template)",
            Self::Declared => "declares in its Chart.yaml image annotations",
        })
    }
}

/// Why discovery failed. `chart` is `NAME VERSION`. See [`DiscoverError::is_input`] for the
/// exit code.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(
        "image discovery needs helm, and none was found ({searched}); install helm (v3 or v4), \
         or pass --helm PATH, or set {HELM_ENV}"
    )]
    HelmNotFound { searched: String },
    #[error("helm {} (from {given_by}): {problem}", path.display())]
    HelmNotUsable {
        path: PathBuf,
        given_by: &'static str,
        problem: String,
    },
    #[error("chart {chart}: cannot prepare files for helm template: {source}")]
    TempFiles {
        chart: String,
        #[source]
        source: io::Error,
    },
    #[error("chart {chart}: cannot write its values for helm: {source}")]
    Values {
        chart: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("chart {chart}: cannot run {}: {source}", helm.display())]
    Spawn {
        chart: String,
        helm: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "chart {chart}: `helm template` failed ({status}): {stderr}; check the chart's values: \
         in the spec"
    )]
    HelmFailed {
        chart: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error(
        "chart {chart}: `helm template` wrote more than {limit} bytes; refusing to read it all"
    )]
    RenderTooLarge { chart: String, limit: u64 },
    #[error("chart {chart}: cannot read the output of `helm template`: {problem}")]
    RenderUnreadable { chart: String, problem: String },
    #[error(
        "chart {chart} {found_in} the image {image:?}, which is not a reference a bundle can \
         carry: {problem}; set the chart's image values (values: in the spec) so it names a \
         tag or digest, or turn discoverImages off and list the images yourself"
    )]
    InvalidImage {
        chart: String,
        image: String,
        found_in: FoundIn,
        problem: String,
    },
}

impl DiscoverError {
    /// True for what the user fixes in their input (a `--helm`/`SENSEI_HELM` path that isn't
    /// helm, values or an image the spec can fix): exit code 2. The rest (helm absent or failing,
    /// the disk) are outside failures: exit code 3.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Self::HelmNotUsable { .. } | Self::Values { .. } | Self::InvalidImage { .. }
        )
    }
}

/// The helm binary to render with: `explicit` (`--helm`), else `$SENSEI_HELM`, else `helm` on
/// `PATH`. Only existence is checked here; a wrong binary fails when it runs.
pub fn find_helm(explicit: Option<&Path>) -> Result<PathBuf, DiscoverError> {
    if let Some(path) = explicit {
        return usable(path, "--helm");
    }
    if let Some(path) = std::env::var_os(HELM_ENV).filter(|p| !p.is_empty()) {
        return usable(Path::new(&path), HELM_ENV);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    find_on_path(&path_var).ok_or_else(|| DiscoverError::HelmNotFound {
        searched: format!("not on PATH, and {HELM_ENV} is not set"),
    })
}

fn usable(path: &Path, given_by: &'static str) -> Result<PathBuf, DiscoverError> {
    let problem = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && is_executable(&meta) => return Ok(path.to_owned()),
        Ok(meta) if meta.is_file() => "is not executable".to_owned(),
        Ok(_) => "is not a file".to_owned(),
        Err(e) => format!("cannot be used: {e}"),
    };
    Err(DiscoverError::HelmNotUsable {
        path: path.to_owned(),
        given_by,
        problem,
    })
}

fn find_on_path(path_var: &OsString) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("helm"))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && is_executable(&m))
        })
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Renders `chart` with `helm template` (with `values`, if any) and reads its declared images.
pub fn discover_images(
    helm: &Path,
    chart: &PackagedChart,
    values: Option<&serde_json::Value>,
) -> Result<Discovered, DiscoverError> {
    let label = format!("{} {}", chart.name, chart.version);
    let rendered_text = render(helm, chart, values, &label)?;
    let mut raw = Vec::new();
    collect_rendered_images(&rendered_text, &mut raw).map_err(|problem| {
        DiscoverError::RenderUnreadable {
            chart: label.clone(),
            problem,
        }
    })?;

    let checked = |raw: &str, found_in: FoundIn| {
        normalise(raw).map_err(|problem| DiscoverError::InvalidImage {
            chart: label.clone(),
            image: raw.to_owned(),
            found_in,
            problem,
        })
    };
    let mut found = Discovered::default();
    for image in &raw {
        found.rendered.extend(checked(image, FoundIn::Rendered)?);
    }
    for image in &chart.annotated_images {
        found.declared.extend(checked(image, FoundIn::Declared)?);
    }
    Ok(found)
}

/// Runs `helm template` on the chart's exact `.tgz` in a private temporary directory, with Helm's
/// config, cache and data homes pointed there too, so the user's repositories and plugins can't
/// change what renders. Returns stdout, bounded by [`MAX_RENDER_BYTES`].
fn render(
    helm: &Path,
    chart: &PackagedChart,
    values: Option<&serde_json::Value>,
    label: &str,
) -> Result<String, DiscoverError> {
    let temp_err = |source| DiscoverError::TempFiles {
        chart: label.to_owned(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix("sensei-discover-")
        .tempdir()
        .map_err(temp_err)?;
    let tgz = dir
        .path()
        .join(format!("{}-{}.tgz", chart.name, chart.version));
    std::fs::write(&tgz, &chart.content_tgz).map_err(temp_err)?;

    let mut command = Command::new(helm);
    command.arg("template").arg(RELEASE_NAME).arg(&tgz);
    if let Some(values) = values {
        // JSON is YAML, so helm reads it as a values file.
        let text = serde_json::to_vec(values).map_err(|source| DiscoverError::Values {
            chart: label.to_owned(),
            source,
        })?;
        let path = dir.path().join("values.json");
        std::fs::write(&path, text).map_err(temp_err)?;
        command.arg("--values").arg(path);
    }
    for (var, sub) in [
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_DATA_HOME", "data"),
    ] {
        command.env(var, dir.path().join(sub));
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| DiscoverError::Spawn {
        chart: label.to_owned(),
        helm: helm.to_owned(),
        source,
    })?;

    // stderr drains on its own thread so helm can't block on a full pipe while we read stdout.
    let stderr_thread = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut stderr = stderr;
            let _ = (&mut stderr).take(MAX_STDERR_BYTES).read_to_end(&mut kept);
            let _ = io::copy(&mut stderr, &mut io::sink());
            kept
        })
    });
    let mut stdout_bytes = Vec::new();
    let read = match child.stdout.take() {
        Some(stdout) => stdout
            .take(MAX_RENDER_BYTES + 1)
            .read_to_end(&mut stdout_bytes)
            .map(|_| ()),
        None => Ok(()),
    };
    let too_large = stdout_bytes.len() as u64 > MAX_RENDER_BYTES;
    if too_large {
        // Stop helm rather than wait for it to write what we won't read.
        let _ = child.kill();
    }
    let status = child.wait().map_err(temp_err)?;
    let stderr = stderr_thread
        .and_then(|t| t.join().ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    if too_large {
        return Err(DiscoverError::RenderTooLarge {
            chart: label.to_owned(),
            limit: MAX_RENDER_BYTES,
        });
    }
    read.map_err(temp_err)?;
    if !status.success() {
        return Err(DiscoverError::HelmFailed {
            chart: label.to_owned(),
            status,
            stderr: if stderr.is_empty() {
                "(helm wrote nothing on stderr)".to_owned()
            } else {
                stderr
            },
        });
    }
    String::from_utf8(stdout_bytes).map_err(|_| DiscoverError::RenderUnreadable {
        chart: label.to_owned(),
        problem: "it is not UTF-8".to_owned(),
    })
}

/// Collects, from every document of a multi-document YAML stream, each string found under a key
/// named `image` (at any depth), in order of appearance.
pub(crate) fn collect_rendered_images(text: &str, out: &mut Vec<String>) -> Result<(), String> {
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)
            .map_err(|e| format!("document {} is not valid YAML: {e}", i + 1))?;
        walk(&value, out);
    }
    Ok(())
}

fn walk(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if key.as_str() == Some("image")
                    && let Value::String(image) = child
                {
                    out.push(image.clone());
                }
                walk(child, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| walk(item, out)),
        Value::Tagged(tagged) => walk(&tagged.value, out),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// The normalised form of a found reference; `None` for what is not an image yet: an empty
/// string or a placeholder another tool fills in later (`{{ ... }}` for Argo Workflows and
/// `tpl`, `${VAR}` and `$(VAR)` for substitution).
pub(crate) fn normalise(raw: &str) -> Result<Option<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() || ["{{", "}}", "${", "$("].iter().any(|p| raw.contains(p)) {
        return Ok(None);
    }
    ImageRef::parse(raw).map(|r| Some(r.to_string()))
}
