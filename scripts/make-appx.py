#!/usr/bin/env python3
"""Writes a minimal, valid, unsigned APPX package for the tests (no makeappx needed).

usage: make-appx.py OUT PUBLISHER [BIG_MIB] [--lie] [--stored-parts] [--sha384] [--zip64] [--descriptors] [--extra]
                   [--code-integrity CAT] [--bundle [--inner-publisher PUB] [--inner PKG]]

Entries: AppxManifest.xml (stored), Assets/readme.txt (deflated), Assets/big.bin
(BIG_MIB MiB of pseudo-random bytes, deflated block by block as makeappx does: each 64 KiB
block compressed and full-flushed separately, its compressed size in the block map),
Assets/zeros.bin (stored), AppxBlockMap.xml and [Content_Types].xml (deflated, last, as
makeappx writes them). --lie writes a wrong hash for the second block of big.bin;
--stored-parts stores the block map and the content types; --sha384 hashes the block
map with SHA-384 (SHA-256 otherwise); --zip64 ends the archive with ZIP64 end records (the\nend record's fields all 0xFFFF...); --descriptors writes every entry with a data\ndescriptor; --extra adds a file the block map does not list.
--code-integrity CAT adds the catalog file CAT as AppxMetadata/CodeIntegrity.cat (listed in
the block map, deflated). --bundle writes an .appxbundle instead: two such packages (x64 and
x86, stored, as makeappx bundle stores them), AppxMetadata/AppxBundleManifest.xml naming
each with its Offset (of its data in the bundle) and Size, the bundle's block map and
content types; the other flags apply to the inner packages and the bundle alike.
--inner-publisher PUB gives the x86 inner package that Publisher instead of the bundle's;
--inner PKG puts the package file PKG (e.g. one signed beforehand) in the bundle as the x64
package instead of a generated one.
"""
import base64, hashlib, random, struct, sys, zlib

BLOCK = 65536


def flag_value(name):
    if name in sys.argv:
        i = sys.argv.index(name)
        if i + 1 >= len(sys.argv):
            sys.exit(f"{name} needs a value")
        return sys.argv[i + 1]
    return None


def main():
    out, publisher = sys.argv[1], sys.argv[2]
    big_mib = int(sys.argv[3]) if len(sys.argv) > 3 and not sys.argv[3].startswith("-") else 2
    cat = flag_value("--code-integrity")
    cat_data = open(cat, "rb").read() if cat else None
    if "--bundle" in sys.argv:
        inner_publisher = flag_value("--inner-publisher") or publisher
        inner_file = flag_value("--inner")
        pkgs = [(f"Codeseal.Test_1.0.0.0_{arch}.appx", arch,
                 open(inner_file, "rb").read() if inner_file and arch == "x64" else
                 package(publisher if arch == "x64" else inner_publisher,
                         big_mib if arch == "x64" else 0, arch, cat_data))
                for arch in ("x64", "x86")]
        data = bundle(publisher, pkgs)
    else:
        data = package(publisher, big_mib, "x64", cat_data)
    with open(out, "wb") as f:
        f.write(data)


def pseudo_random(n):
    """n pseudo-random bytes, the same every run (randbytes takes at most 2^31 bits at once:
    larger files are made of 64 MiB runs)."""
    rng = random.Random(17)
    if n < 1 << 28:
        return rng.randbytes(n)
    return b"".join(rng.randbytes(min(1 << 26, n - i)) for i in range(0, n, 1 << 26))


def package(publisher, big_mib, arch, cat_data):
    files = [
        ("AppxManifest.xml", package_manifest(publisher, arch), False),
        ("Assets/readme.txt", b"codeseal appx test\n" * 5000, True),
        ("Assets/big.bin", pseudo_random(big_mib * 1024 * 1024 + 12345), True),
        ("Assets/zeros.bin", bytes(70000), False),
    ]
    if cat_data is not None:
        files.append(("AppxMetadata/CodeIntegrity.cat", cat_data, True))
    ct = ('<Default Extension="xml" ContentType="application/vnd.ms-appx.manifest+xml"/>'
          '<Default Extension="txt" ContentType="text/plain"/>'
          '<Default Extension="bin" ContentType="application/octet-stream"/>'
          + ('<Default Extension="cat" ContentType="application/vnd.ms-pki.seccat"/>'
             if cat_data is not None else ''))
    return write_zip(files, ct)


def bundle(publisher, pkgs):
    """pkgs: (file name, architecture, package bytes); the manifest follows them."""
    layout = zip_layout([(name, data, False) for name, _, data in pkgs])
    entries = []
    for (name, arch, data), off in zip(pkgs, layout):
        entries.append(
            f'<Package Type="application" Version="1.0.0.0" Architecture="{arch}" '
            f'FileName="{name}" Offset="{off}" Size="{len(data)}">'
            '<Resources><Resource Language="en-us"/></Resources></Package>')
    manifest = ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
                '<Bundle xmlns="http://schemas.microsoft.com/appx/2013/bundle" SchemaVersion="3.0">'
                f'<Identity Name="Codeseal.Test" Publisher="{publisher}" Version="1.0.0.0"/>'
                '<Packages>' + "".join(entries) + '</Packages></Bundle>').encode()
    files = [(name, data, False) for name, _, data in pkgs]
    files.append(("AppxMetadata/AppxBundleManifest.xml", manifest, True))
    ct = ('<Default Extension="appx" ContentType="application/vnd.ms-appx"/>'
          '<Override PartName="/AppxMetadata/AppxBundleManifest.xml" '
          'ContentType="application/vnd.ms-appx.bundlemanifest+xml"/>')
    return write_zip(files, ct)


