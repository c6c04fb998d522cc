#!/usr/bin/env bash
# The client matrix: the same realistic sequence with every S3 client a user
# is likely to bring, as a tenant, against one node and a 3-node cluster.
#
#   scripts/clients.sh                 CI mode: 20 MB multipart objects
#   CLIENTS_LONG=1 scripts/clients.sh  200 MB multipart objects
#   CLIENTS="aws rclone" CLIENTS_TOPOLOGIES=single scripts/clients.sh   a subset
#
# Clients: the aws cli (+ boto3 for a presigned PUT), rclone, s3cmd, the AWS
# SDK for JavaScript v3 (scripts/clients/sdk.mjs, installed with npm ci from
# the committed package-lock.json) and MinIO's mc (built with go install at
# a pinned version into ~/.cache/vaultaire-clients, in the background while
# the others run; skipped with a message if it cannot be built in time).
# rclone and s3cmd come from apt-get when missing.
#
# Each topology gets its own vaultd processes on free loopback ports under
# a temporary directory, and one tenant (`vaultd tenant create --json`)
# whose default rate limit (100 requests/s, burst 200) is left alone. Per
# topology a 1,500-key bucket is filled once (aws s3 cp --recursive),
# listed page by page by every client, fetched whole with
# `s3cmd get --recursive` and removed with `aws s3 rb --force`. Per client,
# in its own bucket: create, small upload with metadata and content type,
# multipart upload, download from another node and sha256 check, range GET,
# server-side copy (also of the multipart object), move, sync up and down
# twice (the second transferring nothing), multi-delete, presigned GET (and
# PUT where the client can presign one) fetched with curl, forced bucket
# removal.
#
# Prints PASS/FAIL per check, XFAIL for known failures (counted apart), the
# time per client, and "N passed, M failed" last; exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

long=${CLIENTS_LONG:-0}
bigmb=20
[ "$long" = 1 ] && bigmb=200
clients=${CLIENTS:-aws rclone s3cmd js mc}
topologies=${CLIENTS_TOPOLOGIES:-single cluster}
listcount=1500
mc_version=v0.0.0-20250313080218-cf909e1063a9 # github.com/minio/mc RELEASE.2025-03-12
mc_build_timeout=${CLIENTS_MC_BUILD_TIMEOUT:-480}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vaultaire-clients

say() { echo "clients: $*"; }
t0=$SECONDS

