//! Output files that never destroy what is not ours: checks on an output path before any work,
//! temporary files that name and lock their owner, and the sweep of those a dead run left.
//!
//! Every command that writes a file (`create`, `sign -o`) goes through here:
//! 1. [`check_output`] before anything is downloaded: the path must be absent or a regular file
//!    (never a device, FIFO, socket, directory or symlink, which a rename would replace), must
//!    not be one of the command's inputs (same device and inode) nor sit inside an input
//!    directory, and may replace an existing file only if that file is ours (a bundle, a
//!    signature file) or `--force` says so. Its directory must exist and be writable.
//! 2. [`TempFile`] / [`TempDir`] beside the output: named `.LABEL.sensei-tmp-PID-XXXXXX…` and
//!    held under an advisory lock (`flock`) for the owner's whole life. The kernel drops the lock
//!    when the owner dies, however it dies (SIGKILL included).
//! 3. [`sweep_stale`] at the start of the next run: removes the temporary files whose lock is
//!    free and whose owner is not a live process, and reports what it freed. A live run beside
//!    us holds its lock (and its PID is alive), so its files are never touched.

use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What every temporary name of ours carries, followed by the owner's PID.
pub const TEMP_MARK: &str = ".sensei-tmp-";
/// The lock file inside a temporary directory (a directory cannot be `flock`ed portably).
const DIR_LOCK: &str = ".owner.lock";

/// Why an output path was refused, or its directory is unfit. Each names the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "{flag} {path}: is a {kind}, not a regular file; refusing to replace it (give the path of a new file)"
    )]
    NotRegular {
        flag: String,
        path: PathBuf,
        kind: &'static str,
    },
    #[error(
        "{flag} {path}: is the same file as {input_flag} {input}; refusing to overwrite an input"
    )]
    SameAsInput {
        flag: String,
        path: PathBuf,
        input_flag: String,
        input: PathBuf,
    },
    #[error(
        "{flag} {path}: lies inside {input_flag} {input}, which is read as input; write the output elsewhere"
    )]
    InsideInput {
        flag: String,
        path: PathBuf,
        input_flag: String,
        input: PathBuf,
    },
    #[error(
        "{flag} {path}: exists and is not {ours}; refusing to overwrite it (remove it, choose another path, or pass --force)"
    )]
    Exists {
        flag: String,
        path: PathBuf,
        ours: &'static str,
    },
    #[error("{flag} {path}: the directory {dir} does not exist; create it first")]
    NoDirectory {
        flag: String,
        path: PathBuf,
        dir: PathBuf,
    },
    #[error("{flag} {path}: cannot write in {dir}: {source}")]
    NotWritable {
        flag: String,
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
}

/// May an existing regular file at the output path be replaced?
#[derive(Clone, Copy)]
pub enum Replace<'a> {
    /// Only if this says the file is ours (e.g. it reads as a bundle); `what` names it.
    IfOurs {
        what: &'static str,
        is_ours: &'a dyn Fn(&Path) -> bool,
    },
    /// `--force`: any regular file.
    Force,
}

impl std::fmt::Debug for Replace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IfOurs { what, .. } => write!(f, "IfOurs({what})"),
            Self::Force => f.write_str("Force"),
        }
    }
}

/// An input of the command, by the flag that named it; a directory input also protects what is
/// inside it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub flag: &'a str,
    pub path: &'a Path,
}

/// An output path that passed [`check_output`].
#[derive(Debug, Clone)]
pub struct CheckedOutput {
    pub path: PathBuf,
    /// The directory the output (and its temporary files) go in.
    pub dir: PathBuf,
    /// A file of ours is there and will be replaced.
    pub replaces: bool,
}

/// The directory a file path lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn kind_name(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Checks `path` (named by `flag`) as an output: see the module docs. Touches nothing.
pub fn check_output(
    flag: &str,
    path: &Path,
    inputs: &[Input<'_>],
    replace: Replace<'_>,
) -> Result<CheckedOutput, OutputError> {
    let dir = parent_dir(path);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) | Err(_) => {
            return Err(OutputError::NoDirectory {
                flag: flag.into(),
                path: path.into(),
                dir,
            });
        }
    }
    if let Err(source) = rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK) {
        return Err(OutputError::NotWritable {
            flag: flag.into(),
            path: path.into(),
            dir,
            source: source.into(),
        });
    }
    // Inside an input directory: the output would become part of the next build's input.
    let canon_dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    for input in inputs {
        if let Ok(m) = std::fs::metadata(input.path)
            && m.is_dir()
            && let Ok(canon_input) = std::fs::canonicalize(input.path)
            && canon_dir.starts_with(&canon_input)
        {
            return Err(OutputError::InsideInput {
                flag: flag.into(),
                path: path.into(),
                input_flag: input.flag.into(),
                input: input.path.into(),
            });
        }
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(CheckedOutput {
                path: path.into(),
                dir,
                replaces: false,
            });
        }
        Err(source) => {
            return Err(OutputError::NotWritable {
                flag: flag.into(),
                path: path.into(),
                dir,
                source,
            });
        }
    };
    if !meta.file_type().is_file() {
        return Err(OutputError::NotRegular {
            flag: flag.into(),
            path: path.into(),
            kind: kind_name(meta.file_type()),
        });
    }
    for input in inputs {
        if let Ok(m) = std::fs::metadata(input.path)
            && m.dev() == meta.dev()
            && m.ino() == meta.ino()
        {
            return Err(OutputError::SameAsInput {
                flag: flag.into(),
                path: path.into(),
                input_flag: input.flag.into(),
                input: input.path.into(),
            });
        }
    }
    match replace {
        Replace::Force => {}
        Replace::IfOurs { what, is_ours } => {
            if !is_ours(path) {
                return Err(OutputError::Exists {
                    flag: flag.into(),
                    path: path.into(),
                    ours: what,
                });
            }
        }
    }
    Ok(CheckedOutput {
        path: path.into(),
        dir,
        replaces: true,
    })
}

