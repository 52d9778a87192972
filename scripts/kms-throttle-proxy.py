#!/usr/bin/env python3
"""A rate-limiting stand-in in front of moto's KMS, for the signing service's fleet tests.

moto never throttles; AWS KMS answers ThrottlingException above the account's Sign quota.
This proxy forwards every request to moto unchanged, except KMS Sign calls
(X-Amz-Target: TrentService.Sign) above the configured rate, which get KMS's throttling
answer (HTTP 400, {"__type": "ThrottlingException", ...}) without reaching moto.

    kms-throttle-proxy.py --upstream http://127.0.0.1:PORT --rate 8 [--burst 1]
                          --port-file FILE [--watch-pid PID]

Listens on 127.0.0.1 (a free port, written to --port-file once listening). GET
/__proxy/stats answers {"sign_ok": N, "sign_throttled": N, "forwarded": N, "sign_ok_times":
[unix seconds...]}. Exits when --watch-pid's process is gone (checked every 0.5 s).
"""
import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # KMS requests are small; refuse anything bigger


class Bucket:
    def __init__(self, rate, burst):
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sign_ok = 0
        self.sign_throttled = 0
        self.forwarded = 0
        self.sign_ok_times = []

    def snapshot(self):
        with self.lock:
            return {
                "sign_ok": self.sign_ok,
                "sign_throttled": self.sign_throttled,
                "forwarded": self.forwarded,
                "sign_ok_times": list(self.sign_ok_times),
            }


def make_handler(upstream, bucket, stats):
    up = urllib.parse.urlsplit(upstream)
    local = threading.local()

    def connection():
        c = getattr(local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            local.conn = c
        return c

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, headers, body):
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/__proxy/stats":
                body = json.dumps(stats.snapshot()).encode()
                self.reply(200, [("Content-Type", "application/json")], body)
                return
            self.forward(b"")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n < 0 or n > MAX_BODY:
                self.reply(413, [], b"")
                return
            body = self.rfile.read(n)
            if self.headers.get("X-Amz-Target") == "TrentService.Sign":
                if not bucket.take():
                    with stats.lock:
                        stats.sign_throttled += 1
                    err = json.dumps(
                        {"__type": "ThrottlingException", "message": "Rate exceeded"}
                    ).encode()
                    self.reply(
                        400,
                        [
                            ("Content-Type", "application/x-amz-json-1.1"),
                            ("x-amzn-RequestId", "throttled-by-proxy"),
                        ],
                        err,
                    )
                    return
                status = self.forward(body)
                if status == 200:
                    with stats.lock:
                        stats.sign_ok += 1
                        stats.sign_ok_times.append(time.time())
                return
            self.forward(body)

        def forward(self, body):
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            for attempt in range(2):
                try:
                    c = connection()
                    c.request(self.command, self.path, body=body, headers=headers)
                    r = c.getresponse()
                    data = r.read()
                    break
                except (http.client.HTTPException, OSError):
                    local.conn = None
                    if attempt == 1:
                        self.reply(502, [], b"")
                        return 502
            with stats.lock:
                stats.forwarded += 1
            self.reply(r.status, r.getheaders(), data)
            return r.status

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--burst", type=int, default=1)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--watch-pid", type=int)
    a = ap.parse_args()
    stats = Stats()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), make_handler(a.upstream, Bucket(a.rate, max(1, a.burst)), stats)
    )
    server.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, a.port_file)
    if a.watch_pid:

        def watch():
            while True:
                try:
                    os.kill(a.watch_pid, 0)
                except OSError:
                    os._exit(0)
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
