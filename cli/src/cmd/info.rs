//! `codeseal info`: facts about a file and the signatures found.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use codeseal_authenticode::{PeInfo, Verifier};

use super::verify::print_report;

/// The arguments of `codeseal info`.
#[derive(Args)]
pub(crate) struct InfoArgs {
    /// The file (PE, script, CAB, MSI, catalog, APPX / MSIX package or bundle).
    pub(crate) file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn cmd_info(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let InfoArgs { file, json } = a;
    use codeseal_authenticode::FileKind;
    match FileKind::detect(&file)? {
        FileKind::Pe => {}
        FileKind::Script(kind) => return info_script(&file, kind, json),
        FileKind::Cab => return info_cab(&file, json),
        FileKind::Msi => return info_msi(&file, json),
        FileKind::Catalog => return info_catalog(&file, json),
        FileKind::Appx | FileKind::AppxBundle => return info_appx(&file, json),
        other => anyhow::bail!("{}: info does not support {other} files", file.display()),
    }
    let mut f = std::io::BufReader::new(
        std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
    );
    let pe = PeInfo::read(&mut f)?;
    let report = if pe.cert_table.is_some() {
        Verifier::integrity_only().verify_file(&file).ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"pe": pe, "verification": report}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {} bytes", pe.file_len);
    println!(
        "Format:          {}",
        if pe.pe32_plus { "PE32+" } else { "PE32" }
    );
    println!(
        "Machine:         {} ({:#06x})",
        pe.machine_name(),
        pe.machine
    );
    println!(
        "Kind:            {}",
        if pe.is_dll() { "DLL" } else { "executable" }
    );
    println!("CheckSum:        {:#010x}", pe.checksum);
    println!(
        "Sections:        {}",
        pe.sections
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    match pe.cert_table {
        None => println!("Signatures:      none"),
        Some(t) => {
            println!("Cert table:      {} bytes at {:#x}", t.size, t.offset);
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn info_catalog(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::formats::catalog::parse_catalog;
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let cat = parse_catalog(&data).map_err(codeseal_authenticode::Error::from)?;
    let signers = cat.content_info.signed_data.signer_infos.len();
    let ctl = &cat.ctl;
    let members = ctl.members().map_err(codeseal_authenticode::Error::from)?;
    let attributes = ctl
        .catalog_attributes()
        .map_err(codeseal_authenticode::Error::from)?;
    let report = if signers > 0 {
        Verifier::integrity_only().verify_file(file).ok()
    } else {
        None
    };
    let version =
        if ctl.subject_algorithm.oid == codeseal_authenticode::formats::oid::CATALOG_LIST_MEMBER2 {
            2
        } else {
            1
        };
    let this_update = ctl.this_update.to_string();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "catalog": {
                    "size": data.len(),
                    "version": version,
                    "this_update": this_update,
                    "list_identifier": ctl.list_identifier.as_ref().map(|i| hex::encode(i.as_bytes())),
                    "subjects": ctl.subjects().len(),
                    "members": members.iter().map(|m| serde_json::json!({
                        "file": m.file_name,
                        "tag": m.tag,
                        "digest_algorithm": m.digest_algorithm.to_string(),
                        "digest": hex::encode(&m.digest),
                        "kind": format!("{:?}", m.kind),
                    })).collect::<Vec<_>>(),
                    "attributes": attributes.iter().map(|a| serde_json::json!({
                        "name": a.name, "flags": a.flags, "value": a.value,
                    })).collect::<Vec<_>>(),
                    "signers": signers,
                },
                "verification": report,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {} bytes", data.len());
    println!("Format:          catalog (version {version})");
    println!("Created:         {this_update}");
    for a in &attributes {
        println!(
            "Attribute:       {} = {} (flags {:#010x})",
            a.name, a.value, a.flags
        );
    }
    println!("Members:         {}", members.len());
    for m in &members {
        println!(
            "  {} {} ({}, {:?})",
            m.file_name.as_deref().unwrap_or(&m.tag),
            hex::encode(&m.digest),
            m.digest_algorithm,
            m.kind
        );
    }
    match report {
        None if signers == 0 => println!("Signatures:      none"),
        None => println!("Signatures:      {signers} (unreadable)"),
        Some(r) => print_report(&r),
    }
    Ok(ExitCode::SUCCESS)
}

fn info_cab(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::formats::cab::CabHeader;
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata()?.len();
    let h = CabHeader::read(&mut std::io::BufReader::new(f), len)
        .map_err(codeseal_authenticode::Error::from)?;
    let signature = h.signature();
    let report = if signature.is_some() {
        Verifier::integrity_only().verify_file(file).ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cab": {
                    "size": h.file_len,
                    "cabinet_size": h.cb_cabinet,
                    "folders": h.folders,
                    "files": h.files,
                    "signature_reserve": h.reserve.is_some(),
                    "signature": signature.map(|(o, l)| [o, u64::from(l)]),
                },
                "verification": report,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {} bytes", h.file_len);
    println!("Format:          CAB cabinet");
    println!("Cabinet size:    {} bytes (cbCabinet)", h.cb_cabinet);
    println!("Folders:         {}", h.folders);
    println!("Files:           {}", h.files);
    match signature {
        None => println!("Signatures:      none"),
        Some((o, l)) => {
            println!("Signature:       {l} bytes at {o:#x}");
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn info_appx(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::formats::appx::{self, Zip};
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut src = appx::SeekSource::new(std::io::BufReader::with_capacity(64 << 10, f))
        .map_err(codeseal_authenticode::Error::from)?;
    let size = appx::Source::size(&src);
    let zip = Zip::parse_from(&mut src).map_err(codeseal_authenticode::Error::from)?;
    let bundle = zip.entry(appx::BUNDLE_MANIFEST_NAME).is_some();
    let format = if bundle {
        "APPX / MSIX bundle"
    } else {
        "APPX / MSIX package"
    };
    let block_map = zip
        .entry(appx::BLOCK_MAP_NAME)
        .map(|e| zip.read_from(&mut src, e, appx::MAX_PART))
        .transpose()
        .map_err(codeseal_authenticode::Error::from)?;
    let hash = block_map
        .as_deref()
        .map(appx::block_map_hash_method)
        .transpose()
        .map_err(codeseal_authenticode::Error::from)?;
    let publisher = appx::manifest_publisher_from(&mut src, &zip).ok();
    let code_integrity = zip.entry(appx::CODE_INTEGRITY_NAME).is_some();
    let signature = zip.signature().map(|e| e.compressed_size);
    drop(src);
    let report = if signature.is_some() {
        Verifier::integrity_only().verify_file(file).ok()
    } else {
        None
    };
    let entries: Vec<&str> = zip.entries.iter().map(|e| e.name.as_str()).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "appx": {
                    "bundle": bundle,
                    "size": size,
                    "entries": entries,
                    "zip64": zip.zip64_eocd.is_some(),
                    "block_map_hash": hash.map(|h| h.to_string()),
                    "publisher": publisher,
                    "code_integrity_catalog": code_integrity,
                    "signature": signature,
                },
                "verification": report,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {size} bytes");
    println!(
        "Format:          {format}{}",
        if zip.zip64_eocd.is_some() {
            " (ZIP64)"
        } else {
            ""
        }
    );
    println!("Entries:         {}", entries.len());
    for e in &entries {
        println!("                 {e}");
    }
    match hash {
        Some(h) => println!("Block map:       {} ({h})", appx::BLOCK_MAP_NAME),
        None => println!("Block map:       none"),
    }
    println!(
        "Publisher:       {}",
        publisher.as_deref().unwrap_or("(no manifest Identity)")
    );
    if code_integrity {
        println!("Code integrity:  {}", appx::CODE_INTEGRITY_NAME);
    }
    match signature {
        None => println!("Signatures:      none"),
        Some(l) => {
            println!("Signature:       {} ({l} bytes)", appx::SIGNATURE_NAME);
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn info_msi(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::formats::msi;
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = f.metadata()?.len();
    let mut cf =
        msi::open(std::io::BufReader::new(f)).map_err(codeseal_authenticode::Error::from)?;
    let streams = cf.walk().filter(|e| e.is_stream()).count();
    let storages = cf.walk().filter(|e| e.is_storage() && !e.is_root()).count();
    let sigs = msi::read_signatures(&mut cf).map_err(codeseal_authenticode::Error::from)?;
    let report = if sigs.signature.is_some() {
        Verifier::integrity_only().verify_file(file).ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "msi": {
                    "size": size,
                    "streams": streams,
                    "storages": storages,
                    "signature": sigs.signature.as_ref().map(Vec::len),
                    "msi_digital_signature_ex": sigs.ex.is_some(),
                },
                "verification": report,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {size} bytes");
    println!("Format:          MSI (OLE compound file)");
    println!("Streams:         {streams}");
    println!("Storages:        {storages}");
    match &sigs.signature {
        None => println!("Signatures:      none"),
        Some(s) => {
            println!(
                "Signature:       {} bytes{}",
                s.len(),
                if sigs.ex.is_some() {
                    ", with MsiDigitalSignatureEx"
                } else {
                    ""
                }
            );
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn info_script(
    file: &std::path::Path,
    kind: codeseal_authenticode::formats::script::ScriptKind,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::formats::script::{Encoding, ScriptLayout};
    let mut f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let layout = ScriptLayout::read(kind, &mut f)?;
    let size = layout.len();
    let kind_name = codeseal_authenticode::FileKind::Script(kind).name();
    let encoding = match layout.check_text(&mut f)? {
        Encoding::Utf8 { bom: true } => "UTF-8 with BOM",
        Encoding::Utf8 { bom: false } => "UTF-8",
        Encoding::Utf16Le => "UTF-16LE",
        Encoding::Windows1252 => "Windows-1252",
    };
    let block = layout.signature().map(|b| b.range.clone());
    let report = if block.is_some() {
        Verifier::integrity_only().verify_file(file).ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "script": {
                    "kind": kind_name,
                    "size": size,
                    "encoding": encoding,
                    "signature_block": block.as_ref().map(|r| [r.start, r.end]),
                },
                "verification": report,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {size} bytes");
    println!("Format:          {kind_name} script");
    println!("Encoding:        {encoding}");
    match block {
        None => println!("Signatures:      none"),
        Some(r) => {
            println!("Signature block: bytes {}..{}", r.start, r.end);
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
