#!/usr/bin/env bash
# Installs what plugind and its tests need on a Debian host (run as root):
# containerd, runc, crun (for --runtime-binary crun), a static busybox for
# test plugins, tini (its static build is what `run --init` puts in front of
# a plugin), prometheus (promtool,
# a real scraper), systemd (systemd-analyze, to check deploy/systemd),
# docker-registry (the registry pull tests push plugin images to) and
# apache2-utils (htpasswd, for its bcrypt password file) from Debian, golang-go to build the FIFO keeper (a static binary,
# build/plugind-fifo-keeper), gcc for the pipe holder (build/plugind-pipe-holder),
# and the npm dependencies. Idempotent: it
# installs only what is missing and rebuilds only what is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in containerd runc crun busybox-static prometheus systemd tini golang-go gcc docker-registry apache2-utils; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi

# The FIFO keeper, when missing or older than its source: Go's standard
# library only, no modules, no network; static, so it runs on any host of
# the same architecture.
keeper=build/plugind-fifo-keeper
src=src/keeper/fifo-keeper
if [ ! -x "$keeper" ] || [ -n "$(find "$src" -newer "$keeper" -print -quit)" ]; then
  echo "setup: go build $keeper" >&2
  mkdir -p build
  CGO_ENABLED=0 GO111MODULE=off GOFLAGS= go build -trimpath -ldflags='-s -w' -o "$keeper" "./$src"
fi

# The pipe holder, when missing or older than its source: C without libc
# (raw syscalls, x86-64 and arm64), static, about 9 KB; a process of it per
# plugin costs 8 KiB of memory.
holder=build/plugind-pipe-holder
holder_src=src/keeper/pipe-holder/holder.c
if [ ! -x "$holder" ] || [ "$holder_src" -nt "$holder" ]; then
  echo "setup: gcc $holder" >&2
  mkdir -p build
  gcc -Os -static -nostdlib -ffreestanding -fno-stack-protector -fno-asynchronous-unwind-tables \
    -fno-pie -no-pie -Wall -Wextra -Werror -s -o "$holder.tmp" "$holder_src"
  mv "$holder.tmp" "$holder"
fi
