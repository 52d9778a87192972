use std::{
    fmt,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use codeseal_signer::{
    key_kind_of, verify_prehash, DigestAlgorithm, KeyKind, KeySigner, SignError, SignatureAlgorithm,
};
use cryptoki::{
    error::RvError,
    mechanism::Mechanism,
    object::{KeyType, ObjectClass, ObjectHandle},
    session::Session,
    slot::Slot,
};
use secrecy::SecretString;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use crate::{
    encoding,
    module::{self, Module},
    objects::{self, KeyAttrs},
    pin::resolve_pin,
    uri::key_selector,
    workers::{Wait, Workers, ABANDONED, DONE, RUNNING},
    Pkcs11Error, Pkcs11Uri, MODULE_ENV,
};

/// Back-off before each retry of a transient failure (CKR_DEVICE_ERROR,
/// CKR_FUNCTION_FAILED, CKR_DEVICE_MEMORY): at most three retries.
const TRANSIENT_BACKOFF: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(800),
];

/// How a key is opened and used. `Default` gives the safe choices; set fields with
/// `Pkcs11Options { timeout: None, ..Default::default() }`.
#[derive(Clone, Debug)]
pub struct Pkcs11Options {
    /// Accept `pin-value` in the URI (default: refused with [`Pkcs11Error::PinValueRefused`]).
    pub allow_pin_value: bool,
    /// The PIN, when the caller has it (e.g. read from a prompt or stdin); takes precedence
    /// over the URI and the environment. For AWS CloudHSM it is `USER:PASSWORD`.
    pub pin: Option<SecretString>,
    /// The module, when the URI has no `module-path` (before `CODESEAL_PKCS11_MODULE`).
    pub module: Option<PathBuf>,
    /// Time limit for one signature, including waiting for a free session and retries
    /// (default 60 s; `None`: wait as long as the module takes).
    pub timeout: Option<Duration>,
    /// Most sessions (and worker threads) this key uses at once: one per concurrent
    /// signature (default 8).
    pub max_sessions: usize,
    /// Sign a test digest when the key is opened and check it with the public key found on
    /// the token, so that a public key or certificate of another key is caught at once
    /// (default on).
    pub self_test: bool,
}

impl Default for Pkcs11Options {
    fn default() -> Self {
        Self {
            allow_pin_value: false,
            pin: None,
            module: None,
            timeout: Some(Duration::from_secs(60)),
            max_sessions: 8,
            self_test: true,
        }
    }
}

/// A session of a worker, with the key's handle in it (looked up per session: CloudHSM
/// handles are not guaranteed to be shared between sessions).
pub(crate) struct Pooled {
    session: Session,
    key: ObjectHandle,
}

/// The mechanisms codeseal signs with (cryptoki's `Mechanism` is not `Send`).
#[derive(Clone, Copy, Debug)]
enum SignMechanism {
    /// CKM_RSA_PKCS over a DER DigestInfo.
    RsaPkcs,
    /// CKM_ECDSA over a digest.
    Ecdsa,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// The session or the login is gone: new session, re-login, re-find the key, once.
    SessionLost,
    /// The module may succeed if asked again: back off and retry.
    Transient,
    /// Everything else, including a wrong or locked PIN: never retried.
    Fatal,
}

fn classify(e: &Pkcs11Error) -> Class {
    let Pkcs11Error::Call { source, .. } = e else {
        return Class::Fatal;
    };
    match crate::error::rv_of(source) {
        Some(
            RvError::UserNotLoggedIn
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::ObjectHandleInvalid
            | RvError::KeyHandleInvalid
            | RvError::OperationActive,
        ) => Class::SessionLost,
        Some(RvError::DeviceError | RvError::FunctionFailed | RvError::DeviceMemory) => {
            Class::Transient
        }
        _ => Class::Fatal,
    }
}

