//! `proxy-bench`: the measuring half of `scripts/bench.sh` and `scripts/load.sh`. The scripts
//! build and start the servers; this binary sends the traffic, reads `/proc`, and writes each
//! result as JSON (to `--out`) and as Markdown (to stdout).
//!
//! The client runs on one thread (a current-thread Tokio runtime), so on a small machine it
//! takes at most one core from the servers it measures, the same for every path.

mod client;
mod coldstart;
mod compare;
mod jwt;
mod load;
mod procfs;
mod stats;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use client::{http_client, Protocol, Target};

const USAGE: &str = "usage:
  proxy-bench compare --direct URL --proxy URL --proxy-pid PID [--litellm URL --litellm-pid PID]
                      [--direct-mantle URL] [--proxy-mantle URL --proxy-mantle-pid PID]
                      [--emulator-pid PID] [--token T] [--ttfd-rounds 300] [--chunk-rounds 60]
                      [--rounds 3] [--secs 4] [--concurrency 1,16,64] --out FILE
  proxy-bench coldstart --proxy-bin PATH --emulator URL [--moto URL] [--runs 30]
                      [--litellm-cmd CMD --litellm-port PORT --litellm-runs 3] --out FILE
  proxy-bench load --proxy URL --pid PID --emulator URL [--token T] [--concurrent 200]
                      [--soak-secs 180] [--soak-callers 32] [--rss-limit-mb 64] --out FILE
  proxy-bench jwt [--n 2000] [--rounds 5] --out FILE
  proxy-bench drive --url URL [--token T] [--n 1000] [--concurrency 1] [--text TEXT] [--non-stream]
  proxy-bench report --compare FILE | --coldstart FILE | --load FILE | --jwt FILE";

struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}\n{USAGE}"))?;
            let value = match args.peek() {
                Some(v) if !v.starts_with("--") => args.next().unwrap_or_default(),
                _ => "true".to_string(),
            };
            map.insert(key.to_string(), value);
        }
        Ok(Self(map))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn need(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| format!("--{key} is required\n{USAGE}"))
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key} must be a number, got {v:?}")),
        }
    }
}

fn target(name: &str, protocol: Protocol, base: &str, token: &str) -> Target {
    Target {
        name: name.into(),
        protocol,
        base: base.trim_end_matches('/').into(),
        token: token.into(),
    }
}

fn write_out(args: &Args, value: &serde_json::Value) -> Result<(), String> {
    let path = args.need("out")?;
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))
}

fn read_json(path: &str) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting tokio: {e}"))
}

