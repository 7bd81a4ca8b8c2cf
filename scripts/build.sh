#!/bin/sh
# build.sh BUILDDIR [configure args...]: configure (once) and build out of tree.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=$1
shift
[ -x "$top/configure" ] || "$top/autogen.sh" >/dev/null 2>&1 || "$top/autogen.sh"
mkdir -p "$builddir"
cd "$builddir"
[ -f Makefile ] || "$top/configure" --prefix=/usr --sysconfdir=/etc --localstatedir=/var "$@" >/dev/null
make -j"$(nproc)" >/dev/null
