//! Whose signatures a bundle needs: the trust flags `verify`, `push` and `upgrade` share.

use std::path::PathBuf;

use clap::Args;
use sensei_cli::args;
use sensei_loader::verify::TrustOptions;

/// Whose signatures a bundle needs: `verify`, `push` and `upgrade` take the same trust flags.
#[derive(Args, Debug)]
pub(crate) struct TrustArgs {
    /// A public key you trust (repeatable)
    #[arg(long = "key", value_name = "PUB", required = true)]
    keys: Vec<PathBuf>,
    /// A detached countersignature file (repeatable; BUNDLE.sig beside the bundle is read automatically)
    #[arg(long = "signature", value_name = "SIGFILE")]
    signatures: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    threshold: u32,
}

impl TrustArgs {
    /// `--key` and `--signature` name readable files.
    pub(crate) fn check_paths(&self) -> Result<(), args::BadPath> {
        for k in &self.keys {
            args::input_file("--key", k)?;
        }
        for s in &self.signatures {
            args::input_file("--signature", s)?;
        }
        Ok(())
    }

    pub(crate) fn options(self, expected_name: Option<String>) -> TrustOptions {
        TrustOptions {
            keys: self.keys,
            signatures: self.signatures,
            threshold: self.threshold as usize,
            expected_name,
        }
    }
}
