//! What a module offers: its tokens and the keys on them (for `codeseal keys`).
use std::path::Path;

use codeseal_signer::{key_kind_of, KeyKind};
use cryptoki::object::{KeyType, ObjectClass};
use secrecy::SecretString;

use crate::{
    key::{describe_token, token_facts},
    module, objects, Pkcs11Error, Pkcs11Uri,
};

/// A token of a module.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenListing {
    /// The slot number (`slot-id` in a URI).
    pub slot_id: u64,
    /// The token label (`token`).
    pub label: String,
    /// The serial number (`serial`).
    pub serial: String,
    /// The manufacturer (`manufacturer`).
    pub manufacturer: String,
    /// The model (`model`).
    pub model: String,
    /// Whether the token needs a login to use its private keys.
    pub login_required: bool,
    /// Whether the keys below were listed after a login (private keys) or without one
    /// (public keys only, which usually mirror the private ones).
    pub logged_in: bool,
    /// The keys.
    pub keys: Vec<KeyListing>,
}

/// A key on a token.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KeyListing {
    /// CKA_LABEL (`object` in a URI).
    pub label: Option<String>,
    /// CKA_ID (`id` in a URI).
    pub id: Vec<u8>,
    /// Whether this is a private-key object (else a public-key object).
    pub private: bool,
    /// The kind, when codeseal can sign with it and its public key was found.
    pub kind: Option<KeyKind>,
    /// The type in words: `RSA-2048`, `ECDSA P-256`, `EC (unsupported curve)`, `AES`...
    pub description: String,
    /// A URI for the key: `pkcs11:token=...;object=...;id=...` (add `?module-path=...`).
    pub uri: String,
}

impl KeyListing {
    /// The id in lower-case hex, as pkcs11-tool shows it.
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Lists the initialized tokens of `module` and the keys on them.
///
/// With a `pin`, the user is logged in to exactly one token (the one labelled `token`, or
/// the only token of the module) and its private keys are listed; a PIN with several tokens
/// and no `token` is refused rather than tried on each (a wrong PIN counts against every
/// token it is tried on). Without a PIN, public-key objects are listed.
pub fn list_tokens_and_keys(
    module_path: &Path,
    token: Option<&str>,
    pin: Option<&SecretString>,
) -> Result<Vec<TokenListing>, Pkcs11Error> {
    let module = module::module(module_path)?;
    let slots = module
        .ctx
        .get_slots_with_initialized_token()
        .map_err(|e| Pkcs11Error::call("C_GetSlotList", "", e))?;
    let mut tokens = vec![];
    for slot in slots {
        let facts = token_facts(&module, slot)?;
        if token.is_none_or(|t| t == facts.label) {
            tokens.push((slot, facts));
        }
    }
    if pin.is_some() && tokens.len() > 1 {
        return Err(Pkcs11Error::AmbiguousToken {
            selector: token.map_or("any token".into(), |t| format!("token={t:?}")),
            module: module.path.clone(),
            available: tokens.iter().map(|(s, t)| describe_token(*s, t)).collect(),
        });
    }
    let mut out = vec![];
    for (slot, facts) in tokens {
        let session = module.open_session(slot, &facts.label)?;
        let mut logged_in = false;
        if let Some(pin) = pin {
            if facts.pin_locked {
                return Err(Pkcs11Error::PinLocked { token: facts.label });
            }
            module.ensure_login(&session, pin, &facts.label)?;
            logged_in = true;
        }
        let class = if logged_in {
            ObjectClass::PRIVATE_KEY
        } else {
            ObjectClass::PUBLIC_KEY
        };
        let mut keys = vec![];
        for h in objects::find(
            &session,
            &objects::template(class, None, None),
            &facts.label,
        )? {
            let attrs = objects::key_attrs(&session, h, &facts.label)?;
            let public = objects::public_key_of(&session, h, &attrs, &facts.label)
                .ok()
                .flatten();
            let kind = public.as_ref().and_then(|p| key_kind_of(p).ok());
            let description = match (kind, attrs.key_type) {
                (Some(k), _) => k.to_string(),
                (None, Some(t)) if t == KeyType::RSA => {
                    "RSA (unsupported size or no public key)".into()
                }
                (None, Some(t)) if t == KeyType::EC => {
                    "EC (unsupported curve or no public key)".into()
                }
                (None, Some(t)) => t.to_string(),
                (None, None) => "unknown".into(),
            };
            let uri = Pkcs11Uri {
                token: Some(facts.label.clone()),
                object: attrs.label.clone(),
                id: (!attrs.id.is_empty()).then(|| attrs.id.clone()),
                ..Default::default()
            }
            .to_string();
            keys.push(KeyListing {
                label: attrs.label,
                id: attrs.id,
                private: logged_in,
                kind,
                description,
                uri,
            });
        }
        keys.sort_by(|a, b| (&a.id, &a.label).cmp(&(&b.id, &b.label)));
        out.push(TokenListing {
            slot_id: slot.id(),
            label: facts.label,
            serial: facts.serial,
            manufacturer: facts.manufacturer,
            model: facts.model,
            login_required: facts.login_required,
            logged_in,
            keys,
        });
    }
    Ok(out)
}
