//! `proxy-bench compare`: the same requests over each path (direct, proxy, LiteLLM, and for
//! Bedrock's Anthropic Messages endpoint "Mantle" direct (mantle) and proxy (mantle)), in the
//! same run, interleaved: time to first delta, per-chunk forwarding delay, throughput at
//! several concurrencies with each server's CPU and memory, then a Markdown report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::task::JoinSet;

use crate::client::{send, Ask, HttpClient, Target};
use crate::procfs;
use crate::stats::{median, num, ratio, summary};

/// Directives of each workload (the same text goes to every path).
const TTFD_TEXT: &str = "Say hi. emulator:chunks=3";
const CHUNK_TEXT: &str = "Say hi. emulator:chunks=20 emulator:delay_ms=2 emulator:stamp";
/// Chunks per answer in the throughput runs.
pub const THROUGHPUT_CHUNKS: usize = 10;

/// The client speaking Mantle's SSE to the emulator itself.
pub const DIRECT_MANTLE: &str = "direct (mantle)";
/// The proxy started with `BEDROCK_API=mantle` (`proxy` is the same binary in InvokeModel mode).
pub const PROXY_MANTLE: &str = "proxy (mantle)";

/// The path a path's overhead is measured against: the client speaking the same Bedrock API
/// to the emulator itself (`direct (mantle)` for `proxy (mantle)` when it was measured,
/// `direct` for the rest).
fn baseline_of(name: &str, has_direct_mantle: bool) -> &'static str {
    if has_direct_mantle && name.ends_with("(mantle)") {
        DIRECT_MANTLE
    } else {
        "direct"
    }
}

fn is_direct(name: &str) -> bool {
    name.starts_with("direct")
}

/// A compared path and the server process behind it (none for `direct`: its server is the
/// emulator, which every path shares).
pub struct Path {
    /// How to reach it.
    pub target: Target,
    /// The server's pid, for CPU and memory.
    pub pid: Option<u32>,
}

/// What to run.
pub struct Plan {
    /// Paths, `direct` first.
    pub paths: Vec<Path>,
    /// The emulator's pid (its CPU is reported for context).
    pub emulator_pid: Option<u32>,
    /// Interleaved TTFD rounds (one request per path per round).
    pub ttfd_rounds: usize,
    /// Interleaved stamped-stream rounds.
    pub chunk_rounds: usize,
    /// Throughput rounds per (mode, concurrency); paths rotate within each.
    pub rounds: usize,
    /// Length of one throughput run.
    pub run_for: Duration,
    /// Concurrencies.
    pub concurrency: Vec<usize>,
}

fn rotated<T>(items: &[T], by: usize) -> impl Iterator<Item = &T> {
    let n = items.len();
    (0..n).map(move |i| &items[(i + by) % n])
}

