//! One 512-byte ustar header: encoding for the writer, strict decoding for the reader.

pub const BLOCK: usize = 512;

/// What a tar entry is, as its type flag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
    /// PAX or GNU extension headers (long names, extended attributes): never written by us.
    Extension(u8),
    Other(u8),
}

impl EntryKind {
    fn from_flag(flag: u8) -> Self {
        match flag {
            b'0' | 0 | b'7' => EntryKind::Regular,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            b'x' | b'g' | b'L' | b'K' => EntryKind::Extension(flag),
            other => EntryKind::Other(other),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            EntryKind::Regular => "regular file".into(),
            EntryKind::HardLink => "hard link".into(),
            EntryKind::Symlink => "symbolic link".into(),
            EntryKind::CharDevice => "character device".into(),
            EntryKind::BlockDevice => "block device".into(),
            EntryKind::Directory => "directory".into(),
            EntryKind::Fifo => "FIFO".into(),
            EntryKind::Extension(f) => format!("tar extension header (type {:?})", *f as char),
            EntryKind::Other(f) => format!("unknown entry type {:?}", *f as char),
        }
    }
}

/// A decoded header: the path (ustar prefix joined), size and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub path: String,
    pub size: u64,
    pub kind: EntryKind,
    pub link_target: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header checksum does not match (corrupt or not a tar archive)")]
    Checksum,
    #[error(
        "header checksum field is not six octal digits, a NUL and a space, the one form a bundle \
         has (not a tar archive, or one rewritten by another tool: use the bundle as it was built)"
    )]
    ChecksumForm,
    #[error("not a ustar header (bad magic)")]
    Magic,
    #[error("header field {0} is not a valid number")]
    Number(&'static str),
    #[error("entry name is not UTF-8")]
    Utf8,
}

fn parse_octal(field: &[u8], name: &'static str) -> Result<u64, HeaderError> {
    // GNU base-256: high bit of the first byte set, big-endian binary in the rest.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // Only non-negative values, at most 64 bits wide, whatever the field's width (the
        // 8-byte fields have 7 bytes of value; fuzzing found that shape).
        let (high, low) = field[1..].split_at(field.len().saturating_sub(1 + 8));
        if field[0] != 0x80 || high.iter().any(|&b| b != 0) {
            return Err(HeaderError::Number(name));
        }
        let mut v = 0u64;
        for &b in low {
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let trimmed: &[u8] = {
        let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
        let rest = &field[start..];
        let end = rest
            .iter()
            .position(|&b| b == 0 || b == b' ')
            .unwrap_or(rest.len());
        &rest[..end]
    };
    if trimmed.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for &b in trimmed {
        if !(b'0'..=b'7').contains(&b) {
            return Err(HeaderError::Number(name));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(HeaderError::Number(name))?;
    }
    Ok(v)
}

fn cstr(field: &[u8]) -> Result<&str, HeaderError> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).map_err(|_| HeaderError::Utf8)
}

/// The name of the ustar header field holding byte `offset`, for messages.
pub fn header_field(offset: usize) -> &'static str {
    match offset {
        0..100 => "name",
        100..108 => "mode",
        108..116 => "uid",
        116..124 => "gid",
        124..136 => "size",
        136..148 => "mtime",
        148..156 => "checksum",
        156 => "type",
        157..257 => "link name",
        257..265 => "magic/version",
        265..297 => "user name",
        297..329 => "group name",
        329..345 => "device number",
        345..500 => "name prefix",
        _ => "reserved",
    }
}

