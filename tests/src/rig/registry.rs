//! A real `docker-registry` (CNCF distribution) on a free loopback port, plain, TLS + htpasswd,
//! or plain with bearer-token auth from a loopback token service, owned by a test: started on
//! construction, killed on drop, restartable on the same port and storage.
//!
//! What a test does with it lives beside it: `curl` (requests, with the token dance),
//! `contents` (catalog, tags, manifest digests), `skopeo` (skopeo's flags, and `seed`, which
//! fills it).

mod contents;
mod curl;
mod skopeo;

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;
use super::http::lock;
use super::tls::{TlsFiles, make_tls};
use super::token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenServer};
use super::tools::require;
use crate::bins::run_ok;

pub use skopeo::{seed, seed_fixtures};

/// How long a registry may take to answer `/v2/` after it is started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `docker-registry`. See the module doc.
#[derive(Debug)]
pub struct Registry {
    dir: TempDir,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    tls: Option<TlsFiles>,
    credentials: Option<(String, String)>,
    /// The token service of a [`Registry::token_auth`] registry.
    token: Option<TokenServer>,
    child: Mutex<Option<Child>>,
}

impl Registry {
    /// A plain-HTTP registry without auth.
    pub fn plain() -> Self {
        Self::launch(None, false)
    }

    /// An HTTPS registry (certificate from a CA made for it, see [`Registry::ca_file`]) that
    /// requires basic auth as `user`/`password` (htpasswd, bcrypt).
    pub fn tls_auth(user: &str, password: &str) -> Self {
        Self::launch(Some((user.to_string(), password.to_string())), false)
    }

    /// A plain-HTTP registry with bearer-token auth (`auth.token`): it accepts only tokens
    /// from its own [`TokenServer`] (see [`Registry::token_server`]), which hands `user` and
    /// `password` every action they ask for and anonymous clients a token granting nothing.
    /// Clients do the token dance themselves; so do [`Registry::tags`], `catalog` and
    /// `manifest_digest`, and skopeo with [`Registry::skopeo_args`].
    pub fn token_auth(user: &str, password: &str) -> Self {
        Self::launch(Some((user.to_string(), password.to_string())), true)
    }

    /// The tests need three shapes: plain and anonymous, TLS with basic auth (credentials sent
    /// over plain HTTP are what no real deployment does), or token auth, where plain HTTP
    /// keeps the test simple and the secret only travels to the token service on loopback.
    fn launch(credentials: Option<(String, String)>, token_auth: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sensei-registry-")
            .tempdir()
            .unwrap_or_else(|e| panic!("registry temp dir: {e}"));
        let token = match &credentials {
            Some((user, password)) if token_auth => Some(TokenServer::start(
                &dir.path().join("token"),
                user,
                password,
            )),
            _ => None,
        };
        let tls = match token {
            None => credentials.as_ref().map(|_| make_tls(dir.path())),
            Some(_) => None,
        };
        let mut registry = Self {
            config: dir.path().join("config.yml"),
            log: dir.path().join("registry.log"),
            port: 0,
            dir,
            tls,
            credentials,
            token,
            child: Mutex::new(None),
        };
        if let (Some((user, password)), None) = (&registry.credentials, &registry.token) {
            let out = run_ok(
                Command::new(require("htpasswd"))
                    .args(["-Bbn", user, password])
                    .stderr(Stdio::null()),
            );
            let path = registry.htpasswd();
            fs::write(&path, out).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        // Another process may grab the free port before the registry binds it: retry then.
        for attempt in 1..=3 {
            registry.port = free_port();
            registry.write_config();
            match registry.try_start() {
                Ok(()) => return registry,
                Err(e) if attempt < 3 && e.contains("address already in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    fn htpasswd(&self) -> PathBuf {
        self.dir.path().join("htpasswd")
    }

    fn write_config(&self) {
        // JSON strings are valid YAML double-quoted scalars: paths need no further escaping.
        let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
        let qs = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut yml = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  formatter: text\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{}\n  secret: sensei-test-secret\n",
            q(&self.storage_dir()),
            self.port
        );
        if let Some(tls) = &self.tls {
            let _ = write!(
                yml,
                "  tls:\n    certificate: {}\n    key: {}\n",
                q(&tls.server_cert),
                q(&tls.server_key)
            );
        }
        if let Some(token) = &self.token {
            let _ = write!(
                yml,
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                 rootcertbundle: {}\n",
                qs(&token.realm()),
                qs(TOKEN_SERVICE),
                qs(TOKEN_ISSUER),
                q(token.root_cert())
            );
        } else if self.credentials.is_some() {
            let _ = write!(
                yml,
                "auth:\n  htpasswd:\n    realm: sensei-test\n    path: {}\n",
                q(&self.htpasswd())
            );
        }
        fs::write(&self.config, yml)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.config.display()));
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://HOST` or `https://HOST`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The CA certificate that signed the registry's certificate (TLS registries only).
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// The CA and the server certificate and key (TLS registries only): another TLS server
    /// with the same certificate is trusted through the same CA file.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// A directory holding only `ca.crt` (for skopeo's `--cert-dir`), TLS registries only.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.cert_dir.as_path())
    }

    /// `(user, password)` the registry requires, if it requires any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The token service of a [`Registry::token_auth`] registry.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// How many requests the token service answered so far (0 without one). The rig's own
    /// `tags`, `catalog` and `manifest_digest` ask it too: compare counts around what you test.
    pub fn token_requests(&self) -> usize {
        self.token.as_ref().map_or(0, TokenServer::count)
    }

    /// Where the registry stores its content (survives `stop`/`start`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The last lines the registry logged (warnings and errors, across restarts).
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts the registry again on the same port and storage; panics if it does not come up.
    /// A no-op if it is running.
    pub fn start(&self) {
        if self.is_running() {
            return;
        }
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("open {}: {e}", self.log.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("dup {}: {e}", self.log.display()))?;
        let child = Command::new(require("docker-registry"))
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start docker-registry: {e}"))?;
        *lock(&self.child) = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "docker-registry on {} exited at startup ({status}); log {}:\n{}",
                    self.host(),
                    self.log.display(),
                    self.log_tail()
                ));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Something listens; make sure it is a registry (and ours: still running).
                let reply = self.request(false, "HEAD", "/v2/", &[]);
                if reply.header("docker-distribution-api-version").is_some()
                    && self.exited().is_none()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.signal_and_wait(true);
                return Err(format!(
                    "docker-registry on {} did not answer /v2/ within {STARTUP_TIMEOUT:?}; log {}:\n{}",
                    self.host(),
                    self.log.display(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status if the process has ended (or none was started).
    fn exited(&self) -> Option<String> {
        let mut child = lock(&self.child);
        match child.as_mut().map(Child::try_wait) {
            None => Some("not started".into()),
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(e.to_string()),
        }
    }

    /// `true` while the registry process runs.
    pub fn is_running(&self) -> bool {
        self.exited().is_none()
    }

    /// Stops the registry with SIGTERM and waits for it (SIGKILL after 10 s). Storage stays.
    pub fn stop(&self) {
        self.signal_and_wait(false);
    }

    /// Kills the registry with SIGKILL at once (a crash, mid-request) and waits for it.
    pub fn kill(&self) {
        self.signal_and_wait(true);
    }

    fn signal_and_wait(&self, hard: bool) {
        let Some(mut child) = lock(&self.child).take() else {
            return;
        };
        if !hard {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}
