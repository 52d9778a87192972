//! Hostile Authenticode signatures, made by DER surgery on the PKCS#7 of a validly signed PE.
//!
//! Standard library only, and no parser types: the surgery works on raw DER bytes (a small
//! TLV walker and length encoder), so the inputs do not depend on how the verifier parses
//! them. Shared by `authenticode/tests/hostile.rs` and the bench generator
//! `benches/examples/hostile_gen.rs` (which includes this file by path).
//!
//! Entry points: [`SignedPe::parse`] (a signed PE whose certificate table ends the file),
//! [`Spec::parse`] / [`Spec::name`] (variant names such as `attr-values-desc-100000`), and
//! [`generate`] (the hostile PE for a spec). The certificate table of the result is written
//! here (Security directory entry + one `WIN_CERTIFICATE` {dwLength, 0x0200, 2} padded to 8
//! bytes); nothing else in the PE changes (not even the CheckSum), so the image digest still
//! matches the signature.
#![allow(dead_code, clippy::indexing_slicing)]

use std::fmt;

/// Errors of the generator: the input was not the expected shape.
pub type Res<T> = Result<T, String>;

// ------------------------------------------------------------------------------------------
// DER primitives.

/// The DER encoding of a length.
pub fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut v = vec![0x80 | (bytes.len() - skip) as u8];
    v.extend_from_slice(&bytes[skip..]);
    v
}

/// Tag and length of a TLV whose content is `len` bytes.
pub fn header(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(len));
    v
}

/// A whole TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = header(tag, content.len());
    v.extend_from_slice(content);
    v
}

/// A SEQUENCE of already-encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// The DER of an OBJECT IDENTIFIER given as arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        body.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    tlv(0x06, &body)
}

/// An unknown private OID (1.3.6.1.4.1.99999.1).
pub fn unknown_oid() -> Vec<u8> {
    oid(&[1, 3, 6, 1, 4, 1, 99999, 1])
}
/// SPC_NESTED_SIGNATURE (1.3.6.1.4.1.311.2.4.1).
pub fn nested_oid() -> Vec<u8> {
    oid(&[1, 3, 6, 1, 4, 1, 311, 2, 4, 1])
}
/// SPC_RFC3161_TIMESTAMP (1.3.6.1.4.1.311.3.3.1).
pub fn rfc3161_oid() -> Vec<u8> {
    oid(&[1, 3, 6, 1, 4, 1, 311, 3, 3, 1])
}
/// PKCS #9 countersignature (1.2.840.113549.1.9.6).
pub fn countersig_oid() -> Vec<u8> {
    oid(&[1, 2, 840, 113549, 1, 9, 6])
}

/// One TLV inside a buffer: `start` (tag), `body` (content start), `end` (past the content).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv {
    /// Offset of the tag.
    pub start: usize,
    /// The tag byte (low-tag-number form only).
    pub tag: u8,
    /// Offset of the content.
    pub body: usize,
    /// Offset past the content.
    pub end: usize,
}

impl Tlv {
    /// The content bytes.
    pub fn content<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.body..self.end]
    }
    /// The whole TLV.
    pub fn bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start..self.end]
    }
}

/// Reads the TLV at `at` (definite lengths, single-byte tags).
pub fn read_tlv(buf: &[u8], at: usize) -> Res<Tlv> {
    let tag = *buf.get(at).ok_or("TLV past the end")?;
    if tag & 0x1f == 0x1f {
        return Err(format!("multi-byte tag at {at}"));
    }
    let l0 = *buf.get(at + 1).ok_or("no length byte")?;
    let (len, body) = if l0 < 0x80 {
        (l0 as usize, at + 2)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 8 {
            return Err(format!("indefinite or oversized length at {at}"));
        }
        let b = buf.get(at + 2..at + 2 + n).ok_or("length past the end")?;
        (
            b.iter().fold(0usize, |a, &x| (a << 8) | x as usize),
            at + 2 + n,
        )
    };
    let end = body
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| format!("content of the TLV at {at} runs past the end"))?;
    Ok(Tlv {
        start: at,
        tag,
        body,
        end,
    })
}

/// The children of a constructed TLV.
pub fn children(buf: &[u8], t: &Tlv) -> Res<Vec<Tlv>> {
    let mut v = Vec::new();
    let mut at = t.body;
    while at < t.end {
        let c = read_tlv(&buf[..t.end], at)?;
        at = c.end;
        v.push(c);
    }
    Ok(v)
}

