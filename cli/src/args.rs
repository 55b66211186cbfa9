//! Checks on command-line values that both binaries share, so that a bad path or number is told
//! the same way, naming the flag, with exit code 2, before any work starts.

use std::path::Path;

/// Blobs in flight at once: one range for `create` and `push`.
pub const CONCURRENCY_RANGE: std::ops::RangeInclusive<u16> = 1..=64;

/// A flag's value that cannot be used: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {problem}")]
pub struct BadPath {
    pub flag: String,
    pub path: String,
    pub problem: String,
}

fn bad(flag: &str, path: &Path, problem: impl Into<String>) -> BadPath {
    BadPath {
        flag: flag.to_owned(),
        path: path.display().to_string(),
        problem: problem.into(),
    }
}

/// `path`, given with `flag`, must be a readable regular file (a symlink to one is fine).
pub fn input_file(flag: &str, path: &Path) -> Result<(), BadPath> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(flag, path, "no such file")),
        Err(e) => Err(bad(flag, path, format!("cannot read it: {e}"))),
        Ok(m) if m.is_dir() => Err(bad(flag, path, "is a directory; give a file")),
        Ok(m) if !m.is_file() => Err(bad(flag, path, "is not a regular file")),
        Ok(_) => std::fs::File::open(path)
            .map(drop)
            .map_err(|e| bad(flag, path, format!("cannot read it: {e}"))),
    }
}

/// A bundle argument: an archive file, or the directory it was extracted into (a FIFO or other
/// stream passes here; the command that needs to seek says so itself).
pub fn bundle_path(flag: &str, path: &Path) -> Result<(), BadPath> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(
            flag,
            path,
            "no such file or directory; give the bundle archive or the directory it was extracted into",
        )),
        Err(e) => Err(bad(flag, path, format!("cannot read it: {e}"))),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => std::fs::File::open(path)
            .map(drop)
            .map_err(|e| bad(flag, path, format!("cannot read it: {e}"))),
    }
}

/// `--concurrency N`, within [`CONCURRENCY_RANGE`].
pub fn parse_concurrency(s: &str) -> Result<u16, String> {
    let (lo, hi) = (CONCURRENCY_RANGE.start(), CONCURRENCY_RANGE.end());
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|n| CONCURRENCY_RANGE.contains(n))
        .ok_or_else(|| format!("{s:?} is not a number from {lo} to {hi}"))
}

/// `--plain-http HOST[:PORT]`: a registry host as it appears in image references, never a URL.
pub fn parse_registry_host(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Some((scheme, rest)) = s.split_once("://") {
        let host = rest.split('/').next().unwrap_or_default();
        return Err(format!(
            "{s:?} is a URL; give the registry host without the {scheme}:// scheme, e.g. {host}"
        ));
    }
    if s.is_empty() || s.contains('/') || s.contains(char::is_whitespace) {
        return Err(format!(
            "{s:?} is not a registry host; give HOST or HOST:PORT, e.g. localhost:5000"
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_files_must_be_readable_files() {
        let d = tempfile::tempdir().unwrap();
        let e = input_file("--key", d.path()).unwrap_err();
        assert!(e.to_string().starts_with("--key "), "{e}");
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = input_file("--key", &d.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        let f = d.path().join("k");
        std::fs::write(&f, b"x").unwrap();
        input_file("--key", &f).unwrap();
        bundle_path("BUNDLE", d.path()).unwrap();
        assert!(bundle_path("BUNDLE", &d.path().join("nope")).is_err());
    }

    #[test]
    fn concurrency_has_one_range() {
        assert_eq!(parse_concurrency("1"), Ok(1));
        assert_eq!(parse_concurrency("64"), Ok(64));
        for bad in ["0", "65", "4294967296", "-1", "x", ""] {
            assert!(parse_concurrency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_takes_a_host_not_a_url() {
        assert_eq!(
            parse_registry_host("localhost:5000").unwrap(),
            "localhost:5000"
        );
        let e = parse_registry_host("http://x:5000/v2").unwrap_err();
        assert!(e.contains("without the http:// scheme, e.g. x:5000"), "{e}");
        assert!(parse_registry_host("x/y").is_err());
        assert!(parse_registry_host("").is_err());
    }
}
