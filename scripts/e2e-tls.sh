#!/usr/bin/env bash
# End-to-end test of S3 over HTTPS (vaultd server --tls-cert --tls-key) with
# the aws cli (--ca-bundle), boto3 (verify=CA) and curl (--cacert).
# Generates a throwaway CA and node certificate with openssl, starts one node
# (4 drives) on free loopback ports with --s3-http for plain health checks,
# reloads the certificate with SIGHUP. Prints "e2e-tls: N passed, M failed"
# and exits non-zero on any failure.
#
# Usage: scripts/e2e-tls.sh [VAULTD_BINARY]   (builds ./cmd/vaultd if omitted)
set -uo pipefail
cd "$(dirname "$0")/.."

command -v openssl >/dev/null || { echo "e2e-tls: openssl not found (apt-get install openssl)"; exit 1; }
command -v aws >/dev/null || { echo "e2e-tls: aws cli not found"; exit 1; }
python3 -c 'import boto3' 2>/dev/null || { echo "e2e-tls: boto3 not found"; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

vaultd=${1:-}
if [ -z "$vaultd" ]; then
	go build -o "$work/vaultd" ./cmd/vaultd || exit 1
	vaultd="$work/vaultd"
fi

# The machine may point AWS_CA_BUNDLE (and curl/Go at) its own bundle; this
# suite names the CA explicitly on every client, so none may come from the
# environment.
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR

# A CA and a node certificate (serial 1001) for 127.0.0.1 and localhost.
ca="$work/ca.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=vaultaire-e2e-ca \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
	-keyout "$work/ca.key" -out "$ca" 2>"$work/openssl.log" || { cat "$work/openssl.log"; exit 1; }
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
	"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
	"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$work/node.ext"
issue() { # issue SERIAL: write node.pem and node.key
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$work/new.key" -out "$work/node.csr" 2>>"$work/openssl.log" &&
		openssl x509 -req -in "$work/node.csr" -CA "$ca" -CAkey "$work/ca.key" -set_serial "$1" -days 1 \
			-extfile "$work/node.ext" -out "$work/new.pem" 2>>"$work/openssl.log" &&
		mv "$work/new.pem" "$work/node.pem" && mv "$work/new.key" "$work/node.key"
}
issue 1001 || { cat "$work/openssl.log"; exit 1; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
s3port=$(freeport); plainport=$(freeport); raftport=$(freeport)
export VAULT_ROOT_ACCESS_KEY=E2ETLSROOTKEY VAULT_ROOT_SECRET_KEY=e2e-tls-root-secret-key
endpoint="https://127.0.0.1:$s3port"
"$vaultd" server --data "$work/d1,$work/d2,$work/d3,$work/d4" --s3 "127.0.0.1:$s3port" --s3-http "127.0.0.1:$plainport" \
	--tls-cert "$work/node.pem" --tls-key "$work/node.key" \
	--raft "127.0.0.1:$raftport" --name e2e-tls --log-level info >"$work/out.log" 2>"$work/err.log" &
pid=$!
for _ in $(seq 100); do
	curl -fs --cacert "$ca" "$endpoint/_vault/health" >/dev/null 2>&1 && break
	sleep 0.1
done

passed=0; failed=0
check() { # check NAME COMMAND...: run the command, count the outcome
	local name=$1; shift
	if "$@" >"$work/check.log" 2>&1; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: $name"; sed 's/^/    /' "$work/check.log" | tail -20
	fi
}
serial() { # the serial of the certificate a new connection sees
	openssl s_client -connect "127.0.0.1:$s3port" -CAfile "$ca" -verify_return_error </dev/null 2>/dev/null |
		openssl x509 -noout -serial
}

check "banner says https://" grep -q "serving S3 on $endpoint" "$work/out.log"
check "health over https with --cacert" curl -fs --cacert "$ca" "$endpoint/_vault/health"
check "curl without the CA refuses the certificate" bash -c "! curl -fs '$endpoint/_vault/health'"
check "plain http to the TLS port gets no answer" bash -c "! curl -fs --max-time 10 'http://127.0.0.1:$s3port/_vault/health'"
check "--s3-http serves plain health" curl -fs "http://127.0.0.1:$plainport/_vault/health"
check "vaultd tenant create over https (SSL_CERT_FILE)" bash -c "SSL_CERT_FILE='$ca' '$vaultd' tenant create acme --json --endpoint '$endpoint' >'$work/acme.json'"
check "second tenant over https" bash -c "SSL_CERT_FILE='$ca' '$vaultd' tenant create globex --json --endpoint '$endpoint' >'$work/globex.json'"
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

export AWS_ACCESS_KEY_ID=$(field "$work/acme.json" access_key)
export AWS_SECRET_ACCESS_KEY=$(field "$work/acme.json" secret_key)
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
awss3() { aws --endpoint-url "$endpoint" --ca-bundle "$ca" "$@"; }
export -f awss3 serial
export endpoint ca work s3port

head -c 12000000 /dev/urandom >"$work/f12m"
check "aws without --ca-bundle refuses the certificate" bash -c "! aws --endpoint-url '$endpoint' s3 ls"
check "aws s3 mb" awss3 s3 mb s3://tls-photos
check "aws s3 cp 12 MB up (multipart)" awss3 s3 cp "$work/f12m" s3://tls-photos/big/f12m --only-show-errors
check "multipart ETag has a part count" bash -c "awss3 s3api head-object --bucket tls-photos --key big/f12m --query ETag --output text | grep -q -- '-[0-9]*\"\$'"
check "aws s3 cp down, identical" bash -c "awss3 s3 cp s3://tls-photos/big/f12m '$work/back' --only-show-errors && cmp '$work/f12m' '$work/back'"
check "aws s3 ls" bash -c "awss3 s3 ls s3://tls-photos/big/ | grep -q ' 12000000 f12m'"
check "presigned https URL works with curl --cacert" bash -c "url=\$(awss3 s3 presign s3://tls-photos/big/f12m --expires-in 60) && [[ \$url == https://* ]] && curl -fs --cacert '$ca' \"\$url\" | cmp - '$work/f12m'"
check "tampered presigned URL is refused" bash -c "! curl -fs --cacert '$ca' \"\$(awss3 s3 presign s3://tls-photos/big/f12m --expires-in 60 | sed 's/f12m/f13m/')\""

check "boto3 suite over https (verify=CA)" python3 scripts/e2e_boto3.py "$endpoint" "$work/acme.json" "$work/globex.json" "$ca"

# Certificate reload: new files, SIGHUP; new connections see serial 1002,
# the node keeps serving. A key that does not match keeps serial 1002.
check "serial before reload is 1001 (0x3E9)" bash -c "[ \"\$(serial)\" = serial=03E9 ]"
check "issue a new certificate" issue 1002
kill -HUP "$pid"
for _ in $(seq 100); do [ "$(serial)" = serial=03EA ] && break; sleep 0.1; done
check "after SIGHUP new connections see 1002 (0x3EA)" bash -c "[ \"\$(serial)\" = serial=03EA ]"
check "aws s3 ls after reload" bash -c "awss3 s3 ls s3://tls-photos/big/ | grep -q f12m"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/node.key" 2>>"$work/openssl.log"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "certificate reload failed" "$work/err.log" && break; sleep 0.1; done
check "a reload with a mismatched key is logged" grep -q "certificate reload failed.*private key does not match" "$work/err.log"
check "... and keeps serving serial 1002" bash -c "[ \"\$(serial)\" = serial=03EA ] && curl -fs --cacert '$ca' '$endpoint/_vault/health'"

kill -TERM "$pid"
check "SIGTERM stops the node cleanly" wait "$pid"
pid=""

echo "e2e-tls: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
