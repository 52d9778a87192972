//! The script module against osslsigncode: scripts signed by osslsigncode are read by
//! `codeseal_authenticode::formats::script`, and the digest in their SpcIndirectDataContent must equal
//! the module's digest of the unsigned text; the module's own block writing must reproduce
//! osslsigncode's file byte for byte.
mod common;

use std::{fs, path::Path};

use codeseal_authenticode::{
    formats::pkcs7::parse_content_info,
    formats::script::{Encoding, Script, ScriptKind},
    formats::{oid::SPC_INDIRECT_DATA, spc::SpcIndirectDataContent},
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
    assert_eq!(
        sip,
        kind.sip_info().expect("sip").to_der().expect("der"),
        "{what}: SpcSipInfo"
    );
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

// ---------------------------------------------------------------------------------------
// osslsigncode 2.14 (JScript), the remaining encodings, and what peers disagree on.
//
// What osslsigncode (2.9 and 2.14, script.c) does, for every script kind it signs:
// - a file starting with FF FE is UTF-16LE and hashed as it is, byte order mark included;
// - any other file is read as UTF-8 (a UTF-8 byte order mark becomes U+FEFF, so it is hashed
//   as FF FE; each byte that does not start a valid UTF-8 sequence becomes U+FFFD) and
//   hashed as UTF-16LE;
// - the text is hashed up to the block, with no length after it;
// - the SpcSipInfo is always the PowerShell one (version 65536), `.js` included.
// So for PowerShell, PowerShell XML and MOF files it agrees with the module except on
// BOM-less text that is not UTF-8 (the module: Windows-1252) and BOM-less non-ASCII
// PowerShell XML (the module: always Windows-1252); for JScript it disagrees on everything
// but the block: Windows' JScript SIP ({06C9E010-38CE-11D4-A2A3-00104BD35090}, version 1)
// hashes the text without its byte order mark and then its length in UTF-16 code units,
// and reads BOM-less files as Windows-1252 (as jsign does). The tests below pin each of
// those facts, so a change on either side shows.
// ---------------------------------------------------------------------------------------

/// UTF-16LE of `text`, encoded here from the code points (not with `str::encode_utf16` or
/// the module), and the number of code units.
fn utf16le_from_scratch(text: &str) -> (Vec<u8>, u32) {
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut units = 0u32;
    for c in text.chars() {
        let v = u32::from(c);
        let mut push = |u: u32| {
            out.push((u & 0xff) as u8);
            out.push((u >> 8) as u8);
            units += 1;
        };
        if v < 0x1_0000 {
            push(v);
        } else {
            let w = v - 0x1_0000;
            push(0xd800 | (w >> 10));
            push(0xdc00 | (w & 0x3ff));
        }
    }
    (out, units)
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

/// osslsigncode's digest of a script file (see the rules above), computed independently.
/// Invalid UTF-8 in the inputs here is single bytes followed by ASCII, where one U+FFFD per
/// bad byte (osslsigncode) and `from_utf8_lossy` agree.
fn osslsigncode_rule_digest(bytes: &[u8]) -> Vec<u8> {
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        return sha256(&[&[0xff, 0xfe], rest]);
    }
    let text = String::from_utf8_lossy(bytes);
    sha256(&[&utf16le_from_scratch(&text).0])
}

/// The Windows PowerShell SIP rule as the module implements it: the text (a BOM as U+FEFF)
/// as UTF-16LE, no length.
fn powershell_rule_digest(text_with_bom: &str) -> Vec<u8> {
    sha256(&[&utf16le_from_scratch(text_with_bom).0])
}

/// The Windows Script Host SIP rule (JScript, VBScript, WSF): the text without its byte
/// order mark as UTF-16LE, then the number of UTF-16 code units as a little-endian u32.
fn wsh_rule_digest(text: &str) -> Vec<u8> {
    let (utf16, units) = utf16le_from_scratch(text);
    sha256(&[&utf16, &units.to_le_bytes()])
}

/// Windows-1252 decoding by encoding_rs (the WHATWG table: the five undefined bytes are the
/// C1 controls of the same value), independent of the module's table.
fn cp1252(bytes: &[u8]) -> String {
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
}

/// The SpcIndirectDataContent of a PKCS#7: (SpcSipInfo DER, digest).
fn indirect_data(pkcs7: &[u8], what: &str) -> (Vec<u8>, Vec<u8>) {
    let ci = parse_content_info(pkcs7).unwrap_or_else(|e| panic!("{what}: {e}"));
    let content = ci.signed_data.content.as_ref().expect("eContent");
    let idc =
        SpcIndirectDataContent::from_der(content.raw).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(idc.data.value_type, SPC_SIPINFO, "{what}");
    assert_eq!(idc.message_digest.digest_algorithm.oid, SHA256, "{what}");
    let sip = idc
        .data
        .value
        .as_ref()
        .expect("SpcSipInfo")
        .to_der()
        .expect("der");
    (sip, idc.message_digest.digest.as_bytes().to_vec())
}

/// Texts for the encoding matrix: CRLF and LF, with and without a final line break, ASCII
/// and non-ASCII (Latin-1, a BMP character beyond Latin-1, one outside the BMP; the first
/// non-ASCII character within the first 32 bytes and more after it).
fn matrix_texts(first_line: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (nl, nl_name) in [("\r\n", "crlf"), ("\n", "lf")] {
        for final_nl in [true, false] {
            for non_ascii in [false, true] {
                let mid = if non_ascii {
                    "// caf\u{e9} \u{20ac}5 \u{65e5}\u{672c} \u{1f600}"
                } else {
                    "// plain ASCII text"
                };
                let mut t = format!("{first_line}{nl}{mid}{nl}x = 1{nl}last line");
                if non_ascii {
                    t.insert_str(0, "\u{fc} ");
                }
                if final_nl {
                    t.push_str(nl);
                }
                let name = format!(
                    "{nl_name} final-newline={final_nl} {}",
                    if non_ascii { "non-ascii" } else { "ascii" }
                );
                v.push((name, t));
            }
        }
    }
    v
}

/// Every kind osslsigncode 2.14 signs in the PowerShell family (PowerShell, PowerShell XML,
/// MOF) in every encoding, CRLF and LF, with and without a final line break, ASCII and
/// non-ASCII: the module finds osslsigncode's block, computes its digest, and writes the
/// same file. BOM-less non-ASCII PowerShell XML is left to
/// `bomless_non_ascii_xml_peers_disagree`.
#[test]
fn osslsigncode_new_powershell_family_matrix() {
    let bin = osslsigncode_new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for ext in ["ps1", "psm1", "psd1", "ps1xml", "psc1", "cdxml", "mof"] {
        let kind = ScriptKind::from_extension(ext).expect("kind");
        for (name, text) in matrix_texts("first line") {
            for enc in ["utf8", "utf8-bom", "utf16le"] {
                if kind == ScriptKind::PowerShellXml && enc == "utf8" && !text.is_ascii() {
                    continue;
                }
                let what = format!("2.14 {ext} {enc} {name}");
                let a = dir.path().join(format!("a{n}.{ext}"));
                let b = dir.path().join(format!("b{n}.{ext}"));
                n += 1;
                let bytes = encode(&text, enc);
                fs::write(&a, &bytes).expect("write");
                osslsigncode_sign_with(bin, &a, &b, "leaf-p256", "sha256");
                let signed = fs::read(&b).expect("read");
                let p7 = check_signed(kind, &bytes, &signed, &what);
                // And the digest is the documented one, computed independently.
                let (_, theirs) = indirect_data(&p7, &what);
                let bom = if enc == "utf8" { "" } else { "\u{feff}" };
                assert_eq!(
                    theirs,
                    powershell_rule_digest(&format!("{bom}{text}")),
                    "{what}"
                );
            }
        }
    }
    // 7 extensions x 8 texts x 3 encodings, less BOM-less non-ASCII XML (3 x 4).
    assert_eq!(n, 7 * 8 * 3 - 3 * 4);
}

/// JScript signed by osslsigncode 2.14 in every encoding and line-ending variant: the module
/// reads osslsigncode's block and writes the same file byte for byte (the `// SIG //` layout
/// agrees), but osslsigncode signs `.js` with the PowerShell SIP and the PowerShell digest
/// rule (BOM hashed, no length, BOM-less text as UTF-8), while the module follows Windows'
/// JScript SIP (see above). Both digests are checked against independent computations, and
/// that they differ.
#[test]
fn osslsigncode_new_jscript_matrix() {
    let bin = osslsigncode_new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for (name, text) in matrix_texts("WScript.Echo(\"hi\");") {
        for enc in ["utf8", "utf8-bom", "utf16le"] {
            let what = format!("2.14 js {enc} {name}");
            let a = dir.path().join(format!("a{n}.js"));
            let b = dir.path().join(format!("b{n}.js"));
            n += 1;
            let bytes = encode(&text, enc);
            fs::write(&a, &bytes).expect("write");
            osslsigncode_sign_with(bin, &a, &b, "leaf-rsa2048", "sha256");
            let signed = fs::read(&b).expect("read");

            let s = Script::parse(ScriptKind::JScript, &signed)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let block = s.signature().unwrap_or_else(|| panic!("{what}: no block"));
            assert_eq!(s.unsigned_bytes(), bytes, "{what}: unsigned bytes");
            let plain = Script::parse(ScriptKind::JScript, &bytes).expect("parse");
            assert!(plain.signature().is_none(), "{what}");
            assert_eq!(
                plain.signed_bytes(&block.pkcs7).expect("signed_bytes"),
                signed,
                "{what}: block writing differs from osslsigncode's"
            );

            let (sip, theirs) = indirect_data(&block.pkcs7, &what);
            assert_eq!(
                sip,
                ScriptKind::PowerShell
                    .sip_info()
                    .expect("sip")
                    .to_der()
                    .expect("der"),
                "{what}: SIP"
            );
            assert_ne!(
                sip,
                ScriptKind::JScript
                    .sip_info()
                    .expect("sip")
                    .to_der()
                    .expect("der"),
                "{what}"
            );
            assert_eq!(theirs, osslsigncode_rule_digest(&bytes), "{what}");

            // The module: Windows' JScript rule; BOM-less .js is Windows-1252.
            let windows_text = match enc {
                "utf8" => cp1252(&bytes),
                _ => text.clone(),
            };
            let ours = s.digest::<Sha256>().expect("digest");
            assert_eq!(ours, wsh_rule_digest(&windows_text), "{what}");
            assert_eq!(plain.digest::<Sha256>().expect("digest"), ours, "{what}");
            assert_ne!(ours, theirs, "{what}");
        }
    }
    assert_eq!(n, 8 * 3);
}

/// osslsigncode 2.14 (and 2.9 for `.ps1`) verifies a file that `Script::signed_bytes` wrote:
/// osslsigncode's PKCS#7 taken from its signed copy and attached by the module to the
/// unsigned text. One changed character of the text makes verification fail.
#[test]
fn osslsigncode_verifies_signed_bytes() {
    let new = osslsigncode_new();
    let dir = tempfile::tempdir().expect("tempdir");
    let texts = [
        "Write-Host 'caf\u{e9} \u{65e5}\u{672c} \u{1f600}'\r\n$x = 1\r\n",
        "var s = \"gr\u{fc}\u{df}e\";\nWScript.Echo(s)",
    ];
    let mut n = 0;
    for ext in ["ps1", "js"] {
        let kind = ScriptKind::from_extension(ext).expect("kind");
        for text in texts {
            for enc in ["utf8", "utf8-bom", "utf16le"] {
                let what = format!("{ext} {enc} {:?}", text.get(..10));
                let a = dir.path().join(format!("a{n}.{ext}"));
                let b = dir.path().join(format!("b{n}.{ext}"));
                let ours = dir.path().join(format!("ours{n}.{ext}"));
                let bad = dir.path().join(format!("bad{n}.{ext}"));
                n += 1;
                let bytes = encode(text, enc);
                fs::write(&a, &bytes).expect("write");
                osslsigncode_sign_with(new, &a, &b, "leaf-rsa2048", "sha256");
                let signed = fs::read(&b).expect("read");
                let p7 = Script::parse(kind, &signed)
                    .expect("parse")
                    .signature()
                    .expect("block")
                    .pkcs7
                    .clone();
                let written = Script::parse(kind, &bytes)
                    .expect("parse")
                    .signed_bytes(&p7)
                    .expect("signed_bytes");
                fs::write(&ours, &written).expect("write");
                let (ok, log) = osslsigncode_verify_with(new, &ours, &root());
                assert!(
                    ok,
                    "{what}: osslsigncode 2.14 rejected signed_bytes:\n{log}"
                );
                if ext == "ps1" {
                    let (ok, log) = osslsigncode_verify(&ours, &root());
                    assert!(ok, "{what}: osslsigncode 2.9 rejected signed_bytes:\n{log}");
                }
                // 'W' or 'v' -> 'X' in the first character of the text.
                let mut tampered = written.clone();
                let first = Script::parse(kind, &written)
                    .expect("parse")
                    .encoding()
                    .bom_len();
                tampered[first] = b'X';
                fs::write(&bad, &tampered).expect("write");
                let (ok, log) = osslsigncode_verify_with(new, &bad, &root());
                assert!(
                    !ok,
                    "{what}: osslsigncode 2.14 accepted a changed text:\n{log}"
                );
            }
        }
    }
    assert_eq!(n, 2 * 2 * 3);
}

/// BOM-less PowerShell XML with non-ASCII text: peers disagree on its encoding.
/// - osslsigncode (2.9 and 2.14) reads every BOM-less script as UTF-8.
/// - jsign reads BOM-less `.ps1xml`, `.js` and `.vbs` as Windows-1252 ("signed as
///   ISO-8859-1 even when encoded in UTF-8").
/// - OpenAuthenticode, modelled on the Windows PowerShell SIP, takes BOM-less text as UTF-8
///   only when its first 32 bytes hold a valid multi-byte UTF-8 sequence, else as the ANSI
///   code page: an XML file that starts with its ASCII `<?xml ...?>` prolog is read as
///   Windows-1252 on a Western Windows.
///
/// The module follows Windows (always Windows-1252 for BOM-less PowerShell XML), so for such
/// files its digest is not osslsigncode's; this pins both. The block is still read and
/// written the same way.
#[test]
fn bomless_non_ascii_xml_peers_disagree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Types><!-- caf\u{e9} \u{20ac} --></Types>\r\n";
    let bytes = text.as_bytes();
    let mut n = 0;
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        for ext in ["ps1xml", "psc1", "cdxml"] {
            let what = format!("{} {ext}", bin.display());
            let a = dir.path().join(format!("a{n}.{ext}"));
            let b = dir.path().join(format!("b{n}.{ext}"));
            n += 1;
            fs::write(&a, bytes).expect("write");
            osslsigncode_sign_with(bin, &a, &b, "leaf-p256", "sha256");
            let signed = fs::read(&b).expect("read");
            let s = Script::parse(ScriptKind::PowerShellXml, &signed).expect("parse");
            assert_eq!(s.encoding(), Encoding::Windows1252, "{what}");
            let block = s.signature().expect("block");
            assert_eq!(s.unsigned_bytes(), bytes, "{what}");
            let (_, theirs) = indirect_data(&block.pkcs7, &what);
            assert_eq!(
                theirs,
                powershell_rule_digest(text),
                "{what}: osslsigncode: UTF-8"
            );
            let ours = s.digest::<Sha256>().expect("digest");
            assert_eq!(
                ours,
                powershell_rule_digest(&cp1252(bytes)),
                "{what}: module: 1252"
            );
            assert_ne!(ours, theirs, "{what}");
            let plain = Script::parse(ScriptKind::PowerShellXml, bytes).expect("parse");
            assert_eq!(
                plain.signed_bytes(&block.pkcs7).expect("signed"),
                signed,
                "{what}"
            );
        }
    }
    assert_eq!(n, 6);
}

