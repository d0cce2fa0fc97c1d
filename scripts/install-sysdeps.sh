#!/usr/bin/env bash
# System packages the test suite needs beyond Python (Debian's packages): PostgreSQL's server
# binaries for the postgres sink tests, and OpenSSL's command line, which recomputes the
# verbatim Akeneo samples' signatures independently of the project's code. Installs only
# what is missing; a no-op when everything is present.
set -euo pipefail
missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
if ! command -v openssl >/dev/null; then
  missing+=(openssl)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
echo "[install-sysdeps] installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
