//! What the registry already holds, found with reads only (GET, HEAD), so it may run while
//! the verification pass is still reading the bundle.
//!
//! Asked as few times as the answers allow, since each request costs the registry about as
//! much as a small upload:
//!
//! 1. The catalog, where the registry offers one: a repository it does not list holds nothing,
//!    so nothing more is asked about it.
//! 2. Each tag (GET, whose digest is checked): a repository whose tags all name the right
//!    digest is complete (the registry took those manifests only with everything below them).
//! 3. Each blob no complete repository holds, once, in the first repository that may hold it
//!    (a big blob in each: an upload costs far more than the questions). The other
//!    repositories that need it get it by a mount, which also succeeds where it is already
//!    there, so they need no question of their own.
//! 4. Each manifest pushed by digest, in the repositories that may hold it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use sensei_core::digest::Digest;
use sensei_registry::{ErrorKind, Registry, RegistryError, Repo};

use super::graph::{BlobJob, PushGraph};

/// A blob whose upload costs far more than a request: worth a question in every repository
/// that may hold it, and worth streaming while the bundle is still being verified.
pub const BIG_BLOB: u64 = 1 << 20;

/// What the registry already holds, as far as this push is concerned.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    /// (repository, blob) placements known to be there.
    pub(super) blobs: HashSet<(String, Digest)>,
    /// (repository, manifest) pairs that are there.
    pub(super) manifests: HashSet<(String, Digest)>,
    /// (repository, tag) pairs that already name the right digest.
    pub(super) tags: HashSet<(String, String)>,
}

impl Presence {
    /// True if some repository that needs the blob has it: it will be mounted, not read.
    pub fn has_anywhere(&self, job: &BlobJob) -> bool {
        job.repos
            .iter()
            .any(|r| self.blobs.contains(&(r.clone(), job.digest)))
    }
}

/// The repositories the registry lists, if it lists them all to us: any other holds nothing.
#[derive(Debug, Clone, Default)]
pub struct Listed(Option<Arc<HashSet<String>>>);

impl Listed {
    /// True when the registry's catalog shows that `repo` holds nothing.
    fn is_empty(&self, repo: &str) -> bool {
        self.0.as_ref().is_some_and(|names| !names.contains(repo))
    }
}

/// Asks for the catalog (see the module docs), with the credentials of a repository the push
/// writes to.
pub async fn listed(registry: &Registry, host: &str, graph: &PushGraph) -> Listed {
    let any = graph
        .tags
        .iter()
        .map(|t| &t.repo)
        .chain(graph.manifests.iter().map(|m| &m.repo))
        .next();
    match any {
        Some(path) => Listed(
            registry
                .repositories(&Repo::new(host, path.as_str()))
                .await
                .map(Arc::new),
        ),
        None => Listed(None),
    }
}

/// Everything [`check_tags`] and [`check_rest`] find, one after the other.
pub async fn check(
    registry: Registry,
    host: String,
    graph: Arc<PushGraph>,
    concurrency: usize,
) -> Result<Presence, RegistryError> {
    let listed = listed(&registry, &host, &graph).await;
    let tags = check_tags(
        registry.clone(),
        host.clone(),
        graph.clone(),
        concurrency,
        listed.clone(),
    )
    .await?;
    check_rest(registry, host, graph, concurrency, tags, listed).await
}

