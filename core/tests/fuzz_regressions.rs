//! Inputs the fuzzers found (fuzz/regressions/) go through the archive reader and the verifier
//! again on every test run: they must be refused cleanly, never panic.

use std::path::PathBuf;

use sensei_core::archive::{TarReader, open_stream};
use sensei_core::progress::Silent;
use sensei_core::signature::{PrivateKey, TrustedKey};
use sensei_core::verify::{Policy, verify_archive};

fn inputs() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let extra = std::env::var_os("SENSEI_FUZZ_INPUTS").map(PathBuf::from);
    let mut out = vec![];
    for d in std::iter::once(dir).chain(extra) {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            let bytes = std::fs::read(&p).expect("read input");
            out.push((p, bytes));
        }
    }
    out
}

#[test]
fn fuzz_regressions_never_panic() {
    let policy = Policy {
        trusted: vec![TrustedKey {
            key: PrivateKey::from_seed(&[7; 32]).public(),
            label: "fuzz".into(),
        }],
        threshold: 1,
        detached: vec![],
        expected_name: None,
        release: None,
        now: jiff::Timestamp::UNIX_EPOCH,
    };
    let inputs = inputs();
    assert!(
        !inputs.is_empty(),
        "fuzz/regressions/ should hold at least one input"
    );
    for (path, bytes) in inputs {
        if let Ok((stream, _)) = open_stream(&bytes[..]) {
            let mut tar = TarReader::new(stream);
            let mut buf = [0u8; 4096];
            while let Ok(Some(_)) = tar.next_header() {
                if tar.stream_body(&mut buf, |_| {}).is_err() {
                    break;
                }
            }
        }
        let result = verify_archive(&bytes[..], &policy, &Silent, &mut ());
        assert!(result.is_err(), "{} verified", path.display());
    }
}
