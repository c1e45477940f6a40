# Shared by the scripts here: `source "$(dirname "$0")/lib.sh"` after `set -euo pipefail`.
# Step headings, free loopback ports, waiting for a server, and stopping every background
# process a script started when it exits (normally, on error or on Ctrl-C).

# A heading on stderr, so that scripts whose stdout is data (bench figures) stay parseable.
step() { printf '\n==> %s\n' "$*" >&2; }

# A loopback port nothing listens on right now. (Another process could take it before the
# caller binds it; for tests and benchmarks on one machine that race has not mattered.)
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_url URL SECONDS: until URL answers any HTTP status, or fail after SECONDS.
wait_url() {
  python3 - "$1" "${2:-30}" <<'PY'
import sys, time, urllib.error, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(url, timeout=max(0.1, deadline - time.monotonic()))
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answered
    except Exception:
        time.sleep(0.2)
sys.exit(f"{url} did not answer within {sys.argv[2]} s")
PY
}

# wait_port PORT SECONDS NAME: until something accepts connections on the loopback PORT.
wait_port() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): $3 is not listening on port $1 after $2 s" >&2
  return 1
}

# Background processes to stop on exit: `some-server & track $!`.
PIDS=()
track() { PIDS+=("$@"); }
stop_tracked() {
  local pid kid
  for pid in "${PIDS[@]}"; do
    # Servers that fork workers (LiteLLM's uvicorn) leave children behind their pid.
    for kid in $(pgrep -P "$pid" 2>/dev/null || true); do kill "$kid" 2>/dev/null || true; done
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_tracked EXIT
trap 'exit 130' INT TERM
