//! The SoftHSM2 token the integration tests use, made by `scripts/softhsm.sh init` in
//! `target/tmp/softhsm-test` (once; later runs reuse it).
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use codeseal_signer::KeyKind;

pub const TOKEN: &str = "codeseal-test";
pub const PIN: &str = "1234";

/// label, id byte, kind
pub const KEYS: [(&str, u8, KeyKind); 4] = [
    ("rsa2048", 1, KeyKind::Rsa { bits: 2048 }),
    ("rsa4096", 2, KeyKind::Rsa { bits: 4096 }),
    ("p256", 3, KeyKind::EcP256),
    ("p384", 4, KeyKind::EcP384),
];

pub struct Hsm {
    pub dir: PathBuf,
    pub module: PathBuf,
    pub conf: PathBuf,
    pub pin_file: PathBuf,
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The token, created on first use. Panics (fails the test) when SoftHSM2 or OpenSC is
/// missing: these tests are not skipped.
pub fn hsm() -> &'static Hsm {
    static HSM: OnceLock<Hsm> = OnceLock::new();
    HSM.get_or_init(|| {
        for tool in ["softhsm2-util", "pkcs11-tool", "openssl"] {
            assert!(
                have(tool),
                "{tool} is not installed: run scripts/setup.sh (it installs softhsm2, opensc and openssl)"
            );
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("softhsm-test");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/softhsm.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("init")
            .arg(&dir)
            .output()
            .expect("run scripts/softhsm.sh");
        assert!(
            out.status.success(),
            "scripts/softhsm.sh init {} failed (run scripts/setup.sh if softhsm2/opensc are missing):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.join("env")).expect("DIR/env");
        let var = |name: &str| -> PathBuf {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} missing from {}/env", dir.display()))
                .into()
        };
        let conf = var("SOFTHSM2_CONF");
        let module = var("CODESEAL_PKCS11_MODULE");
        // SoftHSM reads its configuration from the environment at C_Initialize. This runs
        // once, before any PKCS#11 call of this process.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        Hsm {
            pin_file: dir.join("pin"),
            dir,
            module,
            conf,
        }
    })
}

impl Hsm {
    /// A URI for the key named by `path_attrs` (e.g. `object=p256`), with the module and
    /// the PIN file of the test token.
    pub fn uri(&self, path_attrs: &str) -> String {
        format!(
            "pkcs11:token={TOKEN};{path_attrs}?module-path={}&pin-source=file:{}",
            self.module.display(),
            self.pin_file.display()
        )
    }

    /// The same URI without a PIN source.
    pub fn uri_without_pin(&self, path_attrs: &str) -> String {
        format!(
            "pkcs11:token={TOKEN};{path_attrs}?module-path={}",
            self.module.display()
        )
    }

    /// pkcs11-tool with this token's module and configuration.
    pub fn pkcs11_tool(&self) -> Command {
        let mut c = Command::new("pkcs11-tool");
        c.env("SOFTHSM2_CONF", &self.conf)
            .env("CODESEAL_TEST_PIN", PIN)
            .arg("--module")
            .arg(&self.module)
            .arg("--token-label")
            .arg(TOKEN);
        c
    }
}