/// A BOM-less `.ps1` or `.mof` that is not UTF-8 (Windows-1252 bytes): the module reads it
/// as Windows-1252, as the PowerShell SIP does with the ANSI code page of a Western Windows;
/// osslsigncode (2.9 and 2.14) hashes U+FFFD for each byte that is not UTF-8. Pinned, with
/// the rest of the file read and written the same way.
#[test]
fn windows_1252_powershell_peers_disagree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes: &[u8] = b"Write-Host 'caf\xe9 \x80 \x93quoted\x94'\r\n# na\xefve\n$x = 1";
    let mut n = 0;
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        for ext in ["ps1", "psm1", "mof"] {
            let kind = ScriptKind::from_extension(ext).expect("kind");
            let what = format!("{} {ext}", bin.display());
            let a = dir.path().join(format!("a{n}.{ext}"));
            let b = dir.path().join(format!("b{n}.{ext}"));
            n += 1;
            fs::write(&a, bytes).expect("write");
            osslsigncode_sign_with(bin, &a, &b, "leaf-rsa2048", "sha256");
            let signed = fs::read(&b).expect("read");
            let s = Script::parse(kind, &signed).expect("parse");
            assert_eq!(s.encoding(), Encoding::Windows1252, "{what}");
            let block = s.signature().expect("block");
            assert_eq!(s.unsigned_bytes(), bytes, "{what}");
            let (_, theirs) = indirect_data(&block.pkcs7, &what);
            assert_eq!(theirs, osslsigncode_rule_digest(bytes), "{what}");
            let ours = s.digest::<Sha256>().expect("digest");
            assert_eq!(ours, powershell_rule_digest(&cp1252(bytes)), "{what}");
            assert_ne!(ours, theirs, "{what}");
            let plain = Script::parse(kind, bytes).expect("parse");
            assert_eq!(
                plain.signed_bytes(&block.pkcs7).expect("signed"),
                signed,
                "{what}"
            );
        }
    }
    assert_eq!(n, 6);
}

