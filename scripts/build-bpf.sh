#!/bin/sh
# Rebuild the socket gauge's BPF object from its C source with Debian's
# clang (package `clang`) and llvm-strip (package `llvm`).
#
#   scripts/build-bpf.sh            rewrite src/measure/sock_gauge/sock_gauge.bpf.o
#   scripts/build-bpf.sh OUT.o      write it elsewhere (tests/sock_gauge.rs
#                                   does, and compares the bytes)
#
# The object is committed: building twlab needs no BPF toolchain. Debug
# info (DWARF) is stripped and its paths made relative, so the bytes depend
# only on the source and the compiler's version; BTF stays (the loader
# relocates the program's struct fields against the running kernel's).
set -eu
here=$(cd "$(dirname "$0")/../src/measure/sock_gauge" && pwd)
out=${1:-$here/sock_gauge.bpf.o}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$here"
clang -O2 -g -target bpf -fdebug-prefix-map="$here"=. -c sock_gauge.bpf.c -o "$out"
llvm-strip -g "$out"
