//! `sensei-loader verify` stopped by a signal in the middle of a big bundle. The bundle comes
//! through a pipe that is fed half of it and then held open, so every run is caught mid-bundle
//! (past the signatures, inside the big layer) without sleeps. Verification writes nothing, so
//! what a stop owes is the signal's exit code and a message instead of a report: never a
//! verdict that reads as success.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::Write as _;
use std::process::{Command, Stdio};

use sensei_tests::bins::{assert_stopped, loader, run_ok};
use sensei_tests::fixtures::FixtureOptions;
use sensei_tests::scene::Built;

#[test]
fn a_signal_mid_verify_exits_with_its_code_and_a_message_never_a_report() {
    let b = Built::with_options(&FixtureOptions {
        big_layer_bytes: 64 << 20,
        ..FixtureOptions::default()
    });
    let bundle = std::fs::read(&b.tar).unwrap();
    let half = &bundle[..bundle.len() / 2];
    for (sig, code, name) in [
        ("TERM", 143, "SIGTERM"),
        ("INT", 130, "SIGINT"),
        ("HUP", 129, "SIGHUP"),
    ] {
        let mut child = loader()
            .arg("verify")
            .arg("/dev/stdin")
            .arg("--key")
            .arg(&b.public)
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Held open until verify has ended: the rest of the bundle never comes, nor an EOF.
        let mut stdin = child.stdin.take().unwrap();
        // Returns once verify has read all of it but what the pipe buffers (64 KiB): verify is
        // then in the middle of the bundle, waiting for more.
        stdin.write_all(half).unwrap();
        run_ok(Command::new("kill").args(["-s", sig, &child.id().to_string()]));
        let out = child.wait_with_output().unwrap();
        drop(stdin);

        let (doc, err) = assert_stopped(&out, name, code);
        assert!(
            err.contains("the verification did not finish") && err.contains("nothing is verified"),
            "{sig}: {err}"
        );
        assert!(doc.get("report").is_none(), "{doc}");
    }
}
