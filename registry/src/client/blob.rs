//! Blobs: streamed downloads through a hasher with Range resume, existence checks and
//! cross-repository mounts. (Uploads are in `session`.)

use std::io::{Seek, Write};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use sensei_core::digest::{Digest, Hasher};

use super::request::expect_success;
use super::session::location;
use super::{Registry, Repo, lock};
use crate::error::{ErrorKind, RegistryError};

impl Registry {
    /// Streams a blob into `sink`, hashing as it goes. A dropped connection resumes with an
    /// HTTP Range request where the registry allows it (else the sink restarts from byte 0); a
    /// wrong size or digest fails without retry. `progress` gets each chunk's length, and a
    /// negative correction when a restart throws bytes away.
    pub async fn pull_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        sink: &mut (dyn BlobSink + Send),
        progress: &(dyn Fn(i64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        let fail = self.fail(repo, format!("fetching blob {digest} from {}", repo.path));
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let url = self.url(repo, &format!("blobs/{digest}"));
        let state = std::sync::Mutex::new(PullState {
            hasher: Hasher::new(),
            written: 0,
            sink,
        });
        let result = self
            .retried(&repo.host, |_| {
                self.pull_attempt(repo, &url, size, &state, progress)
            })
            .await;
        let state = state
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = result.and_then(|()| {
            if state.written != size {
                return Err(ErrorKind::Size {
                    what: "blob",
                    expected: size,
                    actual: state.written,
                });
            }
            let actual = state.hasher.finish();
            if actual != *digest {
                return Err(ErrorKind::Integrity {
                    what: "blob",
                    expected: *digest,
                    actual,
                });
            }
            Ok(())
        });
        result.map_err(fail)
    }

    /// A small blob (an image config) into memory; `size` comes from its descriptor and the
    /// caller has bounded it.
    pub async fn pull_small_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
    ) -> Result<Bytes, RegistryError> {
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        self.pull_blob(repo, digest, size, &mut buf, &|_| {})
            .await?;
        Ok(buf.into())
    }

    /// One GET of the blob, from where the last attempt stopped (`Range`) if it got anywhere.
    async fn pull_attempt(
        &self,
        repo: &Repo,
        url: &str,
        size: u64,
        state: &std::sync::Mutex<PullState<'_>>,
        progress: &(dyn Fn(i64) + Send + Sync),
    ) -> Result<(), ErrorKind> {
        let offset = lock(state).written;
        let response = self
            .send_authorized(repo, url, false, |http| {
                let get = http.get(url);
                if offset > 0 {
                    get.header(RANGE, format!("bytes={offset}-"))
                } else {
                    get
                }
            })
            .await?;
        let response = expect_success(response).await?;
        if offset > 0 && response.status() == reqwest::StatusCode::PARTIAL_CONTENT {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(range_start);
            if start != Some(offset) {
                return Err(ErrorKind::Protocol(format!(
                    "asked for the blob from byte {offset}, got Content-Range {:?}",
                    response.headers().get(CONTENT_RANGE)
                )));
            }
        } else {
            // The registry ignored Range (or this is the first attempt): from byte 0.
            let mut st = lock(state);
            if st.written > 0 {
                progress(-(st.written as i64));
                st.sink.restart()?;
            }
            st.hasher = Hasher::new();
            st.written = 0;
        }
        let mut stream = response.bytes_stream();
        let result = async {
            while let Some(chunk) = stream.next().await {
                // Cut off mid-body: worth resuming, whatever the layer below says.
                let chunk = chunk.map_err(|e| ErrorKind::Connect(crate::error::error_chain(&e)))?;
                let mut st = lock(state);
                if st.written + chunk.len() as u64 > size {
                    return Err(ErrorKind::Size {
                        what: "blob",
                        expected: size,
                        actual: st.written + chunk.len() as u64,
                    });
                }
                st.sink.write_chunk(&chunk)?;
                st.hasher.update(&chunk);
                st.written += chunk.len() as u64;
                progress(chunk.len() as i64);
            }
            Ok(())
        }
        .await;
        lock(state).sink.flush()?;
        result?;
        if lock(state).written < size {
            return Err(ErrorKind::Connect(
                "the connection ended before the whole blob arrived".into(),
            ));
        }
        Ok(())
    }

