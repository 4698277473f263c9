//! Rendering and parsing of instants in the text form of the JSON documents (BEHAVIOR 1.4).
//!
//! The rendered form is `YYYY-MM-DD HH:MM:SS.mmmZ`: always UTC, a space between date and
//! time, exactly three fraction digits and a `Z`. It is what Dart's `DateTime.toString()`
//! prints for a UTC instant with whole milliseconds, so documents written by either side
//! read back identically on the other.
//!
//! The calendar is the proleptic Gregorian one with a year 0 (astronomical numbering), as
//! in Dart. The conversions between day numbers and civil dates are done by hand here (no
//! date crate) with the usual "era of 400 years" arithmetic, valid for every `i64`
//! millisecond value.
//!
//! Parsing accepts the forms Dart's `DateTime.parse` accepts (see [`Timestamp::parse`]),
//! with two deliberate differences: a string without a zone is read as **UTC** (Dart reads
//! it as local time; BEHAVIOR open point 30), and out-of-range fields (month 13, February
//! 30, hour 24, ...) are refused instead of being rolled over into the next unit.

use super::Timestamp;
use crate::error::{PersistenceError, Result};
use std::fmt;

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Days from 1970-01-01 to `year-month-day` (negative before it). `month` is 1..=12 and
/// `day` 1..=31; the caller validates them.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March so that the leap day is the last day of the counted year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400); // 0..=399
    let month_from_march = (i64::from(month) + 9) % 12; // March = 0 .. February = 11
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1; // 0..=365
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719_468 days separate 0000-03-01 (the start of era 0) from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `(year, month, day)` of a day number counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days since 0000-03-01; cannot overflow for i64 ms
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097); // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // month is 1..=12 and day 1..=31 by construction.
    (year, month as u32, day as u32)
}

fn is_leap_year(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap_year(year) => 29,
        _ => 28,
    }
}

impl fmt::Display for Timestamp {
    /// Renders `YYYY-MM-DD HH:MM:SS.mmmZ` in UTC.
    ///
    /// Years 0..=9999 have exactly four digits. Other years follow Dart's
    /// `DateTime.toString()`: a `-` sign for years before 0 and at least four digits
    /// (`-0001`, `10000`), so every instant Dart can represent (±275 760 years) renders in a
    /// form [`Timestamp::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        let days = ms.div_euclid(MS_PER_DAY);
        let ms_of_day = ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let hour = ms_of_day / MS_PER_HOUR;
        let minute = ms_of_day % MS_PER_HOUR / MS_PER_MINUTE;
        let second = ms_of_day % MS_PER_MINUTE / MS_PER_SECOND;
        let milli = ms_of_day % MS_PER_SECOND;
        if year < 0 {
            write!(f, "-{:04}", year.unsigned_abs())?;
        } else {
            write!(f, "{year:04}")?;
        }
        write!(
            f,
            "-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{milli:03}Z"
        )
    }
}

/// A cursor over the ASCII bytes of a date-time string.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes exactly `n` ASCII digits and returns their value.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let end = self.pos.checked_add(n)?;
        let slice = self.bytes.get(self.pos..end)?;
        let mut value = 0i64;
        for &b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(b - b'0');
        }
        self.pos = end;
        Some(value)
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// The fields of a parsed date-time, before range checks.
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    milli: i64,
    /// Zone offset east of UTC, in minutes.
    offset_minutes: i64,
}

/// Parses everything after a year of `year_len` digits (the grammar of Dart's
/// `DateTime.parse`, see [`Timestamp::parse`]). `None` when the text does not match.
fn parse_with_year_len(s: &str, sign_len: usize, year_len: usize) -> Option<Fields> {
    let mut c = Cursor {
        bytes: s.as_bytes(),
        pos: sign_len,
    };
    let magnitude = c.digits(year_len)?;
    let year = if s.starts_with('-') {
        -magnitude
    } else {
        magnitude
    };
    c.eat(b'-');
    let month = c.digits(2)?;
    c.eat(b'-');
    let day = c.digits(2)?;
    let mut f = Fields {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        milli: 0,
        offset_minutes: 0,
    };
    if c.at_end() {
        return Some(f);
    }
    // Time part: [ T]HH(:?MM(:?SS([.,]fraction)?)?)?
    if !(c.eat(b' ') || c.eat(b'T')) {
        return None;
    }
    f.hour = c.digits(2)?;
    let before_minute = c.pos;
    c.eat(b':');
    if let Some(minute) = c.digits(2) {
        f.minute = minute;
        let before_second = c.pos;
        c.eat(b':');
        if let Some(second) = c.digits(2) {
            f.second = second;
            if c.eat(b'.') || c.eat(b',') {
                let start = c.pos;
                while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                    c.pos += 1;
                }
                let fraction = &c.bytes[start..c.pos];
                if fraction.is_empty() {
                    return None;
                }
                // Milliseconds are the first three digits; the rest (micro- and
                // nanoseconds) are truncated, the way every stored instant is.
                let mut milli = 0i64;
                for i in 0..3 {
                    milli = milli * 10 + fraction.get(i).map_or(0, |b| i64::from(b - b'0'));
                }
                f.milli = milli;
            }
        } else {
            c.pos = before_second;
        }
    } else {
        c.pos = before_minute;
    }
    // Zone part: ( ?[zZ] | ?[+-]HH(:?MM)?)?
    if c.at_end() {
        return Some(f);
    }
    c.eat(b' ');
    if c.eat(b'Z') || c.eat(b'z') {
        // UTC.
    } else {
        let east = if c.eat(b'+') {
            true
        } else if c.eat(b'-') {
            false
        } else {
            return None;
        };
        let hours = c.digits(2)?;
        if hours > 23 {
            return None;
        }
        let colon = c.eat(b':');
        let minutes = if c.at_end() && !colon {
            0
        } else {
            c.digits(2)?
        };
        if minutes > 59 {
            return None;
        }
        let total = hours * 60 + minutes;
        f.offset_minutes = if east { total } else { -total };
    }
    if c.at_end() {
        Some(f)
    } else {
        None
    }
}

