//! The script module against osslsigncode: scripts signed by osslsigncode are read by
//! `codeseal_authenticode::script`, and the digest in their SpcIndirectDataContent must equal
//! the module's digest of the unsigned text; the module's own block writing must reproduce
//! osslsigncode's file byte for byte.
mod common;

use std::{fs, path::Path};

use codeseal_authenticode::{
    pkcs7::parse_content_info,
    script::{Encoding, Script, ScriptKind},
    spc::{SpcIndirectDataContent, SPC_INDIRECT_DATA},
};
use common::*;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::Sha256;

const SPC_SIPINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.30");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

fn encode(text: &str, enc: &str) -> Vec<u8> {
    match enc {
        "utf8" => text.as_bytes().to_vec(),
        "utf8-bom" => [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat(),
        "utf16le" => {
            let mut v = vec![0xff, 0xfe];
            text.encode_utf16()
                .for_each(|c| v.extend_from_slice(&c.to_le_bytes()));
            v
        }
        _ => unreachable!("{enc}"),
    }
}

fn expected_encoding(enc: &str) -> Encoding {
    match enc {
        "utf8" => Encoding::Utf8 { bom: false },
        "utf8-bom" => Encoding::Utf8 { bom: true },
        _ => Encoding::Utf16Le,
    }
}

/// The PKCS#7 in an osslsigncode-signed script: checks its SpcIndirectDataContent against
/// the module (SIP info, SHA-256 digest of the unsigned text) and returns the DER.
fn check_signed(kind: ScriptKind, unsigned: &[u8], signed: &[u8], what: &str) -> Vec<u8> {
    let script = Script::parse(kind, signed).unwrap_or_else(|e| panic!("{what}: {e}"));
    let block = script
        .signature()
        .unwrap_or_else(|| panic!("{what}: no signature block found"));
    assert_eq!(script.unsigned_bytes(), unsigned, "{what}: unsigned bytes");
    let ci = parse_content_info(&block.pkcs7).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(ci.content_info.raw.len(), block.pkcs7.len(), "{what}");
    let sd = &ci.signed_data;
    assert_eq!(sd.content_type, SPC_INDIRECT_DATA, "{what}");
    let content = sd.content.as_ref().expect("eContent");
    let idc =
        SpcIndirectDataContent::from_der(content.raw).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(idc.data.value_type, SPC_SIPINFO, "{what}");
    let sip = idc
        .data
        .value
        .as_ref()
        .expect("SpcSipInfo")
        .to_der()
        .expect("der");
    assert_eq!(sip, kind.sip_info_der(), "{what}: SpcSipInfo");
    assert_eq!(
        idc.message_digest.digest_algorithm.oid, SHA256,
        "{what}: digest algorithm"
    );
    let ours = script.digest::<Sha256>().expect("digest");
    assert_eq!(
        idc.message_digest.digest.as_bytes(),
        ours.as_slice(),
        "{what}: osslsigncode's digest differs from the module's"
    );
    // The unsigned file's digest is the same (the block is not hashed).
    let plain = Script::parse(kind, unsigned).expect("unsigned parses");
    assert!(plain.signature().is_none(), "{what}");
    assert_eq!(plain.digest::<Sha256>().expect("digest"), ours, "{what}");
    // Our writer puts the same block in the same place, byte for byte.
    assert_eq!(
        plain.signed_bytes(&block.pkcs7).expect("signed_bytes"),
        signed,
        "{what}: block writing differs from osslsigncode's"
    );
    block.pkcs7.clone()
}

fn texts() -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for (nl, nl_name) in [("\r\n", "crlf"), ("\n", "lf")] {
        let ascii = format!("param([string]$Name = 'x'){nl}Write-Host \"Hello $Name\"{nl}");
        v.push((nl_name, ascii.clone()));
        let non_ascii = format!(
            "# Gr\u{fc}\u{df}e \u{2014} \u{65e5}\u{672c} \u{1f600}{nl}$s = 'caf\u{e9} \u{20ac}5'{nl}Write-Output $s"
        );
        v.push((nl_name, non_ascii));
    }
    v
}

