//! The build after planning: the disk it needs, checked before any download, then every blob
//! into the archive by the fastest safe path for the output's kind. A `.tar` is written in
//! place (`inplace`: each layer streams straight to its offset), and so is a `.tar.gz` whose
//! blobs are all compressed (stored blocks, whose offsets are known in advance); a `.tar.gz`
//! with a blob that is not (its deflated length is known only once deflated) fetches its layers
//! into a locked store beside the output first (`fetch`) and is then written by the streaming
//! writer (`create`), which writes the same bytes the in-place one would.

use std::sync::atomic::AtomicBool;

use sensei_core::archive::OutputCompression;
use sensei_core::outfile::{self, CheckedOutput, TempDir};
use sensei_core::progress::Reporter;
use sensei_core::signature::PrivateKey;
use sensei_registry::Registry;
use serde::Serialize;

use crate::create::{WriteOptions, Written, estimated_size, write_bundle};
use crate::error::{BundleError, Bytes};
use crate::fetch::{Fetched, fetch_remote};
use crate::inplace::{gzip_fits_in_place, write_in_place};
use crate::plan::Plan;

/// What a build wrote and fetched.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    #[serde(flatten)]
    pub written: Written,
    pub fetched: Fetched,
}

/// How the build runs.
#[derive(Debug)]
pub struct BuildOptions<'a> {
    pub keys: &'a [PrivateKey],
    /// Downloads at once.
    pub concurrency: usize,
    /// Set when the user asks to stop: the build ends, removing its temporary files.
    pub cancel: &'a AtomicBool,
}

/// The disk a build of `plan` into `out` needs at its peak: the archive, plus (for a
/// `.tar.gz` that cannot be written in place) the downloads held beside it until it is written.
pub fn disk_needed(plan: &Plan, out: &CheckedOutput) -> (u64, u64) {
    let store = match OutputCompression::from_path(&out.path) {
        OutputCompression::None => 0,
        OutputCompression::Gzip if gzip_fits_in_place(plan) => 0,
        OutputCompression::Gzip => plan.remote_bytes(),
    };
    (estimated_size(plan), store)
}

/// Fails (exit 3) when the output's filesystem cannot hold the build, before any download.
pub fn check_space(plan: &Plan, out: &CheckedOutput) -> Result<(), BundleError> {
    let (archive, store) = disk_needed(plan, out);
    check_free(out, archive, store)
}

fn check_free(out: &CheckedOutput, archive: u64, store: u64) -> Result<(), BundleError> {
    let needed = archive + store;
    let free = outfile::free_space(&out.dir).map_err(BundleError::io(&out.dir))?;
    if needed > free {
        let detail = if store == 0 {
            format!("the archive, up to {}", Bytes(archive))
        } else {
            format!(
                "the archive, up to {}, and {} of downloads held beside it until it is written",
                Bytes(archive),
                Bytes(store)
            )
        };
        return Err(BundleError::NoSpace {
            dir: out.dir.clone(),
            output: out.path.clone(),
            needed: Bytes(needed),
            free: Bytes(free),
            detail,
        });
    }
    Ok(())
}

/// Fetches every remote blob of `plan` and writes the signed archive to `out`.
pub fn build(
    plan: &mut Plan,
    out: &CheckedOutput,
    registry: &Registry,
    runtime: &tokio::runtime::Runtime,
    opts: &BuildOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<Built, BundleError> {
    let write = WriteOptions {
        keys: opts.keys,
        cancel: Some(opts.cancel),
    };
    let cancelled = |e: BundleError| match e {
        BundleError::Cancelled(_) => BundleError::Cancelled(out.path.clone()),
        e => e,
    };
    let in_place = runtime
        .block_on(write_in_place(
            plan,
            &out.path,
            registry,
            opts.concurrency,
            &write,
            reporter,
        ))
        .map_err(cancelled)?;
    if let Some((written, fetched)) = in_place {
        return Ok(Built { written, fetched });
    }
    // A `.tar.gz` with a blob that is not compressed. When a registry layer's bytes
    // contradicted its media type, the disk check did not count the store: check again.
    check_free(out, estimated_size(plan), plan.remote_bytes())?;
    // Fetched layers wait beside the output (same filesystem, so writing the archive is a
    // local copy); the directory is locked by this process and goes away whatever happens.
    let label = format!(
        "{}.fetch",
        out.path.file_name().unwrap_or_default().to_string_lossy()
    );
    let store = TempDir::new_in(&out.dir, &label).map_err(BundleError::io(&out.dir))?;
    let fetched = runtime
        .block_on(fetch_remote(
            plan,
            registry,
            store.path(),
            opts.concurrency,
            Some(opts.cancel),
            reporter,
        ))
        .map_err(cancelled)?;
    let written = write_bundle(plan, &out.path, &write, reporter).map_err(cancelled)?;
    drop(store);
    Ok(Built { written, fetched })
}
