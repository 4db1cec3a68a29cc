#!/usr/bin/env bash
# The demo: four real rollouts against the local Azure emulator (HTTPS) and Azurite, with a live
# view, and a self-contained HTML report in reports/. Installs what it needs; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m demo "$@"