fn date_error(reason: String) -> PersistenceError {
    PersistenceError::InvalidJson {
        field: "<date>".into(),
        reason,
    }
}

impl Timestamp {
    /// Parses a date-time in any form Dart's `DateTime.parse` accepts, truncating to
    /// milliseconds.
    ///
    /// The grammar is `[+-]YYYY[YY]-?MM-?DD`, optionally followed by a time
    /// `( |T)HH(:?MM(:?SS([.,]F+)?)?)?` and then optionally a zone `( ?Z| ?[+-]HH(:?MM)?)`
    /// (`z` is accepted too). Examples: `2024-01-01 00:00:00.000Z`,
    /// `2024-01-01T00:00:00Z`, `2024-01-01T05:30:00+05:30`, `20240101T000000-0130`,
    /// `2024-01-01 00:00:00.123456Z` (the `456` µs are dropped), `2024-01-01`.
    ///
    /// A string without a zone is read as UTC (Dart reads it as local time; BEHAVIOR open
    /// point 30). Fields out of range (month 13, February 29 in a common year, hour 24,
    /// minute or second 60) are refused rather than rolled over.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::InvalidJson`] with `field` `"<date>"` (JSON readers replace it
    /// with the name of the field they were reading) and a reason naming the input.
    ///
    /// ```
    /// use at_persistence_secondary_server::model::Timestamp;
    /// let t = Timestamp::parse("2024-01-01T05:30:00.000+05:30").unwrap();
    /// assert_eq!(t.to_string(), "2024-01-01 00:00:00.000Z");
    /// ```
    pub fn parse(s: &str) -> Result<Timestamp> {
        if !s.is_ascii() {
            return Err(date_error(format!(
                "{s:?} is not a date-time (non-ASCII text)"
            )));
        }
        let sign_len = usize::from(s.starts_with('+') || s.starts_with('-'));
        let year_digits = s.as_bytes()[sign_len..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        // Dart's year is 4 to 6 digits, matched greedily: try the longest first.
        let fields = (4..=6usize)
            .rev()
            .filter(|&len| len <= year_digits)
            .find_map(|len| parse_with_year_len(s, sign_len, len))
            .ok_or_else(|| {
                date_error(format!(
                    "{s:?} is not a date-time (expected e.g. \"2024-01-01 00:00:00.000Z\")"
                ))
            })?;
        if !(1..=12).contains(&fields.month) {
            return Err(date_error(format!(
                "{s:?}: month {} is out of range 1..=12",
                fields.month
            )));
        }
        // month is 1..=12 here.
        let month = fields.month as u32;
        let max_day = days_in_month(fields.year, month);
        if fields.day < 1 || fields.day > i64::from(max_day) {
            return Err(date_error(format!(
                "{s:?}: day {} is out of range 1..={max_day} for that month",
                fields.day
            )));
        }
        if fields.hour > 23 {
            return Err(date_error(format!(
                "{s:?}: hour {} is out of range 0..=23",
                fields.hour
            )));
        }
        if fields.minute > 59 {
            return Err(date_error(format!(
                "{s:?}: minute {} is out of range 0..=59",
                fields.minute
            )));
        }
        if fields.second > 59 {
            return Err(date_error(format!(
                "{s:?}: second {} is out of range 0..=59",
                fields.second
            )));
        }
        // At most 6 year digits: |days| < 4e8, so none of this can overflow an i64.
        let days = days_from_civil(fields.year, month, fields.day as u32);
        let ms = days * MS_PER_DAY
            + fields.hour * MS_PER_HOUR
            + fields.minute * MS_PER_MINUTE
            + fields.second * MS_PER_SECOND
            + fields.milli
            - fields.offset_minutes * MS_PER_MINUTE;
        Ok(Timestamp::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_around_era_boundaries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn extreme_values_render_without_panicking() {
        for ms in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX] {
            let _ = Timestamp::from_millis(ms).to_string();
        }
    }
}
