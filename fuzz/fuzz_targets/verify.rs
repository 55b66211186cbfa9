//! Arbitrary bytes through the whole streaming verifier, as the loader runs it on a bundle from
//! a USB stick: any input may be rejected, none may panic.
//!
//! The policy trusts the key of seed [7; 32]. The seed corpus (`make-corpus.sh`) is signed with
//! that same key, so mutations that keep `bundle.json` intact get past the signature check and
//! exercise the later steps (manifest parsing, entry order, sizes, hashes, index.json, trailer).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sensei_core::progress::Silent;
use sensei_core::signature::{PrivateKey, TrustedKey};
use sensei_core::verify::{Policy, Scope, verify_archive, verify_archive_in};

/// Built once: deriving the public key per input would dominate the cost of short inputs.
static POLICY: LazyLock<Policy> = LazyLock::new(|| Policy {
    trusted: vec![TrustedKey {
        key: PrivateKey::from_seed(&[7; 32]).public(),
        label: "fuzz.pub".into(),
    }],
    threshold: 1,
    detached: vec![],
    expected_name: None,
    release: None,
    // Fixed (2026-01-01T00:00:00Z) so a run is reproducible whatever the clock says; an
    // `expires` the fuzzer writes is judged against it.
    now: jiff::Timestamp::constant(1_767_225_600, 0),
});

fuzz_target!(|data: &[u8]| {
    // Rejections are the expected outcome; only a panic (or a sanitizer report) is a finding.
    let _ = verify_archive(data, &POLICY, &Silent, &mut ());
    // The same pass with a part's rules (files may be skipped, the end may come early).
    let _ = verify_archive_in(Scope::Part, data, &POLICY, &Silent, &mut ());
});
