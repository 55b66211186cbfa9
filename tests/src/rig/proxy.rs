//! A loopback HTTP/1.1 proxy in front of a plain registry that injects faults on demand: corrupt
//! blobs, error statuses, downloads and uploads cut mid-body, uploads held mid-body until the
//! test lets them go ([`hold`]), and random faults from a seeded generator ([`chaos`]). Tests
//! point clients at it instead of the registry and read (or wait on) its request log to see
//! what the client did.

mod chaos;
mod hold;

use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::http::{
    Framing, IO_TIMEOUT, Logged, LoopbackServer, Request, RequestLog, copy_framed, lock, read_body,
    read_head, request_framing, response_framing, serve_connection, write_response,
};
use super::registry::Registry;
use chaos::{Action, Chaos, Cut};
pub use chaos::{Injected, RandomFaults};
pub use hold::Hold;
use hold::{Decision, Held};

/// Answer matching requests with an error status instead of forwarding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Only requests with this method (any case); `None` matches every method.
    pub method: Option<String>,
    /// Only requests whose path (and query) contains this.
    pub path_substring: String,
    /// The status to answer with, e.g. 503 or 429.
    pub status: u16,
    /// How many matching requests to fail; then the rule is spent.
    pub times: usize,
    /// Send `Retry-After: N` with the error.
    pub retry_after: Option<u32>,
}

