//! Arbitrary bytes through the strict tar reader, the way the verifier drives it: gzip detection,
//! headers, bodies, the end-of-archive checks. Any input may be rejected; none may panic, and
//! whatever the reader accepts must be self-consistent (a body yields exactly its declared size).
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use sensei_core::archive::{TarReader, open_stream};

/// Work caps, so a gzip bomb or a header declaring a huge size costs the fuzzer well under a
/// second per input instead of a timeout: the reader is already bounded by its input, but
/// 1 KiB of gzip can expand to 1 MiB of zeros.
const MAX_TAR_BYTES: u64 = 64 * 1024 * 1024;
const MAX_ENTRIES: usize = 10_000;
/// Bodies at most this big may be read into memory, as the verifier does for bundle.json.
const MAX_VEC_BODY: u64 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    // I/O errors cannot happen on a slice; only gzip detection runs here.
    let Ok((stream, _compression)) = open_stream(data) else {
        return;
    };
    // Capping the decompressed stream (not the body loop) also bounds the reader's own skipping.
    let mut tar = TarReader::new(stream.take(MAX_TAR_BYTES));
    // Not a multiple of the 512-byte block, so chunks end mid-block.
    let mut buf = [0u8; 1000];
    for i in 0..MAX_ENTRIES {
        let before = tar.offset();
        let header = match tar.next_header() {
            Ok(Some(header)) => header,
            // A well-formed end marker: only then is `finish` meaningful.
            Ok(None) => {
                let _ = tar.finish();
                return;
            }
            Err(_) => return,
        };
        assert!(tar.offset() > before, "a header must consume input");
        // Rotate through the three ways a caller may consume a body, so each path meets every
        // kind of malformed input: streamed, read whole (only when bounded, as documented), or
        // left for the next `next_header` to skip. After an error the reader is done.
        let ok = match i % 3 {
            0 => stream_body_checked(&mut tar, &mut buf, header.size),
            1 if header.size <= MAX_VEC_BODY => match tar.read_body_to_vec() {
                Ok(body) => {
                    assert_eq!(body.len() as u64, header.size, "body length != declared size");
                    true
                }
                Err(_) => false,
            },
            _ => true,
        };
        if !ok {
            return;
        }
    }
});

/// Streams the current body; on success it must have produced exactly `size` bytes.
fn stream_body_checked(tar: &mut TarReader<impl Read>, buf: &mut [u8], size: u64) -> bool {
    let mut seen = 0u64;
    match tar.stream_body(buf, |chunk| seen += chunk.len() as u64) {
        Ok(()) => {
            assert_eq!(seen, size, "streamed length != declared size");
            true
        }
        Err(_) => false,
    }
}
