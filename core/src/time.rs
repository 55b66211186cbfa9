//! Bundle times (`created`, `expires`): the one text form `bundle.json` holds, and the RFC 3339
//! a spec may give, both parsed by hand so that no library's leniency widens FORMAT.md §4.2.
//!
//! `bundle.json` holds exactly `YYYY-MM-DDTHH:MM:SSZ`: UTC, whole seconds, years 1970 to 9999.
//! A spec's fixed `expires` may be any RFC 3339 `date-time` (offset, fraction); the writer turns it
//! into that form, so the reader never meets anything else.

use std::fmt;

/// The first second a bundle time can name: 1970-01-01T00:00:00Z.
pub const MIN_SECOND: i64 = 0;
/// The last second a bundle time can name: 9999-12-31T23:59:59Z.
pub const MAX_SECOND: i64 = 253_402_300_799;
/// How the range reads in messages.
const RANGE: &str = "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z";

/// A time in `bundle.json`: whole seconds since the Unix epoch, within [`MIN_SECOND`] and
/// [`MAX_SECOND`]. Its text form (`Display`) is the only one `bundle.json` may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleTime(i64);

/// Why a text is not a bundle time. Each message says what the accepted form is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error(
        "{0:?} is not of the form YYYY-MM-DDTHH:MM:SSZ (UTC, whole seconds, a T and a Z, no \
         offset or fraction: e.g. 2026-01-01T00:00:00Z)"
    )]
    NotCanonical(String),
    #[error(
        "{0:?} is not an RFC 3339 time: write YYYY-MM-DDTHH:MM:SS, an optional .fraction, then Z \
         or an offset ±HH:MM (e.g. 2026-03-01T00:00:00Z or 2026-03-01T02:00:00+02:00)"
    )]
    NotRfc3339(String),
    #[error("{text:?} has {what} {value}, outside {range}")]
    OutOfRange {
        text: String,
        what: &'static str,
        value: u32,
        range: &'static str,
    },
    #[error(
        "{0:?} is a leap second (:60); leap seconds are not allowed: write :59 of that minute or \
         :00 of the next"
    )]
    LeapSecond(String),
    #[error("{0} is outside {RANGE}, the times a bundle can hold")]
    Range(String),
}

impl BundleTime {
    /// The time `second` seconds after the epoch, if within range.
    pub fn from_second(second: i64) -> Result<Self, TimeError> {
        if (MIN_SECOND..=MAX_SECOND).contains(&second) {
            Ok(Self(second))
        } else {
            Err(TimeError::Range(format!(
                "{second} (seconds since 1970-01-01T00:00:00Z)"
            )))
        }
    }

    /// A clock reading truncated to the whole second it falls in (sub-second noise would make
    /// builds irreproducible).
    pub fn from_timestamp(t: jiff::Timestamp) -> Result<Self, TimeError> {
        let second = t.as_second() - i64::from(t.subsec_nanosecond() < 0);
        Self::from_second(second).map_err(|_| TimeError::Range(t.to_string()))
    }

    pub fn as_second(self) -> i64 {
        self.0
    }

    /// `now` has reached this time: the test for expiry (`expires <= now`), to the nanosecond.
    pub fn is_reached_at(self, now: jiff::Timestamp) -> bool {
        i128::from(self.0) * 1_000_000_000 <= now.as_nanosecond()
    }

    /// The `bundle.json` form and nothing else: `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let b = text.as_bytes();
        let shape = b.len() == 20
            && [4, 7].iter().all(|&i| b[i] == b'-')
            && b[10] == b'T'
            && [13, 16].iter().all(|&i| b[i] == b':')
            && b[19] == b'Z';
        if !shape {
            return Err(TimeError::NotCanonical(text.to_owned()));
        }
        let local = Civil::read(b).ok_or_else(|| TimeError::NotCanonical(text.into()))?;
        Self::from_second(local.seconds(text)?).map_err(|_| TimeError::Range(text.to_owned()))
    }

    /// RFC 3339 §5.6 `date-time` as a spec gives it (`T`/`Z` in either case, per its note), made
    /// into a bundle time: the offset applied, any fraction dropped (so never later than meant).
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::NotRfc3339(text.to_owned());
        let b = text.as_bytes();
        let shape = b.len() >= 20
            && [4, 7].iter().all(|&i| b[i] == b'-')
            && matches!(b[10], b'T' | b't')
            && [13, 16].iter().all(|&i| b[i] == b':');
        if !shape {
            return Err(bad());
        }
        let local = Civil::read(b).ok_or_else(bad)?;
        let mut rest = &b[19..];
        if let Some(fraction) = rest.strip_prefix(b".") {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(bad());
            }
            rest = &fraction[digits..];
        }
        let offset = match rest {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let hours = two_digits(*h1, *h2).ok_or_else(bad)?;
                let minutes = two_digits(*m1, *m2).ok_or_else(bad)?;
                check_range(text, "offset hour", hours, 0, 23, "00 to 23")?;
                check_range(text, "offset minute", minutes, 0, 59, "00 to 59")?;
                let seconds = i64::from(hours * 3600 + minutes * 60);
                if *sign == b'-' { -seconds } else { seconds }
            }
            _ => return Err(bad()),
        };
        // Local time minus its offset is UTC.
        Self::from_second(local.seconds(text)? - offset)
            .map_err(|_| TimeError::Range(text.to_owned()))
    }
}

impl fmt::Display for BundleTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// The date and time of day at the start of either form, before any range check.
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// Reads `YYYY-MM-DD?HH:MM:SS` from the first 19 bytes (separators already checked).
    fn read(b: &[u8]) -> Option<Self> {
        let year = two_digits(b[0], b[1])? * 100 + two_digits(b[2], b[3])?;
        Some(Self {
            year,
            month: two_digits(b[5], b[6])?,
            day: two_digits(b[8], b[9])?,
            hour: two_digits(b[11], b[12])?,
            minute: two_digits(b[14], b[15])?,
            second: two_digits(b[17], b[18])?,
        })
    }

    /// Seconds since the epoch of this time read as UTC, once every field is in its range.
    fn seconds(&self, text: &str) -> Result<i64, TimeError> {
        check_range(text, "month", self.month, 1, 12, "01 to 12")?;
        let last = days_in_month(self.year, self.month);
        let days_range = match last {
            28 => "01 to 28 in that month",
            29 => "01 to 29 in that month",
            30 => "01 to 30 in that month",
            _ => "01 to 31 in that month",
        };
        check_range(text, "day", self.day, 1, last, days_range)?;
        check_range(text, "hour", self.hour, 0, 23, "00 to 23")?;
        check_range(text, "minute", self.minute, 0, 59, "00 to 59")?;
        if self.second == 60 {
            return Err(TimeError::LeapSecond(text.to_owned()));
        }
        check_range(text, "second", self.second, 0, 59, "00 to 59")?;
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        Ok(days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second))
    }
}

fn two_digits(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit())
        .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

fn check_range(
    text: &str,
    what: &'static str,
    value: u32,
    low: u32,
    high: u32,
    range: &'static str,
) -> Result<(), TimeError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(TimeError::OutOfRange {
            text: text.to_owned(),
            what,
            value,
            range,
        })
    }
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
