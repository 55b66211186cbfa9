//! Path flags naming a directory or a missing file exit 2 naming the flag, in both binaries;
//! a pipe given to push is an input error, and verify reads it.

use super::*;

#[test]
fn path_flags_naming_directories_or_missing_files_exit_2_naming_the_flag() {
    let scene = Scene::new();
    let spec = scene.fixtures.spec_path.clone();
    let dir = scene.path("d");
    fs::create_dir(&dir).unwrap();
    let missing = scene.path("missing");
    let bundle = scene.path("b.tar");
    assert_exit(&run(&mut create_cmd(&scene, &spec, &bundle)), 0);
    let d = dir.to_str().unwrap();
    let m = missing.to_str().unwrap();
    let s = spec.to_str().unwrap();
    let k = scene.key.to_str().unwrap();
    let p = scene.public.to_str().unwrap();
    let b = bundle.to_str().unwrap();
    let out = scene.path("o.tar");
    let o = out.to_str().unwrap();
    let cases: Vec<(Command, &str)> = vec![
        (
            bundler_args(&["create", "-f", d, "--key", k, "-o", o]),
            "-f",
        ),
        (
            bundler_args(&["create", "-f", m, "--key", k, "-o", o]),
            "-f",
        ),
        (
            bundler_args(&["create", "-f", s, "--key", d, "-o", o]),
            "--key",
        ),
        (
            bundler_args(&["create", "-f", s, "--key", k, "--ca-file", d, "-o", o]),
            "--ca-file",
        ),
        (
            bundler_args(&[
                "create",
                "-f",
                s,
                "--key",
                k,
                "--registry-config",
                m,
                "-o",
                o,
            ]),
            "--registry-config",
        ),
        (
            bundler_args(&["create", "-f", s, "--key", k, "--concurrency", "0", "-o", o]),
            "--concurrency",
        ),
        (
            bundler_args(&[
                "create",
                "-f",
                s,
                "--key",
                k,
                "--concurrency",
                "4294967296",
                "-o",
                o,
            ]),
            "--concurrency",
        ),
        (
            bundler_args(&[
                "create",
                "-f",
                s,
                "--key",
                k,
                "--plain-http",
                "http://x:5000",
                "-o",
                o,
            ]),
            "without the http:// scheme",
        ),
        (
            bundler_args(&["create", "-f", s, "--key", k, "-o", &format!("{m}/x.tar")]),
            "does not exist",
        ),
        (bundler_args(&["sign", b, "--key", d]), "--key"),
        (loader_args(&["verify", b, "--key", d]), "--key"),
        (
            loader_args(&["verify", b, "--key", p, "--signature", d]),
            "--signature",
        ),
        (loader_args(&["verify", m, "--key", p]), "BUNDLE"),
        (
            loader_args(&["push", b, "--key", d, "--registry", "127.0.0.1:1"]),
            "--key",
        ),
        (
            loader_args(&[
                "push",
                b,
                "--key",
                p,
                "--signature",
                m,
                "--registry",
                "127.0.0.1:1",
            ]),
            "--signature",
        ),
        (
            loader_args(&[
                "push",
                b,
                "--key",
                p,
                "--ca-file",
                d,
                "--registry",
                "127.0.0.1:1",
            ]),
            "--ca-file",
        ),
        (
            loader_args(&[
                "push",
                b,
                "--key",
                p,
                "--registry-config",
                d,
                "--registry",
                "127.0.0.1:1",
            ]),
            "--registry-config",
        ),
        (
            loader_args(&[
                "push",
                b,
                "--key",
                p,
                "--concurrency",
                "65",
                "--registry",
                "127.0.0.1:1",
            ]),
            "--concurrency",
        ),
        (
            loader_args(&[
                "upgrade",
                b,
                "--key",
                p,
                "--registry",
                "127.0.0.1:1",
                "--release",
                "r",
                "--kubeconfig",
                m,
            ]),
            "--kubeconfig",
        ),
    ];
    for (mut cmd, says) in cases {
        let out = run(&mut cmd);
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(says), "{cmd:?}: {}", stderr(&out));
    }
    assert!(!out.exists());
}

fn bundler_args(args: &[&str]) -> Command {
    let mut c = bundler();
    c.args(args);
    c
}

fn loader_args(args: &[&str]) -> Command {
    let mut c = loader();
    c.args(args);
    c
}

#[test]
fn a_pipe_given_to_push_is_an_input_error_and_verify_reads_it() {
    let scene = Scene::new();
    let bundle = scene.path("b.tar");
    assert_exit(
        &run(&mut create_cmd(&scene, &scene.fixtures.spec_path, &bundle)),
        0,
    );
    let registry = Registry::plain();
    for command in ["push", "verify"] {
        // `cat bundle.tar | sensei-loader push /dev/stdin ...`
        let mut child = loader()
            .arg(command)
            .arg("/dev/stdin")
            .arg("--key")
            .arg(&scene.public)
            .args(if command == "push" {
                vec![
                    "--registry".to_owned(),
                    registry.host(),
                    "--plain-http".into(),
                ]
            } else {
                vec![]
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let bytes = fs::read(&bundle).unwrap();
        let feeder = std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = stdin.write_all(&bytes); // push stops reading early
        });
        let o = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        if command == "push" {
            assert_exit(&o, 2);
            assert!(
                stderr(&o).contains("is a pipe") && stderr(&o).contains("seekable"),
                "{}",
                stderr(&o)
            );
        } else {
            assert_exit(&o, 0);
        }
    }
    assert!(registry.catalog().is_empty(), "nothing was pushed");
}
