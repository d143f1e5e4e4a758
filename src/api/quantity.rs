//! Resource quantities (`500m`, `1.5Gi`, `1e3`): exact fixed-point parsing, rounding and
//! canonical formatting, with no floating point anywhere.
//!
//! Mirrors apimachinery `pkg/api/resource` (`Quantity`, `ParseQuantity`, `Value`, `MilliValue`,
//! `String`). A quantity is held as a signed count of nano-units (10^-9), which is the precision
//! apimachinery rounds every parsed value up to, plus the [`Format`] its suffix implied, which
//! decides how it is printed back.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// Nano-units per unit.
const NANOS: i128 = 1_000_000_000;
/// Largest magnitude a parsed quantity can hold, in nano-units: 2^63-1 units, apimachinery's
/// `maxAllowed` (it caps BinarySI values there; we cap every format, see [`Quantity::parse`]).
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS;
/// How many leading characters of a bad input an error message quotes.
const ERROR_INPUT_CHARS: usize = 64;
/// The accepted form, appended to every parse error.
const ACCEPTED_FORM: &str = "want a number with an optional suffix, like 500m, 1.5, 128Mi, 2Gi or 1e3 \
     (suffixes: n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent e<n>)";

/// How a quantity is written back, chosen by the suffix it was parsed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `12e6`: an `e`/`E` exponent.
    DecimalExponent,
    /// `12Mi`: powers of 1024.
    BinarySI,
    /// `12M`, `500m` or a plain number: powers of 1000.
    DecimalSI,
}

/// A quantity that failed to parse; names the input and says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string was empty.
    #[error("invalid quantity \"\": empty string; {ACCEPTED_FORM}")]
    Empty,
    /// The string is not `<number><suffix>` (apimachinery `ErrFormatWrong`).
    #[error("invalid quantity {input:?}: not a number followed by a suffix; {ACCEPTED_FORM}")]
    Format {
        /// The offending input (shortened if long).
        input: String,
    },
    /// The suffix is not one Kubernetes knows (apimachinery `ErrSuffix`).
    #[error("invalid quantity {input:?}: unknown suffix {suffix:?}; {ACCEPTED_FORM}")]
    Suffix {
        /// The offending input (shortened if long).
        input: String,
        /// The suffix that was not understood.
        suffix: String,
    },
}

