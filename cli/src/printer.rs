//! The Printer: the only place output is decided. Results go to stdout (human text, or one JSON
//! document with `--json`); progress goes to stderr, only on a terminal, never with `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sensei_core::progress::Reporter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    Human,
    Json,
    Quiet,
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    mode: OutputMode,
    progress: bool,
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Self {
        let mode = if json {
            OutputMode::Json
        } else if quiet {
            OutputMode::Quiet
        } else {
            OutputMode::Human
        };
        Self {
            mode,
            progress: !quiet && std::io::stderr().is_terminal(),
        }
    }

    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// Human-readable result text on stdout (nothing in JSON mode; still printed with --quiet,
    /// as it is the command's answer, not progress).
    pub fn result(&self, text: &str) {
        if self.mode != OutputMode::Json {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
        }
    }

    /// The one JSON document of `--json`.
    pub fn json(&self, value: &impl serde::Serialize) {
        if self.mode == OutputMode::Json {
            let text = serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            println!("{text}");
        }
    }

    /// A warning on stderr (shown unless --quiet). With progress bars on screen it is printed
    /// above them (a plain write would be wiped by their next redraw).
    pub fn warn(&self, text: &str) {
        if self.mode == OutputMode::Quiet {
            return;
        }
        let bars = DRAWING.lock().ok().and_then(|m| m.clone());
        match bars {
            Some(multi) => multi.suspend(|| eprintln!("warning: {text}")),
            None => eprintln!("warning: {text}"),
        }
    }

    /// A progress reporter: bars on a terminal, nothing otherwise.
    pub fn reporter(&self) -> Box<dyn Reporter> {
        if self.progress {
            Box::new(Bars::new())
        } else {
            Box::new(sensei_core::progress::Silent)
        }
    }
}

/// The bars on screen, if any, so that warnings can be printed above them.
static DRAWING: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// indicatif bars: one total bar (bytes, rate, ETA) and a bar for each large item in flight.
struct Bars {
    multi: MultiProgress,
    total: Mutex<Option<ProgressBar>>,
    items: Mutex<Vec<(String, ProgressBar)>>,
}

/// Items smaller than this get no bar of their own (they'd only flicker).
const ITEM_BAR_MIN: u64 = 8 * 1024 * 1024;

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        if let Ok(mut drawing) = DRAWING.lock() {
            *drawing = Some(multi.clone());
        }
        Self {
            multi,
            total: Mutex::new(None),
            items: Mutex::new(vec![]),
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Ok(mut drawing) = DRAWING.lock() {
            *drawing = None;
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Reporter for Bars {
    fn start(&self, phase: &str, total_bytes: Option<u64>) {
        let bar = match total_bytes {
            Some(n) => ProgressBar::new(n).with_style(style(
                "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}",
            )),
            None => {
                ProgressBar::new_spinner().with_style(style("{prefix:>8} {spinner} {wide_msg}"))
            }
        };
        bar.set_prefix(phase.to_owned());
        // Only a spinner needs a ticker. A byte bar draws when it moves; with a ticker it would
        // draw only from the ticker, whose draws lose to the item bars' under the multi-bar's
        // shared rate limit, and the total would sit at 0 while blobs move.
        if total_bytes.is_none() {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        let bar = self.multi.add(bar);
        if let Ok(mut t) = self.total.lock()
            && let Some(old) = t.replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn item(&self, name: &str, bytes: Option<u64>) {
        if let Ok(t) = self.total.lock()
            && let Some(bar) = t.as_ref()
        {
            bar.set_message(short(name));
        }
        if let Some(n) = bytes.filter(|n| *n >= ITEM_BAR_MIN) {
            let bar = self.multi.add(
                ProgressBar::new(n)
                    .with_style(style("         {bar:30} {bytes}/{total_bytes} {wide_msg}")),
            );
            bar.set_message(short(name));
            if let Ok(mut items) = self.items.lock() {
                items.push((name.to_owned(), bar));
            }
        }
    }

    fn item_done(&self, name: &str) {
        if let Ok(mut items) = self.items.lock()
            && let Some(i) = items.iter().position(|(n, _)| n == name)
        {
            let (_, bar) = items.remove(i);
            bar.finish_and_clear();
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(t) = self.total.lock()
            && let Some(bar) = t.as_ref()
        {
            bar.inc(bytes);
        }
        // With one item in flight its bar moves with the total.
        if let Ok(items) = self.items.lock()
            && let [(_, bar)] = items.as_slice()
        {
            bar.inc(bytes);
        }
    }

    fn item_advance(&self, name: &str, bytes: u64) {
        if let Ok(t) = self.total.lock()
            && let Some(bar) = t.as_ref()
        {
            bar.inc(bytes);
        }
        if let Ok(items) = self.items.lock()
            && let Some((_, bar)) = items.iter().find(|(n, _)| n == name)
        {
            bar.inc(bytes);
        }
    }

    fn note(&self, message: &str) {
        let _ = self.multi.println(message);
    }

    fn finish(&self) {
        if let Ok(mut t) = self.total.lock()
            && let Some(bar) = t.take()
        {
            bar.finish_and_clear();
        }
    }
}

fn short(name: &str) -> String {
    match name.strip_prefix("blobs/sha256/") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod bar_tests {
    use super::*;

    #[test]
    fn item_advance_moves_the_total_and_the_items_bar() {
        let bars = Bars::new();
        bars.multi.set_draw_target(ProgressDrawTarget::hidden());
        bars.start("fetch", Some(100 << 20));
        bars.item("blobs/sha256/aa", Some(64 << 20));
        bars.item("blobs/sha256/bb", Some(32 << 20));
        bars.item_advance("blobs/sha256/aa", 10);
        bars.item_advance("blobs/sha256/bb", 5);
        let total = bars.total.lock().unwrap().as_ref().unwrap().position();
        assert_eq!(total, 15);
        let items = bars.items.lock().unwrap();
        assert_eq!(items[0].1.position(), 10);
        assert_eq!(items[1].1.position(), 5);
    }
}
