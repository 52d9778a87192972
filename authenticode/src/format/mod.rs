//! One signing and verification pipeline, one implementation per file format.
//!
//! A format supplies only what differs between formats (as jsign's `Signable` and
//! osslsigncode's `FILE_FORMAT` do):
//!
//! - **detection**: magic bytes for binary formats, the extension for scripts
//!   ([`FileKind::detect`]);
//! - **the digest**: which bytes it covers, streamed (`Staged::digest` after staging, and the
//!   verifier's read side);
//! - **the indirect data**: what goes into `SpcIndirectDataContent.data`
//!   (`indirect_data`: `SpcPeImageData` for PE, `SpcSipInfo` with the format's GUID for
//!   scripts);
//! - **where the PKCS#7 lives**: read, written and removed by the format's `Staged` value.
//!
//! Everything else is shared: signed attributes and the key call (`sign`), nesting and time
//! stamps (`pkcs7`, `timestamp`), the check of the written output (`check_written`), the
//! temp file + fsync + rename (`output::OutputFile`) and verification with its report
//! (`verify`).
use std::{fmt, io::Read, path::Path};

use codeseal_signer::DigestAlgorithm;
use der::asn1::{Any, BitString, BmpString};
use serde::Serialize;

use crate::{
    error::{Error, Result},
    oid::{SPC_PE_IMAGE_DATA, SPC_SIPINFO},
    pkcs7::{page_hash_object, ParsedSignature, MAX_NESTING},
    script::ScriptKind,
    spc::{
        SpcAttributeTypeAndOptionalValue, SpcLink, SpcPeImageData, SpcSipInfo, SpcString,
        OBSOLETE_LINK,
    },
    stage::Existing,
    verify::check_signature,
};

pub(crate) mod appx;
pub(crate) mod cab;
pub(crate) mod catalog;
pub(crate) mod msi;
pub(crate) mod output;
pub use output::{parent_of, sync_directory};
pub(crate) mod script;

/// The kinds of file codeseal signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A PE image (exe, dll, sys, efi, ...), recognised by its `MZ` header.
    Pe,
    /// A script, recognised by its extension.
    Script(ScriptKind),
    /// A cabinet (`.cab`), recognised by its `MSCF` header.
    Cab,
    /// A Windows Installer file (`.msi`, `.msp`, `.msm`, `.mst`): an OLE compound file,
    /// recognised by its header and one of these extensions (other compound files, such as
    /// Office documents, share the header).
    Msi,
    /// An APPX / MSIX package (`.appx`, `.msix`): a ZIP archive, recognised by its local
    /// header and extension.
    Appx,
    /// An APPX / MSIX bundle (`.appxbundle`, `.msixbundle`).
    AppxBundle,
    /// A catalog (`.cat`): a DER ContentInfo whose SignedData encapsulates a certificate
    /// trust list, recognised by its extension and a DER SEQUENCE start. The file is its
    /// signature.
    Catalog,
}

/// The extension of catalogs.
pub const CATALOG_EXTENSION: &str = "cat";

/// The extensions of APPX / MSIX packages.
pub const APPX_EXTENSIONS: [&str; 2] = ["appx", "msix"];
/// The extensions of APPX / MSIX bundles.
pub const APPX_BUNDLE_EXTENSIONS: [&str; 2] = ["appxbundle", "msixbundle"];

/// The extensions of the compound files signed as installers (the MSI SIP's).
pub const MSI_EXTENSIONS: [&str; 4] = ["msi", "msp", "msm", "mst"];

impl FileKind {
    /// The kind of the file at `path`: PE and cabinets by their first bytes (`MZ`, `MSCF`),
    /// installers by the compound-file header and their extension, scripts by extension.
    pub fn detect(path: &Path) -> Result<Self> {
        let mut head = Vec::with_capacity(8);
        let f = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        f.take(8)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Self::detect_from(&head, path)
    }

