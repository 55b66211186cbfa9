//! `sensei-loader push`: its arguments and help, the push run, and the message of a push
//! stopped by a signal.

use std::path::PathBuf;

use clap::Args;
use sensei_cli::args;
use sensei_cli::flags::Reporting;
use sensei_loader::error::LoaderError;

use super::signals::{stopped, watch_signals};
use super::target::{TargetArgs, parse_registry, retry_notice};
use super::trust::TrustArgs;

/// `push --help`: what happens, in which order.
pub(crate) const LONG_ABOUT: &str = "Verify a bundle and push its images and charts to your registry, digests preserved.\n\n\
        In this order:\n  \
        1. Verify: the signatures against your --key files, then every byte, in one pass. Nothing \
        is sent unless the whole bundle verifies.\n  \
        2. Map: each image HOST/PATH:TAG goes to REGISTRY[/PREFIX]/PATH:TAG (Docker Hub short names \
        first become docker.io/library/NAME), each chart to REGISTRY[/PREFIX]/charts/NAME:VERSION.\n  \
        3. Blobs: each blob the registry lacks is uploaded once, streamed straight from the bundle \
        (nothing is extracted), several at a time (--concurrency); other repositories that need it \
        mount it. Blobs already there are skipped, so an interrupted push simply runs again.\n  \
        4. Manifests and indexes, byte for byte, children first; then the tags, last.\n\n\
        Push writes nothing on the local disk (no extraction, no temporary files), so it needs no \
        free space there. It reads each verified blob again to upload it, so BUNDLE must be a \
        file or a directory, not a pipe (`verify` reads a pipe).\n\n\
        --dry-run stops after step 2 and prints the mapping. Then install with \
        `helm upgrade --install RELEASE oci://REGISTRY[/PREFIX]/charts/NAME --version V \
        --set global.imageRegistry=REGISTRY[/PREFIX]` (pin the chart with \
        `.../charts/NAME@DIGEST`, the digest push printed, on Helm 3.18 and later), or let \
        `sensei-loader upgrade` do all of it.";

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 pushed; 1 bundle rejected (nothing was sent); 2 usage or input error; \
        3 registry, network or disk failure (run again: what is there is skipped); \
        130, 143, 129 stopped by SIGINT, SIGTERM, SIGHUP (uploads cut, staged sessions cancelled, \
        nothing incomplete tagged; run again to continue).\n\
        Examples:\n  \
        sensei-loader push sensei-1.2.0.tar.gz --key release.pub \\\n      \
            --registry registry.internal\n  \
        sensei-loader push sensei-1.2.0.tar.gz --key release.pub \\\n      \
            --registry registry.internal:5000/mirror --ca-file internal-ca.pem\n  \
        printf '%s\\n' \"$PASSWORD\" | sensei-loader push ./sensei-1.2.0/ \\\n      \
            --key release.pub --registry registry.internal \\\n      \
            --username ci --password-stdin\n  \
        sensei-loader push sensei-1.2.0.tar.gz --key release.pub \\\n      \
            --registry registry.internal --dry-run"
)]
pub(crate) struct PushArgs {
    /// The bundle: the archive (.tar, .tar.gz) or the directory it was extracted into
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// The registry to push to (a prefix nests every repository under it)
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = parse_registry)]
    registry: sensei_loader::mapping::Registry,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    target: TargetArgs,
    /// Verify and print where everything would go; send nothing
    #[arg(long)]
    dry_run: bool,
    /// Verify every byte and check every blob even when every tag already names its signed
    /// digest (by default such a push stops after the tag checks, reading no layer)
    #[arg(long)]
    full_check: bool,
    #[command(flatten)]
    reporting: Reporting,
}

pub(crate) fn run(args: PushArgs) {
    use sensei_loader::push::{CredentialSource, Credentials, PushOptions, push_bundle, render};
    let printer = args.reporting.printer();
    crate::usage_check(
        &printer,
        args::bundle_path("BUNDLE", &args.bundle)
            .and_then(|()| args.trust.check_paths())
            .and_then(|()| args.target.check_paths()),
    );
    let target = args.target;
    let password = match target.password(&args.bundle) {
        Ok(p) => p,
        Err(e) => crate::fail(&printer, e),
    };
    let credentials = match (target.username, password) {
        (Some(username), Some(password)) => {
            CredentialSource::Explicit(Credentials { username, password })
        }
        _ => CredentialSource::docker_default(target.access.registry_config.as_deref()),
    };
    let opts = PushOptions {
        ca_files: target.access.ca_files.clone(),
        plain_http: target.plain.plain_http,
        credentials,
        concurrency: target.access.concurrency(),
        dry_run: args.dry_run,
        full_check: args.full_check,
        on_retry: Some(retry_notice(printer)),
        ..PushOptions::new(args.registry, args.trust.options(None))
    };
    // From here on SIGINT, SIGTERM and SIGHUP stop the push cleanly (a second one at once).
    let (watcher, interrupts) = watch_signals(&printer);
    let opts = PushOptions {
        stop: Some(interrupts.shared_flag()),
        ..opts
    };
    let reporter = printer.reporter();
    let result = push_bundle(&args.bundle, &opts, reporter.as_ref());
    drop(watcher);
    match result {
        Err(LoaderError::Stopped {
            tags_done,
            tags_total,
        }) => stopped(
            &printer,
            &interrupts,
            &format!(
                "{tags_done} of {tags_total} tags pushed; nothing incomplete is tagged; blobs \
                 already uploaded stay, so running the same push again continues"
            ),
            serde_json::json!({"tagsDone": tags_done, "tagsTotal": tags_total}),
        ),
        Ok(report) => {
            printer.json(&serde_json::json!({
                "verdict": if report.dry_run { "dryRun" } else { "pushed" },
                "report": report,
            }));
            printer.result(&render(&report));
        }
        Err(e) => crate::fail(&printer, e),
    }
}
