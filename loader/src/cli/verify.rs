//! `sensei-loader verify`: its arguments, and the verification run that reports what a bundle
//! holds or why it is rejected.

use std::path::PathBuf;

use clap::Args;
use sensei_cli::args;
use sensei_cli::flags::Reporting;
use sensei_loader::render;
use sensei_loader::verify::verify_bundle;

use super::trust::TrustArgs;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 verified; 1 rejected (a signature, the trust policy, the \
    expiry, the name, or a byte that differs from what was signed: the message says which); \
    2 usage or input error (a missing file, a private key given as --key); 3 a read error.\n\
    Examples:\n  \
    sensei-loader verify sensei-1.2.0.tar.gz --key release.pub\n  \
    sensei-loader verify sensei-1.2.0.tar.gz --key release.pub \\\n      \
        --key security.pub --threshold 2\n  \
    sensei-loader verify ./sensei-1.2.0/ --key release.pub --name sensei --json"
)]
pub(crate) struct VerifyArgs {
    /// The bundle: the archive (.tar, .tar.gz) or the directory it was extracted into
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Reject a bundle of another name than this
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    reporting: Reporting,
}

pub(crate) fn run(args: VerifyArgs) {
    let printer = args.reporting.printer();
    crate::usage_check(
        &printer,
        args::bundle_path("BUNDLE", &args.bundle).and_then(|()| args.trust.check_paths()),
    );
    let trust = args.trust.options(args.name);
    let reporter = printer.reporter();
    match verify_bundle(&args.bundle, &trust, reporter.as_ref(), &mut ()) {
        Ok(v) => {
            printer.json(&serde_json::json!({"verdict": "verified", "report": v.report}));
            printer.result(&render::verify_report(&v.report));
        }
        Err(e) => crate::fail(&printer, e),
    }
}
