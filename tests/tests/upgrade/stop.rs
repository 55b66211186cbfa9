//! An upgrade stopped by a signal, through the built binary. During its push (the big blob
//! held mid-upload by the proxy, so every run stops there): helm upgrade never starts and
//! nothing incomplete is tagged. While helm upgrade runs (the stand-in waiting for a signal):
//! helm is sent the same signal and waited for, and the message gives the rollback command.
//! Each moment is an event the test waits for (the proxy's hold, the stand-in's marker file).

use std::process::Stdio;
use std::time::{Duration, Instant};

use sensei_tests::bins::{Background, assert_stopped, run_ok};
use sensei_tests::fixtures::FixtureOptions;
use sensei_tests::rig::{FaultProxy, Registry};

use super::standin::{HelmStandin, Upgrade, helm_standin_for_upgrade};
use super::*;

/// The failure guard on every wait for an event: far longer than any of them takes.
const WAIT: Duration = Duration::from_secs(120);

/// Where the big blob's upload is held: after this many bytes of its body.
const HELD_AT: u64 = 16 << 20;

/// The big image's upload sessions.
const BIG_UPLOADS: &str = "/v2/sensei/big/blobs/uploads/";

/// The upgrade of `bundle` to `registry` through the stand-in, with the memory driver holding
/// `releases`, in the background with its output piped.
fn spawn_upgrade(
    r: &Rig,
    bundle: &Path,
    registry: &str,
    standin: &HelmStandin,
    releases: &Path,
) -> Background {
    Background::spawn(
        r.sandboxed(
            r.release(bundle, registry, &standin.script)
                .args(["--plain-http", "--json"]),
            releases,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()),
    )
}

fn signal(child: &Background, sig: &str) {
    run_ok(Command::new("kill").args(["-s", sig, &child.id().to_string()]));
}

/// The signed bundle's targets in the registry: `(path:tag, digest)` of every image and chart.
fn signed_targets(r: &Rig) -> Vec<(String, String)> {
    let m = sensei_tests::scene::bundle_json(&r.b.tar);
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
    let mut targets: Vec<(String, String)> = m["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let reference = s(&i["reference"]);
            let path = reference.split_once('/').unwrap().1.to_owned(); // no source host
            (path, s(&i["digest"]))
        })
        .collect();
    targets.extend(m["charts"].as_array().unwrap().iter().map(|c| {
        (
            format!("charts/{}:{}", s(&c["name"]), s(&c["version"])),
            s(&c["digest"]),
        )
    }));
    targets
}

#[test]
fn a_signal_during_the_push_stops_the_upgrade_before_helm_upgrade_with_nothing_incomplete_tagged() {
    let r = Rig::with(Built::with_options(&FixtureOptions {
        big_layer_bytes: 64 << 20,
        ..FixtureOptions::default()
    }));
    let registry = Registry::plain();
    let proxy = FaultProxy::in_front_of(&registry);
    let hold = proxy.hold_upload_after(HELD_AT, BIG_UPLOADS);
    // Were helm upgrade started after all, the stand-in would record it and succeed.
    let after = r.deployed("1.2.0", 1);
    let standin = helm_standin_for_upgrade(&r, &r.empty, Upgrade::Succeeds { after: &after });
    let child = spawn_upgrade(&r, &r.b.tar, &proxy.host(), &standin, &r.empty);
    hold.wait_reached(WAIT);
    signal(&child, "TERM");
    let out = child.output();
    hold.kill();

    // The signal's exit code, where the upgrade stopped and what to do, and the JSON verdict.
    let (doc, err) = assert_stopped(&out, "SIGTERM", 143);
    assert!(
        err.contains("stopped by SIGTERM: helm upgrade was not run; the release is unchanged")
            && err.contains("running the same upgrade again continues the push"),
        "{err}"
    );
    assert!(
        doc["state"]
            .as_str()
            .unwrap()
            .starts_with("helm upgrade was not run"),
        "{doc}"
    );

    // helm ran for what comes before the push (its version, the deployed release), and never
    // as `helm upgrade` (nor to log in for it).
    let calls = std::fs::read_to_string(&standin.calls).unwrap();
    assert!(calls.lines().any(|c| c.starts_with("list ")), "{calls}");
    assert!(
        !calls
            .lines()
            .any(|c| c.starts_with("upgrade") || c.starts_with("registry")),
        "{calls}"
    );
    assert!(!standin.upgrade_args.exists());

    // Nothing incomplete is tagged: the big image, cut mid-blob, has no tag, and every tag
    // that is there names its signed digest.
    assert!(
        registry.tags("sensei/big").is_empty(),
        "tagged before its blobs were in"
    );
    for (target, digest) in signed_targets(&r) {
        if let Some(there) = registry.manifest_digest(&target) {
            assert_eq!(there, digest, "{target}");
        }
    }
    assert!(!r.state_dir().join("demo.json").exists());
}

/// Waits until the stand-in's `helm upgrade` has set its traps; `false` if the upgrade ended
/// first.
fn wait_for_helm_upgrade(child: &mut Background, standin: &HelmStandin) -> bool {
    let deadline = Instant::now() + WAIT;
    while !standin.started.exists() {
        if !child.is_running() {
            return false;
        }
        assert!(Instant::now() < deadline, "helm upgrade did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn a_signal_while_helm_upgrade_runs_is_sent_on_to_helm_and_the_message_gives_the_rollback() {
    let r = Rig::new();
    let registry = Registry::plain();
    let before = r.deployed("1.1.0", 3);
    let standin = helm_standin_for_upgrade(&r, &before, Upgrade::WaitsForASignal);
    let rollback = format!("{} rollback demo 3 -n sensei", standin.script.display());
    for (sig, code, name) in [
        ("TERM", 143, "SIGTERM"),
        ("INT", 130, "SIGINT"),
        ("HUP", 129, "SIGHUP"),
    ] {
        for marker in [&standin.started, &standin.signalled] {
            let _ = std::fs::remove_file(marker);
        }
        let mut child = spawn_upgrade(&r, &r.b.tgz, &registry.host(), &standin, &before);
        if !wait_for_helm_upgrade(&mut child, &standin) {
            let out = child.output();
            panic!(
                "{sig}: the upgrade ended before helm upgrade ran: {}",
                stderr(&out)
            );
        }
        signal(&child, sig);
        let out = child.output();

        // helm got the signal the loader got, and the loader waited for it to end.
        assert_eq!(
            std::fs::read_to_string(&standin.signalled)
                .unwrap_or_default()
                .trim(),
            sig,
            "{sig}: {}",
            stderr(&out)
        );
        let (doc, err) = assert_stopped(&out, name, code);
        assert!(
            err.contains(&format!(
                "stopped by {name}: helm upgrade was running and was sent {name}"
            )) && err.contains(&rollback),
            "{sig}: {err}"
        );
        assert!(doc["state"].as_str().unwrap().ends_with(&rollback), "{doc}");
        // An upgrade that did not finish records nothing.
        assert!(!r.state_dir().join("demo.json").exists());
    }
}
