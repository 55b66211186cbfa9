//! Docker `config.json` files for credential tests: inline `auths`, or a `credHelpers` entry
//! with a real executable `docker-credential-NAME` helper script.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::tools::path_with;

/// Writes Docker client configurations. Point a client at one with `DOCKER_CONFIG=DIR` (the
/// directory) or a `--registry-config FILE` flag.
#[derive(Debug, Clone, Copy)]
pub struct DockerConfig;

/// A config using a credential helper, and where its helper lives.
#[derive(Debug, Clone)]
pub struct CredHelper {
    /// `DIR/config.json`, with `credHelpers: {HOST: NAME}` for every host given.
    pub config: PathBuf,
    /// `DIR/bin`, holding the executable `docker-credential-NAME`: put it on `PATH`.
    pub bin_dir: PathBuf,
    /// `DIR/bin/docker-credential-NAME.log`: one line per call, `ACTION SERVER`.
    pub log: PathBuf,
}

impl CredHelper {
    /// `PATH` with [`CredHelper::bin_dir`] in front: `cmd.env("PATH", helper.path_env())`.
    pub fn path_env(&self) -> OsString {
        path_with(&self.bin_dir)
    }

    /// The calls the helper got so far, e.g. `["get 127.0.0.1:5000"]`.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl DockerConfig {
    /// Writes `dir/config.json` with an `auths` entry (`auth` = base64 `user:password`) per
    /// `(host, user, password)`. Returns its path.
    pub fn write(dir: &Path, auths: &[(&str, &str, &str)]) -> PathBuf {
        let entries: Map<String, Value> = auths
            .iter()
            .map(|(host, user, password)| {
                let auth = STANDARD.encode(format!("{user}:{password}"));
                (host.to_string(), json!({ "auth": auth }))
            })
            .collect();
        write_config(dir, &json!({ "auths": entries }))
    }

    /// Writes `dir/config.json` naming the helper `helper` for every host in `creds`, and an
    /// executable `dir/bin/docker-credential-HELPER` answering `get` for those hosts with
    /// `{"ServerURL","Username","Secret"}` (and "credentials not found", exit 1, otherwise).
    pub fn write_with_helper(dir: &Path, helper: &str, creds: &[(&str, &str, &str)]) -> CredHelper {
        let helpers: Map<String, Value> = creds
            .iter()
            .map(|(host, _, _)| (host.to_string(), Value::from(helper)))
            .collect();
        let config = write_config(dir, &json!({ "auths": {}, "credHelpers": helpers }));

        let bin_dir = dir.join("bin");
        fs::create_dir_all(&bin_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", bin_dir.display()));
        let script_path = bin_dir.join(format!("docker-credential-{helper}"));
        let log = bin_dir.join(format!("docker-credential-{helper}.log"));

        let mut cases = String::new();
        for (host, user, password) in creds {
            let answer = json!({ "ServerURL": host, "Username": user, "Secret": password });
            // A client may send `HOST`, `https://HOST` or `HOST/v2/`: match the host anywhere.
            cases.push_str(&format!(
                "  *{}*) printf '%s\\n' {}; exit 0;;\n",
                sh_quote(host),
                sh_quote(&answer.to_string())
            ));
        }
        let script = format!(
            "#!/bin/sh\n\
             # Credential helper written by the sensei test rig.\n\
             server=\n\
             read -r server || true\n\
             printf '%s %s\\n' \"$1\" \"$server\" >> {log}\n\
             case \"$1\" in\n\
             \x20 get) ;;\n\
             \x20 list) echo '{{}}'; exit 0;;\n\
             \x20 *) exit 0;;\n\
             esac\n\
             case \"$server\" in\n\
             {cases}\
             esac\n\
             echo 'credentials not found in native keychain'\n\
             exit 1\n",
            log = sh_quote(&log.to_string_lossy()),
        );
        fs::write(&script_path, script)
            .unwrap_or_else(|e| panic!("write {}: {e}", script_path.display()));
        fs::set_permissions(&script_path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", script_path.display()));
        CredHelper {
            config,
            bin_dir,
            log,
        }
    }
}

fn write_config(dir: &Path, value: &Value) -> PathBuf {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join("config.json");
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
