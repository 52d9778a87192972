//! A checked, linear-time view of DER (and the BER that real signatures contain).
//!
//! Everything read from a file, a time-stamp reply or a signature goes through here before
//! any typed decoder sees it:
//!
//! - [`Tlv`] and [`Children`] walk tag-length-value elements without copying or recursion;
//!   every length is checked against the bytes that are really there (never used to size an
//!   allocation).
//! - [`check_sets`] walks a whole element once (bounded depth, no recursion) and checks every
//!   `SET OF` in it. The `der` crate sorts each SET OF it decodes with an insertion sort (time
//!   quadratic in the element count when the input is out of order), so an unsorted SET OF may
//!   reach `der` only when it is small. Where DER is required (the signed attributes, which
//!   the signature covers) any unsorted or repeated element is refused.
//! - [`Time`] reads GeneralizedTime in every form RFC 3161 allows (fractional seconds, as
//!   Microsoft's time-stamping services send) and UTCTime.
use std::cmp::Ordering;

/// Why a DER element could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Asn1Error {
    /// The input ends inside an element.
    #[error("truncated ASN.1 element at byte {offset}")]
    Truncated {
        /// Offset of the element's first byte in the buffer given.
        offset: usize,
    },
    /// A tag number above 30 (multi-byte tags are not used by anything read here).
    #[error("unsupported multi-byte ASN.1 tag at byte {offset}")]
    LongTag {
        /// Offset of the tag.
        offset: usize,
    },
    /// An indefinite or over-long length.
    #[error("unsupported ASN.1 length encoding at byte {offset}")]
    Length {
        /// Offset of the length.
        offset: usize,
    },
    /// A different element was expected.
    #[error("expected {expected} at byte {offset}, found tag {found:#04x}")]
    UnexpectedTag {
        /// What was expected.
        expected: &'static str,
        /// The tag found.
        found: u8,
        /// Where.
        offset: usize,
    },
    /// Constructed elements nested deeper than [`MAX_DEPTH`].
    #[error("ASN.1 nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A SET OF that DER requires sorted is not.
    #[error("SET OF at byte {offset} is not in DER order")]
    SetOrder {
        /// Where the SET starts.
        offset: usize,
    },
    /// A SET OF that DER requires without repeats has one.
    #[error("SET OF at byte {offset} contains the same element twice")]
    SetDuplicate {
        /// Where the SET starts.
        offset: usize,
    },
    /// A SET OF too large to be sorted in bounded time is out of order.
    #[error("SET OF at byte {offset} has {count} elements out of DER order (at most {MAX_UNSORTED_SET} are accepted)")]
    LargeUnsortedSet {
        /// Where the SET starts.
        offset: usize,
        /// How many elements it has.
        count: usize,
    },
    /// More elements than a limit allows.
    #[error("{what}: more than {limit}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A time value is not in a form ASN.1 allows.
    #[error("malformed {kind}: {text:?}")]
    Time {
        /// GeneralizedTime or UTCTime.
        kind: &'static str,
        /// The text (truncated to 32 bytes).
        text: String,
    },
}

/// Result of this module.
pub type Asn1Result<T> = std::result::Result<T, Asn1Error>;

/// The deepest nesting of constructed elements walked.
pub const MAX_DEPTH: usize = 64;
/// The largest SET OF accepted out of DER order (below it, sorting costs at most
/// `MAX_UNSORTED_SET²/2` comparisons, a constant).
pub const MAX_UNSORTED_SET: usize = 32;

/// Universal tags used here.
pub mod tag {
    /// BOOLEAN.
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// UTCTime.
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed).
    pub const SET: u8 = 0x31;
    /// `[n]` context-specific constructed.
    pub const fn context(n: u8) -> u8 {
        0xa0 | n
    }
    /// `[n]` context-specific primitive.
    pub const fn context_primitive(n: u8) -> u8 {
        0x80 | n
    }
}