work=$(mktemp -d)
pids=()
mcpid=""
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	[ -n "$mcpid" ] && kill -- "-$mcpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# ---- tools ---------------------------------------------------------------
want() { [[ " $clients " == *" $1 "* ]]; }
sudo=""
[ "$(id -u)" != 0 ] && sudo=sudo
apt_missing=()
want rclone && ! command -v rclone >/dev/null && apt_missing+=(rclone)
want s3cmd && ! command -v s3cmd >/dev/null && apt_missing+=(s3cmd)
if [ ${#apt_missing[@]} -gt 0 ]; then
	say "installing ${apt_missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get install -y -q "${apt_missing[@]}" >"$work/apt.log" 2>&1 ||
		{ $sudo apt-get update -q >>"$work/apt.log" 2>&1 && $sudo apt-get install -y -q "${apt_missing[@]}" >>"$work/apt.log" 2>&1; } ||
		{ cat "$work/apt.log"; say "apt-get install ${apt_missing[*]} failed"; exit 1; }
fi
command -v aws >/dev/null || { say "aws cli not found"; exit 1; }
python3 -c 'import boto3' 2>/dev/null || { say "boto3 not found"; exit 1; }
if want js; then
	command -v node >/dev/null || { say "node not found"; exit 1; }
	if [ ! -f scripts/clients/node_modules/.package-lock.json ] ||
		[ scripts/clients/package-lock.json -nt scripts/clients/node_modules/.package-lock.json ]; then
		say "npm ci in scripts/clients"
		(cd scripts/clients && npm ci --no-audit --no-fund --loglevel=error) || { say "npm ci failed"; exit 1; }
	fi
fi
# mc: built in the background; used if ready when its turn comes.
mc=""
if want mc; then
	mc=$cache/mc-$mc_version
	if [ ! -x "$mc" ]; then
		say "building MinIO mc $mc_version in the background (go install, at most ${mc_build_timeout}s)"
		mkdir -p "$cache"
		# setsid: its own process group, so cleanup can stop the whole build.
		GOBIN=$work/mcbin setsid bash -c 'timeout "$1" nice -n 5 go install "github.com/minio/mc@$2" && mv "$3/mc" "$4"' \
			mc-build "$mc_build_timeout" "$mc_version" "$work/mcbin" "$mc" >"$work/mc-build.log" 2>&1 &
		mcpid=$!
	fi
fi

say "building vaultd"
go build -o "$work/vaultd" ./cmd/vaultd || exit 1
vaultd=$work/vaultd

# ---- checks --------------------------------------------------------------
passed=0
failed=0
xfailed=0
check() { # check NAME COMMAND...: run the command, count the outcome
	local name=$1
	shift
	local t=$SECONDS
	if "$@" >"$work/check.log" 2>&1; then
		passed=$((passed + 1))
		echo "PASS: $name ($((SECONDS - t))s)"
	else
		failed=$((failed + 1))
		echo "FAIL: $name ($((SECONDS - t))s)"
		sed 's/^/    /' "$work/check.log" | tail -20
	fi
}
xcheck() { # xcheck NAME REASON COMMAND...: a check expected to fail for REASON
	local name=$1 reason=$2
	shift 2
	if "$@" >"$work/check.log" 2>&1; then
		passed=$((passed + 1))
		echo "PASS (expected to fail: $reason): $name"
	else
		xfailed=$((xfailed + 1))
		echo "XFAIL (known: $reason): $name"
		sed 's/^/    /' "$work/check.log" | tail -5
	fi
}
skip() { echo "SKIP: $*"; }
sum() { sha256sum "$1" | cut -d' ' -f1; }

# ---- servers -------------------------------------------------------------
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
healthy() { curl -fs -o /dev/null --max-time 2 "$1/_vault/health"; }
export VAULT_ROOT_ACCESS_KEY=CLIENTSROOTKEY VAULT_ROOT_SECRET_KEY=clients-root-secret-key
export VAULT_CLUSTER_SECRET
VAULT_CLUSTER_SECRET=$(LC_ALL=C tr -dc 0-9a-f </dev/urandom | head -c 64)
endpoints=()

wait_up() { # wait_up ENDPOINT PID LOG
	local deadline=$((SECONDS + 60))
	until healthy "$1"; do
		if ! kill -0 "$2" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
			say "node at $1 did not come up; last lines of $3:"
			tail -20 "$3"
			return 1
		fi
		sleep 0.2
	done
}

start_single() {
	local d=$work/single s3 raft
	mkdir -p "$d"
	s3=$(freeport)
	raft=$(freeport)
	"$vaultd" server --name single --data "$d/d1,$d/d2,$d/d3,$d/d4" --s3 "127.0.0.1:$s3" --raft "127.0.0.1:$raft" \
		--log-level warn >"$d/log" 2>&1 &
	pids+=($!)
	endpoints=("http://127.0.0.1:$s3" "http://127.0.0.1:$s3")
	wait_up "${endpoints[0]}" $! "$d/log"
}

start_cluster() {
	local k d s3 raft rpc gossip join="" first_gossip="" st alive drives deadline
	endpoints=()
	for k in 1 2 3; do
		d=$work/cluster/n$k
		mkdir -p "$d"
		s3=$(freeport) raft=$(freeport) rpc=$(freeport) gossip=$(freeport)
		[ "$k" = 1 ] && first_gossip=127.0.0.1:$gossip
		[ "$k" != 1 ] && join=$first_gossip
		"$vaultd" server --name "n$k" --data "$d/d0,$d/d1" --s3 "127.0.0.1:$s3" --raft "127.0.0.1:$raft" \
			--rpc "127.0.0.1:$rpc" --gossip "127.0.0.1:$gossip" ${join:+--join "$join"} --log-level warn >"$d/log" 2>&1 &
		pids+=($!)
		endpoints+=("http://127.0.0.1:$s3")
		wait_up "http://127.0.0.1:$s3" $! "$d/log" || return 1
	done
	# Ready: three alive members and six drives in the map.
	deadline=$((SECONDS + 90))
	while :; do
		st=$("$vaultd" cluster status --json --endpoint "${endpoints[0]}" 2>/dev/null)
		alive=$(grep -c '"state": "alive"' <<<"$st")
		drives=$(grep -c '"class":' <<<"$st")
		[ "$alive" -ge 3 ] && [ "$drives" -ge 6 ] && return 0
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "cluster not formed: $alive alive, $drives drives"
			tail -20 "$work"/cluster/n*/log
			return 1
		fi
		sleep 0.5
	done
}

stop_nodes() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pids=()
}

# ---- test data -----------------------------------------------------------
head -c $((bigmb * 1000 * 1000)) /dev/urandom >"$work/big.bin"
bigsum=$(sum "$work/big.bin")
printf 'hello from the client matrix\n' >"$work/small.txt"
mkdir -p "$work/tree/a/b" "$work/list"
for i in $(seq 15); do
	echo "file $i" >"$work/tree/a/f$i"
	echo "deep $i" >"$work/tree/a/b/g$i"
done
for i in $(seq -w "$listcount"); do printf '%s' "$i" >"$work/list/k$i"; done

# ---- per-client sequences -------------------------------------------------
# Each gets: ep (write endpoint), ep2 (another node for reads), b (bucket),
# lb (the 1,500-key bucket), d (scratch directory). Credentials are in
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

count_lines() { # count_lines WANT COMMAND...: the command prints WANT lines
	local n
	n=$("${@:2}" | wc -l) || return 1
	[ "$n" -eq "$1" ] || { echo "$n lines, want $1"; return 1; }
}
same() { # same FILE SHA256
	[ "$(sum "$1")" = "$2" ] || { echo "$1: sha256 differs"; return 1; }
}
range_ok() { # range_ok FILE: FILE holds bytes 1000000-1000999 of big.bin
	cmp "$1" <(tail -c +1000001 "$work/big.bin" | head -c 1000)
}
# The checks below on what was stored go through the aws cli, the reference.
awsq() { aws --endpoint-url "$ep" "$@"; }
stored_meta() { # stored_meta KEY: content type text/plain and color=blue
	awsq s3api head-object --bucket "$b" --key "$1" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ContentType"]=="text/plain" and d["Metadata"].get("color")=="blue", d'
}
multipart_etag() { # multipart_etag KEY: the ETag has a part count
	awsq s3api head-object --bucket "$b" --key "$1" --query ETag --output text | grep -q -- '-[0-9]*"$'
}
absent() { ! awsq s3api head-object --bucket "$b" --key "$1" >/dev/null 2>&1; }
bucket_gone() { ! awsq s3api head-bucket --bucket "$b" >/dev/null 2>&1; }
nothing_after() { # nothing_after PATTERN COMMAND...: the command's output has no PATTERN line
	local out
	out=$("${@:2}" 2>&1) || { echo "$out"; return 1; }
	if grep -E "$1" <<<"$out"; then return 1; fi
	return 0
}
transfers() { # transfers PATTERN COMMAND...: the command's output has a PATTERN line (so the pattern does see transfers)
	local out
	out=$("${@:2}" 2>&1) || { echo "$out"; return 1; }
	grep -qE "$1" <<<"$out" || { echo "no line matching $1 in:"; echo "$out"; return 1; }
}

run_aws() {
	local a=(aws --endpoint-url "$ep") a2=(aws --endpoint-url "$ep2")
	check "aws s3 mb" "${a[@]}" s3 mb "s3://$b"
	check "aws s3 cp small with metadata and content type" "${a[@]}" s3 cp "$work/small.txt" "s3://$b/small.txt" --content-type text/plain --metadata color=blue --only-show-errors
	check "aws: metadata and content type stored" stored_meta small.txt
	check "aws s3api head-object from another node shows them" bash -c "$(printf '%q ' "${a2[@]}") s3api head-object --bucket $b --key small.txt | grep -q '\"color\": \"blue\"'"
	check "aws s3 cp ${bigmb} MB (multipart)" "${a[@]}" s3 cp "$work/big.bin" "s3://$b/big.bin" --only-show-errors
	check "aws: multipart ETag" multipart_etag big.bin
	check "aws s3 cp down from another node, sha256" bash -c "$(printf '%q ' "${a2[@]}") s3 cp s3://$b/big.bin $d/big.bin --only-show-errors && [ \$(sha256sum $d/big.bin | cut -d' ' -f1) = $bigsum ]"
	check "aws s3api get-object --range" bash -c "$(printf '%q ' "${a[@]}") s3api get-object --bucket $b --key big.bin --range bytes=1000000-1000999 $d/range >/dev/null && cmp $d/range <(tail -c +1000001 $work/big.bin | head -c 1000)"
	check "aws s3 cp server-side copy (small)" "${a[@]}" s3 cp "s3://$b/small.txt" "s3://$b/small-copy.txt" --only-show-errors
	check "aws: copy keeps metadata" stored_meta small-copy.txt
	check "aws s3 cp server-side copy of the multipart object (UploadPartCopy)" "${a[@]}" s3 cp "s3://$b/big.bin" "s3://$b/big-copy.bin" --only-show-errors
	check "aws: the copy reads back identical" bash -c "$(printf '%q ' "${a2[@]}") s3 cp s3://$b/big-copy.bin $d/big-copy.bin --only-show-errors && [ \$(sha256sum $d/big-copy.bin | cut -d' ' -f1) = $bigsum ]"
	check "aws s3 mv" "${a[@]}" s3 mv "s3://$b/small-copy.txt" "s3://$b/moved.txt" --only-show-errors
	check "aws: moved, source gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent small-copy.txt && ! absent moved.txt"
	check "aws s3api list-objects-v2 (pages of 500): $listcount keys" bash -c 'n=$("${@:2}" | tr "\t" "\n" | grep -c .); echo "$n keys"; [ "$n" = "$1" ]' - "$listcount" "${a2[@]}" s3api list-objects-v2 --bucket "$lb" --page-size 500 --query 'Contents[].Key' --output text
	check "aws s3 ls --recursive: $listcount keys" count_lines "$listcount" "${a[@]}" s3 ls "s3://$lb" --recursive
	check "aws s3 sync up" transfers '^upload:' "${a[@]}" s3 sync "$work/tree" "s3://$b/tree" --no-progress
	check "aws s3 sync up again transfers nothing" nothing_after '^upload:' "${a[@]}" s3 sync "$work/tree" "s3://$b/tree" --no-progress
	check "aws s3 sync down" bash -c "$(printf '%q ' "${a2[@]}") s3 sync s3://$b/tree $d/down --only-show-errors && diff -r $work/tree $d/down"
	check "aws s3 sync down again transfers nothing" nothing_after '^download:' "${a2[@]}" s3 sync "s3://$b/tree" "$d/down" --no-progress
	check "aws s3 sync --exact-timestamps down" transfers '^download:' "${a[@]}" s3 sync "s3://$b/tree" "$d/exact" --exact-timestamps --no-progress
	check "aws s3 sync --exact-timestamps down again transfers nothing" nothing_after '^download:' "${a[@]}" s3 sync "s3://$b/tree" "$d/exact" --exact-timestamps --no-progress
	check "aws s3api delete-objects (multi-delete)" bash -c "$(printf '%q ' "${a[@]}") s3api delete-objects --bucket $b --delete 'Objects=[{Key=moved.txt},{Key=big-copy.bin},{Key=no-such-key}]' --query 'length(Deleted)' --output text | grep -qx 3"
	check "aws: deleted keys are gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent moved.txt && absent big-copy.bin"
	check "aws s3 presign GET fetched with curl" bash -c "curl -fsS \"\$($(printf '%q ' "${a[@]}") s3 presign s3://$b/small.txt --expires-in 300)\" | cmp - $work/small.txt"
	check "boto3 presigned PUT uploaded with curl" bash -c "url=\$(python3 -c 'import boto3,sys; print(boto3.client(\"s3\", endpoint_url=sys.argv[1], region_name=\"us-east-1\").generate_presigned_url(\"put_object\", Params={\"Bucket\": sys.argv[2], \"Key\": \"put.txt\"}, ExpiresIn=300))' $ep $b) &&
		curl -fsS -T $work/small.txt \"\$url\" && $(printf '%q ' "${a2[@]}") s3 cp s3://$b/put.txt - | cmp - $work/small.txt"
	check "aws s3 rb --force" "${a[@]}" s3 rb "s3://$b" --force
	check "aws: bucket gone" bucket_gone
}

run_rclone() {
	local r=(env -u AWS_CA_BUNDLE RCLONE_CONFIG="$work/rclone.conf" rclone --s3-provider Other --s3-region us-east-1
		--s3-access-key-id "$AWS_ACCESS_KEY_ID" --s3-secret-access-key "$AWS_SECRET_ACCESS_KEY" --s3-force-path-style=true)
	local r1=("${r[@]}" --s3-endpoint "$ep") r2=("${r[@]}" --s3-endpoint "$ep2")
	: >"$work/rclone.conf"
	check "rclone mkdir" "${r1[@]}" mkdir ":s3:$b"
	check "rclone copyto small with metadata and content type" "${r1[@]}" copyto "$work/small.txt" ":s3:$b/small.txt" \
		--header-upload "Content-Type: text/plain" --header-upload "X-Amz-Meta-Color: blue"
	check "rclone: metadata and content type stored" stored_meta small.txt
	check "rclone lsjson -M from another node shows them" bash -c "$(printf '%q ' "${r2[@]}") lsjson -M :s3:$b/small.txt | grep -q '\"color\": *\"blue\"'"
	check "rclone copyto ${bigmb} MB (multipart, 5 MiB chunks)" "${r1[@]}" copyto "$work/big.bin" ":s3:$b/big.bin" --s3-upload-cutoff 5M --s3-chunk-size 5M
	check "rclone: multipart ETag" multipart_etag big.bin
	check "rclone copyto down from another node, sha256" bash -c "$(printf '%q ' "${r2[@]}") copyto :s3:$b/big.bin $d/big.bin && [ \$(sha256sum $d/big.bin | cut -d' ' -f1) = $bigsum ]"
	check "rclone cat --offset --count (range)" bash -c "$(printf '%q ' "${r1[@]}") cat --offset 1000000 --count 1000 :s3:$b/big.bin >$d/range && cmp $d/range <(tail -c +1000001 $work/big.bin | head -c 1000)"
	check "rclone copyto server-side copy (small)" "${r1[@]}" copyto ":s3:$b/small.txt" ":s3:$b/small-copy.txt"
	check "rclone: copy keeps metadata" stored_meta small-copy.txt
	check "rclone copyto server-side copy of the multipart object" "${r1[@]}" copyto ":s3:$b/big.bin" ":s3:$b/big-copy.bin"
	check "rclone: the copy reads back identical" bash -c "$(printf '%q ' "${r2[@]}") cat :s3:$b/big-copy.bin | sha256sum | grep -q $bigsum"
	check "rclone moveto" "${r1[@]}" moveto ":s3:$b/small-copy.txt" ":s3:$b/moved.txt"
	check "rclone: moved, source gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent small-copy.txt && ! absent moved.txt"
	check "rclone lsf: $listcount keys" count_lines "$listcount" "${r2[@]}" lsf ":s3:$lb"
	check "rclone sync up" transfers ': Copied' "${r1[@]}" sync -v "$work/tree" ":s3:$b/tree"
	check "rclone sync up again transfers nothing" nothing_after ': Copied' "${r1[@]}" sync -v "$work/tree" ":s3:$b/tree"
	check "rclone sync down" bash -c "$(printf '%q ' "${r2[@]}") sync :s3:$b/tree $d/down && diff -r $work/tree $d/down"
	check "rclone sync down again transfers nothing" nothing_after ': Copied' "${r2[@]}" sync -v ":s3:$b/tree" "$d/down"
	check "rclone delete --include (deletes the matching objects)" "${r1[@]}" delete ":s3:$b" --include "/moved.txt" --include "/big-copy.bin"
	check "rclone: deleted keys are gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent moved.txt && absent big-copy.bin"
	check "rclone link (presigned GET) fetched with curl" bash -c "curl -fsS \"\$($(printf '%q ' "${r1[@]}") link :s3:$b/small.txt --expire 5m)\" | cmp - $work/small.txt"
	check "rclone purge" "${r1[@]}" purge ":s3:$b"
	check "rclone: bucket gone" bucket_gone
}

run_s3cmd() {
	local hp1=${ep#http://} hp2=${ep2#http://}
	local cfg=$work/s3cmd.cfg
	cat >"$cfg" <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $hp1
host_bucket = $hp1
use_https = False
signature_v2 = False
bucket_location = us-east-1
EOF
	sed "s/$hp1/$hp2/g" "$cfg" >"$cfg.2"
	local s=(s3cmd -c "$cfg" --no-progress) s2=(s3cmd -c "$cfg.2" --no-progress)
	check "s3cmd mb" "${s[@]}" mb "s3://$b"
	check "s3cmd put small with metadata and content type" "${s[@]}" put "$work/small.txt" "s3://$b/small.txt" --mime-type=text/plain --no-guess-mime-type --add-header=x-amz-meta-color:blue
	check "s3cmd: metadata and content type stored" stored_meta small.txt
	check "s3cmd info from another node shows them" bash -c "$(printf '%q ' "${s2[@]}") info s3://$b/small.txt | grep -E 'MIME type: *text/plain' && $(printf '%q ' "${s2[@]}") info s3://$b/small.txt | grep -E 'x-amz-meta-color: *blue'"
	check "s3cmd put ${bigmb} MB (multipart, 5 MB chunks)" "${s[@]}" put "$work/big.bin" "s3://$b/big.bin" --multipart-chunk-size-mb=5
	check "s3cmd: multipart ETag" multipart_etag big.bin
	check "s3cmd get from another node, sha256" bash -c "$(printf '%q ' "${s2[@]}") get s3://$b/big.bin $d/big.bin && [ \$(sha256sum $d/big.bin | cut -d' ' -f1) = $bigsum ]"
	skip "s3cmd range GET (s3cmd has no range option)"
	check "s3cmd cp server-side copy (small)" "${s[@]}" cp "s3://$b/small.txt" "s3://$b/small-copy.txt"
	check "s3cmd: copy keeps metadata" stored_meta small-copy.txt
	check "s3cmd cp server-side copy of the multipart object" "${s[@]}" cp "s3://$b/big.bin" "s3://$b/big-copy.bin"
	check "s3cmd: the copy reads back identical" bash -c "$(printf '%q ' "${s2[@]}") get s3://$b/big-copy.bin $d/big-copy.bin && [ \$(sha256sum $d/big-copy.bin | cut -d' ' -f1) = $bigsum ]"
	check "s3cmd mv" "${s[@]}" mv "s3://$b/small-copy.txt" "s3://$b/moved.txt"
	check "s3cmd: moved, source gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent small-copy.txt && ! absent moved.txt"
	check "s3cmd ls: $listcount keys" count_lines "$listcount" "${s2[@]}" ls "s3://$lb/"
	check "s3cmd sync up" transfers '^upload:' "${s[@]}" sync "$work/tree/" "s3://$b/tree/"
	check "s3cmd sync up again transfers nothing" nothing_after '^upload:' "${s[@]}" sync "$work/tree/" "s3://$b/tree/"
	check "s3cmd sync down" bash -c "mkdir -p $d/down && $(printf '%q ' "${s2[@]}") sync s3://$b/tree/ $d/down/ && diff -r $work/tree $d/down"
	check "s3cmd sync down again transfers nothing" nothing_after '^download:' "${s2[@]}" sync "s3://$b/tree/" "$d/down/"
	check "s3cmd del --recursive (multi-delete)" "${s[@]}" del --recursive "s3://$b/tree/"
	check "s3cmd: deleted keys are gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent tree/a/f1 && absent tree/a/b/g15"
	check "s3cmd signurl (presigned GET, SigV2) fetched with curl" bash -c "curl -fsS \"\$($(printf '%q ' "${s[@]}") signurl s3://$b/small.txt +300)\" | cmp - $work/small.txt"
	check "s3cmd rb --recursive" "${s[@]}" rb --recursive "s3://$b"
	check "s3cmd: bucket gone" bucket_gone
}

run_js() {
	local out
	out=$(cd scripts/clients && NODE_NO_WARNINGS=1 node sdk.mjs "$ep" "$ep2" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$b" "$work/big.bin" "$lb" "$listcount" 2>&1)
	local line n=0
	while IFS= read -r line; do
		case $line in
		PASS\ *) passed=$((passed + 1)); n=$((n + 1)); echo "PASS: ${line#PASS }" ;;
		FAIL\ *) failed=$((failed + 1)); n=$((n + 1)); echo "FAIL: ${line#FAIL }" ;;
		*) echo "    $line" ;;
		esac
	done <<<"$out"
	if [ "$n" -lt 14 ]; then
		failed=$((failed + 1))
		echo "FAIL: js: only $n of 14 checks ran"
	fi
}

