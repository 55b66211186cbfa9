//! What `sensei-bundler` and `sensei-loader` share at the edge: how they print, how they exit,
//! the flags both take, and the advice on registry failures that names those flags.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)] // this crate is where printing happens

pub mod advice;
pub mod args;
pub mod exit;
pub mod flags;
pub mod interrupt;
pub mod printer;

pub use exit::ExitCode;
pub use interrupt::Interrupts;
pub use printer::{OutputMode, Printer};