/// Free bytes for an unprivileged writer in `dir`'s filesystem.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

fn temp_prefix(label: &str) -> String {
    format!(".{label}{TEMP_MARK}{}-", std::process::id())
}

/// A temporary file beside an output, locked by this process; removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    inner: tempfile::NamedTempFile,
}

impl TempFile {
    /// A new temporary file in `dir`, named after `label` (the output's file name).
    pub fn new_in(dir: &Path, label: &str, suffix: &str) -> io::Result<Self> {
        let inner = tempfile::Builder::new()
            .prefix(&temp_prefix(label))
            .suffix(suffix)
            .tempfile_in(dir)?;
        lock_exclusive(inner.as_file())?;
        Ok(Self { inner })
    }

    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    pub fn as_file(&self) -> &File {
        self.inner.as_file()
    }

    /// Renames the file over `target` (atomic within one filesystem); the lock goes with the
    /// file and is released when this process closes it.
    pub fn persist(self, target: &Path) -> io::Result<File> {
        self.inner.persist(target).map_err(|e| e.error)
    }
}

/// A temporary directory beside an output, locked by this process; removed on drop.
#[derive(Debug)]
pub struct TempDir {
    // The lock file is closed before the directory goes (field order).
    _lock: File,
    dir: tempfile::TempDir,
}

impl TempDir {
    pub fn new_in(dir: &Path, label: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&temp_prefix(label))
            .tempdir_in(dir)?;
        let lock = File::create(dir.path().join(DIR_LOCK))?;
        lock_exclusive(&lock)?;
        Ok(Self { _lock: lock, dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn lock_exclusive(file: &File) -> io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "a new temporary file is locked by another process",
        )),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// What [`sweep_stale`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub paths: Vec<PathBuf>,
    pub bytes: u64,
}

/// The PID in a temporary name of ours, if `name` is one.
fn owner_pid(name: &str) -> Option<i32> {
    let rest = &name[name.find(TEMP_MARK)? + TEMP_MARK.len()..];
    let pid: i32 = rest.split('-').next()?.parse().ok()?;
    (name.starts_with('.') && pid > 0).then_some(pid)
}

