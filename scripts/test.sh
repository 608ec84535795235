#!/usr/bin/env bash
# The whole test suite: installs what the browser and real-client tests drive (Chromium,
# chromedriver, pysnow, servicenow-rest-api) when it is missing, then runs every test of the
# workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --workspace "$@"
