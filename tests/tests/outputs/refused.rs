//! What `create -o` and `sign -o` refuse to replace (devices, FIFOs, links, directories, the
//! build's own inputs, someone else's file without `--force`), left untouched; a bundle of ours
//! is replaced.

use super::*;

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
