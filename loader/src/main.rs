//! `sensei-loader`: parses arguments, calls the library, maps errors to the exit-code contract.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sensei_cli::advice::{Binary, registry_advice};
use sensei_cli::flags::{Json, PlainHttpSwitch, RegistryAccess, Reporting};
use sensei_cli::{ExitCode, Interrupts, Printer, args};
use sensei_loader::error::LoaderError;
use sensei_loader::verify::{TrustOptions, verify_release};
use sensei_loader::{inspect, render};

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
    after_help = "Exit codes: 0 success, 1 bundle rejected, 2 usage or input error, 3 outside failure (registry, network, helm, disk); 130, 143, 129 push or upgrade stopped by SIGINT, SIGTERM, SIGHUP.\n\
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
    Verify(VerifyArgs),
    /// Show what a bundle claims to hold, without verifying anything
    Inspect(InspectArgs),
    /// Verify a bundle and push its images and charts to your registry, digests preserved
    #[command(long_about = PUSH_LONG_ABOUT)]
    Push(Box<PushArgs>),
    /// Verify a bundle, check it against the deployed release, push it and run helm upgrade
    Upgrade(Box<UpgradeArgs>),
}

/// Whose signatures a bundle needs: `verify`, `push` and `upgrade` take the same trust flags.
#[derive(Args, Debug)]
struct TrustArgs {
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
    fn check_paths(&self) -> Result<(), args::BadPath> {
        for k in &self.keys {
            args::input_file("--key", k)?;
        }
        for s in &self.signatures {
            args::input_file("--signature", s)?;
        }
        Ok(())
    }

    fn options(self, expected_name: Option<String>) -> TrustOptions {
        TrustOptions {
            keys: self.keys,
            signatures: self.signatures,
            threshold: self.threshold as usize,
            expected_name,
        }
    }
}