struct Inner {
    module: Arc<Module>,
    slot: Slot,
    token_label: String,
    token_serial: String,
    /// From the URI: what finds the private key in each new session.
    find_label: Option<String>,
    find_id: Option<Vec<u8>>,
    /// The key's own attributes.
    attrs: KeyAttrs,
    kind: KeyKind,
    public: SubjectPublicKeyInfoOwned,
    /// Kept for re-login after a lost session. Zeroized on drop, never formatted.
    pin: Option<SecretString>,
    /// Set when the token rejected the PIN: it is not sent again.
    pin_rejected: AtomicBool,
    /// The session opened by `open`, for the first worker that needs one.
    spare: Mutex<Option<Pooled>>,
    workers: Workers<Pooled>,
    timeout: Option<Duration>,
    uri: String,
}

/// A private key on a PKCS#11 token (AWS CloudHSM, SoftHSM2, ...).
///
/// Opened once with [`Pkcs11Key::open`] / [`open_uri`](crate::open_uri): the module is loaded
/// and initialized once per process, the user logged in once, the key and its public key
/// found once. Signatures then run on a small set of worker threads, each with its own
/// session (one per concurrent signature, [`Pkcs11Options::max_sessions`]); see the crate
/// documentation for retries and time-outs. Cloning is cheap and shares the workers, which
/// exit (closing their sessions) when the last clone is dropped.
#[derive(Clone)]
pub struct Pkcs11Key {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Pkcs11Key")
            .field("module", &i.module.path)
            .field("token", &i.token_label)
            .field("label", &i.attrs.label)
            .field("id", &hex_id(&i.attrs.id))
            .field("kind", &i.kind)
            .finish_non_exhaustive()
    }
}

fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pkcs11Key {
    /// Opens the key named by `uri`.
    ///
    /// Module: the URI's `module-path`, else [`Pkcs11Options::module`], else
    /// `CODESEAL_PKCS11_MODULE`. PIN: [`Pkcs11Options::pin`], the URI's `pin-value` (only
    /// if allowed), `pin-source`, `CODESEAL_PKCS11_PIN`, `CODESEAL_PKCS11_PIN_FILE`. A wrong
    /// PIN is reported here after exactly one C_Login, never retried.
    pub fn open(uri: &Pkcs11Uri, opts: &Pkcs11Options) -> Result<Self, Pkcs11Error> {
        if uri.object.is_none() && uri.id.is_none() {
            return Err(Pkcs11Error::NoKeySelector);
        }
        let pin = resolve_pin(uri, opts)?;
        let module_path = module_path(uri, opts)?;
        let module = module::module(&module_path)?;
        let (slot, token) = select_token(&module, uri)?;
        let token_label = token.label.clone();
        if pin.is_none() && token.login_required {
            return Err(Pkcs11Error::PinRequired { token: token_label });
        }
        if pin.is_some() && token.pin_locked {
            return Err(Pkcs11Error::PinLocked { token: token_label });
        }
        if pin.is_some() && token.pin_final_try {
            tracing::warn!(token = %token_label, "the token says the next wrong PIN locks it");
        }

        let session = module.open_session(slot, &token_label)?;
        if let Some(pin) = &pin {
            module.ensure_login(&session, pin, &token_label)?;
        }
        let selector = uri.key_selector();
        let template = objects::template(
            ObjectClass::PRIVATE_KEY,
            uri.object.as_deref(),
            uri.id.as_deref(),
        );
        let handle = match objects::find(&session, &template, &token_label)?.as_slice() {
            [h] => *h,
            [] => {
                return Err(Pkcs11Error::KeyNotFound {
                    hint: not_found_hint(&session, uri, pin.is_some(), &token_label),
                    token: token_label,
                    selector,
                })
            }
            many => {
                return Err(Pkcs11Error::AmbiguousKey {
                    token: token_label,
                    selector,
                    count: many.len(),
                })
            }
        };
        let attrs = objects::key_attrs(&session, handle, &token_label)?;
        let unsupported = |reason: String| Pkcs11Error::UnsupportedKey {
            token: token_label.clone(),
            selector: selector.clone(),
            reason,
        };
        match attrs.key_type {
            Some(t) if t == KeyType::RSA || t == KeyType::EC => {}
            Some(t) => {
                return Err(unsupported(format!(
                    "key type {t} (codeseal signs with RSA and EC P-256/P-384 keys)"
                )))
            }
            None => return Err(unsupported("the token does not say its key type".into())),
        }
        let public =
            objects::public_key_of(&session, handle, &attrs, &token_label)?.ok_or_else(|| {
                Pkcs11Error::PublicKeyNotFound {
                    token: token_label.clone(),
                    selector: selector.clone(),
                }
            })?;
        let kind = key_kind_of(&public).map_err(|e| unsupported(e.to_string()))?;
        if kind.is_rsa() != (attrs.key_type == Some(KeyType::RSA)) {
            return Err(Pkcs11Error::PublicKeyMismatch {
                key: selector.clone(),
            });
        }

        let canonical = Pkcs11Uri {
            token: Some(token_label.clone()),
            object: attrs.label.clone(),
            id: (!attrs.id.is_empty()).then(|| attrs.id.clone()),
            ..Default::default()
        };
        let inner = Inner {
            module,
            slot,
            token_label,
            token_serial: token.serial,
            find_label: uri.object.clone(),
            find_id: uri.id.clone(),
            attrs,
            kind,
            public,
            pin,
            pin_rejected: AtomicBool::new(false),
            spare: Mutex::new(Some(Pooled {
                session,
                key: handle,
            })),
            workers: Workers::new(opts.max_sessions),
            timeout: opts.timeout,
            uri: codeseal_signer::redact_uri(&canonical.to_string()),
        };
        let key = Self {
            inner: Arc::new(inner),
        };
        tracing::debug!(key = %key.inner.uri, kind = %kind, "PKCS#11 key opened");
        if opts.self_test {
            key.self_test()?;
        }
        Ok(key)
    }

    fn self_test(&self) -> Result<(), Pkcs11Error> {
        let alg = self.inner.kind.with_digest(DigestAlgorithm::Sha256);
        let digest = DigestAlgorithm::Sha256.digest(b"codeseal pkcs11 self-test");
        let sig = self.sign_inner(alg, &digest)?;
        verify_prehash(&self.inner.public, alg.digest, &digest, &sig).map_err(|_| {
            Pkcs11Error::PublicKeyMismatch {
                key: self.inner.uri.clone(),
            }
        })
    }

    /// The module (shared library) path, as given.
    pub fn module_path(&self) -> &std::path::Path {
        &self.inner.module.path
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.inner.token_label
    }

    /// The token's serial number.
    pub fn token_serial(&self) -> &str {
        &self.inner.token_serial
    }

    /// The key's CKA_LABEL, if it has one.
    pub fn key_label(&self) -> Option<&str> {
        self.inner.attrs.label.as_deref()
    }

    /// The key's CKA_ID (may be empty).
    pub fn key_id(&self) -> &[u8] {
        &self.inner.attrs.id
    }

    /// A URI naming this key: `pkcs11:token=...;object=...;id=...` (no module, no PIN).
    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// The certificate stored on the token with the key (same CKA_ID, else same label) whose
    /// public key is the key's, if there is one. Certificates normally come from a file
    /// (CloudHSM stores few and reads them slowly); this is for tokens that carry them.
    pub fn certificate_from_token(&self) -> Result<Option<Certificate>, Pkcs11Error> {
        let certs = self.run(|inner, slot, deadline, state| {
            inner.with_retries(slot, deadline, state, |session, _| {
                objects::certificates(session, &inner.attrs, &inner.token_label)
            })
        })?;
        let n = certs.len();
        let found = certs
            .into_iter()
            .find(|c| c.tbs_certificate.subject_public_key_info == self.inner.public);
        if found.is_none() && n > 0 {
            tracing::warn!(key = %self.inner.uri, count = n, "certificates with the key's id/label are on the token, but none has the key's public key");
        }
        Ok(found)
    }

    /// Runs `f` on one of the key's worker threads, with that worker's session slot, and
    /// waits for it until the key's time limit.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(
                &Inner,
                &mut Option<Pooled>,
                Option<Instant>,
                &AtomicU8,
            ) -> Result<T, Pkcs11Error>
            + Send
            + 'static,
    ) -> Result<T, Pkcs11Error> {
        let limit = self.inner.timeout;
        let deadline = limit.map(|t| Instant::now() + t);
        let inner = Arc::clone(&self.inner);
        let job =
            move |slot: &mut Option<Pooled>, state: &AtomicU8| f(&inner, slot, deadline, state);
        match self.inner.workers.run(deadline, job) {
            Ok(r) => r,
            Err(Wait::Running) => {
                tracing::error!(key = %self.inner.uri, timeout = ?limit, "PKCS#11 call timed out; its session is quarantined");
                Err(Pkcs11Error::Timeout {
                    key: self.inner.uri.clone(),
                    after: limit.unwrap_or_default(),
                })
            }
            Err(Wait::Queued { workers }) => Err(Pkcs11Error::Busy {
                key: self.inner.uri.clone(),
                after: limit.unwrap_or_default(),
                in_use: workers,
            }),
            Err(Wait::Died) => Err(Pkcs11Error::Worker(
                "the worker thread died during the call".into(),
            )),
        }
    }

    /// Signs `data` with `mechanism` on a worker thread.
    fn sign_raw(&self, mechanism: SignMechanism, data: Vec<u8>) -> Result<Vec<u8>, Pkcs11Error> {
        self.run(move |inner, slot, deadline, state| {
            inner.sign_with_retries(slot, mechanism, &data, deadline, state)
        })
    }

    fn sign_inner(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, Pkcs11Error> {
        match self.inner.kind {
            KeyKind::Rsa { bits } => {
                let data = encoding::digest_info(algorithm.digest, digest);
                let mut sig = self.sign_raw(SignMechanism::RsaPkcs, data)?;
                let k = (bits as usize).div_ceil(8);
                if sig.len() > k {
                    return Err(Pkcs11Error::Malformed {
                        what: "RSA signature",
                        reason: format!("{} bytes for a {k}-byte modulus", sig.len()),
                    });
                }
                if sig.len() < k {
                    let mut padded = vec![0u8; k - sig.len()];
                    padded.append(&mut sig);
                    sig = padded;
                }
                Ok(sig)
            }
            kind => {
                // ECDSA uses the leftmost field-size bytes of a longer digest (SEC1 4.1.3);
                // truncating here keeps tokens that reject long inputs happy.
                let fl = encoding::ec_field_len(kind).unwrap_or(digest.len());
                let data = digest[..digest.len().min(fl)].to_vec();
                let raw = self.sign_raw(SignMechanism::Ecdsa, data)?;
                encoding::ecdsa_raw_to_der(kind, &raw)
            }
        }
    }
}

