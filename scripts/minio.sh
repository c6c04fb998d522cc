#!/usr/bin/env bash
# Builds the MinIO server the remote-drive tests run against (driver/remote,
# cmd/vaultd) with go install at a pinned version, into
# ~/.cache/vaultaire/minio/minio-<version>, and prints its path. A binary
# already there is reused (a no-op taking well under a second). Building
# from an empty module cache takes several minutes on 2 cores.
#
#   MINIO_VERSION   the pinned version (default below)
#   MINIO_BUILD_TIMEOUT  seconds before giving up (default 1200)
set -euo pipefail
version=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c} # github.com/minio/minio, as in bench/RESULTS.md
timeout=${MINIO_BUILD_TIMEOUT:-1200}
dir=${XDG_CACHE_HOME:-$HOME/.cache}/vaultaire/minio
bin=$dir/minio-$version
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
echo "minio: building github.com/minio/minio@$version (go install, at most ${timeout}s)" >&2
if ! (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS= timeout "$timeout" nice -n 5 go install "github.com/minio/minio@$version") >"$tmp/build.log" 2>&1; then
	echo "minio: go install failed:" >&2
	tail -20 "$tmp/build.log" >&2
	exit 1
fi
mv "$tmp/bin/minio" "$bin"
echo "minio: built in $((SECONDS - start))s" >&2
echo "$bin"
