#!/usr/bin/env bash
# Build the wrk image twlab's `client.via: docker` runs (and the tests use):
# a Debian bookworm rootfs made by debootstrap with Debian's wrk 4.1.0 (the
# version twlab's wrk parser was written against), imported into the local
# Docker engine. No registry is needed, only Debian's package mirror.
#
#   docker/wrk/build.sh [TAG]        (default twlab/wrk:4.1)
#
# The image's ENTRYPOINT is wrk: `docker run IMAGE --latency -c 10 URL`
# runs `wrk --latency -c 10 URL`, and twlab gives the container wrk's
# arguments only. CMD is `--version`. The image is labelled
# `twlab.image=wrk`; an existing image with the tag is kept (delete it with
# `docker rmi TAG` to rebuild).
set -euo pipefail
tag=${1:-twlab/wrk:4.1}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag exists: kept"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "needs debootstrap: apt-get install debootstrap" >&2; exit 3; }

work=$(mktemp -d /var/tmp/twlab-wrk-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
# minbase plus wrk (and its LuaJIT and OpenSSL); no recommends.
debootstrap --variant=minbase --include=wrk \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -40 "$work/debootstrap.log" >&2; exit 3; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
test -x "$rootfs/usr/bin/wrk" || { echo "debootstrap did not install /usr/bin/wrk" >&2; exit 3; }

tar -C "$rootfs" -c . | docker import \
  -c 'LABEL twlab.image=wrk' \
  -c 'ENTRYPOINT ["/usr/bin/wrk"]' \
  -c 'CMD ["--version"]' \
  - "$tag" >/dev/null
echo "built $tag"
