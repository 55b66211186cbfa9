//! The in-place layout against the streaming writer: the same entries must give the same bytes,
//! whatever the sizes, the runs of levels, the order bodies are written in and how they arrive.

use std::io::Read;

use super::*;

const MTIME: u64 = 1_767_225_600;

/// A body starting with the gzip magic (so the writer stores it), `len` bytes in all.
fn compressed(len: usize, seed: u8) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    b[..2].copy_from_slice(&[0x1f, 0x8b]);
    b
}

/// A body the writer deflates.
fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"json {}\n"[i % 8]).collect()
}

fn streamed(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new(), OutputCompression::Gzip, MTIME);
    for (p, b) in entries {
        w.append(p, b.len() as u64, 0o644, &b[..], |_| {}).unwrap();
    }
    w.finish().unwrap()
}

/// Lays the entries out (compressed bodies as slots, except those `in_memory` says), fills a
/// file that starts as `poison` everywhere, bodies in reverse order and in pieces of `chunk`
/// bytes (as a download arrives), and returns it.
fn in_place(
    entries: &[(String, Vec<u8>)],
    in_memory: impl Fn(usize) -> bool,
    chunk: usize,
    poison: u8,
) -> Vec<u8> {
    let list: Vec<LayoutEntry<'_>> = entries
        .iter()
        .enumerate()
        .map(|(i, (p, b))| LayoutEntry {
            path: p,
            size: b.len() as u64,
            mode: 0o644,
            body: if b.starts_with(&[0x1f, 0x8b]) && !in_memory(i) {
                Body::Compressed
            } else {
                Body::Bytes(b)
            },
        })
        .collect();
    let layout = GzipLayout::new(&list, MTIME).unwrap();
    let mut file = vec![poison; usize::try_from(layout.total()).unwrap()];
    let mut write_at = |at: u64, bytes: &[u8]| {
        let at = usize::try_from(at).unwrap();
        file[at..at + bytes.len()].copy_from_slice(bytes);
        Ok(())
    };
    layout.write_known(&mut write_at).unwrap();
    let mut crcs = std::collections::BTreeMap::new();
    for (entry, slot) in layout.slots().into_iter().rev() {
        let body = &entries[entry].1;
        assert_eq!(slot.size(), body.len() as u64);
        let mut crc = Crc32::new();
        let mut rel = 0usize;
        while rel < body.len() {
            let n = chunk.min(body.len() - rel);
            let mut out =
                vec![0u8; usize::try_from(slot.framed_len(rel as u64, n as u64)).unwrap()];
            let mut src = &body[rel..rel + n];
            let used = slot
                .frame(rel as u64, n as u64, &mut out, |run| {
                    src.read_exact(run)?;
                    crc.update(run);
                    Ok(())
                })
                .unwrap();
            assert_eq!(used, out.len());
            write_at(slot.offset(rel as u64), &out).unwrap();
            rel += n;
        }
        crcs.insert(entry, crc);
    }
    layout
        .write_trailers(|e| crcs.get(&e).cloned(), &mut write_at)
        .unwrap();
    file
}

fn assert_same(what: &str, entries: &[(String, Vec<u8>)]) {
    let want = streamed(entries);
    for (chunk, in_memory) in [
        (1 << 20, false),
        (7, false),
        (65_536, true),
        (65_535, false),
    ] {
        // Every byte written: two poisons, the same result.
        for poison in [0x00, 0xff] {
            let got = in_place(entries, |i| in_memory && i % 2 == 0, chunk, poison);
            assert!(
                got.len() == want.len() && got == want,
                "{what}: chunks of {chunk}, in memory {in_memory}, poison {poison}: {} bytes, want {}; first difference at {:?}",
                got.len(),
                want.len(),
                got.iter().zip(&want).position(|(a, b)| a != b)
            );
        }
    }
}

fn named(bodies: Vec<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("blobs/sha256/{i:064}"), b))
        .collect()
}

