//! Keys, signatures over `bundle.json`, and the trust policy that decides whether enough of them count.
//!
//! Keys are ed25519. Private keys are PKCS#8 v1 PEM (what `openssl genpkey -algorithm ed25519`
//! writes), public keys SPKI PEM; both encodings are fixed-size DER with a fixed prefix, so they
//! are written and read here exactly rather than through a general ASN.1 parser.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::digest::Digest;

/// Prefix of the signed message, so a bundle signature can't be replayed as any other signature.
pub const DOMAIN: &[u8] = b"sensei-bundle-signature-v1\n";
pub const ALG: &str = "ed25519";
/// Largest signature file accepted (embedded `bundle.sig` or a detached countersignature).
pub const MAX_SIGNATURE_FILE_BYTES: u64 = 1024 * 1024;
/// Most signatures one file may hold.
pub const MAX_SIGNATURES: usize = 256;

const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// PKCS#8 v2 (OneAsymmetricKey) with the public key attached, as some tools write it.
const PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const PKCS8_V2_PUB_PREFIX: [u8; 5] = [0xa1, 0x23, 0x03, 0x21, 0x00];
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM file: expected a line \"-----BEGIN {0}-----\"")]
    NotPem(&'static str),
    #[error("the PEM body is not valid base64")]
    Base64,
    #[error(
        "not an ed25519 {0} (only ed25519 keys are supported; make one with `sensei-bundler keygen`)"
    )]
    NotEd25519(&'static str),
    #[error("the PKCS#8 v2 key's public half does not match its private half")]
    Mismatch,
    #[error("a public key was given where a private key is needed")]
    PublicNotPrivate,
    #[error("a private key was given where a public key is needed (pass the .pub file)")]
    PrivateNotPublic,
}

/// The hex sha256 of a raw 32-byte ed25519 public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> Self {
        KeyId(Digest::of(key.as_bytes()).hex())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first 16 hex digits: enough to tell keys apart in a report.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(16)]
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    pub fn from_bytes(raw: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(raw).map_err(|_| KeyError::NotEd25519("public key"))?;
        Ok(Self {
            id: KeyId::of(&key),
            key,
        })
    }

    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        if text.contains("PRIVATE KEY-----") {
            return Err(KeyError::PrivateNotPublic);
        }
        let der = pem_body(text, "PUBLIC KEY")?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or(KeyError::NotEd25519("public key"))?;
        Self::from_bytes(&raw)
    }

    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.as_bytes());
        pem_encode("PUBLIC KEY", &der)
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// Checks `sig` over `DOMAIN || message` with ed25519's strict verification (no malleable
    /// or small-order signatures).
    pub fn verify(&self, message: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.key
            .verify_strict(&signed_message(message), &sig)
            .is_ok()
    }
}

/// An ed25519 private key. Its `Debug` shows only the key id; the seed is wiped on drop.
pub struct PrivateKey {
    key: SigningKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey(keyid {}, secret redacted)",
            self.public().id()
        )
    }
}

impl PrivateKey {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        if text.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(KeyError::PublicNotPrivate);
        }
        let der = pem_body(text, "PRIVATE KEY")?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if der.len() == 48 && der[..16] == PKCS8_V1_PREFIX {
            seed.copy_from_slice(&der[16..]);
            Ok(Self::from_seed(&seed))
        } else if der.len() == 85
            && der[..16] == PKCS8_V2_PREFIX
            && der[48..53] == PKCS8_V2_PUB_PREFIX
        {
            seed.copy_from_slice(&der[16..48]);
            let key = Self::from_seed(&seed);
            if key.key.verifying_key().as_bytes()[..] != der[53..] {
                return Err(KeyError::Mismatch);
            }
            Ok(key)
        } else {
            Err(KeyError::NotEd25519("private key"))
        }
    }

    /// PKCS#8 v1 PEM, the form OpenSSL reads and writes for ed25519.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut der = Zeroizing::new(PKCS8_V1_PREFIX.to_vec());
        der.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(pem_encode("PRIVATE KEY", &der))
    }

    pub fn public(&self) -> PublicKey {
        let key = self.key.verifying_key();
        PublicKey {
            id: KeyId::of(&key),
            key,
        }
    }

    /// Signs `bundle_json` (the exact bytes), returning a signature entry for `bundle.sig`.
    pub fn sign(&self, bundle_json: &[u8]) -> SignatureEntry {
        let sig = self.key.sign(&signed_message(bundle_json));
        SignatureEntry {
            keyid: self.public().id().clone(),
            alg: ALG.to_owned(),
            sig: B64.encode(sig.to_bytes()),
        }
    }
}

fn signed_message(message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + message.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(message);
    m
}

