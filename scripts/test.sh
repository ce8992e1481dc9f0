#!/usr/bin/env bash
# Run twlab's tests on this machine, as root, from a fresh clone.
#
# It first installs what the tests need and twlab itself does not: the
# Debian packages the lab tests compare twlab against or run as real peers,
# cargo-nextest, and the two Docker images built locally (no registry is
# needed). Then it runs the whole suite with cargo-nextest. Extra arguments
# go to `cargo nextest run` (e.g. a test filter).
#
# What each package is for:
#   iproute2, procps, nftables, conntrack  the tools twlab's own netlink code
#                                          is checked against (ip, sysctl,
#                                          nft, conntrack -L)
#   wrk                                    the seed's load generator
#   httperf                                a load tool: connection rate (tests/load_tools.rs)
#   apache2-utils                          ab, a load tool with keep-alive (tests/load_tools.rs)
#   hey                                    a load tool (Go) (tests/load_tools.rs)
#   nghttp2-client                         h2load, a load tool over HTTP/1.1 (tests/load_tools.rs)
#   oha (cargo install, not Debian)        a load tool with a JSON result (tests/load_tools.rs)
#   python3                                a third-party server (kind: command)
#   openssh-server, openssh-client         a real SSH host (sshd in a namespace)
#   net-tools                              netstat, the fallback on hosts without ss
#   debootstrap, ca-certificates           the Tomcat and wrk images' root filesystems
#   clang, llvm                            rebuild the socket gauge's BPF object and check
#                                          it is the committed one (tests/sock_gauge.rs)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (the lab tests build network namespaces)" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends iproute2 procps nftables conntrack wrk python3 \
  openssh-server openssh-client net-tools debootstrap ca-certificates \
  httperf apache2-utils hey nghttp2-client clang llvm >/dev/null

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  # Kept between runs: an existing image is reused.
  bash docker/tomcat/build.sh twlab/tomcat:10.1
  bash docker/wrk/build.sh twlab/wrk:4.1
  # twlab's own image (twlab/twlab:test) is built by tests/swarm.rs from the test build's binary.
elif [ "${CI:-}" = true ]; then
  echo "scripts/test.sh: the Docker engine is not running; the Docker tests need it" >&2
  exit 3
else
  echo "scripts/test.sh: no Docker engine here: the Docker tests will say they are skipped" >&2
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# oha is on crates.io only (tests/load_tools.rs runs it).
if ! command -v oha >/dev/null 2>&1; then
  cargo install oha --locked
fi

exec cargo nextest run --locked --no-fail-fast "$@"
