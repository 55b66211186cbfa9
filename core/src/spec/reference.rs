//! Image references and registry hosts, checked the way the distribution project's grammar
//! (`distribution/reference`) defines them, so a spec that passes here is one registries accept.
//!
//! ```text
//! reference := name [":" tag] ["@" digest]      -- a bundle needs a tag or a digest
//! name      := [host [":" port] "/"] component ("/" component)*
//! component := [a-z0-9]+ (("." | "_" | "__" | "-"+) [a-z0-9]+)*
//! tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```

use crate::digest::Digest;

/// Longest repository name (host and path) registries accept.
const MAX_NAME_LEN: usize = 255;

/// Checks an image reference: optional host, lowercase path, and a tag or an `@sha256:` digest.
///
/// A reference without either is refused rather than read as `:latest`: a bundle pins what it
/// carries, and `latest` means something else tomorrow.
pub fn validate_reference(s: &str) -> Result<(), String> {
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if let Some(digest) = digest {
        digest
            .parse::<Digest>()
            .map_err(|e| format!("image reference {s:?}: {e}"))?;
    }
    let (name, tag) = split_tag(name_and_tag);
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|e| format!("image reference {s:?}: {e}"))?;
    }
    validate_repository(name).map_err(|e| format!("image reference {s:?}: {e}"))?;
    if tag.is_none() && digest.is_none() {
        return Err(format!(
            "image reference {s:?} has no tag or digest; a bundle pins what it carries, so write \
             e.g. {name}:1.2.0 or {name}@sha256:<digest>"
        ));
    }
    Ok(())
}

/// Checks a repository name without tag or digest (`registry.example.com/charts/sensei`).
pub(crate) fn validate_repository(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the repository name is empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the repository name is {} characters; registries accept at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    let (host, path) = split_host(name);
    if let Some(host) = host {
        validate_host(host)?;
    }
    for component in path.split('/') {
        validate_component(component)?;
    }
    Ok(())
}

/// Checks `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port.
pub fn validate_host(s: &str) -> Result<(), String> {
    if s.contains("://") {
        return Err(format!(
            "{s:?} is not a host: write it without a scheme, e.g. mirror.example.com:5000"
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: an IPv6 address needs a closing \"]\""))?;
        let valid = addr.contains(':')
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !valid {
            return Err(format!("{s:?}: [{addr}] is not an IPv6 address"));
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(format!("{s:?}: expected \":PORT\" after the IPv6 address")),
            },
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(s), None),
        }
    };
    if let Some(port) = port {
        let ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !ok || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "{s:?}: port {port:?} is not a number from 1 to 65535"
            ));
        }
    }
    if let Some(host) = host {
        validate_dns_name(host).map_err(|e| format!("{s:?} is not a host[:port]: {e}"))?;
    }
    Ok(())
}

/// The form two spellings of one image share, for finding duplicates: Docker Hub short names
/// expanded (`nginx:1.25` → `docker.io/library/nginx:1.25`), `index.docker.io` folded into
/// `docker.io`. Assumes `s` passed [`validate_reference`].
pub(crate) fn canonical(s: &str) -> String {
    let (host, rest) = split_host(s);
    let host = match host {
        None | Some("index.docker.io") => "docker.io",
        Some(host) => host,
    };
    // Only the path before any tag or digest decides whether Hub's "library/" applies.
    let path_end = rest.find([':', '@']).unwrap_or(rest.len());
    if host == "docker.io" && !rest[..path_end].contains('/') {
        format!("docker.io/library/{rest}")
    } else {
        format!("{host}/{rest}")
    }
}

/// An image reference split into registry host, repository path, tag and digest, with Docker
/// Hub's short names normalised (`nginx:1.25` → host `docker.io`, path `library/nginx`). This is
/// what the bundler pulls from and what push maps onto the target registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// `registry.example.com` or `127.0.0.1:5000`; `docker.io` for Docker Hub.
    pub host: String,
    /// The repository path inside the registry (`sensei/api`, `library/nginx`).
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<crate::digest::Digest>,
}

