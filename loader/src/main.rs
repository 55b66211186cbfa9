//! `sensei-loader`: parses arguments, calls the library, maps errors to the exit-code contract.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sensei_cli::{ExitCode, Printer};
use sensei_loader::error::LoaderError;
use sensei_loader::verify::{TrustOptions, verify_bundle};
use sensei_loader::{inspect, render};

#[derive(Parser, Debug)]
#[command(
    name = "sensei-loader",
    version,
    about = "Verify Sensei air-gap bundles offline and load them into your registry",
    long_about = "Verify Sensei air-gap bundles offline and load them into your registry.\n\n\
        `verify` checks the signature against the public keys you trust, then every byte, in one pass \
        that never extracts anything. `inspect` shows what a bundle claims to hold, unverified.",
    after_help = "Exit codes: 0 success, 1 bundle rejected, 2 usage or input error, 3 outside failure (registry, network, helm, disk).\n\
        Example:\n  sensei-loader verify sensei-1.2.0.tar.gz --key release.pub\n  \
        sensei-loader verify sensei-1.2.0.tar.gz --key release.pub --key security.pub --threshold 2"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify a bundle's signatures and every byte, and report what it holds
    Verify(VerifyArgs),
    /// Show what a bundle claims to hold, without verifying anything
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The bundle: the archive (.tar, .tar.gz) or the directory it was extracted into
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// A public key you trust (repeatable)
    #[arg(long = "key", value_name = "PUB", required = true)]
    keys: Vec<PathBuf>,
    /// A detached countersignature file (repeatable; BUNDLE.sig beside the bundle is read automatically)
    #[arg(long = "signature", value_name = "SIGFILE")]
    signatures: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    threshold: u32,
    /// Reject a bundle of another name than this
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Print the report as one JSON document on stdout
    #[arg(long)]
    json: bool,
    /// No progress output
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The bundle: the archive or the directory it was extracted into
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// Print as one JSON document on stdout
    #[arg(long)]
    json: bool,
}

fn exit_code(e: &LoaderError) -> ExitCode {
    match e {
        LoaderError::Rejected(_) => ExitCode::Rejected,
        LoaderError::Input { .. } => ExitCode::Usage,
        LoaderError::Io { .. } => ExitCode::Outside,
    }
}

fn fail(printer: &Printer, e: LoaderError) -> ! {
    let code = exit_code(&e);
    printer.json(&serde_json::json!({
        "verdict": if code == ExitCode::Rejected { "rejected" } else { "error" },
        "exitCode": code.code(),
        "error": e.to_string(),
    }));
    sensei_cli::exit::fail(code, &anyhow::Error::new(e))
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => {
            let printer = Printer::new(args.json, args.quiet);
            let trust = TrustOptions {
                keys: args.keys,
                signatures: args.signatures,
                threshold: args.threshold as usize,
                expected_name: args.name,
            };
            let reporter = printer.reporter();
            match verify_bundle(&args.bundle, &trust, reporter.as_ref(), &mut ()) {
                Ok(v) => {
                    printer.json(&serde_json::json!({"verdict": "verified", "report": v.report}));
                    printer.result(&render::verify_report(&v.report));
                }
                Err(e) => fail(&printer, e),
            }
        }
        Command::Inspect(args) => {
            let printer = Printer::new(args.json, false);
            match inspect::inspect(&args.bundle) {
                Ok(i) => {
                    printer.json(&i);
                    printer.result(&render::inspection(&i));
                }
                Err(e) => fail(&printer, e),
            }
        }
    }
}