#[test]
fn osslsigncode_powershell_digests_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for ext in ["ps1", "psm1", "psd1"] {
        for (nl, text) in texts() {
            for enc in ["utf8", "utf8-bom", "utf16le"] {
                let what = format!("{ext} {enc} {nl} {:?}", text.get(..12));
                let a = dir.path().join(format!("a{n}.{ext}"));
                let b = dir.path().join(format!("b{n}.{ext}"));
                n += 1;
                let bytes = encode(&text, enc);
                fs::write(&a, &bytes).expect("write");
                osslsigncode_sign(&a, &b, "leaf-rsa2048", "sha256");
                let signed = fs::read(&b).expect("read");
                let kind = ScriptKind::from_path(&b).expect("kind");
                assert_eq!(
                    Script::parse(kind, &signed).expect("parse").encoding(),
                    expected_encoding(enc),
                    "{what}"
                );
                check_signed(kind, &bytes, &signed, &what);
            }
        }
    }
    assert_eq!(n, 3 * 4 * 3);
}

#[test]
fn osslsigncode_mof_and_xml_digests_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mof = "#pragma namespace(\"\\\\\\\\.\\\\root\\\\cimv2\")\r\nclass Demo\r\n{\r\n  [key] string Name;\r\n};\r\n";
    let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Types>\r\n  <Type><Name>System.String</Name></Type>\r\n</Types>\r\n";
    let mut n = 0;
    for (ext, text) in [("mof", mof), ("ps1xml", xml), ("psc1", xml), ("cdxml", xml)] {
        for enc in ["utf8", "utf8-bom", "utf16le"] {
            for text in [text.to_owned(), text.replace("\r\n", "\n")] {
                let what = format!("{ext} {enc} lf={}", !text.contains('\r'));
                let a = dir.path().join(format!("a{n}.{ext}"));
                let b = dir.path().join(format!("b{n}.{ext}"));
                n += 1;
                let bytes = encode(&text, enc);
                fs::write(&a, &bytes).expect("write");
                osslsigncode_sign(&a, &b, "leaf-p256", "sha256");
                let signed = fs::read(&b).expect("read");
                check_signed(
                    ScriptKind::from_path(&b).expect("kind"),
                    &bytes,
                    &signed,
                    &what,
                );
            }
        }
    }
    // Non-ASCII MOF, BOM-less UTF-8 (MOF reads BOM-less text as UTF-8 when it is valid).
    let a = dir.path().join("na.mof");
    let b = dir.path().join("nb.mof");
    let text = "// caf\u{e9} \u{65e5}\u{672c}\r\nclass X { string N; };\r\n";
    fs::write(&a, text).expect("write");
    osslsigncode_sign(&a, &b, "leaf-rsa2048", "sha256");
    check_signed(
        ScriptKind::Mof,
        text.as_bytes(),
        &fs::read(&b).expect("read"),
        "mof non-ascii",
    );
    assert_eq!(n, 4 * 3 * 2);
}

/// Replacing osslsigncode's block with another PKCS#7 gives exactly the file osslsigncode
/// writes with that PKCS#7, and osslsigncode verifies it.
#[test]
fn replacing_a_block_matches_osslsigncode() {
    let dir = tempfile::tempdir().expect("tempdir");
    for enc in ["utf8", "utf8-bom", "utf16le"] {
        let text = "Write-Host 'one'\r\nWrite-Host 'two \u{e9}'\r\n";
        let a = dir.path().join(format!("a-{enc}.ps1"));
        let b1 = dir.path().join(format!("b1-{enc}.ps1"));
        let b2 = dir.path().join(format!("b2-{enc}.ps1"));
        let bytes = encode(text, enc);
        fs::write(&a, &bytes).expect("write");
        osslsigncode_sign(&a, &b1, "leaf-rsa2048", "sha256");
        osslsigncode_sign(&a, &b2, "leaf-p256", "sha256");
        let s1 = fs::read(&b1).expect("read");
        let s2 = fs::read(&b2).expect("read");
        let what = format!("replace {enc}");
        check_signed(ScriptKind::PowerShell, &bytes, &s1, &what);
        let p7_2 = check_signed(ScriptKind::PowerShell, &bytes, &s2, &what);
        let replaced = Script::parse(ScriptKind::PowerShell, &s1)
            .expect("parse")
            .signed_bytes(&p7_2)
            .expect("signed_bytes");
        assert_eq!(replaced, s2, "{what}");
        let out = dir.path().join(format!("ours-{enc}.ps1"));
        fs::write(&out, &replaced).expect("write");
        let (ok, log) = osslsigncode_verify(&out, &root());
        assert!(
            ok,
            "{what}: osslsigncode rejected the replaced block:\n{log}"
        );
    }
}

