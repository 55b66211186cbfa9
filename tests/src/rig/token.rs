//! A bearer-token service on loopback for [`super::Registry::token_auth`]: the OAuth2-style
//! token flow of the Docker Registry token spec, as Docker Hub and most private registries run
//! it, so clients are tested against a registry that refuses basic credentials.
//!
//! `GET /token?service=S&scope=repository:NAME:ACTIONS...` with HTTP Basic credentials answers
//! `{"token", "access_token", "expires_in", "issued_at"}` where the token is a JWT signed with
//! RS256 by a self-signed certificate the registry trusts (`rootcertbundle`), sent in the `x5c`
//! header. distribution 2.8 checks `iss`, `aud` (= service), `exp`/`nbf` (60 s leeway), the
//! signature, the `x5c` chain against the bundle, and then that `access` grants every action the
//! request needs. The right credentials get every action they ask for; no credentials get a
//! token granting nothing (as Docker Hub does for a private repository), so the registry
//! answers 401 `insufficient_scope`; wrong credentials get 401 from the token service itself.

use std::fs;
use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::http::{
    LoopbackServer, Request, copy_framed, lock, request_framing, serve_connection, write_response,
};
use super::tools::require;
use crate::bins::run_ok;

/// The `service` the registry names in its challenge and expects as the token's audience.
pub const TOKEN_SERVICE: &str = "sensei-test-registry";

/// The issuer the registry trusts (`iss`).
pub const TOKEN_ISSUER: &str = "sensei-test-token-service";

/// How long a token lives, in seconds (`expires_in` and `exp`).
const TOKEN_LIFETIME: u64 = 300;

/// A self-signed signing certificate: the registry's `rootcertbundle` and the token's `x5c`.
/// RSA because RS256 signatures are what `openssl dgst -sign` prints as is (ES256 would need
/// its DER signature converted to JOSE's raw r||s).
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_signer

[dn]
CN = sensei test token signer

[v3_signer]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
subjectKeyIdentifier = hash
";

/// One request the token service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user of the Basic credentials sent, if any (right or wrong).
    pub user: Option<String>,
    /// The `service` query parameter, if any.
    pub service: Option<String>,
    /// Every scope asked for (`repository:sensei/api:pull`), from every `scope` parameter.
    pub scopes: Vec<String>,
    /// 200 with a token, 401 for wrong credentials, 400 for another service, 404 elsewhere.
    pub status: u16,
    /// The scopes the token granted (`type:name:actions`); empty for anonymous tokens.
    pub granted: Vec<String>,
}

#[derive(Debug)]
struct Shared {
    user: String,
    password: String,
    key: PathBuf,
    /// Standard base64 of the signing certificate's DER (the `x5c` entry).
    cert_der_b64: String,
    next_id: AtomicU64,
    log: Mutex<Vec<TokenRequest>>,
}

/// The token service. Dropping it stops it.
#[derive(Debug)]
pub struct TokenServer {
    shared: Arc<Shared>,
    cert: PathBuf,
    server: LoopbackServer,
}

impl TokenServer {
    /// Makes a signing key and certificate under `dir` (with the real `openssl`) and serves
    /// tokens to `user`/`password` on a free loopback port.
    pub fn start(dir: &Path, user: &str, password: &str) -> Self {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let (key, cert) = make_signer(dir);
        let pem =
            fs::read_to_string(&cert).unwrap_or_else(|e| panic!("read {}: {e}", cert.display()));
        // A PEM body is the standard base64 of the DER, wrapped: exactly what x5c holds.
        let cert_der_b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let shared = Arc::new(Shared {
            user: user.to_string(),
            password: password.to_string(),
            key,
            cert_der_b64,
            next_id: AtomicU64::new(1),
            log: Mutex::default(),
        });
        let handler_shared = shared.clone();
        let server = LoopbackServer::spawn("token-server", move |stream| {
            serve_connection(stream, 8 * 1024, |q, r, w| {
                serve_one(q, r, w, &handler_shared)
            })
        });
        Self {
            shared,
            cert,
            server,
        }
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// The realm the registry sends clients to: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.host())
    }

