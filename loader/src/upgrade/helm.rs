//! Running the real helm binary: finding it and its major version, building the argument lists
//! Helm 3 and Helm 4 both accept, and running it with its output captured or streamed.
//!
//! Helm is run with the operator's environment (`KUBECONFIG`, `HELM_DRIVER`, registry config),
//! stdin closed unless we feed it, and every command is rendered shell-quoted so the report shows
//! exactly what ran.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::error::UpgradeError;

/// How much of helm's stderr an error message keeps (the end, where helm says what failed).
const STDERR_TAIL_BYTES: usize = 4000;
/// Largest stdout accepted from a captured command (`helm list -o json` of one release).
const MAX_CAPTURED_STDOUT: u64 = 16 * 1024 * 1024;

/// Which cluster helm talks to: passed through to every helm command that touches it.
#[derive(Debug, Clone, Default)]
pub struct KubeTarget {
    pub context: Option<String>,
    pub kubeconfig: Option<PathBuf>,
}

impl KubeTarget {
    /// Helm's global flags for this target.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![];
        if let Some(c) = &self.context {
            args.extend(["--kube-context".to_owned(), c.clone()]);
        }
        if let Some(k) = &self.kubeconfig {
            args.extend(["--kubeconfig".to_owned(), k.display().to_string()]);
        }
        args
    }
}

/// A helm binary whose version was read.
#[derive(Debug, Clone)]
pub struct Helm {
    pub path: PathBuf,
    /// As `helm version --short` prints it, e.g. `v4.1.4+g05fa379`.
    pub version: String,
    pub major: u64,
}

