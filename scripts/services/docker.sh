#!/usr/bin/env bash
# A real Docker engine, the Distribution registry (tests start their own instances with htpasswd auth), and the
# base images the container tests use. Nothing is pulled from any registry: images are imported from root
# filesystems built here (busybox-static; a debootstrap Debian with python3, pip and numpy).
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[[ -x /bin/busybox ]] || need+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  (setsid dockerd >/var/log/liftoff-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/liftoff-dockerd.log; echo "docker: dockerd did not start" >&2; exit 1; }
fi

if ! docker image inspect liftoff-test/busybox:1 >/dev/null 2>&1; then
  root="$(mktemp -d)"
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for app in sh echo cat sleep ls env true false id printf head dd; do ln -s busybox "$root/bin/$app"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - liftoff-test/busybox:1 >/dev/null
  rm -rf "$root"
fi

# The one Debian rootfs every Python test image derives from; its cache and the image carry the package list, so a
# changed list builds a new one instead of reusing a stale cache.
packages=python3,python3-pip,python3-numpy
key="$(printf '%s' "$packages" | sha256sum | cut -c1-12)"
if [[ "$(docker image inspect -f '{{index .Config.Labels "liftoff.rootfs"}}' liftoff-test/python:3 2>/dev/null)" != "$key" ]]; then
  cache=/var/cache/liftoff/python-rootfs-$key.tar
  if [[ ! -s "$cache" ]]; then
    mkdir -p /var/cache/liftoff
    root="$(mktemp -d)"
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >/var/log/liftoff-debootstrap.log 2>&1 \
      || { tail -20 /var/log/liftoff-debootstrap.log; echo "docker: debootstrap failed" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
    find /var/cache/liftoff -maxdepth 1 -name 'python-rootfs*.tar' ! -name "python-rootfs-$key.tar" -delete
    rm -rf "$root"
  fi
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c "LABEL liftoff.rootfs=$key" "$cache" liftoff-test/python:3 >/dev/null
fi
echo "docker: engine $(docker version --format '{{.Server.Version}}'), registry $(docker-registry --version 2>/dev/null | awk '{print $3}'), images liftoff-test/busybox:1 liftoff-test/python:3"