/// How to reach the target registry: `upgrade` pushes as `push` does, with the same flags.
/// `--ca-file`, `--registry-config` and `--concurrency` are the bundler's too (`sensei_cli`);
/// `--plain-http` is the loader's switch form of the bundler's flag.
#[derive(Args, Debug)]
struct TargetArgs {
    #[command(flatten)]
    access: RegistryAccess,
    #[command(flatten)]
    plain: PlainHttpSwitch,
    /// Registry user; the password is read from stdin (--password-stdin)
    #[arg(
        long,
        value_name = "USER",
        requires = "password_stdin",
        conflicts_with = "registry_config"
    )]
    username: Option<String>,
    /// Read the registry password (one line) from stdin
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl TargetArgs {
    /// `--ca-file` and `--registry-config` name readable files.
    fn check_paths(&self) -> Result<(), args::BadPath> {
        self.access.check_paths()
    }

    /// The `--password-stdin` password, read now if asked for.
    fn password(
        &self,
        bundle: &std::path::Path,
    ) -> Result<Option<zeroize::Zeroizing<String>>, LoaderError> {
        if self.password_stdin {
            read_password(bundle).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Several archives, or a part of a release (FORMAT.md §14): each is verified \
    alone; the report says what each carries, what the release still needs, and whether they \
    are the whole release together (first line VERIFIED PART and JSON verdict \"partial\" when \
    not). Archives of different releases are refused, naming both.\n\
    Exit codes: 0 verified, also when only part of the release is there (pass \
    --require-complete to make that exit 1); 1 rejected (a signature, the trust policy, the \
    expiry, the name, or a byte that differs from what was signed: the message says which); \
    2 usage or input error (a missing file, a private key given as --key); 3 a read error.\n\
    Examples:\n  \
    sensei-loader verify sensei-1.2.0.tar.gz --key release.pub\n  \
    sensei-loader verify sensei-1.2.0.tar.gz --key release.pub \\\n      \
        --key security.pub --threshold 2\n  \
    sensei-loader verify ./sensei-1.2.0/ --key release.pub --name sensei --json\n  \
    sensei-loader verify sensei-1.2.0.part-*.tar.gz --key release.pub \\\n      \
        --require-complete"
)]
struct VerifyArgs {
    /// The bundle: the archive (.tar, .tar.gz) or the directory it was extracted into; or
    /// several archives of one release (parts), in any order
    #[arg(value_name = "BUNDLE", required = true)]
    bundles: Vec<PathBuf>,
    /// Exit 1 unless the archives carry the whole release together (one archive is then
    /// verified as a whole bundle)
    #[arg(long)]
    require_complete: bool,
    #[command(flatten)]
    trust: TrustArgs,
    /// Reject a bundle of another name than this
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    reporting: Reporting,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Nothing here is verified: run `verify` before trusting any of it.\n\
    Exit codes: 0 shown; 1 not a readable bundle (truncated, or its bundle.json malformed); \
    2 usage or input error; 3 a read error.\n\
    Examples:\n  \
    sensei-loader inspect sensei-1.2.0.tar.gz\n  \
    sensei-loader inspect ./sensei-1.2.0/ --json"
)]
struct InspectArgs {
    /// The bundle: the archive or the directory it was extracted into
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    #[command(flatten)]
    json: Json,
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

fn run_verify(args: VerifyArgs) {
    let printer = args.reporting.printer();
    usage_check(
        &printer,
        args.bundles
            .iter()
            .try_for_each(|b| args::bundle_path("BUNDLE", b))
            .and_then(|()| args.trust.check_paths()),
    );
    let trust = args.trust.options(args.name);
    let reporter = printer.reporter();
    match verify_release(
        &args.bundles,
        &trust,
        args.require_complete,
        reporter.as_ref(),
    ) {
        // One whole bundle: the report verify always printed.
        Ok(check) => match check.single_bundle() {
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
        Err(e) => fail(&printer, e),
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => run_verify(args),
        Command::Push(args) => run_push(*args),
        Command::Upgrade(args) => run_upgrade(*args),
        Command::Inspect(args) => {
            let printer = Printer::new(args.json.json, false);
            usage_check(&printer, args::bundle_path("BUNDLE", &args.bundle));
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

// ---------------------------------------------------------------------------------------------
// upgrade

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 success; 1 refused (verification, trust, a bundle older than \
    the last one loaded here, or the compatibility check); 2 usage or input error; 3 helm, the \
    cluster, the registry or the disk failed; 130, 143, 129 stopped by SIGINT, SIGTERM, SIGHUP \
    (helm not started after the signal; a helm already running is sent it and waited for, and \
    the message gives the rollback command).\n\
    Examples:\n  \
    sensei-loader upgrade sensei-1.2.0.tar.gz --key release.pub \\\n      \
        --registry registry.internal --release sensei -n sensei -f values.yaml\n  \
    sensei-loader upgrade sensei-1.2.0.tar.gz --key release.pub \\\n      \
        --registry registry.internal --release sensei -n sensei --dry-run",
    // Upgrade hands the same file to helm, which pulls the chart with it.
    mut_arg("registry_config", |a| a.help(
        "Docker config.json with the registry's credentials, for push and helm \
        (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json)"
    )),
    // Upgrade runs helm too, whose output --quiet also holds back.
    mut_arg("quiet", |a| a.help("No progress output, no helm output unless it fails"))
)]
struct UpgradeArgs {
    /// The bundle: the archive (.tar, .tar.gz) or the directory it was extracted into
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// The internal registry to push to and install from
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]", value_parser = parse_registry)]
    registry: sensei_loader::mapping::Registry,
    #[command(flatten)]
    trust: TrustArgs,
    /// The Helm release to upgrade (or install)
    #[arg(long, value_name = "NAME")]
    release: String,
    /// The release's namespace (default: the kubeconfig context's)
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// A values file for helm (repeatable, in order; applied after the registry override)
    #[arg(long = "values", short = 'f', value_name = "VALUES")]
    values: Vec<String>,
    /// A value for helm, KEY=VALUE (repeatable; overrides ours, e.g. global.imageRegistry)
    #[arg(long = "set", value_name = "K=V")]
    set: Vec<String>,
    /// The helm binary (Helm 3 or 4)
    #[arg(long, value_name = "PATH", default_value = "helm")]
    helm: PathBuf,
    /// How long helm waits for the rollout
    #[arg(long, value_name = "DURATION", default_value = sensei_loader::upgrade::DEFAULT_TIMEOUT)]
    timeout: String,
    /// Verify and check everything, push nothing, and run helm's client-side dry run with the
    /// chart taken from the bundle
    #[arg(long)]
    dry_run: bool,
    /// Allow an upgrade across a major version
    #[arg(long)]
    allow_major: bool,
    /// Allow a bundle older than the deployed release or than the last one loaded here
    #[arg(long)]
    allow_downgrade: bool,
    /// Where the last loaded version of each bundle is kept (default: $XDG_STATE_HOME/sensei,
    /// else ~/.local/state/sensei)
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Which chart of the bundle to install (default: the one named like the bundle, else the only one)
    #[arg(long, value_name = "NAME")]
    chart: Option<String>,
    /// The kubeconfig context helm uses
    #[arg(long, value_name = "CONTEXT")]
    kube_context: Option<String>,
    /// The kubeconfig file helm uses
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    reporting: Reporting,
}

fn parse_registry(s: &str) -> Result<sensei_loader::mapping::Registry, String> {
    s.parse()
        .map_err(|e: sensei_loader::mapping::MappingError| e.to_string())
}

/// What the upgrade says while it runs, on stderr (stdout is the report).
struct StderrObserver {
    quiet: bool,
}

impl sensei_loader::upgrade::Observer for StderrObserver {
    fn step(&self, message: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{message}");
        }
    }
    fn command(&self, line: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "running: {line}");
        }
    }
    fn helm_output(&self, line: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "  helm| {line}");
        }
    }
}