/// The nodes from the root TLV (at offset 0) down along `path` (child indices).
pub fn walk(buf: &[u8], path: &[usize]) -> Res<Vec<Tlv>> {
    let mut nodes = vec![read_tlv(buf, 0)?];
    for &i in path {
        let last = nodes[nodes.len() - 1];
        let c = children(buf, &last)?;
        nodes.push(
            *c.get(i)
                .ok_or_else(|| format!("no child {i} on the path {path:?}"))?,
        );
    }
    Ok(nodes)
}

/// The node at `path`.
pub fn node(buf: &[u8], path: &[usize]) -> Res<Tlv> {
    Ok(walk(buf, path)?[path.len()])
}

/// The bytes before and after the node at `path` once that node is replaced by `new_len`
/// bytes (a whole TLV, or nothing): the ancestors' headers are re-encoded for their new
/// lengths. `prefix ++ replacement ++ suffix` is the new encoding.
pub fn hole(buf: &[u8], path: &[usize], new_len: usize) -> Res<(Vec<u8>, Vec<u8>)> {
    let nodes = walk(buf, path)?;
    // Bottom up: each ancestor's new content length (a child's header may grow too).
    let mut contents = vec![0usize; nodes.len()];
    let mut child_new = new_len;
    for i in (0..nodes.len() - 1).rev() {
        let (a, c) = (nodes[i], nodes[i + 1]);
        contents[i] = a.end - a.body + child_new - (c.end - c.start);
        child_new = 1 + der_len(contents[i]).len() + contents[i];
    }
    let mut prefix = Vec::new();
    let mut suffix_parts = Vec::new();
    for (i, w) in nodes.windows(2).enumerate() {
        let (a, c) = (w[0], w[1]);
        prefix.extend(header(a.tag, contents[i]));
        prefix.extend_from_slice(&buf[a.body..c.start]);
        suffix_parts.push(&buf[c.end..a.end]);
    }
    let suffix = suffix_parts.into_iter().rev().flatten().copied().collect();
    Ok((prefix, suffix))
}

/// Replaces the node at `path` by `new_tlv` (which may be empty: removal).
pub fn splice(buf: &[u8], path: &[usize], new_tlv: &[u8]) -> Res<Vec<u8>> {
    let (p, s) = hole(buf, path, new_tlv.len())?;
    let mut out = Vec::with_capacity(p.len() + new_tlv.len() + s.len());
    out.extend(p);
    out.extend_from_slice(new_tlv);
    out.extend(s);
    Ok(out)
}

/// Inserts `new` (whole TLVs) as children of the node at `parent`, before child `index`
/// (or at the end when `index` is the number of children).
pub fn insert_children(buf: &[u8], parent: &[usize], index: usize, new: &[u8]) -> Res<Vec<u8>> {
    let p = node(buf, parent)?;
    let kids = children(buf, &p)?;
    let at = kids.get(index).map_or(p.end, |k| k.start);
    let mut t = header(p.tag, p.end - p.body + new.len());
    t.extend_from_slice(&buf[p.body..at]);
    t.extend_from_slice(new);
    t.extend_from_slice(&buf[at..p.end]);
    splice(buf, parent, &t)
}

/// `SEQUENCE { SEQUENCE { ... { NULL } } }`, `depth` SEQUENCEs deep, built in one pass.
pub fn deep_sequences(depth: usize) -> Vec<u8> {
    let mut lens = Vec::with_capacity(depth);
    let mut inner = 2usize; // NULL
    for _ in 0..depth {
        lens.push(inner);
        inner += 1 + der_len(inner).len();
    }
    let mut out = Vec::with_capacity(inner);
    for &l in lens.iter().rev() {
        out.extend(header(0x30, l));
    }
    out.extend([0x05, 0x00]);
    out
}

// ------------------------------------------------------------------------------------------
// The signed PE and its PKCS#7.

