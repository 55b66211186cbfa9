//! Self-tests of the test rig (`sensei_tests::rig`): each fails if the feature the end-to-end
//! tests rely on breaks. Real components only: docker-registry, skopeo, curl, openssl, helm.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::Path;
use std::process::{Command, Output};

use sensei_tests::bins::{run, run_ok};
use sensei_tests::fixtures::{FixtureOptions, FixtureSet, write_fixtures};
use sensei_tests::rig::{
    self, DockerConfig, Failure, FaultProxy, Registry, StaticServer, require, seed,
};
use sha2::{Digest as _, Sha256};

fn fixtures(dir: &Path) -> FixtureSet {
    write_fixtures(&dir.join("src"), &FixtureOptions::default()).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn skopeo() -> Command {
    let mut cmd = Command::new(require("skopeo"));
    cmd.arg("--insecure-policy");
    cmd
}

/// `curl URL` with extra args: (HTTP status, body).
fn curl(mut cmd: Command, args: &[&str], url: &str) -> (u16, Vec<u8>) {
    let out = run(cmd
        .args(args)
        .args(["-o", "-", "-w", "\n%{http_code}"])
        .arg(url));
    let text = out.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&text[split + 1..]).parse().unwrap();
    (status, text[..split].to_vec())
}

fn plain_curl() -> Command {
    let mut cmd = Command::new(require("curl"));
    cmd.args(["-sS", "--max-time", "10"]);
    cmd
}

#[test]
fn plain_registry_serves_seeded_images_and_keeps_them_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let set = fixtures(dir.path());
    let registry = Registry::plain();
    assert!(registry.ca_file().is_none() && registry.credentials().is_none());

    // An OCI manifest, an OCI index and a Docker manifest list: manifest_digest's Accept
    // headers must cover all of them, or the registry would answer 404 or convert.
    let names = ["api:1.2.0", "multi:1.2.0", "legacy-list:1.2.0"];
    for name in names {
        seed(
            &registry,
            &set.image(name).unwrap().skopeo_source,
            &format!("sensei/{name}"),
        );
    }
    let api = set.image("api:1.2.0").unwrap();
    let raw = run_ok(
        skopeo()
            .args(["inspect", "--raw"])
            .args(registry.skopeo_args())
            .arg(format!("docker://{}/sensei/api:1.2.0", registry.host())),
    );
    assert_eq!(sha256(raw.as_bytes()), api.digest);

    let check = |registry: &Registry| {
        for name in names {
            let image = set.image(name).unwrap();
            assert_eq!(
                registry
                    .manifest_digest(&format!("sensei/{name}"))
                    .as_deref(),
                Some(image.digest.as_str()),
                "{name}"
            );
        }
        assert_eq!(
            registry.catalog(),
            ["sensei/api", "sensei/legacy-list", "sensei/multi"]
        );
        assert_eq!(registry.tags("sensei/api"), ["1.2.0"]);
        assert!(registry.tags("sensei/nope").is_empty());
        assert_eq!(registry.manifest_digest("sensei/api:9.9.9"), None);
    };
    check(&registry);

    let host = registry.host();
    registry.stop();
    assert!(!registry.is_running());
    let (status, _) = curl(plain_curl(), &[], &format!("http://{host}/v2/"));
    assert_eq!(
        status, 0,
        "nothing should answer on a stopped registry's port"
    );
    registry.start();
    assert_eq!(registry.host(), host);
    check(&registry);
}