/// One element: its tag byte, its whole encoding and its value, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag byte (class, constructed bit and number).
    pub tag: u8,
    /// The whole encoding (tag, length, value).
    pub raw: &'a [u8],
    /// The value octets.
    pub value: &'a [u8],
    /// Offset of `raw` in the buffer the walk started from.
    pub offset: usize,
}

impl<'a> Tlv<'a> {
    /// Reads the element at the start of `input` (whose first byte is at `offset` in the
    /// caller's buffer); returns it and the bytes after it.
    pub fn read(input: &'a [u8], offset: usize) -> Asn1Result<(Self, &'a [u8])> {
        let truncated = Asn1Error::Truncated { offset };
        let (&tag, rest) = input.split_first().ok_or(truncated.clone())?;
        if tag & 0x1f == 0x1f {
            return Err(Asn1Error::LongTag { offset });
        }
        let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(Asn1Error::Length { offset: offset + 1 });
            }
            let (bytes, r) = rest.split_at_checked(n).ok_or(truncated.clone())?;
            rest = r;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let header = input.len() - rest.len();
        let (value, after) = rest.split_at_checked(len).ok_or(truncated)?;
        let raw = input
            .get(..header + len)
            .ok_or(Asn1Error::Truncated { offset })?;
        Ok((
            Self {
                tag,
                raw,
                value,
                offset,
            },
            after,
        ))
    }

    /// Reads exactly one element from `input`, which must hold nothing else.
    pub fn exactly(input: &'a [u8]) -> Asn1Result<Self> {
        let (t, rest) = Self::read(input, 0)?;
        if !rest.is_empty() {
            return Err(Asn1Error::Truncated {
                offset: t.raw.len(),
            });
        }
        Ok(t)
    }

    /// Whether the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// Fails unless the tag is `want`.
    pub fn expect(self, want: u8, expected: &'static str) -> Asn1Result<Self> {
        if self.tag == want {
            Ok(self)
        } else {
            Err(Asn1Error::UnexpectedTag {
                expected,
                found: self.tag,
                offset: self.offset,
            })
        }
    }

    /// The elements inside this one.
    pub fn children(&self) -> Children<'a> {
        Children {
            rest: self.value,
            offset: self.offset + (self.raw.len() - self.value.len()),
        }
    }

    /// The value as an OBJECT IDENTIFIER.
    pub fn oid(&self) -> Asn1Result<const_oid::ObjectIdentifier> {
        if self.tag != tag::OID {
            return Err(Asn1Error::UnexpectedTag {
                expected: "OBJECT IDENTIFIER",
                found: self.tag,
                offset: self.offset,
            });
        }
        const_oid::ObjectIdentifier::from_bytes(self.value).map_err(|_| Asn1Error::UnexpectedTag {
            expected: "a valid OBJECT IDENTIFIER",
            found: self.tag,
            offset: self.offset,
        })
    }

    /// The value of a small non-negative INTEGER (at most 8 bytes).
    pub fn small_uint(&self) -> Asn1Result<u64> {
        if self.tag != tag::INTEGER || self.value.is_empty() || self.value.len() > 9 {
            return Err(Asn1Error::UnexpectedTag {
                expected: "a small INTEGER",
                found: self.tag,
                offset: self.offset,
            });
        }
        let v = self.value;
        if v.first().is_some_and(|b| b & 0x80 != 0) || (v.len() == 9 && v.first() != Some(&0)) {
            return Err(Asn1Error::UnexpectedTag {
                expected: "a small non-negative INTEGER",
                found: self.tag,
                offset: self.offset,
            });
        }
        Ok(v.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }
}

