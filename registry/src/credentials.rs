//! Registry credentials: given on the command line, or read the way Docker reads them from
//! `config.json` (`auths`, `credHelpers`, `credsStore`). Secrets never print.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Largest config.json read; real ones are a few KiB.
const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Largest answer read from a credential helper.
const MAX_HELPER_BYTES: u64 = 1 << 20;

/// A user name and password (or token) for one registry. `Debug` shows the user only.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read Docker config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Docker config {path} is not valid JSON: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("Docker config {path}: the `auth` entry for {host} is not base64 of user:password")]
    BadAuth { path: PathBuf, host: String },
    #[error(
        "credential helper docker-credential-{helper} (for {host}, named in {path}) failed: {message}; is it installed and on PATH?"
    )]
    Helper {
        path: PathBuf,
        helper: String,
        host: String,
        message: String,
    },
}

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub enum CredentialSource {
    /// None: anonymous access.
    #[default]
    Anonymous,
    /// The same credentials for every registry contacted (a user name and password given on the command line).
    Explicit(Credentials),
    /// A Docker `config.json`.
    DockerConfig(PathBuf),
}

impl CredentialSource {
    /// The file given (a `config.json`) if any, else `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`, if that file exists; else anonymous.
    pub fn docker_default(explicit: Option<&Path>) -> Self {
        if let Some(path) = explicit {
            return CredentialSource::DockerConfig(path.to_owned());
        }
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        match dir.map(|d| d.join("config.json")) {
            Some(path) if path.is_file() => CredentialSource::DockerConfig(path),
            _ => CredentialSource::Anonymous,
        }
    }

    /// The credentials for `host` (`registry.example.com:5000`), if any.
    pub fn for_host(&self, host: &str) -> Result<Option<Credentials>, CredentialError> {
        match self {
            CredentialSource::Anonymous => Ok(None),
            CredentialSource::Explicit(c) => Ok(Some(c.clone())),
            CredentialSource::DockerConfig(path) => DockerConfig::read(path)?.credentials(host),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// A parsed Docker `config.json`. `Debug` shows the path only: the file holds secrets.
pub struct DockerConfig {
    path: PathBuf,
    file: ConfigFile,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    pub fn read(path: &Path) -> Result<Self, CredentialError> {
        let read_err = |source| CredentialError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        let file = serde_json::from_str(&text).map_err(|e| CredentialError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// Docker's order: a `credHelpers` entry for the host, then an `auths` entry, then the
    /// `credsStore` for everything.
    pub fn credentials(&self, host: &str) -> Result<Option<Credentials>, CredentialError> {
        let keys = host_keys(host);
        if let Some(helper) = keys.iter().find_map(|k| self.file.cred_helpers.get(k)) {
            return self.run_helper(helper, host);
        }
        let entry = self
            .file
            .auths
            .iter()
            .find(|(k, _)| keys.contains(&normalise_key(k)));
        if let Some((key, entry)) = entry {
            if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
                return decode_auth(auth)
                    .map(Some)
                    .ok_or_else(|| CredentialError::BadAuth {
                        path: self.path.clone(),
                        host: key.clone(),
                    });
            }
            if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
                return Ok(Some(Credentials {
                    username: u.clone(),
                    password: Zeroizing::new(p.clone()),
                }));
            }
        }
        match &self.file.creds_store {
            Some(store) if !store.is_empty() => self.run_helper(store, host),
            _ => Ok(None),
        }
    }

    /// Runs `docker-credential-NAME get` with the host on stdin, as Docker does.
    fn run_helper(&self, helper: &str, host: &str) -> Result<Option<Credentials>, CredentialError> {
        let fail = |message: String| CredentialError::Helper {
            path: self.path.clone(),
            helper: helper.to_owned(),
            host: host.to_owned(),
            message,
        };
        let mut child = Command::new(format!("docker-credential-{helper}"))
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(host.as_bytes())
                .map_err(|e| fail(e.to_string()))?;
        }
        let mut out = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            stdout
                .take(MAX_HELPER_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| fail(e.to_string()))?;
        }
        let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        let out = Zeroizing::new(out);
        if !output.status.success() {
            let said = String::from_utf8_lossy(&out).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            // Helpers say this when they simply have nothing for the host.
            if said.to_ascii_lowercase().contains("credentials not found") {
                return Ok(None);
            }
            return Err(fail(format!("{}: {}", output.status, said.trim())));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            username: String,
            secret: String,
        }
        let answer: Answer = serde_json::from_slice(&out)
            .map_err(|e| fail(format!("its answer is not the expected JSON: {e}")))?;
        Ok(Some(Credentials {
            username: answer.username,
            password: Zeroizing::new(answer.secret),
        }))
    }
}

/// The keys Docker may have stored a host under.
fn host_keys(host: &str) -> Vec<String> {
    let mut keys = vec![host.to_owned()];
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.extend(["index.docker.io/v1/", "docker.io", "index.docker.io"].map(String::from));
        keys.push("index.docker.io/v1".into());
    }
    keys
}

/// `https://host/v1/` → `host/v1/`; `http://host` → `host`. Docker writes keys both ways.
fn normalise_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    match k.split_once('/') {
        Some((host, "v1/" | "v1" | "v2/" | "v2" | "")) if host != "index.docker.io" => {
            host.to_owned()
        }
        _ => k.to_owned(),
    }
}

fn decode_auth(auth: &str) -> Option<Credentials> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some(Credentials {
        username: user.to_owned(),
        password: Zeroizing::new(pass.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn reads_auths_in_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:x");
        let p = write(
            dir.path(),
            &format!(
                r#"{{"auths": {{"https://reg.example:5000/v1/": {{"auth": "{auth}"}},
                     "other.example": {{"username": "bob", "password": "pw"}}}}}}"#
            ),
        );
        let src = CredentialSource::DockerConfig(p);
        let c = src.for_host("reg.example:5000").unwrap().unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.password.as_str(), "s3cret:x");
        assert_eq!(
            src.for_host("other.example").unwrap().unwrap().username,
            "bob"
        );
        assert!(src.for_host("nobody.example").unwrap().is_none());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials {
            username: "alice".into(),
            password: Zeroizing::new("hunter2".into()),
        };
        let shown = format!("{c:?} {:?}", CredentialSource::Explicit(c.clone()));
        assert!(shown.contains("alice") && !shown.contains("hunter2"));
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "{not json");
        let e = CredentialSource::DockerConfig(p.clone())
            .for_host("x")
            .unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()));
        let p = write(dir.path(), r#"{"auths": {"x": {"auth": "!!!"}}}"#);
        let e = CredentialSource::DockerConfig(p).for_host("x").unwrap_err();
        assert!(e.to_string().contains("base64"), "{e}");
    }

    #[test]
    fn a_missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"{"credHelpers": {"x": "sensei-test-absent"}}"#,
        );
        let e = CredentialSource::DockerConfig(p).for_host("x").unwrap_err();
        assert!(
            e.to_string()
                .contains("docker-credential-sensei-test-absent"),
            "{e}"
        );
    }
}