    /// The kind of a file that starts with `head` and is named `name`.
    pub fn detect_from(head: &[u8], name: &Path) -> Result<Self> {
        if head.starts_with(b"MZ") {
            return Ok(Self::Pe);
        }
        if head.starts_with(crate::cab::MAGIC) {
            return Ok(Self::Cab);
        }
        if head.starts_with(b"PK\x03\x04") {
            let ext = name
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default();
            if APPX_EXTENSIONS.contains(&ext.as_str()) {
                return Ok(Self::Appx);
            }
            if APPX_BUNDLE_EXTENSIONS.contains(&ext.as_str()) {
                return Ok(Self::AppxBundle);
            }
            return Err(Error::Unsupported(format!(
                "{}: a ZIP archive that is not named as an APPX / MSIX package or bundle (.appx, .msix, .appxbundle, .msixbundle)",
                name.display()
            )));
        }
        if head.starts_with(crate::msi::MAGIC) {
            let ext = name
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default();
            if MSI_EXTENSIONS.contains(&ext.as_str()) {
                return Ok(Self::Msi);
            }
            return Err(Error::Unsupported(format!(
                "{}: an OLE compound file that is not named as an installer (.msi, .msp, .msm, .mst); codeseal signs compound files only as Windows Installer files",
                name.display()
            )));
        }
        let ext = name
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if ext == CATALOG_EXTENSION {
            if catalog::looks_like_catalog(head) {
                return Ok(Self::Catalog);
            }
            return Err(Error::Unsupported(format!(
                "{}: named as a catalog (.cat) but not DER (a catalog starts with a SEQUENCE)",
                name.display()
            )));
        }
        match ScriptKind::from_path(name) {
            Ok(k) => Ok(Self::Script(k)),
            Err(_) => Err(Error::Unsupported(format!(
                "{}: not a PE file (no MZ header), not a cabinet (no MSCF header), not an installer (no compound-file header), not an APPX package (no ZIP header), not a catalog (.cat) and not a script extension codeseal signs ({})",
                name.display(),
                Self::script_extensions().join(" ")
            ))),
        }
    }

    /// Every script extension codeseal signs, with their dots.
    pub fn script_extensions() -> Vec<String> {
        ScriptKind::ALL
            .iter()
            .flat_map(|k| k.extensions())
            .map(|e| format!(".{e}"))
            .collect()
    }

