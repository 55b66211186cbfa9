//! A plain-HTTP file server on loopback, serving one directory (a Helm chart repository:
//! `index.yaml` and `.tgz` files) and logging what clients asked for.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::TcpStream;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::http::{
    Logged, LoopbackServer, Request, RequestLog, copy_framed, request_framing, response_head,
    serve_connection,
};

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    /// `""` or `"/some/prefix"` (no trailing slash).
    prefix: String,
    log: RequestLog,
}

/// Serves `GET`/`HEAD` of the files under a directory. Dropping it stops it.
#[derive(Debug)]
pub struct StaticServer {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl StaticServer {
    /// Serves `root` at `http://127.0.0.1:PORT/`.
    pub fn new(root: &Path) -> Self {
        Self::with_prefix(root, "")
    }

    /// Serves `root` at `http://127.0.0.1:PORT/PREFIX/` (e.g. `"charts"`); other paths are 404.
    pub fn with_prefix(root: &Path, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            },
            log: RequestLog::default(),
        });
        let handler_shared = shared.clone();
        let server = LoopbackServer::spawn("static-server", move |stream| {
            serve_connection(stream, 8 * 1024, |q, r, w| {
                serve_one(q, r, w, &handler_shared)
            })
        });
        Self { shared, server }
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// The repository URL, without a trailing slash: `http://127.0.0.1:PORT[/PREFIX]`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.host(), self.shared.prefix)
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.all()
    }

    /// Requests with `method` (any case; `""` for any) whose path contains `path_substring`.
    pub fn count(&self, method: &str, path_substring: &str) -> usize {
        self.shared.log.count(method, path_substring)
    }
}

fn serve_one(
    request: Request,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    shared: &Shared,
) -> io::Result<bool> {
    let Request {
        head,
        method,
        target: path,
        close,
    } = request;
    copy_framed(reader, &mut io::sink(), request_framing(&head)?)?;

    let is_get = method.eq_ignore_ascii_case("GET");
    let is_head = method.eq_ignore_ascii_case("HEAD");
    let file = resolve(shared, &path).and_then(|p| File::open(&p).ok().map(|f| (p, f)));
    let (status, found) = match file {
        _ if !is_get && !is_head => (405, None),
        Some((p, f)) if f.metadata().is_ok_and(|m| m.is_file()) => (200, Some((p, f))),
        _ => (404, None),
    };

    let (content_type, len) = match &found {
        Some((p, f)) => (Some(content_type(p)), f.metadata()?.len()),
        None => (None, 0),
    };
    let mut out = BufWriter::new(&*writer);
    response_head(status, content_type, len, Vec::new(), close).write_to(&mut out)?;
    if let (Some((_, mut f)), true) = (found, is_get) {
        io::copy(&mut f, &mut out)?;
    }
    out.flush()?;
    shared.log.push(Logged {
        method,
        path,
        status,
        range: None,
        body: 0,
        at: std::time::Instant::now(),
    });
    Ok(!close)
}

/// The file a request path names, if it is under the prefix and has no `..` or odd parts.
fn resolve(shared: &Shared, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let rest = path.strip_prefix(shared.prefix.as_str())?;
    let rest = rest.strip_prefix('/')?;
    let rel = Path::new(rest);
    if rest.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(shared.root.join(rel))
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => "application/x-yaml",
        Some("tgz" | "gz") => "application/gzip",
        Some("json") => "application/json",
        Some("prov" | "txt") => "text/plain",
        _ => "application/octet-stream",
    }
}
