//! Key files on disk: generating a signing key pair, reading keys, writing countersignatures.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sensei_core::signature::{KeyId, PrivateKey};
use zeroize::Zeroizing;

use crate::error::{BundleError, InputError};

/// Largest key file read: PEM keys are a few hundred bytes.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The two files `keygen --out PREFIX` writes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedKey {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub keyid: KeyId,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Generates an ed25519 key pair: `PREFIX.key` (PKCS#8, mode 0600) and `PREFIX.pub` (SPKI).
/// Refuses to overwrite either file.
pub fn keygen(prefix: &Path) -> Result<GeneratedKey, BundleError> {
    let private_key = with_suffix(prefix, ".key");
    let public_key = with_suffix(prefix, ".pub");
    for p in [&private_key, &public_key] {
        if p.symlink_metadata().is_ok() {
            return Err(InputError::Key {
                path: p.clone(),
                message: "already exists; refusing to overwrite a key (choose another --out)"
                    .into(),
            }
            .into());
        }
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| BundleError::Io {
        path: private_key.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let key = PrivateKey::from_seed(&seed);
    // create_new: never follow or clobber something that appeared since the check above.
    let write = |path: &Path, mode: u32, text: &str| -> Result<(), BundleError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(BundleError::io(path))?;
        f.write_all(text.as_bytes())
            .map_err(BundleError::io(path))?;
        f.sync_all().map_err(BundleError::io(path))
    };
    write(&private_key, 0o600, &key.to_pem())?;
    if let Err(e) = write(&public_key, 0o644, &key.public().to_pem()) {
        let _ = std::fs::remove_file(&private_key);
        return Err(e);
    }
    Ok(GeneratedKey {
        private_key,
        public_key,
        keyid: key.public().id().clone(),
    })
}

fn read_key_file(path: &Path) -> Result<Zeroizing<String>, BundleError> {
    let file = std::fs::File::open(path).map_err(|e| InputError::Key {
        path: path.to_owned(),
        message: format!("cannot read: {e}"),
    })?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| InputError::Key {
            path: path.to_owned(),
            message: format!("not a PEM text file: {e}"),
        })?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(InputError::Key {
            path: path.to_owned(),
            message: "too large to be a key".into(),
        }
        .into());
    }
    Ok(text)
}

pub fn read_private_key(path: &Path) -> Result<PrivateKey, BundleError> {
    let text = read_key_file(path)?;
    PrivateKey::from_pem(&text).map_err(|e| {
        InputError::Key {
            path: path.to_owned(),
            message: e.to_string(),
        }
        .into()
    })
}
