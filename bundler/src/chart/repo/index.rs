//! A Helm repository's `index.yaml`: the one chart entry asked for, and where its `.tgz` is.
//!
//! Public indexes run to tens of MiB (every version of every chart), so only the asked chart's
//! entries are deserialised; every other chart is skipped by the parser without being built.

use std::fmt;

use sensei_core::digest::Digest;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, de};
use url::Url;

/// The one chart version picked from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexEntry {
    /// Where the `.tgz` is, resolved against the repository URL.
    pub(super) url: Url,
    /// The sha256 of the `.tgz` the index promises; `None` when the index gives none.
    pub(super) digest: Option<Digest>,
}

/// Why an index could not give the chart asked for. [`super::RepoError`] adds the repository.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The YAML is not a Helm index (message from the parser).
    Syntax(String),
    /// No chart of that name; `known` is how many charts the index holds.
    NoChart {
        known: usize,
    },
    /// The chart exists, but not at that version; `available` is newest first.
    NoVersion {
        available: Vec<String>,
    },
    NoUrl,
    BadUrl {
        url: String,
        problem: String,
    },
    BadDigest {
        digest: String,
    },
}

/// The fields of an index entry we use; Helm writes many more, all ignored.
#[derive(Debug, Deserialize)]
struct RawEntry {
    #[serde(default, deserialize_with = "scalar")]
    version: Option<String>,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default, deserialize_with = "scalar")]
    digest: Option<String>,
}

/// Finds `name` at `version` in index bytes and resolves its download URL against `repo`.
pub(super) fn lookup(
    bytes: &[u8],
    repo: &Url,
    name: &str,
    version: &semver::Version,
) -> Result<IndexEntry, Lookup> {
    let index = parse(bytes, name).map_err(|e| Lookup::Syntax(e.to_string()))?;
    let Some(entries) = index.entries else {
        return Err(Lookup::NoChart { known: index.known });
    };
    let Some(entry) = entries.iter().find(|e| {
        e.version
            .as_deref()
            .and_then(parse_version)
            .is_some_and(|v| v == *version)
    }) else {
        return Err(Lookup::NoVersion {
            available: available_versions(&entries),
        });
    };
    let first = entry
        .urls
        .as_ref()
        .and_then(|urls| urls.iter().find(|u| !u.trim().is_empty()))
        .ok_or(Lookup::NoUrl)?;
    let url = resolve_url(repo, first.trim()).map_err(|problem| Lookup::BadUrl {
        url: first.clone(),
        problem,
    })?;
    let digest = match entry.digest.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(parse_digest(text).ok_or_else(|| Lookup::BadDigest {
            digest: text.to_owned(),
        })?),
    };
    Ok(IndexEntry { url, digest })
}

/// Helm's own reading of a chart version: SemVer 2, with an optional leading `v`.
fn parse_version(text: &str) -> Option<semver::Version> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    semver::Version::parse(text).ok()
}

/// Every version the index lists for the chart, newest first (unparsable ones last, as written).
fn available_versions(entries: &[RawEntry]) -> Vec<String> {
    let mut parsed: Vec<semver::Version> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for text in entries.iter().filter_map(|e| e.version.as_deref()) {
        match parse_version(text) {
            Some(v) => parsed.push(v),
            None => other.push(text.to_owned()),
        }
    }
    parsed.sort_by(|a, b| b.cmp(a));
    parsed.dedup();
    parsed
        .iter()
        .map(ToString::to_string)
        .chain(other)
        .collect()
}

/// `helm repo index` writes the bare hex; other tools write `sha256:` first. Both are accepted.
fn parse_digest(text: &str) -> Option<Digest> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    Digest::from_hex(&hex.to_ascii_lowercase()).ok()
}

/// The URL index.yaml is fetched from: `index.yaml` under the repository URL.
pub(super) fn index_url(repo: &Url) -> Result<Url, String> {
    directory(repo)
        .join("index.yaml")
        .map_err(|e| format!("cannot form the index URL: {e}"))
}

