#!/usr/bin/env bash
# Bring up a Docker engine and the test images, once; safe to run again (idempotent).
#
#   .ci/docker-setup.sh            engine + base image + slim runtime image (what the tests use)
#   .ci/docker-setup.sh --engine   only the engine
#
# 1. If no engine answers `docker info`: install Debian's docker.io when dockerd is missing, then
#    start `dockerd --bridge=none --iptables=false` in the background (log and pidfile under
#    $DSTACK_DOCKERD_DIR, default /var/tmp/dstack-dockerd) and wait for it (bounded).
# 2. Base image dstack-prefect/base:bookworm from debootstrap (no registry needed), unless present.
# 3. Runtime image dstack-prefect/runtime:<version>-py3.11-slim via docker/build.sh --slim, unless present.
#
# Needs root (dockerd, debootstrap). Exits non-zero, saying why, on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${DSTACK_DOCKERD_DIR:-/var/tmp/dstack-dockerd}"
base_image="${DSTACK_BASE_IMAGE:-dstack-prefect/base:bookworm}"
engine_only=0
[ "${1:-}" = "--engine" ] && engine_only=1

say() { printf '[docker-setup] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

engine_up() { docker info >/dev/null 2>&1; }

start_engine() {
  if engine_up; then
    say "engine already answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
    return
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd missing: apt-get install docker.io"
    [ "$(id -u)" = 0 ] || die "installing docker.io needs root"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >&2
  fi
  [ "$(id -u)" = 0 ] || die "no engine answers and starting dockerd needs root"
  mkdir -p "$state_dir"
  if [ -f "$state_dir/dockerd.pid" ] && kill -0 "$(cat "$state_dir/dockerd.pid")" 2>/dev/null; then
    say "dockerd (pid $(cat "$state_dir/dockerd.pid")) is starting; waiting for it"
  else
    say "starting dockerd --bridge=none --iptables=false (log: $state_dir/dockerd.log)"
    # setsid + redirects: the daemon must not hold this shell's stdout or die with its session.
    setsid nohup dockerd --bridge=none --iptables=false --pidfile "$state_dir/dockerd.pid" \
      >"$state_dir/dockerd.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    engine_up && { say "engine is up"; return; }
    sleep 0.5
  done
  tail -n 30 "$state_dir/dockerd.log" >&2 || true
  die "dockerd did not answer within 30 s (log above: $state_dir/dockerd.log)"
}

debian_mirror() {
  # The mirror apt already uses (deb822 .sources first, then one-line sources.list).
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)"
  if [ -z "$uri" ]; then
    uri="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      | awk '{print $2}' | grep -v security | head -n1 || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
  if docker image inspect "$base_image" >/dev/null 2>&1; then
    say "base image $base_image present"
    return
  fi
  command -v debootstrap >/dev/null 2>&1 || {
    say "debootstrap missing: apt-get install debootstrap"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
  }
  local root mirror
  root="$(mktemp -d /var/tmp/dstack-rootfs.XXXXXX)"
  mirror="$(debian_mirror)"
  say "debootstrap bookworm from $mirror into $root (about a minute)"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$root" "$mirror" >"$root.log" 2>&1; then
    tail -n 30 "$root.log" >&2
    rm -rf "$root"
    die "debootstrap failed (log above: $root.log)"
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  say "importing $root as $base_image"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$base_image" >/dev/null
  rm -rf "$root" "$root.log"
}

start_engine
[ "$engine_only" = 1 ] && exit 0
build_base
"$here/docker/build.sh" --slim --base "$base_image" --if-missing
say "done"
