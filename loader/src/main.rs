//! `sensei-loader`: parses arguments, dispatches each command to its module under `cli/`, and
//! maps errors to the exit-code contract.

mod cli;

use clap::{Parser, Subcommand};
use sensei_cli::advice::{Binary, registry_advice};
use sensei_cli::{ExitCode, Printer, args};
use sensei_loader::error::LoaderError;

#[derive(Parser, Debug)]
#[command(
    name = "sensei-loader",
    version,
    about = "Verify Sensei air-gap bundles offline and load them into your registry",
    long_about = "Verify Sensei air-gap bundles offline and load them into your registry.\n\n\
        `verify` checks the signature against the public keys you trust, then every byte, in one pass \
        that never extracts anything. `inspect` shows what a bundle claims to hold, unverified. \
        `push` verifies, then loads every image and chart into your registry with digests \
        preserved (tags last, nothing written from a bundle that did not verify). `upgrade` does \
        that, checks the version against the deployed release, and hands off to `helm upgrade` \
        with the registry override, printing the command that undoes it.",
    // Examples: one command per line, long ones continued with ` \` within 80 columns, so that
    // a narrow terminal does not wrap them into lines that read as commands of their own.
    after_help = "Exit codes: 0 success, 1 bundle rejected, 2 usage or input error, 3 outside failure (registry, network, helm, disk); 130, 143, 129 verify, push or upgrade stopped by SIGINT, SIGTERM, SIGHUP.\n\
        Examples:\n  \
        sensei-loader verify sensei-1.2.0.tar.gz --key release.pub\n  \
        sensei-loader verify sensei-1.2.0.tar.gz --key release.pub \\\n      \
            --key security.pub --threshold 2\n  \
        sensei-loader push sensei-1.2.0.tar.gz --key release.pub \\\n      \
            --registry registry.internal\n  \
        sensei-loader upgrade sensei-1.2.0.tar.gz --key release.pub \\\n      \
            --registry registry.internal --release sensei -n sensei -f values.yaml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify a bundle's signatures and every byte, and report what it holds
    Verify(cli::verify::VerifyArgs),
    /// Show what a bundle claims to hold, without verifying anything
    Inspect(cli::inspect::InspectArgs),
    /// Verify a bundle and push its images and charts to your registry, digests preserved
    #[command(long_about = cli::push::LONG_ABOUT)]
    Push(Box<cli::push::PushArgs>),
    /// Verify a bundle, check it against the deployed release, push it and run helm upgrade
    Upgrade(Box<cli::upgrade::UpgradeArgs>),
}

/// Every failure's exit code, by its kind: rejected 1, the operator's input 2, the registry,
/// the network or the disk 3.
fn exit_code(e: &LoaderError) -> ExitCode {
    match e {
        LoaderError::Rejected(_) => ExitCode::Rejected,
        e if e.is_input() => ExitCode::Usage,
        _ => ExitCode::Outside,
    }
}

fn fail(printer: &Printer, e: LoaderError) -> ! {
    fail_with(printer, exit_code(&e), e)
}

/// The JSON verdict (with `--json`), the message on stderr, what to do about it when a flag
/// fixes it, and the exit code.
fn fail_with<E>(printer: &Printer, code: ExitCode, e: E) -> !
where
    E: std::error::Error + Send + Sync + 'static,
{
    let hint = registry_advice(&e, Binary::Loader);
    let mut verdict = serde_json::json!({
        "verdict": if code == ExitCode::Rejected { "rejected" } else { "error" },
        "exitCode": code.code(),
        "error": e.to_string(),
    });
    if let Some(hint) = hint {
        verdict["hint"] = hint.into();
    }
    printer.json(&verdict);
    sensei_cli::exit::fail_advised(code, &anyhow::Error::new(e), hint)
}

/// A bad path flag ends the command here with exit code 2, naming the flag.
fn usage_check(printer: &Printer, checked: Result<(), args::BadPath>) {
    if let Err(e) = checked {
        fail_with(printer, ExitCode::Usage, e)
    }
}

fn main() {
    match Cli::parse().command {
        Command::Verify(args) => cli::verify::run(args),
        Command::Push(args) => cli::push::run(*args),
        Command::Upgrade(args) => cli::upgrade::run(*args),
        Command::Inspect(args) => cli::inspect::run(args),
    }
}
