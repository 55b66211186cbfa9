//! `sensei-bundler`: parses arguments, calls the library, maps errors to the exit-code contract.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use sensei_bundler::build::{BuildOptions, build, check_space};
use sensei_bundler::error::{BundleError, Bytes, InputError};
use sensei_bundler::plan::{PlanEnv, PlanOptions, plan};
use sensei_bundler::{keys, sign};
use sensei_cli::advice::{Binary, registry_advice};
use sensei_cli::exit::fail_advised;
use sensei_cli::flags::{Json, PlainHttpHosts, RegistryAccess, Reporting};
use sensei_cli::{ExitCode, Interrupts, Printer, args};
use sensei_core::outfile::{self, CheckedOutput, Input, Replace, check_output};
use sensei_core::spec::{BundleSpec, ChartSource, ImageSource, Platform};
use sensei_core::time::{BundleTime, MAX_SECOND};
use sensei_registry::{ClientSettings, CredentialSource, Registry, RetryNotice, RetryPolicy};
use tokio::runtime::Runtime;

#[derive(Parser, Debug)]
#[command(
    name = "sensei-bundler",
    version,
    about = "Build signed, reproducible air-gap bundles of Sensei's charts and images",
    long_about = "Build signed, reproducible air-gap bundles of Sensei's charts and images.\n\n\
        On the connected side: `keygen` once, then `create` a bundle from a spec (manifests/*.yaml); \
        a second person can `sign` it too. Carry the one file across the air gap and load it with \
        `sensei-loader`.",
    after_help = "Exit codes: 0 success, 1 bundle rejected, 2 usage or input error, 3 outside failure (registry, network, disk).\n\
        Examples:\n  \
        sensei-bundler keygen --out release\n  \
        sensei-bundler create -f manifests/sensei.yaml --version 1.2.0 \\\n      \
            --key release.key -o sensei-1.2.0.tar.gz\n  \
        sensei-bundler sign sensei-1.2.0.tar.gz --key security.key"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate an ed25519 signing key pair: PREFIX.key (private, mode 0600) and PREFIX.pub
    Keygen(KeygenArgs),
    /// Build a bundle from a spec: pull every chart and image, write one signed archive
    #[command(
        long_about = "Build a bundle from a spec: pull every chart and image, write one signed archive.\n\n\
            In order: read the spec; fetch and package the charts (directories, .tgz, Helm \
            repositories, oci://); with `discoverImages: true`, render each chart with helm and \
            read its image annotations; resolve every image to a digest (registries in parallel, \
            through `mirrors:` where the spec names one; every manifest hashed); then download \
            the layers in parallel, each unique blob once, hashed as it streams: for a .tar \
            straight into its place in the archive (signed first, as every offset is known), for \
            a .tar.gz into a temporary store beside the output, then the archive is written; \
            finally it is renamed into place.\n\n\
            Safe with what is already there: -o is refused (exit 2, before any download) when it \
            is a directory, device, FIFO, socket or symlink, when it is one of the inputs (the \
            spec, a key, a chart, a layout), or when it is an existing file that is not a bundle \
            (--force replaces such a file). Free space for the archive and the downloads is \
            checked once the plan is resolved, before any layer is downloaded (exit 3). Ctrl-C, \
            SIGTERM and SIGHUP stop the build with a message and remove its temporary files; \
            those of a run killed outright (SIGKILL, power loss) are locked to their process \
            and removed by the next run in the same directory, never while their run is alive.",
        after_help = "Exit codes: 0 written, 2 the spec, a flag or a local file is wrong, 3 a registry, repository, helm or the disk failed (the message names which), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP).\n\
            Examples:\n  \
            sensei-bundler create -f manifests/sensei.yaml --version 1.2.0 \\\n      \
                --key release.key -o sensei-1.2.0.tar.gz\n  \
            sensei-bundler create -f manifests/sensei.yaml --dry-run\n  \
            sensei-bundler create -f spec.yaml -o out.tar \\\n      \
                --plain-http localhost:5000 --platform linux/amd64\n  \
            sensei-bundler create -f spec.yaml -o out.tar.gz \\\n      \
                --ca-file corp-ca.pem --registry-config ci-docker.json"
    )]
    Create(CreateArgs),
    /// Countersign an existing bundle (two-person rule) without rewriting it
    Sign(SignArgs),
}

