//! A scratch scene for tests that build bundles from their own specs (fixtures, a key pair and
//! a directory), and readers of what a bundle archive holds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::bins::{assert_exit, bundler, create, run, run_ok, stderr, verify};
use crate::fixtures::{FixtureImage, FixtureOptions, FixtureSet, write_fixtures};
use crate::rig::{Registry, seed};

/// Fixtures, a key pair and a scratch directory; no bundle yet (see [`Built`] for that).
#[derive(Debug)]
pub struct Scene {
    pub dir: tempfile::TempDir,
    pub fixtures: FixtureSet,
    pub key: PathBuf,
    pub public: PathBuf,
}

impl Scene {
    pub fn new() -> Self {
        Self::with_options(&FixtureOptions::default())
    }

    /// Fixtures in `src/`, the key pair `release.key` / `release.pub`.
    pub fn with_options(opts: &FixtureOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixtures = write_fixtures(&dir.path().join("src"), opts).expect("fixtures");
        let prefix = dir.path().join("release");
        run_ok(bundler().arg("keygen").arg("--out").arg(&prefix));
        Self {
            key: prefix.with_extension("key"),
            public: prefix.with_extension("pub"),
            dir,
            fixtures,
        }
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a spec `name` listing `images` (after optional extra YAML) and returns its path.
    pub fn spec(&self, name: &str, images: &[String], extra: &str) -> PathBuf {
        let mut text = format!("name: sensei\nversion: 1.2.0\n{extra}");
        text.push_str(if images.is_empty() {
            "images: []\n"
        } else {
            "images:\n"
        });
        for i in images {
            text.push_str(&format!("  - {i}\n"));
        }
        let path = self.path(name);
        fs::write(&path, text).expect("write spec");
        path
    }

    /// `spec.yaml`, listing only `reference`.
    pub fn spec_of(&self, reference: &str) -> PathBuf {
        self.spec("spec.yaml", &[reference.to_owned()], "")
    }

    /// Seeds the fixture image `layout_ref` (e.g. `api:1.2.0`) into `registry` as
    /// `sensei/<layout_ref>`; returns the fixture.
    pub fn seed(&self, registry: &Registry, layout_ref: &str) -> &FixtureImage {
        let image = self
            .fixtures
            .image(layout_ref)
            .unwrap_or_else(|| panic!("no fixture image {layout_ref}"));
        seed(
            registry,
            &image.skopeo_source,
            &format!("sensei/{layout_ref}"),
        );
        image
    }

    /// `sensei-bundler create` signed with the scene's key, with no Docker config unless `args`
    /// names one.
    pub fn create(&self, spec: &Path, out: &Path, args: &[&str]) -> Output {
        run(create(spec, &self.key, out)
            .env("DOCKER_CONFIG", self.path("no-docker-config"))
            .args(args))
    }

    /// Verifies `bundle` with the scene's public key, asserting success; returns the JSON report.
    pub fn verifies(&self, bundle: &Path) -> serde_json::Value {
        let out = verify(bundle, &self.public, &["--json"]);
        assert_exit(&out, 0);
        serde_json::from_slice(&out.stdout).expect("verify --json")
    }
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

/// One file of a bundle archive (`tar -xOf`).
pub fn tar_file(bundle: &Path, name: &str) -> Vec<u8> {
    let out = run(Command::new("tar").arg("-xOf").arg(bundle).arg(name));
    assert!(out.status.success(), "tar -xOf {name}: {}", stderr(&out));
    out.stdout
}

/// A bundle archive's `bundle.json`.
pub fn bundle_json(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&tar_file(bundle, "bundle.json")).expect("bundle.json")
}

/// Every temporary file or directory a build leaves in `dir`: ours are named
/// `.LABEL.sensei-tmp-PID-…` (`sensei_core::outfile::TEMP_MARK`), the fetch store
/// `.OUT.fetch.sensei-tmp-PID-…`; earlier versions wrote `.OUT.XXXX.partial` and
/// `.sensei-fetch-XXXX`. A leftover check must look for all of them.
pub fn temporary_leftovers(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.contains(".sensei-tmp-") || n.contains("sensei-fetch") || n.ends_with(".partial")
        })
        .collect();
    found.sort();
    found
}

/// A fixture set, a key pair and signed bundles (`.tar` and `.tar.gz`) built from it.
#[derive(Debug)]
pub struct Built {
    pub dir: tempfile::TempDir,
    pub fixtures: FixtureSet,
    pub key: PathBuf,
    pub public: PathBuf,
    pub tar: PathBuf,
    pub tgz: PathBuf,
}

impl Built {
    pub fn new() -> Self {
        Self::with_options(&FixtureOptions::default())
    }

    pub fn with_options(opts: &FixtureOptions) -> Self {
        let Scene {
            dir,
            fixtures,
            key,
            public,
        } = Scene::with_options(opts);
        let tar = dir.path().join("bundle.tar");
        let tgz = dir.path().join("bundle.tar.gz");
        for out in [&tar, &tgz] {
            run_ok(&mut create(&fixtures.spec_path, &key, out));
        }
        Self {
            dir,
            fixtures,
            key,
            public,
            tar,
            tgz,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Verifies `bundle` with the release key, asserting success; returns the report.
    pub fn verifies(&self, bundle: &Path) -> String {
        let out = self.verify(bundle, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} should verify: {}",
            bundle.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sensei-loader verify BUNDLE --key <public>` plus extra args.
    pub fn verify(&self, bundle: &Path, extra: &[&str]) -> Output {
        verify(bundle, &self.public, extra)
    }
}

impl Default for Built {
    fn default() -> Self {
        Self::new()
    }
}