#[test]
fn the_layout_writes_the_streaming_bytes() {
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("one compressed body", vec![compressed(1000, 1)]),
        ("nothing but in-memory bodies", vec![plain(10), plain(0)]),
        (
            "compressed bodies in a row, of the sizes that matter",
            [
                2, 3, 511, 512, 513, 1024, 65_535, 65_536, 65_537, 131_070, 200_001,
            ]
            .iter()
            .enumerate()
            .map(|(i, &n)| compressed(n, i as u8))
            .collect(),
        ),
        (
            "interleaved with deflated entries, sizes 0 and 1 among them",
            vec![
                plain(0),
                compressed(65_535, 1),
                plain(1),
                compressed(65_536, 2),
                compressed(70_000, 3),
                plain(512),
                plain(0),
                compressed(2, 4),
                plain(1000),
            ],
        ),
        (
            "a stored run last: the end marker in a member of its own",
            vec![plain(300), compressed(100_000, 5), compressed(512, 6)],
        ),
        (
            "a large body that is not compressed: a level-1 member between stored ones",
            vec![compressed(600, 7), plain(8 << 20), compressed(9000, 8)],
        ),
    ];
    for (what, bodies) in cases {
        assert_same(what, &named(bodies));
    }
}

#[test]
fn a_stored_member_of_whole_blocks_ends_with_an_empty_final_block() {
    // 512-byte header + body + padding = 512 x 65 535 bytes: exactly 512 blocks, then the empty
    // final block that no piece starts, written with the trailer.
    let body = compressed(65_534 * 512, 9);
    let entries = named(vec![plain(3), body]);
    assert_same("whole blocks", &entries);
}

#[test]
fn random_runs_match_too() {
    // splitmix64: varied runs of levels, sizes near block and tar boundaries.
    let mut state = 0x005e_75e1_u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for round in 0..40 {
        let count = 1 + next() % 7;
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let base = [0u64, 1, 2, 511, 512, 65_535, 65_536, 130_000][(next() % 8) as usize];
                let len = (base + next() % 3).saturating_sub(1) as usize;
                if next() % 3 == 0 || len < 2 {
                    plain(len)
                } else {
                    compressed(len, (round + i) as u8)
                }
            })
            .collect();
        assert_same(&format!("round {round}"), &named(bodies));
    }
}

#[test]
fn a_body_not_written_whole_is_refused() {
    let entries = named(vec![compressed(70_000, 1)]);
    let list = [LayoutEntry {
        path: &entries[0].0,
        size: 70_000,
        mode: 0o644,
        body: Body::Compressed,
    }];
    let layout = GzipLayout::new(&list, MTIME).unwrap();
    let mut short = Crc32::new();
    short.update(&entries[0].1[..69_999]);
    let err = layout
        .write_trailers(|_| Some(short.clone()), |_, _| Ok(()))
        .unwrap_err();
    assert!(err.to_string().contains("not written whole"), "{err}");
    assert!(layout.write_trailers(|_| None, |_, _| Ok(())).is_err());
}

#[test]
fn framing_refuses_a_buffer_too_small_or_bytes_past_the_body() {
    let entries = named(vec![compressed(70_000, 1)]);
    let list = [LayoutEntry {
        path: &entries[0].0,
        size: 70_000,
        mode: 0o644,
        body: Body::Compressed,
    }];
    let layout = GzipLayout::new(&list, MTIME).unwrap();
    let (_, slot) = layout.slots()[0];
    let mut out = vec![0u8; 100_000];
    assert!(slot.frame(0, 70_001, &mut out, |_| Ok(())).is_err());
    let need = usize::try_from(slot.framed_len(0, 70_000)).unwrap();
    assert!(
        slot.frame(0, 70_000, &mut out[..need - 1], |_| Ok(()))
            .is_err()
    );
    assert_eq!(slot.frame(0, 70_000, &mut out, |_| Ok(())).unwrap(), need);
}