/// A signed PE whose certificate table (one entry) is at the end of the file.
#[derive(Clone)]
pub struct SignedPe {
    /// The file up to the certificate table.
    pub image: Vec<u8>,
    /// Offset of the Security directory entry (VirtualAddress, Size).
    pub dir_entry: usize,
    /// The PKCS#7 ContentInfo of the first entry (without padding).
    pub pkcs7: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Res<u16> {
    let s = b.get(at..at + 2).ok_or("PE too short")?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], at: usize) -> Res<u32> {
    let s = b.get(at..at + 4).ok_or("PE too short")?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl SignedPe {
    /// Reads the Security directory and the first WIN_CERTIFICATE of `file`.
    pub fn parse(file: &[u8]) -> Res<Self> {
        let pe = u32_at(file, 0x3c)? as usize;
        if file.get(pe..pe + 4) != Some(b"PE\0\0") {
            return Err("not a PE file".into());
        }
        let opt = pe + 24;
        let dd = match u16_at(file, opt)? {
            0x10b => opt + 96,
            0x20b => opt + 112,
            m => return Err(format!("optional header magic {m:#x}")),
        };
        let dir_entry = dd + 4 * 8;
        let off = u32_at(file, dir_entry)? as usize;
        let size = u32_at(file, dir_entry + 4)? as usize;
        if off == 0 || off + size != file.len() {
            return Err("the certificate table must be present and end the file".into());
        }
        let data = file.get(off + 8..).ok_or("truncated WIN_CERTIFICATE")?;
        let ci = read_tlv(data, 0)?;
        Ok(Self {
            image: file[..off].to_vec(),
            dir_entry,
            pkcs7: ci.bytes(data).to_vec(),
        })
    }

    /// The PE with `pkcs7` as its only certificate-table entry.
    pub fn with_pkcs7(&self, pkcs7: &[u8]) -> Res<Vec<u8>> {
        let padded = (8 + pkcs7.len()).div_ceil(8) * 8;
        let length = u32::try_from(padded).map_err(|_| "signature larger than 4 GiB")?;
        let mut out = Vec::with_capacity(self.image.len() + padded);
        out.extend_from_slice(&self.image);
        out[self.dir_entry + 4..self.dir_entry + 8].copy_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&0x0200u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(pkcs7);
        out.resize(self.image.len() + padded, 0);
        Ok(out)
    }
}

/// Paths (child indices from the ContentInfo) to the parts of a SignedData we operate on.
#[derive(Clone, Debug)]
pub struct P7 {
    /// The SignedData SEQUENCE.
    pub signed_data: Vec<usize>,
    /// The `[0] IMPLICIT` certificate set, if any.
    pub certs: Option<Vec<usize>>,
    /// The (first) SignerInfo.
    pub signer_info: Vec<usize>,
}

impl P7 {
    /// Finds the parts in the ContentInfo `p7`.
    pub fn locate(p7: &[u8]) -> Res<Self> {
        let signed_data = vec![1, 0];
        let sd = node(p7, &signed_data)?;
        let kids = children(p7, &sd)?;
        let certs = kids.iter().position(|k| k.tag == 0xa0).map(|i| {
            let mut p = signed_data.clone();
            p.push(i);
            p
        });
        let si_set = kids
            .iter()
            .rposition(|k| k.tag == 0x31)
            .ok_or("no SignerInfos")?;
        let mut signer_info = signed_data.clone();
        signer_info.extend([si_set, 0]);
        Ok(Self {
            signed_data,
            certs,
            signer_info,
        })
    }

    /// The certificates (whole TLVs).
    pub fn certificates(&self, p7: &[u8]) -> Res<Vec<Vec<u8>>> {
        let Some(path) = &self.certs else {
            return Ok(vec![]);
        };
        let set = node(p7, path)?;
        Ok(children(p7, &set)?
            .iter()
            .map(|c| c.bytes(p7).to_vec())
            .collect())
    }

    /// `path ++ tail`.
    pub fn at(path: &[usize], tail: &[usize]) -> Vec<usize> {
        let mut p = path.to_vec();
        p.extend_from_slice(tail);
        p
    }

    /// The index, among the TBSCertificate's children, of `serialNumber` (1 when a version
    /// `[0]` is present).
    fn tbs_base(cert: &[u8]) -> Res<usize> {
        let tbs = node(cert, &[0])?;
        let first = children(cert, &tbs)?;
        Ok(usize::from(first.first().map(|t| t.tag) == Some(0xa0)))
    }

    /// Index (in the certificate set) of the signer's certificate: the one whose issuer and
    /// serial number equal the SignerInfo's sid.
    pub fn signer_cert_index(&self, p7: &[u8]) -> Res<usize> {
        let sid_issuer = node(p7, &Self::at(&self.signer_info, &[1, 0]))?.bytes(p7);
        let sid_serial = node(p7, &Self::at(&self.signer_info, &[1, 1]))?.bytes(p7);
        for (i, c) in self.certificates(p7)?.iter().enumerate() {
            let b = Self::tbs_base(c)?;
            if node(c, &[0, b])?.bytes(c) == sid_serial
                && node(c, &[0, b + 2])?.bytes(c) == sid_issuer
            {
                return Ok(i);
            }
        }
        Err("the signer's certificate is not in the set".into())
    }

    /// Path of a TBSCertificate field of certificate `index`: 0 serial, 1 signature
    /// algorithm, 2 issuer, 3 validity, 4 subject, 5 subjectPublicKeyInfo.
    pub fn tbs_field(&self, p7: &[u8], index: usize, field: usize) -> Res<Vec<usize>> {
        let certs = self.certs.as_ref().ok_or("no certificates")?;
        let cert = Self::at(certs, &[index]);
        let c = node(p7, &cert)?.bytes(p7).to_vec();
        Ok(Self::at(&cert, &[0, Self::tbs_base(&c)? + field]))
    }

    /// Adds one unsigned attribute `{ oid, SET { values } }` at the end of the SignerInfo's
    /// unsigned attributes (creating them if absent). `values` are whole TLVs.
    pub fn add_unsigned_attr(&self, p7: &[u8], attr_oid: &[u8], values: &[u8]) -> Res<Vec<u8>> {
        let set = [header(0x31, values.len()).as_slice(), values].concat();
        let attr = seq(&[attr_oid, &set]);
        let si = node(p7, &self.signer_info)?;
        let kids = children(p7, &si)?;
        match kids.iter().position(|k| k.tag == 0xa1) {
            Some(ua) => {
                let ua_path = Self::at(&self.signer_info, &[ua]);
                let n = children(p7, &kids[ua])?.len();
                insert_children(p7, &ua_path, n, &attr)
            }
            None => insert_children(p7, &self.signer_info, kids.len(), &tlv(0xa1, &attr)),
        }
    }

    /// The path of the first value of the last unsigned attribute.
    pub fn last_unsigned_value(&self, p7: &[u8]) -> Res<Vec<usize>> {
        let si = node(p7, &self.signer_info)?;
        let kids = children(p7, &si)?;
        let ua = kids
            .iter()
            .position(|k| k.tag == 0xa1)
            .ok_or("no unsigned attributes")?;
        let n = children(p7, &kids[ua])?.len();
        Ok(Self::at(&self.signer_info, &[ua, n - 1, 1, 0]))
    }
}

// ------------------------------------------------------------------------------------------
// Orders and a deterministic PRNG.

/// The order of the elements of a generated SET OF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// DER order (already sorted).
    Asc,
    /// Reverse DER order: the worst case of an insertion sort.
    Desc,
    /// A fixed pseudo-random permutation.
    Random,
    /// All elements equal (duplicates).
    Equal,
}

