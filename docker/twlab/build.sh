#!/usr/bin/env bash
# Build the image of twlab itself, for the Swarm services that run twlab on
# every node (`twlab load` as the client, `twlab states --watch --json` as
# the per-node counter): twlab's binary and the shared libraries it links,
# nothing else, in a scratch image imported into the local Docker engine.
# No registry and no base image are needed.
#
#   docker/twlab/build.sh [TAG]      (default twlab/twlab:dev)
#
# The binary is target/release/twlab of this checkout, or the file named by
# TWLAB_BIN (e.g. a debug build). Its libraries are the ones `ldd` resolves
# on this machine, copied at the same paths, plus the dynamic loader; so the
# image runs wherever its kernel runs twlab (the libraries come along).
# The image's ENTRYPOINT is /twlab (no CMD: the service gives the
# subcommand). It is labelled twlab.image=twlab and twlab.binary.sha256=<the
# binary's sha256>: an image with the tag and the same digest is kept, any
# other is rebuilt (and the image it replaces removed when nothing uses it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-twlab/twlab:dev}
bin=${TWLAB_BIN:-$here/../../target/release/twlab}

test -f "$bin" || {
  echo "no twlab binary at $bin: cargo build --release, or set TWLAB_BIN=/path/to/twlab" >&2
  exit 3
}
sha=$(sha256sum "$bin" | cut -d' ' -f1)
old=$(docker image inspect --format '{{.Id}} {{index .Config.Labels "twlab.binary.sha256"}}' "$tag" 2>/dev/null || true)
if [ "${old#* }" = "$sha" ]; then
  echo "image $tag holds this binary (sha256 $sha): kept"
  exit 0
fi

work=$(mktemp -d /var/tmp/twlab-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
install -m 0755 "$bin" "$rootfs/twlab"
# `ldd` lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
# the loader "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
# A static binary ("not a dynamic executable") needs nothing.
libs=$(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' || true)
for lib in $libs; do
  # The path the binary asks for (a symlink, e.g. /lib64 -> /usr/lib64 on
  # merged-/usr systems) holds a copy of the file it resolves to.
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done

tar -C "$rootfs" --owner=0 --group=0 -c . | docker import \
  -c 'ENTRYPOINT ["/twlab"]' \
  -c 'LABEL twlab.image=twlab' \
  -c "LABEL twlab.binary.sha256=$sha" \
  - "$tag" >/dev/null
# The image this tag named before is now untagged: remove it unless a
# container still uses it.
if [ -n "$old" ]; then
  docker rmi "${old%% *}" >/dev/null 2>&1 || true
fi
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "built $tag from $bin (sha256 $sha, $((size / 1024 / 1024)) MiB; libraries: ${libs//$'\n'/ })"
