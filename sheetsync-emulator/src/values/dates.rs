//! Calendar arithmetic for serial numbers (days since 1899-12-30, spec §5.2).

/// Serial number of 1970-01-01.
pub const UNIX_EPOCH_SERIAL: i64 = 25_569;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whether (y, m, d) is a real date.
pub fn valid_date(y: i64, m: u32, d: u32) -> bool {
    if !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    d <= dim[(m - 1) as usize]
}

/// Serial number of a date.
pub fn serial_of(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) + UNIX_EPOCH_SERIAL
}

/// RFC 3339 UTC timestamp with milliseconds from unix ms (Drive `modifiedTime`).
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_match_google() {
        assert_eq!(serial_of(2020, 1, 1), 43_831);
        assert_eq!(serial_of(1999, 1, 2), 36_162);
        assert_eq!(serial_of(2024, 1, 2), 45_293);
        assert_eq!(serial_of(1900, 3, 1), 61);
        assert_eq!(civil_from_days(43_831 - UNIX_EPOCH_SERIAL), (2020, 1, 1));
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
