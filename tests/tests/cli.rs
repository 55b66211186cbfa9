//! The command-line contract through the built binaries: key files, exit codes, messages,
//! countersignatures, `--help`, `--json`, `--dry-run`, and interop of keys and signatures with OpenSSL.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use sensei_tests::bins::{EPOCH, assert_exit, bundler, create, loader, run, run_ok, stderr};
use sensei_tests::scene::Built;

#[test]
fn keygen_writes_openssl_readable_keys_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("rel");
    let out = run_ok(bundler().arg("keygen").arg("--out").arg(&prefix));
    let key = dir.path().join("rel.key");
    let public = dir.path().join("rel.pub");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    run_ok(
        Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(&key),
    );
    // The public key openssl derives from the private key is the .pub we wrote.
    let derived = run_ok(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key),
    );
    assert_eq!(derived, std::fs::read_to_string(&public).unwrap());
    // keyid = sha256 of the raw 32-byte key = the last 32 bytes of the SPKI DER.
    let der = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(&public))
    .stdout;
    let keyid = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&der[der.len() - 32..]))
    };
    assert!(
        out.contains(&keyid),
        "keygen should print the keyid {keyid}: {out}"
    );
    let again = run(bundler().arg("keygen").arg("--out").arg(&prefix));
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn bundle_signature_verifies_with_openssl_as_format_md_describes() {
    let b = Built::new();
    let x = b.path().join("x");
    std::fs::create_dir(&x).unwrap();
    run_ok(Command::new("tar").arg("-xf").arg(&b.tar).arg("-C").arg(&x));
    let sigs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(x.join("bundle.sig")).unwrap()).unwrap();
    let sig_b64 = sigs[0]["sig"].as_str().unwrap();
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .unwrap();
    std::fs::write(b.path().join("sig.bin"), sig).unwrap();
    let mut msg = b"sensei-bundle-signature-v1\n".to_vec();
    msg.extend(std::fs::read(x.join("bundle.json")).unwrap());
    std::fs::write(b.path().join("msg"), msg).unwrap();
    let out = run(Command::new("openssl")
        .args(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey"])
        .arg(&b.public)
        .arg("-sigfile")
        .arg(b.path().join("sig.bin"))
        .arg("-in")
        .arg(b.path().join("msg")));
    assert!(
        out.status.success(),
        "openssl rejected our signature: {}",
        stderr(&out)
    );
}

#[test]
fn countersignature_meets_a_threshold_of_two() {
    let b = Built::new();
    let second = b.path().join("security");
    run_ok(bundler().arg("keygen").arg("--out").arg(&second));
    let sec_pub = b.path().join("security.pub");
    let args = |extra: &[&str]| {
        let mut c = loader();
        c.arg("verify")
            .arg(&b.tgz)
            .arg("--key")
            .arg(&b.public)
            .arg("--key")
            .arg(&sec_pub)
            .args(extra);
        c
    };
    let before = run(&mut args(&["--threshold", "2"]));
    assert_eq!(before.status.code(), Some(1));
    assert!(
        stderr(&before).contains("1 trusted signature(s), 2 required"),
        "{}",
        stderr(&before)
    );
    let bytes_before = std::fs::read(&b.tgz).unwrap();
    run_ok(
        bundler()
            .arg("sign")
            .arg(&b.tgz)
            .arg("--key")
            .arg(b.path().join("security.key")),
    );
    assert_eq!(
        std::fs::read(&b.tgz).unwrap(),
        bytes_before,
        "countersigning must not rewrite the archive"
    );
    assert!(b.path().join("bundle.tar.gz.sig").is_file());
    // BUNDLE.sig beside the archive is read automatically.
    let text = run_ok(&mut args(&["--threshold", "2"]));
    assert!(text.contains("2 trusted, 2 required"), "{text}");
    // Named explicitly works too, and from another place.
    let moved = b.path().join("elsewhere.sig");
    std::fs::rename(b.path().join("bundle.tar.gz.sig"), &moved).unwrap();
    assert_eq!(run(&mut args(&["--threshold", "2"])).status.code(), Some(1));
    run_ok(&mut args(&[
        "--threshold",
        "2",
        "--signature",
        moved.to_str().unwrap(),
    ]));
}

