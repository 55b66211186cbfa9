//! Bearer-token auth end to end: a real `docker-registry` with `auth.token`, trusting only the
//! tokens of the rig's loopback token service (RS256 JWTs, as Docker Hub and most private
//! registries hand out). `sensei-bundler create` must do the token dance with the credentials
//! of a Docker config.json, `sensei-loader push` with `--username --password-stdin`, and both
//! fail with exit 3 naming the registry without them or with a wrong password.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use sensei_tests::bins::{assert_exit, loader, run, stderr};
use sensei_tests::rig::{DockerConfig, Registry, TokenServer, require};
use sensei_tests::scene::{Scene, bundle_json};

const USER: &str = "builder";
const PASSWORD: &str = "t0ken-pw";

fn token_server(registry: &Registry) -> &TokenServer {
    registry.token_server().expect("a token-auth registry")
}

/// A token-auth registry holding the `api` fixture as `sensei/api:1.2.0` (seeded by skopeo,
/// which does the token dance itself); returns it, the reference and the fixture's digest.
fn seeded(scene: &Scene) -> (Registry, String, String) {
    let registry = Registry::token_auth(USER, PASSWORD);
    let api = scene.seed(&registry, "api:1.2.0");
    let reference = format!("{}/sensei/api:1.2.0", registry.host());
    (registry, reference, api.digest.clone())
}

/// `create` with the credentials of the Docker config `config`, over plain HTTP to `host`.
fn create_with_config(
    scene: &Scene,
    spec: &Path,
    bundle: &Path,
    config: &Path,
    host: &str,
) -> Output {
    let config = config.to_str().expect("utf-8 path");
    scene.create(
        spec,
        bundle,
        &["--registry-config", config, "--plain-http", host],
    )
}

/// `curl -i` output: (status, head and body as text).
fn curl(args: &[&str]) -> (u16, String) {
    let out = run(Command::new(require("curl"))
        .args(["-sS", "-i", "--max-time", "10"])
        .args(args));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn the_rig_registry_accepts_only_tokens_that_grant_the_scope() {
    let scene = Scene::new();
    let (registry, _, digest) = seeded(&scene);
    let server = token_server(&registry);
    assert!(registry.ca_file().is_none());
    assert!(
        server.count() > 0,
        "skopeo seeded without asking for a token"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.user.as_deref() == Some(USER)
                && r.status == 200
                && r.granted
                    .iter()
                    .any(|g| g.starts_with("repository:sensei/api:") && g.contains("push"))),
        "{:?}",
        server.requests()
    );

    // The rig's own helpers do the token dance.
    assert_eq!(registry.tags("sensei/api"), ["1.2.0"]);
    assert_eq!(
        registry.manifest_digest("sensei/api:1.2.0").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(registry.catalog(), ["sensei/api"]);

    // No token: a Bearer challenge naming the realm, the service and the scope.
    let tags = format!("{}/v2/sensei/api/tags/list", registry.url());
    let (status, text) = curl(&[&tags]);
    assert_eq!(status, 401, "{text}");
    let challenge = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .unwrap_or_else(|| panic!("no challenge: {text}"));
    assert!(
        challenge.contains(&server.realm()) && challenge.contains("repository:sensei/api:pull"),
        "{challenge}"
    );
    // Basic credentials are not a token.
    let (status, _) = curl(&["-u", &format!("{USER}:{PASSWORD}"), &tags]);
    assert_eq!(status, 401);

    // An anonymous token grants nothing: the registry refuses it for lack of scope.
    // (status, the answer's JSON or Null) of a pull token request with `creds` (`USER:PASSWORD`).
    let ask_token = |creds: Option<&str>| {
        let realm = server.realm();
        let mut args = vec!["-G"];
        if let Some(c) = creds {
            args.extend(["-u", c]);
        }
        args.extend([
            "--data-urlencode",
            "service=sensei-test-registry",
            "--data-urlencode",
            "scope=repository:sensei/api:pull",
            &realm,
        ]);
        let (status, text) = curl(&args);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let answer = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        (status, answer, text)
    };
    let (status, answer, text) = ask_token(None);
    assert_eq!(status, 200, "{text}");
    assert_eq!(answer["expires_in"], 300, "{text}");
    assert_eq!(answer["token"], answer["access_token"]);
    let anonymous = answer["token"].as_str().expect("token");
    let (status, text) = curl(&["-H", &format!("Authorization: Bearer {anonymous}"), &tags]);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("insufficient_scope"), "{text}");

    // Wrong credentials: the token service itself says no.
    let (status, _, text) = ask_token(Some(&format!("{USER}:wrong")));
    assert_eq!(status, 401, "{text}");

    // A token from the right credentials opens the repository.
    let (_, answer, text) = ask_token(Some(&format!("{USER}:{PASSWORD}")));
    let token = answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {text}"));
    let (status, text) = curl(&["-H", &format!("Authorization: Bearer {token}"), &tags]);
    assert_eq!(status, 200, "{text}");

    // The registry checks the signature: the same token with one claim changed is refused.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("claims b64"))
            .expect("claims JSON");
    claims["sub"] = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let (status, text) = curl(&["-H", &format!("Authorization: Bearer {forged}"), &tags]);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("invalid_token"), "{text}");
}

