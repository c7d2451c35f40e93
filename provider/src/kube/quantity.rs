//! Kubernetes resource quantities (`250m`, `0.5`, `512Mi`, `1G`, `1e3`, `100k` …), parsed
//! exactly as `k8s.io/apimachinery/pkg/api/resource` reads them and converted to integers
//! rounding up, as `Quantity.Value()` / `MilliValue()` do.
//!
//! Grammar (from apimachinery's quantity.go):
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= m | "" | k | M | G | T | P | E      (and n, u for nano/micro)
//! <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
//! ```

use std::fmt;

/// A parsed quantity: `mantissa × 10^exp10 × 1024^exp1024`, non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    mantissa: u128,
    exp10: i32,
    exp1024: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a Kubernetes quantity: {why}")]
pub struct QuantityError {
    pub input: String,
    pub why: String,
}

fn err(input: &str, why: impl Into<String>) -> QuantityError {
    QuantityError {
        input: input.to_string(),
        why: why.into(),
    }
}

/// Digits beyond this many are dropped (after rounding up) so the mantissa fits in u128;
/// Kubernetes itself keeps at most 18 significant digits of a decimal quantity.
const MAX_DIGITS: usize = 36;

impl Quantity {
    /// Parse a quantity. Negative quantities are rejected: kup only reads allocatable
    /// capacity and requests, which are never negative.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(err(input, "it is empty"));
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'+' => (false, &s[1..]),
            b'-' => (true, &s[1..]),
            _ => (false, s),
        };
        // The number: digits with at most one '.', at least one digit.
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_end);
        if number.matches('.').count() > 1 {
            return Err(err(input, "the number has more than one decimal point"));
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err(input, "it does not start with a number"));
        }
        let digits: String = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let mut exp10: i64 = -(frac_part.len() as i64);
        let (mantissa, dropped_nonzero) = if digits.len() > MAX_DIGITS {
            let (keep, drop) = digits.split_at(MAX_DIGITS);
            exp10 += drop.len() as i64;
            (
                keep.parse::<u128>()
                    .map_err(|e| err(input, e.to_string()))?,
                drop.bytes().any(|b| b != b'0'),
            )
        } else if digits.is_empty() {
            (0, false)
        } else {
            (
                digits
                    .parse::<u128>()
                    .map_err(|e| err(input, e.to_string()))?,
                false,
            )
        };
        let mantissa = mantissa + u128::from(dropped_nonzero);

        let (suffix_exp10, exp1024) = parse_suffix(suffix).ok_or_else(|| {
            err(
                input,
                format!(
                    "unknown suffix `{suffix}` (use one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, \
                     or an exponent such as e3)"
                ),
            )
        })?;
        exp10 += suffix_exp10;
        if negative && mantissa != 0 {
            return Err(err(input, "it is negative"));
        }
        let exp10 = i32::try_from(exp10).map_err(|_| err(input, "the exponent is too large"))?;
        Ok(Quantity {
            mantissa,
            exp10,
            exp1024,
        })
    }

    /// `ceil(self × 10^scale)`, saturating at `u64::MAX`: `scale = 0` gives the integer value
    /// (bytes, pod counts), `scale = 3` the milli value (CPU millicores).
    pub fn ceil_scaled(&self, scale: i32) -> u64 {
        if self.mantissa == 0 {
            return 0;
        }
        let mut n: u128 = self.mantissa;
        for _ in 0..self.exp1024 {
            match n.checked_mul(1024) {
                Some(v) => n = v,
                None => return u64::MAX,
            }
        }
        let t = self.exp10 as i64 + scale as i64;
        if t >= 0 {
            for _ in 0..t {
                match n.checked_mul(10) {
                    Some(v) => n = v,
                    None => return u64::MAX,
                }
            }
            u64::try_from(n).unwrap_or(u64::MAX)
        } else {
            let mut q = n;
            let mut inexact = false;
            for _ in 0..(-t) {
                if q == 0 {
                    break;
                }
                inexact |= !q.is_multiple_of(10);
                q /= 10;
            }
            if q == 0 {
                // A positive value smaller than one unit rounds up to one unit.
                return 1;
            }
            let q = q + u128::from(inexact);
            u64::try_from(q).unwrap_or(u64::MAX)
        }
    }

    /// The value in whole units, rounded up (bytes for memory, a count for `pods`).
    pub fn value(&self) -> u64 {
        self.ceil_scaled(0)
    }

    /// The value in thousandths, rounded up (millicores for CPU).
    pub fn milli_value(&self) -> u64 {
        self.ceil_scaled(3)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}e{}×1024^{}", self.mantissa, self.exp10, self.exp1024)
    }
}

