//! Gaps found while writing this suite and closed in the verifier: no byte of a bundle escapes the
//! signature, not padding (must be zero) and not header metadata (must be the canonical header);
//! and an extracted bundle whose files or directories others could rewrite after verification.

use super::*;

#[test]
fn data_hidden_in_body_padding() {
    let b = Built::new();
    let e = valid_entries(&b);
    let mut tar = craft::write(&e);
    // oci-layout is 30 bytes: the other 482 bytes of its block are padding no signature covers.
    let i = index_of(&e, "oci-layout");
    let start = craft::header_offset(&e, i) + BLOCK + e[i].body.len();
    let end = craft::header_offset(&e, i + 1);
    assert!(end > start, "no padding to fill");
    tar[start..end].fill(b'X');
    let bundle = write_file(&b, "hostile.tar", &tar);
    let out = b.verify(&bundle, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unsigned data in padding was accepted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-zero bytes in the padding"));
}

#[test]
fn setuid_world_writable_script_owned_by_another_user() {
    let b = Built::new();
    let mut e = valid_entries(&b);
    // `tar -xzf` as root (the manual path) restores mode and owner: user 1000 could then rewrite
    // load-images.sh after it was verified and before root runs it.
    let script = e.last_mut().expect("entries");
    (script.mode, script.uid, script.gid) = (0o6777, 1000, 1000);
    let bundle = write_tar(&b, &e);
    let out = b.verify(&bundle, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a setuid, world-writable load-images.sh owned by uid 1000 was accepted:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("non-canonical tar header (its mode field")
    );
}

#[test]
fn extracted_file_made_writable_by_others_is_rejected() {
    let b = Built::new();
    let dir = b.path().join("x");
    std::fs::create_dir(&dir).expect("mkdir");
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&b.tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar");
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("load-images.sh"),
        std::fs::Permissions::from_mode(0o777),
    )
    .expect("chmod");
    let out = b.verify(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has mode 777"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn extracted_blobs_directory_made_writable_by_others_is_rejected() {
    let b = Built::new();
    let dir = b.path().join("x");
    std::fs::create_dir(&dir).expect("mkdir");
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&b.tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar");
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt;
    // Every file keeps 0644, yet anyone may now swap a verified blob for another.
    let blobs = dir.join("blobs/sha256");
    std::fs::set_permissions(&blobs, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = b.verify(&dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("extracted directory \"blobs/sha256/\" has mode 777"),
        "{stderr}"
    );
    std::fs::set_permissions(&blobs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(b.verify(&dir, &[]).status.code(), Some(0));
}
