//! A push stopped by a signal in the middle of a blob: held there by the proxy (no sleeps), so
//! every run stops with every other image and chart tagged and the big blob half sent.

use std::process::Stdio;

use super::faults::{
    HeldPush, biggest_blob, blob_digests, push_held_mid_blob, stored_blobs, with_big_layer,
};
use super::*;
use sensei_tests::bins::assert_stopped;

#[test]
fn a_signal_stops_a_push_mid_blob_with_nothing_incomplete_tagged_and_the_next_push_completes() {
    let b = with_big_layer();
    let big = biggest_blob(&b);
    let expected = Expected::of(&b);
    let total = expected.targets("").len() as u64;
    for (sig, code, name) in [
        ("TERM", 143, "SIGTERM"),
        ("INT", 130, "SIGINT"),
        ("HUP", 129, "SIGHUP"),
    ] {
        let HeldPush {
            child,
            hold,
            proxy,
            registry,
            ..
        } = push_held_mid_blob(&b, &expected, &big, Stdio::piped);
        run_ok(Command::new("kill").args(["-s", sig, &child.id().to_string()]));
        let out = child.output();
        hold.kill();

        // The signal's exit code, the message on stderr, and the JSON verdict on stdout.
        let (_, err) = assert_stopped(&out, name, code);
        assert!(
            err.contains(&format!("stopped by {name}: {} of {total} tags", total - 1))
                && err.contains("nothing incomplete is tagged")
                && err.contains("running the same push again continues"),
            "{sig}: {err}"
        );

        // The registry itself: the big image is not tagged, every other tag names its signed
        // digest, and the only blob missing from its storage is the one cut short.
        assert!(
            registry.tags("sensei/big").is_empty(),
            "{sig}: tagged before its blobs were in"
        );
        for (target, digest) in expected.targets("") {
            if !target.starts_with("sensei/big:") {
                assert_eq!(
                    registry.manifest_digest(&target).as_ref(),
                    Some(&digest),
                    "{sig}: {target}"
                );
            }
        }
        let missing: BTreeSet<String> = blob_digests(&b)
            .difference(&stored_blobs(&registry))
            .cloned()
            .collect();
        assert_eq!(missing, BTreeSet::from([format!("sha256:{big}")]), "{sig}");

        // The same push again completes: every digest at the target (skopeo reads them).
        pushed(&push(&b, &b.tar, &proxy.host(), &[]));
        assert_landed(&registry, &registry.host(), &expected, "");
    }
}
