//! The bundle's content model: which blob a bundle holds, what each is to its images and
//! charts, in which order they are written, where each lies in the archive, and where each
//! image and chart lands in a registry. The bundler fills it from its plan, the loader builds
//! it from a verified bundle and pushes from it; partial bundles, evidence and serving a bundle
//! as a registry read the same model.
//!
//! - [`graph`]: the blob and manifest graph ([`ContentGraph`]: roles, children, heights);
//! - [`order`]: the entry order ([`entries`]) and each entry's offsets ([`BundleLayout`]);
//! - [`reference`]: Helm's media types, the chart tag rule, the target of each image and chart;
//! - [`coverage`]: which listed files an archive of a release carries, and what it still needs.
//!
//! Pure: no I/O. Untrusted manifests reach it already bounded (by whoever read them) and its
//! walk is bounded in depth.

pub mod coverage;
pub mod graph;
pub mod order;
pub mod reference;
#[cfg(test)]
mod tests;

pub use coverage::{Coverage, OtherRelease, Tally};
pub use graph::{BlobKind, BlobRole, ContentError, ContentGraph, Holdings, Node};
pub use order::{BundleLayout, Entry, Span, entries};
pub use reference::{
    CHARTS_REPOSITORY, HELM_CHART_CONTENT, HELM_CONFIG, ReferenceError, Target, TargetRef,
    chart_tag,
};
