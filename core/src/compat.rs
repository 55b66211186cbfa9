//! Upgrade compatibility: which deployed versions may upgrade to a bundle's version.
//!
//! A bundle carries a [`CompatRule`], a semver requirement such as `">=1.1.0, <1.3.0"`, written
//! by the release engineer (`compat.upgradeFrom` in the spec) or derived from the seed's policy
//! ([`CompatRule::default_for`]): same major, at most one minor back. The loader asks [`check`]
//! before it touches the cluster and gets a [`CompatVerdict`] whose `Display` tells the operator
//! what to do next.
//!
//! # Pre-releases
//!
//! semver's own matching lets a pre-release satisfy a requirement only if some comparator names the
//! same `major.minor.patch` *with* a pre-release. Applied to upgrades that would refuse the most
//! common pre-release path of all, `1.2.0-rc.1` → `1.2.0`. So, unless the rule itself mentions a
//! pre-release, a deployed pre-release is matched as its release (`1.2.0-rc.1` is in the 1.2 line).
//! A rule that names pre-releases (`">=1.2.0-rc.3"`) opted into semver's exact semantics and gets
//! them. Ordering (downgrade and same-version detection) always uses full semver precedence, where
//! `1.2.0-rc.1 < 1.2.0`; build metadata is ignored everywhere, as semver prescribes.

use std::cmp::Ordering;
use std::fmt;

use semver::{Prerelease, Version, VersionReq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a compat rule could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompatError {
    #[error("the compat rule is empty; write a semver requirement such as \">=1.1.0, <1.3.0\"")]
    Empty,
    #[error(
        "compat rule {text:?} is not a semver requirement ({reason}); \
         write e.g. \">=1.1.0, <1.3.0\""
    )]
    Invalid { text: String, reason: String },
}

/// The rule a bundle carries: which deployed versions may upgrade to it.
///
/// Serializes as the plain requirement text, exactly as written (e.g. `">=1.1.0, <1.3.0"`), so
/// `bundle.json` shows what the release engineer wrote rather than semver's normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatRule {
    req: VersionReq,
    text: String,
}

impl CompatRule {
    /// Parses a semver requirement; comparators are separated by commas (`">=1.1.0, <1.3.0"`).
    pub fn parse(text: &str) -> Result<Self, CompatError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CompatError::Empty);
        }
        let req = VersionReq::parse(text).map_err(|e| CompatError::Invalid {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            req,
            text: text.to_owned(),
        })
    }

    /// The seed's policy for a bundle of version `target`: same major, at most one minor back.
    ///
    /// For `1.2.x` that is `">=1.1.0, <1.3.0"` (1.1.x and 1.2.x may upgrade); for `X.0.x` there is
    /// no earlier minor in the major, so `">=X.0.0, <X.1.0"`. Major 0 is treated like any other
    /// major (0.3.x accepts 0.2.x), because the seed's policy has no exception for it. The target's
    /// pre-release and build metadata play no part: `1.2.0-rc.1` gets the same rule as `1.2.0`
    /// (see the module docs for how deployed pre-releases match).
    pub fn default_for(target: &Version) -> Self {
        let (major, minor) = (target.major, target.minor);
        let text = format!(
            ">={major}.{}.0, <{major}.{}.0",
            minor.saturating_sub(1),
            minor.saturating_add(1)
        );
        // Built from numbers alone, so parsing cannot fail; the fallback keeps this total
        // without an unwrap and, being `*`, would be caught by any test of the policy.
        let req = VersionReq::parse(&text).unwrap_or(VersionReq::STAR);
        Self { req, text }
    }

    /// Whether a deployed version satisfies the rule (pre-releases: see the module docs).
    pub fn allows(&self, deployed: &Version) -> bool {
        if self.req.matches(deployed) {
            return true;
        }
        let rule_names_prerelease = self.req.comparators.iter().any(|c| !c.pre.is_empty());
        if deployed.pre.is_empty() || rule_names_prerelease {
            return false;
        }
        let release = Version {
            pre: Prerelease::EMPTY,
            ..deployed.clone()
        };
        self.req.matches(&release)
    }

    /// The requirement exactly as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed requirement, for callers that want to inspect comparators.
    pub fn requirement(&self) -> &VersionReq {
        &self.req
    }
}

impl fmt::Display for CompatRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for CompatRule {
    type Err = CompatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CompatRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CompatRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Decision for an upgrade from the deployed version to a bundle's version.
///
/// `Display` is the message for the operator, including what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompatVerdict {
    /// Nothing is deployed: an install, which no rule restricts.
    FreshInstall,
    /// The deployed version is older, in the same major, and the rule allows it.
    Allowed,
    /// The upgrade crosses a major version. Checked before the rule: a rule rarely lists the
    /// previous major, so `--allow-major` must be able to override it to be of any use.
    MajorJump { from: Version, to: Version },
    /// The bundle is older than what is deployed.
    Downgrade { from: Version, to: Version },
    /// Same major, older, but the bundle's rule does not list the deployed version.
    OutsideRule { from: Version, rule: CompatRule },
    /// The bundle's version is already deployed (build metadata aside): re-applying is harmless,
    /// and re-running an interrupted upgrade must work.
    SameVersion,
}

