//! HTTP dates (RFC 9110 §5.6.7, IMF-fixdate) for tiny_http, total over every clock value.
//!
//! tiny_http 0.12 writes a `Date` header on every response, including the ones it sends on
//! its own (100 Continue, 400/408/417/505, the 500 of a dropped request), with
//! `httpdate::HttpDate::from(SystemTime::now())`. The httpdate crate panics for a time before
//! 1970 or after 9999 (upstream hyperium/headers#230, unreleased), and a board whose RTC-less
//! clock reads 1960 would lose a web worker per request. This crate is ours, written to the
//! same API tiny_http uses and patched in by `[patch.crates-io]`: out-of-range times are
//! clamped to 1970-01-01 / 9999-12-31 instead. Drop it once a released httpdate is total.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1970-01-01 to 9999-12-31 23:59:59, the last time an IMF-fixdate can carry.
const MAX_SECS: u64 = 253_402_300_799;

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A point in time that an HTTP date can represent: whole seconds of 1970..=9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpDate {
    secs: u64,
}

/// A string that is not an IMF-fixdate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string is not an IMF-fixdate HTTP date")
    }
}

impl std::error::Error for Error {}

impl From<SystemTime> for HttpDate {
    fn from(t: SystemTime) -> HttpDate {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs().min(MAX_SECS),
            Err(_) => 0,
        };
        HttpDate { secs }
    }
}

impl From<HttpDate> for SystemTime {
    fn from(d: HttpDate) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(d.secs)
    }
}

/// Civil date of a day count since 1970-01-01 (the proleptic Gregorian calendar, computed in
/// 400-year eras of 146 097 days).
fn civil_from_days(days: u64) -> (u64, usize, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month0 = if mp < 10 { mp + 2 } else { mp - 10 };
    let year = yoe + era * 400 + u64::from(month0 <= 1);
    (year, month0 as usize, day)
}

/// Days since 1970-01-01 of a civil date (the inverse of `civil_from_days`), for years ≥ 1970.
fn days_from_civil(year: u64, month0: u64, day: u64) -> u64 {
    let y = if month0 <= 1 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y % 400;
    let mp = (month0 + 10) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs / 86_400;
        let rem = self.secs % 86_400;
        let (year, month0, day) = civil_from_days(days);
        write!(
            f,
            "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
            WEEKDAYS[(days % 7) as usize],
            MONTHS[month0],
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

impl FromStr for HttpDate {
    type Err = Error;

    /// Accepts IMF-fixdate, the only form a sender may generate (RFC 9110 §5.6.7).
    fn from_str(s: &str) -> Result<HttpDate, Error> {
        let b = s.as_bytes();
        if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
            return Err(Error);
        }
        let num = |r: std::ops::Range<usize>| -> Result<u64, Error> {
            let part = s.get(r).ok_or(Error)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(Error);
            }
            part.parse().map_err(|_| Error)
        };
        let day = num(5..7)?;
        let month0 = MONTHS
            .iter()
            .position(|m| s.get(8..11) == Some(*m))
            .ok_or(Error)? as u64;
        let year = num(12..16)?;
        let (hour, min, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
        if [b[7], b[11], b[16]] != [b' '; 3] || b[19] != b':' || b[22] != b':' {
            return Err(Error);
        }
        const MONTH_DAYS: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let month_days = MONTH_DAYS[month0 as usize] + u64::from(month0 == 1 && is_leap(year));
        if year < 1970 || day == 0 || day > month_days || hour > 23 || min > 59 || sec > 60 {
            return Err(Error);
        }
        let days = days_from_civil(year, month0, day);
        let date = HttpDate {
            secs: days * 86_400 + hour * 3600 + min * 60 + sec.min(59),
        };
        // The weekday must agree with the date, or the string is not a real date.
        if s.get(..3) != Some(WEEKDAYS[(days % 7) as usize]) {
            return Err(Error);
        }
        Ok(date)
    }
}

/// Formats a time as an IMF-fixdate (clamped into 1970..=9999).
pub fn fmt_http_date(t: SystemTime) -> String {
    HttpDate::from(t).to_string()
}

/// Parses an IMF-fixdate.
pub fn parse_http_date(s: &str) -> Result<SystemTime, Error> {
    s.parse::<HttpDate>().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_format_and_parse_back() {
        let cases = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (420_895_020, "Wed, 04 May 1983 11:17:00 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_796_342_400, "Fri, 04 Dec 2026 00:00:00 GMT"),
            (MAX_SECS, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, text) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(fmt_http_date(t), text);
            assert_eq!(parse_http_date(text), Ok(t), "{text}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for days in (0..146_097 * 4).step_by(13) {
            let t = UNIX_EPOCH + Duration::from_secs(days * 86_400 + 3_723);
            assert_eq!(parse_http_date(&fmt_http_date(t)), Ok(t));
        }
    }

    #[test]
    fn clocks_out_of_range_are_clamped_not_a_panic() {
        let before = UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400);
        assert_eq!(fmt_http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        let after = UNIX_EPOCH + Duration::from_secs(MAX_SECS * 2);
        assert_eq!(fmt_http_date(after), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn malformed_dates_are_errors() {
        for bad in [
            "",
            "Thu, 01 Jan 1970 00:00:00 UTC",
            "Fri, 01 Jan 1970 00:00:00 GMT",
            "Thu, 32 Jan 1970 00:00:00 GMT",
            "Sun, 29 Feb 1970 00:00:00 GMT",
            "Thu, 01 Foo 1970 00:00:00 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Thu, 01 Jan 1970 24:00:00 GMT",
            "Thu, +1 Jan 1970 00:00:00 GMT",
            "Thursday, 01-Jan-70 00:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), Err(Error), "{bad:?}");
        }
    }
}
