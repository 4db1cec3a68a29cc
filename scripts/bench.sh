#!/usr/bin/env bash
# The benchmarks (not part of the test command): detection quality, scale, cold start.
# Writes bench/results/*.md and bench/results/detection.png. About 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
.venv/bin/python -m bench.detection "$@"
.venv/bin/python -m bench.coldstart
.venv/bin/python -m bench.scale
.venv/bin/python -m bench.predictions
.venv/bin/python -m bench.capacity