    /// Whether the repository already has the blob (HEAD).
    pub async fn blob_exists(&self, repo: &Repo, digest: &Digest) -> Result<bool, RegistryError> {
        let fail = self.fail(repo, format!("checking blob {digest} in {}", repo.path));
        self.auth_for(&repo.host)
            .await
            .map_err(self.fail(repo, String::new()))?;
        let url = self.url(repo, &format!("blobs/{digest}"));
        self.retried(&repo.host, |_| async {
            let response = self
                .send_authorized(repo, &url, true, |http| http.head(&url))
                .await?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(false);
            }
            expect_success(response).await.map(|_| true)
        })
        .await
        .map_err(fail)
    }

    /// Asks the registry to link a blob it holds in `from` into `repo` without an upload,
    /// retried on transient failures (a mount whose answer was lost just mounts again).
    /// `false` means it declined (another user's repository, a registry without mounting; a
    /// session it opened instead is cancelled) or kept failing: upload instead.
    pub async fn mount_blob(&self, repo: &Repo, from: &str, digest: &Digest) -> bool {
        if self.auth_for(&repo.host).await.is_err() {
            return false;
        }
        let Ok(mut url) = url::Url::parse(&self.url(repo, "blobs/uploads/")) else {
            return false;
        };
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let url = url.to_string();
        let answer = self
            .retried(&repo.host, |_| async {
                let response = self
                    .send_authorized(repo, &url, true, |http| {
                        http.post(&url).header(reqwest::header::CONTENT_LENGTH, 0)
                    })
                    .await?;
                let status = response.status();
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    return Err(expect_success(response)
                        .await
                        .err()
                        .unwrap_or_else(|| ErrorKind::from_status(status.as_u16(), "mounting")));
                }
                Ok(match status {
                    reqwest::StatusCode::CREATED => Mount::Done,
                    reqwest::StatusCode::ACCEPTED => {
                        Mount::Declined(location(&response, &url).ok().flatten())
                    }
                    _ => Mount::Declined(None),
                })
            })
            .await;
        match answer {
            Ok(Mount::Done) => true,
            Ok(Mount::Declined(Some(opened))) => {
                self.delete_session(repo, &opened).await;
                false
            }
            Ok(Mount::Declined(None)) | Err(_) => false,
        }
    }
}

/// A registry's answer to a mount.
enum Mount {
    Done,
    /// With the upload session it opened instead, if it did.
    Declined(Option<String>),
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL`.
fn range_start(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Where a downloaded blob goes: written chunk by chunk, restarted from zero if the
/// registry won't resume.
pub trait BlobSink {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()>;
    /// Throws away what was written.
    fn restart(&mut self) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobSink for Vec<u8> {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
}

/// A file being downloaded into, buffered.
#[derive(Debug)]
pub struct FileSink(std::io::BufWriter<std::fs::File>);

impl FileSink {
    pub fn new(file: std::fs::File) -> Self {
        Self(std::io::BufWriter::with_capacity(1 << 20, file))
    }
}

impl BlobSink for FileSink {
    fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.0.write_all(chunk)
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        let f = self.0.get_mut();
        f.set_len(0)?;
        f.seek(std::io::SeekFrom::Start(0))?;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

struct PullState<'a> {
    hasher: Hasher,
    written: u64,
    sink: &'a mut (dyn BlobSink + Send),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_answer_says_where_it_starts() {
        assert_eq!(range_start("bytes 100-999/1000"), Some(100));
        assert_eq!(range_start("bytes 0-0/1"), Some(0));
        assert_eq!(range_start("bytes */1000"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }
}
