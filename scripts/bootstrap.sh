#!/usr/bin/env bash
# Install what the tests and the demo need, idempotently: a virtual environment with the Python
# packages, checkov, and Azurite from npm. Needs only Python 3.11, Node.js and npm on the machine.
#   ./scripts/bootstrap.sh          everything (the tests, CI, the benchmarks)
#   ./scripts/bootstrap.sh --demo   only what the demo needs: requirements-demo.txt and Azurite, no
#                                   checkov (about 290 MB) nor the test and lint tools
# SAFE_ROLLOUT_BOOTSTRAP=demo does the same as --demo.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${SAFE_ROLLOUT_BOOTSTRAP:-all}
for arg in "$@"; do
  case "$arg" in
    --demo) PROFILE=demo ;;
    *) echo "bootstrap: unknown argument $arg (only --demo)" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in
  all|demo) ;;
  *) echo "bootstrap: SAFE_ROLLOUT_BOOTSTRAP must be all or demo, got $PROFILE" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "bootstrap: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
# .venv/.installed: everything in requirements-dev.txt; .venv/.installed-demo: the demo's subset
# (the full set includes it, so a venv the tests installed serves the demo as it is).
fresh() {  # fresh STAMP FILE...: the stamp exists and is newer than every file
  local stamp=$1; shift
  [ -f "$stamp" ] || return 1
  for file in "$@"; do [ "$file" -nt "$stamp" ] && return 1; done
  return 0
}
install_python() {  # install_python REQUIREMENTS STAMP
  echo "bootstrap: installing Python packages ($1)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$1"
  touch "$2"
}
if [ "$PROFILE" = demo ]; then
  if ! fresh .venv/.installed requirements.txt requirements-dev.txt \
    && ! fresh .venv/.installed-demo requirements.txt requirements-demo.txt; then
    install_python requirements-demo.txt .venv/.installed-demo
  fi
elif ! fresh .venv/.installed requirements.txt requirements-dev.txt; then
  install_python requirements-dev.txt .venv/.installed
fi

# checkov (infrastructure checks, tests only) pins an older `packaging` than pytest: its own venv.
if [ "$PROFILE" = all ] && [ ! -x .tools/checkov/bin/checkov ]; then
  echo "bootstrap: installing checkov"
  "$PYTHON" -m venv .tools/checkov
  .tools/checkov/bin/python -m pip install --quiet --disable-pip-version-check "checkov~=3.3"
fi

if [ ! -x node_modules/.bin/azurite-table ]; then
  echo "bootstrap: installing Azurite (npm)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --silent; else npm install --no-audit --no-fund --silent; fi
fi
