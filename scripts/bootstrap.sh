#!/usr/bin/env bash
# Install what the tests and the demo need, idempotently: a virtual environment with the Python
# packages, and Azurite from npm. Needs only Python 3.11, Node.js and npm on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

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
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi

# checkov (infrastructure checks) pins an older `packaging` than pytest: its own small venv.
if [ ! -x .tools/checkov/bin/checkov ]; then
  echo "bootstrap: installing checkov"
  "$PYTHON" -m venv .tools/checkov
  .tools/checkov/bin/python -m pip install --quiet --disable-pip-version-check "checkov~=3.3"
fi

if [ ! -x node_modules/.bin/azurite-table ]; then
  echo "bootstrap: installing Azurite (npm)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --silent; else npm install --no-audit --no-fund --silent; fi
fi