/// The tags that already name the right digest: the first, cheapest question, which alone
/// tells whether the registry is already up to date.
pub async fn check_tags(
    registry: Registry,
    host: String,
    graph: Arc<PushGraph>,
    concurrency: usize,
    listed: Listed,
) -> Result<HashSet<(String, String)>, RegistryError> {
    let n = concurrency.max(1);
    let tags: Vec<_> = graph
        .tags
        .iter()
        .filter(|t| !listed.is_empty(&t.repo))
        .map(|t| {
            (
                registry.clone(),
                Repo::new(host.clone(), t.repo.as_str()),
                t.tag.clone(),
                t.digest,
            )
        })
        .collect();
    // GET rather than HEAD: docker-registry spends the same on both (it reads the manifest
    // either way), and the body's digest is then checked here, not taken from a header.
    let found: Vec<Option<(String, String)>> = stream::iter(tags)
        .map(|(registry, repo, tag, digest)| async move {
            match registry.manifest(&repo, &tag, None).await {
                Ok(m) if m.digest == digest => Ok(Some((repo.path, tag))),
                Ok(_) => Ok(None),
                Err(e) if matches!(e.kind, ErrorKind::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(n)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// True when every tag already names its digest and no image is pushed by digest alone: the
/// registry holds everything the signed bundle.json names, so there is nothing to write.
pub fn up_to_date(graph: &PushGraph, tags: &HashSet<(String, String)>) -> bool {
    graph
        .tags
        .iter()
        .all(|t| tags.contains(&(t.repo.clone(), t.tag.clone())))
        && !graph.manifests.iter().any(|m| m.top)
}

/// The rest of [`check`], given what [`check_tags`] found.
pub async fn check_rest(
    registry: Registry,
    host: String,
    graph: Arc<PushGraph>,
    concurrency: usize,
    tags: HashSet<(String, String)>,
    listed: Listed,
) -> Result<Presence, RegistryError> {
    let n = concurrency.max(1);
    let ask = |path: &str| (registry.clone(), Repo::new(host.clone(), path));
    let mut presence = Presence {
        tags,
        ..Presence::default()
    };

    // A repository is complete when each of its tags names the right digest (the registry
    // took that manifest only with everything below it) and no image in it is known by
    // digest alone.
    let mut complete: HashMap<String, bool> = HashMap::new();
    for t in &graph.tags {
        let here = presence.tags.contains(&(t.repo.clone(), t.tag.clone()));
        *complete.entry(t.repo.clone()).or_insert(true) &= here;
    }
    for m in graph.manifests.iter().filter(|m| m.top) {
        complete.insert(m.repo.clone(), false);
    }
    let is_complete = |r: &str| complete.get(r).copied().unwrap_or(false);

    let mut blobs = vec![];
    for b in &graph.blobs {
        let mut held = false;
        let mut maybe = vec![];
        for r in &b.repos {
            if is_complete(r) {
                presence.blobs.insert((r.clone(), b.digest));
                held = true;
            } else if !listed.is_empty(r) {
                maybe.push(r);
            }
        }
        if held {
            continue; // mounted from there into the rest
        }
        let asked = if b.size >= BIG_BLOB { maybe.len() } else { 1 };
        blobs.extend(maybe.into_iter().take(asked).map(|r| (ask(r), b.digest)));
    }
    let found: Vec<Option<(String, Digest)>> = stream::iter(blobs)
        .map(|((registry, repo), digest)| async move {
            let here = registry.blob_exists(&repo, &digest).await?;
            Ok::<_, RegistryError>(here.then_some((repo.path, digest)))
        })
        .buffer_unordered(n)
        .try_collect()
        .await?;
    presence.blobs.extend(found.into_iter().flatten());

    let mut manifests = vec![];
    for m in &graph.manifests {
        if is_complete(&m.repo) {
            presence.manifests.insert((m.repo.clone(), m.digest));
        } else if !listed.is_empty(&m.repo) {
            manifests.push((ask(&m.repo), m.digest, m.bytes.len() as u64));
        }
    }
    let found: Vec<Option<(String, Digest)>> = stream::iter(manifests)
        .map(|((registry, repo), digest, size)| async move {
            match registry
                .manifest(&repo, &digest.to_string(), Some((digest, size)))
                .await
            {
                Ok(_) => Ok(Some((repo.path, digest))),
                Err(e) if matches!(e.kind, ErrorKind::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(n)
        .try_collect()
        .await?;
    presence.manifests.extend(found.into_iter().flatten());
    Ok(presence)
}
