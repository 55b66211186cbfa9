//! Platforms as OCI image indexes name them: `os/architecture[/variant]`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An OCI platform, written `linux/amd64` or `linux/arm64/v8`.
///
/// Kept as written: no normalisation such as `arm64` ⇔ `arm64/v8`, so what the spec says is
/// what gets compared with an index's entries. Ordering is by os, architecture, then variant,
/// which gives a stable order for deterministic output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "platform {s:?} {why}; write OS/ARCH or OS/ARCH/VARIANT, \
                 e.g. linux/amd64 or linux/arm64/v8"
            )
        };
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad("does not have two or three parts"));
        }
        for part in &parts {
            if part.is_empty() {
                return Err(bad("has an empty part"));
            }
            // The characters Go's GOOS/GOARCH values and OCI variants use.
            let ok = part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            });
            if !ok {
                return Err(bad(&format!(
                    "has {part:?}, which is not lowercase letters and digits"
                )));
            }
        }
        Ok(Self {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_and_display() {
        let p: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "amd64", None)
        );
        assert_eq!(p.to_string(), "linux/amd64");
        let v: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(v.variant.as_deref(), Some("v8"));
        assert_eq!(v.to_string(), "linux/arm64/v8");
        assert!(p < v);
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "Linux/amd64",
            "linux/amd 64",
            "",
        ] {
            let err = bad.parse::<Platform>().unwrap_err();
            assert!(err.contains("linux/arm64/v8"), "{bad}: {err}");
        }
    }

    #[test]
    fn serde_as_string() {
        let v: Platform = "linux/arm64/v8".parse().unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"linux/arm64/v8\"");
        assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), v);
        assert!(serde_json::from_str::<Platform>("\"linux\"").is_err());
    }
}
