//! Push under attack and under faults: hostile bundles commit nothing (even with a big blob
//! already staged), a staged session lost at commit is uploaded again, 503s and 429s are ridden
//! through, and a registry killed mid-push is survived or, run again, completed.

use super::chaos::BIG_UPLOADS;
use super::*;
use sensei_tests::bins::Background;
use sensei_tests::rig::Hold;

// ---------------------------------------------------------------------------------------------
// Hostile bundles: rejected before a single write

pub(super) fn entries(b: &Built) -> Vec<Entry> {
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
pub(super) fn with_big_layer() -> Built {
    Built::with_options(&FixtureOptions {
        big_layer_bytes: 64 << 20,
        ..FixtureOptions::default()
    })
}

/// The digest (hex) of the bundle's biggest blob.
pub(super) fn biggest_blob(b: &Built) -> String {
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
                && err.contains("(attempt 2 of 12)"),
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

/// The failure guard on every wait for an event below: far longer than any of them takes, so
/// reaching it means the event is not coming.
pub(super) const WAIT: Duration = Duration::from_secs(120);

/// Where the big blob is held: after this many bytes of its staged PATCH.
pub(super) const HELD_AT: u64 = 16 << 20;

/// A push of `b` through a fresh proxy in front of a fresh registry, caught mid-blob: the big
/// blob's upload held after [`HELD_AT`] bytes, everything else already in. Fields drop in
/// order: the push is killed before the hold, the proxy and the registry go.
pub(super) struct HeldPush {
    pub child: Background,
    pub hold: Hold,
    /// The held request's path.
    pub held: String,
    pub proxy: FaultProxy,
    pub registry: Registry,
}

/// Starts the push (its stdout and stderr set by `output`, e.g. `Stdio::piped`) and returns
/// once it is held mid-blob with everything else in
/// ([`wait_until_all_but_the_big_blob_is_in`]).
pub(super) fn push_held_mid_blob(
    b: &Built,
    expected: &Expected,
    big: &str,
    output: fn() -> Stdio,
) -> HeldPush {
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let hold = proxy.hold_upload_after(HELD_AT, BIG_UPLOADS);
    let child = Background::spawn(
        push_cmd(b, &b.tar, &proxy.host(), &[])
            .stdout(output())
            .stderr(output()),
    );
    let held = hold.wait_reached(WAIT);
    wait_until_all_but_the_big_blob_is_in(&proxy, &registry, b, expected, big);
    HeldPush {
        child,
        hold,
        held,
        proxy,
        registry,
    }
}

/// Waits, on the proxy's log, until the registry has answered 201 to everything the push
/// writes before the big blob's commit: the tag of every other image and chart (each put
/// once everything below it was in), and every other blob of the big image (its config, the
/// base layer mounted or uploaded into it). From then on the only write in flight is the
/// held PATCH: a registry killed now is killed mid-blob and amid nothing else (a registry
/// killed while writing a link file leaves it empty, and docker-registry then answers 500 for
/// that blob or tag). Checked against the registry itself (each tag names the digest
/// `bundle.json` gives; the big image has none) before returning.
pub(super) fn wait_until_all_but_the_big_blob_is_in(
    proxy: &FaultProxy,
    registry: &Registry,
    b: &Built,
    expected: &Expected,
    big: &str,
) {
    let others: Vec<(String, String)> = expected
        .targets("")
        .into_iter()
        .filter(|(t, _)| !t.starts_with("sensei/big:"))
        .collect();
    let tag_puts: Vec<String> = others
        .iter()
        .map(|(t, _)| {
            let (repo, tag) = t.rsplit_once(':').unwrap();
            format!("/v2/{repo}/manifests/{tag}")
        })
        .collect();
    let image = b.fixtures.image("big:1.0.0").unwrap();
    let small: Vec<&str> = image
        .blobs
        .iter()
        .map(|d| d.trim_start_matches("sha256:"))
        .filter(|hex| *hex != big && format!("sha256:{hex}") != image.digest)
        .collect();
    assert!(!small.is_empty() && small.len() + 2 == image.blobs.len());
    let answered = |log: &[rig::Logged], method: &str, path: &dyn Fn(&str) -> bool| {
        log.iter()
            .any(|r| r.method == method && r.status == 201 && path(&r.path))
    };
    proxy.wait_for(
        WAIT,
        "every other image and chart tagged and the big image's other blobs in",
        |log| {
            tag_puts
                .iter()
                .all(|p| answered(log, "PUT", &|path| path == p))
                && small.iter().all(|hex| {
                    let into_big = |path: &str| path.starts_with(BIG_UPLOADS) && path.contains(hex);
                    answered(log, "PUT", &into_big) || answered(log, "POST", &into_big)
                })
        },
    );
    for (target, digest) in &others {
        assert_eq!(
            registry.manifest_digest(target).as_ref(),
            Some(digest),
            "{target}"
        );
    }
    assert!(registry.tags("sensei/big").is_empty());
}

/// A registry that dies in the middle of a blob, and comes back, is ridden through by the same
/// push; when the push dies with it, the next push sends exactly the blobs the registry lacks.
///
/// Driven by events, not timing: the proxy holds the big blob's PATCH after [`HELD_AT`] bytes
/// until the test lets it go, so every run kills the registry (and the push) mid-blob with
/// everything else already in.
#[test]
fn a_registry_killed_mid_push_is_ridden_through_and_an_interrupted_push_completes_later() {
    let b = with_big_layer();
    let big = biggest_blob(&b);
    let expected = Expected::of(&b);

    // 1. The registry dies mid-blob and comes back within the retry window: the same push
    //    completes.
    let HeldPush {
        child,
        hold,
        held,
        proxy,
        registry,
    } = push_held_mid_blob(&b, &expected, &big, Stdio::piped);
    registry.kill();
    // The rest of the held body meets a dead registry (502, connection closed); the push asks
    // again and finds it down (502: the proxy cannot connect). Only then does it come back.
    hold.release();
    proxy.wait_for(
        WAIT,
        "the held PATCH and a retry to meet the registry down",
        |log| {
            log.iter().any(|r| r.path == held && r.status == 502)
                && log.iter().filter(|r| r.status == 502).count() >= 2
        },
    );
    registry.start();
    let out = child.output();
    let report = pushed(&out);
    // The held attempt's bytes were sent for nothing: the blob went again.
    assert!(counts(&report, "bytesSent") > report["blobBytes"].as_u64().unwrap());
    assert_landed(&registry, &registry.host(), &expected, "");

    // 2. The registry and the push both die mid-blob; the next push uploads exactly the blobs
    //    the registry does not hold yet (the big one) and skips the rest.
    let HeldPush {
        child,
        hold,
        proxy,
        registry,
        ..
    } = push_held_mid_blob(&b, &expected, &big, Stdio::null);
    registry.kill();
    child.kill();
    hold.kill();
    registry.start();
    assert!(
        registry.tags("sensei/big").is_empty(),
        "tagged before its blobs were in"
    );
    // What the registry's storage holds, against the bundle's own list of blobs.
    let missing: BTreeSet<String> = blob_digests(&b)
        .difference(&stored_blobs(&registry))
        .cloned()
        .collect();
    assert_eq!(missing, BTreeSet::from([format!("sha256:{big}")]));
    proxy.clear_log();
    let report = pushed(&push(&b, &b.tar, &proxy.host(), &[]));
    assert_eq!(
        proxy.count("PUT", "/blobs/uploads/"),
        missing.len(),
        "{:#?}",
        proxy.requests()
    );
    assert_eq!(counts(&report, "blobsUploaded"), missing.len() as u64);
    assert!(counts(&report, "blobsPresent") > 0);
    assert_landed(&registry, &registry.host(), &expected, "");
}

/// Digests of the bundle's layers and configs: its blobs that are not manifests or indexes.
pub(super) fn blob_digests(b: &Built) -> BTreeSet<String> {
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
pub(super) fn stored_blobs(registry: &Registry) -> BTreeSet<String> {
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