impl Helm {
    /// Runs `helm version --short` and keeps Helm 3 and later (Helm 4 is driven the same way
    /// but for `--dry-run`'s spelling).
    pub fn detect(path: &Path) -> Result<Self, UpgradeError> {
        let args = vec!["version".to_owned(), "--short".to_owned()];
        let out = run_captured(path, &args, None)?;
        let version = out.trim().to_owned();
        let major = version
            .strip_prefix('v')
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u64>().ok());
        match major {
            Some(major) if major >= 3 => Ok(Self {
                path: path.to_owned(),
                version,
                major,
            }),
            _ => Err(UpgradeError::HelmUnsupported {
                path: path.to_owned(),
                version: if version.is_empty() {
                    "an unknown version".to_owned()
                } else {
                    version
                },
            }),
        }
    }

    /// `--dry-run` as this helm wants it: Helm 4 deprecates the bare flag in favour of
    /// `--dry-run=client`; Helm 3 before 3.13 knows only the bare flag (which later 3.x read as
    /// `client`). Client-side, so helm never changes the cluster.
    pub fn dry_run_flag(&self) -> &'static str {
        if self.major >= 4 {
            "--dry-run=client"
        } else {
            "--dry-run"
        }
    }

    /// Whether this helm pulls an OCI chart by digest (`oci://HOST/REPO@sha256:...`): Helm 3.18
    /// and later (helm/helm#12690). Older ones resolve only tags.
    pub fn pulls_oci_by_digest(&self) -> bool {
        let mut parts = self
            .version
            .trim_start_matches('v')
            .split(['.', '+', '-'])
            .map(|p| p.parse::<u64>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), _) if major >= 4 => true,
            (Some(3), Some(minor)) => minor >= 18,
            _ => false,
        }
    }

    /// Runs helm, returning its stdout; a failure carries the end of its stderr.
    pub fn captured(&self, args: &[String], stdin: Option<&[u8]>) -> Result<String, UpgradeError> {
        run_captured(&self.path, args, stdin)
    }

    /// Runs helm, handing every line it prints (stdout and stderr) to `on_line` as it comes.
    ///
    /// A stop signal `interrupts` sees while helm runs is sent on to helm (which then winds
    /// down as it does on a terminal's Ctrl-C), and helm is waited for.
    pub fn streamed(
        &self,
        args: &[String],
        interrupts: Option<&sensei_cli::Interrupts>,
        on_line: &(dyn Fn(&str) + Sync),
    ) -> Result<(), UpgradeError> {
        let line = command_line(&self.path, args);
        let mut child = Command::new(&self.path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| UpgradeError::HelmMissing {
                path: self.path.clone(),
                source,
            })?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let pid = child.id();
        let ended = std::sync::atomic::AtomicBool::new(false);
        let tail = std::thread::scope(|s| {
            if let Some(interrupts) = interrupts {
                s.spawn(|| forward_signal(interrupts, pid, &ended));
            }
            if let Some(out) = stdout {
                s.spawn(move || {
                    forward_lines(out, |l| on_line(l));
                });
            }
            let mut tail = Tail::default();
            if let Some(err) = stderr {
                forward_lines(err, |l| {
                    on_line(l);
                    tail.push(l);
                });
            }
            ended.store(true, std::sync::atomic::Ordering::SeqCst);
            tail
        });
        let status = child.wait().map_err(|source| UpgradeError::HelmMissing {
            path: self.path.clone(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(failure(line, status, tail.text()))
        }
    }
}

/// Sends helm the first stop signal, if one arrives before helm closes its stderr (`ended`).
fn forward_signal(
    interrupts: &sensei_cli::Interrupts,
    pid: u32,
    ended: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    while !ended.load(Ordering::SeqCst) {
        if let Some(n) = interrupts.signal_number() {
            // std has no kill(2) for other signals than SIGKILL: the POSIX `kill` utility.
            let _ = Command::new("kill")
                .arg(format!("-{n}"))
                .arg(pid.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn run_captured(
    path: &Path,
    args: &[String],
    stdin: Option<&[u8]>,
) -> Result<String, UpgradeError> {
    let line = command_line(path, args);
    let mut child = Command::new(path)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| UpgradeError::HelmMissing {
            path: path.to_owned(),
            source,
        })?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Helm reads all of a short secret before doing anything; a write error means it
        // exited early, which its status reports.
        let _ = pipe.write_all(bytes);
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (out, tail) = std::thread::scope(|s| {
        let err = s.spawn(move || {
            let mut tail = Tail::default();
            if let Some(err) = stderr {
                forward_lines(err, |l| tail.push(l));
            }
            tail
        });
        let mut out = Vec::new();
        if let Some(mut o) = stdout {
            let _ = (&mut o).take(MAX_CAPTURED_STDOUT).read_to_end(&mut out);
            // Drain the rest so helm never blocks on a full pipe.
            let _ = std::io::copy(&mut o, &mut std::io::sink());
        }
        (out, err.join().unwrap_or_default())
    });
    let status = child.wait().map_err(|source| UpgradeError::HelmMissing {
        path: path.to_owned(),
        source,
    })?;
    if status.success() {
        Ok(String::from_utf8_lossy(&out).into_owned())
    } else {
        Err(failure(line, status, tail.text()))
    }
}

/// A failed helm command, telling an unreachable cluster apart from everything else.
fn failure(command: String, status: ExitStatus, stderr: String) -> UpgradeError {
    let lower = stderr.to_lowercase();
    let unreachable = [
        "cluster unreachable",
        "could not get server version",
        "no configuration has been provided",
    ]
    .iter()
    .any(|p| lower.contains(p));
    if unreachable {
        UpgradeError::ClusterUnreachable { command, stderr }
    } else {
        UpgradeError::Helm {
            command,
            status: status.to_string(),
            stderr,
        }
    }
}

/// Reads lines (lossily decoded, line ends trimmed) until the end or a read error.
fn forward_lines(reader: impl Read, mut each: impl FnMut(&str)) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                each(line.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

/// The last few kilobytes of a stream, by whole lines.
#[derive(Debug, Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, line: &str) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_owned());
        while self.bytes > STDERR_TAIL_BYTES && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
        }
    }

    fn text(&self) -> String {
        let text = self.lines.iter().cloned().collect::<Vec<_>>().join("\n");
        if text.trim().is_empty() {
            "(helm printed nothing on stderr)".to_owned()
        } else {
            text
        }
    }
}

/// `program arg...` as a POSIX shell would need it typed.
pub fn command_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word for a POSIX shell only when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%^".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("--set"), "--set");
        assert_eq!(
            shell_quote("global.imageRegistry=127.0.0.1:5000/x"),
            "global.imageRegistry=127.0.0.1:5000/x"
        );
        assert_eq!(shell_quote("^rel$"), "'^rel$'");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let line = command_line(Path::new("/usr/bin/helm"), &["list".into(), "x y".into()]);
        assert_eq!(line, "/usr/bin/helm list 'x y'");
    }

    #[test]
    fn digest_pulls_from_helm_3_18_on() {
        let helm = |version: &str| Helm {
            path: "helm".into(),
            version: version.into(),
            major: 3,
        };
        for yes in [
            "v3.18.0",
            "v3.19.0+g3d8990f",
            "v3.20.1",
            "v4.1.4+g05fa379",
            "v10.0.0",
        ] {
            assert!(helm(yes).pulls_oci_by_digest(), "{yes}");
        }
        for no in ["v3.17.3+ge4da497", "v3.8.0", "v3", "", "vx.y"] {
            assert!(!helm(no).pulls_oci_by_digest(), "{no}");
        }
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::default();
        for i in 0..10_000 {
            t.push(&format!("line {i}"));
        }
        let text = t.text();
        assert!(text.ends_with("line 9999") && text.len() <= STDERR_TAIL_BYTES + 20);
        assert_eq!(Tail::default().text(), "(helm printed nothing on stderr)");
    }

    #[test]
    fn kube_target_args() {
        let k = KubeTarget {
            context: Some("prod".into()),
            kubeconfig: Some("/k/config".into()),
        };
        assert_eq!(
            k.args(),
            ["--kube-context", "prod", "--kubeconfig", "/k/config"]
        );
        assert!(KubeTarget::default().args().is_empty());
    }
}
