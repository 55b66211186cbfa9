//! `sensei-loader verify`: its arguments, and the verification run that reports what a bundle
//! (or the archives of one release) holds, or why it is rejected.

use std::path::PathBuf;

use clap::Args;
use sensei_cli::args;
use sensei_cli::flags::Reporting;
use sensei_loader::render;
use sensei_loader::verify::verify_release;

use super::signals::{stopped, watch_signals};
use super::trust::TrustArgs;

#[derive(Args, Debug)]
#[command(
    after_help = "Several archives of one release (parts, or a base and a delta): each is \
    verified alone, then the report says what each carries and whether together they are the \
    whole release. Archives of different releases are refused, naming both. Archives that do \
    not carry the whole release together are rejected unless --partial is given: then each \
    part that verifies exits 0, the first line reads VERIFIED PART and the JSON verdict is \
    \"partial\", naming what the release still needs.\n\
    Exit codes: 0 verified; 1 rejected (a signature, the trust policy, the expiry, the name, a \
    byte that differs from what was signed, or a file of the release missing: the message says \
    which); 2 usage or input error (a missing file, a private key given as --key); 3 a read \
    error; 130, 143, 129 stopped by SIGINT, SIGTERM, SIGHUP (nothing verified).\n\
    Examples:\n  \
    sensei-loader verify sensei-1.2.0.tar.gz --key release.pub\n  \
    sensei-loader verify sensei-1.2.0.tar.gz --key release.pub \\\n      \
        --key security.pub --threshold 2\n  \
    sensei-loader verify ./sensei-1.2.0/ --key release.pub --name sensei --json\n  \
    sensei-loader verify sensei-1.2.0.part-*.tar.gz --key release.pub\n  \
    sensei-loader verify sensei-1.2.0.part-2-of-3.tar.gz --key release.pub \\\n      \
        --partial"
)]
pub(crate) struct VerifyArgs {
    /// The bundle: the archive (.tar, .tar.gz) or the directory it was extracted into; or
    /// several archives of one release (parts), in any order
    #[arg(value_name = "BUNDLE", required = true)]
    bundles: Vec<PathBuf>,
    /// Accept archives that carry only part of the release: each is verified alone and the
    /// report names what the release still needs (without it, anything less than the whole
    /// release is rejected)
    #[arg(long)]
    partial: bool,
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
        args.bundles
            .iter()
            .try_for_each(|b| args::bundle_path("BUNDLE", b))
            .and_then(|()| args.trust.check_paths()),
    );
    let trust = args.trust.options(args.name);
    let bundles = args.bundles;
    let require_complete = !args.partial;
    // From here on SIGINT, SIGTERM and SIGHUP end the wait for the verdict: verification
    // writes nothing, so there is nothing to wind down, only a message and the signal's exit
    // code to give instead of a report.
    let (watcher, interrupts) = watch_signals(&printer);
    let verifying = watcher.spawn_blocking(move || {
        let reporter = printer.reporter();
        verify_release(&bundles, &trust, require_complete, reporter.as_ref())
    });
    let verdict = watcher.block_on(async {
        tokio::select! {
            done = verifying => Some(done),
            () = interrupts.stopped() => None,
        }
    });
    match verdict {
        // One whole bundle: the report verify always printed.
        Some(Ok(Ok(check))) => match check.single_bundle() {
            Some(v) => {
                printer.json(&serde_json::json!({"verdict": "verified", "report": v.report}));
                printer.result(&render::verify_report(&v.report));
            }
            None => {
                let report = check.report();
                printer.json(&report);
                printer.result(&render::release_report(&report));
            }
        },
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
