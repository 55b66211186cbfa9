//! `sensei-loader inspect`: its arguments, and what a bundle claims to hold, unverified.

use std::path::PathBuf;

use clap::Args;
use sensei_cli::flags::Json;
use sensei_cli::{Printer, args};
use sensei_loader::{inspect, render};

#[derive(Args, Debug)]
#[command(
    after_help = "Nothing here is verified: run `verify` before trusting any of it.\n\
    Exit codes: 0 shown; 1 not a readable bundle (truncated, or its bundle.json malformed); \
    2 usage or input error; 3 a read error.\n\
    Examples:\n  \
    sensei-loader inspect sensei-1.2.0.tar.gz\n  \
    sensei-loader inspect ./sensei-1.2.0/ --json"
)]
pub(crate) struct InspectArgs {
    /// The bundle: the archive or the directory it was extracted into
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    json: Json,
}

pub(crate) fn run(args: InspectArgs) {
    let printer = Printer::new(args.json.json, false);
    crate::usage_check(&printer, args::bundle_path("BUNDLE", &args.bundle));
    match inspect::inspect(&args.bundle) {
        Ok(i) => {
            printer.json(&i);
            printer.result(&render::inspection(&i));
        }
        Err(e) => crate::fail(&printer, e),
    }
}
