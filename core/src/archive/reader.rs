//! Strict streaming tar reader: one forward pass, never seeks, never extracts, bounded everywhere.

use std::io::{self, BufRead, BufReader, Read};

use super::header::{BLOCK, Header, HeaderError, is_zero_block};

/// Bytes after the end-of-archive marker that may follow (zero padding some tools add).
pub const MAX_TRAILING_ZEROS: u64 = 1024 * 1024;
const READ_BUFFER: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive is truncated at byte {offset} (the download or copy is incomplete)")]
    Truncated { offset: u64 },
    #[error(
        "non-zero bytes in the padding after an entry, at byte {offset} (data hidden where no hash covers it)"
    )]
    NonZeroPadding { offset: u64 },
    #[error("corrupt tar header at byte {offset}: {source}")]
    Header { offset: u64, source: HeaderError },
    #[error(
        "the end-of-archive marker at byte {offset} is malformed (a zero block followed by data)"
    )]
    BadEndMarker { offset: u64 },
    #[error(
        "data after the end of the archive, at byte {offset} (something was appended to the bundle)"
    )]
    TrailingData { offset: u64 },
    #[error(
        "more than {MAX_TRAILING_ZEROS} bytes of padding after the end of the archive (a decompression bomb?)"
    )]
    TooMuchPadding,
    #[error("the gzip stream is corrupt or has data appended: {0}")]
    Compression(String),
    #[error("reading the archive failed: {0}")]
    Io(#[source] io::Error),
}

/// The outer compression, detected from the first bytes, whatever the file is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

/// Wraps a raw bundle stream: detects gzip by its magic number and returns the tar stream.
pub fn open_stream<'a, R: Read + Send + 'a>(
    raw: R,
) -> io::Result<(Box<dyn Read + Send + 'a>, Compression)> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, raw);
    let head = buffered.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: the writer emits one gzip member per run of compressible/stored entries.
        let dec = super::gzip_reader::MultiGzipReader::new(buffered);
        Ok((
            Box::new(BufReader::with_capacity(READ_BUFFER, dec)),
            Compression::Gzip,
        ))
    } else {
        Ok((Box::new(buffered), Compression::None))
    }
}

/// Reads entries one after another. Call [`TarReader::next_header`], then read the body through
/// the reader itself (it yields exactly the entry's bytes), then `next_header` again.
#[derive(Debug)]
pub struct TarReader<R> {
    inner: R,
    /// Body bytes of the current entry not read yet.
    remaining: u64,
    /// Padding after the current body.
    padding: u64,
    /// Offset in the uncompressed tar stream.
    offset: u64,
    /// The raw block of the last header read, for callers that check it byte for byte.
    block: [u8; BLOCK],
}

fn map_io(e: io::Error, offset: u64) -> ArchiveError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ArchiveError::Truncated { offset },
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            ArchiveError::Compression(e.to_string())
        }
        _ => ArchiveError::Io(e),
    }
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            padding: 0,
            offset: 0,
            block: [0u8; BLOCK],
        }
    }

    /// The raw 512-byte block of the last header returned by `next_header`.
    pub fn header_block(&self) -> &[u8; BLOCK] {
        &self.block
    }

    /// Offset in the (uncompressed) tar stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn read_exact_tracked(&mut self, buf: &mut [u8]) -> Result<(), ArchiveError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(ArchiveError::Truncated {
                        offset: self.offset,
                    });
                }
                Ok(n) => {
                    filled += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io(e, self.offset)),
            }
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        while n > 0 {
            let take = n.min(scratch.len() as u64) as usize;
            self.read_exact_tracked(&mut scratch[..take])?;
            n -= take as u64;
        }
        Ok(())
    }

    /// The next entry's header, or `None` at a well-formed end-of-archive marker. Any unread
    /// part of the previous body is skipped.
    pub fn next_header(&mut self) -> Result<Option<Header>, ArchiveError> {
        let (rest, padding) = (self.remaining, self.padding);
        self.remaining = 0;
        self.padding = 0;
        self.skip(rest)?;
        // Padding must be zeros: nothing may hide in bytes no hash covers.
        let pad_start = self.offset;
        let mut pad = [0u8; BLOCK];
        self.read_exact_tracked(&mut pad[..padding as usize])?;
        if let Some(i) = pad[..padding as usize].iter().position(|&b| b != 0) {
            return Err(ArchiveError::NonZeroPadding {
                offset: pad_start + i as u64,
            });
        }
        let start = self.offset;
        let mut block = [0u8; BLOCK];
        self.read_exact_tracked(&mut block)?;
        if is_zero_block(&block) {
            self.read_exact_tracked(&mut block)?;
            if !is_zero_block(&block) {
                return Err(ArchiveError::BadEndMarker { offset: start });
            }
            return Ok(None);
        }
        let header = Header::decode(&block).map_err(|source| ArchiveError::Header {
            offset: start,
            source,
        })?;
        self.block = block;
        self.remaining = header.size;
        self.padding = (BLOCK as u64 - header.size % BLOCK as u64) % BLOCK as u64;
        Ok(Some(header))
    }

    /// Reads the current body to its end into memory. Only for entries whose size the caller
    /// has already bounded.
    pub fn read_body_to_vec(&mut self) -> Result<Vec<u8>, ArchiveError> {
        let mut out =
            vec![0u8; usize::try_from(self.remaining).map_err(|_| ArchiveError::TooMuchPadding)?];
        self.read_exact_tracked(&mut out)?;
        self.remaining = 0;
        Ok(out)
    }

    /// Feeds the current body, chunk by chunk, to `sink`, in constant memory.
    pub fn stream_body(
        &mut self,
        buf: &mut [u8],
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), ArchiveError> {
        while self.remaining > 0 {
            let take = self.remaining.min(buf.len() as u64) as usize;
            let n = loop {
                match self.inner.read(&mut buf[..take]) {
                    Ok(0) => {
                        return Err(ArchiveError::Truncated {
                            offset: self.offset,
                        });
                    }
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(map_io(e, self.offset)),
                }
            };
            self.offset += n as u64;
            self.remaining -= n as u64;
            sink(&buf[..n]);
        }
        Ok(())
    }

    /// After `next_header` returned `None`: checks the rest of the stream is zero padding
    /// within bounds, reading it to the end (which also makes a gzip decoder check its trailer).
    pub fn finish(mut self) -> Result<(), ArchiveError> {
        let mut seen: u64 = 0;
        let mut buf = [0u8; 8192];
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(map_io(e, self.offset)),
            };
            if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                return Err(ArchiveError::TrailingData {
                    offset: self.offset + i as u64,
                });
            }
            self.offset += n as u64;
            seen += n as u64;
            if seen > MAX_TRAILING_ZEROS {
                return Err(ArchiveError::TooMuchPadding);
            }
        }
    }
}