impl CompatVerdict {
    /// Whether the upgrade may go ahead, given the operator's overrides.
    ///
    /// [`CompatVerdict::OutsideRule`] has no override: the rule is the bundle author's statement
    /// that migrations from older versions are not supported.
    pub fn is_permitted(&self, allow_major: bool, allow_downgrade: bool) -> bool {
        match self {
            Self::FreshInstall | Self::Allowed | Self::SameVersion => true,
            Self::MajorJump { .. } => allow_major,
            Self::Downgrade { .. } => allow_downgrade,
            Self::OutsideRule { .. } => false,
        }
    }
}

impl fmt::Display for CompatVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FreshInstall => f.write_str("nothing is deployed yet; this is a fresh install"),
            Self::Allowed => f.write_str("the deployed version may upgrade to this bundle"),
            Self::MajorJump { from, to } => write!(
                f,
                "upgrading from {from} to {to} crosses a major version; read the release notes, \
                 then pass --allow-major"
            ),
            Self::Downgrade { from, to } => write!(
                f,
                "the bundle ({to}) is older than the deployed version ({from}); to go back, prefer \
                 `helm rollback`, or pass --allow-downgrade if a downgrade is really meant"
            ),
            Self::OutsideRule { from, rule } => write!(
                f,
                "the deployed version {from} may not upgrade directly to this bundle, which \
                 accepts upgrades from \"{rule}\"; upgrade through a release in that range first"
            ),
            Self::SameVersion => f.write_str(
                "this version is already deployed; the upgrade re-applies it (safe to re-run)",
            ),
        }
    }
}

