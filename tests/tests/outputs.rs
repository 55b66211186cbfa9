//! Never destroy what is not ours: what `create -o` and `sign -o` refuse to replace, what an
//! interrupted or killed build leaves (nothing, or locked files the next run sweeps), the disk
//! preflight on a small tmpfs, path flags that exit 2 naming the flag, and a pipe given to push.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sensei_tests::bins::{assert_exit, bundler, create, loader, run, run_ok, stderr};
use sensei_tests::fixtures::FixtureOptions;
use sensei_tests::rig::{FaultProxy, Registry};
use sensei_tests::scene::{Scene, temporary_leftovers};

const MIB: u64 = 1024 * 1024;

fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(fs::read(path).unwrap()))
}

/// Every name in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Tests that make device nodes or mount a tmpfs say so when they cannot, instead of passing.
fn require_root(what: &str) {
    let uid = run_ok(Command::new("id").arg("-u"));
    assert_eq!(
        uid.trim(),
        "0",
        "this test needs root to {what}; run it as root (scripts/test.sh does in CI)"
    );
}

fn create_cmd(scene: &Scene, spec: &Path, out: &Path) -> Command {
    let mut cmd = create(spec, &scene.key, out);
    cmd.env("DOCKER_CONFIG", scene.path("no-docker-config"));
    cmd
}

#[test]
fn outputs_that_are_devices_fifos_links_directories_or_inputs_are_refused_and_left_untouched() {
    require_root("make a device node with mknod");
    let scene = Scene::new();
    let spec = &scene.fixtures.spec_path;
    let dir = scene.path("out");
    fs::create_dir(&dir).unwrap();

    let device = dir.join("null");
    run_ok(Command::new("mknod").arg(&device).args(["c", "1", "3"]));
    let fifo = dir.join("fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let precious = dir.join("precious.txt");
    fs::write(&precious, b"not ours").unwrap();
    let link = dir.join("link.tar");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let subdir = dir.join("sub");
    fs::create_dir(&subdir).unwrap();

    for (out, says) in [
        (&device, "character device"),
        (&fifo, "FIFO"),
        (&link, "symbolic link"),
        (&subdir, "directory"),
    ] {
        let o = run(&mut create_cmd(&scene, spec, out));
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("-o {}", out.display())) && err.contains(says),
            "{err}"
        );
    }
    use std::os::unix::fs::FileTypeExt as _;
    assert!(
        fs::symlink_metadata(&device)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&precious).unwrap(), b"not ours");
    assert_eq!(names(&subdir).len(), 0);

    // Inputs: the key, the spec, and a path inside the spec's chart directory.
    let key_before = sha256_file(&scene.key);
    let spec_before = sha256_file(spec);
    for (out, flag) in [
        (scene.key.clone(), "--key"),
        (spec.clone(), "-f"),
        (scene.fixtures.chart_dir.join("bundle.tar"), "chart"),
    ] {
        let o = run(&mut create_cmd(&scene, spec, &out));
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(flag), "{}", stderr(&o));
    }
    assert_eq!(sha256_file(&scene.key), key_before);
    assert_eq!(sha256_file(spec), spec_before);
    assert!(!scene.fixtures.chart_dir.join("bundle.tar").exists());

    // sign -o: never over the key or the bundle.
    let bundle = dir.join("b.tar");
    assert_exit(&run(&mut create_cmd(&scene, spec, &bundle)), 0);
    let bundle_before = sha256_file(&bundle);
    for out in [&scene.key, &bundle, &device] {
        let o = run(bundler()
            .args(["sign", "--key"])
            .arg(&scene.key)
            .arg(&bundle)
            .arg("-o")
            .arg(out));
        assert_exit(&o, 2);
    }
    assert_eq!(sha256_file(&bundle), bundle_before);
    assert_eq!(sha256_file(&scene.key), key_before);
    assert!(
        temporary_leftovers(&dir).is_empty(),
        "{:?}",
        temporary_leftovers(&dir)
    );
}

#[test]
fn an_existing_bundle_is_replaced_but_another_file_only_with_force() {
    let scene = Scene::new();
    let spec = &scene.fixtures.spec_path;
    let out = scene.path("b.tar");
    assert_exit(&run(&mut create_cmd(&scene, spec, &out)), 0);
    // Ours: replaced (same content: the build is reproducible).
    let first = sha256_file(&out);
    assert_exit(&run(&mut create_cmd(&scene, spec, &out)), 0);
    assert_eq!(sha256_file(&out), first);

    let notes = scene.path("notes.tar");
    fs::write(&notes, b"my notes").unwrap();
    let o = run(&mut create_cmd(&scene, spec, &notes));
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(fs::read(&notes).unwrap(), b"my notes");
    assert_exit(&run(create_cmd(&scene, spec, &notes).arg("--force")), 0);
    assert_eq!(sha256_file(&notes), first);
}

