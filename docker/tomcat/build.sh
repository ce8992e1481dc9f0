#!/usr/bin/env bash
# Build the Tomcat image the tests (and users without a registry) run:
# a Debian bookworm rootfs made by debootstrap with Debian's tomcat10
# package, imported into the local Docker engine. No registry is needed,
# only Debian's package mirror.
#
#   docker/tomcat/build.sh [TAG]        (default twlab/tomcat:10.1)
#
# The image is labelled `twlab.image=tomcat`; an existing image with the
# tag is kept (delete it with `docker rmi TAG` to rebuild).
set -euo pipefail
tag=${1:-twlab/tomcat:10.1}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag exists: kept"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "needs debootstrap: apt-get install debootstrap" >&2; exit 3; }

work=$(mktemp -d /var/tmp/twlab-tomcat-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
# minbase plus Tomcat 10.1 and a headless JRE; no recommends (no docs, no
# admin webapps), so the image stays near 250 MB.
debootstrap --variant=minbase --include=tomcat10,default-jre-headless \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -40 "$work/debootstrap.log" >&2; exit 3; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# Tomcat's default ROOT webapp answers /; the seed's /abc is a 404, as with
# the tomcat:8.5-alpine image the seed used.
mkdir -p "$rootfs/var/lib/tomcat10/logs" "$rootfs/var/lib/tomcat10/temp" "$rootfs/var/lib/tomcat10/work"

tar -C "$rootfs" -c . | docker import \
  -c 'ENV CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE=/var/lib/tomcat10 CATALINA_TMPDIR=/var/lib/tomcat10/temp' \
  -c 'LABEL twlab.image=tomcat' \
  -c 'EXPOSE 8080' \
  -c 'CMD ["/usr/share/tomcat10/bin/catalina.sh", "run"]' \
  - "$tag" >/dev/null
echo "built $tag"
