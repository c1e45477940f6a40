//! What `/proc` says about a server process and its children: CPU seconds, resident memory,
//! threads, file descriptors, and its TCP sockets by state and peer port.

use std::collections::{HashMap, HashSet};
use std::fs;

/// Clock ticks per second for `/proc/<pid>/stat` times (`getconf CLK_TCK`, nearly always 100).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 is index 0).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    Some(after.split_whitespace().map(String::from).collect())
}

/// `pid` and all its descendants (LiteLLM may run worker processes).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(parent) = stat_fields(child).and_then(|f| f.get(1).and_then(|p| p.parse().ok())) {
                children.entry(parent).or_default().push(child);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// User + system CPU seconds of `pid` and its descendants.
pub fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    tree(pid)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| {
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            n(11) + n(12)
        })
        .sum::<f64>()
        / ticks
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) or a count (`Threads`).
pub fn status_value(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Sum of `key` over `pid` and its descendants.
pub fn tree_status(pid: u32, key: &str) -> u64 {
    tree(pid).into_iter().filter_map(|p| status_value(p, key)).sum()
}

/// Number of open file descriptors.
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// One TCP socket the process holds.
#[derive(Debug, Clone)]
pub struct Socket {
    /// Local port.
    pub local_port: u16,
    /// Peer port (0 for a listener).
    pub remote_port: u16,
    /// `ESTABLISHED`, `CLOSE_WAIT`, `LISTEN`, ...
    pub state: &'static str,
}

fn state_name(hex: &str) -> &'static str {
    match hex {
        "01" => "ESTABLISHED",
        "02" => "SYN_SENT",
        "03" => "SYN_RECV",
        "04" => "FIN_WAIT1",
        "05" => "FIN_WAIT2",
        "06" => "TIME_WAIT",
        "07" => "CLOSE",
        "08" => "CLOSE_WAIT",
        "09" => "LAST_ACK",
        "0A" => "LISTEN",
        "0B" => "CLOSING",
        _ => "OTHER",
    }
}

/// The TCP sockets among the process's file descriptors, matched by inode in `/proc/net/tcp*`.
pub fn sockets(pid: u32) -> Vec<Socket> {
    let mut inodes = HashSet::new();
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            if let Ok(link) = fs::read_link(entry.path()) {
                let link = link.to_string_lossy();
                if let Some(inode) = link.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && inodes.contains(f[9]) {
                out.push(Socket {
                    local_port: port(f[1]),
                    remote_port: port(f[2]),
                    state: state_name(f[3]),
                });
            }
        }
    }
    out
}

/// Counts of a proxy's sockets: callers' connections to `listen_port`, connections to the
/// upstream at `upstream_port`, and any in `CLOSE_WAIT` (the peer hung up, we never closed).
pub fn connection_counts(pid: u32, listen_port: u16, upstream_port: u16) -> serde_json::Value {
    let socks = sockets(pid);
    let count = |f: &dyn Fn(&Socket) -> bool| socks.iter().filter(|s| f(s)).count();
    serde_json::json!({
        "inbound_established": count(&|s| s.local_port == listen_port && s.state == "ESTABLISHED"),
        "upstream_established": count(&|s| s.remote_port == upstream_port && s.state == "ESTABLISHED"),
        "close_wait": count(&|s| s.state == "CLOSE_WAIT"),
        "tcp_sockets": socks.len(),
        "fds": fd_count(pid),
        "threads": status_value(pid, "Threads").unwrap_or(0),
        "rss_kb": status_value(pid, "VmRSS").unwrap_or(0),
        "hwm_kb": status_value(pid, "VmHWM").unwrap_or(0),
    })
}
