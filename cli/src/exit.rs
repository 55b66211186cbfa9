//! The exit-code contract both binaries keep (DESIGN.md, "Command-line contract").

/// Process exit codes. Scripts rely on these numbers: never renumber them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    /// The bundle was rejected: verification or trust failed.
    Rejected = 1,
    /// Usage or input error: bad flag, unreadable spec, missing file, bad key.
    Usage = 2,
    /// An outside failure: registry, network, helm, disk.
    Outside = 3,
    /// Stopped by SIGHUP (the shell convention, 128 + 1).
    HangUp = 129,
    /// Interrupted by Ctrl-C (the shell convention, 128 + SIGINT).
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15): what `timeout`, systemd and CI send.
    Terminated = 143,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Prints `error: ...` with its causes to stderr and exits with `code`.
pub fn fail(code: ExitCode, err: &anyhow::Error) -> ! {
    fail_advised(code, err, None)
}

/// [`fail`], then a `hint:` line saying what to do (the flag that fixes it), if there is one.
pub fn fail_advised(code: ExitCode, err: &anyhow::Error, hint: Option<&str>) -> ! {
    let top = err.to_string();
    eprintln!("error: {top}");
    // Wrapper errors often repeat their source's text; print only causes that add something.
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !top.contains(&text) {
            eprintln!("  caused by: {text}");
        }
    }
    if let Some(hint) = hint {
        eprintln!("  hint: {hint}");
    }
    std::process::exit(code.code())
}
