//! The signal watcher of `push` and `upgrade`: SIGINT, SIGTERM and SIGHUP watched on a small
//! runtime of its own, as a stop flag (`sensei_cli::Interrupts`).

use sensei_cli::{ExitCode, Interrupts, Printer};

/// A small runtime that only watches for SIGINT, SIGTERM and SIGHUP (the push builds its own).
pub(crate) fn watch_signals(printer: &Printer) -> (tokio::runtime::Runtime, Interrupts) {
    let watched = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .and_then(|runtime| Interrupts::watch(&runtime).map(|i| (runtime, i)));
    match watched {
        Ok(w) => w,
        Err(e) => crate::fail_with(
            printer,
            ExitCode::Outside,
            std::io::Error::other(format!("cannot watch for signals: {e}")),
        ),
    }
}
