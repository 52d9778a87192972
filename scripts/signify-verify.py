#!/usr/bin/env python3
"""Strict Authenticode verification of a PE file with signify (independent oracle).

Usage (with the venv created by scripts/setup.sh):
    "$VENV/bin/python" scripts/signify-verify.py FILE --trust ROOT.pem [--trust ROOT2.pem] [-v]

Trusts ONLY the given root certificates (never the system or Microsoft store).
Every embedded signature (including nested ones) must verify; countersignatures,
if present, are checked strictly; the signer chain must carry the codeSigning
EKU and (if present) a keyUsage allowing digitalSignature.

Prints "signify: OK" and exits 0 iff valid; otherwise prints
"signify: FAIL <reason>" and exits 1. Exits 2 on usage errors (bad arguments,
unreadable/empty trust file).
"""

from __future__ import annotations

import argparse
import sys


def usage_error(parser: argparse.ArgumentParser, msg: str) -> "NoReturn":  # noqa: F821
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_roots(parser: argparse.ArgumentParser, paths: list[str]):
    from signify.x509 import Certificate

    roots = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            usage_error(parser, f"cannot read trust file {path}: {e}")
        try:
            if b"-----BEGIN" in data:
                certs = list(Certificate.from_pems(data))
            else:
                certs = [Certificate.from_der(data)]
        except Exception as e:  # noqa: BLE001
            usage_error(parser, f"cannot parse trust file {path}: {e}")
        if not certs:
            usage_error(parser, f"no certificate in trust file {path}")
        roots.extend(certs)
    return roots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="signify-verify.py",
        description="Strict signify Authenticode verification against given roots only.",
    )
    parser.add_argument("file", metavar="FILE", help="signed PE file to verify")
    parser.add_argument(
        "--trust",
        metavar="ROOT.pem",
        action="append",
        required=True,
        help="trusted root certificate(s), PEM or DER; may be repeated",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print signer chains to stderr"
    )
    args = parser.parse_args(argv)  # exits 2 on usage errors

    try:
        from signify.authenticode import AuthenticodeFile, AuthenticodeVerificationResult
        from signify.x509 import CertificateStore
    except Exception as e:  # noqa: BLE001
        print(f"signify: FAIL cannot import signify ({type(e).__name__}: {e}); "
              "run scripts/setup.sh and use its venv python")
        return 1

    roots = load_roots(parser, args.trust)
    # NB: signify falls back to its bundled Microsoft store when the trusted store
    # is falsy (i.e. empty); load_roots guarantees at least one certificate.
    store = CertificateStore(roots, trusted=True)
    assert len(store) > 0

    try:
        f = open(args.file, "rb")
    except OSError as e:
        usage_error(parser, f"cannot open {args.file}: {e}")

    with f:
        try:
            signed = AuthenticodeFile.from_stream(f)
        except Exception as e:  # noqa: BLE001
            print(f"signify: FAIL PARSE_ERROR: not an Authenticode file "
                  f"({type(e).__name__}: {e})")
            return 1

        result, exc = signed.explain_verify(
            trusted_certificate_store=store,
            multi_verify_mode="all",
            signature_types="embedded",
            countersignature_mode="strict",
            ignore_parse_errors=False,
        )

        if result == AuthenticodeVerificationResult.OK:
            if args.verbose:
                try:
                    for sd, _ind, chains in signed.verify(
                        trusted_certificate_store=store,
                        multi_verify_mode="all",
                        signature_types="embedded",
                        countersignature_mode="strict",
                        ignore_parse_errors=False,
                    ):
                        print(f"signature digest={sd.digest_algorithm().name}", file=sys.stderr)
                        for chain in chains:
                            for cert in chain:
                                print(f"  {cert.subject.dn}", file=sys.stderr)
                except Exception as e:  # noqa: BLE001
                    # explain_verify said OK; a second pass must agree.
                    print(f"signify: FAIL inconsistent re-verification: {e}")
                    return 1
            print("signify: OK")
            return 0

        reason = result.name
        if exc is not None:
            reason += f": {type(exc).__name__}: {exc}"
        print(f"signify: FAIL {reason}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