fn process_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    // EPERM: it exists but is not ours to signal; only ESRCH means gone.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Is the lock of this temporary file (or of this temporary directory) free? Taking it proves
/// no process holds it; it is dropped again at once.
fn lock_free(path: &Path, is_dir: bool) -> bool {
    let lock_path = if is_dir {
        path.join(DIR_LOCK)
    } else {
        path.to_owned()
    };
    match File::open(&lock_path) {
        Ok(f) => f.try_lock().is_ok(),
        // A directory whose lock file is missing was cut short before it was locked.
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| size_of(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// Removes from `dir` the temporary files and directories of ours whose owner is gone: the lock
/// is free and the PID in the name is not a live process (our own never is touched). Errors
/// removing one are skipped: the sweep is a courtesy, never a reason to fail.
pub fn sweep_stale(dir: &Path) -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return swept;
    };
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = owner_pid(&name.to_string_lossy()) else {
            continue;
        };
        let Ok(ty) = entry.file_type() else { continue };
        if pid == me || ty.is_symlink() || process_alive(pid) {
            continue;
        }
        let path = entry.path();
        if !lock_free(&path, ty.is_dir()) {
            continue;
        }
        let bytes = size_of(&path);
        let removed = if ty.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if removed.is_ok() {
            swept.bytes += bytes;
            swept.paths.push(path);
        }
    }
    swept.paths.sort();
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &Path) -> bool {
        false
    }

    fn always(_: &Path) -> bool {
        true
    }

    const NOT_OURS: Replace<'static> = Replace::IfOurs {
        what: "a bundle",
        is_ours: &never,
    };

    #[test]
    fn owner_pids_are_read_from_our_names_only() {
        assert_eq!(
            owner_pid(".out.tar.sensei-tmp-1234-abcdef.partial"),
            Some(1234)
        );
        assert_eq!(owner_pid(".fetch.sensei-tmp-77-xyz"), Some(77));
        assert_eq!(owner_pid("out.tar.sensei-tmp-77-xyz"), None, "not hidden");
        assert_eq!(owner_pid(".out.tar.partial"), None);
        assert_eq!(owner_pid(".x.sensei-tmp--1-a"), None);
        assert_eq!(owner_pid(".x.sensei-tmp-abc-a"), None);
    }

    #[test]
    fn absent_outputs_pass_and_missing_directories_do_not() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("b.tar");
        let ok = check_output("-o", &out, &[], NOT_OURS).unwrap();
        assert!(!ok.replaces);
        assert_eq!(ok.dir, d.path());
        let e = check_output("-o", &d.path().join("no/such/b.tar"), &[], NOT_OURS).unwrap_err();
        assert!(matches!(e, OutputError::NoDirectory { .. }), "{e}");
        assert!(e.to_string().contains("no/such"), "{e}");
    }

    #[test]
    fn special_files_and_links_are_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = d.path().join("link.tar");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = check_output("-o", &link, &[], Replace::Force).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = check_output("-o", d.path(), &[], Replace::Force).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = check_output("-o", Path::new("/dev/null"), &[], Replace::Force).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    #[test]
    fn inputs_are_never_outputs() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("release.key");
        std::fs::write(&key, b"secret").unwrap();
        let inputs = [Input {
            flag: "--key",
            path: &key,
        }];
        let e = check_output("-o", &key, &inputs, Replace::Force).unwrap_err();
        assert!(matches!(e, OutputError::SameAsInput { .. }), "{e}");
        // The same file under another name (a hard link) is the same file.
        let hard = d.path().join("copy.tar");
        std::fs::hard_link(&key, &hard).unwrap();
        assert!(check_output("-o", &hard, &inputs, Replace::Force).is_err());
        // Inside an input directory.
        let chart = d.path().join("chart");
        std::fs::create_dir(&chart).unwrap();
        let inputs = [Input {
            flag: "chart",
            path: &chart,
        }];
        let e = check_output("-o", &chart.join("b.tar"), &inputs, Replace::Force).unwrap_err();
        assert!(matches!(e, OutputError::InsideInput { .. }), "{e}");
    }

    #[test]
    fn existing_files_are_replaced_only_when_ours_or_forced() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("b.tar");
        std::fs::write(&out, b"notes").unwrap();
        let e = check_output("-o", &out, &[], NOT_OURS).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        let ours = Replace::IfOurs {
            what: "a bundle",
            is_ours: &always,
        };
        assert!(check_output("-o", &out, &[], ours).unwrap().replaces);
        assert!(
            check_output("-o", &out, &[], Replace::Force)
                .unwrap()
                .replaces
        );
    }

    #[test]
    fn the_sweep_removes_dead_owners_files_and_spares_live_ones() {
        let d = tempfile::tempdir().unwrap();
        // Ours, alive and locked: spared.
        let live = TempFile::new_in(d.path(), "b.tar", ".partial").unwrap();
        let live_dir = TempDir::new_in(d.path(), "fetch").unwrap();
        // A dead owner's (PID far above pid_max), unlocked: removed, its bytes counted.
        let dead_file = d.path().join(".b.tar.sensei-tmp-2147483000-aaaaaa.partial");
        std::fs::write(&dead_file, vec![0u8; 1000]).unwrap();
        let dead_dir = d.path().join(".fetch.sensei-tmp-2147483000-bbbbbb");
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("blob"), vec![0u8; 500]).unwrap();
        // A live process's (PID 1) without a lock: spared, the PID may be reused, so we can't know.
        let pid1 = d.path().join(".b.tar.sensei-tmp-1-cccccc.partial");
        std::fs::write(&pid1, b"x").unwrap();
        // Not ours at all.
        let other = d.path().join(".b.tar.partial");
        std::fs::write(&other, b"x").unwrap();

        let swept = sweep_stale(d.path());
        assert_eq!(swept.paths, vec![dead_file.clone(), dead_dir.clone()]);
        assert_eq!(swept.bytes, 1500);
        assert!(live.path().exists() && live_dir.path().exists());
        assert!(pid1.exists() && other.exists());
        drop((live, live_dir));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_dead_owners_file_still_locked_by_another_process_is_spared() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join(".b.tar.sensei-tmp-2147483000-dddddd.partial");
        std::fs::write(&f, b"x").unwrap();
        // Another open file description holding the lock (as a process in another PID
        // namespace would): the sweep must not take the file.
        let holder = File::open(&f).unwrap();
        holder.try_lock().unwrap();
        assert!(sweep_stale(d.path()).paths.is_empty());
        assert!(f.exists());
    }

    #[test]
    fn free_space_is_reported() {
        let d = tempfile::tempdir().unwrap();
        assert!(free_space(d.path()).unwrap() > 0);
    }
}
