//! The bundler's writer and the loader's reader agree on the content model
//! (`sensei_core::content`): a bundle the real `sensei-bundler` writes, read back entry by entry
//! with core's archive reader (as the loader's `.tar.gz` push reads it), holds its entries in
//! exactly the order `content::entries` gives for the graph rebuilt from what was read, each
//! at the offset `BundleLayout` gives for a `.tar`. The loader's sequential push starts its
//! uploads in that order, so a writer that strayed from it would stall a push.

use std::collections::HashMap;
use std::fs::File;

use sensei_core::archive::{TarReader, open_stream};
use sensei_core::content::{BundleLayout, ContentGraph, Holdings, entries};
use sensei_core::digest::Digest;
use sensei_core::manifest::{BundleManifest, MANIFEST_FILE, SIGNATURE_FILE};
use sensei_core::oci::{MAX_MANIFEST_BYTES, OCI_MANIFEST};
use sensei_tests::scene::Built;

/// What a reader found in a bundle: blob sizes, and the bytes of every blob shaped like a
/// manifest or index (as the loader's collector keeps them).
#[derive(Default)]
struct Read {
    sizes: HashMap<Digest, u64>,
    manifests: HashMap<Digest, Vec<u8>>,
}

impl Holdings for Read {
    fn size(&self, digest: &Digest) -> Option<u64> {
        self.sizes.get(digest).copied()
    }

    fn manifest(&self, digest: &Digest) -> Option<&[u8]> {
        self.manifests.get(digest).map(Vec::as_slice)
    }
}

#[test]
fn the_bundlers_entries_are_in_the_models_order_at_the_models_offsets() {
    let built = Built::new();
    for bundle in [&built.tar, &built.tgz] {
        let file = File::open(bundle).unwrap_or_else(|e| panic!("{}: {e}", bundle.display()));
        let (stream, _) = open_stream(file).unwrap_or_else(|e| panic!("{e}"));
        let mut tar = TarReader::new(stream);
        let mut read = Read::default();
        let mut order = vec![];
        let mut offsets = HashMap::new();
        let (mut manifest, mut signature) = (vec![], vec![]);
        while let Some(h) = tar.next_header().unwrap_or_else(|e| panic!("{e}")) {
            let at = tar.offset();
            let keep =
                h.size <= MAX_MANIFEST_BYTES || h.path == MANIFEST_FILE || h.path == SIGNATURE_FILE;
            let body = if keep {
                tar.read_body_to_vec().unwrap_or_else(|e| panic!("{e}"))
            } else {
                vec![]
            };
            match h.path.as_str() {
                MANIFEST_FILE => manifest = body,
                SIGNATURE_FILE => signature = body,
                path => {
                    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                        let d = Digest::from_hex(hex).unwrap_or_else(|e| panic!("{e}"));
                        read.sizes.insert(d, h.size);
                        let shape = serde_json::from_slice::<serde_json::Value>(&body);
                        if shape.is_ok_and(|v| v.get("schemaVersion").is_some()) {
                            read.manifests.insert(d, body);
                        }
                    }
                    offsets.insert(path.to_owned(), at);
                    order.push(path.to_owned());
                }
            }
        }
        let listing = BundleManifest::from_slice(&manifest).unwrap_or_else(|e| panic!("{e}"));
        let listed: Vec<&str> = listing.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            order,
            listed,
            "{}: archive order is the listing",
            bundle.display()
        );

        let tops = listing
            .images
            .iter()
            .map(|i| (i.digest, i.media_type.as_str()))
            .chain(listing.charts.iter().map(|c| (c.digest, OCI_MANIFEST)));
        let graph = ContentGraph::build(tops, &read).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(graph.len(), read.sizes.len(), "every blob is reached");
        let model: Vec<String> = entries(&graph).iter().map(|e| e.path()).collect();
        assert_eq!(order, model, "{}: the model's order", bundle.display());

        if bundle == &built.tar {
            let layout = BundleLayout::data_offsets(
                manifest.len() as u64,
                signature.len() as u64,
                &listing.files,
            );
            assert_eq!(
                offsets, layout,
                "the model's offsets are where the reader found them"
            );
        }
    }
}
