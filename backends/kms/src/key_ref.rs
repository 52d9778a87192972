//! Parsing of AWS KMS key references.

use std::{fmt, str::FromStr};

use crate::KmsError;

/// How a [`KmsKeyRef`] names its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyIdForm {
    /// A key ID: a UUID (`1234abcd-12ab-34cd-56ef-1234567890ab`) or a multi-Region key ID
    /// (`mrk-` and 32 hex digits).
    KeyId,
    /// A key ARN: `arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`.
    KeyArn,
    /// An alias name: `alias/NAME`.
    AliasName,
    /// An alias ARN: `arn:aws:kms:REGION:ACCOUNT:alias/NAME`.
    AliasArn,
}

/// A reference to an AWS KMS key, as a user writes it.
///
/// Accepted forms (the KMS `KeyId` forms, plus cosign's URIs):
///
/// | form | example |
/// | --- | --- |
/// | key ID | `1234abcd-12ab-34cd-56ef-1234567890ab`, `mrk-1234abcd12ab34cd56ef1234567890ab` |
/// | key ARN | `arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab` |
/// | alias name | `alias/release-signing` |
/// | alias ARN | `arn:aws:kms:us-east-1:111122223333:alias/release-signing` |
/// | cosign URI | `awskms:///KEY` (any form above as `KEY`) |
/// | cosign URI with endpoint | `awskms://HOST:PORT/KEY` |
///
/// In `awskms://HOST:PORT/KEY` the endpoint overrides the KMS endpoint for this key. A
/// loopback host (`127.0.0.1`, any `127.x.y.z`, `localhost`, `[::1]`) is reached over
/// plain `http://` (local emulators such as moto or LocalStack); any other host over
/// `https://`, so that a remote endpoint is never spoken to in clear text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KmsKeyRef {
    key_id: String,
    form: KeyIdForm,
    /// `host:port` from an `awskms://HOST:PORT/` URI.
    endpoint_authority: Option<String>,
    /// The region named by an ARN.
    region: Option<String>,
}

/// The scheme of cosign-style key URIs.
pub const AWSKMS_SCHEME: &str = "awskms://";

/// Longest key reference accepted (an alias ARN is at most ~330 bytes).
const MAX_LEN: usize = 2048;

