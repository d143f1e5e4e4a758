//! Resource quantities ("100Mi", "500m", "1.5Gi", "1e3") as the configuration needs them: exact
//! integer parsing with apimachinery's rounding (`Quantity.Value()` / `MilliValue()` round up,
//! away from zero), and a compact binary formatting for `/configz`.
//!
//! Mirrors the subset of `k8s.io/apimachinery/pkg/api/resource` that the kubelet's flag and
//! config parsing touch. When the pod helpers grow a shared quantity parser this module should
//! become a thin re-export of it.

/// Why a quantity string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not match the quantity grammar.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The number does not fit in a 64-bit integer after scaling.
    #[error("quantity is too large")]
    OutOfRange,
}

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

// Digits beyond this are refused rather than risking i128 overflow; real configs use a handful.
const MAX_DIGITS: usize = 30;
// Decimal exponents beyond this cannot produce a value that fits in i64 anyway.
const MAX_EXP10: i32 = 40;

impl Quantity {
    /// Parses a Kubernetes quantity string.
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let s = s.trim();
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = bytes.first()
            && (c == b'+' || c == b'-')
        {
            negative = c == b'-';
            i = 1;
        }
        let mut mantissa: i128 = 0;
        let mut digits = 0usize;
        let mut frac_digits = 0i32;
        let mut seen_dot = false;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_digit() {
                digits += 1;
                if digits > MAX_DIGITS {
                    return Err(QuantityError::OutOfRange);
                }
                mantissa = mantissa * 10 + i128::from(c - b'0');
                if seen_dot {
                    frac_digits += 1;
                }
            } else if c == b'.' && !seen_dot {
                seen_dot = true;
            } else {
                break;
            }
            i += 1;
        }
        if digits == 0 {
            return Err(QuantityError::Format);
        }
        let (exp10, exp2) = parse_suffix(&s[i..])?;
        if negative {
            mantissa = -mantissa;
        }
        Ok(Quantity {
            mantissa,
            exp10: exp10 - frac_digits,
            exp2,
        })
    }

    /// True when the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// True when the quantity is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The integer value, rounded up (away from zero) like apimachinery's `Value()`.
    pub fn value(&self) -> Result<i64, QuantityError> {
        self.scaled(0)
    }

    /// The value in thousandths, rounded up like apimachinery's `MilliValue()`.
    pub fn milli_value(&self) -> Result<i64, QuantityError> {
        self.scaled(3)
    }

    fn scaled(&self, extra_exp10: i32) -> Result<i64, QuantityError> {
        let exp10 = self.exp10 + extra_exp10;
        let mut num = self.mantissa;
        num = num
            .checked_mul(
                1i128
                    .checked_shl(self.exp2)
                    .ok_or(QuantityError::OutOfRange)?,
            )
            .ok_or(QuantityError::OutOfRange)?;
        let result = if exp10 >= 0 {
            num.checked_mul(pow10(exp10)?)
                .ok_or(QuantityError::OutOfRange)?
        } else {
            let den = pow10(-exp10)?;
            let q = num / den;
            if num % den != 0 { q + num.signum() } else { q }
        };
        i64::try_from(result).map_err(|_| QuantityError::OutOfRange)
    }
}

fn pow10(e: i32) -> Result<i128, QuantityError> {
    if !(0..=MAX_EXP10 - 2).contains(&e) {
        return Err(QuantityError::OutOfRange);
    }
    Ok(10i128.pow(e.unsigned_abs()))
}

/// Returns (decimal exponent, binary exponent) for a suffix.
fn parse_suffix(suffix: &str) -> Result<(i32, u32), QuantityError> {
    let r = match suffix {
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
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => {
            let rest = &s[1..];
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Format);
            }
            let e: i32 = rest.parse().map_err(|_| QuantityError::OutOfRange)?;
            if e.abs() > MAX_EXP10 {
                return Err(QuantityError::OutOfRange);
            }
            (e, 0)
        }
        _ => return Err(QuantityError::Format),
    };
    Ok(r)
}

/// Formats a byte count the way a person writes it: the largest binary suffix that divides it
/// exactly (`10Mi`), else the plain number.
pub fn format_binary(v: i64) -> String {
    const SUFFIXES: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    if v != 0 {
        for (suffix, shift) in SUFFIXES {
            let unit = 1i64 << shift;
            if v % unit == 0 {
                return format!("{}{suffix}", v / unit);
            }
        }
    }
    v.to_string()
}

/// Formats a CPU amount in millicores: whole cores as `2`, else `250m`.
pub fn format_milli(m: i64) -> String {
    if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_up_like_apimachinery() {
        let cases: &[(&str, i64, i64)] = &[
            ("0", 0, 0),
            ("1", 1, 1000),
            ("100Mi", 100 << 20, (100 << 20) * 1000),
            ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
            ("2.5Mi", 2_621_440, 2_621_440_000),
            ("0.5", 1, 500),
            ("500m", 1, 500),
            ("100m", 1, 100),
            ("1k", 1000, 1_000_000),
            ("1e3", 1000, 1_000_000),
            ("1E3", 1000, 1_000_000),
            ("12e-1", 2, 1200),
            ("1n", 1, 1),
            ("-150Mi", -(150 << 20), -(150 << 20) * 1000),
            ("+1Ki", 1024, 1_024_000),
            (".5", 1, 500),
            ("5.", 5, 5000),
            ("1000", 1000, 1_000_000),
            ("8Ei", i64::MAX, 0),
        ];
        for &(s, v, m) in cases {
            let q = Quantity::parse(s);
            if s == "8Ei" {
                assert_eq!(q.unwrap().value(), Err(QuantityError::OutOfRange));
                continue;
            }
            let q = q.unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(q.value(), Ok(v), "{s} value");
            assert_eq!(q.milli_value(), Ok(m), "{s} milli");
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "", "abc", "1x", "Mi", "1MiB", "1.2.3", "1e", "1e+", "--1", "1 Mi", "1ki", ".",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_binary(10 << 20), "10Mi");
        assert_eq!(format_binary(1 << 30), "1Gi");
        assert_eq!(format_binary(1000), "1000");
        assert_eq!(format_binary(0), "0");
        assert_eq!(format_milli(100), "100m");
        assert_eq!(format_milli(2000), "2");
    }

    proptest::proptest! {
        #[test]
        fn binary_format_parses_back(v in 0i64..=i64::MAX) {
            let q = Quantity::parse(&format_binary(v)).unwrap();
            proptest::prop_assert_eq!(q.value(), Ok(v));
        }

        #[test]
        fn milli_format_parses_back(m in 0i64..=i64::MAX / 1000) {
            let q = Quantity::parse(&format_milli(m)).unwrap();
            proptest::prop_assert_eq!(q.milli_value(), Ok(m));
        }
    }
}
