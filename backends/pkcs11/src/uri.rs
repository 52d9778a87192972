//! RFC 7512 `pkcs11:` URIs.
use std::{fmt, path::PathBuf};

use codeseal_signer::percent;
use secrecy::SecretString;

use crate::Pkcs11Error;

/// Where the PIN comes from (`pin-source` in the URI).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinSource {
    /// A file whose first line is the PIN: `pin-source=file:/path` (or a bare absolute path).
    File(PathBuf),
    /// An environment variable: `pin-source=env:VAR`.
    Env(String),
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "file:{}", p.display()),
            Self::Env(v) => write!(f, "env:{v}"),
        }
    }
}

/// A parsed RFC 7512 `pkcs11:` URI.
///
/// ```text
/// pkcs11:token=codeseal-test;object=rsa2048;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
/// ```
///
/// Path attributes (`;`-separated, values percent-encoded): `token`, `manufacturer`,
/// `serial`, `model` (the token), `slot-id`, `slot-description`, `slot-manufacturer` (the
/// slot), `library-manufacturer`, `library-description`, `library-version` (the module),
/// `object` (the key's CKA_LABEL), `id` (its CKA_ID, as percent-encoded bytes: the id that
/// pkcs11-tool shows as `01` is `id=%01`), `type` (`private` only). Query attributes
/// (`&`-separated): `module-path`, `pin-source` (`file:/path`, `env:VAR`), `pin-value` (only
/// accepted when [`Pkcs11Options::allow_pin_value`](crate::Pkcs11Options::allow_pin_value)
/// is set), `module-name` (parsed, but a path is needed to load a module). Attributes that
/// start with `x-` are ignored; any other unknown attribute is an error, so that a typo never
/// silently selects another key.
///
/// `Display` writes the URI back without `pin-value`; `Debug` never shows the PIN.
#[derive(Default, Debug, Clone)]
#[non_exhaustive]
pub struct Pkcs11Uri {
    /// `token`: the token label (CKA_LABEL of the token, e.g. `hsm1` on CloudHSM).
    pub token: Option<String>,
    /// `manufacturer`: the token's manufacturer id.
    pub manufacturer: Option<String>,
    /// `serial`: the token's serial number.
    pub serial: Option<String>,
    /// `model`: the token's model.
    pub model: Option<String>,
    /// `library-manufacturer`.
    pub library_manufacturer: Option<String>,
    /// `library-description`.
    pub library_description: Option<String>,
    /// `library-version`, as `MAJOR` or `MAJOR.MINOR`.
    pub library_version: Option<String>,
    /// `slot-id`.
    pub slot_id: Option<u64>,
    /// `slot-description`.
    pub slot_description: Option<String>,
    /// `slot-manufacturer`.
    pub slot_manufacturer: Option<String>,
    /// `object`: the key's label.
    pub object: Option<String>,
    /// `id`: the key's CKA_ID bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path`: the PKCS#11 shared library.
    pub module_path: Option<PathBuf>,
    /// `module-name`: parsed for completeness; loading needs `module-path`.
    pub module_name: Option<String>,
    /// `pin-source`.
    pub pin_source: Option<PinSource>,
    pub(crate) pin_value: Option<SecretString>,
}

const PATH_ATTRS: &[&str] = &[
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-id",
    "slot-description",
    "slot-manufacturer",
    "object",
    "id",
    "type",
];
const QUERY_ATTRS: &[&str] = &["module-path", "module-name", "pin-source", "pin-value"];

/// The URI with its secrets masked, for error messages (the rule of every backend).
pub(crate) fn redact(uri: &str) -> String {
    codeseal_signer::redact_uri(uri)
}