/// The elements of a constructed value, in order.
#[derive(Clone, Debug)]
pub struct Children<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Children<'a> {
    /// Walks the elements in `value`, the first at `offset`.
    pub fn new(value: &'a [u8], offset: usize) -> Self {
        Self {
            rest: value,
            offset,
        }
    }

    /// The next element, failing if there is none.
    pub fn required(&mut self, what: &'static str) -> Asn1Result<Tlv<'a>> {
        match self.next() {
            Some(t) => t,
            None => Err(Asn1Error::UnexpectedTag {
                expected: what,
                found: 0,
                offset: self.offset,
            }),
        }
    }

    /// The next element if its tag is `tag`; nothing (and no progress) otherwise.
    pub fn optional(&mut self, tag: u8) -> Asn1Result<Option<Tlv<'a>>> {
        if self.rest.first() == Some(&tag) {
            self.next().transpose()
        } else {
            Ok(None)
        }
    }

    /// Whether all elements were read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The offset of the next element.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Asn1Result<Tlv<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Tlv::read(self.rest, self.offset) {
            Ok((t, rest)) => {
                self.offset += t.raw.len();
                self.rest = rest;
                Some(Ok(t))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// How [`check_sets`] treats a SET OF out of DER order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetRule {
    /// DER: every SET OF sorted, no element twice (signed attributes).
    Der,
    /// As Windows reads it: any order and repeats are accepted, but an unsorted SET OF with
    /// more than [`MAX_UNSORTED_SET`] elements is refused because typed decoders would sort
    /// it in quadratic time.
    Bounded,
}

/// DER order of two encodings of SET OF elements (X.690 11.6: as octet strings, the shorter
/// padded with zeros).
pub fn der_set_order(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    match a.get(..n).cmp(&b.get(..n)) {
        Ordering::Equal => a.len().cmp(&b.len()),
        o => o,
    }
}

/// Walks `der` (one or more elements) once, without recursion, to a depth of [`MAX_DEPTH`],
/// and checks every SET OF under `rule`. Time and memory are linear in `der.len()`: each
/// element is compared with its successor only.
pub fn check_sets(der: &[u8], rule: SetRule) -> Asn1Result<()> {
    let mut stack: Vec<Children<'_>> = vec![Children::new(der, 0)];
    while let Some(top) = stack.last_mut() {
        let Some(next) = top.next() else {
            stack.pop();
            continue;
        };
        let t = next?;
        if !t.constructed() {
            continue;
        }
        if t.tag == tag::SET {
            check_one_set(&t, rule)?;
        }
        if stack.len() >= MAX_DEPTH {
            return Err(Asn1Error::TooDeep);
        }
        stack.push(t.children());
    }
    Ok(())
}

fn check_one_set(set: &Tlv<'_>, rule: SetRule) -> Asn1Result<()> {
    let mut prev: Option<&[u8]> = None;
    let mut count = 0usize;
    let mut sorted = true;
    for c in set.children() {
        let c = c?;
        count += 1;
        if let Some(p) = prev {
            match der_set_order(p, c.raw) {
                Ordering::Less => {}
                Ordering::Equal if rule == SetRule::Der => {
                    return Err(Asn1Error::SetDuplicate { offset: set.offset })
                }
                Ordering::Equal => {}
                Ordering::Greater if rule == SetRule::Der => {
                    return Err(Asn1Error::SetOrder { offset: set.offset })
                }
                Ordering::Greater => sorted = false,
            }
        }
        prev = Some(c.raw);
    }
    if !sorted && count > MAX_UNSORTED_SET {
        return Err(Asn1Error::LargeUnsortedSet {
            offset: set.offset,
            count,
        });
    }
    Ok(())
}

