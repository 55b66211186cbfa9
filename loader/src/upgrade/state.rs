//! The rollback guard's memory: per bundle name, the last version loaded on this machine and
//! when, one small JSON file each under the state directory (`--state-dir`).
//!
//! A signed bundle stays validly signed forever, so an attacker who can hand the operator files
//! could replay an old, vulnerable release. The guard refuses a bundle older than the last one
//! loaded here unless the operator says `--allow-downgrade`. The file is written only after a
//! successful upgrade, atomically (a temporary file in the same directory, then a rename), so a
//! crash leaves the old state or the new one, never half of either.

use std::io::Write;
use std::path::{Path, PathBuf};

use sensei_core::verify::Rejection;
use serde::{Deserialize, Serialize};

use super::error::UpgradeError;

/// Largest state file read: it holds a few short fields.
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// What the state file of one bundle name holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadedState {
    pub name: String,
    pub version: semver::Version,
    /// RFC 3339, UTC.
    pub loaded_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$XDG_STATE_HOME/sensei`, else `$HOME/.local/state/sensei` (the XDG default); `None`
    /// when neither variable gives an absolute path.
    pub fn default_dir() -> Option<PathBuf> {
        let absolute = |var: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        absolute("XDG_STATE_HOME")
            .or_else(|| absolute("HOME").map(|h| h.join(".local").join("state")))
            .map(|d| d.join("sensei"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/NAME.json`. Bundle names come from a signed manifest but are still checked: they
    /// become a file name here.
    pub fn path_for(&self, name: &str) -> Result<PathBuf, UpgradeError> {
        let safe = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !safe {
            return Err(UpgradeError::State {
                path: self.dir.clone(),
                message: format!(
                    "the bundle name {name:?} cannot name a state file (letters, digits, \
                     '.', '_' and '-' only)"
                ),
            });
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// The last load of `name` recorded here, if any.
    pub fn read(&self, name: &str) -> Result<Option<LoadedState>, UpgradeError> {
        let path = self.path_for(name)?;
        let err = |message: String| UpgradeError::State {
            path: path.clone(),
            message,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("cannot read the rollback-guard state: {e}"))),
        };
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(err(format!(
                "the rollback-guard state is over {MAX_STATE_BYTES} bytes; it is not ours"
            )));
        }
        let state: LoadedState = serde_json::from_slice(&bytes).map_err(|e| {
            err(format!(
                "the rollback-guard state is corrupt ({e}); fix it, or remove it to forget \
                 which version was loaded last"
            ))
        })?;
        if state.name != name {
            return Err(err(format!(
                "the rollback-guard state names bundle {:?}, not {name:?}; fix or remove it",
                state.name
            )));
        }
        Ok(Some(state))
    }

    /// Records a load, atomically: temp file, fsync, rename.
    pub fn write(&self, state: &LoadedState) -> Result<PathBuf, UpgradeError> {
        let path = self.path_for(&state.name)?;
        let err = |what: &str, e: std::io::Error| UpgradeError::State {
            path: path.clone(),
            message: format!("cannot {what} the rollback-guard state: {e}"),
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| err("create the directory of", e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".state-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| err("write", e))?;
        let mut bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        bytes.push(b'\n');
        tmp.write_all(&bytes).map_err(|e| err("write", e))?;
        tmp.as_file().sync_all().map_err(|e| err("write", e))?;
        tmp.persist(&path).map_err(|e| err("replace", e.error))?;
        Ok(path)
    }
}

/// The guard: a bundle older than the last one loaded here is refused unless allowed.
pub fn check_rollback(
    last: Option<&LoadedState>,
    bundle: &semver::Version,
    allow_downgrade: bool,
) -> Result<(), Rejection> {
    match last {
        Some(last) if !allow_downgrade && bundle.cmp_precedence(&last.version).is_lt() => {
            Err(Rejection::Rollback {
                bundle: bundle.to_string(),
                loaded: format!("{} (loaded {})", last.version, last.loaded_at),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state(version: &str) -> LoadedState {
        LoadedState {
            name: "sensei".into(),
            version: semver::Version::parse(version).unwrap(),
            loaded_at: "2026-01-01T00:00:00Z".into(),
            release: Some("sensei".into()),
            namespace: None,
        }
    }

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path().join("nested/sensei"));
        assert_eq!(s.read("sensei").unwrap(), None);
        let path = s.write(&state("1.2.0")).unwrap();
        assert_eq!(path, dir.path().join("nested/sensei/sensei.json"));
        assert_eq!(s.read("sensei").unwrap(), Some(state("1.2.0")));
        s.write(&state("1.3.0")).unwrap();
        assert_eq!(
            s.read("sensei").unwrap().unwrap().version.to_string(),
            "1.3.0"
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sensei.json"]);
    }

    #[test]
    fn refuses_corrupt_foreign_and_unsafe_names() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path());
        std::fs::write(dir.path().join("sensei.json"), "{").unwrap();
        assert!(
            s.read("sensei")
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
        let mut other = state("1.0.0");
        other.name = "other".into();
        std::fs::write(
            dir.path().join("sensei.json"),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        assert!(
            s.read("sensei")
                .unwrap_err()
                .to_string()
                .contains("\"other\"")
        );
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(s.path_for(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn guard_refuses_older_unless_allowed() {
        let v = |s| semver::Version::parse(s).unwrap();
        let last = state("1.3.0");
        let err = check_rollback(Some(&last), &v("1.2.0"), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1.2.0") && err.contains("1.3.0") && err.contains("--allow-downgrade"),
            "{err}"
        );
        assert!(check_rollback(Some(&last), &v("1.2.0"), true).is_ok());
        assert!(check_rollback(Some(&last), &v("1.3.0"), false).is_ok());
        assert!(check_rollback(Some(&last), &v("1.4.0"), false).is_ok());
        assert!(check_rollback(Some(&last), &v("1.3.0-rc.1"), false).is_err());
        assert!(check_rollback(None, &v("0.1.0"), false).is_ok());
    }

    #[test]
    fn default_dir_follows_xdg() {
        // Only checks the shape: the environment belongs to the test runner.
        if let Some(d) = StateDir::default_dir() {
            assert!(d.is_absolute() && d.ends_with("sensei"));
        }
    }
}
