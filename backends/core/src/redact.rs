//! Masking of secrets in key URIs, for error messages, `Debug` output and logs.
//!
//! Every backend shows key URIs the same way: through [`redact_uri`]. It knows no backend in
//! particular; it masks whatever in a URI may be a secret, and keeps the rest (scheme, file
//! path, token and object names, module path, key id) so that messages still say which key
//! was meant.
//!
//! What is masked (the value is replaced by [`MASK`]):
//!
//! - the value of every `NAME=VALUE` pair whose name says it is a secret, wherever it is
//!   (query, `;`-separated path attributes, a plain path, a fragment). Names are compared
//!   ASCII-case-insensitively, after percent-decoding (`pin%2Dvalue`), with `_` read as `-`;
//!   a name is a secret's when it contains `pin`, `pass`, `pwd`, `secret`, `cred`, `auth`,
//!   `sig`, `key`, `private` or `token` (the RFC 7512 token label `token` itself excepted).
//!   The value runs to the next `&`, `;`, `?` or `#` that starts another `NAME=` pair (so a
//!   secret holding one of those characters is masked whole), or to the end;
//! - the values of parameters that name where a secret is (`pin-source`, `password-file`,
//!   `password-env`, ...), unless they look like such a reference: a path (with `/` or `\`,
//!   optionally `file:`) or an upper-case environment variable name (optionally `env:`). A
//!   PIN or password written there by mistake is masked;
//! - in a URI with a scheme (`file:`, `pkcs11:`, `awskms:`, ...): the user information of
//!   `scheme://USER:PASSWORD@host`, the whole `#fragment` (no key URI has one), and query
//!   items without `=` (a secret pasted after `?`); in a `pkcs11:` URI also path items
//!   without `=`.
//!
//! A plain file path (no scheme, or a Windows drive letter) keeps `?`, `#` and `@`: they may
//! be part of the file name; only its `NAME=VALUE` pairs are looked at.
use std::borrow::Cow;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Parameters whose value says where a secret is (a file, an environment variable).
const REFERENCE_NAMES: &[&str] = &[
    "pin-source",
    "pin-file",
    "pin-env",
    "password-file",
    "password-env",
    "passphrase-file",
    "passphrase-env",
    "passwd-file",
    "passwd-env",
];

/// Words that make a parameter name a secret's.
const SECRET_WORDS: &[&str] = &[
    "pin", "pass", "pwd", "secret", "cred", "auth", "sig", "key", "private", "token",
];

/// Names that contain a secret word but are not secrets.
const NOT_SECRET: &[&str] = &["token", "key-id", "keyid", "key-spec", "key-usage"];

/// `uri` with every secret it may hold masked (see the [module documentation](self)).
///
/// Linear in the length of `uri`; never panics.
pub fn redact_uri(uri: &str) -> String {
    let scheme_len = scheme_len(uri);
    let Some(scheme_len) = scheme_len else {
        return mask_params(uri, false);
    };
    let is_pkcs11 = uri
        .get(..scheme_len)
        .is_some_and(|s| s.eq_ignore_ascii_case("pkcs11"));
    let mut out = String::with_capacity(uri.len());
    let (body, fragment) = match uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (uri, None),
    };
    // "scheme:"
    let head_end = scheme_len + 1;
    out.push_str(body.get(..head_end).unwrap_or_default());
    let mut rest = body.get(head_end..).unwrap_or_default();
    if let Some(after) = rest.strip_prefix("//") {
        out.push_str("//");
        let authority_end = after.find(['/', '?']).unwrap_or(after.len());
        let authority = after.get(..authority_end).unwrap_or_default();
        if let Some(at) = authority.rfind('@') {
            out.push_str(MASK);
            rest = after.get(at..).unwrap_or_default();
        } else {
            rest = after;
        }
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if is_pkcs11 {
        out.push_str(&mask_items(path, ';'));
    } else {
        out.push_str(&mask_params(path, true));
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(&mask_items(q, '&'));
    }
    if let Some(f) = fragment {
        out.push('#');
        if !f.is_empty() {
            out.push_str(MASK);
        }
    }
    out
}

