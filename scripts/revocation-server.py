#!/usr/bin/env python3
"""CRL and OCSP server for codeseal's revocation tests (standard library only).

Usage:
    python3 scripts/revocation-server.py --dir DIR --port-file FILE [--port 0]

Binds 127.0.0.1 only. --port 0 picks a free port; it is written (atomically) to
--port-file once the server listens. DIR is made by scripts/revocation-pki.sh
(the ports it names must be this server's).

Routes:
  GET  /ca.crl     DIR/www/ca.crl as application/pkix-crl (read at each request).
  POST /ocsp       The body (a DER OCSPRequest, at most 64 KiB) is answered by
                   `openssl ocsp` from the CA database DIR/ca/index.txt, signed
                   by the delegated responder DIR/ocsp.pem (nextUpdate 60 min).
  POST /ocsp-ca    The same, signed by the CA itself.
  POST /ocsp-leaf  The same, signed by DIR/good.pem (a leaf without OCSPSigning:
                   a responder without authority).
  GET  /hits       "PATH COUNT" lines: requests served per path since start.
The test that started it stops it by PID.
"""
import argparse
import http.server
import os
import subprocess
import tempfile
import threading

MAX_BODY = 64 << 10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    base = os.path.abspath(args.dir)
    hits = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *a):
            pass

        def count(self):
            with lock:
                hits[self.path] = hits.get(self.path, 0) + 1

        def reply(self, status, ctype, body):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/hits":
                with lock:
                    text = "".join(f"{p} {n}\n" for p, n in sorted(hits.items()))
                return self.reply(200, "text/plain", text.encode())
            self.count()
            if self.path == "/ca.crl":
                with open(os.path.join(base, "www", "ca.crl"), "rb") as f:
                    return self.reply(200, "application/pkix-crl", f.read())
            self.reply(404, "text/plain", b"not found\n")

        def do_POST(self):
            self.count()
            signers = {"/ocsp": "ocsp", "/ocsp-ca": "ca", "/ocsp-leaf": "good"}
            if self.path not in signers:
                return self.reply(404, "text/plain", b"not found\n")
            n = int(self.headers.get("Content-Length") or 0)
            if n <= 0 or n > MAX_BODY:
                return self.reply(413, "text/plain", b"bad length\n")
            req = self.rfile.read(n)
            signer = signers[self.path]
            with tempfile.TemporaryDirectory() as t:
                rq, rs = os.path.join(t, "req.der"), os.path.join(t, "resp.der")
                with open(rq, "wb") as f:
                    f.write(req)
                p = subprocess.run(
                    ["openssl", "ocsp", "-index", os.path.join(base, "ca", "index.txt"),
                     "-CA", os.path.join(base, "ca.pem"),
                     "-rsigner", os.path.join(base, f"{signer}.pem"),
                     "-rkey", os.path.join(base, f"{signer}.key"),
                     "-nmin", "60", "-reqin", rq, "-respout", rs],
                    capture_output=True, timeout=30)
                if p.returncode != 0 or not os.path.exists(rs):
                    return self.reply(500, "text/plain", p.stderr[-400:])
                with open(rs, "rb") as f:
                    self.reply(200, "application/ocsp-response", f.read())

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
