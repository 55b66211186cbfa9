//! The flags both binaries take, defined once: how to reach registries (`--ca-file`,
//! `--plain-http`, `--registry-config`, `--concurrency`) and how to report (`--json`,
//! `--quiet`). Each binary flattens these structs into its commands, so a flag has one name,
//! one parser and one help text everywhere. Where the contract makes a flag differ per binary
//! (`--plain-http` names hosts in the bundler, which reaches many registries, and is a switch
//! in the loader, which reaches one), there is one struct per form, side by side.

use std::path::PathBuf;

use clap::Args;

use crate::args::{self, BadPath};

/// `--concurrency` when not given.
pub const DEFAULT_CONCURRENCY: u16 = 8;

// The library's default is the same number; a test keeps them together.
const _: () = assert!(DEFAULT_CONCURRENCY as usize == sensei_registry::DEFAULT_CONCURRENCY);

/// How to reach registries: trust, credentials, parallelism. `create`, `push` and `upgrade`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccess {
    /// Extra CA certificates (PEM) to trust, besides the system's, for every TLS connection to
    /// a registry or a Helm repository (repeatable)
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// Docker config.json with registry credentials (default: $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json)
    #[arg(long, value_name = "DOCKER_CONFIG_JSON")]
    pub registry_config: Option<PathBuf>,
    /// Blobs transferred at once (1 to 64)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY, value_parser = args::parse_concurrency)]
    pub concurrency: u16,
}

impl RegistryAccess {
    /// `--ca-file` and `--registry-config` name readable files (exit 2, naming the flag).
    pub fn check_paths(&self) -> Result<(), BadPath> {
        for p in &self.ca_files {
            args::input_file("--ca-file", p)?;
        }
        if let Some(p) = &self.registry_config {
            args::input_file("--registry-config", p)?;
        }
        Ok(())
    }

    /// The files these flags name, with their flag: inputs an output must not overwrite.
    pub fn inputs(&self) -> impl Iterator<Item = (&'static str, &PathBuf)> {
        let cas = self.ca_files.iter().map(|p| ("--ca-file", p));
        cas.chain(
            self.registry_config
                .iter()
                .map(|p| ("--registry-config", p)),
        )
    }

    pub fn concurrency(&self) -> usize {
        usize::from(self.concurrency)
    }
}

/// `--plain-http HOST[:PORT]`, the bundler's form: it pulls from many registries, and only
/// those named speak plain HTTP.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct PlainHttpHosts {
    /// Speak plain HTTP, not HTTPS, to this registry (HOST or HOST:PORT, as in image
    /// references; repeatable)
    #[arg(long = "plain-http", value_name = "HOST[:PORT]", value_parser = args::parse_registry_host)]
    pub plain_http: Vec<String>,
}

/// `--plain-http`, the loader's form: it pushes to the one registry `--registry` names.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct PlainHttpSwitch {
    /// Speak plain HTTP, not HTTPS, to the registry (--registry)
    #[arg(long = "plain-http")]
    pub plain_http: bool,
}

/// How a command reports: `create`, `verify`, `push`, `upgrade`.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reporting {
    #[command(flatten)]
    pub json: Json,
    /// No progress output (warnings and errors still go to stderr)
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `--json` alone, for the commands that show no progress.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Json {
    /// Print the result as one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

impl Reporting {
    pub fn printer(&self) -> crate::Printer {
        crate::Printer::new(self.json.json, self.quiet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Bundler {
        #[command(flatten)]
        access: RegistryAccess,
        #[command(flatten)]
        plain: PlainHttpHosts,
        #[command(flatten)]
        reporting: Reporting,
    }

    #[derive(Parser, Debug)]
    struct Loader {
        #[command(flatten)]
        access: RegistryAccess,
        #[command(flatten)]
        plain: PlainHttpSwitch,
    }

    #[test]
    fn each_binary_keeps_its_form_of_plain_http() {
        let b = Bundler::try_parse_from([
            "b",
            "--plain-http",
            "a:5000",
            "--plain-http",
            "b",
            "--ca-file",
            "x.pem",
            "--ca-file",
            "y.pem",
            "--json",
            "-q",
        ])
        .unwrap();
        assert_eq!(b.plain.plain_http, ["a:5000", "b"]);
        assert_eq!(b.access.ca_files.len(), 2);
        assert!(b.reporting.json.json && b.reporting.quiet);
        assert_eq!(b.access.concurrency(), 8);
        assert!(Bundler::try_parse_from(["b", "--plain-http", "http://a:5000"]).is_err());

        let l = Loader::try_parse_from(["l", "--plain-http", "--concurrency", "64"]).unwrap();
        assert!(l.plain.plain_http);
        assert_eq!(l.access.concurrency(), 64);
        // The switch takes no host: a host after it is an unexpected argument.
        assert!(Loader::try_parse_from(["l", "--plain-http", "a:5000"]).is_err());
        for bad in ["0", "65", "x"] {
            assert!(Loader::try_parse_from(["l", "--concurrency", bad]).is_err());
            assert!(Bundler::try_parse_from(["b", "--concurrency", bad]).is_err());
        }
    }
}