/// Polls until `pred` holds or the child exits; true if `pred` held while the child ran.
fn wait_while_running(child: &mut Child, limit: Duration, pred: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pred() {
            return child.try_wait().unwrap().is_none();
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("nothing happened within {limit:?}");
}

fn signal(child: &Child, sig: &str) {
    run_ok(Command::new("kill").args(["-s", sig, &child.id().to_string()]));
}

/// A temporary file of ours with some bytes in it (the build is under way).
fn writing(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().filter_map(Result::ok).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.contains(".sensei-tmp-")
            && (e.metadata().is_ok_and(|m| m.is_file() && m.len() > MIB)
                || (e.path().is_dir()
                    && fs::read_dir(e.path())
                        .unwrap()
                        .filter_map(Result::ok)
                        .any(|f| f.metadata().is_ok_and(|m| m.len() > MIB))))
    })
}

#[test]
fn signals_stop_create_cleanly_and_the_next_run_sweeps_what_a_kill_left() {
    let scene = Scene::with_options(&FixtureOptions {
        big_layer_bytes: 400 * MIB,
        ..FixtureOptions::default()
    });
    let spec = layout_spec(&scene, "big.yaml", &["big:1.0.0"]);
    let dir = scene.path("out");
    fs::create_dir(&dir).unwrap();
    let out = dir.join("b.tar");

    // SIGTERM, SIGHUP, SIGINT while the archive is being written: a message, the shell's exit
    // code, nothing left.
    for (sig, code, name) in [
        ("TERM", 143, "SIGTERM"),
        ("HUP", 129, "SIGHUP"),
        ("INT", 130, "SIGINT"),
    ] {
        let mut child = create_cmd(&scene, &spec, &out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_while_running(&mut child, Duration::from_secs(60), || writing(&dir)),
            "the build ended before it could be interrupted"
        );
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_exit(&o, code);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("stopped by {name}")) && err.contains("b.tar"),
            "{err}"
        );
        assert_eq!(names(&dir), BTreeSet::new(), "{sig} left files");
    }
    // The same at the start, during planning.
    let mut child = create_cmd(&scene, &spec, &out).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert!(matches!(status.code(), Some(143) | Some(0)), "{status:?}");
    let _ = fs::remove_file(&out);
    assert!(
        temporary_leftovers(&dir).is_empty(),
        "{:?}",
        temporary_leftovers(&dir)
    );

    // SIGKILL leaves the locked files behind; a live run beside them is never touched.
    let mut killed = create_cmd(&scene, &spec, &out).spawn().unwrap();
    assert!(wait_while_running(
        &mut killed,
        Duration::from_secs(60),
        || writing(&dir)
    ));
    killed.kill().unwrap();
    killed.wait().unwrap();
    let stale = temporary_leftovers(&dir);
    assert!(!stale.is_empty(), "a killed run leaves its temporary file");

    // The next run in that directory removes them and says how much it freed.
    let small = layout_spec(&scene, "small.yaml", &["api:1.2.0"]);
    let loud = |out: &Path| {
        let mut c = bundler();
        c.args(["create", "-f"])
            .arg(&small)
            .arg("--key")
            .arg(&scene.key)
            .arg("-o")
            .arg(out)
            .stderr(Stdio::piped());
        c
    };
    let o = run(&mut loud(&dir.join("s.tar")));
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains(&format!("removed {} temporary", stale.len()))
            && stderr(&o).contains("interrupted runs, freeing"),
        "{}",
        stderr(&o)
    );
    assert!(
        temporary_leftovers(&dir).is_empty(),
        "{:?}",
        temporary_leftovers(&dir)
    );

    // A build beside a live one: its sweep leaves the live build's files alone, and both
    // complete.
    let mut a = create_cmd(&scene, &spec, &dir.join("a.tar"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_while_running(&mut a, Duration::from_secs(60), || {
        writing(&dir)
    }));
    let b = run(&mut loud(&dir.join("s2.tar")));
    assert_exit(&b, 0);
    assert!(!stderr(&b).contains("removed"), "{}", stderr(&b));
    assert_exit(&a.wait_with_output().unwrap(), 0);
    assert_eq!(
        names(&dir),
        ["a.tar", "s.tar", "s2.tar"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    scene.verifies(&dir.join("a.tar"));
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_found_before_any_layer_is_downloaded() {
    require_root("mount a small tmpfs");
    let scene = Scene::with_options(&FixtureOptions {
        big_layer_bytes: 64 * MIB,
        ..FixtureOptions::default()
    });
    let registry = Registry::plain();
    let image = scene.seed(&registry, "big:1.0.0").clone();
    let proxy = FaultProxy::in_front_of(&registry);
    // The layers: every blob of the image but its manifest and config, which planning reads.
    let blob_size = |d: &str| {
        fs::metadata(
            scene
                .fixtures
                .layout_dir
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
        .len()
    };
    let biggest = image
        .blobs
        .iter()
        .max_by_key(|d| blob_size(d))
        .unwrap()
        .clone();
    assert!(blob_size(&biggest) >= 64 * MIB);

    let small = scene.path("small");
    fs::create_dir(&small).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&small),
    );
    let _mount = Mount(small.clone());
    let spec = scene.spec_of(&format!("{}/sensei/big:1.0.0", proxy.host()));
    let o = scene.create(
        &spec,
        &small.join("b.tar"),
        &["--plain-http", &proxy.host()],
    );
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("not enough disk space") && err.contains("is free") && err.contains("b.tar"),
        "{err}"
    );
    assert_eq!(
        proxy.count("GET", &biggest),
        0,
        "the big layer was downloaded"
    );
    assert_eq!(names(&small), BTreeSet::new());
}

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

/// A spec listing fixture images (by layout ref) read from the scene's OCI layout.
fn layout_spec(scene: &Scene, name: &str, layout_refs: &[&str]) -> PathBuf {
    let mut text = String::from("name: sensei\nversion: 1.2.0\nimages:\n");
    for r in layout_refs {
        let image = scene.fixtures.image(r).unwrap();
        text.push_str(&format!(
            "  - ref: {}\n    layout: {}\n    layoutRef: {r}\n",
            image.reference,
            scene.fixtures.layout_dir.display()
        ));
    }
    let path = scene.path(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_build_killed_while_downloading_leaves_locked_files_that_the_next_run_removes() {
    let scene = Scene::with_options(&FixtureOptions {
        big_layer_bytes: 128 * MIB,
        ..FixtureOptions::default()
    });
    let registry = Registry::plain();
    scene.seed(&registry, "big:1.0.0");
    let spec = scene.spec_of(&format!("{}/sensei/big:1.0.0", registry.host()));
    let dir = scene.path("out");
    fs::create_dir(&dir).unwrap();
    let build = |out: &str| {
        let mut c = create_cmd(&scene, &spec, &dir.join(out));
        c.args(["--plain-http", &registry.host()])
            .stderr(Stdio::piped());
        c
    };
    // Both are written in place (the layer streams into the archive's temporary file, framed
    // in stored blocks for the .tar.gz): the archive is the only temporary file, no download
    // store beside it.
    for out in ["b.tar", "b.tar.gz"] {
        // Stopped once 8 MiB of the layer have been written somewhere: mid-download.
        let downloading = |child: &mut Child| {
            let id = child.id();
            wait_while_running(child, Duration::from_secs(60), || {
                bytes_written_pid(id) > 8 * MIB
            })
        };
        // SIGTERM mid-download: everything goes with the run.
        let mut child = build(out).spawn().unwrap();
        assert!(
            downloading(&mut child),
            "{out}: ended before it could be stopped"
        );
        signal(&child, "TERM");
        let o = child.wait_with_output().unwrap();
        assert_exit(&o, 143);
        assert_eq!(names(&dir), BTreeSet::new(), "{out}");
        // SIGKILL mid-download: the temporary files stay, locked by nobody; the next run
        // removes them and completes.
        let mut child = build(out).spawn().unwrap();
        assert!(
            downloading(&mut child),
            "{out}: ended before it could be killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let stale = temporary_leftovers(&dir);
        assert!(
            stale.len() == 1 && stale[0].ends_with(".partial"),
            "{out}: {stale:?}"
        );
        let o = run(&mut build(out));
        assert_exit(&o, 0);
        assert_eq!(names(&dir), BTreeSet::from([out.to_owned()]));
        scene.verifies(&dir.join(out));
        fs::remove_file(dir.join(out)).unwrap();
    }
}

/// Bytes process `pid` has written so far (`wchar` of /proc/PID/io: write and pwrite alike).
fn bytes_written_pid(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}
