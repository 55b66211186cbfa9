//! The walker against flate2 (zlib-rs), an independent implementation: every member flate2
//! writes, at every level and for every shape of data, must decode to exactly flate2's output,
//! and the block types it reports must be the ones those levels produce.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::{DeflateEncoder, GzEncoder};

use super::*;

/// xorshift64: reproducible bytes without a dependency.
fn prng(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Text-like bytes: words from a small vocabulary, so deflate finds both matches and skewed
/// literal frequencies (and so writes dynamic blocks).
fn text(seed: u64, n: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "layer",
        "blob",
        "digest",
        "sha256",
        "manifest",
        "index",
        "gzip",
        "tar",
        "stored",
        "deflate",
        "{\"mediaType\":",
        "\n",
    ];
    let mut out = Vec::with_capacity(n + 16);
    for r in prng(seed, n) {
        if out.len() >= n {
            break;
        }
        out.extend_from_slice(WORDS[usize::from(r) % WORDS.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

fn gzip(level: u32, data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).unwrap_or_else(|e| panic!("gzip: {e}"));
    e.finish().unwrap_or_else(|e| panic!("gzip: {e}"))
}

fn flate2_gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("flate2 rejects it: {e}"));
    out
}

fn walk(bytes: &[u8]) -> Walk {
    walk_gzip(bytes).unwrap_or_else(|e| panic!("walker rejects it: {e}"))
}

/// The blocks tile the output: contiguous from 0 to its length.
fn assert_tiles(w: &Walk) {
    let mut at = 0;
    for b in &w.blocks {
        assert_eq!(b.output.start, at, "{:?}", w.blocks);
        at = b.output.end;
    }
    assert_eq!(at, w.output.len() as u64);
}

fn kinds(w: &Walk) -> Vec<BlockKind> {
    let mut k: Vec<BlockKind> = w.blocks.iter().map(|b| b.kind).collect();
    k.dedup();
    k
}

#[test]
fn crc32_matches_the_check_value_and_flate2() {
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    let data = prng(7, 10_000);
    let mut theirs = flate2::Crc::new();
    theirs.update(&data);
    assert_eq!(crc32(&data), theirs.sum());
}

#[test]
fn a_dynamic_member_from_flate2_decodes_byte_for_byte() {
    let data = text(1, 300_000);
    let gz = gzip(6, &data);
    let w = walk(&gz);
    assert_eq!(w.output, flate2_gunzip(&gz));
    assert_eq!(w.output, data);
    assert_eq!(w.members, 1);
    assert!(
        w.blocks.len() > 1 && w.blocks.iter().all(|b| b.kind == BlockKind::Dynamic),
        "level 6 on text should be dynamic blocks only: {:?}",
        w.blocks
    );
    assert_tiles(&w);
}

#[test]
fn a_stored_member_from_flate2_is_stored_blocks_only() {
    let data = text(2, 200_000);
    let gz = gzip(0, &data);
    let w = walk(&gz);
    assert_eq!(w.output, flate2_gunzip(&gz));
    assert_eq!(kinds(&w), [BlockKind::Stored]);
    assert!(w.blocks.len() >= 4, "{:?}", w.blocks); // at most 64 KiB per stored block
    assert_tiles(&w);
}

#[test]
fn a_short_input_gets_a_fixed_block() {
    let data = b"hello, hello, hello sensei";
    let gz = gzip(6, data);
    let w = walk(&gz);
    assert_eq!(w.output, data);
    assert_eq!(kinds(&w), [BlockKind::Fixed]);
}

#[test]
fn every_level_and_shape_matches_flate2() {
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one byte", vec![42]),
        ("zeros (overlapping matches)", vec![0; 150_000]),
        ("random", prng(3, 70_000)),
        ("text", text(4, 90_000)),
        (
            "text then random",
            [text(5, 40_000), prng(6, 40_000)].concat(),
        ),
    ];
    for level in 0..=9 {
        for (name, data) in &shapes {
            let gz = gzip(level, data);
            let w = walk(&gz);
            assert_eq!(&w.output, data, "level {level}, {name}");
            assert_eq!(w.output, flate2_gunzip(&gz), "level {level}, {name}");
            assert_tiles(&w);
        }
    }
}

#[test]
fn raw_deflate_matches_flate2() {
    let data = text(8, 50_000);
    let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
    e.write_all(&data).unwrap_or_else(|e| panic!("{e}"));
    let raw = e.finish().unwrap_or_else(|e| panic!("{e}"));
    let w = walk_deflate(&raw).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.output, data);
    assert_tiles(&w);
}

