#!/usr/bin/env bash
# Installs what the tests that drive real outside tools need, when it is missing:
#   - Debian's chromium + chromium-driver (the web UI's browser tests),
#   - pysnow from PyPI and servicenow-rest-api from npm (real ServiceNow clients against the
#     emulator), into target/test-deps/ so nothing lands in the repository.
# Safe to run again: each step is skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=target/test-deps
mkdir -p "$deps"

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "install-test-deps: need root to install $* (or install them yourself)" >&2
        return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
fi

if [ ! -x "$deps/venv/bin/python" ]; then
    python3 -m venv "$deps/venv"
fi
if ! "$deps/venv/bin/python" -c 'import pysnow' 2>/dev/null; then
    "$deps/venv/bin/pip" install -q 'pysnow==0.7.17'
fi

if [ ! -d "$deps/node/node_modules/servicenow-rest-api" ]; then
    mkdir -p "$deps/node"
    (cd "$deps/node" && npm install --silent --no-audit --no-fund 'servicenow-rest-api@1.2.2' >/dev/null)
fi
echo "install-test-deps: chromium, chromedriver, pysnow and servicenow-rest-api are ready"
