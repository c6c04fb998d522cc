#!/usr/bin/env bash
# Feature end-to-end across nodes with the aws cli (s3api): bucket
# configuration set through the first endpoint is read and enforced
# through the others (with one endpoint, all through that node).
#
#   scripts/e2e_nodes_cli.sh TENANT.json ENDPOINT [ENDPOINT...]
#
# Prints a FAIL line per check that does not hold and "N passed, M failed";
# exits non-zero on any failure. The boto3 half is scripts/e2e_nodes.py.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 TENANT.json ENDPOINT [ENDPOINT...]" >&2; exit 2; }
creds=$1; shift
eps=("$@")
a=${eps[0]} b=${eps[$((1 % $#))]} c=${eps[$((2 % $#))]}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$creds" "$1"; }
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
AWS_ACCESS_KEY_ID=$(field access_key)
AWS_SECRET_ACCESS_KEY=$(field secret_key)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')

passed=0 failed=0
check() { # check NAME COMMAND...
	local name=$1; shift
	if "$@" >"$work/out" 2>&1; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: $name"; sed 's/^/    /' "$work/out" | tail -10
	fi
}
at() { local ep=$1; shift; aws --endpoint-url "$ep" s3api "$@"; }
q() { local ep=$1; shift; aws --endpoint-url "$ep" s3api "$@" --output text; }
# fails_with CODE EP ARGS...: the call fails with the S3 error code CODE.
fails_with() {
	local code=$1; shift
	if at "$@" >"$work/fw" 2>&1; then echo "succeeded, want $code"; return 1; fi
	grep -q "($code)" "$work/fw" || { cat "$work/fw"; return 1; }
}
is() { [ "$1" = "$2" ] || { echo "got '$1', want '$2'"; return 1; }; }

vb=cli-nv-$run lb=cli-nlock-$run pb=cli-nplain-$run
echo hello >"$work/body"
until=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)

check "versioning: bucket through a" at "$a" create-bucket --bucket "$vb"
check "versioning: enabled through a" at "$a" put-bucket-versioning --bucket "$vb" --versioning-configuration Status=Enabled
check "versioning: Enabled through b" is "$(q "$b" get-bucket-versioning --bucket "$vb" --query Status)" Enabled
check "versioning: two PUTs through b and c" bash -c "$(declare -f at); at $b put-object --bucket $vb --key k --body $work/body >/dev/null && at $c put-object --bucket $vb --key k --body $work/body >/dev/null"
check "versioning: two versions listed through a" is "$(q "$a" list-object-versions --bucket "$vb" --query 'length(Versions)')" 2
check "versioning: a bad status is IllegalVersioningConfigurationException" fails_with IllegalVersioningConfigurationException "$b" put-bucket-versioning --bucket "$vb" --versioning-configuration Status=On

check "lock: bucket with object lock through a" at "$a" create-bucket --bucket "$lb" --object-lock-enabled-for-bucket
check "lock: Enabled through b" is "$(q "$b" get-object-lock-configuration --bucket "$lb" --query ObjectLockConfiguration.ObjectLockEnabled)" Enabled
vid=$(q "$b" put-object --bucket "$lb" --key locked --body "$work/body" --object-lock-mode COMPLIANCE --object-lock-retain-until-date "$until" --query VersionId)
check "lock: COMPLIANCE retention through c" is "$(q "$c" get-object-retention --bucket "$lb" --key locked --version-id "$vid" --query Retention.Mode)" COMPLIANCE
check "lock: delete of the COMPLIANCE version through c is AccessDenied" fails_with AccessDenied "$c" delete-object --bucket "$lb" --key locked --version-id "$vid"
check "lock: with bypass through a, still AccessDenied" fails_with AccessDenied "$a" delete-object --bucket "$lb" --key locked --version-id "$vid" --bypass-governance-retention
gvid=$(q "$a" put-object --bucket "$lb" --key gov --body "$work/body" --object-lock-mode GOVERNANCE --object-lock-retain-until-date "$until" --query VersionId)
check "lock: GOVERNANCE delete without bypass through b is AccessDenied" fails_with AccessDenied "$b" delete-object --bucket "$lb" --key gov --version-id "$gvid"
check "lock: GOVERNANCE delete with bypass through c" at "$c" delete-object --bucket "$lb" --key gov --version-id "$gvid" --bypass-governance-retention

check "tagging: bucket for the rest through a" at "$a" create-bucket --bucket "$pb"
check "tagging: put-object with tags through b" at "$b" put-object --bucket "$pb" --key t --body "$work/body" --tagging 'team=red'
check "tagging: tags through c" is "$(q "$c" get-object-tagging --bucket "$pb" --key t --query 'TagSet[0].Value')" red
check "tagging: 11 tags are InvalidTag" fails_with InvalidTag "$a" put-object-tagging --bucket "$pb" --key t --tagging "TagSet=[$(for i in $(seq 11); do printf '{Key=k%d,Value=v},' "$i"; done | sed 's/,$//')]"

check "lifecycle: set through a" at "$a" put-bucket-lifecycle-configuration --bucket "$pb" --lifecycle-configuration '{"Rules":[{"ID":"old","Status":"Enabled","Filter":{"Prefix":"logs/"},"Expiration":{"Days":7}}]}'
check "lifecycle: rule through b" is "$(q "$b" get-bucket-lifecycle-configuration --bucket "$pb" --query 'Rules[0].ID')" old
check "lifecycle: deleted through c" at "$c" delete-bucket-lifecycle --bucket "$pb"
check "lifecycle: gone through a" fails_with NoSuchLifecycleConfiguration "$a" get-bucket-lifecycle-configuration --bucket "$pb"

check "conditional: If-None-Match * creates through a" at "$a" put-object --bucket "$pb" --key once --body "$work/body" --if-none-match '*'
check "conditional: again through b is PreconditionFailed" fails_with PreconditionFailed "$b" put-object --bucket "$pb" --key once --body "$work/body" --if-none-match '*'

check "cors: set through a" at "$a" put-bucket-cors --bucket "$pb" --cors-configuration '{"CORSRules":[{"AllowedOrigins":["https://app.example"],"AllowedMethods":["GET"]}]}'
check "cors: rule through b" is "$(q "$b" get-bucket-cors --bucket "$pb" --query 'CORSRules[0].AllowedOrigins[0]')" https://app.example
check "cors: preflight through c" bash -c "curl -s -o /dev/null -w '%{http_code}' -X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: GET' $c/$pb/t | grep -qx 200"

check "policy: anonymous GET allowed through b once set through a" bash -c "$(declare -f at); at $a put-bucket-policy --bucket $pb --policy '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\",\"Resource\":\"arn:aws:s3:::$pb/*\"}]}' &&
	curl -fs $b/$pb/t | cmp - $work/body"
check "policy: deleted through c, anonymous GET through b is 403" bash -c "$(declare -f at); at $c delete-bucket-policy --bucket $pb &&
	curl -s -o /dev/null -w '%{http_code}' $b/$pb/t | grep -qx 403"

echo "e2e_nodes_cli: ${#eps[@]} endpoint(s), $passed passed, $failed failed"
[ "$failed" -eq 0 ]
