//! Tests of packaging and reading charts, against real files in temporary directories.

use std::error::Error;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::*;

type TestResult = Result<(), Box<dyn Error>>;

const MTIME: u64 = 1_700_000_000;

const CHART_YAML: &str = "\
apiVersion: v2
version: 1.2.3
name: demo
description: A demo chart
appVersion: \"4.5\"
dependencies:
  - name: sub
    version: 0.1.0
annotations:
  artifacthub.io/images: |
    - name: api
      image: reg.example.com/sensei/api:1.2.3
    - name: worker
      image: reg.example.com/sensei/worker:1.2.3
  images: |
    - reg.example.com/sensei/api:1.2.3
    - docker.io/library/busybox:1.36
";

/// A long name, to exercise the GNU long-name extension (tar's name field holds 100 bytes).
const LONG_DIR: &str = "files/a-directory-name-long-enough-that-the-whole-entry-path/\
                        goes-past-one-hundred-bytes";

fn write(root: &Path, rel: &str, content: &str) -> std::io::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content)
}

/// A chart with templates, a subchart, an ignored backup file, VCS metadata and a long path.
fn sample_chart(root: &Path) -> std::io::Result<()> {
    write(root, "Chart.yaml", CHART_YAML)?;
    write(
        root,
        "values.yaml",
        "replicas: 1\nimage: reg.example.com/sensei/api:1.2.3\n",
    )?;
    write(
        root,
        ".helmignore",
        "# editor leftovers\n*.bak\n/scratch/\n",
    )?;
    write(
        root,
        "templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-demo\n\
         data:\n  replicas: {{ .Values.replicas | quote }}\n  sub: {{ .Values.sub.greeting | quote }}\n",
    )?;
    write(root, "templates/_helpers.tpl", "{{/* nothing yet */}}\n")?;
    write(
        root,
        "templates/NOTES.txt",
        "Installed {{ .Chart.Name }}.\n",
    )?;
    write(root, "templates/configmap.yaml.bak", "stale\n")?;
    write(
        root,
        "scratch/notes.txt",
        "ignored by a rooted directory pattern\n",
    )?;
    write(
        root,
        "charts/sub/Chart.yaml",
        "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
    )?;
    write(root, "charts/sub/values.yaml", "greeting: hello\n")?;
    write(root, ".git/config", "[core]\n")?;
    write(root, &format!("{LONG_DIR}/data.txt"), "long\n")
}

const EXPECTED_ENTRIES: &[&str] = &[
    "demo/.helmignore",
    "demo/Chart.yaml",
    "demo/charts/sub/Chart.yaml",
    "demo/charts/sub/values.yaml",
    "demo/files/a-directory-name-long-enough-that-the-whole-entry-path/goes-past-one-hundred-bytes/data.txt",
    "demo/templates/NOTES.txt",
    "demo/templates/_helpers.tpl",
    "demo/templates/configmap.yaml",
    "demo/values.yaml",
];

fn packaged_sample() -> Result<(tempfile::TempDir, PackagedChart), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    sample_chart(dir.path())?;
    let chart = package_dir(dir.path(), MTIME)?;
    Ok((dir, chart))
}

#[test]
fn packaging_is_reproducible_and_ignores_disk_metadata() -> TestResult {
    let (dir, first) = packaged_sample()?;
    let second = package_dir(dir.path(), MTIME)?;
    assert_eq!(first.content_tgz, second.content_tgz);

    // Touch every file with a different time and loosen a mode: nothing may change.
    let mut when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for rel in [
        "Chart.yaml",
        "values.yaml",
        "templates/configmap.yaml",
        "charts/sub/values.yaml",
    ] {
        when += Duration::from_secs(86_400 * 17);
        fs::File::options()
            .write(true)
            .open(dir.path().join(rel))?
            .set_modified(when)?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            dir.path().join("values.yaml"),
            fs::Permissions::from_mode(0o755),
        )?;
    }
    let third = package_dir(dir.path(), MTIME)?;
    assert_eq!(first, third);

    // The mtime argument is the one input that is meant to show.
    let other = package_dir(dir.path(), MTIME + 1)?;
    assert_ne!(first.content_tgz, other.content_tgz);
    assert_eq!(first.config_json, other.config_json);
    Ok(())
}

#[test]
fn entries_are_prefixed_sorted_and_normalised() -> TestResult {
    let (_dir, chart) = packaged_sample()?;
    let tgz = &chart.content_tgz;
    // gzip header: no flags (so no file name), mtime 0.
    assert_eq!(&tgz[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&tgz[4..8], &[0, 0, 0, 0]);

    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz.as_slice()));
    let mut names = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let header = entry.header();
        assert!(header.entry_type().is_file());
        assert_eq!(header.mode()?, 0o644);
        assert_eq!((header.uid()?, header.gid()?), (0, 0));
        assert_eq!(header.mtime()?, MTIME);
        assert_eq!(header.username()?, Some(""));
        assert_eq!(header.groupname()?, Some(""));
        names.push(entry.path()?.to_string_lossy().into_owned());
    }
    assert_eq!(names, EXPECTED_ENTRIES);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    Ok(())
}

