//! `sensei-loader push` against the real rig: Debian's docker-registry (plain, or TLS with
//! htpasswd), a fault-injecting proxy in front of it, skopeo to read back what landed, and the
//! real helm to pull and render the pushed chart.
//!
//! What is checked: digests at the target equal `bundle.json`'s for `.tar`, `.tar.gz` and an
//! extracted directory; each unique blob is uploaded once and a second push writes nothing; TLS
//! and credentials work and fail clearly; a hostile bundle commits nothing, even when its big
//! blob was already streaming into an upload session (an untrusted one sends not one
//! request); a session the registry lost at commit means an upload after all; a push rides
//! through 503s and a registry restart, and an interrupted push completes on the next run
//! sending only what is missing; the pushed chart installs images from the registry; dry run;
//! `load-images.sh` from an extracted bundle.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sensei_tests::bins::{binary, bundler, loader, run, run_ok};
use sensei_tests::craft::{self, Entry};
use sensei_tests::fixtures::FixtureOptions;
use sensei_tests::rig::{self, DockerConfig, Failure, FaultProxy, Registry, require};
use sensei_tests::scene::Built;
use sha2::{Digest as _, Sha256};

/// Big blobs cut mid-upload again and again, and 300 images through random faults.
mod chaos;
/// Hostile bundles, staged uploads that must not be committed, and faults to ride through.
mod faults;
/// SIGTERM, SIGINT and SIGHUP stop a push mid-blob: a message, the exit code, nothing
/// incomplete tagged, and the next push completes.
mod stop;

/// What `bundle.json` says each image and chart is.
#[derive(Debug)]
struct Expected {
    /// (reference in the bundle, digest).
    images: Vec<(String, String)>,
    /// (name, version, digest).
    charts: Vec<(String, String, String)>,
}

impl Expected {
    fn of(b: &Built) -> Self {
        let tar = std::fs::read(&b.tar).unwrap();
        let entries = craft::parse(&tar).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&entries[0].body).unwrap();
        let s = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        Self {
            images: m["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (s(&i["reference"]), s(&i["digest"])))
                .collect(),
            charts: m["charts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (s(&c["name"]), s(&c["version"]), s(&c["digest"])))
                .collect(),
        }
    }

    /// `(path:tag in the target registry, digest)` for every image and chart, under `prefix`
    /// (`""` or `"mirror/"`).
    fn targets(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .images
            .iter()
            .map(|(reference, digest)| {
                let path = reference.split_once('/').unwrap().1; // drop the source host
                (format!("{prefix}{path}"), digest.clone())
            })
            .collect();
        out.extend(
            self.charts
                .iter()
                .map(|(n, v, d)| (format!("{prefix}charts/{n}:{v}"), d.clone())),
        );
        out
    }

    fn repositories(&self, prefix: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .targets(prefix)
            .into_iter()
            .map(|(t, _)| t.rsplit_once(':').unwrap().0.to_owned())
            .collect();
        set.into_iter().collect()
    }
}

/// `sensei-loader push BUNDLE --key PUB --registry HOST --plain-http --json EXTRA...`.
fn push_cmd(b: &Built, bundle: &Path, registry: &str, extra: &[&str]) -> Command {
    let mut cmd = loader();
    cmd.arg("push")
        .arg(bundle)
        .arg("--key")
        .arg(&b.public)
        .args(["--registry", registry, "--plain-http", "--json"])
        .args(extra);
    cmd
}

fn push(b: &Built, bundle: &Path, registry: &str, extra: &[&str]) -> Output {
    run(&mut push_cmd(b, bundle, registry, extra))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit 0 and returns the JSON report.
fn pushed(out: &Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "push failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no single JSON document ({e})"));
    assert_eq!(doc["verdict"], "pushed", "{doc}");
    doc["report"].clone()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// skopeo reads every image and the chart at the target with the bundle's digests, and the
/// registry holds exactly the repositories the mapping names.
fn assert_landed(registry: &Registry, host: &str, expected: &Expected, prefix: &str) {
    for (target, digest) in expected.targets(prefix) {
        let out = run(Command::new(require("skopeo"))
            .args(["--insecure-policy", "inspect", "--raw"])
            .args(registry.skopeo_args())
            .arg(format!("docker://{host}/{target}")));
        assert!(
            out.status.success(),
            "skopeo inspect {target}: {}",
            stderr(&out)
        );
        assert_eq!(sha256(&out.stdout), digest, "{target}");
    }
    let want = expected.repositories(prefix);
    let have: Vec<String> = registry
        .catalog()
        .into_iter()
        .filter(|r| r.starts_with(prefix))
        .collect();
    assert_eq!(have, want);
}

/// The digests of every layer and config that a manifest in the bundle names (what push must
/// upload as blobs; manifests and indexes go as manifests), read from the extracted archive.
fn layers_and_configs(b: &Built) -> std::collections::BTreeSet<String> {
    let dir = extract(b, &b.tar, "counted");
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if let Some(layers) = doc["layers"].as_array() {
            found.extend(
                layers
                    .iter()
                    .map(|l| l["digest"].as_str().unwrap().to_owned()),
            );
            found.insert(doc["config"]["digest"].as_str().unwrap().to_owned());
        }
    }
    found
}