impl KmsKeyRef {
    /// Parses a key reference; see the type's documentation for the accepted forms.
    pub fn parse(input: &str) -> Result<Self, KmsError> {
        let bad = |reason: &str| KmsError::InvalidKeyRef {
            // Masked before it is cut, so that no part of a secret is left.
            input: truncate(&codeseal_signer::redact_uri(input)),
            reason: reason.to_owned(),
        };
        if input.len() > MAX_LEN {
            return Err(bad("too long to be a KMS key reference"));
        }
        if input.is_empty() {
            return Err(bad("empty"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains white space or control characters"));
        }
        let (authority, key) = match strip_prefix_ignore_case(input, AWSKMS_SCHEME) {
            Some(rest) => {
                let (authority, key) = rest.split_once('/').ok_or_else(|| {
                    bad("an awskms:// URI is awskms:///KEY or awskms://HOST:PORT/KEY")
                })?;
                let authority = if authority.is_empty() {
                    None
                } else {
                    check_authority(authority).map_err(|r| bad(&r))?;
                    Some(authority.to_owned())
                };
                (authority, key)
            }
            None if input.contains("://") => {
                return Err(bad(
                    "unknown URI scheme (expected awskms://, a key ID, key ARN or alias)",
                ))
            }
            None => (None, input),
        };
        let (form, region) = classify_key(key).map_err(|r| bad(&r))?;
        Ok(Self {
            key_id: key.to_owned(),
            form,
            endpoint_authority: authority,
            region,
        })
    }

    /// The key as KMS's `KeyId` parameter takes it (key ID, key ARN, alias name or alias
    /// ARN), without any `awskms://` wrapping.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// How the key is named.
    pub fn form(&self) -> KeyIdForm {
        self.form
    }

    /// Whether the reference names an alias (which may be re-pointed to another key).
    pub fn is_alias(&self) -> bool {
        matches!(self.form, KeyIdForm::AliasName | KeyIdForm::AliasArn)
    }

    /// The region named in an ARN, if the reference is an ARN.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The endpoint URL given by an `awskms://HOST:PORT/KEY` URI: `http://HOST:PORT` for
    /// a loopback host, `https://HOST:PORT` otherwise.
    pub fn endpoint_url(&self) -> Option<String> {
        self.endpoint_authority.as_deref().map(|a| {
            let scheme = if is_loopback_authority(a) {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{a}")
        })
    }

    /// A cosign-style URI for this key (`awskms:///KEY` or `awskms://HOST:PORT/KEY`).
    pub fn to_uri(&self) -> String {
        format!(
            "{AWSKMS_SCHEME}{}/{}",
            self.endpoint_authority.as_deref().unwrap_or(""),
            self.key_id
        )
    }

    /// The same reference pointing at another key (used to pin an alias to the key ARN it
    /// resolved to, keeping the endpoint).
    pub(crate) fn with_key_arn(&self, arn: &str) -> Self {
        Self {
            key_id: arn.to_owned(),
            form: KeyIdForm::KeyArn,
            endpoint_authority: self.endpoint_authority.clone(),
            region: parse_arn(arn).ok().map(|a| a.region.to_owned()),
        }
    }
}

impl FromStr for KmsKeyRef {
    type Err = KmsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for KmsKeyRef {
    /// The key ID as given, or the URI when an endpoint is part of the reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.endpoint_authority.is_some() {
            f.write_str(&self.to_uri())
        } else {
            f.write_str(&self.key_id)
        }
    }
}

fn truncate(s: &str) -> String {
    const SHOWN: usize = 200;
    if s.len() <= SHOWN {
        return s.to_owned();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A key ID: a UUID (8-4-4-4-12 hex digits) or `mrk-` + 32 hex digits.
fn is_key_id(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix("mrk-") {
        return rest.len() == 32 && is_hex(rest);
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && is_hex(p))
}

/// An alias name after `alias/`: 1-250 of `[A-Za-z0-9/_-]`.
fn check_alias_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the alias name after alias/ is empty".into());
    }
    if name.len() > 250 {
        return Err("alias names are at most 256 characters including alias/".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    {
        return Err(
            "alias names contain only letters, digits, '/', '_' and '-' (alias/NAME)".into(),
        );
    }
    Ok(())
}

struct Arn<'a> {
    region: &'a str,
    resource: &'a str,
}

/// `arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE`.
fn parse_arn(s: &str) -> Result<Arn<'_>, String> {
    let mut it = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(res)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Err("an ARN is arn:PARTITION:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME".into());
    };
    if !partition.starts_with("aws") {
        return Err(format!("unknown ARN partition {partition:?}"));
    }
    if service != "kms" {
        return Err(format!("ARN of service {service:?}, not kms"));
    }
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("invalid region {region:?} in ARN"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the account in a KMS ARN is 12 digits".into());
    }
    Ok(Arn {
        region,
        resource: res,
    })
}

fn classify_key(key: &str) -> Result<(KeyIdForm, Option<String>), String> {
    if key.is_empty() {
        return Err("no key after awskms://.../".into());
    }
    if let Some(name) = key.strip_prefix("alias/") {
        check_alias_name(name)?;
        return Ok((KeyIdForm::AliasName, None));
    }
    if key.starts_with("arn:") {
        let arn = parse_arn(key)?;
        let region = Some(arn.region.to_owned());
        if let Some(id) = arn.resource.strip_prefix("key/") {
            if !is_key_id(id) {
                return Err(format!("{id:?} in the key ARN is not a KMS key ID"));
            }
            return Ok((KeyIdForm::KeyArn, region));
        }
        if let Some(name) = arn.resource.strip_prefix("alias/") {
            check_alias_name(name)?;
            return Ok((KeyIdForm::AliasArn, region));
        }
        return Err("a KMS ARN names key/ID or alias/NAME".into());
    }
    if is_key_id(key) {
        return Ok((KeyIdForm::KeyId, None));
    }
    Err("not a KMS key ID (UUID or mrk-...), key ARN, alias/NAME or alias ARN".into())
}

/// `HOST:PORT`, `HOST` or `[IPV6]:PORT`; no user info, path, query or fragment.
fn check_authority(a: &str) -> Result<(), String> {
    if a.contains(['@', '?', '#']) {
        return Err("the endpoint in awskms://HOST:PORT/KEY is host[:port] only".into());
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "unterminated [IPv6] host".to_owned())?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{h:?} is not an IPv6 address"));
        }
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| "expected :PORT after ]".to_owned())?,
                ),
            ),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() {
        return Err("empty endpoint host".into());
    }
    if !a.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(format!("invalid endpoint host {host:?}"));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("invalid endpoint port {p:?}")),
        }
    }
    Ok(())
}