#[test]
fn system_tar_lists_the_package() -> TestResult {
    let (_dir, chart) = packaged_sample()?;
    let out = tempfile::tempdir()?;
    let tgz = out.path().join("demo-1.2.3.tgz");
    fs::write(&tgz, &chart.content_tgz)?;
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&tgz)
        .output()
        .map_err(|e| {
            format!("tar: {e}; GNU tar is needed: run scripts/setup.sh or `apt-get install tar`")
        })?;
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let listed = String::from_utf8(listing.stdout)?;
    assert_eq!(listed.lines().collect::<Vec<_>>(), EXPECTED_ENTRIES);
    Ok(())
}

#[test]
fn reading_the_package_back_gives_the_same_chart() -> TestResult {
    let (_dir, chart) = packaged_sample()?;
    let out = tempfile::tempdir()?;
    let tgz = out.path().join("demo-1.2.3.tgz");
    fs::write(&tgz, &chart.content_tgz)?;
    assert_eq!(read_tgz(&tgz)?, chart);
    assert_eq!(
        from_tgz_bytes(chart.content_tgz.clone(), "https://example.com/demo.tgz")?,
        chart
    );
    Ok(())
}

#[test]
fn metadata_and_canonical_config() -> TestResult {
    let (_dir, chart) = packaged_sample()?;
    assert_eq!(chart.name, "demo");
    assert_eq!(chart.version, semver::Version::new(1, 2, 3));
    assert_eq!(chart.app_version.as_deref(), Some("4.5"));
    let config = String::from_utf8(chart.config_json)?;
    assert!(
        config.starts_with(r#"{"annotations":{"artifacthub.io/images":"- name: api\n"#),
        "{config}"
    );
    assert!(
        config.ends_with(r#","apiVersion":"v2","appVersion":"4.5","dependencies":[{"name":"sub","version":"0.1.0"}],"description":"A demo chart","name":"demo","version":"1.2.3"}"#),
        "{config}"
    );
    Ok(())
}

#[test]
fn annotated_images_from_all_formats() -> TestResult {
    let (_dir, chart) = packaged_sample()?;
    // `images` is read first, then `artifacthub.io/images`; duplicates are dropped.
    assert_eq!(
        chart.annotated_images,
        [
            "reg.example.com/sensei/api:1.2.3",
            "docker.io/library/busybox:1.36",
            "reg.example.com/sensei/worker:1.2.3",
        ]
    );

    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "Chart.yaml",
        "apiVersion: v2\nname: x\nversion: 0.1.0\nannotations:\n  helm.sh/images: \"- name: db\\n  image: reg/db:2\\n\"\n",
    )?;
    assert_eq!(package_dir(dir.path(), 0)?.annotated_images, ["reg/db:2"]);

    write(
        dir.path(),
        "Chart.yaml",
        "apiVersion: v2\nname: x\nversion: 0.1.0\nannotations:\n  images: \"{not: a list}\"\n",
    )?;
    let msg = package_dir(dir.path(), 0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("annotation `images`") && msg.contains("not a list"),
        "{msg}"
    );
    Ok(())
}

/// Packages a one-file chart with this Chart.yaml and returns the error message.
fn chart_yaml_error(chart_yaml: &str) -> Result<(String, String), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    write(dir.path(), "Chart.yaml", chart_yaml)?;
    let origin = dir.path().display().to_string();
    match package_dir(dir.path(), 0) {
        Ok(chart) => Err(format!("expected an error, packaged {}", chart.name).into()),
        Err(e) => Ok((origin, e.to_string())),
    }
}

#[test]
fn errors_name_the_chart_and_the_fix() -> TestResult {
    let empty = tempfile::tempdir()?;
    write(empty.path(), "values.yaml", "a: 1\n")?;
    let msg = package_dir(empty.path(), 0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains(&empty.path().display().to_string()), "{msg}");
    assert!(msg.contains("no Chart.yaml"), "{msg}");

    let (origin, msg) = chart_yaml_error("apiVersion: v2\nname: demo\nversion: latest\n")?;
    assert!(msg.contains(&origin) && msg.contains("\"latest\""), "{msg}");
    assert!(
        msg.contains("Helm requires SemVer 2 chart versions"),
        "{msg}"
    );

    let (origin, msg) = chart_yaml_error("apiVersion: v2\nname: demo\n")?;
    assert!(
        msg.contains(&origin) && msg.contains("no `version`"),
        "{msg}"
    );

    let (_, msg) = chart_yaml_error("apiVersion: v2\nversion: 1.0.0\n")?;
    assert!(msg.contains("no `name`"), "{msg}");

    let (_, msg) = chart_yaml_error("apiVersion: v2\nname: a/b\nversion: 1.0.0\n")?;
    assert!(msg.contains("path separator"), "{msg}");

    let (_, msg) = chart_yaml_error("apiVersion: v3\nname: demo\nversion: 1.0.0\n")?;
    assert!(msg.contains("apiVersion \"v3\""), "{msg}");

    let (_, msg) = chart_yaml_error("apiVersion: v2\nname: demo\nversion: [1\n")?;
    assert!(
        msg.contains("not valid YAML") && msg.contains("line"),
        "{msg}"
    );

    let (_, msg) = chart_yaml_error("- just\n- a list\n")?;
    assert!(msg.contains("not a YAML mapping"), "{msg}");

    // Helm reads a missing apiVersion as v1.
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "Chart.yaml",
        "name: old\nversion: 0.0.1\nappVersion: 1.10\n",
    )?;
    assert_eq!(
        package_dir(dir.path(), 0)?.app_version.as_deref(),
        Some("1.1")
    );
    Ok(())
}