fn unique_blobs(report: &serde_json::Value) -> u64 {
    report["blobs"].as_u64().unwrap()
}

fn counts(report: &serde_json::Value, key: &str) -> u64 {
    report["counts"][key].as_u64().unwrap()
}

/// Pushes `bundle` through a proxy into an empty registry, checks what landed, then pushes
/// again and checks that nothing was written the second time.
fn push_into_empty_registry_then_again(b: &Built, bundle: &Path) {
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let expected = Expected::of(b);

    let report = pushed(&push(b, bundle, &proxy.host(), &[]));
    assert_landed(&registry, &registry.host(), &expected, "");
    // Each unique layer and config the bundle's manifests name went over the wire once (one
    // PUT each, as the proxy saw them); the rest were mounted. Counted from the bundle's own
    // files, not from our report.
    let listed = layers_and_configs(b).len();
    let uploads = proxy.count("PUT", "/blobs/uploads/");
    assert_eq!(uploads, listed, "{report}");
    assert_eq!(unique_blobs(&report), listed as u64);
    assert_eq!(counts(&report, "blobsUploaded"), listed as u64);
    assert!(counts(&report, "blobsMounted") > 0, "{report}");

    proxy.clear_log();
    let again = pushed(&push(b, bundle, &proxy.host(), &[]));
    assert_eq!(proxy.count("PUT", ""), 0, "{:#?}", proxy.requests());
    assert_eq!(proxy.count("POST", ""), 0, "{:#?}", proxy.requests());
    assert_eq!(proxy.count("PATCH", ""), 0);
    assert_eq!(proxy.count("DELETE", ""), 0);
    assert_eq!(counts(&again, "blobsUploaded"), 0);
    assert_eq!(counts(&again, "bytesSent"), 0);
    assert_eq!(counts(&again, "tagsPushed"), 0);
    // A .tar or a directory is seen to be up to date from its signed bundle.json and the tags
    // alone; a .tar.gz is read through (its manifests come last in the stream).
    let gzip = bundle.extension().is_some_and(|e| e == "gz");
    assert_eq!(again["upToDate"], !gzip, "{again}");
    assert_landed(&registry, &registry.host(), &expected, "");
}

