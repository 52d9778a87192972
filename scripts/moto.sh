#!/usr/bin/env bash
# Run a local moto_server as a stand-in for AWS KMS (tests of backends/kms).
#
#   scripts/moto.sh start DIR   start moto_server on 127.0.0.1 (a free port), wait until it
#                               answers; write DIR/moto.pid, DIR/moto.env, DIR/moto.log
#   scripts/moto.sh stop DIR    stop the server whose PID is in DIR/moto.pid (only that one)
#   scripts/moto.sh env DIR     print DIR/moto.env, for: eval "$(scripts/moto.sh env DIR)"
#
# DIR/moto.env exports AWS_ENDPOINT_URL=http://127.0.0.1:PORT, dummy credentials
# (testing/testing), AWS_REGION=us-east-1, AWS_EC2_METADATA_DISABLED=true and MOTO_PORT.
#
# Environment:
#   CODESEAL_VENV      the venv made by scripts/setup.sh (default ~/.cache/codeseal/venv)
#   MOTO_KMS_DIGEST    passed to moto_server; default "aws": Sign with MessageType=DIGEST
#                      signs the digest as AWS does (needs scripts/patch-moto.py, which
#                      setup.sh applies). Set it to "stock" for moto's shipped behaviour.
#   CODESEAL_MOTO_WATCH_PID
#                      optional PID (e.g. a test process): when it exits, moto is stopped.
#
# `start` on a DIR whose server is still running reuses it. Every wait is bounded.
set -euo pipefail

VENV="${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIGEST_MODE="${MOTO_KMS_DIGEST-aws}"
PORT_TRIES=5          # ports tried when another process grabs ours first
READY_POLLS=150       # x 0.2 s = 30 s for moto to answer
MARKER="codeseal: KMS Sign MessageType=DIGEST"

die() { printf 'moto.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  echo "usage: $0 start|stop|env DIR" >&2
  exit 2
}

[[ $# -eq 2 && -n "$2" ]] || usage
CMD="$1"
DIR="$2"

# is_our_moto PID: the process exists and is a moto_server (guards against a reused PID).
is_our_moto() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'moto_server'
}

# answers PORT: moto's own API answers on PORT (not just any listener).
answers() {
  "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json", timeout=2) as r:
    json.load(r)
PY
}

free_port() {
  "$VENV/bin/python" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_pid() { # stop_pid PID: TERM, then KILL after a bounded wait
  local pid="$1" i
  is_our_moto "$pid" || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    is_our_moto "$pid" || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

start() {
  [[ -x "$VENV/bin/moto_server" ]] ||
    die "moto_server not found in $VENV: run scripts/setup.sh (or set CODESEAL_VENV)"
  if [[ "$DIGEST_MODE" == aws ]]; then
    local responses
    responses="$(compgen -G "$VENV/lib/python3*/site-packages/moto/kms/responses.py" | head -n1 || true)"
    [[ -n "$responses" ]] && grep -qF "$MARKER" "$responses" ||
      die "moto in $VENV is not patched for MessageType=DIGEST: run scripts/setup.sh"
  fi
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"

  if [[ -f "$DIR/moto.pid" && -f "$DIR/moto.env" ]]; then
    local old port
    old="$(cat "$DIR/moto.pid")"
    port="$(sed -n 's/^export MOTO_PORT=//p' "$DIR/moto.env")"
    if is_our_moto "$old" && [[ -n "$port" ]] && answers "$port"; then
      echo "moto.sh: reusing moto_server pid $old on port $port" >&2
      return 0
    fi
    rm -f "$DIR/moto.pid" "$DIR/moto.env"
  fi

  local try port pid i
  for ((try = 1; try <= PORT_TRIES; try++)); do
    port="$(free_port)"
    MOTO_KMS_DIGEST="$DIGEST_MODE" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" \
      </dev/null >"$DIR/moto.log" 2>&1 &
    pid=$!
    for ((i = 0; i < READY_POLLS; i++)); do
      if ! kill -0 "$pid" 2>/dev/null; then
        break # died: most likely the port was taken in between; try another
      fi
      if answers "$port"; then
        echo "$pid" >"$DIR/moto.pid"
        cat >"$DIR/moto.env" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export MOTO_PORT=$port
EOF
        if [[ -n "${CODESEAL_MOTO_WATCH_PID:-}" ]]; then
          watch "$CODESEAL_MOTO_WATCH_PID" "$pid"
        fi
        echo "moto.sh: moto_server pid $pid on http://127.0.0.1:$port (MOTO_KMS_DIGEST=$DIGEST_MODE)" >&2
        return 0
      fi
      sleep 0.2
    done
    stop_pid "$pid"
    wait "$pid" 2>/dev/null || true
  done
  echo "moto.sh: last lines of $DIR/moto.log:" >&2
  tail -n 20 "$DIR/moto.log" >&2 || true
  die "moto_server did not come up after $PORT_TRIES tries"
}

# watch WATCHED MOTO: stop MOTO once WATCHED has exited (or MOTO is gone). Detached, silent.
watch() {
  local watched="$1" moto="$2"
  [[ "$watched" =~ ^[0-9]+$ ]] || die "CODESEAL_MOTO_WATCH_PID must be a PID"
  (
    trap '' HUP
    while kill -0 "$watched" 2>/dev/null && is_our_moto "$moto"; do
      sleep 0.5
    done
    stop_pid "$moto"
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$DIR/moto.watch.pid"
}

stop() {
  [[ -d "$DIR" ]] || return 0
  if [[ -f "$DIR/moto.pid" ]]; then
    stop_pid "$(cat "$DIR/moto.pid")"
  fi
  if [[ -f "$DIR/moto.watch.pid" ]]; then
    local w
    w="$(cat "$DIR/moto.watch.pid")"
    [[ "$w" =~ ^[0-9]+$ ]] && kill "$w" 2>/dev/null || true
  fi
  rm -f "$DIR/moto.pid" "$DIR/moto.env" "$DIR/moto.watch.pid"
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  env)
    [[ -f "$DIR/moto.env" ]] || die "no $DIR/moto.env: run $0 start $DIR first"
    cat "$DIR/moto.env"
    ;;
  *) usage ;;
esac