#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 written; 2 a key file of that name already exists (nothing \
    is overwritten) or a flag is wrong; 3 the disk failed.\n\
    Examples:\n  \
    sensei-bundler keygen --out release\n  \
    sensei-bundler keygen --out keys/security --json"
)]
struct KeygenArgs {
    /// Path prefix of the key files; refuses to overwrite existing ones
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    #[command(flatten)]
    json: Json,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The bundle spec (YAML; see manifests/sensei.yaml)
    #[arg(short = 'f', long = "file", value_name = "SPEC.yaml")]
    spec: PathBuf,
    /// Output archive; `.tar.gz`/`.tgz` gzip it, anything else is a plain `.tar`
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// The bundle's version (overrides `version:` in the spec)
    #[arg(long, value_name = "V")]
    version: Option<semver::Version>,
    /// Private key to sign with (repeat for several signatures)
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<PathBuf>,
    /// Keep only these platforms of multi-arch images, e.g. linux/amd64 (repeatable; overrides `platforms:`)
    #[arg(long = "platform", value_name = "OS/ARCH")]
    platforms: Vec<Platform>,
    #[command(flatten)]
    access: RegistryAccess,
    #[command(flatten)]
    plain: PlainHttpHosts,
    /// The helm binary for image discovery (default $SENSEI_HELM, else helm on PATH)
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
    /// Resolve everything and print the plan; write nothing
    #[arg(long)]
    dry_run: bool,
    /// Replace an existing file at OUT even if it is not a bundle (never a device, directory or link)
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    reporting: Reporting,
}

#[derive(Args, Debug)]
#[command(
    after_help = "What is signed is the exact bytes of bundle.json, which list every \
    file's sha256, so the signature covers the whole bundle; the archive is never rewritten. \
    Sign only what you have verified (`sensei-loader verify`): sign reads bundle.json alone.\n\
    Exit codes: 0 written; 2 not a valid bundle, not a private key, or a signature file that \
    cannot be added to; 3 the disk failed.\n\
    Examples:\n  \
    sensei-bundler sign sensei-1.2.0.tar.gz --key security.key\n  \
    sensei-bundler sign ./sensei-1.2.0/ --key security.key -o reviewed.sig"
)]
struct SignArgs {
    /// The bundle (archive or extracted directory)
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// Private key to countersign with
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Signature file to write or add to (default: BUNDLE.sig beside the bundle)
    #[arg(short = 'o', long = "output", value_name = "SIGFILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    json: Json,
}

/// Every failure's exit code, by its kind: the one place the bundler decides. Only the input
/// (a flag, the spec, a local file, a CA file) is exit 2; the network, a registry, a Helm
/// repository, helm and the disk are exit 3, whichever step they fail in.
fn exit_code(e: &BundleError) -> ExitCode {
    match e {
        BundleError::Input(_) => ExitCode::Usage,
        BundleError::Client(e) if e.is_ca_file() => ExitCode::Usage,
        BundleError::Client(_)
        | BundleError::Integrity(_)
        | BundleError::Io { .. }
        | BundleError::Registry { .. }
        | BundleError::Repo(_)
        | BundleError::Outside(_)
        | BundleError::NoSpace { .. } => ExitCode::Outside,
        BundleError::Cancelled(_) => ExitCode::Interrupted,
    }
}