impl Order {
    /// All orders.
    pub const ALL: [Order; 4] = [Order::Asc, Order::Desc, Order::Random, Order::Equal];

    fn name(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
            Order::Random => "random",
            Order::Equal => "equal",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == s)
    }

    /// The element indices in this order.
    pub fn indices(self, n: usize) -> Vec<u32> {
        let mut v: Vec<u32> = (0..n as u32).collect();
        match self {
            Order::Asc => {}
            Order::Desc => v.reverse(),
            Order::Equal => v.iter_mut().for_each(|x| *x = 0),
            Order::Random => {
                let mut s = 0x9e37_79b9_7f4a_7c15u64;
                for i in (1..v.len()).rev() {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    v.swap(i, (s % (i as u64 + 1)) as usize);
                }
            }
        }
        v
    }
}

fn filler(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// ------------------------------------------------------------------------------------------
// The variants.

/// Where a deeply nested TLV goes: the value of an unsigned attribute of this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeepAt {
    /// 1.3.6.1.4.1.99999.1.
    Unknown,
    /// A nested signature.
    Nested,
    /// An RFC 3161 time stamp.
    Rfc3161,
    /// A legacy countersignature.
    Countersig,
}

/// Which name of the signer's certificate carries the huge RDN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdnAt {
    /// The subject.
    Subject,
    /// The issuer, and the SignerInfo's sid issuer with it (so the signer is still found).
    Issuer,
}

