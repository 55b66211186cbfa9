//! Stop signals in the loader's commands: SIGINT, SIGTERM and SIGHUP watched on a small runtime
//! of their own, as a stop flag (`sensei_cli::Interrupts`), and the verdict of a command they
//! stopped.

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

/// A command stopped by a signal: `stopped by SIGNAL: {what}` on stderr (what holds now, what
/// to do next), with `--json` the verdict `{"verdict": "stopped", "signal", "exitCode"}` plus
/// the command's own `fields`, and the signal's exit code (130, 143, 129).
pub(crate) fn stopped(
    printer: &Printer,
    interrupts: &Interrupts,
    what: &str,
    fields: serde_json::Value,
) -> ! {
    let signal = interrupts.signal_name().unwrap_or("a signal");
    let code = interrupts.exit_code();
    let mut verdict = serde_json::json!({
        "verdict": "stopped",
        "signal": signal,
        "exitCode": code.code(),
    });
    if let (Some(verdict), serde_json::Value::Object(fields)) = (verdict.as_object_mut(), fields) {
        verdict.extend(fields);
    }
    printer.json(&verdict);
    sensei_cli::exit::fail(code, &anyhow::anyhow!("stopped by {signal}: {what}"))
}
