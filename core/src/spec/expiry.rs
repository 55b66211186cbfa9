//! `expires:` in a spec: a duration after the bundle's creation, or a fixed time.

use std::fmt;
use std::time::Duration;

use crate::time::{BundleTime, MAX_SECOND};

/// When a bundle stops being accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This long after `created` (`"180d"`, `"12h"`, `"2w"`).
    After(Duration),
    /// At this instant (RFC 3339 with an offset: `"2026-03-01T00:00:00Z"`, `"...+02:00"`), made
    /// UTC and whole seconds here, the form `bundle.json` holds.
    At(BundleTime),
}

/// The last second `bundle.json` can name, for messages.
const LAST: &str = "9999-12-31T23:59:59Z";

/// Units a duration may use. No months or years: their length varies, and a bundle's expiry
/// must come out the same on every machine that computes it.
const UNITS: [(char, u64); 3] = [('w', 7 * 86_400), ('d', 86_400), ('h', 3_600)];

impl Expiry {
    /// Parses `<positive integer><h|d|w>` or an RFC 3339 timestamp.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let hint = "write a duration after creation such as 180d, 12h or 2w, or an RFC 3339 time \
                    such as 2026-03-01T00:00:00Z";
        if let Some(unit) = s.chars().last().filter(char::is_ascii_alphabetic) {
            let digits = &s[..s.len() - unit.len_utf8()];
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                let seconds_per = UNITS
                    .iter()
                    .find(|(u, _)| *u == unit)
                    .map(|(_, secs)| *secs)
                    .ok_or_else(|| format!("expiry {s:?} has unknown unit {unit:?}; {hint}"))?;
                let count: u64 = digits
                    .parse()
                    .map_err(|_| format!("expiry {s:?} is too large; {hint}"))?;
                if count == 0 {
                    return Err(format!(
                        "expiry {s:?} would expire the bundle as it is made; {hint}"
                    ));
                }
                let secs = count
                    .checked_mul(seconds_per)
                    .filter(|&secs| secs <= MAX_SECOND.unsigned_abs())
                    .ok_or_else(|| {
                        format!(
                            "expiry {s:?} is too large: it would pass {}, the last time a bundle \
                             can hold; {hint}, or leave expires out for a bundle that never expires",
                            LAST
                        )
                    })?;
                return Ok(Self::After(Duration::from_secs(secs)));
            }
        }
        match BundleTime::parse_rfc3339(s) {
            Ok(at) => Ok(Self::At(at)),
            // Something date-like deserves the parser's precise complaint (which field, which form).
            Err(e) if s.starts_with(|c: char| c.is_ascii_digit()) && s.contains('-') => {
                Err(format!("expiry {e}; {hint}"))
            }
            Err(_) => Err(format!("expiry {s:?} is not understood; {hint}")),
        }
    }

    /// The instant a bundle created at `created` expires, or why `bundle.json` cannot hold it
    /// (a duration that runs past 9999): refused, never clamped to a time nobody wrote.
    pub fn resolve(&self, created: BundleTime) -> Result<BundleTime, String> {
        match *self {
            Self::After(duration) => i64::try_from(duration.as_secs())
                .ok()
                .and_then(|secs| created.as_second().checked_add(secs))
                .and_then(|second| BundleTime::from_second(second).ok())
                .ok_or_else(|| {
                    format!(
                        "{self} after the bundle's creation ({created}) would pass \
                         {LAST}, the last time a bundle can hold: give a shorter duration, or \
                         leave expires out for a bundle that never expires"
                    )
                }),
            Self::At(at) => Ok(at),
        }
    }
}

impl fmt::Display for Expiry {
    /// The largest unit that divides the duration exactly, so `"2w"` prints back as `2w` and
    /// `"14d"` as `2w`; timestamps in RFC 3339.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::After(duration) => {
                let secs = duration.as_secs();
                match UNITS.iter().find(|(_, per)| secs % per == 0) {
                    Some((unit, per)) => write!(f, "{}{unit}", secs / per),
                    None => write!(f, "{secs}s"),
                }
            }
            Self::At(at) => write!(f, "{at}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            Expiry::parse("180d").unwrap(),
            Expiry::After(Duration::from_secs(180 * 86_400))
        );
        assert_eq!(
            Expiry::parse("12h").unwrap(),
            Expiry::After(Duration::from_secs(12 * 3_600))
        );
        assert_eq!(
            Expiry::parse(" 2w ").unwrap(),
            Expiry::After(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(Expiry::parse("14d").unwrap().to_string(), "2w");
        assert_eq!(Expiry::parse("36h").unwrap().to_string(), "36h");
        for bad in [
            "0d",
            "180",
            "d",
            "1.5d",
            "6mo",
            "3m",
            "-1d",
            "99999999999999999999d",
            "soon",
        ] {
            let err = Expiry::parse(bad).unwrap_err();
            assert!(err.contains("180d"), "{bad}: {err}");
        }
    }

    #[test]
    fn timestamps_with_offsets() {
        let at = Expiry::parse("2026-03-01T02:00:00+02:00").unwrap();
        assert_eq!(at, Expiry::parse("2026-03-01T00:00:00Z").unwrap());
        assert_eq!(at.to_string(), "2026-03-01T00:00:00Z");
        for bad in [
            "2026-03-01",
            "2026-03-01 00:00:00Z",
            "2026-03-01T00:00Z",
            "2026-03-01T00:00:00+0200",
        ] {
            let err = Expiry::parse(bad).unwrap_err();
            assert!(
                err.contains("RFC 3339") && err.contains("180d"),
                "{bad}: {err}"
            );
        }
        let err = Expiry::parse("2016-12-31T23:59:60Z").unwrap_err();
        assert!(err.contains("leap seconds are not allowed"), "{err}");
        let err = Expiry::parse("9999-12-31T23:59:59-01:00").unwrap_err();
        assert!(err.contains("9999-12-31T23:59:59Z"), "{err}");
    }

    #[test]
    fn resolve() {
        let created = BundleTime::parse("2025-01-01T00:00:00Z").unwrap();
        let after = Expiry::parse("180d").unwrap().resolve(created).unwrap();
        assert_eq!(after, BundleTime::parse("2025-06-30T00:00:00Z").unwrap());
        let fixed = BundleTime::parse("2026-03-01T00:00:00Z").unwrap();
        assert_eq!(Expiry::At(fixed).resolve(created), Ok(fixed));
        // Past the last time bundle.json can hold: refused, at spec time when it always would be,
        // else once `created` is known; never clamped.
        let err = Expiry::parse("99999999999w").unwrap_err();
        assert!(err.contains("leave expires out"), "{err}");
        let far = Expiry::parse("2930000d").unwrap();
        let err = far.resolve(created).unwrap_err();
        assert!(
            err.contains("9999-12-31T23:59:59Z") && err.contains("leave expires out"),
            "{err}"
        );
        let last = BundleTime::from_second(MAX_SECOND - 3_600).unwrap();
        assert_eq!(
            Expiry::parse("1h")
                .unwrap()
                .resolve(last)
                .map(BundleTime::as_second),
            Ok(MAX_SECOND)
        );
    }
}
