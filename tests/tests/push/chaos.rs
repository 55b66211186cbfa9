//! Push under sustained faults: a big blob's upload cut mid-body again and again (sent again in
//! the same run while its attempts get further, failing clearly once they stop), and a
//! 300-image push through a proxy that answers 500 to a fifth of all requests and resets one in
//! twenty, which must land whole in one run every time.
//!
//! What landed is checked against the bundle, not against push's own report: each tag's link in
//! the registry's storage names the digest `bundle.json` gives, and the storage holds every blob.

use std::collections::BTreeMap;

use sensei_tests::rig::{Logged, RandomFaults};

use super::faults::{biggest_blob, blob_digests, entries, stored_blobs, with_big_layer};
use super::*;

const MIB: u64 = 1 << 20;

/// Where a cut upload of the big image's blob goes: its upload sessions (PATCH while staged,
/// PUT when uploaded in one go).
pub(super) const BIG_UPLOADS: &str = "/v2/sensei/big/blobs/uploads/";

/// The requests that carried (part of) the big blob to the big image's upload sessions, in
/// order (its config, a few hundred bytes, goes there too).
fn big_uploads(proxy: &FaultProxy) -> Vec<Logged> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| {
            matches!(r.method.as_str(), "PATCH" | "PUT")
                && r.path.contains(BIG_UPLOADS)
                && (r.body >= MIB || r.status == 0)
        })
        .collect()
}

/// The size of the bundle's blob `hex`.
fn blob_size(b: &Built, hex: &str) -> u64 {
    entries(b)
        .iter()
        .find(|e| e.path == format!("blobs/sha256/{hex}"))
        .map(|e| e.body.len() as u64)
        .unwrap()
}

#[test]
fn a_big_blob_cut_mid_upload_is_sent_again_in_the_same_run_until_it_stops_getting_further() {
    let b = with_big_layer();
    let big = biggest_blob(&b);
    let size = blob_size(&b, &big);
    assert!(size >= 64 * MIB);
    let expected = Expected::of(&b);
    let short = &big[..12];

    // 1. Cut three times in a row at the same byte: the fourth attempt lands it, in the same
    //    run. Before each new attempt the registry is asked what it kept (docker-registry
    //    refuses the session once its PATCH was cut), so each starts over in a fresh session.
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    proxy.cut_upload_after(16 * MIB, BIG_UPLOADS, 3);
    let out = push(&b, &b.tar, &proxy.host(), &[]);
    let report = pushed(&out);
    let uploads = big_uploads(&proxy);
    assert_eq!(uploads.len(), 4, "{uploads:#?}");
    for cut in &uploads[..3] {
        assert_eq!((cut.status, cut.body), (0, 16 * MIB), "{cut:?}");
    }
    assert_eq!(uploads[3].body, size, "{:?}", uploads[3]);
    assert!(uploads[3].status < 300, "{:?}", uploads[3]);
    assert_eq!(proxy.injected().cuts, 3);
    let asked = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains(BIG_UPLOADS))
        .collect::<Vec<_>>();
    assert_eq!(asked.len(), 3, "{asked:#?}");
    assert!(asked.iter().all(|r| r.status == 404), "{asked:#?}");
    let err = stderr(&out);
    let notice = format!("re-sending all 64.0 MiB of blob sha256:{short}");
    assert_eq!(err.matches(&notice).count(), 3, "{err}");
    assert!(counts(&report, "bytesSent") >= 48 * MIB + report["blobBytes"].as_u64().unwrap());
    assert_landed(&registry, &registry.host(), &expected, "");
    assert!(stored_blobs(&registry).is_superset(&blob_digests(&b)));

    // 2. Cut ten times, the first seven each further than any before: only the last three
    //    count against the attempts, and the blob still lands in this run.
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    for mib in [4, 8, 16, 24, 32, 40, 48] {
        proxy.cut_upload_after(mib * MIB, BIG_UPLOADS, 1);
    }
    proxy.cut_upload_after(8 * MIB, BIG_UPLOADS, 3);
    pushed(&push(&b, &b.tar, &proxy.host(), &[]));
    let uploads = big_uploads(&proxy);
    assert_eq!(uploads.len(), 11, "{uploads:#?}");
    assert!(uploads[..10].iter().all(|r| r.status == 0 && r.body > 0));
    assert_eq!(uploads[10].body, size);
    assert_landed(&registry, &registry.host(), &expected, "");

    // 3. Cut at the same byte every time: twelve attempts in a row without progress after the
    //    first, then the push fails naming the blob, the registry and what happened, and does
    //    not upload the blob again outside its session (that would only repeat them). Nothing
    //    is tagged. (The client counts what it handed to the network, which runs 4 to 20 MiB
    //    ahead of the cut in socket buffers here: an attempt whose buffers happened to take a
    //    MiB more than any before counts as progress and starts the twelve again, so the
    //    attempts are at least thirteen, not exactly.)
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    proxy.cut_upload_after(16 * MIB, BIG_UPLOADS, usize::MAX);
    let out = push(&b, &b.tar, &proxy.host(), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    for part in [
        format!("registry {}", proxy.host()),
        format!("blob sha256:{big}"),
        "the last 12 in a row getting no further than".to_owned(),
        "of its 64.0 MiB; the last failure: the connection broke off before the registry \
         answered"
            .to_owned(),
    ] {
        assert!(last.contains(&part), "{part:?} not in: {err}");
    }
    let uploads = big_uploads(&proxy);
    assert!(uploads.len() >= 13, "{uploads:#?}");
    assert!(uploads.iter().all(|r| r.status == 0 && r.body == 16 * MIB));
    assert!(registry.tags("sensei/big").is_empty());
    // Every other image landed: one blob's failure stopped nothing else.
    for (target, digest) in expected.targets("") {
        if !target.starts_with("sensei/big:") {
            assert_eq!(registry.manifest_digest(&target), Some(digest), "{target}");
        }
    }
}

