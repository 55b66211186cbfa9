//! Packaging a chart directory into a deterministic `.tgz`.
//!
//! The layout is `helm package`'s: regular files only, each under `NAME/`, mode 0644. Everything
//! that would make two builds differ is fixed: entries are sorted by path, owners are 0 with no
//! names, every mtime is the caller's (from `SOURCE_DATE_EPOCH`), and the gzip header carries no
//! timestamp or file name. Unlike Helm, Chart.yaml is stored as written rather than re-serialised,
//! and `charts/` subcharts (directories or `.tgz`) are stored as the files they are.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};

use super::ignore::IgnoreRules;
use super::{ChartError, MAX_CHART_BYTES, MAX_CHART_YAML_BYTES, PackagedChart, metadata};

/// The ignore file Helm reads from the chart directory.
const HELMIGNORE: &str = ".helmignore";

/// A file to package: its `/`-separated path relative to the chart directory, and its bytes.
type ChartFile = (String, Vec<u8>);

/// Packages a chart directory deterministically; see the module documentation for the layout.
///
/// Honors `.helmignore`, always leaves out `.git`, and refuses symbolic links (anywhere they
/// would be packaged), special files, non-UTF-8 names and charts over [`MAX_CHART_BYTES`].
pub fn package_dir(dir: &Path, mtime: u64) -> Result<PackagedChart, ChartError> {
    let origin = dir.display().to_string();
    let meta =
        fs::metadata(dir).map_err(|e| ChartError::io(&origin, "reading the chart directory", e))?;
    if !meta.is_dir() {
        return Err(ChartError::NotADirectory { origin });
    }

    let ignore_text = read_helmignore(dir, &origin)?;
    let rules = IgnoreRules::parse(&ignore_text, &origin)?;
    let mut walk = Walk {
        origin: &origin,
        rules: &rules,
        files: Vec::new(),
        total: 0,
    };
    walk.dir(dir, "")?;
    let mut files = walk.files;
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let chart_yaml = files
        .iter()
        .find(|(rel, _)| rel == "Chart.yaml")
        .ok_or_else(|| ChartError::MissingChartYaml {
            origin: origin.clone(),
        })?;
    if chart_yaml.1.len() as u64 > MAX_CHART_YAML_BYTES {
        return Err(ChartError::too_large(
            &origin,
            "Chart.yaml",
            MAX_CHART_YAML_BYTES,
        ));
    }
    let metadata = metadata::parse(&chart_yaml.1, &origin)?;
    let tgz = write_tgz(&metadata.name, &files, mtime)
        .map_err(|e| ChartError::io(&origin, "writing the packaged chart", e))?;
    Ok(metadata.into_packaged(tgz))
}

/// The `.helmignore` text, or empty when there is none. A link is refused here too: following it
/// could read a file outside the chart.
fn read_helmignore(dir: &Path, origin: &str) -> Result<String, ChartError> {
    let path = dir.join(HELMIGNORE);
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(ChartError::io(origin, "reading .helmignore", e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(ChartError::Symlink {
                origin: origin.to_owned(),
                path,
            });
        }
        Ok(_) => {}
    }
    let bytes = read_bounded(&path, MAX_CHART_YAML_BYTES)
        .map_err(|e| ChartError::io(origin, "reading .helmignore", e))?
        .ok_or_else(|| ChartError::too_large(origin, ".helmignore", MAX_CHART_YAML_BYTES))?;
    String::from_utf8(bytes).map_err(|_| {
        let not_text = io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8 text");
        ChartError::io(origin, "reading .helmignore", not_text)
    })
}

/// Reads a regular file, or `None` if it holds more than `limit` bytes. Reading through `take`
/// keeps the bound even if the file grows after it was listed.
fn read_bounded(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no longer a regular file",
        ));
    }
    if meta.len() > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// State of one directory walk.
struct Walk<'a> {
    origin: &'a str,
    rules: &'a IgnoreRules,
    files: Vec<ChartFile>,
    /// Bytes read so far, bounded by [`MAX_CHART_BYTES`].
    total: u64,
}

impl Walk<'_> {
    /// Collects the files below `path`, whose path relative to the chart is `rel` ("" at the top).
    fn dir(&mut self, path: &Path, rel: &str) -> Result<(), ChartError> {
        let origin = self.origin;
        let io_err = |e| ChartError::io(origin, format!("listing {}", path.display()), e);
        for entry in fs::read_dir(path).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let entry_path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(ChartError::NonUtf8Path {
                    origin: origin.to_owned(),
                    path: entry_path,
                });
            };
            // Version-control metadata is never part of a chart, whatever .helmignore says.
            if name == ".git" {
                continue;
            }
            let entry_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // `file_type` does not follow links, so a link is seen as a link.
            let file_type = entry.file_type().map_err(|e| {
                ChartError::io(origin, format!("inspecting {}", entry_path.display()), e)
            })?;
            if self.rules.is_ignored(&entry_rel, file_type.is_dir()) {
                continue;
            }
            if file_type.is_dir() {
                self.dir(&entry_path, &entry_rel)?;
            } else if file_type.is_file() {
                self.file(&entry_path, entry_rel)?;
            } else if file_type.is_symlink() {
                // Links inside the chart could be followed, but one pointing outside would leak
                // host files into the bundle; refusing all of them keeps the rule simple.
                return Err(ChartError::Symlink {
                    origin: origin.to_owned(),
                    path: entry_path,
                });
            } else {
                return Err(ChartError::UnsupportedFileType {
                    origin: origin.to_owned(),
                    path: entry_path,
                });
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, rel: String) -> Result<(), ChartError> {
        let too_large = || ChartError::too_large(self.origin, "the chart's files", MAX_CHART_BYTES);
        let remaining = MAX_CHART_BYTES
            .checked_sub(self.total)
            .ok_or_else(too_large)?;
        let bytes = read_bounded(path, remaining)
            .map_err(|e| ChartError::io(self.origin, format!("reading {}", path.display()), e))?
            .ok_or_else(too_large)?;
        self.total += bytes.len() as u64;
        self.files.push((rel, bytes));
        Ok(())
    }
}

/// Writes the sorted files as `NAME/REL` entries of a gzip-compressed tar.
fn write_tgz(name: &str, files: &[ChartFile], mtime: u64) -> io::Result<Vec<u8>> {
    // GzBuilder's defaults are what reproducibility needs: no file name, mtime 0, OS "unknown".
    // Level 9: charts are small text, so the best ratio costs next to nothing.
    let gz = GzBuilder::new().write(Vec::new(), Compression::best());
    let mut tar = tar::Builder::new(gz);
    for (rel, data) in files {
        // A fresh GNU header has zeroed owner names; everything else is set explicitly so
        // nothing from the host leaks in. `append_data` adds a GNU long-name entry when the
        // path does not fit the 100-byte field, and sets the checksum.
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        tar.append_data(&mut header, format!("{name}/{rel}"), data.as_slice())?;
    }
    // `into_inner` writes the end-of-archive blocks; `finish` the gzip trailer.
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}
