//! What `sensei-bundler` and `sensei-loader` share at the edge: how they print and how they exit.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)] // this crate is where printing happens

pub mod args;
pub mod exit;
pub mod interrupt;
pub mod printer;

pub use exit::ExitCode;
pub use interrupt::Interrupts;
pub use printer::{OutputMode, Printer};
