//! The target registry of `push` and `upgrade`: `--registry`, how to reach it (the shared
//! flags, `--username` with `--password-stdin`), and its retries shown as warnings.

use clap::Args;
use sensei_cli::Printer;
use sensei_cli::args;
use sensei_cli::flags::{PlainHttpSwitch, RegistryAccess};
use sensei_loader::error::LoaderError;

/// How to reach the target registry: `upgrade` pushes as `push` does, with the same flags.
/// `--ca-file`, `--registry-config` and `--concurrency` are the bundler's too (`sensei_cli`);
/// `--plain-http` is the loader's switch form of the bundler's flag.
#[derive(Args, Debug)]
pub(crate) struct TargetArgs {
    #[command(flatten)]
    pub(crate) access: RegistryAccess,
    #[command(flatten)]
    pub(crate) plain: PlainHttpSwitch,
    /// Registry user; the password is read from stdin (--password-stdin)
    #[arg(
        long,
        value_name = "USER",
        requires = "password_stdin",
        conflicts_with = "registry_config"
    )]
    pub(crate) username: Option<String>,
    /// Read the registry password (one line) from stdin
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl TargetArgs {
    /// `--ca-file` and `--registry-config` name readable files.
    pub(crate) fn check_paths(&self) -> Result<(), args::BadPath> {
        self.access.check_paths()
    }

    /// The `--password-stdin` password, read now if asked for.
    pub(crate) fn password(
        &self,
        bundle: &std::path::Path,
    ) -> Result<Option<zeroize::Zeroizing<String>>, LoaderError> {
        if self.password_stdin {
            read_password(bundle).map(Some)
        } else {
            Ok(None)
        }
    }
}

pub(crate) fn parse_registry(s: &str) -> Result<sensei_loader::mapping::Registry, String> {
    s.parse()
        .map_err(|e: sensei_loader::mapping::MappingError| e.to_string())
}

/// `--password-stdin`: one line, kept in memory that is wiped when dropped.
fn read_password(bundle: &std::path::Path) -> Result<zeroize::Zeroizing<String>, LoaderError> {
    use std::io::BufRead as _;
    // Room for any real password, so the line is never reallocated (leaving a copy behind).
    let mut line = zeroize::Zeroizing::new(String::with_capacity(4096));
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        LoaderError::input(bundle, format!("--password-stdin: cannot read stdin: {e}"))
    })?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(LoaderError::input(
            bundle,
            "--password-stdin: stdin held no password (pipe it in: printf '%s\\n' \"$PASSWORD\" | sensei-loader push ...)",
        ));
    }
    Ok(zeroize::Zeroizing::new(password.to_owned()))
}

/// Each retry of a registry request as a warning (unless --quiet): a step that retries can
/// take many seconds, and the user should see why.
pub(crate) fn retry_notice(printer: Printer) -> sensei_loader::push::RetryNotice {
    sensei_loader::push::RetryNotice::new(move |retrying| printer.warn(&retrying.to_string()))
}
