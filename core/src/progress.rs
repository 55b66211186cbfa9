//! How long-running library work reports progress without printing: binaries implement
//! [`Reporter`] (progress bars, or nothing) and pass it in.

/// Receives progress events. Every method has a no-op default; implementations must be cheap,
/// as `advance` is called once per chunk (about 1 MiB).
pub trait Reporter: Send + Sync {
    /// A phase begins (`"verify"`, `"fetch"`, `"write"`, `"push"`), with its total bytes if known.
    fn start(&self, _phase: &str, _total_bytes: Option<u64>) {}
    /// Work on one item (a file, blob or image) begins.
    fn item(&self, _name: &str, _bytes: Option<u64>) {}
    /// The item finished.
    fn item_done(&self, _name: &str) {}
    /// Bytes processed since the last call.
    fn advance(&self, _bytes: u64) {}
    /// Bytes of one item processed since the last call, for work that runs several items at
    /// once (parallel fetch and push): counts toward the phase total too.
    fn item_advance(&self, _name: &str, bytes: u64) {
        self.advance(bytes);
    }
    /// A message worth showing a human (e.g. a retry), never required for correctness.
    fn note(&self, _message: &str) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {}

/// Bytes in a short human form (1.5 MB), decimal like most tools.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