    /// A short name for reports ("PE", "PowerShell", ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pe => "PE",
            Self::Script(k) => match k {
                ScriptKind::PowerShell => "PowerShell",
                ScriptKind::PowerShellXml => "PowerShell XML",
                ScriptKind::Mof => "MOF",
                ScriptKind::JScript => "JScript",
                ScriptKind::VbScript => "VBScript",
                ScriptKind::Wsf => "Windows Script File",
            },
            Self::Cab => "CAB",
            Self::Msi => "MSI",
            Self::Appx => "APPX",
            Self::AppxBundle => "APPX bundle",
            Self::Catalog => "catalog",
        }
    }

    /// The SIP version and GUID this format's `SpcSipInfo` carries (`None`: PE and CAB
    /// signatures carry their own structures instead).
    pub(crate) fn sip(self) -> Option<(u32, [u8; 16])> {
        use codeseal_formats::appx;
        match self {
            Self::Pe | Self::Cab | Self::Catalog => None,
            Self::Script(k) => Some((k.sip_version(), k.sip_guid())),
            Self::Msi => Some((1, crate::msi::SIP_MSI)),
            Self::Appx => Some((appx::SIP_VERSION, appx::SIP_APPX)),
            Self::AppxBundle => Some((appx::SIP_VERSION, appx::SIP_APPX_BUNDLE)),
        }
    }

    /// Refuses page hashes for every kind but PE, the only format that has them.
    pub(crate) fn check_page_hashes(self, wanted: bool) -> Result<()> {
        if wanted && self != Self::Pe {
            return Err(Error::Usage(format!(
                "page hashes exist only for PE files, not for {}",
                self.name()
            )));
        }
        Ok(())
    }

    /// The SpcIndirectDataContent type this format's signatures carry.
    pub(crate) fn indirect_data_type(self) -> der::asn1::ObjectIdentifier {
        match self {
            Self::Pe => SPC_PE_IMAGE_DATA,
            Self::Script(_) => SPC_SIPINFO,
            Self::Cab => crate::oid::SPC_CAB_DATA,
            Self::Msi | Self::Appx | Self::AppxBundle => SPC_SIPINFO,
            // Not an SpcIndirectDataContent: the signature encapsulates the CTL itself.
            Self::Catalog => crate::oid::MS_CTL,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for FileKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The `SpcIndirectDataContent.data` of a new signature of a `kind` file: `SpcPeImageData`
/// (with the page-hash table when there is one) for PE, the obsolete-file `SpcLink` for CAB,
/// `SpcSipInfo` with the format's SIP for the others.
pub(crate) fn indirect_data(
    kind: FileKind,
    page_hashes: Option<&(DigestAlgorithm, Vec<u8>)>,
) -> Result<SpcAttributeTypeAndOptionalValue> {
    kind.check_page_hashes(page_hashes.is_some())?;
    let value = match kind {
        FileKind::Pe => Any::encode_from(&match page_hashes {
            None => SpcPeImageData {
                flags: Some(BitString::from_bytes(&[])?),
                file: Some(SpcLink::File(SpcString::Unicode(BmpString::from_utf8(
                    OBSOLETE_LINK,
                )?))),
            },
            Some((alg, table)) => SpcPeImageData {
                // includeResources, as SignTool and osslsigncode write it with page hashes.
                flags: Some(BitString::new(7, [0x80u8].as_slice())?),
                file: Some(SpcLink::Moniker(page_hash_object(*alg, table)?)),
            },
        })?,
        // `[2] { [0] "<<<Obsolete>>>" }`, as osslsigncode and SignTool write it.
        FileKind::Cab => Any::encode_from(&SpcLink::File(SpcString::Unicode(
            BmpString::from_utf8(OBSOLETE_LINK)?,
        )))?,
        FileKind::Catalog => {
            return Err(Error::Unsupported(
                "a catalog's signature encapsulates its CTL, not SpcIndirectDataContent".into(),
            ))
        }
        _ => {
            let (version, guid) = kind.sip().ok_or_else(|| {
                Error::Unsupported(format!("no indirect data for {} files", kind.name()))
            })?;
            Any::encode_from(&SpcSipInfo::new(version, guid)?)?
        }
    };
    Ok(SpcAttributeTypeAndOptionalValue {
        value_type: kind.indirect_data_type(),
        value: Some(value),
    })
}

/// Whether a signature's `SpcIndirectDataContent.data` is for a `kind` file: the type, and
/// for the SIP-based formats the SIP GUID. `Err` says what it is for instead.
pub(crate) fn check_indirect_data(
    kind: FileKind,
    data: &SpcAttributeTypeAndOptionalValue,
) -> std::result::Result<(), String> {
    let want = kind.indirect_data_type();
    if data.value_type != want {
        return Err(format!(
            "the signature is not for a {} file: its indirect data type is {} (expected {want})",
            kind.name(),
            data.value_type
        ));
    }
    let Some((_, want)) = kind.sip() else {
        return Ok(());
    };
    let guid = data
        .value
        .as_ref()
        .and_then(crate::spc::sip_guid)
        .ok_or_else(|| "the SpcSipInfo value is unreadable".to_string())?;
    if guid != want {
        // osslsigncode (2.10 to at least 2.14) signs .js files as PowerShell: the
        // PowerShell SIP and digest rule, which Windows' JScript SIP does not accept.
        let hint = if kind == FileKind::Script(ScriptKind::JScript)
            && guid == crate::script::SIP_POWERSHELL
        {
            " (a JScript file signed as PowerShell, as osslsigncode signs .js files; Windows checks JScript with its own SIP)"
        } else {
            ""
        };
        return Err(format!(
            "the signature's SIP GUID {} is not the {} SIP's{hint}",
            hex::encode(guid),
            kind.name()
        ));
    }
    Ok(())
}

/// What to do when staging an input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StageOptions<'a> {
    /// Overwrite an existing output other than the input.
    pub force: bool,
    /// Sync the output's directory after the rename (else the caller does, see
    /// [`output::sync_directory`]).
    pub sync_dir: bool,
    /// What to do with the input's signature.
    pub existing: Existing,
    /// Digest algorithms to compute (those of a kept signature are added).
    pub algs: &'a [DigestAlgorithm],
    /// A page-hash table to compute (PE only).
    pub pages: Option<DigestAlgorithm>,
    /// Give a new MSI signature an `MsiDigitalSignatureEx` stream (MSI only).
    pub msi_dse: bool,
    /// APPX: the certificate that will sign, whose subject the manifest's Publisher must
    /// equal (`None`: not signing, or the check was overridden).
    pub appx_signer: Option<&'a x509_cert::Certificate>,
}

/// An input read once: checked, hashed, copied (or held) waiting for its signature.
pub(crate) trait Staged: fmt::Debug + Send {
    /// The input's kind.
    fn kind(&self) -> FileKind;
    /// The content digest for `alg`, if it was computed.
    fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]>;
    /// The page-hash table, if one was asked for.
    fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)>;
    /// The input's primary signature (DER ContentInfo), when it was kept.
    fn existing_signature(&self) -> Option<&[u8]>;
    /// Whether the input carried a signature (kept or dropped).
    fn was_signed(&self) -> bool;
    /// Where the result goes.
    fn output(&self) -> &Path;
    /// The content a new signature encapsulates instead of an SpcIndirectDataContent
    /// (catalogs: their CTL); `None` for the other formats.
    fn content(&self) -> Option<Result<der::Any>> {
        None
    }
    /// Writes the content with `signature` (a DER ContentInfo; `None`: unsigned), checks the
    /// written result, fsyncs and renames it over the output. Returns the output length.
    fn commit(self: Box<Self>, signature: Option<&[u8]>) -> Result<u64>;
}

