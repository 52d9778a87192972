//! One loaded and initialized PKCS#11 module per process and library path.
//!
//! `C_Initialize` is called once per module for the life of the process (never per key or per
//! signature), under a global lock so that two threads never initialize in parallel (that
//! crashed SoftHSM, rust-cryptoki#260). Modules are never finalized: they live until the
//! process exits, like the sessions that may still use them.
use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
    session::{Session, SessionState, UserType},
    slot::Slot,
};
use secrecy::SecretString;

use crate::{error::rv_of, Pkcs11Error};

/// Counters of one module, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleStats {
    /// How often C_Initialize was called for this module (1 per process).
    pub initialize_calls: u64,
    /// How often C_Login was called (all tokens of the module).
    pub login_attempts: u64,
    /// How many sessions were opened (all tokens of the module).
    pub sessions_opened: u64,
    /// How many signatures were made.
    pub signatures: u64,
    /// How many retries (after a lost session or a transient error) were made.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    initialize_calls: AtomicU64,
    login_attempts: AtomicU64,
    sessions_opened: AtomicU64,
    signatures: AtomicU64,
    retries: AtomicU64,
}

/// A loaded, initialized module.
pub(crate) struct Module {
    pub(crate) ctx: Pkcs11,
    /// The path as first given.
    pub(crate) path: PathBuf,
    counters: Counters,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

type Registry = Mutex<HashMap<PathBuf, Arc<Module>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The module at `path`, loaded and initialized on first use.
pub(crate) fn module(path: &Path) -> Result<Arc<Module>, Pkcs11Error> {
    let not_module = |reason: String, source: Option<CkError>| Pkcs11Error::NotAModule {
        path: path.to_path_buf(),
        reason,
        source,
    };
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| not_module(format!("cannot open it ({e})"), None))?;
    if !canonical.is_file() {
        return Err(not_module("it is not a file".into(), None));
    }
    let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = reg.get(&canonical) {
        return Ok(Arc::clone(m));
    }
    let ctx = Pkcs11::new(&canonical).map_err(|e| {
        let reason = match &e {
            CkError::LibraryLoading(_) => "it cannot be loaded as a shared library",
            CkError::MissingSymbol(_) => "it has no C_GetFunctionList",
            _ => "its function list cannot be read",
        };
        not_module(reason.into(), Some(e))
    })?;
    let m = Module {
        ctx,
        path: path.to_path_buf(),
        counters: Counters::default(),
    };
    m.counters.initialize_calls.fetch_add(1, Ordering::Relaxed);
    match m
        .ctx
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
    {
        Ok(()) => {}
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
            tracing::warn!(module = %path.display(), "PKCS#11 module was already initialized by another component of this process; sharing it");
        }
        Err(e) => {
            return Err(Pkcs11Error::ModuleInit {
                path: path.to_path_buf(),
                rv: crate::error::ck_name(&e),
                source: e,
            })
        }
    }
    tracing::debug!(module = %path.display(), "PKCS#11 module initialized");
    let m = Arc::new(m);
    reg.insert(canonical, Arc::clone(&m));
    Ok(m)
}

/// The counters of the module loaded from `path`, if it is loaded.
pub fn module_stats(path: &Path) -> Option<ModuleStats> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
    let c = &reg.get(&canonical)?.counters;
    Some(ModuleStats {
        initialize_calls: c.initialize_calls.load(Ordering::Relaxed),
        login_attempts: c.login_attempts.load(Ordering::Relaxed),
        sessions_opened: c.sessions_opened.load(Ordering::Relaxed),
        signatures: c.signatures.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
    })
}

impl Module {
    /// Opens a session on `slot`: read/write first (CloudHSM SDK 5 has no read-only
    /// sessions), read-only if the token is write-protected.
    pub(crate) fn open_session(&self, slot: Slot, token: &str) -> Result<Session, Pkcs11Error> {
        self.counters
            .sessions_opened
            .fetch_add(1, Ordering::Relaxed);
        match self.ctx.open_rw_session(slot) {
            Ok(s) => Ok(s),
            Err(e) if rv_of(&e) == Some(RvError::TokenWriteProtected) => self
                .ctx
                .open_ro_session(slot)
                .map_err(|e| Pkcs11Error::call("C_OpenSession", token, e)),
            Err(e) => Err(Pkcs11Error::call("C_OpenSession", token, e)),
        }
    }

    /// Makes sure the user is logged in to the token of `session`.
    ///
    /// Login state is per token and application in PKCS#11: when another session of this
    /// process is logged in, nothing is done (and the PIN is not sent). Otherwise exactly
    /// one C_Login is made; CKR_USER_ALREADY_LOGGED_IN (a race with another thread) counts
    /// as success. A wrong or locked PIN is reported, never retried here.
    pub(crate) fn ensure_login(
        &self,
        session: &Session,
        pin: &SecretString,
        token: &str,
    ) -> Result<(), Pkcs11Error> {
        match session.get_session_info() {
            Ok(info)
                if matches!(
                    info.session_state(),
                    SessionState::RoUser | SessionState::RwUser
                ) =>
            {
                return Ok(())
            }
            Ok(_) => {}
            Err(e) => return Err(Pkcs11Error::call("C_GetSessionInfo", token, e)),
        }
        self.counters.login_attempts.fetch_add(1, Ordering::Relaxed);
        match session.login(UserType::User, Some(pin)) {
            Ok(()) => {
                tracing::debug!(token, "logged in to PKCS#11 token");
                Ok(())
            }
            Err(e) => match rv_of(&e) {
                Some(RvError::UserAlreadyLoggedIn) => Ok(()),
                Some(RvError::PinIncorrect) => Err(Pkcs11Error::WrongPin {
                    token: token.to_string(),
                }),
                Some(RvError::PinLocked) => Err(Pkcs11Error::PinLocked {
                    token: token.to_string(),
                }),
                _ => Err(Pkcs11Error::call("C_Login", token, e)),
            },
        }
    }

    pub(crate) fn count_signature(&self) {
        self.counters.signatures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_retry(&self) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
    }
}
