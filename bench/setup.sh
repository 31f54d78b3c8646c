#!/usr/bin/env bash
# bench/setup.sh: builds the bench's two Go programs (bench/go/gobench and
# bench/go/mobybench) into $PLUGIND_BENCH_STATE/bin, default
# /var/tmp/plugind-bench/bin. Run as root on Debian; idempotent:
#
#   bash bench/setup.sh          install missing packages, fetch moby's source once, build what is stale
#   bash bench/setup.sh force    the same, but rebuild both programs
#
# Every Go source comes from Debian, built in GOPATH mode (no module proxy):
#   - Go 1.19 (golang-go) and containerd's Go client
#     (golang-github-containerd-containerd-dev) from /usr/share/gocode;
#   - moby: golang-github-docker-docker-dev lacks plugin/executor/ and
#     libcontainerd/, so the engine tree of the docker.io source package of
#     the same version is unpacked into $STATE/gopath/src/github.com/docker/docker.
#     apt-get source runs against a deb-src list of our own under $STATE/apt
#     (made from this host's deb lines); the system's apt config is not changed.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${PLUGIND_BENCH_STATE:-/var/tmp/plugind-bench}"
MOBY="$STATE/gopath/src/github.com/docker/docker"
say() { echo "[bench/setup.sh] $*" >&2; }

install_missing() {
  local missing=()
  for pkg in golang-go golang-github-containerd-containerd-dev golang-github-docker-docker-dev dpkg-dev jq crun; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
}

# The host's deb sources turned into deb-src ones, in a directory of our own.
private_sources() {
  local dir="$1"
  rm -rf "$dir/sources.list.d"
  mkdir -p "$dir/sources.list.d"
  : >"$dir/sources.list"
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$dir/sources.list.d/$(basename "$f")"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n -E 's/^deb[[:space:]]+/deb-src /p' "$f" >>"$dir/sources.list"
  done
}

fetch_moby() {
  [ -d "$MOBY/plugin/executor/containerd" ] && [ -d "$MOBY/libcontainerd/remote" ] && return
  local version apt_dir
  version="$(dpkg-query -W -f='${Version}' golang-github-docker-docker-dev)"
  apt_dir="$STATE/apt"
  say "fetching the docker.io $version source package (deb-src list in $apt_dir)"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/src"
  private_sources "$apt_dir"
  local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  apt-get "${opts[@]}" update -q >/dev/null
  rm -rf "$apt_dir/src" && mkdir -p "$apt_dir/src"
  (cd "$apt_dir/src" && apt-get "${opts[@]}" -o APT::Sandbox::User=root source --download-only -q "docker.io=$version" >/dev/null)
  (cd "$apt_dir/src" && dpkg-source -x docker.io_*.dsc tree >../dpkg-source.log 2>&1) ||
    { cat "$apt_dir/dpkg-source.log" >&2; exit 1; }
  mkdir -p "$(dirname "$MOBY")"
  rm -rf "$MOBY"
  mv "$apt_dir/src/tree/engine" "$MOBY"
  rm -rf "$apt_dir/src"
}

# needs_build BIN: BIN is missing, was built from another checkout, or is
# older than a file under bench/go.
needs_build() {
  [ -x "$1" ] && [ "$(cat "$1.from" 2>/dev/null)" = "$BENCH/go" ] || return 0
  [ -n "$(find "$BENCH/go" -type f -newer "$1" -print -quit)" ]
}

build() {
  export GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$STATE/gopath:/usr/share/gocode" GOCACHE="$STATE/gocache"
  # bench/go is the GOPATH package tree plugind-bench/..., so that both
  # programs can import plugind-bench/benchkit.
  ln -sfn "$BENCH/go" "$STATE/gopath/src/plugind-bench"
  mkdir -p "$STATE/bin"
  local tool
  for tool in gobench mobybench; do
    if [ "${1:-}" = force ] || needs_build "$STATE/bin/$tool"; then
      say "go build $tool -> $STATE/bin/$tool"
      go build -ldflags "-X main.mobyVersion=$(dpkg-query -W -f='${Version}' golang-github-docker-docker-dev)" \
        -o "$STATE/bin/$tool" "plugind-bench/$tool"
      echo "$BENCH/go" >"$STATE/bin/$tool.from"
    fi
  done
}

case "${1:-}" in
  "" | force) ;;
  *) echo "usage: bash bench/setup.sh [force]" >&2; exit 2 ;;
esac
mkdir -p "$STATE"
install_missing
fetch_moby
build "${1:-}"