/// Reads `input` once as a `kind` file and stages it for `output`.
pub(crate) fn stage(
    kind: FileKind,
    input: &Path,
    output: &Path,
    opts: StageOptions<'_>,
) -> Result<Box<dyn Staged>> {
    kind.check_page_hashes(opts.pages.is_some())?;
    match kind {
        FileKind::Pe => Ok(Box::new(crate::stage::StagedImage::stage(
            input,
            output,
            opts.force,
            opts.sync_dir,
            opts.existing,
            opts.algs,
            opts.pages,
        )?)),
        FileKind::Script(k) => Ok(Box::new(script::StagedScript::stage(
            k, input, output, opts,
        )?)),
        FileKind::Cab => Ok(Box::new(cab::StagedCab::stage(input, output, opts)?)),
        FileKind::Msi => Ok(Box::new(msi::StagedMsi::stage(input, output, opts)?)),
        FileKind::Appx | FileKind::AppxBundle => Ok(Box::new(appx::StagedAppx::stage(
            kind, input, output, opts,
        )?)),
        FileKind::Catalog => Ok(Box::new(catalog::StagedCatalog::stage(
            input, output, opts,
        )?)),
    }
}

/// Checks a written signature and its nested ones against the digests of what was written:
/// each must be for this kind of file, match its digest and verify. Nested signatures equal
/// to one of `inherited` (carried over byte for byte) are not checked again. `extra` adds a
/// format's own checks (PE page hashes).
pub(crate) fn check_written<'d>(
    kind: FileKind,
    primary: &[u8],
    digest: impl Fn(DigestAlgorithm) -> Option<&'d [u8]>,
    inherited: &[Vec<u8>],
    mut extra: impl FnMut(&ParsedSignature<'_>) -> std::result::Result<(), String>,
) -> Result<()> {
    let fail = Error::OutputCheck;
    let mut todo = vec![(primary, 0usize)];
    while let Some((der, depth)) = todo.pop() {
        if depth > 0 && inherited.iter().any(|i| i.as_slice() == der) {
            continue;
        }
        let parsed = ParsedSignature::parse(der).map_err(|e| fail(e.to_string()))?;
        check_indirect_data(kind, &parsed.spc.data).map_err(fail)?;
        let computed = digest(parsed.digest_algorithm)
            .ok_or_else(|| fail(format!("no {} digest computed", parsed.digest_algorithm)))?;
        let report = check_signature(0, &parsed, computed);
        if !report.is_valid() {
            let why: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
            return Err(fail(why.join("; ")));
        }
        extra(&parsed).map_err(fail)?;
        if depth < MAX_NESTING {
            todo.extend(parsed.nested_der().into_iter().map(|d| (d, depth + 1)));
        }
    }
    Ok(())
}
