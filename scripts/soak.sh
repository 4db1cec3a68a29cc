#!/usr/bin/env bash
# The stateful test of the whole service (tests/reliability/test_stateful.py) with its soak profile:
# 5,000 random histories of 100 steps each (not derandomised: every run explores new ones).
# Takes a long while; prints what it did (examples, steps, faults per kind) at the end.
# Extra arguments go to pytest, e.g. ./scripts/soak.sh -x
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SAFE_ROLLOUT_SOAK=1
exec .venv/bin/python -m pytest tests/reliability/test_stateful.py -q -p no:cacheprovider "$@"