fn module_path(uri: &Pkcs11Uri, opts: &Pkcs11Options) -> Result<PathBuf, Pkcs11Error> {
    if let Some(p) = uri.module_path.clone().or_else(|| opts.module.clone()) {
        return Ok(p);
    }
    match std::env::var_os(MODULE_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(Pkcs11Error::NoModule {
            hint: match &uri.module_name {
                Some(n) => format!(" (module-name={n} is not resolved to a path; use module-path)"),
                None => String::new(),
            },
        }),
    }
}

/// What we need of a token.
pub(crate) struct TokenFacts {
    pub(crate) label: String,
    pub(crate) serial: String,
    pub(crate) manufacturer: String,
    pub(crate) model: String,
    pub(crate) login_required: bool,
    pub(crate) pin_locked: bool,
    pub(crate) pin_final_try: bool,
}

pub(crate) fn token_facts(module: &Module, slot: Slot) -> Result<TokenFacts, Pkcs11Error> {
    let t = module
        .ctx
        .get_token_info(slot)
        .map_err(|e| Pkcs11Error::call("C_GetTokenInfo", "", e))?;
    Ok(TokenFacts {
        label: t.label().to_string(),
        serial: t.serial_number().to_string(),
        manufacturer: t.manufacturer_id().to_string(),
        model: t.model().to_string(),
        login_required: t.login_required(),
        pin_locked: t.user_pin_locked(),
        pin_final_try: t.user_pin_final_try(),
    })
}

