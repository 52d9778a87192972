//! Where the PIN comes from. The PIN lives in a `SecretString` (zeroized on drop, redacted
//! in `Debug`) from the moment it is read; it is never formatted, logged or put in an error.
use std::{io::Read, path::Path};

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::{uri::PinSource, Pkcs11Error, Pkcs11Options, Pkcs11Uri, PIN_ENV, PIN_FILE_ENV};

/// Largest PIN file read (a PIN is a line; CloudHSM's is `user:password`).
const MAX_PIN_FILE: u64 = 4096;

/// The PIN for `uri`, in order: [`Pkcs11Options::pin`], the URI's `pin-value` (only when
/// allowed), its `pin-source`, `CODESEAL_PKCS11_PIN`, `CODESEAL_PKCS11_PIN_FILE`.
/// `None` when none is given (public objects only).
pub(crate) fn resolve_pin(
    uri: &Pkcs11Uri,
    opts: &Pkcs11Options,
) -> Result<Option<SecretString>, Pkcs11Error> {
    if uri.pin_value.is_some() && !opts.allow_pin_value {
        return Err(Pkcs11Error::PinValueRefused);
    }
    if let Some(pin) = &opts.pin {
        return Ok(Some(pin.clone()));
    }
    if let Some(pin) = &uri.pin_value {
        return Ok(Some(pin.clone()));
    }
    match &uri.pin_source {
        Some(PinSource::File(p)) => return read_pin_file(p).map(Some),
        Some(PinSource::Env(var)) => {
            return env_pin(var)?.map(Some).ok_or_else(|| {
                let var = codeseal_signer::redact::shown_reference(var);
                Pkcs11Error::Pin(format!(
                    "environment variable {var} (pin-source=env:{var}) is not set"
                ))
            })
        }
        None => {}
    }
    if let Some(pin) = env_pin(PIN_ENV)? {
        return Ok(Some(pin));
    }
    match std::env::var_os(PIN_FILE_ENV) {
        Some(p) if !p.is_empty() => read_pin_file(Path::new(&p)).map(Some),
        _ => Ok(None),
    }
}

/// The PIN in environment variable `var`; `None` when unset or empty.
fn env_pin(var: &str) -> Result<Option<SecretString>, Pkcs11Error> {
    match std::env::var_os(var) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => {
            let s = Zeroizing::new(v.into_string().map_err(|_| {
                Pkcs11Error::Pin(format!(
                    "environment variable {} is not valid UTF-8",
                    codeseal_signer::redact::shown_reference(var)
                ))
            })?);
            Ok(Some(SecretString::from(s.as_str())))
        }
    }
}

/// The first line of a PIN file (without its line ending).
pub(crate) fn read_pin_file(path: &Path) -> Result<SecretString, Pkcs11Error> {
    // A PIN given as the file name by mistake is not repeated.
    let display = path.display().to_string();
    let shown = codeseal_signer::redact::shown_reference(&display);
    let err = |e: std::io::Error| Pkcs11Error::Pin(format!("PIN file {shown}: {e}"));
    let file = std::fs::File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(Pkcs11Error::Pin(format!(
            "PIN file {shown} is not a regular file"
        )));
    }
    if meta.len() > MAX_PIN_FILE {
        return Err(Pkcs11Error::Pin(format!(
            "PIN file {shown} is {} bytes; a PIN file holds one line",
            meta.len()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %shown,
                mode = format_args!("{:o}", mode & 0o777),
                "PIN file is readable by group or others; chmod 600 it"
            );
        }
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(64));
    file.take(MAX_PIN_FILE)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Pkcs11Error::Pin(format!("PIN file {shown} is not UTF-8")))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(Pkcs11Error::Pin(format!("PIN file {shown} is empty")));
    }
    Ok(SecretString::from(line))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn pin_file_first_line_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("pin");
        std::fs::write(&p, "user:pass word\r\nsecond line\n").expect("write");
        let pin = read_pin_file(&p).expect("read");
        assert_eq!(pin.expose_secret(), "user:pass word");
        std::fs::write(&p, "").expect("write");
        assert!(matches!(read_pin_file(&p), Err(Pkcs11Error::Pin(m)) if m.contains("empty")));
        let e = read_pin_file(&dir.path().join("missing")).expect_err("missing");
        assert!(e.to_string().contains("missing"), "{e}");
        assert!(read_pin_file(dir.path()).is_err());
    }

    #[test]
    fn pin_value_refused_unless_allowed() {
        let uri = Pkcs11Uri::parse("pkcs11:object=k?pin-value=9999").expect("parse");
        let refused = resolve_pin(&uri, &Pkcs11Options::default());
        assert!(matches!(refused, Err(Pkcs11Error::PinValueRefused)));
        let opts = Pkcs11Options {
            allow_pin_value: true,
            ..Default::default()
        };
        let pin = resolve_pin(&uri, &opts).expect("allowed").expect("some");
        assert_eq!(pin.expose_secret(), "9999");
    }

    #[test]
    fn explicit_pin_and_sources() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("pin");
        std::fs::write(&p, "from-file\n").expect("write");
        let uri = Pkcs11Uri::parse(&format!("pkcs11:object=k?pin-source=file:{}", p.display()))
            .expect("parse");
        let pin = resolve_pin(&uri, &Pkcs11Options::default())
            .expect("ok")
            .expect("some");
        assert_eq!(pin.expose_secret(), "from-file");
        let opts = Pkcs11Options {
            pin: Some(SecretString::from("explicit")),
            ..Default::default()
        };
        let pin = resolve_pin(&uri, &opts).expect("ok").expect("some");
        assert_eq!(pin.expose_secret(), "explicit");
        let uri = Pkcs11Uri::parse("pkcs11:object=k?pin-source=env:CODESEAL_TEST_SURELY_UNSET_VAR")
            .expect("parse");
        let e = resolve_pin(&uri, &Pkcs11Options::default()).expect_err("unset");
        assert!(
            e.to_string().contains("CODESEAL_TEST_SURELY_UNSET_VAR"),
            "{e}"
        );
    }
}
