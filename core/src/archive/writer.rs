//! Deterministic tar writer with gzip framing that never recompresses compressed blobs.
//!
//! With gzip output, each run of entries is one gzip member: entries whose bodies are already
//! compressed (gzip, zstd, xz, bzip2 magic) go into members of stored deflate blocks, which cost
//! a CRC and a copy; everything else (tar headers, JSON, configs) is deflated. Concatenated
//! members are one valid gzip file (RFC 1952), readable by `gzip -d` and `tar -xzf`.

use std::io::{self, Read, Write};

use flate2::Compression as Level;
use flate2::GzBuilder;
use flate2::write::GzEncoder;

use super::header::{BLOCK, Header};
use super::stored_gzip::StoredGzip;

/// Bodies at least this large that are not already compressed get the fast level, so an
/// uncompressed multi-GiB layer does not cost minutes of deflate.
const LARGE_BODY: u64 = 8 * 1024 * 1024;
const COPY_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCompression {
    None,
    Gzip,
}

impl OutputCompression {
    /// Picks the compression from the output's file name: `.tar.gz`/`.tgz` gzip, else none.
    pub fn from_path(path: &std::path::Path) -> Self {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            OutputCompression::Gzip
        } else {
            OutputCompression::None
        }
    }
}

enum Sink<W: Write> {
    Plain(W),
    Gzip {
        member: Option<(Member<W>, u32)>,
        idle: Option<W>,
    },
}

/// One gzip member in progress: deflated, or stored blocks for already-compressed bodies.
enum Member<W: Write> {
    Deflate(Box<GzEncoder<W>>),
    Stored(StoredGzip<W>),
}

impl<W: Write> Member<W> {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Member::Deflate(e) => e.write_all(data),
            Member::Stored(s) => s.write_all(data),
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Member::Deflate(e) => e.finish(),
            Member::Stored(s) => s.finish(),
        }
    }
}

/// Writes a tar archive entry by entry, with fixed metadata so output depends only on content.
pub struct TarWriter<W: Write> {
    sink: Sink<W>,
    mtime: u64,
    buf: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for TarWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWriter")
            .field("mtime", &self.mtime)
            .finish_non_exhaustive()
    }
}

/// Whether `head` (the first bytes of a body) starts like a compressed stream.
pub fn looks_compressed(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(b"BZh")
}

/// The deflate level of an entry whose body of `size` bytes starts with `head` (its first
/// `min(size, 8)` bytes): 0 (stored blocks) for a compressed body, 1 for another large one, 6
/// otherwise. A new gzip member starts wherever the level changes; the in-place `.tar.gz`
/// (`super::gzip_layout`) follows the same rule, so both write the same bytes.
pub(super) fn level_for(head: &[u8], size: u64) -> u32 {
    if looks_compressed(head) {
        0
    } else if size >= LARGE_BODY {
        1
    } else {
        6
    }
}

impl<W: Write> TarWriter<W> {
    /// `mtime` is written on every entry (the bundle's `created` time).
    pub fn new(out: W, compression: OutputCompression, mtime: u64) -> Self {
        let sink = match compression {
            OutputCompression::None => Sink::Plain(out),
            OutputCompression::Gzip => Sink::Gzip {
                member: None,
                idle: Some(out),
            },
        };
        Self {
            sink,
            mtime,
            buf: vec![0u8; COPY_BUFFER],
        }
    }

    /// Ensures the gzip member in progress uses `level`, starting a new member if needed.
    fn select_level(&mut self, level: u32) -> io::Result<()> {
        if let Sink::Gzip { member, idle } = &mut self.sink {
            if member.as_ref().is_some_and(|(_, l)| *l == level) {
                return Ok(());
            }
            if let Some((enc, _)) = member.take() {
                *idle = Some(enc.finish()?);
            }
            let out = idle
                .take()
                .ok_or_else(|| io::Error::other("gzip output lost after an earlier error"))?;
            let m = if level == 0 {
                Member::Stored(StoredGzip::new(out)?)
            } else {
                // No file name, no mtime, OS "unknown": the header depends only on the level.
                Member::Deflate(Box::new(
                    GzBuilder::new()
                        .operating_system(255)
                        .write(out, Level::new(level)),
                ))
            };
            *member = Some((m, level));
        }
        Ok(())
    }

    fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::Plain(w) => w.write_all(data),
            Sink::Gzip {
                member: Some((enc, _)),
                ..
            } => enc.write_all(data),
            Sink::Gzip { member: None, .. } => Err(io::Error::other("no gzip member open")),
        }
    }

    /// Appends a regular file of exactly `size` bytes read from `body`; fails if `body` holds
    /// fewer or more bytes. Returns the bytes written, hashed on the way when `hasher` is given.
    pub fn append(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        mut body: impl Read,
        mut on_chunk: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| {
            // Sniff the head to pick stored or deflated framing for this entry.
            let mut head_len = 0;
            let want = size.min(8) as usize;
            while head_len < want {
                let n = body.read(&mut buf[head_len..want])?;
                if n == 0 {
                    break;
                }
                head_len += n;
            }
            self.select_level(level_for(&buf[..head_len], size))?;
            self.write_raw(&Header::encode_regular(path, size, mode, self.mtime))?;
            let mut written = head_len as u64;
            on_chunk(&buf[..head_len]);
            let head: Vec<u8> = buf[..head_len].to_vec();
            self.write_raw(&head)?;
            loop {
                let n = body.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                written += n as u64;
                if written > size {
                    return Err(io::Error::other(format!(
                        "{path}: source grew while it was being written (more than {size} bytes)"
                    )));
                }
                on_chunk(&buf[..n]);
                self.write_raw(&buf[..n])?;
            }
            if written != size {
                return Err(io::Error::other(format!(
                    "{path}: source has {written} bytes, expected {size} (changed while being written?)"
                )));
            }
            let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            self.write_raw(&[0u8; BLOCK][..pad as usize])
        })();
        self.buf = buf;
        result
    }

    /// Ends the gzip member in progress, without the end-of-archive marker: the entries
    /// appended so far as finished members (`super::gzip_layout` makes a run of deflated
    /// entries this way, with this writer's own calls, so the bytes are the streaming ones).
    pub(super) fn finish_member(self) -> io::Result<W> {
        match self.sink {
            Sink::Plain(w) => Ok(w),
            Sink::Gzip {
                member: Some((enc, _)),
                ..
            } => enc.finish(),
            Sink::Gzip {
                member: None,
                idle: Some(w),
            } => Ok(w),
            Sink::Gzip {
                member: None,
                idle: None,
            } => Err(io::Error::other("gzip output lost after an earlier error")),
        }
    }

    /// Writes the end-of-archive marker and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.select_level(6)?;
        self.write_raw(&[0u8; 2 * BLOCK])?;
        match self.sink {
            Sink::Plain(w) => Ok(w),
            Sink::Gzip {
                member: Some((enc, _)),
                ..
            } => enc.finish(),
            Sink::Gzip { member: None, .. } => Err(io::Error::other("no gzip member open")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reader::{TarReader, open_stream};
    use super::*;

    fn build(compression: OutputCompression, entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new(), compression, 1_700_000_000);
        for (p, b) in entries {
            w.append(p, b.len() as u64, 0o644, &b[..], |_| {}).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let (stream, _) = open_stream(bytes).unwrap();
        let mut r = TarReader::new(stream);
        let mut out = vec![];
        while let Some(h) = r.next_header().unwrap() {
            out.push((h.path, r.read_body_to_vec().unwrap()));
        }
        r.finish().unwrap();
        out
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Level::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trip_plain_and_gzip() {
        let layer = gz(&vec![3u8; 50_000]);
        let entries = vec![
            ("a.json", b"{\"x\":1}".to_vec()),
            ("blobs/sha256/l", layer),
            ("empty", vec![]),
        ];
        for c in [OutputCompression::None, OutputCompression::Gzip] {
            let got = read_all(&build(c, &entries));
            let want: Vec<(String, Vec<u8>)> = entries
                .iter()
                .map(|(p, b)| (p.to_string(), b.clone()))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn output_is_deterministic_and_gnu_tar_reads_it() {
        let entries = vec![("x", vec![1u8; 1000]), ("y", gz(b"hello"))];
        let a = build(OutputCompression::Gzip, &entries);
        assert_eq!(a, build(OutputCompression::Gzip, &entries));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tar.gz");
        std::fs::write(&p, &a).unwrap();
        // GNU tar is required, not optional: without it this test must fail, not pass unread.
        let out = std::process::Command::new("tar")
            .arg("-tvzf")
            .arg(&p)
            .output()
            .unwrap_or_else(|e| {
                panic!("tar: {e}; GNU tar is needed: run scripts/setup.sh or `apt-get install tar`")
            });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains(" x") && listing.contains(" y"),
            "{listing}"
        );
    }

    #[test]
    fn compressed_bodies_are_stored_not_recompressed() {
        // A gzip body that deflate could still shrink (a level-0 gzip of text): stored framing
        // keeps every byte, so the .tar.gz cannot be smaller than the body. Random bytes alone
        // would prove nothing: deflate stores incompressible input by itself. The block-by-block
        // proof, on whole bundles, is tests/tests/framing.rs.
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("line {} of a layer\n", i % 89).into_bytes())
            .collect();
        let mut e = GzEncoder::new(Vec::new(), Level::none());
        e.write_all(&text).unwrap();
        let body = e.finish().unwrap();
        let plain = build(OutputCompression::None, &[("l", body.clone())]);
        let gzipped = build(OutputCompression::Gzip, &[("l", body.clone())]);
        assert!(
            gzipped.len() > body.len() && (gzipped.len() as f64) < plain.len() as f64 * 1.01,
            "{} vs a body of {} in a tar of {}",
            gzipped.len(),
            body.len(),
            plain.len()
        );
    }

    #[test]
    fn a_body_of_the_wrong_size_fails() {
        let mut w = TarWriter::new(Vec::new(), OutputCompression::None, 0);
        assert!(w.append("a", 10, 0o644, &b"short"[..], |_| {}).is_err());
        let mut w = TarWriter::new(Vec::new(), OutputCompression::None, 0);
        assert!(w.append("a", 2, 0o644, &b"longer"[..], |_| {}).is_err());
    }
}