/// A DER SEQUENCE standing in for a PKCS#7 (the module checks only the outer element).
fn fake_pkcs7(n: usize) -> Vec<u8> {
    let mut v = vec![0x30, 0x82, (n >> 8) as u8, n as u8];
    v.extend((0..n).map(|i| (i * 13 + 5) as u8));
    v
}

/// VBScript and WSF (and JScript by Windows' rule): no verifier here, so digest vectors from
/// the documented algorithm. SHA-256 over the text without its byte order mark (and without
/// the signature block) as UTF-16LE, then the number of UTF-16 code units as a 32-bit
/// little-endian integer. BOM-less `.vbs`/`.js` text is Windows-1252; BOM-less `.wsf` text
/// is UTF-8 when valid.
///
/// The literal vectors were computed outside the project with Python 3's hashlib and codecs:
/// `u = text.encode('utf-16-le'); sha256(u + struct.pack('<I', len(u)//2))`, with
/// `text = raw.decode('cp1252')` for the Windows-1252 one. The matrix computes the same in
/// the test with a UTF-16 encoder written here and encoding_rs for Windows-1252, never
/// through the module's digest path, and checks signing with `signed_bytes` leaves it.
#[test]
fn wsh_digest_vectors_vbs_wsf() {
    let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let digest = |kind, bytes: &[u8]| {
        hex(Script::parse(kind, bytes)
            .expect("parse")
            .digest::<Sha256>()
            .expect("digest"))
    };
    // Literal vectors (Python hashlib).
    assert_eq!(
        digest(ScriptKind::VbScript, b"WScript.Echo \"hi\"\r\n"),
        "a3768a3dec4ceaaa2408337bca77ec22e68a3c733eea60b3243ce72319543406"
    );
    assert_eq!(
        digest(ScriptKind::VbScript, b"MsgBox \"caf\xe9 \x80 \x9f\"\n"),
        "5fadc0c631fa636a1d288f06ef37bd2a20e6889ffed8857b6b23bd79e9d2186d"
    );
    let wsf = "<package>\r\n<job id=\"a\">\r\n<script language=\"VBScript\">MsgBox \"gr\u{fc}\u{df} \u{1f600}\"</script>\r\n</job>\r\n</package>";
    let wsf_vector = "995c00c590eccb7c64c8de9200f665459e738668ad64806c82f6d2473573f369";
    for enc in ["utf8", "utf8-bom", "utf16le"] {
        assert_eq!(
            digest(ScriptKind::Wsf, &encode(wsf, enc)),
            wsf_vector,
            "{enc}"
        );
    }
    let empty = "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119";
    for kind in [ScriptKind::VbScript, ScriptKind::Wsf, ScriptKind::JScript] {
        assert_eq!(digest(kind, b""), empty, "{kind:?}");
    }

    // The matrix: every WSH kind, encoding, line ending, final line break, ASCII or not.
    let p7 = fake_pkcs7(700);
    let mut n = 0;
    for kind in [ScriptKind::VbScript, ScriptKind::Wsf, ScriptKind::JScript] {
        let first = match kind {
            ScriptKind::Wsf => "<package><job id=\"x\"><script language=\"JScript\">",
            ScriptKind::VbScript => "WScript.Echo \"x\"",
            _ => "WScript.Echo(\"x\");",
        };
        for (name, mut text) in matrix_texts(first) {
            if kind == ScriptKind::Wsf {
                text.push_str("</script></job></package>");
            }
            for enc in ["utf8", "utf8-bom", "utf16le", "cp1252"] {
                let bytes = if enc == "cp1252" {
                    let (b, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
                    if unmappable {
                        continue;
                    }
                    b.into_owned()
                } else {
                    encode(&text, enc)
                };
                let what = format!("{kind:?} {enc} {name}");
                n += 1;
                let windows_text = match (enc, kind) {
                    ("utf8-bom" | "utf16le", _) => text.clone(),
                    // BOM-less .wsf: UTF-8 when valid, else Windows-1252.
                    (_, ScriptKind::Wsf) => match std::str::from_utf8(&bytes) {
                        Ok(t) => t.to_owned(),
                        Err(_) => cp1252(&bytes),
                    },
                    _ => cp1252(&bytes),
                };
                let want = hex(wsh_rule_digest(&windows_text));
                assert_eq!(digest(kind, &bytes), want, "{what}");
                let signed = Script::parse(kind, &bytes)
                    .expect("parse")
                    .signed_bytes(&p7)
                    .expect("signed_bytes");
                assert_eq!(digest(kind, &signed), want, "{what}: signed");
                // One character more changes it.
                let mut longer = bytes.clone();
                longer.extend_from_slice(if enc == "utf16le" {
                    &b" \0"[..]
                } else {
                    &b" "[..]
                });
                assert_ne!(digest(kind, &longer), want, "{what}: changed");
            }
        }
    }
    // 3 kinds x 8 texts x 3 encodings, plus the Windows-1252 copies of the texts it can
    // encode (the ASCII ones and, for none, the non-ASCII ones: U+65E5 is not in it).
    assert_eq!(n, 3 * 8 * 3 + 3 * 4);
}
