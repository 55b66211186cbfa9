//! The registry's list of repositories (`GET /v2/_catalog`), where it offers one to this client.
//! A registry lists a repository as soon as it holds a blob (docker-registry: once a blob is
//! linked into it; an upload session that was never committed does not count), so a repository
//! it does not list holds nothing: no blob, manifest or tag. Push then need not ask about it
//! one request at a time. Many registries keep the catalog to administrators, or have none:
//! then nothing may be concluded and the caller asks per repository as before.

use std::collections::HashSet;

use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, LINK};

use super::{Registry, Repo};
use crate::error::ErrorKind;

/// Names asked for per page (docker-registry's default maximum).
const PAGE: usize = 1000;
/// Pages read at most: a registry with more repositories than this is asked per repository,
/// which then costs less than listing it.
const MAX_PAGES: usize = 8;
/// Bytes of one page read at most (a thousand names fit many times over).
const MAX_PAGE_BYTES: usize = 4 << 20;

#[derive(serde::Deserialize)]
struct Page {
    repositories: Option<Vec<String>>,
}

impl Registry {
    /// Every repository on `repo.host`, when the registry lists them all to this client with
    /// `repo`'s credentials; `None` when it does not (no catalog, a token service that would
    /// need a registry-wide scope, too many pages, any error).
    pub async fn repositories(&self, repo: &Repo) -> Option<HashSet<String>> {
        if self.auth_for(&repo.host).await.is_err() {
            return None;
        }
        let header = self.authorization(repo, false, false).await.ok()?;
        // A bearer token is scoped to one repository: the catalog needs another scope, which
        // accounts that only push rarely have. Not worth a request that would fail.
        if header.as_deref().is_some_and(|h| h.starts_with("Bearer ")) {
            return None;
        }
        let base = format!("{}://{}", self.scheme(&repo.host), repo.host);
        let mut next = Some(format!("{base}/v2/_catalog?n={PAGE}"));
        let mut names = HashSet::new();
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else {
                return Some(names);
            };
            let (page, link) = self
                .retried(&repo.host, |_| self.catalog_page(&url, header.as_deref()))
                .await
                .ok()?;
            names.extend(page);
            next = match link {
                // The credentials go to the registry's own origin only: a `Link` to anywhere
                // else ends the listing, and nothing is concluded from a partial one.
                Some(path) => Some(next_page(&base, &url, &path)?),
                None => None,
            };
        }
        next.is_none().then_some(names)
    }

    /// One page of names, and the next page's address (from `Link: <...>; rel="next"`).
    async fn catalog_page(
        &self,
        url: &str,
        header: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), ErrorKind> {
        let mut request = self.inner.http.get(url);
        if let Some(h) = header {
            request = request.header(AUTHORIZATION, h);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ErrorKind::from_reqwest(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ErrorKind::from_response(
                status.as_u16(),
                response.headers(),
                "catalog",
            ));
        }
        let link = response
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ErrorKind::from_reqwest(&e))?;
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(ErrorKind::TooLarge {
                    what: "a catalog page",
                    limit: MAX_PAGE_BYTES as u64,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let page: Page = serde_json::from_slice(&body)
            .map_err(|e| ErrorKind::Protocol(format!("catalog: {e}")))?;
        Ok((page.repositories.unwrap_or_default(), link))
    }
}

/// The next page's URL, `link` resolved against the current page `url`, if it stays on the
/// registry's own origin (`base`: scheme, host and port); `None` for any other.
fn next_page(base: &str, url: &str, link: &str) -> Option<String> {
    let base = url::Url::parse(base).ok()?;
    let next = url::Url::parse(url).ok()?.join(link).ok()?;
    (next.origin() == base.origin()).then(|| next.to_string())
}

/// The target of the `rel="next"` entry of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b%2Fc&n=1000>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b%2Fc&n=1000")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#).as_deref(),
            Some("https://x/next")
        );
        assert_eq!(next_link(r#"</v2/_catalog?last=a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn a_next_page_elsewhere_is_never_followed_with_the_registrys_credentials() {
        let base = "https://registry.internal:5000";
        let page = "https://registry.internal:5000/v2/_catalog?n=1000";
        assert_eq!(
            next_page(base, page, "/v2/_catalog?last=a&n=1000").as_deref(),
            Some("https://registry.internal:5000/v2/_catalog?last=a&n=1000")
        );
        for elsewhere in [
            "https://evil.example/v2/_catalog?last=a",
            "//evil.example/v2/_catalog",
            "http://registry.internal:5000/v2/_catalog?last=a",
            "https://registry.internal:5001/v2/_catalog?last=a",
            "https://registry.internal.evil.example:5000/v2/_catalog",
        ] {
            assert_eq!(next_page(base, page, elsewhere), None, "{elsewhere}");
        }
    }
}
