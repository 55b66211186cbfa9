//! A private CA and a server certificate for 127.0.0.1/localhost, made with the real `openssl`
//! CLI, for the TLS registry.
//!
//! P-256 keys: generated instantly, and accepted by Go (the registry, skopeo, helm), OpenSSL
//! (curl) and rustls alike. The extensions are spelled out in our own config so the result does
//! not depend on the machine's openssl.cnf, and satisfy webpki's strict checks (CA with
//! basicConstraints and keyCertSign; leaf with SAN, serverAuth, CA:FALSE).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tools::require;
use crate::bins::run_ok;

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = sensei test

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Files of a CA and the server certificate it signed.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (PEM): what clients trust (`--ca-file`, `curl --cacert`).
    pub ca_cert: PathBuf,
    /// A directory holding only `ca.crt`, the shape skopeo's `--cert-dir` and Docker's
    /// `certs.d/HOST/` want.
    pub cert_dir: PathBuf,
    /// The server certificate (PEM), SAN `IP:127.0.0.1`, `DNS:localhost`.
    pub server_cert: PathBuf,
    /// The server's private key (PEM).
    pub server_key: PathBuf,
}

/// Makes a CA and a server certificate under `dir/tls/`.
pub fn make_tls(dir: &Path) -> TlsFiles {
    let openssl = require("openssl");
    let tls = dir.join("tls");
    let cert_dir = dir.join("certs.d");
    for d in [&tls, &cert_dir] {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    }
    let cnf = tls.join("openssl.cnf");
    fs::write(&cnf, OPENSSL_CNF).unwrap_or_else(|e| panic!("write {}: {e}", cnf.display()));
    let (ca_key, ca_cert) = (tls.join("ca.key"), tls.join("ca.crt"));
    let (server_key, server_csr, server_cert) = (
        tls.join("server.key"),
        tls.join("server.csr"),
        tls.join("server.crt"),
    );
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

    run_ok(
        Command::new(&openssl)
            .args(["req", "-x509", "-nodes", "-days", "30"])
            .args(ec)
            .args(["-subj", "/CN=sensei test CA", "-extensions", "v3_ca"])
            .arg("-config")
            .arg(&cnf)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca_cert),
    );
    run_ok(
        Command::new(&openssl)
            .args(["req", "-new", "-nodes"])
            .args(ec)
            .args(["-subj", "/CN=localhost"])
            .arg("-config")
            .arg(&cnf)
            .arg("-keyout")
            .arg(&server_key)
            .arg("-out")
            .arg(&server_csr),
    );
    run_ok(
        Command::new(&openssl)
            .args(["x509", "-req", "-days", "30", "-set_serial", "2"])
            .args(["-extensions", "v3_server"])
            .arg("-extfile")
            .arg(&cnf)
            .arg("-in")
            .arg(&server_csr)
            .arg("-CA")
            .arg(&ca_cert)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-out")
            .arg(&server_cert),
    );
    fs::copy(&ca_cert, cert_dir.join("ca.crt"))
        .unwrap_or_else(|e| panic!("copy CA into {}: {e}", cert_dir.display()));
    TlsFiles {
        ca_cert,
        cert_dir,
        server_cert,
        server_key,
    }
}
