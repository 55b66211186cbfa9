//! `sensei-loader upgrade`: its arguments, what it says while it runs, the upgrade run, and
//! the message of an upgrade stopped by a signal (where it stopped, what state that leaves).

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use sensei_cli::flags::Reporting;
use sensei_cli::{ExitCode, Interrupts, Printer, args};

use super::signals::{stopped, watch_signals};
use super::target::{TargetArgs, parse_registry, retry_notice};
use super::trust::TrustArgs;

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
pub(crate) struct UpgradeArgs {
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

pub(crate) fn run(args: UpgradeArgs) {
    use sensei_loader::upgrade::{
        Fault, KubeTarget, PushOptions, RegistryPush, StateDir, UpgradeError, UpgradeOptions,
    };
    let printer = args.reporting.printer();
    crate::usage_check(
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
        crate::fail_with(&printer, code, e)
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

/// An upgrade stopped by a signal: where it stopped and what state that leaves.
fn upgrade_stopped(
    printer: &Printer,
    interrupts: &Interrupts,
    e: &sensei_loader::upgrade::UpgradeError,
) -> ! {
    use sensei_loader::upgrade::UpgradeError;
    let signal = interrupts.signal_name().unwrap_or("a signal");
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
    stopped(
        printer,
        interrupts,
        &state,
        serde_json::json!({"state": state}),
    )
}
