//! Tar surgery for hostile-input tests: parse a plain ustar archive into entries, change them,
//! and write them back with a small independent ustar writer.
//!
//! This deliberately does not reuse `sensei_core::archive`: a test that crafts hostile archives
//! with the code under test would share its blind spots. The writer here can produce what the
//! bundler never does (links, devices, directories, PAX headers, headers whose size lies), and a
//! faithful round trip of a valid bundle is checked by the tests, so a rejection of a crafted copy
//! comes from the modification and not from the writer.

use std::io::Write;

/// A tar block: headers are one block, bodies are padded to a multiple of it.
pub const BLOCK: usize = 512;

/// Tar type flags (POSIX ustar, plus the PAX and GNU extension headers).
pub mod kind {
    pub const REGULAR: u8 = b'0';
    pub const HARD_LINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR_DEVICE: u8 = b'3';
    pub const BLOCK_DEVICE: u8 = b'4';
    pub const DIRECTORY: u8 = b'5';
    pub const FIFO: u8 = b'6';
    /// PAX extended header for the next entry.
    pub const PAX: u8 = b'x';
}

/// Byte ranges of the ustar header fields.
mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHECKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..263;
    pub const VERSION: Range<usize> = 263..265;
    pub const UNAME: Range<usize> = 265..297;
    pub const GNAME: Range<usize> = 297..329;
    pub const DEVMAJOR: Range<usize> = 329..337;
    pub const DEVMINOR: Range<usize> = 337..345;
    pub const PREFIX: Range<usize> = 345..500;
}

/// One tar entry: its header fields and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full path (the ustar `prefix` and `name` joined).
    pub path: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// The type flag, one of [`kind`].
    pub kind: u8,
    /// Link target (links only).
    pub link: String,
    pub uname: String,
    pub gname: String,
    /// Device numbers (device nodes only).
    pub dev_major: u64,
    pub dev_minor: u64,
    /// The size the header claims, when it is to differ from `body.len()` (a lying header).
    pub claimed_size: Option<u64>,
    pub body: Vec<u8>,
}

impl Entry {
    /// A regular file, with the metadata the bundler writes.
    pub fn file(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.to_owned(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            kind: kind::REGULAR,
            link: String::new(),
            uname: String::new(),
            gname: String::new(),
            dev_major: 0,
            dev_minor: 0,
            claimed_size: None,
            body: body.into(),
        }
    }

    /// An entry of another type with an empty body (link, device, directory, FIFO).
    pub fn special(path: &str, kind: u8) -> Self {
        Self {
            kind,
            mode: if kind == kind::DIRECTORY {
                0o755
            } else {
                0o644
            },
            ..Self::file(path, Vec::new())
        }
    }

    /// The size written in the header.
    pub fn header_size(&self) -> u64 {
        self.claimed_size.unwrap_or(self.body.len() as u64)
    }

    /// The 512-byte ustar header, with a correct checksum.
    pub fn header(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        let (prefix, name) = split_path(&self.path);
        put_str(&mut b[field::NAME], name);
        put_str(&mut b[field::PREFIX], prefix);
        put_octal(&mut b[field::MODE], u64::from(self.mode));
        put_octal(&mut b[field::UID], self.uid);
        put_octal(&mut b[field::GID], self.gid);
        put_octal(&mut b[field::SIZE], self.header_size());
        put_octal(&mut b[field::MTIME], self.mtime);
        b[field::TYPEFLAG] = self.kind;
        put_str(&mut b[field::LINKNAME], &self.link);
        b[field::MAGIC].copy_from_slice(b"ustar\0");
        b[field::VERSION].copy_from_slice(b"00");
        put_str(&mut b[field::UNAME], &self.uname);
        put_str(&mut b[field::GNAME], &self.gname);
        // Device numbers only on device nodes: the bundler leaves them NUL, and the verifier
        // requires the canonical header byte for byte.
        if matches!(self.kind, b'3' | b'4') {
            put_octal(&mut b[field::DEVMAJOR], self.dev_major);
            put_octal(&mut b[field::DEVMINOR], self.dev_minor);
        }
        set_checksum(&mut b);
        b
    }

    /// Header, body, and zero padding to the next block boundary.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header().to_vec();
        out.extend_from_slice(&self.body);
        out.resize(out.len() + padding(self.body.len()), 0);
        out
    }
}

/// Zero bytes that pad a body of `len` bytes to a whole block.
pub fn padding(len: usize) -> usize {
    (BLOCK - len % BLOCK) % BLOCK
}

/// Splits a path longer than the `name` field into ustar `prefix` and `name` at a `/`.
fn split_path(path: &str) -> (&str, &str) {
    if path.len() <= field::NAME.len() {
        return ("", path);
    }
    path.char_indices()
        .filter(|&(i, c)| {
            c == '/' && i <= field::PREFIX.len() && path.len() - i - 1 <= field::NAME.len()
        })
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .next()
        .unwrap_or_else(|| panic!("{path:?} does not fit a ustar header"))
}

fn put_str(field: &mut [u8], s: &str) {
    assert!(
        s.len() <= field.len(),
        "{s:?} does not fit a {}-byte field",
        field.len()
    );
    field[..s.len()].copy_from_slice(s.as_bytes());
}