#[test]
fn create_input_errors_exit_2_and_name_the_problem() {
    let b = Built::new();
    let missing = run(bundler()
        .args(["create", "-f", "/nonexistent/spec.yaml", "-o"])
        .arg(b.path().join("o.tar")));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("/nonexistent/spec.yaml"),
        "{}",
        stderr(&missing)
    );

    let spec = std::fs::read_to_string(&b.fixtures.spec_path).unwrap();
    let typo = b.fixtures.spec_path.with_file_name("typo.yaml");
    std::fs::write(
        &typo,
        spec.replacen("layoutRef: api:1.2.0", "layoutRfe: api:1.2.0", 1),
    )
    .unwrap();
    let out = run(bundler()
        .arg("create")
        .arg("-f")
        .arg(&typo)
        .arg("-o")
        .arg(b.path().join("o.tar")));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("typo.yaml") && stderr(&out).contains("layoutRfe"),
        "{}",
        stderr(&out)
    );

    let wrong_ref = b.fixtures.spec_path.with_file_name("wrongref.yaml");
    std::fs::write(
        &wrong_ref,
        spec.replacen("layoutRef: api:1.2.0", "layoutRef: nope:9", 1),
    )
    .unwrap();
    let out = run(bundler()
        .arg("create")
        .arg("-f")
        .arg(&wrong_ref)
        .arg("-o")
        .arg(b.path().join("o.tar")));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nope:9") && stderr(&out).contains("api:1.2.0"),
        "names what the layout has: {}",
        stderr(&out)
    );
    assert!(!b.path().join("o.tar").exists());

    let bad_key = run(bundler()
        .arg("create")
        .arg("-f")
        .arg(&b.fixtures.spec_path)
        .arg("--key")
        .arg(&b.public)
        .arg("-o")
        .arg(b.path().join("o.tar")));
    assert_eq!(bad_key.status.code(), Some(2));
    assert!(
        stderr(&bad_key).contains("public key was given where a private key is needed"),
        "{}",
        stderr(&bad_key)
    );
}

#[test]
fn a_corrupt_source_blob_fails_with_exit_3_and_leaves_no_output() {
    let b = Built::new();
    // Corrupt the api layer in the source layout, keeping its size.
    let api = b.fixtures.image("api:1.2.0").unwrap();
    let layer = &api.blobs[1];
    let path = b
        .fixtures
        .layout_dir
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out_path = b.path().join("corrupt.tar.gz");
    let out = run(bundler()
        .arg("create")
        .arg("-f")
        .arg(&b.fixtures.spec_path)
        .arg("--key")
        .arg(&b.key)
        .arg("-o")
        .arg(&out_path));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(layer.as_str()),
        "names the digest: {}",
        stderr(&out)
    );
    assert!(!out_path.exists(), "no output on failure");
    let leftovers = sensei_tests::scene::temporary_leftovers(b.path());
    assert!(
        leftovers.is_empty(),
        "temporary file left behind: {leftovers:?}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let b = Built::new();
    let out_path = b.path().join("dry.tar");
    let text = run_ok(
        bundler()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg("create")
            .arg("--dry-run")
            .arg("-f")
            .arg(&b.fixtures.spec_path)
            .arg("-o")
            .arg(&out_path),
    );
    assert!(!out_path.exists());
    for img in &b.fixtures.images {
        assert!(
            text.contains(&img.reference) && text.contains(&img.digest),
            "{text}"
        );
    }
    let json = run_ok(
        bundler()
            .arg("create")
            .arg("--dry-run")
            .arg("--json")
            .arg("-f")
            .arg(&b.fixtures.spec_path),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["images"].as_array().unwrap().len(),
        b.fixtures.images.len()
    );
}

#[test]
fn inspect_needs_no_key_and_says_unverified() {
    let b = Built::new();
    let text = run_ok(loader().arg("inspect").arg(&b.tgz));
    assert!(text.starts_with("UNVERIFIED"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(loader().arg("inspect").arg("--json").arg(&b.tar))).unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["manifest"]["name"], "demo");
}

#[test]
fn verify_json_is_one_document_and_usage_errors_exit_2() {
    let b = Built::new();
    let v: serde_json::Value = serde_json::from_str(&run_ok(
        loader()
            .arg("verify")
            .arg(&b.tar)
            .arg("--key")
            .arg(&b.public)
            .arg("--json"),
    ))
    .unwrap();
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["report"]["signatures"][0]["status"], "trusted");
    let no_key = run(loader().arg("verify").arg(&b.tar));
    assert_eq!(no_key.status.code(), Some(2));
    let missing = run(loader()
        .arg("verify")
        .arg(b.path().join("nope.tar"))
        .arg("--key")
        .arg(&b.public));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("nope.tar"));
    let private_as_public = run(loader().arg("verify").arg(&b.tar).arg("--key").arg(&b.key));
    assert_eq!(private_as_public.status.code(), Some(2));
    assert!(
        stderr(&private_as_public).contains("pass the .pub file"),
        "{}",
        stderr(&private_as_public)
    );
}

