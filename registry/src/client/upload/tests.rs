//! The upload loop against a small fake registry on loopback, for what docker-registry (the
//! end-to-end tests' registry) cannot show: a registry that says what it kept of a cut upload
//! (the next attempt sends only the rest), one that then refuses to continue, a commit whose
//! answer is lost, a 5xx answer that leaves the session usable, and the end of the budget.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use sensei_core::digest::Digest;

use super::*;
use crate::client::ClientSettings;
use crate::error::ErrorKind;
use crate::retry::{RetryNotice, RetryPolicy};

const MIB: u64 = 1 << 20;

/// What the fake registry does, and what it saw.
#[derive(Debug, Default)]
struct State {
    /// A GET on a session says what it holds (`Range: 0-LAST`); else 404, as docker-registry
    /// after a cut.
    honour: bool,
    /// A PATCH with `Content-Range` is refused (416).
    refuse_ranges: bool,
    /// The next upload requests with a body each keep this many bytes, then the connection is
    /// closed without an answer.
    cuts: Vec<u64>,
    /// Every upload request cut after this many bytes.
    cut_always: Option<u64>,
    /// The next upload requests with a body answered 500, their body drained (not kept).
    errors: usize,
    /// The next commits whose answer is lost once they went through.
    lose_commits: usize,
    sessions: HashMap<String, Vec<u8>>,
    blobs: HashSet<String>,
    next: u32,
    /// (method, path without query, body bytes kept, Content-Range).
    log: Vec<(String, String, u64, Option<String>)>,
}

/// A registry on 127.0.0.1 speaking just enough of the distribution API, one connection per
/// request.
struct Fake {
    host: String,
    state: Arc<Mutex<State>>,
}

