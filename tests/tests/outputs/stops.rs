//! Builds stopped by SIGTERM, SIGHUP or SIGINT leave nothing; builds killed outright leave
//! locked temporary files that the next run in that directory removes, never a live run's.

use super::*;

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
