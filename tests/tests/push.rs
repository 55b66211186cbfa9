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

use sensei_tests::bins::{Built, binary, bundler, loader, run, run_ok};
use sensei_tests::craft::{self, Entry};
use sensei_tests::fixtures::FixtureOptions;
use sensei_tests::rig::{self, DockerConfig, Failure, FaultProxy, Registry, require};
use sha2::{Digest as _, Sha256};

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
    // Each unique blob went over the wire once (one PUT each); the rest were mounted.
    let uploads = proxy.count("PUT", "/blobs/uploads/");
    assert_eq!(uploads as u64, unique_blobs(&report), "{report}");
    assert_eq!(counts(&report, "blobsUploaded"), unique_blobs(&report));
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
    // ...while `verify`, the command that checks the file itself, rejects it.
    assert_eq!(b.verify(&copy, &[]).status.code(), Some(1));
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
// Hostile bundles: rejected before a single write

fn entries(b: &Built) -> Vec<Entry> {
    craft::parse(&std::fs::read(&b.tar).unwrap()).unwrap()
}

fn write(b: &Built, name: &str, bytes: &[u8]) -> PathBuf {
    let path = b.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn hostile_bundles_are_rejected_before_any_write_and_leave_the_registry_empty() {
    let b = Built::new();
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);

    let mut cases: Vec<(&str, PathBuf, Vec<PathBuf>, &str)> = vec![];
    // A layer blob with one byte flipped, as .tar and as .tar.gz.
    let mut e = entries(&b);
    let layer = e
        .iter()
        .position(|x| x.path.starts_with("blobs/") && x.body.starts_with(&[0x1f, 0x8b]))
        .unwrap();
    let mid = e[layer].body.len() / 2;
    e[layer].body[mid] ^= 0xff;
    let tampered = craft::write(&e);
    cases.push((
        "tampered layer",
        write(&b, "tampered.tar", &tampered),
        vec![b.public.clone()],
        "has sha256",
    ));
    cases.push((
        "tampered layer, gzip",
        write(&b, "tampered.tar.gz", &craft::gzip(&tampered)),
        vec![b.public.clone()],
        "has sha256",
    ));
    // Signed by a key the operator does not trust.
    let other = b.path().join("other");
    run_ok(bundler().arg("keygen").arg("--out").arg(&other));
    cases.push((
        "untrusted signer",
        b.tar.clone(),
        vec![other.with_extension("pub")],
        "no signature is by a trusted key",
    ));
    // Bytes after the end-of-archive marker.
    let mut garbage = craft::write(&entries(&b));
    garbage.extend_from_slice(b"appended after the end marker\n");
    cases.push((
        "trailing garbage",
        write(&b, "garbage.tar", &garbage),
        vec![b.public.clone()],
        "data after the end of the archive",
    ));
    // A file bundle.json does not list.
    let mut e = entries(&b);
    e.push(Entry::file("extra.txt", b"added after signing\n".to_vec()));
    cases.push((
        "unlisted file",
        write(&b, "unlisted.tar", &craft::write(&e)),
        vec![b.public.clone()],
        "is not listed in bundle.json",
    ));

    for (what, bundle, keys, message) in cases {
        let mut cmd = loader();
        cmd.arg("push")
            .arg(&bundle)
            .args(["--registry", &proxy.host(), "--plain-http"]);
        for k in &keys {
            cmd.arg("--key").arg(k);
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{what}: {}", stderr(&out));
        // Reads may start once the signature holds (a head start on what the registry has),
        // and so may upload sessions, which nothing can see; commits only after every byte
        // verified; and nothing at all for an untrusted bundle.
        assert_nothing_committed(&proxy, what);
        if what == "untrusted signer" {
            assert!(
                proxy.requests().is_empty(),
                "{what}: {:#?}",
                proxy.requests()
            );
        }
        proxy.clear_log();
    }
    assert!(registry.catalog().is_empty());
}

/// What a push that failed verification may have sent: reads, and upload sessions (POST,
/// PATCH) that it then cancelled (DELETE). No PUT (which commits a blob or puts a manifest or
/// tag) and no mount (which links a blob into a repository): the registry shows nothing new.
fn assert_nothing_committed(proxy: &FaultProxy, what: &str) {
    let requests = proxy.requests();
    for r in &requests {
        let allowed = match r.method.as_str() {
            "GET" | "HEAD" => true,
            "POST" => r.path.contains("/blobs/uploads/") && !r.path.contains("mount="),
            "PATCH" | "DELETE" => r.path.contains("/blobs/uploads/"),
            _ => false,
        };
        assert!(
            allowed,
            "{what}: {} {} was sent: {requests:#?}",
            r.method, r.path
        );
    }
    let opened = proxy.count("POST", "/blobs/uploads/");
    let cancelled = proxy.count("DELETE", "/blobs/uploads/");
    assert_eq!(
        opened, cancelled,
        "{what}: every session opened is cancelled: {requests:#?}"
    );
}

/// A bundle with a layer big enough to be streamed into an upload session while the bundle is
/// still being verified (push stages blobs of 1 MiB and more), and long enough to verify that
/// the session is open before verification reaches the end.
fn with_big_layer() -> Built {
    Built::with_options(&FixtureOptions {
        big_layer_bytes: 64 << 20,
        ..FixtureOptions::default()
    })
}

/// The digest (hex) of the bundle's biggest blob.
fn biggest_blob(b: &Built) -> String {
    let e = entries(b);
    let big = e
        .iter()
        .filter(|x| x.path.starts_with("blobs/sha256/"))
        .max_by_key(|x| x.body.len())
        .unwrap();
    big.path.trim_start_matches("blobs/sha256/").to_owned()
}

#[test]
fn a_bundle_that_fails_verification_after_its_big_blob_was_staged_commits_nothing() {
    let b = with_big_layer();
    let registry = Registry::plain();

    // A byte flipped in the archive's last layer (configs and manifests follow it): the
    // verification pass fails only there, long after the big blob began streaming into its
    // session. (A flipped manifest is caught before any request: push reads the manifests
    // first, each checked against the signed listing.)
    let mut e = entries(&b);
    let last = e
        .iter()
        .rposition(|x| x.path.starts_with("blobs/") && !x.body.starts_with(b"{"))
        .unwrap();
    let mid = e[last].body.len() / 2;
    e[last].body[mid] ^= 0xff;
    let flipped = write(&b, "flipped-last.tar", &craft::write(&e));
    // Trailing garbage: every blob is intact (the big one may be staged whole), the archive is
    // not.
    let mut garbage = craft::write(&entries(&b));
    garbage.extend_from_slice(b"appended after the end marker\n");
    let garbage = write(&b, "garbage.tar", &garbage);

    for (what, bundle, message) in [
        ("flipped byte in the last layer", flipped, "has sha256"),
        (
            "trailing garbage",
            garbage,
            "data after the end of the archive",
        ),
    ] {
        // A proxy each: a PATCH cut short is logged whenever the proxy notices.
        let proxy = FaultProxy::in_front_of(&registry);
        let out = push(&b, &bundle, &proxy.host(), &[]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{what}: {}", stderr(&out));
        // The big blob's session was opened (its PATCH, cut short, may not be in the log).
        assert!(
            proxy.count("POST", "/blobs/uploads/") >= 1,
            "{what}: the big blob was not staged: {:#?}",
            proxy.requests()
        );
        assert_nothing_committed(&proxy, what);
        assert!(registry.catalog().is_empty(), "{what}");
        assert!(registry.tags("sensei/big").is_empty(), "{what}");
    }

    // The same archive, intact: the staged blob is committed (one PUT without a body), the
    // rest as usual, and everything lands.
    let proxy = FaultProxy::in_front_of(&registry);
    let report = pushed(&push(&b, &b.tar, &proxy.host(), &[]));
    assert_eq!(proxy.count("PATCH", ""), 1, "{:#?}", proxy.requests());
    assert_eq!(proxy.count("DELETE", ""), 0, "{:#?}", proxy.requests());
    assert_eq!(
        proxy.count("PUT", "/blobs/uploads/") as u64,
        unique_blobs(&report),
        "{:#?}",
        proxy.requests()
    );
    assert_landed(&registry, &registry.host(), &Expected::of(&b), "");
}

#[test]
fn a_staged_session_lost_at_commit_is_uploaded_again_and_a_busy_commit_is_retried() {
    let b = with_big_layer();
    let big = biggest_blob(&b);
    let expected = Expected::of(&b);
    for (status, puts) in [(503, 2), (404, 2)] {
        let registry = Registry::plain();
        let proxy = FaultProxy::in_front_of(&registry);
        // The commit of the staged big blob fails once: a 503 is retried on the same session;
        // a 404 says the registry lost it (restarted with another secret, purged it), so the
        // blob is uploaded again in a session of its own.
        proxy.fail(Failure::new(status, 1, &big).method("PUT"));
        let report = pushed(&push(&b, &b.tar, &proxy.host(), &[]));
        let big_puts = proxy.count("PUT", &big);
        assert_eq!(big_puts, puts, "{status}: {:#?}", proxy.requests());
        let patches = proxy.count("PATCH", "/blobs/uploads/");
        assert_eq!(patches, 1, "{status}: {:#?}", proxy.requests());
        if status == 404 {
            // The lost session is cancelled too (harmless if it is gone).
            assert_eq!(proxy.count("DELETE", "/blobs/uploads/"), 1);
            assert!(counts(&report, "bytesSent") > 2 * (64 << 20), "{report}");
        }
        assert_eq!(counts(&report, "blobsUploaded"), unique_blobs(&report));
        assert_landed(&registry, &registry.host(), &expected, "");
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

#[test]
fn rides_through_503s_on_uploads_manifests_and_checks() {
    let b = Built::new();
    let expected = Expected::of(&b);
    for bundle in [&b.tar, &b.tgz] {
        let registry = Registry::plain();
        let proxy = FaultProxy::in_front_of(&registry);
        // The first three blob uploads, the catalog and two manifest PUTs fail, each once.
        proxy.fail(Failure::new(503, 3, "/blobs/uploads/").method("PUT"));
        proxy.fail(Failure::new(503, 1, "/v2/_catalog").method("GET"));
        // The 429s ask for a wait long enough to be told however recent the other notices.
        proxy.fail(
            Failure::new(429, 2, "/manifests/")
                .method("PUT")
                .retry_after(2),
        );
        let out = push(&b, bundle, &proxy.host(), &[]);
        let report = pushed(&out);
        let failed = proxy.requests().iter().filter(|r| r.status >= 429).count();
        assert_eq!(failed, 6, "{:#?}", proxy.requests());
        // The user is told why the push pauses: which registry, what it answered, when the
        // next attempt goes.
        let err = stderr(&out);
        assert!(
            err.contains(&format!("warning: registry {}: ", proxy.host()))
                && err.contains("retrying in")
                && err.contains("(attempt 2 of 6)"),
            "{err}"
        );
        // The manifest PUTs' 429s said `Retry-After: 2`: that wait is kept, not the backoff.
        assert!(
            err.contains("retrying in 2.0 s as the registry asked"),
            "{err}"
        );
        assert_eq!(counts(&report, "blobsUploaded"), unique_blobs(&report));
        assert_landed(&registry, &registry.host(), &expected, "");
    }
}

/// Files named `data` under an `_uploads` directory of the registry's storage: the blob
/// uploads in progress, and their sizes.
fn uploads_in_progress(dir: &Path) -> u64 {
    let mut biggest = 0;
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in read.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            biggest = biggest.max(uploads_in_progress(&path));
        } else if path.file_name().is_some_and(|n| n == "data")
            && path.components().any(|c| c.as_os_str() == "_uploads")
        {
            biggest = biggest.max(meta.len());
        }
    }
    biggest
}

/// Waits until the registry has received `bytes` of some upload.
fn wait_for_upload(registry: &Registry, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while uploads_in_progress(&registry.storage_dir()) < bytes {
        assert!(Instant::now() < deadline, "no upload reached {bytes} bytes");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 256 MiB: long enough to upload that the registry can be killed in the middle.
const BIG: u64 = 256 * 1024 * 1024;

#[test]
fn a_registry_killed_mid_push_is_ridden_through_and_an_interrupted_push_completes_later() {
    let b = Built::with_options(&FixtureOptions {
        big_layer_bytes: BIG,
        ..FixtureOptions::default()
    });
    let expected = Expected::of(&b);

    // 1. The registry dies mid-upload and comes back within the retry window: the same push
    //    completes.
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let child = push_cmd(&b, &b.tar, &proxy.host(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_upload(&registry, 16 << 20);
    registry.kill();
    std::thread::sleep(Duration::from_millis(500));
    registry.start();
    let out = child.wait_with_output().unwrap();
    let report = pushed(&out);
    assert!(
        proxy.requests().iter().any(|r| r.status == 502),
        "the kill was not seen: {:#?}",
        proxy.requests()
    );
    assert!(counts(&report, "bytesSent") > report["blobBytes"].as_u64().unwrap());
    assert_landed(&registry, &registry.host(), &expected, "");

    // 2. The registry and the push both die mid-upload; the next push uploads exactly the
    //    blobs the registry does not hold yet (the big one among them) and skips the rest.
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let mut child = push_cmd(&b, &b.tar, &proxy.host(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Both die once every other image is in (its blobs committed right after verification,
    // its tag as soon as they were) while the big blob still streams into its session (opened
    // while verifying). Not amid those small writes: a registry killed while writing a link
    // file leaves it empty, and docker-registry then answers 500 for that blob or tag.
    let others: Vec<(String, String)> = expected
        .targets("")
        .into_iter()
        .filter_map(|(t, _)| {
            let (repo, tag) = t.rsplit_once(':')?;
            (repo != "sensei/big").then(|| (repo.to_owned(), tag.to_owned()))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while uploads_in_progress(&registry.storage_dir()) < 64 << 20
        || others
            .iter()
            .any(|(repo, tag)| !registry.tags(repo).contains(tag))
    {
        assert!(
            Instant::now() < deadline,
            "the other images were not in while the big blob was still uploading"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    registry.kill();
    child.kill().unwrap();
    child.wait().unwrap();
    registry.start();
    assert!(
        registry.tags("sensei/big").is_empty(),
        "tagged before its blobs were in"
    );
    let layers_and_configs = blob_digests(&b);
    let stored = stored_blobs(&registry);
    let missing = layers_and_configs.difference(&stored).count();
    assert!(
        missing >= 1 && missing < layers_and_configs.len(),
        "{missing} of {} blobs missing",
        layers_and_configs.len()
    );
    proxy.clear_log();
    let report = pushed(&push(&b, &b.tar, &proxy.host(), &[]));
    assert_eq!(
        proxy.count("PUT", "/blobs/uploads/"),
        missing,
        "{:#?}",
        proxy.requests()
    );
    assert_eq!(counts(&report, "blobsUploaded"), missing as u64);
    assert!(counts(&report, "blobsPresent") > 0);
    assert_landed(&registry, &registry.host(), &expected, "");
}

/// Digests of the bundle's layers and configs: its blobs that are not manifests or indexes.
fn blob_digests(b: &Built) -> BTreeSet<String> {
    entries(b)
        .iter()
        .filter_map(|e| {
            let hex = e.path.strip_prefix("blobs/sha256/")?;
            let manifest = serde_json::from_slice::<serde_json::Value>(&e.body)
                .is_ok_and(|v| v.get("schemaVersion").is_some());
            (!manifest).then(|| format!("sha256:{hex}"))
        })
        .collect()
}

/// Digests of the blobs the registry holds whole (its global blob store).
fn stored_blobs(registry: &Registry) -> BTreeSet<String> {
    let root = registry
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256");
    let mut out = BTreeSet::new();
    for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for blob in std::fs::read_dir(prefix.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if blob.path().join("data").is_file() {
                out.insert(format!("sha256:{}", blob.file_name().to_string_lossy()));
            }
        }
    }
    out
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