/// How many 300-image pushes the chaos test makes (`SENSEI_CHAOS_RUNS`): three in the suite
/// (about 45 s on 2 cores), ten from scripts/chaos.sh.
fn chaos_runs() -> u64 {
    std::env::var("SENSEI_CHAOS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The seed of the first run's faults (`SENSEI_CHAOS_SEED`, else from the clock): printed, so a
/// failing run's fault sequence can be asked for again.
fn chaos_seed() -> u64 {
    std::env::var("SENSEI_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        })
}

/// `repository:tag` → digest, as the registry's storage links them.
fn stored_tags(registry: &Registry) -> BTreeMap<String, String> {
    let root = registry
        .storage_dir()
        .join("docker/registry/v2/repositories");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "_manifests" {
                let repo = dir.strip_prefix(&root).unwrap().to_string_lossy();
                for tag in std::fs::read_dir(path.join("tags"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let link = tag.path().join("current/link");
                    let digest = std::fs::read_to_string(&link).unwrap();
                    let tag = tag.file_name().to_string_lossy().into_owned();
                    out.insert(format!("{repo}:{tag}"), digest.trim().to_owned());
                }
            } else if !name.starts_with('_') && path.is_dir() {
                dirs.push(path);
            }
        }
    }
    out
}

#[test]
#[allow(clippy::print_stderr)] // the figures of each run, for the record
fn three_hundred_images_land_whole_through_random_500s_and_resets_in_one_run_every_time() {
    let b = Built::with_options(&FixtureOptions {
        small_images: 295,
        ..FixtureOptions::default()
    });
    let expected = Expected::of(&b);
    assert_eq!(expected.images.len(), 300);
    let want: BTreeMap<String, String> = expected.targets("").into_iter().collect();
    let blobs = blob_digests(&b);
    let seed = chaos_seed();
    // `SENSEI_CHAOS_FAULTS=off`: the same pushes straight into the registry, `=proxy`:
    // through the proxy without faults, to time them against (scripts/chaos.sh).
    let mode = std::env::var("SENSEI_CHAOS_FAULTS").unwrap_or_default();
    let faulty = mode != "off" && mode != "proxy";
    let mut spent = vec![];
    for run in 0..chaos_runs() {
        let registry = Registry::plain();
        let proxy = FaultProxy::in_front_of(&registry);
        let faults = RandomFaults::new(seed + run, 0.20, 0.05);
        if faulty {
            proxy.random_faults(faults);
        }
        let target = if mode == "off" {
            registry.host()
        } else {
            proxy.host()
        };
        let started = Instant::now();
        let out = push(&b, &b.tar, &target, &[]);
        let seconds = started.elapsed().as_secs_f64();
        let injected = proxy.injected();
        let requests = proxy.requests().len();
        eprintln!(
            "chaos run {run} (seed {}): {} in {seconds:.1} s, {requests} requests, {injected:?}",
            faults.seed,
            if out.status.success() {
                "pushed"
            } else {
                "FAILED"
            },
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {run}, seed {}: {}",
            faults.seed,
            stderr(&out)
        );
        // The faults really were there.
        assert!(!faulty || injected.errors > 0 && injected.cuts + injected.lost_answers > 0);
        assert_eq!(
            stored_tags(&registry),
            want,
            "run {run}, seed {}",
            faults.seed
        );
        let stored = stored_blobs(&registry);
        let missing: Vec<_> = blobs.difference(&stored).collect();
        assert!(missing.is_empty(), "run {run}: {missing:?} missing");
        // Stopped now, its storage removed at the end: removing thousands of files slows
        // the file creation of the next run's registry for a while (ext4), which would time
        // the disk rather than the push.
        registry.kill();
        spent.push(registry);
    }
}