#[test]
fn tls_auth_registry_requires_the_ca_and_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let set = fixtures(dir.path());
    let registry = Registry::tls_auth("alice", "s3cret pass");
    assert_eq!(registry.credentials(), Some(("alice", "s3cret pass")));
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let ca = registry.ca_file().unwrap();
    assert!(registry.cert_dir().unwrap().join("ca.crt").is_file());

    let v2 = format!("{}/v2/", registry.url());
    let (status, _) = curl(registry.curl_anonymous(), &[], &v2);
    assert_eq!(status, 401);
    let (status, _) = curl(registry.curl(), &[], &v2);
    assert_eq!(status, 200);
    // The certificate names localhost too, and is trusted only through the CA.
    let (status, _) = curl(
        registry.curl(),
        &[],
        &format!("https://localhost:{}/v2/", registry.port()),
    );
    assert_eq!(status, 200);
    let mut untrusted = plain_curl();
    untrusted.args(["-u", "alice:s3cret pass"]);
    let (status, _) = curl(untrusted, &[], &v2);
    assert_eq!(
        status, 0,
        "the registry's certificate must not verify without {ca:?}"
    );
    let mut wrong = registry.curl_anonymous();
    wrong.args(["-u", "alice:wrong"]);
    assert_eq!(curl(wrong, &[], &v2).0, 401);

    let api = set.image("api:1.2.0").unwrap();
    seed(&registry, &api.skopeo_source, "sensei/api:1.2.0");
    assert_eq!(
        registry.manifest_digest("sensei/api:1.2.0").as_deref(),
        Some(api.digest.as_str())
    );
    assert_eq!(registry.catalog(), ["sensei/api"]);

    // skopeo without credentials is refused.
    let out = run(skopeo()
        .args(["inspect", "--raw", "--no-creds"])
        .arg(format!(
            "--cert-dir={}",
            registry.cert_dir().unwrap().display()
        ))
        .arg(format!("docker://{}/sensei/api:1.2.0", registry.host())));
    assert!(!out.status.success(), "anonymous skopeo inspect succeeded");
}

/// A registry with `api:1.2.0` seeded, and a proxy in front of it.
fn proxied(set: &FixtureSet) -> (Registry, FaultProxy) {
    let registry = Registry::plain();
    seed(
        &registry,
        &set.image("api:1.2.0").unwrap().skopeo_source,
        "sensei/api:1.2.0",
    );
    let proxy = FaultProxy::in_front_of(&registry);
    assert_eq!(proxy.upstream(), registry.host());
    (registry, proxy)
}

fn blob_url(proxy: &FaultProxy, digest: &str) -> String {
    format!("http://{}/v2/sensei/api/blobs/{digest}", proxy.host())
}

#[test]
fn proxy_forwards_pulls_and_pushes_and_logs_them() {
    let dir = tempfile::tempdir().unwrap();
    let set = fixtures(dir.path());
    let (registry, proxy) = proxied(&set);
    let api = set.image("api:1.2.0").unwrap();

    let out_dir = dir.path().join("pulled");
    run_ok(
        skopeo()
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/sensei/api:1.2.0", proxy.host()))
            .arg(format!("oci:{}:api", out_dir.display())),
    );
    // Layers and config come as blobs; the manifest is the last of `blobs`.
    for blob in &api.blobs[..api.blobs.len() - 1] {
        assert_eq!(
            proxy.count("GET", &format!("/blobs/{blob}")),
            1,
            "{blob}: {:#?}",
            proxy.requests()
        );
    }
    assert!(proxy.count("get", "/manifests/1.2.0") >= 1);
    assert!(
        proxy
            .requests()
            .iter()
            .all(|l| l.status < 400 || l.status == 401)
    );

    // A push through the proxy: uploads follow `Location`, which must lead back to the proxy.
    let worker = set.image("worker:1.2.0").unwrap();
    run_ok(
        skopeo()
            .args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--preserve-digests",
            ])
            .arg(&worker.skopeo_source)
            .arg(format!("docker://{}/sensei/worker:1.2.0", proxy.host())),
    );
    assert_eq!(
        registry.manifest_digest("sensei/worker:1.2.0").as_deref(),
        Some(worker.digest.as_str())
    );
    assert!(proxy.count("POST", "/blobs/uploads/") >= 1);
    assert!(proxy.count("PUT", "/blobs/uploads/") >= 1);
    assert_eq!(proxy.count("PUT", "/manifests/1.2.0"), 1);
}

