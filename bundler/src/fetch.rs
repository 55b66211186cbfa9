//! Fetches the plan's registry layers into the build's temporary store, for a `.tar.gz` that
//! cannot be written in place (otherwise `inplace` fetches them straight into the archive): in
//! parallel, each unique blob once however many images share it, biggest first (so the longest
//! transfer starts at once and the small ones fill in around it), streamed through the hasher
//! to disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use sensei_core::digest::Digest;
use sensei_core::progress::Reporter;
use sensei_registry::{FileSink, Registry};
use serde::Serialize;

use crate::blob::BlobData;
use crate::error::BundleError;
use crate::plan::Plan;

/// What fetching did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fetched {
    pub blobs: usize,
    pub bytes: u64,
}

/// Fetches every `BlobData::Remote` blob into `store` and points the plan at the files.
pub async fn fetch_remote(
    plan: &mut Plan,
    registry: &Registry,
    store: &Path,
    concurrency: usize,
    cancel: Option<&AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<Fetched, BundleError> {
    let mut todo: Vec<(Digest, u64, sensei_registry::Repo, String)> = plan
        .blobs
        .values()
        .filter_map(|b| match &b.data {
            BlobData::Remote(r) => Some((b.digest, b.size, r.repo.clone(), b.needed_by.clone())),
            _ => None,
        })
        .collect();
    if todo.is_empty() {
        return Ok(Fetched::default());
    }
    todo.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: u64 = todo.iter().map(|t| t.1).sum();
    reporter.start("fetch", Some(total));
    let fetched: Vec<(Digest, PathBuf)> = futures_util::stream::iter(todo.iter())
        .map(|(digest, size, repo, needed_by)| async move {
            let work = fetch_one(registry, store, repo, digest, *size, needed_by, reporter);
            tokio::select! {
                r = work => r,
                () = cancelled(cancel) => Err(BundleError::Cancelled(store.to_owned())),
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    reporter.finish();
    for (digest, path) in fetched {
        if let Some(b) = plan.blobs.get_mut(&digest) {
            b.data = BlobData::Stored(path);
        }
    }
    Ok(Fetched {
        blobs: todo.len(),
        bytes: total,
    })
}

async fn fetch_one(
    registry: &Registry,
    store: &Path,
    repo: &sensei_registry::Repo,
    digest: &Digest,
    size: u64,
    needed_by: &str,
    reporter: &dyn Reporter,
) -> Result<(Digest, PathBuf), BundleError> {
    let name = digest.blob_path();
    let done = store.join(digest.hex());
    let part = store.join(format!("{}.part", digest.hex()));
    let file = std::fs::File::create(&part).map_err(BundleError::io(&part))?;
    let mut sink = FileSink::new(file);
    reporter.item(&name, Some(size));
    let progress = |n: i64| {
        if let Ok(n) = u64::try_from(n) {
            reporter.item_advance(&name, n);
        }
    };
    registry
        .pull_blob(repo, digest, size, &mut sink, &progress)
        .await
        .map_err(|source| BundleError::Registry {
            reference: needed_by.to_owned(),
            source: Box::new(source),
        })?;
    drop(sink);
    std::fs::rename(&part, &done).map_err(BundleError::io(&done))?;
    reporter.item_done(&name);
    Ok((*digest, done))
}

/// Resolves when the stop flag (Ctrl-C, SIGTERM, SIGHUP) is set; never without one.
pub(crate) async fn cancelled(flag: Option<&AtomicBool>) {
    match flag {
        Some(flag) => {
            while !flag.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        None => std::future::pending().await,
    }
}
