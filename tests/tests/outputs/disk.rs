//! The disk preflight: a full disk is found once the plan knows every size, before any
//! layer is downloaded (a small tmpfs as the output's filesystem).

use super::*;

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
