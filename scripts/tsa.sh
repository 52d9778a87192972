#!/usr/bin/env bash
# Start/stop the local test time-stamping authority (scripts/tsa-server.py).
#
#   usage: scripts/tsa.sh start DIR PKI_DIR    start (or reuse) a TSA rooted in DIR
#          scripts/tsa.sh stop DIR             stop the TSA whose PID is in DIR/tsa.pid
#
# start writes, once /health answers (bounded wait, 10 s):
#   DIR/tsa.pid   server PID          DIR/tsa.port  its port on 127.0.0.1
#   DIR/tsa.env   "export CODESEAL_TSA_URL=http://127.0.0.1:PORT"
#   DIR/tsa.log   server log (stderr), DIR/tsa-work/ scratch for openssl
# and prints the URL. start is idempotent: a live, healthy server recorded in DIR
# is reused. stop kills only the PID from DIR/tsa.pid (SIGTERM, then SIGKILL after
# 5 s) and removes the pid/port/env files.
# Env: CODESEAL_VENV (default ~/.cache/codeseal/venv), TSA_PORT (default 0 = any),
#      TSA_SLOW_SECONDS (default 30).
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}"
PY="$VENV/bin/python"

usage() { echo "usage: $0 start DIR PKI_DIR | stop DIR" >&2; exit 2; }
die() { echo "tsa.sh: $*" >&2; exit 1; }

healthy() { # healthy PORT
  "$PY" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as r:
    sys.exit(0 if r.status == 200 and r.read().strip() == b"ok" else 1)
EOF
}

# Is PID alive and actually our server (not a recycled PID)?
ours() { # ours PID
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'tsa-server\.py'
}

cmd="${1:-}"
case "$cmd" in
  start)
    [[ $# -eq 3 && -n "$2" && -n "$3" ]] || usage
    DIR="$2"; PKI="$3"
    [[ -x "$PY" ]] || die "$PY missing; run scripts/setup.sh"
    [[ -s "$PKI/tsa.pem" && -s "$PKI/tsa.key" ]] || die "$PKI has no tsa.pem/tsa.key; run scripts/test-env.sh"
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"; PKI="$(cd "$PKI" && pwd)"
    exec 9>"$DIR/tsa.lock"
    flock -w 30 9 || die "could not lock $DIR/tsa.lock"

    if [[ -f "$DIR/tsa.pid" && -f "$DIR/tsa.port" ]]; then
      pid="$(cat "$DIR/tsa.pid")"; port="$(cat "$DIR/tsa.port")"
      if ours "$pid" && [[ "$port" =~ ^[0-9]+$ ]] && healthy "$port"; then
        echo "http://127.0.0.1:$port"
        exit 0
      fi
      if ours "$pid"; then  # alive but unhealthy: replace it
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$DIR/tsa.pid" "$DIR/tsa.port" "$DIR/tsa.env"

    # setsid: own session, so the caller's job control/signals don't reach it.
    setsid "$PY" "$SCRIPTS/tsa-server.py" --pki "$PKI" --workdir "$DIR/tsa-work" \
      --port "${TSA_PORT:-0}" --port-file "$DIR/tsa.port" \
      --slow-seconds "${TSA_SLOW_SECONDS:-30}" \
      </dev/null >>"$DIR/tsa.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$DIR/tsa.pid"

    ok=0
    for _ in $(seq 100); do  # 10 s
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if [[ -s "$DIR/tsa.port" ]] && healthy "$(cat "$DIR/tsa.port")"; then ok=1; break; fi
      sleep 0.1
    done
    if [[ $ok -ne 1 ]]; then
      kill "$pid" 2>/dev/null || true
      rm -f "$DIR/tsa.pid" "$DIR/tsa.port"
      tail -n 20 "$DIR/tsa.log" >&2 || true
      die "TSA did not become healthy within 10 s (log: $DIR/tsa.log)"
    fi
    port="$(cat "$DIR/tsa.port")"
    echo "export CODESEAL_TSA_URL=http://127.0.0.1:$port" >"$DIR/tsa.env.tmp"
    mv "$DIR/tsa.env.tmp" "$DIR/tsa.env"
    echo "http://127.0.0.1:$port"
    ;;
  stop)
    [[ $# -eq 2 && -n "$2" ]] || usage
    DIR="$2"
    [[ -d "$DIR" ]] || exit 0
    if [[ -f "$DIR/tsa.pid" ]]; then
      pid="$(cat "$DIR/tsa.pid")"
      if ours "$pid"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
          echo "tsa.sh: $pid did not exit after SIGTERM; sending SIGKILL" >&2
          kill -KILL "$pid" 2>/dev/null || true
        fi
      fi
    fi
    rm -f "$DIR/tsa.pid" "$DIR/tsa.port" "$DIR/tsa.env"
    ;;
  *) usage ;;
esac
