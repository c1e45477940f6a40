//! `bedrock-emulator [--addr 127.0.0.1:0]`: binds, prints `LISTENING http://<addr>` on
//! stdout for the test that started it, and serves until killed.

use std::io::Write;
use std::process::ExitCode;

use tokio::net::TcpListener;

const USAGE: &str = "usage: bedrock-emulator [--addr 127.0.0.1:0]";

fn parse_addr(mut args: impl Iterator<Item = String>) -> Result<String, String> {
    let mut addr = "127.0.0.1:0".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value, e.g. 127.0.0.1:0")?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => match other.strip_prefix("--addr=") {
                Some(value) => addr = value.to_owned(),
                None => return Err(format!("unknown argument {other:?}; {USAGE}")),
            },
        }
    }
    Ok(addr)
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = match parse_addr(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // Before LISTENING: a parent waiting for that line should see this failure instead.
    if let Err(error) = bedrock_emulator::learn_rules() {
        eprintln!("bedrock-emulator: cannot learn Bedrock's rules: {error}");
        return ExitCode::FAILURE;
    }
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bedrock-emulator: cannot bind {addr}: {error}; pass a free --addr");
            return ExitCode::FAILURE;
        }
    };
    let bound = match listener.local_addr() {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("bedrock-emulator: cannot read the bound address: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The parent process waits for this exact line, so it must leave the buffer now.
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "LISTENING http://{bound}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    bedrock_emulator::serve(listener).await;
    ExitCode::SUCCESS
}