#[test]
fn help_teaches_commands_and_exit_codes() {
    for (bin, subs) in [
        (
            bundler as fn() -> Command,
            &["keygen", "create", "sign"][..],
        ),
        (loader, &["verify", "inspect"][..]),
    ] {
        let top = run_ok(bin().arg("--help"));
        assert!(top.contains("Exit codes"), "{top}");
        for sub in subs {
            let h = run_ok(bin().arg(sub).arg("--help"));
            assert!(h.contains("Usage:"), "{sub}: {h}");
        }
    }
    let create = run_ok(bundler().args(["create", "--help"]));
    for flag in [
        "--file",
        "--output",
        "--version",
        "--key",
        "--platform",
        "--concurrency",
        "--ca-file",
        "--plain-http",
        "--registry-config",
        "--json",
        "--quiet",
        "--dry-run",
    ] {
        assert!(create.contains(flag), "create --help lacks {flag}");
    }
    let bad = run(bundler().arg("create").arg("--no-such-flag"));
    assert_eq!(bad.status.code(), Some(2));
}

/// Every command's `--help` ends with its exit codes and examples that can be copied as they
/// stand on an 80-column terminal: each example is a command line, or a continuation of the
/// one before it (which ends in ` \`), never a fragment that clap wrapped onto a line of its own.
#[test]
fn help_examples_are_whole_commands_on_a_narrow_terminal() {
    for (name, bin, subs) in [
        (
            "sensei-bundler",
            bundler as fn() -> Command,
            &["", "keygen", "create", "sign"][..],
        ),
        (
            "sensei-loader",
            loader,
            &["", "verify", "inspect", "push", "upgrade"][..],
        ),
    ] {
        for sub in subs {
            let mut cmd = bin();
            cmd.env("COLUMNS", "80");
            if !sub.is_empty() {
                cmd.arg(sub);
            }
            let help = run_ok(cmd.arg("--help"));
            let what = format!("{name} {sub} --help");
            assert!(
                help.contains("Exit codes: 0 "),
                "{what} lacks exit codes:\n{help}"
            );
            let examples: Vec<&str> = help
                .lines()
                .skip_while(|l| *l != "Examples:")
                .skip(1)
                .take_while(|l| !l.trim().is_empty())
                .collect();
            assert!(!examples.is_empty(), "{what} lacks examples:\n{help}");
            let mut continued = false;
            for line in &examples {
                assert!(line.len() <= 80, "{what}: longer than 80 columns: {line}");
                if continued {
                    assert!(
                        line.starts_with("      --"),
                        "{what}: bad continuation: {line}"
                    );
                } else {
                    let command = line.strip_prefix("  ").unwrap_or("");
                    assert!(
                        command.starts_with(name) || command.starts_with("printf "),
                        "{what}: not a command (wrapped?): {line:?}\n{help}"
                    );
                }
                continued = line.ends_with(" \\");
            }
            assert!(
                !continued,
                "{what}: the last example ends in a continuation"
            );
        }
    }
}

#[test]
fn sign_and_inspect_refuse_what_is_not_a_bundle() {
    let b = Built::new();
    let sign = run(bundler()
        .arg("sign")
        .arg(&b.fixtures.spec_path)
        .arg("--key")
        .arg(&b.key));
    assert_eq!(sign.status.code(), Some(2));
    assert!(
        stderr(&sign).contains("not a Sensei bundle"),
        "{}",
        stderr(&sign)
    );
    let inspect = run(loader().arg("inspect").arg(&b.fixtures.spec_path));
    assert_eq!(inspect.status.code(), Some(1));
    // An extracted directory that lost bundle.sig can still be looked at.
    let dir = b.path().join("x");
    std::fs::create_dir(&dir).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&b.tar)
            .arg("-C")
            .arg(&dir),
    );
    std::fs::remove_file(dir.join("bundle.sig")).unwrap();
    let text = run_ok(loader().arg("inspect").arg(&dir));
    assert!(text.contains("signatures claimed: 0"), "{text}");
}

