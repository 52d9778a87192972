#!/usr/bin/env python3
"""Local time-stamping authority (TSA) for codeseal tests.

Usage (with the venv made by scripts/setup.sh; needs asn1crypto + cryptography):
    "$VENV/bin/python" scripts/tsa-server.py --pki PKI_DIR --workdir DIR \
        [--port 0] [--port-file FILE] [--slow-seconds 30]

Binds 127.0.0.1 only. --port 0 picks a free port; the chosen port is written
(atomically) to --port-file once the server is listening. Normally started and
stopped by scripts/tsa.sh. Uses from PKI_DIR (scripts/make-pki.sh): tsa.pem,
tsa.key, tsa-root.pem, tsa-noncrit.pem, tsa-noncrit.key.

Routes (POST unless noted; the request body is capped at 64 KiB -> 413, and a
Content-Length is required -> 411):

  /rfc3161      RFC 3161: body is a DER TimeStampReq; answered by
                `openssl ts -reply` signed by tsa.pem (sha256, policy 1.2.3.4.1,
                ESSCertIDv2/sha256). certReq is honoured: if set, the token holds
                tsa.pem + tsa-root.pem, otherwise no certificates. A malformed
                query gets openssl's own rejection (status 2, badDataFormat).
                Response: application/timestamp-reply.
  /legacy       Legacy Authenticode (signtool /t, osslsigncode -t): body is
                base64 (or raw DER) of
                  SEQUENCE { OID 1.3.6.1.4.1.311.3.2.1, [attributes SET OPTIONAL,]
                             ContentInfo { id-data, [0] EXPLICIT OCTET STRING sig } }
                The OCTET STRING bytes are signed with
                `openssl cms -sign -binary -nodetach -nosmimecap -md sha256`
                (signer tsa.pem, plus tsa-root.pem); the answer is base64 (64-char
                lines, LF) of the DER PKCS#7 ContentInfo(SignedData) carrying the
                content, as application/octet-stream. Malformed request -> 400.
  /fraction     Like /rfc3161 with clock_precision_digits = 3: genTime carries
                milliseconds (`20261206093015.123Z`), as Microsoft's TSAs send it.
  /both         Content-Type application/timestamp-query -> /rfc3161, else /legacy.

Fault routes:
  /fail500      HTTP 500 (text body).
  /reject       HTTP 200, DER TimeStampResp { status rejection(2),
                statusString "codeseal test TSA: request rejected",
                failInfo systemFailure }, no token (application/timestamp-reply),
                whatever was sent.
  /garbage      HTTP 200, 256 random bytes, with the Content-Type the protocol
                expects (timestamp-reply for RFC 3161 queries, else octet-stream).
  /slow         Sleeps --slow-seconds (default 30), then answers like /both.
                Interrupted (503) when the server shuts down.
  /wrongnonce   RFC 3161: the query's nonce is replaced (nonce+1; a random nonce
                is added if the query had none) before openssl answers it.
  /wrongimprint RFC 3161: the last byte of the query's hashedMessage is flipped
                (xor 0xff) before openssl answers it.
  /noncritical  RFC 3161: openssl's answer (signed by tsa.pem) re-signed by
                tsa-noncrit.pem (EKU timeStamping NOT critical): certificates,
                sid and ESSCertIDv2 replaced, signed attributes re-signed.
                (openssl ts itself refuses such a signer certificate.)
  /flaky[/KEY]  Per-path counter (each KEY counts separately): the 1st, 3rd,
                5th ... request gets HTTP 503; the others are answered like /both.

  GET /health   200 "ok".

Everything is bounded: socket timeouts, at most 32 requests in flight (503
beyond), and every openssl call runs with a timeout. One log line per request
goes to stderr. Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import http.server
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

from asn1crypto import cms, core, tsp, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAX_BODY = 64 * 1024
MAX_INFLIGHT = 32
OPENSSL_TIMEOUT = 15.0
SOCKET_TIMEOUT = 15.0
CT_QUERY = "application/timestamp-query"
CT_REPLY = "application/timestamp-reply"
CT_OCTET = "application/octet-stream"
LEGACY_REQ_OID = "1.3.6.1.4.1.311.3.2.1"
POLICY = "1.2.3.4.1"


class LegacyTimeStampRequest(core.Sequence):
    """Microsoft's TimeStampRequest (legacy Authenticode time stamp)."""

    _fields = [
        ("countersignature_type", core.ObjectIdentifier),
        ("attributes", cms.CMSAttributes, {"optional": True}),
        ("content", cms.ContentInfo),
    ]