/// One hostile variant. [`Spec::name`] and [`Spec::parse`] convert to and from names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `attr-values-ORDER-N`: an unknown unsigned attribute with N values (OCTET STRINGs of
    /// 4 bytes).
    AttrValues(Order, usize),
    /// `certs-copies-N`: the certificate set is N copies of the signer's certificate.
    CertCopies(usize),
    /// `certs-distinct-ORDER-N`: the signer's chain plus N small distinct certificates.
    CertDistinct(Order, usize),
    /// `certs-junk-ORDER-N`: the signer's chain plus N distinct 7-byte SEQUENCEs (one OCTET
    /// STRING each), not certificates.
    CertJunk(Order, usize),
    /// `nested-copies-N`: N copies of a small (certificate-less) signature as nested
    /// signatures.
    NestedCopies(usize),
    /// `nested-distinct-ORDER-N`: N small signatures differing in their signature bytes.
    NestedDistinct(Order, usize),
    /// `nested-tiny-ORDER-N`: N distinct 24-byte ContentInfos (signedData, a SignedData of
    /// a version and an OCTET STRING) as nested signatures.
    NestedTiny(Order, usize),
    /// `nested-chain-N`: a signature nesting a signature ... N levels deep.
    NestedChain(usize),
    /// `chain-N`: the signer's issuer replaced by a chain of N generated CA certificates.
    Chain(usize),
    /// `chain-loop-N`: the same, the last one issued by the first.
    ChainLoop(usize),
    /// `chain-fanout-N`: N levels of two candidate issuers each.
    ChainFanout(usize),
    /// `serial-N`: the signer's serial number (certificate and sid) N bytes long.
    Serial(usize),
    /// `modulus-N`: the signer's RSA modulus N bytes long.
    Modulus(usize),
    /// `deep-AT-N`: an unsigned attribute value of N nested SEQUENCEs.
    Deep(DeepAt, usize),
    /// `rdn-AT-ORDER-N`: one RDN of N AVAs in the signer's subject or issuer.
    Rdn(RdnAt, Order, usize),
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Spec {
    /// The variant's name.
    pub fn name(&self) -> String {
        match *self {
            Spec::AttrValues(o, n) => format!("attr-values-{}-{n}", o.name()),
            Spec::CertCopies(n) => format!("certs-copies-{n}"),
            Spec::CertDistinct(o, n) => format!("certs-distinct-{}-{n}", o.name()),
            Spec::CertJunk(o, n) => format!("certs-junk-{}-{n}", o.name()),
            Spec::NestedCopies(n) => format!("nested-copies-{n}"),
            Spec::NestedDistinct(o, n) => format!("nested-distinct-{}-{n}", o.name()),
            Spec::NestedTiny(o, n) => format!("nested-tiny-{}-{n}", o.name()),
            Spec::NestedChain(n) => format!("nested-chain-{n}"),
            Spec::Chain(n) => format!("chain-{n}"),
            Spec::ChainLoop(n) => format!("chain-loop-{n}"),
            Spec::ChainFanout(n) => format!("chain-fanout-{n}"),
            Spec::Serial(n) => format!("serial-{n}"),
            Spec::Modulus(n) => format!("modulus-{n}"),
            Spec::Deep(at, n) => format!(
                "deep-{}-{n}",
                match at {
                    DeepAt::Unknown => "unknown",
                    DeepAt::Nested => "nested",
                    DeepAt::Rfc3161 => "rfc3161",
                    DeepAt::Countersig => "countersig",
                }
            ),
            Spec::Rdn(at, o, n) => format!(
                "rdn-{}-{}-{n}",
                match at {
                    RdnAt::Subject => "subject",
                    RdnAt::Issuer => "issuer",
                },
                o.name()
            ),
        }
    }

    /// Parses a name made by [`Spec::name`].
    pub fn parse(name: &str) -> Option<Self> {
        let parts: Vec<&str> = name.split('-').collect();
        let n: usize = parts.last()?.parse().ok()?;
        let o = |i: usize| parts.get(i).and_then(|s| Order::parse(s));
        Some(match parts.as_slice() {
            ["attr", "values", _, _] => Spec::AttrValues(o(2)?, n),
            ["certs", "copies", _] => Spec::CertCopies(n),
            ["certs", "distinct", _, _] => Spec::CertDistinct(o(2)?, n),
            ["certs", "junk", _, _] => Spec::CertJunk(o(2)?, n),
            ["nested", "copies", _] => Spec::NestedCopies(n),
            ["nested", "distinct", _, _] => Spec::NestedDistinct(o(2)?, n),
            ["nested", "tiny", _, _] => Spec::NestedTiny(o(2)?, n),
            ["nested", "chain", _] => Spec::NestedChain(n),
            ["chain", _] => Spec::Chain(n),
            ["chain", "loop", _] => Spec::ChainLoop(n),
            ["chain", "fanout", _] => Spec::ChainFanout(n),
            ["serial", _] => Spec::Serial(n),
            ["modulus", _] => Spec::Modulus(n),
            ["deep", at, _] => Spec::Deep(
                match *at {
                    "unknown" => DeepAt::Unknown,
                    "nested" => DeepAt::Nested,
                    "rfc3161" => DeepAt::Rfc3161,
                    "countersig" => DeepAt::Countersig,
                    _ => return None,
                },
                n,
            ),
            ["rdn", at, _, _] => Spec::Rdn(
                match *at {
                    "subject" => RdnAt::Subject,
                    "issuer" => RdnAt::Issuer,
                    _ => return None,
                },
                o(2)?,
                n,
            ),
            _ => return None,
        })
    }

    /// The variants at their default sizes (`large`: the largest sizes of the brief too).
    pub fn catalogue(large: bool) -> Vec<Spec> {
        let mut v = Vec::new();
        for o in Order::ALL {
            v.push(Spec::AttrValues(o, 10_000));
            v.push(Spec::AttrValues(o, 100_000));
            if large {
                v.push(Spec::AttrValues(o, 1_000_000));
            }
        }
        v.push(Spec::CertCopies(10_000));
        if large {
            v.push(Spec::CertCopies(100_000));
        }
        for o in Order::ALL {
            v.push(Spec::CertDistinct(o, 10_000));
            if large {
                v.push(Spec::CertDistinct(o, 100_000));
            }
            v.push(Spec::CertJunk(o, 100_000));
            if large {
                v.push(Spec::CertJunk(o, 1_000_000));
            }
        }
        v.push(Spec::NestedCopies(5_000));
        for o in [Order::Asc, Order::Desc, Order::Random] {
            v.push(Spec::NestedDistinct(o, 5_000));
        }
        if large {
            v.push(Spec::NestedCopies(20_000));
            v.push(Spec::NestedDistinct(Order::Desc, 20_000));
            v.push(Spec::NestedDistinct(Order::Random, 20_000));
        }
        for o in Order::ALL {
            v.push(Spec::NestedTiny(o, 100_000));
        }
        v.push(Spec::NestedChain(10_000));
        v.extend([
            Spec::Chain(1_000),
            Spec::ChainLoop(1_000),
            Spec::ChainFanout(500),
        ]);
        v.extend([Spec::Serial(1 << 20), Spec::Modulus(100_000)]);
        for at in [
            DeepAt::Unknown,
            DeepAt::Nested,
            DeepAt::Rfc3161,
            DeepAt::Countersig,
        ] {
            v.push(Spec::Deep(at, 100_000));
        }
        for at in [RdnAt::Subject, RdnAt::Issuer] {
            for o in Order::ALL {
                v.push(Spec::Rdn(at, o, 100_000));
            }
        }
        v
    }
}

