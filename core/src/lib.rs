//! The Sensei air-gap bundle format (v1): what a bundle is, how it is written, signed and verified.
//!
//! Pure by design: no network, no printing, no command-line parsing. The bundler and the loader
//! do I/O at their edges and call into this crate; progress leaves it through [`progress::Reporter`].
#![forbid(unsafe_code)]

pub mod archive;
pub mod compat;
pub mod content;
pub mod digest;
pub mod json;
pub mod manifest;
pub mod oci;
pub mod outfile;
pub mod progress;
pub mod signature;
pub mod spec;
pub mod time;
pub mod verify;
