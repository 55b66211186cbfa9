//! The loader: verifies a bundle offline before trusting any of it, and reports what it holds.
//!
//! Verification itself is `sensei_core::verify`; this crate opens what the operator points at
//! (archive or extracted directory, keys, countersignature files) and renders reports as text.
//! Nothing here prints.
#![forbid(unsafe_code)]

pub mod error;
pub mod inspect;
pub mod mapping;
pub mod open;
pub mod push;
pub mod render;
pub mod upgrade;
pub mod verify;
