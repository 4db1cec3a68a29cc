#!/usr/bin/env bash
# The demo: five real rollouts against the local Azure emulator (HTTPS) and Azurite, with a live
# view, and a self-contained HTML report in reports/. Installs only what it needs (no checkov, no
# test tools: bootstrap.sh --demo); stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --demo
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m demo "$@"