/// How a value of a reference parameter (`pin-source`, `password-file`, `password-env`)
/// may be shown: as it is when it looks like a reference (a path, possibly `file:`, or an
/// upper-case environment variable name, possibly `env:`), else [`MASK`]. For messages
/// about such a parameter, e.g. "environment variable X is not set".
pub fn shown_reference(value: &str) -> Cow<'_, str> {
    if looks_like_reference(value) {
        Cow::Borrowed(value)
    } else {
        Cow::Borrowed(MASK)
    }
}

/// Whether a parameter called `name` (a query or path attribute name) holds a secret
/// (see the [module documentation](self)); reference parameters such as `pin-source` are not
/// secrets themselves.
pub fn is_secret_name(name: &str) -> bool {
    matches!(classify(name.as_bytes()), Kind::Secret)
}

/// Length of the scheme when `uri` starts with `SCHEME:` (two characters or more, so that a
/// Windows drive letter is a path).
fn scheme_len(uri: &str) -> Option<usize> {
    let colon = uri.find(':')?;
    let scheme = uri.get(..colon)?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (colon >= 2
        && first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')))
    .then_some(colon)
}

fn looks_like_reference(value: &str) -> bool {
    let decoded = crate::percent::decode_lossy(value.as_bytes());
    let v = decoded.as_str();
    let lower = v.to_ascii_lowercase();
    if lower.starts_with("env:") {
        return is_env_name(v.get(4..).unwrap_or_default());
    }
    let path = if lower.starts_with("file:") {
        v.get(5..).unwrap_or_default()
    } else {
        v
    };
    path.contains(['/', '\\']) || is_env_name(v)
}

/// `[A-Z_][A-Z0-9_]*`: the conventional environment variable names (a PIN or password
/// almost never has this form).
fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == b'_')
        && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Masks `sep`-separated items: `NAME=VALUE` pairs as [`mask_params`] does, items without
/// `=` whole.
fn mask_items(s: &str, sep: char) -> String {
    // A masked value may run over separators; mask the pairs over the whole string first
    // (that decides where each value ends), then look at what is left item by item.
    let masked = mask_params(s, true);
    let mut out = String::with_capacity(masked.len());
    for (i, item) in masked.split(sep).enumerate() {
        if i > 0 {
            out.push(sep);
        }
        if item.is_empty() || item.contains('=') || find_pct_eq(item.as_bytes(), 0).is_some() {
            out.push_str(item);
        } else {
            out.push_str(MASK);
        }
    }
    out
}

/// Bytes that end a parameter name (the name is the run of other bytes before `=`).
fn ends_name(b: u8) -> bool {
    matches!(
        b,
        b'/' | b'\\' | b':' | b';' | b'&' | b'?' | b'#' | b'=' | b'@'
    ) || b.is_ascii_whitespace()
        || b.is_ascii_control()
}

/// Bytes after which a new `NAME=VALUE` pair may start.
fn is_separator(b: u8, fragment_is_separator: bool) -> bool {
    matches!(b, b'&' | b';' | b'?') || (fragment_is_separator && b == b'#')
}

/// The `=` of a pair at `i`: `=` (length 1) or `%3D` (length 3).
fn eq_at(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'=' => Some(1),
        b'%' if b.get(i + 1) == Some(&b'3')
            && b.get(i + 2).is_some_and(|c| c.eq_ignore_ascii_case(&b'd')) =>
        {
            Some(3)
        }
        _ => None,
    }
}

fn find_pct_eq(b: &[u8], from: usize) -> Option<usize> {
    (from..b.len()).find(|&i| eq_at(b, i) == Some(3))
}