/// Percent-encodes a value: unreserved characters and a few safe ones stay, the rest is %XX.
fn pct_encode(bytes: &[u8], keep_slash: bool) -> String {
    codeseal_signer::percent::encode(bytes, |c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
            )
            || (keep_slash && c == b'/')
    })
}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI (the scheme is case-insensitive).
    pub fn parse(uri: &str) -> Result<Self, Pkcs11Error> {
        let bad = |reason: String| Pkcs11Error::BadUri {
            uri: redact(uri),
            reason,
        };
        let rest = match uri.get(..7) {
            Some(s) if s.eq_ignore_ascii_case("pkcs11:") => &uri[7..],
            _ => return Err(bad("it must start with pkcs11:".into())),
        };
        if rest.contains('#') {
            return Err(bad("a pkcs11: URI has no #fragment".into()));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut out = Self::default();
        let mut seen: Vec<String> = vec![];
        for (part, sep, known) in [(path, ';', PATH_ATTRS), (query, '&', QUERY_ATTRS)] {
            for attr in part.split(sep).filter(|a| !a.is_empty()) {
                let Some((name, value)) = attr.split_once('=') else {
                    // Named only when it is an attribute name: a bare item may be a PIN.
                    let lower = attr.to_ascii_lowercase();
                    let reason = if PATH_ATTRS.contains(&lower.as_str())
                        || QUERY_ATTRS.contains(&lower.as_str())
                    {
                        format!("attribute {lower} has no value")
                    } else {
                        "an attribute has no NAME=VALUE form".to_string()
                    };
                    return Err(bad(reason));
                };
                let name = name.to_ascii_lowercase();
                if name.starts_with("x-") {
                    continue;
                }
                if !known.contains(&name.as_str()) {
                    let other = if sep == ';' { QUERY_ATTRS } else { PATH_ATTRS };
                    let reason = if other.contains(&name.as_str()) {
                        let place = if sep == ';' {
                            "query (after ?)"
                        } else {
                            "path (before ?)"
                        };
                        format!("{name} belongs in the {place}")
                    } else {
                        format!("unknown attribute {name:?}")
                    };
                    return Err(bad(reason));
                }
                if seen.contains(&name) {
                    return Err(bad(format!("attribute {name} appears twice")));
                }
                seen.push(name.clone());
                out.set(&name, value)
                    .map_err(|r| bad(format!("{name}: {r}")))?;
            }
        }
        Ok(out)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let text = || percent::decode_str(value).map_err(|e| e.to_string());
        match name {
            "token" => self.token = Some(text()?),
            "manufacturer" => self.manufacturer = Some(text()?),
            "serial" => self.serial = Some(text()?),
            "model" => self.model = Some(text()?),
            "library-manufacturer" => self.library_manufacturer = Some(text()?),
            "library-description" => self.library_description = Some(text()?),
            "library-version" => {
                let v = text()?;
                let ok = v.split('.').count() <= 2
                    && v.split('.')
                        .all(|p| !p.is_empty() && p.parse::<u8>().is_ok());
                if !ok {
                    return Err(format!("{v:?} is not a version (MAJOR or MAJOR.MINOR)"));
                }
                self.library_version = Some(v);
            }
            "slot-id" => {
                let v = text()?;
                self.slot_id = Some(
                    v.parse()
                        .map_err(|_| format!("{v:?} is not a decimal slot number"))?,
                );
            }
            "slot-description" => self.slot_description = Some(text()?),
            "slot-manufacturer" => self.slot_manufacturer = Some(text()?),
            "object" => self.object = Some(text()?),
            "id" => {
                let id = percent::decode(value.as_bytes())
                    .map_err(|e| e.to_string())?
                    .to_vec();
                if id.is_empty() {
                    return Err("empty id".into());
                }
                self.id = Some(id);
            }
            "type" => {
                let v = text()?;
                if v != "private" {
                    return Err(format!(
                        "type={v}: codeseal signs with private keys (type=private or no type)"
                    ));
                }
            }
            "module-path" => {
                let v = text()?;
                if v.is_empty() {
                    return Err("empty path".into());
                }
                self.module_path = Some(PathBuf::from(v));
            }
            "module-name" => self.module_name = Some(text()?),
            "pin-source" => self.pin_source = Some(parse_pin_source(&text()?)?),
            "pin-value" => {
                let bytes = percent::decode(value.as_bytes()).map_err(|e| e.to_string())?;
                let s = std::str::from_utf8(&bytes)
                    .map_err(|_| "value is not UTF-8 after percent-decoding".to_string())?;
                self.pin_value = Some(SecretString::from(s));
            }
            _ => return Err("unknown attribute".into()),
        }
        Ok(())
    }

    /// Whether the URI carried a `pin-value`.
    pub fn has_pin_value(&self) -> bool {
        self.pin_value.is_some()
    }

    /// Sets or clears the `pin-value` (for callers that got the PIN another way, e.g. from
    /// a prompt; [`Pkcs11Options::pin`](crate::Pkcs11Options::pin) is usually simpler).
    pub fn set_pin_value(&mut self, pin: Option<SecretString>) {
        self.pin_value = pin;
    }

    /// The token-selecting attributes, for messages: `token="x", serial="y"` or `any token`.
    pub fn token_selector(&self) -> String {
        let mut parts = vec![];
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}={v:?}"));
            }
        };
        push("token", &self.token);
        push("serial", &self.serial);
        push("manufacturer", &self.manufacturer);
        push("model", &self.model);
        push("slot-description", &self.slot_description);
        push("slot-manufacturer", &self.slot_manufacturer);
        if let Some(s) = self.slot_id {
            parts.push(format!("slot-id={s}"));
        }
        if parts.is_empty() {
            "any token".into()
        } else {
            parts.join(", ")
        }
    }

    /// The key-selecting attributes, for messages: `object="x", id=%01`.
    pub fn key_selector(&self) -> String {
        key_selector(self.object.as_deref(), self.id.as_deref())
    }
}