impl Fake {
    fn start(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self { host, state }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The methods of the requests seen, HEADs and the `/v2/` probe left out.
    fn methods(&self) -> Vec<String> {
        self.state()
            .log
            .iter()
            .filter(|(m, p, ..)| m != "HEAD" && p != "/v2/")
            .map(|(m, ..)| m.clone())
            .collect()
    }

    fn count(&self, method: &str) -> usize {
        self.state()
            .log
            .iter()
            .filter(|(m, ..)| m == method)
            .count()
    }

    fn kept(&self) -> u64 {
        self.state().log.iter().map(|(_, _, n, _)| n).sum()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: u64 = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let range = headers.get("content-range").cloned();
    let url = url::Url::parse(&format!("http://x{target}")).unwrap();
    let path = url.path().to_owned();
    let digest = url
        .query_pairs()
        .find(|(k, _)| k == "digest")
        .map(|(_, v)| v.into_owned());
    let mut st = state.lock().unwrap();

    // Upload requests with a body may be failed or cut.
    let mut cut = None;
    if len > 0 && path.contains("/blobs/uploads/") {
        if st.errors > 0 {
            st.errors -= 1;
            drop(st);
            std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink()).unwrap();
            let mut st = state.lock().unwrap();
            st.log.push((method, path, 0, range));
            drop(st);
            return answer(stream, 500, &[]);
        }
        cut = if st.cuts.is_empty() {
            st.cut_always
        } else {
            Some(st.cuts.remove(0))
        }
        .filter(|&n| n < len);
    }
    let mut body = vec![];
    let want = cut.unwrap_or(len);
    drop(st);
    (&mut reader).take(want).read_to_end(&mut body).unwrap();
    let mut st = state.lock().unwrap();
    st.log.push((
        method.clone(),
        path.clone(),
        body.len() as u64,
        range.clone(),
    ));
    let id = path.rsplit('/').next().unwrap_or("").to_owned();
    if let Some(held) = st.sessions.get_mut(&id) {
        held.extend_from_slice(&body);
    }
    if cut.is_some() {
        return; // closed with the rest of the body unread: the client sees a reset
    }
    let held = st.sessions.get(&id).map(|b| b.len() as u64);
    let status_range = |n: u64| format!("0-{}", n.saturating_sub(1));
    match (method.as_str(), held) {
        ("GET", _) if path == "/v2/" => answer(stream, 200, &[]),
        ("POST", _) => {
            st.next += 1;
            let id = format!("u{}", st.next);
            st.sessions.insert(id.clone(), vec![]);
            answer(
                stream,
                202,
                &[("Location", format!("/v2/r/blobs/uploads/{id}"))],
            );
        }
        ("GET", Some(n)) if st.honour => answer(
            stream,
            204,
            &[("Range", status_range(n)), ("Location", path.clone())],
        ),
        ("PATCH", Some(n)) => {
            let start = range
                .as_deref()
                .and_then(|r| r.split('-').next())
                .and_then(|a| a.parse::<u64>().ok());
            if range.is_some() && (st.refuse_ranges || start != Some(n - body.len() as u64)) {
                return answer(stream, 416, &[]);
            }
            answer(
                stream,
                202,
                &[("Range", status_range(n)), ("Location", path.clone())],
            );
        }
        ("PUT", Some(_)) => {
            let data = st.sessions.remove(&id).unwrap();
            let actual = Digest::of(&data).to_string();
            if digest.as_deref() != Some(actual.as_str()) {
                return answer(stream, 400, &[]);
            }
            st.blobs.insert(actual);
            if st.lose_commits > 0 {
                st.lose_commits -= 1;
                return; // it went through; the answer is lost
            }
            answer(stream, 201, &[]);
        }
        ("HEAD", _) => {
            let there = st.blobs.iter().any(|d| path.ends_with(d.as_str()));
            answer(stream, if there { 200 } else { 404 }, &[]);
        }
        ("DELETE", Some(_)) => {
            st.sessions.remove(&id);
            answer(stream, 204, &[]);
        }
        _ => answer(stream, 404, &[]),
    }
}

fn answer(mut stream: TcpStream, status: u16, headers: &[(&str, String)]) {
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(out.as_bytes());
}

/// A client for `fake` with a quick policy of `attempts`, and the retry notices it tells.
fn client(fake: &Fake, attempts: u32) -> (Registry, Arc<Mutex<Vec<String>>>) {
    let told = Arc::new(Mutex::new(vec![]));
    let sink = told.clone();
    let registry = Registry::new(ClientSettings {
        plain_http: vec![fake.host.clone()],
        retry: RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        on_retry: Some(RetryNotice::new(move |r| {
            sink.lock().unwrap().push(r.to_string());
        })),
        ..ClientSettings::default()
    })
    .unwrap();
    (registry, told)
}

/// A 4 MiB blob, and a body for it that notes the offset of every attempt.
fn blob() -> (Arc<Vec<u8>>, Digest) {
    let data: Vec<u8> = (0..4 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::of(&data);
    (Arc::new(data), digest)
}

type Body = std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>;

fn body(
    data: &Arc<Vec<u8>>,
    offsets: &Arc<Mutex<Vec<u64>>>,
) -> impl Fn(u64) -> std::io::Result<Body> + use<> {
    let (data, offsets) = (data.clone(), offsets.clone());
    move |from| {
        offsets.lock().unwrap().push(from);
        let chunks: Vec<std::io::Result<Bytes>> = data[usize::try_from(from).unwrap()..]
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Ok(Box::pin(stream::iter(chunks)) as Body)
    }
}

async fn push(fake: &Fake, attempts: u32) -> (Result<(), RegistryError>, Vec<u64>, Vec<String>) {
    let (registry, told) = client(fake, attempts);
    let (data, digest) = blob();
    let offsets = Arc::default();
    let result = registry
        .push_blob(
            &Repo::new(fake.host.clone(), "r"),
            &digest,
            4 * MIB,
            body(&data, &offsets),
        )
        .await;
    let offsets = offsets.lock().unwrap().clone();
    let told = told.lock().unwrap().clone();
    (result, offsets, told)
}

#[tokio::test]
async fn a_registry_that_says_what_it_kept_of_a_cut_upload_gets_only_the_rest() {
    let fake = Fake::start(State {
        honour: true,
        cuts: vec![2 * MIB],
        ..State::default()
    });
    let (result, offsets, told) = push(&fake, 3).await;
    result.unwrap();
    assert_eq!(offsets, vec![0, 2 * MIB]);
    assert_eq!(fake.methods(), ["POST", "PUT", "GET", "PATCH", "PUT"]);
    let patch = fake.state().log.iter().find(|r| r.0 == "PATCH").cloned();
    assert_eq!(patch.unwrap().3.as_deref(), Some("2097152-4194303"));
    // Every byte went to the registry once.
    assert_eq!(fake.kept(), 4 * MIB);
    assert_eq!(fake.state().blobs.len(), 1);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("resuming blob sha256:")
            && told[0].contains("at 2.0 MiB: 2.0 MiB left to send, the registry kept the rest"),
        "{told:?}"
    );
}

#[tokio::test]
async fn a_registry_that_refuses_the_session_gets_the_blob_again_from_byte_0() {
    let fake = Fake::start(State {
        cuts: vec![2 * MIB],
        ..State::default()
    });
    let (result, offsets, told) = push(&fake, 3).await;
    result.unwrap();
    assert_eq!(offsets, vec![0, 0]);
    assert_eq!(
        fake.methods(),
        ["POST", "PUT", "GET", "DELETE", "POST", "PUT"]
    );
    assert!(
        told[0].contains("re-sending all 4.0 MiB of blob sha256:"),
        "{told:?}"
    );
}

#[tokio::test]
async fn a_registry_that_will_not_continue_where_it_said_gets_a_fresh_session_at_once() {
    let fake = Fake::start(State {
        honour: true,
        refuse_ranges: true,
        cuts: vec![2 * MIB],
        ..State::default()
    });
    let (result, offsets, _) = push(&fake, 3).await;
    result.unwrap();
    assert_eq!(offsets, vec![0, 2 * MIB, 0]);
    assert_eq!(
        fake.methods(),
        ["POST", "PUT", "GET", "PATCH", "DELETE", "POST", "PUT"]
    );
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_found_by_head_not_sent_again() {
    let fake = Fake::start(State {
        lose_commits: 1,
        ..State::default()
    });
    let (result, offsets, _) = push(&fake, 3).await;
    result.unwrap();
    assert_eq!(offsets, vec![0]);
    assert_eq!(fake.methods(), ["POST", "PUT"]);
    assert_eq!(fake.count("HEAD"), 1);

    // The same for a staged blob's commit: its retry finds the session used up (404), and
    // the blob there.
    let fake = Fake::start(State {
        lose_commits: 1,
        ..State::default()
    });
    let (registry, _) = client(&fake, 3);
    let (data, digest) = blob();
    let offsets = Arc::default();
    let repo = Repo::new(fake.host.clone(), "r");
    let staged = registry
        .stage_blob(&repo, &digest, 4 * MIB, body(&data, &offsets))
        .await
        .unwrap();
    registry.commit_staged(&staged).await.unwrap();
    assert_eq!(fake.methods(), ["POST", "PATCH", "PUT", "PUT"]);
    assert_eq!(fake.count("HEAD"), 1);
}

#[tokio::test]
async fn an_upload_answered_500_goes_again_in_the_same_session() {
    let fake = Fake::start(State {
        errors: 2,
        ..State::default()
    });
    let (result, offsets, _) = push(&fake, 3).await;
    result.unwrap();
    assert_eq!(offsets, vec![0, 0, 0]);
    // Asked what it kept each time (nothing: a blob this big would be worth continuing), then
    // the same session again: no new POST, no DELETE.
    assert_eq!(fake.methods(), ["POST", "PUT", "GET", "PUT", "GET", "PUT"]);
}

#[tokio::test]
async fn attempts_that_get_no_further_end_with_an_error_saying_how_far_they_got() {
    let fake = Fake::start(State {
        cut_always: Some(2 * MIB),
        ..State::default()
    });
    let (result, offsets, told) = push(&fake, 3).await;
    let e = result.unwrap_err();
    // The first attempt is progress (from nothing); then three in a row without.
    assert!((4..=6).contains(&offsets.len()), "{offsets:?}");
    assert!(offsets.iter().all(|&o| o == 0));
    assert!(
        matches!(e.kind, ErrorKind::Stalled { stalled: 3, .. }),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("uploading blob sha256:")
            && text.contains("the last 3 in a row getting no further than")
            && text.contains("of its 4.0 MiB; the last failure: the connection broke off"),
        "{text}"
    );
    assert_eq!(told.len(), offsets.len() - 1);
    // Every session it opened was cancelled.
    assert_eq!(fake.count("POST"), fake.count("DELETE"));
}

#[test]
fn an_upload_status_says_where_the_kept_bytes_end() {
    assert_eq!(range_end("0-1048575"), Some(1_048_575));
    assert_eq!(range_end("bytes=0-99"), Some(99));
    assert_eq!(range_end(" 0-0 "), Some(0));
    assert_eq!(range_end("5-99"), None);
    assert_eq!(range_end("0-"), None);
    assert_eq!(range_end("garbage"), None);
}