impl Failure {
    /// Fail the next `times` requests whose path contains `path_substring` with `status`.
    pub fn new(status: u16, times: usize, path_substring: &str) -> Self {
        Self {
            method: None,
            path_substring: path_substring.to_string(),
            status,
            times,
            retry_after: None,
        }
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Add `Retry-After: seconds` to the error response.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && path.contains(&self.path_substring)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// The faults currently armed.
#[derive(Debug, Default)]
struct Faults {
    failures: Vec<Failure>,
    /// Blob digests whose GET bodies get one byte flipped (every time).
    corrupt: Vec<String>,
    /// (bytes of body to send, path substring): cut the next matching GET response.
    drops: Vec<(u64, String)>,
    /// Uploads cut short and random faults.
    chaos: Chaos,
    /// Uploads to hold mid-body, until their request comes.
    holds: Vec<Arc<Held>>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    /// `host:port` of the proxy itself, for rewriting `Location` (known once it listens).
    own_host: OnceLock<String>,
    faults: Mutex<Faults>,
    log: RequestLog,
}

/// A fault-injecting loopback proxy in front of a registry. Dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl FaultProxy {
    /// A proxy forwarding to the plain-HTTP registry at `upstream` (`"127.0.0.1:PORT"`).
    pub fn new(upstream: &str) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            own_host: OnceLock::new(),
            faults: Mutex::default(),
            log: RequestLog::default(),
        });
        let handler_shared = shared.clone();
        let server = LoopbackServer::spawn("fault-proxy", move |stream| {
            serve_connection(stream, 64 * 1024, |q, r, w| {
                serve_one(q, r, w, &handler_shared)
            })
        });
        let _ = shared.own_host.set(format!("127.0.0.1:{}", server.port()));
        Self { shared, server }
    }

    /// A proxy in front of `registry`, which must be a plain one.
    pub fn in_front_of(registry: &Registry) -> Self {
        assert!(
            registry.ca_file().is_none(),
            "FaultProxy speaks plain HTTP: put it in front of Registry::plain()"
        );
        Self::new(&registry.host())
    }

    /// `"127.0.0.1:PORT"` of the proxy.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// `"127.0.0.1:PORT"` it forwards to.
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// From now on, flip one byte (keeping the length) in every `GET .../blobs/<digest>` body.
    pub fn corrupt_blob(&self, digest: &str) {
        lock(&self.shared.faults).corrupt.push(digest.to_string());
    }

    /// Answer the next `n` requests whose path contains `path_substring` with `status`, without
    /// forwarding them.
    pub fn fail_with(&self, status: u16, n: usize, path_substring: &str) {
        self.fail(Failure::new(status, n, path_substring));
    }

    /// Arm a [`Failure`] rule (method filter, `Retry-After`).
    pub fn fail(&self, failure: Failure) {
        lock(&self.shared.faults).failures.push(failure);
    }

    /// Cut the connection of the next `GET` whose path contains `path_substring` after `n_bytes`
    /// of its response body (headers, including the full Content-Length, are sent).
    pub fn drop_connection_after(&self, n_bytes: u64, path_substring: &str) {
        lock(&self.shared.faults)
            .drops
            .push((n_bytes, path_substring.to_string()));
    }

    /// Reset the connection of the next `times` uploads (PATCH, PUT or POST) whose path contains
    /// `path_substring` and whose body (of known length) is longer than `n_bytes`, once
    /// `n_bytes` of the body have been passed on to the registry: the client gets no answer.
    pub fn cut_upload_after(&self, n_bytes: u64, path_substring: &str, times: usize) {
        lock(&self.shared.faults).chaos.cuts.push(Cut {
            bytes: n_bytes,
            path_substring: path_substring.to_string(),
            times,
        });
    }

    /// Hold the next upload (PATCH, PUT or POST) whose path contains `path_substring` and whose
    /// body (of known length) is longer than `n_bytes`: pass its first `n_bytes` on to the
    /// registry, then read no more of it until the test calls [`Hold::release`] (the rest goes
    /// on) or [`Hold::kill`] (both connections reset, no answer), which dropping the hold also
    /// does. [`Hold::wait_reached`] blocks until the bytes are through and the rest is held.
    /// Goes before [`FaultProxy::cut_upload_after`] and random faults; fixed failures go first.
    pub fn hold_upload_after(&self, n_bytes: u64, path_substring: &str) -> Hold {
        let held = Held::new(n_bytes, path_substring);
        lock(&self.shared.faults).holds.push(held.clone());
        Hold::new(held)
    }

    /// From now on, random faults on every request ([`RandomFaults`]); rules armed with
    /// [`FaultProxy::fail`] and [`FaultProxy::cut_upload_after`] go first.
    pub fn random_faults(&self, faults: RandomFaults) {
        lock(&self.shared.faults).chaos.arm_random(faults);
    }

    /// The cuts and random faults injected so far (kept across [`FaultProxy::clear_faults`]).
    pub fn injected(&self) -> Injected {
        lock(&self.shared.faults).chaos.injected
    }

    /// Disarm every fault.
    pub fn clear_faults(&self) {
        let mut faults = lock(&self.shared.faults);
        let injected = faults.chaos.injected;
        *faults = Faults::default();
        faults.chaos.injected = injected;
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.all()
    }

    /// Requests with `method` (any case; `""` for any) whose path contains `path_substring`.
    pub fn count(&self, method: &str, path_substring: &str) -> usize {
        self.shared.log.count(method, path_substring)
    }

    /// Blocks until `done` holds for the log of requests answered (checked now and each time
    /// one more is answered) and returns it; panics after `timeout`, naming `what` it waited for
    /// and showing the log. The timeout only guards against an event that never comes.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        done: impl FnMut(&[Logged]) -> bool,
    ) -> Vec<Logged> {
        self.shared
            .log
            .wait_until(timeout, done)
            .unwrap_or_else(|log| panic!("waited {timeout:?} in vain for {what}: {log:#?}"))
    }

    /// Forget the requests logged so far.
    pub fn clear_log(&self) {
        self.shared.log.clear();
    }
}

/// What to do to one response body on its way to the client.
#[derive(Debug, Default)]
struct BodyFaults {
    corrupt: bool,
    drop_after: Option<u64>,
}

