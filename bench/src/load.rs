//! `proxy-bench load`: a bounded soak of mixed traffic (complete streams, non-streaming calls,
//! throttling errors, mid-stream cuts and exceptions, callers that leave mid-stream or before
//! the first event), then a burst of N concurrent streams; before and after each, the proxy's
//! connections, descriptors, threads and memory, and the emulator's open streams.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::client::{http_client, send, Ask, HttpClient, Outcome, Target};
use crate::compare::describe_failure;
use crate::procfs::{self, connection_counts};

/// What to run against which proxy.
pub struct LoadPlan {
    /// The proxy (local mode).
    pub proxy: Target,
    /// Its pid.
    pub pid: u32,
    /// The port it listens on.
    pub listen_port: u16,
    /// The emulator's URL and port.
    pub emulator: String,
    /// The emulator's port (to tell upstream sockets from others).
    pub emulator_port: u16,
    /// Streams in the burst.
    pub concurrent: usize,
    /// Soak length.
    pub soak: Duration,
    /// Concurrent callers during the soak.
    pub soak_workers: usize,
    /// The memory ceiling checked (bytes).
    pub rss_limit_kb: u64,
}

/// A tiny deterministic PRNG (xorshift), so a soak's mix is reproducible per worker.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The kinds of soak traffic, their weights, and what counts as the right outcome.
const KINDS: &[(&str, u64)] = &[
    ("stream", 35),
    ("non_stream", 15),
    ("throttled", 10),
    ("cut_mid_stream", 10),
    ("exception_mid_stream", 10),
    ("client_gone_mid_stream", 15),
    ("client_gone_before_first_event", 5),
];

fn pick(rng: &mut Rng) -> (&'static str, Ask) {
    let total: u64 = KINDS.iter().map(|(_, w)| w).sum();
    let mut roll = rng.below(total);
    let mut kind = KINDS[0].0;
    for (name, weight) in KINDS {
        if roll < *weight {
            kind = name;
            break;
        }
        roll -= weight;
    }
    let ask = match kind {
        "stream" => Ask::new(
            format!(
                "emulator:chunks={} emulator:delay_ms={}",
                1 + rng.below(40),
                rng.below(4)
            ),
            true,
        ),
        "non_stream" => Ask::new(format!("emulator:chunks={}", 1 + rng.below(20)), false),
        "throttled" => Ask::new("emulator:error=ThrottlingException", rng.below(2) == 0),
        "cut_mid_stream" => Ask::new(
            format!("emulator:chunks=20 emulator:cut_after={}", 1 + rng.below(15)),
            true,
        ),
        "exception_mid_stream" => Ask::new(
            format!(
                "emulator:chunks=20 emulator:stream_exception_after={}:throttlingException",
                1 + rng.below(15)
            ),
            true,
        ),
        "client_gone_mid_stream" => Ask {
            drop_after_events: Some(1 + rng.below(10) as usize),
            ..Ask::new("emulator:chunks=60 emulator:delay_ms=5", true)
        },
        _ => Ask {
            drop_after_events: Some(usize::MAX),
            timeout: Duration::from_millis(50 + rng.below(100)),
            ..Ask::new("emulator:first_delay_ms=400", true)
        },
    };
    (kind, ask)
}

fn expected(kind: &str, o: &Outcome) -> bool {
    match kind {
        "stream" | "non_stream" => o.ok(),
        "throttled" => o.status == 429 && o.failure.is_none(),
        "cut_mid_stream" | "exception_mid_stream" => {
            o.status == 200 && o.error_event && !o.complete && o.failure.is_none()
        }
        "client_gone_mid_stream" => o.status == 200 && o.dropped && !o.complete,
        _ => o.dropped && o.status == 0,
    }
}

