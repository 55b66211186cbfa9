//! sha256 on a thread of its own, so verifying a source file runs beside the `.tar.gz` writer's
//! CRC-32 and write instead of after them on the one writer thread.
//!
//! Chunks are copied into a fixed pool of recycled buffers and sent through a bounded channel:
//! memory stays at `POOL * BUFFER` however large the file, and the writer waits (rather than
//! queueing more) when the hasher falls behind.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, Scope, ScopedJoinHandle};

use sensei_core::digest::{Digest, Hasher};

/// Buffers in flight: enough that the writer rarely waits on a hasher that keeps pace.
const POOL: usize = 4;
/// The writer hands over chunks of up to 1 MiB (`TarWriter`'s copy buffer); bigger chunks are
/// split, so this only sets how much one message carries.
const BUFFER: usize = 1024 * 1024;

enum Msg {
    Chunk(Vec<u8>),
    /// End of one file: reply with its digest and start the next from empty.
    Finish,
}

/// The writer's end of a hashing thread; dropping it stops the thread.
pub(crate) struct HashPipe<'scope> {
    to_hasher: Option<SyncSender<Msg>>,
    free: Receiver<Vec<u8>>,
    digests: Receiver<Digest>,
    /// Set when the hashing thread is gone: the file's digest is then reported as unknown.
    broken: bool,
    thread: Option<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope> HashPipe<'scope> {
    pub(crate) fn spawn<'env>(scope: &'scope Scope<'scope, 'env>) -> Self {
        let (to_hasher, inbox) = sync_channel::<Msg>(POOL);
        let (give_back, free) = sync_channel::<Vec<u8>>(POOL);
        let (send_digest, digests) = sync_channel::<Digest>(1);
        for _ in 0..POOL {
            // Cannot fail: the channel holds POOL and its receiver is alive.
            let _ = give_back.send(Vec::with_capacity(BUFFER));
        }
        let thread = thread::Builder::new()
            .name("sha256".into())
            .spawn_scoped(scope, move || {
                let mut hasher = Hasher::new();
                for msg in inbox {
                    match msg {
                        Msg::Chunk(buf) => {
                            hasher.update(&buf);
                            // The writer may have stopped; the buffer is then simply dropped.
                            let _ = give_back.send(buf);
                        }
                        Msg::Finish => {
                            let done = std::mem::take(&mut hasher).finish();
                            if send_digest.send(done).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .ok();
        Self {
            broken: thread.is_none(),
            to_hasher: Some(to_hasher),
            free,
            digests,
            thread,
        }
    }

    /// Queues `chunk` for hashing; waits only when every buffer is still in the hasher's queue.
    pub(crate) fn update(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.broken {
            let (Some(tx), Ok(mut buf)) = (&self.to_hasher, self.free.recv()) else {
                self.broken = true;
                return;
            };
            let n = chunk.len().min(BUFFER);
            buf.clear();
            buf.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if tx.send(Msg::Chunk(buf)).is_err() {
                self.broken = true;
            }
        }
    }

    /// The digest of everything given since the last call; `None` if the hashing thread failed
    /// (the caller must then treat the file as unverified).
    pub(crate) fn finish(&mut self) -> Option<Digest> {
        if self.broken {
            return None;
        }
        let tx = self.to_hasher.as_ref()?;
        if tx.send(Msg::Finish).is_err() {
            self.broken = true;
            return None;
        }
        let d = self.digests.recv().ok();
        self.broken = d.is_none();
        d
    }
}

impl Drop for HashPipe<'_> {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; join so it never outlives the scope's
        // borrows in a surprising order (a panic in it is already reported by the runtime).
        self.to_hasher = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_inline_hashing_file_after_file() {
        let a: Vec<u8> = (0..3_500_000u32).map(|i| (i % 251) as u8).collect();
        let b = b"small".to_vec();
        thread::scope(|s| {
            let mut pipe = HashPipe::spawn(s);
            for chunks in [
                vec![&a[..7], &a[7..2_000_000], &a[2_000_000..]],
                vec![&b[..]],
            ] {
                for c in &chunks {
                    pipe.update(c);
                }
                let whole: Vec<u8> = chunks.concat();
                assert_eq!(pipe.finish(), Some(Digest::of(&whole)));
            }
            // A file with no bytes hashes to the empty digest, not to the previous file's.
            assert_eq!(pipe.finish(), Some(Digest::of(b"")));
        });
    }
}
