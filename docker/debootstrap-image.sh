#!/usr/bin/env bash
# Shared by docker/*/build.sh: make a Debian rootfs with debootstrap
# (minbase plus the given packages, no recommends) and import it into the
# local Docker engine as TAG. No registry is needed, only Debian's package
# mirror (DEBIAN_MIRROR, DEBIAN_SUITE override it). An existing image with
# the tag is kept (`docker rmi TAG` to rebuild).
#
#   debootstrap-image.sh TAG PACKAGES CHECK_PATH [docker import -c CHANGE]...
#
# PACKAGES is debootstrap's --include list (comma-separated); CHECK_PATH is
# a file the packages must have installed (a missing one fails the build).
# MKDIRS (space-separated paths) are created in the rootfs before import.
set -euo pipefail
tag=$1 packages=$2 check=$3
shift 3
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag exists: kept"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "needs debootstrap: apt-get install debootstrap" >&2; exit 3; }

work=$(mktemp -d /var/tmp/twlab-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
debootstrap --variant=minbase --include="$packages" \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -40 "$work/debootstrap.log" >&2; exit 3; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
test -e "$rootfs$check" || { echo "debootstrap did not install $check" >&2; exit 3; }
for d in ${MKDIRS:-}; do mkdir -p "$rootfs$d"; done

changes=()
for c in "$@"; do changes+=(-c "$c"); done
tar -C "$rootfs" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
echo "built $tag"
