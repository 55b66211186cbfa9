//! The `.tar.gz` laid out before any blob is read: where every byte of [`TarWriter`]'s output
//! lies, so compressed blobs can be written straight to their offsets, in any order, in
//! parallel, as a `.tar` is (the bundler's in-place writer).
//!
//! It is possible because of how the writer frames gzip (FORMAT.md §2.3). A compressed body goes
//! into a member of stored blocks, whose length is exact (10-byte header, 5 bytes per block of at
//! most 65 535 bytes, the data, an 8-byte trailer) and whose block boundaries depend only on the
//! member's byte stream (`stored_gzip`). Everything else (tar headers and bodies that are not
//! compressed: JSON, scripts) is in memory, and each run of it is deflated here first, by
//! `TarWriter` itself, so its bytes are the streaming ones. Only a stored member's CRC-32 waits
//! for its bodies: it is combined from each piece's once they are in. The output is the streaming
//! writer's, byte for byte (the tests below hold the two to it): one format, two ways to write it.

use std::borrow::Cow;
use std::io;

pub use crc32fast::Hasher as Crc32;

use super::header::{BLOCK, Header};
use super::stored_gzip::{
    BLOCK_HEADER, HEADER, TRAILER, data_offset, header_at, left_in_block, member_len, starts_block,
};
use super::writer::{OutputCompression, TarWriter, level_for};

/// An entry's body, as the layout needs to know it.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// In memory: framed by the writer's own rule (its first bytes pick the level).
    Bytes(&'a [u8]),
    /// Written later into its place in a stored member. It must start with a compression magic
    /// (`looks_compressed`), as the streaming writer would have found: the caller knows it, or
    /// checks it on the first bytes it writes.
    Compressed,
}

/// One tar entry, in archive order.
#[derive(Debug, Clone, Copy)]
pub struct LayoutEntry<'a> {
    pub path: &'a str,
    pub size: u64,
    pub mode: u32,
    pub body: Body<'a>,
}

/// Where every byte of a `.tar.gz` lies, and the bytes known before any compressed body is read.
#[derive(Debug)]
pub struct GzipLayout<'a> {
    members: Vec<Member<'a>>,
    total: u64,
}

#[derive(Debug)]
enum Member<'a> {
    /// A deflated member, made whole in memory, at its offset.
    Deflated {
        at: u64,
        bytes: Vec<u8>,
    },
    Stored(StoredMember<'a>),
}

/// A stored member: its offset, its data length, and its data as pieces in stream order.
#[derive(Debug)]
struct StoredMember<'a> {
    at: u64,
    len: u64,
    pieces: Vec<Piece<'a>>,
}

#[derive(Debug)]
enum Piece<'a> {
    /// Tar headers, padding, in-memory bodies.
    Known { pos: u64, bytes: Cow<'a, [u8]> },
    /// Entry `entry`'s compressed body, written by the caller through its [`BodySlot`].
    Body { pos: u64, size: u64, entry: usize },
}

/// Where one compressed body goes: data bytes `pos..pos + size` of the stored member at `at`.
/// Plain numbers: copied into each writer, parallel writers share nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySlot {
    at: u64,
    len: u64,
    pos: u64,
    size: u64,
}

impl BodySlot {
    /// The body's length.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the framed bytes of body bytes `rel..` start in the file: the block header first
    /// when a block starts at `rel`.
    pub fn offset(&self, rel: u64) -> u64 {
        let pos = self.pos + rel;
        let header = if starts_block(pos) { BLOCK_HEADER } else { 0 };
        self.at + data_offset(pos) - header
    }

    /// How many bytes body bytes `rel..rel + n` take framed: theirs and the block headers
    /// before them.
    pub fn framed_len(&self, rel: u64, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.at + data_offset(self.pos + rel + n - 1) + 1 - self.offset(rel)
    }