/// Serves one request; `Ok(true)` to keep the connection open.
fn serve_one(
    request: Request,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    shared: &Shared,
) -> io::Result<bool> {
    let Request {
        mut head,
        method,
        target: path,
        close: client_close,
    } = request;
    let framing = request_framing(&head)?;
    let range = head.header("range").map(str::to_string);
    // `body`: bytes of the request body passed on to the registry.
    let log = |status: u16, body: u64| {
        shared.log.push(Logged {
            method: method.clone(),
            path: path.clone(),
            status,
            range: range.clone(),
            body,
            at: std::time::Instant::now(),
        })
    };

    // Answer `Expect: 100-continue` here: the upstream never sees the header, and an injected
    // failure still gets to drain the body and keep the connection.
    if head
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        head.remove("expect");
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }

    let failure = {
        let mut faults = lock(&shared.faults);
        faults
            .failures
            .iter_mut()
            .find(|f| f.matches(&method, &path))
            .map(|f| {
                f.times -= 1;
                f.clone()
            })
    };
    if let Some(f) = failure {
        copy_framed(reader, &mut io::sink(), framing)?;
        let mut extra = Vec::new();
        if let Some(secs) = f.retry_after {
            extra.push(("Retry-After".to_string(), secs.to_string()));
        }
        write_error(writer, f.status, extra, client_close)?;
        log(f.status, 0);
        return Ok(!client_close);
    }
    let length = match framing {
        Framing::Length(n) => Some(n),
        Framing::None => Some(0),
        Framing::Chunked | Framing::UntilClose => None,
    };
    let (held, action) = {
        let mut faults = lock(&shared.faults);
        faults.holds.retain(|h| h.is_armed());
        match faults.holds.iter().find(|h| h.take(&method, &path, length)) {
            Some(h) => (Some(h.clone()), Action::Forward),
            None => (None, faults.chaos.decide(&method, &path, length)),
        }
    };
    if let Action::Error(status) = action {
        copy_framed(reader, &mut io::sink(), framing)?;
        write_error(writer, status, Vec::new(), client_close)?;
        log(status, 0);
        return Ok(!client_close);
    }

    let upstream = match TcpStream::connect(&shared.upstream) {
        Ok(s) => s,
        Err(_) => {
            copy_framed(reader, &mut io::sink(), framing)?;
            write_error(writer, 502, Vec::new(), client_close)?;
            log(502, 0);
            return Ok(!client_close);
        }
    };
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    upstream.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = upstream.set_nodelay(true);

    // One upstream connection per request, closed after it: no stale keep-alive to handle,
    // and a registry restarted between requests is simply reached again.
    head.set("Host", &shared.upstream);
    head.set("Connection", "close");
    for hop in ["keep-alive", "proxy-connection", "proxy-authorization"] {
        head.remove(hop);
    }
    let mut forwarded = 0;
    let mut killed = false;
    let sent = (|| {
        let mut up = Counting::new(BufWriter::with_capacity(64 * 1024, &upstream));
        head.write_to(&mut up.inner)?;
        match (action, &held, length) {
            (Action::CutAfter(n), _, _) => copy_framed(reader, &mut up, Framing::Length(n))?,
            (_, Some(held), Some(len)) => {
                let decision = held.forward(reader, &mut up, len, |up| up.count);
                forwarded = up.count;
                killed = decision? == Decision::Kill;
            }
            _ => copy_framed(reader, &mut up, framing)?,
        }
        forwarded = up.count;
        up.inner.flush()
    })();
    if matches!(action, Action::CutAfter(_)) || killed {
        // The registry sees its request end early; the client, a connection reset without an
        // answer (the rest of its body is never read).
        let _ = upstream.shutdown(Shutdown::Both);
        log(0, forwarded);
        return Ok(false);
    }
    if sent.is_err() {
        // Upstream died mid-request (a test killed the registry): the rest of the client's body
        // can't be drained sensibly, so answer and close.
        let _ = write_error(writer, 502, Vec::new(), true);
        log(502, forwarded);
        return Ok(false);
    }

    let mut up_reader = BufReader::with_capacity(64 * 1024, upstream);
    let resp = loop {
        let Ok(Some(r)) = read_head(&mut up_reader) else {
            let _ = write_error(writer, 502, Vec::new(), true);
            log(502, forwarded);
            return Ok(false);
        };
        match r.status()? {
            100..=199 => continue, // interim responses: the client already got its 100
            _ => break r,
        }
    };
    if action == Action::LoseAnswer {
        // The registry has done whatever the request asked; the client never hears of it.
        log(0, forwarded);
        return Ok(false);
    }
    let status = resp.status()?;
    let resp_framing = response_framing(&method, status, &resp)?;
    let mut resp = resp;
    if let Some(loc) = resp.header("location").map(str::to_string) {
        let up_prefix = format!("http://{}", shared.upstream);
        if let (Some(rest), Some(own)) = (loc.strip_prefix(&up_prefix), shared.own_host.get()) {
            resp.set("Location", &format!("http://{own}{rest}"));
        }
    }
    for hop in ["connection", "keep-alive", "transfer-encoding"] {
        resp.remove(hop);
    }

    // The body's source and length: streamed when upstream sent a length, else buffered.
    let (mut body, len): (Box<dyn Read + '_>, u64) = match resp_framing {
        Framing::None => (Box::new(io::empty()), 0),
        Framing::Length(n) => (Box::new((&mut up_reader).take(n)), n),
        Framing::Chunked | Framing::UntilClose => {
            let bytes = read_body(&mut up_reader, resp_framing)?;
            let n = bytes.len() as u64;
            (Box::new(Cursor::new(bytes)), n)
        }
    };
    if resp_framing != Framing::None {
        resp.set("Content-Length", &len.to_string());
    }

    let body_faults = if method.eq_ignore_ascii_case("GET") && resp_framing != Framing::None {
        let mut faults = lock(&shared.faults);
        let corrupt = faults.corrupt.iter().any(|d| is_blob_path(&path, d));
        let drop_after = faults
            .drops
            .iter()
            .position(|(_, p)| path.contains(p.as_str()))
            .map(|i| faults.drops.remove(i).0);
        BodyFaults {
            corrupt,
            drop_after,
        }
    } else {
        BodyFaults::default()
    };

    let keep = !client_close && body_faults.drop_after.is_none();
    if !keep {
        resp.set("Connection", "close");
    }
    let mut out = BufWriter::with_capacity(64 * 1024, &*writer);
    resp.write_to(&mut out)?;
    let result = stream_body(&mut body, &mut out, len, &body_faults);
    log(status, forwarded);
    result?;
    out.flush()?;
    drop(out);
    if body_faults.drop_after.is_some() {
        // Give the bytes a moment to leave before the cut, so the client sees a short body
        // rather than a reset that discards what was sent.
        std::thread::sleep(Duration::from_millis(20));
        let _ = writer.shutdown(Shutdown::Both);
    }
    Ok(keep)
}

