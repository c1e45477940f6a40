//! `proxy-bench coldstart`: exec → ready, measured from outside the process.
//!
//! Local mode: exec → the listen port accepts (polled with connect). Lambda mode: exec → the
//! first `GET /2018-06-01/runtime/invocation/next`, answered by a runtime-API stub here that
//! records the time and then holds the request, as Lambda does between invocations. Each
//! mode with a static token and with the token read from Secrets Manager (moto).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::stats::{num, ratio, summary};

/// Where the pieces are.
pub struct Setup {
    /// The proxy binary.
    pub proxy_bin: String,
    /// The emulator's URL.
    pub emulator: String,
    /// moto's URL, for the Secrets Manager variants.
    pub moto: Option<String>,
    /// Runs per mode.
    pub runs: usize,
    /// A command that starts LiteLLM's proxy, and the port it listens on, for comparison.
    pub litellm: Option<(String, u16)>,
    /// Runs of the LiteLLM start.
    pub litellm_runs: usize,
}

const SECRET_ID: &str = "bench/bearer-token";
const TOKEN: &str = "bench-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn base_command(setup: &Setup, secrets: bool) -> Command {
    let mut cmd = Command::new(&setup.proxy_bin);
    cmd.env_clear()
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &setup.emulator)
        .env("INFERENCE_PROFILE", "us")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match (&setup.moto, secrets) {
        (Some(moto), true) => {
            cmd.env("BEARER_TOKEN_SECRET_ID", SECRET_ID)
                .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto);
        }
        _ => {
            cmd.env("BEARER_TOKEN", TOKEN);
        }
    }
    cmd
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Exec → the port accepts a connection.
fn local_once(setup: &Setup, secrets: bool) -> Result<Duration, String> {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = base_command(setup, secrets);
    cmd.env("LISTEN_ADDR", addr.to_string());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let result = loop {
        if TcpStream::connect(addr).is_ok() {
            break Ok(started.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("the proxy exited with {status} before listening"));
        }
        if started.elapsed() > Duration::from_secs(10) {
            break Err("not listening after 10 s".into());
        }
        std::thread::sleep(Duration::from_micros(50));
    };
    stop(child);
    result
}

/// A runtime-API stub: reports (time, request line) of every request, never answers.
fn runtime_stub() -> std::io::Result<(u16, mpsc::Receiver<(Instant, String)>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let at = Instant::now();
                let line = String::from_utf8_lossy(&buf).lines().next().unwrap_or("").to_string();
                let _ = tx.send((at, line));
                // Hold the request open until the proxy is gone, like Lambda between events.
                while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
            });
        }
    });
    Ok((port, rx))
}

/// Exec → the first poll of the runtime API.
fn lambda_once(setup: &Setup, secrets: bool) -> Result<Duration, String> {
    let (port, polls) = runtime_stub().map_err(|e| format!("runtime stub: {e}"))?;
    let mut cmd = base_command(setup, secrets);
    cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "bedrock-anthropic-proxy")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bedrock-anthropic-proxy")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2025/01/01/[$LATEST]bench")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("_HANDLER", "bootstrap")
        .env("LAMBDA_TASK_ROOT", "/var/task");
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let result = match polls.recv_timeout(Duration::from_secs(10)) {
        Ok((at, line)) if line.starts_with("GET /2018-06-01/runtime/invocation/next") => Ok(at - started),
        Ok((_, line)) => Err(format!("first runtime-API call was {line:?}")),
        Err(_) => Err("no runtime-API poll within 10 s".into()),
    };
    stop(child);
    result
}

/// One Secrets Manager request on a new connection, as a starting process makes it.
fn secrets_call(moto: &str, target: &str, body: &str) -> Result<(Duration, String), String> {
    let hostport = moto.trim_start_matches("http://").trim_end_matches('/');
    let started = Instant::now();
    let mut conn = TcpStream::connect(hostport).map_err(|e| format!("connect {hostport}: {e}"))?;
    let _ = conn.set_nodelay(true);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {hostport}\r\nX-Amz-Target: secretsmanager.{target}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    // Done when the body is in (by Content-Length), not when the server gets round to closing.
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| response.len() >= end + 4 + n) {
                break;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((started.elapsed(), String::from_utf8_lossy(&response).into_owned()))
}

/// Creates the token secret in moto (once; an existing one is fine).
pub fn create_secret(moto: &str) -> Result<(), String> {
    let body = json!({ "Name": SECRET_ID, "SecretString": TOKEN }).to_string();
    let (_, response) = secrets_call(moto, "CreateSecret", &body)?;
    if response.starts_with("HTTP/1.1 200") || response.contains("ResourceExistsException") {
        Ok(())
    } else {
        Err(format!(
            "moto refused CreateSecret: {}",
            response.lines().next().unwrap_or("")
        ))
    }
}

