#!/usr/bin/env bash
# End-to-end test of a real vaultd process with the aws cli and boto3, then
# the HTTPS suite (scripts/e2e-tls.sh, which needs openssl).
# Builds vaultd, starts one node (4 drives) on free loopback ports, creates
# two tenants with `vaultd tenant create --json` and drives the node with
# the clients a user would use. Prints "N passed, M failed" and exits non-zero
# on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

command -v aws >/dev/null || { echo "e2e: aws cli not found"; exit 1; }
command -v openssl >/dev/null || { echo "e2e: openssl not found (the HTTPS suite makes its certificates with it)"; exit 1; }
python3 -c 'import boto3' 2>/dev/null || { echo "e2e: boto3 not found"; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/vaultd" ./cmd/vaultd || exit 1
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
s3port=$(freeport); raftport=$(freeport)
export VAULT_ROOT_ACCESS_KEY=E2EROOTKEY VAULT_ROOT_SECRET_KEY=e2e-root-secret-key
endpoint="http://127.0.0.1:$s3port"
"$work/vaultd" server --data "$work/d1,$work/d2,$work/d3,$work/d4" --s3 "127.0.0.1:$s3port" \
	--raft "127.0.0.1:$raftport" --name e2e --log-level warn >"$work/out.log" 2>"$work/err.log" &
pid=$!
for _ in $(seq 100); do
	curl -fs "$endpoint/_vault/health" >/dev/null 2>&1 && break
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

check "tenant create acme --json" bash -c "'$work/vaultd' tenant create acme --json --endpoint '$endpoint' >'$work/acme.json'"
check "tenant create globex --json" bash -c "'$work/vaultd' tenant create globex --json --endpoint '$endpoint' >'$work/globex.json'"
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
check "tenant create prints name, access_key, secret_key" test "$(field "$work/globex.json" name)" = globex
check "tenant list shows both" bash -c "'$work/vaultd' tenant list --endpoint '$endpoint' | grep -q globex"

export AWS_ACCESS_KEY_ID=$(field "$work/acme.json" access_key)
export AWS_SECRET_ACCESS_KEY=$(field "$work/acme.json" secret_key)
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
awss3() { aws --endpoint-url "$endpoint" "$@"; }

head -c 100000000 /dev/urandom >"$work/f100m"
check "aws s3 mb" awss3 s3 mb s3://photos
check "aws s3 cp 100 MiB (multipart)" awss3 s3 cp "$work/f100m" s3://photos/big/f100m --only-show-errors
check "multipart ETag has a part count" bash -c "aws --endpoint-url '$endpoint' s3api head-object --bucket photos --key big/f100m --query ETag --output text | grep -q -- '-[0-9]*\"\$'"
check "aws s3 cp back, identical" bash -c "aws --endpoint-url '$endpoint' s3 cp s3://photos/big/f100m '$work/back' --only-show-errors && cmp '$work/f100m' '$work/back'"
mkdir -p "$work/tree/a/b"
for i in $(seq 20); do echo "file $i" >"$work/tree/a/f$i"; echo "deep $i" >"$work/tree/a/b/g$i"; done
check "aws s3 sync up" awss3 s3 sync "$work/tree" s3://photos/tree --only-show-errors
check "aws s3 ls sees 40 synced files" bash -c "[ \$(aws --endpoint-url '$endpoint' s3 ls s3://photos/tree/ --recursive | wc -l) -eq 40 ]"
echo changed >"$work/tree/a/f1"
check "aws s3 sync again uploads the change" bash -c "aws --endpoint-url '$endpoint' s3 sync '$work/tree' s3://photos/tree | grep -q 'a/f1'"
check "aws s3 sync down" bash -c "aws --endpoint-url '$endpoint' s3 sync s3://photos/tree '$work/down' --only-show-errors && diff -r '$work/tree' '$work/down'"
check "s3api put-object with metadata" awss3 s3api put-object --bucket photos --key meta.txt --body "$work/tree/a/f2" --content-type text/plain --metadata color=blue,size=small
check "s3api head-object returns metadata" bash -c "aws --endpoint-url '$endpoint' s3api head-object --bucket photos --key meta.txt | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"Metadata\"]=={\"color\":\"blue\",\"size\":\"small\"} and d[\"ContentType\"]==\"text/plain\", d'"
check "s3api get-object range" bash -c "aws --endpoint-url '$endpoint' s3api get-object --bucket photos --key big/f100m --range bytes=1000-1999 '$work/range' >/dev/null && cmp '$work/range' <(tail -c +1001 '$work/f100m' | head -c 1000)"
check "presigned URL works with curl" bash -c "curl -fs \"\$(aws --endpoint-url '$endpoint' s3 presign s3://photos/meta.txt --expires-in 60)\" | cmp - '$work/tree/a/f2'"
check "tampered presigned URL is refused" bash -c "! curl -fs \"\$(aws --endpoint-url '$endpoint' s3 presign s3://photos/meta.txt --expires-in 60 | sed 's/meta.txt/meta.tx2/')\""
check "tenant add-key: the second key works" bash -c "'$work/vaultd' tenant add-key acme --json --endpoint '$endpoint' >'$work/acme2.json' &&
	AWS_ACCESS_KEY_ID=\$(python3 -c 'import json;print(json.load(open(\"$work/acme2.json\"))[\"access_key\"])') \
	AWS_SECRET_ACCESS_KEY=\$(python3 -c 'import json;print(json.load(open(\"$work/acme2.json\"))[\"secret_key\"])') \
	aws --endpoint-url '$endpoint' s3 ls s3://photos/meta.txt | grep -q meta.txt"
check "aws s3 rm --recursive" awss3 s3 rm s3://photos/tree --recursive --only-show-errors
check "s3api put-bucket-versioning" awss3 s3api put-bucket-versioning --bucket photos --versioning-configuration Status=Enabled
check "s3api two puts make two versions" bash -c "for i in 1 2; do aws --endpoint-url '$endpoint' s3api put-object --bucket photos --key ver.txt --body '$work/tree/a/f2' >/dev/null || exit 1; done
	[ \$(aws --endpoint-url '$endpoint' s3api list-object-versions --bucket photos --prefix ver.txt --query 'length(Versions)' --output text) -eq 2 ]"
check "s3api delete-object adds a delete marker" bash -c "aws --endpoint-url '$endpoint' s3api delete-object --bucket photos --key ver.txt | grep -q '\"DeleteMarker\": true'"
check "s3api head-object of a deleted key fails" bash -c "! aws --endpoint-url '$endpoint' s3api head-object --bucket photos --key ver.txt"
check "anonymous request is AccessDenied" bash -c "curl -s '$endpoint/photos/meta.txt' | grep -q '<Code>AccessDenied</Code>'"

# ACL and policy basics with s3api: owner-only ACLs, public-read, anonymous
# s3:GetObject by policy; grants to others refused with their S3 error code.
fails_with() { # fails_with CODE COMMAND...: the command fails and prints the S3 error code
	local code=$1; shift
	! "$@" >"$work/fw.out" 2>&1 && grep -q "($code)" "$work/fw.out" || { cat "$work/fw.out"; return 1; }
}
pol() { echo "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":$2,\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::$1/*\"}]}"; }
check "s3api get-bucket-acl: owner FULL_CONTROL" bash -c "[ \"\$(aws --endpoint-url '$endpoint' s3api get-bucket-acl --bucket photos --query 'Grants[].Permission' --output text)\" = FULL_CONTROL ]"
check "s3api put-object --acl bucket-owner-full-control" awss3 s3api put-object --bucket photos --key acl.txt --body "$work/tree/a/f2" --acl bucket-owner-full-control
check "s3api put-object-acl private" awss3 s3api put-object-acl --bucket photos --key acl.txt --acl private
check "s3api get-object-acl: owner FULL_CONTROL" bash -c "[ \"\$(aws --endpoint-url '$endpoint' s3api get-object-acl --bucket photos --key acl.txt --query 'Grants[].Permission' --output text)\" = FULL_CONTROL ]"
check "s3api put-bucket-acl public-read-write is AccessControlListNotSupported" fails_with AccessControlListNotSupported awss3 s3api put-bucket-acl --bucket photos --acl public-read-write
check "s3api put-bucket-acl --grant-read to another is AccessControlListNotSupported" fails_with AccessControlListNotSupported awss3 s3api put-bucket-acl --bucket photos --grant-read id=globex
check "s3api create-bucket --acl public-read" awss3 s3api create-bucket --bucket cli-public --acl public-read
check "s3api put-object into the public-read bucket" awss3 s3api put-object --bucket cli-public --key p.txt --body "$work/tree/a/f2"
check "anonymous GET of a public-read bucket" bash -c "curl -fs '$endpoint/cli-public/p.txt' | cmp - '$work/tree/a/f2'"
check "anonymous PUT into a public-read bucket is AccessDenied" bash -c "curl -s -X PUT --data x '$endpoint/cli-public/evil' | grep -q '<Code>AccessDenied</Code>'"
check "s3api put-bucket-acl private" awss3 s3api put-bucket-acl --bucket cli-public --acl private
check "anonymous GET after private is AccessDenied" bash -c "curl -s '$endpoint/cli-public/p.txt' | grep -q '<Code>AccessDenied</Code>'"
check "s3api put-bucket-policy naming another tenant is MalformedPolicy" fails_with MalformedPolicy awss3 s3api put-bucket-policy --bucket cli-public --policy "$(pol cli-public '{"AWS":"arn:aws:iam::globex:root"}')"
check "s3api get-bucket-policy: none stored" fails_with NoSuchBucketPolicy awss3 s3api get-bucket-policy --bucket cli-public
check "s3api put-bucket-policy anonymous s3:GetObject" awss3 s3api put-bucket-policy --bucket cli-public --policy "$(pol cli-public '"*"')"
check "s3api get-bucket-policy-status: public" bash -c "[ \"\$(aws --endpoint-url '$endpoint' s3api get-bucket-policy-status --bucket cli-public --query PolicyStatus.IsPublic --output text)\" = True ]"
check "anonymous GET allowed by the policy" bash -c "curl -fs '$endpoint/cli-public/p.txt' | cmp - '$work/tree/a/f2'"
check "s3api delete-bucket-policy" awss3 s3api delete-bucket-policy --bucket cli-public
check "anonymous GET after the policy's deletion is AccessDenied" bash -c "curl -s '$endpoint/cli-public/p.txt' | grep -q '<Code>AccessDenied</Code>'"

check "boto3 suite" python3 scripts/e2e_boto3.py "$endpoint" "$work/acme.json" "$work/globex.json"
check "features, boto3 (scripts/e2e_nodes.py)" python3 scripts/e2e_nodes.py "$work/acme.json" "$endpoint"
check "features, aws cli (scripts/e2e_nodes_cli.sh)" bash scripts/e2e_nodes_cli.sh "$work/acme.json" "$endpoint"

kill -TERM "$pid"
check "SIGTERM stops the node cleanly" wait "$pid"
pid=""

# The same clients over HTTPS against a node with --tls-cert/--tls-key.
check "HTTPS suite (scripts/e2e-tls.sh)" bash scripts/e2e-tls.sh "$work/vaultd"

echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