pub(crate) fn describe_token(slot: Slot, t: &TokenFacts) -> String {
    format!("{:?} (serial {}, slot {})", t.label, t.serial, slot.id())
}

/// The one token that matches the URI's token, slot and library attributes.
pub(crate) fn select_token(
    module: &Module,
    uri: &Pkcs11Uri,
) -> Result<(Slot, TokenFacts), Pkcs11Error> {
    let selector = uri.token_selector();
    let not_found = |available: Vec<String>| Pkcs11Error::TokenNotFound {
        selector: selector.clone(),
        module: module.path.clone(),
        available,
    };
    if uri.library_manufacturer.is_some()
        || uri.library_description.is_some()
        || uri.library_version.is_some()
    {
        let info = module
            .ctx
            .get_library_info()
            .map_err(|e| Pkcs11Error::call("C_GetInfo", "", e))?;
        let version = info.library_version();
        let version_ok = uri.library_version.as_deref().is_none_or(|v| {
            let mut parts = v.split('.');
            let major = parts.next().and_then(|m| m.parse::<u8>().ok());
            let minor = parts.next().map(|m| m.parse::<u8>().ok());
            major == Some(version.major()) && minor.is_none_or(|m| m == Some(version.minor()))
        });
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if !(version_ok
            && eq(&uri.library_manufacturer, info.manufacturer_id())
            && eq(&uri.library_description, info.library_description()))
        {
            return Err(Pkcs11Error::TokenNotFound {
                selector: format!(
                    "the library attributes of the URI (module is {:?} {:?} {})",
                    info.manufacturer_id(),
                    info.library_description(),
                    version
                ),
                module: module.path.clone(),
                available: vec![],
            });
        }
    }
    let slots = module
        .ctx
        .get_slots_with_initialized_token()
        .map_err(|e| Pkcs11Error::call("C_GetSlotList", "", e))?;
    let mut available = vec![];
    let mut matches = vec![];
    for slot in slots {
        let t = match token_facts(module, slot) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(slot = slot.id(), error = %e, "skipping a slot whose token cannot be read");
                continue;
            }
        };
        available.push(describe_token(slot, &t));
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let mut ok = eq(&uri.token, &t.label)
            && eq(&uri.serial, &t.serial)
            && eq(&uri.manufacturer, &t.manufacturer)
            && eq(&uri.model, &t.model)
            && uri.slot_id.is_none_or(|s| s == slot.id());
        if ok && (uri.slot_description.is_some() || uri.slot_manufacturer.is_some()) {
            ok = match module.ctx.get_slot_info(slot) {
                Ok(si) => {
                    eq(&uri.slot_description, si.slot_description())
                        && eq(&uri.slot_manufacturer, si.manufacturer_id())
                }
                Err(_) => false,
            };
        }
        if ok {
            matches.push((slot, t));
        }
    }
    match matches.len() {
        0 => Err(not_found(available)),
        1 => Ok(matches.remove(0)),
        _ => Err(Pkcs11Error::AmbiguousToken {
            selector,
            module: module.path.clone(),
            available: matches.iter().map(|(s, t)| describe_token(*s, t)).collect(),
        }),
    }
}

