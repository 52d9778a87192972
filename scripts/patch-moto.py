#!/usr/bin/env python3
"""patch-moto.py VENV_DIR -- teach the venv's moto (5.2.x) to sign KMS digests the AWS way.

moto 5.2.5 ignores Sign's MessageType: it hashes the Message with the algorithm's hash even
when MessageType=DIGEST, so a client that sends a precomputed digest (what AWS expects and
what codeseal does) gets back a signature that does not verify.

This script edits moto/kms/responses.py inside VENV_DIR only (never a system moto). After it,
a moto_server whose environment has MOTO_KMS_DIGEST=aws handles Sign with MessageType=DIGEST
like AWS KMS:
  - the digest length must equal the algorithm's hash length (ValidationException if not);
  - RSASSA_PKCS1_V1_5_SHA_*: PKCS#1 v1.5 over the prehash;
  - RSASSA_PSS_SHA_*: PSS over the prehash, MGF1 with the same hash, salt = digest length;
  - ECDSA_SHA_*: ECDSA over the prehash (DER signature).
Without MOTO_KMS_DIGEST=aws moto behaves as shipped (used to prove the patch matters).

Idempotent: a second run finds the marker and does nothing. Exit status 0 when patched (now or
before), 1 when moto is missing or its source no longer has the expected shape.
"""
import pathlib
import sys

MARKER = "codeseal: KMS Sign MessageType=DIGEST"
VERSION_TAG = "v1"

# The line in KmsResponse.sign() after which our branch goes (moto 5.2.x).
ANCHOR = """        if not message_type:
            message_type = "RAW"

        key_id, signature, signing_algorithm = self.kms_backend.sign("""

BRANCH = f"""        if not message_type:
            message_type = "RAW"

        # {MARKER} ({VERSION_TAG}); see scripts/patch-moto.py
        if message_type == "DIGEST" and os.environ.get("MOTO_KMS_DIGEST") == "aws":
            return _codeseal_sign_digest(self, key_id, message, signing_algorithm)

        key_id, signature, signing_algorithm = self.kms_backend.sign("""

HELPER = f'''

# {MARKER} ({VERSION_TAG}); see scripts/patch-moto.py
def _codeseal_sign_digest(response, key_id, digest, signing_algorithm):
    """Sign a precomputed digest as AWS KMS does for MessageType=DIGEST."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = response.kms_backend.describe_key(key_id)
    if key.key_usage != "SIGN_VERIFY":
        raise ValidationException(
            f"1 validation error detected: Value '{{key.id}}' at 'KeyId' failed to satisfy "
            "constraint: Member must point to a key with usage: 'SIGN_VERIFY'"
        )
    if signing_algorithm not in (key.signing_algorithms or []):
        raise ValidationException(
            f"1 validation error detected: Value '{{signing_algorithm}}' at 'SigningAlgorithm' "
            "failed to satisfy constraint: Member must satisfy enum value set: "
            f"{{key.signing_algorithms}}"
        )
    hash_by_suffix = {{"_256": hashes.SHA256, "_384": hashes.SHA384, "_512": hashes.SHA512}}
    hash_cls = next(
        (h for s, h in hash_by_suffix.items() if signing_algorithm.endswith(s)), None
    )
    if hash_cls is None:
        raise ValidationException(
            f"MessageType DIGEST is not supported with {{signing_algorithm}}"
        )
    hash_alg = hash_cls()
    if len(digest) != hash_alg.digest_size:
        raise ValidationException(
            f"Digest is invalid length for algorithm {{signing_algorithm}}: expected "
            f"{{hash_alg.digest_size}} bytes, got {{len(digest)}}"
        )
    private_key = key.private_key.private_key
    prehashed = Prehashed(hash_alg)
    if signing_algorithm.startswith("ECDSA_"):
        signature = private_key.sign(digest, ec.ECDSA(prehashed))
    elif signing_algorithm.startswith("RSASSA_PSS_"):
        pss = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_alg.digest_size)
        signature = private_key.sign(digest, pss, prehashed)
    elif signing_algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        signature = private_key.sign(digest, padding.PKCS1v15(), prehashed)
    else:
        raise ValidationException(
            f"MessageType DIGEST is not supported with {{signing_algorithm}}"
        )
    return json.dumps(
        {{
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode("utf-8"),
            "SigningAlgorithm": signing_algorithm,
        }}
    )
'''


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: patch-moto.py VENV_DIR", file=sys.stderr)
        return 2
    venv = pathlib.Path(sys.argv[1])
    found = sorted(venv.glob("lib/python3*/site-packages/moto/kms/responses.py"))
    if not found:
        print(f"patch-moto: moto is not installed in {venv} (run scripts/setup.sh)", file=sys.stderr)
        return 1
    path = found[0]
    text = path.read_text(encoding="utf-8")
    if MARKER in text:
        print(f"patch-moto: already patched: {path}")
        return 0
    needed = ("import base64", "import json", "import os", "ValidationException")
    if ANCHOR not in text or not all(n in text for n in needed):
        print(
            f"patch-moto: {path} does not have the expected moto 5.2 layout; "
            "the pinned moto version may have changed",
            file=sys.stderr,
        )
        return 1
    patched = text.replace(ANCHOR, BRANCH, 1) + HELPER
    tmp = path.with_suffix(".py.codeseal-tmp")
    tmp.write_text(patched, encoding="utf-8")
    tmp.replace(path)
    # Stale bytecode would be ignored anyway (mtime check), but drop it to be explicit.
    for pyc in (path.parent / "__pycache__").glob("responses.*.pyc"):
        pyc.unlink()
    print(f"patch-moto: patched {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
