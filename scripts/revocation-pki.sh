#!/usr/bin/env bash
# A throwaway CA for the revocation tests (authenticode/tests/revocation.rs), run by `openssl
# ca` with a real database: leaves whose CRL distribution point and OCSP responder (AIA)
# point at scripts/revocation-server.py on 127.0.0.1, some of them revoked with chosen dates.
#
#   usage: scripts/revocation-pki.sh DIR SERVER_PORT DEAD_PORT HOSTILE_PORT
#
# SERVER_PORT: scripts/revocation-server.py (GET /ca.crl, POST /ocsp answered by
# `openssl ocsp` from DIR/ca/index.txt). DEAD_PORT: nothing listens there (a responder that
# is down). HOSTILE_PORT: the test's own server (/garbage, /huge, /slow, /count, /replay).
#
# Writes into DIR (made empty first):
#   ca.pem ca.key                 the root (EC P-256), keyCertSign + cRLSign
#   ocsp.pem ocsp.key             delegated OCSP signer (id-kp-OCSPSigning, issued by ca)
#   tsa.pem tsa.key tsa-chain.pem TSA (critical timeStamping), with CDP + AIA
#   LEAF.pem LEAF.key LEAF-chain.pem for each LEAF below (codeSigning)
#   www/ca.crl                    the current CRL (DER), served at /ca.crl
#   www/stale.crl www/future.crl  the same list, nextUpdate passed / thisUpdate to come
#   times.env                     REVOKED_BEFORE_AT / REVOKED_AFTER_AT (Unix seconds)
# Leaves (all valid from 10 days ago for a year):
#   good            CDP + AIA, not revoked
#   revoked-before  CDP + AIA, revoked (keyCompromise) 3 days ago
#   revoked-after   CDP + AIA, revoked (keyCompromise) 1 day ago
#   ocsp-only       AIA only, revoked 3 days ago (only OCSP can tell)
#   crl-only        CDP only, revoked 3 days ago (only the CRL can tell)
#   down            AIA -> DEAD_PORT only
#   garbage huge slow  AIA -> HOSTILE_PORT/garbage, /huge, /slow only
#   counted         CDP + AIA -> HOSTILE_PORT/count
#   replayed        AIA -> HOSTILE_PORT/replay (the test serves an answer captured earlier)
#   ocsp-by-ca      AIA -> SERVER_PORT/ocsp-ca only (answers signed by the CA itself)
#   ocsp-by-leaf    AIA -> SERVER_PORT/ocsp-leaf only (answers signed by the `good` leaf:
#                   issued by the CA but without id-kp-OCSPSigning, so not authorised)
set -euo pipefail
if [[ $# -ne 4 ]]; then
  echo "usage: $0 DIR SERVER_PORT DEAD_PORT HOSTILE_PORT" >&2
  exit 2
fi
DIR="$1" P="$2" DEAD="$3" HOSTILE="$4"
for p in "$P" "$DEAD" "$HOSTILE"; do
  [[ "$p" =~ ^[0-9]+$ ]] || { echo "revocation-pki: bad port $p" >&2; exit 2; }
done
rm -rf "$DIR"
mkdir -p "$DIR/ca/newcerts" "$DIR/www"
cd "$DIR"
: >ca/index.txt
echo "unique_subject = no" >ca/index.txt.attr
echo 1000 >ca/crlnumber

BASE="http://127.0.0.1:$P"
cat >openssl.cnf <<CNF
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder
[ ca ]
default_ca = rev_ca
[ rev_ca ]
dir             = ./ca
database        = \$dir/index.txt
new_certs_dir   = \$dir/newcerts
crlnumber       = \$dir/crlnumber
certificate     = ./ca.pem
private_key     = ./ca.key
default_md      = sha256
default_days    = 365
default_crl_hours = 24
policy          = policy_any
unique_subject  = no
copy_extensions = none
rand_serial     = yes
[ policy_any ]
commonName = supplied
[ v3_root ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
[ base_leaf ]
basicConstraints       = CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = codeSigning
authorityKeyIdentifier = keyid:always
[ ocsp_signer ]
basicConstraints       = CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = OCSPSigning
authorityKeyIdentifier = keyid:always
[ tsa ]
basicConstraints       = CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = critical, timeStamping
authorityKeyIdentifier = keyid:always
crlDistributionPoints  = URI:$BASE/ca.crl
authorityInfoAccess    = OCSP;URI:$BASE/ocsp
CNF
leaf_section() { # NAME CDP AIA (either may be empty)
  {
    echo "[ leaf_$1 ]"
    echo "basicConstraints = CA:FALSE"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = codeSigning"
    echo "authorityKeyIdentifier = keyid:always"
    [[ -n "$2" ]] && echo "crlDistributionPoints = URI:$2"
    [[ -n "$3" ]] && echo "authorityInfoAccess = OCSP;URI:$3"
    true
  } >>openssl.cnf
}
H="http://127.0.0.1:$HOSTILE"
leaf_section good "$BASE/ca.crl" "$BASE/ocsp"
leaf_section revoked-before "$BASE/ca.crl" "$BASE/ocsp"
leaf_section revoked-after "$BASE/ca.crl" "$BASE/ocsp"
leaf_section ocsp-only "" "$BASE/ocsp"
leaf_section crl-only "$BASE/ca.crl" ""
leaf_section down "" "http://127.0.0.1:$DEAD/ocsp"
leaf_section garbage "" "$H/garbage"
leaf_section huge "" "$H/huge"
leaf_section slow "" "$H/slow"
leaf_section counted "$H/count.crl" "$H/count"
leaf_section replayed "" "$H/replay"
leaf_section ocsp-by-ca "" "$BASE/ocsp-ca"
leaf_section ocsp-by-leaf "" "$BASE/ocsp-leaf"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
START="$(date -u -d '10 days ago' +%Y%m%d%H%M%SZ)"
END="$(date -u -d '355 days' +%Y%m%d%H%M%SZ)"

key ca.key
# Self-signed through `openssl ca -selfsign`, so that it is valid from START (back-dated time
# stamps fall inside the chain's validity); openssl 3.0's `req -x509` cannot back-date.
openssl req -new -config openssl.cnf -key ca.key -subj "/CN=codeseal revocation test CA" \
  -out ca.csr
openssl ca -batch -selfsign -config openssl.cnf -keyfile ca.key -extensions v3_root \
  -startdate "$START" -enddate "$(date -u -d '400 days' +%Y%m%d%H%M%SZ)" \
  -in ca.csr -out ca.pem -notext 2>/dev/null
rm -f ca.csr

issue() { # NAME SECTION
  key "$1.key"
  openssl req -new -config openssl.cnf -key "$1.key" -subj "/CN=codeseal revocation $1" \
    -out "$1.csr"
  openssl ca -batch -config openssl.cnf -extensions "$2" -startdate "$START" -enddate "$END" \
    -in "$1.csr" -out "$1.pem" -notext 2>/dev/null
  cat "$1.pem" ca.pem >"$1-chain.pem"
  rm -f "$1.csr"
}
issue ocsp ocsp_signer
issue tsa tsa
for l in good revoked-before revoked-after ocsp-only crl-only down garbage huge slow counted ocsp-by-ca ocsp-by-leaf replayed; do
  issue "$l" "leaf_$l"
done

# revoke NAME SECONDS-AGO: revoked for keyCompromise, dated that long ago.
revoke() {
  local serial when
  serial="$(openssl x509 -in "$1.pem" -noout -serial | cut -d= -f2)"
  openssl ca -batch -config openssl.cnf -revoke "$1.pem" -crl_reason keyCompromise 2>/dev/null
  when="$(date -u -d "@$(( $(date +%s) - $2 ))" +%y%m%d%H%M%SZ)"
  awk -F'\t' -v OFS='\t' -v s="$serial" -v w="$when" \
    '$4 == s && $1 == "R" { split($3, a, ","); $3 = w "," a[2] } { print }' \
    ca/index.txt >ca/index.txt.new
  mv ca/index.txt.new ca/index.txt
  date -u -d "@$(( $(date +%s) - $2 ))" +%s
}
NOW="$(date +%s)"
BEFORE_AT="$(revoke revoked-before $((3 * 86400)) | tail -1)"
AFTER_AT="$(revoke revoked-after 86400 | tail -1)"
revoke ocsp-only $((3 * 86400)) >/dev/null
revoke crl-only $((3 * 86400)) >/dev/null
openssl ca -batch -config openssl.cnf -gencrl -out ca.crl.pem 2>/dev/null
openssl crl -in ca.crl.pem -outform DER -out www/ca.crl
# A stale CRL (nextUpdate a day ago) and one not yet valid (thisUpdate tomorrow).
openssl ca -batch -config openssl.cnf -gencrl -out stale.crl.pem \
  -crl_lastupdate "$(date -u -d '3 days ago' +%Y%m%d%H%M%SZ)" \
  -crl_nextupdate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" 2>/dev/null
openssl crl -in stale.crl.pem -outform DER -out www/stale.crl
openssl ca -batch -config openssl.cnf -gencrl -out future.crl.pem \
  -crl_lastupdate "$(date -u -d '1 day' +%Y%m%d%H%M%SZ)" \
  -crl_nextupdate "$(date -u -d '2 days' +%Y%m%d%H%M%SZ)" 2>/dev/null
openssl crl -in future.crl.pem -outform DER -out www/future.crl
cat tsa.pem ca.pem >tsa-chain.pem
{
  echo "NOW=$NOW"
  echo "REVOKED_BEFORE_AT=$BEFORE_AT"
  echo "REVOKED_AFTER_AT=$AFTER_AT"
} >times.env
echo "revocation-pki: CA in $DIR (server port $P)" >&2
