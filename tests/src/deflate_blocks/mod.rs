//! An independent gzip/deflate block walker (RFC 1951, RFC 1952): decodes a gzip file of one or
//! more members and records, for every deflate block, its type and the range of uncompressed
//! output it produces, so tests can prove which bytes of a bundle were stored and which deflated.
//!
//! Written from the RFCs rather than on top of flate2 or the bundle reader: a test that checks
//! the writer's framing with the writer's own code (or with a library that hides block
//! boundaries) would prove nothing. It decodes every Huffman block in full, because the only way
//! to find where a compressed block ends is to decode it. Speed does not matter here (bundles
//! under test are a few MiB), clarity does: Huffman codes are decoded bit by bit, as in zlib's
//! `puff.c`.

use std::ops::Range;

/// BTYPE of a deflate block (RFC 1951, 3.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockKind {
    /// BTYPE=00: the bytes themselves, no compression.
    Stored,
    /// BTYPE=01: Huffman-coded with the fixed codes.
    Fixed,
    /// BTYPE=10: Huffman-coded with codes sent in the block.
    Dynamic,
}

impl BlockKind {
    /// Whether the block's bytes went through a compressor (fixed or dynamic Huffman).
    pub fn is_compressed(self) -> bool {
        self != BlockKind::Stored
    }
}

/// One deflate block: its type, which gzip member it belongs to, and the offsets of the
/// uncompressed stream (all members concatenated) that it produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub member: usize,
    pub output: Range<u64>,
}

/// A whole gzip file, decoded: its uncompressed bytes, its blocks in order, and how many
/// members it has.
#[derive(Debug, Clone)]
pub struct Walk {
    pub output: Vec<u8>,
    pub blocks: Vec<Block>,
    pub members: usize,
}

impl Walk {
    /// The blocks that produce any byte of `range` of the output (empty blocks never do).
    pub fn blocks_over(&self, range: Range<u64>) -> &[Block] {
        if range.is_empty() {
            return &[];
        }
        // Blocks are in output order and contiguous, so both ends can be binary-searched.
        let first = self.blocks.partition_point(|b| b.output.end <= range.start);
        let end = self.blocks.partition_point(|b| b.output.start < range.end);
        &self.blocks[first..end.max(first)]
    }

    /// The parts of `range` produced by blocks for which `wanted` is false, merged; empty when
    /// every byte of `range` comes from a wanted block.
    pub fn outside(
        &self,
        range: Range<u64>,
        wanted: impl Fn(BlockKind) -> bool,
    ) -> Vec<Range<u64>> {
        let mut bad: Vec<Range<u64>> = Vec::new();
        for b in self.blocks_over(range.clone()) {
            if wanted(b.kind) || b.output.is_empty() {
                continue;
            }
            let part = b.output.start.max(range.start)..b.output.end.min(range.end);
            match bad.last_mut() {
                Some(last) if last.end == part.start => last.end = part.end,
                _ => bad.push(part),
            }
        }
        bad
    }
}

/// Decodes a gzip file of one or more members (RFC 1952, 2.2), checking every header, CRC-32
/// and ISIZE, and that nothing follows the last member.
pub fn walk_gzip(bytes: &[u8]) -> Result<Walk, String> {
    let mut walk = Walk {
        output: Vec::new(),
        blocks: Vec::new(),
        members: 0,
    };
    let mut pos = 0;
    while pos < bytes.len() || walk.members == 0 {
        let member = walk.members;
        let start = pos;
        pos = gzip_header(bytes, pos).map_err(|e| format!("member {member} at {start}: {e}"))?;
        let out_start = walk.output.len();
        let mut bits = Bits::new(bytes, pos);
        inflate(&mut bits, &mut walk.output, |kind, output| {
            walk.blocks.push(Block {
                kind,
                member,
                output,
            })
        })
        .map_err(|e| format!("member {member} at {start}: {e}"))?;
        pos = bits.byte_aligned();
        let trailer = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("member {member}: truncated trailer"))?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        let data = &walk.output[out_start..];
        if crc != crc32(data) {
            return Err(format!("member {member}: CRC-32 mismatch"));
        }
        if isize != data.len() as u32 {
            return Err(format!("member {member}: ISIZE mismatch"));
        }
        pos += 8;
        walk.members += 1;
    }
    Ok(walk)
}

/// Decodes a raw deflate stream (no gzip framing, so `members` is 0 and every block's 0).
pub fn walk_deflate(bytes: &[u8]) -> Result<Walk, String> {
    let mut output = Vec::new();
    let mut blocks = Vec::new();
    inflate(&mut Bits::new(bytes, 0), &mut output, |kind, range| {
        blocks.push(Block {
            kind,
            member: 0,
            output: range,
        })
    })?;
    Ok(Walk {
        output,
        blocks,
        members: 0,
    })
}