/// Masks the value of every secret `NAME=VALUE` pair in `s`.
fn mask_params(s: &str, fragment_is_separator: bool) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    // `copied`: bytes before it are in `out`. `name_start`: where the current name run began.
    let mut copied = 0;
    let mut name_start = 0;
    let mut i = 0;
    while i < b.len() {
        let Some(eq_len) = eq_at(b, i) else {
            if ends_name(b[i]) {
                name_start = i + 1;
            }
            i += 1;
            continue;
        };
        let name = b.get(name_start..i).unwrap_or_default();
        let value_start = i + eq_len;
        let value_end = value_end(b, value_start, fragment_is_separator);
        let masked = match classify(name) {
            Kind::Secret => true,
            Kind::Reference => !looks_like_reference(s.get(value_start..value_end).unwrap_or("")),
            Kind::Other => false,
        };
        if masked {
            out.push_str(s.get(copied..value_start).unwrap_or_default());
            out.push_str(MASK);
            copied = value_end;
            i = value_end;
        } else {
            // Shown: look inside the value too (`password-file=/x/password=y`).
            i = value_start;
        }
        name_start = i;
    }
    out.push_str(s.get(copied..).unwrap_or_default());
    out
}

/// Where a value starting at `start` ends: at the first separator followed by `NAME=`, or
/// at the end.
fn value_end(b: &[u8], start: usize, fragment_is_separator: bool) -> usize {
    let mut i = start;
    while i < b.len() {
        if is_separator(b[i], fragment_is_separator) {
            let mut j = i + 1;
            while j < b.len() && eq_at(b, j).is_none() && !ends_name(b[j]) {
                j += 1;
            }
            if j > i + 1 && eq_at(b, j).is_some() {
                return i;
            }
            // Nothing in i+1..j is a separator: skip the run.
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    b.len()
}

enum Kind {
    Secret,
    Reference,
    Other,
}

fn classify(raw: &[u8]) -> Kind {
    if raw.is_empty() {
        return Kind::Other;
    }
    let norm = |s: &[u8]| -> String {
        s.iter()
            .map(|&c| match c.to_ascii_lowercase() {
                b'_' => '-',
                c => char::from(c),
            })
            .collect()
    };
    let decoded = norm(crate::percent::decode_lossy(raw).as_bytes());
    let plain = norm(raw);
    let mut kind = Kind::Other;
    for name in [decoded.as_str(), plain.as_str()] {
        if REFERENCE_NAMES.contains(&name) {
            kind = Kind::Reference;
        } else if !NOT_SECRET.contains(&name) && SECRET_WORDS.iter().any(|w| name.contains(w)) {
            return Kind::Secret;
        }
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "S3cr3t-SENTINEL";

    fn masked(uri: &str) -> String {
        let r = redact_uri(uri);
        assert!(!r.contains(S), "{uri:?} -> {r:?}");
        assert!(r.contains(MASK), "{uri:?} -> {r:?}");
        r
    }

    #[test]
    fn secret_parameters_everywhere() {
        for uri in [
            format!("file:/k.pem?password={S}"),
            format!("file:/k.pem?PASSWORD={S}&x=1"),
            format!("file:/k.pem?passphrase={S}"),
            format!("/k.pem?password={S}"),
            format!("file:/k.pem;password={S}"),
            format!("file:/k.pem#password={S}"),
            format!("file:/k.pem#{S}"),
            format!("file:/k.pem?{S}"),
            format!("file://user:{S}@localhost/k.pem"),
            format!("file:/k.pem?password-file={S}"),
            format!("file:/k.pem?password-env={S}"),
            format!("pkcs11:object=k?pin-value={S}"),
            format!("pkcs11:object=k?PIN-VALUE={S}&module-path=/m.so"),
            format!("pkcs11:object=k?Pin-Value={S}"),
            format!("pkcs11:object=k?pin%2Dvalue={S}"),
            format!("pkcs11:object=k?pin%2dVALUE={S}"),
            format!("pkcs11:object=k?pin_value={S}"),
            format!("pkcs11:object=k?%70in-value={S}"),
            format!("pkcs11:pin-value={S};object=k"),
            format!("pkcs11:object=k;pin-value={S}?module-path=/m"),
            format!("pkcs11:object=k;{S}"),
            format!("pkcs11:object=k?pin-source={S}"),
            format!("pkcs11:object=k?pin-source=env:{S}"),
            format!("pkcs11:object=k?pin-source=file:{S}"),
            format!("pkcs11:object=k?pin={S}"),
            format!("pkcs11:object=k?pin-value%3D{S}"),
            format!("pkcs11:object=k?x-pin={S}"),
            format!("awskms:///alias/k?password={S}"),
            format!("awskms://user:{S}@127.0.0.1:4566/alias/k"),
            format!("awskms://{S}@127.0.0.1:4566/alias/k"),
            format!("awskms:///alias/k#{S}"),
            format!("awskms:///alias/k?secret-access-key={S}"),
            format!("awskms:///alias/k?X-Amz-Security-Token={S}"),
            format!("awskms:///alias/k?session_token={S}"),
            format!("arn:aws:kms:us-east-1:111122223333:alias/k?password={S}"),
        ] {
            masked(&uri);
        }
    }

    #[test]
    fn secrets_with_separators_are_masked_whole() {
        for (uri, want) in [
            (
                "pkcs11:object=k?pin-value=ab;cd&module-path=/m",
                "pkcs11:object=k?pin-value=***&module-path=/m",
            ),
            (
                "pkcs11:object=k?pin-value=ab&cd&module-path=/m",
                "pkcs11:object=k?pin-value=***&module-path=/m",
            ),
            ("file:/k.pem?password=a=b==", "file:/k.pem?password=***"),
            ("file:/k.pem?password=a?b#c", "file:/k.pem?password=***#***"),
        ] {
            assert_eq!(redact_uri(uri), want, "{uri}");
        }
    }

    #[test]
    fn the_rest_stays_readable() {
        for same in [
            "file:/k.pem",
            "/home/me/keys/k.pem",
            "C:\\keys\\k.pem",
            "keys/k#1.pem",
            "file:/k.pem?password-file=/run/secrets/pw",
            "file:/k.pem?password-env=KEY_PASSWORD",
            "pkcs11:token=hsm1;object=rsa2048;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
            "pkcs11:object=k?pin-source=env:MY_PIN",
            "pkcs11:object=k?pin-source=file:%2Fetc%2Fmy%20pin",
            "pkcs11:object=pin-value",
            "awskms:///alias/release-signing",
            "awskms://127.0.0.1:4566/alias/k",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "",
        ] {
            assert_eq!(redact_uri(same), same);
        }
        assert_eq!(
            redact_uri("pkcs11:object=k?module-path=/m.so&pin-value=1234&x-a=1"),
            "pkcs11:object=k?module-path=/m.so&pin-value=***&x-a=1"
        );
        assert_eq!(
            redact_uri("file:/k.pem?password-file=/x/password=y"),
            "file:/k.pem?password-file=/x/password=***"
        );
        assert_eq!(redact_uri("file:/k.pem#"), "file:/k.pem#");
        assert_eq!(
            redact_uri("awskms://u:p@127.0.0.1:1/alias/k"),
            "awskms://***@127.0.0.1:1/alias/k"
        );
        // Even an empty value is masked: nothing shows whether one was given.
        assert_eq!(redact_uri("pkcs11:?pin-value="), "pkcs11:?pin-value=***");
        assert_eq!(
            redact_uri("pkcs11:?pin-value=&x-a=1"),
            "pkcs11:?pin-value=***&x-a=1"
        );
    }

    #[test]
    fn references() {
        assert_eq!(shown_reference("/run/pin"), "/run/pin");
        assert_eq!(shown_reference("file:/run/pin"), "file:/run/pin");
        assert_eq!(shown_reference("env:PIN"), "env:PIN");
        assert_eq!(shown_reference("CODESEAL_PIN"), "CODESEAL_PIN");
        assert_eq!(shown_reference("1234"), MASK);
        assert_eq!(shown_reference("env:hunter2"), MASK);
        assert_eq!(shown_reference(S), MASK);
        assert!(is_secret_name("PIN%2DVALUE"));
        assert!(!is_secret_name("token"));
        assert!(!is_secret_name("pin-source"));
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for s in [
            "=",
            "%",
            "%3",
            "%3D",
            "pin=%",
            "a:",
            "ab:",
            "ab://",
            "ab://@",
            "ab:#",
            "ab:?",
            "pkcs11:;;",
            "é=ü;pin=é",
            "pin-value=\u{fffd}",
            "ab://x@y@z/p?q#f",
        ] {
            let _ = redact_uri(s);
        }
    }
}
