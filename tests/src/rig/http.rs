//! Minimal HTTP/1.1 plumbing shared by the rig's loopback servers: message heads, body framing,
//! the accept loop, and the request log both servers keep.
//!
//! Only what the registry clients under test (Go's net/http, hyper, curl, skopeo) send is
//! handled: Content-Length and chunked bodies, keep-alive, `Expect: 100-continue`.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Heads larger than this are refused: nothing legitimate in the tests comes close.
const MAX_HEAD: usize = 256 * 1024;

/// How long a connection may sit idle (or a peer stall) before its thread gives up, so a stuck
/// test eventually fails instead of hanging forever.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// One request a rig server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `GET`, `HEAD`, `PUT`, ... as the client sent it.
    pub method: String,
    /// The request target: path and query, e.g. `/v2/sensei/api/blobs/sha256:...`.
    pub path: String,
    /// The status the client got (an injected fault's, or upstream's; 502 if upstream was down;
    /// 0 if it got no answer: the fault proxy reset the connection).
    pub status: u16,
    /// The client's `Range` header, if any (to see resumed downloads).
    pub range: Option<String>,
    /// Bytes of the request's body passed on to the registry (the fault proxy; 0 elsewhere):
    /// all of it, a cut upload's first bytes, or none for an injected error.
    pub body: u64,
    /// When it was answered (to see how long a client waited before trying again).
    pub at: std::time::Instant,
}

/// The requests a server answered, in order; shared with its connection threads. A test can
/// wait on it for a request to be answered ([`RequestLog::wait_until`]) instead of polling.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestLog(Arc<(Mutex<Vec<Logged>>, Condvar)>);

impl RequestLog {
    pub(crate) fn push(&self, entry: Logged) {
        lock(&self.0.0).push(entry);
        self.0.1.notify_all();
    }

    pub(crate) fn all(&self) -> Vec<Logged> {
        lock(&self.0.0).clone()
    }

    /// Requests whose method equals `method` (any case; `""` matches every method) and whose
    /// path contains `path_substring`.
    pub(crate) fn count(&self, method: &str, path_substring: &str) -> usize {
        lock(&self.0.0)
            .iter()
            .filter(|l| method.is_empty() || l.method.eq_ignore_ascii_case(method))
            .filter(|l| l.path.contains(path_substring))
            .count()
    }

    pub(crate) fn clear(&self) {
        lock(&self.0.0).clear();
    }

    /// Blocks until `done` holds for the log (checked now and at every request answered), then
    /// returns the log; `Err` with the log as it stands if `timeout` passes first.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Logged]) -> bool,
    ) -> Result<Vec<Logged>, Vec<Logged>> {
        let (log, answered) = &*self.0;
        let (log, waited) = answered
            .wait_timeout_while(lock(log), timeout, |log| !done(log))
            .unwrap_or_else(PoisonError::into_inner);
        if waited.timed_out() {
            Err(log.clone())
        } else {
            Ok(log.clone())
        }
    }
}

/// Locks, ignoring poisoning: a panicking connection thread must not hide the log from the test.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request or response head: the start line and the header fields in order.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub(crate) fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.headers.push((name.to_string(), value.to_string()));
    }

    /// `true` if a `Connection` header lists `token`.
    pub(crate) fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The three parts of a request line (`METHOD TARGET VERSION`).
    pub(crate) fn request_line(&self) -> io::Result<(String, String, String)> {
        let mut parts = self.start.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v)) => Ok((m.to_string(), t.to_string(), v.to_string())),
            _ => Err(invalid(format!("bad request line {:?}", self.start))),
        }
    }

    /// The status code of a response line (`HTTP/1.1 200 OK`).
    pub(crate) fn status(&self) -> io::Result<u16> {
        self.start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {:?}", self.start)))
    }

    pub(crate) fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        w.write_all(&out)
    }
}

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one line ending in `\n`, without it (and without a `\r`). `None` at a clean EOF.
fn read_line(r: &mut impl BufRead, budget: &mut usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = r.take(*budget as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget || line.last() != Some(&b'\n') {
        return Err(invalid("header too long or truncated".into()));
    }
    *budget -= n;
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| invalid("non-UTF-8 header".into()))
}