pub(crate) fn key_selector(label: Option<&str>, id: Option<&[u8]>) -> String {
    let mut parts = vec![];
    if let Some(o) = label {
        parts.push(format!("object={o:?}"));
    }
    if let Some(id) = id {
        parts.push(format!("id={}", pct_encode_all(id)));
    }
    if parts.is_empty() {
        "(no object or id)".into()
    } else {
        parts.join(", ")
    }
}

/// Every byte as %XX (how ids are written).
pub(crate) fn pct_encode_all(bytes: &[u8]) -> String {
    percent::encode(bytes, |_| false)
}

fn parse_pin_source(v: &str) -> Result<PinSource, String> {
    if let Some(var) = v.strip_prefix("env:") {
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            return Err(format!(
                "{:?}: bad environment variable name",
                codeseal_signer::redact::shown_reference(v)
            ));
        }
        return Ok(PinSource::Env(var.to_string()));
    }
    let path = if let Some(p) = v.strip_prefix("file:") {
        match p.strip_prefix("//") {
            // file:///path or file://localhost/path
            Some(rest) => rest.strip_prefix("localhost").unwrap_or(rest),
            None => p,
        }
    } else {
        v
    };
    if path.starts_with('/') || (path.len() > 2 && path.as_bytes()[1] == b':') {
        Ok(PinSource::File(PathBuf::from(path)))
    } else {
        // A PIN written here by mistake is not repeated.
        Err(format!(
            "{:?}: expected file:/absolute/path or env:VARIABLE",
            codeseal_signer::redact::shown_reference(v)
        ))
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The URI without `pin-value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pkcs11:")?;
        let mut path = vec![];
        let mut text = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                path.push(format!("{k}={}", pct_encode(v.as_bytes(), false)));
            }
        };
        text("token", &self.token);
        text("manufacturer", &self.manufacturer);
        text("serial", &self.serial);
        text("model", &self.model);
        text("library-manufacturer", &self.library_manufacturer);
        text("library-description", &self.library_description);
        text("library-version", &self.library_version);
        text("slot-description", &self.slot_description);
        text("slot-manufacturer", &self.slot_manufacturer);
        text("object", &self.object);
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        if let Some(id) = &self.id {
            path.push(format!("id={}", pct_encode_all(id)));
        }
        f.write_str(&path.join(";"))?;
        let mut query = vec![];
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                pct_encode(p.to_string_lossy().as_bytes(), true)
            ));
        }
        if let Some(n) = &self.module_name {
            query.push(format!("module-name={}", pct_encode(n.as_bytes(), false)));
        }
        if let Some(s) = &self.pin_source {
            query.push(format!(
                "pin-source={}",
                pct_encode(s.to_string().as_bytes(), true)
            ));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = Pkcs11Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn bad(uri: &str) -> String {
        match Pkcs11Uri::parse(uri) {
            Err(Pkcs11Error::BadUri { reason, .. }) => reason,
            other => panic!("{uri}: expected BadUri, got {other:?}"),
        }
    }

    #[test]
    fn full_uri() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=codeseal%20test;object=rsa2048;id=%01%02;serial=ABC;slot-id=7;\
             manufacturer=SoftHSM%20project;model=SoftHSM%20v2\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .expect("parse");
        assert_eq!(u.token.as_deref(), Some("codeseal test"));
        assert_eq!(u.object.as_deref(), Some("rsa2048"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(u.serial.as_deref(), Some("ABC"));
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(
            u.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_source, Some(PinSource::File("/run/pin".into())));
        assert!(!u.has_pin_value());
        // Round trip through Display.
        let again = Pkcs11Uri::parse(&u.to_string()).expect("reparse");
        assert_eq!(again.to_string(), u.to_string());
        assert_eq!(again.token, u.token);
        assert_eq!(again.id, u.id);
        assert_eq!(again.pin_source, u.pin_source);
    }

    #[test]
    fn label_only_id_only_and_scheme_case() {
        let u = Pkcs11Uri::parse("pkcs11:object=my%20key").expect("label");
        assert_eq!(u.object.as_deref(), Some("my key"));
        assert_eq!(u.id, None);
        let u = Pkcs11Uri::parse("PKCS11:id=%DE%ad").expect("id");
        assert_eq!(u.id.as_deref(), Some(&[0xde, 0xad][..]));
        assert_eq!(u.key_selector(), "id=%DE%AD");
        // A literal id is its bytes (RFC 7512): id=01 is "01", not 0x01.
        let u = Pkcs11Uri::parse("pkcs11:id=01").expect("id");
        assert_eq!(u.id.as_deref(), Some(&b"01"[..]));
        // Empty path, trailing separators, type=private, vendor attributes.
        assert!(Pkcs11Uri::parse("pkcs11:").is_ok());
        let u = Pkcs11Uri::parse("pkcs11:object=a;type=private;x-vendor=1;?x-foo=bar&")
            .expect("tolerant");
        assert_eq!(u.object.as_deref(), Some("a"));
    }

    #[test]
    fn pin_sources() {
        let cases = [
            ("env:MY_PIN", PinSource::Env("MY_PIN".into())),
            ("file:/etc/pin", PinSource::File("/etc/pin".into())),
            ("file:///etc/pin", PinSource::File("/etc/pin".into())),
            (
                "file://localhost/etc/pin",
                PinSource::File("/etc/pin".into()),
            ),
            ("/etc/pin", PinSource::File("/etc/pin".into())),
            (
                "file:%2Fetc%2Fmy%20pin",
                PinSource::File("/etc/my pin".into()),
            ),
        ];
        for (src, want) in cases {
            let u = Pkcs11Uri::parse(&format!("pkcs11:object=k?pin-source={src}")).expect(src);
            assert_eq!(u.pin_source, Some(want), "{src}");
        }
        assert!(bad("pkcs11:object=k?pin-source=relative/pin").contains("expected file:"));
        assert!(bad("pkcs11:object=k?pin-source=env:").contains("environment variable"));
    }

    #[test]
    fn pin_value_is_kept_secret() {
        let u = Pkcs11Uri::parse("pkcs11:object=k?pin-value=S3NT%49NEL").expect("parse");
        assert!(u.has_pin_value());
        assert_eq!(
            u.pin_value.as_ref().map(|p| p.expose_secret().to_string()),
            Some("S3NTINEL".into())
        );
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("S3NT"), "{shown}");
        // Errors redact it too.
        let e = Pkcs11Uri::parse("pkcs11:object=k;bogus=1?pin-value=S3NTINEL").expect_err("bad");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("S3NTINEL"), "{shown}");
        assert!(shown.contains("pin-value=***"), "{shown}");
        let e = Pkcs11Uri::parse("pkcs11:pin-value=S3NTINEL").expect_err("in path");
        assert!(!format!("{e} {e:?}").contains("S3NTINEL"));
    }

    #[test]
    fn redact_variants() {
        assert_eq!(
            redact("pkcs11:a=b?PIN-VALUE=x&module-path=/m"),
            "pkcs11:a=b?PIN-VALUE=***&module-path=/m"
        );
        assert_eq!(redact("pkcs11:?pin-value=x"), "pkcs11:?pin-value=***");
        assert_eq!(redact("pkcs11:object=pin-value"), "pkcs11:object=pin-value");
    }

    #[test]
    fn bad_uris() {
        assert!(bad("file:/k.pem").contains("pkcs11:"));
        assert!(bad("pkcs11").contains("pkcs11:"));
        assert!(bad("pkcs11:object=a;object=b").contains("twice"));
        assert!(bad("pkcs11:objekt=a").contains("unknown attribute"));
        assert!(bad("pkcs11:object").contains("no value"));
        assert!(bad("pkcs11:id=%0").contains("percent"));
        assert!(bad("pkcs11:id=%zz").contains("percent"));
        assert!(bad("pkcs11:id=").contains("empty id"));
        assert!(bad("pkcs11:object=%FF").contains("UTF-8"));
        assert!(bad("pkcs11:slot-id=x").contains("slot"));
        assert!(bad("pkcs11:slot-id=-1").contains("slot"));
        assert!(bad("pkcs11:type=cert").contains("private"));
        assert!(bad("pkcs11:object=a#frag").contains("fragment"));
        assert!(bad("pkcs11:module-path=/x").contains("query"));
        assert!(bad("pkcs11:?object=a").contains("path"));
        assert!(bad("pkcs11:library-version=1.x").contains("version"));
        assert!(bad("pkcs11:object=a?module-path=").contains("empty"));
    }
}