    /// The certificate that signs the tokens (PEM): the registry's `rootcertbundle`.
    pub fn root_cert(&self) -> &Path {
        &self.cert
    }

    /// Every token request answered so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.shared.log).clone()
    }

    /// How many token requests were answered so far (any outcome).
    pub fn count(&self) -> usize {
        lock(&self.shared.log).len()
    }
}

/// `(key.pem, cert.pem)`: an RSA key and its self-signed certificate, made with openssl.
fn make_signer(dir: &Path) -> (PathBuf, PathBuf) {
    let cnf = dir.join("signer.cnf");
    fs::write(&cnf, OPENSSL_CNF).unwrap_or_else(|e| panic!("write {}: {e}", cnf.display()));
    let (key, cert) = (dir.join("signer.key"), dir.join("signer.crt"));
    run_ok(
        Command::new(require("openssl"))
            .args(["req", "-x509", "-nodes", "-days", "30"])
            .args(["-newkey", "rsa:2048"])
            .arg("-config")
            .arg(&cnf)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()),
    );
    (key, cert)
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
        target,
        close,
    } = request;
    copy_framed(reader, &mut io::sink(), request_framing(&head)?)?;

    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params = parse_query(query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let credentials = head.header("authorization").and_then(basic_credentials);
    let mut entry = TokenRequest {
        user: credentials.as_ref().map(|(u, _)| u.clone()),
        service: param("service"),
        scopes: scopes.clone(),
        status: 200,
        granted: Vec::new(),
    };

    let mut extra = Vec::new();
    // POST is the OAuth2 refresh-token flow, which needs tokens we never hand out: 404 makes
    // Docker's clients fall back to GET, as the spec says.
    let body = if path != "/token" || !method.eq_ignore_ascii_case("GET") {
        entry.status = 404;
        json!({ "details": "not found" })
    } else if entry.service.as_deref().is_some_and(|s| s != TOKEN_SERVICE) {
        entry.status = 400;
        json!({ "details": format!("unknown service, this one serves {TOKEN_SERVICE:?}") })
    } else {
        match &credentials {
            Some((u, p)) if *u != shared.user || *p != shared.password => {
                entry.status = 401;
                extra.push((
                    "WWW-Authenticate".to_string(),
                    "Basic realm=\"sensei-token\"".to_string(),
                ));
                json!({ "details": "incorrect username or password" })
            }
            _ => {
                let access = if credentials.is_some() {
                    grant(&scopes)
                } else {
                    Vec::new()
                };
                entry.granted = access
                    .iter()
                    .map(|a| {
                        let actions: Vec<&str> = a["actions"]
                            .as_array()
                            .map(|v| v.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        format!(
                            "{}:{}:{}",
                            a["type"].as_str().unwrap_or(""),
                            a["name"].as_str().unwrap_or(""),
                            actions.join(",")
                        )
                    })
                    .collect();
                match mint(shared, entry.user.as_deref().unwrap_or(""), access) {
                    Ok(body) => body,
                    Err(e) => {
                        entry.status = 500;
                        json!({ "details": format!("signing failed: {e}") })
                    }
                }
            }
        }
    };

    write_response(
        writer,
        entry.status,
        "application/json",
        body.to_string().as_bytes(),
        extra,
        close,
    )?;
    lock(&shared.log).push(entry);
    Ok(!close)
}

/// The `access` claim granting every action asked for on every resource asked for.
fn grant(scopes: &[String]) -> Vec<Value> {
    scopes
        .iter()
        .filter_map(|scope| {
            // `type[(class)]:name:actions`; a name never holds a `:` (no host in it), but take
            // the type up to the first and the actions after the last anyway.
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let kind = kind.split('(').next().unwrap_or(kind);
            let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
            Some(json!({ "type": kind, "name": name, "actions": actions }))
        })
        .collect()
}

/// A signed token and the JSON answer carrying it.
fn mint(shared: &Shared, subject: &str, access: Vec<Value>) -> io::Result<Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({ "typ": "JWT", "alg": "RS256", "x5c": [shared.cert_der_b64] });
    let claims = json!({
        "iss": TOKEN_ISSUER,
        "sub": subject,
        "aud": TOKEN_SERVICE,
        "exp": now + TOKEN_LIFETIME,
        "nbf": now,
        "iat": now,
        "jti": format!("sensei-{}", shared.next_id.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(&shared.key, signing_input.as_bytes())?;
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    Ok(json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_LIFETIME,
        "issued_at": rfc3339(now),
    }))
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (JOSE's RS256) by the real openssl.
fn sign(key: &Path, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut child = Command::new(require("openssl"))
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(io::Error::other(format!(
            "openssl dgst -sign {}: {}",
            key.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out.stdout)
}

/// A bearer token for the scope (and service) of a `WWW-Authenticate: Bearer realm=...,
/// service=...,scope=...` challenge, fetched from its realm by `curl` (set up by the caller)
/// with basic `credentials`, as a registry client would.
pub(crate) fn fetch_token(
    mut curl: Command,
    credentials: Option<(&str, &str)>,
    challenge: &str,
) -> String {
    let params = challenge_params(challenge);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let realm = get("realm").unwrap_or_else(|| panic!("no realm in {challenge:?}"));
    curl.arg("-G");
    if let Some((user, password)) = credentials {
        curl.arg("-u").arg(format!("{user}:{password}"));
    }
    for key in ["service", "scope"] {
        if let Some(v) = get(key) {
            curl.arg("--data-urlencode").arg(format!("{key}={v}"));
        }
    }
    let body = run_ok(curl.arg("--fail-with-body").arg(realm));
    let answer: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("token service {realm} sent bad JSON ({e}): {body}"));
    answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token from {realm}: {body}"))
        .to_string()
}

/// The `key="value"` (or `key=value`) parameters of a `WWW-Authenticate` challenge, after its
/// scheme. Values may hold commas (`scope="repository:a:pull,push"`) and spaces.
fn challenge_params(challenge: &str) -> Vec<(String, String)> {
    let rest = challenge
        .trim()
        .split_once(' ')
        .map_or("", |(_, rest)| rest);
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
}

/// `(user, password)` of an `Authorization: Basic ...` header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(value.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `a=1&b=x%3Ay` as decoded pairs, in order (repeated keys kept).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Form decoding: `+` is a space, `%XX` a byte; malformed escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (days to civil date after Howard Hinnant).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_scopes_grant() {
        let q = parse_query("service=s&scope=repository%3Asensei%2Fapi%3Apull&scope=a+b&x");
        assert_eq!(q[1].1, "repository:sensei/api:pull");
        assert_eq!(q[2].1, "a b");
        assert_eq!(q[3], ("x".to_string(), String::new()));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let g = grant(&["repository(plugin):a/b:pull,push".into(), "bad".into()]);
        assert_eq!(
            g,
            vec![json!({ "type": "repository", "name": "a/b", "actions": ["pull", "push"] })]
        );
    }

    #[test]
    fn challenges_parse() {
        let p = challenge_params(
            r#"Bearer realm="http://h/token",service="s",scope="repository:a/b:pull,push",error=insufficient_scope"#,
        );
        let want = [
            ("realm", "http://h/token"),
            ("service", "s"),
            ("scope", "repository:a/b:pull,push"),
            ("error", "insufficient_scope"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(p, want);
        assert!(challenge_params("Bearer").is_empty());
    }

    #[test]
    fn times_and_credentials() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56Z");
        let h = format!("Basic {}", STANDARD.encode("u:p:w"));
        assert_eq!(basic_credentials(&h), Some(("u".into(), "p:w".into())));
        assert_eq!(basic_credentials("Bearer x"), None);
    }
}
