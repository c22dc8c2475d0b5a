//! Kubernetes `metav1.Duration`: a JSON string in Go's `time.Duration` syntax (`"5m0s"`,
//! `"1h"`, `"1.5s"`, `"0"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: invalid duration {0:?}")]
pub struct InvalidDuration(pub String);

/// A signed duration with nanosecond precision, as Go's `time.Duration` (an `i64`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration {
    nanos: i64,
}

impl GoDuration {
    pub const ZERO: Self = Self { nanos: 0 };

    pub fn from_std(duration: Duration) -> Self {
        Self {
            nanos: i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX),
        }
    }

    /// The duration, or `None` if it is negative.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.nanos).ok().map(Duration::from_nanos)
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// Parses Go's `time.ParseDuration` syntax: `[-+]?([0-9]*(\.[0-9]*)?unit)+` with units
    /// `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`, or a bare `0`.
    pub fn parse(text: &str) -> Result<Self, InvalidDuration> {
        let invalid = || InvalidDuration(text.to_owned());
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(Self::ZERO);
        }
        if rest.is_empty() {
            return Err(invalid());
        }
        // Accumulated in u128 so only the final range check can fail.
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let integer_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (integer, after_integer) = rest.split_at(integer_end);
            let (fraction, after_number) = match after_integer.strip_prefix('.') {
                Some(after_dot) => {
                    let end = after_dot
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(after_dot.len());
                    after_dot.split_at(end)
                }
                None => ("", after_integer),
            };
            if integer.is_empty() && fraction.is_empty() {
                return Err(invalid());
            }
            let unit_end = after_number
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(after_number.len());
            let (unit, after_unit) = after_number.split_at(unit_end);
            let unit_nanos: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => NANOS_PER_MICRO,
                "ms" => NANOS_PER_MILLI,
                "s" => NANOS_PER_SECOND,
                "m" => 60 * NANOS_PER_SECOND,
                "h" => 3600 * NANOS_PER_SECOND,
                _ => return Err(invalid()),
            };
            let whole: u128 = if integer.is_empty() {
                0
            } else {
                integer.parse().map_err(|_| invalid())?
            };
            total = total
                .checked_add(whole.checked_mul(unit_nanos).ok_or_else(invalid)?)
                .ok_or_else(invalid)?;
            // Fractions beyond nanosecond precision are truncated, as in Go.
            let mut scale = unit_nanos;
            for digit in fraction.bytes() {
                scale /= 10;
                if scale == 0 {
                    break;
                }
                total += u128::from(digit - b'0') * scale;
            }
            if total > u128::from(i64::MAX.unsigned_abs()) + 1 {
                return Err(invalid());
            }
            rest = after_unit;
        }
        let nanos = if negative {
            0_i128 - i128::try_from(total).map_err(|_| invalid())?
        } else {
            i128::try_from(total).map_err(|_| invalid())?
        };
        Ok(Self {
            nanos: i64::try_from(nanos).map_err(|_| invalid())?,
        })
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `0s`, `1.5µs`, `20ms`, `1m0s`, `1h2m3.5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0s");
        }
        if self.nanos < 0 {
            f.write_str("-")?;
        }
        let nanos = u128::from(self.nanos.unsigned_abs());
        if nanos < NANOS_PER_MICRO {
            return write!(f, "{nanos}ns");
        }
        if nanos < NANOS_PER_MILLI {
            return write_with_fraction(f, nanos, NANOS_PER_MICRO, "µs");
        }
        if nanos < NANOS_PER_SECOND {
            return write_with_fraction(f, nanos, NANOS_PER_MILLI, "ms");
        }
        let seconds = nanos / NANOS_PER_SECOND;
        let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if hours > 0 || minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        write_with_fraction(f, nanos % (60 * NANOS_PER_SECOND), NANOS_PER_SECOND, "s")
    }
}

/// Writes `value / unit` with the remainder as a decimal fraction without trailing zeros.
fn write_with_fraction(
    f: &mut fmt::Formatter<'_>,
    value: u128,
    unit: u128,
    suffix: &str,
) -> fmt::Result {
    write!(f, "{}", value / unit)?;
    let remainder = value % unit;
    if remainder > 0 {
        let width = unit.ilog10() as usize;
        let digits = format!("{remainder:0width$}");
        write!(f, ".{}", digits.trim_end_matches('0'))?;
    }
    f.write_str(suffix)
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("-0", Some(0)),
            ("0s", Some(0)),
            ("5m0s", Some(300_000_000_000)),
            ("1h", Some(3_600_000_000_000)),
            ("1.5s", Some(1_500_000_000)),
            (".5s", Some(500_000_000)),
            ("1.s", Some(1_000_000_000)),
            ("-2m", Some(-120_000_000_000)),
            ("+3ms", Some(3_000_000)),
            ("1h2m3s4ms5us6ns", Some(3_723_004_005_006)),
            ("1µs", Some(1_000)),
            ("1μs", Some(1_000)),
            ("0.0000000001s", Some(0)),
            ("9223372036854775807ns", Some(i64::MAX)),
            ("-9223372036854775808ns", Some(i64::MIN)),
            ("9223372036854775808ns", None),
            ("", None),
            ("-", None),
            ("5", None),
            ("s", None),
            (".s", None),
            ("1d", None),
            ("1 s", None),
            ("1s ", None),
            ("99999999999999999999999h", None),
        ];
        for (text, expected) in cases {
            let parsed = GoDuration::parse(text).ok().map(|duration| duration.nanos);
            assert_eq!(parsed, *expected, "duration {text:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (20_000_000, "20ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (300_000_000_000, "5m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (21_600_000_000_000, "6h0m0s"),
            (-90_000_000_000, "-1m30s"),
        ];
        for (nanos, expected) in cases {
            let duration = GoDuration { nanos: *nanos };
            assert_eq!(duration.to_string(), *expected);
            assert_eq!(GoDuration::parse(expected), Ok(duration));
        }
        assert_eq!(
            serde_json::to_string(&GoDuration::from_std(Duration::from_secs(90))).unwrap(),
            "\"1m30s\""
        );
        assert!(serde_json::from_str::<GoDuration>("300").is_err());
        assert_eq!(GoDuration { nanos: -1 }.to_std(), None);
    }
}