#[test]
fn symlinks_are_refused_unless_ignored() -> TestResult {
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "Chart.yaml",
        "apiVersion: v2\nname: demo\nversion: 1.0.0\n",
    )?;
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("templates-link"))?;
    let msg = package_dir(dir.path(), 0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("templates-link") && msg.contains("symbolic link"),
        "{msg}"
    );

    write(dir.path(), ".helmignore", "templates-link\n")?;
    package_dir(dir.path(), 0)?;
    Ok(())
}

#[test]
fn oversized_chart_is_refused_before_reading() -> TestResult {
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "Chart.yaml",
        "apiVersion: v2\nname: demo\nversion: 1.0.0\n",
    )?;
    // Sparse: large on paper, nothing written.
    fs::File::create(dir.path().join("big.bin"))?.set_len(MAX_CHART_BYTES + 1)?;
    let msg = package_dir(dir.path(), 0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("exceeds the limit"), "{msg}");
    Ok(())
}

/// A `.tgz` with one entry whose raw name is written as given, bypassing the tar crate's checks.
fn tgz_with_raw_entry(name: &[u8], data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, data)?;
    let tar = builder.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar)?;
    gz.finish()
}

#[test]
fn reading_refuses_unsafe_or_foreign_archives() -> TestResult {
    let yaml = b"apiVersion: v2\nname: demo\nversion: 1.0.0\n";
    for (name, expect) in [
        (&b"../Chart.yaml"[..], "`..`"),
        (b"/demo/Chart.yaml", "absolute"),
        (b"Chart.yaml", "outside the chart's top-level directory"),
        (b"demo/templates/Chart.yaml", "no Chart.yaml"),
    ] {
        let tgz = tgz_with_raw_entry(name, yaml)?;
        let msg = from_tgz_bytes(tgz, "origin-x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("origin-x") && msg.contains(expect), "{msg}");
    }
    let ok = from_tgz_bytes(tgz_with_raw_entry(b"./demo/Chart.yaml", yaml)?, "ok")?;
    assert_eq!(ok.name, "demo");

    let msg = from_tgz_bytes(b"<html>not found</html>".to_vec(), "https://x/demo.tgz")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("https://x/demo.tgz") && msg.contains("not gzip"),
        "{msg}"
    );

    let missing = tempfile::tempdir()?.path().join("nope.tgz");
    let msg = read_tgz(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("nope.tgz"), "{msg}");
    Ok(())
}

#[test]
fn read_keeps_foreign_bytes_unchanged() -> TestResult {
    // A chart packaged by someone else (different layout, dir entries, compression level) is
    // stored as is: its digest may already be pinned elsewhere.
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir("other", ".")?;
    let yaml = b"apiVersion: v1\nname: other\nversion: 2.0.0-rc.1+build.5\n";
    let mut header = tar::Header::new_ustar();
    header.set_size(yaml.len() as u64);
    header.set_mode(0o600);
    builder.append_data(&mut header, "other/Chart.yaml", &yaml[..])?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner()?)?;
    let bytes = gz.finish()?;
    let chart = from_tgz_bytes(bytes.clone(), "other")?;
    assert_eq!(chart.content_tgz, bytes);
    assert_eq!(chart.version.to_string(), "2.0.0-rc.1+build.5");
    Ok(())
}

/// Runs the real Helm on our package (the test rig provides it; without it this fails).
#[test]
fn helm_accepts_the_package() -> TestResult {
    let helm = crate::discover::tests::helm();
    let (_dir, chart) = packaged_sample()?;
    let out = tempfile::tempdir()?;
    let tgz = out.path().join("demo-1.2.3.tgz");
    fs::write(&tgz, &chart.content_tgz)?;

    let lint = Command::new(&helm).arg("lint").arg(&tgz).output()?;
    assert!(
        lint.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let template = Command::new(&helm)
        .args(["template", "rel"])
        .arg(&tgz)
        .output()?;
    let rendered = String::from_utf8_lossy(&template.stdout);
    assert!(
        template.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&template.stderr)
    );
    assert!(
        rendered.contains("name: rel-demo") && rendered.contains("sub: \"hello\""),
        "{rendered}"
    );

    // Helm's own view of the metadata agrees with ours.
    let show = Command::new(&helm)
        .args(["show", "chart"])
        .arg(&tgz)
        .output()?;
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("name: demo") && shown.contains("version: 1.2.3"),
        "{shown}"
    );
    Ok(())
}