async fn emulator_stats(client: &HttpClient, emulator: &str) -> Value {
    let Ok(uri) = format!("{emulator}/_emulator/stats").parse::<hyper::Uri>() else {
        return Value::Null;
    };
    let Ok(response) = client.get(uri).await else {
        return Value::Null;
    };
    match response.into_body().collect().await {
        Ok(body) => serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn snapshot(plan: &LoadPlan, stats_client: &HttpClient) -> Value {
    let mut s = connection_counts(plan.pid, plan.listen_port, plan.emulator_port);
    s["emulator"] = emulator_stats(stats_client, &plan.emulator).await;
    s
}

/// Runs the soak and the burst, and returns figures and checks.
pub async fn run(plan: &LoadPlan) -> Value {
    let stats_client = http_client();
    let baseline = snapshot(plan, &stats_client).await;
    eprintln!("load: baseline {baseline}");

    // The soak, on its own client so that dropping it closes every caller connection.
    eprintln!("load: soak for {:?} with {} callers", plan.soak, plan.soak_workers);
    let soak_client = http_client();
    let started = Instant::now();
    let deadline = started + plan.soak;
    let mut set = JoinSet::new();
    for worker in 0..plan.soak_workers {
        let (client, target) = (soak_client.clone(), plan.proxy.clone());
        set.spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
            let mut counts: Vec<(u64, u64, Option<String>)> = vec![(0, 0, None); KINDS.len()];
            while Instant::now() < deadline {
                let (kind, ask) = pick(&mut rng);
                let o = send(&client, &target, &ask).await;
                let i = KINDS.iter().position(|(k, _)| *k == kind).unwrap_or(0);
                counts[i].0 += 1;
                if !expected(kind, &o) {
                    counts[i].1 += 1;
                    counts[i].2.get_or_insert_with(|| describe_failure(&o));
                }
                tokio::time::sleep(Duration::from_millis(rng.below(10))).await;
            }
            counts
        });
    }
    let mut timeline = Vec::new();
    let mut finished: Vec<Vec<(u64, u64, Option<String>)>> = Vec::new();
    let mut next_sample = Instant::now();
    while !set.is_empty() {
        if Instant::now() >= next_sample {
            let mut s = snapshot(plan, &stats_client).await;
            s["t_s"] = json!(started.elapsed().as_secs());
            timeline.push(s);
            next_sample += Duration::from_secs(15);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            done = set.join_next() => {
                if done.is_none() { break; }
                if let Some(Ok(counts)) = done {
                    finished.push(counts);
                }
            }
        }
    }
    let soak_seconds = started.elapsed().as_secs_f64();
    let mut per_kind = Vec::new();
    let mut totals = vec![(0u64, 0u64, None::<String>); KINDS.len()];
    for counts in finished {
        for (total, (n, bad, first)) in totals.iter_mut().zip(counts) {
            total.0 += n;
            total.1 += bad;
            total.2 = total.2.take().or(first);
        }
    }
    let (mut requests, mut unexpected) = (0, 0);
    for (i, (kind, _)) in KINDS.iter().enumerate() {
        let (n, bad, first) = &totals[i];
        requests += n;
        unexpected += bad;
        per_kind.push(json!({ "kind": kind, "requests": n, "unexpected": bad, "first_unexpected": first }));
    }
    drop(soak_client);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_soak = snapshot(plan, &stats_client).await;
    eprintln!("load: after soak {after_soak}");

    eprintln!("load: burst of {} concurrent streams", plan.concurrent);
    let burst = burst(plan, &stats_client).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_burst = snapshot(plan, &stats_client).await;
    eprintln!("load: after burst {after_burst}");

    let n = |v: &Value, k: &str| v.pointer(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
    let hwm = procfs::status_value(plan.pid, "VmHWM").unwrap_or(u64::MAX);
    let checks = vec![
        check(
            "soak: every request ended as its kind should",
            unexpected == 0,
            format!("{unexpected} of {requests} unexpected"),
        ),
        check(
            "soak: emulator open_streams = 0 after",
            n(&after_soak, "/emulator/open_streams") == 0,
            after_soak["emulator"].to_string(),
        ),
        check(
            "soak: no caller connection left open",
            n(&after_soak, "/inbound_established") == 0,
            format!("{}", after_soak["inbound_established"]),
        ),
        check(
            "soak: no socket in CLOSE_WAIT",
            n(&after_soak, "/close_wait") == 0,
            format!("{}", after_soak["close_wait"]),
        ),
        check(
            "soak: idle upstream connections ≤ soak callers (pool bounded by concurrency, not by requests)",
            n(&after_soak, "/upstream_established") <= plan.soak_workers as u64,
            format!("{} ≤ {}", after_soak["upstream_established"], plan.soak_workers),
        ),
        check(
            "soak: threads unchanged",
            after_soak["threads"] == baseline["threads"],
            format!("{} → {}", baseline["threads"], after_soak["threads"]),
        ),
        check(
            &format!(
                "burst: {} concurrent streams all end with message_stop",
                plan.concurrent
            ),
            burst["ok"] == plan.concurrent && burst["errors"] == 0,
            format!(
                "ok {} errors {} (first: {})",
                burst["ok"], burst["errors"], burst["first_error"]
            ),
        ),
        check(
            &format!("burst: emulator saw all {} streams open at once", plan.concurrent),
            burst["emulator_open_streams_max"].as_u64() == Some(plan.concurrent as u64),
            format!("max open_streams {}", burst["emulator_open_streams_max"]),
        ),
        check(
            "burst: emulator open_streams = 0 after",
            n(&after_burst, "/emulator/open_streams") == 0,
            after_burst["emulator"].to_string(),
        ),
        check(
            &format!("peak RSS (VmHWM, whole run) < {} MB", plan.rss_limit_kb / 1024),
            hwm < plan.rss_limit_kb,
            format!("{:.1} MB", hwm as f64 / 1024.0),
        ),
    ];
    let passed = checks.iter().all(|c| c["pass"] == true);
    json!({
        "passed": passed,
        "checks": checks,
        "baseline": baseline,
        "soak": {
            "seconds": soak_seconds, "callers": plan.soak_workers, "requests": requests,
            "unexpected": unexpected, "per_kind": per_kind, "timeline": timeline,
        },
        "after_soak": after_soak,
        "burst": burst,
        "after_burst": after_burst,
        "vm_hwm_kb": hwm,
    })
}

fn check(name: &str, pass: bool, detail: String) -> Value {
    json!({ "check": name, "pass": pass, "detail": detail })
}

/// N streams started together, each long enough (40 deltas, 25 ms apart) to overlap all others.
async fn burst(plan: &LoadPlan, stats_client: &HttpClient) -> Value {
    let client = http_client();
    let ask = Ask::new("emulator:chunks=40 emulator:delay_ms=25", true);
    let stop = Arc::new(AtomicBool::new(false));
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, rss_max, pid) = (stop.clone(), rss_max.clone(), plan.pid);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                rss_max.fetch_max(procfs::status_value(pid, "VmRSS").unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..plan.concurrent {
        let (client, target, ask) = (client.clone(), plan.proxy.clone(), ask.clone());
        set.spawn(async move { send(&client, &target, &ask).await });
    }
    let mut open_max = 0;
    let mut inbound_max = 0;
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    let mut totals = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                let stats = emulator_stats(stats_client, &plan.emulator).await;
                open_max = open_max.max(stats["open_streams"].as_u64().unwrap_or(0));
                let conns = connection_counts(plan.pid, plan.listen_port, plan.emulator_port);
                inbound_max = inbound_max.max(conns["inbound_established"].as_u64().unwrap_or(0));
            }
            done = set.join_next() => match done {
                None => break,
                Some(Ok(o)) => {
                    totals.push(o.total.as_secs_f64() * 1e3);
                    if o.ok() { ok += 1 } else {
                        errors += 1;
                        first_error.get_or_insert_with(|| describe_failure(&o));
                    }
                }
                Some(Err(e)) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            },
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    json!({
        "streams": plan.concurrent, "ok": ok, "errors": errors, "first_error": first_error,
        "seconds": started.elapsed().as_secs_f64(),
        "stream_ms": crate::stats::summary(totals),
        "emulator_open_streams_max": open_max,
        "proxy_inbound_connections_max": inbound_max,
        "proxy_rss_max_kb": rss_max.load(Ordering::Relaxed),
    })
}

