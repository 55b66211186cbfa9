//! The bundle's container: a strict POSIX tar reader, a deterministic tar writer, and the
//! gzip framing that stores already-compressed blobs without recompressing them.
//!
//! The reader accepts exactly what the writer produces (ustar regular files, no extensions) and
//! nothing that could be mistaken for it: links, devices, directories, PAX and GNU extension
//! headers are reported as such so the verifier can name what it refused.

mod gzip_layout;
mod gzip_reader;
mod header;
mod layout;
mod pipe;
mod reader;
mod stored_gzip;
mod writer;

pub use gzip_layout::{Body, BodySlot, Crc32, GzipLayout, LayoutEntry};
pub use header::{BLOCK, EntryKind, Header, HeaderError, header_field};
pub use layout::PlainLayout;
pub use pipe::{PipeReader, pipe};
pub use reader::{ArchiveError, Compression, TarReader, open_stream};
pub use writer::{OutputCompression, TarWriter, looks_compressed};