/// An exact resource quantity: a signed number of nano-units plus its print [`Format`].
///
/// Equality and ordering compare values only (`1Ki == 1024`), like apimachinery's `Cmp`.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    /// Zero, printed as `0`.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// `value` whole units in `format` (apimachinery `NewQuantity`).
    pub fn new(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANOS,
            format,
        }
    }

    /// `milli` thousandths in `format` (apimachinery `NewMilliQuantity`).
    pub fn new_milli(milli: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format,
        }
    }

    /// Parses `s` exactly like apimachinery `ParseQuantity`: no surrounding whitespace; values
    /// are rounded up (away from zero) to a whole nano-unit.
    ///
    /// One deliberate difference: apimachinery caps only BinarySI values at 2^63-1 and keeps
    /// larger decimal values exactly; here every format saturates at ±(2^63-1) units, since no
    /// consumer (cgroup files, `Value()`) can use more.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Empty);
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let mut negative = false;
        match b[0] {
            b'-' => {
                negative = true;
                pos = 1;
            }
            b'+' => pos = 1,
            _ => {}
        }
        let int_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &b[int_start..pos];
        let mut frac_digits: &[u8] = &[];
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &b[frac_start..pos];
        }
        let suffix = &s[pos..];
        if !suffix_has_valid_shape(suffix.as_bytes()) {
            return Err(QuantityError::Format { input: shorten(s) });
        }
        let (base2, exponent, mut format) =
            interpret_suffix(suffix).ok_or_else(|| QuantityError::Suffix {
                input: shorten(s),
                suffix: shorten(suffix),
            })?;

        // value = digits * 10^-len(frac) * (2^exponent | 10^exponent); in nano-units that is
        // digits * 2^shift * 10^pow10.
        let frac_len = frac_digits.len() as i64;
        let (shift, pow10) = if base2 {
            (exponent as u32, 9 - frac_len)
        } else {
            (0, i64::from(exponent) - frac_len + 9)
        };
        let magnitude = nanos_magnitude(int_digits, frac_digits, shift, pow10);
        if format == Format::BinarySI && magnitude > 0 && magnitude < NANOS as u128 {
            // apimachinery: "This avoids rounding and hopefully confusion, too."
            format = Format::DecimalSI;
        }
        let magnitude = magnitude as i128; // <= MAX_NANOS, fits
        Ok(Quantity {
            nanos: if negative { -magnitude } else { magnitude },
            format,
        })
    }

    /// Parses an API quantity the way the API decoder does (`UnmarshalJSON` trims surrounding
    /// whitespace before `ParseQuantity`).
    pub fn from_api(q: &ApiQuantity) -> Result<Quantity, QuantityError> {
        Quantity::parse(q.0.trim())
    }

    /// The canonical API form of this quantity (what the API server would serialize).
    pub fn to_api(&self) -> ApiQuantity {
        ApiQuantity(self.to_string())
    }

    /// The print format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The same value printed in another format.
    pub fn with_format(self, format: Format) -> Quantity {
        Quantity { format, ..self }
    }

    /// True if the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The sign of the value: `Less` for negative, `Equal` for zero, `Greater` for positive.
    pub fn sign(&self) -> Ordering {
        self.nanos.cmp(&0)
    }

    /// True below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The value in whole units, rounded up away from zero, saturating at the i64 range
    /// (apimachinery `Value`): `0.5` -> 1, `1.5Gi` -> 1610612736.
    pub fn value(&self) -> i64 {
        self.scaled(NANOS)
    }

    /// The value in thousandths, rounded up away from zero, saturating at the i64 range
    /// (apimachinery `MilliValue`): `0.5` -> 500, `1m` -> 1.
    pub fn milli_value(&self) -> i64 {
        self.scaled(1_000_000)
    }

    /// This value rounded up (away from zero) to a whole milli-unit, and whether that was exact
    /// (apimachinery `RoundUp(Milli)`, applied by `SetDefaults_ResourceList`).
    pub fn round_up_milli(self) -> (Quantity, bool) {
        let per = 1_000_000;
        let rem = self.nanos % per;
        if rem == 0 {
            return (self, true);
        }
        let away = if self.nanos > 0 { per } else { -per };
        let nanos = self.nanos - rem + away;
        (Quantity { nanos, ..self }, false)
    }

    fn scaled(&self, per: i128) -> i64 {
        let q = self.nanos / per;
        let r = self.nanos % per;
        let q = match r.cmp(&0) {
            Ordering::Greater => q + 1,
            Ordering::Less => q - 1,
            Ordering::Equal => q,
        };
        q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

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

impl Default for Quantity {
    fn default() -> Self {
        Quantity::ZERO
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    /// Sum; a zero left side takes the right side's format (apimachinery `Add`).
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(rhs.nanos),
            format: if self.nanos == 0 {
                rhs.format
            } else {
                self.format
            },
        }
    }
}

impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        *self = *self + rhs;
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;
    /// Difference; a zero left side takes the right side's format (apimachinery `Sub`).
    fn sub(self, rhs: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(rhs.nanos),
            format: if self.nanos == 0 {
                rhs.format
            } else {
                self.format
            },
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl TryFrom<&ApiQuantity> for Quantity {
    type Error = QuantityError;
    fn try_from(q: &ApiQuantity) -> Result<Self, Self::Error> {
        Quantity::from_api(q)
    }
}

impl fmt::Display for Quantity {
    /// The canonical form apimachinery's `String()` prints: the largest suffix that loses no
    /// precision, no fractional digits (`1.5` -> `1500m`, `1.5Gi` -> `1536Mi`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        if self.nanos < 0 {
            f.write_str("-")?;
        }
        let abs = self.nanos.unsigned_abs();
        let nanos = NANOS as u128;
        let mut format = self.format;
        // BinarySI below 1024 or with a fraction is shown as DecimalSI to avoid rounding.
        if format == Format::BinarySI && (abs < 1024 * nanos || !abs.is_multiple_of(nanos)) {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut units = abs / nanos;
            let mut power = 0;
            while power + 1 < SUFFIXES.len() && units.is_multiple_of(1024) {
                units /= 1024;
                power += 1;
            }
            return write!(f, "{units}{}", SUFFIXES[power]);
        }
        // Base 10: strip factors of ten, then step the exponent down to a multiple of 3.
        let mut mantissa = abs;
        let mut exponent: i32 = -9;
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exponent += 1;
        }
        match exponent.rem_euclid(3) {
            1 => {
                mantissa *= 10;
                exponent -= 1;
            }
            2 => {
                mantissa *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        let suffix = match (format, exponent) {
            (Format::DecimalExponent, 0) => "",
            (Format::DecimalExponent, _) => return write!(f, "{mantissa}e{exponent}"),
            (_, -9) => "n",
            (_, -6) => "u",
            (_, -3) => "m",
            (_, 0) => "",
            (_, 3) => "k",
            (_, 6) => "M",
            (_, 9) => "G",
            (_, 12) => "T",
            (_, 15) => "P",
            (_, 18) => "E",
            // No SI suffix beyond E: fall back to exponent notation, as apimachinery does.
            _ => return write!(f, "{mantissa}e{exponent}"),
        };
        write!(f, "{mantissa}{suffix}")
    }
}

/// apimachinery's suffix shape: `[eEinumkKMGTP]*[-+]?[0-9]*` up to the end.
fn suffix_has_valid_shape(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() && b"eEinumkKMGTP".contains(&s[i]) {
        i += 1;
    }
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        i += 1;
    }
    s[i..].iter().all(u8::is_ascii_digit)
}

/// Suffix -> (is base 2, exponent, format) (apimachinery `quantitySuffixer.interpret`).
fn interpret_suffix(s: &str) -> Option<(bool, i32, Format)> {
    let dec = |e| Some((false, e, Format::DecimalSI));
    let bin = |e| Some((true, e, Format::BinarySI));
    match s {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
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
        _ => {
            let rest = s.strip_prefix(['e', 'E'])?;
            let (negative, digits) = match rest.as_bytes().first()? {
                b'-' => (true, &rest[1..]),
                b'+' => (false, &rest[1..]),
                _ => (false, rest),
            };
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Exponents outside ±(2^31-1) are refused, not truncated (apimachinery ≥ 1.35).
            let magnitude: i32 = digits.parse().ok()?;
            Some((
                false,
                if negative { -magnitude } else { magnitude },
                Format::DecimalExponent,
            ))
        }
    }
}

/// |digits| * 2^shift * 10^pow10, rounded up to an integer and capped at `MAX_NANOS`.
/// `int` and `frac` are the ASCII digits before and after the decimal point.
fn nanos_magnitude(int: &[u8], frac: &[u8], shift: u32, pow10: i64) -> u128 {
    let all = int.iter().chain(frac.iter());
    let significant: usize = {
        let leading_zeros = all.clone().take_while(|&&c| c == b'0').count();
        int.len() + frac.len() - leading_zeros
    };
    if significant == 0 {
        return 0;
    }
    if significant <= 19 {
        // Fast path: the digits fit a u64, times 2^60 still fits a u128.
        let d = all.fold(0u128, |acc, &c| acc * 10 + u128::from(c - b'0'));
        return scale_pow10(d << shift, pow10);
    }
    // Slow path for long inputs: exact decimal digit arithmetic.
    let mut digits: Vec<u8> = all.skip_while(|&&c| c == b'0').map(|&c| c - b'0').collect();
    for _ in 0..shift {
        double_digits(&mut digits);
    }
    if pow10 >= 0 {
        // The value has len + pow10 digits; 29 or more exceed MAX_NANOS (~9.2e27).
        if digits.len() as i64 + pow10 > 28 {
            return MAX_NANOS as u128;
        }
        let d = digits
            .iter()
            .fold(0u128, |acc, &c| acc * 10 + u128::from(c));
        return (d * 10u128.pow(pow10 as u32)).min(MAX_NANOS as u128);
    }
    let drop = pow10.unsigned_abs();
    if drop >= digits.len() as u64 {
        return 1; // a non-zero value below one nano-unit rounds up to one
    }
    let keep = digits.len() - drop as usize;
    if keep > 28 {
        return MAX_NANOS as u128;
    }
    let whole = digits[..keep]
        .iter()
        .fold(0u128, |acc, &c| acc * 10 + u128::from(c));
    let round_up = digits[keep..].iter().any(|&c| c != 0);
    (whole + u128::from(round_up)).min(MAX_NANOS as u128)
}

