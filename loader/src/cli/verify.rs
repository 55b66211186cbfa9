//! `sensei-loader verify`: its arguments, and the verification run that reports what a bundle
//! holds or why it is rejected.

use std::path::PathBuf;

use clap::Args;
use sensei_cli::args;
use sensei_cli::flags::Reporting;
use sensei_loader::render;
use sensei_loader::verify::verify_bundle;

use super::signals::{stopped, watch_signals};
use super::trust::TrustArgs;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 verified; 1 rejected (a signature, the trust policy, the \
    expiry, the name, or a byte that differs from what was signed: the message says which); \
    2 usage or input error (a missing file, a private key given as --key); 3 a read error; \
    130, 143, 129 stopped by SIGINT, SIGTERM, SIGHUP (nothing verified).\n\
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
    let bundle = args.bundle;
    // From here on SIGINT, SIGTERM and SIGHUP end the wait for the verdict: verification
    // writes nothing, so there is nothing to wind down, only a message and the signal's exit
    // code to give instead of a report.
    let (watcher, interrupts) = watch_signals(&printer);
    let verifying = watcher.spawn_blocking(move || {
        let reporter = printer.reporter();
        verify_bundle(&bundle, &trust, reporter.as_ref(), &mut ())
    });
    let verdict = watcher.block_on(async {
        tokio::select! {
            done = verifying => Some(done),
            () = interrupts.stopped() => None,
        }
    });
    match verdict {
        Some(Ok(Ok(v))) => {
            printer.json(&serde_json::json!({"verdict": "verified", "report": v.report}));
            printer.result(&render::verify_report(&v.report));
        }
        Some(Ok(Err(e))) => crate::fail(&printer, e),
        Some(Err(panicked)) => std::panic::resume_unwind(panicked.into_panic()),
        None => stopped(
            &printer,
            &interrupts,
            "the verification did not finish, so nothing is verified (verify writes nothing)",
            serde_json::json!({}),
        ),
    }
}