#[test]
fn a_bad_ca_file_exits_2_naming_the_file_before_any_connection() {
    let b = Built::new();
    let not_pem = b.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let missing = b.path().join("missing-ca.pem");
    // Port 9 (discard) on loopback: nothing listens there, so a connection attempt would fail
    // with exit 3; a CA problem must be found first, as bad input (exit 2).
    for ca in [&not_pem, &missing] {
        let out_tar = b.path().join("o.tar");
        let created = run(create(&b.fixtures.spec_path, &b.key, &out_tar)
            .arg("--ca-file")
            .arg(ca));
        let pushed = run(loader()
            .arg("push")
            .arg(&b.tar)
            .args(["--registry", "127.0.0.1:9", "--key"])
            .arg(&b.public)
            .arg("--ca-file")
            .arg(ca));
        for out in [&created, &pushed] {
            assert_exit(out, 2);
            let err = stderr(out);
            assert!(err.contains(&ca.display().to_string()), "{err}");
        }
        assert!(!out_tar.exists());
        if ca == &not_pem {
            let err = stderr(&pushed);
            assert!(
                err.contains("--ca-file")
                    && err.contains("holds no PEM certificate")
                    && err.contains("-----BEGIN CERTIFICATE-----")
                    && !err.contains("bundle.tar"),
                "names the flag, not the bundle, and says what the file must hold: {err}"
            );
        }
    }
}

/// The help paragraph of `flag` in a `--help` text, whitespace folded (clap wraps it to fit).
fn flag_help(help: &str, flag: &str) -> String {
    // An option's own line: indented, starting with a dash, naming the flag as a word (prose
    // in the about text may mention the flag too).
    let mut lines = help.lines().skip_while(|l| {
        let t = l.trim_start();
        !(l.starts_with("  ") && t.starts_with('-') && t.split([' ', ',']).any(|w| w == flag))
    });
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("{flag} not in:\n{help}"));
    // Short help sits after the flag on its line; long help on the lines below it.
    let after = head.trim_start().split_once("  ").map_or("", |(_, h)| h);
    // Long help is indented further than the option lines, with blank lines between its
    // paragraphs (`[default: 8]` is one of them).
    let below = lines.take_while(|l| l.trim().is_empty() || l.starts_with("          "));
    std::iter::once(after)
        .chain(below)
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The registry access and output flags are defined once (`sensei_cli::flags`): both binaries
/// show them with the same help text, and `--plain-http` keeps each binary's form.
#[test]
fn both_binaries_show_the_shared_flags_with_the_same_help() {
    let create = run_ok(bundler().args(["create", "--help"]));
    let push = run_ok(loader().args(["push", "--help"]));
    let upgrade = run_ok(loader().args(["upgrade", "--help"]));
    for flag in ["--ca-file", "--concurrency", "--json", "--quiet"] {
        let shown = flag_help(&create, flag);
        assert!(!shown.is_empty(), "{flag} has no help");
        assert_eq!(
            shown,
            flag_help(&push, flag),
            "{flag}: create and push differ"
        );
        if flag != "--quiet" {
            assert_eq!(
                shown,
                flag_help(&upgrade, flag),
                "{flag}: create and upgrade differ"
            );
        }
    }
    assert_eq!(
        flag_help(&create, "--registry-config"),
        flag_help(&push, "--registry-config")
    );
    assert!(flag_help(&create, "--ca-file").contains("repeatable"));
    assert!(create.contains("--plain-http <HOST[:PORT]>"), "{create}");
    assert!(
        push.contains("--plain-http") && !push.contains("--plain-http <"),
        "{push}"
    );
    let (b, l) = (
        flag_help(&create, "--plain-http"),
        flag_help(&push, "--plain-http"),
    );
    assert!(
        b.starts_with("Speak plain HTTP, not HTTPS, to")
            && l.starts_with("Speak plain HTTP, not HTTPS, to"),
        "{b} / {l}"
    );
    // The same validation: a URL is not a host, a concurrency out of range is refused.
    let bad = run(bundler().args(["create", "-f", "x.yaml", "--plain-http", "http://h:5000"]));
    assert_exit(&bad, 2);
    assert!(
        stderr(&bad).contains("without the http:// scheme"),
        "{}",
        stderr(&bad)
    );
    for bin in [bundler as fn() -> Command, loader] {
        let sub = if bin().get_program().to_string_lossy().contains("bundler") {
            "create"
        } else {
            "push"
        };
        let bad = run(bin().args([sub, "--concurrency", "65"]));
        assert_exit(&bad, 2);
        assert!(
            stderr(&bad).contains("is not a number from 1 to 64"),
            "{}",
            stderr(&bad)
        );
    }
}