/// `Name` with one RDN holding the given AVAs.
fn name_one_rdn(avas: &[u8]) -> Vec<u8> {
    tlv(0x30, &tlv(0x31, avas))
}

/// `CN=s`.
fn name_cn(s: &str) -> Vec<u8> {
    name_one_rdn(&seq(&[&oid(&[2, 5, 4, 3]), &tlv(0x0c, s.as_bytes())]))
}

fn validity() -> Vec<u8> {
    seq(&[&tlv(0x17, b"000101000000Z"), &tlv(0x17, b"491231235959Z")])
}

fn sha256_rsa() -> Vec<u8> {
    seq(&[&oid(&[1, 2, 840, 113549, 1, 1, 11]), &[0x05, 0x00]])
}

/// A small certificate (about 110 bytes) with serial `0x01_xxxxxx`; certificates with
/// different `i` have equal lengths and differ first in the serial, so their DER order is
/// the order of `i`.
fn mini_cert(i: u32) -> Vec<u8> {
    let b = i.to_be_bytes();
    let ecdsa = seq(&[&oid(&[1, 2, 840, 10045, 4, 3, 2])]);
    let name = name_cn("x");
    let spki = seq(&[
        &seq(&[
            &oid(&[1, 2, 840, 10045, 2, 1]),
            &oid(&[1, 2, 840, 10045, 3, 1, 7]),
        ]),
        &tlv(0x03, &[0x00, 0x04]),
    ]);
    let tbs = seq(&[
        &tlv(0x02, &[0x01, b[1], b[2], b[3]]),
        &ecdsa,
        &name,
        &validity(),
        &name,
        &spki,
    ]);
    seq(&[&tbs, &ecdsa, &tlv(0x03, &[0x00, 0x30, 0x00])])
}

/// A CA certificate (basicConstraints CA, keyUsage keyCertSign) with a junk signature.
fn ca_cert(serial: u32, issuer: &[u8], subject: &[u8], spki: &[u8]) -> Vec<u8> {
    let bc = seq(&[
        &oid(&[2, 5, 29, 19]),
        &[0x01, 0x01, 0xff],
        &tlv(0x04, &seq(&[&[0x01, 0x01, 0xff]])),
    ]);
    let ku = seq(&[
        &oid(&[2, 5, 29, 15]),
        &[0x01, 0x01, 0xff],
        &tlv(0x04, &[0x03, 0x02, 0x01, 0x06]),
    ]);
    let mut ser = vec![0x01];
    ser.extend(serial.to_be_bytes());
    let tbs = seq(&[
        &tlv(0xa0, &[0x02, 0x01, 0x02]),
        &tlv(0x02, &ser),
        &sha256_rsa(),
        issuer,
        &validity(),
        subject,
        spki,
        &tlv(0xa3, &seq(&[&bc, &ku])),
    ]);
    let mut sig = vec![0x00];
    sig.extend(filler(256, serial as u8));
    seq(&[&tbs, &sha256_rsa(), &tlv(0x03, &sig)])
}