#[test]
fn create_pulls_through_bearer_token_auth_with_config_json_credentials() {
    let scene = Scene::new();
    let (registry, reference, digest) = seeded(&scene);
    let spec = scene.spec_of(&reference);
    let config = DockerConfig::write(&scene.path("docker"), &[(&registry.host(), USER, PASSWORD)]);
    let before = registry.token_requests();

    let bundle = scene.path("ok.tar");
    let out = create_with_config(&scene, &spec, &bundle, &config, &registry.host());
    assert_exit(&out, 0);
    scene.verifies(&bundle);
    let manifest = bundle_json(&bundle);
    let entry = &manifest["images"][0];
    assert_eq!(entry["reference"], reference.as_str());
    assert_eq!(entry["digest"], digest.as_str());

    let asked = &token_server(&registry).requests()[before..];
    assert!(!asked.is_empty(), "create never asked the token service");
    assert!(
        asked.iter().any(|r| r.status == 200
            && r.user.as_deref() == Some(USER)
            && r.service.as_deref() == Some("sensei-test-registry")
            && r.granted.iter().any(|g| g == "repository:sensei/api:pull")),
        "no pull token for {USER}: {asked:?}"
    );
}

#[test]
fn create_without_or_with_wrong_credentials_exits_3_naming_the_registry() {
    let scene = Scene::new();
    let (registry, reference, _) = seeded(&scene);
    let spec = scene.spec_of(&reference);
    let host = registry.host();

    // Anonymous: the token service hands out a token granting nothing; the registry says 401.
    let before = registry.token_requests();
    let bundle = scene.path("anonymous.tar");
    let out = scene.create(&spec, &bundle, &["--plain-http", &host]);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains(&host), "{err}");
    assert!(
        err.contains("401") || err.to_lowercase().contains("credentials"),
        "{err}"
    );
    assert!(!bundle.exists());
    assert!(
        registry.token_requests() > before,
        "anonymous create never asked the token service"
    );

    // Wrong password: the token service answers 401 itself.
    let config = DockerConfig::write(&scene.path("docker"), &[(&host, USER, "wrong-pw")]);
    let before = registry.token_requests();
    let bundle = scene.path("wrong.tar");
    let out = create_with_config(&scene, &spec, &bundle, &config, &host);
    assert_exit(&out, 3);
    let err = stderr(&out);
    assert!(err.contains(&host), "{err}");
    assert!(!bundle.exists());
    let asked = &token_server(&registry).requests()[before..];
    assert!(
        asked
            .iter()
            .any(|r| r.status == 401 && r.user.as_deref() == Some(USER)),
        "the wrong password never reached the token service: {asked:?}"
    );
}

/// `sensei-loader push BUNDLE --registry HOST --plain-http`, with `--username USER
/// --password-stdin` fed `password` when one is given.
fn push(scene: &Scene, bundle: &Path, registry: &Registry, password: Option<&str>) -> Output {
    let mut cmd = loader();
    cmd.env("DOCKER_CONFIG", scene.path("no-docker-config"))
        .arg("push")
        .arg(bundle)
        .arg("--key")
        .arg(&scene.public)
        .args(["--registry", &registry.host(), "--plain-http", "--quiet"]);
    if password.is_some() {
        cmd.args(["--username", USER, "--password-stdin"]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sensei-loader push");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(p) = password {
        writeln!(stdin, "{p}").expect("write the password");
    }
    drop(stdin);
    child.wait_with_output().expect("sensei-loader push")
}

#[test]
fn loader_pushes_into_a_token_registry_with_username_and_password_stdin() {
    let scene = Scene::new();
    let registry = Registry::token_auth(USER, PASSWORD);
    let bundle = scene.path("local.tar");
    assert_exit(&scene.create(&scene.fixtures.spec_path, &bundle, &[]), 0);
    let manifest = bundle_json(&bundle);

    // Refused credentials push nothing.
    for password in [None, Some("wrong-pw")] {
        let out = push(&scene, &bundle, &registry, password);
        assert_exit(&out, 3);
        let err = stderr(&out);
        assert!(err.contains(&registry.host()), "{password:?}: {err}");
    }
    assert!(registry.catalog().is_empty(), "{:?}", registry.catalog());

    let before = registry.token_requests();
    assert_exit(&push(&scene, &bundle, &registry, Some(PASSWORD)), 0);
    let asked = &token_server(&registry).requests()[before..];
    assert!(
        asked.iter().any(|r| r.status == 200
            && r.user.as_deref() == Some(USER)
            && r.granted.iter().any(|g| g.contains("push"))),
        "no push token for {USER}: {asked:?}"
    );

    // Every image and chart is there under its tag, with the bundle's digest.
    let images = manifest["images"].as_array().expect("images");
    assert!(!images.is_empty());
    for entry in images {
        let reference = entry["reference"].as_str().expect("reference");
        let (_, path_and_tag) = reference.split_once('/').expect("host/path:tag");
        let (path, tag) = path_and_tag.rsplit_once(':').expect("a tag");
        assert!(
            registry.tags(path).iter().any(|t| t == tag),
            "{reference}: tags {:?}",
            registry.tags(path)
        );
        assert_eq!(
            registry.manifest_digest(path_and_tag).as_deref(),
            entry["digest"].as_str(),
            "{reference}"
        );
    }
    for chart in manifest["charts"].as_array().expect("charts") {
        let name = chart["name"].as_str().expect("chart name");
        let version = chart["version"].as_str().expect("chart version");
        assert_eq!(registry.tags(&format!("charts/{name}")), [version]);
    }
}
