//! `scripts/demo.sh`, the first command README.md gives, run end to end as a user runs it:
//! two loopback docker-registries, the real skopeo and helm. A demo that breaks fails here.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::Path;
use std::process::Command;

use sensei_tests::bins::binary;

#[test]
fn the_demo_runs_the_whole_flow_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // The binaries these tests use, so the demo does not build (or rebuild) its own.
    let bin = binary("sensei-loader").parent().unwrap().to_owned();
    let out = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .env("SENSEI_BIN", &bin)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "demo.sh failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // Each step's outcome, in order: built, verified, countersigned, a tampered copy rejected,
    // pushed (digests compared with skopeo's view), loaded by load-images.sh into a prefix,
    // the pushed chart pulled by its signed digest and rendered at the internal registry, and
    // the upgrade handoff's dry run with Helm 4.
    let mut rest = stdout.as_ref();
    for step in [
        "wrote ",
        "VERIFIED  sensei 1.2.0",
        "countersigned sensei 1.2.0",
        "exit code: 1",
        "PUSHED  sensei 1.2.0 to 127.0.0.1:",
        "then: helm upgrade --install RELEASE oci://127.0.0.1:",
        "PUSHED  sensei 1.2.0 to 127.0.0.1:",
        "/mirror (1 trusted signature(s))",
        "$ helm pull oci://127.0.0.1:",
        "/charts/demo@sha256:",
        "image: \"127.0.0.1:",
        "DRY RUN  sensei 1.2.0",
        "--dry-run=client",
        "demo complete.",
    ] {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing (or out of order) in:\n{stdout}"));
        rest = &rest[at + step.len()..];
    }
    // The pushed digest equals the bundle's (the demo compares them and says both).
    let digests: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("sensei/multi:1.2.0 "))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(digests.len(), 2, "{stdout}");
    assert_eq!(digests[0], digests[1], "{stdout}");
}
