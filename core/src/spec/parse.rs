//! Walks the YAML tree of a spec into a [`BundleSpec`], naming the key of every problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::Version;
use serde_norway::Value;

use super::reference::validate_host;
use super::{BundleSpec, Expiry, Platform, SpecError};
use crate::compat::CompatRule;

mod entries;

const TOP_KEYS: &[&str] = &[
    "name",
    "version",
    "expires",
    "compat",
    "platforms",
    "charts",
    "images",
    "discoverImages",
    "mirrors",
];
const COMPAT_KEYS: &[&str] = &["upgradeFrom"];
const CHART_KEYS: &[&str] = &["path", "repo", "oci", "name", "version", "values"];
const IMAGE_KEYS: &[&str] = &["ref", "layout", "layoutRef"];
const MAX_NAME_LEN: usize = 128;

pub(super) fn parse(text: &str, path: &Path, base_dir: PathBuf) -> Result<BundleSpec, SpecError> {
    let yaml_error = |e: serde_norway::Error| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // The location goes into its own fields; drop the copy the message carries.
        let message = e
            .to_string()
            .replacen(&format!(" at line {line} column {column}"), "", 1);
        SpecError::Yaml {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    };
    let mut doc: Value = serde_norway::from_str(text).map_err(yaml_error)?;
    // Honour `<<: *anchor` merge keys, which YAML users reach for to share chart values.
    doc.apply_merge().map_err(yaml_error)?;
    Walker { path, base_dir }.spec(&doc)
}

struct Walker<'a> {
    path: &'a Path,
    base_dir: PathBuf,
}

/// A mapping whose keys were checked against the allowed set.
struct Fields<'v> {
    key: String,
    entries: Vec<(&'static str, &'v Value)>,
}

