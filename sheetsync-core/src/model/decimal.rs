//! An exact decimal number of any size, kept in one canonical text form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact decimal (SQL `numeric`/`decimal`) with no precision limit.
///
/// The value is stored in canonical form: no exponent, no leading zeros in the integer part, no
/// trailing zeros in the fraction, and `0` for every zero. So `1.50`, `+1.5` and `15e-1` are equal
/// and hash the same, which is what a database column and a Sheet cell must agree on.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Decimal(Box<str>);

/// Why a text is not a decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a decimal number")]
pub struct ParseDecimalError {
    input: String,
}

impl Decimal {
    /// The canonical text, e.g. `-12.5`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The decimal from an `i64`.
    pub fn from_i64(v: i64) -> Self {
        Decimal(v.to_string().into_boxed_str())
    }

    /// The nearest `f64`, and whether it represents this decimal exactly enough to round-trip:
    /// `f64`'s shortest representation reads back as the same decimal. A Sheet stores numbers as
    /// `f64`, so a decimal for which this is `false` must be written to a Sheet as text.
    pub fn to_f64_lossless(&self) -> Option<f64> {
        let f: f64 = self.0.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        let back = Decimal::from_f64(f)?;
        (back == *self).then_some(f)
    }

    /// The decimal that `f64`'s shortest round-trip representation denotes (`0.1` for `0.1f64`).
    pub fn from_f64(f: f64) -> Option<Self> {
        if !f.is_finite() {
            return None;
        }
        // `{:?}` prints the shortest text that reads back as the same f64, with an exponent for
        // very large or small numbers; canonicalising removes the exponent.
        format!("{f:?}").parse().ok()
    }
}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || ParseDecimalError {
            input: input.to_string(),
        };
        let s = input.trim();
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => {
                let exp: i64 = s[i + 1..].parse().map_err(|_| err())?;
                (&s[..i], exp)
            }
            None => (s, 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || exponent.abs() > 100_000
        {
            return Err(err());
        }
        // All digits, with the decimal point `point` places from the left.
        let digits: String = format!("{int_part}{frac_part}");
        let point = int_part.len() as i64 + exponent;
        let digits = digits.as_bytes();
        let mut int = String::new();
        let mut frac = String::new();
        if point <= 0 {
            frac.extend(std::iter::repeat_n('0', (-point) as usize));
            frac.push_str(std::str::from_utf8(digits).map_err(|_| err())?);
        } else if point as usize >= digits.len() {
            int.push_str(std::str::from_utf8(digits).map_err(|_| err())?);
            int.extend(std::iter::repeat_n('0', point as usize - digits.len()));
        } else {
            let (a, b) = digits.split_at(point as usize);
            int.push_str(std::str::from_utf8(a).map_err(|_| err())?);
            frac.push_str(std::str::from_utf8(b).map_err(|_| err())?);
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let mut out = String::with_capacity(int.len() + frac.len() + 2);
        if negative && !(int == "0" && frac.is_empty()) {
            out.push('-');
        }
        out.push_str(int);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        Ok(Decimal(out.into_boxed_str()))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({})", self.0)
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        s.parse::<Decimal>().unwrap().to_string()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(d("1.50"), "1.5");
        assert_eq!(d("+001.500"), "1.5");
        assert_eq!(d("-0.000"), "0");
        assert_eq!(d("15e-1"), "1.5");
        assert_eq!(d("1.5E3"), "1500");
        assert_eq!(d(".5"), "0.5");
        assert_eq!(d("5."), "5");
        assert_eq!(
            d("-12345678901234567890.123456789012345678901"),
            "-12345678901234567890.123456789012345678901"
        );
        assert_eq!(d("1e-3"), "0.001");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "1,5", "NaN", "1e999999"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lossless_f64_only_when_exact() {
        assert_eq!(
            "0.1".parse::<Decimal>().unwrap().to_f64_lossless(),
            Some(0.1)
        );
        assert_eq!(
            "123.25".parse::<Decimal>().unwrap().to_f64_lossless(),
            Some(123.25)
        );
        assert_eq!(
            "12345678901234567890.12"
                .parse::<Decimal>()
                .unwrap()
                .to_f64_lossless(),
            None
        );
        assert_eq!(
            "0.10000000000000000001"
                .parse::<Decimal>()
                .unwrap()
                .to_f64_lossless(),
            None
        );
        assert_eq!(
            Decimal::from_f64(1e21).unwrap().as_str(),
            "1000000000000000000000"
        );
    }
}