#[test]
fn an_up_to_date_registry_needs_only_the_signed_listing_and_reads_no_layer() {
    let b = Built::new();
    let registry = Registry::plain();
    pushed(&push(&b, &b.tar, &registry.host(), &[]));
    // Corrupt a layer after the first push: the registry already holds every signed digest,
    // so the push has nothing to send and reads nothing it would have to trust...
    let copy = b.path().join("later.tar");
    std::fs::copy(&b.tar, &copy).unwrap();
    let mut bytes = std::fs::read(&copy).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&copy, &bytes).unwrap();
    let again = pushed(&push(&b, &copy, &registry.host(), &[]));
    assert_eq!(again["upToDate"], true, "{again}");
    assert_eq!(counts(&again, "bytesSent"), 0);
    // ...while `verify`, the command that checks the file itself, rejects it, and so does a
    // push asked to check everything.
    assert_eq!(b.verify(&copy, &[]).status.code(), Some(1));
    let full = run(sensei_tests::bins::loader()
        .arg("push")
        .arg(&copy)
        .arg("--key")
        .arg(&b.public)
        .args([
            "--registry",
            &registry.host(),
            "--plain-http",
            "--full-check",
        ]));
    assert_eq!(full.status.code(), Some(1), "{}", stderr(&full));
    let full = pushed(&push(&b, &b.tar, &registry.host(), &["--full-check"]));
    assert_eq!(full["upToDate"], false, "{full}");
    assert_eq!(counts(&full, "bytesSent"), 0);
    // A bad signature is still refused before anything else.
    let other = b.path().join("other");
    run_ok(
        sensei_tests::bins::bundler()
            .arg("keygen")
            .arg("--out")
            .arg(&other),
    );
    let out = run(sensei_tests::bins::loader()
        .arg("push")
        .arg(&b.tar)
        .arg("--key")
        .arg(other.with_extension("pub"))
        .args(["--registry", &registry.host(), "--plain-http"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn tar_lands_with_its_digests_and_a_second_push_writes_nothing() {
    let b = Built::new();
    push_into_empty_registry_then_again(&b, &b.tar);
}

#[test]
fn tar_gz_lands_with_its_digests_and_a_second_push_writes_nothing() {
    let b = Built::new();
    push_into_empty_registry_then_again(&b, &b.tgz);
}

/// `tar -xf` of the bundle, as the seed's manual path does.
fn extract(b: &Built, archive: &Path, name: &str) -> PathBuf {
    let dir = b.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(
        Command::new(require("tar"))
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&dir),
    );
    dir
}

#[test]
fn extracted_directory_lands_with_its_digests_and_a_second_push_writes_nothing() {
    let b = Built::new();
    let dir = extract(&b, &b.tgz, "extracted");
    push_into_empty_registry_then_again(&b, &dir);
}

#[test]
fn a_prefix_nests_every_repository_and_the_report_says_where_everything_went() {
    let b = Built::new();
    let registry = Registry::plain();
    let expected = Expected::of(&b);
    let target = format!("{}/mirror/sensei", registry.host());
    let report = pushed(&push(&b, &b.tar, &target, &["--concurrency", "2"]));
    assert_landed(&registry, &registry.host(), &expected, "mirror/sensei/");
    assert_eq!(report["registry"], target);
    for image in report["images"].as_array().unwrap() {
        let t = image["target"].as_str().unwrap();
        assert!(t.starts_with(&format!("{target}/sensei/")), "{t}");
    }
    assert_eq!(
        report["chartUrls"][0],
        format!("oci://{target}/charts/demo")
    );
}

// ---------------------------------------------------------------------------------------------
// Target access: TLS and credentials

const USER: &str = "pusher";
const PASSWORD: &str = "s3cret-pw";

/// Push to a TLS registry with `extra` flags, the password (if any) on stdin, and an empty
/// Docker config so the machine's own credentials never leak in.
fn push_tls(b: &Built, registry: &str, extra: &[&str], stdin: Option<&str>) -> Output {
    let empty = b.path().join("no-docker-config");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = loader();
    cmd.arg("push")
        .arg(&b.tar)
        .arg("--key")
        .arg(&b.public)
        .args(["--registry", registry, "--json"])
        .args(extra)
        .env("DOCKER_CONFIG", &empty)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

#[test]
fn tls_registry_with_ca_file_and_credentials_and_clear_failures_without() {
    let b = Built::new();
    let registry = Registry::tls_auth(USER, PASSWORD);
    let host = registry.host();
    let ca = registry.ca_file().unwrap().to_str().unwrap().to_owned();
    let expected = Expected::of(&b);

    // No CA: TLS fails, naming the registry, TLS and the fix.
    let out = push_tls(&b, &host, &[], None);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&host), "{err}");
    assert!(err.contains("TLS") && err.contains("--ca-file"), "{err}");

    // CA but no credentials: 401, naming the registry and how to give credentials.
    let out = push_tls(&b, &host, &["--ca-file", &ca], None);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&host) && err.contains("401"), "{err}");
    assert!(
        err.contains("credentials") && err.contains("--password-stdin"),
        "{err}"
    );

    // A wrong password is a 401 too.
    let out = push_tls(
        &b,
        &host,
        &["--ca-file", &ca, "--username", USER, "--password-stdin"],
        Some("wrong\n"),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert!(registry.catalog().is_empty());

    // --username with --password-stdin.
    let out = push_tls(
        &b,
        &host,
        &["--ca-file", &ca, "--username", USER, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    pushed(&out);
    assert_landed(&registry, &host, &expected, "");

    // A Docker config.json (--registry-config), into another prefix so everything is sent again.
    let config = DockerConfig::write(&b.path().join("docker"), &[(&host, USER, PASSWORD)]);
    let target = format!("{host}/viaconfig");
    let out = push_tls(
        &b,
        &target,
        &[
            "--ca-file",
            &ca,
            "--registry-config",
            config.to_str().unwrap(),
        ],
        None,
    );
    let report = pushed(&out);
    assert!(counts(&report, "tagsPushed") > 0, "{report}");
    assert_landed(&registry, &host, &expected, "viaconfig/");
}

// ---------------------------------------------------------------------------------------------
// Helm, dry run, help, load-images.sh

/// helm with its cache, config and data under `home`.
fn helm(exe: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

#[test]
fn the_pushed_chart_pulls_with_helm_and_renders_images_from_the_registry() {
    let b = Built::new();
    let registry = Registry::plain();
    let host = registry.host();
    pushed(&push(&b, &b.tar, &host, &[]));
    for (n, exe) in [rig::helm(), rig::helm4()].iter().enumerate() {
        let home = b.path().join(format!("helm-{n}"));
        let dest = home.join("pulled");
        std::fs::create_dir_all(&dest).unwrap();
        run_ok(
            helm(exe, &home)
                .args(["pull", &format!("oci://{host}/charts/demo")])
                .args(["--version", "1.2.0", "--plain-http", "-d"])
                .arg(&dest),
        );
        let tgz = dest.join("demo-1.2.0.tgz");
        assert!(tgz.is_file(), "helm pull wrote no {}", tgz.display());
        let rendered = run_ok(
            helm(exe, &home)
                .args(["template", "demo"])
                .arg(&tgz)
                .args(["--set", &format!("global.imageRegistry={host}")]),
        );
        let images: Vec<&str> = rendered
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image:"))
            .map(|i| i.trim().trim_matches('"'))
            .collect();
        assert!(!images.is_empty(), "{rendered}");
        for image in images {
            let path = image
                .strip_prefix(&format!("{host}/"))
                .unwrap_or_else(|| panic!("{image} is not at {host}"));
            assert!(
                registry.manifest_digest(path).is_some(),
                "{image} is rendered but not in the registry"
            );
        }
    }
}

#[test]
fn dry_run_prints_the_mapping_and_sends_nothing_and_help_teaches() {
    let b = Built::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let expected = Expected::of(&b);
    let out = push(&b, &b.tgz, &proxy.host(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["verdict"], "dryRun");
    let report = &doc["report"];
    assert_eq!(report["dryRun"], true);
    let mapped: Vec<(String, String)> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["charts"].as_array().unwrap())
        .map(|i| {
            let target = i["target"].as_str().unwrap();
            let path = target.strip_prefix(&format!("{}/", proxy.host())).unwrap();
            (path.to_owned(), i["digest"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut want = expected.targets("");
    let mut got = mapped;
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(proxy.requests().is_empty(), "{:#?}", proxy.requests());
    assert!(registry.catalog().is_empty());

    // The text form: one line per image and chart, source -> target digest.
    let out = run(loader()
        .arg("push")
        .arg(&b.tar)
        .arg("--key")
        .arg(&b.public)
        .args(["--registry", "registry.internal/mirror", "--dry-run"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for (reference, digest) in &expected.images {
        let path = reference.split_once('/').unwrap().1;
        let line = format!("{reference} -> registry.internal/mirror/{path}  {digest}");
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    assert!(text.contains("nothing was sent"), "{text}");

    let out = run(loader().args(["push", "--help"]));
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Examples:",
        "--password-stdin",
        "children first",
        "Exit codes",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from --help:\n{help}"
        );
    }
    // Usage errors exit 2.
    let out = run(loader()
        .arg("push")
        .arg(&b.tar)
        .arg("--key")
        .arg(&b.public)
        .args(["--registry", "https://registry.internal"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--plain-http"), "{}", stderr(&out));
}

#[test]
fn load_images_sh_pushes_the_directory_it_sits_in() {
    let b = Built::new();
    let registry = Registry::plain();
    let host = registry.host();
    let expected = Expected::of(&b);
    let dir = extract(&b, &b.tgz, "sensei-1.2.0");
    let script = dir.join("load-images.sh");
    let loader_dir = binary("sensei-loader").parent().unwrap().to_owned();

    // Without sensei-loader on PATH: a clear message, exit 2.
    let out = run(Command::new(&script)
        .args(["--registry", &host, "--plain-http"])
        .env("PATH", "/usr/bin:/bin"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sensei-loader is not on PATH"),
        "{}",
        stderr(&out)
    );

    // The seed's manual path: `./load-images.sh --registry HOST`, the release key installed in
    // the keys directory, run from inside the extracted bundle.
    let keys = b.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::copy(&b.public, keys.join("release.pub")).unwrap();
    let out = run(Command::new("./load-images.sh")
        .current_dir(&dir)
        .args(["--registry", &host, "--plain-http"])
        .env("PATH", rig::path_with(&loader_dir))
        .env("SENSEI_KEYS_DIR", &keys));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PUSHED"));
    assert_landed(&registry, &host, &expected, "");
}
