#!/bin/sh
# Rebuilds ../atlas.bundle.js and ../atlas.bundle.LICENSES.txt from src/ and the pinned
# packages of package-lock.json. Only needed after changing src/ or a package version:
# the bundle is committed, so users never need node.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node build.mjs