/// A tampered script: the module's digest changes, so it no longer equals the signed one.
#[test]
fn tampered_text_changes_the_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.ps1");
    let b = dir.path().join("b.ps1");
    fs::write(&a, "Write-Host 'hi'\r\n").expect("write");
    osslsigncode_sign(&a, &b, "leaf-rsa2048", "sha256");
    let signed = fs::read(&b).expect("read");
    // "hi" -> "Hi" in the text, the block untouched.
    let at = signed.iter().position(|&c| c == b'h').expect("an h");
    let mut tampered = signed.clone();
    tampered[at] = b'H';
    assert!(at < "Write-Host 'hi'".len());
    let s = Script::parse(ScriptKind::PowerShell, &tampered).expect("parse");
    let p7 = &s.signature().expect("block").pkcs7;
    let ci = parse_content_info(p7).expect("pkcs7");
    let idc = SpcIndirectDataContent::from_der(ci.signed_data.content.expect("content").raw)
        .expect("idc");
    assert_ne!(
        idc.message_digest.digest.as_bytes(),
        s.digest::<Sha256>().expect("digest").as_slice()
    );
    let path = dir.path().join("t.ps1");
    fs::write(&path, &tampered).expect("write");
    assert!(!osslsigncode_verify(Path::new(&path), &root()).0);
}

/// A begin marker inside a here-string. osslsigncode 2.9 takes the first line that starts
/// with the marker as the block (and drops the text after it); the module takes only the
/// block at the end, so it still reads osslsigncode's output and agrees on its digest, and
/// its own signing keeps the whole text.
#[test]
fn marker_in_a_here_string() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "$s = @'\r\n# SIG # Begin signature block\r\n'@\r\nWrite-Host $s\r\n";
    let a = dir.path().join("a.ps1");
    let b = dir.path().join("b.ps1");
    fs::write(&a, text).expect("write");
    let plain = Script::parse(ScriptKind::PowerShell, text.as_bytes()).expect("parse");
    assert!(plain.signature().is_none());
    osslsigncode_sign(&a, &b, "leaf-rsa2048", "sha256");
    let signed = fs::read(&b).expect("read");
    let s = Script::parse(ScriptKind::PowerShell, &signed).expect("parse");
    let block = s.signature().expect("block");
    let ci = parse_content_info(&block.pkcs7).expect("pkcs7");
    let idc = SpcIndirectDataContent::from_der(ci.signed_data.content.expect("content").raw)
        .expect("idc");
    assert_eq!(
        idc.message_digest.digest.as_bytes(),
        s.digest::<Sha256>().expect("digest").as_slice()
    );
    // Our block after the whole text: the text survives a round trip.
    let ours = plain.signed_bytes(&block.pkcs7).expect("signed_bytes");
    let again = Script::parse(ScriptKind::PowerShell, &ours).expect("parse");
    assert_eq!(again.unsigned_bytes(), text.as_bytes());
    assert_eq!(again.signature().expect("block").pkcs7, block.pkcs7);
}

/// A 3 MiB script with non-ASCII text and long lines, in each encoding.
#[test]
fn osslsigncode_multi_megabyte_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    let mut i = 0u32;
    while text.len() < 3 * 1024 * 1024 {
        text.push_str(&format!(
            "$v{i} = 'w\u{e4}rt \u{3b1}\u{3b2} {}' # \u{1f680}\r\n",
            "x".repeat((i % 300) as usize)
        ));
        i += 1;
    }
    for enc in ["utf8", "utf8-bom", "utf16le"] {
        let a = dir.path().join(format!("big-{enc}.ps1"));
        let b = dir.path().join(format!("big-{enc}-signed.ps1"));
        let bytes = encode(&text, enc);
        fs::write(&a, &bytes).expect("write");
        osslsigncode_sign(&a, &b, "leaf-rsa2048", "sha256");
        let signed = fs::read(&b).expect("read");
        check_signed(
            ScriptKind::PowerShell,
            &bytes,
            &signed,
            &format!("3 MiB {enc}"),
        );
    }
}
