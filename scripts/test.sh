#!/usr/bin/env bash
# The whole test suite: lint, types, and pytest (which starts Azurite and stops it by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy (strict for shared/)"; .venv/bin/mypy --strict shared
echo "== pytest"
.venv/bin/python -m pytest -n 2 --dist loadfile --cov --cov-report=term:skip-covered -p no:cacheprovider "$@"
