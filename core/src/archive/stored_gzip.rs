//! A gzip member of stored (uncompressed) deflate blocks, written by hand: for bodies that are
//! already compressed, this costs a CRC-32 and a copy, where a deflate library at level 0 still
//! runs its block machinery over every byte.

use std::io::{self, Write};

/// The largest stored block deflate allows (RFC 1951, 3.2.4).
const MAX_STORED: usize = 65_535;
/// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): nothing that varies between builds.
pub(super) const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// A stored block's header: BFINAL/BTYPE, then LEN and NLEN.
pub(super) const BLOCK_HEADER: u64 = 5;
/// CRC-32 and ISIZE.
pub(super) const TRAILER: u64 = 8;

// Where each byte of a member lies follows from the rule `StoredGzip` writes by: a block of
// exactly 65 535 bytes each time that many are in, and at the end one final block with what
// is left (empty when the data is a whole number of blocks). So a member of `len` data bytes has
// `len / 65 535 + 1` blocks, and data byte `pos` is in block `pos / 65 535`. The in-place
// `.tar.gz` (`super::gzip_layout`) places bytes by these functions; `StoredGzip` below and the
// tests hold the two to the same bytes.

/// The length of a stored member holding `len` data bytes.
pub(super) fn member_len(len: u64) -> u64 {
    HEADER.len() as u64 + BLOCK_HEADER * (len / MAX_STORED as u64 + 1) + len + TRAILER
}

/// Where data byte `pos` lies, from the member's first byte.
pub(super) fn data_offset(pos: u64) -> u64 {
    HEADER.len() as u64 + BLOCK_HEADER * (pos / MAX_STORED as u64 + 1) + pos
}

/// The data bytes of the block holding data byte `pos` that come at or after it.
pub(super) fn left_in_block(pos: u64) -> u64 {
    MAX_STORED as u64 - pos % MAX_STORED as u64
}

/// Whether data byte `pos` is the first of a block (so its block header comes just before it).
pub(super) fn starts_block(pos: u64) -> bool {
    pos.is_multiple_of(MAX_STORED as u64)
}

/// The header of the block that starts at data byte `pos` in a member of `len` data bytes.
pub(super) fn header_at(pos: u64, len: u64) -> [u8; 5] {
    let max = MAX_STORED as u64;
    if pos / max == len / max {
        block_header(true, (len % max) as usize)
    } else {
        block_header(false, MAX_STORED)
    }
}

#[derive(Debug)]
pub struct StoredGzip<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    /// Uncompressed length modulo 2^32 (gzip's ISIZE).
    len: u32,
    /// Bytes waiting to fill a block, so block boundaries depend only on the byte stream.
    pending: Vec<u8>,
}

fn block_header(last: bool, len: usize) -> [u8; 5] {
    let n = len as u16;
    let [a, b] = n.to_le_bytes();
    let [c, d] = (!n).to_le_bytes();
    [u8::from(last), a, b, c, d]
}

impl<W: Write> StoredGzip<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        Ok(Self {
            out,
            crc: crc32fast::Hasher::new(),
            len: 0,
            pending: Vec::with_capacity(MAX_STORED),
        })
    }

    fn emit(out: &mut W, data: &[u8], last: bool) -> io::Result<()> {
        out.write_all(&block_header(last, data.len()))?;
        out.write_all(data)
    }

    /// Writes the final (possibly empty) block and the CRC-32/ISIZE trailer.
    pub fn finish(mut self) -> io::Result<W> {
        Self::emit(&mut self.out, &self.pending, true)?;
        self.out.write_all(&self.crc.finalize().to_le_bytes())?;
        self.out.write_all(&self.len.to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for StoredGzip<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        self.crc.update(data);
        self.len = self.len.wrapping_add(n as u32);
        if !self.pending.is_empty() {
            let take = (MAX_STORED - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == MAX_STORED {
                Self::emit(&mut self.out, &self.pending, false)?;
                self.pending.clear();
            }
        }
        // Full blocks straight from the caller's buffer: no extra copy.
        while data.len() >= MAX_STORED {
            Self::emit(&mut self.out, &data[..MAX_STORED], false)?;
            data = &data[MAX_STORED..];
        }
        self.pending.extend_from_slice(data);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn stored(chunks: &[&[u8]]) -> Vec<u8> {
        let mut g = StoredGzip::new(Vec::new()).unwrap();
        for c in chunks {
            g.write_all(c).unwrap();
        }
        g.finish().unwrap()
    }

    #[test]
    fn decodes_with_flate2_and_gzip() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        for split in [1usize, 1000, 65_535, 65_536, 299_999] {
            let bytes = stored(&[&data[..split], &data[split..]]);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "split at {split}");
        }
        let empty = stored(&[]);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn output_depends_only_on_the_bytes_not_on_how_they_were_split() {
        let data = vec![9u8; 200_000];
        assert_eq!(
            stored(&[&data]),
            stored(&[&data[..5], &data[5..70_000], &data[70_000..]])
        );
        // Overhead: 5 bytes per 64 KiB block plus 18 bytes of header and trailer.
        assert!(stored(&[&data]).len() <= data.len() + 5 * (data.len() / MAX_STORED + 1) + 18);
    }
}
