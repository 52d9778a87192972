//! PIN and login behaviour against SoftHSM2, in its own process: login state is per token
//! and process in PKCS#11, so these steps run in order in one test, with no other test
//! holding a logged-in session.
mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use codeseal_pkcs11::{module_stats, open_uri, open_uri_with, Pkcs11Error, Pkcs11Options};
use codeseal_signer::{verify_prehash, DigestAlgorithm, KeySigner};
use common::{hsm, TOKEN};
use secrecy::SecretString;

const SENTINEL: &str = "S3ntinel-PIN-4711-zq";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// Display, Debug and the whole source chain of an error.
fn everything_about(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = format!("{e} {e:?}");
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(" | {inner} {inner:?}"));
        src = inner.source();
    }
    s
}

fn logins(h: &common::Hsm) -> u64 {
    module_stats(&h.module).map_or(0, |s| s.login_attempts)
}

#[test]
fn pin_handling_login_and_relogin() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("subscriber");
    let h = hsm();
    let dir = tempfile::tempdir().expect("tmp");
    let wrong = dir.path().join("wrong-pin");
    std::fs::write(&wrong, format!("{SENTINEL}\n")).expect("write");

    // 1. A wrong PIN: one C_Login, a clear error, no secret anywhere.
    let uri = h.uri("object=rsa2048").replace(
        &h.pin_file.display().to_string(),
        &wrong.display().to_string(),
    );
    let before = logins(h);
    let e = open_uri(&uri).expect_err("wrong PIN");
    assert!(
        matches!(&e, Pkcs11Error::WrongPin { token } if token == TOKEN),
        "{e:?}"
    );
    assert_eq!(logins(h) - before, 1, "exactly one login attempt");
    assert!(e.to_string().contains("USER:PASSWORD"), "{e}");
    let all = everything_about(&e);
    assert!(!all.contains(SENTINEL), "{all}");
    let sign_error: codeseal_signer::SignError = e.into();
    assert!(!everything_about(&sign_error).contains(SENTINEL));

    // The same through the options, and the options' Debug.
    let opts = Pkcs11Options {
        pin: Some(SecretString::from(SENTINEL)),
        ..Default::default()
    };
    assert!(!format!("{opts:?}").contains(SENTINEL));
    let before = logins(h);
    let e = open_uri_with(&h.uri("object=p256"), &opts).expect_err("wrong PIN");
    assert!(matches!(e, Pkcs11Error::WrongPin { .. }), "{e:?}");
    assert_eq!(logins(h) - before, 1, "exactly one login attempt");
    assert!(!everything_about(&e).contains(SENTINEL));

    // pin-value: refused by default (the PIN is not in the message), and a wrong one when
    // allowed is one attempt too.
    let with_value = h
        .uri("object=rsa2048")
        .replace("pin-source", &format!("pin-value={SENTINEL}&x-was"));
    let e = open_uri(&with_value).expect_err("refused");
    assert!(matches!(e, Pkcs11Error::PinValueRefused), "{e:?}");
    assert!(!everything_about(&e).contains(SENTINEL));
    let parsed = codeseal_pkcs11::Pkcs11Uri::parse(&with_value).expect("parse");
    assert!(!format!("{parsed} {parsed:?}").contains(SENTINEL));

    // No PIN at all: the token needs one.
    let e = open_uri(&h.uri_without_pin("object=rsa2048")).expect_err("no PIN");
    assert!(matches!(e, Pkcs11Error::PinRequired { .. }), "{e:?}");

    // 2. No lockout: the right PIN still works.
    let before = logins(h);
    let key = open_uri(&h.uri("object=rsa2048")).expect("right PIN");
    assert_eq!(logins(h) - before, 1);
    let alg = key.key_kind().with_digest(DigestAlgorithm::Sha256);
    let digest = DigestAlgorithm::Sha256.digest(b"after a wrong PIN");
    let sig = key.sign_digest(alg, &digest).expect("sign");
    verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &digest, &sig).expect("verify");
    let shown = format!("{key:?} {}", key.describe());
    assert!(
        !shown.contains(common::PIN) && !shown.contains(SENTINEL),
        "{shown}"
    );
    assert!(
        shown.contains("rsa2048") && shown.contains(TOKEN),
        "{shown}"
    );

    // pin-value, when allowed, works; the key is on the same (logged-in) token: no login.
    let opts = Pkcs11Options {
        allow_pin_value: true,
        ..Default::default()
    };
    let allowed = h
        .uri("object=p256")
        .replace("pin-source", &format!("pin-value={}&x-was", common::PIN));
    let p256 = open_uri_with(&allowed, &opts).expect("pin-value allowed");
    assert!(!format!("{p256:?}").contains(common::PIN));

    // 3. Session loss: another part of the process logs the token out. The next signature
    // gets CKR_USER_NOT_LOGGED_IN, opens a new session, logs in again and succeeds.
    logout_everything(h);
    let before = module_stats(&h.module).expect("stats");
    let digest = DigestAlgorithm::Sha256.digest(b"after logout");
    let sig = key.sign_digest(alg, &digest).expect("sign after logout");
    verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &digest, &sig).expect("verify");
    let after = module_stats(&h.module).expect("stats");
    assert_eq!(after.login_attempts - before.login_attempts, 1, "{after:?}");
    assert_eq!(after.retries - before.retries, 1, "{after:?}");

    // Concurrent signatures after a logout all recover.
    logout_everything(h);
    let key = Arc::new(key);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let key = Arc::clone(&key);
            std::thread::spawn(move || {
                let d = DigestAlgorithm::Sha256.digest(format!("{i}").as_bytes());
                let s = key.sign_digest(alg, &d).expect("sign");
                verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &d, &s).expect("verify");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }

    let text = logs.text();
    assert!(text.contains("logged in"), "the log capture works: {text}");
    assert!(!text.contains(SENTINEL), "{text}");
    assert!(!text.contains(&format!("={}", common::PIN)), "{text}");
}

/// Logs the token out through a second handle on the same (already initialized) module, as
/// another library in the process might.
fn logout_everything(h: &common::Hsm) {
    use cryptoki::context::Pkcs11;
    let ctx = Pkcs11::new(&h.module).expect("load");
    let slot = ctx
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|t| t.label() == TOKEN)
                .unwrap_or(false)
        })
        .expect("token");
    let session = ctx.open_rw_session(slot).expect("session");
    session.logout().expect("logout");
    // Not logged in as anyone now; make sure.
    assert!(matches!(
        session.get_session_info().expect("info").session_state(),
        cryptoki::session::SessionState::RwPublic
    ));
}