/// The DER inside a PEM block. For a private key both the base64 text and the DER are secret:
/// each lives in a buffer sized up front (so it never reallocates, which would leave a copy
/// behind in freed memory) and wiped when dropped (docs/THREATS.md §7).
fn pem_body(text: &str, label: &'static str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or(KeyError::NotPem(label))? + begin.len();
    let stop = text[start..].find(&end).ok_or(KeyError::NotPem(label))? + start;
    let span = &text[start..stop];
    let mut body = Zeroizing::new(String::with_capacity(span.len()));
    body.extend(span.chars().filter(|c| !c.is_ascii_whitespace()));
    let mut der = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(body.len())));
    B64.decode_vec(body.as_bytes(), &mut der)
        .map_err(|_| KeyError::Base64)?;
    Ok(der)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        B64.encode(der)
    )
}

/// One signature in `bundle.sig` or a countersignature file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    pub keyid: KeyId,
    pub alg: String,
    /// Base64 (standard alphabet, padded) of the 64-byte ed25519 signature.
    pub sig: String,
}

impl fmt::Debug for SignatureEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureEntry({} by {})", self.alg, self.keyid)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureFileError {
    #[error("is {0} bytes; a signature file is at most {MAX_SIGNATURE_FILE_BYTES} bytes")]
    TooLarge(u64),
    #[error("is not a JSON list of signatures: {0}")]
    Json(String),
    #[error("holds {0} signatures; at most {MAX_SIGNATURES} are allowed")]
    TooMany(usize),
}

/// Parses a signature file (a JSON list of entries) after checking its size.
pub fn parse_signature_file(bytes: &[u8]) -> Result<Vec<SignatureEntry>, SignatureFileError> {
    if bytes.len() as u64 > MAX_SIGNATURE_FILE_BYTES {
        return Err(SignatureFileError::TooLarge(bytes.len() as u64));
    }
    let json = |e: serde_json::Error| SignatureFileError::Json(e.to_string());
    // Each entry an object (serde would also read `[keyid, alg, sig]`), no key twice.
    crate::json::check_document(bytes, &[&[crate::json::Step::Each]]).map_err(json)?;
    let entries: Vec<SignatureEntry> = serde_json::from_slice(bytes).map_err(json)?;
    if entries.len() > MAX_SIGNATURES {
        return Err(SignatureFileError::TooMany(entries.len()));
    }
    Ok(entries)
}

/// Serialises a signature file; entries sorted by key id so output is deterministic.
pub fn signature_file_bytes(entries: &[SignatureEntry]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    sorted.dedup_by(|a, b| a.keyid == b.keyid);
    let mut out = serde_json::to_vec_pretty(&sorted).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Where a detached countersignature of `bundle` lives by default: `BUNDLE.sig` beside it.
/// `sensei-bundler sign` writes there and `sensei-loader` reads it automatically.
pub fn countersignature_path(bundle: &std::path::Path) -> std::path::PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".sig");
    std::path::PathBuf::from(s)
}

/// A public key the verifier trusts, with the label (usually its file name) used in reports.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub key: PublicKey,
    pub label: String,
}

/// Where a signature came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SignatureSource {
    /// `bundle.sig` inside the archive.
    Embedded,
    /// A detached countersignature file.
    Detached(String),
}