/// (power of ten, power of 1024) of a suffix.
fn parse_suffix(s: &str) -> Option<(i64, u32)> {
    Some(match s {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        _ => {
            let rest = s.strip_prefix(['e', 'E'])?;
            let (neg, digits) = match rest.as_bytes().first()? {
                b'+' => (false, &rest[1..]),
                b'-' => (true, &rest[1..]),
                _ => (false, rest),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let e: i64 = digits.parse().ok()?;
            if e > 1_000 {
                return None;
            }
            (if neg { -e } else { e }, 0)
        }
    })
}

/// CPU in millicores from a quantity string.
pub fn cpu_millis(s: &str) -> Result<u64, QuantityError> {
    Ok(Quantity::parse(s)?.milli_value())
}

/// Bytes (or any whole-unit count) from a quantity string.
pub fn value(s: &str) -> Result<u64, QuantityError> {
    Ok(Quantity::parse(s)?.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        for (s, m) in [
            ("250m", 250),
            ("1", 1000),
            ("0.5", 500),
            (".5", 500),
            ("1.5", 1500),
            ("2", 2000),
            ("100m", 100),
            ("0.1", 100),
            ("1e3", 1_000_000),
            ("1e-3", 1),
            ("1n", 1),    // rounds up, like MilliValue
            ("1500u", 2), // 1.5m rounds up to 2m
            ("0", 0),
            ("0m", 0),
            ("+3", 3000),
            ("7.99", 7990),
            ("0.0001", 1),
        ] {
            assert_eq!(cpu_millis(s).unwrap(), m, "{s}");
        }
    }

    #[test]
    fn memory_quantities() {
        for (s, b) in [
            ("512Mi", 512 * 1024 * 1024),
            ("1Gi", 1 << 30),
            ("1G", 1_000_000_000),
            ("100k", 100_000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("129M", 129_000_000),
            ("123Mi", 128_974_848),
            ("1Ki", 1024),
            ("1.5Gi", 1_610_612_736),
            ("0.5Ki", 512),
            ("1E", 1_000_000_000_000_000_000),
            ("1E3", 1000),
            ("1e+3", 1000),
            ("16Ti", 16u64 << 40),
            ("1Pi", 1u64 << 50),
            ("1000m", 1),
            ("1500m", 2), // Value() rounds up
            ("110", 110),
        ] {
            assert_eq!(value(s).unwrap(), b, "{s}");
        }
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(value("100Ei").unwrap(), u64::MAX);
        assert_eq!(value("1e100").unwrap(), u64::MAX);
        assert_eq!(value("1e-100").unwrap(), 1);
        assert_eq!(
            value("123456789012345678901234567890123456789012345").unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn bad_quantities() {
        for s in [
            "", "abc", "1K", "1ki", "1mi", "1.2.3", "1Gb", "--1", "1e", "1e+", "Mi", "1 Gi", "-1",
            "-500m", "1e1001",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s} should be rejected");
        }
        assert_eq!(value("-0").unwrap(), 0);
        let e = Quantity::parse("1Gb").unwrap_err();
        assert!(e.to_string().contains("unknown suffix `Gb`"), "{e}");
    }
}
