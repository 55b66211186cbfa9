//! A real `docker-registry` (CNCF distribution) on a free loopback port, plain, TLS + htpasswd,
//! or plain with bearer-token auth from a loopback token service, owned by a test: started on construction, killed on drop, restartable on the same port and
//! storage. Plus `seed`, which fills it with skopeo.

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
use super::token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenServer, fetch_token};
use super::tools::require;
use crate::bins::{run, run_ok};
use crate::fixtures::FixtureSet;

/// How long a registry may take to answer `/v2/` after it is started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Every manifest media type a registry may hold, for `Accept`.
const MANIFEST_ACCEPT: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

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

    /// `curl` set up for this registry: silent, errors shown, the CA trusted and the
    /// credentials sent (when the registry has them). Add the method, headers and URL.
    /// A token-auth registry refuses these basic credentials: use [`Registry::bearer`].
    pub fn curl(&self) -> Command {
        let mut cmd = self.curl_anonymous();
        if let Some((user, password)) = self.credentials() {
            cmd.arg("-u").arg(format!("{user}:{password}"));
        }
        cmd
    }

    /// `curl` trusting the registry's CA, without credentials.
    pub fn curl_anonymous(&self) -> Command {
        let mut cmd = Command::new(require("curl"));
        cmd.args(["-sS", "--max-time", "30"]);
        if let Some(ca) = self.ca_file() {
            cmd.arg("--cacert").arg(ca);
        }
        cmd
    }

    /// Flags for a `skopeo` command reading from this registry (`copy` source).
    pub fn skopeo_src_args(&self) -> Vec<String> {
        self.skopeo_flags("src-")
    }

    /// Flags for a `skopeo` command writing to this registry (`copy` destination).
    pub fn skopeo_dest_args(&self) -> Vec<String> {
        self.skopeo_flags("dest-")
    }

    /// Flags for single-image skopeo commands (`inspect`, `delete`, `list-tags`).
    pub fn skopeo_args(&self) -> Vec<String> {
        self.skopeo_flags("")
    }

    fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match self.cert_dir() {
            Some(dir) => flags.push(format!("--{prefix}cert-dir={}", dir.display())),
            None => flags.push(format!("--{prefix}tls-verify=false")),
        }
        if let Some((user, password)) = self.credentials() {
            flags.push(format!("--{prefix}creds={user}:{password}"));
        }
        flags
    }

    /// Repositories in the registry, sorted.
    pub fn catalog(&self) -> Vec<String> {
        // distribution caps a page at 1000 entries and links the next page.
        let mut repos = Vec::new();
        let mut next = Some("/v2/_catalog?n=1000".to_string());
        while let Some(path) = next.take() {
            let reply = self.request(true, "GET", &path, &[]);
            repos.extend(strings(&reply.json_ok("catalog")["repositories"]));
            next = reply
                .header("link")
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(url, _)| {
                    // Relative in distribution 2.8; tolerate an absolute link too.
                    url.find("/v2/").map_or(url, |i| &url[i..]).to_string()
                });
        }
        repos.sort();
        repos
    }

    /// Tags of `repo` (e.g. `sensei/api`), sorted; empty if the repository does not exist.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let reply = self.request(true, "GET", &format!("/v2/{repo}/tags/list"), &[]);
        if reply.status == 404 {
            return Vec::new();
        }
        let mut tags = strings(&reply.json_ok(repo)["tags"]);
        tags.sort();
        tags
    }

    /// The digest the registry gives for `reference` (`PATH:TAG`, `PATH@DIGEST`, or `PATH` for
    /// `latest`), from a HEAD accepting OCI and Docker manifests and indexes. `None` if unknown.
    pub fn manifest_digest(&self, reference: &str) -> Option<String> {
        let (repo, tag) = split_reference(reference);
        let accept = MANIFEST_ACCEPT.map(|t| format!("Accept: {t}"));
        let reply = self.request(
            true,
            "HEAD",
            &format!("/v2/{repo}/manifests/{tag}"),
            &accept,
        );
        match reply.status {
            200 => Some(
                reply
                    .header("docker-content-digest")
                    .unwrap_or_else(|| panic!("{reference}: no Docker-Content-Digest"))
                    .to_string(),
            ),
            404 => None,
            s => panic!("HEAD {reference} on {}: status {s}", self.host()),
        }
    }

    /// One request with curl (`-i`); a status of 0 if curl could not connect. On a token-auth
    /// registry, `auth` means the token dance: a 401 challenge is answered with a token for
    /// the scope it names, and the request sent again.
    fn request(&self, auth: bool, method: &str, path: &str, headers: &[String]) -> Reply {
        if auth && self.token.is_some() {
            let reply = self.request_once(false, method, path, headers, None);
            return match reply.header("www-authenticate") {
                Some(challenge) if reply.status == 401 => {
                    let bearer = self.bearer(challenge);
                    self.request_once(false, method, path, headers, Some(&bearer))
                }
                _ => reply,
            };
        }
        self.request_once(auth, method, path, headers, None)
    }

    /// A bearer token from this registry's token service for the scope (and service) of a
    /// `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge, fetched with the
    /// registry's credentials by curl, as a client would.
    pub fn bearer(&self, challenge: &str) -> String {
        fetch_token(self.curl_anonymous(), self.credentials(), challenge)
    }

    fn request_once(
        &self,
        auth: bool,
        method: &str,
        path: &str,
        headers: &[String],
        bearer: Option<&str>,
    ) -> Reply {
        let mut cmd = if auth {
            self.curl()
        } else {
            self.curl_anonymous()
        };
        if let Some(token) = bearer {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        cmd.arg("-i").args(["--max-time", "5"]);
        if method == "HEAD" {
            cmd.arg("-I");
        } else {
            cmd.args(["-X", method]);
        }
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        cmd.arg(format!("{}{path}", self.url()));
        let out = run(&mut cmd);
        Reply::parse(&out.stdout)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `("repo", "tag-or-digest")` of `repo:tag`, `repo@digest` or `repo`.
fn split_reference(reference: &str) -> (&str, &str) {
    if let Some((repo, digest)) = reference.split_once('@') {
        return (repo, digest);
    }
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A response as `curl -i` printed it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(out: &[u8]) -> Self {
        let split = out.windows(4).position(|w| w == b"\r\n\r\n");
        let (head, body) = match split {
            Some(i) => (&out[..i], out[i + 4..].to_vec()),
            None => (out, Vec::new()),
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        Self {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json_ok(&self, what: &str) -> serde_json::Value {
        assert_eq!(
            self.status,
            200,
            "{what}: registry answered {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: registry sent bad JSON: {e}"))
    }
}

/// Copies the image at `source` (a skopeo source such as
/// [`crate::fixtures::FixtureImage::skopeo_source`]) into `registry` as `dest_path_and_tag`
/// (e.g. `sensei/api:1.2.0`) with `skopeo copy --all --preserve-digests`.
pub fn seed(registry: &Registry, source: &str, dest_path_and_tag: &str) {
    let dest = format!("docker://{}/{dest_path_and_tag}", registry.host());
    run_ok(
        Command::new(require("skopeo"))
            .args([
                "copy",
                "--quiet",
                "--insecure-policy",
                "--all",
                "--preserve-digests",
            ])
            .args(registry.skopeo_dest_args())
            .arg(source)
            .arg(&dest),
    );
}

/// Seeds every image of `fixtures` as `PREFIX/NAME:TAG` (the layout ref under `prefix`; no
/// prefix if it is empty). Returns the references written, `HOST/PREFIX/NAME:TAG`, in order.
pub fn seed_fixtures(registry: &Registry, fixtures: &FixtureSet, prefix: &str) -> Vec<String> {
    fixtures
        .images
        .iter()
        .map(|image| {
            let path = if prefix.is_empty() {
                image.layout_ref.clone()
            } else {
                format!("{}/{}", prefix.trim_end_matches('/'), image.layout_ref)
            };
            seed(registry, &image.skopeo_source, &path);
            format!("{}/{path}", registry.host())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split() {
        assert_eq!(split_reference("a/b:1"), ("a/b", "1"));
        assert_eq!(split_reference("a/b@sha256:x"), ("a/b", "sha256:x"));
        assert_eq!(split_reference("a/b"), ("a/b", "latest"));
    }
}