impl fmt::Display for SignatureSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureSource::Embedded => f.write_str("bundle.sig"),
            SignatureSource::Detached(p) => f.write_str(p),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum SignatureStatus {
    /// Valid, by a trusted key.
    Trusted { key: String },
    /// Claims a trusted key but does not verify: `bundle.json` changed after signing, or the
    /// signature was forged.
    Invalid { key: String },
    /// By a key not passed with `--key`; it counts for nothing.
    Untrusted,
    /// Not an ed25519 signature this verifier understands.
    Unsupported { alg: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureCheck {
    pub keyid: KeyId,
    pub source: SignatureSource,
    #[serde(flatten)]
    pub status: SignatureStatus,
}

/// Checks every signature over `bundle_json` against the trusted keys.
pub fn check_signatures(
    bundle_json: &[u8],
    signatures: &[(SignatureSource, SignatureEntry)],
    trusted: &[TrustedKey],
) -> Vec<SignatureCheck> {
    signatures
        .iter()
        .map(|(source, entry)| {
            let status = if entry.alg != ALG {
                SignatureStatus::Unsupported {
                    alg: entry.alg.clone(),
                }
            } else {
                match trusted.iter().find(|t| t.key.id() == &entry.keyid) {
                    None => SignatureStatus::Untrusted,
                    Some(t) => {
                        let ok = B64
                            .decode(&entry.sig)
                            .ok()
                            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
                            .is_some_and(|sig| t.key.verify(bundle_json, &sig));
                        if ok {
                            SignatureStatus::Trusted {
                                key: t.label.clone(),
                            }
                        } else {
                            SignatureStatus::Invalid {
                                key: t.label.clone(),
                            }
                        }
                    }
                }
            };
            SignatureCheck {
                keyid: entry.keyid.clone(),
                source: source.clone(),
                status,
            }
        })
        .collect()
}

/// Distinct trusted keys with a valid signature.
pub fn trusted_signers(checks: &[SignatureCheck]) -> Vec<KeyId> {
    let mut ids: Vec<KeyId> = checks
        .iter()
        .filter(|c| matches!(c.status, SignatureStatus::Trusted { .. }))
        .map(|c| c.keyid.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_seed(&[n; 32])
    }

    #[test]
    fn a_private_keys_pem_body_is_held_in_memory_that_is_wiped() {
        // The type is the check: the DER (and the base64 text it came from, inside pem_body)
        // are Zeroizing buffers, wiped on drop, never a plain Vec or String left behind.
        let pem = key(7).to_pem();
        let der: Zeroizing<Vec<u8>> = pem_body(&pem, "PRIVATE KEY").unwrap();
        assert_eq!(der.len(), PKCS8_V1_PREFIX.len() + 32);
        assert!(der.capacity() >= der.len());
    }

    #[test]
    fn pem_round_trips_and_debug_redacts() {
        let k = key(1);
        let back = PrivateKey::from_pem(&k.to_pem()).unwrap();
        assert_eq!(back.public(), k.public());
        assert_eq!(
            PublicKey::from_pem(&k.public().to_pem()).unwrap(),
            k.public()
        );
        let dbg = format!("{k:?}");
        assert!(
            dbg.contains("redacted") && !dbg.contains(&hex::encode([1u8; 32])),
            "{dbg}"
        );
        assert_eq!(
            PublicKey::from_pem(&k.to_pem()),
            Err(KeyError::PrivateNotPublic)
        );
        assert_eq!(
            PrivateKey::from_pem(&k.public().to_pem()).unwrap_err(),
            KeyError::PublicNotPrivate
        );
    }

    #[test]
    fn sign_and_check() {
        let (a, b) = (key(1), key(2));
        let msg = b"{\"name\":\"x\"}";
        let sigs = vec![
            (SignatureSource::Embedded, a.sign(msg)),
            (SignatureSource::Detached("c.sig".into()), b.sign(msg)),
        ];
        let trusted = [TrustedKey {
            key: a.public(),
            label: "a.pub".into(),
        }];
        let checks = check_signatures(msg, &sigs, &trusted);
        assert_eq!(
            checks[0].status,
            SignatureStatus::Trusted {
                key: "a.pub".into()
            }
        );
        assert_eq!(checks[1].status, SignatureStatus::Untrusted);
        assert_eq!(trusted_signers(&checks), vec![a.public().id().clone()]);

        let checks = check_signatures(b"{\"name\":\"y\"}", &sigs, &trusted);
        assert_eq!(
            checks[0].status,
            SignatureStatus::Invalid {
                key: "a.pub".into()
            }
        );
        assert!(trusted_signers(&checks).is_empty());
    }

    #[test]
    fn domain_prefix_is_part_of_the_message() {
        let k = key(3);
        let entry = k.sign(b"m");
        let raw: [u8; 64] = B64.decode(&entry.sig).unwrap().try_into().unwrap();
        let plain = ed25519_dalek::Signature::from_bytes(&raw);
        assert!(
            k.public().key.verify_strict(b"m", &plain).is_err(),
            "a signature must not verify without the domain"
        );
        assert!(k.public().verify(b"m", &raw));
    }

    #[test]
    fn signature_file_limits() {
        assert!(matches!(
            parse_signature_file(b"{}"),
            Err(SignatureFileError::Json(_))
        ));
        let big = vec![b' '; MAX_SIGNATURE_FILE_BYTES as usize + 1];
        assert!(matches!(
            parse_signature_file(&big),
            Err(SignatureFileError::TooLarge(_))
        ));
        let bytes = signature_file_bytes(&[key(1).sign(b"m")]);
        assert_eq!(parse_signature_file(&bytes).unwrap().len(), 1);
    }

    #[test]
    fn an_entry_is_an_object_with_each_key_once() {
        let entry = key(1).sign(b"m");
        let value = serde_json::to_value(&entry).unwrap();
        let (keyid, alg, sig) = (&value["keyid"], &value["alg"], &value["sig"]);
        // serde alone reads the positional array as the same entry, and keeps the last keyid.
        let positional = serde_json::json!([[keyid, alg, sig]]).to_string();
        let twice = format!(r#"[{{"keyid":"00","keyid":{keyid},"alg":{alg},"sig":{sig}}}]"#);
        for (text, needle) in [
            (positional, "[0] must be a JSON object, not an array"),
            (twice, "appears twice"),
        ] {
            match parse_signature_file(text.as_bytes()) {
                Err(SignatureFileError::Json(msg)) => assert!(msg.contains(needle), "{msg}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