/// What to tell a user whose key was not found: the keys that are there, and the id
/// spelling trap.
fn not_found_hint(session: &Session, uri: &Pkcs11Uri, logged_in: bool, token: &str) -> String {
    let mut hint = String::new();
    if !logged_in {
        hint.push_str(" (no PIN was given, so private keys are not visible)");
    }
    if let Some(id) = &uri.id {
        if id.len() > 1 && id.iter().all(u8::is_ascii_hexdigit) {
            let shown = String::from_utf8_lossy(id);
            hint.push_str(&format!(
                "; note: id={shown} means the bytes {shown:?}: for the id pkcs11-tool shows as {shown} write id={}",
                shown
                    .as_bytes()
                    .chunks(2)
                    .map(|c| format!("%{}", String::from_utf8_lossy(c)))
                    .collect::<String>()
            ));
        }
    }
    let all = objects::template(ObjectClass::PRIVATE_KEY, None, None);
    if let Ok(handles) = objects::find(session, &all, token) {
        let mut keys: Vec<String> = handles
            .iter()
            .take(20)
            .filter_map(|h| objects::key_attrs(session, *h, token).ok())
            .map(|a| key_selector(a.label.as_deref(), (!a.id.is_empty()).then_some(&a.id[..])))
            .collect();
        if handles.len() > keys.len() {
            keys.push("...".into());
        }
        if !keys.is_empty() {
            hint.push_str(&format!("; private keys on the token: {}", keys.join("; ")));
        } else if logged_in {
            hint.push_str("; the token holds no private key");
        }
    }
    hint
}

impl Inner {
    /// A session for a worker that has none: the one `open` used, else a new one, logged
    /// in, with the key found in it.
    fn new_pooled(&self) -> Result<Pooled, Pkcs11Error> {
        if let Some(p) = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Ok(p);
        }
        let session = self.module.open_session(self.slot, &self.token_label)?;
        if let Some(pin) = &self.pin {
            if self.pin_rejected.load(Ordering::Acquire) {
                return Err(Pkcs11Error::PinRejectedEarlier {
                    token: self.token_label.clone(),
                });
            }
            if let Err(e) = self.module.ensure_login(&session, pin, &self.token_label) {
                if matches!(
                    e,
                    Pkcs11Error::WrongPin { .. } | Pkcs11Error::PinLocked { .. }
                ) {
                    self.pin_rejected.store(true, Ordering::Release);
                }
                return Err(e);
            }
        }
        let template = objects::template(
            ObjectClass::PRIVATE_KEY,
            self.find_label.as_deref(),
            self.find_id.as_deref(),
        );
        let found = objects::find(&session, &template, &self.token_label)?;
        match found.as_slice() {
            [h] => Ok(Pooled { session, key: *h }),
            [] => Err(Pkcs11Error::KeyNotFound {
                token: self.token_label.clone(),
                selector: key_selector(self.find_label.as_deref(), self.find_id.as_deref()),
                hint: " (it was there when the key was opened)".into(),
            }),
            many => Err(Pkcs11Error::AmbiguousKey {
                token: self.token_label.clone(),
                selector: key_selector(self.find_label.as_deref(), self.find_id.as_deref()),
                count: many.len(),
            }),
        }
    }

    /// Runs `f` on the worker's session (a new one if it has none). The session stays with
    /// the worker unless a PKCS#11 call failed or the caller gave up waiting (`state`):
    /// then it is closed, never reused.
    fn attempt<T>(
        &self,
        slot: &mut Option<Pooled>,
        state: &AtomicU8,
        f: &mut impl FnMut(&Session, ObjectHandle) -> Result<T, Pkcs11Error>,
    ) -> Result<T, Pkcs11Error> {
        let pooled = match slot.take() {
            Some(p) => p,
            None => self.new_pooled()?,
        };
        let result = f(&pooled.session, pooled.key);
        let keep = match &result {
            Ok(_) => state
                .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            Err(e) => {
                !matches!(e, Pkcs11Error::Call { .. }) && state.load(Ordering::Acquire) == RUNNING
            }
        };
        if keep {
            *slot = Some(pooled);
        } else {
            drop(pooled);
        }
        result
    }

    /// [`attempt`](Self::attempt) with the retry policy: one retry on a new session after
    /// a lost session or login, up to three retries with back-off after a transient error,
    /// none otherwise (never after a PIN error), and none once `deadline` is near or the
    /// caller gave up.
    fn with_retries<T>(
        &self,
        slot: &mut Option<Pooled>,
        deadline: Option<Instant>,
        state: &AtomicU8,
        mut f: impl FnMut(&Session, ObjectHandle) -> Result<T, Pkcs11Error>,
    ) -> Result<T, Pkcs11Error> {
        let mut session_retried = false;
        let mut transient = 0;
        loop {
            let err = match self.attempt(slot, state, &mut f) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if state.load(Ordering::Acquire) == ABANDONED {
                return Err(err);
            }
            let wait = match classify(&err) {
                Class::SessionLost if !session_retried => {
                    session_retried = true;
                    Duration::ZERO
                }
                Class::Transient if transient < TRANSIENT_BACKOFF.len() => {
                    transient += 1;
                    TRANSIENT_BACKOFF[transient - 1]
                }
                _ => return Err(err),
            };
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                return Err(err);
            }
            tracing::warn!(key = %self.uri, error = %err, retry_in = ?wait, "PKCS#11 call failed; retrying");
            self.module.count_retry();
            std::thread::sleep(wait);
        }
    }

    fn sign_with_retries(
        &self,
        slot: &mut Option<Pooled>,
        mechanism: SignMechanism,
        data: &[u8],
        deadline: Option<Instant>,
        state: &AtomicU8,
    ) -> Result<Vec<u8>, Pkcs11Error> {
        let mechanism = match mechanism {
            SignMechanism::RsaPkcs => Mechanism::RsaPkcs,
            SignMechanism::Ecdsa => Mechanism::Ecdsa,
        };
        let sig = self.with_retries(slot, deadline, state, |session, key| {
            session
                .sign(&mechanism, key, data)
                .map_err(|e| Pkcs11Error::call("C_Sign", &self.token_label, e))
        })?;
        self.module.count_signature();
        Ok(sig)
    }
}