/// A member with every optional header field (FEXTRA, FNAME, FCOMMENT, FHCRC), by hand
/// around flate2's raw deflate output.
fn member_with_every_field(data: &[u8]) -> Vec<u8> {
    let mut m = vec![0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 1, 2, 3, 4, 0, 3];
    m.extend_from_slice(&6u16.to_le_bytes());
    m.extend_from_slice(b"SE\x02\x00hi");
    m.extend_from_slice(b"layer.tar\0a comment\0");
    let hcrc = crc32(&m) as u16;
    m.extend_from_slice(&hcrc.to_le_bytes());
    let mut e = DeflateEncoder::new(m, Compression::fast());
    e.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    let mut m = e.finish().unwrap_or_else(|e| panic!("{e}"));
    m.extend_from_slice(&crc32(data).to_le_bytes());
    m.extend_from_slice(&(data.len() as u32).to_le_bytes());
    m
}

#[test]
fn multi_member_streams_with_optional_header_fields_decode_in_order() {
    let a = text(9, 30_000);
    let b = prng(10, 100_000);
    let c = text(11, 5_000);
    let named = flate2::GzBuilder::new()
        .filename("a.json")
        .comment("first")
        .extra(b"AB\x01\x00x".to_vec())
        .mtime(1_700_000_000)
        .write(Vec::new(), Compression::default());
    let mut named = named;
    named.write_all(&a).unwrap_or_else(|e| panic!("{e}"));
    let first = named.finish().unwrap_or_else(|e| panic!("{e}"));
    let gz = [first, gzip(0, &b), member_with_every_field(&c)].concat();
    let w = walk(&gz);
    assert_eq!(w.output, flate2_gunzip(&gz));
    assert_eq!(w.output, [a.clone(), b.clone(), c].concat());
    assert_eq!(w.members, 3);
    assert_tiles(&w);
    // Member 1 (level 0) is stored blocks exactly over its own bytes.
    let second = a.len() as u64..(a.len() + b.len()) as u64;
    assert!(
        w.outside(second.clone(), |k| k == BlockKind::Stored)
            .is_empty()
    );
    assert!(
        w.blocks_over(second)
            .iter()
            .all(|blk| blk.member == 1 && blk.kind == BlockKind::Stored)
    );
    assert!(
        w.blocks
            .iter()
            .filter(|blk| blk.member != 1)
            .all(|blk| blk.kind.is_compressed())
    );
}

#[test]
fn corrupt_truncated_or_padded_streams_are_errors() {
    let data = text(12, 20_000);
    let good = gzip(6, &data);
    let n = good.len();
    let mut bad_crc = good.clone();
    bad_crc[n - 6] ^= 1;
    let mut bad_isize = good.clone();
    bad_isize[n - 2] ^= 1;
    let mut reserved = good.clone();
    reserved[3] = 0x20;
    let mut bad_hcrc = member_with_every_field(&data);
    bad_hcrc[5] ^= 1; // MTIME is under the header CRC
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "truncated"),
        ("CRC", bad_crc, "CRC-32"),
        ("ISIZE", bad_isize, "ISIZE"),
        ("reserved flag", reserved, "reserved"),
        ("header CRC", bad_hcrc, "FHCRC"),
        ("cut in the data", good[..n / 2].to_vec(), "truncated"),
        ("cut in the trailer", good[..n - 3].to_vec(), "truncated"),
        (
            "garbage after",
            [good.clone(), b"junk".to_vec()].concat(),
            "1f 8b",
        ),
        ("zeros after", [good.clone(), vec![0; 10]].concat(), "1f 8b"),
    ];
    for (name, bytes, says) in cases {
        match walk_gzip(&bytes) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert!(e.contains(says), "{name}: {e}"),
        }
    }
}

#[test]
fn outside_names_the_unwanted_parts_of_a_range() {
    let block = |kind, output| Block {
        kind,
        member: 0,
        output,
    };
    let w = Walk {
        output: vec![0; 100],
        blocks: vec![
            block(BlockKind::Dynamic, 0..10),
            block(BlockKind::Stored, 10..50),
            block(BlockKind::Stored, 50..50),
            block(BlockKind::Fixed, 50..60),
            block(BlockKind::Dynamic, 60..70),
            block(BlockKind::Stored, 70..100),
        ],
        members: 1,
    };
    let stored = |k| k == BlockKind::Stored;
    assert!(w.outside(10..50, stored).is_empty());
    assert!(w.outside(20..20, stored).is_empty());
    assert_eq!(w.outside(5..55, stored), [5..10, 50..55]);
    assert_eq!(
        w.outside(40..80, stored),
        vec![Range { start: 50, end: 70 }]
    );
    assert_eq!(
        w.outside(0..100, BlockKind::is_compressed),
        [10..50, 70..100]
    );
    assert_eq!(w.blocks_over(50..51).len(), 1);
}
