#!/usr/bin/env bash
# Installs what plugind and its tests need on a Debian host (run as root):
# containerd, runc, crun (for --runtime-binary crun), a static busybox for
# test plugins, tini (its static build is what `run --init` puts in front of
# a plugin), prometheus (promtool,
# a real scraper) and systemd (systemd-analyze, to check deploy/systemd)
# from Debian, and the npm dependencies. Idempotent: it installs only what
# is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in containerd runc crun busybox-static prometheus systemd tini; do
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
