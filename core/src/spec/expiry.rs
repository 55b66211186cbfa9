//! `expires:` in a spec: a duration after the bundle's creation, or a fixed time.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

/// When a bundle stops being accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This long after `created` (`"180d"`, `"12h"`, `"2w"`).
    After(Duration),
    /// At this instant (RFC 3339 with an offset: `"2026-03-01T00:00:00Z"`, `"...+02:00"`).
    At(Timestamp),
}

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
                    .ok_or_else(|| format!("expiry {s:?} is too large; {hint}"))?;
                return Ok(Self::After(Duration::from_secs(secs)));
            }
        }
        match s.parse::<Timestamp>() {
            Ok(at) => Ok(Self::At(at)),
            // Something date-like deserves jiff's precise complaint (often: the offset is missing).
            Err(e) if s.starts_with(|c: char| c.is_ascii_digit()) && s.contains('-') => Err(
                format!("expiry {s:?} is not an RFC 3339 time with an offset ({e}); {hint}"),
            ),
            Err(_) => Err(format!("expiry {s:?} is not understood; {hint}")),
        }
    }

    /// The instant a bundle created at `created` expires. Saturates instead of failing for
    /// durations past the end of jiff's range (year 9999), which nobody means literally.
    pub fn resolve(&self, created: Timestamp) -> Timestamp {
        match *self {
            Self::After(duration) => created.saturating_add(duration).unwrap_or(Timestamp::MAX),
            Self::At(at) => at,
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
        let err = Expiry::parse("2026-03-01").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn resolve() {
        let created: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let after = Expiry::parse("180d").unwrap().resolve(created);
        assert_eq!(after, "2025-06-30T00:00:00Z".parse::<Timestamp>().unwrap());
        let fixed: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        assert_eq!(Expiry::At(fixed).resolve(created), fixed);
        let huge = Expiry::After(Duration::from_secs(u64::MAX / 2)).resolve(created);
        assert_eq!(huge, Timestamp::MAX);
    }
}