impl<'v> Fields<'v> {
    /// The value of `name`; an explicit `null` (`key:` with nothing after it) counts as absent.
    fn get(&self, name: &str) -> Option<&'v Value> {
        self.entries
            .iter()
            .find(|(n, v)| *n == name && !v.is_null())
            .map(|(_, v)| *v)
    }

    fn child(&self, name: &str) -> String {
        join(&self.key, name)
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// What a YAML value is, for "expected X, found Y" messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Walker<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn fields<'v>(
        &self,
        value: &'v Value,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Result<Fields<'v>, SpecError> {
        let Value::Mapping(mapping) = value else {
            return Err(self.invalid(
                key,
                format!(
                    "expected a mapping with keys {}, found {}",
                    allowed.join(", "),
                    kind(value)
                ),
            ));
        };
        let mut entries = Vec::with_capacity(mapping.len());
        for (k, v) in mapping {
            let known = k.as_str().and_then(|k| allowed.iter().find(|a| **a == k));
            match known {
                Some(name) => entries.push((*name, v)),
                None => {
                    let shown = match k {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => format!("<{}>", kind(other)),
                    };
                    return Err(self.invalid(
                        key,
                        format!(
                            "unknown key {shown:?} (expected one of: {})",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(Fields {
            key: key.to_owned(),
            entries,
        })
    }

    fn string<'v>(&self, value: &'v Value, key: &str, example: &str) -> Result<&'v str, SpecError> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Ok(s),
            Value::String(_) => Err(self.invalid(key, format!("is empty; write e.g. {example}"))),
            // `version: 1.2` arrives as a number: say to quote it rather than "wrong type".
            Value::Number(n) => Err(self.invalid(
                key,
                format!("{n} is a number; write a string, quoted if needed: e.g. {example}"),
            )),
            other => Err(self.invalid(
                key,
                format!(
                    "expected a string, found {}; write e.g. {example}",
                    kind(other)
                ),
            )),
        }
    }

    fn list<'v>(
        &self,
        value: Option<&'v Value>,
        key: &str,
        example: &str,
    ) -> Result<&'v [Value], SpecError> {
        match value {
            None => Ok(&[]),
            Some(Value::Sequence(items)) => Ok(items),
            Some(other) => Err(self.invalid(
                key,
                format!(
                    "expected a list, found {}; write e.g. {example}",
                    kind(other)
                ),
            )),
        }
    }

    /// A local path from the spec, resolved against the spec's directory. Interior `.`
    /// components are dropped (`./charts` reads better in messages as `charts`); `..` is kept,
    /// since removing it textually would be wrong across symlinks.
    fn local_path(&self, value: &Value, key: &str, example: &str) -> Result<PathBuf, SpecError> {
        let text = self.string(value, key, example)?;
        Ok(self.base_dir.join(text).components().collect())
    }

    fn spec(&self, doc: &Value) -> Result<BundleSpec, SpecError> {
        if doc.is_null() {
            return Err(self.invalid(
                "",
                "the spec is empty; it needs at least a name (name: sensei)",
            ));
        }
        let top = self.fields(doc, "", TOP_KEYS)?;
        let name = match top.get("name") {
            Some(value) => self.name(value)?,
            None => {
                return Err(self.invalid(
                    "name",
                    "is missing; every bundle needs one, e.g. name: sensei",
                ));
            }
        };
        let version = top.get("version").map(|v| self.version(v)).transpose()?;
        let expires = match top.get("expires") {
            None => None,
            Some(value) => {
                let text = self.string(value, "expires", "expires: 180d")?;
                Some(Expiry::parse(text).map_err(|e| self.invalid("expires", e))?)
            }
        };
        let compat = match top.get("compat") {
            None => None,
            Some(value) => {
                let fields = self.fields(value, "compat", COMPAT_KEYS)?;
                let key = fields.child("upgradeFrom");
                match fields.get("upgradeFrom") {
                    None => None,
                    Some(rule) => {
                        let text = self.string(rule, &key, "upgradeFrom: \">=1.1.0, <1.3.0\"")?;
                        Some(
                            CompatRule::parse(text)
                                .map_err(|e| self.invalid(&key, e.to_string()))?,
                        )
                    }
                }
            }
        };
        let platforms = self.platforms(top.get("platforms"))?;
        let charts = self
            .list(
                top.get("charts"),
                "charts",
                "charts: [{path: ./charts/sensei}]",
            )?
            .iter()
            .enumerate()
            .map(|(i, entry)| self.chart(entry, &format!("charts[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let images = self.images(top.get("images"))?;
        let discover_images = match top.get("discoverImages") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(self.invalid(
                    "discoverImages",
                    format!("expected true or false, found {}", kind(other)),
                ));
            }
        };
        let mirrors = self.mirrors(top.get("mirrors"))?;
        Ok(BundleSpec {
            name,
            version,
            expires,
            compat,
            platforms,
            charts,
            images,
            discover_images,
            mirrors,
            base_dir: self.base_dir.clone(),
        })
    }

    fn name(&self, value: &Value) -> Result<String, SpecError> {
        let name = self.string(value, "name", "name: sensei")?;
        let valid = name.len() <= MAX_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
            });
        if !valid {
            return Err(self.invalid(
                "name",
                format!(
                    "{name:?} is not a bundle name: use at most {MAX_NAME_LEN} lowercase letters, \
                     digits, \"-\", \".\" and \"_\", starting with a letter or digit (e.g. sensei)"
                ),
            ));
        }
        Ok(name.to_owned())
    }

    fn version(&self, value: &Value) -> Result<Version, SpecError> {
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            // An unquoted `1.2` or `1` is a YAML number; say what it is, not "wrong type".
            Value::Number(n) => n.to_string(),
            other => {
                return Err(self.invalid(
                    "version",
                    format!("expected a version such as 1.2.0, found {}", kind(other)),
                ));
            }
        };
        Version::parse(&text).map_err(|e| {
            let hint = match text.strip_prefix(['v', 'V']) {
                Some(rest) if Version::parse(rest).is_ok() => {
                    format!("; drop the leading \"v\": version: {rest}")
                }
                _ => String::new(),
            };
            self.invalid(
                "version",
                format!(
                    "{text:?} is not a semantic version ({e}); write MAJOR.MINOR.PATCH, e.g. \
                     version: 1.2.0{hint}"
                ),
            )
        })
    }

    fn platforms(&self, value: Option<&Value>) -> Result<Vec<Platform>, SpecError> {
        let mut out: Vec<Platform> = Vec::new();
        for (i, entry) in self
            .list(value, "platforms", "platforms: [linux/amd64]")?
            .iter()
            .enumerate()
        {
            let key = format!("platforms[{i}]");
            let text = self.string(entry, &key, "linux/amd64")?;
            let platform: Platform = text.parse().map_err(|e: String| self.invalid(&key, e))?;
            if let Some(first) = out.iter().position(|p| *p == platform) {
                return Err(self.invalid(
                    &key,
                    format!("{platform} is listed twice (first as platforms[{first}]); remove one"),
                ));
            }
            out.push(platform);
        }
        Ok(out)
    }

    fn mirrors(&self, value: Option<&Value>) -> Result<BTreeMap<String, String>, SpecError> {
        let mut out = BTreeMap::new();
        let example = "mirrors: {docker.io: mirror.corp.example:5000}";
        let mapping = match value {
            None => return Ok(out),
            Some(Value::Mapping(m)) => m,
            Some(other) => {
                return Err(self.invalid(
                    "mirrors",
                    format!(
                        "expected a mapping of host to host, found {}; write e.g. {example}",
                        kind(other)
                    ),
                ));
            }
        };
        for (k, v) in mapping {
            let Some(from) = k.as_str() else {
                return Err(self.invalid(
                    "mirrors",
                    format!("a key is {}, not a host; write e.g. {example}", kind(k)),
                ));
            };
            let key = join("mirrors", from);
            validate_host(from).map_err(|e| self.invalid(&key, e))?;
            let to = self.string(v, &key, "mirror.corp.example:5000")?;
            validate_host(to).map_err(|e| self.invalid(&key, e))?;
            out.insert(from.to_owned(), to.to_owned());
        }
        Ok(out)
    }
}