/// Parses a member header at `pos`; returns where the deflate data starts.
fn gzip_header(b: &[u8], mut pos: usize) -> Result<usize, String> {
    let start = pos;
    // The magic first, so that garbage after the last member is named as such, however short.
    let rest = &b[pos.min(b.len())..];
    if !rest.is_empty() && !rest.starts_with(&[0x1f, 0x8b][..rest.len().min(2)]) {
        return Err("not a gzip member (no 1f 8b)".into());
    }
    let fixed = b.get(pos..pos + 10).ok_or("truncated header")?;
    if fixed[0..2] != [0x1f, 0x8b] {
        return Err("not a gzip member (no 1f 8b)".into());
    }
    if fixed[2] != 8 {
        return Err(format!("compression method {} is not deflate", fixed[2]));
    }
    let flags = fixed[3];
    if flags & 0xe0 != 0 {
        return Err(format!("reserved flag bits set ({flags:#04x})"));
    }
    pos += 10;
    if flags & 0x04 != 0 {
        // FEXTRA: XLEN, then XLEN bytes of subfields.
        let xlen = b.get(pos..pos + 2).ok_or("truncated FEXTRA")?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for (flag, what) in [(0x08, "FNAME"), (0x10, "FCOMMENT")] {
        if flags & flag != 0 {
            let nul = b
                .get(pos..)
                .and_then(|rest| rest.iter().position(|&c| c == 0))
                .ok_or_else(|| format!("{what} has no terminating NUL"))?;
            pos += nul + 1;
        }
    }
    if flags & 0x02 != 0 {
        // FHCRC: the low 16 bits of the CRC-32 of the header up to here.
        let h = b.get(pos..pos + 2).ok_or("truncated FHCRC")?;
        let want = u16::from_le_bytes([h[0], h[1]]);
        if want != crc32(&b[start..pos]) as u16 {
            return Err("header CRC (FHCRC) mismatch".into());
        }
        pos += 2;
    }
    if pos > b.len() {
        return Err("truncated header".into());
    }
    Ok(pos)
}

/// Inflates blocks until the one with BFINAL set, appending to `out` and reporting each block.
fn inflate(
    bits: &mut Bits<'_>,
    out: &mut Vec<u8>,
    mut on_block: impl FnMut(BlockKind, Range<u64>),
) -> Result<(), String> {
    loop {
        let last = bits.take(1)? == 1;
        let start = out.len() as u64;
        let kind = match bits.take(2)? {
            0 => {
                stored(bits, out)?;
                BlockKind::Stored
            }
            1 => {
                let (lit, dist) = fixed_codes();
                codes(bits, out, &lit, &dist)?;
                BlockKind::Fixed
            }
            2 => {
                let (lit, dist) = dynamic_codes(bits)?;
                codes(bits, out, &lit, &dist)?;
                BlockKind::Dynamic
            }
            _ => return Err("block type 11 is reserved".into()),
        };
        on_block(kind, start..out.len() as u64);
        if last {
            return Ok(());
        }
    }
}

/// A stored block (RFC 1951, 3.2.4): to the byte boundary, LEN, NLEN, then LEN bytes.
fn stored(bits: &mut Bits<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let pos = bits.byte_aligned();
    let head = bits
        .data
        .get(pos..pos + 4)
        .ok_or("truncated stored block")?;
    let len = u16::from_le_bytes([head[0], head[1]]);
    let nlen = u16::from_le_bytes([head[2], head[3]]);
    if len != !nlen {
        return Err("stored block LEN and NLEN disagree".into());
    }
    let body = bits
        .data
        .get(pos + 4..pos + 4 + usize::from(len))
        .ok_or("truncated stored block")?;
    out.extend_from_slice(body);
    bits.seek_byte(pos + 4 + usize::from(len));
    Ok(())
}

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// The literal/length and distance codes of a Huffman block, until end-of-block (256).
fn codes(
    bits: &mut Bits<'_>,
    out: &mut Vec<u8>,
    lit: &Huffman,
    dist: &Huffman,
) -> Result<(), String> {
    loop {
        let sym = bits.decode(lit)?;
        match sym {
            0..=255 => out.push(sym as u8),
            256 => return Ok(()),
            257..=285 => {
                let i = usize::from(sym - 257);
                let len = usize::from(LEN_BASE[i]) + bits.take(LEN_EXTRA[i])? as usize;
                let d = usize::from(bits.decode(dist)?);
                if d >= 30 {
                    return Err(format!("invalid distance symbol {d}"));
                }
                let distance = usize::from(DIST_BASE[d]) + bits.take(DIST_EXTRA[d])? as usize;
                if distance > out.len() {
                    return Err(format!("distance {distance} reaches before the output"));
                }
                // Byte by byte: a match may overlap the bytes it is producing.
                let from = out.len() - distance;
                for k in 0..len {
                    out.push(out[from + k]);
                }
            }
            _ => return Err(format!("invalid literal/length symbol {sym}")),
        }
    }
}

/// The fixed codes (RFC 1951, 3.2.6).
fn fixed_codes() -> (Huffman, Huffman) {
    let mut lengths = [0u8; 288];
    for (i, l) in lengths.iter_mut().enumerate() {
        *l = match i {
            0..=143 => 8,
            144..=255 => 9,
            256..=279 => 7,
            _ => 8,
        };
    }
    let lit = Huffman::new(&lengths).unwrap_or_else(|e| unreachable!("fixed codes: {e}"));
    let dist = Huffman::new(&[5u8; 30]).unwrap_or_else(|e| unreachable!("fixed codes: {e}"));
    (lit, dist)
}

/// Reads the code lengths of a dynamic block (RFC 1951, 3.2.7) and builds its codes.
fn dynamic_codes(bits: &mut Bits<'_>) -> Result<(Huffman, Huffman), String> {
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let nlen = bits.take(5)? as usize + 257;
    let ndist = bits.take(5)? as usize + 1;
    let ncode = bits.take(4)? as usize + 4;
    if nlen > 286 || ndist > 30 {
        return Err(format!(
            "too many codes ({nlen} lengths, {ndist} distances)"
        ));
    }
    let mut cl = [0u8; 19];
    for &i in &ORDER[..ncode] {
        cl[i] = bits.take(3)? as u8;
    }
    let cl = Huffman::new(&cl)?;
    let mut lengths = vec![0u8; nlen + ndist];
    let mut i = 0;
    while i < lengths.len() {
        let sym = bits.decode(&cl)?;
        let (value, repeat) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                let prev = *lengths[..i]
                    .last()
                    .ok_or("repeat with no previous length")?;
                (prev, 3 + bits.take(2)? as usize)
            }
            17 => (0, 3 + bits.take(3)? as usize),
            18 => (0, 11 + bits.take(7)? as usize),
            _ => return Err(format!("invalid code-length symbol {sym}")),
        };
        if i + repeat > lengths.len() {
            return Err("code lengths overrun".into());
        }
        lengths[i..i + repeat].fill(value);
        i += repeat;
    }
    if lengths[256] == 0 {
        return Err("no code for end-of-block".into());
    }
    Ok((
        Huffman::new(&lengths[..nlen])?,
        Huffman::new(&lengths[nlen..])?,
    ))
}