/// The Markdown summary of a `load` result.
pub fn report(r: &Value) -> String {
    let mut s = String::new();
    let mb = |v: &Value| format!("{:.1} MB", v.as_f64().unwrap_or(f64::NAN) / 1024.0);
    s.push_str("| | baseline (fresh) | after soak (+3 s) | after burst (+3 s) |\n|---|---|---|---|\n");
    for (label, key) in [
        ("caller connections (ESTABLISHED)", "/inbound_established"),
        (
            "upstream connections to the emulator (ESTABLISHED)",
            "/upstream_established",
        ),
        ("sockets in CLOSE_WAIT", "/close_wait"),
        ("TCP sockets, all", "/tcp_sockets"),
        ("file descriptors", "/fds"),
        ("threads", "/threads"),
        ("emulator open_streams", "/emulator/open_streams"),
    ] {
        let g = |snap: &str| r[snap].pointer(key).cloned().unwrap_or(Value::Null).to_string();
        s.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            g("baseline"),
            g("after_soak"),
            g("after_burst")
        ));
    }
    s.push_str(&format!(
        "| RSS (VmRSS) | {} | {} | {} |\n| VmHWM | {} | {} | {} |\n\n",
        mb(&r["baseline"]["rss_kb"]),
        mb(&r["after_soak"]["rss_kb"]),
        mb(&r["after_burst"]["rss_kb"]),
        mb(&r["baseline"]["hwm_kb"]),
        mb(&r["after_soak"]["hwm_kb"]),
        mb(&r["after_burst"]["hwm_kb"]),
    ));
    s.push_str(&format!(
        "Soak: {:.0} s, {} callers, {} requests.\n\n",
        r["soak"]["seconds"].as_f64().unwrap_or(0.0),
        r["soak"]["callers"],
        r["soak"]["requests"]
    ));
    let timeline: Vec<&Value> = r["soak"]["timeline"].as_array().into_iter().flatten().collect();
    if let (Some(first), Some(last)) = (timeline.iter().find(|t| t["t_s"].as_u64() >= Some(15)), timeline.last()) {
        s.push_str(&format!(
            "Sampled every 15 s during the soak: RSS {} at {} s → {} at {} s; upstream connections {} → {}; \
             emulator open_streams (in flight) {} → {}.\n\n",
            mb(&first["rss_kb"]),
            first["t_s"],
            mb(&last["rss_kb"]),
            last["t_s"],
            first["upstream_established"],
            last["upstream_established"],
            first["emulator"]["open_streams"],
            last["emulator"]["open_streams"],
        ));
    }
    s.push_str("| kind | requests | unexpected outcome |\n|---|---|---|\n");
    for k in r["soak"]["per_kind"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            k["kind"].as_str().unwrap_or(""),
            k["requests"],
            k["unexpected"]
        ));
    }
    let b = &r["burst"];
    s.push_str(&format!(
        "\nBurst: {} streams at once: {} ok, {} errors; emulator open_streams max {}; proxy caller connections max {}; \
         stream duration p50 {:.0} ms, p99 {:.0} ms; proxy RSS max during the burst {}.\n\n",
        b["streams"], b["ok"], b["errors"], b["emulator_open_streams_max"], b["proxy_inbound_connections_max"],
        b["stream_ms"]["p50"].as_f64().unwrap_or(f64::NAN), b["stream_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        mb(&b["proxy_rss_max_kb"]),
    ));
    s.push_str("| check | result | detail |\n|---|---|---|\n");
    for c in r["checks"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            c["check"].as_str().unwrap_or(""),
            if c["pass"] == true { "pass" } else { "**FAIL**" },
            c["detail"].as_str().unwrap_or("")
        ));
    }
    s
}
