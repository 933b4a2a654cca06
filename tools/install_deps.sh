#!/usr/bin/env bash
# Installs lemma's build and test dependencies from Debian and PyPI (see README: Dependencies).
set -euo pipefail
DEBS="build-essential clang libclang-rt-14-dev pkg-config python3 python3-pip
      libjansson-dev libpcre2-dev libutf8proc-dev libssl-dev libsqlite3-dev libxxhash-dev"
missing=""
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