impl KeySigner for Pkcs11Key {
    fn key_kind(&self) -> KeyKind {
        self.inner.kind
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.inner.public
    }

    fn describe(&self) -> String {
        self.inner.uri.clone()
    }

    fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        if !self.supports(algorithm) {
            return Err(SignError::UnsupportedAlgorithm {
                key: self.inner.kind,
                requested: algorithm,
            });
        }
        if digest.len() != algorithm.digest.output_len() {
            return Err(SignError::DigestLength {
                algorithm: algorithm.digest,
                expected: algorithm.digest.output_len(),
                actual: digest.len(),
            });
        }
        Ok(self.sign_inner(algorithm, digest)?)
    }

    /// PKCS#11 calls block: the async form waits on its own thread, never on the executor.
    fn sign_digest_async<'a>(
        &'a self,
        algorithm: SignatureAlgorithm,
        digest: &'a [u8],
    ) -> codeseal_signer::BoxFuture<'a, Result<Vec<u8>, SignError>> {
        let key = self.clone();
        let digest = digest.to_vec();
        codeseal_signer::run_blocking("pkcs11", move || key.sign_digest(algorithm, &digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classes() {
        use cryptoki::{context::Function, error::Error};
        let call = |rv| Pkcs11Error::call("C_Sign", "t", Error::Pkcs11(rv, Function::Sign));
        assert_eq!(
            classify(&call(RvError::SessionHandleInvalid)),
            Class::SessionLost
        );
        assert_eq!(
            classify(&call(RvError::UserNotLoggedIn)),
            Class::SessionLost
        );
        assert_eq!(
            classify(&call(RvError::ObjectHandleInvalid)),
            Class::SessionLost
        );
        assert_eq!(classify(&call(RvError::SessionClosed)), Class::SessionLost);
        assert_eq!(classify(&call(RvError::DeviceError)), Class::Transient);
        assert_eq!(classify(&call(RvError::FunctionFailed)), Class::Transient);
        assert_eq!(classify(&call(RvError::DeviceMemory)), Class::Transient);
        assert_eq!(classify(&call(RvError::PinIncorrect)), Class::Fatal);
        assert_eq!(classify(&call(RvError::PinLocked)), Class::Fatal);
        assert_eq!(classify(&call(RvError::DataLenRange)), Class::Fatal);
        assert_eq!(
            classify(&Pkcs11Error::WrongPin { token: "t".into() }),
            Class::Fatal
        );
    }
}