/// Reads a head. `None` if the peer closed the connection before sending anything.
pub(crate) fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut budget = MAX_HEAD;
    let start = loop {
        match read_line(r, &mut budget)? {
            None => return Ok(None),
            // Tolerate stray blank lines between keep-alive requests (RFC 9112 §2.2).
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)?
            .ok_or_else(|| invalid("connection closed inside a head".into()))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Some(Head { start, headers }))
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn is_chunked(head: &Head) -> bool {
    head.header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
}

fn content_length(head: &Head) -> io::Result<Option<u64>> {
    head.header("content-length")
        .map(|v| {
            v.parse()
                .map_err(|_| invalid(format!("bad Content-Length {v:?}")))
        })
        .transpose()
}

pub(crate) fn request_framing(head: &Head) -> io::Result<Framing> {
    if is_chunked(head) {
        return Ok(Framing::Chunked);
    }
    Ok(match content_length(head)? {
        Some(n) if n > 0 => Framing::Length(n),
        _ => Framing::None,
    })
}

pub(crate) fn response_framing(method: &str, status: u16, head: &Head) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD") || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    if is_chunked(head) {
        return Ok(Framing::Chunked);
    }
    Ok(match content_length(head)? {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Copies a body from `r` to `w` as it is framed on the wire (chunk lines included), so a
/// proxy can pass it on unchanged, or drain it into `io::sink()`. Streams: constant memory.
pub(crate) fn copy_framed(r: &mut impl BufRead, w: &mut impl Write, f: Framing) -> io::Result<()> {
    match f {
        Framing::None => Ok(()),
        Framing::Length(n) => copy_exact(r, w, n),
        Framing::UntilClose => io::copy(r, w).map(|_| ()),
        Framing::Chunked => loop {
            let mut budget = MAX_HEAD;
            let line = read_line(r, &mut budget)?
                .ok_or_else(|| invalid("connection closed inside a chunked body".into()))?;
            w.write_all(line.as_bytes())?;
            w.write_all(b"\r\n")?;
            let size = chunk_size(&line)?;
            if size == 0 {
                // Trailer fields, then the blank line that ends the body.
                loop {
                    let t = read_line(r, &mut budget)?
                        .ok_or_else(|| invalid("connection closed in chunked trailer".into()))?;
                    w.write_all(t.as_bytes())?;
                    w.write_all(b"\r\n")?;
                    if t.is_empty() {
                        return Ok(());
                    }
                }
            }
            copy_exact(r, w, size + 2)?; // data and its CRLF
        },
    }
}

/// Reads a whole body, chunked framing removed.
pub(crate) fn read_body(r: &mut impl BufRead, f: Framing) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match f {
        Framing::None => {}
        Framing::Length(n) => copy_exact(r, &mut out, n)?,
        Framing::UntilClose => {
            r.read_to_end(&mut out)?;
        }
        Framing::Chunked => loop {
            let mut budget = MAX_HEAD;
            let line = read_line(r, &mut budget)?
                .ok_or_else(|| invalid("connection closed inside a chunked body".into()))?;
            let size = chunk_size(&line)?;
            if size == 0 {
                while read_line(r, &mut budget)?.is_some_and(|t| !t.is_empty()) {}
                break;
            }
            copy_exact(r, &mut out, size)?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        },
    }
    Ok(out)
}

fn chunk_size(line: &str) -> io::Result<u64> {
    let hex = line.split(';').next().unwrap_or("").trim();
    u64::from_str_radix(hex, 16).map_err(|_| invalid(format!("bad chunk size line {line:?}")))
}

fn copy_exact(r: &mut impl Read, w: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), w)?;
    if copied < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("body ended after {copied} of {n} bytes"),
        ));
    }
    Ok(())
}

/// One request's head, as a rig server reads it.
#[derive(Debug)]
pub(crate) struct Request {
    pub head: Head,
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// The client wants the connection closed after this request (`Connection: close`, or
    /// HTTP/1.0).
    pub close: bool,
}

/// Reads the next request's head. `None` if the client closed the connection.
fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some(head) = read_head(r)? else {
        return Ok(None);
    };
    let (method, target, version) = head.request_line()?;
    let close = head.connection_has("close") || version == "HTTP/1.0";
    Ok(Some(Request {
        head,
        method,
        target,
        close,
    }))
}

