//! The bundler: turns a bundle spec into one signed, content-addressed, reproducible archive.
//!
//! spec → [`plan::plan`] (every reference resolved to a digest) → [`create::write_bundle`]
//! (deterministic archive, signed, written atomically). I/O happens here at the edges; the
//! format itself lives in `sensei-core`. Nothing here prints: progress goes to a
//! [`sensei_core::progress::Reporter`].
#![forbid(unsafe_code)]

pub mod blob;
pub mod build;
pub mod chart;
pub mod create;
pub mod discover;
pub mod error;
pub mod fetch;
mod hash_pipe;
pub mod inplace;
pub mod keys;
pub mod layout;
mod place;
pub mod plan;
pub mod remote;
pub mod sign;
pub mod walk;
