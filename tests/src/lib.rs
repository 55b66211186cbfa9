//! Shared helpers for the end-to-end tests: fixtures and the real rig.

pub mod bins;
pub mod charts;
pub mod craft;
pub mod deflate_blocks;
pub mod fixtures;
pub mod framing;
pub mod parts;
pub mod rig;
pub mod scene;
