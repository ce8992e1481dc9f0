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
here=$(dirname "$0")
exec "$here/../debootstrap-image.sh" "${1:-twlab/wrk:4.1}" wrk /usr/bin/wrk \
  'LABEL twlab.image=wrk' \
  'ENTRYPOINT ["/usr/bin/wrk"]' \
  'CMD ["--version"]'
