//! PostgreSQL dates, times and timestamps, decoded from their binary form without panicking.
//!
//! sqlx's chrono decoding adds the stored offset to PostgreSQL's epoch with chrono's operators,
//! which panic on `infinity`, `-infinity` and on values beyond chrono's years (−262143 to
//! 262142; PostgreSQL dates go to 5874897 AD, timestamps to 294276 AD), and it wraps `time`'s
//! `24:00:00` to midnight. Such a value has no sheetsync [`Value`]: decoding it fails with a
//! reason naming the value, so the row is held while the others sync.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime};
use sheetsync_core::Value;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// 2000-01-01, from which PostgreSQL counts days and microseconds.
fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

fn beyond(shown: &str, what: &str) -> String {
    format!(
        "{shown} is beyond the {what} values sheetsync can carry (the years {} to {}); \
         the row is held until it holds a {what} within them",
        NaiveDate::MIN.year(),
        NaiveDate::MAX.year()
    )
}

fn infinite(shown: &str, what: &str) -> String {
    format!("{shown} is not a {what} sheetsync can carry; the row is held until it holds a finite {what}")
}

/// A `date`: days since 2000-01-01, `i32::MAX`/`MIN` for ±infinity.
pub(super) fn date(bytes: &[u8]) -> Result<Value, String> {
    let days = i32::from_be_bytes(fixed(bytes)?);
    match days {
        i32::MAX => Err(infinite("infinity", "date")),
        i32::MIN => Err(infinite("-infinity", "date")),
        _ => pg_epoch()
            .checked_add_signed(Duration::days(days.into()))
            .map(Value::Date)
            .ok_or_else(|| beyond(&civil(i64::from(days)), "date")),
    }
}

/// A `timestamp` (`tz: false`) or `timestamptz` (`tz: true`, in UTC): microseconds since
/// 2000-01-01 00:00, `i64::MAX`/`MIN` for ±infinity.
pub(super) fn timestamp(bytes: &[u8], tz: bool) -> Result<Value, String> {
    let us = i64::from_be_bytes(fixed(bytes)?);
    let what = if tz {
        "timestamp with time zone"
    } else {
        "timestamp"
    };
    let naive = match us {
        i64::MAX => return Err(infinite("infinity", what)),
        i64::MIN => return Err(infinite("-infinity", what)),
        _ => pg_epoch()
            .and_time(NaiveTime::MIN)
            .checked_add_signed(Duration::microseconds(us)),
    };
    let Some(naive) = naive else {
        return Err(beyond(&civil_timestamp(us, tz), what));
    };
    Ok(if tz {
        Value::TimestampTz(naive.and_utc())
    } else {
        Value::Timestamp(naive)
    })
}

/// A `time`: microseconds since midnight, up to `24:00:00` inclusive.
pub(super) fn time(bytes: &[u8]) -> Result<Value, String> {
    let us = i64::from_be_bytes(fixed(bytes)?);
    if !(0..MICROS_PER_DAY).contains(&us) {
        return Err(format!(
            "{} is not a time of day sheetsync can carry (00:00:00 to 23:59:59.999999); \
             the row is held until it holds one",
            time_text(us)
        ));
    }
    Ok(Value::Time(
        NaiveTime::from_num_seconds_from_midnight_opt(
            (us / 1_000_000) as u32,
            (us % 1_000_000) as u32 * 1_000,
        )
        .expect("within a day"),
    ))
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

/// `YYYY-MM-DD` of a day number counted from 2000-01-01, for any day (proleptic Gregorian; the
/// civil-from-days algorithm of H. Hinnant), as PostgreSQL prints it (`BC` for years ≤ 0).
fn civil(days_since_2000: i64) -> String {
    let z = days_since_2000 + 10_957 + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    if y > 0 {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    }
}

fn time_text(us: i64) -> String {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3_600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        s.push_str(&format!(".{frac:06}"));
    }
    s
}

fn civil_timestamp(us: i64, tz: bool) -> String {
    let (days, rest) = (us.div_euclid(MICROS_PER_DAY), us.rem_euclid(MICROS_PER_DAY));
    let shown = format!("{} {}", civil(days), time_text(rest));
    if tz {
        format!("{shown}+00")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    /// `'300000-01-01'::date - '2000-01-01'::date`, as PostgreSQL computes it.
    const YEAR_300000: i64 = 108_842_265;
    /// The same for 270000-01-01 (timestamps end in 294276).
    const YEAR_270000: i64 = 97_884_990;

    #[test]
    fn infinities_and_far_dates_are_reasons_not_panics() {
        let e = date(&i32::MAX.to_be_bytes()).unwrap_err();
        assert!(e.starts_with("infinity is not a date"), "{e}");
        let e = timestamp(&i64::MIN.to_be_bytes(), true).unwrap_err();
        assert!(
            e.starts_with("-infinity is not a timestamp with time zone"),
            "{e}"
        );
        let e = date(&(YEAR_300000 as i32).to_be_bytes()).unwrap_err();
        assert!(
            e.starts_with("300000-01-01 is beyond the date values"),
            "{e}"
        );
        let us = YEAR_270000 * MICROS_PER_DAY + 3_723_000_001;
        let e = timestamp(&us.to_be_bytes(), false).unwrap_err();
        assert!(
            e.starts_with("270000-01-01 01:02:03.000001 is beyond the timestamp values"),
            "{e}"
        );
        let e = time(&MICROS_PER_DAY.to_be_bytes()).unwrap_err();
        assert!(e.starts_with("24:00:00 is not a time of day"), "{e}");
        assert!(date(&[0, 1]).is_err(), "a short value is an error too");
    }

    #[test]
    fn ordinary_values_decode_exactly() {
        assert_eq!(date(&0i32.to_be_bytes()).unwrap(), Value::Date(pg_epoch()));
        let us: i64 = MICROS_PER_DAY * 366 + 1;
        assert_eq!(
            timestamp(&us.to_be_bytes(), false).unwrap(),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(2001, 1, 1)
                    .unwrap()
                    .and_hms_micro_opt(0, 0, 0, 1)
                    .unwrap()
            )
        );
        assert_eq!(
            timestamp(&(-1i64).to_be_bytes(), true).unwrap(),
            Value::TimestampTz(DateTime::from_timestamp(946_684_799, 999_999_000).unwrap())
        );
        assert_eq!(
            time(&(MICROS_PER_DAY - 1).to_be_bytes()).unwrap(),
            Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap())
        );
    }

    #[test]
    fn civil_dates_match_chrono_where_it_reaches() {
        for days in [
            -2_451_545, -1_000_000, -1, 0, 59, 60, 366, 1_000_000, 95_000_000,
        ] {
            let want = pg_epoch() + Duration::days(days);
            let shown = civil(days);
            let iso = match shown.strip_suffix(" BC") {
                Some(bc) => {
                    let (y, md) = bc.split_once('-').unwrap();
                    let year = 1 - y.parse::<i32>().unwrap();
                    if year < 0 {
                        format!("-{:04}-{md}", -year)
                    } else {
                        format!("{year:04}-{md}")
                    }
                }
                None if days > 3_000_000 => format!("+{shown}"),
                None => shown.clone(),
            };
            let parsed = NaiveDate::parse_from_str(&iso, "%Y-%m-%d").unwrap();
            assert_eq!(parsed, want, "{days}: {shown}");
        }
    }
}
