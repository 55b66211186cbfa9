//! `sensei-fault-proxy`: the test rig's fault-injecting proxy as a process of its own, so that
//! `scripts/bench.sh push` can time a push through random faults from a shell.
//!
//! It listens on a free loopback port, prints `127.0.0.1:PORT` on the first line of stdout,
//! and forwards to the plain-HTTP registry named on the command line until its stdin reaches
//! end of file; it then prints what it injected and exits. Arguments are parsed by hand to keep
//! this helper free of dependencies beyond the rig.

use std::io::{self, Write};
use std::process::ExitCode;

use sensei_tests::rig::{FaultProxy, RandomFaults};

const USAGE: &str = "\
Usage: sensei-fault-proxy UPSTREAM [--errors RATE] [--resets RATE] [--seed S]

Forwards plain HTTP from a free 127.0.0.1 port to the registry at UPSTREAM (host:port),
answering 500 to a random share of requests and resetting the connection of another share.
Prints 127.0.0.1:PORT as its first line, runs until stdin is closed, then prints one line:
  requests=N errors=N cuts=N lost_answers=N

Options:
  --errors RATE   share of requests answered 500 without being forwarded (default 0.20)
  --resets RATE   share of connections reset without an answer (default 0.05)
  --seed S        seed of the fault sequence (default 1): same seed, same draws
  -h, --help      show this help

Exit codes: 0 success, 2 bad arguments, 3 stdout could not be written.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        let _ = writeln!(io::stdout().lock(), "{USAGE}");
        return ExitCode::SUCCESS;
    }
    match parse(&args) {
        Ok((upstream, faults)) => run(&upstream, faults),
        Err(message) => {
            let _ = writeln!(
                io::stderr().lock(),
                "sensei-fault-proxy: {message}\nTry 'sensei-fault-proxy --help'."
            );
            ExitCode::from(2)
        }
    }
}

fn run(upstream: &str, faults: RandomFaults) -> ExitCode {
    let proxy = FaultProxy::new(upstream);
    proxy.random_faults(faults);
    {
        let mut out = io::stdout().lock();
        if writeln!(out, "{}", proxy.host())
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::from(3);
        }
    }
    // Until whoever started us closes our stdin (or dies: the pipe's end closes then too).
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    let injected = proxy.injected();
    let line = format!(
        "requests={} errors={} cuts={} lost_answers={}",
        proxy.requests().len(),
        injected.errors,
        injected.cuts,
        injected.lost_answers
    );
    if writeln!(io::stdout().lock(), "{line}").is_err() {
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

fn parse(args: &[String]) -> Result<(String, RandomFaults), String> {
    let mut upstream = None;
    let mut faults = RandomFaults::new(1, 0.20, 0.05);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--errors" => faults.error_rate = rate(flag, &value()?)?,
            "--resets" => faults.reset_rate = rate(flag, &value()?)?,
            "--seed" => {
                let text = value()?;
                faults.seed = text
                    .parse()
                    .map_err(|_| format!("--seed: '{text}' is not a non-negative integer"))?;
            }
            _ if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if upstream.is_some() => return Err(format!("unexpected extra argument {arg}")),
            _ => upstream = Some(arg.clone()),
        }
    }
    if faults.error_rate + faults.reset_rate > 1.0 {
        return Err("--errors and --resets add up to more than 1".into());
    }
    let upstream = upstream.ok_or("missing UPSTREAM (the registry's host:port)")?;
    Ok((upstream, faults))
}

fn rate(flag: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{flag}: '{text}' is not a share between 0 and 1")),
    }
}