/// Resolves a chart URL from the index as Helm does (`repo.ResolveReferenceURL`): absolute URLs
/// stand as they are; relative ones resolve against the repository URL taken as a directory,
/// and keep its query string (some repositories put an access token there).
pub(super) fn resolve_url(repo: &Url, reference: &str) -> Result<Url, String> {
    let resolved = match Url::parse(reference) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let base = directory(repo);
            let mut url = base
                .join(reference)
                .map_err(|e| format!("cannot be resolved against {}: {e}", shown(repo)))?;
            if url.query().is_none() {
                url.set_query(base.query());
            }
            url
        }
        Err(e) => return Err(format!("is not a URL: {e}")),
    };
    match resolved.scheme() {
        "http" | "https" => Ok(resolved),
        other => Err(format!(
            "uses the {other}: scheme; only http and https downloads are allowed"
        )),
    }
}

/// The repository URL with a trailing `/`, so relative references resolve beneath it rather
/// than beside it (`https://host/charts` + `a.tgz` must give `https://host/charts/a.tgz`).
fn directory(repo: &Url) -> Url {
    let mut dir = repo.clone();
    if !dir.path().ends_with('/') {
        let path = format!("{}/", dir.path());
        dir.set_path(&path);
    }
    dir.set_fragment(None);
    dir
}

/// A URL fit for messages: any password in it replaced, so errors can be logged safely.
pub(super) fn shown(url: &Url) -> String {
    if url.password().is_some() {
        let mut redacted = url.clone();
        // Fails only for URLs that cannot carry credentials, which then have none to hide.
        if redacted.set_password(Some("***")).is_ok() {
            return redacted.to_string();
        }
    }
    url.to_string()
}

/// The parts of an index that [`lookup`] needs.
struct ParsedIndex {
    /// The asked chart's entries, if the index has that chart.
    entries: Option<Vec<RawEntry>>,
    /// How many charts the index lists, for the "not found" message.
    known: usize,
}

fn parse(bytes: &[u8], name: &str) -> Result<ParsedIndex, serde_norway::Error> {
    IndexSeed { name }.deserialize(serde_norway::Deserializer::from_slice(bytes))
}

/// Deserialises the top-level mapping, looking only into `entries`.
struct IndexSeed<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for IndexSeed<'_> {
    type Value = ParsedIndex;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IndexSeed<'_> {
    type Value = ParsedIndex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Helm repository index (a mapping with `entries`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut parsed = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "entries" {
                if parsed.is_some() {
                    return Err(de::Error::duplicate_field("entries"));
                }
                parsed = Some(map.next_value_seed(EntriesSeed { name: self.name })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        parsed.ok_or_else(|| de::Error::missing_field("entries"))
    }
}

/// Deserialises `entries`, building only the list under the asked name.
struct EntriesSeed<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = ParsedIndex;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = ParsedIndex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`entries`: a mapping of chart names to lists of versions")
    }

    /// `entries:` with nothing after it: an empty repository.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ParsedIndex {
            entries: None,
            known: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = None;
        let mut known = 0usize;
        while let Some(key) = map.next_key::<String>()? {
            known += 1;
            if key == self.name && entries.is_none() {
                let list: Option<Vec<RawEntry>> = map.next_value()?;
                entries = Some(list.unwrap_or_default());
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(ParsedIndex { entries, known })
    }
}

/// A scalar as text: `version: 1.10` and `digest: 0123...` may reach us as YAML numbers.
fn scalar<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value: Option<serde_norway::Value> = Option::deserialize(deserializer)?;
    Ok(match value {
        None | Some(serde_norway::Value::Null) => None,
        Some(serde_norway::Value::String(s)) => Some(s),
        Some(serde_norway::Value::Number(n)) => Some(n.to_string()),
        Some(serde_norway::Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            return Err(de::Error::custom(format!(
                "expected a string, found {other:?}"
            )));
        }
    })
}

/// Only for tests: the versions listed for `name`, in index order.
#[cfg(test)]
pub(super) fn versions_of(bytes: &[u8], name: &str) -> Option<Vec<String>> {
    let entries = parse(bytes, name).ok()?.entries?;
    Some(entries.into_iter().filter_map(|e| e.version).collect())
}
