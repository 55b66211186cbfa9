//! skopeo against a registry: its flags for this registry's TLS and credentials, and seeding
//! a registry with fixture images (`skopeo copy --all --preserve-digests`).

use std::process::Command;

use super::Registry;
use crate::bins::run_ok;
use crate::fixtures::FixtureSet;
use crate::rig::tools::require;

impl Registry {
    /// Flags for a `skopeo` command reading from this registry (`copy` source).
    pub fn skopeo_src_args(&self) -> Vec<String> {
        self.skopeo_flags("src-")
    }

    /// Flags for a `skopeo` command writing to this registry (`copy` destination).
    pub fn skopeo_dest_args(&self) -> Vec<String> {
        self.skopeo_flags("dest-")
    }

    /// Flags for single-image skopeo commands (`inspect`, `delete`, `list-tags`).
    pub fn skopeo_args(&self) -> Vec<String> {
        self.skopeo_flags("")
    }

    fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match self.cert_dir() {
            Some(dir) => flags.push(format!("--{prefix}cert-dir={}", dir.display())),
            None => flags.push(format!("--{prefix}tls-verify=false")),
        }
        if let Some((user, password)) = self.credentials() {
            flags.push(format!("--{prefix}creds={user}:{password}"));
        }
        flags
    }
}

/// Copies the image at `source` (a skopeo source such as
/// [`crate::fixtures::FixtureImage::skopeo_source`]) into `registry` as `dest_path_and_tag`
/// (e.g. `sensei/api:1.2.0`) with `skopeo copy --all --preserve-digests`.
pub fn seed(registry: &Registry, source: &str, dest_path_and_tag: &str) {
    let dest = format!("docker://{}/{dest_path_and_tag}", registry.host());
    run_ok(
        Command::new(require("skopeo"))
            .args([
                "copy",
                "--quiet",
                "--insecure-policy",
                "--all",
                "--preserve-digests",
            ])
            .args(registry.skopeo_dest_args())
            .arg(source)
            .arg(&dest),
    );
}

/// Seeds every image of `fixtures` as `PREFIX/NAME:TAG` (the layout ref under `prefix`; no
/// prefix if it is empty). Returns the references written, `HOST/PREFIX/NAME:TAG`, in order.
pub fn seed_fixtures(registry: &Registry, fixtures: &FixtureSet, prefix: &str) -> Vec<String> {
    fixtures
        .images
        .iter()
        .map(|image| {
            let path = if prefix.is_empty() {
                image.layout_ref.clone()
            } else {
                format!("{}/{}", prefix.trim_end_matches('/'), image.layout_ref)
            };
            seed(registry, &image.skopeo_source, &path);
            format!("{}/{path}", registry.host())
        })
        .collect()
}
