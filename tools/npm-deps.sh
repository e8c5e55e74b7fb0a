#!/bin/sh
# Install the npm test servers (package.json / package-lock.json: s3rver,
# dynalite, local-aws-sqs) into node_modules/ at the repository root.
#
#   sh tools/npm-deps.sh [DEBIAN-PACKAGES...]      (make deps passes: nodejs npm)
#
# * node or npm missing: the Debian packages given as arguments are installed
#   through tools/deps.sh (as root; otherwise it says what to run). They are
#   checked by command, not by package: NodeSource's nodejs package ships its
#   own npm and conflicts with Debian's npm package.
# * Idempotent: `npm ci` runs only when node_modules/ is missing or older
#   than package.json / package-lock.json (npm writes
#   node_modules/.package-lock.json at the end of every install).
# * --ignore-scripts: no install script runs, so nothing is compiled or
#   downloaded besides the registry tarballs. dynalite's LevelDB binding
#   (classic-level) ships prebuilt binaries for linux x64/arm/arm64, which it
#   loads at run time; the specs use dynalite's in-memory store anyway.
set -eu
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

if ! have node || ! have npm; then
  if [ "$#" -gt 0 ]; then
    sh tools/deps.sh "$@" || exit 1
    hash -r 2>/dev/null || true
  fi
  if ! have node || ! have npm; then
    echo "make deps: node and npm are needed for the npm test servers (s3rver, dynalite," >&2
    echo "local-aws-sqs) and were not found in PATH. On Debian, as root:" >&2
    echo "  apt-get install -y nodejs npm" >&2
    exit 1
  fi
fi

stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ ! package-lock.json -nt "$stamp" ] && [ ! package.json -nt "$stamp" ]; then
  exit 0
fi

echo "make deps: installing the npm test servers into node_modules/ (node $(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund --ignore-scripts
# npm ci only rewrites the hidden lockfile when something changed: mark this install.
touch "$stamp"
