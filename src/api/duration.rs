//! Go-style durations (`20s`, `1m30s`, `1.5h`, `100ms`), parsed and printed exactly as Go's
//! `time.ParseDuration` and `time.Duration.String()` do, because the kubelet's flags and its
//! `metav1.Duration` config fields use that syntax and `/configz` prints it.
use std::time::Duration;

/// Why a duration string was refused (texts follow Go's `time` package).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all.
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit, e.g. `30`.
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit Go does not know, e.g. `1d`.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A negative duration where only non-negative ones make sense.
    #[error("duration {0:?} must not be negative")]
    Negative(String),
}

/// Parses a Go duration into signed nanoseconds (Go's `time.ParseDuration`).
pub fn parse_go_duration_nanos(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        // The number: digits, optionally a fraction.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        // The unit: everything up to the next digit or dot.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_string(),
                    input: input.to_string(),
                });
            }
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            // More than 19 digits cannot fit in an i64 of nanoseconds anyway.
            if int_part.len() > 19 {
                return Err(invalid());
            }
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = int.checked_mul(scale).ok_or_else(invalid)?;
        // Fraction: Go keeps as many digits as matter and truncates the rest.
        let mut frac_scale = scale;
        for d in frac_part.bytes().take(30) {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            value += i128::from(d - b'0') * frac_scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    let total = if negative { -total } else { total };
    i64::try_from(total).map_err(|_| invalid())
}

/// Parses a Go duration that must not be negative.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(input.trim())?;
    if nanos < 0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}

/// Formats like Go's `time.Duration.String()`: `0s`, `100ms`, `1.5s`, `1m30s`, `4h0m0s`.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1u128)
        } else if nanos < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", with_fraction(nanos / div, nanos % div, div));
    }
    let secs_total = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = secs_total / 3600;
    let minutes = (secs_total / 60) % 60;
    let secs = secs_total % 60;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if secs_total >= 60 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&with_fraction(secs, sub, 1_000_000_000));
    out.push('s');
    out
}

/// `int` plus `frac/div` printed with trailing zeros trimmed.
fn with_fraction(int: u128, frac: u128, div: u128) -> String {
    if frac == 0 {
        return int.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("20s", 20_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("100ms", 100_000_000),
            ("1us", 1_000),
            ("1\u{b5}s", 1_000),
            ("3ns", 3),
            ("-30s", -30_000_000_000),
            ("+5m", 300_000_000_000),
            (".5s", 500_000_000),
            ("1h2m3s4ms", 3_723_004_000_000),
            ("4h", 14_400_000_000_000),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_go_duration_nanos(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn rejects_like_go() {
        assert_eq!(
            parse_go_duration_nanos("30"),
            Err(DurationError::MissingUnit("30".into()))
        );
        assert!(matches!(
            parse_go_duration_nanos("1d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        for s in ["", "-", "s", ".s", "1.2.3s", "abc", "9999999999999999999h"] {
            assert!(parse_go_duration_nanos(s).is_err(), "{s:?}");
        }
        assert_eq!(
            parse_duration("-1s"),
            Err(DurationError::Negative("-1s".into()))
        );
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (20_000_000_000, "20s"),
            (90_000_000_000, "1m30s"),
            (14_400_000_000_000, "4h0m0s"),
            (300_000_000_000, "5m0s"),
            (100_000_000, "100ms"),
            (1_500_000_000, "1.5s"),
            (1_500, "1.5\u{b5}s"),
            (7, "7ns"),
        ];
        for &(n, want) in cases {
            assert_eq!(format_go_duration(Duration::from_nanos(n)), want);
        }
    }

    #[test]
    fn round_trips() {
        for s in ["20s", "1m30s", "4h0m0s", "100ms", "1.5s", "10s", "5m0s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(format_go_duration(d), s);
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity(nanos in 0u64..=i64::MAX as u64) {
            let d = Duration::from_nanos(nanos);
            proptest::prop_assert_eq!(parse_duration(&format_go_duration(d)), Ok(d));
        }
    }
}