impl ImageRef {
    /// Parses and normalises a reference that [`validate_reference`] accepts.
    pub fn parse(s: &str) -> Result<Self, String> {
        validate_reference(s)?;
        let full = canonical(s);
        let (name, digest) = match full.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(
                    digest
                        .parse::<crate::digest::Digest>()
                        .map_err(|e| format!("{s:?}: {e}"))?,
                ),
            ),
            None => (full.as_str(), None),
        };
        let (name, tag) = split_tag(name);
        let (host, path) = split_host(name);
        let host = host.ok_or_else(|| format!("{s:?} has no registry host"))?;
        Ok(Self {
            host: host.to_owned(),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// `host/path`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.host, self.path)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits `name[:tag]`; a colon before the last `/` is a port, not a tag.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// Splits off the registry host the way Docker does: the first component is a host only if more
/// components follow and it looks like one (a dot, a port, `localhost`, or uppercase, which a
/// path component may not contain).
fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.starts_with('[')
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_dns_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host.len() > 253 {
        return Err("the host name is longer than 253 characters".to_owned());
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{label:?} is not a host name label (letters, digits and inner hyphens)"
            ));
        }
    }
    Ok(())
}

fn validate_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err(
            "the repository path has an empty component (\"//\" or a trailing \"/\")".to_owned(),
        );
    }
    if component.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "repository path component {component:?} must be lowercase"
        ));
    }
    let bad = || {
        format!(
            "repository path component {component:?} may hold only lowercase letters and digits, \
             joined by \".\", \"_\", \"__\" or \"-\""
        )
    };
    // Alternating runs: alphanumerics, then one separator ("." | "_" | "__" | "-"+), then more
    // alphanumerics. A separator may neither start nor end the component.
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        if i == bytes.len() {
            return Ok(());
        }
        let sep_start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &component[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return Err(bad());
        }
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} is not valid: 1 to 128 letters, digits, \"_\", \".\" or \"-\", \
             not starting with \".\" or \"-\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_common_forms() {
        for ok in [
            "nginx:1.25",
            "library/nginx:1.25",
            "registry.example.com/sensei/api:1.2.0",
            "localhost:5000/a/b_c__d-e--f.g:v1",
            "localhost/x:1",
            "127.0.0.1:5000/x:latest",
            "[::1]:5000/x:1",
            "ghcr.io/sensei/api:1.2.0",
            &format!("ghcr.io/sensei/api@{DIGEST}"),
            &format!("ghcr.io/sensei/api:1.2.0@{DIGEST}"),
        ] {
            assert_eq!(validate_reference(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_forms_with_a_reason() {
        let cases = [
            ("ghcr.io/Sensei/api:1", "lowercase"),
            ("ghcr.io/sensei/api", "no tag or digest"),
            ("ghcr.io/sensei/api:", "tag \"\""),
            ("ghcr.io/sensei/api:.x", "tag"),
            ("ghcr.io/sensei/api@sha256:abc", "64"),
            ("ghcr.io/sensei/api@md5:abc", "sha256"),
            ("ghcr.io//api:1", "empty component"),
            ("ghcr.io/sensei/-api:1", "lowercase letters and digits"),
            ("ghcr.io/sensei/a...b:1", "lowercase letters and digits"),
            ("bad_host.io/a:1", "host"),
            ("host.io:99999/a:1", "port"),
            ("", "empty"),
            ("has space:1", "lowercase letters and digits"),
        ];
        for (bad, why) in cases {
            let err = validate_reference(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "docker.io",
            "mirror.corp.example:5000",
            "localhost",
            "10.0.0.1:443",
            "[fe80::1]:5000",
        ] {
            assert_eq!(validate_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "https://mirror",
            "a..b",
            "-a.io",
            "a.io:",
            "a.io:0",
            "a.io/x",
            "[::1",
        ] {
            assert!(validate_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_ref_splits_and_normalises() {
        let r = ImageRef::parse("nginx:1.25").unwrap();
        assert_eq!(
            (r.host.as_str(), r.path.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(r.tag.as_deref(), Some("1.25"));
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.25");
        let r = ImageRef::parse(&format!("127.0.0.1:5000/a/b:1@{DIGEST}")).unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.path, "a/b");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.digest.unwrap().to_string(), DIGEST);
        assert_eq!(r.repository(), "127.0.0.1:5000/a/b");
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/a/b:1@{DIGEST}"));
        assert!(ImageRef::parse("nginx").is_err());
    }

    #[test]
    fn canonical_expands_hub_short_names() {
        assert_eq!(canonical("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(
            canonical("docker.io/library/nginx:1.25"),
            "docker.io/library/nginx:1.25"
        );
        assert_eq!(
            canonical("index.docker.io/nginx:1.25"),
            "docker.io/library/nginx:1.25"
        );
        assert_eq!(canonical("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(canonical("localhost:5000/x:1"), "localhost:5000/x:1");
    }
}
