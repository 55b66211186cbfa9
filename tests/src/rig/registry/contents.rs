//! What a registry holds, read back over its API: repositories, tags, and the digest a
//! reference names.

use super::Registry;

/// Every manifest media type a registry may hold, for `Accept`.
const MANIFEST_ACCEPT: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

impl Registry {
    /// Repositories in the registry, sorted.
    pub fn catalog(&self) -> Vec<String> {
        // distribution caps a page at 1000 entries and links the next page.
        let mut repos = Vec::new();
        let mut next = Some("/v2/_catalog?n=1000".to_string());
        while let Some(path) = next.take() {
            let reply = self.request(true, "GET", &path, &[]);
            repos.extend(strings(&reply.json_ok("catalog")["repositories"]));
            next = reply
                .header("link")
                .and_then(|l| l.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(url, _)| {
                    // Relative in distribution 2.8; tolerate an absolute link too.
                    url.find("/v2/").map_or(url, |i| &url[i..]).to_string()
                });
        }
        repos.sort();
        repos
    }

    /// Tags of `repo` (e.g. `sensei/api`), sorted; empty if the repository does not exist.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let reply = self.request(true, "GET", &format!("/v2/{repo}/tags/list"), &[]);
        if reply.status == 404 {
            return Vec::new();
        }
        let mut tags = strings(&reply.json_ok(repo)["tags"]);
        tags.sort();
        tags
    }

    /// The digest the registry gives for `reference` (`PATH:TAG`, `PATH@DIGEST`, or `PATH` for
    /// `latest`), from a HEAD accepting OCI and Docker manifests and indexes. `None` if unknown.
    pub fn manifest_digest(&self, reference: &str) -> Option<String> {
        let (repo, tag) = split_reference(reference);
        let accept = MANIFEST_ACCEPT.map(|t| format!("Accept: {t}"));
        let reply = self.request(
            true,
            "HEAD",
            &format!("/v2/{repo}/manifests/{tag}"),
            &accept,
        );
        match reply.status {
            200 => Some(
                reply
                    .header("docker-content-digest")
                    .unwrap_or_else(|| panic!("{reference}: no Docker-Content-Digest"))
                    .to_string(),
            ),
            404 => None,
            s => panic!("HEAD {reference} on {}: status {s}", self.host()),
        }
    }
}

/// `("repo", "tag-or-digest")` of `repo:tag`, `repo@digest` or `repo`.
fn split_reference(reference: &str) -> (&str, &str) {
    if let Some((repo, digest)) = reference.split_once('@') {
        return (repo, digest);
    }
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split() {
        assert_eq!(split_reference("a/b:1"), ("a/b", "1"));
        assert_eq!(split_reference("a/b@sha256:x"), ("a/b", "sha256:x"));
        assert_eq!(split_reference("a/b"), ("a/b", "latest"));
    }
}