fn is_loopback_authority(a: &str) -> bool {
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
    const MRK: &str = "mrk-1234abcd12ab34cd56ef1234567890ab";

    fn ok(s: &str) -> KmsKeyRef {
        KmsKeyRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match KmsKeyRef::parse(s) {
            Ok(r) => panic!("{s} parsed as {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn key_ids() {
        let r = ok(ID);
        assert_eq!(r.form(), KeyIdForm::KeyId);
        assert_eq!(r.key_id(), ID);
        assert_eq!(r.region(), None);
        assert_eq!(r.endpoint_url(), None);
        assert!(!r.is_alias());
        assert_eq!(r.to_string(), ID);
        assert_eq!(ok(MRK).form(), KeyIdForm::KeyId);
        assert_eq!(ok(&ID.to_uppercase()).form(), KeyIdForm::KeyId);
    }

    #[test]
    fn key_arn() {
        let arn = format!("arn:aws:kms:eu-west-1:111122223333:key/{ID}");
        let r = ok(&arn);
        assert_eq!(r.form(), KeyIdForm::KeyArn);
        assert_eq!(r.key_id(), arn);
        assert_eq!(r.region(), Some("eu-west-1"));
        let gov = format!("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/{MRK}");
        assert_eq!(ok(&gov).region(), Some("us-gov-west-1"));
    }

    #[test]
    fn alias_name_and_arn() {
        let r = ok("alias/release-signing_2024/x");
        assert_eq!(r.form(), KeyIdForm::AliasName);
        assert!(r.is_alias());
        assert_eq!(r.key_id(), "alias/release-signing_2024/x");
        let arn = "arn:aws:kms:us-east-1:111122223333:alias/release";
        let r = ok(arn);
        assert_eq!(r.form(), KeyIdForm::AliasArn);
        assert_eq!(r.region(), Some("us-east-1"));
        assert!(r.is_alias());
    }

    #[test]
    fn cosign_uri_without_endpoint() {
        let r = ok("awskms:///alias/x");
        assert_eq!(r.key_id(), "alias/x");
        assert_eq!(r.endpoint_url(), None);
        assert_eq!(r.to_uri(), "awskms:///alias/x");
        assert_eq!(r.to_string(), "alias/x");
        let arn = format!("arn:aws:kms:us-east-2:111122223333:key/{ID}");
        let r = ok(&format!("awskms:///{arn}"));
        assert_eq!(r.key_id(), arn);
        assert_eq!(r.form(), KeyIdForm::KeyArn);
        assert_eq!(r.region(), Some("us-east-2"));
        assert_eq!(ok(&format!("AWSKMS:///{ID}")).key_id(), ID);
    }

    #[test]
    fn cosign_uri_with_endpoint() {
        let r = ok("awskms://127.0.0.1:5000/alias/x");
        assert_eq!(r.key_id(), "alias/x");
        assert_eq!(r.endpoint_url().as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(r.to_uri(), "awskms://127.0.0.1:5000/alias/x");
        assert_eq!(r.to_string(), "awskms://127.0.0.1:5000/alias/x");
        assert_eq!(
            ok("awskms://localhost:4566/alias/x")
                .endpoint_url()
                .as_deref(),
            Some("http://localhost:4566")
        );
        assert_eq!(
            ok("awskms://[::1]:4566/alias/x").endpoint_url().as_deref(),
            Some("http://[::1]:4566")
        );
        // A remote endpoint is never spoken to in clear text.
        assert_eq!(
            ok(&format!("awskms://kms.example.com:8443/{ID}"))
                .endpoint_url()
                .as_deref(),
            Some("https://kms.example.com:8443")
        );
        assert_eq!(
            ok(&format!(
                "awskms://vpce-1.kms.us-east-1.vpce.amazonaws.com/{ID}"
            ))
            .endpoint_url()
            .as_deref(),
            Some("https://vpce-1.kms.us-east-1.vpce.amazonaws.com")
        );
        let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{ID}");
        let r = ok(&format!("awskms://127.0.0.1:5000/{arn}"));
        assert_eq!(r.key_id(), arn);
        let pinned = ok("awskms://127.0.0.1:5000/alias/x").with_key_arn(&arn);
        assert_eq!(pinned.to_uri(), format!("awskms://127.0.0.1:5000/{arn}"));
        assert_eq!(pinned.form(), KeyIdForm::KeyArn);
    }

    #[test]
    fn bad_references() {
        for (input, needle) in [
            ("", "empty"),
            ("release-key", "not a KMS key ID"),
            ("1234abcd-12ab-34cd-56ef-1234567890a", "not a KMS key ID"),
            ("1234abcg-12ab-34cd-56ef-1234567890ab", "not a KMS key ID"),
            ("mrk-1234", "not a KMS key ID"),
            ("alias/", "empty"),
            ("alias/has space", "white space"),
            ("alias/bad*char", "alias names contain only"),
            ("arn:aws:s3:us-east-1:111122223333:key/x", "not kms"),
            ("arn:aws:kms:us-east-1:1111:key/x", "12 digits"),
            (
                "arn:aws:kms:us-east-1:111122223333:key/not-a-uuid",
                "not a KMS key ID",
            ),
            (
                "arn:aws:kms:us-east-1:111122223333:grant/x",
                "key/ID or alias/NAME",
            ),
            ("arn:aws:kms:US_EAST:111122223333:alias/x", "invalid region"),
            ("arn:aws:kms:us-east-1", "an ARN is"),
            ("arn:other:kms:us-east-1:111122223333:alias/x", "partition"),
            ("awskms://", "awskms:///KEY"),
            ("awskms:///", "no key"),
            ("awskms://127.0.0.1:5000", "awskms:///KEY"),
            ("awskms://127.0.0.1:0/alias/x", "invalid endpoint port"),
            ("awskms://127.0.0.1:99999/alias/x", "invalid endpoint port"),
            ("awskms://127.0.0.1:+80/alias/x", "invalid endpoint port"),
            (
                "awskms://user:pw@127.0.0.1:5000/alias/x",
                "host[:port] only",
            ),
            ("awskms://:5000/alias/x", "empty endpoint host"),
            ("awskms://[::1/alias/x", "unterminated"),
            ("awskms://[nope]:1/alias/x", "not an IPv6"),
            ("awskms://host!:1/alias/x", "invalid endpoint host"),
            ("awskms:///alias/", "empty"),
            (
                "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
                "unknown URI",
            ),
            ("https://kms.us-east-1.amazonaws.com/alias/x", "unknown URI"),
            ("alias/x\n", "white space"),
        ] {
            let e = err(input);
            assert!(e.contains(needle), "{input:?}: {e:?} lacks {needle:?}");
        }
        assert!(err(&"a".repeat(5000)).contains("too long"));
        let long_alias = format!("alias/{}", "a".repeat(251));
        assert!(err(&long_alias).contains("at most 256"));
    }

    #[test]
    fn error_message_truncates_huge_input() {
        let input = format!("alias/{}", "é".repeat(700));
        let e = err(&input);
        assert!(e.len() < 600, "{}", e.len());
    }
}