/// Decides an upgrade from `deployed` (`None`: nothing deployed) to `target` under `rule`.
///
/// Order of checks: nothing deployed, same version, downgrade, major jump, then the rule. A
/// downgrade across majors is reported as a downgrade, the more dangerous of the two.
pub fn check(rule: &CompatRule, deployed: Option<&Version>, target: &Version) -> CompatVerdict {
    let Some(from) = deployed else {
        return CompatVerdict::FreshInstall;
    };
    match from.cmp_precedence(target) {
        Ordering::Equal => return CompatVerdict::SameVersion,
        Ordering::Greater => {
            return CompatVerdict::Downgrade {
                from: from.clone(),
                to: target.clone(),
            };
        }
        Ordering::Less => {}
    }
    if from.major != target.major {
        return CompatVerdict::MajorJump {
            from: from.clone(),
            to: target.clone(),
        };
    }
    if rule.allows(from) {
        CompatVerdict::Allowed
    } else {
        CompatVerdict::OutsideRule {
            from: from.clone(),
            rule: rule.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn default_check(deployed: &str, target: &str) -> CompatVerdict {
        let target = v(target);
        check(
            &CompatRule::default_for(&target),
            Some(&v(deployed)),
            &target,
        )
    }

    #[test]
    fn default_rule_text_follows_the_seed_policy() {
        assert_eq!(
            CompatRule::default_for(&v("1.2.0")).as_str(),
            ">=1.1.0, <1.3.0"
        );
        assert_eq!(
            CompatRule::default_for(&v("1.2.7")).as_str(),
            ">=1.1.0, <1.3.0"
        );
        assert_eq!(
            CompatRule::default_for(&v("2.0.0")).as_str(),
            ">=2.0.0, <2.1.0"
        );
        assert_eq!(
            CompatRule::default_for(&v("2.0.3")).as_str(),
            ">=2.0.0, <2.1.0"
        );
        assert_eq!(
            CompatRule::default_for(&v("1.2.0-rc.1")).as_str(),
            ">=1.1.0, <1.3.0"
        );
        // The default is what a hand-written rule of the same text would be.
        assert_eq!(
            CompatRule::default_for(&v("1.2.0")),
            CompatRule::parse(">=1.1.0, <1.3.0").unwrap()
        );
    }

    #[test]
    fn seed_table_one_minor_apart() {
        // Seed: "Same major, ±1 minor"; control plane 1.3.x works with data plane 1.2.x-1.4.x.
        // Upgrading to 1.3.x therefore accepts 1.2.x and earlier 1.3.x.
        assert_eq!(default_check("1.2.0", "1.3.0"), CompatVerdict::Allowed);
        assert_eq!(default_check("1.2.9", "1.3.0"), CompatVerdict::Allowed);
        assert_eq!(default_check("1.3.0", "1.3.2"), CompatVerdict::Allowed);
        assert_eq!(default_check("1.1.4", "1.2.0"), CompatVerdict::Allowed);
    }

    #[test]
    fn seed_table_two_minors_back_is_outside_the_rule() {
        let verdict = default_check("1.1.0", "1.3.0");
        assert_eq!(
            verdict,
            CompatVerdict::OutsideRule {
                from: v("1.1.0"),
                rule: CompatRule::parse(">=1.2.0, <1.4.0").unwrap()
            }
        );
        let msg = verdict.to_string();
        assert!(
            msg.contains("1.1.0") && msg.contains(">=1.2.0, <1.4.0"),
            "{msg}"
        );
        assert!(!verdict.is_permitted(true, true));
    }

    #[test]
    fn major_jump_needs_allow_major() {
        let verdict = default_check("1.4.2", "2.0.0");
        assert_eq!(
            verdict,
            CompatVerdict::MajorJump {
                from: v("1.4.2"),
                to: v("2.0.0")
            }
        );
        assert_eq!(
            verdict.to_string(),
            "upgrading from 1.4.2 to 2.0.0 crosses a major version; read the release notes, \
             then pass --allow-major"
        );
        assert!(!verdict.is_permitted(false, true));
        assert!(verdict.is_permitted(true, false));
        // Even a rule that lists the old major reports the jump: the flag is about the operator
        // having read the notes, not about the author's support.
        let rule = CompatRule::parse(">=1.4.0, <2.1.0").unwrap();
        assert!(matches!(
            check(&rule, Some(&v("1.4.2")), &v("2.0.0")),
            CompatVerdict::MajorJump { .. }
        ));
    }

    #[test]
    fn downgrade_and_same_version() {
        let verdict = default_check("1.3.0", "1.2.0");
        assert_eq!(
            verdict,
            CompatVerdict::Downgrade {
                from: v("1.3.0"),
                to: v("1.2.0")
            }
        );
        assert!(verdict.to_string().contains("--allow-downgrade"));
        assert!(verdict.is_permitted(false, true) && !verdict.is_permitted(true, false));
        // Across majors the downgrade is what matters.
        assert!(matches!(
            default_check("2.0.0", "1.9.0"),
            CompatVerdict::Downgrade { .. }
        ));
        assert_eq!(default_check("1.2.0", "1.2.0"), CompatVerdict::SameVersion);
        assert_eq!(
            default_check("1.2.0+a", "1.2.0+b"),
            CompatVerdict::SameVersion
        );
        assert!(CompatVerdict::SameVersion.is_permitted(false, false));
    }

    #[test]
    fn fresh_install_ignores_the_rule() {
        let rule = CompatRule::parse("=9.9.9").unwrap();
        let verdict = check(&rule, None, &v("1.0.0"));
        assert_eq!(verdict, CompatVerdict::FreshInstall);
        assert!(verdict.is_permitted(false, false));
    }

    #[test]
    fn prereleases_match_as_their_release_line() {
        // rc → final, the common case semver's own matching would refuse.
        assert_eq!(default_check("1.2.0-rc.1", "1.2.0"), CompatVerdict::Allowed);
        assert_eq!(default_check("2.0.0-rc.1", "2.0.0"), CompatVerdict::Allowed);
        assert_eq!(default_check("1.1.0-beta", "1.2.0"), CompatVerdict::Allowed);
        assert!(matches!(
            default_check("1.2.0", "1.2.0-rc.1"),
            CompatVerdict::Downgrade { .. }
        ));
        // A rule that names pre-releases gets exact semver semantics.
        let rule = CompatRule::parse(">=1.2.0-rc.3, <1.3.0").unwrap();
        assert!(rule.allows(&v("1.2.0-rc.4")));
        assert!(!rule.allows(&v("1.2.0-rc.1")));
    }

    #[test]
    fn parse_keeps_text_and_rejects_garbage() {
        let rule = CompatRule::parse("  >=1.1.0, <1.3.0 ").unwrap();
        assert_eq!(rule.as_str(), ">=1.1.0, <1.3.0");
        assert_eq!(rule.to_string(), ">=1.1.0, <1.3.0");
        assert!(rule.allows(&v("1.1.0")) && !rule.allows(&v("1.3.0")));
        assert_eq!(CompatRule::parse("  "), Err(CompatError::Empty));
        let err = CompatRule::parse(">=1.1.0 <1.3.0 banana").unwrap_err();
        assert!(
            err.to_string().contains("e.g. \">=1.1.0, <1.3.0\""),
            "{err}"
        );
    }

    #[test]
    fn serde_is_the_plain_string() {
        let rule = CompatRule::parse(">=1.1.0, <1.3.0").unwrap();
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(json, r#"">=1.1.0, <1.3.0""#);
        assert_eq!(serde_json::from_str::<CompatRule>(&json).unwrap(), rule);
        assert!(serde_json::from_str::<CompatRule>(r#""nope""#).is_err());
    }
}
