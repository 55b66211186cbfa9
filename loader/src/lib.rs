//! Library of the loader.