fn run(cli: Cli) -> Result<(), (ExitCode, anyhow::Error)> {
    let bundle_err = |e: BundleError| (exit_code(&e), anyhow::Error::new(e));
    match cli.command {
        Command::Keygen(args) => {
            let printer = Printer::new(args.json.json, false);
            let k = keys::keygen(&args.out).map_err(bundle_err)?;
            printer.json(&k);
            printer.result(&format!(
                "keyid {}\nprivate key {} (keep it secret; mode 0600)\npublic key  {} (give this to whoever verifies)",
                k.keyid,
                k.private_key.display(),
                k.public_key.display()
            ));
        }
        Command::Create(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    (
                        ExitCode::Outside,
                        anyhow::Error::new(e).context("cannot start the async runtime"),
                    )
                })?;
            // From here on SIGINT, SIGTERM and SIGHUP stop the build cleanly.
            let interrupts = Interrupts::watch(&runtime).map_err(|e| {
                (
                    ExitCode::Outside,
                    anyhow::Error::new(e).context("cannot watch for signals"),
                )
            })?;
            let result = create(args, &interrupts, &runtime);
            // Dropping the runtime first stops the downloads still in flight.
            drop(runtime);
            result.map_err(|e| match e {
                BundleError::Cancelled(out) => (
                    interrupts.exit_code(),
                    anyhow::anyhow!(
                        "stopped by {}: nothing was written to {} and the temporary files are removed",
                        interrupts.signal_name().unwrap_or("a signal"),
                        out.display()
                    ),
                ),
                e => bundle_err(e),
            })?
        }
        Command::Sign(args) => {
            let printer = Printer::new(args.json.json, false);
            let usage = |e: args::BadPath| (ExitCode::Usage, anyhow::Error::new(e));
            args::bundle_path("BUNDLE", &args.bundle).map_err(usage)?;
            args::input_file("--key", &args.key).map_err(usage)?;
            let key = keys::read_private_key(&args.key).map_err(bundle_err)?;
            let out = args
                .output
                .unwrap_or_else(|| sensei_core::signature::countersignature_path(&args.bundle));
            let done =
                sign::countersign(&args.bundle, &key, &args.key, &out).map_err(bundle_err)?;
            printer.json(&done);
            printer.result(&format!(
                "countersigned {} {} (bundle.json {})\nby keyid {}\nwrote {} ({} signature(s)); sensei-loader reads it automatically when it sits beside the bundle",
                done.name,
                done.version,
                done.manifest_digest,
                done.keyid,
                done.signature_file.display(),
                done.signatures
            ));
        }
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (reproducible builds), or now.
fn created_time() -> Result<Option<BundleTime>, InputError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => {
            let secs: i64 = s.trim().parse().map_err(|_| {
                InputError::Other(format!(
                    "SOURCE_DATE_EPOCH={s:?} is not a number of seconds"
                ))
            })?;
            Ok(Some(BundleTime::from_second(secs).map_err(|e| {
                InputError::Other(format!(
                    "SOURCE_DATE_EPOCH={s} is out of range: bundle.json holds times from 0 \
                     (1970-01-01T00:00:00Z) to {MAX_SECOND} (9999-12-31T23:59:59Z): {e}"
                ))
            })?))
        }
        _ => Ok(None),
    }
}

/// Every path flag of `create` names a readable file: told now, naming the flag (exit 2).
fn check_create_paths(args: &CreateArgs) -> Result<(), args::BadPath> {
    args::input_file("-f", &args.spec)?;
    for k in &args.keys {
        args::input_file("--key", k)?;
    }
    args.access.check_paths()?;
    if let Some(p) = &args.helm {
        args::input_file("--helm", p)?;
    }
    Ok(())
}

/// The output checked before any download: not a device, link or directory, not an input,
/// and not someone else's file (unless --force); its directory exists and is writable.
fn check_create_output(
    args: &CreateArgs,
    spec: &BundleSpec,
    output: &Path,
) -> Result<CheckedOutput, BundleError> {
    let mut inputs = vec![Input {
        flag: "-f",
        path: &args.spec,
    }];
    inputs.extend(args.keys.iter().map(|k| Input {
        flag: "--key",
        path: k,
    }));
    inputs.extend(
        args.access
            .inputs()
            .map(|(flag, path)| Input { flag, path }),
    );
    inputs.extend(spec.charts.iter().filter_map(|c| match c {
        ChartSource::Path { path, .. } => Some(Input {
            flag: "the spec's chart",
            path,
        }),
        _ => None,
    }));
    inputs.extend(spec.images.iter().filter_map(|i| match i {
        ImageSource::Layout { layout, .. } => Some(Input {
            flag: "the spec's OCI layout",
            path: layout,
        }),
        ImageSource::Registry { .. } => None,
    }));
    let is_bundle = |p: &Path| sensei_core::verify::read_head(p).is_ok();
    let replace = if args.force {
        Replace::Force
    } else {
        Replace::IfOurs {
            what: "a Sensei bundle",
            is_ours: &is_bundle,
        }
    };
    Ok(check_output("-o", output, &inputs, replace).map_err(InputError::from)?)
}

