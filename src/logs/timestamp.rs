//! Timestamps as the CRI log format and the kubelet's rotation write them, without allocation.
//!
//! containerd stamps each record with Go's `time.RFC3339Nano` (UTC, trailing zeros of the
//! fraction trimmed, no fraction at all on a whole second); `kubectl logs --timestamps` prints the
//! fixed 9-digit layout `2006-01-02T15:04:05.000000000Z07:00`; rotated files carry the suffix
//! layout `20060102-150405`. The shim formats one timestamp per log record, so these write into a
//! stack buffer.
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time as seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixTime {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl UnixTime {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a `SystemTime` (before or after the epoch).
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixTime {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let (secs, nanos) = (d.as_secs() as i64, d.subsec_nanos());
                if nanos == 0 {
                    UnixTime {
                        secs: -secs,
                        nanos: 0,
                    }
                } else {
                    UnixTime {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - nanos,
                    }
                }
            }
        }
    }

    /// Converts a `jiff::Timestamp`.
    pub fn from_jiff(ts: jiff::Timestamp) -> Self {
        let nanos = ts.subsec_nanosecond();
        if nanos >= 0 {
            UnixTime {
                secs: ts.as_second(),
                nanos: nanos as u32,
            }
        } else {
            UnixTime {
                secs: ts.as_second() - 1,
                nanos: (1_000_000_000 + nanos) as u32,
            }
        }
    }

    /// RFC 3339 with the fraction trimmed, as Go's `time.RFC3339Nano` (what containerd writes).
    pub fn rfc3339_nano(self) -> TimeBuf {
        self.format(Fraction::Trimmed)
    }

    /// RFC 3339 with exactly nine fractional digits (`kubectl logs --timestamps`).
    pub fn rfc3339_fixed(self) -> TimeBuf {
        self.format(Fraction::Fixed)
    }

    /// The rotated-log suffix `YYYYMMDD-HHMMSS` (Go layout `20060102-150405`), in UTC.
    pub fn rotation_suffix(self) -> TimeBuf {
        let (date, (h, mi, s)) = civil(self.secs);
        let mut b = TimeBuf::default();
        b.push_num(date.0, 4);
        b.push_num(date.1 as i64, 2);
        b.push_num(date.2 as i64, 2);
        b.push(b'-');
        for v in [h, mi, s] {
            b.push_num(v as i64, 2);
        }
        b
    }

    fn format(self, fraction: Fraction) -> TimeBuf {
        let ((y, mo, d), (h, mi, s)) = civil(self.secs);
        let mut b = TimeBuf::default();
        b.push_num(y, 4);
        b.push(b'-');
        b.push_num(mo as i64, 2);
        b.push(b'-');
        b.push_num(d as i64, 2);
        b.push(b'T');
        b.push_num(h as i64, 2);
        b.push(b':');
        b.push_num(mi as i64, 2);
        b.push(b':');
        b.push_num(s as i64, 2);
        let mut digits = 9;
        let mut nanos = self.nanos;
        if fraction == Fraction::Trimmed {
            while digits > 0 && nanos.is_multiple_of(10) {
                nanos /= 10;
                digits -= 1;
            }
        }
        if digits > 0 {
            b.push(b'.');
            b.push_num(nanos as i64, digits);
        }
        b.push(b'Z');
        b
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Fraction {
    Trimmed,
    Fixed,
}

/// A formatted timestamp held on the stack.
#[derive(Clone, Copy)]
pub struct TimeBuf {
    buf: [u8; 40],
    len: usize,
}

impl Default for TimeBuf {
    fn default() -> Self {
        TimeBuf {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl TimeBuf {
    fn push(&mut self, c: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = c;
            self.len += 1;
        }
    }

    /// Pushes `v` zero-padded to `width` digits (a negative year gets a leading '-').
    fn push_num(&mut self, v: i64, width: usize) {
        if v < 0 {
            self.push(b'-');
        }
        let mut v = v.unsigned_abs();
        let mut tmp = [b'0'; 20];
        let mut n = 0;
        while v > 0 || n < width {
            tmp[n] = b'0' + (v % 10) as u8;
            v /= 10;
            n += 1;
        }
        for i in (0..n).rev() {
            self.push(tmp[i]);
        }
    }

    /// The formatted bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The formatted text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl std::fmt::Display for TimeBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for TimeBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Splits Unix seconds into a proleptic Gregorian date and a time of day (UTC).
/// Howard Hinnant's `civil_from_days`.
fn civil(secs: i64) -> ((i64, u32, u32), (u32, u32, u32)) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe as i64 + era * 400 + i64::from(m <= 2);
    ((y, m, d), (sod / 3600, sod / 60 % 60, sod % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        // (secs, nanos, RFC3339Nano, fixed 9 digits, rotation suffix)
        let cases = [
            (
                0,
                0,
                "1970-01-01T00:00:00Z",
                "1970-01-01T00:00:00.000000000Z",
                "19700101-000000",
            ),
            // The kubelet's own example line: 2016-10-06T00:17:09.669794202Z stdout F hello
            (
                1_475_713_029,
                669_794_202,
                "2016-10-06T00:17:09.669794202Z",
                "2016-10-06T00:17:09.669794202Z",
                "20161006-001709",
            ),
            (
                1_475_713_029,
                669_000_000,
                "2016-10-06T00:17:09.669Z",
                "2016-10-06T00:17:09.669000000Z",
                "20161006-001709",
            ),
            (
                951_782_400,
                500,
                "2000-02-29T00:00:00.0000005Z",
                "2000-02-29T00:00:00.000000500Z",
                "20000229-000000",
            ),
            (
                4_102_444_799,
                10,
                "2099-12-31T23:59:59.00000001Z",
                "2099-12-31T23:59:59.000000010Z",
                "20991231-235959",
            ),
            (
                -1,
                0,
                "1969-12-31T23:59:59Z",
                "1969-12-31T23:59:59.000000000Z",
                "19691231-235959",
            ),
        ];
        for (secs, nanos, nano, fixed, suffix) in cases {
            let t = UnixTime { secs, nanos };
            assert_eq!(t.rfc3339_nano().as_str(), nano, "{secs}.{nanos}");
            assert_eq!(t.rfc3339_fixed().as_str(), fixed, "{secs}.{nanos}");
            assert_eq!(t.rotation_suffix().as_str(), suffix, "{secs}.{nanos}");
        }
    }

    #[test]
    fn agrees_with_jiff_on_many_instants() {
        let mut secs: i64 = -86_400 * 400;
        while secs < 4_000_000_000 {
            let t = UnixTime {
                secs,
                nanos: (secs.rem_euclid(1_000_000_000)) as u32,
            };
            let parsed: jiff::Timestamp = t.rfc3339_nano().as_str().parse().unwrap();
            assert_eq!(UnixTime::from_jiff(parsed), t);
            secs += 86_400 * 17 + 3_607;
        }
    }

    #[test]
    fn system_time_before_epoch() {
        let t = UNIX_EPOCH - std::time::Duration::from_millis(1500);
        assert_eq!(
            UnixTime::from_system_time(t),
            UnixTime {
                secs: -2,
                nanos: 500_000_000
            }
        );
    }
}
