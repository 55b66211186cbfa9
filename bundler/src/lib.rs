//! Library of the bundler.