/// A response head: the status line, `Content-Type` (if given), `Content-Length: len`, the
/// `extra` fields, and `Connection: close` if `close`.
pub(crate) fn response_head(
    status: u16,
    content_type: Option<&str>,
    len: u64,
    extra: Vec<(String, String)>,
    close: bool,
) -> Head {
    let mut headers = Vec::with_capacity(extra.len() + 3);
    if let Some(t) = content_type {
        headers.push(("Content-Type".to_string(), t.to_string()));
    }
    headers.push(("Content-Length".to_string(), len.to_string()));
    headers.extend(extra);
    if close {
        headers.push(("Connection".to_string(), "close".to_string()));
    }
    Head {
        start: format!("HTTP/1.1 {status} {}", reason(status)),
        headers,
    }
}

/// A whole response with a body in memory (see [`response_head`]), sent in one write.
pub(crate) fn write_response(
    w: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: Vec<(String, String)>,
    close: bool,
) -> io::Result<()> {
    let head = response_head(status, Some(content_type), body.len() as u64, extra, close);
    let mut out = Vec::with_capacity(512 + body.len());
    head.write_to(&mut out)?;
    out.extend_from_slice(body);
    w.write_all(&out)
}

/// Reads the requests on one connection and answers each with `serve_one` (given the head, the
/// reader positioned at the body, and the writer) until the client closes, `serve_one` returns
/// `Ok(false)` (the connection is done) or anything fails: an error ends the connection, and the
/// client sees a reset, as it would from a dying server. `buffer` is the read buffer's size.
pub(crate) fn serve_connection<F>(stream: TcpStream, buffer: usize, mut serve_one: F)
where
    F: FnMut(Request, &mut BufReader<TcpStream>, &mut TcpStream) -> io::Result<bool>,
{
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(buffer, read_half);
    let mut writer = stream;
    while let Ok(Some(request)) = read_request(&mut reader) {
        if !matches!(serve_one(request, &mut reader, &mut writer), Ok(true)) {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// The standard reason phrase, for the statuses the rig produces.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// A listener on 127.0.0.1 whose accept loop hands every connection to a handler thread.
/// Dropping it stops accepting and shuts down the connections still open, so no thread
/// outlives the test by more than a moment.
#[derive(Debug)]
pub(crate) struct LoopbackServer {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    pub(crate) fn spawn<F>(name: &str, handler: F) -> Self
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{name}: cannot listen on 127.0.0.1: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let handler = Arc::new(handler);
        let next_id = AtomicU64::new(0);
        let accept = {
            let (stop, conns) = (stop.clone(), conns.clone());
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let id = next_id.fetch_add(1, Ordering::SeqCst);
                        if let Ok(clone) = stream.try_clone() {
                            lock(&conns).insert(id, clone);
                        }
                        let (handler, conns) = (handler.clone(), conns.clone());
                        let _ =
                            std::thread::Builder::new()
                                .name("rig-conn".into())
                                .spawn(move || {
                                    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                                    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                                    let _ = stream.set_nodelay(true);
                                    handler(stream);
                                    lock(&conns).remove(&id);
                                });
                    }
                })
                .unwrap_or_else(|e| panic!("{name}: cannot start a thread: {e}"))
        };
        Self {
            port,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, conn) in lock(&self.conns).drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn chunked_bodies_copy_verbatim_and_decode() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut copied = Vec::new();
        let mut r = BufReader::new(&wire[..]);
        copy_framed(&mut r, &mut copied, Framing::Chunked).expect("copy");
        assert_eq!(copied, &wire[..wire.len() - 4]);
        let mut r = BufReader::new(&wire[..]);
        assert_eq!(
            read_body(&mut r, Framing::Chunked).expect("read"),
            b"Wikipedia"
        );
        let mut rest = String::new();
        r.read_to_string(&mut rest).expect("rest");
        assert_eq!(rest, "NEXT");
    }

    #[test]
    fn heads_parse_and_frame() {
        let wire = b"\r\nPUT /v2/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\nabc";
        let mut r = BufReader::new(&wire[..]);
        let head = read_head(&mut r).expect("io").expect("head");
        let (m, t, _) = head.request_line().expect("line");
        assert_eq!((m.as_str(), t.as_str()), ("PUT", "/v2/x"));
        assert_eq!(request_framing(&head).expect("framing"), Framing::Length(3));
        assert!(head.connection_has("close"));
        assert!(
            read_head(&mut BufReader::new(&b""[..]))
                .expect("eof")
                .is_none()
        );
    }
}