    /// Frames body bytes `rel..rel + n` into `out` (which must hold `framed_len(rel, n)`):
    /// block headers where blocks start, and `fill` called on each run of data bytes in order,
    /// to fill it (from a file, a download). Returns the bytes used, to be written at
    /// `offset(rel)`.
    pub fn frame(
        &self,
        rel: u64,
        n: u64,
        out: &mut [u8],
        mut fill: impl FnMut(&mut [u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let need = self.framed_len(rel, n);
        if rel + n > self.size || (out.len() as u64) < need {
            return Err(io::Error::other(format!(
                "internal error: framing bytes {rel}..{} of a body of {} into {} bytes (needs {need})",
                rel + n,
                self.size,
                out.len()
            )));
        }
        let (mut pos, end, mut used) = (self.pos + rel, self.pos + rel + n, 0usize);
        while pos < end {
            if starts_block(pos) {
                let header = header_at(pos, self.len);
                out[used..used + header.len()].copy_from_slice(&header);
                used += header.len();
            }
            let run = left_in_block(pos).min(end - pos) as usize;
            fill(&mut out[used..used + run])?;
            used += run;
            pos += run as u64;
        }
        Ok(used)
    }
}

/// Frames known bytes at data byte `pos` of a member of `len` bytes (header included when a
/// block starts there): what `BodySlot::frame` does, for bytes already in memory.
fn frame_known(at: u64, len: u64, pos: u64, bytes: &[u8]) -> io::Result<(u64, Vec<u8>)> {
    let slot = BodySlot {
        at,
        len,
        pos,
        size: bytes.len() as u64,
    };
    let n = bytes.len() as u64;
    let mut out = vec![0u8; usize::try_from(slot.framed_len(0, n)).map_err(io::Error::other)?];
    let mut rest = bytes;
    let used = slot.frame(0, n, &mut out, |run| {
        let (now, later) = rest.split_at(run.len());
        run.copy_from_slice(now);
        rest = later;
        Ok(())
    })?;
    out.truncate(used);
    Ok((slot.offset(0), out))
}

/// A run of consecutive entries of one level: one gzip member.
struct Run {
    level: u32,
    entries: std::ops::Range<usize>,
}

impl<'a> GzipLayout<'a> {
    /// Lays out `entries` as `TarWriter` writes them with gzip output and this `mtime`.
    pub fn new(entries: &[LayoutEntry<'a>], mtime: u64) -> io::Result<Self> {
        let level = |e: &LayoutEntry<'_>| match e.body {
            Body::Bytes(b) => level_for(&b[..b.len().min(8)], e.size),
            Body::Compressed => 0,
        };
        let mut runs: Vec<Run> = vec![];
        for (i, e) in entries.iter().enumerate() {
            if let Body::Bytes(b) = e.body
                && b.len() as u64 != e.size
            {
                return Err(io::Error::other(format!(
                    "{}: {} bytes in memory, listed as {}",
                    e.path,
                    b.len(),
                    e.size
                )));
            }
            let l = level(e);
            match runs.last_mut() {
                Some(run) if run.level == l => run.entries.end = i + 1,
                _ => runs.push(Run {
                    level: l,
                    entries: i..i + 1,
                }),
            }
        }
        let mut layout = Self {
            members: vec![],
            total: 0,
        };
        // The end marker joins a last level-6 member, as `TarWriter::finish` selects level 6.
        let marker_joins = runs.last().is_some_and(|r| r.level == 6);
        let last = runs.len();
        for (i, run) in runs.iter().enumerate() {
            let with_marker = marker_joins && i + 1 == last;
            if run.level == 0 {
                layout.push_stored(&entries[run.entries.clone()], run.entries.start, mtime);
            } else {
                let mut w = TarWriter::new(Vec::new(), OutputCompression::Gzip, mtime);
                for e in &entries[run.entries.clone()] {
                    let Body::Bytes(b) = e.body else {
                        return Err(io::Error::other(
                            "internal error: a deflated body not in memory",
                        ));
                    };
                    w.append(e.path, e.size, e.mode, b, |_| {})?;
                }
                let bytes = if with_marker {
                    w.finish()?
                } else {
                    w.finish_member()?
                };
                layout.push_deflated(bytes);
            }
        }
        if !marker_joins {
            let bytes = TarWriter::new(Vec::new(), OutputCompression::Gzip, mtime).finish()?;
            layout.push_deflated(bytes);
        }
        Ok(layout)
    }

    fn push_deflated(&mut self, bytes: Vec<u8>) {
        let at = self.total;
        self.total += bytes.len() as u64;
        self.members.push(Member::Deflated { at, bytes });
    }

    /// A stored member: every entry's header, body (known, or a slot) and padding, in order.
    fn push_stored(&mut self, entries: &[LayoutEntry<'a>], first: usize, mtime: u64) {
        let mut pieces = vec![];
        // Known bytes not yet made a piece: they end at `pos`.
        let mut known: Vec<u8> = vec![];
        let mut pos = 0u64;
        let flush = |pieces: &mut Vec<Piece<'a>>, known: &mut Vec<u8>, pos: u64| {
            if !known.is_empty() {
                let start = pos - known.len() as u64;
                let bytes = Cow::Owned(std::mem::take(known));
                pieces.push(Piece::Known { pos: start, bytes });
            }
        };
        for (i, e) in entries.iter().enumerate() {
            known.extend_from_slice(&Header::encode_regular(e.path, e.size, e.mode, mtime));
            pos += BLOCK as u64;
            flush(&mut pieces, &mut known, pos);
            pieces.push(match e.body {
                // Kept borrowed: a big in-memory body (a chart) is not copied here.
                Body::Bytes(b) => Piece::Known {
                    pos,
                    bytes: Cow::Borrowed(b),
                },
                Body::Compressed => Piece::Body {
                    pos,
                    size: e.size,
                    entry: first + i,
                },
            });
            let pad = (BLOCK as u64 - e.size % BLOCK as u64) % BLOCK as u64;
            known.resize(known.len() + pad as usize, 0);
            pos += e.size + pad;
        }
        flush(&mut pieces, &mut known, pos);
        let at = self.total;
        self.total += member_len(pos);
        self.members.push(Member::Stored(StoredMember {
            at,
            len: pos,
            pieces,
        }));
    }

    /// The whole file's length.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Each compressed body's slot, by entry index, in archive order.
    pub fn slots(&self) -> Vec<(usize, BodySlot)> {
        let mut out = vec![];
        for m in &self.members {
            let Member::Stored(s) = m else { continue };
            for p in &s.pieces {
                if let Piece::Body { pos, size, entry } = *p {
                    let slot = BodySlot {
                        at: s.at,
                        len: s.len,
                        pos,
                        size,
                    };
                    out.push((entry, slot));
                }
            }
        }
        out
    }

    /// Writes every byte known before the bodies: deflated members, and each stored member's
    /// gzip header, block headers and known pieces (the trailers wait for the bodies' CRCs).
    pub fn write_known(
        &self,
        mut write_at: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        for m in &self.members {
            match m {
                Member::Deflated { at, bytes } => write_at(*at, bytes)?,
                Member::Stored(s) => {
                    write_at(s.at, &HEADER)?;
                    for p in &s.pieces {
                        if let Piece::Known { pos, bytes } = p {
                            let (at, framed) = frame_known(s.at, s.len, *pos, bytes)?;
                            write_at(at, &framed)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes each stored member's end once every body is in: the final block header when that
    /// block is empty (no piece starts it), then CRC-32 (combined from each piece's, a body's from
    /// `crc(entry)`, which must cover exactly its bytes) and ISIZE.
    pub fn write_trailers(
        &self,
        crc: impl Fn(usize) -> Option<Crc32>,
        mut write_at: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        for m in &self.members {
            let Member::Stored(s) = m else { continue };
            let mut whole = Crc32::new();
            for p in &s.pieces {
                match p {
                    Piece::Known { bytes, .. } => {
                        let mut c = Crc32::new();
                        c.update(bytes);
                        whole.combine(&c);
                    }
                    Piece::Body { size, entry, .. } => match crc(*entry) {
                        Some(c) if c.total_len() == *size => whole.combine(&c),
                        _ => {
                            return Err(io::Error::other(format!(
                                "internal error: entry {entry}'s body was not written whole"
                            )));
                        }
                    },
                }
            }
            if starts_block(s.len) {
                write_at(
                    s.at + data_offset(s.len) - BLOCK_HEADER,
                    &header_at(s.len, s.len),
                )?;
            }
            let mut trailer = [0u8; TRAILER as usize];
            trailer[..4].copy_from_slice(&whole.finalize().to_le_bytes());
            trailer[4..].copy_from_slice(&(s.len as u32).to_le_bytes());
            write_at(s.at + member_len(s.len) - TRAILER, &trailer)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
