//! Percent-encoding (RFC 3986 `%XX`) as key URIs use it: one codec for every backend and for
//! the redaction of URIs in messages.
use zeroize::Zeroizing;

/// Why a percent-encoded value does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PercentError {
    /// A `%` not followed by two more characters.
    #[error("truncated percent-encoding")]
    Truncated,
    /// A `%` followed by something other than two hex digits.
    #[error("invalid percent-encoding (expected %XX with hex digits)")]
    NotHex,
    /// The decoded bytes were asked for as text and are not UTF-8.
    #[error("value is not UTF-8 after percent-decoding")]
    NotUtf8,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte of the escape `%XX` starting at `b[i]`, if there is a valid one.
fn escape_at(b: &[u8], i: usize) -> Result<u8, PercentError> {
    let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) else {
        return Err(PercentError::Truncated);
    };
    match (hex_val(h), hex_val(l)) {
        (Some(h), Some(l)) => Ok(h << 4 | l),
        _ => Err(PercentError::NotHex),
    }
}

/// Decodes `s`, strictly: every `%` must start a valid `%XX`. The result is wiped when
/// dropped (URI values may be PINs).
pub fn decode(s: &[u8]) -> Result<Zeroizing<Vec<u8>>, PercentError> {
    let mut out = Zeroizing::new(Vec::with_capacity(s.len()));
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            out.push(escape_at(s, i)?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// [`decode`] into text.
pub fn decode_str(s: &str) -> Result<String, PercentError> {
    let bytes = decode(s.as_bytes())?;
    std::str::from_utf8(&bytes)
        .map(str::to_string)
        .map_err(|_| PercentError::NotUtf8)
}

/// Decodes `s` leniently, for display: invalid escapes stay as they are, bytes that are not
/// UTF-8 become U+FFFD.
pub fn decode_lossy(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        match (c, escape_at(s, i)) {
            (b'%', Ok(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes `bytes`: the bytes for which `keep` is true stay, every other one becomes `%XX`.
pub fn encode(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &c in bytes {
        if keep(c) {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        for keep in [|_| false, |c: u8| c.is_ascii_alphanumeric()] {
            let e = encode(&all, keep);
            assert_eq!(decode(e.as_bytes()).expect("decodes").as_slice(), &all[..]);
            let ascii = encode(&all[..128], keep);
            assert_eq!(decode_lossy(ascii.as_bytes()).as_bytes(), &all[..128]);
        }
        assert_eq!(encode(b"a b/", |c| c.is_ascii_alphabetic()), "a%20b%2F");
    }

    #[test]
    fn strict_and_lossy_on_bad_escapes() {
        assert_eq!(
            decode(b"a%4").map(|v| v.to_vec()),
            Err(PercentError::Truncated)
        );
        assert_eq!(
            decode(b"%zz").map(|v| v.to_vec()),
            Err(PercentError::NotHex)
        );
        assert_eq!(decode_str("%ff"), Err(PercentError::NotUtf8));
        assert_eq!(decode_str("pin%3D%41").as_deref(), Ok("pin=A"));
        assert_eq!(decode_lossy(b"%zz%41%4"), "%zzA%4");
        assert_eq!(decode_lossy(b"%ff"), "\u{fffd}");
    }
}
