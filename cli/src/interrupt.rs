//! SIGINT, SIGTERM and SIGHUP as a request to stop cleanly: the first sets a flag the long work
//! polls (so temporary files are removed and a message says what happened), and the exit code
//! follows the shell convention for that signal (130, 143, 129). A second signal exits at once
//! with the same code; what it leaves behind is locked by nobody and swept by the next run.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::ExitCode;

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Which stop signal arrived, if any.
#[derive(Debug, Clone, Default)]
pub struct Interrupts {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
}

impl Interrupts {
    /// Starts watching on `runtime`. The handlers are registered before this returns, so a
    /// signal that arrives afterwards is never lost (nor kills the process outright).
    pub fn watch(runtime: &tokio::runtime::Runtime) -> std::io::Result<Self> {
        let this = Self::default();
        let _enter = runtime.enter();
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (flag, first) = (this.flag.clone(), this.signal.clone());
        runtime.spawn(async move {
            loop {
                let got = tokio::select! {
                    _ = int.recv() => SIGINT,
                    _ = term.recv() => SIGTERM,
                    _ = hup.recv() => SIGHUP,
                };
                if flag.swap(true, Ordering::SeqCst) {
                    // Asked twice: the user wants out now.
                    std::process::exit(exit_code(first.load(Ordering::SeqCst)).code());
                }
                first.store(got, Ordering::SeqCst);
            }
        });
        Ok(this)
    }

    /// The flag the library polls (set by the first signal).
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// The same flag, shared: for work that runs on a runtime of its own.
    pub fn shared_flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The signal's name (`SIGTERM`), once one arrived.
    pub fn signal_name(&self) -> Option<&'static str> {
        match self.signal.load(Ordering::SeqCst) {
            SIGINT => Some("SIGINT"),
            SIGTERM => Some("SIGTERM"),
            SIGHUP => Some("SIGHUP"),
            _ => None,
        }
    }

    /// The signal's number (15 for SIGTERM), once one arrived: to forward it to a child.
    pub fn signal_number(&self) -> Option<i32> {
        Some(self.signal.load(Ordering::SeqCst)).filter(|&n| n != 0)
    }

    /// The exit code for the signal that arrived (130 when none is known).
    pub fn exit_code(&self) -> ExitCode {
        exit_code(self.signal.load(Ordering::SeqCst))
    }

    /// Resolves once a stop signal arrived.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let flag = self.flag.clone();
        async move {
            while !flag.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn exit_code(signal: i32) -> ExitCode {
    match signal {
        SIGTERM => ExitCode::Terminated,
        SIGHUP => ExitCode::HangUp,
        _ => ExitCode::Interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_the_shells_exit_code() {
        assert_eq!(exit_code(SIGINT).code(), 130);
        assert_eq!(exit_code(SIGTERM).code(), 143);
        assert_eq!(exit_code(SIGHUP).code(), 129);
        assert_eq!(Interrupts::default().exit_code().code(), 130);
        assert_eq!(Interrupts::default().signal_name(), None);
    }
}
