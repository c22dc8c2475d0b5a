//! Kubernetes resource quantities (`100m`, `1Gi`, `1e3`, `0.5`): parsing, comparison,
//! arithmetic and the canonical text the API server writes back.
//!
//! Values are held exactly in nano-units (`i128`), which covers every quantity the API
//! admits in practice (upstream rounds anything finer than `1n` up to `1n`, as here). The
//! canonical form follows apimachinery's `Quantity.String()`: the suffix family the user chose
//! (decimal SI, binary SI, or exponent) with the largest suffix that keeps an integer
//! mantissa, so `1000m` → `1`, `0.5` → `500m`, `1024Mi` → `1Gi`, `1.5Gi` → `1536Mi`.

use std::cmp::Ordering;
use std::fmt;

use crate::k8s::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// The suffix family a quantity was written in; it is kept when the value is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `m`, `k`, `M`, `G`, … (and no suffix).
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`, …
    BinarySI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// Why a string is not a quantity; the texts are apimachinery's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    #[error("unable to parse quantity's numeric part")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

const NANO: i128 = 1_000_000_000;

/// A parsed quantity. Equality and ordering compare values only (`1` == `1000m`), as
/// upstream's semantic equality does.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}
impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// Divides rounding the magnitude up (upstream rounds sub-nano amounts away from zero).
fn div_round_up(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d != 0 { q + n.signum() } else { q }
}

impl Quantity {
    /// Zero in the given format.
    pub fn zero(format: Format) -> Quantity {
        Quantity { nanos: 0, format }
    }

    /// A whole number of units (bytes, cores) in decimal SI.
    pub fn from_units(units: i64) -> Quantity {
        Quantity {
            nanos: i128::from(units) * NANO,
            format: Format::DecimalSI,
        }
    }

    /// Thousandths of a unit (millicores) in decimal SI.
    pub fn from_millis(millis: i64) -> Quantity {
        Quantity {
            nanos: i128::from(millis) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    /// Parses the quantity grammar exactly (no surrounding whitespace).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let mut negative = false;
        if b[0] == b'-' || b[0] == b'+' {
            negative = b[0] == b'-';
            pos = 1;
        }
        let int_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_part = &s[int_start..pos];
        let mut frac_part = "";
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_part = &s[frac_start..pos];
        }
        // The suffix: letters from the suffix alphabet, an optional sign, then digits.
        let suffix_start = pos;
        while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
            pos += 1;
        }
        if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
            pos += 1;
        }
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos != b.len() {
            return Err(QuantityError::FormatWrong);
        }
        let suffix = &s[suffix_start..];
        let (base2, exponent, format) = interpret_suffix(suffix).ok_or(QuantityError::Suffix)?;

        // mantissa = int_part.frac_part as an integer over 10^frac_digits
        let frac_part = frac_part.trim_end_matches('0');
        let mut mantissa: i128 = 0;
        for c in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(c - b'0')))
                .ok_or(QuantityError::Numeric)?;
        }
        let frac_digits = frac_part.len() as i64;
        let mut nanos = if base2 {
            // exponent is a power of two (10, 20, … 60)
            let m = mantissa
                .checked_mul(1i128 << exponent)
                .ok_or(QuantityError::Numeric)?;
            scale_decimal(m, 9 - frac_digits)?
        } else {
            scale_decimal(mantissa, 9 + i64::from(exponent) - frac_digits)?
        };
        let mut format = format;
        if format == Format::BinarySI {
            // upstream caps binary quantities at 2^63-1 and prints sub-unit ones as decimal
            let max = i128::from(i64::MAX) * NANO;
            if nanos > max {
                nanos = max;
            }
            if nanos < NANO && nanos > 0 {
                format = Format::DecimalSI;
            }
        }
        if negative {
            nanos = -nanos;
        }
        Ok(Quantity { nanos, format })
    }

    /// Parses a quantity as it arrives in an API object (upstream trims spaces when decoding).
    pub fn from_api(q: &ApiQuantity) -> Result<Quantity, QuantityError> {
        Quantity::parse(q.0.trim())
    }

    /// The canonical API form.
    pub fn to_api(&self) -> ApiQuantity {
        ApiQuantity(self.to_string())
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The exact value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up (upstream `MilliValue`): CPU in millicores.
    pub fn milli_value(&self) -> i128 {
        div_round_up(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (upstream `Value`): memory in bytes.
    pub fn value(&self) -> i128 {
        div_round_up(self.nanos, NANO)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// `self + other`, in `self`'s format (or `other`'s when `self` is zero, like upstream).
    pub fn add(&self, other: &Quantity) -> Quantity {
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format,
        }
    }

    /// `self - other`, in `self`'s format.
    pub fn sub(&self, other: &Quantity) -> Quantity {
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format,
        }
    }

    /// Rounds the magnitude up to a multiple of 10^`exp10` units (upstream `RoundUp`; the
    /// API server rounds every resource list to milli-units, `exp10 = -3`).
    pub fn round_up(&self, exp10: i32) -> Quantity {
        let unit_nanos = if exp10 >= -9 {
            pow10((exp10 + 9) as u32).unwrap_or(i128::MAX)
        } else {
            1
        };
        let nanos = div_round_up(self.nanos, unit_nanos).saturating_mul(unit_nanos);
        Quantity {
            nanos,
            format: self.format,
        }
    }
}

/// Multiplies `m` by 10^`exp` nano-units (`exp` may be negative: divide, rounding up).
fn scale_decimal(m: i128, exp: i64) -> Result<i128, QuantityError> {
    if exp >= 0 {
        let p = pow10(u32::try_from(exp).map_err(|_| QuantityError::Numeric)?)
            .ok_or(QuantityError::Numeric)?;
        m.checked_mul(p).ok_or(QuantityError::Numeric)
    } else {
        match pow10(u32::try_from(-exp).map_err(|_| QuantityError::Numeric)?) {
            Some(p) => Ok(div_round_up(m, p)),
            // smaller than any representable amount: a non-zero value rounds up to 1n
            None => Ok(if m == 0 { 0 } else { 1 }),
        }
    }
}

/// `(is_binary, exponent, format)`: decimal exponents are powers of ten, binary ones powers
/// of two.
fn interpret_suffix(s: &str) -> Option<(bool, i32, Format)> {
    let dec = |e| Some((false, e, Format::DecimalSI));
    let bin = |e| Some((true, e, Format::BinarySI));
    match s {
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "" => dec(0),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i64 = s[1..].parse().ok()?;
            Some((false, i32::try_from(e).ok()?, Format::DecimalExponent))
        }
        _ => None,
    }
}

fn decimal_suffix(exponent: i64) -> Option<&'static str> {
    Some(match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut units = self.nanos / NANO;
            let mut exp = 0;
            while exp < 6 && units % 1024 == 0 {
                units /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return write!(f, "{units}{suffix}");
        }
        // decimal: integer mantissa, exponent a multiple of three
        let mut m = self.nanos;
        let mut e: i64 = -9;
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        let r = e.rem_euclid(3);
        m *= 10i128.pow(r as u32);
        e -= r;
        if format == Format::DecimalExponent {
            return if e == 0 {
                write!(f, "{m}")
            } else {
                write!(f, "{m}e{e}")
            };
        }
        while decimal_suffix(e).is_none() && e > 18 {
            m *= 1000;
            e -= 3;
        }
        write!(f, "{m}{}", decimal_suffix(e).unwrap_or(""))
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

/// Parses both quantities and compares their values; `None` if either does not parse.
pub fn compare(a: &ApiQuantity, b: &ApiQuantity) -> Option<Ordering> {
    Some(
        Quantity::from_api(a)
            .ok()?
            .cmp(&Quantity::from_api(b).ok()?),
    )
}

/// Upstream's semantic equality of two resource lists: same keys, equal values (unparsable
/// values compare by text).
pub fn resource_lists_equal(
    a: &std::collections::BTreeMap<String, ApiQuantity>,
    b: &std::collections::BTreeMap<String, ApiQuantity>,
) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, va)| {
            b.get(k)
                .is_some_and(|vb| compare(va, vb).map_or(va.0 == vb.0, |o| o == Ordering::Equal))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalises() {
        let cases = [
            ("100m", 100_000_000, "100m"),
            ("1000m", NANO, "1"),
            ("0.5", 500_000_000, "500m"),
            ("1", NANO, "1"),
            ("1Gi", (1 << 30) * NANO, "1Gi"),
            ("1024Mi", (1 << 30) * NANO, "1Gi"),
            ("1.5Gi", 1_610_612_736 * NANO, "1536Mi"),
            ("0.5Ki", 512 * NANO, "512"),
            ("1e3", 1000 * NANO, "1e3"),
            ("1E3", 1000 * NANO, "1e3"),
            ("5e-3", 5_000_000, "5e-3"),
            ("1k", 1000 * NANO, "1k"),
            ("1000", 1000 * NANO, "1k"),
            ("1500", 1500 * NANO, "1500"),
            ("120Mi", 120 * (1 << 20) * NANO, "120Mi"),
            ("128974848", 128_974_848 * NANO, "128974848"),
            ("129e6", 129_000_000 * NANO, "129e6"),
            ("129M", 129_000_000 * NANO, "129M"),
            ("1E", 1_000_000_000_000_000_000 * NANO, "1E"),
            ("0", 0, "0"),
            ("0Gi", 0, "0"),
            ("-1", -NANO, "-1"),
            ("+2", 2 * NANO, "2"),
            ("1.", NANO, "1"),
            (".5", 500_000_000, "500m"),
            ("0.0000000001", 1, "1n"),
            ("10n", 10, "10n"),
            ("1u", 1000, "1u"),
            ("250m", 250_000_000, "250m"),
            ("1.1", 1_100_000_000, "1100m"),
        ];
        for (input, nanos, canonical) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.nanos(), nanos, "{input}");
            assert_eq!(q.to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn rejects_bad_quantities_with_upstream_errors() {
        let cases = [
            ("", QuantityError::FormatWrong),
            ("abc", QuantityError::FormatWrong),
            ("1.5.5", QuantityError::FormatWrong),
            ("1 Gi", QuantityError::FormatWrong),
            ("1Gb", QuantityError::FormatWrong),
            ("1K", QuantityError::Suffix),
            ("1e", QuantityError::Suffix),
            ("1mi", QuantityError::Suffix),
            (
                "99999999999999999999999999999999999999999",
                QuantityError::Numeric,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Quantity::parse(input), Err(want.clone()), "{input}");
        }
        assert_eq!(
            QuantityError::FormatWrong.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn compares_by_value_and_rounds_like_upstream() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("1"), q("1000m"));
        assert!(q("500m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("250m").milli_value(), 250);
        assert_eq!(q("1m").value(), 1);
        assert_eq!(q("64Mi").value(), 67_108_864);
        assert_eq!(q("0.1m").round_up(-3).to_string(), "1m");
        assert_eq!(q("1.5").round_up(-3).to_string(), "1500m");
        let sum = q("100m").add(&q("250m"));
        assert_eq!(sum.to_string(), "350m");
        assert_eq!(
            Quantity::zero(Format::DecimalSI).add(&q("1Gi")).to_string(),
            "1Gi"
        );
        assert_eq!(q("1Gi").sub(&q("512Mi")).to_string(), "512Mi");
        assert_eq!(
            compare(&ApiQuantity("1".into()), &ApiQuantity(" 1000m ".into())),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn resource_list_equality_is_semantic() {
        let list = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string())))
                .collect()
        };
        assert!(resource_lists_equal(
            &list(&[("cpu", "1"), ("memory", "1Gi")]),
            &list(&[("cpu", "1000m"), ("memory", "1024Mi")])
        ));
        assert!(!resource_lists_equal(
            &list(&[("cpu", "1")]),
            &list(&[("cpu", "2")])
        ));
        assert!(!resource_lists_equal(
            &list(&[("cpu", "1")]),
            &list(&[("cpu", "1"), ("memory", "1")])
        ));
    }
}
