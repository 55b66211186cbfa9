//! A stand-in for `helm upgrade`, and for that command only: no Kubernetes cluster can run
//! here, so a real upgrade can neither succeed nor be caught while it runs, yet the loader's
//! branches after it (the revision helm reports, the state file, the rollback command; a stop
//! signal forwarded to a running helm) must be reached by tests. Every other command
//! (`version`, `list`, `registry login`, `history`) runs the real Helm 4 on the memory driver.

use super::*;

/// What the stand-in does when it is run as `helm upgrade`, after recording its arguments.
#[derive(Debug, Clone, Copy)]
pub(super) enum Upgrade<'a> {
    /// Leaves the memory driver holding the release at `after` (written by the test), as a
    /// successful upgrade would, and exits 0.
    Succeeds { after: &'a Path },
    /// Traps SIGTERM, SIGINT and SIGHUP, then says it runs (`started`) and waits; a signal
    /// that comes is written to `signalled` (`TERM`, `INT`, `HUP`) and it exits as a process
    /// stopped by it (128 + N). It changes nothing.
    WaitsForASignal,
}

/// The stand-in's script and what it records.
#[derive(Debug)]
pub(super) struct HelmStandin {
    /// The `--helm` to pass.
    pub script: PathBuf,
    /// Every call's arguments, one line a call, in order.
    pub calls: PathBuf,
    /// `helm upgrade`'s arguments, one a line: there once it ran.
    pub upgrade_args: PathBuf,
    /// There once a [`Upgrade::WaitsForASignal`] upgrade has set its traps and waits.
    pub started: PathBuf,
    /// The signal a [`Upgrade::WaitsForASignal`] upgrade got.
    pub signalled: PathBuf,
}

/// The stand-in for `helm upgrade` (see the module doc), with the memory driver holding
/// `before` until an upgrade changes it.
pub(super) fn helm_standin_for_upgrade(r: &Rig, before: &Path, upgrade: Upgrade) -> HelmStandin {
    let dir = r.b.path();
    let current = dir.join("current-releases.yaml");
    std::fs::copy(before, &current).unwrap();
    let standin = HelmStandin {
        script: dir.join("helm-upgrade-standin"),
        calls: dir.join("helm-calls.txt"),
        upgrade_args: dir.join("upgrade-args.txt"),
        started: dir.join("upgrade-started"),
        signalled: dir.join("upgrade-signalled"),
    };
    let what = match upgrade {
        Upgrade::Succeeds { after } => format!(
            "cp '{after}' '{current}'\n\
             echo 'Release \"demo\" has been upgraded. (stand-in for helm upgrade)'\n\
             exit 0\n",
            after = after.display(),
            current = current.display(),
        ),
        // The wait is a `sleep` in the background: a shell runs a trap only once its
        // foreground command ends, and `wait` ends as soon as a trapped signal comes.
        Upgrade::WaitsForASignal => format!(
            "caught() {{\n\
               kill \"$waiting\" 2>/dev/null\n\
               echo \"$1\" > '{signalled}'\n\
               echo \"stand-in for helm upgrade: got SIG$1\" >&2\n\
               exit \"$2\"\n\
             }}\n\
             trap 'caught TERM 143' TERM\n\
             trap 'caught INT 130' INT\n\
             trap 'caught HUP 129' HUP\n\
             sleep 300 </dev/null >/dev/null 2>&1 &\n\
             waiting=$!\n\
             : > '{started}'\n\
             wait \"$waiting\"\n\
             echo 'stand-in for helm upgrade: no signal came' >&2\n\
             exit 1\n",
            signalled = standin.signalled.display(),
            started = standin.started.display(),
        ),
    };
    std::fs::write(
        &standin.script,
        format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$*\" >> '{calls}'\n\
             if [ \"$1\" = upgrade ]; then\n\
             printf '%s\\n' \"$@\" > '{log}'\n\
             {what}\
             fi\n\
             HELM_MEMORY_DRIVER_DATA='{current}' exec '{helm}' \"$@\"\n",
            calls = standin.calls.display(),
            log = standin.upgrade_args.display(),
            current = current.display(),
            helm = helm4().display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&standin.script, std::fs::Permissions::from_mode(0o755)).unwrap();
    standin
}