/// Removes what interrupted runs left beside the output (their owners are gone) and says so.
fn sweep(dir: &Path, printer: &Printer) {
    let swept = outfile::sweep_stale(dir);
    if !swept.paths.is_empty() {
        printer.warn(&format!(
            "removed {} temporary file(s) left in {} by interrupted runs, freeing {}",
            swept.paths.len(),
            dir.display(),
            Bytes(swept.bytes)
        ));
    }
}

fn create(args: CreateArgs, interrupts: &Interrupts, runtime: &Runtime) -> Result<(), BundleError> {
    let printer = args.reporting.printer();
    check_create_paths(&args).map_err(|e| InputError::Other(e.to_string()))?;
    let spec = BundleSpec::from_path(&args.spec).map_err(|e| BundleError::Input(e.into()))?;
    let keys = args
        .keys
        .iter()
        .map(|k| keys::read_private_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let output = match (&args.output, args.dry_run) {
        (Some(out), false) => Some(check_create_output(&args, &spec, out)?),
        (None, false) => {
            return Err(InputError::Other(format!(
                "missing -o OUT: where to write the bundle (e.g. -o {}-{}.tar.gz)",
                spec.name,
                args.version
                    .as_ref()
                    .or(spec.version.as_ref())
                    .map_or_else(|| "VERSION".to_owned(), ToString::to_string)
            ))
            .into());
        }
        (_, true) => None,
    };
    let opts = PlanOptions {
        version: args.version.clone(),
        platforms: args.platforms.clone(),
        created: created_time()?,
    };
    // One client for registries and Helm repositories: one set of CAs, proxies, timeouts
    // and retries.
    let registry = Registry::new(ClientSettings {
        ca_files: args.access.ca_files.clone(),
        plain_http: args.plain.plain_http.clone(),
        credentials: CredentialSource::docker_default(args.access.registry_config.as_deref()),
        retry: RetryPolicy::default(),
        // Each retry as a warning (unless --quiet): a pull that retries can take many seconds.
        on_retry: Some(RetryNotice::new(move |retrying| {
            printer.warn(&retrying.to_string())
        })),
    })?;
    let concurrency = args.access.concurrency();
    let env = PlanEnv {
        registry: &registry,
        helm: args.helm.as_deref(),
        concurrency,
    };
    let cancelled = |out: &Path| BundleError::Cancelled(out.to_owned());
    let mut plan = runtime.block_on(async {
        tokio::select! {
            plan = plan(&spec, &args.spec, &opts, &env) => plan,
            () = interrupts.stopped() => Err(cancelled(args.output.as_deref().unwrap_or(Path::new("-")))),
        }
    })?;
    let Some(output) = output else {
        printer.json(&plan.summary());
        printer.result(&sensei_bundler::create::render_plan(&plan));
        return Ok(());
    };
    if keys.is_empty() {
        printer.warn("no --key given: the bundle is unsigned, and verification will reject it until someone signs it (`sensei-bundler sign`)");
    }
    sweep(&output.dir, &printer);
    check_space(&plan, &output)?;
    let reporter = printer.reporter();
    let built = build(
        &mut plan,
        &output,
        &registry,
        runtime,
        &BuildOptions {
            keys: &keys,
            concurrency,
            cancel: interrupts.flag(),
        },
        reporter.as_ref(),
    )?;
    let written = &built.written;
    printer.json(&built);
    printer.result(&format!(
        "wrote {} ({} bytes): {} {}, {} image(s), {} chart(s), {} files\nbundle.json sha256:{} signed by {}",
        written.path.display(),
        written.bytes,
        plan.name,
        plan.version,
        written.images,
        written.charts,
        written.files,
        written.manifest_digest.hex(),
        if written.signers.is_empty() { "nobody (unsigned)".to_owned() } else { written.signers.iter().map(|k| k.short().to_owned()).collect::<Vec<_>>().join(", ") }
    ));
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err((code, err)) = run(cli) {
        let hint = registry_advice(err.as_ref(), Binary::Bundler);
        fail_advised(code, &err, hint);
    }
}