/// Zero-padded octal digits and a NUL terminator, the form GNU tar writes.
fn put_octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let digits = format!("{v:0width$o}");
    assert!(
        digits.len() == width,
        "{v} does not fit a {width}-digit field"
    );
    field[..width].copy_from_slice(digits.as_bytes());
    field[width] = 0;
}

/// The header checksum: the sum of all bytes, the checksum field counted as spaces.
pub fn checksum(block: &[u8; BLOCK]) -> u64 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if field::CHECKSUM.contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// Writes the correct checksum into a header (after its other fields were changed by hand).
pub fn set_checksum(block: &mut [u8; BLOCK]) {
    let digits = format!("{:06o}", checksum(block));
    block[field::CHECKSUM][..6].copy_from_slice(digits.as_bytes());
    block[field::CHECKSUM][6] = 0;
    block[field::CHECKSUM][7] = b' ';
}

fn get_str(field: &[u8]) -> Result<String, String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8(field[..end].to_vec()).map_err(|e| e.to_string())
}

fn get_octal(field: &[u8]) -> Result<u64, String> {
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|e| format!("bad octal field {text:?}: {e}"))
}

/// Parses a plain (uncompressed) ustar archive: every entry up to the end-of-archive marker.
/// Strict, so a test never starts from something it misread: checksums must match, and nothing
/// but zeros may follow the marker.
pub fn parse(tar: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let block: &[u8; BLOCK] = tar
            .get(at..at + BLOCK)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("truncated at byte {at}"))?;
        if block.iter().all(|&b| b == 0) {
            if tar[at..].iter().any(|&b| b != 0) {
                return Err(format!("data after the end-of-archive marker at byte {at}"));
            }
            return Ok(entries);
        }
        let stored = get_octal(&block[field::CHECKSUM])?;
        if stored != checksum(block) {
            return Err(format!("bad header checksum at byte {at}"));
        }
        if &block[field::MAGIC] != b"ustar\0" {
            return Err(format!("not a POSIX ustar header at byte {at}"));
        }
        let name = get_str(&block[field::NAME])?;
        let prefix = get_str(&block[field::PREFIX])?;
        let size = usize::try_from(get_octal(&block[field::SIZE])?).map_err(|e| e.to_string())?;
        let start = at + BLOCK;
        let body = tar
            .get(start..start + size)
            .ok_or_else(|| format!("body of {name:?} truncated"))?
            .to_vec();
        entries.push(Entry {
            path: if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            },
            mode: u32::try_from(get_octal(&block[field::MODE])?).map_err(|e| e.to_string())?,
            uid: get_octal(&block[field::UID])?,
            gid: get_octal(&block[field::GID])?,
            mtime: get_octal(&block[field::MTIME])?,
            kind: block[field::TYPEFLAG],
            link: get_str(&block[field::LINKNAME])?,
            uname: get_str(&block[field::UNAME])?,
            gname: get_str(&block[field::GNAME])?,
            dev_major: get_octal(&block[field::DEVMAJOR])?,
            dev_minor: get_octal(&block[field::DEVMINOR])?,
            claimed_size: None,
            body,
        });
        at = start + size + padding(size);
    }
}

/// Serialises entries and the end-of-archive marker (two zero blocks).
pub fn write(entries: &[Entry]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.iter().flat_map(Entry::to_bytes).collect();
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

/// Byte offset of entry `index`'s header in `write(entries)` (`entries.len()`: the end marker).
pub fn header_offset(entries: &[Entry], index: usize) -> usize {
    entries[..index]
        .iter()
        .map(|e| BLOCK + e.body.len() + padding(e.body.len()))
        .sum()
}

/// A single-member gzip of `data`, the way `gzip` would write it.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// A PAX extended-header body: `LEN key=value\n` records, LEN counting the whole record.
pub fn pax_records(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        // The length counts its own digits: grow until it is self-consistent.
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let mut link = Entry::special("l", kind::SYMLINK);
        link.link = "../../etc/passwd".into();
        let entries = vec![
            Entry::file("a", b"hello".to_vec()),
            Entry::file(&long, vec![7u8; 1024]),
            link,
        ];
        assert_eq!(parse(&write(&entries)).expect("parse"), entries);
        assert_eq!(header_offset(&entries, 1), 1024);
        assert_eq!(header_offset(&entries, 3), 1024 + 1536 + 512);
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_records(&[("path", "x")]), b"9 path=x\n");
        // 95 + 9 = 104 bytes with a 2-digit length, but the length itself takes 3: 105.
        let r = pax_records(&[("path", &"y".repeat(95))]);
        assert_eq!(r.len(), 105);
        assert!(r.starts_with(b"105 path="));
    }

    #[test]
    fn gnu_tar_reads_what_we_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.tar");
        std::fs::write(&p, write(&[Entry::file("x/y.txt", b"hi".to_vec())])).expect("write");
        let out = std::process::Command::new(crate::rig::require("tar"))
            .arg("-tvf")
            .arg(&p)
            .output()
            .expect("tar");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("x/y.txt"));
    }
}