fn run() -> Result<bool, String> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().ok_or(USAGE)?;
    let args = Args::parse(argv)?;
    let token = args.get("token").unwrap_or("bench-token").to_string();
    match command.as_str() {
        "compare" => {
            let pid = |k: &str| args.get(k).and_then(|v| v.parse().ok());
            let mut paths = vec![
                compare::Path {
                    target: target("direct", Protocol::Bedrock, args.need("direct")?, &token),
                    pid: None,
                },
                compare::Path {
                    target: target("proxy", Protocol::Anthropic, args.need("proxy")?, &token),
                    pid: pid("proxy-pid"),
                },
            ];
            // Bedrock's Anthropic Messages endpoint: the emulator's own route, and the proxy
            // started with BEDROCK_API=mantle.
            if let Some(url) = args.get("direct-mantle") {
                paths.push(compare::Path {
                    target: target(compare::DIRECT_MANTLE, Protocol::Mantle, url, &token),
                    pid: None,
                });
            }
            if let Some(url) = args.get("proxy-mantle") {
                paths.push(compare::Path {
                    target: target(compare::PROXY_MANTLE, Protocol::Anthropic, url, &token),
                    pid: pid("proxy-mantle-pid"),
                });
            }
            if let Some(url) = args.get("litellm") {
                paths.push(compare::Path {
                    target: target("litellm", Protocol::Anthropic, url, &token),
                    pid: pid("litellm-pid"),
                });
            }
            let concurrency = args
                .get("concurrency")
                .unwrap_or("1,16,64")
                .split(',')
                .map(|c| c.trim().parse().map_err(|_| format!("bad --concurrency {c:?}")))
                .collect::<Result<Vec<usize>, _>>()?;
            let plan = compare::Plan {
                paths,
                emulator_pid: pid("emulator-pid"),
                ttfd_rounds: args.num("ttfd-rounds", 300)?,
                chunk_rounds: args.num("chunk-rounds", 60)?,
                rounds: args.num("rounds", 3)?,
                run_for: Duration::from_secs_f64(args.num("secs", 4.0)?),
                concurrency,
            };
            let client = http_client();
            let result = runtime()?.block_on(compare::run(&client, &plan));
            write_out(&args, &result)?;
            println!("{}", compare::report(&result));
            Ok(true)
        }
        "coldstart" => {
            let litellm = match (args.get("litellm-cmd"), args.get("litellm-port")) {
                (Some(cmd), Some(port)) => Some((cmd.to_string(), port.parse().map_err(|_| "bad --litellm-port")?)),
                _ => None,
            };
            let setup = coldstart::Setup {
                proxy_bin: args.need("proxy-bin")?.into(),
                emulator: args.need("emulator")?.into(),
                moto: args.get("moto").map(String::from),
                runs: args.num("runs", 30)?,
                litellm,
                litellm_runs: args.num("litellm-runs", 3)?,
            };
            let result = coldstart::run(&setup);
            write_out(&args, &result)?;
            println!("{}", coldstart::report(&result));
            Ok(true)
        }
        "load" => {
            let proxy = args.need("proxy")?;
            let port = |url: &str| {
                url.rsplit(':')
                    .next()
                    .and_then(|p| p.trim_end_matches('/').parse().ok())
            };
            let emulator = args.need("emulator")?;
            let plan = load::LoadPlan {
                proxy: target("proxy", Protocol::Anthropic, proxy, &token),
                pid: args.num("pid", 0)?,
                listen_port: port(proxy).ok_or("--proxy needs a port")?,
                emulator: emulator.trim_end_matches('/').into(),
                emulator_port: port(emulator).ok_or("--emulator needs a port")?,
                concurrent: args.num("concurrent", 200)?,
                soak: Duration::from_secs_f64(args.num("soak-secs", 180.0)?),
                soak_workers: args.num("soak-callers", 32)?,
                rss_limit_kb: args.num::<u64>("rss-limit-mb", 64)? * 1024,
            };
            let result = runtime()?.block_on(load::run(&plan));
            write_out(&args, &result)?;
            println!("{}", load::report(&result));
            Ok(result["passed"] == true)
        }
        "jwt" => {
            let plan = jwt::Plan {
                n: args.num("n", 2000)?,
                rounds: args.num("rounds", 5)?,
            };
            let result = runtime()?.block_on(jwt::run(&plan))?;
            write_out(&args, &result)?;
            println!("{}", jwt::report(&result));
            Ok(true)
        }
        "drive" => {
            let t = target("proxy", Protocol::Anthropic, args.need("url")?, &token);
            let n: u64 = args.num("n", 1000)?;
            let c: u64 = args.num("concurrency", 1)?;
            let ask = client::Ask::new(
                args.get("text").unwrap_or("emulator:chunks=10"),
                args.get("non-stream").is_none(),
            );
            let client = http_client();
            let (ok, errors) = runtime()?.block_on(async {
                let per = n / c.max(1);
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..c.max(1) {
                    let (client, t, ask) = (client.clone(), t.clone(), ask.clone());
                    set.spawn(async move {
                        let mut ok = 0u64;
                        for _ in 0..per {
                            ok += u64::from(client::send(&client, &t, &ask).await.ok());
                        }
                        (ok, per - ok)
                    });
                }
                let (mut ok, mut errors) = (0, 0);
                while let Some(Ok((o, e))) = set.join_next().await {
                    ok += o;
                    errors += e;
                }
                (ok, errors)
            });
            println!("{{\"ok\": {ok}, \"errors\": {errors}}}");
            Ok(errors == 0)
        }
        "report" => {
            if let Some(f) = args.get("compare") {
                println!("{}", compare::report(&read_json(f)?));
            }
            if let Some(f) = args.get("coldstart") {
                println!("{}", coldstart::report(&read_json(f)?));
            }
            if let Some(f) = args.get("load") {
                println!("{}", load::report(&read_json(f)?));
            }
            if let Some(f) = args.get("jwt") {
                println!("{}", jwt::report(&read_json(f)?));
            }
            Ok(true)
        }
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("proxy-bench: {e}");
            ExitCode::from(2)
        }
    }
}
