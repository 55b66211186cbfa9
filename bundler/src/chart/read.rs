//! Reading an already packaged chart (`.tgz`) without changing a byte of it.
//!
//! The archive is only scanned, never extracted: one streaming pass checks every entry's path and
//! type and picks out `NAME/Chart.yaml`. Sizes are bounded before decompression (the `.tgz`) and
//! during it (the tar stream), so a small hostile file can't expand without limit.

use std::cell::Cell;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path};

use flate2::read::MultiGzDecoder;

use super::{ChartError, MAX_CHART_BYTES, MAX_CHART_YAML_BYTES, PackagedChart, metadata};

/// Bound on the decompressed tar stream: the files' bound plus room for tar headers and padding.
const MAX_TAR_BYTES: u64 = 2 * MAX_CHART_BYTES;

/// Reads a packaged chart file; its bytes become `content_tgz` unchanged.
pub fn read_tgz(path: &Path) -> Result<PackagedChart, ChartError> {
    let origin = path.display().to_string();
    let io_err = |e| ChartError::io(&origin, "reading the packaged chart", e);
    let file = fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len > MAX_CHART_BYTES {
        return Err(ChartError::too_large(&origin, "the .tgz", MAX_CHART_BYTES));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(MAX_CHART_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    from_tgz_bytes(bytes, &origin)
}

/// Same as [`read_tgz`] for bytes already in memory (a chart downloaded from a repository);
/// `origin` names it in errors (its URL, say).
pub fn from_tgz_bytes(bytes: Vec<u8>, origin: &str) -> Result<PackagedChart, ChartError> {
    if bytes.len() as u64 > MAX_CHART_BYTES {
        return Err(ChartError::too_large(origin, "the .tgz", MAX_CHART_BYTES));
    }
    // Checked up front for a clearer message than the decoder's when given a plain tar, an HTML
    // error page or a provenance file.
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(invalid(
            origin,
            "not gzip-compressed (expected a .tgz as written by `helm package`)",
        ));
    }
    let chart_yaml = scan(&bytes, origin)?;
    let metadata = metadata::parse(&chart_yaml, origin)?;
    Ok(metadata.into_packaged(bytes))
}

fn invalid(origin: &str, problem: impl Into<String>) -> ChartError {
    ChartError::InvalidArchive {
        origin: origin.to_owned(),
        problem: problem.into(),
    }
}

/// Checks every entry and returns the bytes of `TOP/Chart.yaml`.
fn scan(tgz: &[u8], origin: &str) -> Result<Vec<u8>, ChartError> {
    let tripped = Cell::new(false);
    let stream = Bounded {
        inner: MultiGzDecoder::new(tgz),
        remaining: MAX_TAR_BYTES,
        tripped: &tripped,
    };
    // Errors from the stream surface wrapped by the tar reader; the flag tells a bound apart
    // from corruption.
    let read_err = |e: io::Error| {
        if tripped.get() {
            ChartError::too_large(origin, "the decompressed chart", MAX_TAR_BYTES)
        } else {
            invalid(origin, format!("reading the archive: {e}"))
        }
    };

    let mut archive = tar::Archive::new(stream);
    let mut top: Option<String> = None;
    let mut chart_yaml: Option<Vec<u8>> = None;
    let mut total: u64 = 0;
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Archive-wide metadata (e.g. from `git archive`), not a file.
            continue;
        }
        let path = entry.path().map_err(read_err)?.into_owned();
        let parts = clean_components(&path)
            .map_err(|problem| invalid(origin, format!("entry {} {problem}", path.display())))?;
        if !(kind.is_file() || kind.is_contiguous() || kind.is_dir()) {
            // Helm would not recreate links or devices faithfully either; refuse rather than guess.
            return Err(invalid(
                origin,
                format!(
                    "entry {} is not a regular file or directory ({kind:?})",
                    path.display()
                ),
            ));
        }
        let Some(first) = parts.first() else { continue };
        // Helm strips the first path component of every entry, so they must all share it.
        match &top {
            None => top = Some(first.clone()),
            Some(known) if known != first => {
                return Err(invalid(
                    origin,
                    format!(
                        "entries under both {known}/ and {first}/; a chart has one top-level directory"
                    ),
                ));
            }
            Some(_) => {}
        }
        if kind.is_dir() {
            continue;
        }
        if parts.len() == 1 {
            return Err(invalid(
                origin,
                format!("file {first} is outside the chart's top-level directory"),
            ));
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if total > MAX_CHART_BYTES {
            return Err(ChartError::too_large(
                origin,
                "the chart's files",
                MAX_CHART_BYTES,
            ));
        }
        if parts.len() == 2 && parts[1] == "Chart.yaml" {
            if chart_yaml.is_some() {
                return Err(invalid(origin, format!("{first}/Chart.yaml appears twice")));
            }
            if size > MAX_CHART_YAML_BYTES {
                return Err(ChartError::too_large(
                    origin,
                    "Chart.yaml",
                    MAX_CHART_YAML_BYTES,
                ));
            }
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            (&mut entry)
                .take(MAX_CHART_YAML_BYTES)
                .read_to_end(&mut bytes)
                .map_err(read_err)?;
            chart_yaml = Some(bytes);
        }
    }
    chart_yaml.ok_or_else(|| ChartError::MissingChartYaml {
        origin: origin.to_owned(),
    })
}

/// The normal components of an entry path (`.` dropped), or why the path is unacceptable.
fn clean_components(path: &Path) -> Result<Vec<String>, &'static str> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part.to_owned()),
                None => return Err("has a name that is not UTF-8"),
            },
            Component::CurDir => {}
            Component::ParentDir => return Err("contains `..` (it would escape the chart)"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute (it would escape the chart)");
            }
        }
    }
    Ok(parts)
}

/// A reader that fails once more than `remaining` bytes have passed, and says so in `tripped`.
struct Bounded<'a, R> {
    inner: R,
    remaining: u64,
    tripped: &'a Cell<bool>,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.remaining.checked_sub(n as u64) {
            Some(left) => {
                self.remaining = left;
                Ok(n)
            }
            None => {
                self.tripped.set(true);
                Err(io::Error::other("decompressed size limit exceeded"))
            }
        }
    }
}