class HttpError(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code
        self.msg = msg


class Tsa:
    """The signing side: openssl invocations and ASN.1 manipulations."""

    def __init__(self, pki: str, workdir: str):
        self.pki = pki
        self.workdir = workdir
        for f in ("tsa.pem", "tsa.key", "tsa-root.pem", "tsa-noncrit.pem", "tsa-noncrit.key"):
            if not os.path.isfile(os.path.join(pki, f)):
                raise SystemExit(f"tsa-server: {os.path.join(pki, f)} missing (run scripts/make-pki.sh)")
        with open(os.path.join(pki, "tsa-noncrit.pem"), "rb") as f:
            self.noncrit_cert = x509.Certificate.load(_pem_to_der(f.read()))
        with open(os.path.join(pki, "tsa-root.pem"), "rb") as f:
            self.root_cert = x509.Certificate.load(_pem_to_der(f.read()))
        with open(os.path.join(pki, "tsa-noncrit.key"), "rb") as f:
            self.noncrit_key = serialization.load_pem_private_key(f.read(), password=None)
        assert isinstance(self.noncrit_key, rsa.RSAPrivateKey)

    def _run(self, tmp: str, argv: list[str]) -> None:
        try:
            p = subprocess.run(argv, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=OPENSSL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise HttpError(500, f"{argv[0]} {argv[1]} timed out")
        if p.returncode != 0:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise HttpError(500, f"openssl {argv[1]} failed: {' | '.join(err)}")

    def rfc3161(self, query: bytes, precision: int = 0) -> bytes:
        """DER TimeStampReq -> DER TimeStampResp via `openssl ts -reply` (tsa.pem).

        precision: clock_precision_digits, the digits of a second in genTime (3 writes
        `...HHMMSS.mmmZ` as Microsoft's TSAs do; openssl drops trailing zeros)."""
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="req.") as tmp:
            # A fresh random serial per request: no shared serial file, no races.
            with open(os.path.join(tmp, "serial"), "w") as f:
                f.write(f"{secrets.randbits(63) | (1 << 62):016X}\n")
            pki = self.pki
            with open(os.path.join(tmp, "tsa.cnf"), "w") as f:
                f.write(f"""[ tsa ]
default_tsa = codeseal_tsa
[ codeseal_tsa ]
serial = {tmp}/serial
crypto_device = builtin
signer_cert = {pki}/tsa.pem
certs = {pki}/tsa-root.pem
signer_key = {pki}/tsa.key
signer_digest = sha256
default_policy = {POLICY}
other_policies = 1.2.3.4.5.6, 1.2.3.4.5.7
digests = sha1, sha256, sha384, sha512
accuracy = secs:1, millisecs:0, microsecs:0
clock_precision_digits = {precision}
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")
            with open(os.path.join(tmp, "q.tsq"), "wb") as f:
                f.write(query)
            self._run(tmp, ["openssl", "ts", "-reply", "-config", "tsa.cnf",
                            "-queryfile", "q.tsq", "-out", "r.tsr"])
            with open(os.path.join(tmp, "r.tsr"), "rb") as f:
                return f.read()

    def legacy(self, content: bytes) -> bytes:
        """Signature bytes -> DER PKCS#7 SignedData (legacy Authenticode time stamp)."""
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="req.") as tmp:
            with open(os.path.join(tmp, "content.bin"), "wb") as f:
                f.write(content)
            pki = self.pki
            self._run(tmp, ["openssl", "cms", "-sign", "-binary", "-nodetach", "-nosmimecap",
                            "-md", "sha256", "-signer", f"{pki}/tsa.pem", "-inkey", f"{pki}/tsa.key",
                            "-certfile", f"{pki}/tsa-root.pem", "-in", "content.bin",
                            "-outform", "DER", "-out", "resp.p7"])
            with open(os.path.join(tmp, "resp.p7"), "rb") as f:
                return f.read()

    def resign_noncritical(self, resp_der: bytes) -> bytes:
        """Re-sign an openssl TimeStampResp with tsa-noncrit (EKU not critical)."""
        resp = tsp.TimeStampResp.load(resp_der)
        if resp["status"]["status"].native not in ("granted", "granted_with_mods"):
            return resp_der
        sd = resp["time_stamp_token"]["content"]
        si = sd["signer_infos"][0]
        cert = self.noncrit_cert
        if si["sid"].name != "issuer_and_serial_number":
            raise HttpError(500, "unexpected sid form in openssl token")
        if si["digest_algorithm"]["algorithm"].native != "sha256":
            raise HttpError(500, "unexpected digest in openssl token")
        si["sid"] = cms.SignerIdentifier({
            "issuer_and_serial_number": cms.IssuerAndSerialNumber({
                "issuer": cert.issuer, "serial_number": cert.serial_number})})
        attrs = []
        for attr in si["signed_attrs"]:
            t = attr["type"].native
            if t in ("signing_certificate_v2", "signing_certificate"):
                v2 = t == "signing_certificate_v2"
                ids = []
                for cid in attr["values"][0]["certs"]:
                    alg = cid["hash_algorithm"]["algorithm"].native if v2 else "sha1"
                    fields = {"cert_hash": hashlib.new(alg, cert.dump()).digest()}
                    if v2:
                        fields["hash_algorithm"] = cid["hash_algorithm"]
                    if cid["issuer_serial"].native is not None:
                        fields["issuer_serial"] = {
                            "issuer": [x509.GeneralName({"directory_name": cert.issuer})],
                            "serial_number": cert.serial_number}
                    ids.append((tsp.ESSCertIDv2 if v2 else tsp.ESSCertID)(fields))
                    break  # only the signer's own ESSCertID (ess_cert_id_chain = no)
                value = (tsp.SigningCertificateV2 if v2 else tsp.SigningCertificate)({"certs": ids})
                attr = cms.CMSAttribute({"type": t, "values": [value]})
            attrs.append(attr)
        si["signed_attrs"] = cms.CMSAttributes(attrs)
        encoded = si["signed_attrs"].dump()
        to_sign = b"\x31" + encoded[1:]  # [0] IMPLICIT SET OF -> SET OF (RFC 5652 5.4)
        si["signature"] = self.noncrit_key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
        if len(sd["certificates"]) > 0:
            sd["certificates"] = cms.CertificateSet([
                cms.CertificateChoices({"certificate": cert}),
                cms.CertificateChoices({"certificate": self.root_cert})])
        out = resp.dump()
        # Self-check: the emitted signed attributes are exactly what was signed.
        chk = tsp.TimeStampResp.load(out)["time_stamp_token"]["content"]["signer_infos"][0]
        if chk["signed_attrs"].dump() != encoded:
            raise HttpError(500, "re-encoding changed the signed attributes")
        return out


def _pem_to_der(pem: bytes) -> bytes:
    lines = pem.decode("ascii").splitlines()
    start = lines.index("-----BEGIN CERTIFICATE-----")
    end = lines.index("-----END CERTIFICATE-----", start)
    return base64.b64decode("".join(lines[start + 1:end]))


class RejectedTimeStampResp(core.Sequence):
    """TimeStampResp without timeStampToken (asn1crypto's makes it mandatory)."""

    _fields = [("status", tsp.PKIStatusInfo)]


def reject_response() -> bytes:
    return RejectedTimeStampResp({"status": {
        "status": "rejection",
        "status_string": ["codeseal test TSA: request rejected"],
        "fail_info": tsp.PKIFailureInfo({"system_failure"}),
    }}).dump()


def parse_tsq(body: bytes) -> tsp.TimeStampReq:
    try:
        req = tsp.TimeStampReq.load(body, strict=True)
        req.native  # force a full parse
        return req
    except Exception as e:  # noqa: BLE001
        raise HttpError(400, f"bad TimeStampReq: {type(e).__name__}: {e}")


def parse_legacy(body: bytes) -> bytes:
    """Request body -> the OCTET STRING content to be time-stamped."""
    der = None
    stripped = body.strip()
    if stripped[:1] == b"\x30":
        der = body
    else:
        try:
            der = base64.b64decode(b"".join(stripped.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise HttpError(400, f"legacy request is neither base64 nor DER: {e}")
    try:
        req = LegacyTimeStampRequest.load(der, strict=True)
        req.native
    except Exception as e:  # noqa: BLE001
        raise HttpError(400, f"bad legacy TimeStampRequest: {type(e).__name__}: {e}")
    if req["countersignature_type"].dotted != LEGACY_REQ_OID:
        raise HttpError(400, f"legacy request type {req['countersignature_type'].dotted} != {LEGACY_REQ_OID}")
    ci = req["content"]
    if ci["content_type"].native != "data" or not isinstance(ci["content"], core.OctetString):
        raise HttpError(400, "legacy request content is not id-data with an OCTET STRING")
    content = ci["content"].native
    if not content:
        raise HttpError(400, "legacy request content is empty")
    return content


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "codeseal-test-tsa/1"
    protocol_version = "HTTP/1.0"
    timeout = SOCKET_TIMEOUT

    # set on the class by main()
    tsa: Tsa
    slow_seconds: float
    stopping: threading.Event
    inflight: threading.BoundedSemaphore
    flaky_lock = threading.Lock()
    flaky_counts: dict[str, int] = {}

    detail = ""

    def log_message(self, fmt, *args):
        sys.stderr.write(f"tsa-server: {self.address_string()} {fmt % args}\n")
        sys.stderr.flush()

    def log_request(self, code="-", size="-"):  # one line per request, with any error
        extra = f" ({self.detail})" if self.detail else ""
        self.log_message('"%s" %s %s%s', self.requestline, str(getattr(code, "value", code)), size, extra)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.log_request(code, len(body))
        self.send_response_only(code)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
            self.close_connection = True
            self.log_message("client went away before the answer was sent (%s)", type(e).__name__)

    def _text(self, code: int, msg: str) -> None:
        self._send(code, (msg + "\n").encode(), "text/plain; charset=utf-8")

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def do_GET(self):
        if self._path() == "/health":
            self._text(200, "ok")
        else:
            self._text(404 if self._path() not in ROUTES else 405, "not found" if self._path() not in ROUTES else "POST only")

    def do_POST(self):
        if not self.inflight.acquire(blocking=False):
            self._text(503, "too many requests in flight")
            return
        try:
            self._post()
        except HttpError as e:
            self.detail = e.msg
            self._text(e.code, e.msg)
        except Exception as e:  # noqa: BLE001
            self.detail = f"internal error: {type(e).__name__}: {e}"
            try:
                self._text(500, f"internal error: {type(e).__name__}")
            except OSError:
                pass
        finally:
            self.inflight.release()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(411, "chunked bodies are not supported; send Content-Length")
        cl = self.headers.get("Content-Length")
        if cl is None:
            raise HttpError(411, "Content-Length required")
        try:
            n = int(cl)
        except ValueError:
            raise HttpError(400, "bad Content-Length")
        if n < 0:
            raise HttpError(400, "bad Content-Length")
        if n > MAX_BODY:
            self.close_connection = True
            raise HttpError(413, f"body larger than {MAX_BODY} bytes")
        body = self.rfile.read(n)
        if len(body) != n:
            raise HttpError(400, "short body")
        return body

    def _is_rfc3161(self) -> bool:
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        return ctype == CT_QUERY

    def _answer_both(self, body: bytes) -> None:
        if self._is_rfc3161():
            self._send(200, self.tsa.rfc3161(body), CT_REPLY)
        else:
            self._answer_legacy(body)

    def _answer_legacy(self, body: bytes) -> None:
        p7 = self.tsa.legacy(parse_legacy(body))
        self._send(200, base64.encodebytes(p7), CT_OCTET)

    def _post(self) -> None:
        path = self._path()
        route = path
        if path.startswith("/flaky/"):
            route = "/flaky"
        if route not in ROUTES:
            raise HttpError(404, f"no route {path}")
        body = self._read_body()
        tsa = self.tsa

        if route == "/rfc3161":
            self._send(200, tsa.rfc3161(body), CT_REPLY)
        elif route == "/fraction":
            self._send(200, tsa.rfc3161(body, precision=3), CT_REPLY)
        elif route == "/legacy":
            self._answer_legacy(body)
        elif route == "/both":
            self._answer_both(body)
        elif route == "/fail500":
            self._text(500, "codeseal test TSA: deliberate internal server error")
        elif route == "/reject":
            self._send(200, reject_response(), CT_REPLY)
        elif route == "/garbage":
            self._send(200, os.urandom(256), CT_REPLY if self._is_rfc3161() else CT_OCTET)
        elif route == "/slow":
            if self.stopping.wait(self.slow_seconds):
                raise HttpError(503, "server shutting down")
            self._answer_both(body)
        elif route == "/wrongnonce":
            req = parse_tsq(body)
            nonce = req["nonce"].native
            new = nonce + 1 if nonce is not None else secrets.randbits(63) | 1
            req["nonce"] = new
            self._send(200, tsa.rfc3161(req.dump(force=True)), CT_REPLY)
        elif route == "/wrongimprint":
            req = parse_tsq(body)
            mi = req["message_imprint"]
            h = bytearray(mi["hashed_message"].native)
            if not h:
                raise HttpError(400, "empty hashedMessage")
            h[-1] ^= 0xFF
            req["message_imprint"] = tsp.MessageImprint({
                "hash_algorithm": mi["hash_algorithm"], "hashed_message": bytes(h)})
            self._send(200, tsa.rfc3161(req.dump(force=True)), CT_REPLY)
        elif route == "/noncritical":
            parse_tsq(body)
            self._send(200, tsa.resign_noncritical(tsa.rfc3161(body)), CT_REPLY)
        elif route == "/flaky":
            with self.flaky_lock:
                if path not in self.flaky_counts and len(self.flaky_counts) >= 1024:
                    raise HttpError(503, "too many flaky keys")
                n = self.flaky_counts.get(path, 0) + 1
                self.flaky_counts[path] = n
            if n % 2 == 1:
                self._text(503, f"codeseal test TSA: flaky failure (request {n} to {path})")
            else:
                self._answer_both(body)
        else:  # pragma: no cover
            raise HttpError(404, f"no route {path}")


ROUTES = {"/rfc3161", "/fraction", "/legacy", "/both", "/fail500", "/reject", "/garbage", "/slow",
          "/wrongnonce", "/wrongimprint", "/noncritical", "/flaky"}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True       # never join request threads (e.g. /slow) on shutdown
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):  # one line, not a traceback
        e = sys.exc_info()[1]
        sys.stderr.write(f"tsa-server: {client_address[0]} connection error: {type(e).__name__}: {e}\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tsa-server.py", description="codeseal local test TSA")
    ap.add_argument("--pki", required=True, help="PKI dir made by scripts/make-pki.sh")
    ap.add_argument("--workdir", required=True, help="scratch dir for openssl configs")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--slow-seconds", type=float, default=30.0, help="delay of /slow")
    ap.add_argument(
        "--exit-with-parent",
        type=int,
        default=0,
        help="stop when this PID is gone (for test harnesses that cannot stop it themselves)",
    )
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535:
        ap.error("--port out of range")
    if not 0 <= args.slow_seconds <= 3600:
        ap.error("--slow-seconds out of range (0..3600)")

    os.makedirs(args.workdir, exist_ok=True)
    pki = os.path.abspath(args.pki)
    workdir = os.path.abspath(args.workdir)
    if shutil.which("openssl") is None:
        raise SystemExit("tsa-server: openssl not found")

    stopping = threading.Event()
    Handler.tsa = Tsa(pki, workdir)
    Handler.slow_seconds = args.slow_seconds
    Handler.stopping = stopping
    Handler.inflight = threading.BoundedSemaphore(MAX_INFLIGHT)

    httpd = Server(("127.0.0.1", args.port), Handler)
    port = httpd.server_address[1]

    def on_signal(signum, _frame):
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"tsa-server: listening on http://127.0.0.1:{port} (pid {os.getpid()})", file=sys.stderr, flush=True)

    while not stopping.wait(1.0):
        if args.exit_with_parent and not os.path.exists(f"/proc/{args.exit_with_parent}"):
            print("tsa-server: parent gone", file=sys.stderr, flush=True)
            break
    print("tsa-server: shutting down", file=sys.stderr, flush=True)
    httpd.shutdown()
    httpd.server_close()
    t.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