fn run_upgrade(args: UpgradeArgs) {
    use sensei_loader::upgrade::{
        Fault, KubeTarget, PushOptions, RegistryPush, StateDir, UpgradeError, UpgradeOptions,
    };
    let printer = args.reporting.printer();
    usage_check(
        &printer,
        args::bundle_path("BUNDLE", &args.bundle)
            .and_then(|()| args.trust.check_paths())
            .and_then(|()| args.target.check_paths())
            .and_then(|()| {
                args.kubeconfig
                    .as_deref()
                    .map_or(Ok(()), |k| args::input_file("--kubeconfig", k))
            })
            .and_then(|()| {
                // A bare name is looked up on PATH by helm's runner; a path must be a file.
                if args.helm.components().count() > 1 {
                    args::input_file("--helm", &args.helm)
                } else {
                    Ok(())
                }
            }),
    );
    let fail_upgrade = |e: UpgradeError| -> ! {
        let code = match e.fault() {
            Fault::Rejected => ExitCode::Rejected,
            Fault::Input => ExitCode::Usage,
            Fault::Outside => ExitCode::Outside,
        };
        fail_with(&printer, code, e)
    };
    let Some(state_dir) = args.state_dir.or_else(StateDir::default_dir) else {
        fail_upgrade(UpgradeError::Usage(
            "no state directory: neither XDG_STATE_HOME nor HOME is set; pass --state-dir DIR"
                .into(),
        ))
    };
    let password = match args.target.password(&args.bundle) {
        Ok(p) => p,
        Err(e) => fail_upgrade(UpgradeError::Loader(e)),
    };
    // From here on SIGINT, SIGTERM and SIGHUP stop the upgrade cleanly (a second one at once).
    let (_watcher, interrupts) = watch_signals(&printer);
    let opts = UpgradeOptions {
        bundle: args.bundle,
        trust: args.trust.options(None),
        registry: args.registry,
        push: PushOptions {
            ca_files: args.target.access.ca_files.clone(),
            plain_http: args.target.plain.plain_http,
            username: args.target.username,
            password,
            concurrency: Some(args.target.access.concurrency()),
            registry_config: args.target.access.registry_config,
            on_retry: Some(retry_notice(printer)),
            interrupts: Some(interrupts.clone()),
        },
        release: args.release,
        namespace: args.namespace,
        values: args.values,
        set: args.set,
        helm: args.helm,
        timeout: args.timeout,
        dry_run: args.dry_run,
        allow_major: args.allow_major,
        allow_downgrade: args.allow_downgrade,
        state_dir,
        chart: args.chart,
        kube: KubeTarget {
            context: args.kube_context,
            kubeconfig: args.kubeconfig,
        },
    };
    let reporter = printer.reporter();
    let observer = StderrObserver {
        quiet: args.reporting.quiet,
    };
    match sensei_loader::upgrade::upgrade(&opts, &RegistryPush, reporter.as_ref(), &observer) {
        Ok(report) => {
            printer.json(&serde_json::json!({
                "verdict": if report.dry_run { "dryRun" } else { "upgraded" },
                "report": report,
            }));
            printer.result(&sensei_loader::upgrade::render(&report));
        }
        Err(e) if interrupts.is_set() => upgrade_stopped(&printer, &interrupts, &e),
        Err(e) => fail_upgrade(e),
    }
}