/// `x * 10^pow10` rounded up, capped at `MAX_NANOS`.
fn scale_pow10(x: u128, pow10: i64) -> u128 {
    let cap = MAX_NANOS as u128;
    if x == 0 {
        return 0;
    }
    if pow10 >= 0 {
        if pow10 > 38 {
            return cap;
        }
        return x
            .checked_mul(10u128.pow(pow10 as u32))
            .map_or(cap, |v| v.min(cap));
    }
    let drop = pow10.unsigned_abs();
    if drop > 38 {
        return 1; // x < 10^38, so the value is below one nano-unit: round up to one
    }
    let div = 10u128.pow(drop as u32);
    let whole = x / div + u128::from(!x.is_multiple_of(div));
    whole.min(cap)
}

/// Multiplies a big-endian decimal digit vector by two in place.
fn double_digits(digits: &mut Vec<u8>) {
    let mut carry = 0;
    for d in digits.iter_mut().rev() {
        let v = *d * 2 + carry;
        *d = v % 10;
        carry = v / 10;
    }
    if carry > 0 {
        digits.insert(0, carry);
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(ERROR_INPUT_CHARS) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// `decQuantity(i, exponent, format)` from apimachinery's quantity_test.go, in nano-units.
    fn dec(mantissa: i128, exponent: i32) -> i128 {
        let e = exponent + 9;
        assert!(e >= 0);
        mantissa * 10i128.pow(e as u32)
    }

    #[test]
    fn parse_table_from_apimachinery() {
        use Format::*;
        let max = MAX_NANOS;
        let table: &[(&str, i128, Format)] = &[
            ("0", 0, DecimalSI),
            ("0n", 0, DecimalSI),
            ("0u", 0, DecimalSI),
            ("0m", 0, DecimalSI),
            ("0Ki", 0, BinarySI),
            ("0k", 0, DecimalSI),
            ("0Mi", 0, BinarySI),
            ("0M", 0, DecimalSI),
            ("0Gi", 0, BinarySI),
            ("0G", 0, DecimalSI),
            ("0Ti", 0, BinarySI),
            ("0T", 0, DecimalSI),
            ("1", dec(1, 0), DecimalSI),
            ("1Ki", dec(1024, 0), BinarySI),
            ("8Ki", dec(8 * 1024, 0), BinarySI),
            ("7Mi", dec(7 << 20, 0), BinarySI),
            ("6Gi", dec(6 << 30, 0), BinarySI),
            ("5Ti", dec(5 << 40, 0), BinarySI),
            ("4Pi", dec(4 << 50, 0), BinarySI),
            ("3Ei", dec(3 << 60, 0), BinarySI),
            ("10Ti", dec(10 << 40, 0), BinarySI),
            ("100Ti", dec(100 << 40, 0), BinarySI),
            ("5n", dec(5, -9), DecimalSI),
            ("4u", dec(4, -6), DecimalSI),
            ("3m", dec(3, -3), DecimalSI),
            ("9", dec(9, 0), DecimalSI),
            ("8k", dec(8, 3), DecimalSI),
            ("50k", dec(5, 4), DecimalSI),
            ("7M", dec(7, 6), DecimalSI),
            ("6G", dec(6, 9), DecimalSI),
            ("5T", dec(5, 12), DecimalSI),
            ("40T", dec(4, 13), DecimalSI),
            ("300T", dec(3, 14), DecimalSI),
            ("2P", dec(2, 15), DecimalSI),
            ("1E", dec(1, 18), DecimalSI),
            ("1E-3", dec(1, -3), DecimalExponent),
            ("1e3", dec(1, 3), DecimalExponent),
            ("1E6", dec(1, 6), DecimalExponent),
            ("1e9", dec(1, 9), DecimalExponent),
            ("1E12", dec(1, 12), DecimalExponent),
            ("1e15", dec(1, 15), DecimalExponent),
            ("1E18", dec(1, 18), DecimalExponent),
            ("1e14", dec(1, 14), DecimalExponent),
            ("1e13", dec(1, 13), DecimalExponent),
            ("100.035k", dec(100035, 0), DecimalSI),
            ("0.001", dec(1, -3), DecimalSI),
            ("0.0005k", dec(5, -1), DecimalSI),
            ("0.005", dec(5, -3), DecimalSI),
            ("0.05", dec(5, -2), DecimalSI),
            ("0.5", dec(5, -1), DecimalSI),
            ("0.00050k", dec(5, -1), DecimalSI),
            ("0.00500", dec(5, -3), DecimalSI),
            ("0.05000", dec(5, -2), DecimalSI),
            ("0.50000", dec(5, -1), DecimalSI),
            ("0.5e0", dec(5, -1), DecimalExponent),
            ("0.5e-1", dec(5, -2), DecimalExponent),
            ("0.5e-2", dec(5, -3), DecimalExponent),
            ("10.035M", dec(10035, 3), DecimalSI),
            ("1.2e3", dec(12, 2), DecimalExponent),
            ("1.3E+6", dec(13, 5), DecimalExponent),
            ("1.40e9", dec(14, 8), DecimalExponent),
            ("1.53E12", dec(153, 10), DecimalExponent),
            ("1.6e15", dec(16, 14), DecimalExponent),
            ("1.7E18", dec(17, 17), DecimalExponent),
            ("9.01", dec(901, -2), DecimalSI),
            ("8.1k", dec(81, 2), DecimalSI),
            ("7.123456M", dec(7123456, 0), DecimalSI),
            ("6.987654321G", dec(6987654321, 0), DecimalSI),
            ("5.444T", dec(5444, 9), DecimalSI),
            ("40.1T", dec(401, 11), DecimalSI),
            ("300.2T", dec(3002, 11), DecimalSI),
            ("2.5P", dec(25, 14), DecimalSI),
            ("1.01E", dec(101, 16), DecimalSI),
            // Things that saturate/round.
            ("3.001n", dec(4, -9), DecimalSI),
            ("1.1E-9", dec(2, -9), DecimalExponent),
            ("0.0000000001", dec(1, -9), DecimalSI),
            ("0.0000000005", dec(1, -9), DecimalSI),
            ("0.00000000050", dec(1, -9), DecimalSI),
            ("0.5e-9", dec(1, -9), DecimalExponent),
            ("0.9n", dec(1, -9), DecimalSI),
            ("0.00000012345", dec(124, -9), DecimalSI),
            ("0.00000012354", dec(124, -9), DecimalSI),
            ("9Ei", max, BinarySI),
            ("9223372036854775807Ki", max, BinarySI),
            // apimachinery keeps 12E exactly; we saturate every format at 2^63-1.
            ("12E", max, DecimalSI),
            // Fractional binary.
            ("100.035Ki", dec(10243584, -2), BinarySI),
            ("0.5Mi", dec(512 * 1024, 0), BinarySI),
            ("0.05Gi", dec(536870912, -1), BinarySI),
            ("0.025Ti", dec(274877906944, -1), BinarySI),
            // Things written by trolls.
            ("0.000000000001Ki", dec(2, -9), DecimalSI),
            (".001", dec(1, -3), DecimalSI),
            (".0001k", dec(100, -3), DecimalSI),
            ("1.", dec(1, 0), DecimalSI),
            ("1.G", dec(1, 9), DecimalSI),
        ];
        for &(input, nanos, format) in table {
            for (prefix, sign) in [("", 1), ("+", 1), ("-", -1)] {
                let s = format!("{prefix}{input}");
                let got = q(&s);
                assert_eq!(got.nanos, sign * nanos, "{s}");
                assert_eq!(got.format, format, "{s}");
            }
        }
    }

    #[test]
    fn invalid_inputs_from_apimachinery() {
        for s in [
            "",
            "1.1.M",
            "1+1.0M",
            "0.1mi",
            "0.1am",
            "aoeu",
            ".5i",
            "1i",
            "-3.01i",
            "-3.01e-",
            "1e4294967297",
            "1e2147483648",
            "1e-2147483648",
            " 1",
            "1 ",
            "1e",
            "1ki",
            "1KI",
            "1k3",
            "1e3Ki",
            "Non-Numeric",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s:?} parsed");
        }
        // Exponents within ±(2^31-1) are accepted (and saturate).
        assert_eq!(q("1e2147483647").nanos, MAX_NANOS);
        assert_eq!(q("1e-2147483647").nanos, 1);
    }

    #[test]
    fn digitless_numbers_are_zero_like_apimachinery() {
        // parseQuantityString treats a missing mantissa as "0": ".", "-.", "+", "Ki" all parse.
        for s in [".", "-.", "+", "-", "Ki", "m", "e3"] {
            assert!(q(s).is_zero(), "{s}");
        }
    }

    #[test]
    fn errors_name_the_input_and_the_form() {
        let e = Quantity::parse("12 cores").unwrap_err().to_string();
        assert!(e.contains("\"12 cores\""), "{e}");
        assert!(e.contains("like 500m"), "{e}");
        let e = Quantity::parse("1Kb").unwrap_err().to_string();
        assert!(
            e.contains("\"1Kb\": not a number followed by a suffix"),
            "{e}"
        );
        let e = Quantity::parse("2mi").unwrap_err().to_string();
        assert!(e.contains("unknown suffix \"mi\""), "{e}");
        let long = "9".repeat(500) + "x";
        let e = Quantity::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 400, "{e}");
    }

    #[test]
    fn value_and_milli_value_round_up() {
        let table: &[(&str, i64, i64)] = &[
            ("0.5", 1, 500),
            ("1.5Gi", 1610612736, 1610612736000),
            ("1m", 1, 1),
            ("250m", 1, 250),
            ("100Mi", 104857600, 104857600000),
            ("0.1m", 1, 1),
            ("1n", 1, 1),
            ("-0.5", -1, -500),
            ("-1n", -1, -1),
            ("2", 2, 2000),
            ("9.01", 10, 9010),
            ("9Ei", i64::MAX, i64::MAX),
            ("-9Ei", -i64::MAX, i64::MIN),
            ("1E", 1_000_000_000_000_000_000, i64::MAX),
            ("0", 0, 0),
        ];
        for &(s, value, milli) in table {
            assert_eq!(q(s).value(), value, "value of {s}");
            assert_eq!(q(s).milli_value(), milli, "milli value of {s}");
        }
    }

    #[test]
    fn canonical_strings_from_apimachinery() {
        use Format::*;
        // (nanos, format, expected, alternate spelling that canonicalises to the same)
        let table: &[(i128, Format, &str, &str)] = &[
            (dec(1 << 30, 0), BinarySI, "1Gi", "1024Mi"),
            (dec(300 << 20, 0), BinarySI, "300Mi", "307200Ki"),
            (dec(6 * 1024, 0), BinarySI, "6Ki", ""),
            (dec(1001 << 30, 0), BinarySI, "1001Gi", "1025024Mi"),
            (dec(1 << 40, 0), BinarySI, "1Ti", "1024Gi"),
            (dec(5, 0), BinarySI, "5", "5000m"),
            (dec(500, -3), BinarySI, "500m", "0.5"),
            (dec(1, 9), DecimalSI, "1G", "1000M"),
            (dec(1000, 6), DecimalSI, "1G", "0.001T"),
            (dec(1, -3), DecimalSI, "1m", "1000u"),
            (dec(80, -3), DecimalSI, "80m", ""),
            (dec(1080, -3), DecimalSI, "1080m", "1.08"),
            (dec(108, -2), DecimalSI, "1080m", "1080000000n"),
            (dec(300, 6), DecimalSI, "300M", ""),
            (dec(1, 12), DecimalSI, "1T", ""),
            (dec(1, 18), DecimalSI, "1E", ""),
            (dec(1234567, 6), DecimalSI, "1234567M", ""),
            (dec(1234567, -3), BinarySI, "1234567m", ""),
            (dec(3, 3), DecimalSI, "3k", ""),
            (dec(1025, 0), BinarySI, "1025", ""),
            (0, DecimalSI, "0", ""),
            (0, BinarySI, "0", ""),
            (dec(1, 9), DecimalExponent, "1e9", ".001e12"),
            (dec(1, -3), DecimalExponent, "1e-3", "0.001e0"),
            (dec(1, -9), DecimalExponent, "1e-9", "1000e-12"),
            (dec(80, -3), DecimalExponent, "80e-3", ""),
            (dec(300, 6), DecimalExponent, "300e6", ""),
            (dec(1, 12), DecimalExponent, "1e12", ""),
            (dec(3, 3), DecimalExponent, "3e3", ""),
            (0, DecimalExponent, "0", "00"),
            (dec(1, -9), DecimalSI, "1n", ""),
            (dec(80, -9), DecimalSI, "80n", ""),
            (dec(1080, -9), DecimalSI, "1080n", ""),
            (dec(1, -6), DecimalSI, "1u", ""),
            (dec(80, -6), DecimalSI, "80u", ""),
            (dec(1080, -6), DecimalSI, "1080u", ""),
        ];
        for &(nanos, format, expect, alternate) in table {
            let v = Quantity { nanos, format };
            assert_eq!(v.to_string(), expect, "{v:?}");
            assert_eq!(q(expect).to_string(), expect);
            if !alternate.is_empty() {
                assert_eq!(q(alternate).to_string(), expect, "alternate {alternate}");
            }
            if nanos != 0 {
                let neg = Quantity {
                    nanos: -nanos,
                    format,
                };
                assert_eq!(neg.to_string(), format!("-{expect}"));
            }
        }
    }

    #[test]
    fn parse_emit_from_apimachinery() {
        for (input, expect) in [
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("0.1m", "100u"),
            ("100m", "100m"),
            ("250m", "250m"),
            ("1E3", "1e3"),
        ] {
            assert_eq!(q(input).to_string(), expect, "{input}");
            assert_eq!(q(&format!("-{input}")).to_string(), format!("-{expect}"));
        }
    }

    #[test]
    fn kubelet_message_forms() {
        // Eviction messages build quantities from byte counts in BinarySI.
        assert_eq!(
            Quantity::new(100 << 20, Format::BinarySI).to_string(),
            "100Mi"
        );
        assert_eq!(
            Quantity::new(1234 * 1024, Format::BinarySI).to_string(),
            "1234Ki"
        );
        assert_eq!(
            Quantity::new(1234567, Format::BinarySI).to_string(),
            "1234567"
        );
        assert_eq!(
            Quantity::new_milli(250, Format::DecimalSI).to_string(),
            "250m"
        );
        assert_eq!(
            Quantity::new_milli(1500, Format::DecimalSI).to_string(),
            "1500m"
        );
        assert_eq!(Quantity::new(1 << 30, Format::BinarySI).to_string(), "1Gi");
        assert_eq!(q("9Ei").to_string(), "9223372036854775807");
        assert_eq!(Quantity::new(2000, Format::BinarySI).to_string(), "2000");
        assert_eq!(Quantity::new(1000, Format::BinarySI).to_string(), "1k");
        assert_eq!(q("+1").to_string(), "1");
    }

    #[test]
    fn comparison_and_arithmetic() {
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("100m") > q("50m"));
        assert!(q("10000T") > q("100Gi"));
        assert_eq!((q("0") + q("1Gi")).to_string(), "1Gi");
        assert_eq!((q("100m") + q("0")).to_string(), "100m");
        assert_eq!((q("0") - q("100m")).to_string(), "-100m");
        assert_eq!((q("1") + q("500m")).to_string(), "1500m");
        assert_eq!(q("1n").round_up_milli(), (q("1m"), false));
        assert_eq!(q("-1n").round_up_milli(), (q("-1m"), false));
        assert_eq!(q("1.5").round_up_milli(), (q("1500m"), true));
        assert_eq!(q("-9.01").sign(), Ordering::Less);
    }

    #[test]
    fn api_quantities_are_trimmed_like_unmarshal_json() {
        let api = ApiQuantity(" 128Mi ".into());
        assert_eq!(Quantity::from_api(&api).map(|v| v.value()), Ok(128 << 20));
        assert_eq!(q("64Mi").to_api(), ApiQuantity("64Mi".into()));
    }

    #[test]
    fn long_inputs_take_the_exact_slow_path() {
        // 25 significant digits with a binary suffix and a long fraction.
        let s = "0.0000000000000000000000012345678901234567890123Ki";
        assert_eq!(q(s).nanos, 1);
        let s = "1234567890.1234567890123456789";
        assert_eq!(q(s).nanos, 1234567890123456790);
        let s = "12345678901234567890.5Mi";
        assert_eq!(q(s).nanos, MAX_NANOS);
        let s = "0.000000000000000000001000000000000000000000Ei";
        assert_eq!(q(s).nanos, 1_152_922);
    }

    fn suffix_strategy() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
            "e0", "e3", "e-3", "E6", "e-9", "e12",
        ])
    }

    proptest! {
        #[test]
        fn canonical_string_round_trips(nanos in -MAX_NANOS..=MAX_NANOS, f in 0..3u8) {
            let format = [Format::DecimalSI, Format::BinarySI, Format::DecimalExponent][f as usize];
            let v = Quantity { nanos, format };
            let s = v.to_string();
            let back = q(&s);
            prop_assert_eq!(back, v, "{}", s);
            prop_assert_eq!(back.to_string(), s);
        }

        #[test]
        fn parse_then_print_is_stable(int in 0u64..10_000_000, frac in "[0-9]{0,12}", suffix in suffix_strategy(), neg: bool) {
            let s = format!("{}{int}{}{frac}{suffix}", if neg { "-" } else { "" }, if frac.is_empty() { "" } else { "." });
            let v = q(&s);
            let printed = v.to_string();
            prop_assert_eq!(q(&printed), v, "{} printed as {}", s, printed);
            prop_assert_eq!(q(&printed).to_string(), printed);
        }

        #[test]
        fn slow_path_agrees_with_fast_path(d in 0u64..1_000_000_000_000_000_000, shift in prop::sample::select(vec![0u32, 10, 20, 30, 40, 50, 60]), pow10 in -40i64..40) {
            let digits = d.to_string();
            let fast = nanos_magnitude(digits.as_bytes(), &[], shift, pow10);
            // Padding with a fraction of zeros forces the slow path without changing the value.
            let zeros = "0".repeat(20);
            let slow = nanos_magnitude(digits.as_bytes(), zeros.as_bytes(), shift, pow10 - 20);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn values_round_up(milli in -1_000_000_000i64..1_000_000_000) {
            let v = Quantity::new_milli(milli, Format::DecimalSI);
            prop_assert_eq!(v.milli_value(), milli);
            let expect = if milli >= 0 { (milli + 999).div_euclid(1000) } else { -((-milli + 999) / 1000) };
            prop_assert_eq!(v.value(), expect);
        }
    }
}