/// Runs the plan and returns every figure as JSON.
///
/// Ordering: each latency round sends one request per path, in an order rotated by one each
/// round; each throughput (mode, concurrency) runs every path once per round, rotated the same
/// way. So drifting background load (other builds on the machine) falls on every path alike.
pub async fn run(client: &HttpClient, plan: &Plan) -> Value {
    let ticks = procfs::clock_ticks();
    let mut idle = Map::new();
    for p in &plan.paths {
        if let Some(pid) = p.pid {
            idle.insert(
                p.target.name.clone(),
                json!({ "rss_kb": procfs::tree_status(pid, "VmRSS"), "hwm_kb": procfs::tree_status(pid, "VmHWM") }),
            );
        }
    }

    eprintln!("compare: warm-up");
    for p in &plan.paths {
        for stream in [true, false] {
            let ask = Ask::new(TTFD_TEXT, stream);
            let (ok, errors, _, first) = load(client, &p.target, &ask, 4, Duration::from_millis(1500)).await;
            if ok == 0 {
                eprintln!(
                    "compare: {} answers nothing right ({errors} errors; first: {})",
                    p.target.name,
                    first.unwrap_or_default()
                );
            }
        }
    }

    eprintln!("compare: time to first delta, {} interleaved rounds", plan.ttfd_rounds);
    let mut ttfd: Vec<Vec<f64>> = vec![Vec::new(); plan.paths.len()];
    let mut ttfd_errors = vec![0usize; plan.paths.len()];
    let ask = Ask::new(TTFD_TEXT, true);
    for round in 0..plan.ttfd_rounds {
        for i in rotated(&(0..plan.paths.len()).collect::<Vec<_>>(), round).copied() {
            let o = send(client, &plan.paths[i].target, &ask).await;
            match (o.ok(), o.ttfd) {
                (true, Some(t)) => ttfd[i].push(t.as_secs_f64() * 1e6),
                _ => ttfd_errors[i] += 1,
            }
        }
    }

    eprintln!(
        "compare: per-chunk delay, {} interleaved stamped streams",
        plan.chunk_rounds
    );
    let mut chunks: Vec<Vec<f64>> = vec![Vec::new(); plan.paths.len()];
    let mut chunk_errors = vec![0usize; plan.paths.len()];
    let ask = Ask::new(CHUNK_TEXT, true);
    for round in 0..plan.chunk_rounds {
        for i in rotated(&(0..plan.paths.len()).collect::<Vec<_>>(), round).copied() {
            let o = send(client, &plan.paths[i].target, &ask).await;
            if o.ok() {
                chunks[i].extend(o.chunk_delays_us.iter().map(|&d| d as f64));
            } else {
                chunk_errors[i] += 1;
            }
        }
    }

    let mut throughput = Vec::new();
    for stream in [true, false] {
        let ask = Ask::new(format!("Say hi. emulator:chunks={THROUGHPUT_CHUNKS}"), stream);
        for &c in &plan.concurrency {
            let mut per_path: Vec<Vec<Value>> = vec![Vec::new(); plan.paths.len()];
            for round in 0..plan.rounds {
                for i in rotated(&(0..plan.paths.len()).collect::<Vec<_>>(), round).copied() {
                    let p = &plan.paths[i];
                    eprintln!(
                        "compare: throughput {} c={c} round {} {}",
                        if stream { "stream" } else { "non-stream" },
                        round + 1,
                        p.target.name
                    );
                    let run = measured_load(client, p, plan.emulator_pid, &ask, c, plan.run_for, ticks).await;
                    per_path[i].push(run);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            for (i, runs) in per_path.into_iter().enumerate() {
                let sum = |k: &str| runs.iter().map(|r| num(r, k)).sum::<f64>();
                let ok = sum("/ok");
                throughput.push(json!({
                    "path": plan.paths[i].target.name,
                    "stream": stream,
                    "concurrency": c,
                    "rps_median": median(runs.iter().map(|r| num(r, "/rps")).collect()),
                    "ok": ok,
                    "errors": sum("/errors"),
                    "first_error": runs.iter().find_map(|r| r["first_error"].as_str().map(String::from)),
                    "cpu_us_per_request": sum("/cpu_s") / ok * 1e6,
                    "emulator_cpu_us_per_request": sum("/emulator_cpu_s") / ok * 1e6,
                    "rss_max_kb": runs.iter().map(|r| num(r, "/rss_max_kb")).fold(0.0, f64::max),
                    "runs": runs,
                }));
            }
        }
    }

    let mut peak = Map::new();
    for p in &plan.paths {
        if let Some(pid) = p.pid {
            peak.insert(
                p.target.name.clone(),
                json!({ "hwm_kb": procfs::tree_status(pid, "VmHWM"), "rss_kb": procfs::tree_status(pid, "VmRSS") }),
            );
        }
    }

    let names: Vec<&str> = plan.paths.iter().map(|p| p.target.name.as_str()).collect();
    let by_name = |v: Vec<Value>| -> Value { names.iter().zip(v).map(|(n, v)| (n.to_string(), v)).collect() };
    json!({
        "workloads": {
            "ttfd": TTFD_TEXT, "chunk": CHUNK_TEXT,
            "throughput": format!("emulator:chunks={THROUGHPUT_CHUNKS}"),
            "throughput_seconds_per_run": plan.run_for.as_secs_f64(), "rounds": plan.rounds,
        },
        "idle": idle,
        "ttfd_us": by_name(ttfd.into_iter().zip(ttfd_errors).map(|(v, e)| {
            let mut s = summary(v);
            s["errors"] = json!(e);
            s
        }).collect()),
        "chunk_delay_us": by_name(chunks.into_iter().zip(chunk_errors).map(|(v, e)| {
            let mut s = summary(v);
            s["errors"] = json!(e);
            s
        }).collect()),
        "throughput": throughput,
        "peak": peak,
    })
}

/// One throughput run with the server's CPU and memory read around and during it.
async fn measured_load(
    client: &HttpClient,
    path: &Path,
    emulator_pid: Option<u32>,
    ask: &Ask,
    concurrency: usize,
    run_for: Duration,
    ticks: f64,
) -> Value {
    let cpu = |pid: Option<u32>| pid.map(|p| procfs::cpu_seconds(p, ticks)).unwrap_or(f64::NAN);
    let (cpu0, emu0) = (cpu(path.pid), cpu(emulator_pid));
    let stop = Arc::new(AtomicBool::new(false));
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = path.pid.map(|pid| {
        let (stop, rss_max) = (stop.clone(), rss_max.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                rss_max.fetch_max(procfs::tree_status(pid, "VmRSS"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let (ok, errors, elapsed, first_error) = load(client, &path.target, ask, concurrency, run_for).await;
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.await;
    }
    if let Some(pid) = path.pid {
        rss_max.fetch_max(procfs::tree_status(pid, "VmRSS"), Ordering::Relaxed);
    }
    json!({
        "ok": ok, "errors": errors, "seconds": elapsed.as_secs_f64(),
        "rps": ok as f64 / elapsed.as_secs_f64(),
        "cpu_s": cpu(path.pid) - cpu0,
        "emulator_cpu_s": cpu(emulator_pid) - emu0,
        "rss_max_kb": rss_max.load(Ordering::Relaxed),
        "first_error": first_error,
    })
}

/// `concurrency` callers sending `ask` back to back until `run_for` has passed; requests in
/// flight at the deadline finish and count.
pub async fn load(
    client: &HttpClient,
    target: &Target,
    ask: &Ask,
    concurrency: usize,
    run_for: Duration,
) -> (u64, u64, Duration, Option<String>) {
    let started = Instant::now();
    let deadline = started + run_for;
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let (client, target, ask) = (client.clone(), target.clone(), ask.clone());
        set.spawn(async move {
            let (mut ok, mut errors, mut first) = (0u64, 0u64, None);
            while Instant::now() < deadline {
                let o = send(&client, &target, &ask).await;
                if o.ok() {
                    ok += 1;
                } else {
                    errors += 1;
                    first.get_or_insert_with(|| describe_failure(&o));
                }
            }
            (ok, errors, first)
        });
    }
    let (mut ok, mut errors, mut first) = (0, 0, None);
    while let Some(Ok((o, e, f))) = set.join_next().await {
        ok += o;
        errors += e;
        first = first.or(f);
    }
    (ok, errors, started.elapsed(), first)
}

/// A one-line reason a request did not count as a success.
pub fn describe_failure(o: &crate::client::Outcome) -> String {
    match &o.failure {
        Some(f) => f.clone(),
        None => format!(
            "status {} complete={} error_event={} events={}",
            o.status, o.complete, o.error_event, o.events
        ),
    }
}

fn fmt_us(us: f64) -> String {
    if !us.is_finite() {
        "n/a".into()
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.0} µs", us)
    }
}

/// A figure of one path in a `compare` result (`r[key][path][field]`), NaN when absent.
fn fig(r: &Value, key: &str, path: &str, field: &str) -> f64 {
    r[key][path][field].as_f64().unwrap_or(f64::NAN)
}

/// A difference in µs with its sign (`+45 µs`, `−323 µs`).
fn fmt_delta_us(us: f64) -> String {
    if us < 0.0 {
        format!("−{}", fmt_us(-us))
    } else {
        format!("+{}", fmt_us(us))
    }
}

/// The Markdown tables of a `compare` result: each figure with its ratio to direct (the client
/// speaking the same Bedrock API to the emulator) and to LiteLLM.
pub fn report(r: &Value) -> String {
    let mut s = String::new();
    let has_litellm = r["ttfd_us"].get("litellm").is_some();
    let has_direct_mantle = r["ttfd_us"].get(DIRECT_MANTLE).is_some();
    let lite = |x: f64, l: f64| if has_litellm { ratio(x, l) } else { "n/a".into() };
    let baseline = |name: &str| baseline_of(name, has_direct_mantle);

    if r["ttfd_us"].get(PROXY_MANTLE).is_some() {
        s.push_str(&invoke_vs_mantle(r));
    }

    s.push_str("### Latency (c=1, interleaved)\n\n");
    if has_direct_mantle {
        s.push_str("\"direct\" for the Mantle paths is `direct (mantle)`.\n\n");
    }
    s.push_str("| figure | path | p50 | p99 | n | errors | p50 over direct | p50 ×direct | p50 ×LiteLLM |\n|---|---|---|---|---|---|---|---|---|\n");
    for (key, label) in [
        ("ttfd_us", "time to first delta"),
        ("chunk_delay_us", "per-chunk delay"),
    ] {
        let l50 = num(&r[key], "/litellm/p50");
        if let Some(obj) = r[key].as_object() {
            for (name, v) in obj {
                let p50 = num(v, "/p50");
                let d50 = fig(r, key, baseline(name), "p50");
                s.push_str(&format!(
                    "| {label} | {name} | {} | {} | {} | {} | {} | {} | {} |\n",
                    fmt_us(p50),
                    fmt_us(num(v, "/p99")),
                    v["n"],
                    v["errors"],
                    if is_direct(name) {
                        "—".into()
                    } else {
                        fmt_delta_us(p50 - d50)
                    },
                    ratio(p50, d50),
                    lite(p50, l50),
                ));
            }
        }
    }

    s.push_str(&format!(
        "\n### Throughput ({} s runs × {} rounds, paths rotated; {} chunks per answer)\n\n",
        num(r, "/workloads/throughput_seconds_per_run"),
        r["workloads"]["rounds"],
        THROUGHPUT_CHUNKS
    ));
    s.push_str("| mode | c | path | req/s (median) | ×direct | ×LiteLLM | errors | server CPU µs/req | emulator CPU µs/req | server RSS max |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let rows = r["throughput"].as_array().cloned().unwrap_or_default();
    let find = |stream: bool, c: u64, name: &str| {
        rows.iter()
            .find(|t| t["stream"] == stream && t["concurrency"] == c && t["path"] == name)
            .map(|t| num(t, "/rps_median"))
            .unwrap_or(f64::NAN)
    };
    for t in &rows {
        let (stream, c) = (
            t["stream"].as_bool().unwrap_or(false),
            t["concurrency"].as_u64().unwrap_or(0),
        );
        let rps = num(t, "/rps_median");
        let name = t["path"].as_str().unwrap_or("");
        let rss = num(t, "/rss_max_kb");
        s.push_str(&format!(
            "| {} | {c} | {name} | {:.0} | {} | {} | {:.0} | {} | {:.0} | {} |\n",
            if stream { "stream" } else { "non-stream" },
            rps,
            ratio(rps, find(stream, c, baseline(name))),
            lite(rps, find(stream, c, "litellm")),
            num(t, "/errors"),
            if is_direct(name) {
                "—".into()
            } else {
                format!("{:.0}", num(t, "/cpu_us_per_request"))
            },
            num(t, "/emulator_cpu_us_per_request"),
            if rss > 0.0 {
                format!("{:.1} MB", rss / 1024.0)
            } else {
                "—".into()
            },
        ));
    }

    s.push_str("\n### Memory (server process tree)\n\n| path | idle RSS | idle VmHWM | VmHWM after all runs | ×LiteLLM (peak) |\n|---|---|---|---|---|\n");
    let l_peak = num(&r["peak"], "/litellm/hwm_kb");
    if let Some(obj) = r["idle"].as_object() {
        for (name, v) in obj {
            let peak = num(&r["peak"][name], "/hwm_kb");
            s.push_str(&format!(
                "| {name} | {:.1} MB | {:.1} MB | {:.1} MB | {} |\n",
                num(v, "/rss_kb") / 1024.0,
                num(v, "/hwm_kb") / 1024.0,
                peak / 1024.0,
                lite(peak, l_peak),
            ));
        }
    }
    s
}

/// The InvokeModel-vs-Mantle table: the proxy in both modes next to the client speaking each
/// API to the emulator itself, and the proxy's Mantle figure as a multiple of its InvokeModel one.
fn invoke_vs_mantle(r: &Value) -> String {
    let rows = r["throughput"].as_array().cloned().unwrap_or_default();
    let run = |stream: bool, c: u64, name: &str, field: &str| {
        rows.iter()
            .find(|t| t["stream"] == stream && t["concurrency"] == c && t["path"] == name)
            .map(|t| num(t, field))
            .unwrap_or(f64::NAN)
    };
    let mut concurrency: Vec<u64> = rows.iter().filter_map(|t| t["concurrency"].as_u64()).collect();
    concurrency.sort_unstable();
    concurrency.dedup();

    let mut s = String::from(
        "### InvokeModel vs Mantle (interleaved in the same run)\n\n\
         | figure | direct | proxy (invoke) | invoke: proxy over direct | direct (mantle) | proxy (mantle) | \
         mantle: proxy over direct | proxy: mantle ×invoke |\n|---|---|---|---|---|---|---|---|\n",
    );
    let names = ["direct", "proxy", DIRECT_MANTLE, PROXY_MANTLE];
    for (key, label) in [
        ("ttfd_us", "time to first delta"),
        ("chunk_delay_us", "per-chunk delay"),
    ] {
        for q in ["p50", "p99"] {
            let [d, p, dm, pm] = names.map(|n| fig(r, key, n, q));
            s.push_str(&format!(
                "| {label} {q} (c=1) | {} | {} | {} | {} | {} | {} | {} |\n",
                fmt_us(d),
                fmt_us(p),
                fmt_delta_us(p - d),
                fmt_us(dm),
                fmt_us(pm),
                fmt_delta_us(pm - dm),
                ratio(pm, p),
            ));
        }
    }
    for stream in [true, false] {
        let mode = if stream { "streamed" } else { "non-streaming" };
        for &c in &concurrency {
            let [p, pm] = ["proxy", PROXY_MANTLE].map(|n| run(stream, c, n, "/cpu_us_per_request"));
            let [e, em] = ["proxy", PROXY_MANTLE].map(|n| run(stream, c, n, "/emulator_cpu_us_per_request"));
            s.push_str(&format!(
                "| proxy CPU per {mode} request, c={c} (emulator's) | — ({e:.0} µs) | **{p:.0} µs** | — | — ({em:.0} µs) | **{pm:.0} µs** | — | **{}** |\n",
                ratio(pm, p),
            ));
        }
        for &c in &concurrency {
            let [d, p, dm, pm] = names.map(|n| run(stream, c, n, "/rps_median"));
            s.push_str(&format!(
                "| {mode} req/s, c={c} | {d:.0} | {p:.0} | {} | {dm:.0} | {pm:.0} | {} | {} |\n",
                ratio(p, d),
                ratio(pm, dm),
                ratio(pm, p),
            ));
        }
    }
    let errors: f64 = rows
        .iter()
        .filter(|t| t["path"] == PROXY_MANTLE || t["path"] == DIRECT_MANTLE)
        .map(|t| num(t, "/errors"))
        .sum::<f64>()
        + [DIRECT_MANTLE, PROXY_MANTLE]
            .iter()
            .flat_map(|n| [fig(r, "ttfd_us", n, "errors"), fig(r, "chunk_delay_us", n, "errors")])
            .filter(|e| e.is_finite())
            .sum::<f64>();
    s.push_str(&format!(
        "\nThe emulator's CPU per request (in brackets) is the same emulator answering the same \
         request as event-stream frames or as SSE. Failed requests on the Mantle paths: {errors:.0}.\n\n"
    ));
    s
}
