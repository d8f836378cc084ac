#!/usr/bin/env bash
# The image the buildah builder's tests run as a build pod: buildah (with netavark, which its network stack needs),
# curl and ca-certificates from Debian bookworm, debootstrapped here and imported (nothing is pulled from a
# registry). The root filesystem is cached under /var/cache/liftoff like the Python image of docker.sh, so a second
# run only re-imports it. Runs docker.sh first for the engine.
set -euo pipefail
# The engine and the base images first (scripts run in name order, and this one sorts before docker.sh).
bash "$(dirname "$0")/docker.sh" >/dev/null
image=liftoff-test/buildah:1
if ! docker image inspect "$image" >/dev/null 2>&1; then
  cache=/var/cache/liftoff/buildah-rootfs.tar
  if [[ ! -s "$cache" ]]; then
    mkdir -p /var/cache/liftoff
    root="$(mktemp -d)"
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
    debootstrap --variant=minbase --include=buildah,netavark,ca-certificates,curl bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >/var/log/liftoff-debootstrap-buildah.log 2>&1 \
      || { tail -20 /var/log/liftoff-debootstrap-buildah.log; echo "buildah: debootstrap failed" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
    rm -rf "$root"
  fi
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$cache" "$image" >/dev/null
fi
echo "buildah: image $image ($(docker run --rm "$image" buildah --version 2>/dev/null || echo 'buildah --version failed'))"
