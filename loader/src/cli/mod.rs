//! The commands of the `sensei-loader` binary, one module each (its arguments and what runs
//! it), and what several of them share: the trust flags, the target registry's flags, the
//! signal watcher. `main.rs` parses, dispatches here, and maps failures to exit codes.

pub(crate) mod inspect;
pub(crate) mod push;
pub(crate) mod signals;
pub(crate) mod target;
pub(crate) mod trust;
pub(crate) mod upgrade;
pub(crate) mod verify;
