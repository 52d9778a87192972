//! `codeseal catalog create`, `sign X.cat`, `verify X.cat` and `verify --catalog X.cat FILE`
//! end to end: the created catalog is accepted by osslsigncode 2.9; members verify, a changed
//! member and a catalog with a flipped byte do not.
mod common;

use common::*;

#[test]
fn catalog_create_sign_verify_members() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    std::fs::copy(env.join("fixtures/pe32.exe"), p("app.exe")).expect("copy");
    std::fs::write(p("run.ps1"), "Write-Output 'catalog'\r\n").expect("write");
    std::fs::write(p("notes.txt"), "hello\n").expect("write");

    // create, signed
    let cat = p("signed.cat");
    let o = codeseal(&[
        "catalog",
        "create",
        "-o",
        s(&cat),
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&p("app.exe")),
        s(&p("run.ps1")),
        s(&p("notes.txt")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ok(&cat, &root_pem);
    assert!(ok, "osslsigncode: {t}");
    let o = codeseal(&["verify", "--trust", s(&root_pem), s(&cat)]);
    assert!(o.status.success(), "{}", text(&o));
    for m in ["app.exe", "run.ps1", "notes.txt"] {
        let o = codeseal(&[
            "verify",
            "--trust",
            s(&root_pem),
            "--catalog",
            s(&cat),
            s(&p(m)),
        ]);
        assert!(o.status.success(), "{m}: {}", text(&o));
        assert!(text(&o).contains(&format!("= {m}")), "{}", text(&o));
    }
    // A changed member fails.
    std::fs::write(p("notes.txt"), "hellO\n").expect("write");
    let o = codeseal(&["verify", "--catalog", s(&cat), s(&p("notes.txt"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("NOT in the catalog"), "{}", text(&o));
    // A catalog with a flipped byte (in the middle of the CTL) fails.
    let mut bytes = std::fs::read(&cat).expect("read");
    let i = bytes.len() / 4;
    bytes[i] ^= 0x01;
    let bad = p("bad.cat");
    std::fs::write(&bad, &bytes).expect("write");
    let o = codeseal(&["verify", s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // create unsigned, then `sign X.cat`; signing again needs --replace.
    let unsigned = p("unsigned.cat");
    let o = codeseal(&["catalog", "create", "-o", s(&unsigned), s(&p("app.exe"))]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["verify", s(&unsigned)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = codeseal(&["sign", "--key", &key, "--cert", s(&chain), s(&unsigned)]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ok(&unsigned, &root_pem);
    assert!(ok, "osslsigncode: {t}");
    let o = codeseal(&["sign", "--key", &key, "--cert", s(&chain), s(&unsigned)]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = codeseal(&[
        "sign",
        "--replace",
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&unsigned),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&[
        "verify",
        "--trust",
        s(&root_pem),
        "--catalog",
        s(&unsigned),
        s(&p("app.exe")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Every verb of the format-generic pipeline on a catalog: sign, verify (--json), info,
/// extract, remove, attach, timestamp, split signing and a `--recursive` batch; the verbs
/// that do not apply (--append, --page-hashes) give clear errors. Each signed catalog is
/// checked by osslsigncode 2.9.
#[test]
fn every_verb_on_a_catalog() {
    let env = test_env();
    let pki = Pki::new(&env);
    let root_pem = &pki.root_pem;
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    std::fs::copy(env.join("fixtures/pe64.exe"), p("app.exe")).expect("copy");
    std::fs::write(p("notes.txt"), "hello\n").expect("write");
    let o = codeseal(&[
        "catalog",
        "create",
        "-o",
        s(&p("u.cat")),
        "--attr",
        "OSAttr=2:6.1,2:10.0",
        "--attr",
        "HWID1=pci\\ven_1234&dev_5678",
        s(&p("app.exe")),
        s(&p("notes.txt")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let unsigned = std::fs::read(p("u.cat")).expect("read");
    let o = codeseal(&[
        "catalog",
        "create",
        "-o",
        s(&p("x.cat")),
        "--attr",
        "novalue",
        s(&p("notes.txt")),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("NAME=VALUE"),
        "{}",
        text(&o)
    );

    every_verb(
        &Format {
            ext: "cat",
            sign_args: &[],
            kind: "catalog",
            verify_json: &[],
            info: &[
                "catalog (version 2)",
                "Members:         2",
                "Attribute:       OSAttr = 2:6.1,2:10.0",
                "app.exe",
            ],
            info_json: &|v| {
                assert_eq!(v["catalog"]["signers"], 0, "{v}");
                assert_eq!(v["catalog"]["attributes"][1]["name"], "HWID1", "{v}");
                assert_eq!(
                    v["catalog"]["attributes"][1]["value"], "pci\\ven_1234&dev_5678",
                    "{v}"
                );
                assert_eq!(v["catalog"]["members"][1]["file"], "notes.txt", "{v}");
            },
            // a flipped byte in the middle of the CTL.
            accepted: &|file, root_pem| {
                accepted_and_tamper_rejected(codeseal, file, root_pem, |bytes| {
                    let i = bytes.len() / 4;
                    bytes[i] ^= 0x01;
                })
            },
            round_trip: RoundTrip::SameBytes,
            nested: false,
            replace: false,
        },
        &pki,
        &p("u.cat"),
        dir.path(),
    );
    // The detached signature is the whole catalog.
    assert_eq!(
        std::fs::read(p("sig.p7")).expect("read"),
        std::fs::read(p("signed.cat")).expect("read")
    );
    assert_eq!(std::fs::read(p("removed.cat")).expect("read"), unsigned);
    // --catalog still finds members (and prints the attributes).
    let o = codeseal(&[
        "verify",
        "--trust",
        s(root_pem),
        "--catalog",
        s(&p("signed.cat")),
        s(&p("app.exe")),
    ]);
    assert!(
        o.status.success() && text(&o).contains("= app.exe"),
        "{}",
        text(&o)
    );

    // Verbs that do not apply.
    let o = codeseal(&pki.sign_args(&["--append"], &p("signed.cat"), &p("a.cat")));
    assert!(
        !o.status.success() && text(&o).contains("one signature"),
        "{}",
        text(&o)
    );
    let o = codeseal(&pki.sign_args(&["--page-hashes"], &p("u.cat"), &p("ph.cat")));
    assert!(
        !o.status.success() && text(&o).contains("page hashes"),
        "{}",
        text(&o)
    );

    // The time-stamped one (timestamp, in place) passes --require-timestamp.
    let o = codeseal(&[
        "verify",
        "--json",
        "--require-timestamp",
        "--trust",
        s(root_pem),
        "--tsa-trust",
        s(&pki.tsa_root()),
        s(&p("att.cat")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["signatures"][0]["timestamps"][0]["valid"], true, "{v}");
    // The unstamped one fails --require-timestamp.
    let o = codeseal(&[
        "verify",
        "--require-timestamp",
        "--trust",
        s(root_pem),
        s(&p("signed.cat")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // A --recursive batch picks up .cat files beside the others.
    let out = recursive_batch(
        &pki,
        dir.path(),
        |tree| {
            std::fs::create_dir_all(tree.join("drivers")).expect("mkdir");
            std::fs::copy(p("u.cat"), tree.join("drivers/one.cat")).expect("copy");
            std::fs::copy(p("app.exe"), tree.join("app.exe")).expect("copy");
        },
        &["app.exe", "one.cat"],
    );
    let (ok, t) = osslsigncode_ok(&out.join("one.cat"), root_pem);
    assert!(ok, "osslsigncode (batch): {t}");
    let (ok, t) = osslsigncode_ok(&out.join("app.exe"), root_pem);
    assert!(ok, "osslsigncode (batch): {t}");
}