/// True if the block is all zeros (end-of-archive marker).
pub fn is_zero_block(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

impl Header {
    /// Decodes and checks one header block.
    pub fn decode(block: &[u8; BLOCK]) -> Result<Self, HeaderError> {
        // One form only, the writer's: every byte of the field is fixed by the other 504, so no
        // header byte escapes the signature (no spare bytes after a NUL, no base-256, no signed
        // sum: each a second spelling of the same header).
        let field = &block[148..156];
        if !(field[..6].iter().all(|b| (b'0'..=b'7').contains(b)) && field[6..] == *b"\0 ") {
            return Err(HeaderError::ChecksumForm);
        }
        if field[..6] != *checksum_digits(block).as_bytes() {
            return Err(HeaderError::Checksum);
        }
        // POSIX "ustar\0" "00" or old GNU "ustar  \0".
        if &block[257..263] != b"ustar\0" && &block[257..265] != b"ustar  \0" {
            return Err(HeaderError::Magic);
        }
        let name = cstr(&block[0..100])?;
        let prefix = cstr(&block[345..500])?;
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        Ok(Header {
            path,
            size: parse_octal(&block[124..136], "size")?,
            kind: EntryKind::from_flag(block[156]),
            link_target: cstr(&block[157..257])?.to_owned(),
        })
    }

    /// Encodes a deterministic ustar header for a regular file. `path` must fit 100 bytes.
    pub fn encode_regular(path: &str, size: u64, mode: u32, mtime: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        let name = path.as_bytes();
        b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        write_octal(&mut b[100..108], u64::from(mode));
        write_octal(&mut b[108..116], 0); // uid
        write_octal(&mut b[116..124], 0); // gid
        if size < 0o77777777777 {
            write_octal(&mut b[124..136], size);
        } else {
            // Beyond 8 GiB: GNU base-256, which GNU tar, bsdtar and Go's archive/tar read.
            b[124] = 0x80;
            b[128..136].copy_from_slice(&size.to_be_bytes());
        }
        write_octal(&mut b[136..148], mtime.min(0o77777777777));
        b[156] = b'0';
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        // Checksum field: six octal digits, NUL, space (the form GNU tar writes).
        let digits = checksum_digits(&b);
        b[148..154].copy_from_slice(digits.as_bytes());
        b[154] = 0;
        b[155] = b' ';
        b
    }
}

/// The checksum as six octal digits: the unsigned sum of the header's bytes, the checksum field
/// counted as eight spaces. (At most 512 × 255 = 0o377000, so six digits always suffice.)
fn checksum_digits(block: &[u8; BLOCK]) -> String {
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    format!("{sum:06o}")
}

fn write_octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    field[..width].copy_from_slice(&s.as_bytes()[s.len() - width..]);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let h = Header::encode_regular("blobs/sha256/abc", 12345, 0o644, 1_700_000_000);
        let d = Header::decode(&h).unwrap();
        assert_eq!(
            (d.path.as_str(), d.size, d.kind),
            ("blobs/sha256/abc", 12345, EntryKind::Regular)
        );
    }

    #[test]
    fn huge_sizes_use_base256() {
        let size = 20 * 1024 * 1024 * 1024u64;
        let h = Header::encode_regular("big", size, 0o644, 0);
        assert_eq!(Header::decode(&h).unwrap().size, size);
    }

    #[test]
    fn corrupt_checksum_and_magic_are_refused() {
        let mut h = Header::encode_regular("a", 1, 0o644, 0);
        h[0] = b'b';
        assert_eq!(Header::decode(&h), Err(HeaderError::Checksum));
        let mut h = Header::encode_regular("a", 1, 0o644, 0);
        h[257] = b'x';
        assert!(Header::decode(&h).is_err());
    }

    #[test]
    fn base256_in_short_fields_does_not_panic() {
        // Regression from fuzzing (fuzz/regressions/archive_reader-checksum-base256).
        assert_eq!(parse_octal(&[0x80, 0, 0, 0, 0, 0, 0, 5], "checksum"), Ok(5));
        assert!(parse_octal(&[0xff; 8], "checksum").is_err());
        let mut h = Header::encode_regular("a", 1, 0o644, 0);
        h[148..156].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(Header::decode(&h), Err(HeaderError::ChecksumForm));
    }

    #[test]
    fn the_checksum_field_has_one_form() {
        let h = Header::encode_regular("index.json", 1575, 0o644, 1_767_225_600);
        let digits: [u8; 6] = h[148..154].try_into().unwrap();
        let sum = u64::from_str_radix(std::str::from_utf8(&digits).unwrap(), 8).unwrap();
        let with = |field: &[u8]| {
            let mut b = h;
            b[148..156].copy_from_slice(field);
            Header::decode(&b)
        };
        assert!(with(&h[148..156]).is_ok());
        // Every other spelling of the right value is refused: spare bytes after the NUL, seven
        // digits, leading spaces, a space terminator, base-256, no terminator.
        let mut after_nul = h[148..156].to_vec();
        after_nul[7] = b'Y';
        let seven = format!("{sum:07o}\0");
        let spaced = format!(" {sum:05o}\0 ");
        let space_first = format!("{sum:06o} \0");
        let base256: [u8; 8] = [0x80, 0, 0, 0, 0, 0, (sum >> 8) as u8, sum as u8];
        let bare = format!("{sum:08o}");
        for field in [
            &after_nul[..],
            seven.as_bytes(),
            spaced.as_bytes(),
            space_first.as_bytes(),
            &base256[..],
            bare.as_bytes(),
        ] {
            assert_eq!(with(field), Err(HeaderError::ChecksumForm), "{field:?}");
        }
        // The right form with the wrong value is a corrupt header.
        let wrong = format!("{:06o}\0 ", sum + 1);
        assert_eq!(with(wrong.as_bytes()), Err(HeaderError::Checksum));
    }

    #[test]
    fn kinds_are_named() {
        for (flag, kind) in [
            (b'1', EntryKind::HardLink),
            (b'2', EntryKind::Symlink),
            (b'3', EntryKind::CharDevice),
            (b'x', EntryKind::Extension(b'x')),
        ] {
            assert_eq!(EntryKind::from_flag(flag), kind);
        }
    }
}