/// An upgrade stopped by a signal: where it stopped and what state that leaves, on stderr
/// (and as JSON with `--json`), and the signal's exit code.
fn upgrade_stopped(
    printer: &Printer,
    interrupts: &Interrupts,
    e: &sensei_loader::upgrade::UpgradeError,
) -> ! {
    use sensei_loader::upgrade::UpgradeError;
    let signal = interrupts.signal_name().unwrap_or("a signal");
    let code = interrupts.exit_code();
    let state = match e {
        UpgradeError::HelmUpgrade { rollback, .. } => format!(
            "helm upgrade was running and was sent {signal}; the release may be partly \
             upgraded or marked failed (see `helm history`); to return to the release as it \
             was: {rollback}"
        ),
        UpgradeError::Stopped => "helm upgrade was not run; the release is unchanged".to_owned(),
        other => format!(
            "helm upgrade was not run; the release is unchanged ({other}); running the same \
             upgrade again continues the push"
        ),
    };
    printer.json(&serde_json::json!({
        "verdict": "stopped",
        "signal": signal,
        "exitCode": code.code(),
        "state": state,
    }));
    sensei_cli::exit::fail(code, &anyhow::anyhow!("stopped by {signal}: {state}"))
}

// ---------------------------------------------------------------------------------------------
// push

/// `push --help`: what happens, in which order.
const PUSH_LONG_ABOUT: &str = "Verify a bundle and push its images and charts to your registry, digests preserved.\n\n\
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
struct PushArgs {
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

/// A small runtime that only watches for SIGINT, SIGTERM and SIGHUP (the push builds its own).
fn watch_signals(printer: &Printer) -> (tokio::runtime::Runtime, Interrupts) {
    let watched = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .and_then(|runtime| Interrupts::watch(&runtime).map(|i| (runtime, i)));
    match watched {
        Ok(w) => w,
        Err(e) => fail_with(
            printer,
            ExitCode::Outside,
            std::io::Error::other(format!("cannot watch for signals: {e}")),
        ),
    }
}

/// A push stopped by a signal: what holds, on stderr (and as JSON with `--json`), and the
/// signal's exit code (130, 143, 129).
fn stopped(printer: &Printer, interrupts: &Interrupts, tags_done: u64, tags_total: u64) -> ! {
    let signal = interrupts.signal_name().unwrap_or("a signal");
    let code = interrupts.exit_code();
    printer.json(&serde_json::json!({
        "verdict": "stopped",
        "signal": signal,
        "exitCode": code.code(),
        "tagsDone": tags_done,
        "tagsTotal": tags_total,
    }));
    sensei_cli::exit::fail(
        code,
        &anyhow::anyhow!(
            "stopped by {signal}: {tags_done} of {tags_total} tags pushed; nothing incomplete \
             is tagged; blobs already uploaded stay, so running the same push again continues"
        ),
    )
}

/// `--password-stdin`: one line, kept in memory that is wiped when dropped.
fn read_password(bundle: &std::path::Path) -> Result<zeroize::Zeroizing<String>, LoaderError> {
    use std::io::BufRead as _;
    // Room for any real password, so the line is never reallocated (leaving a copy behind).
    let mut line = zeroize::Zeroizing::new(String::with_capacity(4096));
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        LoaderError::input(bundle, format!("--password-stdin: cannot read stdin: {e}"))
    })?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(LoaderError::input(
            bundle,
            "--password-stdin: stdin held no password (pipe it in: printf '%s\\n' \"$PASSWORD\" | sensei-loader push ...)",
        ));
    }
    Ok(zeroize::Zeroizing::new(password.to_owned()))
}

/// Each retry of a registry request as a warning (unless --quiet): a step that retries can
/// take many seconds, and the user should see why.
fn retry_notice(printer: Printer) -> sensei_loader::push::RetryNotice {
    sensei_loader::push::RetryNotice::new(move |retrying| printer.warn(&retrying.to_string()))
}

fn run_push(args: PushArgs) {
    use sensei_loader::push::{CredentialSource, Credentials, PushOptions, push_bundle, render};
    let printer = args.reporting.printer();
    usage_check(
        &printer,
        args::bundle_path("BUNDLE", &args.bundle)
            .and_then(|()| args.trust.check_paths())
            .and_then(|()| args.target.check_paths()),
    );
    let target = args.target;
    let password = match target.password(&args.bundle) {
        Ok(p) => p,
        Err(e) => fail(&printer, e),
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
        }) => stopped(&printer, &interrupts, tags_done, tags_total),
        Ok(report) => {
            printer.json(&serde_json::json!({
                "verdict": if report.dry_run { "dryRun" } else { "pushed" },
                "report": report,
            }));
            printer.result(&render(&report));
        }
        Err(e) => fail(&printer, e),
    }
}
