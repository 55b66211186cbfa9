//! Where each entry of a plain (uncompressed) tar written by [`super::TarWriter`] lies: one
//! 512-byte header, then the body padded to 512 bytes, entry after entry, then two zero blocks.
//! The bundler writes a `.tar` in place from it (every offset is known once the plan is), and
//! the loader reads a verified `.tar`'s blobs by offset from it: one rule, here.

use super::header::BLOCK;

const B: u64 = BLOCK as u64;

/// The offsets of a plain tar's entries, in archive order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainLayout {
    /// Offset of each entry's header block.
    pub headers: Vec<u64>,
    /// The archive's length, end marker included.
    pub total: u64,
}

impl PlainLayout {
    /// The layout of entries of these body sizes, in order.
    pub fn of(sizes: impl IntoIterator<Item = u64>) -> Self {
        let mut at = 0u64;
        let headers = sizes
            .into_iter()
            .map(|size| {
                let header = at;
                at += B + size.div_ceil(B) * B;
                header
            })
            .collect();
        Self {
            headers,
            total: at + 2 * B,
        }
    }

    /// Where entry `i`'s body starts.
    pub fn data(&self, i: usize) -> u64 {
        self.headers[i] + B
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OutputCompression, TarWriter};
    use super::*;

    #[test]
    fn offsets_are_where_the_writer_puts_each_entry() {
        let bodies: Vec<Vec<u8>> = vec![
            vec![1; 0],
            vec![2; 1],
            vec![3; 512],
            vec![4; 513],
            vec![5; 70_000],
        ];
        let mut w = TarWriter::new(Vec::new(), OutputCompression::None, 0);
        for (i, b) in bodies.iter().enumerate() {
            w.append(&format!("f{i}"), b.len() as u64, 0o644, &b[..], |_| {})
                .unwrap();
        }
        let out = w.finish().unwrap();
        let layout = PlainLayout::of(bodies.iter().map(|b| b.len() as u64));
        assert_eq!(layout.total, out.len() as u64);
        for (i, b) in bodies.iter().enumerate() {
            let h = layout.headers[i] as usize;
            assert_eq!(&out[h..h + 2], format!("f{i}").as_bytes(), "header {i}");
            let d = layout.data(i) as usize;
            assert_eq!(&out[d..d + b.len()], &b[..], "body {i}");
        }
    }
}
