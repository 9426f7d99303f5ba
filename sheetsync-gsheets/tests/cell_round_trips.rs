//! Property tests: every value the database can hand over is written to a cell and read back
//! as exactly the same value, over chrono's whole range, in time zones with daylight-saving
//! folds and gaps (and a skipped day), so a full read never reports a change nobody made.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use sheetsync_core::Value;
use sheetsync_gsheets::convert::{read_cell, write_cell};

/// Zones with one-hour folds and gaps both sides of Greenwich, a half-hour DST (Lord Howe), a
/// skipped calendar day (Apia, 2011-12-30), a southern-hemisphere DST (Santiago) and none
/// (Kolkata).
const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "America/Santiago",
    "Asia/Kolkata",
];

fn zone() -> impl Strategy<Value = Tz> {
    proptest::sample::select(ZONES).prop_map(|z| z.parse().unwrap())
}

fn micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

/// Microsecond instants over chrono's whole range (a day's margin at each end, where a local
/// time would leave the range).
fn any_micros() -> impl Strategy<Value = i64> {
    micros(NaiveDateTime::MIN + Duration::days(2))..micros(NaiveDateTime::MAX - Duration::days(2))
}

/// Microsecond instants where people live: 1700 to 2200.
fn usual_micros() -> impl Strategy<Value = i64> {
    let at = |y| {
        micros(
            NaiveDate::from_ymd_opt(y, 1, 1)
                .unwrap()
                .and_time(NaiveTime::MIN),
        )
    };
    at(1700)..at(2200)
}

fn naive(us: i64) -> NaiveDateTime {
    DateTime::from_timestamp_micros(us).unwrap().naive_utc()
}

/// The instants of `tz`'s offset changes in `year` (found by a daily scan, then bisection).
fn transitions(tz: Tz, year: i32) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut out = Vec::new();
    let mut day = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
    while day.year_is(year) {
        let next = day + Duration::days(1);
        if offset(day) != offset(next) {
            let (mut lo, mut hi) = (day, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == offset(lo) {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            out.push(hi);
        }
        day = next;
    }
    out
}

trait YearIs {
    fn year_is(&self, y: i32) -> bool;
}

impl YearIs for DateTime<Utc> {
    fn year_is(&self, y: i32) -> bool {
        chrono::Datelike::year(self) == y
    }
}

/// An instant within three hours of one of `tz`'s offset changes (folds and gaps), in a year
/// between 1971 and 2100; `None` when the zone has none that year.
fn near_transition() -> impl Strategy<Value = (Tz, Option<DateTime<Utc>>)> {
    (
        zone(),
        1971..2100i32,
        any::<prop::sample::Index>(),
        -3 * 3_600_000_000i64..3 * 3_600_000_000,
    )
        .prop_map(|(tz, year, pick, us)| {
            let ts = transitions(tz, year);
            let at =
                (!ts.is_empty()).then(|| ts[pick.index(ts.len())] + Duration::microseconds(us));
            (tz, at)
        })
}

fn round_trips(v: Value, tz: Tz) -> Result<(), TestCaseError> {
    let ty = v.column_type().unwrap();
    let cell = write_cell(&v, tz).unwrap();
    let back = read_cell(&cell, ty, tz);
    prop_assert_eq!(
        back,
        Ok(v.clone()),
        "{:?} in {} was written as {}",
        v,
        tz,
        cell
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn timestamps_round_trip_over_the_whole_range(us in any_micros(), tz in zone()) {
        round_trips(Value::Timestamp(naive(us)), tz)?;
        round_trips(Value::TimestampTz(DateTime::from_timestamp_micros(us).unwrap()), tz)?;
        round_trips(Value::Date(naive(us).date()), tz)?;
    }

    #[test]
    fn usual_timestamps_round_trip(us in usual_micros(), tz in zone(), nanos in 0..1_000u32) {
        round_trips(Value::Timestamp(naive(us)), tz)?;
        round_trips(Value::TimestampTz(DateTime::from_timestamp_micros(us).unwrap()), tz)?;
        // Nanoseconds (SQLite text can hold them) survive as text.
        let fine = naive(us) + Duration::nanoseconds(i64::from(nanos));
        round_trips(Value::Timestamp(fine), tz)?;
    }

    #[test]
    fn instants_around_daylight_saving_changes_round_trip((tz, at) in near_transition()) {
        if let Some(at) = at {
            round_trips(Value::TimestampTz(at), tz)?;
            round_trips(Value::Timestamp(at.naive_utc()), tz)?;
        }
    }

    #[test]
    fn times_of_day_round_trip(us in 0..86_400_000_000i64) {
        let t = NaiveTime::MIN + Duration::microseconds(us);
        round_trips(Value::Time(t), Tz::UTC)?;
    }
}

#[test]
fn every_zone_has_folds_and_gaps_to_test() {
    // The transition strategy really finds changes where the zones have them.
    for (zone, want) in [
        ("America/New_York", 2),
        ("Australia/Lord_Howe", 2),
        ("Asia/Kolkata", 0),
    ] {
        assert_eq!(
            transitions(zone.parse().unwrap(), 2026).len(),
            want,
            "{zone}"
        );
    }
    assert_eq!(
        transitions("Pacific/Apia".parse().unwrap(), 2011).len(),
        3,
        "Apia 2011"
    );
}
