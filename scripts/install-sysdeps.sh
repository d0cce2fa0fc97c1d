#!/usr/bin/env bash
# System packages the test suite needs beyond Python: PostgreSQL's server binaries (Debian's
# package) for the postgres sink tests. Installs only what is missing; a no-op when present.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
echo "[install-sysdeps] installing postgresql" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
