//! Tests of Helm repository charts: index parsing and URL rules in memory, and whole fetches from
//! a real HTTP server on loopback serving what the real `helm package` and `helm repo index` wrote.

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::index::{Lookup, lookup, resolve_url, versions_of};
use super::*;

type TestResult = Result<(), Box<dyn Error>>;

fn v(text: &str) -> semver::Version {
    semver::Version::parse(text).expect("test version")
}

fn url(text: &str) -> Url {
    Url::parse(text).expect("test URL")
}

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn index_yaml() -> String {
    format!(
        "apiVersion: v1
entries:
  other:
  - name: other
    version: 9.9.9
    urls: [other-9.9.9.tgz]
    annotations: {{a: b}}
  demo:
  - name: demo
    version: 1.10.0
    urls: [https://cdn.example.com/demo-1.10.0.tgz]
    digest: sha256:{HEX}
  - name: demo
    version: 1.2.0
    urls: [charts/demo-1.2.0.tgz, https://mirror.example.com/demo-1.2.0.tgz]
    digest: {HEX}
    created: 2026-01-01T00:00:00Z
  - name: demo
    version: v1.3.0
    urls: [demo-1.3.0.tgz]
  - name: demo
    version: 1.1
    urls: [demo-1.1.tgz]
generated: 2026-01-01T00:00:00Z
"
    )
}

#[test]
fn picks_the_exact_version_and_resolves_its_url() -> TestResult {
    let repo = url("https://charts.example.com/stable");
    let index = index_yaml();
    let entry =
        lookup(index.as_bytes(), &repo, "demo", &v("1.2.0")).map_err(|e| format!("{e:?}"))?;
    assert_eq!(
        entry.url.as_str(),
        "https://charts.example.com/stable/charts/demo-1.2.0.tgz"
    );
    assert_eq!(entry.digest.map(|d| d.hex()), Some(HEX.to_owned()));

    let entry =
        lookup(index.as_bytes(), &repo, "demo", &v("1.10.0")).map_err(|e| format!("{e:?}"))?;
    assert_eq!(
        entry.url.as_str(),
        "https://cdn.example.com/demo-1.10.0.tgz"
    );
    assert!(entry.digest.is_some(), "sha256: prefix accepted");

    // Helm accepts a leading v in index versions; no digest means unchecked, not an error.
    let entry =
        lookup(index.as_bytes(), &repo, "demo", &v("1.3.0")).map_err(|e| format!("{e:?}"))?;
    assert_eq!(entry.digest, None);
    Ok(())
}

#[test]
fn a_missing_version_lists_the_available_ones_newest_first() {
    let repo = url("https://charts.example.com/");
    let err = lookup(index_yaml().as_bytes(), &repo, "demo", &v("2.0.0"));
    assert_eq!(
        err,
        Err(Lookup::NoVersion {
            available: vec![
                "1.10.0".into(),
                "1.3.0".into(),
                "1.2.0".into(),
                // A YAML number Helm would reject as a version: listed as written, last.
                "1.1".into()
            ]
        })
    );
    let err = lookup(index_yaml().as_bytes(), &repo, "nope", &v("1.0.0"));
    assert_eq!(err, Err(Lookup::NoChart { known: 2 }));
}

#[test]
fn only_the_asked_chart_is_read_and_bad_entries_are_named() {
    let repo = url("https://charts.example.com/");
    assert_eq!(
        versions_of(index_yaml().as_bytes(), "other"),
        Some(vec!["9.9.9".to_owned()])
    );
    // A malformed entry of another chart is skipped along with it.
    let index = "entries:\n  broken: {not: a list}\n  demo:\n  - {version: 1.0.0, urls: [d.tgz]}\n";
    assert!(lookup(index.as_bytes(), &repo, "demo", &v("1.0.0")).is_ok());
    // One of the asked chart is reported.
    let index = "entries:\n  demo: {not: a list}\n";
    assert!(matches!(
        lookup(index.as_bytes(), &repo, "demo", &v("1.0.0")),
        Err(Lookup::Syntax(_))
    ));
    for bad in ["", "[1, 2]", "apiVersion: v1\n", "entries: [a]\n", "{{{"] {
        assert!(
            matches!(
                lookup(bad.as_bytes(), &repo, "demo", &v("1.0.0")),
                Err(Lookup::Syntax(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        lookup(b"entries:\n", &repo, "demo", &v("1.0.0")),
        Err(Lookup::NoChart { known: 0 })
    );
    let no_urls = "entries:\n  demo:\n  - {version: 1.0.0, urls: []}\n";
    assert_eq!(
        lookup(no_urls.as_bytes(), &repo, "demo", &v("1.0.0")),
        Err(Lookup::NoUrl)
    );
    let bad_digest = "entries:\n  demo:\n  - {version: 1.0.0, urls: [d.tgz], digest: abc}\n";
    assert_eq!(
        lookup(bad_digest.as_bytes(), &repo, "demo", &v("1.0.0")),
        Err(Lookup::BadDigest {
            digest: "abc".into()
        })
    );
}

#[test]
fn urls_resolve_as_helm_resolves_them() -> TestResult {
    let cases = [
        (
            "https://h.example/charts",
            "a-1.0.0.tgz",
            "https://h.example/charts/a-1.0.0.tgz",
        ),
        (
            "https://h.example/charts/",
            "a-1.0.0.tgz",
            "https://h.example/charts/a-1.0.0.tgz",
        ),
        ("https://h.example", "a.tgz", "https://h.example/a.tgz"),
        (
            "https://h.example/x/",
            "../y/a.tgz",
            "https://h.example/y/a.tgz",
        ),
        (
            "https://h.example/x/",
            "/root/a.tgz",
            "https://h.example/root/a.tgz",
        ),
        // The repository's query (an access token) travels with relative downloads, like Helm.
        (
            "https://h.example/x?token=t",
            "a.tgz",
            "https://h.example/x/a.tgz?token=t",
        ),
        (
            "https://u:p@h.example/x",
            "a.tgz",
            "https://u:p@h.example/x/a.tgz",
        ),
        (
            "https://h.example/x",
            "http://other.example/a.tgz",
            "http://other.example/a.tgz",
        ),
    ];
    for (repo, reference, want) in cases {
        assert_eq!(
            resolve_url(&url(repo), reference)?.as_str(),
            want,
            "{repo} + {reference}"
        );
    }
    for bad in ["file:///etc/passwd", "ftp://h.example/a.tgz", "http://[::1"] {
        assert!(
            resolve_url(&url("https://h.example/"), bad).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        index::index_url(&url("https://h.example/charts"))?.as_str(),
        "https://h.example/charts/index.yaml"
    );
    assert_eq!(
        index::shown(&url("https://user:secret@h.example/x")),
        "https://user:***@h.example/x"
    );
    Ok(())
}

/// The run's one client, retrying quickly: a failure test need not wait out the backoff.
fn client() -> Result<Registry, sensei_registry::SetupError> {
    client_with(vec![])
}

fn client_with(ca_files: Vec<std::path::PathBuf>) -> Result<Registry, sensei_registry::SetupError> {
    Registry::new(sensei_registry::ClientSettings {
        ca_files,
        retry: sensei_registry::RetryPolicy {
            attempts: 3,
            base: std::time::Duration::from_millis(1),
            max: std::time::Duration::from_millis(2),
        },
        ..Default::default()
    })
}

#[test]
fn the_ca_file_must_hold_certificates() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.pem");
    let err = client_with(vec![missing]).expect_err("missing file");
    assert!(
        err.is_ca_file() && err.to_string().contains("missing.pem"),
        "{err}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n")?;
    let err = client_with(vec![empty]).expect_err("no certificate");
    assert!(
        err.is_ca_file()
            && err
                .to_string()
                .contains("empty.pem holds no PEM certificate")
            && err.to_string().contains("BEGIN CERTIFICATE"),
        "{err}"
    );
    assert!(client().is_ok());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A real HTTP/1.1 server on loopback: one thread, one connection at a time, `Connection: close`.

#[derive(Debug, Clone)]
enum Reply {
    /// 200 with a Content-Length.
    Body(Vec<u8>),
    /// 200 without a Content-Length: the body ends when the connection closes.
    Unsized(Vec<u8>),
    /// 200 whose Content-Length claims more than the limit.
    Claims(u64),
    Status(u16),
}

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(routes: HashMap<String, Reply>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // A client that hangs up early is its own business.
                    let _ = serve(stream, &routes);
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    fn url(&self, path: &str) -> Url {
        url(&format!("http://{}{path}", self.addr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, routes: &HashMap<String, Reply>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let mut out = stream;
    let head = |status: &str, length: Option<u64>| {
        let length = length.map_or(String::new(), |n| format!("Content-Length: {n}\r\n"));
        format!("HTTP/1.1 {status}\r\n{length}Connection: close\r\n\r\n")
    };
    match routes.get(&path) {
        Some(Reply::Body(body)) => {
            out.write_all(head("200 OK", Some(body.len() as u64)).as_bytes())?;
            out.write_all(body)?;
        }
        Some(Reply::Unsized(body)) => {
            out.write_all(head("200 OK", None).as_bytes())?;
            out.write_all(body)?;
        }
        Some(Reply::Claims(n)) => out.write_all(head("200 OK", Some(*n)).as_bytes())?,
        Some(Reply::Status(code)) => {
            out.write_all(head(&format!("{code} Status"), Some(0)).as_bytes())?;
        }
        None => out.write_all(head("404 Not Found", Some(0)).as_bytes())?,
    }
    out.flush()
}

/// A chart packaged and indexed by the real Helm: the `.tgz` bytes and `index.yaml`.
struct HelmRepo {
    tgz: Vec<u8>,
    index: String,
}

fn helm_repo(name: &str, version: &str) -> Result<HelmRepo, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let chart = dir.path().join(name);
    std::fs::create_dir_all(chart.join("templates"))?;
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )?;
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )?;
    let out = dir.path().join("repo");
    let helm = crate::discover::tests::helm();
    run(Command::new(&helm)
        .arg("package")
        .arg(&chart)
        .arg("-d")
        .arg(&out))?;
    run(Command::new(&helm).args(["repo", "index"]).arg(&out))?;
    Ok(HelmRepo {
        tgz: std::fs::read(out.join(format!("{name}-{version}.tgz")))?,
        index: std::fs::read_to_string(out.join("index.yaml"))?,
    })
}

fn run(cmd: &mut Command) -> TestResult {
    let output = cmd.output()?;
    if !output.status.success() {
        return Err(format!(
            "{cmd:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn routes(items: &[(&str, Reply)]) -> HashMap<String, Reply> {
    items
        .iter()
        .map(|(p, r)| ((*p).to_owned(), r.clone()))
        .collect()
}

#[tokio::test]
async fn fetches_and_checks_a_chart_that_helm_indexed() -> TestResult {
    let repo = helm_repo("demo", "1.2.0")?;
    // Helm writes bare hex digests and relative URLs: both are exercised here.
    assert!(
        repo.index.contains("digest: ") && repo.index.contains("- demo-1.2.0.tgz"),
        "{}",
        repo.index
    );
    let server = Server::start(routes(&[
        (
            "/charts/index.yaml",
            Reply::Body(repo.index.clone().into_bytes()),
        ),
        ("/charts/demo-1.2.0.tgz", Reply::Body(repo.tgz.clone())),
    ]))?;
    let http = client()?;
    let got = fetch_repo_chart(&http, &server.url("/charts"), "demo", &v("1.2.0")).await?;
    assert_eq!(
        (
            got.chart.name.as_str(),
            got.chart.version.to_string().as_str()
        ),
        ("demo", "1.2.0")
    );
    assert_eq!(got.chart.content_tgz, repo.tgz, "kept byte for byte");
    assert_eq!(got.index_digest, Some(Digest::of(&repo.tgz)));
    assert_eq!(got.url, server.url("/charts/demo-1.2.0.tgz").to_string());

    let err = fetch_repo_chart(&http, &server.url("/charts"), "demo", &v("1.3.0"))
        .await
        .expect_err("no such version");
    assert!(
        matches!(&err, RepoError::VersionNotFound { available, .. } if available == &["1.2.0"]),
        "{err}"
    );
    assert!(err.to_string().contains("(it has: 1.2.0)"), "{err}");
    let err = fetch_repo_chart(&http, &server.url("/charts"), "nope", &v("1.2.0"))
        .await
        .expect_err("no such chart");
    assert!(matches!(err, RepoError::ChartNotFound { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_corrupt_download_is_an_integrity_error() -> TestResult {
    let repo = helm_repo("demo", "1.2.0")?;
    let mut corrupt = repo.tgz.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let server = Server::start(routes(&[
        ("/index.yaml", Reply::Body(repo.index.into_bytes())),
        ("/demo-1.2.0.tgz", Reply::Body(corrupt.clone())),
    ]))?;
    let err = fetch_repo_chart(&client()?, &server.url("/"), "demo", &v("1.2.0"))
        .await
        .expect_err("corrupt");
    let RepoError::Integrity {
        url,
        expected,
        actual,
    } = &err
    else {
        panic!("expected an integrity error, got {err}");
    };
    assert_eq!(*expected, Digest::of(&repo.tgz));
    assert_eq!(*actual, Digest::of(&corrupt));
    assert!(url.ends_with("/demo-1.2.0.tgz"));
    let text = err.to_string();
    assert!(
        text.contains(&expected.to_string()) && text.contains(&actual.to_string()),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unchecked_or_mislabelled_chart_is_reported() -> TestResult {
    let repo = helm_repo("demo", "1.2.0")?;
    let index = "entries:\n  demo:\n  - {version: 1.2.0, urls: [demo-1.2.0.tgz]}\n  \
                 other:\n  - {version: 1.2.0, urls: [demo-1.2.0.tgz]}\n";
    let server = Server::start(routes(&[
        ("/index.yaml", Reply::Body(index.into())),
        ("/demo-1.2.0.tgz", Reply::Body(repo.tgz)),
    ]))?;
    let http = client()?;
    let got = fetch_repo_chart(&http, &server.url("/"), "demo", &v("1.2.0")).await?;
    assert_eq!(got.index_digest, None, "no digest in the index: unchecked");
    let err = fetch_repo_chart(&http, &server.url("/"), "other", &v("1.2.0"))
        .await
        .expect_err("wrong chart");
    assert!(
        matches!(&err, RepoError::Mismatch { found, .. } if found == "demo 1.2.0"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn http_failures_name_the_url_and_the_status() -> TestResult {
    let server = Server::start(routes(&[
        ("/private/index.yaml", Reply::Status(401)),
        ("/forbidden/index.yaml", Reply::Status(403)),
        ("/broken/index.yaml", Reply::Status(503)),
        (
            "/missing-chart/index.yaml",
            Reply::Body(b"entries:\n  demo:\n  - {version: 1.0.0, urls: [demo.tgz]}\n".to_vec()),
        ),
    ]))?;
    let http = client()?;
    let fetch =
        async |path: &str| fetch_repo_chart(&http, &server.url(path), "demo", &v("1.0.0")).await;

    let err = fetch("/private").await.expect_err("401");
    assert!(matches!(err, RepoError::Credentials { .. }), "{err}");
    assert!(
        err.to_string().contains("needs credentials")
            && err.to_string().contains("/private/index.yaml"),
        "{err}"
    );
    let err = fetch("/forbidden").await.expect_err("403");
    assert!(matches!(err, RepoError::Credentials { .. }), "{err}");
    let err = fetch("/broken").await.expect_err("503");
    assert!(
        err.to_string().contains("503") && err.to_string().contains("/broken/index.yaml"),
        "{err}"
    );
    let err = fetch("/nothing-here").await.expect_err("404");
    assert!(
        err.to_string().contains("is this a Helm repository?"),
        "{err}"
    );
    let err = fetch("/missing-chart").await.expect_err("404 on the chart");
    assert!(
        err.to_string().contains("/missing-chart/demo.tgz") && err.to_string().contains("404"),
        "{err}"
    );

    // Nothing listens on a port just released.
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let err = fetch_repo_chart(
        &http,
        &url(&format!("http://{closed}/")),
        "demo",
        &v("1.0.0"),
    )
    .await
    .expect_err("connection refused");
    assert!(
        matches!(
            err,
            RepoError::Network {
                cause: ErrorKind::Connect(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
    Ok(())
}

#[tokio::test]
async fn downloads_stop_at_their_bound() -> TestResult {
    let server = Server::start(routes(&[
        ("/sized", Reply::Body(vec![b'x'; 2048])),
        ("/unsized", Reply::Unsized(vec![b'x'; 4096])),
        ("/claims", Reply::Claims(MAX_INDEX_BYTES + 1)),
        ("/fits", Reply::Unsized(vec![b'x'; 1024])),
    ]))?;
    let http = client()?;
    for path in ["/sized", "/unsized"] {
        let err = get_bounded(&http, &server.url(path), 1024, "index.yaml")
            .await
            .expect_err(path);
        assert!(
            matches!(err, RepoError::TooLarge { limit: 1024, .. }),
            "{path}: {err}"
        );
    }
    let err = get_bounded(&http, &server.url("/claims"), MAX_INDEX_BYTES, "index.yaml")
        .await
        .expect_err("declared too large");
    assert!(matches!(err, RepoError::TooLarge { .. }), "{err}");
    let Download { bytes, digest } =
        get_bounded(&http, &server.url("/fits"), 1024, "index.yaml").await?;
    assert_eq!((bytes.len(), digest), (1024, Digest::of(&[b'x'; 1024])));
    Ok(())
}