#[test]
fn proxy_corrupts_blobs_keeping_their_length() {
    let dir = tempfile::tempdir().unwrap();
    let set = fixtures(dir.path());
    let (_registry, proxy) = proxied(&set);
    let layer = &set.image("api:1.2.0").unwrap().blobs[1];
    let original = std::fs::read(
        set.layout_dir
            .join("blobs/sha256")
            .join(layer.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();

    let (status, clean) = curl(plain_curl(), &[], &blob_url(&proxy, layer));
    assert_eq!((status, sha256(&clean)), (200, layer.clone()));

    proxy.corrupt_blob(layer);
    for _ in 0..2 {
        let (status, bad) = curl(plain_curl(), &[], &blob_url(&proxy, layer));
        assert_eq!(status, 200);
        assert_eq!(bad.len(), original.len());
        assert_ne!(sha256(&bad), *layer);
    }
    // Other blobs pass untouched.
    let config = &set.image("api:1.2.0").unwrap().blobs[2];
    let (_, other) = curl(plain_curl(), &[], &blob_url(&proxy, config));
    assert_eq!(sha256(&other), *config);

    proxy.clear_faults();
    let (_, healed) = curl(plain_curl(), &[], &blob_url(&proxy, layer));
    assert_eq!(sha256(&healed), *layer);
}

#[test]
fn proxy_fails_the_next_n_matching_requests() {
    let dir = tempfile::tempdir().unwrap();
    let set = fixtures(dir.path());
    let (_registry, proxy) = proxied(&set);
    let v2 = format!("http://{}/v2/", proxy.host());

    proxy.fail_with(503, 2, "/v2/");
    let statuses: Vec<u16> = (0..3).map(|_| curl(plain_curl(), &[], &v2).0).collect();
    assert_eq!(statuses, [503, 503, 200]);
    let logged: Vec<u16> = proxy.requests().iter().map(|l| l.status).collect();
    assert_eq!(logged, [503, 503, 200]);

    // A method filter, Retry-After, and a body that must be drained on a kept-alive connection.
    proxy.fail(
        Failure::new(429, 1, "/blobs/uploads/")
            .method("POST")
            .retry_after(0),
    );
    let uploads = format!("http://{}/v2/sensei/api/blobs/uploads/", proxy.host());
    let out = run(plain_curl()
        .args(["-i", "-X", "POST", "--data-binary", "ignored body"])
        .arg(&uploads)
        .arg("--next")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(&uploads));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("Retry-After: 0"), "{text}");
    assert!(
        text.ends_with("202"),
        "second POST should reach the registry: {text}"
    );
    assert_eq!(proxy.count("POST", "/blobs/uploads/"), 2);
}

#[test]
fn proxy_cuts_a_response_and_the_client_resumes_with_range() {
    let dir = tempfile::tempdir().unwrap();
    let set = fixtures(dir.path());
    let (_registry, proxy) = proxied(&set);
    let layer = &set.image("api:1.2.0").unwrap().blobs[1];
    let url = blob_url(&proxy, layer);

    proxy.drop_connection_after(100, layer);
    let out: Output = run(plain_curl().arg(&url));
    assert!(!out.status.success(), "the cut response should fail curl");
    assert_eq!(out.stdout.len(), 100);

    let (status, rest) = curl(plain_curl(), &["-H", "Range: bytes=100-"], &url);
    assert_eq!(status, 206);
    let whole = [out.stdout, rest].concat();
    assert_eq!(sha256(&whole), *layer);
    let ranges: Vec<Option<String>> = proxy.requests().into_iter().map(|l| l.range).collect();
    assert_eq!(ranges, [None, Some("bytes=100-".to_string())]);
}

#[test]
fn static_server_serves_files_under_its_prefix_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.yaml"), "apiVersion: v1\n").unwrap();
    let server = StaticServer::with_prefix(dir.path(), "charts");
    assert!(server.url().ends_with("/charts"));

    let (status, body) = curl(plain_curl(), &[], &format!("{}/index.yaml", server.url()));
    assert_eq!((status, body.as_slice()), (200, &b"apiVersion: v1\n"[..]));
    let (status, _) = curl(plain_curl(), &[], &format!("{}/missing.tgz", server.url()));
    assert_eq!(status, 404);
    let (status, _) = curl(
        plain_curl(),
        &[],
        &format!("http://{}/index.yaml", server.host()),
    );
    assert_eq!(status, 404, "outside the prefix");
    let (status, _) = curl(
        plain_curl(),
        &["--path-as-is"],
        &format!("{}/../index.yaml", server.url()),
    );
    assert_eq!(status, 404, "no escaping the root");

    assert_eq!(server.count("GET", "/charts/index.yaml"), 1);
    let first = &server.requests()[0];
    assert_eq!((first.method.as_str(), first.status), ("GET", 200));
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn docker_configs_hold_inline_auths_and_working_credential_helpers() {
    let dir = tempfile::tempdir().unwrap();
    let path = DockerConfig::write(
        &dir.path().join("inline"),
        &[("127.0.0.1:5000", "bob", "pw")],
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["auths"]["127.0.0.1:5000"]["auth"], "Ym9iOnB3"); // base64("bob:pw")

    let helper = DockerConfig::write_with_helper(
        &dir.path().join("helper"),
        "sensei-test",
        &[("127.0.0.1:5000", "bob", "it's secret")],
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&helper.config).unwrap()).unwrap();
    assert_eq!(json["credHelpers"]["127.0.0.1:5000"], "sensei-test");

    let ask = |server: &str| {
        let mut child = Command::new("docker-credential-sensei-test")
            .arg("get")
            .env("PATH", helper.path_env())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(server.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = ask("127.0.0.1:5000\n");
    assert!(out.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["Username"], "bob");
    assert_eq!(answer["Secret"], "it's secret");
    assert_eq!(answer["ServerURL"], "127.0.0.1:5000");
    assert!(
        ask("https://127.0.0.1:5000").status.success(),
        "no newline, with scheme"
    );
    let out = ask("other.example:443\n");
    assert!(!out.status.success());
    assert_eq!(
        helper.calls(),
        [
            "get 127.0.0.1:5000",
            "get https://127.0.0.1:5000",
            "get other.example:443"
        ]
    );
}

#[test]
fn tools_are_the_installed_helms() {
    let v3 = run_ok(Command::new(rig::helm()).args(["version", "--short"]));
    assert!(v3.starts_with("v3."), "{v3}");
    let v4 = run_ok(Command::new(rig::helm4()).args(["version", "--short"]));
    assert!(v4.starts_with("v4."), "{v4}");
    let missing = std::panic::catch_unwind(|| require("sensei-no-such-tool"));
    let message = *missing.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("run scripts/setup.sh"), "{message}");
}

/// The bundler and loader speak TLS through rustls, whose webpki checks are stricter than
/// OpenSSL's: the rig's CA and server certificate must satisfy them too.
#[tokio::test]
async fn tls_registry_certificate_satisfies_rustls() {
    let registry = Registry::tls_auth("alice", "pw");
    let pem = std::fs::read(registry.ca_file().unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/v2/", registry.port());
        let anonymous = client.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{url}");
        let authed = client
            .get(&url)
            .basic_auth("alice", Some("pw"))
            .send()
            .await;
        assert_eq!(authed.unwrap().status(), 200, "{url}");
    }
    let untrusted = reqwest::Client::new().get(format!("{}/v2/", registry.url()));
    assert!(untrusted.send().await.is_err(), "trusted without the CA");
}