/// Writes a DER header (tag and definite length) for a value of `len` bytes.
pub fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// `tag` around `parts`, concatenated.
pub fn wrap(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    push_header(&mut out, tag, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// A point in time read from a GeneralizedTime or UTCTime, to the nanosecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub unix: u64,
    /// Nanoseconds within the second (from a fraction; 0 when there is none).
    pub nanos: u32,
}

fn time_error(kind: &'static str, text: &[u8]) -> Asn1Error {
    Asn1Error::Time {
        kind,
        text: String::from_utf8_lossy(text.get(..32).unwrap_or(text)).into_owned(),
    }
}

fn digits(s: &[u8], kind: &'static str, all: &[u8]) -> Asn1Result<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(time_error(kind, all));
    }
    Ok(s.iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0')))
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian), for years 1970..=9999.
fn days_from_civil(y: u32, m: u32, d: u32) -> Option<u64> {
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let month_len = [
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
    if d == 0 || d > *month_len.get(m as usize - 1)? {
        return None;
    }
    let y = i64::from(if m <= 2 { y - 1 } else { y });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

impl Time {
    /// Reads a GeneralizedTime value: `YYYYMMDDHHMMSS[.fff…]Z` (RFC 5280 / RFC 3161; any
    /// number of fraction digits, trailing zeros tolerated).
    pub fn generalized(v: &[u8]) -> Asn1Result<Self> {
        const K: &str = "GeneralizedTime";
        let body = v.strip_suffix(b"Z").ok_or_else(|| time_error(K, v))?;
        let (whole, frac) = match body.iter().position(|&b| b == b'.' || b == b',') {
            Some(p) => (
                body.get(..p).unwrap_or_default(),
                Some(body.get(p + 1..).unwrap_or_default()),
            ),
            None => (body, None),
        };
        if whole.len() != 14 {
            return Err(time_error(K, v));
        }
        let f = |r: std::ops::Range<usize>| digits(whole.get(r).unwrap_or_default(), K, v);
        let (y, mo, d, h, mi, s) = (
            f(0..4)?,
            f(4..6)?,
            f(6..8)?,
            f(8..10)?,
            f(10..12)?,
            f(12..14)?,
        );
        let nanos = match frac {
            None => 0,
            Some(fr) if fr.is_empty() || fr.len() > 9 => return Err(time_error(K, v)),
            Some(fr) => digits(fr, K, v)? * 10u32.pow(9 - fr.len() as u32),
        };
        Self::from_parts(y, mo, d, h, mi, s, nanos).ok_or_else(|| time_error(K, v))
    }

    /// Reads a UTCTime value: `YYMMDDHHMMSSZ` (years 50–99 are 19xx).
    pub fn utc(v: &[u8]) -> Asn1Result<Self> {
        const K: &str = "UTCTime";
        let body = v.strip_suffix(b"Z").ok_or_else(|| time_error(K, v))?;
        if body.len() != 12 {
            return Err(time_error(K, v));
        }
        let f = |r: std::ops::Range<usize>| digits(body.get(r).unwrap_or_default(), K, v);
        let yy = f(0..2)?;
        let y = if yy >= 50 { 1900 + yy } else { 2000 + yy };
        Self::from_parts(y, f(2..4)?, f(4..6)?, f(6..8)?, f(8..10)?, f(10..12)?, 0)
            .ok_or_else(|| time_error(K, v))
    }

    /// Reads a UTCTime or GeneralizedTime element.
    pub fn from_tlv(t: &Tlv<'_>) -> Asn1Result<Self> {
        match t.tag {
            tag::GENERALIZED_TIME => Self::generalized(t.value),
            tag::UTC_TIME => Self::utc(t.value),
            found => Err(Asn1Error::UnexpectedTag {
                expected: "a time",
                found,
                offset: t.offset,
            }),
        }
    }

    fn from_parts(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> Option<Self> {
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let days = days_from_civil(y, mo, d)?;
        Some(Self {
            unix: days * 86_400 + u64::from(h * 3600 + mi * 60 + s),
            nanos,
        })
    }

    /// As a duration since the Unix epoch.
    pub fn to_unix_duration(self) -> std::time::Duration {
        std::time::Duration::new(self.unix, self.nanos)
    }

    /// RFC 3339, UTC, with milliseconds when there is a fraction.
    pub fn rfc3339(self) -> String {
        let days = self.unix / 86_400;
        let secs = self.unix % 86_400;
        // Civil from days (inverse of days_from_civil).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        let base = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        if self.nanos == 0 {
            base + "Z"
        } else {
            format!("{base}.{:03}Z", self.nanos / 1_000_000)
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_forms() {
        let t = Time::generalized(b"20260513100613.722Z").expect("fraction");
        assert_eq!(t.unix, 1_778_666_773);
        assert_eq!(t.nanos, 722_000_000);
        assert_eq!(t.rfc3339(), "2026-05-13T10:06:13.722Z");
        let t0 = Time::generalized(b"20260513100613Z").expect("plain");
        assert_eq!(t0.unix, t.unix);
        assert_eq!(t0.rfc3339(), "2026-05-13T10:06:13Z");
        assert_eq!(
            Time::generalized(b"20260513100613.5Z").unwrap().nanos,
            500_000_000
        );
        assert_eq!(Time::generalized(b"19700101000000Z").unwrap().unix, 0);
        assert_eq!(
            Time::generalized(b"20000229235959Z").unwrap().unix,
            951_868_799
        );
        for bad in [
            &b"20260513100613"[..],
            b"20260513100613.Z",
            b"20261313100613Z",
            b"20260230100613Z",
            b"2026051310061Z",
            b"20260513100613.1234567890Z",
            b"2026051310x613Z",
            b"",
        ] {
            assert!(Time::generalized(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Time::utc(b"491231235959Z").unwrap().rfc3339(),
            "2049-12-31T23:59:59Z"
        );
        assert!(Time::utc(b"500101000000Z").is_err(), "before 1970");
    }

    #[test]
    fn tlv_bounds() {
        assert!(Tlv::read(&[0x30, 0x05, 1, 2], 0).is_err());
        assert!(Tlv::read(&[0x30, 0x80, 0, 0], 0).is_err());
        assert!(Tlv::read(&[0x1f, 0x01, 0], 0).is_err());
        assert!(Tlv::read(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 0).is_err());
        let (t, rest) = Tlv::read(&[0x04, 0x01, 9, 7], 0).unwrap();
        assert_eq!((t.value, rest), (&[9u8][..], &[7u8][..]));
    }

    #[test]
    fn set_rules() {
        let sorted = wrap(tag::SET, &[&[2, 1, 1], &[2, 1, 2]]);
        let unsorted = wrap(tag::SET, &[&[2, 1, 2], &[2, 1, 1]]);
        let dup = wrap(tag::SET, &[&[2, 1, 1], &[2, 1, 1]]);
        assert!(check_sets(&sorted, SetRule::Der).is_ok());
        assert_eq!(
            check_sets(&unsorted, SetRule::Der),
            Err(Asn1Error::SetOrder { offset: 0 })
        );
        assert_eq!(
            check_sets(&dup, SetRule::Der),
            Err(Asn1Error::SetDuplicate { offset: 0 })
        );
        assert!(check_sets(&unsorted, SetRule::Bounded).is_ok());
        assert!(check_sets(&dup, SetRule::Bounded).is_ok());
        let many: Vec<Vec<u8>> = (0..100u8).rev().map(|i| vec![2, 1, i]).collect();
        let refs: Vec<&[u8]> = many.iter().map(|v| v.as_slice()).collect();
        let big = wrap(tag::SEQUENCE, &[&wrap(tag::SET, &refs)]);
        assert!(matches!(
            check_sets(&big, SetRule::Bounded),
            Err(Asn1Error::LargeUnsortedSet { count: 100, .. })
        ));
        let mut deep = vec![0x05, 0x00];
        for _ in 0..(MAX_DEPTH + 1) {
            deep = wrap(tag::SEQUENCE, &[&deep]);
        }
        assert_eq!(check_sets(&deep, SetRule::Bounded), Err(Asn1Error::TooDeep));
    }
}