/// Exec → LiteLLM's port accepts.
fn litellm_once(command: &str, port: u16) -> Result<Duration, String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let result = loop {
        if TcpStream::connect(addr).is_ok() {
            break Ok(started.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("litellm exited with {status} before listening"));
        }
        if started.elapsed() > Duration::from_secs(120) {
            break Err("litellm not listening after 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // SIGTERM first so uvicorn's workers go with it.
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return result;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(child);
    result
}

/// Runs every mode `runs` times, interleaved (after two unrecorded warm-up starts).
pub fn run(setup: &Setup) -> Value {
    type Once = fn(&Setup, bool) -> Result<Duration, String>;
    let mut modes: Vec<(&str, Once, bool)> = vec![("local", local_once, false), ("lambda", lambda_once, false)];
    if let Some(moto) = &setup.moto {
        match create_secret(moto) {
            Ok(()) => {
                modes.push(("local+secrets_manager", local_once, true));
                modes.push(("lambda+secrets_manager", lambda_once, true));
            }
            Err(e) => eprintln!("coldstart: {e}; skipping the Secrets Manager variants"),
        }
    }
    for _ in 0..2 {
        let _ = local_once(setup, false);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut errors: Vec<Vec<String>> = vec![Vec::new(); modes.len()];
    for round in 0..setup.runs {
        for k in 0..modes.len() {
            let i = (k + round) % modes.len();
            let (_, once, secrets) = modes[i];
            match once(setup, secrets) {
                Ok(d) => samples[i].push(d.as_secs_f64() * 1e3),
                Err(e) => errors[i].push(e),
            }
        }
    }
    let mut out = Map::new();
    for (i, (name, _, _)) in modes.iter().enumerate() {
        let mut s = summary(samples[i].clone());
        s["errors"] = json!(errors[i].len());
        s["first_error"] = json!(errors[i].first());
        out.insert(name.to_string(), s);
    }
    let mut rtt = Vec::new();
    if let Some(moto) = &setup.moto {
        let body = json!({ "SecretId": SECRET_ID }).to_string();
        for _ in 0..(setup.runs + 3) {
            if let Ok((d, _)) = secrets_call(moto, "GetSecretValue", &body) {
                rtt.push(d.as_secs_f64() * 1e3);
            }
        }
        rtt.drain(..rtt.len().min(3));
    }
    let mut litellm = Vec::new();
    let mut litellm_errors = Vec::new();
    if let Some((command, port)) = &setup.litellm {
        for _ in 0..setup.litellm_runs {
            match litellm_once(command, *port) {
                Ok(d) => litellm.push(d.as_secs_f64() * 1e3),
                Err(e) => litellm_errors.push(e),
            }
        }
    }
    json!({
        "exec_to_ready_ms": out,
        "secrets_manager_round_trip_ms": summary(rtt),
        "litellm_exec_to_listening_ms": {
            "summary": summary(litellm), "errors": litellm_errors,
        },
    })
}

/// The Markdown table of a `coldstart` result.
pub fn report(r: &Value) -> String {
    let mut s = String::from("| mode | p50 | p99 | n | errors | ×LiteLLM start (p50) |\n|---|---|---|---|---|---|\n");
    let l50 = num(r, "/litellm_exec_to_listening_ms/summary/p50");
    if let Some(obj) = r["exec_to_ready_ms"].as_object() {
        for (name, v) in obj {
            s.push_str(&format!(
                "| {name} | {:.2} ms | {:.2} ms | {} | {} | {} |\n",
                num(v, "/p50"),
                num(v, "/p99"),
                v["n"],
                v["errors"],
                ratio(num(v, "/p50"), l50)
            ));
        }
    }
    s.push_str(&format!(
        "| Secrets Manager round trip (moto, new connection) | {:.2} ms | {:.2} ms | {} | — | — |\n",
        num(r, "/secrets_manager_round_trip_ms/p50"),
        num(r, "/secrets_manager_round_trip_ms/p99"),
        r["secrets_manager_round_trip_ms"]["n"],
    ));
    s.push_str(&format!(
        "| LiteLLM proxy exec → listening | {:.0} ms | {:.0} ms | {} | {} | 1.00× |\n",
        l50,
        num(r, "/litellm_exec_to_listening_ms/summary/p99"),
        r["litellm_exec_to_listening_ms"]["summary"]["n"],
        r["litellm_exec_to_listening_ms"]["errors"]
            .as_array()
            .map_or(0, Vec::len),
    ));
    s
}
