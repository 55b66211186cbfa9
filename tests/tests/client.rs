//! The one HTTP client of `sensei-bundler create`: Helm repositories get the registries' retries
//! (`Retry-After` included) and CAs, and a failing network is exit 3 with advice, never exit 2.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sensei_tests::bins::{assert_exit, bundler, run, run_ok, stderr};
use sensei_tests::rig::{
    self, DockerConfig, Failure, FaultProxy, Registry, StaticServer, TlsFiles,
};
use sensei_tests::scene::{Scene, bundle_json};

/// Packages the scene's demo chart (1.2.0) into `dir` and indexes it for `url` with the real
/// helm; returns the spec lines that name it.
fn helm_repo(scene: &Scene, dir: &Path, url: &str) -> String {
    let helm = rig::require(rig::helm());
    fs::create_dir_all(dir).unwrap();
    run_ok(
        Command::new(&helm)
            .arg("package")
            .arg(&scene.fixtures.chart_dir)
            .arg("-d")
            .arg(dir),
    );
    run_ok(
        Command::new(&helm)
            .args(["repo", "index"])
            .arg(dir)
            .args(["--url", url]),
    );
    format!("charts:\n  - repo: {url}\n    name: demo\n    version: 1.2.0\n")
}

#[test]
fn a_helm_repository_answering_503_with_retry_after_is_waited_for() {
    let scene = Scene::new();
    let repo_dir = scene.path("repo");
    fs::create_dir(&repo_dir).unwrap();
    let server = StaticServer::new(&repo_dir);
    let proxy = FaultProxy::new(&server.host());
    let spec_charts = helm_repo(&scene, &repo_dir, &format!("http://{}/", proxy.host()));
    // A repository in maintenance: the index answers 503 twice, asking for 2 s each time,
    // and the chart once more.
    proxy.fail(Failure::new(503, 2, "index.yaml").retry_after(2));
    proxy.fail(Failure::new(503, 1, ".tgz").retry_after(1));
    let spec = scene.spec("spec.yaml", &[], &spec_charts);
    let bundle = scene.path("b.tar");
    // Not --quiet: the retries are told as warnings.
    let out = run(bundler()
        .env("DOCKER_CONFIG", scene.path("no-docker-config"))
        .args(["create", "-f"])
        .arg(&spec)
        .arg("--key")
        .arg(&scene.key)
        .arg("-o")
        .arg(&bundle));
    assert_exit(&out, 0);
    scene.verifies(&bundle);
    assert_eq!(bundle_json(&bundle)["charts"].as_array().unwrap().len(), 1);

    let log = proxy.requests();
    let index: Vec<_> = log
        .iter()
        .filter(|r| r.path.contains("index.yaml"))
        .collect();
    assert_eq!(
        index.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 200],
        "{log:?}"
    );
    for pair in index.windows(2) {
        let waited = pair[1].at.duration_since(pair[0].at);
        assert!(
            waited >= Duration::from_millis(1900),
            "asked again after {waited:?}, not the 2 s the repository asked for"
        );
    }
    let tgz: Vec<_> = log.iter().filter(|r| r.path.contains(".tgz")).collect();
    assert_eq!(tgz.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 200]);
    // Each wait was told, as the registries' are.
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Helm repository {}", proxy.host()))
            && err.contains("retrying in 2.0 s as the Helm repository asked"),
        "{err}"
    );
}

/// `openssl s_server -WWW`: a TLS server of the files under a directory, one connection at a
/// time (enough for a Helm repository read by one client). Killed on drop.
struct TlsFileServer {
    child: Child,
}

impl TlsFileServer {
    fn start(root: &Path, tls: &TlsFiles, port: u16) -> Self {
        let child = Command::new(rig::require("openssl"))
            .args(["s_server", "-WWW", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&tls.server_cert)
            .arg("-key")
            .arg(&tls.server_key)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "openssl s_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }
}

impl Drop for TlsFileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_ca_file_is_trusted_for_a_tls_registry_and_a_tls_chart_repository() {
    let scene = Scene::new();
    let registry = Registry::tls_auth("builder", "s3cret-pw");
    let tls = registry.tls_files().unwrap().clone();
    let ca = tls.ca_cert.to_str().unwrap().to_owned();
    let image = scene.seed(&registry, "api:1.2.0");
    let reference = format!("{}/sensei/api:1.2.0", registry.host());
    let config = DockerConfig::write(
        &scene.path("docker"),
        &[(&registry.host(), "builder", "s3cret-pw")],
    );
    let config = config.to_str().unwrap();
    // The chart repository's certificate is the registry's, from the same CA.
    let repo_dir = scene.path("repo");
    let port = rig::free_port();
    let url = format!("https://127.0.0.1:{port}/");
    let charts = helm_repo(&scene, &repo_dir, &url);
    let _server = TlsFileServer::start(&repo_dir, &tls, port);
    let spec = scene.spec("spec.yaml", std::slice::from_ref(&reference), &charts);

    let bundle = scene.path("ok.tar");
    let out = scene.create(
        &spec,
        &bundle,
        &["--ca-file", &ca, "--registry-config", config],
    );
    assert_exit(&out, 0);
    let manifest = bundle_json(&bundle);
    assert_eq!(manifest["charts"].as_array().unwrap().len(), 1);
    assert!(
        manifest.to_string().contains(&image.digest),
        "the image is in the bundle: {manifest}"
    );
    scene.verifies(&bundle);

    // Without the CA, the first TLS server reached fails: exit 3, the flag to pass in a hint.
    let out = scene.create(
        &spec,
        &scene.path("no-ca.tar"),
        &["--registry-config", config],
    );
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains("TLS failed") && err.contains("hint:") && err.contains("--ca-file PEM"),
        "{err}"
    );
}

#[test]
fn a_stopped_registry_or_repository_exits_3_naming_it_and_what_to_do() {
    let scene = Scene::new();
    let registry = Registry::plain();
    scene.seed(&registry, "api:1.2.0");
    let host = registry.host();
    registry.stop();
    let spec = scene.spec_of(&format!("{host}/sensei/api:1.2.0"));
    let out = scene.create(&spec, &scene.path("b.tar"), &["--plain-http", &host]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains(&host)
            && err.contains("cannot connect")
            && err.contains("check the host and port, and that the server is running"),
        "{err}"
    );
    assert!(!scene.path("b.tar").exists());

    // A Helm repository that is not there: exit 3 too, naming its URL.
    let closed = format!("http://127.0.0.1:{}/", rig::free_port());
    let spec = scene.spec(
        "repo.yaml",
        &[],
        &format!("charts:\n  - repo: {closed}\n    name: demo\n    version: 1.2.0\n"),
    );
    let out = scene.create(&spec, &scene.path("c.tar"), &[]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{closed}index.yaml")) && err.contains("reachable"),
        "{err}"
    );
}
