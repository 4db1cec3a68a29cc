#!/usr/bin/env bash
# The whole test suite: lint, types, and pytest (which starts Azurite and stops it by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy (strict for shared/)"; .venv/bin/mypy --strict shared
PYTEST=(.venv/bin/python -m pytest -n 2 --dist loadfile -p no:cacheprovider)
STATEFUL=(tests/reliability/test_stateful.py tests/reliability/test_stateful_more.py)
if [ $# -gt 0 ]; then  # the caller picks the tests
  echo "== pytest"; "${PYTEST[@]}" --cov --cov-report=term:skip-covered "$@"; exit
fi
echo "== pytest (with coverage)"
"${PYTEST[@]}" --cov --cov-report=term:skip-covered "${STATEFUL[@]/#/--ignore=}"
# Random histories of the whole service: tracing coverage would triple their time for no new lines.
echo "== pytest: the stateful test of the whole service (200 histories of 60 steps, two halves)"
"${PYTEST[@]}" "${STATEFUL[@]}"