/// A canonical Huffman code as counts per length and symbols in code order (as in `puff.c`).
#[derive(Debug)]
struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Result<Self, String> {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        // Over-subscribed codes are invalid; incomplete ones are allowed (a lone distance code
        // is legal), and decoding fails only if an unused code is met.
        let mut left: i32 = 1;
        for &c in &count[1..] {
            left = left * 2 - i32::from(c);
            if left < 0 {
                return Err("over-subscribed Huffman code".into());
            }
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = sym as u16;
                offs[usize::from(l)] += 1;
            }
        }
        count[0] = 0;
        Ok(Self { count, symbol })
    }
}

/// Bits of a byte slice, least significant first (RFC 1951, 3.1.1).
#[derive(Debug)]
struct Bits<'a> {
    data: &'a [u8],
    /// The next bit to read, counted from the start of `data`.
    bit: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], byte: usize) -> Self {
        Self {
            data,
            bit: byte * 8,
        }
    }

    /// `n` bits (at most 16) as a number, first bit least significant.
    fn take(&mut self, n: u8) -> Result<u32, String> {
        let mut v = 0u32;
        for k in 0..n {
            let byte = self
                .data
                .get(self.bit / 8)
                .ok_or("truncated deflate data")?;
            v |= u32::from((byte >> (self.bit % 8)) & 1) << k;
            self.bit += 1;
        }
        Ok(v)
    }

    /// One symbol: Huffman codes are packed most significant bit first, one bit at a time.
    fn decode(&mut self, h: &Huffman) -> Result<u16, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= self.take(1)? as i32;
            let count = i32::from(h.count[len]);
            if code - count < first {
                return Ok(h.symbol[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("invalid Huffman code".into())
    }

    /// Skips to the next byte boundary; returns that byte's offset.
    fn byte_aligned(&mut self) -> usize {
        self.bit = self.bit.div_ceil(8) * 8;
        self.bit / 8
    }

    fn seek_byte(&mut self, byte: usize) {
        self.bit = byte * 8;
    }
}

/// CRC-32 as gzip uses it (RFC 1952, 8: polynomial 0xedb88320, reflected), bit by bit.
pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (n, entry) in table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    let mut c = !0u32;
    for &b in data {
        c = table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests;