run_mc() {
	if [ ! -x "$mc" ] && [ -n "$mcpid" ]; then
		say "waiting for the mc build"
		wait "$mcpid"
		mcpid=""
	fi
	if [ ! -x "$mc" ]; then
		echo "SKIP: mc (go install github.com/minio/mc@$mc_version did not finish within ${mc_build_timeout}s or failed):"
		tail -5 "$work/mc-build.log" 2>/dev/null | sed 's/^/    /'
		return
	fi
	local h1=${ep#http://} h2=${ep2#http://}
	local m=(env MC_CONFIG_DIR="$work/mc" "MC_HOST_v1=http://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@$h1"
		"MC_HOST_v2=http://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@$h2" "$mc" --quiet --no-color)
	check "mc mb" "${m[@]}" mb "v1/$b"
	check "mc cp small with metadata and content type" "${m[@]}" cp --attr "Content-Type=text/plain;color=blue" "$work/small.txt" "v1/$b/small.txt"
	check "mc: metadata and content type stored" stored_meta small.txt
	check "mc stat from another node shows them" bash -c "$(printf '%q ' "${m[@]}") stat --json v2/$b/small.txt | grep -qi '\"X-Amz-Meta-Color\": *\"blue\"'"
	check "mc cp ${bigmb} MB (multipart)" "${m[@]}" cp "$work/big.bin" "v1/$b/big.bin"
	if [ "$bigmb" -gt 16 ]; then check "mc: multipart ETag" multipart_etag big.bin; fi
	check "mc cp down from another node, sha256" bash -c "$(printf '%q ' "${m[@]}") cp v2/$b/big.bin $d/big.bin && [ \$(sha256sum $d/big.bin | cut -d' ' -f1) = $bigsum ]"
	check "mc cat --offset (range)" bash -c "$(printf '%q ' "${m[@]}") cat --offset 1000000 v1/$b/big.bin | head -c 1000 >$d/range; cmp $d/range <(tail -c +1000001 $work/big.bin | head -c 1000)"
	check "mc cp server-side copy (small)" "${m[@]}" cp "v1/$b/small.txt" "v1/$b/small-copy.txt"
	check "mc: copy keeps metadata" stored_meta small-copy.txt
	check "mc cp server-side copy of the multipart object" "${m[@]}" cp "v1/$b/big.bin" "v1/$b/big-copy.bin"
	check "mc: the copy reads back identical" bash -c "$(printf '%q ' "${m[@]}") cat v2/$b/big-copy.bin | sha256sum | grep -q $bigsum"
	check "mc mv" "${m[@]}" mv "v1/$b/small-copy.txt" "v1/$b/moved.txt"
	check "mc: moved, source gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent small-copy.txt && ! absent moved.txt"
	check "mc ls --recursive: $listcount keys" count_lines "$listcount" "${m[@]}" ls --recursive "v2/$lb"
	check "mc mirror up" transfers '"status": *"success".*"source"' "${m[@]}" mirror --json "$work/tree" "v1/$b/tree"
	check "mc mirror up again transfers nothing" nothing_after '"status": *"success".*"source"' "${m[@]}" mirror --json "$work/tree" "v1/$b/tree"
	check "mc mirror down" bash -c "$(printf '%q ' "${m[@]}") mirror v2/$b/tree $d/down && diff -r $work/tree $d/down"
	check "mc mirror down again transfers nothing" nothing_after '"status": *"success".*"source"' "${m[@]}" mirror --json "v2/$b/tree" "$d/down"
	check "mc rm --recursive --force (multi-delete)" "${m[@]}" rm --recursive --force "v1/$b/tree"
	check "mc: deleted keys are gone" bash -c "$(declare -f absent awsq); ep=$ep b=$b; absent tree/a/f1 && absent tree/a/b/g15"
	check "mc share download (presigned GET) fetched with curl" bash -c "curl -fsS \"\$($(printf '%q ' "${m[@]}") share download --json v1/$b/small.txt | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"share\"])')\" | cmp - $work/small.txt"
	check "mc rb --force" "${m[@]}" rb --force "v1/$b"
	check "mc: bucket gone" bucket_gone
}

# ---- the matrix ----------------------------------------------------------
declare -A took
run_topology() { # run_topology single|cluster
	local topo=$1 i=0 c start ep ep2 b lb d
	say "== $topo: starting"
	if ! "start_$topo"; then
		failed=$((failed + 1))
		echo "FAIL: $topo: start"
		stop_nodes
		return
	fi
	check "$topo: vaultd tenant create matrix --json" bash -c "'$vaultd' tenant create matrix --json --endpoint '${endpoints[0]}' >'$work/tenant.json'"
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
	AWS_ACCESS_KEY_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_key"])' "$work/tenant.json")
	AWS_SECRET_ACCESS_KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_key"])' "$work/tenant.json")
	lb=list-$topo
	ep=${endpoints[0]}
	start=$SECONDS
	check "$topo: aws s3 cp --recursive $listcount keys into the listing bucket" \
		bash -c "aws --endpoint-url $ep s3 mb s3://$lb && aws --endpoint-url $ep s3 cp --recursive $work/list s3://$lb --only-show-errors"
	echo "    ($((SECONDS - start))s)"
	for c in $clients; do
		ep=${endpoints[$((i % ${#endpoints[@]}))]}
		ep2=${endpoints[$(((i + 1) % ${#endpoints[@]}))]}
		i=$((i + 1))
		b=$c-$topo
		d=$work/scratch/$topo-$c
		mkdir -p "$d"
		say "== $topo: $c (writes to $ep, reads back from $ep2)"
		start=$SECONDS
		"run_$c"
		took[$topo/$c]=$((SECONDS - start))
		say "$topo: $c took ${took[$topo/$c]}s"
	done
	ep=${endpoints[$(((i + 2) % ${#endpoints[@]}))]}
	if want s3cmd; then
		start=$SECONDS
		check "$topo: s3cmd get --recursive of $listcount objects at the default rate limit" bash -c "mkdir -p $work/scratch/$topo-get &&
			s3cmd -c $work/s3cmd.cfg --no-progress --host=${ep#http://} --host-bucket=${ep#http://} get --recursive s3://$lb/ $work/scratch/$topo-get/ >/dev/null &&
			diff -r $work/list $work/scratch/$topo-get"
		echo "    ($((SECONDS - start))s)"
	fi
	check "$topo: aws s3 rb --force of the $listcount-key bucket" aws --endpoint-url "$ep" s3 rb "s3://$lb" --force >/dev/null
	if [ "$topo" = cluster ]; then
		# Bucket configuration set through one node, observed and enforced
		# through the other two: versioning, object lock, tagging,
		# lifecycle, conditional writes, POST policy, CORS, bucket policy.
		start=$SECONDS
		check "$topo: features across nodes, boto3 (scripts/e2e_nodes.py)" python3 scripts/e2e_nodes.py "$work/tenant.json" "${endpoints[@]}"
		check "$topo: features across nodes, aws cli (scripts/e2e_nodes_cli.sh)" bash scripts/e2e_nodes_cli.sh "$work/tenant.json" "${endpoints[@]}"
		echo "    ($((SECONDS - start))s)"
	fi
	stop_nodes
}

for topo in $topologies; do
	run_topology "$topo"
done

echo
echo "time per client (seconds):"
for topo in $topologies; do
	for c in $clients; do
		[ -n "${took[$topo/$c]:-}" ] && printf '  %-8s %-6s %4ss\n' "$topo" "$c" "${took[$topo/$c]}"
	done
done
echo "total: $((SECONDS - t0))s (${bigmb} MB multipart objects)"
[ "$xfailed" -gt 0 ] && echo "$xfailed expected failure(s) (XFAIL above), not counted as failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