/// The same ContentInfo without its certificate set.
fn without_certs(p7: &[u8]) -> Res<Vec<u8>> {
    let loc = P7::locate(p7)?;
    match &loc.certs {
        Some(c) => splice(p7, c, &[]),
        None => Ok(p7.to_vec()),
    }
}

/// Replaces the certificate set by `certs` (whole TLVs, concatenated).
fn with_certs(p7: &[u8], certs: &[u8]) -> Res<Vec<u8>> {
    let loc = P7::locate(p7)?;
    let path = loc.certs.ok_or("no certificate set")?;
    let set = [header(0xa0, certs.len()).as_slice(), certs].concat();
    splice(p7, &path, &set)
}

/// The hostile PKCS#7 for `spec`, made from the PKCS#7 `p7` of a valid signature.
pub fn generate_pkcs7(p7: &[u8], spec: Spec) -> Res<Vec<u8>> {
    let loc = P7::locate(p7)?;
    match spec {
        Spec::AttrValues(order, n) => {
            let mut values = Vec::with_capacity(n * 6);
            for i in order.indices(n) {
                values.extend([0x04, 0x04]);
                values.extend(i.to_be_bytes());
            }
            loc.add_unsigned_attr(p7, &unknown_oid(), &values)
        }
        Spec::CertCopies(n) => {
            let certs = loc.certificates(p7)?;
            let leaf = &certs[loc.signer_cert_index(p7)?];
            with_certs(p7, &leaf.repeat(n))
        }
        Spec::CertDistinct(order, n) | Spec::CertJunk(order, n) => {
            // The generated elements are shorter than the real certificates, so they come
            // before them in DER order: `asc` puts the real ones last, the others first.
            let real = loc.certificates(p7)?.concat();
            let mut all = Vec::new();
            if order != Order::Asc {
                all.extend_from_slice(&real);
            }
            for i in order.indices(n) {
                if matches!(spec, Spec::CertDistinct(..)) {
                    all.extend(mini_cert(i));
                } else {
                    all.extend([
                        0x30,
                        0x05,
                        0x04,
                        0x03,
                        (i >> 16) as u8,
                        (i >> 8) as u8,
                        i as u8,
                    ]);
                }
            }
            if order == Order::Asc {
                all.extend_from_slice(&real);
            }
            with_certs(p7, &all)
        }
        Spec::NestedCopies(n) => {
            let small = without_certs(p7)?;
            loc.add_unsigned_attr(p7, &nested_oid(), &small.repeat(n))
        }
        Spec::NestedDistinct(order, n) => {
            let small = without_certs(p7)?;
            let sl = P7::locate(&small)?;
            let si = node(&small, &sl.signer_info)?;
            let sig = children(&small, &si)?
                .into_iter()
                .rfind(|k| k.tag == 0x04)
                .ok_or("no signature value")?;
            let at = sig.end - 4;
            let mut values = Vec::with_capacity(small.len() * n);
            for i in order.indices(n) {
                let start = values.len();
                values.extend_from_slice(&small);
                values[start + at..start + at + 4].copy_from_slice(&i.to_be_bytes());
            }
            loc.add_unsigned_attr(p7, &nested_oid(), &values)
        }
        Spec::NestedTiny(order, n) => {
            let signed_data = oid(&[1, 2, 840, 113549, 1, 7, 2]);
            let mut values = Vec::with_capacity(n * 24);
            for i in order.indices(n) {
                let mut octets = vec![0x04, 0x04];
                octets.extend(i.to_be_bytes());
                let sd = seq(&[&[0x02, 0x01, 0x01], &octets]);
                values.extend(seq(&[&signed_data, &tlv(0xa0, &sd)]));
            }
            loc.add_unsigned_attr(p7, &nested_oid(), &values)
        }
        Spec::NestedChain(depth) => {
            let small = without_certs(p7)?;
            let placeholder = [0x05, 0x00];
            let inner_t =
                P7::locate(&small)?.add_unsigned_attr(&small, &nested_oid(), &placeholder)?;
            let inner_path = P7::locate(&inner_t)?.last_unsigned_value(&inner_t)?;
            let outer_t = loc.add_unsigned_attr(p7, &nested_oid(), &placeholder)?;
            let outer_path = P7::locate(&outer_t)?.last_unsigned_value(&outer_t)?;
            // Inside out: the innermost is `small`; each level wraps the one below.
            let mut len = small.len();
            let mut prefixes = Vec::with_capacity(depth);
            let mut suffixes = Vec::with_capacity(depth);
            for level in 0..depth {
                let (t, path) = if level + 1 == depth {
                    (&outer_t, &outer_path)
                } else {
                    (&inner_t, &inner_path)
                };
                let (p, s) = hole(t, path, len)?;
                len += p.len() + s.len();
                prefixes.push(p);
                suffixes.push(s);
            }
            let mut out = Vec::with_capacity(len);
            for p in prefixes.iter().rev() {
                out.extend_from_slice(p);
            }
            out.extend_from_slice(&small);
            for s in &suffixes {
                out.extend_from_slice(s);
            }
            Ok(out)
        }
        Spec::Chain(depth) | Spec::ChainLoop(depth) | Spec::ChainFanout(depth) => {
            let certs = loc.certificates(p7)?;
            let li = loc.signer_cert_index(p7)?;
            let leaf = &certs[li];
            let lb = P7::tbs_base(leaf)?;
            let leaf_issuer = node(leaf, &[0, lb + 2])?.bytes(leaf).to_vec();
            // The real issuer's key, so that the first link verifies; the real issuer goes.
            let issuer_spki = certs
                .iter()
                .find_map(|c| {
                    let b = P7::tbs_base(c).ok()?;
                    (node(c, &[0, b + 4]).ok()?.bytes(c) == leaf_issuer.as_slice())
                        .then(|| node(c, &[0, b + 5]).ok().map(|s| s.bytes(c).to_vec()))
                        .flatten()
                })
                .ok_or("the signer's issuer is not in the set")?;
            let name = |k: usize| {
                if k == 0 {
                    leaf_issuer.clone()
                } else {
                    name_cn(&format!("hostile CA {k}"))
                }
            };
            let mut all = leaf.clone();
            let per_level = if matches!(spec, Spec::ChainFanout(_)) {
                2
            } else {
                1
            };
            for k in 0..depth {
                let issuer = if matches!(spec, Spec::ChainLoop(_)) && k + 1 == depth {
                    name(0)
                } else {
                    name(k + 1)
                };
                for j in 0..per_level {
                    all.extend(ca_cert(
                        (k * per_level + j) as u32,
                        &issuer,
                        &name(k),
                        &issuer_spki,
                    ));
                }
            }
            with_certs(p7, &all)
        }
        Spec::Serial(n) => {
            let mut content = vec![0x01];
            content.extend(filler(n.saturating_sub(1), 7));
            let serial = tlv(0x02, &content);
            let li = loc.signer_cert_index(p7)?;
            let p = splice(p7, &loc.tbs_field(p7, li, 0)?, &serial)?;
            splice(&p, &P7::at(&loc.signer_info, &[1, 1]), &serial)
        }
        Spec::Modulus(n) => {
            let li = loc.signer_cert_index(p7)?;
            let spki_path = loc.tbs_field(p7, li, 5)?;
            let bits_path = P7::at(&spki_path, &[1]);
            let bits = node(p7, &bits_path)?;
            let rsa = &bits.content(p7)[1..];
            let e = node(rsa, &[1])?.bytes(rsa).to_vec();
            let mut m = vec![0x00];
            m.extend(std::iter::repeat_n(0xc5, n));
            let key = seq(&[&tlv(0x02, &m), &e]);
            let mut bit_content = vec![0x00];
            bit_content.extend(key);
            splice(p7, &bits_path, &tlv(0x03, &bit_content))
        }
        Spec::Deep(at, depth) => {
            let attr_oid = match at {
                DeepAt::Unknown => unknown_oid(),
                DeepAt::Nested => nested_oid(),
                DeepAt::Rfc3161 => rfc3161_oid(),
                DeepAt::Countersig => countersig_oid(),
            };
            loc.add_unsigned_attr(p7, &attr_oid, &deep_sequences(depth))
        }
        Spec::Rdn(at, order, n) => {
            let mut avas = Vec::with_capacity(n * 17);
            let cn = oid(&[2, 5, 4, 3]);
            for i in order.indices(n) {
                avas.extend(seq(&[&cn, &tlv(0x0c, format!("{i:08}").as_bytes())]));
            }
            let name = name_one_rdn(&avas);
            let li = loc.signer_cert_index(p7)?;
            match at {
                RdnAt::Subject => splice(p7, &loc.tbs_field(p7, li, 4)?, &name),
                RdnAt::Issuer => {
                    let p = splice(p7, &loc.tbs_field(p7, li, 2)?, &name)?;
                    splice(&p, &P7::at(&loc.signer_info, &[1, 0]), &name)
                }
            }
        }
    }
}

/// The hostile PE for `spec`.
pub fn generate(base: &SignedPe, spec: Spec) -> Res<Vec<u8>> {
    base.with_pkcs7(&generate_pkcs7(&base.pkcs7, spec)?)
}