/// A writer that counts the bytes through it.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W> Counting<W> {
    fn new(inner: W) -> Self {
        Self { inner, count: 0 }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `true` if `path` is a blob request for `digest` (`/v2/NAME/blobs/DIGEST`, query ignored).
fn is_blob_path(path: &str, digest: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    path.strip_suffix(digest)
        .is_some_and(|p| p.ends_with("/blobs/"))
}

/// Copies `len` body bytes, flipping the middle byte if `corrupt` and stopping after
/// `drop_after` bytes if set.
fn stream_body(
    body: &mut dyn Read,
    out: &mut impl Write,
    len: u64,
    faults: &BodyFaults,
) -> io::Result<()> {
    let limit = faults.drop_after.unwrap_or(u64::MAX).min(len);
    let flip_at = faults.corrupt.then_some(len / 2);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    while done < limit {
        let want = usize::try_from((limit - done).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = body.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream body ended early",
            ));
        }
        if let Some(at) = flip_at
            && (done..done + n as u64).contains(&at)
        {
            let i = usize::try_from(at - done).unwrap_or(0);
            buf[i] ^= 0xff;
        }
        out.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// An error response in the registry API's JSON error shape.
fn write_error(
    w: &mut TcpStream,
    status: u16,
    extra: Vec<(String, String)>,
    close: bool,
) -> io::Result<()> {
    let code = match status {
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "NOT_FOUND",
        429 => "TOOMANYREQUESTS",
        _ => "UNAVAILABLE",
    };
    let body = format!(
        r#"{{"errors":[{{"code":"{code}","message":"injected by the test's FaultProxy ({status})"}}]}}"#
    );
    write_response(w, status, "application/json", body.as_bytes(), extra, close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_match_exactly() {
        let d = "sha256:abc";
        assert!(is_blob_path("/v2/a/b/blobs/sha256:abc", d));
        assert!(is_blob_path("/v2/a/blobs/sha256:abc?x=1", d));
        assert!(!is_blob_path("/v2/a/manifests/sha256:abc", d));
        assert!(!is_blob_path("/v2/a/blobs/sha256:abcd", d));
    }

    #[test]
    fn corrupting_keeps_length_and_dropping_cuts() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        let faults = BodyFaults {
            corrupt: true,
            drop_after: None,
        };
        stream_body(&mut &data[..], &mut out, data.len() as u64, &faults).expect("copy");
        assert_eq!(out.len(), data.len());
        let diffs: Vec<usize> = (0..data.len()).filter(|&i| out[i] != data[i]).collect();
        assert_eq!(diffs, vec![data.len() / 2]);

        let mut out = Vec::new();
        let faults = BodyFaults {
            corrupt: false,
            drop_after: Some(1000),
        };
        stream_body(&mut &data[..], &mut out, data.len() as u64, &faults).expect("copy");
        assert_eq!(out, &data[..1000]);
    }
}
