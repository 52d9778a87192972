//! Finding objects and reading their attributes, with minimal templates: CKA_CLASS plus
//! CKA_LABEL and/or CKA_ID, nothing else (CloudHSM answers richer templates with
//! CKR_ATTRIBUTE_TYPE_INVALID, letsencrypt/pkcs11key#20).
use cryptoki::{
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::Session,
};
use der::Decode;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use crate::{encoding, Pkcs11Error};

/// A find template: the class, then the label and the id when given.
pub(crate) fn template(
    class: ObjectClass,
    label: Option<&str>,
    id: Option<&[u8]>,
) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(l) = label {
        t.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = id {
        t.push(Attribute::Id(id.to_vec()));
    }
    t
}

pub(crate) fn find(
    session: &Session,
    template: &[Attribute],
    token: &str,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    session
        .find_objects(template)
        .map_err(|e| Pkcs11Error::call("C_FindObjects", token, e))
}

/// The identifying attributes of a key object.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyAttrs {
    pub(crate) key_type: Option<KeyType>,
    pub(crate) label: Option<String>,
    pub(crate) id: Vec<u8>,
}

pub(crate) fn key_attrs(
    session: &Session,
    handle: ObjectHandle,
    token: &str,
) -> Result<KeyAttrs, Pkcs11Error> {
    let attrs = session
        .get_attributes(
            handle,
            &[
                AttributeType::KeyType,
                AttributeType::Label,
                AttributeType::Id,
            ],
        )
        .map_err(|e| Pkcs11Error::call("C_GetAttributeValue", token, e))?;
    let mut out = KeyAttrs::default();
    for a in attrs {
        match a {
            Attribute::KeyType(t) => out.key_type = Some(t),
            Attribute::Label(l) if !l.is_empty() => {
                out.label = Some(String::from_utf8_lossy(&l).into_owned())
            }
            Attribute::Id(id) => out.id = id,
            _ => {}
        }
    }
    Ok(out)
}

/// The template that finds objects belonging with `key` (its id if it has one, else its label).
fn companion_template(class: ObjectClass, key: &KeyAttrs) -> Option<Vec<Attribute>> {
    if !key.id.is_empty() {
        Some(template(class, None, Some(&key.id)))
    } else {
        key.label.as_deref().map(|l| template(class, Some(l), None))
    }
}

/// Objects of `class` that belong with `key`; when the id matches several, those with the
/// key's label too are preferred.
fn companions(
    session: &Session,
    class: ObjectClass,
    key: &KeyAttrs,
    token: &str,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    let Some(t) = companion_template(class, key) else {
        return Ok(vec![]);
    };
    let found = find(session, &t, token)?;
    if found.len() > 1 && !key.id.is_empty() {
        if let Some(l) = key.label.as_deref() {
            let narrowed = find(session, &template(class, Some(l), Some(&key.id)), token)?;
            if !narrowed.is_empty() {
                return Ok(narrowed);
            }
        }
    }
    Ok(found)
}

fn bytes_of(attrs: Vec<Attribute>) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (mut a, mut b) = (None, None);
    for attr in attrs {
        match attr {
            Attribute::Modulus(v) | Attribute::EcParams(v) => a = Some(v),
            Attribute::PublicExponent(v) | Attribute::EcPoint(v) => b = Some(v),
            _ => {}
        }
    }
    (a, b)
}

/// The SPKI from the key attributes of a public (or RSA private) key object.
fn spki_from_key_object(
    session: &Session,
    handle: ObjectHandle,
    key_type: KeyType,
    token: &str,
) -> Result<Option<SubjectPublicKeyInfoOwned>, Pkcs11Error> {
    let get = |types: &[AttributeType]| {
        session
            .get_attributes(handle, types)
            .map_err(|e| Pkcs11Error::call("C_GetAttributeValue", token, e))
    };
    if key_type == KeyType::RSA {
        match bytes_of(get(&[
            AttributeType::Modulus,
            AttributeType::PublicExponent,
        ])?) {
            (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => {
                encoding::rsa_spki(&n, &e).map(Some)
            }
            _ => Ok(None),
        }
    } else if key_type == KeyType::EC {
        match bytes_of(get(&[AttributeType::EcParams, AttributeType::EcPoint])?) {
            (Some(params), Some(point)) => {
                encoding::ec_spki(&params, &point)
                    .map(Some)
                    .map_err(|reason| Pkcs11Error::Malformed {
                        what: "EC public key",
                        reason,
                    })
            }
            _ => Ok(None),
        }
    } else {
        Ok(None)
    }
}

/// Certificates on the token that belong with `key` (by id, else label).
pub(crate) fn certificates(
    session: &Session,
    key: &KeyAttrs,
    token: &str,
) -> Result<Vec<Certificate>, Pkcs11Error> {
    let mut out = vec![];
    for h in companions(session, ObjectClass::CERTIFICATE, key, token)? {
        let attrs = session
            .get_attributes(h, &[AttributeType::Value])
            .map_err(|e| Pkcs11Error::call("C_GetAttributeValue", token, e))?;
        for a in attrs {
            if let Attribute::Value(der) = a {
                match Certificate::from_der(&der) {
                    Ok(c) => out.push(c),
                    Err(e) => {
                        tracing::warn!(token, error = %e, "skipping an unparsable certificate object")
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The public key of private key `handle`: from the public-key object with the same id
/// (or label), else from a certificate with the same id (or label), else (RSA) from the
/// private key's own CKA_MODULUS/CKA_PUBLIC_EXPONENT. `None` when none of these exist.
pub(crate) fn public_key_of(
    session: &Session,
    handle: ObjectHandle,
    key: &KeyAttrs,
    token: &str,
) -> Result<Option<SubjectPublicKeyInfoOwned>, Pkcs11Error> {
    let Some(key_type) = key.key_type else {
        return Ok(None);
    };
    let publics = companions(session, ObjectClass::PUBLIC_KEY, key, token)?;
    if publics.len() > 1 {
        tracing::warn!(
            token,
            count = publics.len(),
            "several public-key objects match the key; using the first that parses"
        );
    }
    for h in publics {
        if let Some(spki) = spki_from_key_object(session, h, key_type, token)? {
            return Ok(Some(spki));
        }
    }
    if let Some(cert) = certificates(session, key, token)?.into_iter().next() {
        tracing::debug!(token, "public key taken from the certificate object");
        return Ok(Some(cert.tbs_certificate.subject_public_key_info));
    }
    if key_type == KeyType::RSA {
        // Most tokens (SoftHSM, CloudHSM) expose these on RSA private keys; a token that
        // refuses returns nothing here rather than an error.
        if let Ok(Some(spki)) = spki_from_key_object(session, handle, key_type, token) {
            tracing::debug!(
                token,
                "public key taken from the RSA private key's attributes"
            );
            return Ok(Some(spki));
        }
    }
    Ok(None)
}
