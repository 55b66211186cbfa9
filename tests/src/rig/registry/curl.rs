//! Requests to the registry with curl, as a test reads it back: `curl` commands set up for its
//! TLS and credentials, one request answered (with the token dance on a token-auth registry),
//! and the response as `curl -i` printed it.

use std::process::Command;

use super::Registry;
use crate::bins::run;
use crate::rig::token::fetch_token;
use crate::rig::tools::require;

impl Registry {
    /// `curl` set up for this registry: silent, errors shown, the CA trusted and the
    /// credentials sent (when the registry has them). Add the method, headers and URL.
    /// A token-auth registry refuses these basic credentials: use [`Registry::bearer`].
    pub fn curl(&self) -> Command {
        let mut cmd = self.curl_anonymous();
        if let Some((user, password)) = self.credentials() {
            cmd.arg("-u").arg(format!("{user}:{password}"));
        }
        cmd
    }

    /// `curl` trusting the registry's CA, without credentials.
    pub fn curl_anonymous(&self) -> Command {
        let mut cmd = Command::new(require("curl"));
        cmd.args(["-sS", "--max-time", "30"]);
        if let Some(ca) = self.ca_file() {
            cmd.arg("--cacert").arg(ca);
        }
        cmd
    }

    /// One request with curl (`-i`); a status of 0 if curl could not connect. On a token-auth
    /// registry, `auth` means the token dance: a 401 challenge is answered with a token for
    /// the scope it names, and the request sent again.
    pub(super) fn request(
        &self,
        auth: bool,
        method: &str,
        path: &str,
        headers: &[String],
    ) -> Reply {
        if auth && self.token.is_some() {
            let reply = self.request_once(false, method, path, headers, None);
            return match reply.header("www-authenticate") {
                Some(challenge) if reply.status == 401 => {
                    let bearer = self.bearer(challenge);
                    self.request_once(false, method, path, headers, Some(&bearer))
                }
                _ => reply,
            };
        }
        self.request_once(auth, method, path, headers, None)
    }

    /// A bearer token from this registry's token service for the scope (and service) of a
    /// `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge, fetched with the
    /// registry's credentials by curl, as a client would.
    pub fn bearer(&self, challenge: &str) -> String {
        fetch_token(self.curl_anonymous(), self.credentials(), challenge)
    }

    fn request_once(
        &self,
        auth: bool,
        method: &str,
        path: &str,
        headers: &[String],
        bearer: Option<&str>,
    ) -> Reply {
        let mut cmd = if auth {
            self.curl()
        } else {
            self.curl_anonymous()
        };
        if let Some(token) = bearer {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        cmd.arg("-i").args(["--max-time", "5"]);
        if method == "HEAD" {
            cmd.arg("-I");
        } else {
            cmd.args(["-X", method]);
        }
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        cmd.arg(format!("{}{path}", self.url()));
        let out = run(&mut cmd);
        Reply::parse(&out.stdout)
    }
}

/// A response as `curl -i` printed it.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(out: &[u8]) -> Self {
        let split = out.windows(4).position(|w| w == b"\r\n\r\n");
        let (head, body) = match split {
            Some(i) => (&out[..i], out[i + 4..].to_vec()),
            None => (out, Vec::new()),
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        Self {
            status,
            headers,
            body,
        }
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json_ok(&self, what: &str) -> serde_json::Value {
        assert_eq!(
            self.status,
            200,
            "{what}: registry answered {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: registry sent bad JSON: {e}"))
    }
}
