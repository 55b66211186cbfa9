//! `sensei-bundler`: parses arguments, calls the library, maps errors to the exit-code contract.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sensei_bundler::chart::repo::http_client;
use sensei_bundler::create::{WriteOptions, write_bundle};
use sensei_bundler::error::BundleError;
use sensei_bundler::error::InputError;
use sensei_bundler::fetch::fetch_remote;
use sensei_bundler::plan::{PlanEnv, PlanOptions, plan};
use sensei_bundler::{keys, sign};
use sensei_cli::exit::fail;
use sensei_cli::{ExitCode, Printer};
use sensei_core::spec::{BundleSpec, Platform};
use sensei_registry::{ClientSettings, CredentialSource, Registry, RetryNotice, RetryPolicy};

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
            the layers in parallel, each unique blob once, hashed as it streams, into a temporary \
            store beside the output; write the archive, sign it, and rename it into place. \
            Nothing is left behind on failure or Ctrl-C.",
        after_help = "Exit codes: 0 written, 2 the spec, a flag or a local file is wrong, 3 a registry, repository, helm or the disk failed (the message names which), 130 interrupted.\n\
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
    /// Print the result as one JSON document
    #[arg(long)]
    json: bool,
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
    /// Parallel downloads
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    /// Extra CA certificates (PEM) to trust for registries
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Talk plain HTTP to this registry host (repeatable)
    #[arg(long = "plain-http", value_name = "HOST[:PORT]")]
    plain_http: Vec<String>,
    /// Docker config.json with registry credentials (default $DOCKER_CONFIG or ~/.docker/config.json)
    #[arg(long, value_name = "DOCKER_CONFIG_JSON")]
    registry_config: Option<PathBuf>,
    /// The helm binary for image discovery (default $SENSEI_HELM, else helm on PATH)
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
    /// Resolve everything and print the plan; write nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the result as one JSON document on stdout
    #[arg(long)]
    json: bool,
    /// No progress output
    #[arg(long, short = 'q')]
    quiet: bool,
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
    /// Print the result as one JSON document
    #[arg(long)]
    json: bool,
}

fn exit_code(e: &BundleError) -> ExitCode {
    match e {
        BundleError::Input(_) => ExitCode::Usage,
        BundleError::Integrity(_)
        | BundleError::Io { .. }
        | BundleError::Registry { .. }
        | BundleError::Outside(_) => ExitCode::Outside,
        BundleError::Cancelled(_) => ExitCode::Interrupted,
    }
}

fn run(cli: Cli) -> Result<(), (ExitCode, anyhow::Error)> {
    let bundle_err = |e: BundleError| (exit_code(&e), anyhow::Error::new(e));
    match cli.command {
        Command::Keygen(args) => {
            let printer = Printer::new(args.json, false);
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
            create(args).map_err(|e| match e.downcast_ref::<BundleError>() {
                Some(b) => (exit_code(b), e),
                None => (ExitCode::Usage, e),
            })?
        }
        Command::Sign(args) => {
            let printer = Printer::new(args.json, false);
            let key = keys::read_private_key(&args.key).map_err(bundle_err)?;
            let out = args
                .output
                .unwrap_or_else(|| sensei_core::signature::countersignature_path(&args.bundle));
            let done = sign::countersign(&args.bundle, &key, &out).map_err(bundle_err)?;
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
fn created_time() -> anyhow::Result<Option<jiff::Timestamp>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
            Ok(Some(jiff::Timestamp::from_second(secs).with_context(
                || format!("SOURCE_DATE_EPOCH={s} is out of range"),
            )?))
        }
        _ => Ok(None),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    let printer = Printer::new(args.json, args.quiet);
    let spec = BundleSpec::from_path(&args.spec).map_err(|e| BundleError::Input(e.into()))?;
    let keys = args
        .keys
        .iter()
        .map(|k| keys::read_private_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = PlanOptions {
        version: args.version.clone(),
        platforms: args.platforms.clone(),
        created: created_time()?,
    };
    if let Some(path) = &args.registry_config
        && !path.is_file()
    {
        return Err(BundleError::Input(InputError::Other(format!(
            "--registry-config {}: no such file; give the Docker config.json that holds the registry credentials",
            path.display()
        )))
        .into());
    }
    let registry = Registry::new(ClientSettings {
        ca_files: args.ca_file.iter().cloned().collect(),
        plain_http: args.plain_http.clone(),
        credentials: CredentialSource::docker_default(args.registry_config.as_deref()),
        retry: RetryPolicy::default(),
        // Each retry as a warning (unless --quiet): a pull that retries can take many seconds.
        on_retry: Some(RetryNotice::new(move |retrying| {
            printer.warn(&retrying.to_string())
        })),
    })
    .map_err(|e| BundleError::Input(InputError::Other(e.to_string())))?;
    let http = http_client(args.ca_file.as_deref()).map_err(|e| {
        if e.is_input() {
            BundleError::Input(InputError::Other(e.to_string()))
        } else {
            BundleError::Outside(e.to_string())
        }
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let env = PlanEnv {
        registry: &registry,
        http: &http,
        helm: args.helm.as_deref(),
        concurrency: args.concurrency,
    };
    let mut plan = runtime.block_on(plan(&spec, &args.spec, &opts, &env))?;
    if args.dry_run {
        printer.json(&plan.summary());
        printer.result(&sensei_bundler::create::render_plan(&plan));
        return Ok(());
    }
    let Some(output) = args.output else {
        anyhow::bail!(
            "missing -o OUT: where to write the bundle (e.g. -o {}-{}.tar.gz)",
            plan.name,
            plan.version
        );
    };
    if keys.is_empty() {
        printer.warn("no --key given: the bundle is unsigned, and verification will reject it until someone signs it (`sensei-bundler sign`)");
    }
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // A second Ctrl-C exits at once; the first lets the writer remove its temporary files.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(ExitCode::Interrupted.code());
            }
        });
    }
    let reporter = printer.reporter();
    // Fetched layers wait beside the output (same filesystem, so writing the archive is a
    // local copy); the directory goes away whatever happens.
    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let store = tempfile::Builder::new()
        .prefix(".sensei-fetch-")
        .tempdir_in(&out_dir)
        .map_err(BundleError::io(&out_dir))?;
    let fetched = runtime
        .block_on(fetch_remote(
            &mut plan,
            &registry,
            store.path(),
            args.concurrency,
            Some(&cancel),
            reporter.as_ref(),
        ))
        .map_err(|e| match e {
            BundleError::Cancelled(_) => BundleError::Cancelled(output.clone()),
            e => e,
        })?;
    let written = write_bundle(
        &plan,
        &output,
        &WriteOptions {
            keys: &keys,
            cancel: Some(&cancel),
        },
        reporter.as_ref(),
    )?;
    drop(store);
    #[derive(serde::Serialize)]
    struct Summary<'a> {
        #[serde(flatten)]
        written: &'a sensei_bundler::create::Written,
        fetched: sensei_bundler::fetch::Fetched,
    }
    printer.json(&Summary {
        written: &written,
        fetched,
    });
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
        fail(code, &err);
    }
}
