//! `gunzip DECODER FILE`: decompresses FILE to nowhere with one of the two gzip decoders the
//! bundle reader could use, so `scripts/bench.sh verify` can time them on the same bundle:
//! `ours` is the reader `sensei-loader verify` uses (`archive::open_stream`: stored members
//! copied out block by block), `flate2` is flate2's `MultiGzDecoder` (zlib-rs backend).
//! Prints the decompressed byte count.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool

use std::io::{self, BufReader, Read};

fn drain(mut r: impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(n),
            k => n += k as u64,
        }
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [decoder, path] = args.as_slice() else {
        eprintln!("usage: gunzip ours|flate2 FILE");
        return std::process::ExitCode::from(2);
    };
    let result = std::fs::File::open(path).and_then(|file| match decoder.as_str() {
        "ours" => {
            let (stream, _) = sensei_core::archive::open_stream(file)?;
            drain(stream)
        }
        "flate2" => drain(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            file,
        ))),
        other => Err(io::Error::other(format!("unknown decoder {other}"))),
    });
    match result {
        Ok(n) => {
            println!("{n}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gunzip: {path}: {e}");
            std::process::ExitCode::from(3)
        }
    }
}
