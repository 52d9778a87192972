//! Where signing time goes, per phase, summed over every file this process signs: off
//! unless the environment variable `CODESEAL_TIMINGS` is `1` when the first span starts,
//! and then one clock read per phase boundary. `codeseal sign` prints the table at the end
//! of a batch (see docs/performance.md for the figures it gave).
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

/// A step of signing one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Opening the input and creating the temp file beside the output.
    Open,
    /// Reading and checking the headers (PE: the checked reader).
    Parse,
    /// The one pass that hashes the image and copies it to the temp file.
    HashCopy,
    /// Early flushes of a large copy, on a thread of their own during [`Phase::HashCopy`]
    /// (not counted in the total: they overlap it).
    EarlyFlush,
    /// The key's signature, including its check with the public key.
    Key,
    /// Building the signed attributes and the SignedData around the signature.
    Cms,
    /// Writing the certificate table and patching the headers in the temp file.
    Write,
    /// Reading the result back and checking it (digest, signatures).
    Check,
    /// `fsync` of the temp file.
    Fsync,
    /// Permissions and the rename over the output.
    Rename,
    /// `fsync` of the output's directory.
    DirSync,
}

impl Phase {
    /// Every phase, in the order a file goes through them.
    pub const ALL: [Phase; 11] = [
        Phase::Open,
        Phase::Parse,
        Phase::HashCopy,
        Phase::EarlyFlush,
        Phase::Key,
        Phase::Cms,
        Phase::Write,
        Phase::Check,
        Phase::Fsync,
        Phase::Rename,
        Phase::DirSync,
    ];

    /// A short name for the table.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Open => "open + temp file",
            Phase::Parse => "parse headers",
            Phase::HashCopy => "hash + copy",
            Phase::EarlyFlush => "(early flushes)",
            Phase::Key => "key (sign + check)",
            Phase::Cms => "CMS",
            Phase::Write => "write table",
            Phase::Check => "output check",
            Phase::Fsync => "fsync file",
            Phase::Rename => "rename",
            Phase::DirSync => "fsync directory",
        }
    }

    /// Whether the phase runs beside another one rather than after it.
    fn overlaps(self) -> bool {
        self == Phase::EarlyFlush
    }

    fn index(self) -> usize {
        Phase::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// One phase's totals: nanoseconds and count.
struct Slot(AtomicU64, AtomicU64);

static SLOTS: [Slot; Phase::ALL.len()] =
    [const { Slot(AtomicU64::new(0), AtomicU64::new(0)) }; Phase::ALL.len()];

fn slot(phase: Phase) -> Option<&'static Slot> {
    SLOTS.get(phase.index())
}

/// Whether timings are being taken (`CODESEAL_TIMINGS=1`).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CODESEAL_TIMINGS").is_some_and(|v| v == "1"))
}

/// Times `phase` until the returned guard is dropped.
pub fn span(phase: Phase) -> Span {
    Span(enabled().then(|| (phase, Instant::now())))
}

/// A running [`span`].
#[must_use = "the phase is timed until the guard is dropped"]
pub struct Span(Option<(Phase, Instant)>);

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((phase, start)) = self.0.take() {
            let n = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if let Some(s) = slot(phase) {
                s.0.fetch_add(n, Ordering::Relaxed);
                s.1.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The totals so far: each phase, how many times it ran and its summed wall time (over
/// every thread), or `None` when timings are off.
pub fn totals() -> Option<Vec<(Phase, u64, Duration)>> {
    enabled().then(|| {
        Phase::ALL
            .iter()
            .filter_map(|p| {
                let s = slot(*p)?;
                Some((
                    *p,
                    s.1.load(Ordering::Relaxed),
                    Duration::from_nanos(s.0.load(Ordering::Relaxed)),
                ))
            })
            .collect()
    })
}

/// The totals as a table, per file signed (`files`), or `None` when timings are off.
pub fn report(files: usize) -> Option<String> {
    let totals = totals()?;
    let files = files.max(1) as f64;
    let sum: f64 = totals
        .iter()
        .filter(|t| !t.0.overlaps())
        .map(|t| t.2.as_secs_f64())
        .sum();
    let mut out = format!(
        "{:<20} {:>7} {:>12} {:>7}\n",
        "phase", "count", "ms per file", "share"
    );
    for (p, n, d) in totals {
        let s = d.as_secs_f64();
        out.push_str(&format!(
            "{:<20} {:>7} {:>12.3} {:>6.1}%\n",
            p.name(),
            n,
            s * 1e3 / files,
            if sum > 0.0 && !p.overlaps() {
                100.0 * s / sum
            } else {
                0.0
            }
        ));
    }
    out.push_str(&format!(
        "{:<20} {:>7} {:>12.3}\n",
        "total",
        "",
        sum * 1e3 / files
    ));
    Some(out)
}