def zip_layout(files):
    """The data offsets the files get when written first, stored, without descriptors."""
    offs, at = [], 0
    descriptors = "--descriptors" in sys.argv
    for name, data, _ in files:
        at += 30 + len(name.encode())
        offs.append(at)
        at += len(data) + (16 if descriptors else 0)
    return offs


def package_manifest(publisher, arch):
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Package xmlns="http://schemas.microsoft.com/appx/manifest/foundation/windows10">
  <Identity Name="Codeseal.Test" Publisher="{publisher}" Version="1.0.0.0" ProcessorArchitecture="{arch}"/>
  <Properties><DisplayName>codeseal test</DisplayName><PublisherDisplayName>codeseal</PublisherDisplayName><Logo>Assets\\readme.txt</Logo></Properties>
  <Dependencies><TargetDeviceFamily Name="Windows.Desktop" MinVersion="10.0.17763.0" MaxVersionTested="10.0.19041.0"/></Dependencies>
  <Resources><Resource Language="en-us"/></Resources>
  <Applications><Application Id="App" Executable="app.exe" EntryPoint="Windows.FullTrustApplication"><VisualElements DisplayName="t" Description="t" BackgroundColor="transparent" Square150x150Logo="Assets\\readme.txt" Square44x44Logo="Assets\\readme.txt"/></Application></Applications>
</Package>
""".encode()


def write_zip(files, ct_types):
    lie = "--lie" in sys.argv
    stored_parts = "--stored-parts" in sys.argv
    zip64 = "--zip64" in sys.argv
    descriptors = "--descriptors" in sys.argv
    extra_file = "--extra" in sys.argv
    h_name, h_uri = ("sha384", "http://www.w3.org/2001/04/xmldsig-more#sha384") \
        if "--sha384" in sys.argv else ("sha256", "http://www.w3.org/2001/04/xmlenc#sha256")
    body = bytearray()
    central = bytearray()
    bm = ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>\r\n'
          '<BlockMap xmlns="http://schemas.microsoft.com/appx/2010/blockmap" '
          'HashMethod="' + h_uri + '">']

    def add(name, data, deflate, blocks_xml=None):
        nm = name.encode()
        if deflate:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            pieces = []
            for i in range(0, max(len(data), 1), BLOCK):
                last = i + BLOCK >= len(data)
                p = c.compress(data[i:i + BLOCK]) + c.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
                pieces.append(p)
            comp = b"".join(pieces)
        else:
            pieces, comp = None, data
        crc = zlib.crc32(data)
        method = 8 if deflate else 0
        off = len(body)
        flags = 0x0008 if descriptors else 0
        if descriptors:
            lfh = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, 0,
                              0, 0, len(nm), 0) + nm
            desc = struct.pack("<IIII", 0x08074B50, crc, len(comp), len(data))
        else:
            lfh = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc,
                              len(comp), len(data), len(nm), 0) + nm
            desc = b""
        body.extend(lfh + comp + desc)
        central.extend(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if zip64 else 20,
                                   20, flags, method, 0, 0x21, crc, len(comp), len(data),
                                   len(nm), 0, 0, 0, 0, 0, off) + nm)
        return len(lfh), pieces

    for name, data, deflate in files:
        lfh, pieces = add(name, data, deflate)
        winname = name.replace("/", "\\")
        bm.append(f'<File Name="{winname}" Size="{len(data)}" LfhSize="{lfh}">')
        for k, i in enumerate(range(0, len(data), BLOCK)):
            h = hashlib.new(h_name, data[i:i + BLOCK]).digest()
            if lie and name == "Assets/big.bin" and k == 1:
                h = hashlib.new(h_name, b"not this block").digest()
            hs = base64.b64encode(h).decode()
            if pieces is not None:
                bm.append(f'<Block Hash="{hs}" Size="{len(pieces[k])}"/>')
            else:
                bm.append(f'<Block Hash="{hs}"/>')
        bm.append("</File>")
    bm.append("</BlockMap>")
    if extra_file:
        add("Assets/extra.txt", b"not in the block map\n", False)
    add("AppxBlockMap.xml", "".join(bm).encode(), not stored_parts)
    ct = ('<?xml version="1.0" encoding="UTF-8"?>'
          '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          + ct_types +
          '<Override PartName="/AppxBlockMap.xml" ContentType="application/vnd.ms-appx.blockmap+xml"/>'
          '</Types>').encode()
    add("[Content_Types].xml", ct, not stored_parts)
    n = len(files) + 2 + (1 if extra_file else 0)
    if zip64:
        z_at = len(body) + len(central)
        z = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), len(body))
        loc = struct.pack("<IIQI", 0x07064B50, 0, z_at, 1)
        eocd = z + loc + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF,
                                     0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), len(body), 0)
    return bytes(body) + bytes(central) + eocd


main()
