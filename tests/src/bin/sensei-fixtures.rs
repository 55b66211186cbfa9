//! `sensei-fixtures`: writes the deterministic OCI fixtures (image layout, Helm chart, bundle
//! spec) into a directory, for the demo script and the benchmarks.
//!
//! Arguments are parsed by hand to keep this helper free of dependencies beyond the fixtures.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use sensei_tests::fixtures::{FixtureOptions, write_fixtures};

const USAGE: &str = "\
Usage: sensei-fixtures DIR [--big-layer-mib N] [--small-images N] [--seed S]

Writes deterministic test fixtures under DIR (same options => byte-identical files):
  DIR/oci/             an OCI image layout: api, worker (sharing a base layer), multi (OCI
                       index, linux/amd64 + linux/arm64), legacy (Docker schema 2), legacy-list
                       (Docker manifest list), and optionally big and small-NNN
  DIR/charts/demo/     a Helm chart
  DIR/bundle.yaml      a bundle spec naming the chart and every image

Prints one line per image: REFERENCE DIGEST.

Options:
  --big-layer-mib N    add image big:1.0.0 with an N MiB incompressible layer (default 0: none)
  --small-images N     add N images small-000:1.0.0 ... sharing the base layer (default 0)
  --seed S             vary every layer's content, hence every digest (default 0)
  -h, --help           show this help

Exit codes: 0 success, 2 bad arguments, 3 the files could not be written.";

#[derive(Debug)]
enum Command {
    Help,
    Run { dir: PathBuf, opts: FixtureOptions },
}

fn main() -> ExitCode {
    match parse(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            // Nothing useful to do if stdout is closed.
            let _ = writeln!(io::stdout().lock(), "{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run { dir, opts }) => run(&dir, &opts),
        Err(message) => {
            let _ = writeln!(
                io::stderr().lock(),
                "sensei-fixtures: {message}\nTry 'sensei-fixtures --help'."
            );
            ExitCode::from(2)
        }
    }
}

fn run(dir: &std::path::Path, opts: &FixtureOptions) -> ExitCode {
    let set = match write_fixtures(dir, opts) {
        Ok(set) => set,
        Err(err) => {
            let _ = writeln!(
                io::stderr().lock(),
                "sensei-fixtures: cannot write fixtures under {}: {err}",
                dir.display()
            );
            return ExitCode::from(3);
        }
    };
    let mut out = io::stdout().lock();
    for image in &set.images {
        if writeln!(out, "{} {}", image.reference, image.digest).is_err() {
            return ExitCode::from(3);
        }
    }
    ExitCode::SUCCESS
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut dir: Option<PathBuf> = None;
    let mut opts = FixtureOptions::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // DIR may be any path, even non-UTF-8; flags must be UTF-8.
        let Some(text) = arg.to_str() else {
            set_dir(&mut dir, arg)?;
            continue;
        };
        if text == "-h" || text == "--help" {
            return Ok(Command::Help);
        }
        if !text.starts_with("--") {
            set_dir(&mut dir, arg.clone())?;
            continue;
        }
        // Both `--flag VALUE` and `--flag=VALUE`.
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (text.to_string(), None),
        };
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "--big-layer-mib" => {
                let mib: u64 = number(&flag, &value()?)?;
                opts.big_layer_bytes = mib
                    .checked_mul(1024 * 1024)
                    .ok_or_else(|| format!("{flag}: {mib} MiB is too large"))?;
            }
            "--small-images" => opts.small_images = number(&flag, &value()?)?,
            "--seed" => opts.seed = number(&flag, &value()?)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let dir = dir.ok_or("missing DIR")?;
    Ok(Command::Run { dir, opts })
}

fn set_dir(dir: &mut Option<PathBuf>, arg: OsString) -> Result<(), String> {
    if dir.is_some() {
        return Err(format!(
            "unexpected extra argument {}",
            arg.to_string_lossy()
        ));
    }
    *dir = Some(PathBuf::from(arg));
    Ok(())
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: '{text}' is not a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_all_flags() {
        let Ok(Command::Run { dir, opts }) = parse_strs(&[
            "out",
            "--big-layer-mib",
            "2",
            "--small-images=3",
            "--seed",
            "7",
        ]) else {
            panic!("expected a run command");
        };
        assert_eq!(dir, PathBuf::from("out"));
        assert_eq!(
            opts,
            FixtureOptions {
                big_layer_bytes: 2 * 1024 * 1024,
                small_images: 3,
                seed: 7,
            }
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_strs(&[]).is_err());
        assert!(parse_strs(&["a", "b"]).is_err());
        assert!(parse_strs(&["a", "--seed"]).is_err());
        assert!(parse_strs(&["a", "--seed", "-1"]).is_err());
        assert!(parse_strs(&["a", "--bogus"]).is_err());
        assert!(parse_strs(&["a", "--big-layer-mib", "99999999999999999"]).is_err());
        assert!(matches!(parse_strs(&["a", "--help"]), Ok(Command::Help)));
    }
}
